"""DBSCAN on WGS84 points: a single-node helper and an exact distributed version for Spark.

`haversine_dbscan` is scikit-learn's DBSCAN(metric="haversine", algorithm="ball_tree") on
radians with `eps = metres / 6_371_008.8`: the per-vehicle clustering inside grouped pandas UDFs
(residences, charging locations).

`distributed_dbscan` clusters a fleet-wide point set (hotspot visits, charging sites) and gives
the *same* clusters as single-node scikit-learn DBSCAN on the same points taken in `point_id`
order -- same core points, same noise, same border assignment:

1. **Partition** (Spark, mapInPandas): the plane is cut into cells of `cell_m`. Every point goes
   to its home cell as `inner` and, as a halo copy, to every other cell its 2 x eps box reaches
   (`halo1` when its eps box reaches the cell, else `halo2`). Boxes are L-infinity boxes in
   degrees whose longitude half-width is the exact reach of an eps ball at the point's latitude
   (asin(sin d / cos lat)) plus a safety margin, so the halo is conservative (never misses a
   neighbour); cells are at least 4 x eps so a point has at most 9 copies.
2. **Per cell** (Spark, applyInPandas over the cell id, scikit-learn BallTree): the points
   within eps of the cell (inner + halo1) have their whole eps neighbourhood in the cell (their
   neighbours lie within 2 x eps), so their weighted neighbour counts -- hence core flags -- are
   exact. Core points are linked into local clusters; each inner border point lists the local
   clusters whose core points are within eps.
   *Dense places without quadratic blow-up*: the cell is cut into sub-cells whose diagonal is
   below eps; every point of a sub-cell holding at least min_samples weight is core and all its
   points are one connected component (the grid-based exact DBSCAN of Gunawan 2013 / de Berg et
   al. 2017). Only points in sparse sub-cells need neighbour queries -- at most
   ~20 x min_samples of them near any place -- and two dense sub-cells are linked by one
   nearest-neighbour query, so a depot with 100 000 visits costs O(n log n), not O(n^2).
3. **Merge** (union-find): local clusters that share a core point (a halo core copy and its inner
   original) are the same cluster; the few such links, and the smallest inner core point of each
   local cluster, are collected and merged with scipy.sparse.csgraph.connected_components on the
   driver; a narrow mapInPandas then writes every point's label (no further shuffle).
4. **Label**: a cluster's id is its smallest core `point_id` -- which is the order in which
   scikit-learn numbers clusters -- and a border point joins the adjacent cluster with the
   smallest id, which is the cluster scikit-learn's expansion reaches it from first.

Why not Sedona's DBSCAN (`sedona.stats.clustering.dbscan`): it runs on GraphFrames connected
components over Euclidean distances of the coordinates, so an eps in metres on lon/lat degrees
is not a haversine radius, and it needs the graphframes jar this project does not ship.

Assumptions: |lat| < 85 degrees and no cluster across the antimeridian.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from common.core.frames import materialise
from common.spatial.geo import EARTH_RADIUS_M

# Halo boxes are widened by this factor: covers the change of a degree of longitude between a
# point and its neighbours' latitudes (relative ~tan(lat) x eps / R, < 1e-3 below 80 degrees).
_HALO_SAFETY = 1.02
# Sub-cell side as a share of eps / sqrt(2): every pair inside one sub-cell is < eps apart with
# a wide margin against floating point, so "all core, all connected" holds exactly.
_SUBCELL_SHARE = 0.9
# Query points per BallTree call: bounds the memory of neighbour lists near dense places.
_QUERY_CHUNK = 512
# Sub-cells with at least this many core points are linked sub-cell to sub-cell (one
# count-only query per neighbouring pair) instead of point by point.
_BIG_SUBCELL = 16

ROLE_INNER, ROLE_HALO1, ROLE_HALO2 = 0, 1, 2


def eps_radians(eps_m: float) -> float:
    """DBSCAN eps for scikit-learn's haversine metric (radians on the unit sphere).

    Parameters
    ----------
    eps_m : float
        Radius, m.

    Returns
    -------
    float
        The same radius in radians (eps_m / EARTH_RADIUS_M).
    """
    return eps_m / EARTH_RADIUS_M


def haversine_dbscan(
    lat: np.ndarray,
    lon: np.ndarray,
    eps_m: float,
    min_samples: int,
    sample_weight: np.ndarray | None = None,
) -> np.ndarray:
    """Single-node DBSCAN labels of points in degrees; eps in metres.

    scikit-learn DBSCAN(metric="haversine", algorithm="ball_tree") on radians; `min_samples`
    counts `sample_weight` (a grid cell standing for n points weighs n).

    Parameters
    ----------
    lat, lon : numpy.ndarray
        Positions, degrees WGS84.
    eps_m : float
        Neighbourhood radius, m.
    min_samples : int
        Weighted neighbour count (the point itself included) that makes a point core.
    sample_weight : numpy.ndarray, optional
        Weight per point; None weighs every point 1.

    Returns
    -------
    numpy.ndarray
        int64 label per point in input order: 0..k-1 in scikit-learn's order, -1 = noise.
    """
    from sklearn.cluster import DBSCAN

    if len(lat) == 0:
        return np.zeros(0, dtype=np.int64)
    X = np.radians(np.column_stack([np.asarray(lat, dtype=float), np.asarray(lon, dtype=float)]))
    model = DBSCAN(eps=eps_radians(eps_m), min_samples=min_samples, metric="haversine", algorithm="ball_tree")
    return model.fit_predict(X, sample_weight=sample_weight).astype(np.int64)


# --------------------------------------------------------------------------------------------
# Geometry of cells and halos (degrees)
# --------------------------------------------------------------------------------------------
def _deg(metres: float) -> float:
    return math.degrees(metres / EARTH_RADIUS_M)


def lon_reach_deg(lat_deg: np.ndarray, dist_m: float) -> np.ndarray:
    """Largest longitude difference (degrees) of a point within dist_m of a point at lat_deg.

    Parameters
    ----------
    lat_deg : numpy.ndarray
        Latitudes, degrees WGS84.
    dist_m : float
        Great-circle distance, m.

    Returns
    -------
    numpy.ndarray
        Longitude reach per latitude, degrees (90 where the distance reaches a pole).
    """
    d = dist_m / EARTH_RADIUS_M
    ratio = np.sin(d) / np.maximum(np.cos(np.radians(lat_deg)), 1e-12)
    return np.degrees(np.arcsin(np.minimum(ratio, 1.0)))


@dataclass(frozen=True)
class CellGrid:
    """Rows of height cell_m; columns cell_m wide at each row's central latitude (degrees).

    Attributes
    ----------
    cell_m : float
        Side of a cell, m.
    """

    cell_m: float

    @property
    def dlat(self) -> float:
        """Height of a row.

        Returns
        -------
        float
            cell_m in degrees of latitude.
        """
        return _deg(self.cell_m)

    def dlon(self, row: np.ndarray) -> np.ndarray:
        """Width of the cells of each row, degrees of longitude.

        Parameters
        ----------
        row : numpy.ndarray
            Row numbers (`row`).

        Returns
        -------
        numpy.ndarray
            cell_m at the row's central latitude (clipped to +-89 degrees), in degrees.
        """
        centre = (np.asarray(row, dtype=float) + 0.5) * self.dlat
        return self.dlat / np.maximum(np.cos(np.radians(np.clip(centre, -89.0, 89.0))), 1e-6)

    def row(self, lat: np.ndarray) -> np.ndarray:
        """Row of each latitude.

        Parameters
        ----------
        lat : numpy.ndarray
            Latitudes, degrees WGS84.

        Returns
        -------
        numpy.ndarray
            int64 row numbers (floor(lat / dlat)).
        """
        return np.floor(np.asarray(lat) / self.dlat).astype(np.int64)

    def col(self, lon: np.ndarray, row: np.ndarray) -> np.ndarray:
        """Column of each longitude within its row.

        Parameters
        ----------
        lon : numpy.ndarray
            Longitudes, degrees WGS84.
        row : numpy.ndarray
            Row of each point (`row`).

        Returns
        -------
        numpy.ndarray
            int64 column numbers (floor(lon / dlon(row))).
        """
        return np.floor(np.asarray(lon) / self.dlon(row)).astype(np.int64)


def cell_key(row: np.ndarray, col: np.ndarray) -> np.ndarray:
    """One non-negative int64 per (row, col) cell: offset row in the high bits, offset col in the low 32.

    Parameters
    ----------
    row, col : numpy.ndarray
        Cell rows and columns (`CellGrid.row` / `CellGrid.col`).

    Returns
    -------
    numpy.ndarray
        int64 cell key per (row, col) pair.
    """
    return (np.asarray(row, dtype=np.int64) + (1 << 30)) * (1 << 32) + (np.asarray(col, dtype=np.int64) + (1 << 31))


def assign_cells(point_id: np.ndarray, lat: np.ndarray, lon: np.ndarray, weight: np.ndarray, eps_m: float, cell_m: float) -> pd.DataFrame:
    """Copies of each point: its home cell (role 0) and halo cells within 2 x eps (roles 1, 2).

    Parameters
    ----------
    point_id : numpy.ndarray
        int64 point ids.
    lat, lon : numpy.ndarray
        Positions, degrees WGS84.
    weight : numpy.ndarray
        Sample weight per point.
    eps_m : float
        DBSCAN radius, m.
    cell_m : float
        Side of a partition cell, m (at least 4 x eps_m).

    Returns
    -------
    pandas.DataFrame
        One row per (point, cell) copy, all home copies first: cell (`cell_key`), point_id, lat,
        lon, weight, role (ROLE_INNER, ROLE_HALO1 within eps of the cell, ROLE_HALO2 within 2 x eps).
    """
    grid = CellGrid(cell_m)
    lat = np.asarray(lat, dtype=float)
    lon = np.asarray(lon, dtype=float)
    row = grid.row(lat)
    col = grid.col(lon, row)
    reach1_lat = _deg(eps_m) * _HALO_SAFETY
    reach2_lat = 2 * _deg(eps_m) * _HALO_SAFETY
    reach1_lon = lon_reach_deg(lat, eps_m) * _HALO_SAFETY
    reach2_lon = lon_reach_deg(lat, 2 * eps_m) * _HALO_SAFETY
    out = [pd.DataFrame({"cell": cell_key(row, col), "point_id": point_id, "lat": lat, "lon": lon, "weight": weight, "role": ROLE_INNER})]
    dlat = grid.dlat
    for dr in (-1, 0, 1):
        r2 = row + dr
        lat_lo, lat_hi = r2 * dlat, (r2 + 1) * dlat
        # distance in latitude from the point to the row band (0 inside)
        gap_lat = np.maximum(np.maximum(lat_lo - lat, lat - lat_hi), 0.0)
        width = grid.dlon(r2)
        first = np.floor((lon - reach2_lon) / width).astype(np.int64)
        for dc in (0, 1, 2):
            c2 = first + dc
            lon_lo, lon_hi = c2 * width, (c2 + 1) * width
            gap_lon = np.maximum(np.maximum(lon_lo - lon, lon - lon_hi), 0.0)
            in2 = (gap_lat <= reach2_lat) & (gap_lon <= reach2_lon)
            home = (r2 == row) & (c2 == col)
            keep = in2 & ~home
            if not keep.any():
                continue
            in1 = (gap_lat <= reach1_lat) & (gap_lon <= reach1_lon)
            role = np.where(in1, ROLE_HALO1, ROLE_HALO2)[keep]
            out.append(
                pd.DataFrame(
                    {
                        "cell": cell_key(r2[keep], c2[keep]),
                        "point_id": point_id[keep],
                        "lat": lat[keep],
                        "lon": lon[keep],
                        "weight": weight[keep],
                        "role": role,
                    }
                )
            )
    return pd.concat(out, ignore_index=True)


# --------------------------------------------------------------------------------------------
# One cell (pure numpy / scikit-learn: unit-testable without Spark)
# --------------------------------------------------------------------------------------------
@dataclass
class CellResult:
    """What `cluster_cell` finds for the points of one cell, one entry per point in input order.

    Attributes
    ----------
    is_core : numpy.ndarray
        bool per point (exact for roles 0/1 and for points of dense sub-cells).
    local : numpy.ndarray
        int64 local cluster per core point, -1 otherwise.
    candidates : list of numpy.ndarray
        Per point: local clusters of its core neighbours (inner non-core points only; empty otherwise).
    """

    is_core: np.ndarray
    local: np.ndarray
    candidates: list[np.ndarray]


class _UnionFind:
    """Union-find over 0..n-1 with path halving; `parent` may be seeded with known components."""

    def __init__(self, parent: np.ndarray):
        self.parent = parent

    def find(self, a: int) -> int:
        """Root of `a`'s component (halving the path on the way).

        Parameters
        ----------
        a : int
            Node.

        Returns
        -------
        int
            The root node.
        """
        p = self.parent
        while p[a] != a:
            p[a] = p[p[a]]
            a = p[a]
        return a

    def union(self, a: int, b: int) -> None:
        """Merge the components of `a` and `b`; the smaller root becomes the root.

        Parameters
        ----------
        a, b : int
            Nodes.
        """
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def cluster_cell(
    lat: np.ndarray,
    lon: np.ndarray,
    weight: np.ndarray,
    role: np.ndarray,
    eps_m: float,
    min_samples: float,
) -> CellResult:
    """Core flags, local clusters and border candidates of the points of one partition cell.

    Points with role 0/1 get exact core flags (their eps neighbourhood is complete here); role-2
    points only count as neighbours (and are core when their sub-cell alone is dense enough).
    Neighbour lists are only ever built where they are short: weighted counts of points with
    fewer than ~min_samples neighbours, border points (non-core: < min_samples neighbours) and
    core points of sub-cells holding fewer than `_BIG_SUBCELL` core points.

    Parameters
    ----------
    lat, lon : numpy.ndarray
        Positions of the cell's point copies, degrees WGS84.
    weight : numpy.ndarray
        Sample weight per point (points it stands for).
    role : numpy.ndarray
        ROLE_INNER, ROLE_HALO1 or ROLE_HALO2 per point (see `assign_cells`).
    eps_m : float
        DBSCAN radius, m.
    min_samples : float
        Weighted neighbour count (the point itself included) that makes a point core.

    Returns
    -------
    CellResult
        One entry per input point, in input order.
    """
    n = len(lat)
    lat = np.asarray(lat, dtype=float)
    lon = np.asarray(lon, dtype=float)
    weight = np.asarray(weight, dtype=float)
    role = np.asarray(role)
    X = np.radians(np.column_stack([lat, lon]))
    eps = eps_radians(eps_m)

    sub = _subcells(lat, lon, weight, eps_m, min_samples)
    is_core = _core_flags(X, weight, role, sub.in_dense, eps, min_samples)

    local = np.full(n, -1, dtype=np.int64)
    core_idx = np.flatnonzero(is_core)
    if len(core_idx) == 0:
        return CellResult(is_core, local, [_EMPTY] * n)

    nodes = _core_nodes(sub.of_point[core_idx])
    uf = _link_small_nodes(X, core_idx, nodes, eps)
    _link_big_nodes(uf, X, lat, core_idx, nodes, sub, eps_m, eps)
    # local cluster of a core point: its node's component, numbered 0..k-1 in root order
    roots = np.array([uf.find(k) for k in range(len(nodes.subs))])
    _, local_of_node = np.unique(roots, return_inverse=True)
    local[core_idx] = local_of_node.ravel()[nodes.of_core]

    candidates = _border_candidates(X, role, is_core, core_idx, local, eps)
    return CellResult(is_core, local, candidates)


class _SubCells(NamedTuple):
    """Sub-cells of one cell: side in degrees, (row, col) per sub-cell, sub-cell of each point, point in a dense sub-cell."""

    s_lat: float
    s_lon: float
    keys: np.ndarray
    of_point: np.ndarray
    in_dense: np.ndarray


class _Nodes(NamedTuple):
    """One node per sub-cell holding core points: its sub-cell, the node of each core point, core points per node, big flag."""

    subs: np.ndarray
    of_core: np.ndarray
    core_count: np.ndarray
    big: np.ndarray


def _subcells(lat: np.ndarray, lon: np.ndarray, weight: np.ndarray, eps_m: float, min_samples: float) -> _SubCells:
    """Sub-cells with diagonal < eps and which points lie in one holding at least min_samples weight."""
    # Sub-cells with diagonal < eps (degrees; longitude width set at the smallest |lat| present,
    # where a degree of longitude is longest, so no sub-cell is wider than its side anywhere).
    side_m = _SUBCELL_SHARE * eps_m / math.sqrt(2.0)
    s_lat = _deg(side_m)
    s_lon = s_lat / max(math.cos(math.radians(min(float(np.min(np.abs(lat))), 89.0))), 1e-6)
    sub_r = np.floor(lat / s_lat).astype(np.int64)
    sub_c = np.floor(lon / s_lon).astype(np.int64)
    sub_keys, sub_id = np.unique(np.column_stack([sub_r, sub_c]), axis=0, return_inverse=True)
    sub_id = sub_id.ravel()
    n_sub = len(sub_keys)
    sub_weight = np.bincount(sub_id, weights=weight, minlength=n_sub)
    in_dense = (sub_weight >= min_samples)[sub_id]
    return _SubCells(s_lat, s_lon, sub_keys, sub_id, in_dense)


def _core_flags(X: np.ndarray, weight: np.ndarray, role: np.ndarray, in_dense: np.ndarray, eps: float, min_samples: float) -> np.ndarray:
    """Step 1, core flags: points of dense sub-cells are core (every point of the sub-cell is within
    eps); the other points within eps of the cell are counted with the BallTree."""
    from sklearn.neighbors import BallTree

    is_core = in_dense.copy()
    ask = np.flatnonzero((role <= ROLE_HALO1) & ~in_dense)
    if len(ask):
        tree_all = BallTree(X, metric="haversine")
        counts = np.concatenate([tree_all.query_radius(X[ask[i : i + _QUERY_CHUNK]], r=eps, count_only=True) for i in range(0, len(ask), _QUERY_CHUNK)])
        w_min, w_max = float(weight.min()), float(weight.max())
        if w_min == w_max:
            is_core[ask] = counts * w_min >= min_samples
        else:
            # Weighted: decided by the count alone unless the weights matter (short lists).
            is_core[ask] = counts * w_min >= min_samples
            maybe = ask[(counts * w_min < min_samples) & (counts * w_max >= min_samples)]
            if len(maybe):
                sums = np.zeros(len(maybe))
                for idx, nb in _neighbours(tree_all, X, maybe, eps):
                    np.add.at(sums, np.searchsorted(maybe, idx), weight[nb])
                is_core[maybe] = sums >= min_samples
    return is_core


def _core_nodes(core_sub: np.ndarray) -> _Nodes:
    """Step 2, connectivity nodes: core points sharing a sub-cell are within eps of each other, so
    one node per sub-cell holding core points (`core_sub`: sub-cell of each core point). Nodes are
    linked when two of their core points are within eps (`_link_small_nodes`, `_link_big_nodes`)."""
    node_subs, node_of_core = np.unique(core_sub, return_inverse=True)
    node_of_core = node_of_core.ravel()
    n_nodes = len(node_subs)
    core_per_node = np.bincount(node_of_core, minlength=n_nodes)
    big = core_per_node >= _BIG_SUBCELL
    return _Nodes(node_subs, node_of_core, core_per_node, big)


def _link_small_nodes(X: np.ndarray, core_idx: np.ndarray, nodes: _Nodes, eps: float) -> _UnionFind:
    """Step 2a: nodes linked through core points of small nodes (neighbour lists among small-node
    core points: short); the union-find is seeded with the resulting components."""
    from sklearn.neighbors import BallTree

    n_nodes = len(nodes.subs)
    small_pts = np.flatnonzero(~nodes.big[nodes.of_core])
    edge_a: list[np.ndarray] = []
    edge_b: list[np.ndarray] = []
    if len(small_pts) > 1:
        small_tree = BallTree(X[core_idx[small_pts]], metric="haversine")
        for idx, nb in _neighbours(small_tree, X[core_idx], small_pts, eps):
            edge_a.append(nodes.of_core[idx])
            edge_b.append(nodes.of_core[small_pts[nb]])
    comp = _components(n_nodes, edge_a, edge_b)
    first_of_comp = np.full(comp.max() + 1, n_nodes, dtype=np.int64)
    np.minimum.at(first_of_comp, comp, np.arange(n_nodes))
    return _UnionFind(first_of_comp[comp].copy())


def _link_big_nodes(uf: _UnionFind, X: np.ndarray, lat: np.ndarray, core_idx: np.ndarray, nodes: _Nodes, sub: _SubCells, eps_m: float, eps: float) -> None:
    """Step 2b: every big node against the nodes its eps reach can touch (unions into `uf`): one
    count-only query of the smaller node's core points against the larger node's tree, skipped
    when already connected."""
    from sklearn.neighbors import BallTree

    big, core_per_node = nodes.big, nodes.core_count
    n_nodes = len(nodes.subs)
    if big.any():
        k_lat = int(math.ceil(_deg(eps_m) / sub.s_lat)) + 1
        k_lon = int(math.ceil(float(np.max(lon_reach_deg(lat, eps_m))) / sub.s_lon)) + 1
        lookup = {(int(r), int(c)): k for k, (r, c) in enumerate(sub.keys[nodes.subs])}
        order = np.argsort(nodes.of_core, kind="stable")
        bounds = np.searchsorted(nodes.of_core[order], np.arange(n_nodes + 1))
        trees: dict[int, BallTree] = {}

        def members(k: int) -> np.ndarray:
            return core_idx[order[bounds[k] : bounds[k + 1]]]

        for a in np.flatnonzero(big):
            r, c = (int(v) for v in sub.keys[nodes.subs[a]])
            for dr in range(-k_lat, k_lat + 1):
                for dc in range(-k_lon, k_lon + 1):
                    b = lookup.get((r + dr, c + dc))
                    if b is None or b == a or (big[b] and b < a) or uf.find(a) == uf.find(b):
                        continue
                    small, large = (a, b) if core_per_node[a] <= core_per_node[b] else (b, a)
                    if large not in trees:
                        trees[large] = BallTree(X[members(large)], metric="haversine")
                    hits = trees[large].query_radius(X[members(small)], r=eps, count_only=True)
                    if np.any(hits > 0):
                        uf.union(a, b)


def _border_candidates(X: np.ndarray, role: np.ndarray, is_core: np.ndarray, core_idx: np.ndarray, local: np.ndarray, eps: float) -> list[np.ndarray]:
    """Step 3, border candidates of inner non-core points (non-core: fewer than min_samples
    neighbours, so the lists are short): local clusters of their core neighbours."""
    from sklearn.neighbors import BallTree

    candidates: list[np.ndarray] = [_EMPTY] * len(X)
    border = np.flatnonzero((role == ROLE_INNER) & ~is_core)
    if len(border):
        core_tree = BallTree(X[core_idx], metric="haversine")
        for idx, nb in _neighbours(core_tree, X, border, eps):
            pairs = np.unique(np.column_stack([idx, local[core_idx[nb]]]), axis=0)
            cuts = np.flatnonzero(np.diff(pairs[:, 0])) + 1
            for grp in np.split(pairs, cuts):
                candidates[int(grp[0, 0])] = grp[:, 1]
    return candidates


_EMPTY = np.zeros(0, dtype=np.int64)


def _neighbours(tree, X: np.ndarray, query: np.ndarray, eps: float):
    """Yield (query index repeated per neighbour, neighbour positions in the tree) per chunk."""
    for start in range(0, len(query), _QUERY_CHUNK):
        idx = query[start : start + _QUERY_CHUNK]
        neigh = tree.query_radius(X[idx], r=eps)
        sizes = np.fromiter((len(x) for x in neigh), dtype=np.int64, count=len(neigh))
        if sizes.sum() == 0:
            continue
        yield np.repeat(idx, sizes), np.concatenate(neigh).astype(np.int64)


def _components(n_nodes: int, edge_a: list[np.ndarray], edge_b: list[np.ndarray]) -> np.ndarray:
    """Connected component (0..k-1) of each node given edge lists (scipy csgraph)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    a = np.concatenate(edge_a) if edge_a else _EMPTY
    b = np.concatenate(edge_b) if edge_b else _EMPTY
    graph = coo_matrix((np.ones(len(a), dtype=np.int8), (a, b)), shape=(n_nodes, n_nodes)).tocsr()
    _, comp = connected_components(graph, directed=False)
    return comp.astype(np.int64)


# --------------------------------------------------------------------------------------------
# Spark
# --------------------------------------------------------------------------------------------
_COPY_SCHEMA = T.StructType(
    [
        T.StructField("cell", T.LongType()),
        T.StructField("point_id", T.LongType()),
        T.StructField("lat", T.DoubleType()),
        T.StructField("lon", T.DoubleType()),
        T.StructField("weight", T.DoubleType()),
        T.StructField("role", T.IntegerType()),
    ]
)
_CELL_SCHEMA = T.StructType(
    [
        T.StructField("cell", T.LongType()),
        T.StructField("point_id", T.LongType()),
        T.StructField("role", T.IntegerType()),
        T.StructField("is_core", T.BooleanType()),
        T.StructField("local", T.LongType()),
        T.StructField("candidates", T.ArrayType(T.LongType())),
    ]
)
RESULT_SCHEMA = "point_id long, cluster_id long, is_core boolean"


def _copies_fn(eps_m: float, cell_m: float):
    def fn(batches):
        """mapInPandas body: `assign_cells` per batch.

        Parameters
        ----------
        batches : iterator of pandas.DataFrame
            point_id, lat, lon (degrees), weight.

        Yields
        ------
        pandas.DataFrame
            _COPY_SCHEMA rows: one per (point, cell) copy.
        """
        for pdf in batches:
            if len(pdf) == 0:
                continue
            out = assign_cells(
                pdf["point_id"].to_numpy(dtype=np.int64),
                pdf["lat"].to_numpy(dtype=float),
                pdf["lon"].to_numpy(dtype=float),
                pdf["weight"].to_numpy(dtype=float),
                eps_m,
                cell_m,
            )
            out["role"] = out["role"].astype("int32")
            yield out

    return fn


def _cell_fn(eps_m: float, min_samples: float):
    def fn(pdf: pd.DataFrame) -> pd.DataFrame:
        """applyInPandas body: `cluster_cell` on the copies of one cell.

        Parameters
        ----------
        pdf : pandas.DataFrame
            _COPY_SCHEMA rows of one cell.

        Returns
        -------
        pandas.DataFrame
            _CELL_SCHEMA rows: every inner copy, and the halo copies that are core.
        """
        res = cluster_cell(pdf["lat"].to_numpy(), pdf["lon"].to_numpy(), pdf["weight"].to_numpy(), pdf["role"].to_numpy(), eps_m, min_samples)
        role = pdf["role"].to_numpy()
        # inner points always; halo copies only when core (they link local clusters across cells)
        keep = (role == ROLE_INNER) | res.is_core
        return pd.DataFrame(
            {
                "cell": pdf["cell"].to_numpy()[keep],
                "point_id": pdf["point_id"].to_numpy()[keep],
                "role": role[keep].astype("int32"),
                "is_core": res.is_core[keep],
                "local": res.local[keep],
                # dtype object: an empty cell output would otherwise be float64, which Arrow cannot cast
                "candidates": pd.Series([c.tolist() for c, k in zip(res.candidates, keep) if k], dtype=object),
            }
        )

    return fn


def distributed_dbscan(
    points: DataFrame,
    eps_m: float,
    min_samples: float,
    cell_m: float,
    weight_col: str | None = None,
) -> DataFrame:
    """Exact DBSCAN of `points` (point_id long unique, lat, lon in degrees[, weight]).

    Equal to scikit-learn DBSCAN(eps=eps_m / R, min_samples, metric="haversine") on the points
    ordered by point_id, with sample_weight = weight_col. The result is materialised
    (common.core.frames; free it with `release`).

    Spark work: one shuffle by cell (the per-cell clustering), two small aggregations collected
    to the driver (links between local clusters, smallest inner core point of each local
    cluster), and a narrow mapInPandas that writes the final labels.

    Parameters
    ----------
    points : DataFrame
        point_id (long, unique), lat, lon (degrees WGS84) and the `weight_col` column if given.
    eps_m : float
        DBSCAN radius, m.
    min_samples : float
        Weighted neighbour count (the point itself included) that makes a point core.
    cell_m : float
        Side of the partition cells, m (>= 4 x eps_m): bigger cells mean fewer halo copies and
        fewer, larger tasks.
    weight_col : str, optional
        Column of `points` holding the sample weight; None weighs every point 1.

    Returns
    -------
    DataFrame
        One row per point: point_id, cluster_id (the smallest core point_id of its cluster;
        -1 = noise), is_core.

    Raises
    ------
    ValueError
        If cell_m < 4 x eps_m (the halo would not fit in a cell).
    """
    if cell_m < 4 * eps_m:
        raise ValueError(f"cell_m ({cell_m}) must be at least 4 x eps_m ({eps_m}): halos are 2 x eps wide")
    weight = F.col(weight_col).cast("double") if weight_col else F.lit(1.0)
    src = points.select(
        F.col("point_id").cast("long").alias("point_id"),
        F.col("lat").cast("double").alias("lat"),
        F.col("lon").cast("double").alias("lon"),
        weight.alias("weight"),
    )
    copies = src.mapInPandas(_copies_fn(eps_m, cell_m), _COPY_SCHEMA)
    cells = copies.groupBy("cell").applyInPandas(_cell_fn(eps_m, float(min_samples)), _CELL_SCHEMA).persist()
    try:
        core = cells.where("is_core")
        # Local clusters sharing a core point (a halo copy and its inner original) are one cluster.
        inner_core = core.where(F.col("role") == ROLE_INNER).select("point_id", F.col("cell").alias("cell_a"), F.col("local").alias("local_a"))
        halo_core = core.where(F.col("role") != ROLE_INNER).select("point_id", F.col("cell").alias("cell_b"), F.col("local").alias("local_b"))
        links = inner_core.join(halo_core, "point_id").select("cell_a", "local_a", "cell_b", "local_b").distinct().collect()  # bounded: one row per pair of local clusters sharing a halo core point
        # A cluster's id is its smallest core point_id; every core point is inner in one cell.
        firsts = inner_core.groupBy("cell_a", "local_a").agg(F.min("point_id").alias("first")).collect()  # bounded: one row per local cluster
        cluster_of = points.sparkSession.sparkContext.broadcast(_merge_local_clusters(links, firsts))
        # computed before the cells are released
        return materialise(cells.where(F.col("role") == ROLE_INNER).mapInPandas(_label_fn(cluster_of), RESULT_SCHEMA))
    finally:
        cells.unpersist()


def _label_fn(broadcast_clusters):
    """Final labels of inner rows: core -> its cluster, border -> smallest adjacent cluster, else -1.

    `broadcast_clusters`: a Spark broadcast of {cell: cluster id of each local cluster (array)}."""

    def fn(batches):
        """mapInPandas body: label the inner rows of each batch.

        Parameters
        ----------
        batches : iterator of pandas.DataFrame
            _CELL_SCHEMA rows of inner copies.

        Yields
        ------
        pandas.DataFrame
            RESULT_SCHEMA rows: point_id, cluster_id (-1 = noise), is_core.
        """
        cluster_of = broadcast_clusters.value
        for pdf in batches:
            if len(pdf) == 0:
                continue
            cells = pdf["cell"].to_numpy()
            locals_ = pdf["local"].to_numpy()
            core = pdf["is_core"].to_numpy()
            out = np.full(len(pdf), -1, dtype=np.int64)
            for cell in np.unique(cells[core]):
                m = core & (cells == cell)
                out[m] = cluster_of[int(cell)][locals_[m]]
            for k in np.flatnonzero(~core):
                cand = pdf["candidates"].iat[k]
                if cand is not None and len(cand):
                    out[k] = int(cluster_of[int(cells[k])][np.asarray(cand, dtype=np.int64)].min())
            yield pd.DataFrame({"point_id": pdf["point_id"].to_numpy(), "cluster_id": out, "is_core": core})

    return fn


def _merge_local_clusters(links, firsts) -> dict[int, np.ndarray]:
    """{cell: cluster id per local cluster}: union-find over the links; id = smallest inner core point_id.

    `links`: (cell_a, local_a, cell_b, local_b) rows of local clusters sharing a core point;
    `firsts`: (cell, local, smallest inner core point_id) rows.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    none = np.iinfo(np.int64).max
    keys: dict[tuple[int, int], int] = {}
    first_of: list[int] = []
    for r in firsts:
        keys[(int(r[0]), int(r[1]))] = len(first_of)
        first_of.append(int(r[2]))
    a_idx, b_idx = [], []
    for r in links:
        for key in ((int(r[0]), int(r[1])), (int(r[2]), int(r[3]))):
            if key not in keys:  # a local cluster whose core points are all halo copies in its cell
                keys[key] = len(first_of)
                first_of.append(none)
        a_idx.append(keys[(int(r[0]), int(r[1]))])
        b_idx.append(keys[(int(r[2]), int(r[3]))])
    n = len(keys)
    if n == 0:
        return {}
    graph = coo_matrix((np.ones(len(a_idx)), (a_idx, b_idx)), shape=(n, n))
    _, comp = connected_components(graph, directed=False)
    best = np.full(comp.max() + 1, none, dtype=np.int64)
    np.minimum.at(best, comp, np.array(first_of, dtype=np.int64))
    size: dict[int, int] = {}
    for cell, local in keys:
        size[cell] = max(size.get(cell, 0), local + 1)
    out = {cell: np.full(k, -1, dtype=np.int64) for cell, k in size.items()}
    for (cell, local), i in keys.items():
        out[cell][local] = best[comp[i]]
    return out


def dense_labels(cluster_id: pd.Series | np.ndarray) -> np.ndarray:
    """Cluster ids (smallest core point_id, -1 noise) -> 0..k-1 in id order, -1 kept: sklearn's numbering.

    Parameters
    ----------
    cluster_id : pandas.Series or numpy.ndarray
        `distributed_dbscan` cluster ids.

    Returns
    -------
    numpy.ndarray
        int64 label per input row, as `haversine_dbscan` numbers them.
    """
    ids = np.asarray(cluster_id)
    out = np.full(len(ids), -1, dtype=np.int64)
    mask = ids >= 0
    if mask.any():
        _, out[mask] = np.unique(ids[mask], return_inverse=True)
    return out


def grid_cell(lat: str | F.Column, lon: str | F.Column, cell_m: float) -> tuple[F.Column, F.Column]:
    """Spark columns (row, col) of a ~cell_m square grid (same layout as CellGrid and common.spatial.privacy).

    Rows are cell_m high; columns cell_m wide at the row's central latitude, so cells stay square
    at any latitude.

    Parameters
    ----------
    lat, lon : str or Column
        Latitude and longitude, degrees WGS84 (column names or expressions).
    cell_m : float
        Side of a cell, m.

    Returns
    -------
    tuple of Column
        (row, col), both long; null where lat or lon is null.
    """
    lat_c = F.col(lat) if isinstance(lat, str) else lat
    lon_c = F.col(lon) if isinstance(lon, str) else lon
    dlat = _deg(cell_m)
    row = F.floor(lat_c / F.lit(dlat))
    centre = (row + F.lit(0.5)) * F.lit(dlat)
    dlon = F.lit(dlat) / F.greatest(F.cos(F.radians(centre)), F.lit(1e-6))
    return row.cast("long"), F.floor(lon_c / dlon).cast("long")

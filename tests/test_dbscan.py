"""Exact distributed DBSCAN (common.spatial.dbscan) against single-node scikit-learn DBSCAN.

Identity is checked strictly: adjusted Rand index 1.0, identical noise, and identical labels
once cluster ids (smallest core point_id) are renumbered in order -- scikit-learn's numbering.
Points are placed on partition-cell borders and corners and in a dense depot on purpose.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from chispa import assert_df_equality
from sklearn.metrics import adjusted_rand_score

from common.spatial.dbscan import (
    ROLE_INNER,
    CellGrid,
    assign_cells,
    cluster_cell,
    dense_labels,
    distributed_dbscan,
    haversine_dbscan,
)
from common.spatial.geo import EARTH_RADIUS_M

M_PER_DEG = np.pi * EARTH_RADIUS_M / 180


def _offset(lat0, lon0, north_m, east_m):
    return lat0 + np.asarray(north_m) / M_PER_DEG, lon0 + np.asarray(east_m) / (M_PER_DEG * np.cos(np.radians(lat0)))


def _disk(rng, lat0, lon0, radius_m, n):
    r = radius_m * np.sqrt(rng.random(n))
    th = rng.random(n) * 2 * np.pi
    return _offset(lat0, lon0, r * np.cos(th), r * np.sin(th))


def border_scene(seed: int, eps_m: float, cell_m: float) -> tuple[np.ndarray, np.ndarray]:
    """Clusters centred on partition-cell corners and edges, a dense depot, chains and noise."""
    rng = np.random.default_rng(seed)
    grid = CellGrid(cell_m)
    row = int(np.floor(28.6 / grid.dlat))
    corner_lat = (row + 1) * grid.dlat
    corner_lon = (int(np.floor(77.2 / grid.dlon(np.array([row]))[0])) + 1) * grid.dlon(np.array([row]))[0]
    parts = [
        _disk(rng, corner_lat, corner_lon, 1.5 * eps_m, 60),  # on a cell corner (4 cells)
        _disk(rng, corner_lat, corner_lon + 0.3 * cell_m / M_PER_DEG, eps_m, 40),  # on a row border
        _disk(rng, corner_lat - 0.5 * cell_m / M_PER_DEG, corner_lon, eps_m, 40),  # on a column border
        _disk(rng, corner_lat + 0.4 * cell_m / M_PER_DEG, corner_lon - 0.4 * cell_m / M_PER_DEG, 0.8 * eps_m, 4000),  # depot
        _disk(rng, corner_lat, corner_lon, 3 * cell_m, 400),  # noise and chance links across cells
    ]
    # a chain of points ~0.9 eps apart crossing two cell borders: one cluster only through its links
    steps = np.arange(0, 2.5 * cell_m, 0.9 * eps_m)
    parts.append(_offset(corner_lat - 0.2 * cell_m / M_PER_DEG, corner_lon - 1.2 * cell_m / M_PER_DEG + 0 * steps, 0 * steps, steps))
    lat = np.concatenate([p[0] for p in parts])
    lon = np.concatenate([p[1] for p in parts])
    order = rng.permutation(len(lat))  # ids unrelated to the construction order
    return lat[order], lon[order]


def test_halo_copies_reach_every_neighbour():
    """Every point within 2 x eps of a point is present (inner or halo) in that point's home cell."""
    from sklearn.neighbors import BallTree

    lat, lon = border_scene(3, 50.0, 200.0)
    copies = assign_cells(np.arange(len(lat)), lat, lon, np.ones(len(lat)), 50.0, 200.0)
    home = copies[copies.role == ROLE_INNER].set_index("point_id")["cell"]
    present = set(zip(copies.cell, copies.point_id))
    X = np.radians(np.column_stack([lat, lon]))
    neigh = BallTree(X, metric="haversine").query_radius(X, r=2 * 50.0 / EARTH_RADIUS_M)
    missing = [(i, j) for i, nb in enumerate(neigh) for j in nb if (home[i], j) not in present]
    assert missing == []
    assert copies.groupby("point_id").size().max() <= 9


def test_dense_depot_is_one_core_cluster_without_neighbour_lists():
    rng = np.random.default_rng(0)
    lat, lon = _disk(rng, 28.6, 77.2, 80.0, 50_000)
    res = cluster_cell(lat, lon, np.ones(len(lat)), np.zeros(len(lat), dtype=int), 50.0, 10)
    assert res.is_core.all()
    assert set(res.local.tolist()) == {0}


@pytest.mark.parametrize(
    ("seed", "eps_m", "min_samples", "cell_m"),
    [(1, 50.0, 5, 200.0), (2, 100.0, 12, 400.0), (3, 40.0, 1, 400.0), (4, 60.0, 30, 250.0)],
)
def test_distributed_dbscan_equals_sklearn(spark, seed, eps_m, min_samples, cell_m):
    lat, lon = border_scene(seed, eps_m, cell_m)
    points = spark.createDataFrame(pd.DataFrame({"point_id": np.arange(len(lat), dtype="int64"), "lat": lat, "lon": lon}))
    got = distributed_dbscan(points, eps_m=eps_m, min_samples=min_samples, cell_m=cell_m).toPandas()
    got = got.sort_values("point_id").reset_index(drop=True)
    assert len(got) == len(lat) and got.point_id.is_unique

    expected = haversine_dbscan(lat, lon, eps_m, min_samples)  # single node, points in point_id order
    labels = dense_labels(got.cluster_id.to_numpy())
    ari = adjusted_rand_score(expected, labels)
    print(f"\nseed={seed} eps={eps_m} m min_samples={min_samples} cell={cell_m} m: {len(lat)} points, "
          f"{expected.max() + 1} clusters, {int((expected == -1).sum())} noise, ARI={ari}")  # fmt: skip
    assert ari == 1.0
    assert np.array_equal(expected == -1, labels == -1)
    assert np.array_equal(expected, labels)  # border points too, with scikit-learn's numbering


def test_distributed_dbscan_weighted_equals_sklearn(spark):
    lat, lon = border_scene(5, 50.0, 200.0)
    weight = np.random.default_rng(5).integers(1, 5, len(lat)).astype(float)
    pdf = pd.DataFrame({"point_id": np.arange(len(lat), dtype="int64"), "lat": lat, "lon": lon, "w": weight})
    got = distributed_dbscan(spark.createDataFrame(pdf), 50.0, 9, 200.0, weight_col="w").toPandas().sort_values("point_id")
    expected = haversine_dbscan(lat, lon, 50.0, 9, sample_weight=weight)
    assert np.array_equal(dense_labels(got.cluster_id.to_numpy()), expected)


def test_distributed_dbscan_tiny_example(spark):
    """Three visits within 10 m (one cluster, id = its smallest point_id) and a lone one (noise)."""
    lat0, lon0 = 28.6, 77.2
    pts = [(10, *_offset(lat0, lon0, 0, 0)), (11, *_offset(lat0, lon0, 8, 0)), (12, *_offset(lat0, lon0, 0, 8)), (13, *_offset(lat0, lon0, 500, 0))]
    points = spark.createDataFrame([(i, float(a), float(b)) for i, a, b in pts], "point_id long, lat double, lon double")
    got = distributed_dbscan(points, eps_m=20.0, min_samples=3, cell_m=100.0)
    expected = spark.createDataFrame([(10, 10, True), (11, 10, True), (12, 10, True), (13, -1, False)], "point_id long, cluster_id long, is_core boolean")
    assert_df_equality(got, expected, ignore_row_order=True, ignore_nullable=True)


def test_cell_size_must_cover_the_halo(spark):
    points = spark.createDataFrame([(1, 28.6, 77.2)], "point_id long, lat double, lon double")
    with pytest.raises(ValueError, match="4 x eps"):
        distributed_dbscan(points, eps_m=100.0, min_samples=2, cell_m=300.0)

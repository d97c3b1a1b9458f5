"""Coarsening of personal locations before they leave the restricted store (docs/PRIVACY.md).

Residences (restricted.residences) are personal data. Anything derived from them that is shown
outside the restricted store -- the HTML report, logs, printed summaries -- goes through
`coarsen_location` (Spark) or `coarsen_point` (one value, e.g. a log line) unless exact output is
explicitly enabled (`report.show_exact_residences`).

The grid: rows `cell_m` high; in each row, columns `cell_m` wide at the row's central latitude.
A point becomes the centre of its cell, so every home in one cell shows at the same place.
"""

from __future__ import annotations

import math

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from common.spatial.dbscan import grid_cell
from common.spatial.geo import EARTH_RADIUS_M

_DEG_PER_M = 180.0 / (math.pi * EARTH_RADIUS_M)


def _cell_centre(lat: Column, lon: Column, cell_m: float) -> tuple[Column, Column]:
    """Centre of the common.spatial.dbscan.grid_cell cell holding (lat, lon): one grid for the project."""
    row, col = grid_cell(lat, lon, cell_m)
    dlat = cell_m * _DEG_PER_M
    centre_lat = (row + F.lit(0.5)) * F.lit(dlat)
    dlon = F.lit(dlat) / F.greatest(F.cos(F.radians(centre_lat)), F.lit(1e-6))
    return centre_lat, (col + F.lit(0.5)) * dlon


def coarsen_location(df: DataFrame, cell_m: float, lat_col: str = "lat", lon_col: str = "lon") -> DataFrame:
    """Replace `lat_col`/`lon_col` (degrees) by the centre of their `cell_m` grid cell (m).

    Other columns pass through; nulls stay null. A 1 km cell puts a home somewhere in ~1 km2,
    shared with the neighbourhood, instead of on its doorstep.

    Parameters
    ----------
    df : DataFrame
        Any rows with `lat_col` and `lon_col` (degrees WGS84).
    cell_m : float
        Side of a grid cell, m (> 0).
    lat_col, lon_col : str
        Names of the position columns.

    Returns
    -------
    DataFrame
        `df`, same rows and columns, with the positions replaced by their cell centres (degrees).

    Raises
    ------
    ValueError
        If cell_m is not positive.
    """
    if cell_m <= 0:
        raise ValueError("cell_m must be positive")
    lat, lon = _cell_centre(F.col(lat_col), F.col(lon_col), cell_m)
    return df.withColumn("_coarse_lon", lon).withColumn(lat_col, lat).withColumn(lon_col, F.col("_coarse_lon")).drop("_coarse_lon")


def coarsen_point(lat: float | None, lon: float | None, cell_m: float) -> tuple[float | None, float | None]:
    """The same grid for one point (logs, printed tables).

    Parameters
    ----------
    lat, lon : float or None
        Position, degrees WGS84.
    cell_m : float
        Side of a grid cell, m.

    Returns
    -------
    tuple of float or None
        (lat, lon) of the cell centre, degrees; (None, None) when lat or lon is None.
    """
    if lat is None or lon is None:
        return None, None
    dlat = cell_m * _DEG_PER_M
    centre_lat = (math.floor(lat / dlat) + 0.5) * dlat
    dlon = dlat / max(math.cos(math.radians(centre_lat)), 1e-6)
    return centre_lat, (math.floor(lon / dlon) + 0.5) * dlon


def withhold_where(df: DataFrame, condition: Column, lat_col: str = "lat", lon_col: str = "lon") -> DataFrame:
    """Null `lat_col`/`lon_col` on the rows where `condition` holds.

    For vehicle-level rows outside the restricted store: a coarsened home still lands within a few
    hundred metres of the door (a 1 km cell's centre is ~380 m away on average), so private places
    leave no position at all.

    Parameters
    ----------
    df : DataFrame
        Any rows with `lat_col` and `lon_col`.
    condition : Column
        Boolean; null counts as false.
    lat_col, lon_col : str
        Names of the position columns.

    Returns
    -------
    DataFrame
        `df`, same rows and columns, positions null where `condition` holds.
    """
    hit = F.coalesce(condition, F.lit(False))
    return df.withColumn(lat_col, F.when(~hit, F.col(lat_col))).withColumn(lon_col, F.when(~hit, F.col(lon_col)))


def coarsen_where(df: DataFrame, condition: Column, cell_m: float, lat_col: str = "lat", lon_col: str = "lon") -> DataFrame:
    """`coarsen_location` on the rows where `condition` holds (e.g. charging sites of kind home).

    Parameters
    ----------
    df : DataFrame
        Any rows with `lat_col` and `lon_col` (degrees WGS84).
    condition : Column
        Boolean; null counts as false.
    cell_m : float
        Side of a grid cell, m.
    lat_col, lon_col : str
        Names of the position columns.

    Returns
    -------
    DataFrame
        `df`, same rows and columns, positions replaced by their cell centres (degrees) where
        `condition` holds.
    """
    lat, lon = _cell_centre(F.col(lat_col), F.col(lon_col), cell_m)
    hit = F.coalesce(condition, F.lit(False))
    return (
        df.withColumn("_coarse_lon", F.when(hit, lon).otherwise(F.col(lon_col)))
        .withColumn(lat_col, F.when(hit, lat).otherwise(F.col(lat_col)))
        .withColumn(lon_col, F.col("_coarse_lon"))
        .drop("_coarse_lon")
    )


# Mean H3 hexagon area per resolution 0-15, m^2 (h3geo.org, "Tables of cell statistics across
# resolutions"); the h3 bindings are not a dependency, and Sedona's H3 functions give cells, not areas.
H3_MEAN_AREA_M2 = (
    4.357449416078e12,
    6.09788441794e11,
    8.6801780399e10,
    1.2393434655e10,
    1.770347654e9,
    2.52903858e8,
    3.6129062e7,
    5.161293e6,
    7.37328e5,
    1.05333e5,
    1.5048e4,
    2.150e3,
    307.1,
    43.9,
    6.3,
    0.9,
)


# Cells of one H3 resolution differ in area by up to about 2x (h3geo.org): the mean must be this
# many times the square for the smallest cells to be no smaller than it.
H3_AREA_SPREAD = 2.0


def h3_resolution_for(cell_m: float) -> int:
    """The finest H3 resolution whose hexagons are no smaller than a `cell_m` square.

    A hexagon density layer of personal positions then coarsens at least as much as
    `coarsen_location` with the same cell size.

    Parameters
    ----------
    cell_m : float
        Side of the coarsening cell, m (> 0).

    Returns
    -------
    int
        H3 resolution, 0-15.

    Raises
    ------
    ValueError
        If cell_m is not positive.
    """
    if cell_m <= 0:
        raise ValueError("cell_m must be positive")
    fits = [res for res, area in enumerate(H3_MEAN_AREA_M2) if area >= H3_AREA_SPREAD * cell_m * cell_m]
    return max(fits) if fits else 0

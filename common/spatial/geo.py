"""Shared geodesy: the one distance implementation of the pipeline.

Every stage that needs the distance between two WGS84 points (cleaning, trips, stops, charging)
uses `haversine_m` (Spark Column expression), so thresholds in metres mean the same thing
everywhere; code running inside pandas UDFs, the generator and the benchmark baseline use its
numpy twin `haversine_np` (same formula and radius; a test checks they agree).
"""

from __future__ import annotations

import numpy as np
from pyspark.sql import Column
from pyspark.sql import functions as F

# IUGG mean Earth radius; the same value the DBSCAN eps conversion uses (metres / 6_371_008.8).
EARTH_RADIUS_M = 6_371_008.8


def haversine_np(lat1, lon1, lat2, lon2):
    """`haversine_m` for numpy arrays / scalars.

    Parameters
    ----------
    lat1, lon1, lat2, lon2 : float or numpy.ndarray
        Positions, degrees WGS84 (broadcast against each other).

    Returns
    -------
    float or numpy.ndarray
        Great-circle distance, m; NaN where an input is NaN.
    """
    p1, p2 = np.radians(lat1), np.radians(lat2)
    a = np.sin((p2 - p1) / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(np.radians(np.asarray(lon2) - np.asarray(lon1)) / 2) ** 2
    return 2 * EARTH_RADIUS_M * np.arcsin(np.sqrt(np.clip(a, 0, 1)))


def _col(c: Column | str) -> Column:
    return F.col(c) if isinstance(c, str) else c


def haversine_m(lat1: Column | str, lon1: Column | str, lat2: Column | str, lon2: Column | str) -> Column:
    """Great-circle distance in metres between (lat1, lon1) and (lat2, lon2), all in degrees WGS84.

    Null when any input is null. Spherical Earth (error < 0.5 % against the ellipsoid), which is
    far below GPS noise at the distances cleaning and trip detection care about.

    Why not Sedona's ST_DistanceSphere: it gives the same numbers (a test checks that) but needs two
    point geometries built per row; on the window-function hot path of cleaning (10 M rows, several
    distances per row) plain arithmetic on doubles avoids that allocation and stays vectorisable.

    Parameters
    ----------
    lat1, lon1, lat2, lon2 : Column or str
        Positions, degrees WGS84 (columns or column names).

    Returns
    -------
    Column
        Distance, m (double).
    """
    phi1 = F.radians(_col(lat1))
    phi2 = F.radians(_col(lat2))
    dphi = phi2 - phi1
    dlmb = F.radians(_col(lon2)) - F.radians(_col(lon1))
    a = F.pow(F.sin(dphi / 2), 2) + F.cos(phi1) * F.cos(phi2) * F.pow(F.sin(dlmb / 2), 2)
    # least(1, a) guards asin against a rounding a hair above 1 for antipodal points.
    return F.lit(2 * EARTH_RADIUS_M) * F.asin(F.sqrt(F.least(F.lit(1.0), a)))

"""Personal data in tables (slow): no Delta table outside storage.restricted_root lets a home be
re-derived, so an analyst with the lakehouse prefixes only cannot find where drivers live.

The attack tried: every table under storage.root (the restricted root excluded) with a vehicle
column and a latitude/longitude pair is read whole; per vehicle, its positions (at any hour, a
superset of its night positions) are clustered with scikit-learn's DBSCAN (haversine, eps
CLUSTER_EPS_M, at least 2 rows); no cluster centre may lie within HOME_RADIUS_M of that vehicle's
true home (truth.homes). The same attack on the restricted silver.telematics_clean finds (nearly)
every home, so it would catch a trace left in the open. docs/PRIVACY.md lists where each table
lives.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pyspark.sql import functions as F
from sklearn.cluster import DBSCAN

from common.core.config import POSITION_TRACES
from common.io import tables
from common.spatial.geo import EARTH_RADIUS_M, haversine_np

pytestmark = pytest.mark.slow

HOME_RADIUS_M = 300.0
CLUSTER_EPS_M = 100.0
VEHICLE_COLUMNS = ("vehicle_id", "home_vehicle_id")


def delta_tables(root: Path, exclude: Path) -> list[Path]:
    return sorted(p.parent for p in root.rglob("_delta_log") if not p.parent.is_relative_to(exclude))


def position_pairs(columns: list[str]) -> list[tuple[str, str]]:
    """(lat, lon) column pairs: lat/lon, start_lat/start_lon, home_lat/home_lon, ..."""
    return [(c, c[:-3] + "lon") for c in columns if c.endswith("lat") and c[:-3] + "lon" in columns]


def homes_found(pdf: pd.DataFrame, vehicle_col: str, pairs, homes: pd.DataFrame) -> set[str]:
    """Vehicles with a DBSCAN cluster of their positions within HOME_RADIUS_M of their true home."""
    pts = pd.concat([pdf[[vehicle_col, a, b]].set_axis(["vehicle_id", "lat", "lon"], axis=1) for a, b in pairs]).dropna()
    pts = pts.merge(homes, on="vehicle_id")
    found = set()
    for vehicle, g in pts.groupby("vehicle_id"):
        labels = DBSCAN(eps=CLUSTER_EPS_M / EARTH_RADIUS_M, min_samples=2, metric="haversine").fit_predict(np.radians(g[["lat", "lon"]].to_numpy()))
        centres = g.assign(label=labels)[labels >= 0].groupby("label")[["lat", "lon"]].mean()
        home = g.iloc[0]
        dist = haversine_np(centres.lat.to_numpy(), centres.lon.to_numpy(), home.home_lat, home.home_lon)
        if (dist < HOME_RADIUS_M).any():
            found.add(vehicle)
    return found


def test_no_home_can_be_rederived_outside_the_restricted_root(spark, fleet_gold):
    cfg = fleet_gold
    root = Path(cfg.storage.resolve(cfg.storage.root))
    restricted = Path(cfg.storage.resolve(cfg.storage.restricted))
    homes = tables.read(spark, cfg, "truth.homes").select("vehicle_id", "home_lat", "home_lon").toPandas()

    # the position traces are stored where the docs say, and they exist in this lakehouse
    for name in POSITION_TRACES:
        assert Path(cfg.storage.path(name)).is_relative_to(restricted), name
        assert tables.exists(spark, cfg, name), name

    checked, leaks = [], {}
    for path in delta_tables(root, exclude=restricted):
        if path.relative_to(root).parts[0] == "truth":  # the generator's answer key, not the product's output
            continue
        df = spark.read.format("delta").load(str(path))
        vehicle_col = next((c for c in VEHICLE_COLUMNS if c in df.columns), None)
        pairs = position_pairs(df.columns)
        if vehicle_col is None or not pairs:
            continue
        pdf = df.select(vehicle_col, *[c for p in pairs for c in p]).toPandas()
        checked.append(f"{path.relative_to(root)} ({len(pdf)} rows)")
        found = homes_found(pdf, vehicle_col, pairs, homes)
        if found:
            leaks[str(path.relative_to(root))] = sorted(found)
    print("\nvehicle-level positions checked:", checked)
    assert any("charging_events" in c for c in checked), checked  # the detector saw vehicle positions
    assert not leaks, f"homes re-derived outside the restricted root: {leaks}"

    # Control: the restricted trace places (nearly) every vehicle at home, so the detector works.
    # (positions to ~10 m, de-duplicated: the same places, a fraction of the rows for DBSCAN)
    trace = tables.read(spark, cfg, "silver.telematics_clean").select("vehicle_id", F.round("lat", 4).alias("lat"), F.round("lon", 4).alias("lon")).dropDuplicates().toPandas()
    at_home = homes_found(trace, "vehicle_id", [("lat", "lon")], homes)
    assert len(at_home) >= 0.9 * len(homes), (len(at_home), len(homes))

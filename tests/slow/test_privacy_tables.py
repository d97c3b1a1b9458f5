"""Personal data in tables (slow): no Delta table outside storage.restricted_root places a vehicle at
its home, so an analyst with the lakehouse prefixes only cannot re-derive where drivers live.

The attack checked: every table under storage.root (the restricted root excluded) with a vehicle
column and a latitude/longitude pair is read whole; a row "places a vehicle at home" when the
position is within HOME_RADIUS_M of that vehicle's true home (truth.homes) and is not a
coarsened cell centre (common.privacy, `report.residence_cell_m`). The same detector run on the
restricted silver.telematics_clean finds (nearly) every home, so it would catch a trace left in
the open. docs/PRIVACY.md lists where each table lives.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from common import tables
from common.config import POSITION_TRACES
from common.geo import haversine_np
from common.privacy import coarsen_point

pytestmark = pytest.mark.slow

HOME_RADIUS_M = 150.0
VEHICLE_COLUMNS = ("vehicle_id", "home_vehicle_id")


def delta_tables(root: Path, exclude: Path) -> list[Path]:
    return sorted(p.parent for p in root.rglob("_delta_log") if not p.parent.is_relative_to(exclude))


def position_pairs(columns: list[str]) -> list[tuple[str, str]]:
    """(lat, lon) column pairs: lat/lon, start_lat/start_lon, home_lat/home_lon, ..."""
    return [(c, c[:-3] + "lon") for c in columns if c.endswith("lat") and c[:-3] + "lon" in columns]


def rows_at_home(pdf: pd.DataFrame, vehicle_col: str, pairs, homes: pd.DataFrame, cell_m: float) -> pd.DataFrame:
    found = []
    for lat, lon in pairs:
        pts = pdf[[vehicle_col, lat, lon]].dropna().rename(columns={vehicle_col: "vehicle_id", lat: "lat", lon: "lon"})
        pts = pts.merge(homes, on="vehicle_id")
        if pts.empty:
            continue
        centre = np.array([coarsen_point(a, b, cell_m) for a, b in zip(pts.lat, pts.lon)], dtype=float)
        on_grid = np.isclose(centre[:, 0], pts.lat, atol=1e-9) & np.isclose(centre[:, 1], pts.lon, atol=1e-9)
        dist = haversine_np(pts.lat.to_numpy(), pts.lon.to_numpy(), pts.home_lat.to_numpy(), pts.home_lon.to_numpy())
        found.append(pts.assign(column=lat, dist_m=dist)[(dist < HOME_RADIUS_M) & ~on_grid])
    return pd.concat(found) if found else pd.DataFrame(columns=["vehicle_id", "dist_m"])


def test_no_table_outside_the_restricted_root_places_a_vehicle_at_its_home(spark, fleet_gold):
    cfg = fleet_gold
    root = Path(cfg.storage.resolve(cfg.storage.root))
    restricted = Path(cfg.storage.resolve(cfg.storage.restricted_root))
    cell_m = cfg.report.residence_cell_m
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
        hits = rows_at_home(pdf, vehicle_col, pairs, homes, cell_m)
        if len(hits):
            leaks[str(path.relative_to(root))] = hits.vehicle_id.nunique()
    print("\nvehicle-level positions checked:", checked)
    assert any("charging_events" in c for c in checked), checked  # the detector saw vehicle positions
    assert not leaks, f"vehicles placed at their home outside the restricted root: {leaks}"

    # Control: the restricted trace places (nearly) every vehicle at home, so the detector works.
    trace = tables.read(spark, cfg, "silver.telematics_clean").select("vehicle_id", "lat", "lon").toPandas()
    at_home = rows_at_home(trace, "vehicle_id", [("lat", "lon")], homes, cell_m).vehicle_id.nunique()
    assert at_home >= 0.9 * len(homes), (at_home, len(homes))

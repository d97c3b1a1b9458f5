"""Residences: night window in local time (DST-aware), grid + weighted DBSCAN, evidence by nights."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from chispa import assert_df_equality
from pyspark.sql import functions as F

from common.core.config import CleanConfig, ResidenceConfig
from common.mobility.residence import find_residences, home_of_vehicle, night_points
from common.silver.cleaning import add_local_time
from common.spatial.geo import EARTH_RADIUS_M

M_PER_DEG = np.pi * EARTH_RADIUS_M / 180
HOME_A = (28.6100, 77.2000)
FRIEND_A = (28.6500, 77.2500)
DEPOT_A = (28.5800, 77.1500)
HOME_B = (40.7300, -73.9900)
BAR_B = (40.7600, -73.9800)
HOME_C = (28.5000, 77.1000)


def _rows(vehicle, tz, place, day, hours, rng, speed=0.0):
    """Parked samples (jitter < 5 m) at local `day` + each hour offset, as bronze-like rows (ts UTC)."""
    zone = ZoneInfo(tz)
    out = []
    for h in hours:
        local = datetime.combine(day, datetime.min.time()) + timedelta(hours=h)
        utc = local.replace(tzinfo=zone).astimezone(ZoneInfo("UTC")).replace(tzinfo=None)
        dn, de = rng.uniform(-4, 4, 2)
        lat = place[0] + dn / M_PER_DEG
        lon = place[1] + de / (M_PER_DEG * np.cos(np.radians(place[0])))
        out.append((vehicle, utc, float(lat), float(lon), float(speed), True, tz))
    return out


def _silver(spark, rows):
    df = spark.createDataFrame(rows, "vehicle_id string, ts timestamp, lat double, lon double, speed_kmh double, is_usable boolean, timezone string")
    return df.transform(add_local_time, CleanConfig())  # the cleaning job's DST-aware local time (zones given per row)


NIGHT = [h / 2 for h in range(0, 10)]  # 00:00 .. 04:30 local, every 30 min


@pytest.fixture(scope="module")
def fleet(spark):
    rng = np.random.default_rng(1)
    rows = []
    d0 = date(2024, 3, 4)
    # A: four nights at home, one at a friend's, busy days at a depot (outside the window)
    for i in range(4):
        rows += _rows("A", "Asia/Kolkata", HOME_A, d0 + timedelta(days=i), NIGHT, rng)
        rows += _rows("A", "Asia/Kolkata", DEPOT_A, d0 + timedelta(days=i), [8 + k / 12 for k in range(120)], rng)
    rows += _rows("A", "Asia/Kolkata", FRIEND_A, d0 + timedelta(days=4), NIGHT, rng)
    rows += _rows("A", "Asia/Kolkata", DEPOT_A, d0 + timedelta(days=4), [5.5], rng)  # 05:30: not night
    rows += _rows("A", "Asia/Kolkata", HOME_A, d0 + timedelta(days=4), [2.0], rng, speed=30.0)  # driving: not parked
    # B: New York across the DST change of 2024-03-10; evenings at a bar fall in 00-05 *UTC*
    for day in [date(2024, 3, 9), date(2024, 3, 10), date(2024, 3, 11)]:
        rows += _rows("B", "America/New_York", HOME_B, day, NIGHT, rng)
        rows += _rows("B", "America/New_York", BAR_B, day - timedelta(days=1), [20 + k / 4 for k in range(12)], rng)
    # C: only two nights
    for i in range(2):
        rows += _rows("C", "Asia/Kolkata", HOME_C, d0 + timedelta(days=i), NIGHT, rng)
    return _silver(spark, rows)


def test_night_points_use_local_time(spark, fleet):
    pts = night_points(fleet, ResidenceConfig()).groupBy("vehicle_id").agg(F.count("*").alias("n")).collect()
    counts = {r["vehicle_id"]: r["n"] for r in pts}
    # A: 5 nights x 10 parked samples (05:30 and the moving sample excluded); B: 3 x 10, bar evenings excluded
    assert counts == {"A": 50, "B": 30, "C": 20}


def test_find_residences(spark, fleet):
    got = find_residences(fleet, ResidenceConfig(min_nights=3))
    expected = spark.createDataFrame(
        [("A", "home", 4, 5, 0.8), ("B", "home", 3, 3, 1.0), ("C", "insufficient_nights", 2, 2, None)],
        "vehicle_id string, status string, home_nights int, nights_observed long, confidence double",
    )
    assert_df_equality(got.select(*expected.columns), expected, ignore_row_order=True, ignore_nullable=True, ignore_column_order=True)
    homes = {r["vehicle_id"]: r for r in got.collect()}
    for vid, truth in (("A", HOME_A), ("B", HOME_B)):
        r = homes[vid]
        err = np.hypot((r["home_lat"] - truth[0]) * M_PER_DEG, (r["home_lon"] - truth[1]) * M_PER_DEG * np.cos(np.radians(truth[0])))
        assert err < 10, (vid, err)
    assert homes["C"]["home_lat"] is None and homes["C"]["home_lon"] is None
    assert homes["A"]["night_places"] == 1 and not homes["A"]["residence_changed"]


def test_home_is_chosen_by_nights_not_points():
    """A garage visited on one night with a chatty device (many points) loses to home on 3 nights."""
    import pandas as pd

    cells = pd.DataFrame(
        {
            "lat": [28.6, 28.60001, 28.7],
            "lon": [77.2, 77.20001, 77.3],
            "weight": [10, 10, 500],
            "dwell_s": [9000.0, 9000.0, 18000.0],
            "nights": [[date(2024, 3, 1), date(2024, 3, 2)], [date(2024, 3, 3)], [date(2024, 3, 4)]],
            "first_ts": pd.to_datetime(["2024-03-01"] * 3),
            "last_ts": pd.to_datetime(["2024-03-04"] * 3),
        }
    )
    home = home_of_vehicle(cells, eps_m=50.0, min_samples=6, min_nights=2)
    assert home["home_nights"] == 3 and home["home_lat"] == pytest.approx(28.600005)
    assert home["second_place_nights"] == 1 and not home["residence_changed"]


def test_a_move_is_detected():
    import pandas as pd

    old = [date(2024, 3, d) for d in range(1, 6)]
    new = [date(2024, 3, d) for d in range(6, 10)]
    cells = pd.DataFrame(
        {
            "lat": [28.6, 28.7],
            "lon": [77.2, 77.3],
            "weight": [50, 40],
            "dwell_s": [50000.0, 40000.0],
            "nights": [old, new],
            "first_ts": pd.to_datetime(["2024-03-01", "2024-03-06"]),
            "last_ts": pd.to_datetime(["2024-03-05", "2024-03-09"]),
        }
    )
    home = home_of_vehicle(cells, eps_m=50.0, min_samples=6, min_nights=3)
    assert home["home_nights"] == 5 and home["night_places"] == 2 and home["residence_changed"]

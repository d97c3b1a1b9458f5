"""Charging events (two passes), per-vehicle locations and fleet sites with their classification."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pytest
from chispa import assert_approx_df_equality, assert_df_equality
from pyspark.sql import functions as F

from common.core.config import ChargingConfig
from common.mobility.charging import charging_sites, detect_charging_events
from common.spatial.geo import EARTH_RADIUS_M

M_PER_DEG = np.pi * EARTH_RADIUS_M / 180
T0 = datetime(2024, 3, 4, 0, 0)  # UTC; vehicles in UTC so local = UTC in expectations
P1 = (28.60, 77.20)
P2 = (28.62, 77.22)


def _east(place, metres):
    return float(place[0]), float(place[1] + metres / (M_PER_DEG * np.cos(np.radians(place[0]))))


def _series(vehicle, samples):
    """samples: (minute, (lat, lon), speed, soc) -> silver-like rows (UTC, local = UTC)."""
    rows = []
    for minute, (lat, lon), speed, soc in samples:
        ts = T0 + timedelta(minutes=minute)
        rows.append((vehicle, ts, ts, ts.date(), "UTC", float(lat), float(lon), float(speed), float(soc), True))
    return rows


def _e1():
    s = [(m, P1, 0, 40) for m in range(0, 61, 5)]  # parked, flat
    s += [(60 + 5 * k, P1, 0, 40 + k) for k in range(1, 25)]  # 01:05-03:00 charging 41..64
    s += [(180 + 5 * k, P1, 0, 64) for k in range(1, 13)]  # flat until 04:00
    # driving 04:05-04:30 east, with a regenerative +1 while moving (ignored)
    for k, soc in enumerate([63, 62, 63, 61, 60, 60], start=1):
        s.append((240 + 5 * k, _east(P1, 600 * k), 30 if k < 6 else 0, soc))
    s[-1] = (270, P2, 0, 60)  # arrival at P2 (speed 0)
    s += [(270 + 5 * k, P2, 0, 60 + min(k, 3)) for k in range(1, 18)]  # +3 only (below 5): 04:35-05:55
    s += [(355 + 5 * k, P2, 0, 63) for k in range(1, 20)]  # flat 95 min: longer than max_pause (60)
    s += [(450 + 5 * k, P2, 0, 63 + k) for k in range(1, 8)]  # 07:35-08:05: 64..70
    return _series("E1", s)


def _e2():
    s = [(m, P2, 0, 50) for m in range(0, 30, 5)]
    s += [(30 + 10 * k, P2, 0, 50 + k) for k in range(1, 5)]  # +4: only in the second pass
    s += [(100 + 5 * k, _east(P2, 900 * k), 25, 54 - k) for k in range(1, 4)]
    s += [(120 + 10 * k, _east(P2, 2700), 0, 51 + min(k, 2)) for k in range(1, 5)]  # +2: not > 2
    return _series("E2", s)


def _clean(spark):
    schema = "vehicle_id string, ts timestamp, ts_local timestamp, local_date date, timezone string, lat double, lon double, speed_kmh double, soc_pct double, is_usable boolean"
    return spark.createDataFrame(_e1() + _e2(), schema)


def test_detect_charging_events_two_passes(spark):
    vehicles = spark.createDataFrame([("E1", 30.0), ("E2", 7.4)], "vehicle_id string, battery_kwh double")
    got = detect_charging_events(_clean(spark), vehicles, ChargingConfig())
    cols = ["vehicle_id", "confidence", "start_ts", "end_ts", "soc_start_pct", "soc_end_pct", "delta_soc_pct", "kwh", "duration_min"]
    at = lambda minute: T0 + timedelta(minutes=minute)  # noqa: E731
    expected = spark.createDataFrame(
        [
            ("E1", "high", at(60), at(180), 40.0, 64.0, 24.0, 7.2, 120.0),
            ("E1", "high", at(450), at(485), 63.0, 70.0, 7.0, 2.1, 35.0),
            ("E2", "low", at(25), at(70), 50.0, 54.0, 4.0, 0.296, 45.0),
        ],
        "vehicle_id string, confidence string, start_ts timestamp, end_ts timestamp, soc_start_pct double, soc_end_pct double, delta_soc_pct double, kwh double, duration_min double",
    )
    assert_approx_df_equality(got.select(*cols), expected, 1e-9, ignore_row_order=True, ignore_nullable=True)
    e1 = got.where("vehicle_id = 'E1'").orderBy("start_ts").collect()
    assert e1[0]["event_id"] == "E1-C20240304T010000"
    assert abs(e1[0]["lat"] - P1[0]) < 1e-9 and e1[0]["local_date"].isoformat() == "2024-03-04"


def test_events_without_vehicle_battery(spark):
    got = detect_charging_events(_clean(spark), None, ChargingConfig(default_battery_kwh=10.0))
    kwh = {r["delta_soc_pct"]: r["kwh"] for r in got.collect()}
    assert kwh == pytest.approx({24.0: 2.4, 7.0: 0.7, 4.0: 0.4})


def test_charging_sites_classification(spark):
    home_v1 = (28.6100, 77.2000)
    public = (28.6300, 77.2300)
    depot = (28.6500, 77.1500)
    far = (28.7000, 77.3000)
    t = datetime(2024, 3, 4)
    locations = spark.createDataFrame(
        [
            ("V1", "V1-L0", *_east(home_v1, 8), 5, 40.0, t, t),
            ("V1", "V1-L1", *_east(public, 20), 2, 30.0, t, t),
            ("V2", "V2-L0", *_east(public, -25), 3, 35.0, t, t),  # same charger as V1-L1: one site
            ("V2", "V2-L1", *_east(depot, 10), 4, 50.0, t, t),
            ("V3", "V3-L0", *far, 1, 5.0, t, t),
        ],
        "vehicle_id string, location_id string, lat double, lon double, n_events long, kwh_total double, first_start_ts timestamp, last_end_ts timestamp",
    )
    residences = spark.createDataFrame([("V1", *home_v1), ("V2", 28.5, 77.0), ("V3", None, None)], "vehicle_id string, home_lat double, home_lon double")
    stations = spark.createDataFrame(
        [("ST1", "EV Station 1", *public, "public"), ("ST2", "Depot 2", *depot, "private"), ("ST3", "Far", 28.9, 77.9, "public")],
        "station_id string, name string, lat double, lon double, access string",
    )
    sites, located = charging_sites(locations, residences, stations, ChargingConfig())
    got = sites.select("kind", "station_id", "home_vehicle_id", "n_vehicles", "n_locations", "n_events")
    expected = spark.createDataFrame(
        [("home", None, "V1", 1, 1, 5), ("public", "ST1", None, 2, 2, 5), ("depot", "ST2", None, 1, 1, 4), ("unknown", None, None, 1, 1, 1)],
        "kind string, station_id string, home_vehicle_id string, n_vehicles long, n_locations long, n_events long",
    )
    assert_df_equality(got, expected, ignore_row_order=True, ignore_nullable=True)
    # every location belongs to exactly one site; V1-L1 and V2-L0 share theirs
    site_of = {r["location_id"]: r["site_id"] for r in located.collect()}
    assert len(site_of) == 5 and site_of["V1-L1"] == site_of["V2-L0"]
    public_site = sites.where(F.col("kind") == "public").first()
    assert public_site["station_distance_m"] < 30

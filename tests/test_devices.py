"""Device reporting modes (silver.device_profiles) and the shared silence rule (common.silver.trips.add_legs).

Hand-built devices: positions along a meridian (km north of LAT0), UTC = local time. Expected
modes, heartbeats and leg kinds follow from the rows by hand.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from chispa import assert_df_equality
from pyspark.sql import functions as F

from common.core.config import ChargingConfig, DevicesConfig, TripsConfig
from common.mobility.charging import detect_charging_events
from common.silver.devices import device_profiles, heartbeats
from common.silver.trips import add_legs, detect_stops, parked_silence_limit_s
from common.spatial.geo import EARTH_RADIUS_M

DEG_PER_KM = math.degrees(1000.0 / EARTH_RADIUS_M)
LAT0, LON0 = -1.29, 36.82
T0 = datetime(2024, 3, 4, 6, 0)
TRIPS = TripsConfig()
SCHEMA = "vehicle_id string, ts timestamp, ts_local timestamp, local_date date, timezone string, lat double, lon double, speed_kmh double, soc_pct double, is_usable boolean"


def rows(vehicle: str, samples: list[tuple[float, float, float, float]]) -> list[tuple]:
    """(minutes after T0, km north, speed km/h, soc %) -> silver-shaped usable rows."""
    out = []
    for minute, km, speed, soc in samples:
        ts = T0 + timedelta(minutes=minute)
        out.append((vehicle, ts, ts, ts.date(), "UTC", LAT0 + km * DEG_PER_KM, LON0, float(speed), float(soc), True))
    return out


def drive(start_min: float, km0: float, minutes: int, step_s: float, soc: float) -> list[tuple]:
    """Driving north at 36 km/h (0.6 km/min), one sample every step_s seconds."""
    n = int(minutes * 60 / step_s)
    return [(start_min + k * step_s / 60, km0 + 0.6 * k * step_s / 60, 36.0, soc) for k in range(1, n + 1)]


def parked(start_min: float, km: float, minutes: float, every_min: float, soc: float) -> list[tuple]:
    n = int(minutes / every_min)
    return [(start_min + k * every_min, km, 0.0, soc) for k in range(1, n + 1)]


def continuous_device() -> list[tuple]:
    s = [(0, 0.0, 0.0, 80)] + parked(0, 0.0, 120, 5, 80)  # 2 h of 5-min heartbeats
    s += drive(120, 0.0, 20, 30, 78)  # 20 min at 30 s
    s += parked(140, 12.0, 180, 5, 78)
    return rows("CONT", s)


def ignition_device() -> list[tuple]:
    # key-off at 0, heartbeats every 2 h while parked, key-on, a 20-min drive, key-off, 2 h heartbeats
    s = [(0, 0.0, 0.0, 80), (120, 0.0, 0.0, 80), (240, 0.0, 0.0, 80), (300, 0.0, 0.0, 80)]
    s += drive(300, 0.0, 20, 30, 78)
    s += [(320 + 2, 12.0, 0.0, 78), (322 + 120, 12.0, 0.0, 78), (322 + 240, 12.0, 0.0, 78), (322 + 360, 12.0, 0.0, 78)]
    return rows("IGN", s)


def bursty_device() -> list[tuple]:
    s = [(0, 0.0, 0.0, 80)] + parked(0, 0.0, 60, 5, 80)
    # 10 s of 1 Hz, then 60 s, repeated: half of the moving intervals are 1 s
    t, km = 60.0, 0.0
    for _ in range(10):
        for _ in range(10):
            t, km = t + 1 / 60, km + 0.01
            s.append((t, km, 36.0, 79))
        for _ in range(10):
            t, km = t + 1.0, km + 0.6
            s.append((t, km, 36.0, 79))
    s += parked(t, km, 60, 5, 79)
    return rows("BURST", s)


def silent_device() -> list[tuple]:
    # a morning on day 0 and on day 9: no sample on 8 of the 10 days
    day = [(0, 0.0, 0.0, 70)] + parked(0, 0.0, 60, 5, 70)
    late = [(9 * 1440 + m, km, v, soc) for m, km, v, soc in day]
    return rows("SILENT", day + late)


def test_device_modes_and_heartbeats(spark):
    clean = spark.createDataFrame(continuous_device() + ignition_device() + bursty_device() + silent_device(), SCHEMA)
    vehicles = spark.createDataFrame([("CONT",), ("REGISTERED_ONLY",)], "vehicle_id string")
    got = device_profiles(clean, vehicles, TRIPS, DevicesConfig())
    want = spark.createDataFrame(
        [
            ("BURST", "bursty", 300.0, 1, 0.0),
            ("CONT", "continuous", 300.0, 1, 0.0),
            ("IGN", "ignition_only", 7200.0, 1, 0.0),
            ("REGISTERED_ONLY", "no_data", None, None, None),
            ("SILENT", "mostly_silent", 300.0, 10, 0.8),
        ],
        "vehicle_id string, device_mode string, heartbeat_interval_s double, span_days int, silent_day_share double",
    )
    assert_df_equality(got.select(*want.columns).orderBy("vehicle_id"), want, ignore_nullable=True)
    ign = got.where("vehicle_id = 'IGN'").first()
    assert ign["parked_silence_share"] == 1.0  # every parked second of IGN lies in a 2 h silence
    assert ign["mode_reason"].startswith("100 % of parked time in silences > 15 min")
    burst = got.where("vehicle_id = 'BURST'").first()
    # 100 one-second and 100 one-minute intervals; the first (from the parked sample) is not a moving one
    assert burst["burst_share"] == 99 / 199 and burst["median_interval_moving_s"] in (1.0, 60.0)


def _legs(spark, samples, beats=None):
    clean = spark.createDataFrame(samples, SCHEMA)
    return add_legs(clean, TRIPS, beats).orderBy("vehicle_id", "ts")


def test_silence_rule_parked_or_gap(spark):
    """Same place and SOC held within the device's limit: parked. Moved, SOC fell, or too long: a gap."""
    s = rows("A", [(0, 0.0, 0.0, 80), (180, 0.0, 0.0, 80)])  # 3 h at the same place, SOC held
    s += rows("B", [(0, 0.0, 0.0, 80), (300, 0.0, 0.0, 80)])  # 5 h: beyond B's limit (2 h floor)
    s += rows("C", [(0, 0.0, 0.0, 80), (60, 0.0, 0.0, 70)])  # SOC fell 10 points: it was driven
    s += rows("D", [(0, 0.0, 0.0, 80), (20, 3.0, 0.0, 79)])  # 3 km away: distance not invented
    s += rows("E", [(0, 0.0, 0.0, 30), (240, 0.0, 0.0, 90)])  # SOC rose across 4 h: parked (charged)
    s += rows("F", [(0, 0.0, 36.0, 80), (1, 0.6, 36.0, 80)])  # an ordinary moving leg
    beats = spark.createDataFrame([("A", 3600.0), ("E", 7200.0)], "vehicle_id string, heartbeat_interval_s double")
    got = _legs(spark, s, beats).where("leg_kind != 'first'").select("vehicle_id", "leg_kind", "is_gap", "leg_km")
    want = spark.createDataFrame(
        [("A", "parked", False, 0.0), ("B", "gap", True, 0.0), ("C", "gap", True, 0.0), ("D", "gap", True, 0.0),
         ("E", "parked", False, 0.0), ("F", "moving", False, 0.6)],
        "vehicle_id string, leg_kind string, is_gap boolean, leg_km double",
    )  # fmt: skip
    assert_df_equality(got.withColumn("leg_km", F.round("leg_km", 6)), want, ignore_nullable=True)


def test_parked_silence_limit_follows_the_heartbeat(spark):
    limits = spark.createDataFrame([(None,), (300.0,), (3600.0,), (14400.0,), (86400.0,)], "hb double").select(parked_silence_limit_s(TRIPS, F.col("hb")).alias("limit_s"))
    # max(3 x heartbeat, 2 h), at most 48 h
    assert [r.limit_s for r in limits.collect()] == [7200.0, 7200.0, 10800.0, 43200.0, 172800.0]


def test_ignition_only_device_stops_and_charges_across_its_sleep(spark):
    """An ignition-only device: one stop spans its 2-hourly heartbeats; a SOC rise across a silence is a charge."""
    s = [(0, 0.0, 0.0, 30), (120, 0.0, 0.0, 55), (240, 0.0, 0.0, 80), (360, 0.0, 0.0, 90)]  # charging asleep
    s += drive(360, 0.0, 10, 30, 89)
    s += [(372, 6.0, 0.0, 88), (372 + 25, 6.0, 0.0, 88)]  # a 25-min stop: key-off, key-on
    s += drive(397, 6.0, 5, 30, 87)
    clean = spark.createDataFrame(rows("IGN", s), SCHEMA)
    beats = spark.createDataFrame([("IGN", 7200.0)], "vehicle_id string, heartbeat_interval_s double")
    stops = detect_stops(clean, TRIPS, beats).orderBy("start_ts").select("dwell_minutes").collect()
    assert [round(r.dwell_minutes, 1) for r in stops] == [360.0, 25.0]
    events = detect_charging_events(clean, None, ChargingConfig(default_battery_kwh=10.0), TRIPS, beats).collect()
    assert [(e.soc_start_pct, e.soc_end_pct, e.kwh) for e in events] == [(30.0, 90.0, 6.0)]
    # without the profile, the 2 h heartbeats are within the 2 h floor too; a 3 h heartbeat is not
    sparse = spark.createDataFrame(rows("IGN", [(0, 0.0, 0.0, 30), (180, 0.0, 0.0, 60)]), SCHEMA)
    assert detect_charging_events(sparse, None, ChargingConfig(), TRIPS, None).count() == 0
    three_h = spark.createDataFrame([("IGN", 3 * 3600.0)], "vehicle_id string, heartbeat_interval_s double")
    assert detect_charging_events(sparse, None, ChargingConfig(), TRIPS, heartbeats(three_h.withColumn("x", F.lit(1)))).count() == 1

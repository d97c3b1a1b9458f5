"""Unit tests of common.silver.trips and common.mobility.kpis on hand-built samples (chispa).

Vehicles drive due north from (28.6, 77.2): along a meridian the haversine distance is exactly
R x dlat, so positions are given in km and expected distances are plain sums. Timestamps are
UTC strings; the test vehicles' timezone is UTC, so local time = UTC.
"""

from __future__ import annotations

import math
from datetime import date

from chispa import assert_approx_df_equality, assert_df_equality
from pyspark.sql import functions as F

from common.core.config import BillingConfig, KpisConfig, OdometerConfig, TripsConfig
from common.mobility.kpis import add_odometer_checks, payd_billing, vehicle_minutely
from common.silver.trips import detect_stops, trip_points, trips_from_points
from common.spatial.geo import EARTH_RADIUS_M

DEG_PER_KM = math.degrees(1000.0 / EARTH_RADIUS_M)
LAT0, LON0 = 28.6, 77.2
PARAMS = TripsConfig()  # moving > 2 km/h, stops >= 5 min, gaps > 10 min
BATTERY_KWH = 7.4

SAMPLE_SCHEMA = "vehicle_id string, ts string, km double, speed_kmh double, soc_pct double, odometer_km double"


def clean_df(spark, rows):
    """silver.telematics_clean-shaped usable rows from (vehicle, ts, km north, speed, soc, odometer)."""
    df = spark.createDataFrame(rows, SAMPLE_SCHEMA)
    ts = F.col("ts").cast("timestamp")
    return df.select(
        "vehicle_id",
        ts.alias("ts"),
        ts.alias("ts_local"),
        F.to_date(ts).alias("local_date"),
        F.lit("UTC").alias("timezone"),
        (F.lit(LAT0) + F.col("km") * DEG_PER_KM).alias("lat"),
        F.lit(LON0).alias("lon"),
        "speed_kmh",
        "soc_pct",
        "odometer_km",
        F.lit(215.0).alias("altitude_m"),
        F.lit(30.0).alias("ambient_temp_c"),
        F.lit(False).alias("soc_imputed"),
        F.lit(True).alias("is_usable"),
    )


def vehicles_df(spark):
    return spark.createDataFrame(
        [("V1", "Mahindra Treo", "three_wheeler", BATTERY_KWH, "D1", "UTC")],
        "vehicle_id string, model string, vehicle_type string, battery_kwh double, driver_id string, timezone string",
    )


def ts(s: str):
    return F.lit(s).cast("timestamp")


# A parked stop at 0 km, a 1.5 km trip (30 km/h), a stop, a 1.0 km trip with a traffic-light
# halt at 08:26, and a final stop. Leg distance = mean of end speeds x 60 s.
STOP_SPLIT = [
    ("V1", "2024-03-04 08:00:00", 0.0, 0.0, 80.0, 1000.0),
    ("V1", "2024-03-04 08:05:00", 0.0, 0.0, 80.0, 1000.0),
    ("V1", "2024-03-04 08:10:00", 0.0, 0.0, 80.0, 1000.0),  # departure (stop 1: 10 min)
    ("V1", "2024-03-04 08:11:00", 0.25, 30.0, 80.0, 1000.2),
    ("V1", "2024-03-04 08:12:00", 0.75, 30.0, 79.0, 1000.7),
    ("V1", "2024-03-04 08:13:00", 1.25, 30.0, 79.0, 1001.2),
    ("V1", "2024-03-04 08:14:00", 1.5, 0.0, 78.0, 1001.5),  # arrival (stop 2: 10 min)
    ("V1", "2024-03-04 08:19:00", 1.5, 0.0, 78.0, 1001.5),
    ("V1", "2024-03-04 08:24:00", 1.5, 0.0, 78.0, 1001.5),  # departure
    ("V1", "2024-03-04 08:25:00", 1.75, 30.0, 78.0, 1001.7),
    ("V1", "2024-03-04 08:26:00", 2.0, 0.0, 77.0, 1002.0),  # traffic light: 1 min, not a stop
    ("V1", "2024-03-04 08:27:00", 2.25, 30.0, 77.0, 1002.2),
    ("V1", "2024-03-04 08:28:00", 2.5, 0.0, 77.0, 1002.5),  # arrival (stop 3: 12 min)
    ("V1", "2024-03-04 08:33:00", 2.5, 0.0, 77.0, 1002.5),
    ("V1", "2024-03-04 08:40:00", 2.5, 0.0, 77.0, 1002.5),
]

TRIP_COLS = "trip_id string, start_ts timestamp, end_ts timestamp, distance_km double, distance_odometer_km double, duration_min double, moving_min double, n_stops long, started_by string, ended_by string, soc_start_pct double, soc_end_pct double, energy_kwh double"


def _trips(spark, rows):
    points = trip_points(clean_df(spark, rows), PARAMS)
    return trips_from_points(points, vehicles_df(spark), PARAMS)


def _expected_trips(spark, rows):
    df = spark.createDataFrame(rows, TRIP_COLS.replace("timestamp", "string"))
    return df.withColumn("start_ts", F.col("start_ts").cast("timestamp")).withColumn("end_ts", F.col("end_ts").cast("timestamp"))


def test_trip_is_split_at_a_stop(spark):
    actual = _trips(spark, STOP_SPLIT).select(*[c.split()[0] for c in TRIP_COLS.split(", ")]).orderBy("start_ts")
    expected = _expected_trips(
        spark,
        [
            # departure at the last parked sample, arrival at the first sample of the next stop
            ("V1-T20240304T081000", "2024-03-04 08:10:00", "2024-03-04 08:14:00", 1.5, 1.5, 4.0, 4.0, 0, "stop", "stop", 80.0, 78.0, 2 / 100 * BATTERY_KWH),
            # the 1-minute halt at 08:26 is one of the trip's stops, not a trip end
            ("V1-T20240304T082400", "2024-03-04 08:24:00", "2024-03-04 08:28:00", 1.0, 1.0, 4.0, 4.0, 1, "stop", "stop", 78.0, 77.0, 1 / 100 * BATTERY_KWH),
        ],
    )
    assert_approx_df_equality(actual, expected, precision=1e-6, ignore_nullable=True)


def test_detect_stops_returns_each_stop_with_place_and_dwell(spark):
    stops = detect_stops(clean_df(spark, STOP_SPLIT), PARAMS)
    actual = stops.select("stop_id", "start_ts", "end_ts", "dwell_minutes", "local_date", "n_samples", "lat").orderBy("start_ts")
    expected = (
        spark.createDataFrame(
            [
                ("V1-S20240304T080000", "2024-03-04 08:00:00", "2024-03-04 08:10:00", 10.0, date(2024, 3, 4), 3, LAT0),
                ("V1-S20240304T081400", "2024-03-04 08:14:00", "2024-03-04 08:24:00", 10.0, date(2024, 3, 4), 3, LAT0 + 1.5 * DEG_PER_KM),
                ("V1-S20240304T082800", "2024-03-04 08:28:00", "2024-03-04 08:40:00", 12.0, date(2024, 3, 4), 3, LAT0 + 2.5 * DEG_PER_KM),
            ],
            "stop_id string, start_ts string, end_ts string, dwell_minutes double, local_date date, n_samples long, lat double",
        )
        .withColumn("start_ts", F.col("start_ts").cast("timestamp"))
        .withColumn("end_ts", F.col("end_ts").cast("timestamp"))
    )
    assert_approx_df_equality(actual, expected, precision=1e-9, ignore_nullable=True)


def test_trip_is_split_at_a_data_gap(spark):
    rows = [
        ("V1", "2024-03-04 09:00:00", 0.0, 30.0, 60.0, 500.0),
        ("V1", "2024-03-04 09:01:00", 0.5, 30.0, 60.0, 500.5),
        ("V1", "2024-03-04 09:02:00", 1.0, 30.0, 59.0, 501.0),
        ("V1", "2024-03-04 09:03:00", 1.5, 30.0, 59.0, 501.5),
        # device silent for 20 min (> max_gap_minutes 10) while the vehicle kept driving
        ("V1", "2024-03-04 09:23:00", 5.0, 30.0, 56.0, 505.0),
        ("V1", "2024-03-04 09:24:00", 5.5, 30.0, 56.0, 505.5),
        ("V1", "2024-03-04 09:25:00", 6.0, 30.0, 55.0, 506.0),
        ("V1", "2024-03-04 09:26:00", 6.5, 30.0, 55.0, 506.5),
    ]
    actual = _trips(spark, rows).select(*[c.split()[0] for c in TRIP_COLS.split(", ")]).orderBy("start_ts")
    expected = _expected_trips(
        spark,
        [
            ("V1-T20240304T090000", "2024-03-04 09:00:00", "2024-03-04 09:03:00", 1.5, 1.5, 3.0, 3.0, 0, "start_of_data", "gap", 60.0, 59.0, 1 / 100 * BATTERY_KWH),
            # the 3.5 km driven during the gap belong to no trip
            ("V1-T20240304T092300", "2024-03-04 09:23:00", "2024-03-04 09:26:00", 1.5, 1.5, 3.0, 3.0, 0, "gap", "end_of_data", 56.0, 55.0, 1 / 100 * BATTERY_KWH),
        ],
    )
    assert_approx_df_equality(actual, expected, precision=1e-6, ignore_nullable=True)


# --------------------------------------------------------------------------------------------
# silver.vehicle_minutely
# --------------------------------------------------------------------------------------------
MINUTE_COLS = (
    "minute_ts string, n_samples long, speed_mean_kmh double, speed_max_kmh double, km double, moving_share double, soc_mean_pct double, soc_min_pct double, soc_max_pct double, soc_delta_pct double"
)


def test_minutely_aggregates_a_hand_computed_minute(spark):
    rows = [
        ("V1", "2024-03-04 09:59:50", 0.0, 10.0, 71.0, 100.0),
        ("V1", "2024-03-04 10:00:05", 0.1, 20.0, 70.0, 100.1),
        ("V1", "2024-03-04 10:00:25", 0.25, 0.0, 70.0, 100.3),
        ("V1", "2024-03-04 10:00:45", 0.25, 0.0, 69.0, 100.3),
    ]
    points = trip_points(clean_df(spark, rows), PARAMS)
    actual = vehicle_minutely(points, KpisConfig()).where("minute_ts = '2024-03-04 10:00:00'")
    actual = actual.select(*[c.split()[0] for c in MINUTE_COLS.split(", ")]).withColumn("minute_ts", F.col("minute_ts").cast("string"))
    # Legs ending in 10:00: 0.1 km (mean end speed 15 km/h: moving), 0.15 km (10 km/h: moving),
    # 0 km (both ends stopped: not moving). SOC: 70, 70, 69; change since 09:59:50 (71) = -2.
    expected = spark.createDataFrame([("2024-03-04 10:00:00", 3, 20 / 3, 20.0, 0.25, 1 / 3, 209 / 3, 69.0, 70.0, -2.0)], MINUTE_COLS)
    assert_approx_df_equality(actual, expected, precision=1e-9, ignore_nullable=True)


def test_minutely_rolling_window_is_event_time_range(spark):
    # One sample per listed minute; leg km given by the positions, all legs moving (speed > 2).
    rows = [
        ("V1", "2024-03-04 10:00:00", 0.0, 10.0, 80.0, 0.0),
        ("V1", "2024-03-04 10:05:00", 1.0, 20.0, 79.0, 1.0),
        ("V1", "2024-03-04 10:10:00", 3.0, 30.0, 78.0, 3.0),
        ("V1", "2024-03-04 10:14:00", 6.0, 40.0, 77.0, 6.0),
        ("V1", "2024-03-04 10:15:00", 6.5, 50.0, 77.0, 6.5),
        ("V1", "2024-03-04 10:24:00", 10.5, 60.0, 76.0, 10.5),
        ("V1", "2024-03-04 10:30:00", 11.5, 70.0, 75.0, 11.5),
    ]
    points = trip_points(clean_df(spark, rows), PARAMS)
    actual = (
        vehicle_minutely(points, KpisConfig())
        .select(F.col("minute_ts").cast("string").alias("minute_ts"), "rolling_km", "rolling_speed_mean_kmh", "rolling_soc_delta_pct", "rolling_n_samples")
        .orderBy("minute_ts")
    )
    # 15-min window ending with the minute: [m - 14 min, m]. 10:15 sees 10:05..10:15 (not 10:00);
    # 10:30 sees 10:16..10:30 only. The first sample has no leg: 0 km and no SOC change.
    expected = spark.createDataFrame(
        [
            ("2024-03-04 10:00:00", 0.0, 10.0, None, 1),
            ("2024-03-04 10:05:00", 1.0, 15.0, -1.0, 2),
            ("2024-03-04 10:10:00", 3.0, 20.0, -2.0, 3),
            ("2024-03-04 10:14:00", 6.0, 25.0, -3.0, 4),
            ("2024-03-04 10:15:00", 6.5, 35.0, -3.0, 4),
            ("2024-03-04 10:24:00", 9.5, 45.0, -3.0, 4),
            ("2024-03-04 10:30:00", 5.0, 65.0, -2.0, 2),
        ],
        "minute_ts string, rolling_km double, rolling_speed_mean_kmh double, rolling_soc_delta_pct double, rolling_n_samples long",
    )
    assert_approx_df_equality(actual, expected, precision=1e-9, ignore_nullable=True)


# --------------------------------------------------------------------------------------------
# Odometer checks and PAYD billing
# --------------------------------------------------------------------------------------------
def test_odometer_checks_flag_stuck_decreasing_and_jumping_readings(spark):
    rows = [
        ("V1", "2024-03-04 10:00:00", 0.0, 30.0, 80.0, 100.0),
        ("V1", "2024-03-04 10:02:00", 1.0, 30.0, 80.0, 101.0),  # healthy
        ("V1", "2024-03-04 10:04:00", 2.0, 30.0, 80.0, 101.0),  # unchanged, 1 km GPS ...
        ("V1", "2024-03-04 10:06:00", 3.0, 30.0, 79.0, 101.0),  # ... 2 km: stuck from here back
        ("V1", "2024-03-04 10:08:00", 4.0, 30.0, 79.0, 101.0),
        ("V1", "2024-03-04 10:10:00", 5.0, 30.0, 79.0, 140.0),  # +39 km in 2 min: jump
        ("V1", "2024-03-04 10:12:00", 6.0, 30.0, 78.0, 141.0),  # healthy
        ("V1", "2024-03-04 10:14:00", 7.0, 30.0, 78.0, 120.0),  # -21 km: decreasing
        ("V1", "2024-03-04 10:16:00", 8.0, 30.0, 78.0, 121.0),  # healthy
        ("V1", "2024-03-04 10:18:00", 8.0, 0.0, 78.0, 121.0),  # parked, unchanged: fine
    ]
    points = trip_points(clean_df(spark, rows), PARAMS).transform(add_odometer_checks, OdometerConfig())
    actual = points.select(F.col("ts").cast("string").alias("ts"), "odo_delta_km", "odo_fault").orderBy("ts")
    expected = spark.createDataFrame(
        [
            ("2024-03-04 10:00:00", None, None),
            ("2024-03-04 10:02:00", 1.0, None),
            ("2024-03-04 10:04:00", 0.0, "stuck"),
            ("2024-03-04 10:06:00", 0.0, "stuck"),
            ("2024-03-04 10:08:00", 0.0, "stuck"),
            ("2024-03-04 10:10:00", 39.0, "jump"),
            ("2024-03-04 10:12:00", 1.0, None),
            ("2024-03-04 10:14:00", -21.0, "decreasing"),
            ("2024-03-04 10:16:00", 1.0, None),
            ("2024-03-04 10:18:00", 0.0, None),
        ],
        "ts string, odo_delta_km double, odo_fault string",
    )
    assert_approx_df_equality(actual, expected, precision=1e-9, ignore_nullable=True)


DAILY_COLS = (
    "vehicle_id string, local_date date, model string, gps_km double, odometer_km double, odometer_first_km double, odometer_last_km double, odometer_faults array<string>, odometer_ok boolean"
)


def test_billing_period_with_a_broken_odometer_bills_faulty_days_on_gps(spark):
    daily = spark.createDataFrame(
        [
            # V1: odometer stuck on the 5th, catches up with a jump on the 6th
            ("V1", date(2024, 3, 4), "Treo", 49.0, 50.0, 1000.0, 1050.0, [], True),
            ("V1", date(2024, 3, 5), "Treo", 60.0, 0.0, 1050.0, 1050.0, ["stuck"], False),
            ("V1", date(2024, 3, 6), "Treo", 40.0, 41.0, 1050.0, 1151.0, ["jump"], False),
            ("V1", date(2024, 3, 7), "Treo", 30.0, 30.5, 1151.0, 1181.5, [], True),
            ("V1", date(2024, 4, 1), "Treo", 10.0, 10.0, 1181.5, 1191.5, [], True),  # next period
            # V2: healthy but reads 20 % high: billed on the odometer, discrepancy flagged
            ("V2", date(2024, 3, 4), "Nexon", 100.0, 120.0, 500.0, 620.0, [], True),
            ("V2", date(2024, 3, 5), "Nexon", 0.2, 0.0, 620.0, 620.0, [], True),
            # V3: no odometer at all
            ("V3", date(2024, 3, 4), "Ace", 70.0, None, None, None, [], False),
        ],
        DAILY_COLS,
    )
    actual = (
        payd_billing(daily, BillingConfig())
        .select(
            "vehicle_id",
            "period_start",
            "period_end",
            "billable_km",
            "billing_source",
            "gps_km",
            "odometer_km",
            "odometer_reading_km",
            "gps_billed_days",
            "odometer_fault_days",
            "odometer_faults",
            "discrepancy_km",
            "discrepancy_pct",
            "discrepancy_flag",
            "days_reporting",
            "days_active",
        )
        .orderBy("vehicle_id", "period_start")
    )
    expected = spark.createDataFrame(
        [
            ("V1", date(2024, 3, 1), date(2024, 3, 31), 50.0 + 60.0 + 40.0 + 30.5, "mixed", 179.0, 80.5, 181.5, 2, 2, ["jump", "stuck"], 1.5, 1.5 / 79 * 100, False, 4, 4),
            ("V1", date(2024, 4, 1), date(2024, 4, 30), 10.0, "odometer", 10.0, 10.0, 10.0, 0, 0, [], 0.0, 0.0, False, 1, 1),
            ("V2", date(2024, 3, 1), date(2024, 3, 31), 120.0, "odometer", 100.2, 120.0, 120.0, 0, 0, [], 19.8, 19.8 / 100.2 * 100, True, 2, 1),
            ("V3", date(2024, 3, 1), date(2024, 3, 31), 70.0, "gps", 70.0, None, None, 1, 0, [], None, None, False, 1, 1),
        ],
        "vehicle_id string, period_start date, period_end date, billable_km double, billing_source string, gps_km double, odometer_km double, odometer_reading_km double, gps_billed_days long, odometer_fault_days long, odometer_faults array<string>, discrepancy_km double, discrepancy_pct double, discrepancy_flag boolean, days_reporting long, days_active long",
    )
    assert_approx_df_equality(actual, expected, precision=1e-9, ignore_nullable=True)


def test_trip_ids_do_not_depend_on_what_else_was_read(spark):
    """Stable ids: the second trip has the same id whether or not the first was read."""
    full = _trips(spark, STOP_SPLIT).select("trip_id", "distance_km")
    later = _trips(spark, STOP_SPLIT[7:]).select("trip_id", "distance_km")
    assert_df_equality(later, full.where("trip_id = 'V1-T20240304T082400'"), ignore_nullable=True)

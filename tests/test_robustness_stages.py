"""Edge cases after ingest: a vehicle with one point, a fleet across a DST change (clean), and a
skewed fleet through a grouped pandas UDF stage (charging locations, capped per vehicle).
Cases `single_point_vehicle`, `dst_fleet`, `huge_vehicle` and `grouped_udf_cap` of
docs/ROBUSTNESS.md."""

from __future__ import annotations

from datetime import datetime, timezone

from chispa import assert_df_equality
from pyspark.sql import functions as F

from common.core.config import ChargingConfig, CleanConfig, ResidenceConfig
from common.core.limits import cap_rows_per_group
from common.mobility.charging import label_event_locations
from common.mobility.residence import find_residences
from common.silver.cleaning import CleaningParams, clean_telematics

WORLD = "POLYGON((-179 -80, 179 -80, 179 80, -179 80, -179 -80))"
BRONZE_DDL = (
    "vehicle_id string, ts string, lat double, lon double, speed_kmh double, odometer_km double, soc_pct double, "
    "altitude_m double, heading_deg double, ambient_temp_c double, source_name string, source_file string, "
    "row_hash string, ingest_run_id string, ingested_at timestamp, date date"
)


def bronze_df(spark, rows):
    """bronze.telematics rows from (vehicle_id, UTC ts, lat, lon, soc) with constant speed/odometer."""
    full = [(v, ts, lat, lon, 0.0, 1000.0, soc, None, None, None, "t", "file:/t.csv", f"h{i}", "run", None, None) for i, (v, ts, lat, lon, soc) in enumerate(rows)]
    df = spark.createDataFrame(full, BRONZE_DDL).withColumn("ts", F.col("ts").cast("timestamp"))
    return df.withColumn("date", F.to_date("ts"))


def test_single_point_vehicle_and_dst_fleet_clean(spark):
    bronze = bronze_df(
        spark,
        [
            ("solo", "2024-03-30 12:00:00", 28.61, 77.20, 60.0),  # the only point of its vehicle
            # London across the spring change (01:00 UTC: GMT -> BST) and the autumn one (01:00 UTC: BST -> GMT)
            ("ldn", "2024-03-31 00:30:00", 51.50, -0.12, 80.0),
            ("ldn", "2024-03-31 01:30:00", 51.50, -0.12, 80.0),
            ("ldn", "2024-10-27 00:30:00", 51.50, -0.12, 70.0),
            ("ldn", "2024-10-27 01:30:00", 51.50, -0.12, 70.0),
            # Delhi (no DST) on the same UTC instants
            ("del", "2024-03-31 00:30:00", 28.61, 77.20, 50.0),
            ("del", "2024-03-31 01:30:00", 28.61, 77.20, 50.0),
        ],
    )
    vehicles = spark.createDataFrame(
        [("ldn", "Tata Nexon EV", "car", 30.0, "d1", "Europe/London"), ("del", "Mahindra Treo", "e_rickshaw", 7.4, "d2", "Asia/Kolkata")],
        "vehicle_id string, model string, vehicle_type string, battery_kwh double, driver_id string, timezone string",
    )
    params = CleaningParams(
        settings=CleanConfig(),
        area_wkt=WORLD,
        as_of=datetime(2025, 1, 1, tzinfo=timezone.utc),
        dataset_start=None,
        default_timezone="Asia/Kolkata",  # the dataset's zone for a vehicle without one (solo)
    )
    silver = clean_telematics(bronze, vehicles, params)
    out = silver.select(
        "vehicle_id",
        F.col("ts").cast("string").alias("ts"),
        F.col("ts_local").cast("string").alias("ts_local"),
        F.col("local_date").cast("string").alias("local_date"),
        "quality_reasons",
        "is_usable",
        "position_imputed",
        "soc_imputed",
    )
    expected = spark.createDataFrame(
        [
            ("solo", "2024-03-30 12:00:00", "2024-03-30 17:30:00", "2024-03-30", [], True, False, False),  # default zone Asia/Kolkata
            ("ldn", "2024-03-31 00:30:00", "2024-03-31 00:30:00", "2024-03-31", [], True, False, False),  # GMT
            ("ldn", "2024-03-31 01:30:00", "2024-03-31 02:30:00", "2024-03-31", [], True, False, False),  # BST
            ("ldn", "2024-10-27 00:30:00", "2024-10-27 01:30:00", "2024-10-27", [], True, False, False),  # BST
            ("ldn", "2024-10-27 01:30:00", "2024-10-27 01:30:00", "2024-10-27", [], True, False, False),  # GMT: same wall clock again
            ("del", "2024-03-31 00:30:00", "2024-03-31 06:00:00", "2024-03-31", [], True, False, False),
            ("del", "2024-03-31 01:30:00", "2024-03-31 07:00:00", "2024-03-31", [], True, False, False),
        ],
        "vehicle_id string, ts string, ts_local string, local_date string, quality_reasons array<string>, is_usable boolean, position_imputed boolean, soc_imputed boolean",
    )
    assert_df_equality(out, expected, ignore_row_order=True, ignore_nullable=True)
    assert silver.count() == bronze.count()  # rows in = rows out


def test_grouped_udf_caps_rows_per_vehicle(spark):
    """A vehicle with 10 % of all events (and far more than the cap) goes through the per-vehicle
    DBSCAN UDF: the UDF receives at most `max_events_per_vehicle` of its rows (it returns one row
    per input row, so the labelled count is what it loaded), the sample is the same on a rerun,
    and the other vehicles are untouched."""
    cap = 25
    small = [(f"v{i:02d}", f"v{i:02d}-C{k:03d}", 28.60 + 0.01 * i, 77.20 + 0.0001 * k) for i in range(30) for k in range(12)]
    huge = [("huge", f"huge-C{k:03d}", 28.50 + 0.002 * (k % 20), 77.10) for k in range(40)]
    events = spark.createDataFrame(small + huge, "vehicle_id string, event_id string, lat double, lon double")
    assert len(huge) / (len(small) + len(huge)) == 0.1
    params = ChargingConfig(max_events_per_vehicle=cap, location_eps_m=75.0)

    labelled = label_event_locations(events, params)
    per_vehicle = {r["vehicle_id"]: (r["rows"], r["located"]) for r in labelled.groupBy("vehicle_id").agg(F.count(F.lit(1)).alias("rows"), F.count("location_id").alias("located")).collect()}
    print("huge vehicle: rows", per_vehicle["huge"][0], "clustered", per_vehicle["huge"][1], "cap", cap)
    assert per_vehicle["huge"] == (40, cap)  # every event kept in the output, only `cap` loaded by the UDF
    assert all(per_vehicle[f"v{i:02d}"] == (12, 12) for i in range(30))
    again = label_event_locations(events, params)
    assert_df_equality(labelled.orderBy("event_id"), again.orderBy("event_id"), ignore_nullable=True)


def test_cap_rows_per_group_priority_and_passthrough(spark):
    df = spark.createDataFrame([("a", i, 10 - i) for i in range(10)] + [("b", 0, 1)], "k string, i int, weight int")
    top = cap_rows_per_group(df, ["k"], 3, priority=[F.desc("weight")])
    expected = spark.createDataFrame([("a", 0, 10), ("a", 1, 9), ("a", 2, 8), ("b", 0, 1)], "k string, i int, weight int")
    assert_df_equality(top, expected, ignore_row_order=True, ignore_nullable=True)


def test_residence_udf_loads_at_most_the_heaviest_cells(spark):
    """A vehicle parked at home four nights that also stops at 300 different places at night:
    the home UDF gets only the `max_cells_per_vehicle` heaviest cells (its `night_cells` output is
    the number it received) and still finds the home."""
    rows = []
    for night in range(4):
        for k in range(12):  # home: 12 points a night, 10 min apart, 02:00-03:50
            rows.append(("roamer", f"2024-03-0{4 + night} 02:{k * 5:02d}:00", 28.6000, 77.2000))
            rows.append(("steady", f"2024-03-0{4 + night} 02:{k * 5:02d}:00", 28.7000, 77.1000))
    for j in range(300):  # one-off night stops ~300 m apart: 300 distinct cells of weight 1
        rows.append(("roamer", f"2024-03-0{4 + j % 4} 04:{j % 60:02d}:{j // 60:02d}", 28.50 + 0.003 * (j // 20), 77.30 + 0.003 * (j % 20)))
    clean = (
        spark.createDataFrame(rows, "vehicle_id string, ts string, lat double, lon double")
        .withColumn("ts", F.col("ts").cast("timestamp"))
        .withColumn("ts_local", F.col("ts"))
        .withColumn("local_date", F.to_date("ts"))
        .withColumn("timezone", F.lit("UTC"))
        .withColumn("speed_kmh", F.lit(0.0))
        .withColumn("is_usable", F.lit(True))
    )
    cap = 50
    homes = {r["vehicle_id"]: r for r in find_residences(clean, ResidenceConfig(max_cells_per_vehicle=cap)).collect()}
    print({v: (r["status"], r["night_cells"], r["home_lat"], r["home_lon"]) for v, r in homes.items()})
    assert homes["roamer"]["night_cells"] == cap  # the UDF loaded `cap` of its 301 cells
    assert homes["roamer"]["status"] == "home" and abs(homes["roamer"]["home_lat"] - 28.6) < 1e-4
    assert homes["steady"]["night_cells"] == 1 and homes["steady"]["status"] == "home"

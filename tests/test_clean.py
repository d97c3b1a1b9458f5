"""Cleaning rules on hand-built telemetry: one scenario per vehicle, expected rows written out.

Most scenarios run through the whole chain (`clean_telematics`) once, in a module fixture, and
each test looks at its own vehicle. Positions are in the Delhi operating area; 0.001 degree of
latitude is 111.2 m, so 0.002 degree per minute is a 13 km/h crawl.
"""

from __future__ import annotations

import json
import math
from datetime import datetime, timezone

import numpy as np
import pytest
from chispa import assert_approx_df_equality, assert_df_equality
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from common.io import tables
from common.io.schemas import TELEMATICS, VEHICLES
from common.io.spark import with_sedona
from common.silver.cleaning import (
    BLOCKING_MASK,
    CANONICAL,
    FLAGS,
    CleaningParams,
    clean_telematics,
    cleaning_params,
    flag_invalid_coordinates,
    flag_outside_area,
    prepare,
    quality_daily,
    rule_summary,
)
from common.spatial.geo import EARTH_RADIUS_M, haversine_m, haversine_np
from tests.conftest import make_config

DAY = (2024, 3, 5)
AS_OF = datetime(2024, 3, 10, tzinfo=timezone.utc)
DATASET_START = datetime(2024, 3, 1, tzinfo=timezone.utc)
LAT0, LON0 = 28.600, 77.200

VEHICLE_ROWS = [
    ("COORD", "Tata Nexon EV", "car", 30.2, "D01", "Asia/Kolkata"),
    ("DUP", "Tata Nexon EV", "car", 30.2, "D02", "Asia/Kolkata"),
    ("SPIKE", "Tata Nexon EV", "car", 30.2, "D03", "Asia/Kolkata"),
    ("TRIPSTART", "Tata Nexon EV", "car", 30.2, "D04", "Asia/Kolkata"),
    ("FIRSTBAD", "Mahindra Treo", "three_wheeler", 7.4, "D05", "Asia/Kolkata"),
    ("JITTER", "Ather 450X", "two_wheeler", 2.9, "D06", "Asia/Kolkata"),
    ("SOC", "Tata Nexon EV", "car", 30.2, "D07", "Asia/Kolkata"),
    ("SPARSE", "Mahindra Treo", "three_wheeler", 7.4, "D12", "Asia/Kolkata"),
    ("TS", "Tata Nexon EV", "car", 30.2, "D08", "Asia/Kolkata"),
    ("EU1", "Tata Nexon EV", "car", 30.2, "D09", "Europe/Berlin"),
    ("NULLS", "Tata Ace EV", "van", 21.3, "D10", "Asia/Kolkata"),
    *[(v, "Tata Ace EV", "van", 21.3, "D11", None) for v in ("R_START", "R_END", "R_GAP", "R_FILL", "R_SINGLE", "R_ONE_OK")],
]
REASONS_SCHEMA = "ts timestamp, quality_reasons array<string>"


def at(hhmmss: str, day: tuple[int, int, int] = DAY) -> datetime:
    parts = [int(p) for p in hhmmss.split(":")] + [0]
    return datetime(*day, parts[0], parts[1], parts[2])


def pt(vid, hhmmss, lat=LAT0, lon=LON0, soc=80.0, speed=20.0, odo=1000.0, day=DAY):
    """One canonical telemetry row (UTC timestamp)."""
    ts = hhmmss if isinstance(hhmmss, datetime) else at(hhmmss, day)
    return (vid, ts, lat, lon, speed, odo, soc, 210.0, 0.0, 30.0)


def bronze_df(spark, rows) -> DataFrame:
    """Bronze layout: canonical columns + lineage + UTC `date` partition."""
    return spark.createDataFrame(rows, TELEMATICS).withColumn("source_name", F.lit("hand_built")).withColumn("source_file", F.lit("test_clean.py")).withColumn("date", F.to_date("ts"))


def vehicles_df(spark) -> DataFrame:
    return spark.createDataFrame(VEHICLE_ROWS, VEHICLES)


def params_for(cfg, **overrides) -> CleaningParams:
    settings = cfg.clean.model_copy(update=overrides)
    base = cleaning_params(cfg, as_of=AS_OF)
    return CleaningParams(settings=settings, area_wkt=base.area_wkt, as_of=AS_OF, dataset_start=DATASET_START, default_timezone=base.default_timezone)


# ---------------------------------------------------------------------------------------------
# Scenario data
# ---------------------------------------------------------------------------------------------
def coord_rows():
    """Rule 1: 10:00 and 10:07 are fine, everything in between is a broken fix."""
    lats = [LAT0 + 0.001 * i for i in range(8)]
    return [
        pt("COORD", "10:00", lats[0]),
        pt("COORD", "10:01", None),  # null
        pt("COORD", "10:02", float("nan")),  # NaN
        pt("COORD", "10:03", 91.2),  # lat out of range
        pt("COORD", "10:04", 0.0, 0.0),  # (0, 0)
        pt("COORD", "10:05", lats[5], 1555.63),  # lon out of range (the Twizy glitch)
        pt("COORD", "10:06", 0.0, LON0),  # one axis exactly 0: receiver default
        pt("COORD", "10:07", lats[7]),
    ]


def dup_rows():
    """Rule 3: a near duplicate at 10:01, a pair at 10:02 whose first row has no position, and
    an exact copy at 10:03 (ingest normally drops those)."""
    return [
        pt("DUP", "10:00", LAT0),
        pt("DUP", "10:01", LAT0 + 0.002),
        pt("DUP", "10:01", LAT0 + 0.0021, speed=22.0),
        pt("DUP", "10:02", None, None),
        pt("DUP", "10:02", LAT0 + 0.004),
        pt("DUP", "10:03", LAT0 + 0.006),
        pt("DUP", "10:03", LAT0 + 0.006),
        pt("DUP", "10:04", LAT0 + 0.008),
    ]


def spike_rows():
    """Rule 4 on a car: a teleport-and-return at 10:02, a 2 h gap with a plausible 14 km/h, and
    at 12:06 a 44 km jump in one minute after which the trace continues from the new place."""
    return [
        pt("SPIKE", "10:00", 28.600),
        pt("SPIKE", "10:01", 28.602),
        pt("SPIKE", "10:02", 28.700, 77.300),  # ~14 km away for one sample
        pt("SPIKE", "10:03", 28.606),
        pt("SPIKE", "10:04", 28.608),
        pt("SPIKE", "12:04", 28.850),  # 27 km in 2 h: a real long gap
        pt("SPIKE", "12:05", 28.852),
        pt("SPIKE", "12:06", 28.452),  # 44 km in 60 s, and it stays there
        pt("SPIKE", "12:07", 28.454),
        pt("SPIKE", "12:08", 28.456),
    ]


def trip_start_rows():
    """Rule 4: a spike right after a parked heartbeat: the 300 s leg in is plausible (120 km/h for
    a car), the 30 s leg back is not -- still a teleport and return."""
    return [
        pt("TRIPSTART", "09:00", 28.600, speed=0.0),
        pt("TRIPSTART", "09:05", 28.600, speed=0.0),
        pt("TRIPSTART", "09:10", 28.690, speed=12.0),  # 10 km north
        pt("TRIPSTART", "09:10:30", 28.6005, speed=12.0),
        pt("TRIPSTART", "09:11", 28.602, speed=14.0),
    ]


def first_bad_rows():
    """Rule 4 at the start of a series: the first fix is 22 km off, the rest agree."""
    return [
        pt("FIRSTBAD", "09:00", 28.750, 77.050),
        pt("FIRSTBAD", "09:01", 28.600),
        pt("FIRSTBAD", "09:02", 28.602),
        pt("FIRSTBAD", "09:03", 28.604),
    ]


def jitter_rows():
    """Rule 4 at 1 Hz: 170 m of GPS jitter per second (600 km/h implied) is below min_jump_m."""
    return [pt("JITTER", f"10:00:{s:02d}", LAT0 + (0.0015 if s % 2 else 0.0), speed=5.0) for s in range(8)]


def soc_rows():
    """Rule 5 on a 30.2 kWh car: charging may add <= 150/30.2*100/60 = 8.3 points/min, driving
    may take <= 4*100/60 = 6.7 points/min (+1 point tolerance); regen may add <= 2 points."""
    parked = dict(lat=LAT0, speed=0.0)

    def drive(i):  # 40 km/h northwards: 0.006 degree per minute
        return dict(lat=LAT0 + 0.006 * i, speed=40.0)

    return [
        pt("SOC", "10:00", soc=50.0, **parked),
        pt("SOC", "10:01", soc=50.0, **parked),
        pt("SOC", "10:02", soc=80.0, **parked),  # +30 and back: spike
        pt("SOC", "10:03", soc=50.0, **parked),
        pt("SOC", "10:04", soc=-3.0, **parked),  # out of range
        pt("SOC", "10:05", soc=50.0, **parked),
        pt("SOC", "10:06", soc=30.0, **parked),  # -20 in one minute while parked
        pt("SOC", "10:07", soc=30.0, **parked),
        pt("SOC", "10:08", soc=31.5, **parked),  # charging at 1.5 points/min: fine
        pt("SOC", "10:09", soc=33.0, **parked),
        pt("SOC", "10:10", soc=33.0, **drive(1)),
        pt("SOC", "10:11", soc=38.0, **drive(2)),  # +5 while driving
        pt("SOC", "10:12", soc=38.0, **drive(3)),
        pt("SOC", "10:13", soc=39.0, **drive(4)),  # +1: regenerative braking, fine
        pt("SOC", "10:14", soc=39.0, **drive(5)),
        pt("SOC", "10:15", soc=None, **drive(6)),  # missing: usable, repaired
        pt("SOC", "10:16", soc=38.0, **drive(7)),
    ]


def sparse_soc_rows():
    """Rule 5 on an ignition-only device: heartbeats 35 min apart while parked at one place."""
    parked = dict(lat=LAT0, speed=0.0)
    return [
        pt("SPARSE", "10:00", soc=61.0, **parked),
        pt("SPARSE", "10:35", soc=61.0, **parked),
        pt("SPARSE", "11:10", soc=92.0, **parked),  # +31 and back between two heartbeats: a spike
        pt("SPARSE", "11:45", soc=61.0, **parked),
        pt("SPARSE", "12:20", soc=61.0, **parked),
        pt("SPARSE", "12:55", soc=85.0, **parked),  # a real charge asleep: it stays up, not a spike
        pt("SPARSE", "13:30", soc=85.0, **parked),
        pt("SPARSE", "14:05", soc=86.0, lat=LAT0 + 0.02, speed=0.0),  # 2.2 km away: not parked at one place
        pt("SPARSE", "14:40", soc=60.0, lat=LAT0 + 0.02, speed=0.0),
    ]


def ts_rows():
    """Rule 6: rows arrive out of order; one is from the future, one from before the dataset."""
    return [
        pt("TS", "10:00", 28.600),
        pt("TS", "10:02", 28.604),
        pt("TS", "10:01", 28.602),  # late arrival
        pt("TS", datetime(2030, 1, 1, 0, 0), 28.606),
        pt("TS", datetime(2019, 6, 1, 0, 0), 28.606),
        pt("TS", "10:03", 28.606),
    ]


def dst_rows():
    """Local time across both 2024 Berlin DST switches (31 Mar 01:00 UTC, 27 Oct 01:00 UTC) and a
    vehicle missing from bronze.vehicles (dataset default Asia/Kolkata, +05:30)."""
    return [
        pt("EU1", "00:30", day=(2024, 3, 31)),
        pt("EU1", "01:30", day=(2024, 3, 31)),
        pt("EU1", "00:30", day=(2024, 10, 27)),
        pt("EU1", "01:30", day=(2024, 10, 27)),
        pt("NOVEH", "20:00", day=(2024, 3, 4)),
    ]


def repair_rows():
    """Repair edge cases, one vehicle each (vans, no vehicle timezone). Broken rows have lat null."""
    return [
        # start of series: nothing before, next good row 2 min later -> backward fill
        pt("R_START", "10:00", None, None),
        pt("R_START", "10:02", 28.610, 77.210),
        pt("R_START", "10:03", 28.611, 77.210),
        # end of series: previous good row 4 min earlier -> forward fill
        pt("R_END", "10:00", 28.620, 77.220),
        pt("R_END", "10:01", 28.621, 77.220),
        pt("R_END", "10:05", None, None),
        # long gap: neighbours 30 min apart, 20 and 10 min away -> left null
        pt("R_GAP", "10:00", 28.630, 77.230),
        pt("R_GAP", "10:20", None, None),
        pt("R_GAP", "10:30", 28.640, 77.230),
        # neighbours 15 min apart (no interpolation) but the previous one is 3 min away -> ffill
        pt("R_FILL", "10:00", 28.650, 77.240),
        pt("R_FILL", "10:03", None, None),
        pt("R_FILL", "10:15", 28.655, 77.240),
        # single-point vehicles
        pt("R_SINGLE", "10:00", None, None),
        pt("R_ONE_OK", "10:00", 28.660, 77.250),
    ]


def null_rows():
    """Generator type null_field: speed or odometer missing."""
    return [
        pt("NULLS", "10:00", 28.600, speed=20.0, odo=100.0),
        pt("NULLS", "10:01", 28.602, speed=None, odo=None),
        pt("NULLS", "10:02", 28.604, speed=24.0, odo=100.4),
    ]


ALL_ROWS = [
    *coord_rows(),
    *dup_rows(),
    *spike_rows(),
    *trip_start_rows(),
    *first_bad_rows(),
    *jitter_rows(),
    *soc_rows(),
    *sparse_soc_rows(),
    *ts_rows(),
    *dst_rows(),
    *repair_rows(),
    *null_rows(),
]


@pytest.fixture(scope="module")
def bronze(spark):
    return bronze_df(spark, ALL_ROWS)


@pytest.fixture(scope="module")
def cleaned(spark, cfg, bronze):
    out = clean_telematics(bronze, vehicles_df(spark), params_for(cfg)).cache()
    yield out
    out.unpersist()


def reasons_of(cleaned: DataFrame, vehicle: str) -> DataFrame:
    return cleaned.where(F.col("vehicle_id") == vehicle).select("ts", "quality_reasons").orderBy("ts")


def expected(spark, rows, schema=REASONS_SCHEMA) -> DataFrame:
    return spark.createDataFrame(rows, schema)


# ---------------------------------------------------------------------------------------------
# Shared geometry
# ---------------------------------------------------------------------------------------------
def test_haversine_one_degree_and_agrees_with_sedona(spark):
    pairs = spark.createDataFrame(
        [(0.0, 0.0, 1.0, 0.0), (28.6139, 77.2090, 19.0760, 72.8777), (33.99, -6.85, 33.99, -6.84)],
        "lat1 double, lon1 double, lat2 double, lon2 double",
    )
    with_sedona(spark)
    got = pairs.select(
        haversine_m("lat1", "lon1", "lat2", "lon2").alias("m"),
        F.expr("ST_DistanceSphere(ST_Point(lon1, lat1), ST_Point(lon2, lat2))").alias("sedona_m"),
    ).collect()
    one_degree = math.pi / 180 * EARTH_RADIUS_M  # 111 194.9 m
    assert got[0].m == pytest.approx(one_degree, rel=1e-12)
    for r in got:  # Sedona's sphere radius differs from ours by < 0.01 %
        assert r.m == pytest.approx(r.sedona_m, rel=2e-4), r
    rows = pairs.collect()  # the numpy twin used inside pandas UDFs gives the same metres
    twin = haversine_np(*(np.array([r[k] for r in rows]) for k in ("lat1", "lon1", "lat2", "lon2")))
    assert twin == pytest.approx([r.m for r in got], rel=1e-12)
    print(f"Delhi-Mumbai {got[1].m / 1000:.1f} km (Sedona {got[1].sedona_m / 1000:.1f} km)")


# ---------------------------------------------------------------------------------------------
# Rule 1 and 2
# ---------------------------------------------------------------------------------------------
def test_rule1_invalid_and_zero_coordinates_are_flagged_and_repaired(spark, cleaned):
    got = cleaned.where("vehicle_id = 'COORD'").select("ts", "quality_reasons", "is_usable", "position_imputed", "lat", "lon").orderBy("ts")
    schema = "ts timestamp, quality_reasons array<string>, is_usable boolean, position_imputed boolean, lat double, lon double"
    # 10:00 and 10:07 are 7 min apart (< 10 min): the gap is linearly interpolated, 0.001 deg/min.
    want = [
        (at("10:00"), [], True, False, 28.600, 77.2),
        (at("10:01"), ["invalid_coord"], False, True, 28.601, 77.2),
        (at("10:02"), ["invalid_coord"], False, True, 28.602, 77.2),
        (at("10:03"), ["invalid_coord"], False, True, 28.603, 77.2),
        (at("10:04"), ["zero_coord"], False, True, 28.604, 77.2),
        (at("10:05"), ["invalid_coord"], False, True, 28.605, 77.2),
        (at("10:06"), ["zero_coord"], False, True, 28.606, 77.2),
        (at("10:07"), [], True, False, 28.607, 77.2),
    ]
    assert_approx_df_equality(got, expected(spark, want, schema), 1e-9, ignore_nullable=True)
    originals = cleaned.where("vehicle_id = 'COORD' and ts = '2024-03-05 10:05:00'").select("lat_orig", "lon_orig").first()
    assert (originals.lat_orig, originals.lon_orig) == (pytest.approx(28.605), 1555.63)


def test_tie_order_of_equal_timestamps_depends_on_values_not_lineage(spark, cfg):
    """The same rows loaded from another file (another lakehouse path, another ingest run) order
    equal timestamps the same way, so cleaning keeps the same copy; different values differ."""
    rows = [pt("COORD", "10:00", LAT0, LON0), pt("COORD", "10:00", LAT0 + 0.001, LON0)]
    here = bronze_df(spark, rows).withColumn("ingest_run_id", F.lit("run-1"))
    elsewhere = here.withColumn("source_file", F.lit("s3://bucket/raw/other-part.parquet")).withColumn("ingest_run_id", F.lit("run-2"))
    ties = [[r["_tie"] for r in prepare(df, vehicles_df(spark), cfg.clean).orderBy("lat").collect()] for df in (here, elsewhere)]
    assert ties[0] == ties[1]
    assert ties[0][0] != ties[0][1]


def test_rule1_zero_on_one_axis_can_be_allowed(spark, cfg):
    rows = [pt("COORD", "10:00", 0.0, 32.5), pt("COORD", "10:01", 0.0, 0.0)]
    settings = cfg.clean.model_copy(update={"zero_coord_either_axis": False})
    got = prepare(bronze_df(spark, rows), vehicles_df(spark), settings).transform(flag_invalid_coordinates, settings).select("ts", "quality_flags").orderBy("ts")
    want = expected(spark, [(at("10:00"), 0), (at("10:01"), FLAGS["zero_coord"])], "ts timestamp, quality_flags int")
    assert_df_equality(got, want, ignore_nullable=True)


def test_rule2_outside_area_uses_the_polygon(spark, cfg):
    square = "POLYGON ((10 10, 20 10, 20 20, 10 20, 10 10))"  # lon 10..20, lat 10..20
    rows = [
        pt("COORD", "10:00", 15.0, 15.0),  # inside
        pt("COORD", "10:01", 15.0, 25.0),  # east of it
        pt("COORD", "10:02", 5.0, 15.0),  # south of it
        pt("COORD", "10:03", 0.0, 0.0),  # a receiver default, not a trip abroad
        pt("COORD", "10:04", None, 15.0),  # no position: rule 1 only
    ]
    got = prepare(bronze_df(spark, rows), vehicles_df(spark), cfg.clean).transform(flag_invalid_coordinates, cfg.clean).transform(flag_outside_area, square).select("ts", "quality_flags").orderBy("ts")
    want = [
        (at("10:00"), 0),
        (at("10:01"), FLAGS["outside_area"]),
        (at("10:02"), FLAGS["outside_area"]),
        (at("10:03"), FLAGS["zero_coord"]),
        (at("10:04"), FLAGS["invalid_coord"]),
    ]
    assert_df_equality(got, expected(spark, want, "ts timestamp, quality_flags int"), ignore_nullable=True)


def test_rule2_area_from_geojson_conf(spark, tmp_path):
    """The operating area can be a GeoJSON file named in conf (here: a box around Delhi)."""
    box = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "properties": {},
                "geometry": {
                    "type": "Polygon",
                    "coordinates": [[[77.0, 28.4], [77.4, 28.4], [77.4, 28.8], [77.0, 28.8], [77.0, 28.4]]],
                },
            }
        ],
    }
    path = tmp_path / "box.geojson"
    path.write_text(json.dumps(box))
    params = cleaning_params(make_config(tmp_path, f"clean.area_file={path}"), as_of=AS_OF)
    assert params.area_wkt.startswith("POLYGON")
    rows = [pt("COORD", "10:00", 28.6, 77.2), pt("COORD", "10:01", 19.076, 72.878)]  # Delhi, Mumbai
    got = (
        prepare(bronze_df(spark, rows), vehicles_df(spark), params.settings)
        .transform(flag_invalid_coordinates, params.settings)
        .transform(flag_outside_area, params.area_wkt)
        .select("ts", "quality_flags")
        .orderBy("ts")
    )
    want = [(at("10:00"), 0), (at("10:01"), FLAGS["outside_area"])]
    assert_df_equality(got, expected(spark, want, "ts timestamp, quality_flags int"), ignore_nullable=True)


# ---------------------------------------------------------------------------------------------
# Rule 3
# ---------------------------------------------------------------------------------------------
def test_rule3_exactly_one_row_per_key_survives(spark, cleaned):
    per_key = (
        cleaned.where("vehicle_id = 'DUP'")
        .groupBy("ts")
        .agg(
            F.count(F.lit(1)).alias("rows"),
            F.sum(F.array_contains("quality_reasons", "duplicate").cast("int")).alias("duplicates"),
            F.sum(F.col("is_usable").cast("int")).alias("usable"),
        )
        .orderBy("ts")
    )
    want = [
        (at("10:00"), 1, 0, 1),
        (at("10:01"), 2, 1, 1),
        (at("10:02"), 2, 1, 1),
        (at("10:03"), 2, 1, 1),
        (at("10:04"), 1, 0, 1),
    ]
    assert_df_equality(per_key, expected(spark, want, "ts timestamp, rows long, duplicates long, usable long"), ignore_nullable=True)


def test_rule3_intact_row_of_a_pair_is_kept_and_duplicate_takes_its_values(cleaned):
    pair = cleaned.where("vehicle_id = 'DUP' and ts = '2024-03-05 10:02:00'").orderBy("is_usable").collect()
    dropped, kept = pair
    assert kept.lat_orig == pytest.approx(28.604) and kept.quality_reasons == []
    assert dropped.lat_orig is None and dropped.quality_reasons == ["invalid_coord", "duplicate"]
    assert dropped.lat == pytest.approx(28.604) and dropped.position_imputed


# ---------------------------------------------------------------------------------------------
# Rule 4
# ---------------------------------------------------------------------------------------------
def test_rule4_spike_versus_long_gap_versus_jump(spark, cleaned):
    want = [
        (at("10:00"), []),
        (at("10:01"), []),
        (at("10:02"), ["speed_spike"]),
        (at("10:03"), []),
        (at("10:04"), []),
        (at("12:04"), []),  # 2 h gap, plausible speed: kept
        (at("12:05"), []),
        (at("12:06"), ["impossible_speed"]),  # only the arrival of the jump
        (at("12:07"), []),
        (at("12:08"), []),
    ]
    assert_df_equality(reasons_of(cleaned, "SPIKE"), expected(spark, want), ignore_nullable=True)
    spike = cleaned.where("vehicle_id = 'SPIKE' and ts = '2024-03-05 10:02:00'").first()
    # repaired halfway between 10:01 (28.602) and 10:03 (28.606)
    assert (spike.lat, spike.lon, spike.position_imputed) == (pytest.approx(28.604), pytest.approx(77.2), True)


def test_rule4_spike_after_a_parked_gap(spark, cleaned):
    want = [(at("09:00"), []), (at("09:05"), []), (at("09:10"), ["speed_spike"]), (at("09:10:30"), []), (at("09:11"), [])]
    assert_df_equality(reasons_of(cleaned, "TRIPSTART"), expected(spark, want), ignore_nullable=True)


def test_rule4_bad_first_point_is_blamed_not_its_successor(spark, cleaned):
    want = [(at("09:00"), ["impossible_speed"]), (at("09:01"), []), (at("09:02"), []), (at("09:03"), [])]
    assert_df_equality(reasons_of(cleaned, "FIRSTBAD"), expected(spark, want), ignore_nullable=True)


def test_rule4_short_jitter_at_1hz_is_not_impossible(cleaned):
    rows = cleaned.where("vehicle_id = 'JITTER'").collect()
    assert len(rows) == 8 and all(r.is_usable and r.quality_reasons == [] for r in rows)


def test_rule4_adaptive_cap_protects_a_vehicle_faster_than_its_physical_cap(spark, cfg):
    """A car capped (in conf) at 30 km/h normally drives 20 km/h; one leg at 50 km/h.
    alpha=3: threshold max(30, 3 x 20) = 60 -> kept; alpha=2: max(30, 2 x 20) = 40 -> flagged."""
    step = 0.003  # 333.6 m per minute = 20.0 km/h
    lats, lat = [], LAT0
    for i in range(12):
        lats.append(lat)
        lat += 0.0075 if i == 5 else step  # 834 m in the 6th minute = 50 km/h
    rows = [pt("COORD", f"10:{i:02d}", la) for i, la in enumerate(lats)]
    bronze = bronze_df(spark, rows)
    caps = {**cfg.clean.physical_max_speed_kmh, "car": 30.0}
    lenient = clean_telematics(bronze, vehicles_df(spark), params_for(cfg, physical_max_speed_kmh=caps))
    strict = clean_telematics(bronze, vehicles_df(spark), params_for(cfg, physical_max_speed_kmh=caps, adaptive_speed_alpha=2.0))
    assert lenient.where("size(quality_reasons) > 0").count() == 0
    flagged = strict.where("size(quality_reasons) > 0").select("ts", "quality_reasons")
    assert_df_equality(flagged, expected(spark, [(at("10:06"), ["impossible_speed"])]), ignore_nullable=True)


# ---------------------------------------------------------------------------------------------
# Rule 5
# ---------------------------------------------------------------------------------------------
def test_rule5_battery_rules_and_soc_repair(spark, cleaned):
    got = cleaned.where("vehicle_id = 'SOC'").select("ts", "quality_reasons", "soc_pct", "soc_imputed").orderBy("ts")
    schema = "ts timestamp, quality_reasons array<string>, soc_pct double, soc_imputed boolean"
    want = [
        (at("10:00"), [], 50.0, False),
        (at("10:01"), [], 50.0, False),
        (at("10:02"), ["soc_spike"], 50.0, True),  # between 50 and 50
        (at("10:03"), [], 50.0, False),
        (at("10:04"), ["soc_out_of_range"], 50.0, True),
        (at("10:05"), [], 50.0, False),
        (at("10:06"), ["soc_rate"], 40.0, True),  # halfway between 50 (10:05) and 30 (10:07)
        (at("10:07"), [], 30.0, False),
        (at("10:08"), [], 31.5, False),
        (at("10:09"), [], 33.0, False),
        (at("10:10"), [], 33.0, False),
        (at("10:11"), ["soc_rise_while_driving"], 35.5, True),
        (at("10:12"), [], 38.0, False),
        (at("10:13"), [], 39.0, False),
        (at("10:14"), [], 39.0, False),
        (at("10:15"), ["missing_value"], 38.5, True),  # informational: still usable
        (at("10:16"), [], 38.0, False),
    ]
    assert_approx_df_equality(got, expected(spark, want, schema), 1e-9, ignore_nullable=True)
    assert cleaned.where("vehicle_id = 'SOC' and ts = '2024-03-05 10:15:00'").first().is_usable


def test_rule5_spike_between_sparse_parked_heartbeats(spark, cleaned):
    """A spike between heartbeats 35 min apart at one place is caught (a parked vehicle cannot give a
    charge back); a charge that stays is kept; legs that move are judged by the 30-min limit."""
    want = [
        (at("10:00"), []), (at("10:35"), []), (at("11:10"), ["soc_spike"]), (at("11:45"), []), (at("12:20"), []),
        (at("12:55"), []), (at("13:30"), []), (at("14:05"), []), (at("14:40"), []),
    ]  # fmt: skip
    assert_df_equality(reasons_of(cleaned, "SPARSE"), expected(spark, want), ignore_nullable=True)


# ---------------------------------------------------------------------------------------------
# Rule 6 and event-time order
# ---------------------------------------------------------------------------------------------
def test_rule6_timestamps_and_out_of_order_arrival(spark, cleaned):
    want = [
        (datetime(2019, 6, 1), ["ts_before_start"]),
        (at("10:00"), []),
        (at("10:01"), []),
        (at("10:02"), []),
        (at("10:03"), []),
        (datetime(2030, 1, 1), ["ts_future"]),
    ]
    assert_df_equality(reasons_of(cleaned, "TS"), expected(spark, want), ignore_nullable=True)


def test_input_order_does_not_change_the_result(spark, cfg, bronze, cleaned):
    shuffled = bronze.orderBy(F.rand(seed=3)).repartition(3)
    again = clean_telematics(shuffled, vehicles_df(spark), params_for(cfg))
    cols = ["vehicle_id", "ts", "lat_orig", "lat", "lon", "soc_pct", "quality_flags", "is_usable"]
    assert_df_equality(again.select(*cols), cleaned.select(*cols), ignore_row_order=True, allow_nan_equality=True)


# ---------------------------------------------------------------------------------------------
# Repair edge cases, local time, shape
# ---------------------------------------------------------------------------------------------
def test_repair_start_end_gap_fill_and_single_points(spark, cleaned):
    got = cleaned.where(F.col("vehicle_id").startswith("R_")).select("vehicle_id", "ts", "lat", "lon", "position_imputed", "is_usable").orderBy("vehicle_id", "ts")
    schema = "vehicle_id string, ts timestamp, lat double, lon double, position_imputed boolean, is_usable boolean"
    want = [
        ("R_END", at("10:00"), 28.620, 77.220, False, True),
        ("R_END", at("10:01"), 28.621, 77.220, False, True),
        ("R_END", at("10:05"), 28.621, 77.220, True, False),  # forward fill (4 min)
        ("R_FILL", at("10:00"), 28.650, 77.240, False, True),
        ("R_FILL", at("10:03"), 28.650, 77.240, True, False),  # 15 min gap: copy of 10:00 (3 min)
        ("R_FILL", at("10:15"), 28.655, 77.240, False, True),
        ("R_GAP", at("10:00"), 28.630, 77.230, False, True),
        ("R_GAP", at("10:20"), None, None, False, False),  # 30 min gap, both 10+ min away
        ("R_GAP", at("10:30"), 28.640, 77.230, False, True),
        ("R_ONE_OK", at("10:00"), 28.660, 77.250, False, True),
        ("R_SINGLE", at("10:00"), None, None, False, False),
        ("R_START", at("10:00"), 28.610, 77.210, True, False),  # backward fill (2 min)
        ("R_START", at("10:02"), 28.610, 77.210, False, True),
        ("R_START", at("10:03"), 28.611, 77.210, False, True),
    ]
    assert_approx_df_equality(got, expected(spark, want, schema), 1e-9, ignore_nullable=True)


def test_local_time_follows_vehicle_timezone_across_dst(spark, cleaned):
    got = cleaned.where(F.col("vehicle_id").isin("EU1", "NOVEH")).select("vehicle_id", "ts", "timezone", "ts_local", "local_date").orderBy("vehicle_id", "ts")
    schema = "vehicle_id string, ts timestamp, timezone string, ts_local timestamp, local_date date"
    d = lambda y, m, day: datetime(y, m, day).date()  # noqa: E731
    want = [
        ("EU1", datetime(2024, 3, 31, 0, 30), "Europe/Berlin", datetime(2024, 3, 31, 1, 30), d(2024, 3, 31)),  # CET
        ("EU1", datetime(2024, 3, 31, 1, 30), "Europe/Berlin", datetime(2024, 3, 31, 3, 30), d(2024, 3, 31)),  # CEST
        ("EU1", datetime(2024, 10, 27, 0, 30), "Europe/Berlin", datetime(2024, 10, 27, 2, 30), d(2024, 10, 27)),
        ("EU1", datetime(2024, 10, 27, 1, 30), "Europe/Berlin", datetime(2024, 10, 27, 2, 30), d(2024, 10, 27)),
        ("NOVEH", datetime(2024, 3, 4, 20, 0), "Asia/Kolkata", datetime(2024, 3, 5, 1, 30), d(2024, 3, 5)),
    ]
    assert_df_equality(got, expected(spark, want, schema), ignore_nullable=True)


def test_rows_in_equal_rows_out_and_silver_columns(bronze, cleaned):
    assert cleaned.count() == bronze.count() == len(ALL_ROWS)
    for c in (*CANONICAL, "lat_orig", "soc_pct_orig", "position_imputed", "soc_imputed", "speed_imputed",
              "odometer_imputed", "quality_flags", "quality_reasons", "is_usable", "ts_local", "local_date",
              "source_name", "source_file", "date"):  # fmt: skip
        assert c in cleaned.columns, c
    assert cleaned.columns[-1] == "date"
    # is_usable is exactly "no blocking flag"
    assert cleaned.where((F.col("quality_flags").bitwiseAND(BLOCKING_MASK) == 0) != F.col("is_usable")).count() == 0


def test_missing_speed_and_odometer_are_repaired_and_stay_usable(spark, cleaned):
    got = cleaned.where("vehicle_id = 'NULLS'").select("ts", "speed_kmh", "odometer_km", "speed_imputed", "odometer_imputed", "is_usable", "quality_reasons")
    schema = "ts timestamp, speed_kmh double, odometer_km double, speed_imputed boolean, odometer_imputed boolean, is_usable boolean, quality_reasons array<string>"
    want = [
        (at("10:00"), 20.0, 100.0, False, False, True, []),
        (at("10:01"), 22.0, 100.2, True, True, True, ["missing_value"]),
        (at("10:02"), 24.0, 100.4, False, False, True, []),
    ]
    assert_approx_df_equality(got.orderBy("ts"), expected(spark, want, schema), 1e-9, ignore_nullable=True)


def test_quality_daily_counts_and_coverage(spark):
    """Two local days of one vehicle: 3 rows on 5 Mar (one flagged) over 2 local hours, 1 on 6 Mar."""
    silver = spark.createDataFrame(
        [
            ("V1", datetime(2024, 3, 5, 4, 0), datetime(2024, 3, 5, 9, 30), 0, True, False, False),
            ("V1", datetime(2024, 3, 5, 4, 10), datetime(2024, 3, 5, 9, 40), FLAGS["speed_spike"], False, True, False),
            ("V1", datetime(2024, 3, 5, 5, 0), datetime(2024, 3, 5, 10, 30), FLAGS["missing_value"], True, False, True),
            ("V1", datetime(2024, 3, 5, 20, 0), datetime(2024, 3, 6, 1, 30), 0, True, False, False),
        ],
        "vehicle_id string, ts timestamp, ts_local timestamp, quality_flags int, is_usable boolean, position_imputed boolean, soc_imputed boolean",
    ).withColumn("local_date", F.to_date("ts_local"))
    daily = quality_daily(silver)
    got = daily.select(
        "vehicle_id", "local_date", "rows", "usable_rows", "share_usable", "n_speed_spike", "n_missing_value",
        "n_position_imputed", "n_soc_imputed", "coverage_hours", "usable_hours",
    ).orderBy("local_date")  # fmt: skip
    schema = (
        "vehicle_id string, local_date date, rows long, usable_rows long, share_usable double, n_speed_spike long,"
        " n_missing_value long, n_position_imputed long, n_soc_imputed long, coverage_hours long, usable_hours long"
    )
    want = [
        ("V1", datetime(2024, 3, 5).date(), 3, 2, 0.666667, 1, 1, 1, 1, 2, 2),
        ("V1", datetime(2024, 3, 6).date(), 1, 1, 1.0, 0, 0, 0, 0, 1, 1),
    ]
    assert_df_equality(got, expected(spark, want, schema), ignore_nullable=True)
    summary = {r.rule: r.rows_flagged for r in rule_summary(daily).collect()}
    assert summary["speed_spike"] == 1 and summary["missing_value"] == 1 and summary["duplicate"] == 0


def test_dataset_start_defaults_to_the_generator_start(tmp_path):
    params = cleaning_params(make_config(tmp_path, "generator.start_date='2024-03-04'"), as_of=AS_OF)
    assert params.dataset_start == datetime(2024, 3, 3, tzinfo=timezone.utc)
    explicit = cleaning_params(make_config(tmp_path, "clean.dataset_start=2021-01-01"), as_of=AS_OF)
    assert explicit.dataset_start == datetime(2021, 1, 1, tzinfo=timezone.utc)


# ---------------------------------------------------------------------------------------------
# The job
# ---------------------------------------------------------------------------------------------
def test_job_writes_silver_and_gold(spark, fresh_cfg, capsys):
    from jobs.clean import main

    rows = [*spike_rows(), *soc_rows(), *coord_rows()]
    tables.write(bronze_df(spark, rows), fresh_cfg, "bronze.telematics", partition_by=["date"])
    # a timezone that is not an IANA zone falls back to clean.default_timezone (with a note)
    fleet = vehicles_df(spark).withColumn("timezone", F.when(F.col("vehicle_id") == "SOC", F.lit("Mars/Olympus")).otherwise(F.col("timezone")))
    tables.write(fleet, fresh_cfg, "bronze.vehicles")
    root = fresh_cfg.storage.root
    argv = [
        "--env", "test",
        "--conf", f"storage.root={root}",
        "--conf", f"storage.restricted_root={root}/restricted",
        "--conf", "clean.dataset_start=2024-03-01",
        "--as-of", "2024-03-10T00:00:00+00:00",
    ]  # fmt: skip
    first = main(argv)
    printed = capsys.readouterr().out
    assert first.rows_in == first.rows_out == len(rows)
    assert any("Mars/Olympus" in note for note in first.notes)
    assert "speed_spike" in printed and "usable" in printed
    print(printed)

    silver = tables.read(spark, fresh_cfg, "silver.telematics_clean")
    assert silver.count() == len(rows)
    assert silver.where("vehicle_id = 'SPIKE' and array_contains(quality_reasons, 'speed_spike')").count() == 1
    assert tables.read(spark, fresh_cfg, "gold.quality_daily").count() == 3  # 3 vehicles x 1 local day
    assert {r.timezone for r in silver.where("vehicle_id = 'SOC'").select("timezone").distinct().collect()} == {"Asia/Kolkata"}
    partitions = {r.date for r in silver.select("date").distinct().collect()}
    assert partitions == {datetime(*DAY).date()}

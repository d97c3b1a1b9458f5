"""Station KPIs, opening-hours parsing, fleet <-> station matching and coverage gaps.

Hand-built rows with expected values written out by hand (chispa), and the real AFDC exports
(NY 2025 + WA 2023, different columns) ingested with conf/datasets/afdc_stations.yaml and checked
against KPIs computed independently here with pandas from the raw CSVs.
"""

from __future__ import annotations

import math
import re
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import pytest
from chispa import assert_approx_df_equality, assert_df_equality
from pyspark.sql import functions as F

from common.core.config import StationsConfig
from common.io import tables
from common.network.stations import (
    access_hours_class,
    connector_diversity,
    expansion_gaps,
    match_events_to_stations,
    normalise_fleet_events,
    station_attributes,
    station_fleet_usage,
    station_kpis,
)
from tests.conftest import make_config, real_data

PARAMS = StationsConfig()
M_PER_DEG_LAT = 6_371_008.8 * math.pi / 180  # metres per degree of latitude on the sphere Sedona uses
STATION_COLS = (
    "station_id string, name string, lat double, lon double, status string, access string, access_hours string, "
    "level2_count int, dc_fast_count int, connector_types string, network string, power_kw double, city string, state string"
)


def north_east(lat: float, lon: float, north_m: float, east_m: float) -> tuple[float, float]:
    return lat + north_m / M_PER_DEG_LAT, lon + east_m / (M_PER_DEG_LAT * math.cos(math.radians(lat)))


# --------------------------------------------------------------------------------------------
# Opening hours and connector lists
# --------------------------------------------------------------------------------------------
WEEK_ALL_DAY = "; ".join(f"{d} 12:00am - 12:00am" for d in ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"))
WEEK_TO_1159 = "; ".join(f"{d} 12:00am - 11:59pm" for d in ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"))
WEEK_EVENINGS = "; ".join(f"{d} 6:00am - 11:59pm" for d in ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"))
WEEK_WEEKEND_SHORT = "; ".join(f"{d} 12:00am - 12:00am" for d in ("Mon", "Tue", "Wed", "Thu", "Fri")) + "; Sat 8:00am - 10:00pm; Sun 8:00am - 10:00pm"

ACCESS_HOURS_TABLE = [
    ("24 hours daily", "24_7"),
    ("24 HOURS DAILY", "24_7"),
    ("24 hours daily; for Tesla use only", "24_7"),  # restriction on who, not when
    ("24 hours daily; UW permit required 6am to 9pm M-F and 7am-12pm on Saturdays; 2 hour time limit", "24_7"),
    ("24/7", "24_7"),
    ("Open 24 hours", "24_7"),
    (WEEK_ALL_DAY, "24_7"),
    (WEEK_TO_1159, "24_7"),
    (WEEK_EVENINGS, "limited"),
    (WEEK_WEEKEND_SHORT, "limited"),
    ("7am-10pm daily", "limited"),
    ("08:00-20:00 Mon-Sat", "limited"),
    ("Dealership business hours", "limited"),
    ("9am-4pm daily (spring/fall); 9am-9pm daily (summer); closed winter", "limited"),
    ("Employee and guest use only; non-employee use after hours", "limited"),
    ("Contact station for hours of availability.", "unknown"),
    ("   ", "unknown"),
    (None, "unknown"),
]


def test_access_hours_parsing_table(spark):
    df = spark.createDataFrame([(t,) for t, _ in ACCESS_HOURS_TABLE], "access_hours string")
    got = df.select("access_hours", access_hours_class("access_hours").alias("access_hours_class"))
    expected = spark.createDataFrame(ACCESS_HOURS_TABLE, "access_hours string, access_hours_class string")
    assert_df_equality(got, expected, ignore_nullable=True)


def test_connector_diversity_counts_distinct_standards(spark):
    rows = [("J1772",), ("CHADEMO J1772COMBO",), ("J1772 J1772  TESLA",), ("  ",), (None,)]
    got = spark.createDataFrame(rows, "connector_types string").select("connector_types", connector_diversity("connector_types").alias("n"))
    expected = spark.createDataFrame([("J1772", 1), ("CHADEMO J1772COMBO", 2), ("J1772 J1772  TESLA", 2), ("  ", None), (None, None)], "connector_types string, n int")
    assert_df_equality(got, expected, ignore_nullable=True)


# --------------------------------------------------------------------------------------------
# KPIs on hand-built stations
# --------------------------------------------------------------------------------------------
def hand_stations(spark):
    rows = [
        # id, name, lat, lon, status, access, hours, L2, DC, connectors, network, kW, city, state
        ("S1", "a", 40.0, -74.0, "E", "public", "24 hours daily", 2, 2, "CHADEMO J1772COMBO", "NetA", None, "X", "NY"),
        ("S2", "b", 40.1, -74.1, "E", "public", "7am-10pm daily", 4, None, "J1772", "NetA", None, "X", "NY"),
        ("S3", "c", 40.2, -74.2, "T", "private", None, 1, 1, "J1772 TESLA J1772COMBO", "NetB", None, "Y", "NY"),
        ("S4", "d", 47.0, -122.0, "P", "public", "24/7", None, None, None, None, None, "Z", "WA"),
    ]
    return spark.createDataFrame(rows, STATION_COLS)


def test_station_kpis_by_hand(spark):
    kpis = station_kpis(station_attributes(hand_stations(spark), PARAMS))
    cols = [
        "level",
        "group",
        "stations",
        "operational_rate",
        "dc_fast_share",
        "dc_fast_port_share",
        "access_24_7_rate",
        "access_hours_unknown",
        "public_share",
        "public_private_ratio",
        "avg_connector_diversity",
    ]
    got = kpis.select(*cols).orderBy("level", "group")
    expected = spark.createDataFrame(
        [
            # S1..S4: open 2/4; DC 2/4 stations, ports 3 DC / (7 L2 + 3 DC); 24/7 S1+S4; hours unknown S3;
            # public 3 vs private 1; connector diversity (2 + 1 + 3) / 3 stations listing connectors
            ("network", "NetA", 2, 1.0, 0.5, 2 / 8, 0.5, 0, 1.0, None, 1.5),
            ("network", "NetB", 1, 0.0, 1.0, 0.5, 0.0, 1, 0.0, 0.0, 3.0),
            ("network", "unknown", 1, 0.0, 0.0, None, 1.0, 0, 1.0, None, None),
            ("overall", "all", 4, 0.5, 0.5, 3 / 10, 0.5, 1, 0.75, 3.0, 2.0),
            ("region", "NY", 3, 2 / 3, 2 / 3, 3 / 10, 1 / 3, 1, 2 / 3, 2.0, 2.0),
            ("region", "WA", 1, 0.0, 0.0, None, 1.0, 0, 1.0, None, None),
        ],
        "level string, group string, stations long, operational_rate double, dc_fast_share double, dc_fast_port_share double, "
        "access_24_7_rate double, access_hours_unknown long, public_share double, public_private_ratio double, avg_connector_diversity double",
    )
    assert_approx_df_equality(got, expected, 1e-9, ignore_nullable=True)


# --------------------------------------------------------------------------------------------
# Fleet <-> network (Sedona distance join)
# --------------------------------------------------------------------------------------------
BASE = (28.60, 77.20)


def geo_stations(spark):
    s2 = north_east(*BASE, 2000, 0)
    s3 = north_east(*BASE, 10000, 0)
    rows = [
        ("S1", "DC hub", *BASE, "E", "public", "24/7", 2, 2, "CCS2 TYPE2", "NetA", 60.0, "Delhi", "DL"),
        ("S2", "AC only", *s2, "E", "public", "24/7", 2, 0, "TYPE2", "NetB", 7.4, "Delhi", "DL"),
        ("S3", "DC planned", *s3, "P", "public", "24/7", 0, 2, "CCS2", "NetA", 60.0, "Delhi", "DL"),
    ]
    return spark.createDataFrame(rows, STATION_COLS)


def test_fleet_events_matched_to_nearest_station_within_radius(spark):
    ts = lambda h, m=0: datetime(2024, 3, 4, h, m, tzinfo=timezone.utc)  # noqa: E731
    e1 = north_east(*BASE, 20, 0)  # 20 m from S1
    e2 = north_east(*BASE, 0, 30)  # 30 m from S1
    e3 = north_east(*north_east(*BASE, 2000, 0), -10, 10)  # ~14 m from S2
    e4 = north_east(*BASE, 5000, 0)  # home charging: 3 km from S2, 5 km from S1
    events = spark.createDataFrame(
        [
            ("C1", "V1", ts(8), ts(9), *e1, 30.0, 80.0, 10.0),
            ("C2", "V2", ts(10), ts(10, 30), *e2, 40.0, 41.5, None),
            ("C3", "V1", ts(12), ts(12, 10), *e3, 50.0, 50.0, 0.0),  # stop without SOC gain
            ("C4", "V3", ts(20), ts(23), *e4, 20.0, 90.0, 5.0),
        ],
        "charge_id string, vehicle_id string, start_ts timestamp, end_ts timestamp, lat double, lon double, soc_start double, soc_end double, energy_kwh double",
    )
    matched = match_events_to_stations(normalise_fleet_events(events), geo_stations(spark), PARAMS)
    got = matched.select("event_id", "station_id", F.round("distance_m", 1).alias("distance_m")).orderBy("event_id")
    expected = spark.createDataFrame([("C1", "S1", 20.0), ("C2", "S1", 30.0), ("C3", "S2", 14.1)], "event_id string, station_id string, distance_m double")
    assert_df_equality(got, expected, ignore_nullable=True)
    plan = matched._jdf.queryExecution().executedPlan().toString()
    assert "DistanceJoin" in plan or "BroadcastIndexJoin" in plan, plan[:2000]  # Sedona's join, not a cartesian product

    usage = station_fleet_usage(matched, PARAMS).select("station_id", "fleet_charging_events", "fleet_vehicles", "fleet_kwh", "fleet_charging_hours", "events_without_soc_gain").orderBy("station_id")
    expected = spark.createDataFrame(
        [("S1", 2, 2, 10.0, 1.5, 0), ("S2", 0, 0, None, None, 1)],
        "station_id string, fleet_charging_events long, fleet_vehicles long, fleet_kwh double, fleet_charging_hours double, events_without_soc_gain long",
    )
    assert_approx_df_equality(usage, expected, 1e-9, ignore_nullable=True)


def test_expansion_gaps_need_an_open_dc_fast_station_nearby(spark):
    h1 = north_east(*BASE, 0, 500)  # 500 m from S1 (open DC): covered
    h2 = north_east(*BASE, 10000, 100)  # 100 m from S3 (DC but planned), 10 km from S1: gap
    h3 = north_east(*BASE, -60000, 0)  # 60 km away from everything: gap, nothing within 50 km
    hotspots = spark.createDataFrame([("H1", *h1, 40), ("H2", *h2, 25), ("H3", *h3, 3)], "hotspot_id string, lat double, lon double, unique_daily_visits long")
    gaps = expansion_gaps(hotspots, geo_stations(spark), PARAMS)
    got = gaps.select("hotspot_id", "unique_daily_visits", "nearest_dc_station_id", F.round("nearest_dc_distance_m", -1).alias("d"), "gap_threshold_m").orderBy("hotspot_id")
    d_h2 = math.hypot(10000, 100)
    expected = spark.createDataFrame(
        [("H2", 25, "S1", float(round(d_h2, -1)), 3000.0), ("H3", 3, None, None, 3000.0)],
        "hotspot_id string, unique_daily_visits long, nearest_dc_station_id string, d double, gap_threshold_m double",
    )
    assert_df_equality(got, expected, ignore_nullable=True)


# --------------------------------------------------------------------------------------------
# Real AFDC exports
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def afdc_cfg(spark, session_root):
    """AFDC NY 2025 + WA 2023 ingested (shipped dataset config) and gold.station_kpis written."""
    from jobs.ingest import load_dataset_files, run_ingest
    from jobs.stations import kpi_summary, run_stations

    folder = real_data("afdc_alt_fuel_stations")
    cfg = make_config(session_root / "afdc")
    inputs = load_dataset_files(["conf/datasets/afdc_stations.yaml"])
    inputs.stations[0].path = str(folder / Path(inputs.stations[0].path).name)
    run_ingest(spark, cfg, inputs, now=datetime(2026, 1, 1, tzinfo=timezone.utc))
    report = run_stations(spark, cfg)
    print("\n" + kpi_summary(spark, cfg))
    print(report.notes)
    return cfg


def afdc_kpis_with_pandas(folder: Path) -> pd.DataFrame:
    """The KPIs recomputed from the raw CSVs: electric stations, blank port counts = 0."""
    frames = [pd.read_csv(f, dtype=str, keep_default_na=False, encoding="utf-8-sig") for f in sorted(folder.glob("alt_fuel_stations_*.csv.gz"))]
    raw = pd.concat(frames, ignore_index=True)
    st = raw[raw["Fuel Type Code"] == "ELEC"].copy()
    hours = st["Access Days Time"].str.strip().str.lower()
    all_day = hours.apply(lambda h: len(set(re.findall(r"(mon|tue|wed|thu|fri|sat|sun) 12:00am - (?:12:00am|11:59pm)", h))) == 7 and len(re.findall(r"\d:\d\d[ap]m -", h)) == 7)
    st["is_24_7"] = hours.str.startswith(("24 hours", "24/7", "open 24")) | all_day
    st["dc"] = pd.to_numeric(st["EV DC Fast Count"].replace("", "0"))
    st["l2"] = pd.to_numeric(st["EV Level2 EVSE Num"].replace("", "0"))
    st["div"] = st["EV Connector Types"].apply(lambda s: len(set(s.split())) or None)
    st["public"] = st["Access Code"].str.lower() == "public"

    def kpis(g: pd.DataFrame) -> pd.Series:
        return pd.Series(
            {
                "stations": len(g),
                "operational_rate": (g["Status Code"] == "E").mean(),
                "dc_fast_share": (g.dc > 0).mean(),
                "dc_fast_port_share": g.dc.sum() / (g.dc.sum() + g.l2.sum()),
                "access_24_7_rate": g.is_24_7.mean(),
                "public_share": g.public.mean(),
                "private_stations": int((~g.public).sum()),
                "avg_connector_diversity": g["div"].dropna().mean(),
            }
        )

    out = {("region", state): kpis(g) for state, g in st.groupby("State")}
    out[("overall", "all")] = kpis(st)
    return pd.DataFrame(out).T


@pytest.mark.realdata
def test_afdc_station_kpis_match_pandas_on_raw_exports(spark, afdc_cfg):
    folder = real_data("afdc_alt_fuel_stations")
    expected = afdc_kpis_with_pandas(folder)
    got = tables.read(spark, afdc_cfg, "gold.station_kpis").where("level IN ('overall', 'region')").toPandas().set_index(["level", "group"])
    print("\nAFDC KPIs (pandas on raw CSVs):\n" + expected.to_string())
    assert set(got.index) == set(expected.index) == {("overall", "all"), ("region", "NY"), ("region", "WA")}
    for key, exp in expected.iterrows():
        row = got.loc[key]
        assert row.stations == exp.stations, key
        assert row.private_stations == exp.private_stations, key
        assert row.public_private_ratio is None or math.isnan(row.public_private_ratio)  # both exports are public-only
        for metric in ("operational_rate", "dc_fast_share", "dc_fast_port_share", "access_24_7_rate", "public_share", "avg_connector_diversity"):
            assert row[metric] == pytest.approx(exp[metric], abs=1e-12), (key, metric)
    assert got.loc[("region", "NY")].stations == 4736 and got.loc[("region", "WA")].stations == 1642  # README fuel mix
    networks = tables.read(spark, afdc_cfg, "gold.station_kpis").where("level = 'network'")
    assert networks.agg(F.sum("stations")).first()[0] == 4736 + 1642
    top = networks.orderBy(F.desc("stations")).first()
    assert top.group == "ChargePoint Network" and top.stations == 2246 + 751


# --------------------------------------------------------------------------------------------
# Generated network (truth: the generator's station table)
# --------------------------------------------------------------------------------------------
def test_station_kpis_on_generated_network_match_generator_truth(spark, fleet_bronze):
    from common.synthetic.generator import ACCESS_HOURS_24_7, build_world
    from jobs.stations import run_stations

    run_stations(spark, fleet_bronze)
    truth = build_world(fleet_bronze.generator).stations  # deterministic for the seed
    got = tables.read(spark, fleet_bronze, "gold.station_kpis").where("level = 'overall'").first()
    expected = {
        "stations": len(truth),
        "operational_rate": (truth.status == "E").mean(),
        "dc_fast_share": (truth.dc_fast_count > 0).mean(),
        "access_24_7_rate": truth.access_hours.isin(ACCESS_HOURS_24_7).mean(),
        "public_share": (truth.access == "public").mean(),
        "avg_connector_diversity": truth.connector_types.map(lambda s: len(s.split()) or None).dropna().mean(),
    }
    print("\ngenerated network KPIs:", {k: round(float(getattr(got, k)), 4) for k in expected}, "truth:", {k: round(float(v), 4) for k, v in expected.items()})
    for k, v in expected.items():
        assert getattr(got, k) == pytest.approx(v), k

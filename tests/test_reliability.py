"""Charger reliability: status -> intervals, NEVI uptime / MTBF / MTTR by hand, sessions, tests,
failed charge attempts; generator truth on `fleet_bronze`; real ESB status and Dundee sessions.

Timestamps are written as UTC strings and cast in Spark (session time zone UTC).
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from chispa import assert_approx_df_equality, assert_df_equality
from pyspark.sql import functions as F

from common.core.config import ReliabilityConfig
from common.io import tables
from common.network import stats
from common.network.reliability import (
    charger_fault_rates,
    classify_intervals,
    failed_charge_attempts,
    mark_failures,
    ocpp_status_intervals,
    port_month_minutes,
    port_reliability_monthly,
    session_outcomes,
    site_session_summary,
    snapshot_status_intervals,
)
from tests.conftest import make_config, real_data

PARAMS = ReliabilityConfig()
NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)


def ts_cols(df, *cols):
    for c in cols:
        df = df.withColumn(c, F.col(c).cast("timestamp"))
    return df


def at(minute: int, day: str = "2024-03-04") -> str:
    return f"{day} {minute // 60:02d}:{minute % 60:02d}:00"


STATUS_SCHEMA = "source_name string, station_id string, charger_id string, port_id string, ts string, status string, error_code string, info string"
INTERVAL_VIEW = ["port_id", "start_ts", "end_ts", "status", "error_code", "info", "state", "down_cause", "excluded_cause"]


# --------------------------------------------------------------------------------------------
# OCPP status -> intervals
# --------------------------------------------------------------------------------------------
def test_ocpp_status_to_intervals_with_offline_timeout_and_excluded_maintenance(spark):
    """Timeout 2100 s = 35 min; observation ends at 03:50 (minute 230)."""
    params = PARAMS.model_copy(update={"offline_timeout_s": 2100.0, "observation_end": "2024-03-04 03:50:00"})
    s = lambda port, m, status, err=None, info=None: ("ocpp", "ST1", "ST1-C0", port, at(m), status, err, info)  # noqa: E731
    rows = [
        s("P1", 0, "Available"),
        s("P1", 30, "Available"),  # heartbeat (re-sent, unchanged)
        s("P1", 40, "Unavailable", info="scheduled_maintenance"),
        s("P1", 70, "Unavailable"),  # heartbeat without the cause: still maintenance
        s("P1", 80, "Available"),
        # silence 80 -> 160 (> 35 min): offline from 80 + 35 = 115 until the next message
        s("P1", 160, "Faulted", err="GroundFailure"),
        s("P1", 190, "Faulted", err="GroundFailure"),
        s("P1", 200, "Available"),
        s("P2", 0, "Unavailable"),  # no cause: an outage; silent afterwards until the end
        s("P3", 0, "Unavailable", info="scheduled_maintenance"),
        s("P3", 60, "Unavailable"),  # after an offline gap the maintenance cause still holds
        s("P3", 90, "Available"),  # then silent until the end of observation
    ]
    status = ts_cols(spark.createDataFrame(rows, STATUS_SCHEMA), "ts")
    got = classify_intervals(ocpp_status_intervals(status, params), params).select(*INTERVAL_VIEW).orderBy("port_id", "start_ts")
    iv = lambda port, a, b, status, err, info, state, cause, excl: (port, at(a), at(b), status, err, info, state, cause, excl)  # noqa: E731
    expected = ts_cols(
        spark.createDataFrame(
            [
                iv("P1", 0, 40, "Available", None, None, "up", None, None),
                iv("P1", 40, 80, "Unavailable", None, "scheduled_maintenance", "excluded", None, "scheduled_maintenance"),
                iv("P1", 80, 115, "Available", None, None, "up", None, None),
                iv("P1", 115, 160, "Offline", None, None, "down", "offline", None),
                iv("P1", 160, 200, "Faulted", "GroundFailure", None, "down", "fault", None),
                iv("P1", 200, 230, "Available", None, None, "up", None, None),
                iv("P2", 0, 35, "Unavailable", None, None, "down", "unavailable", None),
                iv("P2", 35, 230, "Offline", None, None, "down", "offline", None),
                iv("P3", 0, 35, "Unavailable", None, "scheduled_maintenance", "excluded", None, "scheduled_maintenance"),
                iv("P3", 35, 60, "Offline", None, None, "down", "offline", None),
                iv("P3", 60, 90, "Unavailable", None, "scheduled_maintenance", "excluded", None, "scheduled_maintenance"),
                iv("P3", 90, 125, "Available", None, None, "up", None, None),
                iv("P3", 125, 230, "Offline", None, None, "down", "offline", None),
            ],
            "port_id string, start_ts string, end_ts string, status string, error_code string, info string, state string, down_cause string, excluded_cause string",
        ),
        "start_ts",
        "end_ts",
    )
    assert_df_equality(got, expected, ignore_nullable=True)


def test_snapshot_feed_absent_connector_is_available_and_gaps_are_no_data(spark):
    """ESB-style: 5-min snapshots list only non-free connectors; a gap > 15 min is NoData."""
    s = lambda port, m, status, info: ("esb_cpinfo", "CP1", "CP1", port, at(m), status, None, info)  # noqa: E731
    rows = [
        s("CP1/A", 0, "Charging", "Part"),
        s("CP1/B", 0, "Faulted", "OOS"),
        s("CP1/B", 5, "Faulted", "OOS"),
        s("CP1/A", 10, "Charging", "Occ"),
        s("CP1/B", 10, "Unavailable", "OOC"),
        s("CP1/A", 15, "Faulted", "OOS"),
        # no snapshot 20..35: the scraper returned nothing
        s("CP1/A", 40, "Charging", "Part"),
        s("CP1/A", 40, "Faulted", "OOS"),  # two sockets of one type: the working one wins
        s("CP1/B", 45, "Faulted", "OOS"),
        s("CP1/A", 50, "Charging", "Part"),  # last snapshot: closes the observation
    ]
    snaps = ts_cols(spark.createDataFrame(rows, STATUS_SCHEMA), "ts")
    got = classify_intervals(snapshot_status_intervals(snaps, PARAMS), PARAMS).select(*INTERVAL_VIEW).orderBy("port_id", "start_ts")
    iv = lambda port, a, b, status, info, state, cause: (port, at(a), at(b), status, None, info, state, cause, None)  # noqa: E731
    expected = ts_cols(
        spark.createDataFrame(
            [
                iv("CP1/A", 0, 5, "Charging", "Part", "up", None),
                iv("CP1/A", 5, 10, "Available", None, "up", None),
                iv("CP1/A", 10, 15, "Charging", "Occ", "up", None),
                iv("CP1/A", 15, 20, "Faulted", "OOS", "down", "fault"),
                iv("CP1/A", 20, 40, "NoData", None, "no_data", None),
                iv("CP1/A", 40, 45, "Charging", "Part", "up", None),
                iv("CP1/A", 45, 50, "Available", None, "up", None),
                iv("CP1/B", 0, 10, "Faulted", "OOS", "down", "fault"),
                iv("CP1/B", 10, 15, "Unavailable", "OOC", "down", "offline"),
                iv("CP1/B", 15, 20, "Available", None, "up", None),
                iv("CP1/B", 20, 40, "NoData", None, "no_data", None),
                iv("CP1/B", 40, 45, "Available", None, "up", None),
                iv("CP1/B", 45, 50, "Faulted", "OOS", "down", "fault"),
            ],
            "port_id string, start_ts string, end_ts string, status string, error_code string, info string, state string, down_cause string, excluded_cause string",
        ),
        "start_ts",
        "end_ts",
    )
    assert_df_equality(got, expected, ignore_nullable=True)


# --------------------------------------------------------------------------------------------
# NEVI uptime, availability, MTBF, MTTR computed by hand
# --------------------------------------------------------------------------------------------
def hand_intervals(spark):
    """Port X, April 2024 (43,200 min): up 42,420 min, two outages of 360 and 120 + 60 min
    (fault, then offline: one episode), 240 min scheduled maintenance (excluded).
    Port Z: an outage over the March/April boundary (120 min each side)."""
    rows = [
        ("X", "2024-04-01 00:00:00", "2024-04-05 00:00:00", "up", None),
        ("X", "2024-04-05 00:00:00", "2024-04-05 06:00:00", "down", "fault"),
        ("X", "2024-04-05 06:00:00", "2024-04-15 00:00:00", "up", None),
        ("X", "2024-04-15 00:00:00", "2024-04-15 04:00:00", "excluded", None),
        ("X", "2024-04-15 04:00:00", "2024-04-20 00:00:00", "up", None),
        ("X", "2024-04-20 00:00:00", "2024-04-20 02:00:00", "down", "fault"),
        ("X", "2024-04-20 02:00:00", "2024-04-20 03:00:00", "down", "offline"),
        ("X", "2024-04-20 03:00:00", "2024-05-01 00:00:00", "up", None),
        ("Z", "2024-03-31 20:00:00", "2024-03-31 22:00:00", "up", None),
        ("Z", "2024-03-31 22:00:00", "2024-04-01 02:00:00", "down", "fault"),
        ("Z", "2024-04-01 02:00:00", "2024-04-01 04:00:00", "up", None),
    ]
    df = spark.createDataFrame(rows, "port_id string, start_ts string, end_ts string, state string, down_cause string")
    return ts_cols(df, "start_ts", "end_ts").select(F.lit("hand").alias("source_name"), F.lit("ST").alias("station_id"), F.lit("C").alias("charger_id"), "*")


def test_monthly_uptime_mtbf_mttr_by_hand(spark):
    intervals = mark_failures(hand_intervals(spark))
    first_seen = spark.createDataFrame([("hand", "X", "2024-04-01 00:00:00"), ("hand", "Z", "2024-03-31 20:00:00")], "source_name string, port_id string, first_seen_ts string").withColumn(
        "first_seen_ts", F.col("first_seen_ts").cast("timestamp")
    )
    sessions = spark.createDataFrame([("X", "2024-04-01", 400, 396, 4)], "port_id string, month string, sessions long, successful_sessions long, failed_sessions long").withColumn(
        "month", F.col("month").cast("date")
    )
    monthly = port_reliability_monthly(port_month_minutes(intervals), first_seen, sessions, PARAMS)
    got = monthly.select(
        "port_id",
        F.date_format("month", "yyyy-MM").alias("month"),
        "observed_minutes",
        "up_minutes",
        "down_minutes",
        "excluded_minutes",
        "failures",
        "down_episodes",
        "mtbf_hours",
        "mttr_hours",
        "availability_pct",
        "faults_per_1000_sessions",
        "outage_minutes_12m",
        "excluded_minutes_12m",
        "nevi_uptime_pct",
        "observed_uptime_pct",
        "uptime_basis",
        "uptime_pct",
        "below_target",
    ).orderBy("port_id", "month")
    expected = spark.createDataFrame(
        [
            # X: MTBF = 42,420 min / 60 / 2 failures = 353.5 h; MTTR = 540 / 60 / 2 episodes = 4.5 h;
            # availability = 42,420 / (42,420 + 540); T_outage = 540 + 240, T_excluded = 240;
            # NEVI = (525,600 - 540) / 525,600; observed = (43,200 - 540) / 43,200; both faults -> 2 / 400 sessions
            (
                "X",
                "2024-04",
                43200.0,
                42420.0,
                540.0,
                240.0,
                2,
                2,
                353.5,
                4.5,
                100 * 42420 / 42960,
                5.0,
                780.0,
                240.0,
                100 * (525600 - 540) / 525600,
                100 * (43200 - 540) / 43200,
                "observed_period",
                100 * (43200 - 540) / 43200,
                False,
            ),
            # Z: the failure and the episode count in March (where the outage starts)
            ("Z", "2024-03", 240.0, 120.0, 120.0, 0.0, 1, 1, 2.0, 2.0, 50.0, None, 120.0, 0.0, 100 * (525600 - 120) / 525600, 50.0, "observed_period", 50.0, True),
            ("Z", "2024-04", 240.0, 120.0, 120.0, 0.0, 0, 0, None, None, 50.0, None, 240.0, 0.0, 100 * (525600 - 240) / 525600, 50.0, "observed_period", 50.0, True),
        ],
        "port_id string, month string, observed_minutes double, up_minutes double, down_minutes double, excluded_minutes double, "
        "failures long, down_episodes long, mtbf_hours double, mttr_hours double, availability_pct double, faults_per_1000_sessions double, "
        "outage_minutes_12m double, excluded_minutes_12m double, nevi_uptime_pct double, observed_uptime_pct double, uptime_basis string, "
        "uptime_pct double, below_target boolean",
    )
    assert_approx_df_equality(got, expected, 1e-9, ignore_nullable=True)


def test_trailing_window_basis_when_the_port_is_observed_for_12_months(spark):
    intervals = mark_failures(hand_intervals(spark).where("port_id = 'X'"))
    first_seen = spark.createDataFrame([("hand", "X", "2023-01-01 00:00:00")], "source_name string, port_id string, first_seen_ts string").withColumn(
        "first_seen_ts", F.col("first_seen_ts").cast("timestamp")
    )
    row = port_reliability_monthly(port_month_minutes(intervals), first_seen, None, PARAMS).first()
    assert row.window_complete and row.uptime_basis == "trailing_12m"
    assert row.uptime_pct == pytest.approx(100 * (525600 - 540) / 525600)  # mu = (525,600 - (780 - 240)) / 525,600
    assert not row.below_target


# --------------------------------------------------------------------------------------------
# Sessions, hotspots, statistics
# --------------------------------------------------------------------------------------------
SESSION_SCHEMA = "session_id string, port_id string, station_id string, vehicle_id string, start_ts string, end_ts string, kwh double, success boolean"


def test_session_success_and_first_time_success(spark):
    rows = [
        ("s1", "P1", "S", "V1", "2024-03-04 10:00:00", "2024-03-04 10:02:00", 0.0, False),
        ("s2", "P2", "S", "V1", "2024-03-04 10:10:00", "2024-03-04 11:00:00", 20.0, True),  # retry of s1 (8 min later)
        ("s3", "P1", "S", "V1", "2024-03-05 09:00:00", "2024-03-05 10:00:00", 18.0, True),  # new attempt next day
        ("s4", "P1", "S", None, "2024-03-04 12:00:00", "2024-03-04 13:00:00", 10.0, True),
        ("s5", "P1", "S", None, "2024-03-04 14:00:00", "2024-03-04 14:05:00", 0.05, None),  # no flag: < 0.1 kWh = failed
        ("s6", "P2", "S", None, "2024-03-04 15:00:00", "2024-03-04 16:00:00", 5.0, None),  # no flag: delivered = ok
    ]
    sessions = ts_cols(spark.createDataFrame(rows, SESSION_SCHEMA), "start_ts", "end_ts").withColumn("source_name", F.lit("hand"))
    outcomes = session_outcomes(sessions, PARAMS)
    flags = outcomes.select("session_id", "succeeded", "first_attempt").orderBy("session_id")
    expected = spark.createDataFrame(
        [("s1", False, True), ("s2", True, False), ("s3", True, True), ("s4", True, True), ("s5", False, True), ("s6", True, True)],
        "session_id string, succeeded boolean, first_attempt boolean",
    )
    assert_df_equality(flags, expected, ignore_nullable=True)
    site = site_session_summary(outcomes, PARAMS, mean_kwh=10.0).select(
        "station_id", "sessions", "failed_sessions", "session_success_rate_pct", "attempt_sequences", "first_time_success_rate_pct", "lost_kwh_est", "lost_revenue_est"
    )
    # 6 sessions, 2 failed; 5 attempt sequences (V1: s1+s2, s3; s4, s5, s6), first tries ok: s3, s4, s6
    expected = spark.createDataFrame(
        [("S", 6, 2, 100 * 4 / 6, 5, 60.0, 20.0, 20.0 * 0.35)],
        "station_id string, sessions long, failed_sessions long, session_success_rate_pct double, attempt_sequences long, first_time_success_rate_pct double, lost_kwh_est double, lost_revenue_est double",
    )
    assert_approx_df_equality(site, expected, 1e-9, ignore_nullable=True)


def test_fault_rate_hotspot_z_against_the_portfolio(spark):
    rows = []
    for charger, n, failed in (("C1", 100, 5), ("C2", 100, 5), ("C3", 100, 20), ("C4", 10, 5)):
        for i in range(n):
            rows.append((f"{charger}-{i}", f"{charger}/1", "S", None, f"2024-03-0{1 + i % 9} 10:00:00", None, 1.0, i >= failed))
    sessions = ts_cols(spark.createDataFrame(rows, SESSION_SCHEMA), "start_ts", "end_ts").withColumn("source_name", F.lit("hand"))
    outcomes = session_outcomes(sessions, PARAMS).withColumn("as_of", F.lit("2024-03-10 00:00:00").cast("timestamp"))
    chargers = spark.createDataFrame([(f"C{i}/1", f"C{i}") for i in range(1, 5)], "port_id string, charger_id string")
    got = charger_fault_rates(outcomes, chargers, "as_of", PARAMS).select("charger_id", "sessions_window", "failed_window", "fault_rate", "z", "is_hotspot").orderBy("charger_id")
    # pooled over scored chargers (>= 20 sessions): p = 30 / 300 = 0.1, se = sqrt(0.1 x 0.9 / 100) = 0.03
    expected = spark.createDataFrame(
        [("C1", 100, 5, 0.05, -0.05 / 0.03, False), ("C2", 100, 5, 0.05, -0.05 / 0.03, False), ("C3", 100, 20, 0.2, 0.1 / 0.03, True), ("C4", 10, 5, 0.5, None, False)],
        "charger_id string, sessions_window long, failed_window long, fault_rate double, z double, is_hotspot boolean",
    )
    assert_approx_df_equality(got, expected, 1e-9, ignore_nullable=True)
    # The Spark column is statsmodels' one-sample proportion z-test against the portfolio rate
    # (variance at the null), computed per charger without collecting the sessions.
    from statsmodels.stats.proportion import proportions_ztest

    for r in got.where("z IS NOT NULL").collect():
        z_sm, _ = proportions_ztest(r.failed_window, r.sessions_window, value=0.1, prop_var=0.1)
        assert r.z == pytest.approx(z_sm, rel=1e-12), r


def test_statistical_tests_on_known_numbers():
    # two-proportion z-test, pooled: p = 45 / 820; z = (0.075 - 15/420) / sqrt(p (1 - p) (1/400 + 1/420))
    [two] = stats.two_window_fault_test("x", (30, 400), (15, 420), {}, 0.05)
    p = 45 / 820
    z = (30 / 400 - 15 / 420) / np.sqrt(p * (1 - p) * (1 / 400 + 1 / 420))
    assert two["statistic"] == pytest.approx(z) and two["value"] == pytest.approx(30 / 400 - 15 / 420)
    assert two["p_value"] < 0.05 and two["ci_low"] < two["value"] < two["ci_high"]

    # logit: failure odds double with every session of load -> odds ratio ~2
    rng = np.random.default_rng(3)
    load = rng.integers(0, 6, 4000)
    prob = 1 / (1 + np.exp(-(-4 + np.log(2) * load)))
    [logit] = stats.load_fault_logit("x", pd.DataFrame({"load_sessions_24h": load, "failed": (rng.random(4000) < prob).astype(int)}), 0.05)
    assert logit["value"] == pytest.approx(2.0, rel=0.15) and logit["ci_low"] < logit["value"] < logit["ci_high"]
    assert logit["p_value"] < 1e-6 and json.loads(logit["parameters"])["coef"] == pytest.approx(np.log(logit["value"]))

    # bootstrap: 12 failed sessions x mean 10 kWh x 0.5 = 60, CI around it
    kwh = rng.gamma(4.0, 2.5, 3000)
    [boot] = stats.lost_revenue_bootstrap("x", kwh, 12, 0.5, "USD", 500, 0.95, 42)
    assert boot["value"] == pytest.approx(12 * kwh.mean() * 0.5)
    assert boot["ci_low"] < boot["value"] < boot["ci_high"] and json.loads(boot["parameters"])["method"] == "BCa"
    [const] = stats.lost_revenue_bootstrap("x", np.full(50, 7.0), 2, 1.0, "USD", 200, 0.95, 42)
    assert const["value"] == pytest.approx(14.0) and const["ci_low"] == pytest.approx(14.0)

    # precision / recall: labels = uptime < 97
    chargers = pd.DataFrame({"z": [3.1, 2.4, 1.2, -0.5, 2.2], "uptime_pct": [80.0, 99.0, 90.0, 99.5, 96.0]})
    pr = {(r["subject"], r["metric"]): r["value"] for r in stats.alert_precision_recall("x", chargers, [1.0, 2.0, 3.0], 97.0)}
    assert pr[("z>2", "precision")] == pytest.approx(2 / 3) and pr[("z>2", "recall")] == pytest.approx(2 / 3)
    assert pr[("z>1", "precision")] == pytest.approx(3 / 4) and pr[("z>1", "recall")] == pytest.approx(1.0)
    assert pr[("z>3", "precision")] == pytest.approx(1.0) and pr[("z>3", "recall")] == pytest.approx(1 / 3)


# --------------------------------------------------------------------------------------------
# Failed charge attempts (fleet stop without SOC gain while the port was down)
# --------------------------------------------------------------------------------------------
def test_failed_charge_attempts_need_no_available_port_and_one_down(spark):
    iv = ts_cols(
        spark.createDataFrame(
            [
                ("S", "P1", "2024-03-04 08:00:00", "2024-03-04 12:00:00", "Faulted", "down"),
                ("S", "P2", "2024-03-04 08:00:00", "2024-03-04 10:00:00", "Charging", "up"),
                ("S", "P2", "2024-03-04 10:00:00", "2024-03-04 12:00:00", "Available", "up"),
                ("S", "P1", "2024-03-04 12:00:00", "2024-03-04 18:00:00", "Available", "up"),
                ("S", "P2", "2024-03-04 12:00:00", "2024-03-04 18:00:00", "Available", "up"),
            ],
            "station_id string, port_id string, start_ts string, end_ts string, status string, state string",
        ),
        "start_ts",
        "end_ts",
    )
    stops = ts_cols(
        spark.createDataFrame(
            [
                ("a", "V1", "2024-03-04 09:00:00", "2024-03-04 09:10:00", "S", 20.0, 20.0),  # P1 down, P2 busy: failed
                ("b", "V2", "2024-03-04 11:00:00", "2024-03-04 11:10:00", "S", 30.0, 30.0),  # P2 free: not the network
                ("c", "V3", "2024-03-04 13:00:00", "2024-03-04 13:10:00", "S", 40.0, 40.2),  # all up: no gain, not failed
                ("d", "V1", "2024-03-04 14:00:00", "2024-03-04 15:00:00", "S", 20.0, 70.0),  # charged: not an attempt
            ],
            "event_id string, vehicle_id string, start_ts string, end_ts string, station_id string, soc_start_pct double, soc_end_pct double",
        ),
        "start_ts",
        "end_ts",
    ).withColumn("soc_gain_pct", F.col("soc_end_pct") - F.col("soc_start_pct"))
    got = failed_charge_attempts(stops, iv, 1.0).select("event_id", "ports_available", "ports_down", "ports_busy", "port_state", "is_failed_attempt").orderBy("event_id")
    expected = spark.createDataFrame(
        [("a", 0, 1, 1, "some_down", True), ("b", 1, 1, 0, "some_down", False), ("c", 2, 0, 0, "none_down", False)],
        "event_id string, ports_available long, ports_down long, ports_busy long, port_state string, is_failed_attempt boolean",
    )
    assert_df_equality(got, expected, ignore_nullable=True)


# --------------------------------------------------------------------------------------------
# Generator truth (fleet_bronze: 24 vehicles x 7 days, seed 7)
# --------------------------------------------------------------------------------------------
def _union(intervals: list[tuple[float, float]]) -> list[tuple[float, float]]:
    out: list[list[float]] = []
    for s, e in sorted(intervals):
        if out and s <= out[-1][1]:
            out[-1][1] = max(out[-1][1], e)
        else:
            out.append([s, e])
    return [(s, e) for s, e in out]


def _overlap(a: list[tuple[float, float]], b: list[tuple[float, float]]) -> float:
    total, i, j = 0.0, 0, 0
    while i < len(a) and j < len(b):
        lo, hi = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        total += max(0.0, hi - lo)
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return total


def _by_port(pdf: pd.DataFrame) -> dict[str, list[tuple[float, float]]]:
    return {p: _union(list(zip(g.s, g.e))) for p, g in pdf.groupby("port_id")}


def _seconds(df, start: str, end: str):
    return df.select("port_id", F.col(start).cast("double").alias("s"), F.col(end).cast("double").alias("e")).toPandas()


@pytest.fixture(scope="module")
def fleet_reliability(spark, fleet_bronze):
    from jobs.reliability import run_reliability

    report = run_reliability(spark, fleet_bronze)
    print("\n", report.notes)
    return fleet_bronze


def test_port_downtime_matches_generator_truth(spark, fleet_reliability):
    """Time overlap per port between detected downtime and truth.charger_outages: recall = share
    of true downtime detected, precision = share of detected downtime that is true."""
    cfg = fleet_reliability
    iv = tables.read(spark, cfg, "silver.port_status_intervals")
    truth = tables.read(spark, cfg, "truth.charger_outages")
    lines = [f"{'truth cause':<12} {'truth h':>8} {'detected h':>10} {'overlap h':>9} {'recall':>7} {'precision':>9}"]
    scores = {}
    for cause, state in (("fault", "down"), ("offline", "down"), ("maintenance", "excluded"), ("all_down", "down")):
        t = truth.where("NOT excluded") if cause == "all_down" else truth.where(F.col("cause") == cause)
        d = iv.where(F.col("state") == state)
        if cause in ("fault", "offline"):
            d = d.where(F.col("down_cause") == cause)
        tp, dp = _by_port(_seconds(t, "start_ts", "end_ts")), _by_port(_seconds(d, "start_ts", "end_ts"))
        t_total = sum(e - s for v in tp.values() for s, e in v)
        d_total = sum(e - s for v in dp.values() for s, e in v)
        both = sum(_overlap(tp[p], dp.get(p, [])) for p in tp)
        recall, precision = both / t_total, both / d_total
        scores[cause] = (recall, precision)
        lines.append(f"{cause:<12} {t_total / 3600:>8.1f} {d_total / 3600:>10.1f} {both / 3600:>9.1f} {recall:>7.3f} {precision:>9.3f}")
    print("\nport downtime vs truth.charger_outages (time overlap per port)\n" + "\n".join(lines))
    # Ceilings set by the generated telemetry itself, not by the intervals: a charge that started
    # before a fault or a maintenance (fleet vehicles ignore maintenance) ends inside it with
    # Finishing/Available notifications, so the feed reports the port up for the rest of the
    # outage; overlapping outages end at the first one's Available. Offline starts one timeout
    # after the last message and ends at the next heartbeat.
    assert scores["all_down"][0] >= 0.85 and scores["all_down"][1] >= 0.9
    assert scores["fault"][0] >= 0.75 and scores["fault"][1] >= 0.95
    assert scores["maintenance"][0] >= 0.85 and scores["maintenance"][1] >= 0.95
    assert scores["offline"][0] >= 0.85 and scores["offline"][1] >= 0.85


def test_fleet_monthly_uptime_and_failures(spark, fleet_reliability):
    cfg = fleet_reliability
    monthly = tables.read(spark, cfg, "gold.port_reliability_monthly")
    truth = tables.read(spark, cfg, "truth.charger_outages")
    assert monthly.where("uptime_basis <> 'observed_period'").count() == 0  # 7 days < 12 months
    per_port = monthly.groupBy("port_id").agg(F.min("observed_uptime_pct").alias("u"), F.sum("failures").alias("f")).toPandas()
    true_down = pd.DataFrame(
        [(p, sum(e - s for s, e in v)) for p, v in _by_port(_seconds(truth.where("NOT excluded"), "start_ts", "end_ts")).items()],
        columns=["port_id", "down_s"],
    )
    span = 7 * 86400
    merged = per_port.merge(true_down, on="port_id", how="left").fillna({"down_s": 0.0})
    merged["truth_uptime"] = 100 * (1 - merged.down_s.clip(upper=span) / span)
    err = (merged.u - merged.truth_uptime).abs()
    print(
        f"\nports {len(merged)}: observed uptime vs truth, mean abs error {err.mean():.3f} pp, max {err.max():.3f} pp; "
        f"below 97 %: detected {(merged.u < 97).sum()}, truth {(merged.truth_uptime < 97).sum()}"
    )
    assert err.mean() < 1.0
    assert ((merged.u < 97) == (merged.truth_uptime < 97)).mean() >= 0.9
    tests = tables.read(spark, cfg, "gold.reliability_tests")
    print(tests.where("test <> 'fault_rate_hotspot'").select("test", "subject", "metric", "value", "ci_low", "ci_high", "p_value", "n", "note").toPandas().to_string())
    assert {"two_window_fault_rate", "load_fault_logit", "lost_revenue_bootstrap", "alert_threshold_pr"} <= {r.test for r in tests.select("test").distinct().collect()}
    site = tables.read(spark, cfg, "gold.site_reliability")
    assert site.where("sessions > 0 AND session_success_rate_pct IS NULL").count() == 0


def test_failed_attempts_against_generator_truth(spark, fleet_reliability):
    """Fleet arrivals without SOC gain, placed 10 m from a station: in the middle of every true
    station-wide offline gap (all ports down: must be flagged) and at 12:00 UTC on days when the
    station has no true outage at all (ports up: must not be flagged), plus the generator's own
    failed attempts (truth.charging_events with success = false). Classified with the detected
    port intervals after the Sedona station match."""
    from common.network.stations import latest_stations, match_events_to_stations

    cfg = fleet_reliability
    truth = tables.read(spark, cfg, "truth.charger_outages")
    stations = latest_stations(tables.read(spark, cfg, "bronze.stations"))
    ports = tables.read(spark, cfg, "silver.port_status_intervals").select("station_id", "port_id").distinct()
    n_ports = ports.groupBy("station_id").agg(F.count("*").alias("n"))
    offline = truth.where("cause = 'offline'").groupBy("station_id", "start_ts", "end_ts").agg(F.count("*").alias("down")).join(n_ports, "station_id")
    down_arrivals = offline.where("down = n").select(
        "station_id", F.timestamp_seconds((F.col("start_ts").cast("double") + F.col("end_ts").cast("double")) / 2).alias("start_ts"), F.lit(True).alias("expected")
    )
    days = spark.range(1, 7).select(F.expr(f"timestamp'{cfg.generator.start_date} 12:00:00' + make_interval(0, 0, 0, CAST(id AS INT))").alias("start_ts"))
    noon = n_ports.select("station_id").crossJoin(days)
    busy = noon.join(truth, (noon.station_id == truth.station_id) & (truth.start_ts <= noon.start_ts) & (truth.end_ts > noon.start_ts), "left_semi")
    up_arrivals = noon.join(busy, ["station_id", "start_ts"], "left_anti").withColumn("expected", F.lit(False))
    charges = tables.read(spark, cfg, "truth.charging_events").where("site_id LIKE 'ST%' AND NOT success")
    generated = charges.select(F.col("site_id").alias("station_id"), "start_ts", F.lit(True).alias("expected"))
    arrivals = down_arrivals.unionByName(up_arrivals).unionByName(generated).join(stations.select("station_id", "lat", "lon"), "station_id")
    stops = arrivals.select(
        F.concat_ws("@", "station_id", F.col("start_ts").cast("string")).alias("event_id"),
        F.lit("V").alias("vehicle_id"),
        "start_ts",
        (F.col("start_ts") + F.expr("INTERVAL 10 MINUTES")).alias("end_ts"),
        (F.col("lat") + 10 / 111_195).alias("lat"),
        "lon",
        F.lit(40.0).alias("soc_start_pct"),
        F.lit(40.0).alias("soc_end_pct"),
        "expected",
    )
    matched = match_events_to_stations(stops, stations, cfg.stations)
    attempts = failed_charge_attempts(matched, tables.read(spark, cfg, "silver.port_status_intervals"), cfg.stations.min_soc_gain_pct).toPandas()
    pos, neg = attempts[attempts.expected], attempts[~attempts.expected]
    recall = pos.is_failed_attempt.mean()
    false_alarms = neg.is_failed_attempt.mean()
    print(
        f"\nfailed attempts: {len(pos)} arrivals while all ports truly down (incl. {charges.count()} generated failed attempts) -> "
        f"flagged {int(pos.is_failed_attempt.sum())} (recall {recall:.2f}); {len(neg)} arrivals with every port truly up -> "
        f"flagged {int(neg.is_failed_attempt.sum())} ({false_alarms:.2%}); port states {attempts.port_state.value_counts().to_dict()}"
    )
    assert len(attempts) == stops.count()  # every arrival matched its station
    assert len(pos) > 0 and recall >= 0.9
    assert false_alarms <= 0.05


# --------------------------------------------------------------------------------------------
# Real data: ESB status snapshots, Dundee sessions
# --------------------------------------------------------------------------------------------
def _ingest_real(spark, cfg, name: str, kind: str, folder: Path):
    from jobs.ingest import load_dataset_files, run_ingest

    inputs = load_dataset_files([f"conf/datasets/{name}.yaml"])
    spec = getattr(inputs, kind)[0]
    spec.path = str(folder / Path(spec.path).name)
    run_ingest(spark, cfg, inputs, now=NOW)


@pytest.fixture(scope="module")
def esb_cfg(spark, session_root):
    from jobs.reliability import run_reliability

    folder = real_data("ireland_esb_chargepoint_status")
    cfg = make_config(session_root / "esb")
    _ingest_real(spark, cfg, "esb_status", "charger_status", folder)
    run_reliability(spark, cfg)
    return cfg


@pytest.mark.realdata
def test_esb_uptime_from_snapshots(spark, esb_cfg):
    from jobs.reliability import uptime_summary

    folder = real_data("ireland_esb_chargepoint_status")
    print("\nESB Nov 2018 (absent connector = Available; OOS = fault, OOC = offline)\n" + uptime_summary(spark, esb_cfg))
    iv = tables.read(spark, esb_cfg, "silver.port_status_intervals")
    by = {(r.state, r.down_cause): r.h for r in iv.groupBy("state", "down_cause").agg((F.sum("duration_s") / 3600).alias("h")).collect()}
    print({f"{k[0]}/{k[1]}": round(v, 1) for k, v in by.items()})

    # independent: share of (port, snapshot) pairs that are OOS/OOC in the raw file, all snapshots weighted equally
    raw = pd.read_csv(next(folder.glob("*.csv.gz")), dtype=str, keep_default_na=False)
    raw = raw[raw.cp_id != "NA"]
    raw["port"] = raw.cp_id + "/" + raw.connector_type
    snaps = raw[["date_yyyymmdd", "time_hhmm"]].drop_duplicates()
    down = raw[raw.status.isin(["OOS", "OOC"])].drop_duplicates(["port", "date_yyyymmdd", "time_hhmm"])
    # a port listed as down and occupied in one snapshot (two sockets) counts as up (working socket wins)
    busy = raw[raw.status.isin(["Occ", "Part"])][["port", "date_yyyymmdd", "time_hhmm"]].drop_duplicates()
    down = down.merge(busy, how="left", indicator=True).query("_merge == 'left_only'")
    raw_down_share = len(down) / (raw.port.nunique() * len(snaps))

    ports = iv.select("port_id").distinct().count()
    assert ports == raw.port.nunique()
    observed = by.get(("up", None), 0) + by.get(("down", "fault"), 0) + by.get(("down", "offline"), 0)
    down_share = (by.get(("down", "fault"), 0) + by.get(("down", "offline"), 0)) / observed
    print(f"down share: intervals {down_share:.4f}, raw snapshot count {raw_down_share:.4f}")
    assert down_share == pytest.approx(raw_down_share, abs=0.01)
    monthly = tables.read(spark, esb_cfg, "gold.port_reliability_monthly")
    assert monthly.where("uptime_pct < 0 OR uptime_pct > 100 OR nevi_uptime_pct < uptime_pct - 1e-9").count() == 0
    assert monthly.where("uptime_basis = 'observed_period'").count() == monthly.count()  # one month of data
    site = tables.read(spark, esb_cfg, "gold.site_reliability")
    sites = site.select("station_id", "up_hours", "failures", "mtbf_hours").toPandas()
    failed = sites[sites.failures > 0]
    assert len(failed) and sites[sites.failures == 0].mtbf_hours.isna().all()  # ESB Nov 2018 had OOS episodes
    assert failed.mtbf_hours.to_numpy() == pytest.approx((failed.up_hours / failed.failures).to_numpy())


@pytest.mark.realdata
def test_esb_daily_faults_are_counted_and_forecast(spark, esb_cfg):
    """ESB's November 2018 status snapshots (60 charge points): daily buckets with a weekly cycle.
    Each site's observed daily faults equal a count made here with pandas from the status
    intervals (a down interval with a fault cause right after an up or excluded one)."""
    from common.core.config import FaultForecastConfig
    from common.network import forecast as fc
    from jobs.fault_analysis import run_fault_analysis

    cfg = esb_cfg.model_copy(deep=True)
    cfg.fault_forecast = FaultForecastConfig(bucket_days=1, season_length=7, horizon=7, backtest_origins=2)
    report = run_fault_analysis(spark, cfg)
    print("\n", report.notes)
    iv = tables.read(spark, cfg, "silver.port_status_intervals").select("source_name", "station_id", "charger_id", "port_id", "start_ts", "end_ts", "state", "down_cause").toPandas()
    iv = iv.sort_values(["source_name", "port_id", "start_ts"])
    iv["station_id"] = iv.station_id.fillna(iv.charger_id).fillna(iv.port_id)  # the forecast's site: station, else charger, else port
    prev = iv.groupby(["source_name", "port_id"]).state.shift()
    failed = iv[(iv.state == "down") & (iv.down_cause == "fault") & prev.isin(["up", "excluded"])]
    origin = iv.start_ts.min().normalize()
    days = int((iv.end_ts.max() - origin) / pd.Timedelta(days=1))
    day = ((failed.start_ts - origin) / pd.Timedelta(days=1)).astype(int)
    # a site's series runs from the day of its first observation to its last complete day
    span = iv.groupby("station_id").agg(first=("start_ts", "min"), last=("end_ts", "max"))
    first_day = ((span["first"] - origin) / pd.Timedelta(days=1)).astype(int)
    last_day = ((span["last"] - origin) / pd.Timedelta(days=1)).astype(int) - 1
    inside = (day >= failed.station_id.map(first_day)) & (day <= failed.station_id.map(last_day))
    want = failed[inside].groupby("station_id").size()
    network = int((day < days).sum())

    got = tables.read(spark, cfg, "gold.fault_forecast").toPandas()
    history = got[(got.step <= 0) & (got.site_id != fc.NETWORK)].groupby("site_id").actual.sum()
    assert len(got[(got.step <= 0) & (got.site_id == fc.NETWORK)]) == days
    assert history[history > 0].sort_index().to_dict() == want.sort_index().to_dict()
    assert got[got.site_id == fc.NETWORK].actual.sum() == network and want.sum() > 0
    back = tables.read(spark, cfg, "gold.fault_forecast_backtest").where(f"site_id = '{fc.NETWORK}'").toPandas().set_index("method")
    print(back[["spec", "origins", "buckets", "mae", "mape", "coverage"]].to_string())
    assert set(back.index) == {"model", "seasonal_naive", "mean"} and (back.origins == 2).all() and (back.buckets == 14).all()


@pytest.fixture(scope="module")
def dundee_cfg(spark, session_root):
    from jobs.reliability import run_reliability

    folder = real_data("dundee_ev_charging_sessions")
    cfg = make_config(session_root / "dundee")
    _ingest_real(spark, cfg, "dundee_sessions", "charging_sessions", folder)
    run_reliability(spark, cfg)
    return cfg


@pytest.mark.realdata
def test_dundee_sessions_quarantine_and_reliability(spark, dundee_cfg):
    q = tables.read(spark, dundee_cfg, "quarantine.charging_sessions")
    first = {r.reason: r["count"] for r in q.groupBy("reason").count().collect()}
    every = {r.r: r["count"] for r in q.select(F.explode("reasons").alias("r")).groupBy("r").count().collect()}
    print(f"\nDundee quarantine by first reason: {first}\nby any reason: {every}")
    # README: open sessions 61 + 114 + 72, negative kWh 7 + 12 + 8, one End Date 01/01/1970
    assert first["open_session"] == 61 + 114 + 72
    assert first["negative_kwh"] == 7 + 12 + 8
    assert every["end_ts_too_old"] == 1
    bronze = tables.read(spark, dundee_cfg, "bronze.charging_sessions")
    assert bronze.where("kwh < 0 OR end_ts IS NULL OR year(end_ts) < 1990").count() == 0

    site = tables.read(spark, dundee_cfg, "gold.site_reliability")
    totals = site.agg(F.sum("sessions").alias("n"), F.sum("failed_sessions").alias("f"), F.sum("lost_revenue_est").alias("lost")).first()
    assert totals.n == bronze.where("kwh IS NOT NULL").count()
    zero = bronze.where(F.col("kwh") < PARAMS.session_success_min_kwh).count()
    assert totals.f == zero  # no success flag in the source: < 0.1 kWh delivered = failed
    tests = tables.read(spark, dundee_cfg, "gold.reliability_tests")
    rows = {r.test: r for r in tests.where("test <> 'fault_rate_hotspot'").collect()}
    hot = tests.where("test = 'fault_rate_hotspot' AND note = 'hotspot'").count()
    for name in ("two_window_fault_rate", "load_fault_logit", "lost_revenue_bootstrap"):
        r = rows[name]
        print(f"{name}: value={r.value:.4f} CI=({r.ci_low}, {r.ci_high}) stat={r.statistic} p={r.p_value} n={r.n} {r.note}")
    print(f"sessions {totals.n}, failed {totals.f} ({100 * totals.f / totals.n:.2f} %), fault-rate hotspot chargers {hot}")
    assert rows["lost_revenue_bootstrap"].ci_low <= rows["lost_revenue_bootstrap"].value <= rows["lost_revenue_bootstrap"].ci_high
    assert not tables.exists(spark, dundee_cfg, "silver.port_status_intervals")  # sessions only: no status feed


# --------------------------------------------------------------------------------------------
# The job's table
# --------------------------------------------------------------------------------------------
def test_generated_network_capacity_reconciles_with_the_sessions(spark, fleet_reliability):
    cfg = fleet_reliability
    cap = tables.read(spark, cfg, "gold.site_capacity")
    sessions = tables.read(spark, cfg, "bronze.charging_sessions")
    # ports from an independent feed: every generated port sends status notifications
    truth_ports = tables.read(spark, cfg, "bronze.charger_status").groupBy("station_id").agg(F.countDistinct("port_id").alias("truth_ports"))
    per_site = cap.groupBy("station_id").agg(F.count(F.lit(1)).alias("rows"), F.sum("arrivals").alias("arrivals"), F.first("ports").alias("ports"))
    counted = sessions.groupBy("station_id").count().join(per_site, "station_id", "full").join(truth_ports, "station_id", "left").toPandas()
    print(f"\n{len(counted)} stations, {int(counted['count'].sum())} sessions; peak P(wait) {cap.agg(F.max('p_wait')).first()[0]:.3f}")
    assert (counted.rows == 168).all() and (counted.arrivals == counted["count"]).all()
    assert (counted.ports == counted.truth_ports).all()


@pytest.mark.realdata
def test_dundee_capacity_counts_every_session(spark, dundee_cfg):
    cap = tables.read(spark, dundee_cfg, "gold.site_capacity")
    bronze = tables.read(spark, dundee_cfg, "bronze.charging_sessions")
    stations = bronze.select("station_id").distinct().count()
    assert cap.count() == 168 * stations
    assert cap.groupBy().sum("arrivals").first()[0] == bronze.count()
    busiest = cap.orderBy(F.desc("utilisation")).first()
    print(f"\nDundee: {stations} charge points; busiest slot {busiest.station_id} h{busiest.hour_of_week}: utilisation {busiest.utilisation:.2f}, P(wait) {busiest.p_wait}")
    assert cap.where("ports_basis = 'observed_ports'").count() == cap.count()


@pytest.mark.realdata
def test_dundee_fault_drivers_model_every_session_with_an_outcome(spark, dundee_cfg):
    """Dundee's sessions have no status feed and no station register: the model runs on the local
    hour band, weekend and port load, says which drivers had no data, and counts every session."""
    from jobs.fault_analysis import run_fault_analysis

    run_fault_analysis(spark, dundee_cfg)
    drivers = tables.read(spark, dundee_cfg, "gold.fault_drivers").toPandas()
    bronze = tables.read(spark, dundee_cfg, "bronze.charging_sessions")
    known = bronze.where("success IS NOT NULL OR kwh IS NOT NULL").count()
    model = drivers[drivers.driver == "model"]
    terms = drivers[drivers.driver != "model"]
    print("\n" + model[["source_name", "sessions", "failed", "excluded_sessions", "note"]].to_string())
    print(terms[["driver", "level", "reference", "sessions", "failure_rate", "odds_ratio", "or_ci_low", "or_ci_high", "p_value_holm", "marginal_effect_pp"]].to_string())
    assert int(model.sessions.sum()) == known and int(model.excluded_sessions.sum()) == 0  # no status feed: nothing left out
    assert model.converged.all() and all("network: no data" in n and "dc_station: no data" in n for n in model.note)
    assert set(terms.driver) == {"hour_band", "weekend", "load"}
    assert ((terms.or_ci_low < terms.odds_ratio) & (terms.odds_ratio < terms.or_ci_high)).all()
    # sessions per local hour band, counted here from bronze in the sessions' zone
    from common.network.capacity import capacity_timezone

    hour = F.hour(F.from_utc_timestamp("start_ts", capacity_timezone(dundee_cfg)))
    edges = dundee_cfg.fault_drivers.hour_band_edges
    counts = {}
    for lo, hi in zip(edges, [*edges[1:], 24]):
        counts[f"{lo:02d}-{hi:02d}"] = bronze.where("success IS NOT NULL OR kwh IS NOT NULL").where((hour >= lo) & (hour < hi)).count()
    bands = terms[terms.driver == "hour_band"].set_index("level")
    assert {lv: int(n) for lv, n in bands.sessions.items()} == {lv: n for lv, n in counts.items() if lv != bands.reference.iloc[0]}

"""Driver risk: the z-score rule, tested trend/inactivity signals, low coverage and the whole fleet.

Expected values are computed here independently: z-scores with numpy, slope tests with
scipy.stats.linregress, the rising-inactivity test with scipy.stats.fisher_exact and the
Benjamini-Hochberg step-up by hand.
"""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pytest
from chispa import assert_approx_df_equality
from scipy import stats

from common.core.config import RiskConfig
from common.mobility.risk import INSUFFICIENT, driver_risk

D0 = date(2024, 3, 4)
DAYS = 14
rng = np.random.default_rng(3)
STEADY = {f"R{i}": list(np.round(base + rng.normal(0, 2, DAYS), 1)) for i, base in enumerate([100, 110, 120, 130, 140, 125, 115, 135], 1)}
KM = STEADY | {
    # low and falling, idle more and more often: the original rule's case
    "AT_RISK": [60, 55, 40, 48, 0, 30, 20, 0, 15, 0, 0, 10, 0, 0],
    # a driver whose distance falls steadily (-12 km/day from 170, ~90 % a week): steep and significant
    "DECLINE": [170 - 12 * i + d for i, d in enumerate([2, -1, 0, 1, -2, 1, 0, -1, 2, 0, -1, 1, 0, -2])],
    # falling ~35 % a week: a significant decline, not a steep one
    "MILD": [160 - 6 * i + d for i, d in enumerate([1, -2, 0, 2, -1, 0, 1, -1, 2, -2, 0, 1, -1, 0])],
    # steady part-time: works on random days, no trend (the case that must not turn into High)
    "PART": [120, 0, 118, 0, 0, 121, 119, 0, 122, 0, 120, 118, 0, 121],
    # device silent 5 days: not inactive days, reported separately
    "OFFLINE": [120, 118, None, None, None, None, None, 122, 121, 119, 120, 118, 121, 119],
    "FEW": [None] * 12 + [80, 85],  # 2 reported days: not enough to score
    # last trip on day 10, silent two days, one reported idle day: 1 reported day without a trip
    # (3 calendar days), below days_since_trip = 2
    "SILENT_END": [120, 118, 121, 119, 120, 118, 121, 119, 122, 120, 121, None, None, 0],
}
PARTIAL = {"OFFLINE": {13: 0.2}}  # share of the day covered by data where below 1
P = RiskConfig()


def _daily(spark):
    rows = [(v, D0 + timedelta(days=i), float(km), PARTIAL.get(v, {}).get(i, 1.0)) for v, series in KM.items() for i, km in enumerate(series) if km is not None]
    return spark.createDataFrame(rows, "vehicle_id string, local_date date, gps_km double, data_coverage_share double")


def _reported(v: str) -> list[tuple[int, float]]:
    return [(i, km) for i, km in enumerate(KM[v]) if km is not None and PARTIAL.get(v, {}).get(i, 1.0) >= P.min_day_coverage]


def _bh(p: dict[str, float]) -> dict[str, float]:
    """Benjamini-Hochberg adjusted p-values, by hand (step-up, monotone from the largest)."""
    names = sorted(p, key=p.get)
    m = len(names)
    q, running = {}, 1.0
    for rank in range(m, 0, -1):
        running = min(running, p[names[rank - 1]] * m / rank)
        q[names[rank - 1]] = running
    return q


def expected_scores() -> dict[str, dict]:
    scored = {v for v in KM if len(_reported(v)) >= P.min_reported_days}
    avg = {v: np.mean([km for _, km in _reported(v)]) for v in scored}
    mean, std = np.mean(list(avg.values())), np.std(list(avg.values()), ddof=1)
    trend_p, fisher_p, pct = {}, {}, {}
    for v in scored:
        x, y = map(np.array, zip(*_reported(v)))
        fit = stats.linregress(x, y)
        pct[v] = fit.slope * 7 / avg[v] * 100
        if len(x) >= P.trend_min_days:
            trend_p[v] = stats.t.cdf(fit.slope / fit.stderr, len(x) - 2) if fit.stderr > 0 else 0.0
            inactive = y < P.active_day_min_km
            late = np.arange(len(y)) >= len(y) / 2
            table = [[inactive[late].sum(), (~inactive[late]).sum()], [inactive[~late].sum(), (~inactive[~late]).sum()]]
            fisher_p[v] = stats.fisher_exact(table, alternative="greater").pvalue
    trend_q, fisher_q = _bh(trend_p), _bh(fisher_p)
    out = {}
    for v in scored:
        y = np.array([km for _, km in _reported(v)])
        falling = trend_q.get(v, 1.0) < P.fdr
        signals = [
            name
            for name, on in [
                ("low_distance_z", (avg[v] - mean) / std < P.z_threshold),
                ("declining_trend", falling and pct[v] < -P.trend_drop_pct_per_week),
                ("steep_decline", falling and pct[v] < -P.steep_drop_pct_per_week),
                ("rising_inactivity", fisher_q.get(v, 1.0) < P.fdr),
                ("inactive_days", (y < P.active_day_min_km).mean() > P.inactive_share),
                ("no_recent_trip", bool(len(y) - 1 - np.flatnonzero(y >= P.active_day_min_km).max() >= P.days_since_trip) if (y >= P.active_day_min_km).any() else True),
                ("irregular_charging", False),  # no charging events given: no such signal
            ]
            if on
        ]
        score = min(100.0, sum(P.weights[s] for s in signals))
        tier = "High" if score >= P.high_score else "Medium" if score >= P.medium_score else "Low"
        out[v] = {"z": (avg[v] - mean) / std, "signals": signals, "score": score, "tier": tier, "trend_p": trend_p.get(v), "trend_q": trend_q.get(v)}
    return out


def test_driver_risk_matches_independent_statistics(spark):
    vehicles = spark.createDataFrame([(v, f"D-{v}") for v in KM] + [("NODATA", "D-NODATA")], "vehicle_id string, driver_id string")
    got = driver_risk(_daily(spark), vehicles, P)
    want = expected_scores()
    print({v: (w["tier"], w["signals"], w["trend_q"]) for v, w in want.items()})
    rows = {r["vehicle_id"]: r for r in got.collect()}
    # the whole fleet, once each: scored vehicles plus the two that cannot be scored
    assert sorted(rows) == sorted([*KM, "NODATA"])
    for v, w in want.items():
        assert rows[v]["tier"] == w["tier"], v
        assert rows[v]["signals"] == w["signals"], v
        assert rows[v]["z_score"] == pytest.approx(w["z"], abs=1e-9), v
        if w["trend_p"] is not None:
            assert rows[v]["trend_p_value"] == pytest.approx(w["trend_p"], rel=1e-6, abs=1e-12), v
            assert rows[v]["trend_q_value"] == pytest.approx(w["trend_q"], rel=1e-6, abs=1e-12), v
    # the cases the rules were written for, stated by hand
    assert want["AT_RISK"]["tier"] == "High" and "low_distance_z" in want["AT_RISK"]["signals"]
    assert want["DECLINE"]["signals"][:2] == ["declining_trend", "steep_decline"] and want["DECLINE"]["tier"] == "High"
    assert want["MILD"]["signals"] == ["declining_trend"] and want["MILD"]["tier"] == "Medium"
    assert want["PART"]["tier"] != "High"  # random idle days are not a decline
    assert rows["SILENT_END"]["days_since_last_trip"] == 1 and "no_recent_trip" not in rows["SILENT_END"]["signals"]
    assert rows["AT_RISK"]["days_since_last_trip"] == 2  # last trip day 11, two idle reported days after it
    for v in ("FEW", "NODATA"):
        assert rows[v]["tier"] == INSUFFICIENT and rows[v]["score"] is None and rows[v]["driver_id"] == f"D-{v}"
    assert rows["FEW"]["reasons"] == ["2 reported day(s), fewer than risk.min_reported_days = 3"]
    assert rows["NODATA"]["reasons"][0].startswith("no reported day")


def test_offline_days_are_not_inactive_days(spark):
    off = driver_risk(_daily(spark), None, P).where("vehicle_id = 'OFFLINE'").first()
    # 14 days minus 5 silent minus the last day covered only 20 %: 8 reported, none inactive
    assert off["reported_days"] == 8 and off["inactive_share"] == 0.0 and off["low_coverage"]
    assert off["reasons"] == [f"low data coverage: 8 of {DAYS} days reported (scored on reported days only)"]


def test_charging_and_residence_signals(spark):
    daily = _daily(spark)
    # R1 charged every day until three days before its last report; R2 every day
    events = spark.createDataFrame(
        [("R1", D0 + timedelta(days=i)) for i in range(DAYS - 3)] + [("R2", D0 + timedelta(days=i)) for i in range(DAYS)],
        "vehicle_id string, local_date date",
    )
    residences = spark.createDataFrame([("R1", False, 1.0), ("R2", True, 0.6), ("R3", False, 0.4)], "vehicle_id string, residence_changed boolean, confidence double")
    got = {r["vehicle_id"]: r for r in driver_risk(daily, None, P, events, residences).collect()}
    assert got["R1"]["signals"] == ["irregular_charging"] and got["R1"]["days_since_last_charge"] == 3
    assert got["R2"]["signals"] == ["residence_change"] and got["R2"]["reasons"] == ["moved between two night places"]
    assert got["R3"]["signals"] == ["irregular_charging", "residence_change"]  # no charge at all, split nights
    assert got["R3"]["tier"] == "Low" and got["R3"]["score"] == 20.0


def test_fleet_from_profiles_adds_vehicles_without_days(spark):
    fleet = spark.createDataFrame([("R1", "continuous"), ("QUIET", "ignition_only")], "vehicle_id string, device_mode string")
    got = driver_risk(_daily(spark), None, P, fleet=fleet)
    quiet = got.where("vehicle_id = 'QUIET'").first()
    assert got.count() == len(KM) + 1
    assert quiet["tier"] == INSUFFICIENT and quiet["device_mode"] == "ignition_only"
    assert quiet["reasons"] == [f"no reported day (no day with data over {P.min_day_coverage:.0%} of 24 h)", "device mode ignition_only"]
    assert_approx_df_equality(got.where("vehicle_id = 'R1'").select("device_mode"), spark.createDataFrame([("continuous",)], "device_mode string"), 0.0, ignore_nullable=True)

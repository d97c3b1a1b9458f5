"""Driver risk: baseline z-score rule, extra signals, and low coverage reported apart."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pytest
from chispa import assert_approx_df_equality

from common.config import RiskConfig
from common.risk import driver_risk

D0 = date(2024, 3, 4)
KM = {
    "R1": [100, 102, 98, 101, 99, 100, 100],
    "R2": [110, 112, 108, 111, 109, 110, 110],
    "R3": [120, 118, 122, 121, 119, 120, 120],
    "R4": [130, 128, 132, 131, 129, 130, 130],
    "R5": [140, 142, 138, 139, 141, 140, 140],
    "R6": [125, 124, 126, 125, 125, 124, 126],
    "AT_RISK": [60, 45, 0, 30, 0, 20, 0],  # low, falling, inactive days
    "DECLINE": [150, 140, 120, 100, 90, 80, 70],  # average distance but halved in a week
    "MILD": [130, 124, 118, 112, 106, 100, 94],  # falling ~38 % a week: declining, not steep
    "OFFLINE": [120, 118, None, None, None, 122, 121],  # device silent 3 days: not inactive
}
PARTIAL = {"OFFLINE": {6: 0.2}}  # share of the day covered by data where below 1


def test_partial_days_are_not_reported_days(spark):
    """OFFLINE's device came back for a few minutes on a day: that day is neither inactive nor reported."""
    rows = [(v, D0 + timedelta(days=i), float(km), PARTIAL.get(v, {}).get(i, 1.0)) for v, s in KM.items() for i, km in enumerate(s) if km is not None]
    rows.append(("OFFLINE", D0 + timedelta(days=4), 0.5, 0.05))
    daily = spark.createDataFrame(rows, "vehicle_id string, local_date date, gps_km double, data_coverage_share double")
    off = driver_risk(daily, None, RiskConfig()).where("vehicle_id = 'OFFLINE'").first()
    assert off["reported_days"] == 3 and off["inactive_share"] == 0.0 and off["low_coverage"]


def _daily(spark):
    rows = [(v, D0 + timedelta(days=i), float(km)) for v, series in KM.items() for i, km in enumerate(series) if km is not None]
    return spark.createDataFrame(rows, "vehicle_id string, local_date date, gps_km double")


def test_driver_risk(spark):
    got = driver_risk(_daily(spark), None, RiskConfig())
    avg = {v: np.mean([k for k in s if k is not None]) for v, s in KM.items()}
    mean, std = np.mean(list(avg.values())), np.std(list(avg.values()), ddof=1)
    z = {v: (a - mean) / std for v, a in avg.items()}
    assert z["AT_RISK"] < -1.5 < min(zz for v, zz in z.items() if v != "AT_RISK")
    tier = {v: "Low" for v in KM} | {"AT_RISK": "High", "DECLINE": "High", "MILD": "Medium"}
    expected = spark.createDataFrame(
        [(v, tier[v], float(z[v]), v == "OFFLINE", v == "AT_RISK") for v in KM],
        "vehicle_id string, tier string, z_score double, low_coverage boolean, baseline_high boolean",
    )
    assert_approx_df_equality(
        got.select(*expected.columns), expected, 1e-9, ignore_row_order=True, ignore_nullable=True
    )
    rows = {r["vehicle_id"]: r for r in got.collect()}
    at_risk = rows["AT_RISK"]
    assert at_risk["signals"] == ["low_distance_z", "declining_trend", "steep_decline", "inactive_days"]
    assert at_risk["score"] == 100.0 and at_risk["inactive_share"] == pytest.approx(3 / 7)
    assert at_risk["reasons"][0].startswith("average 22.1 km/day is far below the fleet (z = -")
    assert rows["DECLINE"]["signals"] == ["declining_trend", "steep_decline"] and rows["DECLINE"]["trend_pct_per_week"] < -80
    assert rows["MILD"]["signals"] == ["declining_trend"] and rows["MILD"]["score"] == 25.0
    off = rows["OFFLINE"]
    assert off["reported_days"] == 4 and off["signals"] == [] and off["days_since_last_trip"] == 0
    assert off["reasons"] == ["low data coverage: 4 of 7 days reported (scored on reported days only)"]


def test_charging_and_residence_signals(spark):
    daily = _daily(spark)
    # R1 charged every day until three days before its last report; R2 every day
    events = spark.createDataFrame(
        [("R1", D0 + timedelta(days=i)) for i in range(4)] + [("R2", D0 + timedelta(days=i)) for i in range(7)],
        "vehicle_id string, local_date date",
    )
    residences = spark.createDataFrame(
        [("R1", False, 1.0), ("R2", True, 0.6), ("R3", False, 0.4)], "vehicle_id string, residence_changed boolean, confidence double"
    )
    got = {r["vehicle_id"]: r for r in driver_risk(daily, None, RiskConfig(), events, residences).collect()}
    assert got["R1"]["signals"] == ["irregular_charging"] and got["R1"]["days_since_last_charge"] == 3
    assert got["R2"]["signals"] == ["residence_change"] and got["R2"]["reasons"] == ["moved between two night places"]
    assert got["R3"]["signals"] == ["irregular_charging", "residence_change"]  # no charge at all, split nights
    assert got["R3"]["tier"] == "Low" and got["R3"]["score"] == 20.0

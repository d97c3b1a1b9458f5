"""Model monitoring (common/ml/monitoring.py): PSI, the training profile, drift rows, the evaluation table.

Expected values are computed here by hand or with numpy, not read back from the module.
The end-to-end checks (a profile on every registered version, gold.model_monitoring after
scoring, reruns) are in tests/test_ml.py.
"""

from __future__ import annotations

import math
from datetime import date

import numpy as np
import pandas as pd
import pytest

from common.core.config import MonitoringConfig
from common.ml import monitoring
from common.ml.tracking import evaluation_table

CFG = MonitoringConfig(bins=10, psi_threshold=0.2, psi_floor=1e-4, quantile_relative_error=0.0)


def _hand_psi(e, a, floor):
    e = np.maximum(np.asarray(e, float) / np.sum(e), floor)
    a = np.maximum(np.asarray(a, float) / np.sum(a), floor)
    e, a = e / e.sum(), a / a.sum()
    return sum((ai - ei) * math.log(ai / ei) for ei, ai in zip(e, a, strict=True))


def test_psi_by_hand():
    # (0.25 - 0.5) ln(0.25 / 0.5) + (0.75 - 0.5) ln(0.75 / 0.5)
    assert monitoring.psi([0.5, 0.5], [0.25, 0.75], 1e-4) == pytest.approx(0.25 * math.log(2) + 0.25 * math.log(1.5), rel=1e-12)
    assert monitoring.psi([10, 20, 30], [10, 20, 30], 1e-4) == 0.0  # counts work as shares
    # an empty bin is floored, so the index is large but finite
    assert math.isfinite(monitoring.psi([0.5, 0.5, 0.0], [0.4, 0.4, 0.2], 1e-4)) and monitoring.psi([0.5, 0.5, 0.0], [0.4, 0.4, 0.2], 1e-4) > 1
    assert math.isnan(monitoring.psi([0, 0], [1, 1], 1e-4))


def _frame(spark, values: dict[str, np.ndarray]):
    pdf = pd.DataFrame(values)
    return spark.createDataFrame(pdf.astype("float64").where(pdf.notna(), None))


def test_reference_profile_edges_and_shares_match_numpy(spark):
    rng = np.random.default_rng(3)
    x = rng.gamma(2.0, 3.0, 997)
    x[:50] = np.nan  # missing values get their own bin
    df = _frame(spark, {"x": x, "one_hot": (rng.random(997) < 0.3).astype(float)})
    prof = monitoring.reference_profile(df, {"x": "x", "one_hot": "one_hot"}, CFG)
    known = x[~np.isnan(x)]
    xs = np.sort(known)
    # exact quantiles (relative error 0) are order statistics of the known values
    expected_edges = sorted({float(xs[max(0, math.ceil(k / 10 * len(xs)) - 1)]) for k in range(1, 10)})
    col = prof["columns"]["x"]
    assert prof["rows"] == 997
    assert col["edges"] == pytest.approx(expected_edges)
    bins = np.searchsorted(np.asarray(col["edges"]), known, side="right")
    counts = np.bincount(bins, minlength=len(col["edges"]) + 1).tolist() + [50]
    assert col["shares"] == pytest.approx([c / 997 for c in counts])
    assert sum(col["shares"]) == pytest.approx(1.0)
    # a 0/1 feature has two distinct edges at most: 0 and 1 -> shares below 0, [0, 1), >= 1, missing
    oh = prof["columns"]["one_hot"]
    assert set(oh["edges"]) <= {0.0, 1.0}
    ones = float(np.mean(df.toPandas()["one_hot"] == 1.0))
    assert oh["shares"][-2] == pytest.approx(ones)


def test_drift_rows_flag_a_shifted_feature_and_not_a_resample(spark):
    rng = np.random.default_rng(5)
    train = _frame(spark, {"speed": rng.normal(40, 10, 3000), "temp": rng.normal(15, 5, 3000), "pred": rng.normal(2, 1, 3000), "day_of_week": rng.integers(0, 5, 3000)})
    profile = monitoring.reference_profile(train, {"speed": "speed", "temp": "temp", "day_of_week": "day_of_week", monitoring.PREDICTION: "pred"}, CFG)
    # scored: speed from the same distribution, temperature shifted by one standard deviation (a season change)
    scored = _frame(spark, {"speed": rng.normal(40, 10, 2000), "temp": rng.normal(20, 5, 2000), "pred": rng.normal(2, 1, 2000), "day_of_week": np.full(2000, 6.0)})
    names = {"speed": "speed", "temp": "temp", "day_of_week": "day_of_week", "new_feature": "speed", monitoring.PREDICTION: "pred"}
    rows = {(r["kind"], r["name"]): r for r in monitoring.drift_rows(scored, profile, names, CFG)}
    # a window of Sundays only: the calendar input's PSI is written, but it never marks drift
    dow = rows[("feature_psi", "day_of_week")]
    assert dow["value"] > CFG.psi_threshold and dow["drifted"] is None and "calendar input" in dow["note"]
    speed, temp = rows[("feature_psi", "speed")], rows[("feature_psi", "temp")]
    assert speed["drifted"] is False and speed["value"] < 0.05
    assert temp["drifted"] is True and temp["value"] > CFG.psi_threshold
    # the value equals PSI recomputed with numpy from the same edges
    sp = scored.toPandas()
    edges = np.asarray(profile["columns"]["temp"]["edges"])
    counts = np.bincount(np.searchsorted(edges, sp["temp"], side="right"), minlength=len(edges) + 1).tolist() + [0]
    assert temp["value"] == pytest.approx(_hand_psi(profile["columns"]["temp"]["shares"], counts, CFG.psi_floor), rel=1e-9)
    assert temp["threshold"] == CFG.psi_threshold and temp["rows"] == 2000
    assert rows[("prediction_psi", monitoring.PREDICTION)]["drifted"] is False
    p50 = rows[("prediction_quantile", "p50")]
    assert p50["value"] == pytest.approx(float(np.quantile(sp["pred"], 0.5)), abs=0.05) and p50["reference"] == pytest.approx(2.0, abs=0.1)
    # a feature the version was not profiled on is said, not silently skipped
    assert rows[("feature_psi", "new_feature")]["value"] is None and "not in the version's training profile" in rows[("feature_psi", "new_feature")]["note"]


def test_a_version_without_a_profile_gets_a_row_that_says_so(spark):
    scored = _frame(spark, {"a": np.arange(5.0)})
    realised = [monitoring.realised_row("mae", None, 1.5, 0, CFG)]
    rows = monitoring.version_monitoring(scored, ["a"], "a", {"task": "regression"}, realised, CFG)
    assert rows[0]["name"] == "*" and "no training profile" in rows[0]["note"]
    assert rows[1]["kind"] == "realised" and rows[1]["value"] is None and rows[1]["note"] == "no labelled rows in the window yet"


def test_monitoring_table_rows_and_the_rows_a_rerun_replaces(spark):
    rows = [monitoring.realised_row("mae", 1.2, 1.1, 40, CFG)]
    df, where = monitoring.monitoring_table(spark, {("m_a", "3"): rows, ("m'b", "1"): rows}, date(2024, 3, 1), None)
    got = df.collect()
    assert {(r["model_name"], r["model_version"]) for r in got} == {("m_a", "3"), ("m'b", "1")}
    assert all(r["window_start"] == date(2024, 3, 1) and r["window_end"] is None and r["scored_at"] is not None for r in got)
    assert where == "model_name IN ('m\\'b', 'm_a') AND window_start = DATE'2024-03-01' AND window_end IS NULL"
    assert df.where(where).count() == len(got)  # Delta's replaceWhere accepts only rows matching it


def test_evaluation_table_reads_every_test_metric_of_a_run():
    metrics = {
        "test_mae": 1.7,
        "baseline_persistence_test_mae": 2.9,
        "baseline_vehicle_mean_test_mae": 4.4,
        "group_test_mae": 1.9,
        "group_baseline_persistence_test_mae": 2.8,
        "truth_test_trip_mape_pct": 5.6,
        "baseline_physics_truth_test_trip_mape_pct": 5.9,
        "valid_mae": 1.6,  # not a test metric
        "train_seconds": 12.0,
        "test_roc_auc": math.nan,  # unknown values are left out
    }
    t = evaluation_table(metrics).set_index(["evaluation_set", "predictor", "reference", "metric"])["value"]
    assert t.to_dict() == {
        ("time split", "model", "observed", "mae"): 1.7,
        ("time split", "persistence", "observed", "mae"): 2.9,
        ("time split", "vehicle_mean", "observed", "mae"): 4.4,
        ("unseen vehicles", "model", "observed", "mae"): 1.9,
        ("unseen vehicles", "persistence", "observed", "mae"): 2.8,
        ("time split", "model", "truth", "trip_mape_pct"): 5.6,
        ("time split", "physics", "truth", "trip_mape_pct"): 5.9,
    }

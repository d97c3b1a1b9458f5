"""Model metrics recomputed from scored predictions, independently of the training job.

The job's own figures (`run_train`'s metrics) come from its Spark code. This module rebuilds the
labels and the baselines from silver.vehicle_minutely with numpy, following the definitions in
docs/MODELS.md section 1 and 3 (not the job's code), joins the predictions that `jobs/score.py`
wrote to gold.predictions_soc_minutely, and scores them with scikit-learn. A test that reads the
job's metrics back cannot catch a wrong metric; this one can.

Definitions (docs/MODELS.md):
- label: soc(t) - the last SOC in [t + h - staleness, t + h]; none when that window is empty, when a
  minute of [t, t + h] is charging, or when a later minute's max SOC exceeds soc(t) + 2 points;
- persistence: the SOC slope over the last w minutes (from the first minute with SOC in the window;
  none when that minute is less than w/2 back) extrapolated over h, clipped to [0, soc(t)], 0 without
  a slope; w in 15/30/60 chosen by the lowest MAE on the rows before the evaluated window;
- vehicle mean / vehicle rate: the vehicle's mean label / event share over the rows before the
  evaluated window whose label horizon ends before it;
- energy (section 2): a trip's forecast is the sum over its segments of kWh/km x km
  (gold.predictions_energy), its truth the generator's battery energy of the points in
  (start, end] of the trip (truth.points, near duplicates skipped); trips of at least
  `ml.energy.min_eval_trip_km` that start in the evaluated window; MAPE = mean |forecast - truth| / truth.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, brier_score_loss, mean_absolute_error, roc_auc_score

RISE_TOLERANCE_PCT = 2.0  # docs/MODELS.md "Charging inside the horizon"
SLOPE_WINDOWS_MIN = (15, 30, 60)


def _per_vehicle(g: pd.DataFrame, horizon_s: int, staleness_s: int) -> pd.DataFrame:
    t = g["t"].to_numpy()
    soc = g["soc"].to_numpy()
    soc_max = g["soc_max"].to_numpy()
    charging = g["charging"].to_numpy().astype(bool)
    n = len(t)
    out = {"label": np.full(n, np.nan)}
    lo = np.searchsorted(t, t + horizon_s - staleness_s, side="left")
    hi = np.searchsorted(t, t + horizon_s, side="right")  # rows [lo, hi) are in the future window
    after = np.searchsorted(t, t + 60, side="left")
    charge_cum = np.r_[0, np.cumsum(charging)]
    for i in range(n):
        if hi[i] <= lo[i]:
            continue
        if charge_cum[hi[i]] - charge_cum[i] > 0:
            continue
        if after[i] < hi[i] and np.nanmax(soc_max[after[i] : hi[i]], initial=-np.inf) > soc[i] + RISE_TOLERANCE_PCT:
            continue
        out["label"][i] = soc[i] - soc[hi[i] - 1]
    for w in SLOPE_WINDOWS_MIN:
        first = np.searchsorted(t, t - w * 60, side="left")
        span_min = (t - t[first]) / 60.0
        with np.errstate(divide="ignore", invalid="ignore"):
            slope = np.where(span_min >= w / 2, (soc - soc[first]) / span_min, np.nan)
        out[f"persistence_{w}"] = np.clip(np.nan_to_num(-slope * horizon_s / 60, nan=0.0), 0.0, soc)
    return pd.DataFrame(out, index=g.index)


def reference_rows(minutely: pd.DataFrame, horizon_min: int, staleness_min: int) -> pd.DataFrame:
    """Labels and persistence forecasts per vehicle-minute with SOC.

    `minutely`: vehicle_id, t (minute_ts as epoch seconds: pandas would turn a timestamp into the
    session's wall clock, where a DST change repeats an hour), soc_mean_pct, soc_max_pct, charging
    (silver.vehicle_minutely)."""
    df = minutely[minutely["soc_mean_pct"].notna()].copy()
    df = df.rename(columns={"soc_mean_pct": "soc", "soc_max_pct": "soc_max"}).sort_values(["vehicle_id", "t"])
    df["charging"] = df["charging"].fillna(False)
    parts = [_per_vehicle(g, horizon_min * 60, staleness_min * 60) for _, g in df.groupby("vehicle_id", sort=False)]
    return df.join(pd.concat(parts))[["vehicle_id", "t", "soc", "label", *[f"persistence_{w}" for w in SLOPE_WINDOWS_MIN]]]


def scores(reference: pd.DataFrame, predictions: pd.DataFrame, window_start_s: int, horizon_min: int, threshold_pct: float, classifier: bool = True) -> dict[str, float]:
    """scikit-learn metrics of the model and the baselines on the labelled minutes from `window_start_s` on.

    `predictions`: vehicle_id, t (minute_ts as epoch seconds), pred_soc_drop_pct, prob_drop_event
    (gold.predictions_soc_minutely). `classifier=False`: the drop regressor only (scoring leaves
    prob_drop_event null when the classifier has no champion)."""
    rows = reference.merge(predictions[["vehicle_id", "t", "pred_soc_drop_pct", "prob_drop_event"]], on=["vehicle_id", "t"], how="left", validate="one_to_one")
    labelled = rows[rows["label"].notna()]
    before = labelled[labelled["t"] + horizon_min * 60 <= window_start_s]
    test = labelled[labelled["t"] >= window_start_s].copy()
    assert test["pred_soc_drop_pct"].notna().all(), "a labelled minute without a drop forecast"
    assert not classifier or test["prob_drop_event"].notna().all(), "a labelled minute without an event probability"
    best_w = min(SLOPE_WINDOWS_MIN, key=lambda w: mean_absolute_error(before["label"], before[f"persistence_{w}"]))
    event = (test["label"] >= threshold_pct).astype(int)
    persistence = test[f"persistence_{best_w}"]
    history = before.assign(event=(before["label"] >= threshold_pct).astype(float)).groupby("vehicle_id").agg(mean=("label", "mean"), rate=("event", "mean"))
    vehicle_mean = test["vehicle_id"].map(history["mean"]).fillna(before["label"].mean())
    vehicle_rate = test["vehicle_id"].map(history["rate"]).fillna((before["label"] >= threshold_pct).mean())
    regression = {
        "n": float(len(test)),
        "base_rate": float(event.mean()),
        "persistence_window_min": float(best_w),
        "mae": mean_absolute_error(test["label"], test["pred_soc_drop_pct"]),
        "persistence_mae": mean_absolute_error(test["label"], persistence),
        "vehicle_mean_mae": mean_absolute_error(test["label"], vehicle_mean),
    }
    if not classifier:
        return regression
    return regression | {
        "roc_auc": roc_auc_score(event, test["prob_drop_event"]),
        "persistence_roc_auc": roc_auc_score(event, persistence),
        "vehicle_rate_roc_auc": roc_auc_score(event, vehicle_rate),
        "pr_auc": average_precision_score(event, test["prob_drop_event"]),
        "persistence_pr_auc": average_precision_score(event, persistence),
        "vehicle_rate_pr_auc": average_precision_score(event, vehicle_rate),
        "brier": brier_score_loss(event, test["prob_drop_event"]),
        "persistence_brier": brier_score_loss(event, (persistence >= threshold_pct).astype(float)),
        "vehicle_rate_brier": brier_score_loss(event, vehicle_rate),
    }


def energy_trip_scores(trips: pd.DataFrame, segments: pd.DataFrame, truth_points: pd.DataFrame, window_start_s: int, min_trip_km: float) -> dict[str, float]:
    """Trip MAPE (percent) against the truth of the energy forecast and of physics (trips whose
    vehicle model has physics parameters), on the trips from `window_start_s` on.

    `trips`: vehicle_id, trip_id, start_s, end_s (epoch s), distance_km (silver.trips);
    `segments`: trip_id, distance_km, pred_kwh_per_km, physics_kwh_per_km (gold.predictions_energy);
    `truth_points`: vehicle_id, ts_s (epoch s), energy_kwh, anomaly_type (truth.points)."""
    test = trips[(trips["start_s"] >= window_start_s) & (trips["distance_km"] >= min_trip_km)]
    per_trip = (
        segments.assign(pred=segments["pred_kwh_per_km"] * segments["distance_km"], physics=segments["physics_kwh_per_km"] * segments["distance_km"])
        .groupby("trip_id")[["pred", "physics"]]
        .sum(min_count=1)
    )  # min_count: a trip whose vehicle model has no physics parameters has no physics figure
    pts = truth_points[truth_points["anomaly_type"].fillna("") != "near_duplicate"].sort_values("ts_s")
    truth = {}
    for vehicle, g in test.groupby("vehicle_id"):
        p = pts[pts["vehicle_id"] == vehicle]
        t, cum = p["ts_s"].to_numpy(), np.r_[0.0, np.cumsum(p["energy_kwh"].fillna(0.0).to_numpy())]
        for trip in g.itertuples():
            truth[trip.trip_id] = cum[np.searchsorted(t, trip.end_s, side="right")] - cum[np.searchsorted(t, trip.start_s, side="right")]
    rows = test.set_index("trip_id").join(per_trip, how="inner").assign(truth=pd.Series(truth))
    rows = rows[rows["truth"] > 0]
    ape = lambda col: (rows[col] - rows["truth"]).abs() / rows["truth"] * 100  # noqa: E731
    return {
        "n": float(len(rows)),
        "mape_pct": float(ape("pred").mean()),
        "physics_n": float(rows["physics"].notna().sum()),
        "mape_pct_on_physics_trips": float(ape("pred")[rows["physics"].notna()].mean()),  # NaN when no trip has physics
        "physics_mape_pct": float(ape("physics").mean()),  # NaN when no trip has physics
    }

"""Model evaluation on Spark DataFrames: regression, classification and trip-energy metrics.

Pure functions over DataFrames that already hold a label and a prediction column; they return
plain dicts of floats (nothing is written). Aggregates run in Spark so a 30-day fleet test window
never has to fit on the driver; only ROC/PR areas use pyspark.ml's BinaryClassificationEvaluator
(binned, exact enough at 1000 bins) and plots use a bounded sample.

Units: SOC metrics are percent points; energy metrics kWh/km or kWh; MAPE in percent.
"""

from __future__ import annotations

import math

from pyspark.sql import DataFrame
from pyspark.sql import functions as F


def regression_metrics(df: DataFrame, label: str, pred: str) -> dict[str, float]:
    """MAE, RMSE, R^2 (1 - SSE/SST), bias and row count over rows where both are non-null."""
    rows = df.where(F.col(label).isNotNull() & F.col(pred).isNotNull())
    err = F.col(pred) - F.col(label)
    r = rows.agg(
        F.count(F.lit(1)).alias("n"),
        F.avg(F.abs(err)).alias("mae"),
        F.avg(err * err).alias("mse"),
        F.avg(err).alias("bias"),
        F.var_pop(label).alias("var"),
    ).first()
    if not r["n"]:
        return {"n": 0.0, "mae": math.nan, "rmse": math.nan, "r2": math.nan, "bias": math.nan}
    r2 = 1 - r["mse"] / r["var"] if r["var"] else math.nan
    return {"n": float(r["n"]), "mae": r["mae"], "rmse": math.sqrt(r["mse"]), "r2": r2, "bias": r["bias"]}


def regression_metrics_many(df: DataFrame, label: str, preds: dict[str, str]) -> dict[str, dict[str, float]]:
    """`regression_metrics` of several prediction columns in one Spark aggregation.

    Rows count for a column when the label and that column are non-null; the label variance is
    taken over the rows where every column is non-null (all our columns are non-null together)."""
    rows = df.where(F.col(label).isNotNull())
    aggs = [F.var_pop(label).alias("_var")]
    for name, col in preds.items():
        ok = F.col(col).isNotNull()
        err = F.col(col) - F.col(label)
        aggs += [
            F.sum(ok.cast("long")).alias(f"{name}__n"),
            F.avg(F.when(ok, F.abs(err))).alias(f"{name}__mae"),
            F.avg(F.when(ok, err * err)).alias(f"{name}__mse"),
            F.avg(F.when(ok, err)).alias(f"{name}__bias"),
        ]
    r = rows.agg(*aggs).first()
    out = {}
    for name in preds:
        n = r[f"{name}__n"] or 0
        if not n:
            out[name] = {"n": 0.0, "mae": math.nan, "rmse": math.nan, "r2": math.nan, "bias": math.nan}
            continue
        mse = r[f"{name}__mse"]
        out[name] = {
            "n": float(n),
            "mae": r[f"{name}__mae"],
            "rmse": math.sqrt(mse),
            "r2": 1 - mse / r["_var"] if r["_var"] else math.nan,
            "bias": r[f"{name}__bias"],
        }
    return out


def trip_energy_metrics_pd(trips, true_kwh: str, pred_kwh: str) -> dict[str, float]:
    """`trip_energy_metrics` on a pandas frame of trips (per-trip tables are small: one row per trip)
    plus WAPE = sum |error| / sum true (robust to short trips whose true energy is near 0)."""
    import numpy as np

    t = trips[[true_kwh, pred_kwh]].astype(float).dropna()
    t = t[t[true_kwh] > 0]
    if t.empty:
        return {"n": 0.0, "mae_kwh": math.nan, "rmse_kwh": math.nan, "mape_pct": math.nan, "median_ape_pct": math.nan, "wape_pct": math.nan}
    err = t[pred_kwh].to_numpy() - t[true_kwh].to_numpy()
    ape = np.abs(err) / t[true_kwh].to_numpy() * 100
    return {
        "n": float(len(t)),
        "mae_kwh": float(np.mean(np.abs(err))),
        "rmse_kwh": float(np.sqrt(np.mean(err**2))),
        "mape_pct": float(np.mean(ape)),
        "median_ape_pct": float(np.median(ape)),
        "wape_pct": float(100 * np.abs(err).sum() / t[true_kwh].sum()),
        "total_bias_pct": float(100 * err.sum() / t[true_kwh].sum()),
    }


def roc_pr_auc(df: DataFrame, label: str, score: str) -> tuple[float, float]:
    """(ROC-AUC, PR-AUC) of a real-valued score against a 0/1 label; NaN when one class is absent."""
    from pyspark.ml.evaluation import BinaryClassificationEvaluator

    rows = df.where(F.col(label).isNotNull() & F.col(score).isNotNull()).select(
        F.col(label).cast("double").alias("label"), F.col(score).cast("double").alias("rawPrediction")
    )
    counts = rows.agg(F.sum("label").alias("pos"), F.count(F.lit(1)).alias("n")).first()
    if not counts["n"] or not counts["pos"] or counts["pos"] == counts["n"]:
        return math.nan, math.nan
    ev = BinaryClassificationEvaluator(labelCol="label", rawPredictionCol="rawPrediction", numBins=2000)
    return ev.setMetricName("areaUnderROC").evaluate(rows), ev.setMetricName("areaUnderPR").evaluate(rows)


def classification_metrics(df: DataFrame, label: str, prob: str, threshold: float) -> dict[str, float]:
    """ROC-AUC, PR-AUC, Brier score, and precision/recall/F1 at `threshold`, base rate."""
    rows = df.where(F.col(label).isNotNull() & F.col(prob).isNotNull())
    y = F.col(label).cast("double")
    hit = (F.col(prob) >= threshold).cast("double")
    r = rows.agg(
        F.count(F.lit(1)).alias("n"),
        F.avg((F.col(prob) - y) ** 2).alias("brier"),
        F.sum(hit * y).alias("tp"),
        F.sum(hit * (1 - y)).alias("fp"),
        F.sum((1 - hit) * y).alias("fn"),
        F.avg(y).alias("base_rate"),
    ).first()
    if not r["n"]:
        return {"n": 0.0}
    tp, fp, fn = r["tp"], r["fp"], r["fn"]
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    roc, pr = roc_pr_auc(rows, label, prob)
    return {
        "n": float(r["n"]),
        "roc_auc": roc,
        "pr_auc": pr,
        "brier": r["brier"],
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "threshold": float(threshold),
        "base_rate": r["base_rate"],
    }


def best_f1_threshold(df: DataFrame, label: str, prob: str, grid: int = 99) -> float:
    """The probability threshold (on a 0.01 grid) maximising F1 on `df` (a validation window)."""
    thresholds = [round((i + 1) / (grid + 1), 4) for i in range(grid)]
    y = F.col(label).cast("double")
    aggs = []
    for i, t in enumerate(thresholds):
        hit = (F.col(prob) >= t).cast("double")
        aggs += [F.sum(hit * y).alias(f"tp{i}"), F.sum(hit).alias(f"pp{i}")]
    r = df.where(F.col(label).isNotNull() & F.col(prob).isNotNull()).agg(F.sum(y).alias("pos"), *aggs).first()
    pos = r["pos"] or 0.0
    best_t, best_f1 = 0.5, -1.0
    for i, t in enumerate(thresholds):
        tp, pp = r[f"tp{i}"] or 0.0, r[f"pp{i}"] or 0.0
        f1 = 2 * tp / (pp + pos) if pp + pos else 0.0
        if f1 > best_f1:
            best_t, best_f1 = t, f1
    return best_t


def trip_energy_metrics(trips: DataFrame, true_kwh: str, pred_kwh: str) -> dict[str, float]:
    """Trip-level MAE (kWh), RMSE, MAPE (%) and median APE (%) over trips with true energy > 0."""
    rows = trips.where(F.col(true_kwh).isNotNull() & F.col(pred_kwh).isNotNull() & (F.col(true_kwh) > 0))
    err = F.col(pred_kwh) - F.col(true_kwh)
    ape = F.abs(err) / F.col(true_kwh) * 100
    r = rows.agg(
        F.count(F.lit(1)).alias("n"),
        F.avg(F.abs(err)).alias("mae"),
        F.sqrt(F.avg(err * err)).alias("rmse"),
        F.avg(ape).alias("mape"),
        F.percentile_approx(ape, 0.5, 10000).alias("median_ape"),
        F.sum(err).alias("sum_err"),
        F.sum(true_kwh).alias("sum_true"),
    ).first()
    if not r["n"]:
        return {"n": 0.0, "mae_kwh": math.nan, "rmse_kwh": math.nan, "mape_pct": math.nan, "median_ape_pct": math.nan}
    return {
        "n": float(r["n"]),
        "mae_kwh": r["mae"],
        "rmse_kwh": r["rmse"],
        "mape_pct": r["mape"],
        "median_ape_pct": float(r["median_ape"]),
        "total_bias_pct": 100 * r["sum_err"] / r["sum_true"] if r["sum_true"] else math.nan,
    }


def prefixed(metrics: dict[str, float], prefix: str) -> dict[str, float]:
    return {f"{prefix}{k}": v for k, v in metrics.items()}

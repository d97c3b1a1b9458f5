"""The evaluation protocol of the models: time split, baselines and metrics on Spark DataFrames.

Time split (`time_split`, `soc_split_rows`, `energy_split_rows`): the last `ml.test_days` local
days test, the day before validates, earlier days train, with `ml.gap_min` between windows so no
label of a training row reaches into a later window. Baselines (`soc_baselines`,
`energy_baselines`) are fitted on training rows and scored on the model's own test rows.

Metrics are plain dicts of floats (nothing is written). Aggregates run in Spark so a fleet's test
window never has to fit on the driver; only ROC/PR areas use pyspark.ml's
BinaryClassificationEvaluator (binned, exact enough at 2000 bins) and per-trip tables (one row
per trip) are collected.

Units: SOC metrics are percent points; energy metrics kWh/km or kWh; MAPE and WAPE in percent.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone

import pandas as pd
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from common.core.config import MlConfig, SocModelConfig
from common.core.frames import materialise
from common.io.tables import first_row
from common.ml.features import SOC_EVENT, SOC_LABEL, SOC_WINDOWS_MIN, assign_to_intervals, energy_training_rows, persistence_drop
from common.ml.train import InsufficientData


def regression_metrics(df: DataFrame, label: str, pred: str) -> dict[str, float]:
    """MAE, RMSE, R^2 (1 - SSE/SST), bias and row count over rows where both are non-null.

    Parameters
    ----------
    df : DataFrame
        Rows with the label and prediction columns.
    label, pred : str
        Label and prediction columns.

    Returns
    -------
    dict[str, float]
        ``mae``, ``rmse`` and ``bias`` (mean of pred - label) in the label's unit, ``r2``, and the row
        count ``n``; NaN metrics when ``n`` is 0.
    """
    rows = df.where(F.col(label).isNotNull() & F.col(pred).isNotNull())
    err = F.col(pred) - F.col(label)
    r = first_row(
        rows.agg(
            F.count(F.lit(1)).alias("n"),
            F.avg(F.abs(err)).alias("mae"),
            F.avg(err * err).alias("mse"),
            F.avg(err).alias("bias"),
            F.var_pop(label).alias("var"),
        )
    )
    if not r["n"]:
        return {"n": 0.0, "mae": math.nan, "rmse": math.nan, "r2": math.nan, "bias": math.nan}
    r2 = 1 - r["mse"] / r["var"] if r["var"] else math.nan
    return {"n": float(r["n"]), "mae": r["mae"], "rmse": math.sqrt(r["mse"]), "r2": r2, "bias": r["bias"]}


def regression_metrics_many(df: DataFrame, label: str, preds: dict[str, str]) -> dict[str, dict[str, float]]:
    """`regression_metrics` of several prediction columns in one Spark aggregation.

    Rows count for a column when the label and that column are non-null; the label variance is
    taken over the rows where every column is non-null (all our columns are non-null together).

    Parameters
    ----------
    df : DataFrame
        Rows with the label and prediction columns.
    label : str
        Label column.
    preds : dict[str, str]
        Candidate name -> its prediction column.

    Returns
    -------
    dict[str, dict[str, float]]
        Candidate name -> its `regression_metrics` (label's unit).
    """
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
    r = first_row(rows.agg(*aggs))
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
    """`trip_energy_metrics` on a pandas frame of trips, plus WAPE.

    Per-trip tables are small (one row per trip). WAPE = sum |error| / sum true (robust to short
    trips whose true energy is near 0).

    Parameters
    ----------
    trips : pandas.DataFrame
        One row per trip.
    true_kwh, pred_kwh : str
        Columns of the true and predicted trip energy (kWh); trips with a null or a true energy <= 0
        are skipped.

    Returns
    -------
    dict[str, float]
        ``n``, ``mae_kwh``, ``rmse_kwh`` (kWh), ``mape_pct``, ``median_ape_pct``, ``wape_pct`` and
        ``total_bias_pct`` (100 x sum error / sum true) in percent; NaN metrics (no ``total_bias_pct``)
        with ``n`` 0.
    """
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
    """(ROC-AUC, PR-AUC) of a real-valued score against a 0/1 label; NaN when one class is absent.

    Parameters
    ----------
    df : DataFrame
        Rows with the label and score columns (rows with a null in either are skipped).
    label : str
        0/1 label column.
    score : str
        Score column (any real value; higher = more likely 1).

    Returns
    -------
    tuple of float
        (ROC-AUC, PR-AUC), from 2000 score bins.
    """
    from pyspark.ml.evaluation import BinaryClassificationEvaluator

    rows = df.where(F.col(label).isNotNull() & F.col(score).isNotNull()).select(F.col(label).cast("double").alias("label"), F.col(score).cast("double").alias("rawPrediction"))
    counts = first_row(rows.agg(F.sum("label").alias("pos"), F.count(F.lit(1)).alias("n")))
    if not counts["n"] or not counts["pos"] or counts["pos"] == counts["n"]:
        return math.nan, math.nan
    ev = BinaryClassificationEvaluator(labelCol="label", rawPredictionCol="rawPrediction", numBins=2000)
    return ev.setMetricName("areaUnderROC").evaluate(rows), ev.setMetricName("areaUnderPR").evaluate(rows)


def classification_metrics(df: DataFrame, label: str, prob: str, threshold: float) -> dict[str, float]:
    """ROC-AUC, PR-AUC, Brier score, and precision/recall/F1 at `threshold`, base rate.

    Parameters
    ----------
    df : DataFrame
        Rows with the label and probability columns (rows with a null in either are skipped).
    label : str
        0/1 label column.
    prob : str
        Predicted probability column (0-1).
    threshold : float
        A row with ``prob`` >= this is called positive.

    Returns
    -------
    dict[str, float]
        ``n`` and, as fractions 0-1, ``roc_auc``, ``pr_auc``, ``brier``, ``precision``, ``recall``, ``f1``,
        ``threshold`` and ``base_rate`` (share of positive labels); only ``n`` (0) without rows.
    """
    rows = df.where(F.col(label).isNotNull() & F.col(prob).isNotNull())
    y = F.col(label).cast("double")
    hit = (F.col(prob) >= threshold).cast("double")
    r = first_row(
        rows.agg(
            F.count(F.lit(1)).alias("n"),
            F.avg((F.col(prob) - y) ** 2).alias("brier"),
            F.sum(hit * y).alias("tp"),
            F.sum(hit * (1 - y)).alias("fp"),
            F.sum((1 - hit) * y).alias("fn"),
            F.avg(y).alias("base_rate"),
        )
    )
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
    """The probability threshold (on a 0.01 grid) maximising F1 on `df` (a validation window).

    Parameters
    ----------
    df : DataFrame
        Rows with the label and probability columns.
    label : str
        0/1 label column.
    prob : str
        Predicted probability column (0-1).
    grid : int
        Thresholds evenly spaced inside (0, 1): 99 gives 0.01 ... 0.99.

    Returns
    -------
    float
        The threshold with the highest F1 (the lowest of equal ones).
    """
    thresholds = [round((i + 1) / (grid + 1), 4) for i in range(grid)]
    y = F.col(label).cast("double")
    aggs = []
    for i, t in enumerate(thresholds):
        hit = (F.col(prob) >= t).cast("double")
        aggs += [F.sum(hit * y).alias(f"tp{i}"), F.sum(hit).alias(f"pp{i}")]
    r = first_row(df.where(F.col(label).isNotNull() & F.col(prob).isNotNull()).agg(F.sum(y).alias("pos"), *aggs))
    pos = r["pos"] or 0.0
    best_t, best_f1 = 0.5, -1.0
    for i, t in enumerate(thresholds):
        tp, pp = r[f"tp{i}"] or 0.0, r[f"pp{i}"] or 0.0
        f1 = 2 * tp / (pp + pos) if pp + pos else 0.0
        if f1 > best_f1:
            best_t, best_f1 = t, f1
    return best_t


def trip_energy_metrics(trips: DataFrame, true_kwh: str, pred_kwh: str) -> dict[str, float]:
    """Trip-level MAE (kWh), RMSE, MAPE (%) and median APE (%) over trips with true energy > 0.

    Parameters
    ----------
    trips : DataFrame
        One row per trip.
    true_kwh, pred_kwh : str
        Columns of the true and predicted trip energy (kWh).

    Returns
    -------
    dict[str, float]
        ``n``, ``mae_kwh``, ``rmse_kwh`` (kWh), ``mape_pct``, ``median_ape_pct`` (approximate percentile)
        and ``total_bias_pct`` (100 x sum error / sum true) in percent; NaN metrics with ``n`` 0.
    """
    rows = trips.where(F.col(true_kwh).isNotNull() & F.col(pred_kwh).isNotNull() & (F.col(true_kwh) > 0))
    err = F.col(pred_kwh) - F.col(true_kwh)
    ape = F.abs(err) / F.col(true_kwh) * 100
    r = first_row(
        rows.agg(
            F.count(F.lit(1)).alias("n"),
            F.avg(F.abs(err)).alias("mae"),
            F.sqrt(F.avg(err * err)).alias("rmse"),
            F.avg(ape).alias("mape"),
            F.percentile_approx(ape, 0.5, 10000).alias("median_ape"),
            F.sum(err).alias("sum_err"),
            F.sum(true_kwh).alias("sum_true"),
        )
    )
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
    """The metrics with ``prefix`` put before every name.

    Parameters
    ----------
    metrics : dict[str, float]
    prefix : str

    Returns
    -------
    dict[str, float]
    """
    return {f"{prefix}{k}": v for k, v in metrics.items()}


# --------------------------------------------------------------------------------------------
# Time split
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TimeSplit:
    """UTC instants of the windows: train < valid_start - gap <= valid < test_start - gap <= test.

    Attributes
    ----------
    train_dates : list of str
        Local dates (YYYY-MM-DD) of the training window, in order.
    valid_date : str
        Local date of the validation day.
    test_dates : list of str
        Local dates of the test window, in order.
    valid_start_s : int
        First row of the validation day (epoch seconds, UTC).
    test_start_s : int
        First row of the test window (epoch seconds, UTC).
    gap_s : int
        Gap between the end of a row's label and the next window (s).
    """

    train_dates: list[str]
    valid_date: str
    test_dates: list[str]
    valid_start_s: int
    test_start_s: int
    gap_s: int

    def as_params(self) -> dict[str, str]:
        """The split as MLflow run params.

        Returns
        -------
        dict[str, str]
            ``split.*``: training date range and day count, validation and test dates, window starts (ISO, UTC) and
            the gap (min).
        """
        return {
            "split.train_dates": f"{self.train_dates[0]}..{self.train_dates[-1]} ({len(self.train_dates)} days)",
            "split.valid_date": self.valid_date,
            "split.test_dates": ",".join(self.test_dates),
            "split.valid_start_utc": datetime.fromtimestamp(self.valid_start_s, timezone.utc).isoformat(),
            "split.test_start_utc": datetime.fromtimestamp(self.test_start_s, timezone.utc).isoformat(),
            "split.gap_min": str(self.gap_s // 60),
        }

    def role(self, start_s: Column, end_s: Column) -> Column:
        """'train' / 'valid' / 'test' / null (inside a gap) for rows spanning [start_s, end_s] (epoch s).

        Parameters
        ----------
        start_s, end_s : Column
            First and last instant of the row (a label's end included), epoch seconds (UTC).

        Returns
        -------
        Column
            The row's window (string): test from the test start on; valid from the validation start when it ends at
            least a gap before the test start; train when it ends at least a gap before the validation start.
        """
        valid0 = self.valid_start_s
        test0 = self.test_start_s
        return F.when(start_s >= test0, "test").when((start_s >= valid0) & (end_s <= test0 - self.gap_s), "valid").when(end_s <= valid0 - self.gap_s, "train")


def day_starts(df: DataFrame, ts: str) -> DataFrame:
    """(local_date, first_s): the first instant of each local date of ``df`` in epoch seconds (UTC).

    Parameters
    ----------
    df : DataFrame
        Rows with local_date and ``ts``.
    ts : str
        Timestamp column (UTC).

    Returns
    -------
    DataFrame
        One row per local date: local_date, first_s (epoch seconds, UTC).
    """
    return df.groupBy("local_date").agg(F.min(F.col(ts).cast("long")).alias("first_s"))


def time_split(day_starts: DataFrame, test_days: int, gap_min: int) -> TimeSplit:
    """The split of the dates in ``day_starts``: the last ``test_days`` test, the one before validates.

    Parameters
    ----------
    day_starts : DataFrame
        (local_date, first_s) rows, see `day_starts`.
    test_days : int
        Local days in the test window.
    gap_min : int
        Minutes between the end of a row's label and the start of the next window.

    Returns
    -------
    TimeSplit

    Raises
    ------
    InsufficientData
        With fewer than ``test_days + 2`` local days.
    """
    rows = sorted(day_starts.collect(), key=lambda r: r["local_date"])  # bounded: one row per local date
    if len(rows) < test_days + 2:
        raise InsufficientData(f"need at least {test_days + 2} local days of data for a train/validation/test split (ml.test_days={test_days}); found {len(rows)}")
    dates = [str(r["local_date"]) for r in rows]
    return TimeSplit(
        train_dates=dates[: -test_days - 1],
        valid_date=dates[-test_days - 1],
        test_dates=dates[-test_days:],
        valid_start_s=int(rows[-test_days - 1]["first_s"]),
        test_start_s=int(rows[-test_days]["first_s"]),
        gap_s=gap_min * 60,
    )


@dataclass(frozen=True)
class SplitRows:
    """A model's rows with their window.

    Attributes
    ----------
    split : TimeSplit
    labelled : DataFrame
        Rows with a label and a window: ``role`` is 'train' / 'valid' / 'test', ``is_valid`` marks
        validation rows (xgboost.spark's validation indicator).
    counts : dict[str, int]
        Labelled rows per role.
    all_rows : DataFrame or None
        Every row with its ``role``, labelled or not (energy: every segment of a test trip is
        predicted, since the trip total is what is evaluated).
    """

    split: TimeSplit
    labelled: DataFrame
    counts: dict[str, int]
    all_rows: DataFrame | None = None

    @property
    def total(self) -> int:
        """Labelled rows in the three windows.

        Returns
        -------
        int
        """
        return sum(self.counts.values())

    def window(self, role: str) -> DataFrame:
        """Labelled rows of one window ('train', 'valid' or 'test').

        Parameters
        ----------
        role : str
            'train', 'valid' or 'test'.

        Returns
        -------
        DataFrame
        """
        return self.labelled.where(f"role = '{role}'")


def _role_counts(rows: DataFrame) -> dict[str, int]:
    return {r["role"]: r["n"] for r in rows.groupBy("role").agg(F.count(F.lit(1)).alias("n")).collect()}  # bounded: one row per split role


def soc_split_rows(features: DataFrame, ml: MlConfig) -> SplitRows:
    """SOC rows (features + labels, `soc_labels`) in their windows; a row spans its label horizon.

    Parameters
    ----------
    features : DataFrame
        `soc_labels` rows (``_t`` epoch seconds, ``minute_ts``, ``local_date``).
    ml : MlConfig
        ``test_days``, ``gap_min`` and the horizon ``soc.horizon_min`` (min).

    Returns
    -------
    SplitRows
        ``labelled`` is materialised (common.core.frames): the caller releases it.
    """
    h = ml.soc.horizon_min
    split = time_split(day_starts(features, "minute_ts"), ml.test_days, ml.gap_min)
    in_window = features.withColumn("role", split.role(F.col("_t"), F.col("_t") + h * 60))
    labelled = in_window.where(F.col(SOC_LABEL).isNotNull() & F.col("role").isNotNull())
    rows = materialise(labelled.withColumn("is_valid", F.col("role") == "valid"))
    return SplitRows(split, rows, _role_counts(rows))


def energy_split_rows(segments: DataFrame, ml: MlConfig) -> SplitRows:
    """Energy segments in their windows; a segment spans [start_ts, end_ts].

    Parameters
    ----------
    segments : DataFrame
        `build_energy_features` rows.
    ml : MlConfig
        ``test_days``, ``gap_min`` and ``energy`` (which segments are labelled).

    Returns
    -------
    SplitRows
        ``labelled``: `energy_training_rows` in a window; ``all_rows``: every segment with its role.
    """
    split = time_split(day_starts(segments, "start_ts"), ml.test_days, ml.gap_min)
    data = segments.withColumn("role", split.role(F.col("start_ts").cast("long"), F.col("end_ts").cast("long")))
    labelled = energy_training_rows(data, ml.energy).where(F.col("role").isNotNull()).withColumn("is_valid", F.col("role") == "valid")
    return SplitRows(split, labelled, _role_counts(labelled), all_rows=data)


# --------------------------------------------------------------------------------------------
# Baselines, fitted on training rows and scored on the model's test rows
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SocBaselines:
    """Baselines of the SOC models.

    Attributes
    ----------
    horizon_min : int
        Forecast horizon (min).
    drop_threshold_pct : float
        A drop of at least this many SOC percent points is an event.
    persistence_window_min : int
        The SOC slope window (min) of the persistence baseline: the one with the lowest training MAE.
    persistence_train_mae : dict[int, float]
        Training MAE (SOC percent points) of persistence per slope window (min).
    vehicle_means : DataFrame
        vehicle_id, ``_vmean`` (mean drop, percent points), ``_vrate`` (event rate).
    fleet_mean, fleet_rate : float or None
        The same over all vehicles, for vehicles without rows.
    """

    horizon_min: int
    drop_threshold_pct: float
    persistence_window_min: int
    persistence_train_mae: dict[int, float]
    vehicle_means: DataFrame
    fleet_mean: float | None
    fleet_rate: float | None

    def with_baselines(self, df: DataFrame) -> DataFrame:
        """``df`` with the baseline columns of the SOC models.

        Parameters
        ----------
        df : DataFrame
            SOC feature rows (vehicle_id, soc_pct, the slope column of ``persistence_window_min``).

        Returns
        -------
        DataFrame
            ``df`` + b_persistence (drop, SOC percent points), b_vehicle_mean (points), b_vehicle_rate (event
            rate 0-1) and b_persistence_event (persistence's yes/no call, 0/1); the joined ``_vmean`` and
            ``_vrate`` stay.
        """
        return (
            df.withColumn("b_persistence", persistence_drop(f"soc_slope_{self.persistence_window_min}m_pct_per_min", self.horizon_min))
            .join(F.broadcast(self.vehicle_means), "vehicle_id", "left")
            .withColumn("b_vehicle_mean", F.coalesce("_vmean", F.lit(self.fleet_mean)))
            .withColumn("b_vehicle_rate", F.coalesce("_vrate", F.lit(self.fleet_rate)))
            .withColumn("b_persistence_event", (F.col("b_persistence") >= self.drop_threshold_pct).cast("double"))
        )


def soc_baselines(train: DataFrame, fit_rows: DataFrame, soc: SocModelConfig) -> SocBaselines:
    """Persistence and the per-vehicle baselines of the SOC models.

    Persistence's slope window is chosen on ``train``; the per-vehicle mean drop / event rate are
    over ``fit_rows`` (the rows the final model is fitted on, so the comparison stays fair).

    Parameters
    ----------
    train, fit_rows : DataFrame
        Labelled SOC rows.
    soc : SocModelConfig
        Horizon (min) and drop threshold (SOC percent points).

    Returns
    -------
    SocBaselines
    """
    h = soc.horizon_min
    pers_mae = {w: regression_metrics(train.withColumn("_p", persistence_drop(f"soc_slope_{w}m_pct_per_min", h)), SOC_LABEL, "_p")["mae"] for w in SOC_WINDOWS_MIN}
    vmean = fit_rows.groupBy("vehicle_id").agg(F.avg(SOC_LABEL).alias("_vmean"), F.avg(SOC_EVENT).alias("_vrate"))
    fleet = first_row(fit_rows.agg(F.avg(SOC_LABEL).alias("m"), F.avg(SOC_EVENT).alias("r")))
    best_w = min(pers_mae, key=lambda w: pers_mae[w])
    return SocBaselines(h, soc.drop_threshold_pct, best_w, pers_mae, vmean, fleet["m"], fleet["r"])


@dataclass(frozen=True)
class EnergyBaselines:
    """Baselines of the energy model.

    Attributes
    ----------
    vehicle_means : DataFrame
        vehicle_id, ``_vmean``: the vehicle's kWh/km over its training segments.
    fleet_mean : float or None
        kWh/km over all training segments, for vehicles without any.
    """

    vehicle_means: DataFrame
    fleet_mean: float | None

    def with_baselines(self, df: DataFrame) -> DataFrame:
        """``df`` + b_vehicle_mean, b_physics and b_physics_x_hist (kWh/km).

        Physics uses the conf parameters; the vehicle mean stands in where physics is unknown
        (`physics_coverage` measures how often, `physics_baseline_name` labels it).

        Parameters
        ----------
        df : DataFrame
            Segment rows (vehicle_id, physics_kwh_per_km).

        Returns
        -------
        DataFrame
            ``df`` + b_vehicle_mean, b_physics and b_physics_x_hist (kWh/km); the joined ``_vmean`` stays.
        """
        return (
            df.join(F.broadcast(self.vehicle_means), "vehicle_id", "left")
            .withColumn("b_vehicle_mean", F.coalesce("_vmean", F.lit(self.fleet_mean)))
            .withColumn("b_physics", F.coalesce(F.col("physics_kwh_per_km"), F.col("b_vehicle_mean")))
            # no model: physics x the vehicle's observed/physics ratio of earlier days (the energy base)
            .withColumn("b_physics_x_hist", F.coalesce(F.col("physics_x_ratio_kwh_per_km"), F.col("b_physics")))
        )


def physics_coverage(segments: DataFrame, physics_models: Iterable[str], default_model: str | None) -> tuple[float, list[str]]:
    """How much of a window the physics baseline really covers.

    A segment whose vehicle model has no parameters in ``ml.energy.physics`` (a null model takes
    ``default_model``'s) gets the per-vehicle mean in `EnergyBaselines.with_baselines`: the
    baseline is then not physics there, and its name must say so (`physics_baseline_name`).

    Parameters
    ----------
    segments : DataFrame
        Scored segments (model).
    physics_models : iterable of str
        The vehicle models with physics parameters.
    default_model : str or None
        ``ml.energy.default_model``.

    Returns
    -------
    tuple of (float, list of str)
        Share of segments whose model has parameters (0-1; 1.0 for an empty window) and the
        sorted models without ("unknown" for a null model without a default).
    """
    known = set(physics_models)
    # bounded: one row per vehicle model of the window
    rows = segments.groupBy(F.coalesce("model", F.lit(default_model), F.lit("unknown")).alias("m")).count().collect()
    total = sum(r["count"] for r in rows)
    missing = sorted(r.m for r in rows if r.m not in known)
    covered = sum(r["count"] for r in rows if r.m in known)
    return (covered / total if total else 1.0), missing


def physics_baseline_name(coverage: float) -> str:
    """The physics baseline's name in gate reasons and tags: plain only when physics covers every segment.

    Parameters
    ----------
    coverage : float
        `physics_coverage` share (0-1).

    Returns
    -------
    str
        ``physics``, or ``physics+vehicle_mean (<share> % per-vehicle mean)`` with the share
        rounded up to 0.1 % (never "0 %" while any segment falls back).
    """
    if coverage >= 1.0:
        return "physics"
    return f"physics+vehicle_mean ({math.ceil(1000 * (1 - coverage)) / 10:g} % per-vehicle mean)"


def energy_baselines(train: DataFrame) -> EnergyBaselines:
    """Per-vehicle and fleet kWh/km over the labelled training segments ``train`` (distance-weighted).

    Parameters
    ----------
    train : DataFrame
        Labelled training segments (vehicle_id, energy_kwh in kWh, distance_km in km).

    Returns
    -------
    EnergyBaselines
    """
    vmean = train.groupBy("vehicle_id").agg((F.sum("energy_kwh") / F.sum("distance_km")).alias("_vmean"))
    fleet_mean = first_row(train.agg((F.sum("energy_kwh") / F.sum("distance_km")).alias("m")))["m"]
    return EnergyBaselines(vmean, fleet_mean)


# --------------------------------------------------------------------------------------------
# Trip energy: segment forecasts summed per trip
# --------------------------------------------------------------------------------------------
# Per-trip candidates: (metric prefix, column of trip kWh) -- the model and its baselines.
TRIP_CANDIDATES = (("", "pred_kwh"), ("baseline_physics_", "b_physics_kwh"), ("baseline_vehicle_mean_", "b_vehicle_mean_kwh"), ("baseline_physics_x_hist_", "b_physics_x_hist_kwh"))


def trip_truth_energy(truth_points: DataFrame | None, trips: DataFrame) -> DataFrame | None:
    """(trip_id, truth_kwh): the generator's battery energy (kWh) summed over (start_ts, end_ts] of each trip.

    Parameters
    ----------
    truth_points : DataFrame or None
        truth.points (synthetic data only; vehicle_id, ts, energy_kwh in kWh, anomaly_type: near
        duplicates are skipped); None gives None.
    trips : DataFrame
        silver.trips rows.

    Returns
    -------
    DataFrame or None
        One row per trip with truth points: trip_id, truth_kwh (kWh).
    """
    if truth_points is None:
        return None
    pts = truth_points.where(F.col("anomaly_type").isNull() | (F.col("anomaly_type") != "near_duplicate")).select("vehicle_id", "ts", "energy_kwh")
    return assign_to_intervals(pts, trips, "trip_id").groupBy("trip_id").agg(F.sum("energy_kwh").alias("truth_kwh"))


def trip_predictions(segment_preds: DataFrame, trips: DataFrame, cols: dict[str, str]) -> DataFrame:
    """Per trip: observed energy (kWh), distance (km) and each prediction column summed as kWh.

    Parameters
    ----------
    segment_preds : DataFrame
        Segments (trip_id, distance_km) with kWh/km prediction columns.
    trips : DataFrame
        silver.trips rows (trip_id, vehicle_id, energy_kwh, distance_km, start_ts).
    cols : dict[str, str]
        Prediction column (kWh/km) -> output column (kWh, = sum of kWh/km x km).

    Returns
    -------
    DataFrame
        One row per trip with segments: trip_id, vehicle_id, observed_kwh (kWh), trip_km (km), start_ts
        and the ``cols`` outputs (kWh).
    """
    sums = segment_preds.groupBy("trip_id").agg(
        *[F.sum(F.col(c) * F.col("distance_km")).alias(out) for c, out in cols.items()],
    )
    return trips.select("trip_id", "vehicle_id", F.col("energy_kwh").alias("observed_kwh"), F.col("distance_km").alias("trip_km"), "start_ts").join(sums, "trip_id")


def trip_window_metrics(segment_preds: DataFrame, trips: DataFrame, truth: DataFrame | None, cols: dict[str, str]) -> dict[str, float]:
    """Trip energy metrics of the model and its baselines on a window's trips.

    Parameters
    ----------
    segment_preds : DataFrame
        Every segment of the trips with kWh/km prediction columns.
    trips : DataFrame
        The window's trips (silver.trips rows).
    truth : DataFrame or None
        `trip_truth_energy` of these trips; adds ``*truth_test_trip_*`` metrics and
        ``observed_soc_vs_truth_test_trip_*`` (how far the SOC-derived label is from the truth).
    cols : dict[str, str]
        Prediction column -> trip kWh column among `TRIP_CANDIDATES` (absent candidates are skipped).

    Returns
    -------
    dict[str, float]
        ``<candidate prefix>test_trip_<metric>`` of `trip_energy_metrics_pd` (kWh, percent).
    """
    per_trip = trip_predictions(segment_preds, trips, cols)
    if truth is not None:
        per_trip = per_trip.join(truth, "trip_id", "left")
    pdf: pd.DataFrame = per_trip.toPandas()  # bounded: one row per test-window trip
    out: dict[str, float] = {}
    for name, col in TRIP_CANDIDATES:
        if col not in pdf.columns:
            continue
        out |= prefixed(trip_energy_metrics_pd(pdf, "observed_kwh", col), f"{name}test_trip_")
        if truth is not None:
            out |= prefixed(trip_energy_metrics_pd(pdf, "truth_kwh", col), f"{name}truth_test_trip_")
    if truth is not None:
        out |= prefixed(trip_energy_metrics_pd(pdf, "truth_kwh", "observed_kwh"), "observed_soc_vs_truth_test_trip_")
    return out

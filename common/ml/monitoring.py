"""Model monitoring: drift of the inputs and outputs against training, and realised error.

Training stores a *reference profile* with every registered version (`reference_profile`, in the
model's MLmodel metadata and as the run artifact ``monitoring/reference_profile.json``): for each
input feature the decile edges of the training rows and the share of training rows in each bin
(missing values are a bin of their own), and the same for the model's predictions on the test
window. Batch scoring (jobs/score.py) bins the rows it scores with the same edges and writes
`monitoring_rows` to gold.model_monitoring: the population stability index (PSI) per feature and
for the prediction, the prediction's quantiles beside the training ones, and the realised error
where labels have arrived. A PSI above ``ml.monitoring.psi_threshold`` marks drift.

PSI = sum over bins of (a - e) * ln(a / e), with e the training share and a the scored share,
both floored at ``ml.monitoring.psi_floor`` so an empty bin does not make it infinite. No
library in the stack computes it (scikit-learn, statsmodels and Spark ML have no PSI), so it is
written here; the binning is Spark's `approxQuantile`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any

import numpy as np
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from common.core.config import Config, EnergyModelConfig, MonitoringConfig, SocModelConfig
from common.core.frames import materialise, release
from common.io import tables
from common.io.tables import first_row, sql_str
from common.ml.champion import Champion
from common.ml.evaluate import roc_pr_auc
from common.ml.features import ENERGY_LABEL, SOC_EVENT, SOC_LABEL, energy_training_rows, soc_labels

MONITORING_TABLE = "gold.model_monitoring"
REFERENCE_KEY = "monitoring_reference"  # key of the profile in the MLmodel metadata
PREDICTION = "prediction"  # name of the model output in a profile

MONITORING_SCHEMA = T.StructType(
    [
        T.StructField("model_name", T.StringType()),
        T.StructField("model_version", T.StringType()),
        T.StructField("window_start", T.DateType()),  # first local date scored (null: from the first)
        T.StructField("window_end", T.DateType()),  # last local date scored (null: to the last)
        T.StructField("kind", T.StringType()),  # feature_psi | prediction_psi | prediction_quantile | realised
        T.StructField("name", T.StringType()),  # feature, quantile (p10 ...) or metric
        T.StructField("value", T.DoubleType()),  # on the scored rows
        T.StructField("reference", T.DoubleType()),  # the same on the training sample (quantiles, metrics at training)
        T.StructField("rows", T.LongType()),  # rows the value is computed on
        T.StructField("threshold", T.DoubleType()),  # drift threshold (PSI)
        T.StructField("drifted", T.BooleanType()),  # value > threshold (PSI rows only)
        T.StructField("note", T.StringType()),
        T.StructField("scored_at", T.TimestampType()),
    ]
)
QUANTILES = (0.1, 0.5, 0.9)
BIN_COLUMNS_PER_PASS = 16


def _clean(col: str) -> Column:
    """The column as double with NaN as null (approxQuantile skips nulls, and NaN would sort last)."""
    c = F.col(col).cast("double")
    return F.when(~F.isnan(c), c)


def _bin(col: str, edges: Sequence[float]) -> Column:
    """Bin index of a value: the number of edges at or below it (0..len(edges)); missing values get len(edges) + 1."""
    c = _clean(col)
    inside = sum((F.when(c >= F.lit(float(e)), 1).otherwise(0) for e in edges), F.lit(0))
    return F.when(c.isNull(), F.lit(len(edges) + 1)).otherwise(inside)


def _bin_counts(df: DataFrame, edges: Mapping[str, Sequence[float]]) -> tuple[int, dict[str, list[int]]]:
    """Rows of `df`, and per column its rows in each bin of `_bin`.

    One integer bin per column, unpivoted (`stack`) and counted by (column, bin): a grouped count
    of columns x bins rows, where one sum per column and bin (hundreds of aggregate columns) would
    switch Spark's code generation off.
    """
    n = int(first_row(df.agg(F.count(F.lit(1)).alias("n")))["n"] or 0)
    counts = {col: [0] * (len(e) + 2) for col, e in edges.items()}
    if not edges or not n:
        return n, counts
    names = list(edges)
    # a few columns per query: ~50 binned doubles in one projection exceed the JVM's method
    # parameter limit in Spark's generated code, which then logs an error and falls back
    for first in range(0, len(names), BIN_COLUMNS_PER_PASS):
        chunk = range(first, min(first + BIN_COLUMNS_PER_PASS, len(names)))
        binned = df.select(*[_bin(names[i], edges[names[i]]).alias(f"_b{i}") for i in chunk])
        pairs = ", ".join(f"{i}, _b{i}" for i in chunk)
        grouped = binned.select(F.expr(f"stack({len(chunk)}, {pairs}) AS (_c, _bin)")).groupBy("_c", "_bin").count()
        for r in grouped.collect():  # bounded: columns x (bins + 2) rows
            counts[names[r["_c"]]][r["_bin"]] = int(r["count"])
    return n, counts


def reference_profile(rows: DataFrame, columns: Mapping[str, str], cfg: MonitoringConfig) -> dict[str, Any]:
    """Bin edges and training shares per column, the profile scoring compares against.

    Parameters
    ----------
    rows : DataFrame
        The training sample (or, for the prediction, the test window's predictions).
    columns : Mapping[str, str]
        Profile name -> column of `rows` (a feature keeps its name; the model output is `PREDICTION`).
    cfg : MonitoringConfig
        Bins and the quantile's relative error.

    Returns
    -------
    dict
        ``{"rows": n, "columns": {name: {"edges": [...], "shares": [...], "quantiles": {"p10": ...}}}}``;
        shares has len(edges) + 2 entries (the last one: missing values). JSON-serialisable.
    """
    names = list(columns)
    cleaned = rows.select(*[_clean(columns[n]).alias(n) for n in names])
    probs = [k / cfg.bins for k in range(1, cfg.bins)] + list(QUANTILES)
    qs = cleaned.approxQuantile(names, probs, cfg.quantile_relative_error) if names else []
    edges = {n: sorted({float(v) for v in q[: cfg.bins - 1]}) for n, q in zip(names, qs, strict=True)}
    n, counts = _bin_counts(cleaned, edges)
    profile: dict[str, Any] = {"rows": n, "columns": {}}
    for name, q in zip(names, qs, strict=True):
        shares = [c / n if n else 0.0 for c in counts[name]]
        quantiles = {f"p{round(100 * p)}": float(v) for p, v in zip(QUANTILES, q[cfg.bins - 1 :], strict=True)} if q else {}
        profile["columns"][name] = {"edges": edges[name], "shares": shares, "quantiles": quantiles}
    return profile


def psi(expected: Sequence[float], actual: Sequence[float], floor: float) -> float:
    """Population stability index of `actual` shares against `expected` shares (same bins).

    Parameters
    ----------
    expected, actual : sequence of float
        Shares (or counts) per bin; each is floored at `floor` after normalising, then renormalised.
    floor : float
        Smallest share a bin is given (an empty bin would make the index infinite).

    Returns
    -------
    float
        NaN when either side has no rows.
    """
    e, a = np.asarray(expected, dtype=float), np.asarray(actual, dtype=float)
    if e.sum() <= 0 or a.sum() <= 0:
        return math.nan
    e = np.maximum(e / e.sum(), floor)
    a = np.maximum(a / a.sum(), floor)
    e, a = e / e.sum(), a / a.sum()
    return float(np.sum((a - e) * np.log(a / e)))


def drift_rows(scored: DataFrame, profile: Mapping[str, Any], columns: Mapping[str, str], cfg: MonitoringConfig) -> list[dict]:
    """PSI per profiled column, and the scored quantiles of the prediction beside the training ones.

    Parameters
    ----------
    scored : DataFrame
        The scored rows with the features and the prediction.
    profile : Mapping
        `reference_profile` of the model version (features and `PREDICTION`).
    columns : Mapping[str, str]
        Profile name -> column of `scored`; names the profile lacks get a row with a note.
    cfg : MonitoringConfig

    Returns
    -------
    list of dict
        Rows of `MONITORING_SCHEMA` without the model, window and time columns.
    """
    ref = profile.get("columns", {})
    known = {n: c for n, c in columns.items() if n in ref}
    cleaned = scored.select(*[_clean(c).alias(n) for n, c in known.items()])
    n, counts = _bin_counts(cleaned, {name: ref[name]["edges"] for name in known})
    out = []
    for name in columns:
        if name not in ref:
            out.append(_row("feature_psi", name, None, None, n, cfg, note="not in the version's training profile (trained before monitoring existed)"))
            continue
        value = psi(ref[name]["shares"], counts[name], cfg.psi_floor)
        kind = "prediction_psi" if name == PREDICTION else "feature_psi"
        if 0 < n < cfg.min_rows:
            out.append(_row(kind, name, value, None, n, cfg, note=f"{n} rows, fewer than ml.monitoring.min_rows ({cfg.min_rows}): sampling noise alone gives a PSI above the threshold"))
            continue
        if name in cfg.calendar_features:
            out.append(_row(kind, name, value, None, n, cfg, note="calendar input: follows the scored window's days and hours, never marks drift"))
            continue
        out.append(_row(kind, name, value, None, n, cfg, drifted=bool(value > cfg.psi_threshold) if math.isfinite(value) else None))
    if PREDICTION in known and n:
        qs = cleaned.approxQuantile(PREDICTION, list(QUANTILES), cfg.quantile_relative_error)
        for p, v in zip(QUANTILES, qs, strict=False):
            key = f"p{round(100 * p)}"
            out.append(_row("prediction_quantile", key, float(v), ref[PREDICTION]["quantiles"].get(key), n, cfg))
    return out


def _row(kind: str, name: str, value: float | None, reference: float | None, rows: int, cfg: MonitoringConfig, drifted: bool | None = None, note: str | None = None) -> dict:
    psi_kind = kind.endswith("_psi")
    finite = value is not None and math.isfinite(value)
    return {
        "kind": kind,
        "name": name,
        "value": value if finite else None,
        "reference": reference,
        "rows": rows,
        "threshold": cfg.psi_threshold if psi_kind else None,
        "drifted": drifted if psi_kind else None,
        "note": note if note or finite or value is None else "no rows to compare",
    }


def realised_row(name: str, value: float | None, reference: float | None, rows: int, cfg: MonitoringConfig, note: str | None = None) -> dict:
    """A `realised` row: a metric on the scored rows whose labels have arrived, beside its training value.

    Parameters
    ----------
    name : str
        Metric name (the MLflow metric name without ``test_``).
    value : float or None
        On the labelled scored rows; None when none are labelled (`note` says so).
    reference : float or None
        The same metric on the version's test window at training.
    rows : int
        Labelled rows.
    cfg : MonitoringConfig
    note : str, optional

    Returns
    -------
    dict
    """
    finite = value is not None and math.isfinite(value)
    return _row("realised", name, value if finite else None, reference, rows, cfg, note=note or (None if finite else "no labelled rows in the window yet"))


def monitoring_frame(spark, rows: list[dict], model_name: str, model_version: str, start: date | None, end: date | None) -> DataFrame:
    """Rows of gold.model_monitoring for one model version and scoring window.

    Parameters
    ----------
    spark : SparkSession
    rows : list of dict
        `drift_rows` and `realised_row` results.
    model_name, model_version : str
    start, end : datetime.date or None
        The window scored (None: open).

    Returns
    -------
    DataFrame
        `MONITORING_SCHEMA`, scored_at = now.
    """
    full = [{**r, "model_name": model_name, "model_version": str(model_version), "window_start": start, "window_end": end, "scored_at": None} for r in rows]
    return spark.createDataFrame(full, MONITORING_SCHEMA).withColumn("scored_at", F.current_timestamp())


def model_profile(train_rows: DataFrame, features: Sequence[str], scored: DataFrame, pred_col: str, metrics: Mapping[str, float], cfg: MonitoringConfig, out_of_sample_from_s: int) -> dict[str, Any]:
    """The reference profile of a model version: its training rows' features, its test-window predictions and metrics.

    Parameters
    ----------
    train_rows : DataFrame
        The rows the registered booster was fitted on.
    features : sequence of str
        The model's inputs.
    scored : DataFrame
        Test-window rows with the prediction column.
    pred_col : str
        The prediction column of `scored`.
    metrics : Mapping[str, float]
        Test-window metrics kept as the reference of the realised ones (``mae``, ``roc_auc`` ...).
    cfg : MonitoringConfig
    out_of_sample_from_s : int
        Start of the test window (epoch s): scoring monitors only rows from there on.

    Returns
    -------
    dict
        `reference_profile` of the features plus `PREDICTION`, ``prediction_rows``,
        ``test_metrics`` and ``out_of_sample_from_s``.
    """
    profile = reference_profile(train_rows, {f: f for f in features}, cfg)
    pred = reference_profile(scored, {PREDICTION: pred_col}, cfg)
    profile["columns"][PREDICTION] = pred["columns"][PREDICTION]
    profile["prediction_rows"] = pred["rows"]
    profile["test_metrics"] = {k: float(v) for k, v in metrics.items() if v is not None and math.isfinite(v)}
    profile["out_of_sample_from_s"] = int(out_of_sample_from_s)
    return profile


def version_monitoring(scored: DataFrame, inputs: Sequence[str], pred_col: str, metadata: Mapping[str, Any] | None, realised: list[dict], cfg: MonitoringConfig) -> list[dict]:
    """Every monitoring row of one scored model version: drift per input and of the prediction, then `realised`.

    Parameters
    ----------
    scored : DataFrame
        The scored rows: the model's inputs and the prediction column.
    inputs : sequence of str
        The model's inputs (its signature).
    pred_col : str
    metadata : Mapping or None
        The logged model's metadata; a version trained before monitoring existed has no profile:
        one row says so instead of drift figures.
    realised : list of dict
        `realised_row` rows.
    cfg : MonitoringConfig

    Returns
    -------
    list of dict
    """
    profile = (metadata or {}).get(REFERENCE_KEY)
    if not profile:
        return [_row("feature_psi", "*", None, None, 0, cfg, note="the version has no training profile (trained before monitoring existed): retrain to monitor drift"), *realised]
    return drift_rows(scored, profile, {**{c: c for c in inputs}, PREDICTION: pred_col}, cfg) + realised


def reference_metric(metadata: Mapping[str, Any] | None, name: str) -> float | None:
    """A test-window metric stored in the version's profile (`model_profile`), or None.

    Parameters
    ----------
    metadata : Mapping or None
        The logged model's metadata.
    name : str
        Metric name (``mae``, ``roc_auc`` ...).

    Returns
    -------
    float or None
    """
    value = ((metadata or {}).get(REFERENCE_KEY) or {}).get("test_metrics", {}).get(name)
    return None if value is None else float(value)


def out_of_sample(rows: DataFrame, metadata: Mapping[str, Any] | None, epoch_s: Column) -> DataFrame:
    """The rows after the version's training data: from its test window's start on (`model_profile`).

    Monitoring on the rows a model was fitted on would flatter the realised error and dilute drift;
    a version without a stored start keeps every row.

    Parameters
    ----------
    rows : DataFrame
    metadata : Mapping or None
        The logged model's metadata.
    epoch_s : Column
        The row's time in epoch seconds.

    Returns
    -------
    DataFrame
    """
    start = ((metadata or {}).get(REFERENCE_KEY) or {}).get("out_of_sample_from_s")
    return rows if start is None else rows.where(epoch_s >= F.lit(int(start)))


def soc_monitoring(
    features: DataFrame, predictions: DataFrame, soc: SocModelConfig, regressor: Champion, classifier: Champion | None, cfg: MonitoringConfig, why_no_classifier: str | None = None
) -> dict[tuple[str, str], list[dict]]:
    """Monitoring rows of the SOC drop regressor and the drop-event classifier for one scoring run.

    Drift and the realised error are measured on the scored rows that have a label, the same
    population as the training rows (`soc_labels`: no charging inside the horizon), and only from
    the version's test window on (`out_of_sample`). Labels are computed within the scored window,
    so the window's last horizon_min has none.

    Parameters
    ----------
    features : DataFrame
        The scored `build_soc_features` rows.
    predictions : DataFrame
        The gold.predictions_soc_minutely rows just written for the same window.
    soc : SocModelConfig
        Registered names; horizon, staleness and threshold of the labels (`soc_labels`).
    regressor, classifier : Champion
        The scored versions (no classifier: the gate refused it; one row says so and replaces its
        earlier figures of the window).
    cfg : MonitoringConfig
    why_no_classifier : str, optional
        Why the classifier was not scored.

    Returns
    -------
    dict
        (model name, version) -> rows.
    """
    keys = ["vehicle_id", "minute_ts"]
    labelled = soc_labels(features, soc).where(F.col(SOC_LABEL).isNotNull()).join(predictions.select(*keys, "pred_soc_drop_pct", "prob_drop_event"), keys)
    out: dict[tuple[str, str], list[dict]] = {}
    for model, pred, kind in ((regressor, "pred_soc_drop_pct", "regressor"), (classifier, "prob_drop_event", "classifier")):
        name = soc.registered_model if kind == "regressor" else soc.registered_classifier
        if model is None:
            out[(name, "none")] = [_row("realised", "*", None, None, 0, cfg, note=f"not scored: {why_no_classifier or 'no champion'}")]
            continue
        rows = materialise(out_of_sample(labelled, model.metadata, F.col("_t")).select(*model.inputs, pred, SOC_LABEL, SOC_EVENT))
        try:
            stats = first_row(rows.agg(F.count(F.lit(1)).alias("n"), F.avg(F.abs(F.col(pred) - F.col(SOC_LABEL))).alias("mae")))
            n = int(stats["n"] or 0)
            if kind == "regressor":
                realised = [realised_row("mae", stats["mae"], reference_metric(model.metadata, "mae"), n, cfg)]
            else:
                auc = roc_pr_auc(rows, SOC_EVENT, pred) if n else (math.nan, math.nan)
                one_class = "only one class among the labelled rows: AUC undefined" if n and not math.isfinite(auc[0]) else None
                realised = [realised_row(k, v, reference_metric(model.metadata, k), n, cfg, note=one_class) for k, v in zip(("roc_auc", "pr_auc"), auc, strict=True)]
            out[(name, model.version)] = version_monitoring(rows, model.inputs, pred, model.metadata, realised, cfg)
        finally:
            release(rows)
    return out


def energy_monitoring(features: DataFrame, predictions: DataFrame, energy: EnergyModelConfig, model: Champion, cfg: MonitoringConfig) -> dict[tuple[str, str], list[dict]]:
    """Monitoring rows of the energy model for one scoring run.

    Drift and the realised segment MAE (kWh/km) are measured on the scored segments a model may
    learn from (`energy_training_rows`: an SOC label and at least ``energy.min_segment_km``),
    the population of the training rows and of training's ``segment_mae``, from the version's
    test window on (`out_of_sample`).

    Parameters
    ----------
    features : DataFrame
        The scored `build_energy_features` rows.
    predictions : DataFrame
        The gold.predictions_energy rows just written for the same window.
    energy : EnergyModelConfig
    model : Champion
    cfg : MonitoringConfig

    Returns
    -------
    dict
        (model name, version) -> rows.
    """
    labelled = energy_training_rows(features, energy).join(predictions.select("segment_id", "pred_kwh_per_km"), "segment_id")
    rows = materialise(out_of_sample(labelled, model.metadata, F.col("start_ts").cast("long")).select(*model.inputs, "pred_kwh_per_km", ENERGY_LABEL))
    try:
        stats = first_row(rows.agg(F.count(F.lit(1)).alias("n"), F.avg(F.abs(F.col("pred_kwh_per_km") - F.col(ENERGY_LABEL))).alias("mae")))
        realised = [realised_row("segment_mae", stats["mae"], reference_metric(model.metadata, "segment_mae"), int(stats["n"] or 0), cfg)]
        return {(energy.registered_model, model.version): version_monitoring(rows, model.inputs, "pred_kwh_per_km", model.metadata, realised, cfg)}
    finally:
        release(rows)


def monitoring_table(spark, per_version: Mapping[tuple[str, str], list[dict]], start: date | None, end: date | None) -> tuple[DataFrame, str]:
    """Rows of gold.model_monitoring for a scoring run and the predicate of the rows they replace.

    A rerun over the same window replaces that window's rows of the same models, so reruns
    change nothing but scored_at.

    Parameters
    ----------
    spark : SparkSession
    per_version : Mapping
        (model name, version) -> rows, from `soc_monitoring` / `energy_monitoring`.
    start, end : datetime.date or None
        The scored window (None: open).

    Returns
    -------
    tuple of (DataFrame, str)
        The rows and a Delta ``replaceWhere`` predicate.
    """
    frames = [monitoring_frame(spark, rows, name, version, start, end) for (name, version), rows in per_version.items()]
    df = frames[0]
    for f in frames[1:]:
        df = df.unionByName(f)

    names = ", ".join(sorted({f"'{sql_str(name)}'" for name, _ in per_version}))
    return df, f"model_name IN ({names}) AND {_same_date('window_start', start)} AND {_same_date('window_end', end)}"


def _same_date(col: str, d: date | None) -> str:
    """SQL predicate: the date column equals `d` (IS NULL for an open bound)."""
    return f"{col} IS NULL" if d is None else f"{col} = DATE'{d.isoformat()}'"


def write_monitoring(spark, cfg: Config, per_version: Mapping[tuple[str, str], list[dict]], start: date | None, end: date | None) -> int:
    """Write a scoring run's rows to gold.model_monitoring, replacing the same models' rows of the window.

    Parameters
    ----------
    spark : SparkSession
    cfg : Config
    per_version : Mapping
        (model name, version) -> rows (`soc_monitoring`, `energy_monitoring`).
    start, end : datetime.date or None
        The scored window.

    Returns
    -------
    int
        The table's new Delta version.
    """
    rows, replaced = monitoring_table(spark, per_version, start, end)
    return tables.write(rows, cfg, MONITORING_TABLE, replace_where=replaced if tables.exists(spark, cfg, MONITORING_TABLE) else None).version

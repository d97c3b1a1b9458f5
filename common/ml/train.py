"""XGBoost training: `xgboost.spark` at scale, single-process XGBoost in the driver for small data.

`fit_xgb` trains a SparkXGBRegressor/SparkXGBClassifier on `ml.num_workers` Spark tasks (a
barrier stage; each task holds a shard and they allreduce histograms). The input is
dealt by vehicle to min(`num_workers`, vehicles) partitions and put in a fixed order inside them, so
xgboost.spark does not reshuffle it and the same data + seed gives the same booster on every run
(round-robin repartitioning would deal rows to workers in arrival order, which is not stable).

At most `ml.local_fit_max_rows` rows are instead collected (Arrow) and fitted by the scikit-learn
estimator xgboost.spark itself wraps, on the driver's task slots: the barrier stage's start-up and
allreduce cost more than such a fit. The result is wrapped in the same xgboost.spark model class,
so prediction, logging and registration do not know which path fitted it.

The trained booster is what MLflow logs (`mlflow.xgboost`): scoring does not need Spark ML.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from common.core.config import XgbParams
from common.io.tables import first_row

log = logging.getLogger(__name__)

PRED = "prediction"


class InsufficientData(ValueError):
    """Too little labelled data to fit or evaluate a model; the message says what is missing."""


@dataclass
class FitResult:
    """A fitted xgboost.spark model, its booster and what the fit took.

    Attributes
    ----------
    model : xgboost.spark model
        SparkXGBRegressorModel or SparkXGBClassifierModel (`predict` uses it).
    booster : xgboost.Booster
        The trained booster, with feature names.
    seconds : float
        Fit time (s, wall clock).
    train_rows : int
        Rows fitted on.
    valid_rows : int
        Validation rows (only evaluated).
    evals_result : dict
        Learning curves: ``train`` and ``validation`` objective histories; {} without a training summary.
    where : str
        ``driver`` (single-process fit) or ``xgboost.spark`` (barrier stage on Spark workers).
    """

    model: Any
    booster: Any
    seconds: float
    train_rows: int
    valid_rows: int
    evals_result: dict
    where: str = "xgboost.spark"


def xgb_kwargs(params: XgbParams, seed: int) -> dict:
    """Keyword arguments of SparkXGBRegressor / SparkXGBClassifier from the booster parameters.

    Parameters
    ----------
    params : XgbParams
    seed : int
        The booster's random_state.

    Returns
    -------
    dict
    """
    return {
        "n_estimators": params.n_estimators,
        "max_depth": params.max_depth,
        "learning_rate": params.learning_rate,
        "subsample": params.subsample,
        "colsample_bytree": params.colsample_bytree,
        "min_child_weight": params.min_child_weight,
        "reg_lambda": params.reg_lambda,
        "tree_method": params.tree_method,
        "max_bin": params.max_bin,
        "random_state": seed,
    }


def shard_by_vehicle(rows: DataFrame, num_workers: int) -> tuple[DataFrame, int]:
    """`rows` in exactly `workers` non-empty partitions, whole vehicles each, and `workers`.

    xgboost.spark fails on an empty worker shard, and hashing vehicle ids into num_workers buckets
    leaves buckets empty when the fleet is small (one real vehicle, a handful of test vehicles), so
    vehicles are dealt round-robin in id order to min(num_workers, vehicles) workers: the same data
    always gives the same shards (reproducible boosters).

    Parameters
    ----------
    rows : DataFrame
        Rows with vehicle_id.
    num_workers : int
        Requested xgboost.spark workers.

    Returns
    -------
    tuple of (DataFrame, int)
        The sharded rows and ``workers`` = min(num_workers, vehicles), at least 1.
    """
    ids = sorted(r.vehicle_id for r in rows.select("vehicle_id").distinct().collect())  # bounded: one row per vehicle
    workers = max(1, min(num_workers, len(ids)))
    if workers == 1:
        return rows.repartition(1), 1  # a shuffle: barrier stages refuse a coalesce in their RDD chain
    shard = {vid: i % workers for i, vid in enumerate(ids)}
    keyed = rows.rdd.keyBy(lambda r: shard[r["vehicle_id"]]).partitionBy(workers, lambda k: k).values()
    return rows.sparkSession.createDataFrame(keyed, rows.schema), workers


def fit_xgb(
    rows: DataFrame,
    features: Sequence[str],
    label: str,
    params: XgbParams,
    num_workers: int,
    seed: int,
    classification: bool = False,
    weight_col: str | None = None,
    validation_col: str | None = None,
    order_cols: Sequence[str] = ("vehicle_id",),
    local_max_rows: int = 0,
) -> FitResult:
    """Fit on `rows` (features numeric; nulls are XGBoost 'missing').

    Parameters
    ----------
    rows : DataFrame
        Rows with vehicle_id, the features, the label and the columns named below.
    features : Sequence[str]
        Feature columns (cast to double).
    label : str
        Label column (cast to double; 0/1 for a classifier).
    params : XgbParams
    num_workers : int
        Requested xgboost.spark workers (at most one per vehicle, `shard_by_vehicle`).
    seed : int
    classification : bool
        A binary classifier (eval metric logloss) instead of a regressor (eval metric MAE; ``params.objective``
        when set).
    weight_col : str or None
        Row weight column (e.g. distance_km).
    validation_col : str or None
        Boolean column marking rows used only as the evaluation set (learning curves), not for
        fitting; without such rows the fit has no learning curves.
    order_cols : Sequence[str]
        Columns of the fixed row order inside a shard (reproducible boosters).
    local_max_rows : int
        Fit in the driver (`_fit_in_driver`) when the rows (train + validation) are at most this
        many; 0 = always xgboost.spark.

    Returns
    -------
    FitResult

    Raises
    ------
    InsufficientData
        When no row is left to fit on.
    """
    from xgboost.spark import SparkXGBClassifier, SparkXGBRegressor

    kwargs = xgb_kwargs(params, seed)
    kwargs.update(features_col=list(features), label_col=label, num_workers=num_workers, verbose=False)
    if params.objective and not classification:
        kwargs["objective"] = params.objective
    if classification:
        kwargs["eval_metric"] = "logloss"
    else:
        kwargs["eval_metric"] = "mae"
    if weight_col:
        kwargs["weight_col"] = weight_col
    if validation_col:
        kwargs["validation_indicator_col"] = validation_col

    taken = {*features, label}
    extra = [c for c in dict.fromkeys((weight_col, validation_col, *order_cols)) if c and c not in taken]
    selected = rows.select(*[F.col(c).cast("double").alias(c) for c in features], F.col(label).cast("double").alias(label), *extra)
    counts = first_row(
        selected.agg(
            F.count(F.lit(1)).alias("n"),
            F.sum(F.col(validation_col).cast("int")).alias("v") if validation_col else F.lit(0).alias("v"),
        )
    )
    n, v = int(counts["n"] or 0), int(counts["v"] or 0)
    if n - v < 1:
        raise InsufficientData(f"{label}: no training rows")
    if validation_col and v == 0:
        # no labelled row in the validation window (a short day, a single vehicle): fit without an
        # evaluation set (no learning curves) rather than give xgboost an empty one
        log.warning("%s: the validation window has no labelled row; fitting without learning curves", label)
        kwargs.pop("validation_indicator_col")
    estimator = (SparkXGBClassifier if classification else SparkXGBRegressor)(**kwargs)
    started = time.time()
    if n <= local_max_rows:
        model = _fit_in_driver(estimator, selected, list(features), label, weight_col, validation_col if v else None, order_cols)
        where, workers = "driver", 1
    else:
        data, workers = shard_by_vehicle(selected, num_workers)
        # Rows in a fixed pseudo-random order (a hash of the order columns): xgboost.spark reads each Arrow
        # batch as a train part and a validation part, and fails on a batch whose part is empty -- which a
        # time order makes likely (one vehicle's validation day is one contiguous block).
        data = data.sortWithinPartitions(F.xxhash64(*order_cols), *order_cols)
        model = estimator.copy({estimator.num_workers: workers}).fit(data)
        where = "xgboost.spark"
    seconds = time.time() - started
    booster = model.get_booster()
    booster.feature_names = list(features)
    evals = {}
    summary = getattr(model, "training_summary", None)
    if summary is not None:
        evals = {"train": getattr(summary, "train_objective_history", {}), "validation": getattr(summary, "validation_objective_history", {})}
    log.info("xgboost %s (%s): %d rows, %d workers, %.1fs", label, where, n, workers, seconds)
    return FitResult(model, booster, seconds, n - v, v, evals, where)


def _fit_in_driver(estimator, selected: DataFrame, features: list[str], label: str, weight_col: str | None, validation_col: str | None, order_cols: Sequence[str]):
    """`estimator` fitted in this process on `selected` collected through Arrow; an xgboost.spark model.

    xgboost.spark has no local mode of its own: it always runs a barrier stage. Its estimator
    generates the scikit-learn estimator's parameters (`_gen_xgb_params_dict`) and builds its
    model from a fitted scikit-learn estimator (`_create_pyspark_model`, `_copyValues`), so the
    same parameters and the same model class serve both paths; those helpers are private, hence
    this one function holds every use of them.

    Parameters
    ----------
    estimator : SparkXGBRegressor or SparkXGBClassifier
        Configured as for a distributed fit.
    selected : DataFrame
        Feature, label, weight, validation and order columns.
    features : list of str
    label : str
    weight_col : str or None
    validation_col : str or None
        Rows flagged here are only the evaluation set (learning curves); None = no evaluation set.
    order_cols : Sequence[str]
        The fixed row order (a hash of them, then them): the same data gives the same booster.

    Returns
    -------
    SparkXGBRegressorModel or SparkXGBClassifierModel
    """
    import pandas as pd
    from xgboost.spark import SparkXGBClassifier
    from xgboost.spark.summary import XGBoostTrainingSummary

    collected: pd.DataFrame = selected.withColumn("_order", F.xxhash64(*order_cols)).toPandas()  # bounded: at most local_max_rows rows (counted above)
    pdf = collected.sort_values(["_order", *order_cols], kind="stable", ignore_index=True)
    valid = pdf[validation_col].astype(bool) if validation_col else None
    train = pdf[~valid] if valid is not None else pdf
    params = estimator._gen_xgb_params_dict(gen_xgb_sklearn_estimator_param=True)
    params["n_jobs"] = driver_threads(selected.sparkSession)
    # xgboost.spark leaves the classifier's objective unset (None would mean squared error) and sets it
    # per fit from the label's classes; the models here are binary.
    classifier = isinstance(estimator, SparkXGBClassifier)
    params["objective"] = "binary:logistic" if classifier else params.get("objective") or "reg:squarederror"
    sk = estimator._xgb_cls()(**params)
    x, y = train[features], train[label]
    fit_kwargs: dict[str, Any] = {"verbose": False}
    if weight_col:
        fit_kwargs["sample_weight"] = train[weight_col]
    if valid is not None:
        held = pdf[valid]
        # the training pair as the same objects: xgboost then reuses the training matrix and its
        # prediction cache for the train curve (a copy doubled the fit time on the demo fleet)
        fit_kwargs["eval_set"] = [(x, y), (held[features], held[label])]
        if weight_col:
            fit_kwargs["sample_weight_eval_set"] = [fit_kwargs["sample_weight"], held[weight_col]]
    sk.fit(x, y, **fit_kwargs)
    summary = None
    if valid is not None:
        curves = sk.evals_result()
        summary = XGBoostTrainingSummary.from_metrics({"training": curves["validation_0"], "validation": curves["validation_1"]})
    sk.set_params(n_jobs=1)  # scoring runs one booster per Spark task, as xgboost.spark's models do
    return estimator._copyValues(estimator._create_pyspark_model(sk, summary))


def driver_threads(spark) -> int:
    """Threads of a fit in the driver: the local master's task slots, else ``spark.driver.cores``.

    Not os.cpu_count(): a cluster driver shares its node (and a container's cgroup limit is not
    what the OS reports), and `hist` sums depend on the thread count, so it is taken from the conf
    that also sizes the driver, which keeps boosters reproducible for the same conf.

    Parameters
    ----------
    spark : SparkSession

    Returns
    -------
    int
    """
    sc = spark.sparkContext
    if sc.master.startswith("local"):
        return max(1, sc.defaultParallelism)
    return max(1, int(sc.getConf().get("spark.driver.cores", "1")))


def predict(fit: FitResult, rows: DataFrame, classification: bool = False, out: str = PRED) -> DataFrame:
    """`rows` + `out`: regression value, or P(class 1) for a classifier.

    Parameters
    ----------
    fit : FitResult
    rows : DataFrame
        Rows with the fit's feature columns.
    classification : bool
        ``fit`` is a classifier: xgboost.spark's probability, rawPrediction and prediction columns are dropped.
    out : str
        Output column.

    Returns
    -------
    DataFrame
        ``rows`` + ``out``: the regression value (label's unit) or P(class 1) (0-1).
    """
    model = fit.model
    scored = model.transform(rows)
    if classification:
        from pyspark.ml.functions import vector_to_array

        scored = scored.withColumn(out, vector_to_array(F.col("probability"))[1]).drop("probability", "rawPrediction", PRED)
    elif out != PRED:
        scored = scored.withColumnRenamed(PRED, out)
    return scored


def gain_importance(booster) -> dict[str, float]:
    """Total gain per feature (features never split on get 0).

    Parameters
    ----------
    booster : xgboost.Booster
        With feature names.

    Returns
    -------
    dict[str, float]
        Feature -> total gain.
    """
    score = booster.get_score(importance_type="total_gain")
    return {f: float(score.get(f, 0.0)) for f in booster.feature_names}

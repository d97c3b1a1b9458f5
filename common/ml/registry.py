"""Registering a trained booster and the champion gate of the MLflow model registry.

Every training run registers a new version (`log_registered_model`). `registry_gate` re-scores
the current champion on the challenger's own test rows and moves the champion alias only for a
challenger that beats every baseline and the champion there (`tracking.promote_if_better`).
Called inside the model's MLflow run: metrics and tags land on that run.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import pandas as pd
from pyspark.sql import DataFrame, SparkSession

from common.ml import tracking
from common.ml.champion import RefusedChampion, champion_prediction, pinned_champion
from common.ml.features import ENERGY_TARGET
from common.ml.monitoring import REFERENCE_KEY
from common.ml.train import FitResult

log = logging.getLogger(__name__)

# Columns `champion.champion_prediction` reads besides the inputs of an energy ratio version.
RATIO_INPUTS = ("physics_kwh_per_km", "vehicle_physics_ratio", "physics_x_ratio_kwh_per_km")
# Metric of a prediction column on test rows: (rows, name of the prediction column) -> value.
MetricFn = Callable[[DataFrame, str], float]


@dataclass
class ModelOutcome:
    """What training did with one model: its registered version and the gate's decision.

    Attributes
    ----------
    key : str
        ``soc_regressor``, ``soc_classifier`` or ``energy``.
    registered_name : str
        Registered model name.
    version : str
        The newly registered version.
    promoted : bool
        Whether the gate moved the champion alias to it.
    reason : str
        The gate's reason in words.
    metrics : dict[str, float]
        The metrics logged on the model's run: SOC regressor metrics in SOC percent points, classifier metrics as
        fractions 0-1, energy segment metrics in kWh/km, trip metrics in kWh (``*_kwh``) or percent (``*_pct``),
        ``train_seconds`` in s.
    run_id : str
        The model's nested MLflow run.
    """

    key: str
    registered_name: str
    version: str
    promoted: bool
    reason: str
    metrics: dict[str, float] = field(default_factory=dict)
    run_id: str = ""


@dataclass(frozen=True)
class Challenger:
    """A newly registered model version and what the gate compares it with.

    Attributes
    ----------
    name : str
        Registered model name.
    version : str
        The challenger's registered version.
    metric : str
        The gate metric's run-metric name (e.g. ``test_mae``); the champion's value is logged as
        ``champion_<metric>``.
    value : float
        The challenger's value of ``metric`` on the test window (in the metric's unit).
    higher_is_better : bool
    baselines : Mapping[str, float]
        Baseline name -> its value of ``metric`` on the same test rows.
    test_rows : DataFrame
        The rows the current champion is re-scored on (features of the test window).
    metric_fn : MetricFn
        Computes ``metric`` from ``test_rows`` plus a prediction column.
    checks : tuple of tracking.GateCheck
        Secondary metrics that must beat every baseline too (not compared with the champion).
    """

    name: str
    version: str
    metric: str
    value: float
    higher_is_better: bool
    baselines: Mapping[str, float]
    test_rows: DataFrame
    metric_fn: MetricFn
    checks: tuple[tracking.GateCheck, ...] = ()


class ChampionScore(NamedTuple):
    """The current champion's gate metric on the challenger's test rows.

    Attributes
    ----------
    value : float or None
        The metric (in its unit); None: no champion, or it could not score the rows (`note` says why).
    version : str or None
        The champion's version; None: no champion.
    note : str or None
        Why the champion has no value.
    """

    value: float | None
    version: str | None
    note: str | None


def log_registered_model(
    fit: FitResult,
    features: list[str],
    example: DataFrame,
    registered_name: str,
    classification: bool,
    profile: dict | None = None,
    description: str | None = None,
    inputs: Mapping[str, int | None] | None = None,
    extra_metadata: Mapping[str, Any] | None = None,
) -> Any:
    """Log the booster with `mlflow.xgboost` (JSON, signature, input example) and register a version.

    Parameters
    ----------
    fit : FitResult
    features : list of str
        Model inputs, in the booster's order.
    example : DataFrame
        Rows with the features; the first 5 (without NaN when there are any) are the input example.
    registered_name : str
    classification : bool
        Recorded in the model metadata (``binary_probability`` or ``regression``).
    profile : dict, optional
        `monitoring.reference_profile` of the training rows and test-window predictions: stored in
        the model's metadata (scoring compares against it) and as ``monitoring/reference_profile.json``.
    description : str, optional
        The registered version's description (what it predicts, from which tables, how it was judged).
    inputs : Mapping[str, int or None], optional
        Delta versions of the input tables: tags ``input.<table>`` on the registered version, so
        the registry shows what it was trained on without opening the run.
    extra_metadata : Mapping, optional
        More model metadata, e.g. the energy model's ``target`` and fallback base: scoring turns the
        booster's output into the label's unit with them (`champion.champion_prediction`).

    Returns
    -------
    mlflow.models.model.ModelInfo
        ``registered_model_version`` is the new version.
    """
    import mlflow
    import xgboost as xgb

    complete = example.dropna(subset=list(features))  # an example without NaN serialises cleanly
    source = complete if complete.limit(1).count() else example
    pdf: pd.DataFrame = source.select(*features).limit(5).toPandas()
    pdf = pdf.astype("float64")
    out = fit.booster.predict(xgb.DMatrix(pdf))
    metadata: dict[str, Any] = {"task": "binary_probability" if classification else "regression", "features": list(features)}
    metadata |= dict(extra_metadata or {})
    if profile is not None:
        metadata[REFERENCE_KEY] = profile
        mlflow.log_dict(profile, "monitoring/reference_profile.json")
    info = mlflow.xgboost.log_model(
        fit.booster,
        name="model",
        signature=tracking.xgb_model_signature(pdf, out),
        input_example=pdf,
        registered_model_name=registered_name,
        model_format="json",
        metadata=metadata,
    )
    client = mlflow.MlflowClient()
    version = str(info.registered_model_version)
    if description:
        client.update_model_version(registered_name, version, description=description)
    for table, v in (inputs or {}).items():
        client.set_model_version_tag(registered_name, version, f"input.{table}", "none" if v is None else f"v{v}")
    return info


def champion_score(spark: SparkSession, client, name: str, alias: str, rows: DataFrame, metric_fn: MetricFn) -> ChampionScore:
    """The current champion's metric on ``rows``, scored through `mlflow.pyfunc.spark_udf`.

    Parameters
    ----------
    spark : SparkSession
    client : mlflow.tracking.MlflowClient
    name, alias : str
        Registered model name and champion alias.
    rows : DataFrame
        The challenger's test rows (must hold the champion's input columns).
    metric_fn : MetricFn

    Returns
    -------
    ChampionScore
        ``value`` None with a ``note`` when the champion is refused, needs features the rows no
        longer have, or fails: a broken champion never blocks a good challenger.
    """
    champ = tracking.current_champion(client, name, alias)
    if champ is None:
        return ChampionScore(None, None, None)
    try:
        model = pinned_champion(name, alias, champ)
        needed = [*model.inputs, *(RATIO_INPUTS if (model.metadata or {}).get("target") == ENERGY_TARGET else ())]
        missing = [c for c in needed if c not in rows.columns]
        if missing:
            return ChampionScore(None, champ.version, f"champion v{champ.version} cannot score this window (features {missing} gone)")
        scored = rows.withColumn("_champion_pred", champion_prediction(spark, model))
        return ChampionScore(metric_fn(scored, "_champion_pred"), champ.version, None)
    except RefusedChampion as exc:  # never unpickled to compare: the challenger may replace it
        return ChampionScore(None, champ.version, f"champion v{champ.version} refused: {exc.reason}")
    except Exception as exc:  # noqa: BLE001 - a broken champion must not block a good challenger
        log.warning("champion %s v%s could not be evaluated: %s", name, champ.version, exc)
        return ChampionScore(None, champ.version, f"champion v{champ.version} could not be evaluated: {type(exc).__name__}")


def registry_gate(spark: SparkSession, client, alias: str, challenger: Challenger) -> tracking.GateResult:
    """The gate's decision on a challenger; moves ``alias`` to it when it wins.

    Waits until the version is READY, re-scores the current champion on the challenger's test
    rows (logged as ``champion_<metric>``), applies `tracking.promote_if_better` (version tags,
    alias) and tags the active run ``registry.*``.

    Parameters
    ----------
    spark : SparkSession
    client : mlflow.tracking.MlflowClient
    alias : str
        The champion alias (``ml.champion_alias``).
    challenger : Challenger

    Returns
    -------
    tracking.GateResult
    """
    import mlflow

    tracking.wait_until_ready(client, challenger.name, challenger.version)
    champ = champion_score(spark, client, challenger.name, alias, challenger.test_rows, challenger.metric_fn)
    if champ.value is not None:
        mlflow.log_metric(f"champion_{challenger.metric}", champ.value)
    gate = tracking.promote_if_better(
        client, challenger.name, challenger.version, alias, challenger.metric, challenger.value, challenger.higher_is_better,
        challenger.baselines, champ.value, champ.version, champ.note, challenger.checks,
    )  # fmt: skip
    mlflow.set_tags({f"registry.{k}": v for k, v in gate.as_tags().items()} | {"registry.version": challenger.version})
    return gate


def outcomes_summary(outcomes: list[ModelOutcome]) -> str:
    """A fixed-width table of the outcomes and their key metrics (printed at the end of training).

    Parameters
    ----------
    outcomes : list of ModelOutcome

    Returns
    -------
    str
        A header and one line per outcome: registered name, version, champion / rejected and the model's key
        metrics (those it logged).
    """
    keys = {
        "soc_regressor": ["test_mae", "baseline_persistence_test_mae", "baseline_vehicle_mean_test_mae", "test_rmse", "test_r2", "group_test_mae", "train_seconds"],
        "soc_classifier": ["test_roc_auc", "test_pr_auc", "test_brier", "test_f1", "baseline_persistence_test_roc_auc", "baseline_vehicle_rate_test_roc_auc", "train_seconds"],
        "energy": [
            "test_trip_mape_pct",
            "test_trip_wape_pct",
            "baseline_physics_test_trip_wape_pct",
            "baseline_vehicle_mean_test_trip_wape_pct",
            "truth_test_trip_mape_pct",
            "baseline_physics_truth_test_trip_mape_pct",
            "baseline_vehicle_mean_truth_test_trip_mape_pct",
            "group_truth_test_trip_mape_pct",
            "train_seconds",
        ],  # fmt: skip
    }
    lines = ["model                       version  status    metrics"]
    for o in outcomes:
        ms = "  ".join(f"{k}={o.metrics[k]:.4g}" for k in keys.get(o.key, []) if k in o.metrics)
        lines.append(f"{o.registered_name:<27} v{o.version:<7} {'champion' if o.promoted else 'rejected':<9} {ms}")
    return "\n".join(lines)


def unseen_vehicle_checks(metrics: dict[str, float], metric: str, baselines: tuple[str, ...], higher_is_better: bool, ties_pass: tuple[str, ...] = ()) -> tuple[tracking.GateCheck, ...]:
    """The gate's check on vehicles held out of training: the model must beat every baseline there too.

    Parameters
    ----------
    metrics : dict[str, float]
        The run's metrics with ``group_test_<metric>`` and ``group_baseline_<name>_test_<metric>``.
    metric : str
        Metric name without prefix (e.g. ``mae``, ``trip_mape_pct``).
    baselines : tuple of str
        Baseline names.
    higher_is_better : bool
    ties_pass : tuple of str
        Baselines an exact tie with passes (`tracking.GateCheck`).

    Returns
    -------
    tuple of tracking.GateCheck
        Empty when the run has no unseen-vehicle figure (a single vehicle, or no test rows of the
        held-out vehicles): nothing to judge there.
    """
    value = metrics.get(f"group_test_{metric}")
    if value is None or not math.isfinite(value):
        return ()
    return (tracking.GateCheck(f"group_test_{metric}", value, higher_is_better, {b: metrics.get(f"group_baseline_{b}_test_{metric}") for b in baselines}, ties_pass),)

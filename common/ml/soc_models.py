"""Training of the SOC drop models: the drop over the horizon (regression) and P(drop >= threshold).

Each model gets a nested MLflow run of the active run: params, metrics of the model and of its
baselines on the same test rows, learning curves, importance, a plot, the registered booster and
the registry gate (`common.ml.registry`). Validation metrics, learning curves and the
classifier's decision threshold come from the first fit (train days, validation day only
evaluated); the model that is tested and registered is refitted on train + validation days when
`ml.refit_with_validation` is set. The test window is seen by neither.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from mlflow.tracking import MlflowClient
from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from common.core.config import Config
from common.io.tables import first_row
from common.ml import tracking
from common.ml.evaluate import (
    SocBaselines,
    SplitRows,
    best_f1_threshold,
    classification_metrics,
    prefixed,
    regression_metrics,
    regression_metrics_many,
    roc_pr_auc,
    soc_baselines,
)
from common.ml.features import SOC_EVENT, SOC_FEATURES, SOC_LABEL, holdout_vehicles
from common.ml.monitoring import model_profile
from common.ml.registry import Challenger, ModelOutcome, log_registered_model, registry_gate, unseen_vehicle_checks
from common.ml.train import FitResult, InsufficientData, fit_xgb, predict

log = logging.getLogger(__name__)
ORDER = ("vehicle_id", "_t")  # row order of a fit (reproducible boosters)


@dataclass(frozen=True)
class _SocRun:
    """What both SOC models share: inputs, windows, baselines and run params."""

    spark: SparkSession
    cfg: Config
    client: MlflowClient
    versions: dict
    rows: SplitRows
    baselines: SocBaselines
    params: dict

    @property
    def features(self) -> list[str]:
        """The models' inputs, SOC_FEATURES in order.

        Returns
        -------
        list of str
        """
        return list(SOC_FEATURES)

    @contextmanager
    def nested_run(self, run_name: str, task: str, label: str) -> Iterator[Any]:
        """A nested MLflow run with the shared params, this model's task and label, and the input versions.

        Parameters
        ----------
        run_name : str
        task : str
            ``regression`` or ``classification``.
        label : str
            Label column.

        Yields
        ------
        mlflow.ActiveRun
        """
        import mlflow

        with mlflow.start_run(run_name=run_name, nested=True) as mlrun:
            mlflow.log_params(self.params | {"task": task, "label": label})
            tracking.log_table_versions(self.versions, self.cfg)
            yield mlrun

    def description(self, what: str, gate: str) -> str:
        """The registered version's description.

        Parameters
        ----------
        what : str
            The model in words.
        gate : str
            What the champion gate judges it on.

        Returns
        -------
        str
        """
        s, ml = self.cfg.ml.soc, self.cfg.ml
        return (
            f"XGBoost {what} over the next {s.horizon_min} min, per vehicle-minute of silver.vehicle_minutely, with features from "
            f"silver.telematics_clean, silver.trips and bronze.vehicles (Delta versions in the input.* tags). Evaluated on the last "
            f"{ml.test_days} local days (time split) and on {ml.holdout_vehicle_share:.0%} of the vehicles held out of a second fit, "
            f"against persistence and the per-vehicle baselines (artifact evaluation/metrics.json); champion gate: {gate}. "
            "Drift reference: monitoring/reference_profile.json. docs/MODELS.md."
        )

    def first_fit(self, label: str, classification: bool = False) -> FitResult:
        """Fitted on train days; validation rows only evaluated (learning curves).

        Parameters
        ----------
        label : str
            SOC_LABEL (drop, SOC percent points) or SOC_EVENT (0/1).
        classification : bool

        Returns
        -------
        FitResult
        """
        ml = self.cfg.ml
        return fit_xgb(
            _train_valid(self.rows),
            self.features,
            label,
            ml.soc.xgb,
            ml.num_workers,
            ml.seed,
            classification=classification,
            validation_col="is_valid",
            order_cols=ORDER,
            local_max_rows=ml.local_fit_max_rows,
        )

    def final_fit(self, first: FitResult, label: str, classification: bool = False) -> FitResult:
        """The model that is tested and registered.

        ``first``, or (``ml.refit_with_validation``) a refit with its parameters on train +
        validation rows (keeping ``first``'s learning curves; seconds add up).

        Parameters
        ----------
        first : FitResult
            The `first_fit`.
        label : str
        classification : bool

        Returns
        -------
        FitResult
        """
        ml = self.cfg.ml
        if not ml.refit_with_validation:
            return first
        refit = fit_xgb(_train_valid(self.rows), self.features, label, ml.soc.xgb, ml.num_workers, ml.seed, classification=classification, order_cols=ORDER, local_max_rows=ml.local_fit_max_rows)
        refit.seconds += first.seconds
        refit.evals_result = first.evals_result
        return refit

    def gate(self, name: str, info, metric: str, value: float, higher: bool, baselines: dict[str, float], metric_fn, checks: tuple[tracking.GateCheck, ...] = ()) -> tracking.GateResult:
        """The registry gate on a newly registered version, with the test window as its test rows.

        Parameters
        ----------
        name : str
            Registered model name.
        info : mlflow.models.model.ModelInfo
            `log_registered_model` result.
        metric : str
            The gate metric's run-metric name (``test_mae`` or ``test_roc_auc``).
        value : float
            The challenger's ``metric`` (MAE in SOC percent points; ROC-AUC 0-1).
        higher : bool
            Higher ``metric`` is better.
        baselines : dict[str, float]
            Baseline name -> its ``metric`` on the same rows.
        metric_fn : MetricFn
            Computes ``metric`` from the test rows and a prediction column.
        checks : tuple of tracking.GateCheck
            Secondary metrics that must beat every baseline too.

        Returns
        -------
        tracking.GateResult
        """
        challenger = Challenger(name, str(info.registered_model_version), metric, value, higher, baselines, self.rows.window("test"), metric_fn, checks)
        return registry_gate(self.spark, self.client, self.cfg.ml.champion_alias, challenger)


def _train_valid(rows: SplitRows) -> DataFrame:
    return rows.window("train").unionByName(rows.window("valid"))


def train_soc_models(spark: SparkSession, cfg: Config, rows: SplitRows, client, versions: dict, notes: list[str] | None = None) -> list[ModelOutcome]:
    """Fit, evaluate, log and register the SOC drop regressor and the drop-event classifier.

    Parameters
    ----------
    spark : SparkSession
    cfg : Config
        ``ml`` and ``ml.soc`` settings.
    rows : SplitRows
        `soc_split_rows` of the SOC features.
    client : mlflow.tracking.MlflowClient
    versions : dict
        Delta versions of the input tables (logged on each run).
    notes : list of str, optional
        Gets ``skipped soc classifier: <why>`` when the classifier cannot be trained.

    Returns
    -------
    list of ModelOutcome
        ``soc_regressor`` then ``soc_classifier`` (absent when its training rows hold one class only).
    """
    s, ml = cfg.ml.soc, cfg.ml
    # the per-vehicle baselines see the rows the final model is fitted on, so the comparison stays fair
    baselines = soc_baselines(rows.window("train"), _train_valid(rows) if ml.refit_with_validation else rows.window("train"), s)
    params = {
        "horizon_min": s.horizon_min,
        "drop_threshold_pct": s.drop_threshold_pct,
        "label_max_staleness_min": s.label_max_staleness_min,
        "charging_in_horizon": "excluded (no label)",
        "num_workers": ml.num_workers,
        "local_fit_max_rows": ml.local_fit_max_rows,
        "seed": ml.seed,
        "features": ",".join(SOC_FEATURES),
        "persistence_window_min": baselines.persistence_window_min,
        "final_fit_rows": "train+valid" if ml.refit_with_validation else "train",
        **{f"rows.{k}": v for k, v in rows.counts.items()},
        **rows.split.as_params(),
        **{f"xgb.{k}": v for k, v in s.xgb.model_dump().items()},
    }
    run = _SocRun(spark, cfg, client, versions, rows, baselines, params)
    outcomes = [_train_regressor(run)]
    try:
        outcomes.append(_train_classifier(run))
    except InsufficientData as exc:  # the regressor stays registered; the classifier says why it is missing
        import mlflow

        log.warning("train: skipped the SOC drop-event classifier: %s", exc)
        mlflow.set_tag("skipped.soc_classifier", str(exc))
        if notes is not None:
            notes.append(f"skipped soc classifier: {exc}")
    return outcomes


def _train_regressor(run: _SocRun) -> ModelOutcome:
    import mlflow

    s, ml, b = run.cfg.ml.soc, run.cfg.ml, run.baselines
    valid, test = run.rows.window("valid"), run.rows.window("test")
    with run.nested_run("soc_drop_regressor", "regression", SOC_LABEL) as mlrun:
        first = run.first_fit(SOC_LABEL)
        valid_metrics = prefixed(regression_metrics(predict(first, valid, out="pred"), SOC_LABEL, "pred"), "valid_")
        fit = run.final_fit(first, SOC_LABEL)
        scored = b.with_baselines(predict(fit, test, out="pred")).persist(StorageLevel.MEMORY_AND_DISK)
        many = regression_metrics_many(scored, SOC_LABEL, {"model": "pred", "persistence": "b_persistence", "vehicle_mean": "b_vehicle_mean"})
        m_model, m_pers, m_vmean = many["model"], many["persistence"], many["vehicle_mean"]
        metrics = prefixed(m_model, "test_") | prefixed(m_pers, "baseline_persistence_test_") | prefixed(m_vmean, "baseline_vehicle_mean_test_")
        metrics["test_mae_vs_persistence"] = m_model["mae"] / m_pers["mae"] if m_pers["mae"] else math.nan
        metrics |= valid_metrics
        metrics |= {f"baseline_persistence_{w}m_train_mae": v for w, v in b.persistence_train_mae.items()}
        metrics |= soc_group_metrics(run.cfg, run.rows.window("train"), b.with_baselines(test))
        metrics["train_seconds"] = fit.seconds
        mlflow.set_tag("fit_where", fit.where)  # driver or xgboost.spark (ml.local_fit_max_rows)
        tracking.log_metrics(metrics)
        mlflow.log_dict(fit.evals_result, "learning_curves.json")
        tracking.log_feature_importance(fit.booster, "SOC drop 60 min (regression)")
        pdf = tracking.plot_sample(scored, [SOC_LABEL, "pred"], ml.seed)
        tracking.log_figure(tracking.residual_figure(pdf[SOC_LABEL], pdf["pred"], "SOC drop 60 min: test window", "SOC points"), "plots/residuals.png")
        tracking.log_evaluation_table(metrics)
        fitted_on = _train_valid(run.rows) if ml.refit_with_validation else run.rows.window("train")
        profile = model_profile(fitted_on, run.features, scored, "pred", {"mae": m_model["mae"]}, ml.monitoring, run.rows.split.test_start_s)
        info = log_registered_model(fit, run.features, test, s.registered_model, False, profile, run.description("regressor of the SOC drop (percent points)", "test MAE"), run.versions)
        gate = run.gate(
            s.registered_model, info, "test_mae", m_model["mae"], False, {"persistence": m_pers["mae"], "vehicle_mean": m_vmean["mae"]},
            lambda df, col: regression_metrics(df, SOC_LABEL, col)["mae"], unseen_vehicle_checks(metrics, "mae", ("persistence", "vehicle_mean"), higher_is_better=False),
        )  # fmt: skip
        outcome = ModelOutcome("soc_regressor", s.registered_model, gate.version, gate.promoted, gate.reason, metrics, mlrun.info.run_id)
        scored.unpersist()
    return outcome


def _train_classifier(run: _SocRun) -> ModelOutcome:
    import mlflow

    s, ml, b = run.cfg.ml.soc, run.cfg.ml, run.baselines
    valid, test = run.rows.window("valid"), run.rows.window("test")
    # the first fit's rows (train days) and, with the refit, train + validation days: each fit needs both classes
    for fit_rows in (run.rows.window("train"), *((_train_valid(run.rows),) if ml.refit_with_validation else ())):
        classes = first_row(fit_rows.agg(F.min(SOC_EVENT).alias("lo"), F.max(SOC_EVENT).alias("hi")))
        if classes["lo"] is None:
            raise InsufficientData("no labelled training rows")
        if classes["lo"] == classes["hi"]:  # e.g. a logger that only records while driving: every labelled minute is a drop
            which = "is" if classes["hi"] == 1 else "is not"
            raise InsufficientData(f"its training rows hold one class only: every labelled minute {which} a drop of >= {s.drop_threshold_pct:g} SOC points in {s.horizon_min} min")
    with run.nested_run("soc_drop_classifier", "classification", SOC_EVENT) as mlrun:
        first = run.first_fit(SOC_EVENT, classification=True)
        # read by two threshold searches and the validation metrics (5 passes): inferred once
        valid_scored = b.with_baselines(predict(first, valid, classification=True, out="prob")).persist(StorageLevel.MEMORY_AND_DISK)
        threshold = best_f1_threshold(valid_scored, SOC_EVENT, "prob")
        rate_threshold = best_f1_threshold(valid_scored, SOC_EVENT, "b_vehicle_rate")
        fit = run.final_fit(first, SOC_EVENT, classification=True)
        scored = b.with_baselines(predict(fit, test, classification=True, out="prob")).persist(StorageLevel.MEMORY_AND_DISK)
        m_model = classification_metrics(scored, SOC_EVENT, "prob", threshold)
        # persistence: its extrapolated drop ranks rows (AUCs); its yes/no call gives Brier and F1
        m_pers = classification_metrics(scored, SOC_EVENT, "b_persistence_event", 0.5)
        m_pers["roc_auc"], m_pers["pr_auc"] = roc_pr_auc(scored, SOC_EVENT, "b_persistence")
        m_rate = classification_metrics(scored, SOC_EVENT, "b_vehicle_rate", rate_threshold)
        metrics = prefixed(m_model, "test_") | prefixed(m_pers, "baseline_persistence_test_") | prefixed(m_rate, "baseline_vehicle_rate_test_")
        metrics |= prefixed(classification_metrics(valid_scored, SOC_EVENT, "prob", threshold), "valid_")
        metrics["train_seconds"] = fit.seconds
        mlflow.set_tag("fit_where", fit.where)  # driver or xgboost.spark (ml.local_fit_max_rows)
        tracking.log_metrics(metrics)
        mlflow.log_param("decision_threshold", threshold)
        tracking.log_feature_importance(fit.booster, "P(SOC drop >= 10 points in 60 min)")
        pdf = tracking.plot_sample(scored, [SOC_EVENT, "prob"], ml.seed)
        tracking.log_figure(tracking.calibration_figure(pdf[SOC_EVENT], pdf["prob"], "Calibration: test window"), "plots/calibration.png")
        tracking.log_evaluation_table(metrics)
        train_rows = _train_valid(run.rows) if ml.refit_with_validation else run.rows.window("train")
        profile = model_profile(train_rows, run.features, scored, "prob", {k: m_model[k] for k in ("roc_auc", "pr_auc", "brier")}, ml.monitoring, run.rows.split.test_start_s)
        desc = run.description(f"classifier of P(SOC drop >= {s.drop_threshold_pct:g} points)", "test ROC-AUC, and PR-AUC and Brier against every baseline")
        info = log_registered_model(fit, run.features, test, s.registered_classifier, True, profile, desc, run.versions)
        run.client.set_model_version_tag(s.registered_classifier, str(info.registered_model_version), "decision_threshold", f"{threshold:.4f}")
        # a rare event is judged by PR-AUC and calibration too: ROC-AUC alone promoted a model that
        # a per-vehicle rate lookup beat on both (issue 19)
        checks = tuple(tracking.GateCheck(f"test_{k}", m_model[k], k == "pr_auc", {"persistence": m_pers.get(k), "vehicle_rate": m_rate.get(k)}) for k in ("pr_auc", "brier"))
        gate = run.gate(
            s.registered_classifier, info, "test_roc_auc", m_model["roc_auc"], True, {"persistence": m_pers["roc_auc"], "vehicle_rate": m_rate["roc_auc"]},
            lambda df, col: roc_pr_auc(df, SOC_EVENT, col)[0], checks,
        )  # fmt: skip
        outcome = ModelOutcome("soc_classifier", s.registered_classifier, gate.version, gate.promoted, gate.reason, metrics, mlrun.info.run_id)
        scored.unpersist()
        valid_scored.unpersist()
    return outcome


def soc_group_metrics(cfg: Config, train: DataFrame, test: DataFrame) -> dict[str, float]:
    """Grouped-by-vehicle check of the regressor: fit without the held-out vehicles, score their test window.

    Parameters
    ----------
    cfg : Config
        ``ml.holdout_vehicle_share`` of the vehicles (seeded choice) are held out.
    train : DataFrame
        Labelled training rows.
    test : DataFrame
        Labelled test rows with the baseline columns (`SocBaselines.with_baselines`).

    Returns
    -------
    dict[str, float]
        ``group_test_*`` and ``group_baseline_*_test_*`` regression metrics (SOC percent points)
        and ``group_holdout_vehicles``; empty with a single vehicle.
    """
    s, ml = cfg.ml.soc, cfg.ml
    vids = [r["vehicle_id"] for r in train.select("vehicle_id").distinct().collect()]  # bounded: one row per vehicle
    if len(vids) < 2:
        return {}  # one vehicle: nothing to hold out
    held = holdout_vehicles(vids, ml.holdout_vehicle_share, ml.seed)
    fit = fit_xgb(train.where(~F.col("vehicle_id").isin(held)), list(SOC_FEATURES), SOC_LABEL, s.xgb, ml.num_workers, ml.seed, order_cols=ORDER, local_max_rows=ml.local_fit_max_rows)
    scored = predict(fit, test.where(F.col("vehicle_id").isin(held)), out="pred")
    many = regression_metrics_many(scored, SOC_LABEL, {"model": "pred", "persistence": "b_persistence", "vehicle_mean": "b_vehicle_mean"})
    out = prefixed(many["model"], "group_test_")
    out |= prefixed(many["persistence"], "group_baseline_persistence_test_")
    out |= prefixed(many["vehicle_mean"], "group_baseline_vehicle_mean_test_")
    out["group_holdout_vehicles"] = float(len(held))
    return out

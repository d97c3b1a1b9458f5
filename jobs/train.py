"""Train, evaluate and register the SOC-drop and energy-per-km models (xgboost.spark + MLflow).

Reads:  silver.vehicle_minutely, silver.telematics_clean (minutely temperature, segment legs),
        silver.segments, silver.trips (jobs/kpis.py), bronze.vehicles (optional),
        truth.points (only when present, i.e. synthetic data: extra `truth_*` metrics).
Writes: MLflow (experiment `mlflow.experiment`): one parent run per invocation with a nested run
        per model; registered model versions; alias `ml.champion_alias` moved only for a model
        that beats the baselines and the current champion on the same test window. No Delta table.

Models (docs/MODELS.md; features and labels in common/ml/features.py):
  soc     ml.soc.registered_model       soc(t) - soc(t + 60 min), regression   (gate: test MAE)
          ml.soc.registered_classifier  P(drop >= 10 points)                   (gate: test ROC-AUC)
  energy  ml.energy.registered_model    kWh/km per ~1 km segment, scored per trip (gate: trip WAPE)

Evaluation without leakage: the last `ml.test_days` local days are the test window, the day
before is the validation window (classification threshold, learning curves), the rest trains.
Training rows end (label horizon included) `ml.gap_min` before the next window starts. A second
fit without `ml.holdout_vehicle_share` of the vehicles, scored on those vehicles' test window,
is the grouped-by-vehicle check (`group_*` metrics). Baselines are scored on the same rows.

    python -m jobs.train --env local
    python -m jobs.train --models energy --conf ml.num_workers=4
"""

from __future__ import annotations

import logging
import math
import sys
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

if __package__ in (None, ""):  # spark-submit jobs/train.py: make `common` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from common.core.config import Config
from common.io import tables
from common.io.cli import StageReport, StageSkipped, bootstrap, job_main, require_inputs
from common.io.schemas import VEHICLES
from common.ml import tracking
from common.ml.evaluate import (
    best_f1_threshold,
    classification_metrics,
    prefixed,
    regression_metrics,
    regression_metrics_many,
    trip_energy_metrics_pd,
)
from common.ml.features import (
    ENERGY_FEATURES,
    ENERGY_LABEL,
    ENERGY_WEIGHT,
    SOC_EVENT,
    SOC_FEATURES,
    SOC_LABEL,
    SOC_WINDOWS_MIN,
    assign_to_intervals,
    build_energy_features,
    build_soc_features,
    energy_training_rows,
    holdout_vehicles,
    persistence_drop,
    soc_labels,
)
from common.ml.train import FitResult, InsufficientData, fit_xgb, gain_importance, predict

log = logging.getLogger("ev_fleet.train")
# Input groups of which at least one table must exist; otherwise the stage is skipped (common.io.cli).
REQUIRES: tuple[tuple[str, ...], ...] = (("silver.vehicle_minutely", "silver.segments"),)

MINUTELY = "silver.vehicle_minutely"
SEGMENTS = "silver.segments"
TRIPS = "silver.trips"
SILVER_CLEAN = "silver.telematics_clean"
BRONZE_VEHICLES = "bronze.vehicles"
TRUTH_POINTS = "truth.points"
MODELS = ("soc", "energy")
PLOT_ROWS = 20_000


def add_arguments(parser) -> None:
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated subset of: " + ", ".join(MODELS))
    parser.add_argument("--run-name", default=None, help="MLflow parent run name (default: train-<UTC time>)")


# --------------------------------------------------------------------------------------------
# Inputs and splits
# --------------------------------------------------------------------------------------------
def read_vehicles(spark: SparkSession, cfg: Config) -> DataFrame:
    if tables.exists(spark, cfg, BRONZE_VEHICLES):
        return tables.read(spark, cfg, BRONZE_VEHICLES)
    return spark.createDataFrame([], VEHICLES)


@dataclass(frozen=True)
class TimeSplit:
    """UTC instants of the windows: train < valid_start - gap <= valid < test_start - gap <= test."""

    train_dates: list[str]
    valid_date: str
    test_dates: list[str]
    valid_start_s: int  # epoch seconds (UTC): first row of the validation day
    test_start_s: int  # epoch seconds (UTC): first row of the test window
    gap_s: int

    def as_params(self) -> dict[str, str]:
        return {
            "split.train_dates": f"{self.train_dates[0]}..{self.train_dates[-1]} ({len(self.train_dates)} days)",
            "split.valid_date": self.valid_date,
            "split.test_dates": ",".join(self.test_dates),
            "split.valid_start_utc": datetime.fromtimestamp(self.valid_start_s, timezone.utc).isoformat(),
            "split.test_start_utc": datetime.fromtimestamp(self.test_start_s, timezone.utc).isoformat(),
            "split.gap_min": str(self.gap_s // 60),
        }

    def role(self, start_s: F.Column, end_s: F.Column) -> F.Column:
        """'train' / 'valid' / 'test' / null (inside a gap) for rows spanning [start_s, end_s] (epoch s)."""
        valid0 = self.valid_start_s
        test0 = self.test_start_s
        return (
            F.when(start_s >= test0, "test")
            .when((start_s >= valid0) & (end_s <= test0 - self.gap_s), "valid")
            .when(end_s <= valid0 - self.gap_s, "train")
        )


def time_split(day_starts: DataFrame, test_days: int, gap_min: int) -> TimeSplit:
    """From (local_date, first_s) rows: the last `test_days` dates test, the one before validates."""
    rows = sorted(day_starts.collect(), key=lambda r: r["local_date"])  # bounded: one row per local date
    if len(rows) < test_days + 2:
        raise InsufficientData(
            f"need at least {test_days + 2} local days of data for a train/validation/test split "
            f"(ml.test_days={test_days}); found {len(rows)}"
        )
    dates = [str(r["local_date"]) for r in rows]
    return TimeSplit(
        train_dates=dates[: -test_days - 1],
        valid_date=dates[-test_days - 1],
        test_dates=dates[-test_days:],
        valid_start_s=int(rows[-test_days - 1]["first_s"]),
        test_start_s=int(rows[-test_days]["first_s"]),
        gap_s=gap_min * 60,
    )


def _day_starts(df: DataFrame, ts: str) -> DataFrame:
    return df.groupBy("local_date").agg(F.min(F.col(ts).cast("long")).alias("first_s"))


# --------------------------------------------------------------------------------------------
# MLflow pieces shared by the three models
# --------------------------------------------------------------------------------------------
@dataclass
class ModelOutcome:
    key: str
    registered_name: str
    version: str
    promoted: bool
    reason: str
    metrics: dict[str, float] = field(default_factory=dict)
    run_id: str = ""


def _sample_pdf(df: DataFrame, columns: list[str], seed: int, rows: int = PLOT_ROWS):
    n = df.count()
    frac = min(1.0, rows / n) if n else 1.0
    return df.select(*columns).sample(fraction=frac, seed=seed).limit(rows).toPandas()


def _log_model(fit: FitResult, features: list[str], example: DataFrame, registered_name: str, classification: bool):
    """Log the booster (mlflow.xgboost, with signature + input example) and register a version."""
    import mlflow
    import xgboost as xgb

    complete = example.dropna(subset=list(features))  # an example without NaN serialises cleanly
    source = complete if complete.limit(1).count() else example
    pdf = source.select(*features).limit(5).toPandas().astype("float64")
    out = fit.booster.predict(xgb.DMatrix(pdf))
    signature = tracking.xgb_model_signature(pdf, out)
    info = mlflow.xgboost.log_model(
        fit.booster,
        name="model",
        signature=signature,
        input_example=pdf,
        registered_model_name=registered_name,
        model_format="json",
        metadata={"task": "binary_probability" if classification else "regression", "features": list(features)},
    )
    return info


def _champion_metric(
    spark: SparkSession, client, name: str, alias: str, rows: DataFrame, metric_fn
) -> tuple[float | None, str | None, str | None]:
    """(metric, version, note) of the current champion scored on `rows` via mlflow.pyfunc.spark_udf."""
    import mlflow

    champ = tracking.current_champion(client, name, alias)
    if champ is None:
        return None, None, None
    uri = f"models:/{name}/{champ.version}"
    try:
        info = mlflow.models.get_model_info(uri)
        unsafe = tracking.unsafe_model_reason(info.flavors)
        if unsafe:  # never unpickled to compare: the challenger may replace it
            return None, champ.version, f"champion v{champ.version} refused: {unsafe}"
        inputs = info.signature.inputs.input_names()
        missing = [c for c in inputs if c not in rows.columns]
        if missing:
            return None, champ.version, f"champion v{champ.version} cannot score this window (features {missing} gone)"
        udf = mlflow.pyfunc.spark_udf(spark, uri, result_type="double", env_manager="local")
        scored = rows.withColumn("_champion_pred", udf(F.struct(*[F.col(c).cast("double").alias(c) for c in inputs])))
        return metric_fn(scored, "_champion_pred"), champ.version, None
    except Exception as exc:  # noqa: BLE001 - a broken champion must not block a good challenger
        log.warning("champion %s v%s could not be evaluated: %s", name, champ.version, exc)
        return None, champ.version, f"champion v{champ.version} could not be evaluated: {type(exc).__name__}"


def _gate(spark, cfg: Config, client, info, registered_name: str, metric: str, value: float, higher: bool,
          baselines: dict[str, float], rows: DataFrame, metric_fn) -> tracking.GateResult:
    import mlflow

    version = str(info.registered_model_version)
    tracking.wait_until_ready(client, registered_name, version)
    champ_value, champ_version, note = _champion_metric(spark, client, registered_name, cfg.ml.champion_alias, rows, metric_fn)
    if champ_value is not None:
        mlflow.log_metric(f"champion_{metric}", champ_value)
    gate = tracking.promote_if_better(
        client, registered_name, version, cfg.ml.champion_alias, metric, value, higher, baselines,
        champ_value, champ_version, note,
    )
    mlflow.set_tags({f"registry.{k}": v for k, v in gate.as_tags().items()} | {"registry.version": version})
    return gate


# --------------------------------------------------------------------------------------------
# SOC drop models
# --------------------------------------------------------------------------------------------
def soc_dataset(spark: SparkSession, cfg: Config, vehicles: DataFrame) -> DataFrame:
    """SOC features + labels for every vehicle-minute of silver.vehicle_minutely."""
    clean = tables.read_optional(spark, cfg, SILVER_CLEAN)
    trips = tables.read_optional(spark, cfg, TRIPS)
    return soc_labels(build_soc_features(tables.read(spark, cfg, MINUTELY), vehicles, clean, trips), cfg.ml.soc)


def train_soc(spark: SparkSession, cfg: Config, client, versions: dict, report: StageReport) -> list[ModelOutcome]:
    import mlflow

    s, ml = cfg.ml.soc, cfg.ml
    h = s.horizon_min
    data = soc_dataset(spark, cfg, read_vehicles(spark, cfg)).persist(StorageLevel.MEMORY_AND_DISK)
    split = time_split(_day_starts(data, "minute_ts"), ml.test_days, ml.gap_min)
    rows = (
        data.withColumn("role", split.role(F.col("_t"), F.col("_t") + h * 60))
        .where(F.col(SOC_LABEL).isNotNull() & F.col("role").isNotNull())
        .withColumn("is_valid", F.col("role") == "valid")
        .persist(StorageLevel.MEMORY_AND_DISK)
    )
    train = rows.where("role = 'train'")
    test = rows.where("role = 'test'")
    valid = rows.where("role = 'valid'")
    counts = {r["role"]: r["n"] for r in rows.groupBy("role").agg(F.count(F.lit(1)).alias("n")).collect()}  # bounded: one row per split role
    report.rows_in = (report.rows_in or 0) + sum(counts.values())
    features = list(SOC_FEATURES)

    # Baselines: persistence (slope window chosen on training rows) and per-vehicle mean drop.
    pers_mae = {
        w: regression_metrics(train.withColumn("_p", persistence_drop(f"soc_slope_{w}m_pct_per_min", h)), SOC_LABEL, "_p")["mae"]
        for w in SOC_WINDOWS_MIN
    }
    best_w = min(pers_mae, key=lambda w: pers_mae[w])
    # The final models are fitted on train + validation rows (ml.refit_with_validation); the
    # per-vehicle baselines then see the same rows, so the comparison stays fair.
    train_valid = train.unionByName(valid)  # first fits: validation rows only evaluated (is_valid)
    final_rows = train_valid if ml.refit_with_validation else train
    vmean = final_rows.groupBy("vehicle_id").agg(F.avg(SOC_LABEL).alias("_vmean"), F.avg(SOC_EVENT).alias("_vrate"))
    global_mean = final_rows.agg(F.avg(SOC_LABEL).alias("m"), F.avg(SOC_EVENT).alias("r")).first()

    def final_fit(first: FitResult, label: str, classification: bool = False) -> FitResult:
        """The model that is logged and tested: `first` (fitted on train, validation rows only
        evaluated), or a refit with the same parameters on train + validation rows. Validation
        metrics, learning curves and the decision threshold always come from `first`; the test
        window is never seen by either."""
        if not ml.refit_with_validation:
            return first
        refit = fit_xgb(final_rows, features, label, s.xgb, ml.num_workers, ml.seed, classification=classification, order_cols=("vehicle_id", "_t"))
        refit.seconds += first.seconds
        refit.evals_result = first.evals_result
        return refit

    def with_baselines(df: DataFrame) -> DataFrame:
        return (
            df.withColumn("b_persistence", persistence_drop(f"soc_slope_{best_w}m_pct_per_min", h))
            .join(F.broadcast(vmean), "vehicle_id", "left")
            .withColumn("b_vehicle_mean", F.coalesce("_vmean", F.lit(global_mean["m"])))
            .withColumn("b_vehicle_rate", F.coalesce("_vrate", F.lit(global_mean["r"])))
            .withColumn("b_persistence_event", (F.col("b_persistence") >= s.drop_threshold_pct).cast("double"))
        )

    outcomes: list[ModelOutcome] = []
    common_params = {
        "horizon_min": h,
        "drop_threshold_pct": s.drop_threshold_pct,
        "label_max_staleness_min": s.label_max_staleness_min,
        "charging_in_horizon": "excluded (no label)",
        "num_workers": ml.num_workers,
        "seed": ml.seed,
        "features": ",".join(features),
        "persistence_window_min": best_w,
        "final_fit_rows": "train+valid" if ml.refit_with_validation else "train",
        **{f"rows.{k}": v for k, v in counts.items()},
        **split.as_params(),
        **{f"xgb.{k}": v for k, v in s.xgb.model_dump().items()},
    }

    # ---- regression: soc drop in points --------------------------------------------------
    with mlflow.start_run(run_name="soc_drop_regressor", nested=True) as run:
        mlflow.log_params(common_params | {"task": "regression", "label": SOC_LABEL})
        tracking.log_table_versions(versions)
        first = fit_xgb(train_valid, features, SOC_LABEL, s.xgb, ml.num_workers, ml.seed, validation_col="is_valid", order_cols=("vehicle_id", "_t"))
        valid_metrics = prefixed(regression_metrics(predict(first, valid, out="pred"), SOC_LABEL, "pred"), "valid_")
        fit = final_fit(first, SOC_LABEL)
        scored = with_baselines(predict(fit, test, out="pred")).persist(StorageLevel.MEMORY_AND_DISK)
        many = regression_metrics_many(scored, SOC_LABEL, {"model": "pred", "persistence": "b_persistence", "vehicle_mean": "b_vehicle_mean"})
        m_model, m_pers, m_vmean = many["model"], many["persistence"], many["vehicle_mean"]
        metrics = prefixed(m_model, "test_") | prefixed(m_pers, "baseline_persistence_test_") | prefixed(m_vmean, "baseline_vehicle_mean_test_")
        metrics["test_mae_vs_persistence"] = m_model["mae"] / m_pers["mae"] if m_pers["mae"] else math.nan
        metrics |= valid_metrics
        metrics |= {f"baseline_persistence_{w}m_train_mae": v for w, v in pers_mae.items()}
        metrics |= _soc_group_check(fit_params=(features, s, ml), train=train, test=with_baselines(test))
        metrics["train_seconds"] = fit.seconds
        tracking.log_metrics(metrics)
        mlflow.log_dict(fit.evals_result, "learning_curves.json")
        _log_importance(fit, "SOC drop 60 min (regression)")
        pdf = _sample_pdf(scored, [SOC_LABEL, "pred"], ml.seed)
        tracking.log_figure(tracking.residual_figure(pdf[SOC_LABEL], pdf["pred"], "SOC drop 60 min: test window", "SOC points"), "plots/residuals.png")
        info = _log_model(fit, features, test, s.registered_model, classification=False)
        gate = _gate(
            spark, cfg, client, info, s.registered_model, "test_mae", m_model["mae"], False,
            {"persistence": m_pers["mae"], "vehicle_mean": m_vmean["mae"]},
            test, lambda df, col: regression_metrics(df, SOC_LABEL, col)["mae"],
        )
        outcomes.append(ModelOutcome("soc_regressor", s.registered_model, gate.version, gate.promoted, gate.reason, metrics, run.info.run_id))
        scored.unpersist()

    # ---- classification: P(drop >= threshold) ---------------------------------------------
    with mlflow.start_run(run_name="soc_drop_classifier", nested=True) as run:
        mlflow.log_params(common_params | {"task": "classification", "label": SOC_EVENT})
        tracking.log_table_versions(versions)
        first = fit_xgb(train_valid, features, SOC_EVENT, s.xgb, ml.num_workers, ml.seed, classification=True, validation_col="is_valid", order_cols=("vehicle_id", "_t"))
        valid_scored = with_baselines(predict(first, valid, classification=True, out="prob"))
        threshold = best_f1_threshold(valid_scored, SOC_EVENT, "prob")
        rate_threshold = best_f1_threshold(valid_scored, SOC_EVENT, "b_vehicle_rate")
        fit = final_fit(first, SOC_EVENT, classification=True)
        scored = with_baselines(predict(fit, test, classification=True, out="prob")).persist(StorageLevel.MEMORY_AND_DISK)
        m_model = classification_metrics(scored, SOC_EVENT, "prob", threshold)
        # persistence: its extrapolated drop ranks rows (AUCs); its yes/no call gives Brier and F1
        m_pers = classification_metrics(scored, SOC_EVENT, "b_persistence_event", 0.5)
        m_pers["roc_auc"], m_pers["pr_auc"] = _auc_of(scored, "b_persistence")
        m_rate = classification_metrics(scored, SOC_EVENT, "b_vehicle_rate", rate_threshold)
        metrics = prefixed(m_model, "test_") | prefixed(m_pers, "baseline_persistence_test_") | prefixed(m_rate, "baseline_vehicle_rate_test_")
        metrics |= prefixed(classification_metrics(valid_scored, SOC_EVENT, "prob", threshold), "valid_")
        metrics["train_seconds"] = fit.seconds
        tracking.log_metrics(metrics)
        mlflow.log_param("decision_threshold", threshold)
        _log_importance(fit, "P(SOC drop >= 10 points in 60 min)")
        pdf = _sample_pdf(scored, [SOC_EVENT, "prob"], ml.seed)
        tracking.log_figure(tracking.calibration_figure(pdf[SOC_EVENT], pdf["prob"], "Calibration: test window"), "plots/calibration.png")
        info = _log_model(fit, features, test, s.registered_classifier, classification=True)
        client.set_model_version_tag(s.registered_classifier, str(info.registered_model_version), "decision_threshold", f"{threshold:.4f}")
        gate = _gate(
            spark, cfg, client, info, s.registered_classifier, "test_roc_auc", m_model["roc_auc"], True,
            {"persistence": m_pers["roc_auc"], "vehicle_rate": m_rate["roc_auc"]},
            test, lambda df, col: _auc_of(df, col)[0],
        )
        outcomes.append(ModelOutcome("soc_classifier", s.registered_classifier, gate.version, gate.promoted, gate.reason, metrics, run.info.run_id))
        scored.unpersist()

    rows.unpersist()
    data.unpersist()
    return outcomes


def _auc_of(df: DataFrame, score: str) -> tuple[float, float]:
    from common.ml.evaluate import roc_pr_auc

    return roc_pr_auc(df, SOC_EVENT, score)


def _soc_group_check(fit_params, train: DataFrame, test: DataFrame) -> dict[str, float]:
    """Grouped-by-vehicle check: fit without the held-out vehicles, score their test window."""
    features, s, ml = fit_params
    vids = [r["vehicle_id"] for r in train.select("vehicle_id").distinct().collect()]  # bounded: one row per vehicle
    if len(vids) < 2:
        return {}  # one vehicle: nothing to hold out
    held = holdout_vehicles(vids, ml.holdout_vehicle_share, ml.seed)
    fit = fit_xgb(train.where(~F.col("vehicle_id").isin(held)), features, SOC_LABEL, s.xgb, ml.num_workers, ml.seed, order_cols=("vehicle_id", "_t"))
    scored = predict(fit, test.where(F.col("vehicle_id").isin(held)), out="pred")
    many = regression_metrics_many(scored, SOC_LABEL, {"model": "pred", "persistence": "b_persistence", "vehicle_mean": "b_vehicle_mean"})
    out = prefixed(many["model"], "group_test_")
    out |= prefixed(many["persistence"], "group_baseline_persistence_test_")
    out |= prefixed(many["vehicle_mean"], "group_baseline_vehicle_mean_test_")
    out["group_holdout_vehicles"] = float(len(held))
    return out


def _log_importance(fit: FitResult, title: str) -> None:
    import mlflow

    imp = gain_importance(fit.booster)
    mlflow.log_dict(imp, "feature_importance.json")
    tracking.log_figure(tracking.feature_importance_figure(imp, title), "plots/feature_importance.png")


# --------------------------------------------------------------------------------------------
# Energy per km
# --------------------------------------------------------------------------------------------
def energy_dataset(spark: SparkSession, cfg: Config) -> DataFrame:
    """Segment features (incl. physics integrated over legs) for every segment of silver.segments."""
    from common.silver.devices import heartbeats

    return build_energy_features(
        tables.read(spark, cfg, SILVER_CLEAN), tables.read(spark, cfg, SEGMENTS), cfg.kpis.trips, cfg.ml.energy,
        heartbeats(tables.read_optional(spark, cfg, "silver.device_profiles")),
    )


def trip_truth_energy(spark: SparkSession, cfg: Config, trips: DataFrame) -> DataFrame | None:
    """trip_id, truth_kwh: generator energy summed over (start_ts, end_ts] of each silver trip."""
    if not tables.exists(spark, cfg, TRUTH_POINTS):
        return None
    pts = tables.read(spark, cfg, TRUTH_POINTS).where(
        F.col("anomaly_type").isNull() | (F.col("anomaly_type") != "near_duplicate")
    ).select("vehicle_id", "ts", "energy_kwh")
    return assign_to_intervals(pts, trips, "trip_id").groupBy("trip_id").agg(F.sum("energy_kwh").alias("truth_kwh"))


def trip_predictions(segment_preds: DataFrame, trips: DataFrame, cols: dict[str, str]) -> DataFrame:
    """Per trip: observed energy, distance and each prediction column summed as kWh (kWh/km x km)."""
    sums = segment_preds.groupBy("trip_id").agg(
        *[F.sum(F.col(c) * F.col("distance_km")).alias(out) for c, out in cols.items()],
    )
    return trips.select("trip_id", "vehicle_id", F.col("energy_kwh").alias("observed_kwh"), F.col("distance_km").alias("trip_km"), "start_ts").join(
        sums, "trip_id"
    )


def train_energy(spark: SparkSession, cfg: Config, client, versions: dict, report: StageReport) -> list[ModelOutcome]:
    import mlflow

    e, ml = cfg.ml.energy, cfg.ml
    cached = energy_dataset(spark, cfg).persist(StorageLevel.MEMORY_AND_DISK)
    split = time_split(_day_starts(cached, "start_ts"), ml.test_days, ml.gap_min)
    data = cached.withColumn("role", split.role(F.col("start_ts").cast("long"), F.col("end_ts").cast("long")))
    labelled = energy_training_rows(data, e).where(F.col("role").isNotNull()).withColumn("is_valid", F.col("role") == "valid")
    train = labelled.where("role = 'train'")
    valid = labelled.where("role = 'valid'")
    counts = {r["role"]: r["n"] for r in labelled.groupBy("role").agg(F.count(F.lit(1)).alias("n")).collect()}  # bounded: one row per split role
    report.rows_in = (report.rows_in or 0) + sum(counts.values())
    if not counts.get("train"):
        no_battery = cached.where(F.col("battery_kwh").isNull()).count()
        cached.unpersist()
        hint = f"; {no_battery} segment(s) have no battery size (bronze.vehicles.battery_kwh), so no energy label" if no_battery else ""
        raise InsufficientData(f"no labelled segment in the training window{hint}")
    features = list(ENERGY_FEATURES)

    # Baselines: physics (conf parameters) and the vehicle's training-window mean kWh/km.
    vmean = train.groupBy("vehicle_id").agg((F.sum("energy_kwh") / F.sum("distance_km")).alias("_vmean"))
    fleet_mean = train.agg((F.sum("energy_kwh") / F.sum("distance_km")).alias("m")).first()["m"]

    def with_baselines(df: DataFrame) -> DataFrame:
        return (
            df.join(F.broadcast(vmean), "vehicle_id", "left")
            .withColumn("b_vehicle_mean", F.coalesce("_vmean", F.lit(fleet_mean)))
            .withColumn("b_physics", F.coalesce(F.col("physics_kwh_per_km"), F.col("b_vehicle_mean")))
        )

    trips = tables.read(spark, cfg, TRIPS)
    test_trips = trips.where((F.col("start_ts").cast("long") >= split.test_start_s) & (F.col("distance_km") >= e.min_eval_trip_km))
    truth = trip_truth_energy(spark, cfg, test_trips)
    # every segment of a test trip is predicted (short tail pieces too): the trip total is the product
    test_segments = data.where(F.col("role") == "test").join(test_trips.select("trip_id"), "trip_id", "left_semi")
    test_labelled = labelled.where("role = 'test'")

    def trip_metrics(seg_preds: DataFrame, cols: dict[str, str]) -> dict[str, float]:
        per_trip = trip_predictions(seg_preds, test_trips, cols)
        if truth is not None:
            per_trip = per_trip.join(truth, "trip_id", "left")
        pdf = per_trip.toPandas()  # bounded: one row per test-window trip (~10^5 for a 10k-vehicle fleet)
        out: dict[str, float] = {}
        for name, col in [("", "pred_kwh"), ("baseline_physics_", "b_physics_kwh"), ("baseline_vehicle_mean_", "b_vehicle_mean_kwh")]:
            if col not in pdf.columns:
                continue
            out |= prefixed(trip_energy_metrics_pd(pdf, "observed_kwh", col), f"{name}test_trip_")
            if truth is not None:
                out |= prefixed(trip_energy_metrics_pd(pdf, "truth_kwh", col), f"{name}truth_test_trip_")
        if truth is not None:
            out |= prefixed(trip_energy_metrics_pd(pdf, "truth_kwh", "observed_kwh"), "observed_soc_vs_truth_test_trip_")
        return out

    outcomes = []
    with mlflow.start_run(run_name="energy_per_km", nested=True) as run:
        mlflow.log_params(
            {
                "task": "regression",
                "label": ENERGY_LABEL,
                "weight": ENERGY_WEIGHT,
                "unit": "segment (silver.segments), scored per trip",
                "min_segment_km": e.min_segment_km,
                "min_eval_trip_km": e.min_eval_trip_km,
                "num_workers": ml.num_workers,
                "seed": ml.seed,
                "features": ",".join(features),
                "physics_models": ",".join(sorted(e.physics)),
                **{f"rows.{k}": v for k, v in counts.items()},
                **split.as_params(),
                **{f"xgb.{k}": v for k, v in e.xgb.model_dump().items()},
            }
        )
        tracking.log_table_versions(versions)
        fit = fit_xgb(train.unionByName(valid), features, ENERGY_LABEL, e.xgb, ml.num_workers, ml.seed, weight_col=ENERGY_WEIGHT, validation_col="is_valid", order_cols=("vehicle_id", "start_ts"))
        seg_scored = with_baselines(predict(fit, test_segments, out="pred")).persist(StorageLevel.MEMORY_AND_DISK)
        lab_scored = seg_scored.join(test_labelled.select("segment_id"), "segment_id", "left_semi")
        many = regression_metrics_many(lab_scored, ENERGY_LABEL, {"model": "pred", "physics": "b_physics", "vehicle_mean": "b_vehicle_mean"})
        metrics = prefixed(many["model"], "test_segment_")
        metrics |= prefixed(many["physics"], "baseline_physics_test_segment_")
        metrics |= prefixed(many["vehicle_mean"], "baseline_vehicle_mean_test_segment_")
        metrics |= trip_metrics(seg_scored, {"pred": "pred_kwh", "b_physics": "b_physics_kwh", "b_vehicle_mean": "b_vehicle_mean_kwh"})
        metrics |= _energy_group_check(features, e, ml, train, with_baselines(test_segments), trip_metrics)
        metrics["train_seconds"] = fit.seconds
        tracking.log_metrics(metrics)
        mlflow.log_dict(fit.evals_result, "learning_curves.json")
        _log_importance(fit, "Energy per km")
        pdf = _sample_pdf(lab_scored, [ENERGY_LABEL, "pred"], ml.seed)
        tracking.log_figure(tracking.residual_figure(pdf[ENERGY_LABEL], pdf["pred"], "kWh/km per segment: test window (SOC label)", "kWh/km"), "plots/residuals.png")
        per_trip = trip_predictions(seg_scored, test_trips, {"pred": "pred_kwh"})
        if truth is not None:
            per_trip = per_trip.join(truth, "trip_id")
        tpdf = per_trip.limit(PLOT_ROWS).toPandas()
        ref = "truth_kwh" if truth is not None else "observed_kwh"
        tracking.log_figure(tracking.residual_figure(tpdf[ref], tpdf["pred_kwh"], f"Trip energy: test window ({ref})", "kWh"), "plots/trip_residuals.png")
        info = _log_model(fit, features, test_labelled, e.registered_model, classification=False)
        champion_rows = test_segments

        def champion_wape(df: DataFrame, col: str) -> float:
            per_trip = trip_predictions(df, test_trips, {col: "_kwh"}).toPandas()  # bounded: one row per test trip
            return trip_energy_metrics_pd(per_trip, "observed_kwh", "_kwh")["wape_pct"]

        gate = _gate(
            spark, cfg, client, info, e.registered_model, "test_trip_wape_pct", metrics["test_trip_wape_pct"], False,
            {"physics": metrics["baseline_physics_test_trip_wape_pct"], "vehicle_mean": metrics["baseline_vehicle_mean_test_trip_wape_pct"]},
            champion_rows, champion_wape,
        )
        outcomes.append(ModelOutcome("energy", e.registered_model, gate.version, gate.promoted, gate.reason, metrics, run.info.run_id))
        seg_scored.unpersist()
    cached.unpersist()
    return outcomes


def _energy_group_check(features, e, ml, train: DataFrame, test_segments: DataFrame, trip_metrics) -> dict[str, float]:
    """Grouped-by-vehicle check: fit without the held-out vehicles, score their test trips."""
    vids = [r["vehicle_id"] for r in train.select("vehicle_id").distinct().collect()]  # bounded: one row per vehicle
    if len(vids) < 2:
        return {}  # one vehicle: nothing to hold out
    held = holdout_vehicles(vids, ml.holdout_vehicle_share, ml.seed)
    fit = fit_xgb(train.where(~F.col("vehicle_id").isin(held)), features, ENERGY_LABEL, e.xgb, ml.num_workers, ml.seed, weight_col=ENERGY_WEIGHT, order_cols=("vehicle_id", "start_ts"))
    scored = predict(fit, test_segments.where(F.col("vehicle_id").isin(held)), out="pred")
    out = {f"group_{k}": v for k, v in trip_metrics(scored, {"pred": "pred_kwh", "b_physics": "b_physics_kwh", "b_vehicle_mean": "b_vehicle_mean_kwh"}).items()}
    out["group_holdout_vehicles"] = float(len(held))
    return out


# --------------------------------------------------------------------------------------------
# Job
# --------------------------------------------------------------------------------------------
def input_versions(spark: SparkSession, cfg: Config) -> dict[str, int | None]:
    return {t: tables.version(spark, cfg, t) for t in (MINUTELY, SEGMENTS, TRIPS, SILVER_CLEAN, BRONZE_VEHICLES)}


def run_train(spark: SparkSession, cfg: Config, models: tuple[str, ...] = MODELS, run_name: str | None = None) -> StageReport:
    """Train, evaluate, log and register the requested models; returns the outcomes in report.notes."""
    import mlflow

    unknown = set(models) - set(MODELS)
    if unknown:
        raise ValueError(f"unknown model(s) {sorted(unknown)}; choose from {MODELS}")
    report = StageReport(stage="train")
    client = tracking.configure(cfg)
    versions = input_versions(spark, cfg)
    outcomes: list[ModelOutcome] = []
    name = run_name or f"train-{datetime.now(timezone.utc):%Y%m%dT%H%M%S}"
    with mlflow.start_run(run_name=name) as parent:
        mlflow.set_tags({"job": "train", "env": cfg.env})
        mlflow.log_params({"models": ",".join(models), "num_workers": cfg.ml.num_workers, "seed": cfg.ml.seed})
        tracking.log_table_versions(versions)
        for family, train_family in (("soc", train_soc), ("energy", train_energy)):
            if family not in models:
                continue
            try:
                outcomes += train_family(spark, cfg, client, versions, report)
            except InsufficientData as exc:
                # too little data for this model (a single short log, no battery sizes): the others still train
                spark.catalog.clearCache()
                report.notes.append(f"skipped {family} model: {exc}")
                log.warning("train: skipped %s model: %s", family, exc)
                mlflow.set_tag(f"skipped.{family}", str(exc))
        mlflow.log_dict({o.key: {"model": o.registered_name, "version": o.version, "promoted": o.promoted, "reason": o.reason} for o in outcomes}, "registry_outcomes.json")
    if not outcomes:
        raise StageSkipped("; ".join(n for n in report.notes if n.startswith("skipped")))
    report.rows_out = len(outcomes)
    report.notes.append(f"mlflow parent run {parent.info.run_id}")
    for o in outcomes:
        report.notes.append(f"{o.registered_name} v{o.version}: {'champion' if o.promoted else 'rejected'} ({o.reason})")
    report.outcomes = outcomes  # type: ignore[attr-defined]
    print(summary(outcomes))
    return report.finish()


def summary(outcomes: list[ModelOutcome]) -> str:
    keys = {
        "soc_regressor": ["test_mae", "baseline_persistence_test_mae", "baseline_vehicle_mean_test_mae", "test_rmse", "test_r2", "group_test_mae", "train_seconds"],
        "soc_classifier": ["test_roc_auc", "test_pr_auc", "test_brier", "test_f1", "baseline_persistence_test_roc_auc", "baseline_vehicle_rate_test_roc_auc", "train_seconds"],
        "energy": [
            "test_trip_mape_pct", "test_trip_wape_pct", "baseline_physics_test_trip_wape_pct", "baseline_vehicle_mean_test_trip_wape_pct",
            "truth_test_trip_mape_pct", "baseline_physics_truth_test_trip_mape_pct", "baseline_vehicle_mean_truth_test_trip_mape_pct",
            "group_truth_test_trip_mape_pct", "train_seconds",
        ],  # fmt: skip
    }
    lines = ["model                       version  status    metrics"]
    for o in outcomes:
        ms = "  ".join(f"{k}={o.metrics[k]:.4g}" for k in keys.get(o.key, []) if k in o.metrics)
        lines.append(f"{o.registered_name:<27} v{o.version:<7} {'champion' if o.promoted else 'rejected':<9} {ms}")
    return "\n".join(lines)


@job_main
def main(argv=None) -> StageReport:
    cfg, spark, args = bootstrap("train", argv, __doc__, add_arguments)
    require_inputs(spark, cfg, REQUIRES)
    models = tuple(m.strip() for m in args.models.split(",") if m.strip())
    return run_train(spark, cfg, models, args.run_name)


if __name__ == "__main__":
    main()

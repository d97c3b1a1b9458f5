"""Training of the energy-per-km model: kWh/km per segment, evaluated on trip totals.

One nested MLflow run of the active run: params, segment and trip metrics of the model and of
its baselines on the same test trips (and against the generator's truth when there is one),
learning curves, importance, residual plots, the registered booster and the registry gate
(`common.ml.registry`, on trip WAPE against the observed SOC energy).
"""

from __future__ import annotations

import logging

import pandas as pd
from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from common.core.config import Config
from common.ml import tracking
from common.ml.evaluate import (
    SplitRows,
    energy_baselines,
    physics_baseline_name,
    physics_coverage,
    prefixed,
    regression_metrics_many,
    trip_energy_metrics_pd,
    trip_predictions,
    trip_truth_energy,
    trip_window_metrics,
)
from common.ml.features import (
    ENERGY_LABEL,
    ENERGY_MODEL_FEATURES,
    ENERGY_RATIO_LABEL,
    ENERGY_RATIO_WEIGHT,
    ENERGY_TARGET,
    MIN_HISTORY_PHYSICS_KWH,
    energy_from_ratio,
    holdout_vehicles,
    with_energy_ratio_label,
)
from common.ml.monitoring import model_profile
from common.ml.registry import Challenger, ModelOutcome, log_registered_model, registry_gate, unseen_vehicle_checks
from common.ml.train import InsufficientData, fit_xgb, predict

log = logging.getLogger(__name__)
ORDER = ("vehicle_id", "start_ts")  # row order of a fit (reproducible boosters)
TRIP_KWH = {"pred": "pred_kwh", "b_physics": "b_physics_kwh", "b_vehicle_mean": "b_vehicle_mean_kwh", "b_physics_x_hist": "b_physics_x_hist_kwh"}


def _all_rows(rows: SplitRows) -> DataFrame:
    if rows.all_rows is None:
        raise ValueError("energy training rows were built without all_rows (energy_split_rows sets it)")
    return rows.all_rows


def require_training_segments(rows: SplitRows) -> None:
    """Raise `InsufficientData` when no labelled segment lies in the training window.

    The message says how many segments have no battery size (bronze.vehicles.battery_kwh), the
    usual reason: without it a segment has no energy label.

    Parameters
    ----------
    rows : SplitRows
        `energy_split_rows` of the segment features (``all_rows`` set).

    Raises
    ------
    InsufficientData
        When the training window has no labelled segment.
    ValueError
        When ``rows.all_rows`` is None (rows not built by `energy_split_rows`).
    """
    if rows.counts.get("train"):
        return
    no_battery = _all_rows(rows).where(F.col("battery_kwh").isNull()).count()
    hint = f"; {no_battery} segment(s) have no battery size (bronze.vehicles.battery_kwh), so no energy label" if no_battery else ""
    raise InsufficientData(f"no labelled segment in the training window{hint}")


def train_energy_model(spark: SparkSession, cfg: Config, rows: SplitRows, trips: DataFrame, truth_points: DataFrame | None, client, versions: dict) -> list[ModelOutcome]:
    """Fit, evaluate, log and register the energy-per-km model.

    Parameters
    ----------
    spark : SparkSession
    cfg : Config
        ``ml`` and ``ml.energy`` settings.
    rows : SplitRows
        `energy_split_rows` of the segment features.
    trips : DataFrame
        silver.trips: test trips of at least ``ml.energy.min_eval_trip_km`` (km) are evaluated.
    truth_points : DataFrame or None
        truth.points (synthetic data): adds ``*truth_test_trip_*`` metrics.
    client : mlflow.tracking.MlflowClient
    versions : dict
        Delta versions of the input tables (logged on the run).

    Returns
    -------
    list of ModelOutcome
        The ``energy`` outcome.
    """
    import mlflow

    e, ml = cfg.ml.energy, cfg.ml
    split = rows.split
    train, valid, test_labelled = rows.window("train"), rows.window("valid"), rows.window("test")
    features = list(ENERGY_MODEL_FEATURES)
    baselines = energy_baselines(train)
    fleet = float(baselines.fleet_mean or 0.0)  # the energy base where physics is unknown (kWh/km)
    test_trips = trips.where((F.col("start_ts").cast("long") >= split.test_start_s) & (F.col("distance_km") >= e.min_eval_trip_km))
    truth = trip_truth_energy(truth_points, test_trips)
    # every segment of a test trip is predicted (short tail pieces too): the trip total is the product
    test_segments = _all_rows(rows).where(F.col("role") == "test").join(test_trips.select("trip_id"), "trip_id", "left_semi")

    with mlflow.start_run(run_name="energy_per_km", nested=True) as run:
        mlflow.log_params(
            {
                "task": "regression",
                "label": ENERGY_LABEL,
                "target": f"{ENERGY_TARGET}: {ENERGY_RATIO_LABEL}, weight {ENERGY_RATIO_WEIGHT} (km x base^2)",
                "energy_base_fleet_kwh_per_km": fleet,
                "unit": "segment (silver.segments), scored per trip",
                "min_segment_km": e.min_segment_km,
                "min_eval_trip_km": e.min_eval_trip_km,
                "num_workers": ml.num_workers,
                "local_fit_max_rows": ml.local_fit_max_rows,
                "seed": ml.seed,
                "features": ",".join(features),
                "physics_models": ",".join(sorted(e.physics)),
                **{f"rows.{k}": v for k, v in rows.counts.items()},
                **split.as_params(),
                **{f"xgb.{k}": v for k, v in e.xgb.model_dump().items()},
            }
        )
        tracking.log_table_versions(versions, cfg)
        fit_rows = ratio_rows(train.unionByName(valid), fleet)
        if fit_rows.where(~F.col("is_valid")).limit(1).count() == 0:
            raise InsufficientData(
                f"no training segment of a vehicle with history (>= {MIN_HISTORY_PHYSICS_KWH:g} kWh of physics energy on earlier days): "
                "the model corrects physics x that history; until then physics is the forecast"
            )
        fit = fit_xgb(
            fit_rows,
            features,
            ENERGY_RATIO_LABEL,
            e.xgb,
            ml.num_workers,
            ml.seed,
            weight_col=ENERGY_RATIO_WEIGHT,
            validation_col="is_valid",
            order_cols=ORDER,
            local_max_rows=ml.local_fit_max_rows,
        )
        seg_scored = baselines.with_baselines(predict_kwh_per_km(fit, test_segments, fleet)).persist(StorageLevel.MEMORY_AND_DISK)
        coverage, no_physics = physics_coverage(seg_scored, e.physics, e.default_model)
        physics_name = physics_baseline_name(coverage)
        mlflow.set_tag("baseline_physics", physics_name + (f": no physics parameters for {', '.join(no_physics)}" if no_physics else ""))
        if no_physics:
            log.warning(
                "energy: no physics parameters (ml.energy.physics) for vehicle model(s) %s: the physics baseline is the per-vehicle mean on %.0f %% of test segments", no_physics, 100 * (1 - coverage)
            )
        lab_scored = seg_scored.join(test_labelled.select("segment_id"), "segment_id", "left_semi")
        many = regression_metrics_many(lab_scored, ENERGY_LABEL, {"model": "pred", "physics": "b_physics", "vehicle_mean": "b_vehicle_mean"})
        metrics = prefixed(many["model"], "test_segment_")
        metrics |= prefixed(many["physics"], "baseline_physics_test_segment_")
        metrics |= prefixed(many["vehicle_mean"], "baseline_vehicle_mean_test_segment_")
        metrics |= trip_window_metrics(seg_scored, test_trips, truth, TRIP_KWH)
        metrics |= energy_group_metrics(cfg, train, baselines.with_baselines(test_segments), test_trips, truth, fleet)
        metrics["train_seconds"] = fit.seconds
        metrics["baseline_physics_coverage_share"] = coverage
        mlflow.set_tag("fit_where", fit.where)  # driver or xgboost.spark (ml.local_fit_max_rows)
        tracking.log_metrics(metrics)
        mlflow.log_dict(fit.evals_result, "learning_curves.json")
        tracking.log_feature_importance(fit.booster, "Energy per km")
        pdf = tracking.plot_sample(lab_scored, [ENERGY_LABEL, "pred"], ml.seed)
        tracking.log_figure(tracking.residual_figure(pdf[ENERGY_LABEL], pdf["pred"], "kWh/km per segment: test window (SOC label)", "kWh/km"), "plots/residuals.png")
        per_trip = trip_predictions(seg_scored, test_trips, {"pred": "pred_kwh"})
        if truth is not None:
            per_trip = per_trip.join(truth, "trip_id")
        tpdf: pd.DataFrame = per_trip.limit(tracking.PLOT_ROWS).toPandas()
        ref = "truth_kwh" if truth is not None else "observed_kwh"
        tracking.log_figure(tracking.residual_figure(tpdf[ref], tpdf["pred_kwh"], f"Trip energy: test window ({ref})", "kWh"), "plots/trip_residuals.png")
        tracking.log_evaluation_table(metrics)
        # the booster is fitted on the train rows; validation rows only stop the boosting
        profile = model_profile(train, features, lab_scored, "pred", {"segment_mae": many["model"]["mae"], "trip_wape_pct": metrics["test_trip_wape_pct"]}, ml.monitoring, split.test_start_s)
        description = (
            "XGBoost regressor of energy per km per ~1 km segment of silver.segments, fitted on the ratio of kWh/km to physics x the vehicle's history "
            "(the booster outputs that ratio; physics exactly for a vehicle without history; docs/MODELS.md section 2), with features from silver.telematics_clean "
            "(physics integrated over the legs) and silver.device_profiles (Delta versions in the input.* tags); a trip's energy is the sum "
            f"of its segments. Evaluated per trip on the last {ml.test_days} local days (time split) and on {ml.holdout_vehicle_share:.0%} "
            f"of the vehicles held out of a second fit, against {physics_name} and the per-vehicle mean (artifact evaluation/metrics.json); "
            "champion gate: test trip WAPE. Drift reference: monitoring/reference_profile.json. docs/MODELS.md."
        )
        target = {"target": ENERGY_TARGET, "energy_base_fleet_kwh_per_km": fleet}
        info = log_registered_model(fit, features, test_labelled, e.registered_model, False, profile, description, versions, target)

        def champion_wape(df: DataFrame, col: str) -> float:
            per_trip = trip_predictions(df, test_trips, {col: "_kwh"}).toPandas()  # bounded: one row per test trip
            return trip_energy_metrics_pd(per_trip, "observed_kwh", "_kwh")["wape_pct"]

        challenger = Challenger(
            e.registered_model, str(info.registered_model_version), "test_trip_wape_pct", metrics["test_trip_wape_pct"], False,
            {physics_name: metrics["baseline_physics_test_trip_wape_pct"], "vehicle_mean": metrics["baseline_vehicle_mean_test_trip_wape_pct"]},
            test_segments, champion_wape, unseen_vehicle_checks(metrics, "trip_wape_pct", ("physics", "vehicle_mean"), higher_is_better=False, ties_pass=("physics",)),
        )  # fmt: skip
        gate = registry_gate(spark, client, ml.champion_alias, challenger)
        outcome = ModelOutcome("energy", e.registered_model, gate.version, gate.promoted, gate.reason, metrics, run.info.run_id)
        seg_scored.unpersist()
    return [outcome]


def ratio_rows(rows: DataFrame, fleet_kwh_per_km: float) -> DataFrame:
    """Training rows with the ratio label (`with_energy_ratio_label`), only where the model's output is used.

    Left out: rows without a label (base <= 0), and rows of a vehicle without history whose physics
    is known, which `energy_from_ratio` predicts as physics. Their ratio is to physics alone, which the
    booster (without the history features) could not tell from the ratio to physics x history.

    Parameters
    ----------
    rows : DataFrame
        Labelled segment rows.
    fleet_kwh_per_km : float
        The energy base where physics is unknown.

    Returns
    -------
    DataFrame
    """
    physics_only = F.col("vehicle_physics_ratio").isNull() & F.col("physics_kwh_per_km").isNotNull()
    return with_energy_ratio_label(rows, fleet_kwh_per_km).where(F.col(ENERGY_RATIO_LABEL).isNotNull() & ~physics_only)


def predict_kwh_per_km(fit, rows: DataFrame, fleet_kwh_per_km: float) -> DataFrame:
    """``rows`` + ``pred``: the model's kWh/km (`energy_from_ratio` of the booster's ratio).

    Parameters
    ----------
    fit : FitResult
    rows : DataFrame
        Segment rows with the model's inputs, physics and the vehicle's history ratio.
    fleet_kwh_per_km : float

    Returns
    -------
    DataFrame
    """
    return predict(fit, rows, out="_ratio").withColumn("pred", energy_from_ratio(F.col("_ratio"), fleet_kwh_per_km)).drop("_ratio")


def energy_group_metrics(cfg: Config, train: DataFrame, test_segments: DataFrame, test_trips: DataFrame, truth: DataFrame | None, fleet_kwh_per_km: float) -> dict[str, float]:
    """Grouped-by-vehicle check: fit without the held-out vehicles, score their test trips.

    Parameters
    ----------
    cfg : Config
        ``ml.holdout_vehicle_share`` of the vehicles (seeded choice) are held out.
    train : DataFrame
        Labelled training segments.
    test_segments : DataFrame
        Every segment of the test trips, with the baseline columns (`EnergyBaselines.with_baselines`).
    test_trips : DataFrame
    truth : DataFrame or None
        `trip_truth_energy` of the test trips.
    fleet_kwh_per_km : float
        The energy base where physics is unknown.

    Returns
    -------
    dict[str, float]
        `trip_window_metrics` prefixed ``group_`` (kWh, percent) and ``group_holdout_vehicles``;
        empty with a single vehicle.
    """
    e, ml = cfg.ml.energy, cfg.ml
    vids = [r["vehicle_id"] for r in train.select("vehicle_id").distinct().collect()]  # bounded: one row per vehicle
    if len(vids) < 2:
        return {}  # one vehicle: nothing to hold out
    held = holdout_vehicles(vids, ml.holdout_vehicle_share, ml.seed)
    seen = train.where(~F.col("vehicle_id").isin(held))
    fleet_kwh_per_km = float(energy_baselines(seen).fleet_mean or fleet_kwh_per_km)  # the held-out vehicles' labels stay out of the fallback too
    seen_rows = ratio_rows(seen, fleet_kwh_per_km)
    if seen_rows.limit(1).count() == 0:
        return {}  # no vehicle left with history to learn from: no unseen-vehicle figure
    fit = fit_xgb(
        seen_rows,
        list(ENERGY_MODEL_FEATURES),
        ENERGY_RATIO_LABEL,
        e.xgb,
        ml.num_workers,
        ml.seed,
        weight_col=ENERGY_RATIO_WEIGHT,
        order_cols=ORDER,
        local_max_rows=ml.local_fit_max_rows,
    )
    scored = predict_kwh_per_km(fit, test_segments.where(F.col("vehicle_id").isin(held)), fleet_kwh_per_km)
    out = {f"group_{k}": v for k, v in trip_window_metrics(scored, test_trips, truth, TRIP_KWH).items()}
    out["group_holdout_vehicles"] = float(len(held))
    return out

"""Batch scoring with the registered champions: gold.predictions_soc_minutely, gold.predictions_energy.

Reads:  MLflow registry (`models:/<name>@<ml.champion_alias>`, pinned to the alias's version at
        job start so one run never mixes versions), silver.vehicle_minutely,
        silver.telematics_clean, silver.segments, bronze.vehicles (optional).
Writes: gold.predictions_soc_minutely  per vehicle-minute: SOC now, predicted drop over
                                        ml.soc.horizon_min, predicted SOC then, P(drop >=
                                        ml.soc.drop_threshold_pct), alert at the classifier's
                                        decision threshold, is_charging (discharge forecast:
                                        see docs/MODELS.md), model names and versions;
        gold.predictions_energy        per segment: predicted kWh/km and kWh, physics kWh/km,
                                        observed (SOC) kWh/km when known, model name and version.
Both partitioned by local_date. Scoring goes through `mlflow.pyfunc.spark_udf`, so executors
run exactly the logged booster. `--start-date/--end-date` rescore only those local days
(Delta replaceWhere).

    python -m jobs.score --env local
    python -m jobs.score --models energy --start-date 2024-03-09
"""

from __future__ import annotations

import logging
import sys
from datetime import date
from pathlib import Path

if __package__ in (None, ""):  # spark-submit jobs/score.py: make `common` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from common.core.config import Config
from common.io import tables
from common.io.cli import StageReport, StageSkipped, bootstrap, job_main, require_inputs
from common.io.schemas import VEHICLES
from common.ml import tracking
from common.ml.features import build_energy_features, build_soc_features

log = logging.getLogger("ev_fleet.score")
# Input groups of which at least one table must exist; otherwise the stage is skipped (common.io.cli).
REQUIRES: tuple[tuple[str, ...], ...] = (("silver.vehicle_minutely", "silver.segments"),)

MINUTELY = "silver.vehicle_minutely"
SEGMENTS = "silver.segments"
SILVER_CLEAN = "silver.telematics_clean"
TRIPS = "silver.trips"
BRONZE_VEHICLES = "bronze.vehicles"
PRED_SOC = "gold.predictions_soc_minutely"
PRED_ENERGY = "gold.predictions_energy"
MODELS = ("soc", "energy")


class NoChampion(RuntimeError):
    """A registered model has no champion yet: run jobs/train.py first."""


def add_arguments(parser) -> None:
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated subset of: " + ", ".join(MODELS))
    parser.add_argument("--start-date", type=date.fromisoformat, default=None, help="first local date to score")
    parser.add_argument("--end-date", type=date.fromisoformat, default=None, help="last local date to score")


def champion(client, cfg: Config, name: str):
    """(version, models:/ URI pinned to it, input column names, version tags) of name@champion."""
    import mlflow

    mv = tracking.current_champion(client, name, cfg.ml.champion_alias)
    if mv is None:
        raise NoChampion(f"registered model {name!r} has no @{cfg.ml.champion_alias} version: run `python -m jobs.train` first")
    uri = f"models:/{name}/{mv.version}"
    info = mlflow.models.get_model_info(uri)
    reason = tracking.unsafe_model_reason(info.flavors)
    if reason:
        raise NoChampion(f"{name}@{cfg.ml.champion_alias} (v{mv.version}) refused: {reason}")
    return str(mv.version), uri, info.signature.inputs.input_names(), dict(mv.tags or {})


def model_column(spark: SparkSession, uri: str, inputs: list[str]) -> Column:
    """The pyfunc model as a Spark column over its signature's input columns."""
    import mlflow

    udf = mlflow.pyfunc.spark_udf(spark, uri, result_type="double", env_manager="local")
    return udf(F.struct(*[F.col(c).cast("double").alias(c) for c in inputs]))


def _in_range(start: date | None, end: date | None) -> Column:
    cond = F.lit(True)
    if start:
        cond &= F.col("local_date") >= F.lit(start)
    if end:
        cond &= F.col("local_date") <= F.lit(end)
    return cond


def _range_sql(start: date | None, end: date | None) -> str | None:
    parts = [f"local_date >= '{start}'" if start else "", f"local_date <= '{end}'" if end else ""]
    parts = [p for p in parts if p]
    return " AND ".join(parts) or None


def _write(df: DataFrame, cfg: Config, table: str, start, end, comment: str) -> int:
    where = _range_sql(start, end)
    if where and tables.exists(df.sparkSession, cfg, table):
        res = tables.write(df, cfg, table, mode="overwrite", partition_by=["local_date"], replace_where=where, comment=comment)
    else:
        res = tables.write(df, cfg, table, mode="overwrite", partition_by=["local_date"], comment=comment)
    return res.version


def soc_predictions(spark: SparkSession, cfg: Config, client, features: DataFrame) -> DataFrame:
    """Features -> gold.predictions_soc_minutely rows (regressor + classifier champions)."""
    s = cfg.ml.soc
    reg_v, reg_uri, reg_inputs, _ = champion(client, cfg, s.registered_model)
    drop = model_column(spark, reg_uri, reg_inputs)
    if tracking.champion_refusal(client, s.registered_classifier, cfg.ml.champion_alias) is None:
        clf_v, clf_uri, clf_inputs, clf_tags = champion(client, cfg, s.registered_classifier)
        threshold: float | None = float(clf_tags.get("decision_threshold", 0.5))
        prob = model_column(spark, clf_uri, clf_inputs)
    else:  # the gate refused the classifier: the drop forecast is still written, the event columns stay null
        clf_v, threshold, prob = None, None, F.lit(None).cast("double")
    return (
        features.withColumn("pred_soc_drop_pct", drop)
        .withColumn("prob_drop_event", prob)
        .select(
            "vehicle_id",
            "minute_ts",
            "local_date",
            "soc_pct",
            F.col("charging").alias("is_charging"),
            F.lit(s.horizon_min).alias("horizon_min"),
            "pred_soc_drop_pct",
            F.greatest(F.col("soc_pct") - F.col("pred_soc_drop_pct"), F.lit(0.0)).alias("pred_soc_at_horizon_pct"),
            F.lit(float(s.drop_threshold_pct)).alias("drop_threshold_pct"),
            "prob_drop_event",
            (F.col("prob_drop_event") >= F.lit(threshold)).alias("drop_alert"),
            F.lit(threshold).cast("double").alias("decision_threshold"),
            F.lit(s.registered_model).alias("soc_model_name"),
            F.lit(reg_v).alias("soc_model_version"),
            F.lit(s.registered_classifier if clf_v else None).cast("string").alias("event_model_name"),
            F.lit(clf_v).cast("string").alias("event_model_version"),
            F.current_timestamp().alias("scored_at"),
        )
    )


def energy_predictions(spark: SparkSession, cfg: Config, client, features: DataFrame) -> DataFrame:
    """Segment features -> gold.predictions_energy rows (energy champion)."""
    name = cfg.ml.energy.registered_model
    version, uri, inputs, _ = champion(client, cfg, name)
    return features.withColumn("pred_kwh_per_km", model_column(spark, uri, inputs)).select(
        "vehicle_id",
        "trip_id",
        "segment_id",
        "local_date",
        "start_ts",
        "end_ts",
        "distance_km",
        "pred_kwh_per_km",
        (F.col("pred_kwh_per_km") * F.col("distance_km")).alias("pred_energy_kwh"),
        "physics_kwh_per_km",
        F.col("kwh_per_km").alias("observed_kwh_per_km"),
        F.lit(name).alias("model_name"),
        F.lit(version).alias("model_version"),
        F.current_timestamp().alias("scored_at"),
    )


def registered_names(cfg: Config, model: str) -> tuple[str, ...]:
    s = cfg.ml.soc
    return (s.registered_model, s.registered_classifier) if model == "soc" else (cfg.ml.energy.registered_model,)


def available_models(client, cfg: Config, models: tuple[str, ...], report: StageReport) -> tuple[str, ...]:
    """The requested models whose champions exist; each other one is skipped with the gate's reason
    (a note, so the pipeline summary and the report show why its predictions are missing)."""
    keep = []
    for model in models:
        names = registered_names(cfg, model)
        refused = {n: r for n in names if (r := tracking.champion_refusal(client, n, cfg.ml.champion_alias))}
        if refused and model == "soc" and names[0] not in refused:
            # the drop forecast has its champion: score it; the event probability stays null, and says why
            report.notes.append(f"skipped the drop-event probability: {refused[names[1]]}")
            keep.append(model)
        elif refused:
            reasons = "; ".join(refused.values())
            report.notes.append(f"skipped {model} scoring: {reasons}")
            log.warning("score: skipped %s: %s", model, reasons)
        else:
            keep.append(model)
    if not keep:
        raise StageSkipped("; ".join(n for n in report.notes if n.startswith("skipped")) or "no model requested")
    return tuple(keep)


def run_score(
    spark: SparkSession,
    cfg: Config,
    models: tuple[str, ...] = MODELS,
    start_date: date | None = None,
    end_date: date | None = None,
) -> StageReport:
    """Score the silver tables with the champions and write the prediction tables."""
    report = StageReport(stage="score")
    client = tracking.configure(cfg)
    models = available_models(client, cfg, models, report)
    vehicles = tables.read(spark, cfg, BRONZE_VEHICLES) if tables.exists(spark, cfg, BRONZE_VEHICLES) else spark.createDataFrame([], VEHICLES)
    clean = tables.read(spark, cfg, SILVER_CLEAN)
    rows_out = 0
    if "soc" in models:
        # Features need each vehicle's earlier minutes (windows, day history): computed on all rows, then filtered.
        trips = tables.read_optional(spark, cfg, TRIPS)
        feats = build_soc_features(tables.read(spark, cfg, MINUTELY), vehicles, clean, trips).where(_in_range(start_date, end_date))
        report.tables[PRED_SOC] = _write(
            soc_predictions(spark, cfg, client, feats), cfg, PRED_SOC, start_date, end_date,
            "Per vehicle-minute SOC drop forecast (champion models, version on every row)",
        )
        rows_out += tables.read(spark, cfg, PRED_SOC).where(_in_range(start_date, end_date)).count()
    if "energy" in models:
        from common.silver.devices import heartbeats

        beats = heartbeats(tables.read_optional(spark, cfg, "silver.device_profiles"))
        feats = build_energy_features(clean, tables.read(spark, cfg, SEGMENTS), cfg.kpis.trips, cfg.ml.energy, beats).where(
            _in_range(start_date, end_date)
        )
        report.tables[PRED_ENERGY] = _write(
            energy_predictions(spark, cfg, client, feats), cfg, PRED_ENERGY, start_date, end_date,
            "Per segment energy forecast in kWh/km and kWh (champion model, version on every row)",
        )
        rows_out += tables.read(spark, cfg, PRED_ENERGY).where(_in_range(start_date, end_date)).count()
    report.rows_out = rows_out
    return report.finish()


@job_main
def main(argv=None) -> StageReport:
    cfg, spark, args = bootstrap("score", argv, __doc__, add_arguments)
    require_inputs(spark, cfg, REQUIRES)
    models = tuple(m.strip() for m in args.models.split(",") if m.strip())
    return run_score(spark, cfg, models, args.start_date, args.end_date)


if __name__ == "__main__":
    main()

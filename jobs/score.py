"""Batch scoring with the registered champions: gold.predictions_soc_minutely, gold.predictions_energy.

Reads:  MLflow registry (`models:/<name>@<ml.champion_alias>`, pinned at job start), silver.vehicle_minutely,
        silver.telematics_clean, silver.segments, bronze.vehicles (optional).
Writes: gold.predictions_soc_minutely  per vehicle-minute: SOC now, predicted drop over ml.soc.horizon_min,
                                        SOC then, P(drop >= ml.soc.drop_threshold_pct), alert at the classifier's
                                        decision threshold, is_charging (docs/MODELS.md), model names and versions;
        gold.predictions_energy        per segment: predicted kWh/km and kWh, physics kWh/km,
                                        observed (SOC) kWh/km when known, model name and version;
        gold.model_monitoring          per model version and window: input and prediction drift (PSI),
                                        realised error where labels arrived (common/ml/monitoring.py).
Predictions are partitioned by local_date; `mlflow.pyfunc.spark_udf` runs exactly the logged
booster. `--start-date/--end-date` rescore only those local days (Delta replaceWhere).

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

from pyspark.sql import SparkSession

from common.core.config import Config
from common.core.frames import materialise, release
from common.io import tables
from common.io.cli import StageReport, StageSkipped, bootstrap, job_main, require_inputs
from common.io.ranges import DateRange, read_range, write_range
from common.io.schemas import VEHICLES
from common.ml import tracking
from common.ml.champion import energy_prediction_rows, load_champion, soc_prediction_rows
from common.ml.features import build_energy_features, build_soc_features
from common.ml.monitoring import MONITORING_TABLE, energy_monitoring, soc_monitoring, write_monitoring
from common.silver.devices import heartbeats

log = logging.getLogger("ev_fleet.score")
# Input groups of which at least one table must exist; otherwise the stage is skipped (common.io.cli).
REQUIRES: tuple[tuple[str, ...], ...] = (("silver.vehicle_minutely", "silver.segments"),)

MINUTELY = "silver.vehicle_minutely"
SEGMENTS = "silver.segments"
SILVER_CLEAN = "silver.telematics_clean"
TRIPS = "silver.trips"
BRONZE_VEHICLES = "bronze.vehicles"
DEVICE_PROFILES = "silver.device_profiles"
PRED_SOC = "gold.predictions_soc_minutely"
PRED_ENERGY = "gold.predictions_energy"
MONITORING = MONITORING_TABLE
# Catalog tables read and written (common/core/catalog.py); the pipeline orders stages by them.
INPUTS: tuple[str, ...] = (MINUTELY, SEGMENTS, SILVER_CLEAN, TRIPS, BRONZE_VEHICLES, DEVICE_PROFILES)
OUTPUTS: tuple[str, ...] = (PRED_SOC, PRED_ENERGY, MONITORING)
MODELS = ("soc", "energy")


def add_arguments(parser) -> None:
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated subset of: " + ", ".join(MODELS))
    parser.add_argument("--start-date", type=date.fromisoformat, default=None, help="first local date to score")
    parser.add_argument("--end-date", type=date.fromisoformat, default=None, help="last local date to score")


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
    days = DateRange(start_date, end_date)
    client = tracking.configure(cfg)
    models = available_models(client, cfg, models, report)
    clean = tables.read(spark, cfg, SILVER_CLEAN)
    rows_out = 0
    if "soc" in models:
        s = cfg.ml.soc
        regressor = load_champion(client, cfg, s.registered_model)
        # a classifier the gate refused leaves the event columns null; the drop forecast is still written
        refused = tracking.champion_refusal(client, s.registered_classifier, cfg.ml.champion_alias)
        classifier = None if refused else load_champion(client, cfg, s.registered_classifier)
        vehicles = tables.read_or_empty(spark, cfg, BRONZE_VEHICLES, VEHICLES, notes=report.notes, why="SOC features without battery size and vehicle type")
        # Features need each vehicle's earlier minutes (windows, day history): computed on all rows, then filtered.
        feats = materialise(build_soc_features(tables.read(spark, cfg, MINUTELY), vehicles, clean, tables.read_optional(spark, cfg, TRIPS)).where(days.contains()))
        try:
            report.tables[PRED_SOC] = write_range(soc_prediction_rows(spark, feats, s, regressor, classifier), cfg, PRED_SOC, days).version
            rows_out += read_range(spark, cfg, PRED_SOC, days).count()
            monitored = soc_monitoring(feats, read_range(spark, cfg, PRED_SOC, days), s, regressor, classifier, cfg.ml.monitoring, refused)
            report.tables[MONITORING] = write_monitoring(spark, cfg, monitored, days.start, days.end)
        finally:
            release(feats)
    if "energy" in models:
        name = cfg.ml.energy.registered_model
        model = load_champion(client, cfg, name)
        beats = heartbeats(tables.read_optional(spark, cfg, DEVICE_PROFILES))
        feats = materialise(build_energy_features(clean, tables.read(spark, cfg, SEGMENTS), cfg.kpis.trips, cfg.ml.energy, beats).where(days.contains()))
        try:
            report.tables[PRED_ENERGY] = write_range(energy_prediction_rows(spark, feats, name, model), cfg, PRED_ENERGY, days).version
            rows_out += read_range(spark, cfg, PRED_ENERGY, days).count()
            monitored = energy_monitoring(feats, read_range(spark, cfg, PRED_ENERGY, days), cfg.ml.energy, model, cfg.ml.monitoring)
            report.tables[MONITORING] = write_monitoring(spark, cfg, monitored, days.start, days.end)
        finally:
            release(feats)
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

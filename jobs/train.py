"""Train, evaluate and register the SOC-drop and energy-per-km models (XGBoost + MLflow).

Reads the tables of INPUTS (truth.points only when present, i.e. synthetic data: `truth_*` metrics).
Writes: MLflow (experiment `mlflow.experiment`): one parent run per invocation with a nested run
        per model; registered model versions; alias `ml.champion_alias` moved only for a model
        that beats the baselines and the current champion on the same test window. No Delta table.

Models: the SOC drop regressor and P(drop >= threshold) classifier, and energy per km per
segment scored per trip; leakage-free time split, baselines and gates in common/ml/ (docs/MODELS.md).

    python -m jobs.train --env local
    python -m jobs.train --models energy --conf ml.num_workers=4
"""

from __future__ import annotations

import logging
import sys
from datetime import datetime, timezone
from pathlib import Path

if __package__ in (None, ""):  # spark-submit jobs/train.py: make `common` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pyspark.sql import DataFrame, SparkSession

from common.core.config import Config
from common.core.frames import materialise, release
from common.io import tables
from common.io.cli import StageReport, StageSkipped, bootstrap, job_main, require_inputs
from common.io.schemas import VEHICLES
from common.ml import tracking
from common.ml.energy_model import require_training_segments, train_energy_model
from common.ml.evaluate import energy_split_rows, soc_split_rows
from common.ml.features import build_energy_features, build_soc_features, soc_labels
from common.ml.registry import ModelOutcome, outcomes_summary
from common.ml.soc_models import train_soc_models
from common.ml.train import InsufficientData
from common.silver.devices import heartbeats

log = logging.getLogger("ev_fleet.train")
# Input groups of which at least one table must exist; otherwise the stage is skipped (common.io.cli).
REQUIRES: tuple[tuple[str, ...], ...] = (("silver.vehicle_minutely", "silver.segments"),)

MINUTELY = "silver.vehicle_minutely"
SEGMENTS = "silver.segments"
TRIPS = "silver.trips"
SILVER_CLEAN = "silver.telematics_clean"
BRONZE_VEHICLES = "bronze.vehicles"
DEVICE_PROFILES = "silver.device_profiles"
TRUTH_POINTS = "truth.points"
# Catalog tables read and written (common/core/catalog.py); the pipeline orders stages by them.
INPUTS: tuple[str, ...] = (MINUTELY, SEGMENTS, TRIPS, SILVER_CLEAN, BRONZE_VEHICLES, DEVICE_PROFILES, TRUTH_POINTS)
OUTPUTS: tuple[str, ...] = ()  # MLflow runs and registered model versions, not tables
MODELS = ("soc", "energy")


def add_arguments(parser) -> None:
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated subset of: " + ", ".join(MODELS))
    parser.add_argument("--run-name", default=None, help="MLflow parent run name (default: train-<UTC time>)")


def soc_dataset(spark: SparkSession, cfg: Config, vehicles: DataFrame) -> DataFrame:
    """SOC features + labels for every vehicle-minute of silver.vehicle_minutely."""
    clean = tables.read_optional(spark, cfg, SILVER_CLEAN)
    trips = tables.read_optional(spark, cfg, TRIPS)
    return soc_labels(build_soc_features(tables.read(spark, cfg, MINUTELY), vehicles, clean, trips), cfg.ml.soc)


def energy_dataset(spark: SparkSession, cfg: Config) -> DataFrame:
    """Segment features (incl. physics integrated over legs) for every segment of silver.segments."""
    beats = heartbeats(tables.read_optional(spark, cfg, DEVICE_PROFILES))
    return build_energy_features(tables.read(spark, cfg, SILVER_CLEAN), tables.read(spark, cfg, SEGMENTS), cfg.kpis.trips, cfg.ml.energy, beats)


def train_soc(spark: SparkSession, cfg: Config, client, versions: dict, report: StageReport) -> list[ModelOutcome]:
    """The SOC drop regressor and classifier (common/ml/soc_models.py)."""
    vehicles = tables.read_or_empty(spark, cfg, BRONZE_VEHICLES, VEHICLES, notes=report.notes, why="SOC models train without battery size and vehicle type")
    kept = [materialise(soc_dataset(spark, cfg, vehicles))]
    try:  # released also when a model is skipped for too little data (InsufficientData)
        rows = soc_split_rows(kept[0], cfg.ml)
        kept.append(rows.labelled)
        report.rows_in = (report.rows_in or 0) + rows.total
        return train_soc_models(spark, cfg, rows, client, versions, report.notes)
    finally:
        for df in kept:
            release(df)


def train_energy(spark: SparkSession, cfg: Config, client, versions: dict, report: StageReport) -> list[ModelOutcome]:
    """The energy-per-km model (common/ml/energy_model.py)."""
    segments = materialise(energy_dataset(spark, cfg))
    try:  # released also when the model is skipped for too little data (InsufficientData)
        rows = energy_split_rows(segments, cfg.ml)
        report.rows_in = (report.rows_in or 0) + rows.total
        require_training_segments(rows)
        return train_energy_model(spark, cfg, rows, tables.read(spark, cfg, TRIPS), tables.read_optional(spark, cfg, TRUTH_POINTS), client, versions)
    finally:
        release(segments)


def run_train(spark: SparkSession, cfg: Config, models: tuple[str, ...] = MODELS, run_name: str | None = None) -> StageReport:
    """Train, evaluate, log and register the requested models; returns the outcomes in report.notes."""
    import mlflow

    unknown = set(models) - set(MODELS)
    if unknown:
        raise ValueError(f"unknown model(s) {sorted(unknown)}; choose from {MODELS}")
    report = StageReport(stage="train")
    client = tracking.configure(cfg)
    versions = {t: tables.version(spark, cfg, t) for t in (MINUTELY, SEGMENTS, TRIPS, SILVER_CLEAN, BRONZE_VEHICLES, DEVICE_PROFILES, TRUTH_POINTS)}
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
    print(outcomes_summary(outcomes))
    return report.finish()


@job_main
def main(argv=None) -> StageReport:
    cfg, spark, args = bootstrap("train", argv, __doc__, add_arguments)
    require_inputs(spark, cfg, REQUIRES)
    models = tuple(m.strip() for m in args.models.split(",") if m.strip())
    return run_train(spark, cfg, models, args.run_name)


if __name__ == "__main__":
    main()

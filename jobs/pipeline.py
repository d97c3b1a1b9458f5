"""Run the whole pipeline in dependency order on one SparkSession, with progress and a summary.

generate (only when no input dataset is configured) -> ingest -> clean -> kpis ->
residence / charging / hotspots / risk -> stations / reliability -> train -> score -> report

Every stage is also runnable alone (`spark-submit jobs/<stage>.py`). Each stage writes Delta
tables atomically, so a failing stage leaves the outputs of earlier stages intact; the error
names the stage and its input tables.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import logging
import sys
import time
from dataclasses import dataclass
from datetime import date

from pyspark.sql import SparkSession

from common import tables
from common.cli import StageReport, bootstrap
from common.config import Config
from common.spark import size_shuffles

log = logging.getLogger("ev_fleet.pipeline")


@dataclass(frozen=True)
class Stage:
    name: str
    inputs: tuple[str, ...]  # tables read (named in failure messages)
    outputs: tuple[str, ...]  # main tables written (summary shows their Delta versions)


STAGES: tuple[Stage, ...] = (
    Stage("generate", (), ("truth.points",)),
    Stage("ingest", ("raw files",), ("bronze.telematics", "bronze.vehicles", "bronze.stations", "bronze.charger_status", "bronze.charging_sessions")),
    Stage("clean", ("bronze.telematics", "bronze.vehicles"), ("silver.telematics_clean", "gold.quality_daily")),
    Stage("kpis", ("silver.telematics_clean",), ("silver.vehicle_minutely", "silver.trips", "silver.segments", "gold.daily_kpis", "gold.fleet_daily_kpis", "gold.payd_billing")),
    Stage("residence", ("silver.telematics_clean",), ("restricted.residences",)),
    Stage("charging", ("silver.telematics_clean", "bronze.stations"), ("gold.charging_events", "gold.charging_locations", "gold.charging_sites")),
    Stage("hotspots", ("silver.telematics_clean",), ("gold.hotspots",)),
    Stage("risk", ("gold.daily_kpis", "silver.telematics_clean", "restricted.residences"), ("gold.driver_risk",)),
    Stage("stations", ("bronze.stations", "gold.charging_events", "gold.hotspots"), ("gold.station_kpis", "gold.station_fleet_usage", "gold.expansion_gaps")),
    Stage("reliability", ("bronze.charger_status", "bronze.charging_sessions", "bronze.stations", "silver.telematics_clean"), ("gold.port_status_intervals", "gold.port_reliability_monthly", "gold.site_reliability", "gold.reliability_tests", "gold.failed_charge_attempts")),
    Stage("train", ("silver.vehicle_minutely", "silver.segments"), ()),
    Stage("score", ("silver.vehicle_minutely", "silver.segments"), ("gold.predictions_soc_minutely", "gold.predictions_energy")),
    Stage("report", ("gold.*",), ()),
)
STAGE_NAMES = tuple(s.name for s in STAGES)


class StageFailed(RuntimeError):
    pass


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--only", default=None, help=f"comma-separated stages to run (of {','.join(STAGE_NAMES)})")
    parser.add_argument("--from", dest="from_stage", default=None, help="start at this stage (earlier outputs are reused)")
    parser.add_argument("--skip", default=None, help="comma-separated stages to skip")
    parser.add_argument("--start-date", type=date.fromisoformat, default=None, help="first local date to (re)process (YYYY-MM-DD)")
    parser.add_argument("--end-date", type=date.fromisoformat, default=None, help="last local date to (re)process (YYYY-MM-DD)")
    parser.add_argument("--regenerate", action="store_true", help="regenerate synthetic data even if it exists for the same config")


def _split(value: str | None) -> list[str]:
    names = [v.strip() for v in (value or "").split(",") if v.strip()]
    unknown = [n for n in names if n not in STAGE_NAMES]
    if unknown:
        raise SystemExit(f"unknown stage(s) {', '.join(unknown)}; stages are: {', '.join(STAGE_NAMES)}")
    return names


def select_stages(cfg: Config, only: str | None, from_stage: str | None, skip: str | None) -> list[Stage]:
    """Stages to run, in dependency order. `generate` runs only when no input dataset is configured."""
    chosen = list(STAGES)
    if only:
        wanted = set(_split(only))
        chosen = [s for s in chosen if s.name in wanted]
    if from_stage:
        _split(from_stage)
        chosen = chosen[[s.name for s in chosen].index(from_stage) :] if from_stage in [s.name for s in chosen] else []
    skipped = set(_split(skip))
    chosen = [s for s in chosen if s.name not in skipped]
    if not cfg.inputs.is_empty():
        chosen = [s for s in chosen if s.name != "generate"]
    return chosen


def _call_stage(stage: Stage, spark: SparkSession, cfg: Config, args: argparse.Namespace) -> StageReport | None:
    module = importlib.import_module(f"jobs.{stage.name}")
    size_shuffles(spark, cfg)  # ingest may just have created or grown the telemetry
    if stage.name == "ingest":
        from common.generator import default_inputs

        generated = cfg.inputs.is_empty()
        inputs = default_inputs(cfg) if generated else cfg.inputs
        return module.run_ingest(spark, cfg, inputs, generated=generated)
    if stage.name == "generate":
        return module.run_generate(spark, cfg, force=args.regenerate)
    fn = getattr(module, f"run_{stage.name}")
    params = inspect.signature(fn).parameters
    kwargs = {}
    if "start_date" in params:
        kwargs["start_date"] = args.start_date
    if "end_date" in params:
        kwargs["end_date"] = args.end_date
    if (args.start_date or args.end_date) and not kwargs:
        # Fleet-level results (homes, sites, hotspots, risk, reliability, models) depend on the
        # whole history, so these stages recompute their tables in full (an atomic overwrite).
        log.info("%s: date range does not apply; recomputing its tables from the full history", stage.name)
    return fn(spark, cfg, **kwargs)


def run_pipeline(spark: SparkSession, cfg: Config, args: argparse.Namespace) -> list[StageReport]:
    stages = select_stages(cfg, args.only, args.from_stage, args.skip)
    log.info("pipeline: %d stages: %s", len(stages), " -> ".join(s.name for s in stages))
    reports: list[StageReport] = []
    t_all = time.time()
    for i, stage in enumerate(stages, 1):
        log.info("[%d/%d] %s: start (reads %s)", i, len(stages), stage.name, ", ".join(stage.inputs) or "-")
        t0 = time.time()
        try:
            report = _call_stage(stage, spark, cfg, args) or StageReport(stage.name)
        except Exception as exc:  # noqa: BLE001 - re-raised with the stage and its inputs named
            log.error("[%d/%d] %s FAILED after %.1fs: %s", i, len(stages), stage.name, time.time() - t0, exc)
            print(summary_table(reports, cfg, spark))
            raise StageFailed(
                f"stage '{stage.name}' failed (inputs: {', '.join(stage.inputs) or '-'}): {type(exc).__name__}: {exc}. "
                f"Outputs of earlier stages are intact; rerun with --from {stage.name}"
            ) from exc
        report.stage = stage.name
        if report.seconds is None:
            report.finish()
        for table in stage.outputs:
            if table not in report.tables and tables.exists(spark, cfg, table):
                report.tables[table] = tables.version(spark, cfg, table)
        log.info(
            "[%d/%d] %s: done in %.1fs (rows in=%s out=%s quarantined=%s)",
            i, len(stages), stage.name, time.time() - t0, report.rows_in, report.rows_out, report.rows_quarantined,
        )
        reports.append(report)
    log.info("pipeline finished in %.1fs", time.time() - t_all)
    print(summary_table(reports, cfg, spark))
    return reports


def summary_table(reports: list[StageReport], cfg: Config, spark: SparkSession) -> str:
    lines = [f"{'stage':<12} {'rows in':>12} {'rows out':>12} {'quarant.':>9} {'seconds':>8}  output table (Delta version)"]
    lines.append("-" * 100)
    for r in reports:
        outs = ", ".join(f"{t} (v{v})" for t, v in r.tables.items()) or "-"
        fmt = lambda x: f"{x:,}" if isinstance(x, int) else "-"  # noqa: E731
        lines.append(f"{r.stage:<12} {fmt(r.rows_in):>12} {fmt(r.rows_out):>12} {fmt(r.rows_quarantined):>9} {r.seconds or 0:>8.1f}  {outs}")
    return "\n".join(lines)


def where_things_are(cfg: Config) -> str:
    return "\n".join(
        [
            "",
            f"Report:  {cfg.storage.resolve(cfg.report.output_dir)}/latest/index.html",
            f"Tables:  {cfg.storage.resolve(cfg.storage.root)}  (bronze/ silver/ gold/ quarantine/ truth/ audit/)",
            f"Restricted personal data: {cfg.storage.resolve(cfg.storage.restricted_root)}",
            f"MLflow:  make mlflow-ui   -> http://127.0.0.1:5000  (tracking store {cfg.mlflow.tracking_uri})",
        ]
    )


def main(argv=None) -> list[StageReport]:
    cfg, spark, args = bootstrap("pipeline", argv, __doc__, add_arguments)
    try:
        reports = run_pipeline(spark, cfg, args)
    except StageFailed as exc:
        log.error("%s", exc)
        sys.exit(1)
    print(where_things_are(cfg))
    return reports


if __name__ == "__main__":
    main()

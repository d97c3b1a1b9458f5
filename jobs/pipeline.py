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
import uuid
from dataclasses import dataclass
from datetime import date, datetime, timezone

from pyspark.sql import SparkSession

from common.core.config import POSITION_TRACES, Config
from common.io import tables
from common.io.cli import StageReport, StageSkipped, bootstrap, missing_inputs
from common.io.spark import size_shuffles

log = logging.getLogger("ev_fleet.pipeline")


@dataclass(frozen=True)
class Stage:
    name: str
    inputs: tuple[str, ...]  # tables read (named in failure messages)
    outputs: tuple[str, ...]  # main tables written (summary shows their Delta versions)


STAGES: tuple[Stage, ...] = (
    Stage("generate", (), ("truth.points",)),
    Stage("ingest", ("raw files",), ("bronze.telematics", "bronze.vehicles", "bronze.stations", "bronze.charger_status", "bronze.charging_sessions")),
    Stage("clean", ("bronze.telematics", "bronze.vehicles"), ("silver.telematics_clean", "gold.quality_daily", "silver.device_profiles")),
    Stage("kpis", ("silver.telematics_clean",), ("silver.vehicle_minutely", "silver.trips", "silver.segments", "gold.daily_kpis", "gold.fleet_daily_kpis", "gold.payd_billing")),
    Stage("residence", ("silver.telematics_clean",), ("restricted.residences",)),
    Stage("charging", ("silver.telematics_clean", "bronze.stations"), ("gold.charging_events", "gold.charging_locations", "gold.charging_sites")),
    Stage("hotspots", ("silver.telematics_clean",), ("gold.hotspots",)),
    Stage("risk", ("gold.daily_kpis", "silver.telematics_clean", "restricted.residences"), ("gold.driver_risk",)),
    Stage("stations", ("bronze.stations", "gold.charging_events", "gold.hotspots"), ("gold.station_kpis", "gold.station_fleet_usage", "gold.expansion_gaps")),
    Stage(
        "reliability",
        ("bronze.charger_status", "bronze.charging_sessions", "bronze.stations", "silver.telematics_clean"),
        ("gold.port_status_intervals", "gold.port_reliability_monthly", "gold.site_reliability", "gold.reliability_tests", "gold.failed_charge_attempts"),
    ),
    Stage("train", ("silver.vehicle_minutely", "silver.segments", "silver.trips", "silver.telematics_clean", "bronze.vehicles"), ()),
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
        from common.synthetic.generator import default_inputs

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


WRITERS = {table: stage.name for stage in STAGES for table in stage.outputs}


def why_skipped(stage: Stage, spark: SparkSession, cfg: Config, skipped: dict[str, str]) -> str | None:
    """Reason the stage cannot run (its REQUIRES groups, jobs/<stage>.py), naming the root cause
    when an upstream stage of this run was skipped."""
    module = importlib.import_module(f"jobs.{stage.name}")
    requires = getattr(module, "REQUIRES", ())
    reason = missing_inputs(spark, cfg, requires, WRITERS)
    if reason is None:
        return None
    upstream = [WRITERS[t] for group in requires for t in group if WRITERS.get(t) in skipped]
    if upstream:
        return f"{reason} ({upstream[0]} was skipped: {skipped[upstream[0]]})"
    return reason


def run_pipeline(spark: SparkSession, cfg: Config, args: argparse.Namespace) -> list[StageReport]:
    stages = select_stages(cfg, args.only, args.from_stage, args.skip)
    log.info("pipeline: %d stages: %s", len(stages), " -> ".join(s.name for s in stages))
    reports: list[StageReport] = []
    skipped: dict[str, str] = {}
    t_all = time.time()
    run_id = f"pipeline-{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:6]}"
    recorded = 0
    for i, stage in enumerate(stages, 1):
        if stage.name == "report":  # the report says why sections are empty: record the run so far first
            recorded = record_run(spark, cfg, run_id, reports, recorded)
        reason = why_skipped(stage, spark, cfg, skipped)
        if reason:
            skipped[stage.name] = reason
            log.warning("[%d/%d] %s: skipped: %s", i, len(stages), stage.name, reason)
            reports.append(StageReport(stage.name, status="skipped", notes=[reason]).finish())
            continue
        log.info("[%d/%d] %s: start (reads %s)", i, len(stages), stage.name, ", ".join(stage.inputs) or "-")
        t0 = time.time()
        try:
            report = _call_stage(stage, spark, cfg, args) or StageReport(stage.name)
        except StageSkipped as exc:
            skipped[stage.name] = str(exc)
            log.warning("[%d/%d] %s: skipped: %s", i, len(stages), stage.name, exc)
            reports.append(StageReport(stage.name, status="skipped", notes=[str(exc)]).finish())
            continue
        except Exception as exc:  # noqa: BLE001 - re-raised with the stage and its inputs named
            log.error("[%d/%d] %s FAILED after %.1fs: %s", i, len(stages), stage.name, time.time() - t0, exc)
            reports.append(StageReport(stage.name, status="failed", notes=[f"{type(exc).__name__}: {exc}"]).finish())
            print(summary_table(reports, cfg, spark))
            record_run(spark, cfg, run_id, reports, recorded)
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
            "[%d/%d] %s: done in %.1fs (rows in=%s out=%s quarantined=%s)%s",
            i, len(stages), stage.name, time.time() - t0, report.rows_in, report.rows_out, report.rows_quarantined,
            "".join(f"; {n}" for n in report.notes if n.startswith("skipped")),
        )
        reports.append(report)
    log.info("pipeline finished in %.1fs", time.time() - t_all)
    record_run(spark, cfg, run_id, reports, recorded)
    print(summary_table(reports, cfg, spark))
    return reports


RUNS_TABLE = "audit.stage_runs"


def record_run(spark: SparkSession, cfg: Config, run_id: str, reports: list[StageReport], recorded: int) -> int:
    """Append the audit rows of stages not recorded yet (status, reason, seconds, rows); returns how
    many are recorded. The report reads the latest run to say why a section has no data."""
    now = datetime.now(timezone.utc)
    rows = [
        (run_id, now, i, r.stage, r.status, "; ".join(n for n in r.notes if r.status != "ok" or n.startswith("skipped")) or None, float(r.seconds or 0.0), r.rows_in, r.rows_out)
        for i, r in enumerate(reports)
        if i >= recorded
    ]
    if rows:
        schema = "run_id string, finished_at timestamp, position int, stage string, status string, reason string, seconds double, rows_in long, rows_out long"
        tables.write(spark.createDataFrame(rows, schema), cfg, RUNS_TABLE, mode="append", comment="One row per stage per pipeline run: ok / skipped (with the reason) / failed")
    return len(reports)


def summary_table(reports: list[StageReport], cfg: Config, spark: SparkSession) -> str:
    lines = [f"{'stage':<12} {'status':<8} {'rows in':>12} {'rows out':>12} {'quarant.':>9} {'seconds':>8}  output table (Delta version)"]
    lines.append("-" * 110)
    for r in reports:
        outs = ", ".join(f"{t} (v{v})" for t, v in r.tables.items()) or "-"
        if r.status != "ok":
            outs = f"{r.status}: {'; '.join(r.notes)}"
        fmt = lambda x: f"{x:,}" if isinstance(x, int) else "-"  # noqa: E731
        lines.append(f"{r.stage:<12} {r.status:<8} {fmt(r.rows_in):>12} {fmt(r.rows_out):>12} {fmt(r.rows_quarantined):>9} {r.seconds or 0:>8.1f}  {outs}")
        lines += [f"{'':<22}{n}" for n in r.notes if r.status == "ok" and n.startswith("skipped")]
    return "\n".join(lines)


def where_things_are(cfg: Config) -> str:
    return "\n".join(
        [
            "",
            f"Report:  {cfg.storage.resolve(cfg.report.output_dir)}/latest/index.html",
            f"Tables:  {cfg.storage.resolve(cfg.storage.root)}  (bronze/ silver/ gold/ quarantine/ truth/ audit/)",
            f"Restricted personal data: {cfg.storage.resolve(cfg.storage.restricted)}  (residences, position traces: {', '.join(sorted(POSITION_TRACES))})",
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

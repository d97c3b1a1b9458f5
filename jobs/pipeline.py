"""Run the whole pipeline in dependency order on one SparkSession, with progress and a summary.

generate (only when no input dataset is configured) -> ingest -> clean -> kpis -> residence /
charging / hotspots / risk -> stations / reliability -> fault_analysis -> rollout -> train -> score -> charging_plan -> report ->
export (-> maintain, with maintain.enabled) -> catalog (tables by name; skipped with catalog.metastore none): the order is
derived from the tables each job declares (INPUTS / OUTPUTS, names of common/core/catalog.py).
Every stage also runs alone (`spark-submit jobs/<stage>.py`) and writes its Delta tables
atomically, so a failing stage leaves earlier outputs intact; the error names stage and inputs.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import logging
import sys
import time
import uuid
from datetime import date, datetime, timezone

from pyspark.sql import SparkSession

from common.core.config import Config
from common.io import tables
from common.io.cli import StageReport, StageSkipped, bootstrap
from common.io.spark import size_shuffles
from common.io.stages import Stage, close_report, ordered, record_run, report_line, select, summary_table, where_things_are, why_skipped, writers

log = logging.getLogger("ev_fleet.pipeline")

# The jobs of the pipeline; among stages whose inputs are ready at the same time, this order.
JOBS = tuple("generate ingest clean kpis residence charging hotspots risk stations reliability fault_analysis rollout train score charging_plan report export maintain catalog".split())


def _declared(name: str) -> Stage:
    job = importlib.import_module(f"jobs.{name}")
    return Stage(name, tuple(job.INPUTS), tuple(job.OUTPUTS), tuple(tuple(g) for g in job.REQUIRES))


STAGES: tuple[Stage, ...] = tuple(ordered([_declared(name) for name in JOBS]))
STAGE_NAMES = tuple(s.name for s in STAGES)
WRITERS = writers(STAGES)


class StageFailed(RuntimeError):
    pass


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--only", default=None, help=f"comma-separated stages to run (of {','.join(STAGE_NAMES)})")
    parser.add_argument("--from", dest="from_stage", default=None, help="start at this stage (earlier outputs are reused)")
    parser.add_argument("--skip", default=None, help="comma-separated stages to skip")
    parser.add_argument("--start-date", type=date.fromisoformat, default=None, help="first local date to (re)process (YYYY-MM-DD)")
    parser.add_argument("--end-date", type=date.fromisoformat, default=None, help="last local date to (re)process (YYYY-MM-DD)")
    parser.add_argument("--regenerate", action="store_true", help="regenerate synthetic data even if it exists for the same config")


def select_stages(cfg: Config, only: str | None, from_stage: str | None, skip: str | None) -> list[Stage]:
    """Stages to run, in dependency order. `generate` runs only when no input dataset is configured."""
    return select(STAGES, only, from_stage, skip, generate=cfg.inputs.is_empty(), maintain=cfg.maintain.enabled)


def _call_stage(stage: Stage, spark: SparkSession, cfg: Config, args: argparse.Namespace) -> StageReport | None:
    module = importlib.import_module(f"jobs.{stage.name}")
    size_shuffles(spark, cfg)  # ingest may just have created or grown the telemetry
    if stage.name == "ingest":
        inputs, generated = module.resolve_inputs(cfg)
        return module.run_ingest(spark, cfg, inputs, generated=generated)
    if stage.name == "generate":
        return module.run_generate(spark, cfg, force=args.regenerate)
    fn = getattr(module, f"run_{stage.name}")
    params = inspect.signature(fn).parameters
    kwargs = {k: getattr(args, k) for k in ("start_date", "end_date") if k in params}
    if (args.start_date or args.end_date) and not kwargs:
        # Fleet-level results (homes, sites, hotspots, risk, reliability, models) depend on the
        # whole history, so these stages recompute their tables in full (an atomic overwrite).
        log.info("%s: date range does not apply; recomputing its tables from the full history", stage.name)
    return fn(spark, cfg, **kwargs)


def _skip(reports: list[StageReport], skipped: dict[str, str], stage: Stage, reason: str, where: str) -> None:
    skipped[stage.name] = reason
    log.warning("%s %s: skipped: %s", where, stage.name, reason)
    reports.append(StageReport(stage.name, status="skipped", notes=[reason]).finish())


def run_pipeline(spark: SparkSession, cfg: Config, args: argparse.Namespace) -> list[StageReport]:
    stages = select_stages(cfg, args.only, args.from_stage, args.skip)
    log.info("pipeline: %d stages: %s", len(stages), " -> ".join(s.name for s in stages))
    reports: list[StageReport] = []
    skipped: dict[str, str] = {}
    t_all = time.time()
    run_id = f"pipeline-{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:6]}"
    recorded = 0
    for i, stage in enumerate(stages, 1):
        where = f"[{i}/{len(stages)}]"
        if stage.name == "report":  # the report says why sections are empty: record the run so far first
            recorded = record_run(spark, cfg, run_id, reports, recorded)
        reason = why_skipped(stage, spark, cfg, skipped, WRITERS)
        if reason:
            _skip(reports, skipped, stage, reason, where)
            continue
        log.info("%s %s: start (reads %s)", where, stage.name, ", ".join(stage.inputs) or "-")
        t0 = time.time()
        try:
            with tables.recording() as access:
                report = _call_stage(stage, spark, cfg, args) or StageReport(stage.name)
        except StageSkipped as exc:
            _skip(reports, skipped, stage, str(exc), where)
            continue
        except Exception as exc:  # noqa: BLE001 - re-raised with the stage and its inputs named
            log.error("%s %s FAILED after %.1fs: %s", where, stage.name, time.time() - t0, exc)
            reports.append(StageReport(stage.name, status="failed", notes=[f"{type(exc).__name__}: {exc}"]).finish())
            print(summary_table(reports))
            record_run(spark, cfg, run_id, reports, recorded)
            raise StageFailed(
                f"stage '{stage.name}' failed (inputs: {', '.join(stage.inputs) or '-'}): {type(exc).__name__}: {exc}. Outputs of earlier stages are intact; rerun with --from {stage.name}"
            ) from exc
        close_report(stage, report, access, spark, cfg)
        log.info("%s %s: done in %.1fs %s", where, stage.name, time.time() - t0, report_line(report))
        reports.append(report)
    log.info("pipeline finished in %.1fs", time.time() - t_all)
    record_run(spark, cfg, run_id, reports, recorded)
    print(summary_table(reports))
    return reports


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

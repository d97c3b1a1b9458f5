"""Build the static HTML report (reports/<run>/index.html, linked as reports/latest).

Reads gold tables (and the MLflow tracking store for model metrics); every section is skipped
with a note when its table does not exist yet. Only bounded, aggregated data is brought to the
driver (`report.max_points_per_layer`). Residences appear only coarsened to
`report.residence_cell_m` cells unless `report.show_exact_residences` is set. Sections:
common/report/sections.py; drawing: common/report/html.py.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from pathlib import Path

from pyspark.sql import SparkSession

from common.core.config import Config
from common.io import tables
from common.io.cli import StageReport, bootstrap, job_main
from common.io.extracts import point_latest
from common.report import html as R
from common.report.sections import REPORT_TABLES, SECTIONS, STAGE_RUNS, ReportInputs, last_run_status

log = logging.getLogger("ev_fleet.report")
# Catalog tables read and written (common/core/catalog.py); the pipeline orders stages by them.
INPUTS: tuple[str, ...] = REPORT_TABLES
OUTPUTS: tuple[str, ...] = ()  # reports/<run>/index.html, not a table
# Input groups of which at least one table must exist; otherwise the stage is skipped (common.io.cli).
REQUIRES: tuple[tuple[str, ...], ...] = ()


def read_inputs(spark: SparkSession, cfg: Config) -> ReportInputs:
    """Every table of common.report.sections.REPORT_TABLES that exists, and the last run's stage status."""
    frames = {table: tables.read_optional(spark, cfg, table) for table in REPORT_TABLES}
    return ReportInputs(tables=frames, status=last_run_status(frames[STAGE_RUNS]))


def write_html(html: str, cfg: Config, run_id: str) -> Path:
    """<report.output_dir>/<run_id>/index.html, and `latest` pointing at it (a copy without symlinks)."""
    out_root = Path(cfg.storage.resolve(cfg.report.output_dir))
    out_dir = out_root / run_id
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "index.html").write_text(html, encoding="utf-8")
    point_latest(out_root, run_id)
    return out_dir / "index.html"


def build_report(spark: SparkSession, cfg: Config, run_id: str | None = None) -> Path:
    """Build the report from the tables that exist and write it; the path of its index.html."""
    run_id = run_id or datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    inputs = read_inputs(spark, cfg)
    sections = []
    for fn in SECTIONS:
        try:
            sections.append(fn(inputs, cfg))
        except tables.TableNotFound as exc:
            sections.append(R.Section(fn.__name__, fn.__name__.replace("section_", "").title()).add(f"<p class='empty'>{R.esc(exc)}</p>"))
    html = R.page("EV fleet analytics report", f"run {run_id} · env {cfg.env} · lakehouse {cfg.storage.root}", sections)
    return write_html(html, cfg, run_id)


def run_report(spark: SparkSession, cfg: Config, run_id: str | None = None) -> StageReport:
    report = StageReport("report")
    path = build_report(spark, cfg, run_id)
    report.notes.append(str(path))
    log.info("report written to %s", path)
    return report.finish()


@job_main
def main(argv=None) -> StageReport:
    cfg, spark, _ = bootstrap("report", argv, __doc__)
    return run_report(spark, cfg)


if __name__ == "__main__":
    main()

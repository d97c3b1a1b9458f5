"""Extracts for operations teams: per run, CSV / Parquet files they open without Spark.

High-risk drivers (with reasons and the H3 cell of their home), sites needing ports, faults
forecast per site, and the charging plan per depot once a stage writes it
(common/report/exports.py). Files: ``<export.output_dir>/<run>/<extract>.<format>`` with
``manifest.json`` (per extract: rows, source rows, files, personal or not, the Delta versions
read), and ``latest`` pointing at the newest run. An extract with personal data (vehicle ids with
home cells) goes only to ``<export.restricted_dir>/<run>/`` (default
``<storage.restricted>/exports``, under the restricted root's access policy). An extract whose
input is missing is skipped with a note in the stage report and the manifest; the others are
written. Each extract's rows are reconciled with an independent count of its source and read back
from every file (a mismatch fails the stage). A rerun with the same run id replaces that run's
files. File IO: common/io/extracts.py.

    python -m jobs.export --env local
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import datetime, timezone
from pathlib import Path

if __package__ in (None, ""):  # spark-submit jobs/export.py: make `common` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pyspark.sql import SparkSession

from common.core.config import Config
from common.io import extracts, tables
from common.io.cli import StageReport, bootstrap, job_main
from common.report.exports import EXTRACTS, SOURCE_TABLES, Extract, unavailable

log = logging.getLogger("ev_fleet.export")
# Catalog tables read and written (common/core/catalog.py); the pipeline orders stages by them.
INPUTS: tuple[str, ...] = SOURCE_TABLES
OUTPUTS: tuple[str, ...] = ()  # files under export.output_dir / export.restricted_dir, not tables
# Input groups of which at least one table must exist; otherwise the stage is skipped (common.io.cli).
REQUIRES: tuple[tuple[str, ...], ...] = ()


def export_one(spark: SparkSession, cfg: Config, extract: Extract, staging: str, final: str) -> dict:
    """Read the extract's sources at one version each, transform, write and reconcile; its manifest entry."""
    versions = {t: tables.version(spark, cfg, t) for t in extract.sources}
    # Pinned versions: the source count, the extract and the manifest all see the same rows.
    frames = {t: tables.read(spark, cfg, t, version=v) for t, v in versions.items()}
    if extract.build is None or extract.source_query is None:  # `unavailable` skips these first
        raise ValueError(f"extract {extract.name} has no transform or source query")
    expected = extract.source_query(frames).count()
    done = extracts.write_extract(extract.build(frames, cfg), staging, final, extract.name, cfg.export.formats, cfg.export.max_rows, expected)
    return {
        "status": "written",
        "personal": extract.personal,
        "description": extract.description,
        "rows": done.rows,
        "source_rows": done.source_rows,
        "capped_at_max_rows": done.capped,
        "files": done.files,
        "sources": versions,
    } | ({"note": extract.note} if extract.note else {})


def write_extracts(spark: SparkSession, cfg: Config, report: StageReport, roots: dict[bool, str], staging: dict[bool, str], run_id: str) -> dict[str, dict]:
    """Every extract into its staging folder (public or restricted), or a skip note; the manifest entries."""
    entries: dict[str, dict] = {}
    for extract in EXTRACTS:
        why = unavailable(extract, lambda t: tables.exists(spark, cfg, t))
        if why:
            report.notes.append(f"{extract.name}: skipped: {why}")
            entries[extract.name] = {"status": "skipped", "reason": why, "personal": extract.personal}
            continue
        entry = entries[extract.name] = export_one(spark, cfg, extract, staging[extract.personal], f"{roots[extract.personal]}/{run_id}")
        report.rows_in = (report.rows_in or 0) + entry["source_rows"]
        report.rows_out = (report.rows_out or 0) + entry["rows"]
        cut = f", cut at export.max_rows = {cfg.export.max_rows}" if entry["capped_at_max_rows"] else ""
        where = "restricted folder" if extract.personal else "export folder"
        left_out = f"; {extract.note}" if extract.note else ""
        report.notes.append(f"{extract.name}: {entry['rows']} of {entry['source_rows']} rows (reconciled{cut}) in the {where}: {', '.join(entry['files'].values())}{left_out}")
    return entries


def run_export(spark: SparkSession, cfg: Config, run_id: str | None = None) -> StageReport:
    """Write this run's extracts; skipped (with the reason) when export.enabled is false."""
    if not cfg.export.enabled:
        return StageReport("export", status="skipped", notes=["export.enabled is false"]).finish()
    report = StageReport("export", rows_in=0, rows_out=0)
    run_id = run_id or datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    public, restricted = cfg.export.folders(cfg.storage)
    roots = {False: public, True: restricted}  # by whether the extract carries personal data
    staging = {personal: extracts.open_run(spark, root, run_id) for personal, root in roots.items()}
    try:
        entries = write_extracts(spark, cfg, report, roots, staging, run_id)
        manifest = {
            "run_id": run_id,
            "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "env": cfg.env,
            "formats": list(cfg.export.formats),
            "max_rows": cfg.export.max_rows,
            "folders": {"export": f"{public}/{run_id}", "restricted": f"{restricted}/{run_id}"},
            "extracts": entries,
        }
        extracts.write_text(spark, f"{staging[False]}/manifest.json", json.dumps(manifest, indent=2, default=str) + "\n")
    except Exception:
        for root in roots.values():  # no half-written run left behind; a published one stays as it was
            extracts.discard_run(spark, root, run_id)
        raise
    for root in roots.values():
        extracts.publish_run(spark, root, run_id)
    report.notes.append(f"manifest: {public}/{run_id}/manifest.json")
    for note in report.notes:
        log.info("%s", note)
    return report.finish()


@job_main
def main(argv=None) -> StageReport:
    cfg, spark, _ = bootstrap("export", argv, __doc__)
    return run_export(spark, cfg)


if __name__ == "__main__":
    main()

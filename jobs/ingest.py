"""Ingest raw files into bronze Delta tables, with quarantine and an audit row per dataset.

Reads:  the raw files of every dataset in `inputs.*` (conf, or `--inputs conf/datasets/x.yaml`;
        with none configured, the synthetic generator's files under <storage.root>/raw/).
Writes: bronze.telematics (partitioned by UTC `date`), bronze.vehicles, bronze.stations,
        bronze.charger_status (by `date`), bronze.charging_sessions (by `date` of start_ts);
        quarantine.<kind> (raw record as JSON + source file + reason codes);
        audit.ingest_runs (one row per dataset and run) and audit.ingest_files (file ledger).

Rows read = rows written to bronze + rows quarantined + duplicates (identical raw rows, or rows
already in bronze). Re-running on the same files writes no new bronze/quarantine version.
A file that cannot be read at all (corrupt archive or Parquet, binary content, a value over
`csv.max_chars_per_column`) is recorded in the ledger as `unreadable` with the reason and
skipped; the dataset's other files still load, and the file is retried only once it changed
(size or mtime) or with `--reprocess`. Logic: common/bronze/plan.py (files, ledger, unreadable files),
common/bronze/load.py (MERGEs, reconciliation, audit rows), common/bronze/ingest.py (transforms).

    python -m jobs.ingest --env local --inputs conf/datasets/twizy.yaml
    spark-submit jobs/ingest.py --env emr
"""

from __future__ import annotations

import logging
import sys
import uuid
from datetime import datetime, timezone
from pathlib import Path

if __package__ in (None, ""):  # spark-submit jobs/ingest.py: make `common` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pyspark.sql import SparkSession

from common.bronze.ingest import AUDIT_TABLE, LEDGER_TABLE, IngestInputError  # noqa: F401 - table names re-exported for callers of jobs.ingest
from common.bronze.load import KILL_AFTER_COMMIT_ENV, load_datasets, summary_text, write_audit  # noqa: F401 - the test hook's variable re-exported
from common.bronze.plan import ingested_files, plan_dataset
from common.core.config import Config, InputsConfig, load_dataset_files  # noqa: F401 - load_dataset_files re-exported for callers of jobs.ingest
from common.io import tables
from common.io.cli import StageReport, bootstrap, job_main
from common.io.landing import default_inputs
from common.io.schemas import KINDS

log = logging.getLogger("ev_fleet.ingest")
# Catalog tables read and written (common/core/catalog.py); the pipeline orders stages by them.
INPUTS: tuple[str, ...] = ("raw.files",)
OUTPUTS: tuple[str, ...] = (
    *(f"bronze.{kind}" for kind in KINDS),
    *(f"quarantine.{kind}" for kind in KINDS),
    AUDIT_TABLE,
    LEDGER_TABLE,
)
# Input groups of which at least one table must exist; otherwise the stage is skipped (common.io.cli).
REQUIRES: tuple[tuple[str, ...], ...] = ()


def add_arguments(parser) -> None:
    parser.add_argument(
        "--reprocess",
        action="store_true",
        help="ignore the file ledger and re-read every file (bronze stays deduplicated)",
    )


def resolve_inputs(cfg: Config) -> tuple[InputsConfig, bool]:
    """Datasets to ingest (conf or `--inputs` files) and whether they are the generator's defaults."""
    if not cfg.inputs.is_empty():
        return cfg.inputs, False
    return default_inputs(cfg), True


def run_ingest(
    spark: SparkSession,
    cfg: Config,
    inputs: InputsConfig,
    now: datetime | None = None,
    run_id: str | None = None,
    reprocess: bool = False,
    generated: bool = False,
) -> StageReport:
    """Plan every dataset (mapping errors stop the run before anything is written), then ingest."""
    now = (now or datetime.now(timezone.utc)).astimezone(timezone.utc)
    run_id = run_id or f"ingest-{now:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:6]}"
    report = StageReport(stage="ingest")
    ledger = ingested_files(spark, cfg) if cfg.ingest.skip_ingested_files and not reprocess else set()

    runs = [plan_dataset(spark, cfg, kind, i, spec, ledger, now, generated) for kind in KINDS for i, spec in enumerate(getattr(inputs, kind))]
    if not runs:
        report.notes.append("no input datasets configured")
    failed = load_datasets(spark, cfg, runs, run_id, now)
    report.notes += [r.message for r in runs if r.message]

    write_audit(spark, cfg, runs, run_id, now)
    if failed is not None:
        print(summary_text(run_id, runs))
        log.error("%s", failed)
        raise failed
    report.rows_in = sum(r.counts.get("read", 0) for r in runs)
    report.rows_out = sum(r.counts.get("bronze", 0) for r in runs)
    report.rows_quarantined = sum(r.counts.get("quarantined", 0) for r in runs)
    for kind, (_s, _r, _k, _t, table) in KINDS.items():
        v = tables.version(spark, cfg, table)
        if v is not None and any(r.kind == kind for r in runs):
            report.tables[table] = v
    print(summary_text(run_id, runs))
    return report.finish()


@job_main
def main(argv: list[str] | None = None) -> StageReport:
    cfg, spark, args = bootstrap("ingest", argv, __doc__, add_arguments)
    try:
        inputs, generated = resolve_inputs(cfg)
        return run_ingest(spark, cfg, inputs, reprocess=args.reprocess, generated=generated)
    except IngestInputError as exc:
        log.error("%s", exc)
        raise SystemExit(f"ingest: {exc}") from None


if __name__ == "__main__":
    main()

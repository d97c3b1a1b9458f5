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
(size or mtime) or with `--reprocess`.

    python -m jobs.ingest --env local --inputs conf/datasets/twizy.yaml
    spark-submit jobs/ingest.py --env emr
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

if __package__ in (None, ""):  # spark-submit jobs/ingest.py: make `common` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from common.bronze.ingest import (
    AUDIT_SCHEMA,
    DUPLICATE,
    IN_TABLE,
    LEDGER_INGESTED,
    LEDGER_SCHEMA,
    LEDGER_UNREADABLE,
    QUARANTINE_KEYS,
    QUARANTINED,
    IngestCounts,
    IngestInputError,
    ReconciliationError,
    SourceFile,
    UnreadableFile,
    bronze_merge_keys,
    bronze_row_counts,
    bronze_rows,
    classify,
    failure_reason,
    list_source_files,
    mapping_key,
    mark_in_table,
    new_rows,
    nulled_value_counts,
    probe_file,
    quarantine_rows,
    read_file_alone,
    read_raw,
    reconcile,
    spec_fingerprint,
    status_counts,
)
from common.core.config import Config, DatasetSpec, InputsConfig, load_dataset_files  # noqa: F401 - load_dataset_files re-exported for callers of jobs.ingest
from common.io import tables
from common.io.cli import StageReport, bootstrap, job_main
from common.io.schemas import KINDS
from common.io.spark import size_shuffles

log = logging.getLogger("ev_fleet.ingest")
# Input groups of which at least one table must exist; otherwise the stage is skipped (common.io.cli).
REQUIRES: tuple[tuple[str, ...], ...] = ()

AUDIT_TABLE = "audit.ingest_runs"
LEDGER_TABLE = "audit.ingest_files"
# Test hook (tests/slow/test_ingest_crash.py, tests/slow/test_run_lease.py): with this variable set
# to quarantine | bronze | audit | ledger, the driver SIGKILLs itself right after that commit (the
# first of its kind), so a test can stop ingest exactly between two commits. Never set in production.
KILL_AFTER_COMMIT_ENV = "EVFA_TEST_KILL_AFTER_COMMIT"


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
    from common.synthetic.generator import default_inputs  # lazy: the generator pulls in simulation code

    return default_inputs(cfg), True


@dataclass
class DatasetRun:
    """One dataset's plan (phase 1) and outcome (phase 2)."""

    kind: str
    where: str
    spec: DatasetSpec
    path: str
    fingerprint: str
    files_seen: list[SourceFile]
    files_new: list[SourceFile]
    base_path: str | None = None
    unreadable: list[UnreadableFile] = field(default_factory=list)
    classified: DataFrame | None = None
    status: str = "ingested"
    message: str = ""
    counts: dict[str, int] = field(default_factory=dict)
    reasons: dict[str, int] = field(default_factory=dict)
    nulled: dict[str, int] = field(default_factory=dict)
    bronze_version: int | None = None

    @property
    def files_readable(self) -> list[SourceFile]:
        """New files not set aside as unreadable."""
        bad = {u.file.path for u in self.unreadable}
        return [f for f in self.files_new if f.path not in bad]


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
    ledger = _ledger(spark, cfg) if cfg.ingest.skip_ingested_files and not reprocess else set()

    runs = [
        _plan(spark, cfg, kind, i, spec, ledger, now, generated)
        for kind in KINDS
        for i, spec in enumerate(getattr(inputs, kind))
    ]
    if not runs:
        report.notes.append("no input datasets configured")
    failed: ReconciliationError | None = None
    for run in runs:
        if run.classified is not None and failed is None:
            try:
                _ingest(spark, cfg, run, run_id, now)
            except ReconciliationError as exc:
                failed = exc  # audit rows are still written below, then the run fails
        elif failed is not None and run.classified is not None:
            run.classified, run.status = None, "not_run"
            run.message = f"{run.kind}/{run.spec.name}: not ingested: an earlier dataset did not reconcile"
        if run.unreadable and run.status != "unreadable":
            run.message = " ".join(
                m for m in (run.message, f"{run.kind}/{run.spec.name}: {len(run.unreadable)} unreadable file(s) set aside (reasons in {LEDGER_TABLE})") if m
            )
        if run.message:
            (log.warning if run.status in ("empty", "no_files", "unreadable") or run.unreadable else log.info)("%s", run.message)
            report.notes.append(run.message)

    _write_audit(spark, cfg, runs, run_id, now)
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


def _plan(spark, cfg, kind, index, spec, ledger, now, generated) -> DatasetRun:
    where = mapping_key(kind, index)
    path = cfg.storage.resolve(spec.path)
    fingerprint = spec_fingerprint(kind, spec, cfg.ingest)
    files = list_source_files(spark, path)
    new = [f for f in files if (spec.name, f.path, f.size, f.modification_time, fingerprint) not in ledger]
    run = DatasetRun(kind, where, spec, path, fingerprint, files, new)
    if not files:
        hint = " (run `python -m jobs.generate` first)" if generated else f" (check {where}.path)"
        run.status, run.message = "no_files", f"{kind}/{spec.name}: no input files match {path}{hint}"
        return run
    if not new:
        run.status = "nothing_new"
        run.message = f"{kind}/{spec.name}: all {len(files)} file(s) already ingested with this mapping; nothing to do (--reprocess to re-read)"
        return run
    # a folder: keep partition columns of layouts like <path>/vehicle_id=.../part-*.parquet
    qualified = _qualified(spark, path)
    run.base_path = path if not _is_glob(path) and all(f.path.rstrip("/") != qualified for f in files) else None
    run.unreadable = [UnreadableFile(f, reason) for f in new if (reason := probe_file(spark, spec, f))]
    _read_classified(spark, cfg, run, now)  # raises on a missing column
    return run


def _read_classified(spark: SparkSession, cfg: Config, run: DatasetRun, now: datetime) -> None:
    """Set `run.classified` from the readable files (lazy, so mapping errors show before any write).

    When the read itself fails (Parquet footers, CSV headers and multi-line CSV schemas are read
    here), every file is read alone to find the unreadable one(s), which are set aside; the read
    is then repeated without them. An error no single file reproduces is raised as it is."""
    kind, spec = run.kind, run.spec
    run.classified = None
    while True:
        readable = run.files_readable
        if not readable:
            run.status = "unreadable"
            run.message = (
                f"{kind}/{spec.name}: all {len(run.files_new)} new file(s) under {run.path} are unreadable (reasons in "
                f"{LEDGER_TABLE}); replace them (a changed file is read again) or rerun with --reprocess"
            )
            return
        try:
            raw = read_raw(spark, spec, readable, base_path=run.base_path)
            if not [c for c in raw.columns if not c.startswith("__")]:
                run.status, run.message = "empty", f"{kind}/{spec.name}: {len(readable)} file(s) under {run.path} contain no columns or rows"
                return
            run.classified = classify(raw, spec, kind, cfg.ingest, now, run.where)
            return
        except IngestInputError:
            raise
        except Exception as exc:  # noqa: BLE001 - re-raised unless a file alone reproduces it
            if not _set_aside_unreadable(spark, run, exc):
                raise


def _set_aside_unreadable(spark: SparkSession, run: DatasetRun, exc: BaseException) -> bool:
    """After the dataset's read failed with `exc`: read each readable file alone and set aside
    those that fail. False when none does (the error is not a file's: the caller re-raises)."""
    log.warning("%s/%s: reading %d file(s) failed (%s); reading each file alone to find the unreadable one(s)",
                run.kind, run.spec.name, len(run.files_readable), failure_reason(exc))  # fmt: skip
    bad = [UnreadableFile(f, reason) for f in run.files_readable if (reason := read_file_alone(spark, run.spec, f, run.base_path))]
    for u in bad:
        log.warning("%s/%s: unreadable file %s: %s", run.kind, run.spec.name, u.file.path, u.reason)
    run.unreadable += bad
    return bool(bad)


def _ingest(spark: SparkSession, cfg: Config, run: DatasetRun, run_id: str, now: datetime) -> None:
    kind, spec = run.kind, run.spec
    _schema, _req, _key, ts_cols, bronze_table = KINDS[kind]
    # The classified rows are cached; a cached shuffle keeps the partitions it starts with, so
    # size them from this dataset's source files (bronze.telematics may not exist yet).
    size_shuffles(spark, cfg, data_bytes=sum(f.size for f in run.files_readable))
    # The first action reads every file: a file unreadable deep inside (a gzip cut short, a value
    # over csv.max_chars_per_column) fails it, is set aside, and the dataset is read again.
    while True:
        classified = run.classified.persist(StorageLevel.MEMORY_AND_DISK)
        try:
            counted = status_counts(classified).collect()  # bounded: one row per (status, reason code)
            break
        except Exception as exc:  # noqa: BLE001 - re-raised unless a file alone reproduces it
            classified.unpersist()
            if not _set_aside_unreadable(spark, run, exc):
                raise
            _read_classified(spark, cfg, run, now)
            if run.classified is None:
                return
    try:
        by_status: dict[str, int] = {}
        for row in counted:
            by_status[row["ingest_status"]] = by_status.get(row["ingest_status"], 0) + row["count"]
            if row["ingest_status"] == QUARANTINED:
                run.reasons[row["reason"]] = row["count"]
        read = sum(by_status.values())
        run.counts = {"read": read, "quarantined": by_status.get(QUARANTINED, 0), "duplicates_raw": by_status.get(DUPLICATE, 0)}
        if read == 0:
            run.status, run.message = "empty", f"{kind}/{spec.name}: {len(run.files_readable)} file(s) under {run.path} contain no rows"
            run.counts.update(bronze=0, duplicates_existing=0)
            return
        run.nulled = {r["column"]: r["count"] for r in nulled_value_counts(classified).collect()}  # bounded: one row per optional column

        quarantine_new = quarantine_inserted = 0
        if run.counts["quarantined"]:
            quarantine = quarantine_rows(classified, kind, run_id, now)
            existing = tables.read_optional(spark, cfg, f"quarantine.{kind}")
            fresh = new_rows(quarantine, existing, QUARANTINE_KEYS).persist(StorageLevel.MEMORY_AND_DISK)
            try:
                quarantine_new = fresh.count()
                if quarantine_new:
                    # MERGE, not a blind append: a concurrent run inserting the same rows then conflicts
                    # (Delta optimistic concurrency) instead of both appending duplicates.
                    result = tables.merge(fresh, cfg, f"quarantine.{kind}", keys=QUARANTINE_KEYS, comment=f"Rows of {kind} inputs that failed ingest validation (jobs/ingest.py)")
                    quarantine_inserted = result.inserted()
                    _after_commit("quarantine")
            finally:
                fresh.unpersist()

        keys = bronze_merge_keys(kind)
        partition_by = [cfg.ingest.partition_column] if ts_cols else None
        bronze = bronze_rows(classified, kind, cfg.ingest.partition_column, run_id, now)
        marked = mark_in_table(bronze, tables.read_optional(spark, cfg, bronze_table), keys).persist(StorageLevel.MEMORY_AND_DISK)
        try:
            # One pass gives the three counts: rows already in bronze, new rows, new distinct records.
            totals = marked.agg(*bronze_row_counts(keys)).first()
            inserted = 0
            if totals["new_records"]:
                fresh = marked.where(~F.col(IN_TABLE)).drop(IN_TABLE).dropDuplicates(keys)
                result = tables.merge(fresh, cfg, bronze_table, keys=keys, partition_by=partition_by, comment=f"Bronze {kind}: canonical columns (UTC), lineage; jobs/ingest.py")
                run.bronze_version = result.commit_version
                inserted = result.inserted()
                _after_commit("bronze")
        finally:
            marked.unpersist()
        counts = IngestCounts(
            read=read,
            quarantined=run.counts["quarantined"],
            duplicates_raw=run.counts["duplicates_raw"],
            existing_in_bronze=totals["existing_in_bronze"],
            new_in_run=totals["new_in_run"],
            new_records=totals["new_records"],
            bronze_inserted=inserted,
            quarantine_new=quarantine_new,
            quarantine_inserted=quarantine_inserted,
        )
        run.counts["bronze"] = counts.bronze_inserted
        run.counts["duplicates_existing"] = counts.duplicates_existing
        problems = reconcile(counts)
        if problems:
            run.status = "reconciliation_failed"
            run.message = f"{kind}/{spec.name}: ingest does not reconcile: " + "; ".join(problems)
            raise ReconciliationError(run.message)
        if not inserted:
            run.status = "nothing_new"
    finally:
        classified.unpersist()


def _after_commit(commit: str) -> None:
    """The test hook: SIGKILL this process after `commit` when KILL_AFTER_COMMIT_ENV names it."""
    if os.environ.get(KILL_AFTER_COMMIT_ENV) == commit:
        log.warning("test hook %s=%s: killing the driver (SIGKILL) after this commit", KILL_AFTER_COMMIT_ENV, commit)
        logging.shutdown()
        os.kill(os.getpid(), signal.SIGKILL)


def _ledger(spark: SparkSession, cfg: Config) -> set[tuple]:
    if not tables.exists(spark, cfg, LEDGER_TABLE):
        return set()
    rows = tables.read(spark, cfg, LEDGER_TABLE).select("source_name", "path", "size", "modification_time", "spec_fingerprint").collect()  # bounded: one row per file ever ingested (file ledger)
    return {tuple(r) for r in rows}


def _write_audit(spark: SparkSession, cfg: Config, runs: list[DatasetRun], run_id: str, now: datetime) -> None:
    audit, ledger = [], []
    for r in runs:
        c = r.counts
        audit.append(
            (
                run_id, now, r.kind, r.spec.name, r.path, r.status, len(r.files_seen), len(r.files_readable) if r.classified is not None else 0,
                len(r.unreadable), c.get("read", 0), c.get("bronze", 0), c.get("quarantined", 0),
                c.get("duplicates_raw", 0) + c.get("duplicates_existing", 0), c.get("duplicates_raw", 0), c.get("duplicates_existing", 0),
                r.reasons, r.nulled, KINDS[r.kind][4], r.bronze_version, r.message or None,
            )
        )
        if r.classified is not None and r.status != "reconciliation_failed":  # a failed dataset's files are read again
            ledger += [(r.spec.name, r.kind, f.path, f.size, f.modification_time, r.fingerprint, run_id, now, LEDGER_INGESTED, None) for f in r.files_readable]
        # Unreadable files are recorded too, so the next run skips them until they change (or --reprocess).
        ledger += [(r.spec.name, r.kind, u.file.path, u.file.size, u.file.modification_time, r.fingerprint, run_id, now, LEDGER_UNREADABLE, u.reason) for u in r.unreadable]
    # mergeSchema: lakehouses written before these tables gained columns (files_unreadable, status, reason).
    if audit:
        tables.write(spark.createDataFrame(audit, AUDIT_SCHEMA), cfg, AUDIT_TABLE, mode="append", merge_schema=True,
                     comment="One row per dataset per ingest run (jobs/ingest.py)")  # fmt: skip
        _after_commit("audit")
    if ledger:
        tables.write(spark.createDataFrame(ledger, LEDGER_SCHEMA), cfg, LEDGER_TABLE, mode="append", merge_schema=True,
                     comment="Files read by ingest (status ingested | unreadable + reason), with size/mtime and mapping fingerprint")  # fmt: skip
        _after_commit("ledger")


def summary_text(run_id: str, runs: list[DatasetRun]) -> str:
    head = f"{'kind':<18} {'dataset':<28} {'read':>9} {'bronze':>9} {'quarant.':>9} {'dupl.':>8}  status"
    lines = [f"ingest run {run_id}", head, "-" * len(head)]
    for r in runs:
        c = r.counts
        dup = c.get("duplicates_raw", 0) + c.get("duplicates_existing", 0)
        lines.append(f"{r.kind:<18} {r.spec.name:<28} {c.get('read', 0):>9} {c.get('bronze', 0):>9} {c.get('quarantined', 0):>9} {dup:>8}  {r.status}")
        if r.reasons:
            lines.append("    quarantine reasons: " + ", ".join(f"{k}={v}" for k, v in sorted(r.reasons.items(), key=lambda kv: -kv[1])))
            swapped = sorted(k for k in r.reasons if k.startswith("day_month_swapped_"))
            if swapped:
                lines.append(
                    f"    FIX: {', '.join(swapped)}: timestamps fit inputs.{r.kind}[{r.spec.name}].timestamp_formats only with day and "
                    "month swapped, so the source writes the other order and rows with day <= 12 were read wrongly; "
                    "correct the pattern and rerun ingest with --reprocess"
                )
        if r.nulled:
            lines.append("    unparseable optional values set to null: " + ", ".join(f"{k}={v}" for k, v in sorted(r.nulled.items())))
        if r.unreadable:
            lines.append(f"    unreadable files: {len(r.unreadable)} set aside (ledger status unreadable; retried when changed or with --reprocess)")
            lines += [f"      {u.file.path}: {u.reason}" for u in r.unreadable]
    return "\n".join(lines)


def _is_glob(path: str) -> bool:
    return any(ch in path for ch in "*?[{")


def _qualified(spark: SparkSession, path: str) -> str:
    jvm = spark.sparkContext._jvm
    hpath = jvm.org.apache.hadoop.fs.Path(path)
    fs = hpath.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())
    return fs.makeQualified(hpath).toString().rstrip("/")


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

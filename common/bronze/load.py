"""Commit planned datasets of the ingest stage: quarantine and bronze MERGEs, reconciliation, audit.

Each `DatasetRun` of `common.bronze.plan` is committed in turn: its quarantined rows MERGEd into
quarantine.<kind>, its new valid rows into bronze.<kind>, and its numbers reconciled against
Delta's own commit metrics (`common.bronze.ingest.reconcile`). After all datasets, one audit row
per dataset (audit.ingest_runs) and one ledger row per file (audit.ingest_files) are appended.
"""

from __future__ import annotations

import logging
import os
import signal
from datetime import datetime

from pyspark import StorageLevel
from pyspark.sql import DataFrame, Row, SparkSession
from pyspark.sql import functions as F

from common.bronze.ingest import (
    AUDIT_SCHEMA,
    AUDIT_TABLE,
    DUPLICATE,
    IN_TABLE,
    LEDGER_INGESTED,
    LEDGER_SCHEMA,
    LEDGER_TABLE,
    LEDGER_UNREADABLE,
    QUARANTINE_KEYS,
    QUARANTINED,
    IngestCounts,
    ReconciliationError,
    batch_partitions,
    bronze_merge_keys,
    bronze_row_counts,
    bronze_rows,
    mark_in_table,
    new_rows,
    nulled_value_counts,
    partition_predicate,
    quarantine_rows,
    reconcile,
    status_counts,
)
from common.bronze.plan import DatasetRun, read_classified, set_aside_unreadable
from common.core.config import Config
from common.io import tables
from common.io.schemas import KINDS
from common.io.spark import size_shuffles

log = logging.getLogger("ev_fleet.ingest")

# Test hook (tests/slow/test_ingest_crash.py, tests/slow/test_run_lease.py): with this variable set
# to quarantine | bronze | audit | ledger, the driver SIGKILLs itself right after that commit (the
# first of its kind), so a test can stop ingest exactly between two commits. Never set in production.
KILL_AFTER_COMMIT_ENV = "EVFA_TEST_KILL_AFTER_COMMIT"


def after_commit(commit: str) -> None:
    """The test hook: SIGKILL this process after `commit` when KILL_AFTER_COMMIT_ENV names it.

    Parameters
    ----------
    commit : str
        The commit just made: quarantine, bronze, audit or ledger.
    """
    if os.environ.get(KILL_AFTER_COMMIT_ENV) == commit:
        log.warning("test hook %s=%s: killing the driver (SIGKILL) after this commit", KILL_AFTER_COMMIT_ENV, commit)
        logging.shutdown()
        os.kill(os.getpid(), signal.SIGKILL)


def load_datasets(spark: SparkSession, cfg: Config, runs: list[DatasetRun], run_id: str, now: datetime) -> ReconciliationError | None:
    """Commit every planned dataset in order; after one that does not reconcile, commit no other.

    Parameters
    ----------
    spark : SparkSession
    cfg : Config
    runs : list of DatasetRun
        The plans of `common.bronze.plan.plan_dataset`; updated in place (status, counts, message).
    run_id : str
        The ingest run's id (lineage column and audit rows).
    now : datetime
        The ingest time (UTC).

    Returns
    -------
    ReconciliationError or None
        The first dataset's reconciliation failure (the caller writes the audit rows, then raises
        it), or None. Every run's message is logged.
    """
    failed: ReconciliationError | None = None
    for run in runs:
        if run.classified is not None and failed is None:
            try:
                load_dataset(spark, cfg, run, run_id, now)
            except ReconciliationError as exc:
                failed = exc  # audit rows are still written, then the run fails
        elif failed is not None and run.classified is not None:
            run.classified, run.status = None, "not_run"
            run.message = f"{run.kind}/{run.spec.name}: not ingested: an earlier dataset did not reconcile"
        if run.unreadable and run.status != "unreadable":
            run.message = " ".join(m for m in (run.message, f"{run.kind}/{run.spec.name}: {len(run.unreadable)} unreadable file(s) set aside (reasons in {LEDGER_TABLE})") if m)
        if run.message:
            (log.warning if run.status in ("empty", "no_files", "unreadable") or run.unreadable else log.info)("%s", run.message)
    return failed


def load_dataset(spark: SparkSession, cfg: Config, run: DatasetRun, run_id: str, now: datetime) -> None:
    """Count one dataset's classified rows, MERGE its quarantined and new valid rows, reconcile.

    Parameters
    ----------
    spark : SparkSession
    cfg : Config
    run : DatasetRun
        A planned dataset with `classified` set; its counts, reasons, nulled values, status and
        bronze version are filled in.
    run_id : str
        The ingest run's id.
    now : datetime
        The ingest time (UTC).

    Raises
    ------
    ReconciliationError
        The numbers do not add up (the message, also `run.message`, names them).
    """
    # The classified rows are cached; a cached shuffle keeps the partitions it starts with, so
    # size them from this dataset's source files (bronze.telematics may not exist yet).
    size_shuffles(spark, cfg, data_bytes=sum(f.size for f in run.files_readable))
    classified, counted = _classify_and_count(spark, cfg, run, now)
    if classified is None:
        return
    try:
        read = _record_status_counts(run, counted)
        if read == 0:
            run.status, run.message = "empty", f"{run.kind}/{run.spec.name}: {len(run.files_readable)} file(s) under {run.path} contain no rows"
            run.counts.update(bronze=0, duplicates_existing=0)
            return
        run.nulled = {r["column"]: r["count"] for r in nulled_value_counts(classified).collect()}  # bounded: one row per optional column
        quarantine_new, quarantine_inserted = _merge_quarantine(cfg, classified, run, run_id, now)
        totals, inserted = _merge_bronze(cfg, classified, run, run_id, now)
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
            run.message = f"{run.kind}/{run.spec.name}: ingest does not reconcile: " + "; ".join(problems)
            raise ReconciliationError(run.message)
        if not inserted:
            run.status = "nothing_new"
    finally:
        classified.unpersist()


def _classify_and_count(spark: SparkSession, cfg: Config, run: DatasetRun, now: datetime) -> tuple[DataFrame | None, list[Row]]:
    """The cached classified rows and their counts per (status, reason); (None, []) when every file
    turned out unreadable. The first action reads every file: a file unreadable deep inside (a gzip
    cut short, a value over csv.max_chars_per_column) fails it, is set aside, and the dataset is
    read again."""
    if run.classified is None:  # load_datasets only loads a run with classified rows
        raise ValueError(f"{run.kind}/{run.spec.name}: no classified rows to count (run.classified is None)")
    while True:
        classified = run.classified.persist(StorageLevel.MEMORY_AND_DISK)
        try:
            return classified, status_counts(classified).collect()  # bounded: one row per (status, reason code)
        except Exception as exc:  # noqa: BLE001 - re-raised unless a file alone reproduces it
            classified.unpersist()
            if not set_aside_unreadable(spark, run, exc):
                raise
            read_classified(spark, cfg, run, now)
            if run.classified is None:
                return None, []


def _record_status_counts(run: DatasetRun, counted: list[Row]) -> int:
    """Set run.counts (read, quarantined, duplicates_raw) and run.reasons; the rows read."""
    by_status: dict[str, int] = {}
    for row in counted:
        by_status[row["ingest_status"]] = by_status.get(row["ingest_status"], 0) + row["count"]
        if row["ingest_status"] == QUARANTINED:
            run.reasons[row["reason"]] = row["count"]
    read = sum(by_status.values())
    run.counts = {"read": read, "quarantined": by_status.get(QUARANTINED, 0), "duplicates_raw": by_status.get(DUPLICATE, 0)}
    return read


def _merge_quarantine(cfg: Config, classified: DataFrame, run: DatasetRun, run_id: str, now: datetime) -> tuple[int, int]:
    """MERGE the quarantined rows not in quarantine.<kind> yet: (rows given, rows Delta inserted)."""
    if not run.counts["quarantined"]:
        return 0, 0
    kind, spark = run.kind, classified.sparkSession
    quarantine = quarantine_rows(classified, kind, run_id, now)
    existing = tables.read_optional(spark, cfg, f"quarantine.{kind}")
    fresh = new_rows(quarantine, existing, QUARANTINE_KEYS).persist(StorageLevel.MEMORY_AND_DISK)
    try:
        given = fresh.count()
        if not given:
            return 0, 0
        # MERGE, not a blind append: a concurrent run inserting the same rows then conflicts
        # (Delta optimistic concurrency) instead of both appending duplicates.
        result = tables.merge(fresh, cfg, f"quarantine.{kind}", keys=QUARANTINE_KEYS, comment=f"Rows of {kind} inputs that failed ingest validation (jobs/ingest.py)")
        inserted = result.inserted()
        after_commit("quarantine")
        return given, inserted
    finally:
        fresh.unpersist()


def _merge_bronze(cfg: Config, classified: DataFrame, run: DatasetRun, run_id: str, now: datetime) -> tuple[Row, int]:
    """MERGE the valid rows not in bronze.<kind> yet (sets run.bronze_version): the reconciliation
    totals (existing_in_bronze, new_in_run, new_records) and the rows Delta inserted."""
    kind, spark = run.kind, classified.sparkSession
    _schema, _req, _key, ts_cols, bronze_table = KINDS[kind]
    keys = bronze_merge_keys(kind)
    partition_by = [cfg.ingest.partition_column] if ts_cols else None
    bronze = bronze_rows(classified, kind, cfg.ingest.partition_column, run_id, now)
    existing = tables.read_optional(spark, cfg, bronze_table)
    # The batch's own partitions bound both bronze scans (the key lookup and the MERGE): a daily
    # ingest reads its days of bronze, not the whole history.
    in_batch = None
    if partition_by and existing is not None:
        days = batch_partitions(bronze, partition_by[0])
        existing = existing.where(partition_predicate(partition_by[0], days))
        in_batch = partition_predicate(partition_by[0], days, alias="t")
    marked = mark_in_table(bronze, existing, keys).persist(StorageLevel.MEMORY_AND_DISK)
    try:
        # One pass gives the three counts: rows already in bronze, new rows, new distinct records.
        totals = tables.first_row(marked.agg(*bronze_row_counts(keys)))
        inserted = 0
        if totals["new_records"]:
            fresh = marked.where(~F.col(IN_TABLE)).drop(IN_TABLE).dropDuplicates(keys)
            result = tables.merge(fresh, cfg, bronze_table, keys=keys, partition_by=partition_by, comment=f"Bronze {kind}: canonical columns (UTC), lineage; jobs/ingest.py", target_filter=in_batch)
            run.bronze_version = result.commit_version
            inserted = result.inserted()
            after_commit("bronze")
        return totals, inserted
    finally:
        marked.unpersist()


def write_audit(spark: SparkSession, cfg: Config, runs: list[DatasetRun], run_id: str, now: datetime) -> None:
    """Append one audit.ingest_runs row per dataset and one audit.ingest_files row per file.

    Parameters
    ----------
    spark : SparkSession
    cfg : Config
    runs : list of DatasetRun
        Planned and (possibly) committed datasets.
    run_id : str
        The ingest run's id.
    now : datetime
        The ingest time (UTC): `started_at` / `ingested_at` of the rows.

    Notes
    -----
    A dataset that failed reconciliation records no ingested file (its files are read again next
    time); unreadable files are recorded, so the next run skips them until they change (size or
    modification time) or with --reprocess.
    """
    audit: list[tuple] = []
    ledger: list[tuple[str, str, str, int, int, str, str, datetime, str, str | None]] = []  # the reason is None for an ingested file
    for r in runs:
        c = r.counts
        audit.append(
            (
                run_id, now, r.kind, r.spec.name, r.path, r.status, len(r.files_seen), len(r.files_readable) if r.classified is not None else 0,
                len(r.unreadable), c.get("read", 0), c.get("bronze", 0), c.get("quarantined", 0),
                c.get("duplicates_raw", 0) + c.get("duplicates_existing", 0), c.get("duplicates_raw", 0), c.get("duplicates_existing", 0),
                r.reasons, r.nulled, KINDS[r.kind][4], r.bronze_version, r.message or None,
            )
        )  # fmt: skip
        if r.classified is not None and r.status != "reconciliation_failed":
            ledger += [(r.spec.name, r.kind, f.path, f.size, f.modification_time, r.fingerprint, run_id, now, LEDGER_INGESTED, None) for f in r.files_readable]
        ledger += [(r.spec.name, r.kind, u.file.path, u.file.size, u.file.modification_time, r.fingerprint, run_id, now, LEDGER_UNREADABLE, u.reason) for u in r.unreadable]
    # mergeSchema: tables written before they gained columns (files_unreadable, status, reason).
    if audit:
        tables.write(spark.createDataFrame(audit, AUDIT_SCHEMA), cfg, AUDIT_TABLE, mode="append", merge_schema=True,
                     comment="One row per dataset per ingest run (jobs/ingest.py)")  # fmt: skip
        after_commit("audit")
    if ledger:
        tables.write(spark.createDataFrame(ledger, LEDGER_SCHEMA), cfg, LEDGER_TABLE, mode="append", merge_schema=True,
                     comment="Files read by ingest (status ingested | unreadable + reason), with size/mtime and mapping fingerprint")  # fmt: skip
        after_commit("ledger")


def summary_text(run_id: str, runs: list[DatasetRun]) -> str:
    """The table ingest prints: rows read, written to bronze, quarantined and duplicate per dataset.

    With quarantine reasons, nulled values, unreadable files and the fix for swapped day/month.

    Parameters
    ----------
    run_id : str
        The ingest run's id (first line).
    runs : list of DatasetRun
        Committed (or skipped) datasets.

    Returns
    -------
    str
        Multi-line text.
    """
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

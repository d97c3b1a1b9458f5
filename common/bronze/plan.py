"""Plan one dataset of the ingest stage: its files, the ones already ingested, the unreadable ones.

A `DatasetRun` is built for every configured dataset before anything is written (`plan_dataset`),
so a mapping error stops the run with no commit; `common.bronze.load` then commits it. Reads the
file ledger (audit.ingest_files) and the raw files; writes nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from pyspark.sql import DataFrame, SparkSession

from common.bronze.ingest import (
    LEDGER_TABLE,
    IngestInputError,
    SourceFile,
    UnreadableFile,
    classify,
    failure_reason,
    list_source_files,
    mapping_key,
    probe_file,
    read_file_alone,
    read_raw,
    spec_fingerprint,
)
from common.core.config import Config, DatasetSpec
from common.io import tables
from common.io.spark import jvm_of

log = logging.getLogger("ev_fleet.ingest")


@dataclass
class DatasetRun:
    """One dataset's plan (phase 1) and outcome (phase 2).

    Attributes
    ----------
    kind : str
        Canonical kind.
    where : str
        The dataset's conf key, inputs.<kind>[<index>].
    spec : DatasetSpec
    path : str
        The dataset's resolved path (file, folder or glob).
    fingerprint : str
        `spec_fingerprint` of the mapping and rules.
    files_seen : list of SourceFile
        Every file matching `path`.
    files_new : list of SourceFile
        Those not in the file ledger with this fingerprint.
    base_path : str or None
        Spark's ``basePath`` when `path` is a folder.
    unreadable : list of UnreadableFile
        New files set aside.
    classified : DataFrame or None
        `classify` output of the readable new files (lazy); None when there is nothing to load.
    status : str
        ingested | nothing_new | empty | no_files | unreadable | reconciliation_failed | not_run.
    message : str
        What happened, logged and written to the audit row.
    counts : dict of str to int
        read, quarantined, duplicates_raw, bronze, duplicates_existing (rows).
    reasons : dict of str to int
        Quarantine reason code -> rows.
    nulled : dict of str to int
        Optional column -> rows whose unparseable value became null.
    bronze_version : int or None
        Version of the bronze MERGE commit; None when none was made.
    """

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
        """New files not set aside as unreadable.

        Returns
        -------
        list of SourceFile
        """
        bad = {u.file.path for u in self.unreadable}
        return [f for f in self.files_new if f.path not in bad]


def ingested_files(spark: SparkSession, cfg: Config) -> set[tuple]:
    """Files the ledger records, as (source_name, path, size, modification_time, spec_fingerprint).

    Parameters
    ----------
    spark : SparkSession
    cfg : Config
        Locates the ledger table (audit.ingest_files).

    Returns
    -------
    set of tuple
        One key per file ever recorded (size in bytes, modification time in ms since the epoch);
        empty when the ledger does not exist yet.
    """
    if not tables.exists(spark, cfg, LEDGER_TABLE):
        return set()
    rows = tables.read(spark, cfg, LEDGER_TABLE).select("source_name", "path", "size", "modification_time", "spec_fingerprint").collect()  # bounded: one row per file ever ingested (file ledger)
    return {tuple(r) for r in rows}


def plan_dataset(
    spark: SparkSession,
    cfg: Config,
    kind: str,
    index: int,
    spec: DatasetSpec,
    ledger: set[tuple],
    now: datetime,
    generated: bool,
) -> DatasetRun:
    """List a dataset's files, skip those in the ledger, set aside unreadable ones and classify the rest.

    Parameters
    ----------
    spark : SparkSession
    cfg : Config
        Storage root (relative paths) and the `ingest` rules.
    kind : str
        Canonical kind (a key of `common.io.schemas.KINDS`).
    index : int
        Position of the dataset in `inputs.<kind>` (named in error messages).
    spec : DatasetSpec
        The dataset's mapping.
    ledger : set of tuple
        `ingested_files` (empty to re-read every file).
    now : datetime
        The ingest time (UTC), reference of the future-timestamp rule.
    generated : bool
        Whether the dataset is the generator's default (the hint for missing files says so).

    Returns
    -------
    DatasetRun
        With `classified` set (lazy) when there are readable new files, else a status
        (no_files, nothing_new, empty, unreadable) and its message.

    Raises
    ------
    IngestInputError
        The mapping does not fit the data (a missing column, an expression that does not resolve).
    """
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
    read_classified(spark, cfg, run, now)  # raises on a missing column
    return run


def read_classified(spark: SparkSession, cfg: Config, run: DatasetRun, now: datetime) -> None:
    """Set `run.classified` from the readable files (lazy, so mapping errors show before any write).

    When the read itself fails (Parquet footers, CSV headers and multi-line CSV schemas are read
    here), every file is read alone to find the unreadable one(s), which are set aside; the read
    is then repeated without them. An error no single file reproduces is raised as it is.

    Parameters
    ----------
    spark : SparkSession
    cfg : Config
        The `ingest` rules.
    run : DatasetRun
        Changed in place: `classified`, or `status` and `message` (unreadable, empty), and `unreadable`.
    now : datetime.datetime
        The ingest time (UTC).

    Raises
    ------
    IngestInputError
        The mapping does not fit the data.
    """
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
            if not set_aside_unreadable(spark, run, exc):
                raise


def set_aside_unreadable(spark: SparkSession, run: DatasetRun, exc: BaseException) -> bool:
    """After the dataset's read failed with `exc`: read each readable file alone and set aside those that fail.

    Parameters
    ----------
    spark : SparkSession
    run : DatasetRun
        Its `unreadable` list grows by the files that fail.
    exc : BaseException
        The dataset read's error (logged).

    Returns
    -------
    bool
        False when no file fails alone (the error is not a file's: the caller re-raises).
    """
    log.warning("%s/%s: reading %d file(s) failed (%s); reading each file alone to find the unreadable one(s)",
                run.kind, run.spec.name, len(run.files_readable), failure_reason(exc))  # fmt: skip
    bad = [UnreadableFile(f, reason) for f in run.files_readable if (reason := read_file_alone(spark, run.spec, f, run.base_path))]
    for u in bad:
        log.warning("%s/%s: unreadable file %s: %s", run.kind, run.spec.name, u.file.path, u.reason)
    run.unreadable += bad
    return bool(bad)


def _is_glob(path: str) -> bool:
    return any(ch in path for ch in "*?[{")


def _qualified(spark: SparkSession, path: str) -> str:
    jvm = jvm_of(spark)
    hpath = jvm.org.apache.hadoop.fs.Path(path)
    fs = hpath.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())
    return fs.makeQualified(hpath).toString().rstrip("/")

"""All Delta IO in one place: table locations come from config, never from literals in jobs.

Tables are path-based Delta tables named '<layer>.<name>' (see StorageConfig.path). Writes
are atomic Delta commits: a killed job leaves the previous version readable.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from delta.tables import DeltaTable
from pyspark.errors import AnalysisException
from pyspark.sql import DataFrame, Row, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StructType

from common.core.catalog import TABLES
from common.core.config import POSITION_TRACES, Config
from common.io.spark import jvm_of

log = logging.getLogger(__name__)


class TableNotFound(RuntimeError):
    """A job's input table does not exist yet: the message names the stage that writes it."""


def first_row(df: DataFrame) -> Row:
    """`df.first()` where the result always has a row.

    For a global aggregate (`df.agg(...)`, `groupBy().sum(...)`), a Delta table's `detail()` or
    `history(1)`. pyspark types first() as `Row | None`; an empty result here is a bug, so it
    raises instead of returning None.

    Parameters
    ----------
    df : DataFrame

    Returns
    -------
    Row

    Raises
    ------
    RuntimeError
        The result is empty.
    """
    row = df.first()
    if row is None:
        raise RuntimeError(f"expected one row, the query returned none (columns {df.columns})")
    return row


@dataclass(frozen=True)
class WriteResult:
    """What a `write` or `merge` did.

    Attributes
    ----------
    table : str
        Catalog name.
    path : str
        The table's location.
    version : int
        The table's version after the write (a property commit may follow the data commit); -1
        when it could not be read.
    rows : int or None
        Rows written; `write` and `merge` leave it None.
    commit_version : int or None
        The write's own data commit, found in the table history by its user-metadata tag; None when
        not looked up or Delta made no commit.
    operation : str or None
        That commit's operation (WRITE, MERGE, ...).
    metrics : dict of str to str
        That commit's operation metrics (values are strings, as Delta logs them).
    """

    table: str
    path: str
    version: int
    rows: int | None = None
    commit_version: int | None = None
    operation: str | None = None
    metrics: dict[str, str] = field(default_factory=dict)

    def inserted(self) -> int:
        """Rows the write's commit added (Delta's metric).

        Needs a result of `merge`, or of `write(..., commit_metrics=True)`.

        Returns
        -------
        int
            0 when it made no commit (Delta skips empty commits, e.g. a MERGE that found every
            row already there).
        """
        return 0 if self.commit_version is None else rows_inserted(self.operation, self.metrics)


# Commits searched (newest first) for a write's tagged commit: its own, a table-property commit
# after it, and any commits of concurrent writers in between.
HISTORY_SEARCH = 25
# Delta records this session setting in the commitInfo of a MERGE (writes take a writer option).
_USER_METADATA_CONF = "spark.databricks.delta.commitInfo.userMetadata"
# The setting is per session, not per thread: SQL commits (MERGE, CREATE TABLE AS SELECT) of one
# process take turns so a commit never carries another thread's tag.
_SQL_TAG_LOCK = threading.Lock()
# Operation metric holding the rows a commit added, per Delta operation.
_INSERTED_METRIC = {
    "MERGE": "numTargetRowsInserted",
    "WRITE": "numOutputRows",  # append / overwrite, also idempotent appends (txnAppId/txnVersion)
    "CREATE TABLE AS SELECT": "numOutputRows",
    "REPLACE TABLE AS SELECT": "numOutputRows",
    "CREATE OR REPLACE TABLE AS SELECT": "numOutputRows",
}


class CommitNotFound(RuntimeError):
    """A write's tag does not identify exactly one commit in the table's recent history."""


def rows_inserted(operation: str | None, metrics: dict[str, str]) -> int:
    """Rows a Delta commit added, from its own operation metrics.

    Parameters
    ----------
    operation : str
        The commit's `operation` (history): MERGE, WRITE, CREATE TABLE AS SELECT, ...
    metrics : dict
        Its `operationMetrics` (numTargetRowsInserted for MERGE, numOutputRows for writes).

    Returns
    -------
    int

    Raises
    ------
    ValueError
        For an operation without an inserted-rows metric, or a commit that lacks it.
    """
    key = _INSERTED_METRIC.get(operation or "")
    if key is None or key not in metrics:
        raise ValueError(f"Delta commit {operation!r} has no inserted-rows metric ({key or 'unknown operation'}); metrics: {metrics}")
    return int(metrics[key])


def commit_tag(table: str) -> str:
    """A unique user-metadata tag for one write of `table` (identifies its commit in the history).

    Parameters
    ----------
    table : str
        Catalog name.

    Returns
    -------
    str
        ``evfa:<table>:<uuid4 hex>``.
    """
    return f"evfa:{table}:{uuid.uuid4().hex}"


def tagged_commit(spark: SparkSession, path: str, tag: str) -> tuple[int | None, str | None, dict[str, str]]:
    """The commit whose userMetadata is `tag`, among the last HISTORY_SEARCH commits.

    Parameters
    ----------
    spark : SparkSession
    path : str
        The Delta table's location.
    tag : str
        From `commit_tag`.

    Returns
    -------
    tuple
        (version, operation, operationMetrics); (None, None, {}) when there is none (Delta made no
        commit).

    Raises
    ------
    CommitNotFound
        The tag appears more than once (it is unique per write).
    """
    found = (
        DeltaTable.forPath(spark, path)
        .history(HISTORY_SEARCH)
        .where(F.col("userMetadata") == tag)
        .select("version", "operation", "operationMetrics")
        .collect()  # bounded: at most HISTORY_SEARCH commits
    )
    if not found:
        return None, None, {}
    if len(found) > 1:
        raise CommitNotFound(f"{path}: {len(found)} commits tagged {tag!r} among the last {HISTORY_SEARCH}")
    row = found[0]
    return int(row["version"]), row["operation"], dict(row["operationMetrics"] or {})


@contextmanager
def job_description(spark: SparkSession, text: str) -> Iterator[None]:
    """Name the Spark jobs started inside (Spark UI, event log, bench/profile_stage.py).

    A Delta write's jobs otherwise show only `save at NativeMethodAccessorImpl.java:0`.

    Parameters
    ----------
    spark : SparkSession
    text : str
        The job description.

    Yields
    ------
    None
        The previous description is restored on exit.
    """
    sc = spark.sparkContext
    previous = sc.getLocalProperty("spark.job.description")
    sc.setJobDescription(text)
    try:
        yield
    finally:
        sc.setLocalProperty("spark.job.description", previous)  # type: ignore[arg-type]  # None clears it (the JVM's setLocalProperty); pyspark's stub says str


# Names of the exceptions Delta raises when a concurrent commit won (optimistic concurrency), also
# for two writers creating the same table (ProtocolChanged / FileAlreadyExists on version 0).
_CONFLICTS = ("Concurrent", "ProtocolChanged", "MetadataChanged", "FileAlreadyExists", "concurrent update")


def is_commit_conflict(exc: BaseException) -> bool:
    """Whether `exc` says another writer committed first (retrying after a re-read is safe).

    Parameters
    ----------
    exc : BaseException

    Returns
    -------
    bool
    """
    text = f"{type(exc).__name__}: {exc}"
    return any(k in text for k in _CONFLICTS)


_recording = threading.local()


@contextmanager
def recording() -> Iterator[dict[str, set[str]]]:
    """Record the tables read and written inside the block (this thread).

    The pipeline checks them against each job's declared INPUTS/OUTPUTS.

    Yields
    ------
    dict of str to set of str
        ``{"read": {...}, "written": {...}}``, catalog names, filled as the block runs.
    """
    acc: dict[str, set[str]] = {"read": set(), "written": set()}
    previous = getattr(_recording, "acc", None)
    _recording.acc = acc
    try:
        yield acc
    finally:
        _recording.acc = previous


def _record(kind: str, table: str) -> None:
    acc = getattr(_recording, "acc", None)
    if acc is not None:
        acc[kind].add(table)


def exists(spark: SparkSession, cfg: Config, table: str) -> bool:
    """Whether the table is a Delta table at its configured location.

    Parameters
    ----------
    spark : SparkSession
    cfg : Config
    table : str
        Catalog name.

    Returns
    -------
    bool
    """
    return DeltaTable.isDeltaTable(spark, cfg.storage.path(table))


def read(spark: SparkSession, cfg: Config, table: str, version: int | None = None) -> DataFrame:
    """The table (recorded as read by `recording`).

    Parameters
    ----------
    spark : SparkSession
    cfg : Config
    table : str
        Catalog name.
    version : int, optional
        Delta version to read (time travel); default the latest.

    Returns
    -------
    DataFrame

    Raises
    ------
    TableNotFound
        The table does not exist: run the stage that writes it first.
    """
    path = cfg.storage.path(table)
    if not DeltaTable.isDeltaTable(spark, path):
        raise TableNotFound(f"table {table} not found at {path}: run the stage that writes it first")
    _record("read", table)
    reader = spark.read.format("delta")
    if version is not None:
        reader = reader.option("versionAsOf", version)
    return reader.load(path)


def read_optional(spark: SparkSession, cfg: Config, table: str) -> DataFrame | None:
    """The table, or None when it does not exist (an optional input of a job).

    Parameters
    ----------
    spark : SparkSession
    cfg : Config
    table : str
        Catalog name.

    Returns
    -------
    DataFrame or None
    """
    return read(spark, cfg, table) if exists(spark, cfg, table) else None


def read_or_empty(spark: SparkSession, cfg: Config, table: str, schema: StructType, notes: list[str] | None = None, why: str = "") -> DataFrame:
    """The table, or an empty frame of ``schema`` when it does not exist.

    For an optional input whose absence the stage can work around; the absence is never silent.

    Parameters
    ----------
    spark : SparkSession
    cfg : Config
    table : str
        Catalog name.
    schema : StructType
        Schema of the empty frame.
    notes : list of str, optional
        A StageReport's notes; ``<table> missing: <why>`` is appended when the table is absent.
    why : str
        What the stage does without the table.

    Returns
    -------
    DataFrame
    """
    if exists(spark, cfg, table):
        return read(spark, cfg, table)
    if notes is not None:
        notes.append(f"{table} missing" + (f": {why}" if why else ""))
    return spark.createDataFrame([], schema)


def size_bytes(spark: SparkSession, cfg: Config, table: str) -> int | None:
    """Bytes of the table's current files (Delta log, no data read); None when it does not exist.

    From the version's checksum file (`<version>.crc`, which Delta writes with every commit) when
    there is one: `detail()` rebuilds the table state in Spark jobs first, 7-9 s in a job's fresh
    JVM, paid by every job at start (`size_shuffles`; docs/BENCHMARKS.md, "A job's fixed cost").

    Parameters
    ----------
    spark : SparkSession
    cfg : Config
    table : str
        Catalog name.

    Returns
    -------
    int or None
    """
    path = cfg.storage.path(table)
    if not DeltaTable.isDeltaTable(spark, path):
        return None
    checksum = _latest_snapshot(spark, path).checksumOpt()
    if checksum.isDefined():
        return int(checksum.get().tableSizeBytes())
    return int(first_row(DeltaTable.forPath(spark, path).detail().select("sizeInBytes"))[0])


def version(spark: SparkSession, cfg: Config, table: str) -> int | None:
    """The table's latest Delta version; None when it does not exist.

    Parameters
    ----------
    spark : SparkSession
    cfg : Config
    table : str
        Catalog name.

    Returns
    -------
    int or None
    """
    path = cfg.storage.path(table)
    if not DeltaTable.isDeltaTable(spark, path):
        return None
    v = int(_latest_snapshot(spark, path).version())
    return v if v >= 0 else None  # -1: a folder inside another table (isDeltaTable looks upwards)


def properties(spark: SparkSession, cfg: Config, table: str) -> dict[str, str] | None:
    """The table's properties (TBLPROPERTIES, constraints included) and its comment under
    ``comment``, from the Delta log; None when the table does not exist.

    Parameters
    ----------
    spark : SparkSession
    cfg : Config
    table : str
        Catalog name.

    Returns
    -------
    dict of str to str or None
    """
    path = cfg.storage.path(table)
    if not DeltaTable.isDeltaTable(spark, path):
        return None
    snapshot = _latest_snapshot(spark, path)
    return _metadata(spark, snapshot) if snapshot.version() >= 0 else None


def _latest_snapshot(spark: SparkSession, path: str) -> Any:
    """The table's latest snapshot (JVM `DeltaLog.update`: lists the log for newer commits).

    Version, comment and properties are fields of the log's metadata. `DeltaTable.detail()` and
    `history(1)` build them through a Spark job each (0.8 s and 0.2 s on a one-file table, measured
    in docs/BENCHMARKS.md), paid after every write; the log already holds them (a few ms). Delta's
    Python API has no accessor for them, hence the JVM call (Delta is pinned: common/core/versions.py).
    """
    jvm = jvm_of(spark)
    none = jvm.scala.Option.empty()
    return jvm.org.apache.spark.sql.delta.DeltaLog.forTable(spark._jsparkSession, path).update(False, none, none)


def _metadata(spark: SparkSession, snapshot: Any) -> dict[str, str]:
    metadata = snapshot.metadata()
    current = dict(jvm_of(spark).scala.collection.JavaConverters.mapAsJavaMap(metadata.configuration()))
    # Delta keeps a 'comment' property as the table description, not in `configuration`.
    if metadata.description() is not None:
        current["comment"] = metadata.description()
    return current


def write(
    df: DataFrame,
    cfg: Config,
    table: str,
    mode: str = "overwrite",
    partition_by: list[str] | None = None,
    replace_where: str | None = None,
    comment: str | None = None,
    properties: dict[str, str] | None = None,
    merge_schema: bool = False,
    commit_metrics: bool = False,
) -> WriteResult:
    """Write a DataFrame as a Delta table (overwrite / append / replaceWhere of partitions).

    Parameters
    ----------
    df : DataFrame
    cfg : Config
    table : str
        Catalog name.
    mode : str
        ``overwrite`` (the schema too, unless `replace_where`) or ``append``.
    partition_by : list of str, optional
        Partition columns.
    replace_where : str, optional
        Delta ``replaceWhere`` predicate: an overwrite replaces only the matching rows.
    comment : str, optional
        Table comment; default the catalog's description.
    properties : dict of str to str, optional
        Table properties to set.
    merge_schema : bool
        Let an append add columns to an existing table (schema evolution of audit tables whose
        layout grew; old rows read the new columns as null).
    commit_metrics : bool
        Look the write's own commit up in the history (operation metrics for a reconciliation);
        every commit is tagged, the lookup costs one more history read so it is done only when asked.

    Returns
    -------
    WriteResult
    """
    spark = df.sparkSession
    path = cfg.storage.path(table)
    declared = TABLES.get(table)
    if declared is not None and comment is None:  # the catalog says what a row of the table is
        comment = declared.description
    _record("written", table)
    tag = commit_tag(table)
    writer = df.write.format("delta").mode(mode).option("userMetadata", tag)
    if merge_schema:
        writer = writer.option("mergeSchema", "true")
    if partition_by:
        writer = writer.partitionBy(*partition_by)
    if replace_where:
        writer = writer.option("replaceWhere", replace_where)
    elif mode == "overwrite":
        writer = writer.option("overwriteSchema", "true")
    created = not DeltaTable.isDeltaTable(spark, path) and _create_as_select(df, path, tag, partition_by, comment, properties)
    if not created:
        with job_description(spark, f"write {table}"):
            writer.save(path)
    commit_version, operation, metrics = tagged_commit(spark, path, tag) if commit_metrics else (None, None, {})
    if not created:
        set_properties(spark, cfg, table, comment=comment, properties=properties)
    v = commit_version if created and commit_version is not None else version(spark, cfg, table)
    log.info("wrote %s (%s) version %s", table, path, v)
    return WriteResult(table=table, path=path, version=v if v is not None else -1, commit_version=commit_version, operation=operation, metrics=metrics)


@contextmanager
def _sql_commit_tagged(spark: SparkSession, tag: str, description: str) -> Iterator[None]:
    """The Delta commit made inside carries `tag` as userMetadata (SQL and MERGE take no writer option)."""
    with _SQL_TAG_LOCK, job_description(spark, description):
        spark.conf.set(_USER_METADATA_CONF, tag)
        try:
            yield
        finally:
            spark.conf.unset(_USER_METADATA_CONF)


def _create_as_select(
    df: DataFrame,
    path: str,
    tag: str,
    partition_by: list[str] | None,
    comment: str | None,
    properties: dict[str, str] | None,
) -> bool:
    """Create the table at `path` with its rows, comment and properties in one commit.

    A DataFrameWriter cannot set a table comment, so creating through it and then ALTER TABLE made
    two commits (and two Delta versions) per new table. Returns False, having written nothing, when
    another writer created the table first (the caller then writes through the DataFrameWriter).
    """
    spark = df.sparkSession
    view = f"_evfa_create_{uuid.uuid4().hex}"
    clauses = ["USING delta"]
    if partition_by:
        clauses.append("PARTITIONED BY (" + ", ".join(f"`{c}`" for c in partition_by) + ")")
    if comment:
        clauses.append(f"COMMENT '{sql_str(comment)}'")
    if properties:
        clauses.append("TBLPROPERTIES (" + ", ".join(f"'{k}' = '{sql_str(v)}'" for k, v in properties.items()) + ")")
    df.createOrReplaceTempView(view)
    try:
        with _sql_commit_tagged(spark, tag, f"create {path}"):
            spark.sql(f"CREATE TABLE delta.`{path}` {' '.join(clauses)} AS SELECT * FROM `{view}`")
    except AnalysisException as exc:
        if exc.getErrorClass() not in _LOCATION_TAKEN:
            raise
        return False
    finally:
        spark.catalog.dropTempView(view)
    return True


# Errors of a CREATE TABLE whose location another writer filled first (a table, or files that are
# not one yet): the DataFrameWriter then writes as it would have without the SQL path.
_LOCATION_TAKEN = frozenset({"TABLE_OR_VIEW_ALREADY_EXISTS", "DELTA_TABLE_ALREADY_EXISTS", "DELTA_CREATE_TABLE_WITH_NON_EMPTY_LOCATION", "DELTA_PATH_EXISTS"})


def set_properties(
    spark: SparkSession,
    cfg: Config,
    table: str,
    comment: str | None = None,
    properties: dict[str, str] | None = None,
) -> None:
    """Table comment and properties; skipped when unchanged so reruns add no Delta versions.

    Parameters
    ----------
    spark : SparkSession
    cfg : Config
    table : str
        Catalog name of an existing table.
    comment : str, optional
        The table description.
    properties : dict of str to str, optional
        Table properties (TBLPROPERTIES).
    """
    props = dict(properties or {})
    if comment:
        props["comment"] = comment
    if not props:
        return
    path = cfg.storage.path(table)
    current = _metadata(spark, _latest_snapshot(spark, path))
    changed = {k: v for k, v in props.items() if current.get(k) != v}
    if not changed:
        return
    assignments = ", ".join(f"'{k}' = '{sql_str(v)}'" for k, v in changed.items())
    spark.sql(f"ALTER TABLE delta.`{path}` SET TBLPROPERTIES ({assignments})")


def merge(
    df: DataFrame,
    cfg: Config,
    table: str,
    keys: list[str],
    partition_by: list[str] | None = None,
    comment: str | None = None,
    update: bool = False,
    target_filter: str | None = None,
) -> WriteResult:
    """Insert rows whose natural key is new (and optionally update existing ones): idempotent.

    The result carries the MERGE commit's operation metrics (`rows_inserted`); when the table does
    not exist yet it is created by `write` instead (one CREATE TABLE AS SELECT commit).

    Parameters
    ----------
    df : DataFrame
        Rows with the `keys` columns and the table's schema.
    cfg : Config
    table : str
        Catalog name.
    keys : list of str
        Natural key; compared null-safe (``<=>``).
    partition_by : list of str, optional
        Partition columns, used only when the table is created.
    comment : str, optional
        Table comment; default the catalog's description when the table is created.
    update : bool
        Also update rows whose key exists.
    target_filter : str, optional
        SQL predicate on the target (alias ``t``) that every matching row satisfies, e.g. its
        partitions; added to the condition so Delta reads only those files.

    Returns
    -------
    WriteResult
        With the commit's version, operation and metrics.
    """
    spark = df.sparkSession
    path = cfg.storage.path(table)
    if not DeltaTable.isDeltaTable(spark, path):
        return write(df, cfg, table, mode="overwrite", partition_by=partition_by, comment=comment, commit_metrics=True)
    _record("written", table)
    target = DeltaTable.forPath(spark, path)
    cond = " AND ".join(f"t.`{k}` <=> s.`{k}`" for k in keys)
    if target_filter:
        cond = f"{target_filter} AND {cond}"
    builder = target.alias("t").merge(df.alias("s"), cond)
    if update:
        builder = builder.whenMatchedUpdateAll()
    tag = commit_tag(table)
    with _sql_commit_tagged(spark, tag, f"merge into {table}"):
        builder.whenNotMatchedInsertAll().execute()
    commit_version, operation, metrics = tagged_commit(spark, path, tag)
    set_properties(spark, cfg, table, comment=comment)
    v = version(spark, cfg, table)
    return WriteResult(table=table, path=path, version=v if v is not None else -1, commit_version=commit_version, operation=operation, metrics=metrics)


def sql_str(value: str) -> str:
    """The text of a single-quoted Spark SQL string literal holding `value` (backslash escapes).

    Parameters
    ----------
    value : str

    Returns
    -------
    str
    """
    return str(value).replace("\\", "\\\\").replace("'", "\\'")


def list_tables(spark: SparkSession, cfg: Config, layers: tuple[str, ...] = ("bronze", "silver", "gold", "quarantine", "audit", "truth")) -> list[dict]:
    """Delta tables under the lakehouse root with their latest version (local FS, S3 alike via Hadoop FS).

    Parameters
    ----------
    spark : SparkSession
    cfg : Config
    layers : tuple of str
        Layers listed; position traces of these layers come from the restricted root.

    Returns
    -------
    list of dict
        ``{"table": <layer>.<name>, "version": int, "path": str}`` per table.
    """
    jvm = jvm_of(spark)
    hconf = spark.sparkContext._jsc.hadoopConfiguration()
    out = []
    for layer in layers:
        base = cfg.storage.path(f"{layer}.x").rsplit("/", 1)[0]
        path = jvm.org.apache.hadoop.fs.Path(base)
        fs = path.getFileSystem(hconf)
        if not fs.exists(path):
            continue
        for status in fs.listStatus(path):
            name = f"{layer}.{status.getPath().getName()}"
            if status.isDirectory() and exists(spark, cfg, name):
                out.append({"table": name, "version": version(spark, cfg, name), "path": cfg.storage.path(name)})
    # position traces live under the restricted root (common.core.config.POSITION_TRACES)
    for name in sorted(POSITION_TRACES):
        if name.split(".")[0] in layers and exists(spark, cfg, name):
            out.append({"table": name, "version": version(spark, cfg, name), "path": cfg.storage.path(name)})
    return out

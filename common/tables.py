"""All Delta IO in one place: table locations come from config, never from literals in jobs.

Tables are path-based Delta tables named '<layer>.<name>' (see StorageConfig.path). Writes
are atomic Delta commits: a killed job leaves the previous version readable.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from delta.tables import DeltaTable
from pyspark.sql import DataFrame, SparkSession

from common.config import Config

log = logging.getLogger(__name__)


class TableNotFound(RuntimeError):
    """A job's input table does not exist yet: the message names the stage that writes it."""


@dataclass(frozen=True)
class WriteResult:
    table: str
    path: str
    version: int
    rows: int | None = None


@contextmanager
def job_description(spark: SparkSession, text: str) -> Iterator[None]:
    """Name the Spark jobs started inside (Spark UI, event log, bench/profile_stage.py): a Delta
    write's jobs otherwise show only `save at NativeMethodAccessorImpl.java:0`."""
    sc = spark.sparkContext
    previous = sc.getLocalProperty("spark.job.description")
    sc.setJobDescription(text)
    try:
        yield
    finally:
        sc.setLocalProperty("spark.job.description", previous)  # None clears it


# Names of the exceptions Delta raises when a concurrent commit won (optimistic concurrency), also
# for two writers creating the same table (ProtocolChanged / FileAlreadyExists on version 0).
_CONFLICTS = ("Concurrent", "ProtocolChanged", "MetadataChanged", "FileAlreadyExists", "concurrent update")


def is_commit_conflict(exc: BaseException) -> bool:
    """Whether `exc` says another writer committed first (retrying after a re-read is safe)."""
    text = f"{type(exc).__name__}: {exc}"
    return any(k in text for k in _CONFLICTS)


def exists(spark: SparkSession, cfg: Config, table: str) -> bool:
    return DeltaTable.isDeltaTable(spark, cfg.storage.path(table))


def read(spark: SparkSession, cfg: Config, table: str, version: int | None = None) -> DataFrame:
    path = cfg.storage.path(table)
    if not DeltaTable.isDeltaTable(spark, path):
        raise TableNotFound(f"table {table} not found at {path}: run the stage that writes it first")
    reader = spark.read.format("delta")
    if version is not None:
        reader = reader.option("versionAsOf", version)
    return reader.load(path)


def read_optional(spark: SparkSession, cfg: Config, table: str) -> DataFrame | None:
    """The table, or None when it does not exist (an optional input of a job)."""
    return read(spark, cfg, table) if exists(spark, cfg, table) else None


def size_bytes(spark: SparkSession, cfg: Config, table: str) -> int | None:
    """Bytes of the table's current files (Delta log, no data read); None when it does not exist."""
    path = cfg.storage.path(table)
    if not DeltaTable.isDeltaTable(spark, path):
        return None
    return int(DeltaTable.forPath(spark, path).detail().select("sizeInBytes").first()[0])


def version(spark: SparkSession, cfg: Config, table: str) -> int | None:
    path = cfg.storage.path(table)
    if not DeltaTable.isDeltaTable(spark, path):
        return None
    return DeltaTable.forPath(spark, path).history(1).select("version").first()[0]


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
) -> WriteResult:
    """Write a DataFrame as a Delta table (overwrite / append / replaceWhere of partitions).

    `merge_schema` lets an append add columns to an existing table (schema evolution of audit
    tables whose layout grew; old rows read the new columns as null)."""
    spark = df.sparkSession
    path = cfg.storage.path(table)
    writer = df.write.format("delta").mode(mode)
    if merge_schema:
        writer = writer.option("mergeSchema", "true")
    if partition_by:
        writer = writer.partitionBy(*partition_by)
    if replace_where:
        writer = writer.option("replaceWhere", replace_where)
    elif mode == "overwrite":
        writer = writer.option("overwriteSchema", "true")
    with job_description(spark, f"write {table}"):
        writer.save(path)
    set_properties(spark, cfg, table, comment=comment, properties=properties)
    v = version(spark, cfg, table)
    log.info("wrote %s (%s) version %s", table, path, v)
    return WriteResult(table=table, path=path, version=v if v is not None else -1)


def set_properties(
    spark: SparkSession,
    cfg: Config,
    table: str,
    comment: str | None = None,
    properties: dict[str, str] | None = None,
) -> None:
    """Table comment and properties; skipped when unchanged so reruns add no Delta versions."""
    props = dict(properties or {})
    if comment:
        props["comment"] = comment
    if not props:
        return
    path = cfg.storage.path(table)
    detail = DeltaTable.forPath(spark, path).detail().select("description", "properties").first()
    current = dict(detail["properties"] or {})
    # Delta keeps a 'comment' property as the table description, not in `properties`.
    if detail["description"] is not None:
        current["comment"] = detail["description"]
    changed = {k: v for k, v in props.items() if current.get(k) != v}
    if not changed:
        return
    assignments = ", ".join(f"'{k}' = '{_sql_str(v)}'" for k, v in changed.items())
    spark.sql(f"ALTER TABLE delta.`{path}` SET TBLPROPERTIES ({assignments})")


def merge(
    df: DataFrame,
    cfg: Config,
    table: str,
    keys: list[str],
    partition_by: list[str] | None = None,
    comment: str | None = None,
    update: bool = False,
) -> WriteResult:
    """Insert rows whose natural key is new (and optionally update existing ones): idempotent."""
    spark = df.sparkSession
    path = cfg.storage.path(table)
    if not DeltaTable.isDeltaTable(spark, path):
        return write(df, cfg, table, mode="overwrite", partition_by=partition_by, comment=comment)
    target = DeltaTable.forPath(spark, path)
    cond = " AND ".join(f"t.`{k}` <=> s.`{k}`" for k in keys)
    builder = target.alias("t").merge(df.alias("s"), cond)
    if update:
        builder = builder.whenMatchedUpdateAll()
    with job_description(spark, f"merge into {table}"):
        builder.whenNotMatchedInsertAll().execute()
    set_properties(spark, cfg, table, comment=comment)
    v = version(spark, cfg, table)
    return WriteResult(table=table, path=path, version=v if v is not None else -1)


def _sql_str(value: str) -> str:
    return str(value).replace("\\", "\\\\").replace("'", "\\'")


def list_tables(spark: SparkSession, cfg: Config, layers: tuple[str, ...] = ("bronze", "silver", "gold", "quarantine", "audit", "truth")) -> list[dict]:
    """Delta tables under the lakehouse root with their latest version (local FS, S3 alike via Hadoop FS)."""
    jvm = spark.sparkContext._jvm
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
    return out

"""Single-file extracts (CSV, Parquet) for people who open files, not tables, and their run folders.

`jobs/export.py` writes each extract of a run into a staging folder ``<root>/_<run>.staging``
(`open_run`), one file per format with a stable name ``<name>.<format>`` (`write_extract`), then
replaces ``<root>/<run>`` with it and points ``<root>/latest`` at it (`publish_run`): a rerun with
the same run id replaces the run's files instead of adding to them, and a failed run leaves the
previous folder as it was. Files go through Hadoop's FileSystem, so a local folder and an
``s3://`` prefix work alike; a path without a scheme is a local one (``file:``), whatever the
cluster's default file system. Each file is read back and its rows counted against what was
meant to be written.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from pyspark.sql import DataFrame, SparkSession

from common.core.frames import materialise, release
from common.io.spark import jvm_of

log = logging.getLogger(__name__)

FORMATS = ("csv", "parquet")
# RFC 4180 CSV (a quote inside a value is doubled, not backslash-escaped): what spreadsheets and
# pandas.read_csv expect; Spark's default escape is a backslash.
CSV_OPTIONS = {"header": "true", "quote": '"', "escape": '"', "encoding": "UTF-8"}


class ExtractMismatch(RuntimeError):
    """An extract's rows do not reconcile with its source query or with the files written."""


@dataclass(frozen=True)
class ExtractFiles:
    """What `write_extract` wrote.

    Attributes
    ----------
    source_rows : int
        Rows of the extract before the cap.
    rows : int
        Rows in each file (min(source_rows, max_rows)), counted by reading the files back.
    capped : bool
        The extract had more than max_rows rows: the files hold its first rows in its sort order.
    files : dict of str to str
        Format -> the file's path once the run is published (``<root>/<run>/<name>.<format>``).
    """

    source_rows: int
    rows: int
    capped: bool
    files: dict[str, str] = field(default_factory=dict)


def hadoop_uri(path: str) -> str:
    """`path` as a URI Hadoop resolves the same way on any cluster: local paths become ``file:``.

    Parameters
    ----------
    path : str
        A URI (``s3://...``, ``file:/...``) or an absolute local path.

    Returns
    -------
    str
    """
    return path if "://" in path or path.startswith("file:") else Path(path).as_uri()


def _local(path: str) -> Path | None:
    """The local folder of `path`, or None for a remote file system."""
    uri = hadoop_uri(path)
    return Path(urlparse(uri).path) if uri.startswith("file:") else None


def _fs(spark: SparkSession, path: str) -> tuple[Any, Any]:
    """(Hadoop FileSystem, Hadoop Path) of `path`; the raw local file system for local paths, so
    renamed files leave no `.crc` checksum files behind for the people opening the folder."""
    jvm = jvm_of(spark)
    hpath = jvm.org.apache.hadoop.fs.Path(hadoop_uri(path))
    fs = hpath.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())
    if fs.getScheme() == "file":
        fs = fs.getRawFileSystem()
    return fs, hpath


def _staging(root: str, run_id: str) -> str:
    return f"{root.rstrip('/')}/_{run_id}.staging"


def open_run(spark: SparkSession, root: str, run_id: str) -> str:
    """An empty staging folder for run `run_id` under `root` (left over from a failed run: emptied).

    Parameters
    ----------
    spark : SparkSession
    root : str
        The extracts' root folder (path or URI).
    run_id : str
        Name of the run's folder.

    Returns
    -------
    str
        The staging folder; `publish_run` moves it to ``<root>/<run_id>``.
    """
    folder = _staging(root, run_id)
    fs, hpath = _fs(spark, folder)
    fs.delete(hpath, True)
    fs.mkdirs(hpath)
    return folder


def discard_run(spark: SparkSession, root: str, run_id: str) -> None:
    """Delete the staging folder of run `run_id` (after a failure); ``<root>/<run_id>`` stays.

    Parameters
    ----------
    spark : SparkSession
    root : str
        The extracts' root folder.
    run_id : str
        The run opened with `open_run`.
    """
    fs, hpath = _fs(spark, _staging(root, run_id))
    fs.delete(hpath, True)


def publish_run(spark: SparkSession, root: str, run_id: str) -> str:
    """Replace ``<root>/<run_id>`` by the run's staging folder and point ``<root>/latest`` at it.

    ``latest`` is a relative symlink on a local file system (a copy where symlinks fail, as the
    report does) and a copy on object stores, which have no links.

    Parameters
    ----------
    spark : SparkSession
    root : str
        The extracts' root folder.
    run_id : str
        The run, opened with `open_run`.

    Returns
    -------
    str
        ``<root>/<run_id>``.

    Raises
    ------
    OSError
        The file system refused to move the staging folder.
    """
    final = f"{root.rstrip('/')}/{run_id}"
    fs, hfinal = _fs(spark, final)
    _, hstaging = _fs(spark, _staging(root, run_id))
    fs.delete(hfinal, True)
    if not fs.rename(hstaging, hfinal):
        raise OSError(f"could not move {hstaging} to {final}")
    local = _local(root)
    if local is not None:
        point_latest(local, run_id)
    else:
        _, hlatest = _fs(spark, f"{root.rstrip('/')}/latest")
        fs.delete(hlatest, True)
        jvm = jvm_of(spark)
        jvm.org.apache.hadoop.fs.FileUtil.copy(fs, hfinal, fs, hlatest, False, spark.sparkContext._jsc.hadoopConfiguration())
    return final


def point_latest(root: Path, run_id: str) -> None:
    """Make ``<root>/latest`` point at ``<root>/<run_id>``: a relative symlink, or a copy where the file system has none.

    Parameters
    ----------
    root : Path
        Local folder holding one sub-folder per run.
    run_id : str
        The run folder ``latest`` should show.
    """
    latest = root / "latest"
    if latest.is_symlink() or latest.is_file():
        latest.unlink()
    elif latest.is_dir():
        shutil.rmtree(latest)
    try:
        os.symlink(run_id, latest, target_is_directory=True)
    except OSError:  # file systems without symlinks: copy
        shutil.copytree(root / run_id, latest)


def write_text(spark: SparkSession, path: str, text: str) -> None:
    """Write `text` (UTF-8) to the file `path`, replacing it.

    Parameters
    ----------
    spark : SparkSession
    path : str
        File path or URI.
    text : str
    """
    fs, hpath = _fs(spark, path)
    out = fs.create(hpath, True)
    try:
        out.write(bytearray(text.encode("utf-8")))
    finally:
        out.close()


def _write_one(df: DataFrame, folder: str, name: str, fmt: str) -> None:
    """`df` (one partition) as the single file ``<folder>/<name>.<fmt>``: Spark writes a folder of
    part files, so the one part file is moved out of it and the folder dropped."""
    tmp = f"{folder.rstrip('/')}/_{name}.{fmt}.tmp"
    writer = df.write.mode("overwrite")
    if fmt == "csv":
        writer.options(**CSV_OPTIONS).csv(hadoop_uri(tmp))
    else:
        writer.parquet(hadoop_uri(tmp))
    spark = df.sparkSession
    fs, htmp = _fs(spark, tmp)
    parts = [s.getPath() for s in fs.listStatus(htmp) if s.getPath().getName().startswith("part-")]
    if len(parts) != 1:
        raise ExtractMismatch(f"{tmp}: expected one part file, found {len(parts)}")
    _, target = _fs(spark, f"{folder.rstrip('/')}/{name}.{fmt}")
    fs.delete(target, False)
    if not fs.rename(parts[0], target):
        raise OSError(f"could not move {parts[0]} to {target}")
    fs.delete(htmp, True)


def count_file(spark: SparkSession, path: str, fmt: str) -> int:
    """Rows of an extract file, read back as a reader would.

    Parameters
    ----------
    spark : SparkSession
    path : str
        The file.
    fmt : str
        ``csv`` or ``parquet``.

    Returns
    -------
    int
    """
    if fmt == "csv":
        return spark.read.options(**CSV_OPTIONS, multiLine="true").csv(hadoop_uri(path)).count()
    return spark.read.parquet(hadoop_uri(path)).count()


def write_extract(
    df: DataFrame,
    staging: str,
    final: str,
    name: str,
    formats: Sequence[str],
    max_rows: int,
    expected_rows: int | None = None,
) -> ExtractFiles:
    """Write an extract as one file per format, reconciled with its source query and read back.

    Parameters
    ----------
    df : DataFrame
        The extract, sorted (the cap keeps its first rows); flat columns for CSV.
    staging : str
        The run's staging folder (`open_run`).
    final : str
        The run's folder once published (``<root>/<run>``), for the paths returned.
    name : str
        File name without extension.
    formats : sequence of str
        Of FORMATS.
    max_rows : int
        Rows per file at most.
    expected_rows : int, optional
        Rows the extract must have, counted from its source by an independent query.

    Returns
    -------
    ExtractFiles

    Raises
    ------
    ExtractMismatch
        The extract's rows differ from `expected_rows`, or a file read back does not hold the
        rows written.
    """
    spark = df.sparkSession
    source_rows = df.count()
    if expected_rows is not None and source_rows != expected_rows:
        raise ExtractMismatch(f"extract {name}: {source_rows} rows, but its source query counts {expected_rows}")
    # A sorted frame's limit is one ordered partition (top-k): kept once, both formats get the same rows.
    head = materialise(df.limit(max_rows).coalesce(1))
    try:
        rows = min(source_rows, max_rows)
        files = {}
        for fmt in formats:
            _write_one(head, staging, name, fmt)
            read_back = count_file(spark, f"{staging.rstrip('/')}/{name}.{fmt}", fmt)
            if read_back != rows:
                raise ExtractMismatch(f"extract {name}.{fmt}: {read_back} rows read back, {rows} written")
            files[fmt] = f"{final.rstrip('/')}/{name}.{fmt}"
    finally:
        release(head)
    log.info("extract %s: %d of %d rows -> %s", name, rows, source_rows, ", ".join(files.values()))
    return ExtractFiles(source_rows=source_rows, rows=rows, capped=source_rows > max_rows, files=files)

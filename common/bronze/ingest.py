"""Raw files -> canonical rows: the transforms behind the ingest stage (`jobs/ingest.py`).

Reads raw files (CSV incl. BOM / quoted newlines / gzip, Parquet, JSON lines, Excel .xlsx) only in
`list_source_files` + `read_raw`; writes nothing. Everything else is DataFrame -> DataFrame:

    raw --map_columns--> canonical typed columns + lineage + raw record
        --validate-----> reasons array (first reason = `reason`)
        --mark_duplicates-> ingest_status: valid | quarantined | duplicate
    classified --bronze_rows / quarantine_rows--> rows for bronze.<kind> / quarantine.<kind>

The canonical schemas, required columns and natural keys are `common.io.schemas.KINDS`; the contract
(column meanings, units, reason codes) is docs/DATA_CONTRACT.md. Timestamps are stored as UTC
instants: a pattern without a zone is read as wall-clock time in the dataset's `source_timezone`.
The stage's planning (file ledger, unreadable files) is `common.bronze.plan`, its commits and audit
rows `common.bronze.load`.
"""

from __future__ import annotations

import hashlib
import io
import json
import posixpath
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from functools import reduce

from pyspark.errors import PySparkException
from pyspark.sql import Column, DataFrame, DataFrameReader, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from common.core.config import EPOCH_FORMATS, DatasetSpec, IngestConfig, missing_timezone, zoneless_formats
from common.io.schemas import INGESTED_AT, KINDS, OCPP_STATUSES, ROW_HASH, RUN_ID, SOURCE_FILE, SOURCE_NAME
from common.io.spark import jvm_of

# Columns the stage adds besides the bronze lineage columns of common.io.schemas (names chosen not
# to collide with canonical columns).
RAW_RECORD = "raw_record"
RAW_HASH = "raw_hash"
STATUS = "ingest_status"  # valid | quarantined | duplicate
REASONS = "reasons"
REASON = "reason"
UNPARSED = "unparsed_columns"  # canonical columns whose source value was present but unparseable
_FILE = "__source_file"  # attached by read_raw
_EXCLUDED = "__excluded"
_BAD_ENCODING = "__bad_encoding"
_SWAPPED = "__day_month_swapped"  # timestamp columns whose value fits the declared patterns only with day/month swapped
# Spark's corrupt-record column: a CSV line with more or fewer fields than its header, a quote
# left open (which swallows the following lines) or a JSON line that does not parse.
_CORRUPT = "__corrupt_record"
_MALFORMED = "__malformed"
_INTERNAL = (_FILE, _CORRUPT)

VALID, QUARANTINED, DUPLICATE = "valid", "quarantined", "duplicate"
# Largest epoch magnitudes accepted (seconds ~ year 33658): beyond them timestamp_seconds overflows.
_MAX_EPOCH_S, _MAX_EPOCH_MS = 1e12, 1e15
# Epoch values at or above this are milliseconds for 'epoch_auto' (1e11 s would be year 5138).
_EPOCH_AUTO_MS_FROM = 1e11


class IngestInputError(ValueError):
    """An input dataset problem the user fixes in its DatasetSpec; the message names the conf key."""


class MissingColumnError(IngestInputError):
    """A required canonical column has no source column."""


@dataclass(frozen=True)
class SourceFile:
    """One raw file as listed by Hadoop's FileSystem.

    Attributes
    ----------
    path : str
        Fully qualified (file:/..., s3://...).
    size : int
        Bytes.
    modification_time : int
        ms since the epoch (UTC).
    """

    path: str
    size: int
    modification_time: int


@dataclass(frozen=True)
class UnreadableFile:
    """A source file ingest cannot read at all: recorded in the file ledger and skipped, the others still load.

    E.g. a corrupt archive, binary content, a value over `csv.max_chars_per_column`.

    Attributes
    ----------
    file : SourceFile
    reason : str
        ``<error class>: <first line of its message>``.
    """

    file: SourceFile
    reason: str


# Bytes of a text file (after decompression) the probe reads: enough for the header and to tell
# binary content, a bad archive header or a stream that ends early in a small file.
PROBE_BYTES = 64 * 1024
# Wrapper exceptions whose message says where, not what: the reason names the exception they wrap.
_WRAPPERS = ("org.apache.spark.SparkException", "py4j.", "java.util.concurrent.ExecutionException", "java.lang.reflect.")
_MAX_REASON_CHARS = 400


# ---------------------------------------------------------------------------------------------
# Reading raw files (the only IO in this module)
# ---------------------------------------------------------------------------------------------
def list_source_files(spark: SparkSession, path: str) -> list[SourceFile]:
    """Files matching a file, folder (recursive) or glob, through Hadoop's FileSystem (local, S3).

    Names starting with '_' or '.' (_SUCCESS, .crc, _delta_log) are skipped, as Spark does.

    Parameters
    ----------
    spark : SparkSession
    path : str
        A file, folder or glob (a DatasetSpec's resolved `path`).

    Returns
    -------
    list of SourceFile
        Sorted by path, no duplicates; empty when nothing matches.
    """
    jvm = jvm_of(spark)
    conf = spark.sparkContext._jsc.hadoopConfiguration()
    pattern = jvm.org.apache.hadoop.fs.Path(path)
    fs = pattern.getFileSystem(conf)
    statuses = fs.globStatus(pattern) or []
    found: list[SourceFile] = []
    for status in statuses:
        if status.isDirectory():
            root = status.getPath().toString().rstrip("/")
            files = fs.listFiles(status.getPath(), True)
            while files.hasNext():
                f = files.next()
                rel = f.getPath().toString()[len(root) :].strip("/")
                if not any(part.startswith(("_", ".")) for part in rel.split("/")):
                    found.append(SourceFile(f.getPath().toString(), f.getLen(), f.getModificationTime()))
        elif not status.getPath().getName().startswith(("_", ".")):
            found.append(SourceFile(status.getPath().toString(), status.getLen(), status.getModificationTime()))
    return sorted(set(found), key=lambda f: f.path)


def read_raw(spark: SparkSession, spec: DatasetSpec, files: Sequence[SourceFile], base_path: str | None = None) -> DataFrame:
    """The files of one dataset as a DataFrame of source columns (+ `__source_file`).

    CSV and JSON values stay strings (parsing is `map_columns`' job, so a bad value never fails a
    read). CSV files are grouped by header line and unioned by column name: Spark applies the first
    file's header positionally to all files of one read, which would silently shift columns when an
    export gains columns (AFDC NY 2025 has 5 more than WA 2023).

    Parameters
    ----------
    spark : SparkSession
    spec : DatasetSpec
        Format, CSV options, Excel sheet.
    files : sequence of SourceFile
        The files to read (at least one).
    base_path : str, optional
        Spark's ``basePath``: folder whose ``key=value`` subfolders become partition columns.

    Returns
    -------
    DataFrame
        One row per record: the source columns (header names without BOM or blanks), ``__source_file``
        and, for CSV (JSON: when a line does not parse), ``__corrupt_record`` (the raw line of a malformed record).

    Raises
    ------
    IngestInputError
        `files` is empty.
    """
    paths = [f.path for f in files]
    if not paths:
        raise IngestInputError(f"dataset {spec.name!r}: no files to read")
    if spec.format == "xlsx":
        frames = [_read_excel(spark, spec, p) for p in paths]
    elif spec.format == "csv":
        groups: dict[str | None, list[str]] = {}
        for p in paths:
            key = _csv_header(spark, p, spec.csv.encoding) if spec.csv.header else None
            groups.setdefault(key, []).append(p)

        def csv_reader() -> DataFrameReader:  # a new reader per read: DataFrameReader.schema() changes the reader in place
            r = (
                spark.read.option("header", spec.csv.header)
                .option("sep", spec.csv.delimiter)
                .option("encoding", spec.csv.encoding)
                .option("quote", spec.csv.quote)
                .option("escape", spec.csv.escape)
                .option("multiLine", spec.csv.multiline)
                .option("maxCharsPerColumn", spec.csv.max_chars_per_column)
                .option("mode", "PERMISSIVE")
            )
            return r.option("basePath", base_path) if base_path else r

        frames = [_with_file(_read_csv_group(csv_reader, group)) for group in groups.values()]
    elif spec.format == "json":
        reader = spark.read.option("primitivesAsString", True).option("mode", "PERMISSIVE").option("columnNameOfCorruptRecord", _CORRUPT)
        if base_path:
            reader = reader.option("basePath", base_path)
        frames = [_with_file(reader.json(paths))]
    else:
        reader = spark.read.option("mergeSchema", True)
        if base_path:
            reader = reader.option("basePath", base_path)
        frames = [_with_file(reader.parquet(*paths))]
    frames = [_strip_header_names(f) for f in frames]
    return reduce(lambda a, b: a.unionByName(b, allowMissingColumns=True), frames)


def _read_csv_group(reader: Callable[[], DataFrameReader], paths: list[str]) -> DataFrame:
    """One header group as all-string columns plus `__corrupt_record` (the raw line of a row whose
    field count differs from the header's, e.g. an unquoted delimiter or an unbalanced quote).

    Spark only fills the corrupt-record column under an explicit schema, so the header's column
    names are read first (a one-record read) and every column is declared as a string."""
    names = reader().csv(paths).columns
    if not names:
        return reader().csv(paths)
    schema = T.StructType([T.StructField(n, T.StringType(), True) for n in names] + [T.StructField(_CORRUPT, T.StringType(), True)])
    return reader().schema(schema).option("columnNameOfCorruptRecord", _CORRUPT).csv(paths)


# ---------------------------------------------------------------------------------------------
# File-level checks: a file that cannot be read at all is set aside with a reason
# ---------------------------------------------------------------------------------------------
def probe_file(spark: SparkSession, spec: DatasetSpec, file: SourceFile) -> str | None:
    """Cheap check of one file before the dataset's read; the reason it is unreadable, or None.

    CSV/JSON: the first PROBE_BYTES through Hadoop's codecs (a `.gz` that is not gzip, or whose
    stream ends early, fails here) and no NUL byte (binary content in a text file: a zip or an
    image renamed .csv would otherwise become thousands of garbage rows). Parquet: the footer
    (magic bytes, schema). Excel: openpyxl opens the workbook. Problems deeper inside a big file
    (a truncated gzip, a value over `csv.max_chars_per_column`) surface in the dataset's read,
    and `read_file_alone` then names the file.

    Parameters
    ----------
    spark : SparkSession
    spec : DatasetSpec
        Format and CSV encoding.
    file : SourceFile

    Returns
    -------
    str or None
        `failure_reason` of the problem, or a BinaryContent reason; None when the file looks readable.
    """
    try:
        if spec.format in ("csv", "json"):
            head = _head_bytes(spark, file.path, PROBE_BYTES)
            if b"\x00" in head and not spec.csv.encoding.upper().startswith(("UTF-16", "UTF-32")):
                return f"BinaryContent: NUL bytes in the first {len(head)} bytes of a {spec.format} file (encoding {spec.csv.encoding})"
        elif spec.format == "parquet":
            _parquet_footer(spark, file.path)
        else:
            _open_workbook(spark, file.path)
    except Exception as exc:  # noqa: BLE001 - any failure to read makes the file unreadable
        return failure_reason(exc)
    return None


def read_file_alone(spark: SparkSession, spec: DatasetSpec, file: SourceFile, base_path: str | None = None) -> str | None:
    """Read one file completely in its own small Spark job (Spark's `noop` sink evaluates every column).

    Used only when the dataset's read failed, to find the file(s) responsible.

    Parameters
    ----------
    spark : SparkSession
    spec : DatasetSpec
    file : SourceFile
    base_path : str, optional
        As for `read_raw`.

    Returns
    -------
    str or None
        `failure_reason` of the read, or None when it succeeds.

    Raises
    ------
    IngestInputError
        Passed on: a mapping problem, not the file's.
    """
    try:
        read_raw(spark, spec, [file], base_path).write.format("noop").mode("overwrite").save()
    except IngestInputError:
        raise
    except Exception as exc:  # noqa: BLE001 - any failure to read makes the file unreadable
        return failure_reason(exc)
    return None


def failure_reason(exc: BaseException) -> str:
    """`<error class>: <first line>` of the exception that says what went wrong.

    Spark's and py4j's wrappers are skipped, and the root cause is added when it is another exception.

    Parameters
    ----------
    exc : BaseException
        A Python exception, a py4j error or one PySpark converted (Java cause chains included).

    Returns
    -------
    str
        At most 400 characters.
    """
    chain = _exception_chain(exc)
    named = [(cls, msg) for cls, msg in chain if not cls.startswith(_WRAPPERS)] or chain
    cls, msg = named[0]
    text = f"{cls.rsplit('.', 1)[-1]}: {msg}"
    root_cls, root_msg = chain[-1]
    if (root_cls, root_msg) != (cls, msg):
        text += f" (caused by {root_cls.rsplit('.', 1)[-1]}: {root_msg})"
    return text[:_MAX_REASON_CHARS]


def _exception_chain(exc: BaseException) -> list[tuple[str, str]]:
    """(class, first message line) from the outermost exception to the root cause, Java's included."""
    java = getattr(exc, "java_exception", None) or getattr(exc, "_origin", None)  # py4j error, or one PySpark converted
    if java is None:
        cls = f"{type(exc).__module__}.{type(exc).__name__}" if type(exc).__module__ != "builtins" else type(exc).__name__
        out = [(cls, _first_line(str(exc)))]
        return out + (_exception_chain(exc.__cause__) if exc.__cause__ is not None else [])
    out, seen = [], 0
    while java is not None and seen < 20:  # Java cause chains end at null (or loop on themselves)
        out.append((java.getClass().getName(), _first_line(java.getMessage() or "")))
        nxt = java.getCause()
        java = None if nxt is None or nxt.equals(java) else nxt
        seen += 1
    return out


def _first_line(text: str) -> str:
    return next((line.strip() for line in str(text).splitlines() if line.strip()), "")


def _head_bytes(spark: SparkSession, path: str, limit: int) -> bytes:
    """Up to `limit` bytes of a file after decompression by Hadoop's codecs (gzip, bzip2, ...)."""
    jvm = jvm_of(spark)
    conf = spark.sparkContext._jsc.hadoopConfiguration()
    hpath = jvm.org.apache.hadoop.fs.Path(path)
    stream = hpath.getFileSystem(conf).open(hpath)
    try:
        codec = jvm.org.apache.hadoop.io.compress.CompressionCodecFactory(conf).getCodec(hpath)
        if codec is not None:
            stream = codec.createInputStream(stream)
        bounded = jvm.org.apache.commons.io.input.BoundedInputStream(stream, limit)
        return bytes(jvm.org.apache.commons.io.IOUtils.toByteArray(bounded))  # one py4j call, byte[] -> bytes
    finally:
        stream.close()


def _parquet_footer(spark: SparkSession, path: str) -> None:
    """Read a Parquet file's footer (where a truncated or foreign file fails) through Hadoop."""
    jvm = jvm_of(spark)
    conf = spark.sparkContext._jsc.hadoopConfiguration()
    hpath = jvm.org.apache.hadoop.fs.Path(path)
    reader = jvm.org.apache.parquet.hadoop.ParquetFileReader.open(jvm.org.apache.parquet.hadoop.util.HadoopInputFile.fromPath(hpath, conf))
    reader.close()


def _open_workbook(spark: SparkSession, path: str) -> None:
    from openpyxl import load_workbook

    workbook = load_workbook(io.BytesIO(_workbook_bytes(spark, path)), read_only=True)
    workbook.close()


def _workbook_bytes(spark: SparkSession, path: str) -> bytes:
    """A whole .xlsx through Hadoop's FileSystem: one code path for file:, s3a:, s3: (EMR), hdfs:.

    openpyxl reads a file object, so the extension check it makes on a file name is made here (an .xls
    or a stray .txt in an xlsx dataset's folder keeps its clear InvalidFileException, not BadZipFile).
    """
    from openpyxl.reader.excel import SUPPORTED_FORMATS
    from openpyxl.utils.exceptions import InvalidFileException

    jvm = jvm_of(spark)
    hpath = jvm.org.apache.hadoop.fs.Path(path)
    suffix = posixpath.splitext(hpath.getName())[1].lower()
    if suffix not in SUPPORTED_FORMATS:
        raise InvalidFileException(
            f"openpyxl does not support {suffix or 'extension-less'} file format, please check you can open it with Excel first. Supported formats are: {','.join(SUPPORTED_FORMATS)}"
        )
    stream = hpath.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration()).open(hpath)
    try:
        return bytes(jvm.org.apache.commons.io.IOUtils.toByteArray(stream))  # one py4j call, byte[] -> bytes
    finally:
        stream.close()


def _with_file(df: DataFrame) -> DataFrame:
    return df.select("*", F.col("_metadata.file_path").alias(_FILE))


def _strip_header_names(df: DataFrame) -> DataFrame:
    """Header names without BOM / surrounding blanks (Excel and some CSV writers leave them)."""
    renamed = {c: c.replace("\ufeff", "").strip() for c in df.columns}
    if all(k == v for k, v in renamed.items()):
        return df
    return df.select([F.col(_quote(c)).alias(renamed[c] or c) for c in df.columns])


def _csv_header(spark: SparkSession, path: str, encoding: str) -> str | None:
    """First line of a (possibly compressed) file, read through Hadoop's codecs."""
    jvm = jvm_of(spark)
    conf = spark.sparkContext._jsc.hadoopConfiguration()
    hpath = jvm.org.apache.hadoop.fs.Path(path)
    stream = hpath.getFileSystem(conf).open(hpath)
    codec = jvm.org.apache.hadoop.io.compress.CompressionCodecFactory(conf).getCodec(hpath)
    if codec is not None:
        stream = codec.createInputStream(stream)
    reader = jvm.java.io.BufferedReader(jvm.java.io.InputStreamReader(stream, encoding))
    try:
        line = reader.readLine()
    finally:
        reader.close()
    return None if line is None else line.replace("\ufeff", "").strip()


def _read_excel(spark: SparkSession, spec: DatasetSpec, path: str) -> DataFrame:
    """An .xlsx sheet via pandas/openpyxl on the driver (meant for small dumps), all values as text."""
    import pandas as pd

    sheet = 0 if spec.sheet is None else spec.sheet
    pdf = pd.read_excel(io.BytesIO(_workbook_bytes(spark, path)), sheet_name=sheet, header=spec.header_row, dtype=str, engine="openpyxl")
    pdf.columns = [str(c) for c in pdf.columns]
    pdf = pdf.astype(object).where(pdf.notna(), None)
    schema = T.StructType([T.StructField(c, T.StringType(), True) for c in pdf.columns])
    rows = [tuple(r) for r in pdf.itertuples(index=False, name=None)]
    return spark.createDataFrame(rows, schema).withColumn(_FILE, F.lit(path))


# ---------------------------------------------------------------------------------------------
# Mapping source columns onto the canonical schema
# ---------------------------------------------------------------------------------------------
def mapping_key(kind: str, index: int) -> str:
    """Where a dataset lives in conf, for error messages: inputs.<kind>[<index>].

    Parameters
    ----------
    kind : str
        Canonical kind.
    index : int
        Position in ``inputs.<kind>``.

    Returns
    -------
    str
    """
    return f"inputs.{kind}[{index}]"


def map_columns(raw: DataFrame, spec: DatasetSpec, kind: str, where: str | None = None) -> DataFrame:
    """Canonical columns of `kind` (typed, UTC timestamps) + lineage, raw record and parse flags.

    Each canonical column comes from (first match): `expressions`, `columns` (a list is joined with
    spaces, e.g. Date + Time), `constants`, or a source column of the same name (case-insensitive).
    String values are trimmed; `null_values` become null; `values` maps codes; `decimal_comma`
    turns '12,5' into 12.5. A value that is present but does not parse becomes null and its column
    is listed in `unparsed_columns` (validate() turns that into a reason).

    Parameters
    ----------
    raw : DataFrame
        Source columns as `read_raw` returns them (+ `__source_file`, `__corrupt_record`).
    spec : DatasetSpec
        The dataset's mapping.
    kind : str
        Canonical kind (a key of `common.io.schemas.KINDS`).
    where : str, optional
        The dataset's conf key (inputs.<kind>[<index>]) named in error messages.

    Returns
    -------
    DataFrame
        Canonical columns, SOURCE_NAME, SOURCE_FILE, RAW_RECORD, RAW_HASH, `unparsed_columns` and
        the internal flags `validate` reads.

    Raises
    ------
    IngestInputError
        The mapping contradicts the data or the conf (MissingColumnError names the canonical
        column and the conf key to set).
    """
    where = where or f"inputs.{kind}[?]"
    check_mapping(raw, spec, kind, where)
    sources = _Sources.of(raw, spec, kind, where)
    values = {f.name: sources.value(f) for f in KINDS[kind][0].fields}
    excluded = F.lit(False)
    if spec.filter:
        excluded = ~F.coalesce(_checked_expr(sources.df, spec.filter, f"{where}.filter", sources.columns), F.lit(False))
    staged = sources.df.select(
        F.lit(spec.name).alias(SOURCE_NAME),
        F.col(_FILE).alias(SOURCE_FILE),
        RAW_RECORD,
        F.sha2(F.col(RAW_RECORD), 256).alias(RAW_HASH),
        excluded.alias(_EXCLUDED),
        sources.malformed.alias(_MALFORMED),
        *values.values(),
    )
    return parse_staged(staged, spec, kind)


def check_mapping(raw: DataFrame, spec: DatasetSpec, kind: str, where: str) -> None:
    """Reject a mapping that cannot be applied, before any column is built.

    Parameters
    ----------
    raw : DataFrame
        The raw frame (only its session's time zone is checked: it must be UTC).
    spec : DatasetSpec
        The dataset's mapping: a source time zone for zoneless timestamps, sections naming
        canonical columns only, no pair of day/month-swapped timestamp patterns.
    kind : str
        Canonical kind (a key of `common.io.schemas.KINDS`).
    where : str
        The dataset's conf key, named in the messages.

    Raises
    ------
    IngestInputError
        Naming the conf key to fix.
    """
    schema, _required, _key, ts_cols, _table = KINDS[kind]
    canonical = schema.fieldNames()
    no_zone = missing_timezone(spec, where) if ts_cols else None
    if no_zone:
        raise IngestInputError(f"dataset {spec.name!r}: {no_zone}")
    for section, mapping in (("columns", spec.columns), ("expressions", spec.expressions), ("constants", spec.constants), ("values", spec.values)):
        unknown = sorted(set(mapping) - set(canonical))
        if unknown:
            raise IngestInputError(f"{where}.{section}: {unknown} are not canonical {kind} columns (known: {', '.join(canonical)})")
    ambiguous = ambiguous_formats(spec.timestamp_formats)
    if ambiguous:
        a, b = ambiguous
        raise IngestInputError(
            f"dataset {spec.name!r}: {where}.timestamp_formats lists both {a!r} and {b!r}: a date such as "
            "03/04/2021 (day <= 12) would be read one way and 13/04/2021 the other within one file; keep only "
            "the pattern the source uses (rows that do not fit it are quarantined as unparseable_<column>)"
        )
    if raw.sparkSession.conf.get("spark.sql.session.timeZone") != "UTC":
        raise IngestInputError("ingest needs spark.sql.session.timeZone=UTC (set by common.io.spark.build_session)")


@dataclass(frozen=True)
class _Sources:
    """The source columns of one raw frame (with its raw record) and the mapping read from them."""

    df: DataFrame  # the raw rows + RAW_RECORD
    spec: DatasetSpec
    kind: str
    where: str  # the dataset's conf key
    columns: tuple[str, ...]  # source column names, internal columns excluded
    malformed: Column  # the row's field count differs from the header / the JSON line does not parse

    @classmethod
    def of(cls, raw: DataFrame, spec: DatasetSpec, kind: str, where: str) -> _Sources:
        """Add the raw record: the source values as JSON.

        A malformed row keeps its raw line in the record (null fields are left out of the JSON, so
        well-formed rows' records and hashes do not change).

        Parameters
        ----------
        raw : DataFrame
            As `read_raw` returns it.
        spec : DatasetSpec
        kind : str
            Canonical kind.
        where : str
            The dataset's conf key.

        Returns
        -------
        _Sources
            With `df` = `raw` + RAW_RECORD.
        """
        columns = tuple(c for c in raw.columns if c not in _INTERNAL)
        corrupt = [F.col(_CORRUPT)] if _CORRUPT in raw.columns else []
        malformed = F.col(_CORRUPT).isNotNull() if corrupt else F.lit(False)
        record = F.to_json(F.struct(*[F.col(_quote(c)) for c in columns], *corrupt)).alias(RAW_RECORD)
        return cls(raw.select("*", record), spec, kind, where, columns, malformed)

    def column(self, name: str, conf_key: str, canon: str) -> Column:
        """The source column `name` (case-insensitive).

        Parameters
        ----------
        name : str
            Source column name from the mapping.
        conf_key : str
            The conf key that names it, for the error.
        canon : str
            The canonical column it feeds, for the error.

        Returns
        -------
        Column

        Raises
        ------
        MissingColumnError
            No source column has that name; the message lists the source columns.
        """
        actual = {c.strip().lower(): c for c in self.columns}.get(name.strip().lower())
        if actual is None:
            raise MissingColumnError(
                f"dataset {self.spec.name!r}: source column {name!r} for canonical column {canon!r} is not in the data; set {conf_key} to one of: {', '.join(self.columns) or '(no columns)'}"
            )
        return F.col(_quote(actual))

    def source(self, c: str) -> Column:
        """Canonical column `c`'s source value: expression, mapped column(s), constant or same name.

        Parameters
        ----------
        c : str
            Canonical column name.

        Returns
        -------
        Column
            A null string when an optional column has no source.

        Raises
        ------
        MissingColumnError
            A mapped column or expression does not resolve, or a required column has no source.
        """
        spec, where, key = self.spec, self.where, f"{self.where}.columns.{c}"
        if c in spec.expressions:
            return _checked_expr(self.df, spec.expressions[c], f"{where}.expressions.{c}", self.columns)
        if c in spec.columns:
            src = spec.columns[c]
            if not isinstance(src, list):
                return self.column(src, key, c)
            parts = [_clean_text(self.column(s, key, c).cast("string"), spec.null_values) for s in src]
            return F.when(reduce(lambda a, b: a & b, [p.isNotNull() for p in parts]), F.concat_ws(" ", *parts))
        if c in spec.constants:
            value = spec.constants[c]
            return F.lit(None if value is None else str(value)).cast("string")
        same_name = {s.strip().lower(): s for s in self.columns}.get(c.lower())
        if same_name is not None:
            return F.col(_quote(same_name))
        if c in KINDS[self.kind][1]:
            raise MissingColumnError(
                f"dataset {spec.name!r} ({spec.path}): required column {c!r} not found in {list(self.columns)}; "
                f"set {key} to the source column name" + (f" (or {where}.constants.{c} for a single-{self.kind.rstrip('s')} file)" if c == "vehicle_id" else "")
            )
        return F.lit(None).cast("string")

    def value(self, field: T.StructField) -> Column:
        """Stage 1: `field`'s source value as cleaned text (nulls, codes, decimal comma), or the typed source value.

        Parameters
        ----------
        field : StructField
            The canonical column.

        Returns
        -------
        Column
            Aliased `__v_<name>`.
        """
        c, spec = field.name, self.spec
        expr = self.source(c)
        source_type = self.df.select(expr).schema.fields[0].dataType
        if isinstance(source_type, (T.StringType, T.NullType)):
            expr = _clean_text(expr.cast("string"), spec.null_values)
            if c in spec.values:
                codes = F.create_map(*[F.lit(x) for kv in spec.values[c].items() for x in kv])
                expr = F.coalesce(F.when(expr.isNotNull(), F.try_element_at(codes, expr)), expr)
            if spec.decimal_comma and isinstance(field.dataType, (T.DoubleType, T.IntegerType)):
                expr = F.regexp_replace(expr, ",", ".")
        elif isinstance(field.dataType, T.TimestampType) and isinstance(source_type, T.NumericType):
            expr = expr.cast("string")  # epoch numbers go through the epoch_* formats
        return expr.alias(f"__v_{c}")


def parse_staged(staged: DataFrame, spec: DatasetSpec, kind: str) -> DataFrame:
    """Stage 2 of `map_columns`: parse every `__v_<column>` into its canonical type.

    Parameters
    ----------
    staged : DataFrame
        Lineage, raw record, flags and one `__v_<column>` per canonical column of `kind`.
    spec : DatasetSpec
        The dataset's mapping (timestamp patterns, source time zone).
    kind : str
        Canonical kind (a key of `common.io.schemas.KINDS`).

    Returns
    -------
    DataFrame
        Canonical columns, lineage, RAW_RECORD, RAW_HASH, `unparsed_columns` (present but
        unparseable, now null), and the flags `__excluded`, `__malformed`, `__bad_encoding`
        (U+FFFD in a text value) and `__day_month_swapped`.
    """
    schema = KINDS[kind][0]
    canonical = schema.fieldNames()
    parsed = {f.name: _parse(f"__v_{f.name}", staged.schema[f"__v_{f.name}"].dataType, f.dataType, spec) for f in schema.fields}
    unparsed = F.array_compact(F.array(*[F.when(F.col(f"__v_{c}").isNotNull() & parsed[c].isNull(), F.lit(c)) for c in canonical]))
    swapped = F.array_compact(
        F.array(
            *[
                F.when(F.col(f"__v_{c}").isNotNull() & parsed[c].isNull() & _swapped_fit(f"__v_{c}", spec).isNotNull(), F.lit(c))
                for c in canonical
                if isinstance(schema[c].dataType, T.TimestampType) and isinstance(staged.schema[f"__v_{c}"].dataType, (T.StringType, T.NullType))
            ]
        )
    )
    strings = [parsed[f.name] for f in schema.fields if isinstance(f.dataType, T.StringType)]
    bad_encoding = reduce(lambda a, b: a | b, [F.coalesce(s.contains("\ufffd"), F.lit(False)) for s in strings], F.lit(False))
    return staged.select(
        *[parsed[c].cast(schema[c].dataType).alias(c) for c in canonical],
        SOURCE_NAME,
        SOURCE_FILE,
        RAW_RECORD,
        RAW_HASH,
        unparsed.alias(UNPARSED),
        _EXCLUDED,
        _MALFORMED,
        bad_encoding.alias(_BAD_ENCODING),
        swapped.alias(_SWAPPED),
    )


def _swapped_fit(v: str, spec: DatasetSpec) -> Column:
    """`v` parsed with the dataset's patterns with day and month swapped (null when none differs or
    fits): a value that only fits that way means the source writes the other order."""
    # Year-first patterns (ISO yyyy-MM-dd) are never written day-first: 2024-13-04 is corrupt, not swapped.
    other = [swap_day_month(f) for f in spec.timestamp_formats if f not in EPOCH_FORMATS and swap_day_month(f) != f and not f.lstrip("'\"").startswith(("y", "u"))]
    return parse_timestamp(v, other, spec.source_timezone) if other else F.lit(None).cast("timestamp")


def _parse(v: str, vtype: T.DataType, target: T.DataType, spec: DatasetSpec) -> Column:
    """Column `v` (cleaned text or typed source value) as `target`; null when it does not parse.

    try_cast / try_to_timestamp return NULL on bad input instead of failing the job (also under
    ANSI mode), so one bad value can never stop an ingest.
    """
    col = F.col(v)
    is_text = isinstance(vtype, (T.StringType, T.NullType))
    if isinstance(target, T.TimestampType):
        if isinstance(vtype, T.TimestampType):
            return col
        if isinstance(vtype, (T.TimestampNTZType, T.DateType)):
            if spec.source_timezone is None:
                raise IngestInputError(
                    f"dataset {spec.name!r}: source column {v!r} holds timestamps without zone ({vtype.simpleString()}); set its source_timezone to the IANA zone they were written in"
                )
            return F.to_utc_timestamp(col.cast("timestamp"), spec.source_timezone)
        return parse_timestamp(v, spec.timestamp_formats, spec.source_timezone)
    if isinstance(target, T.DoubleType):
        number = F.expr(f"try_cast({_quote(v)} AS DOUBLE)") if is_text else col.cast("double")
        return F.nanvl(number, F.lit(None).cast("double"))  # NaN is no measurement
    if isinstance(target, T.IntegerType):
        return F.expr(f"try_cast(try_cast({_quote(v)} AS DOUBLE) AS INT)") if is_text else col.cast("int")
    if isinstance(target, T.BooleanType):
        return F.expr(f"try_cast(lower({_quote(v)}) AS BOOLEAN)") if is_text else col.cast("boolean")
    return col.cast("string")


def parse_timestamp(column: str, formats: Sequence[str], source_timezone: str | None) -> Column:
    """Text column `column` parsed with the first format that fits, as a UTC instant (else null).

    Patterns are Spark datetime patterns; one without an offset/zone letter (X, x, Z, z, O, V) is
    wall-clock time in `source_timezone` (only read then: None is fine when every format carries
    its zone or is an epoch, which config validation, `missing_timezone`, ensures otherwise) and is
    shifted with to_utc_timestamp (DST and Morocco's
    Ramadan offset come from the JVM's tz database). 'epoch_s' / 'epoch_ms' / 'epoch_auto' read
    numbers since 1970-01-01 UTC. Assumes the session time zone is UTC (common.io.spark sets it).

    Parameters
    ----------
    column : str
        Text column name.
    formats : sequence of str
        Spark datetime patterns and epoch_* names, tried in order.
    source_timezone : str or None
        IANA zone of wall-clock patterns.

    Returns
    -------
    Column
        Timestamp (UTC instant); null when no format fits.
    """
    text = F.col(_quote(column))
    number = F.expr(f"try_cast({_quote(column)} AS DOUBLE)")
    candidates = []
    for fmt in formats:
        if fmt in EPOCH_FORMATS:
            seconds = F.when(F.abs(number) < _MAX_EPOCH_S, F.timestamp_seconds(number))
            millis = F.when(F.abs(number) < _MAX_EPOCH_MS, F.timestamp_millis(number.cast("long")))
            if fmt == "epoch_s":
                candidates.append(seconds)
            elif fmt == "epoch_ms":
                candidates.append(millis)
            else:
                candidates.append(F.when(F.abs(number) >= _EPOCH_AUTO_MS_FROM, millis).otherwise(seconds))
            continue
        ts = F.try_to_timestamp(text, F.lit(fmt))
        if zoneless_formats([fmt]):
            ts = F.to_utc_timestamp(ts, source_timezone)  # type: ignore[arg-type]  # None only when missing_timezone's check was bypassed: passed on (null instants)
        candidates.append(ts)
    if not candidates:
        return F.lit(None).cast("timestamp")
    return F.coalesce(*candidates) if len(candidates) > 1 else candidates[0]


def _clean_text(col: Column, null_values: Sequence[str]) -> Column:
    """Trimmed text (incl. tabs, CR and stray BOMs); `null_values` and blanks -> null."""
    text = F.regexp_replace(col, r"^[\s\x{FEFF}]+|[\s\x{FEFF}]+$", "")
    nulls = [n.strip() for n in null_values] + [""]
    return F.when(~text.isin(nulls), text)


def _checked_expr(df: DataFrame, sql: str, conf_key: str, source_cols: Sequence[str]) -> Column:
    """F.expr(sql), with analysis errors (unknown column, bad syntax) reported against the conf key."""
    try:
        expr = F.expr(sql)
        df.select(expr).schema  # noqa: B018 - forces analysis
    except PySparkException as exc:
        first = str(exc).strip().splitlines()[0][:300]
        raise MissingColumnError(f"{conf_key} = {sql!r} does not resolve against the source columns {list(source_cols)}: {first}") from None
    return expr


def _quote(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


_PATTERN_TOKEN = re.compile(r"'[^']*'|([A-Za-z])\1*|.")
_SWAP_DAY_MONTH = str.maketrans("dM", "Md")


def swap_day_month(fmt: str) -> str:
    """The Spark datetime pattern with numeric day and month swapped (dd/MM/yyyy <-> MM/dd/yyyy).

    Parameters
    ----------
    fmt : str
        A Spark datetime pattern; quoted text and month names (MMM) are kept.

    Returns
    -------
    str
    """
    out = []
    for m in _PATTERN_TOKEN.finditer(fmt):
        tok = m.group(0)
        if m.group(1) in ("d", "M") and len(tok) <= 2:
            tok = tok.translate(_SWAP_DAY_MONTH)
        out.append(tok)
    return "".join(out)


def ambiguous_formats(formats: Sequence[str]) -> tuple[str, str] | None:
    """Two patterns that differ only by day and month swapped (dd/MM/yyyy vs MM/dd/yyyy), or None.

    Tried in order, such a pair reads 03/04/2021 with the first and 13/04/2021 with the second, so
    one file silently mixes two calendars; a dataset must name the one its source uses.

    Parameters
    ----------
    formats : sequence of str
        A dataset's `timestamp_formats`.

    Returns
    -------
    tuple of str or None
        The first such pair, in their order in `formats`.
    """

    plain = [f for f in formats if f not in EPOCH_FORMATS]
    for i, a in enumerate(plain):
        for b in plain[i + 1 :]:
            if a != b and swap_day_month(a) == b:
                return a, b
    return None


# ---------------------------------------------------------------------------------------------
# Validation, duplicates, classification
# ---------------------------------------------------------------------------------------------
def validate(mapped: DataFrame, kind: str, rules: IngestConfig, now: datetime) -> DataFrame:
    """Add `reasons` (array of reason codes, in rule order) and `reason` (the first, null = valid).

    Rules (thresholds from `ingest.*` in conf; codes listed in docs/DATA_CONTRACT.md):
    excluded_by_filter, malformed_row (field count differs from the header / unbalanced quote /
    unparseable JSON line), invalid_encoding (U+FFFD from undecodable bytes in a text value),
    missing_<col> / unparseable_<col> for required columns, unparseable_<ts col> (day_month_swapped_<ts col>
    when the value fits the declared patterns only with day and month swapped), open_session,
    lat/lon/soc_pct_out_of_range (degrees, percent), <ts col>_too_old (year < min_valid_year),
    <ts col>_in_future (> now + max_future_days), negative_kwh, end_before_start, unknown_status,
    missing_unit (a rollout naming neither station nor charger).

    Parameters
    ----------
    mapped : DataFrame
        `map_columns` output.
    kind : str
        Canonical kind.
    rules : IngestConfig
    now : datetime.datetime
        The ingest time (UTC, naive or aware).

    Returns
    -------
    DataFrame
        `mapped` + `reasons` and `reason`.
    """
    schema, required, _key, ts_cols, _table = KINDS[kind]
    names = set(schema.fieldNames())
    unparsed = F.col(UNPARSED)

    def flagged(c: str) -> Column:
        """Whether column `c`'s value was present but did not parse.

        Parameters
        ----------
        c : str
            Canonical column.

        Returns
        -------
        Column
            Boolean.
        """
        return F.array_contains(unparsed, c)

    def unparseable(c: str) -> Column:
        """The reason code of an unparsed value of `c`.

        Parameters
        ----------
        c : str
            Canonical column.

        Returns
        -------
        Column
            ``day_month_swapped_<c>`` or ``unparseable_<c>``.
        """
        # A value that fits only with day and month swapped gets its own code: the fix is the pattern.
        swapped = F.array_contains(F.col(_SWAPPED), c) if _SWAPPED in mapped.columns else F.lit(False)
        return F.when(swapped, F.lit(f"day_month_swapped_{c}")).otherwise(F.lit(f"unparseable_{c}"))

    checks: list[Column] = [
        F.when(F.col(_EXCLUDED), F.lit("excluded_by_filter")),
        F.when(F.col(_MALFORMED), F.lit("malformed_row")),
        F.when(F.col(_BAD_ENCODING), F.lit("invalid_encoding")),
    ]
    for c in required:
        checks.append(F.when(F.col(c).isNull(), F.when(flagged(c), unparseable(c)).otherwise(F.lit(f"missing_{c}"))))
    for c in ts_cols:
        if c not in required:
            checks.append(F.when(flagged(c), unparseable(c)))
    if kind == "charging_sessions" and rules.quarantine_open_sessions:
        checks.append(F.when(F.col("end_ts").isNull() & ~flagged("end_ts"), F.lit("open_session")))
    for c, (lo, hi) in (("lat", rules.lat_range), ("lon", rules.lon_range), ("soc_pct", rules.soc_range)):
        if c in names:
            checks.append(F.when(~F.col(c).between(lo, hi), F.lit(f"{c}_out_of_range")))
    latest = F.lit(_utc(now) + timedelta(days=rules.max_future_days)).cast("timestamp")
    for c in ts_cols:
        checks.append(F.when(F.year(c) < rules.min_valid_year, F.lit(f"{c}_too_old")))
        checks.append(F.when(F.col(c) > latest, F.lit(f"{c}_in_future")))
    if kind == "charging_sessions":
        checks.append(F.when(F.col("kwh") < 0, F.lit("negative_kwh")))
        checks.append(F.when(F.col("end_ts") < F.col("start_ts"), F.lit("end_before_start")))
    if kind == "charger_status":
        checks.append(F.when(~F.col("status").isin(*OCPP_STATUSES), F.lit("unknown_status")))
    if kind == "rollouts":  # a change to no site and no charger cannot be evaluated
        checks.append(F.when(F.col("station_id").isNull() & F.col("charger_id").isNull(), F.lit("missing_unit")))
    reasons = F.array_compact(F.array(*checks))
    return mapped.withColumn(REASONS, reasons).withColumn(REASON, F.when(F.size(REASONS) > 0, F.col(REASONS)[0]))


def mark_duplicates(validated: DataFrame) -> DataFrame:
    """Add `ingest_status`: duplicate, quarantined or valid.

    'duplicate' for every copy after the first of an identical raw record within one dataset
    (byte-identical rows, e.g. a device re-sending), else 'quarantined' when a reason is set, else
    'valid'. Rows with the same key but other values are *not* duplicates here: they reach bronze
    and the clean stage flags them (near-duplicates).

    Parameters
    ----------
    validated : DataFrame
        `validate` output.

    Returns
    -------
    DataFrame
        `validated` + `ingest_status`; `raw_record` kept only for rows that are not valid (null otherwise).
    """
    first = Window.partitionBy(SOURCE_NAME, RAW_HASH).orderBy(SOURCE_FILE, RAW_RECORD)
    copy_no = F.row_number().over(first)
    status = F.when(copy_no > 1, F.lit(DUPLICATE)).when(F.col(REASON).isNotNull(), F.lit(QUARANTINED)).otherwise(F.lit(VALID))
    # Valid rows reach bronze as canonical columns: only quarantined and duplicate rows keep the
    # raw text, which keeps the classified rows that ingest caches small.
    return validated.withColumn(STATUS, status).withColumn(RAW_RECORD, F.when(F.col(STATUS) != VALID, F.col(RAW_RECORD)))


def classify(raw: DataFrame, spec: DatasetSpec, kind: str, rules: IngestConfig, now: datetime, where: str | None = None) -> DataFrame:
    """map_columns -> validate -> mark_duplicates.

    Parameters
    ----------
    raw : DataFrame
        `read_raw` output.
    spec : DatasetSpec
    kind : str
        Canonical kind.
    rules : IngestConfig
    now : datetime.datetime
        The ingest time (UTC).
    where : str, optional
        The dataset's conf key, for error messages.

    Returns
    -------
    DataFrame
        One row per raw record: canonical columns, lineage, `reasons`, `reason`, `ingest_status`.

    Raises
    ------
    IngestInputError
        The mapping does not fit the data or the conf.
    """
    return map_columns(raw, spec, kind, where).transform(lambda df: validate(df, kind, rules, now)).transform(mark_duplicates)


def row_hash(kind: str) -> Column:
    """SHA-256 of the canonical values: equal hashes = the same canonical record.

    Parameters
    ----------
    kind : str
        Canonical kind.

    Returns
    -------
    Column
        Hex string.
    """
    schema = KINDS[kind][0]
    return F.sha2(F.to_json(F.struct(*[F.col(c) for c in schema.fieldNames()]), {"ignoreNullFields": "false"}), 256)


def bronze_rows(classified: DataFrame, kind: str, partition_column: str, run_id: str, ingested_at: datetime) -> DataFrame:
    """Valid rows in bronze layout.

    Parameters
    ----------
    classified : DataFrame
        `classify` output.
    kind : str
        Canonical kind.
    partition_column : str
        Name of the date partition column (`ingest.partition_column`).
    run_id : str
        The ingest run's id.
    ingested_at : datetime.datetime
        The ingest time (UTC).

    Returns
    -------
    DataFrame
        Canonical columns, lineage (source_name, source_file), row_hash, ingest_run_id,
        ingested_at, and for time-series kinds `partition_column`: the UTC date of the first
        timestamp column.
    """
    schema, _req, _key, ts_cols, _table = KINDS[kind]
    cols = [F.col(f.name).cast(f.dataType).alias(f.name) for f in schema.fields]
    out = classified.where(F.col(STATUS) == VALID).select(
        *cols,
        SOURCE_NAME,
        SOURCE_FILE,
        row_hash(kind).alias(ROW_HASH),
        F.lit(run_id).alias(RUN_ID),
        F.lit(_utc(ingested_at)).cast("timestamp").alias(INGESTED_AT),
    )
    if ts_cols:
        out = out.withColumn(partition_column, F.to_date(ts_cols[0]))  # session time zone is UTC
    return out


def bronze_merge_keys(kind: str) -> list[str]:
    """Natural key + row_hash, the MERGE key of bronze.<kind>.

    A re-read row is a no-op; a changed row under the same key is kept as a new row (bronze is
    history; near-duplicate telemetry must reach the clean stage).

    Parameters
    ----------
    kind : str
        Canonical kind.

    Returns
    -------
    list of str
    """
    return [*KINDS[kind][2], ROW_HASH]


QUARANTINE_KEYS = [SOURCE_NAME, RAW_HASH]


def quarantine_rows(classified: DataFrame, kind: str, run_id: str, ingested_at: datetime) -> DataFrame:
    """Invalid rows with the raw record as JSON text, the source file and the reason codes.

    Parameters
    ----------
    classified : DataFrame
        `classify` output.
    kind : str
        Canonical kind.
    run_id : str
        The ingest run's id.
    ingested_at : datetime.datetime
        The ingest time (UTC).

    Returns
    -------
    DataFrame
        Quarantined rows: kind, source_name, source_file, reason, reasons, raw_record, raw_hash,
        ingest_run_id, ingested_at.
    """
    return classified.where(F.col(STATUS) == QUARANTINED).select(
        F.lit(kind).alias("kind"),
        SOURCE_NAME,
        SOURCE_FILE,
        REASON,
        REASONS,
        RAW_RECORD,
        RAW_HASH,
        F.lit(run_id).alias(RUN_ID),
        F.lit(_utc(ingested_at)).cast("timestamp").alias(INGESTED_AT),
    )


def new_rows(batch: DataFrame, existing: DataFrame | None, keys: Sequence[str]) -> DataFrame:
    """Rows of `batch` (one per key) whose key is not in `existing` yet (None = empty table).

    Parameters
    ----------
    batch : DataFrame
    existing : DataFrame or None
        The target table.
    keys : sequence of str

    Returns
    -------
    DataFrame
        `batch`'s columns.
    """
    distinct = batch.dropDuplicates(list(keys))
    if existing is None:
        return distinct
    return distinct.join(existing.select(*keys).distinct(), on=list(keys), how="left_anti").select(*batch.columns)


def batch_partitions(batch: DataFrame, column: str) -> list[date | None]:
    """The date partitions `batch` has rows in (None for rows without a date).

    Bounds the bronze scans of an ingest (the key lookup and the MERGE) to the days the batch
    touches (`partition_predicate`).

    Parameters
    ----------
    batch : DataFrame
        Rows with the DateType partition `column`.
    column : str
        The partition column (`ingest.partition_column`).

    Returns
    -------
    list of datetime.date or None
    """
    return [r[0] for r in batch.select(column).distinct().collect()]  # bounded: one row per day of the batch


def partition_predicate(column: str, days: Sequence[date | None], alias: str = "") -> str:
    """A SQL predicate matching rows in the partitions `days`; Delta prunes files by it.

    Parameters
    ----------
    column : str
        The DateType partition column.
    days : sequence of datetime.date or None
        From `batch_partitions`.
    alias : str
        Table alias the column is qualified with (``t`` inside a MERGE condition).

    Returns
    -------
    str
        ``[alias.]`column` IN (DATE'...', ...)``, ``OR ... IS NULL`` when None is among the days;
        ``false`` for no days.
    """
    ref = f"{alias + '.' if alias else ''}`{column}`"
    dated = sorted(d for d in days if d is not None)
    literals = ", ".join(f"DATE'{d.isoformat()}'" for d in dated)
    terms = [f"{ref} IN ({literals})"] if dated else []
    if len(dated) < len(days):
        terms.append(f"{ref} IS NULL")
    return "(" + " OR ".join(terms) + ")" if terms else "false"


IN_TABLE = "__in_table"


def mark_in_table(batch: DataFrame, existing: DataFrame | None, keys: Sequence[str]) -> DataFrame:
    """`batch` with a boolean `__in_table`: whether its key is already in `existing` (None = no table).

    One join serves both counts of the reconciliation (rows already in bronze, new rows) and the
    rows to insert, so bronze is scanned once.

    Parameters
    ----------
    batch : DataFrame
    existing : DataFrame or None
        The target table.
    keys : sequence of str

    Returns
    -------
    DataFrame
        `batch` + `__in_table`, same rows.
    """
    if existing is None:
        return batch.withColumn(IN_TABLE, F.lit(False))
    present = existing.select(*keys).distinct().withColumn(IN_TABLE, F.lit(True))
    return batch.join(present, on=list(keys), how="left").select(*batch.columns, F.coalesce(F.col(IN_TABLE), F.lit(False)).alias(IN_TABLE))


def bronze_row_counts(keys: Sequence[str]) -> list[Column]:
    """Aggregates over `mark_in_table`'s output.

    Parameters
    ----------
    keys : sequence of str
        The merge keys.

    Returns
    -------
    list of Column
        existing_in_bronze, new_in_run (rows) and new_records (distinct keys among the new rows:
        what the bronze commit is given).
    """
    in_table = F.col(IN_TABLE)
    return [
        F.count(F.when(in_table, F.lit(1))).alias("existing_in_bronze"),
        F.count(F.when(~in_table, F.lit(1))).alias("new_in_run"),
        F.count_distinct(F.when(~in_table, F.struct(*keys))).alias("new_records"),
    ]


class ReconciliationError(RuntimeError):
    """Ingest's numbers do not add up: rows were lost, doubled or written by someone else."""


@dataclass(frozen=True)
class IngestCounts:
    """One dataset's numbers, each measured on its own (none derived from the others).

    Attributes
    ----------
    read, quarantined, duplicates_raw : int
        The classification (rows per ingest_status).
    existing_in_bronze, new_in_run : int
        Valid rows whose canonical record is / is not in bronze yet (a join with bronze).
    new_records : int
        Distinct canonical records among the new ones (what the bronze commit is given).
    bronze_inserted : int
        Delta's own metric of that commit.
    quarantine_new, quarantine_inserted : int
        The same for the quarantine commit.
    """

    read: int
    quarantined: int
    duplicates_raw: int
    existing_in_bronze: int
    new_in_run: int
    new_records: int
    bronze_inserted: int
    quarantine_new: int = 0
    quarantine_inserted: int = 0

    @property
    def repeated_in_run(self) -> int:
        """Valid rows repeating a canonical record of this run that is not in bronze yet.

        Returns
        -------
        int
        """
        return self.new_in_run - self.new_records

    @property
    def duplicates_existing(self) -> int:
        """The audit's duplicates_existing: already in bronze, or earlier in this run.

        Returns
        -------
        int
        """
        return self.existing_in_bronze + self.repeated_in_run


def reconcile(c: IngestCounts) -> list[str]:
    """What does not add up, as sentences with the numbers (empty when everything does).

    rows read = bronze inserted + quarantined + duplicates raw + already in bronze + repeated in
    run, with bronze inserted taken from Delta's metric (not from what the job meant to write);
    and each commit inserted exactly the new records it was given (fewer: another writer inserted
    some in between; more: the MERGE matched differently from the job's join).

    Parameters
    ----------
    c : IngestCounts

    Returns
    -------
    list of str
    """
    problems = []
    accounted = c.bronze_inserted + c.quarantined + c.duplicates_raw + c.existing_in_bronze + c.repeated_in_run
    if accounted != c.read:
        problems.append(
            f"rows read {c.read} != bronze inserted {c.bronze_inserted} + quarantined {c.quarantined} + duplicates raw "
            f"{c.duplicates_raw} + already in bronze {c.existing_in_bronze} + repeated in run {c.repeated_in_run} = {accounted}"
        )
    if c.bronze_inserted != c.new_records:
        problems.append(f"the bronze commit inserted {c.bronze_inserted} rows (Delta's metric) but was given {c.new_records} new records")
    if c.quarantine_inserted != c.quarantine_new:
        problems.append(f"the quarantine commit inserted {c.quarantine_inserted} rows (Delta's metric) but was given {c.quarantine_new} new rows")
    return problems


def status_counts(classified: DataFrame) -> DataFrame:
    """Rows per (ingest_status, reason): the numbers of the audit row.

    Parameters
    ----------
    classified : DataFrame
        `classify` output.

    Returns
    -------
    DataFrame
        One row per (ingest_status, reason): count.
    """
    return classified.groupBy(STATUS, REASON).count()


def nulled_value_counts(classified: DataFrame) -> DataFrame:
    """Per optional column, how many kept rows had a present but unparseable value (now null).

    Parameters
    ----------
    classified : DataFrame
        `classify` output.

    Returns
    -------
    DataFrame
        One row per column: column, count.
    """
    return classified.where(F.col(STATUS) == VALID).select(F.explode(UNPARSED).alias("column")).groupBy("column").count()


def spec_fingerprint(kind: str, spec: DatasetSpec, rules: IngestConfig) -> str:
    """Changes when the mapping or the rules change, so the file ledger re-reads the files.

    Parameters
    ----------
    kind : str
        Canonical kind.
    spec : DatasetSpec
    rules : IngestConfig

    Returns
    -------
    str
        16 hex characters of a SHA-256.
    """
    payload = json.dumps([kind, spec.model_dump(mode="json"), rules.model_dump(mode="json")], sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def _utc(ts: datetime) -> datetime:
    """An aware UTC datetime (naive input is taken as UTC). PySpark converts naive datetimes with
    the process' local zone, so literals and audit rows always get aware values."""
    if ts.tzinfo is None:
        return ts.replace(tzinfo=timezone.utc)
    return ts.astimezone(timezone.utc)


# ---------------------------------------------------------------------------------------------
# Audit and ledger rows
# ---------------------------------------------------------------------------------------------
AUDIT_TABLE = "audit.ingest_runs"  # one row per dataset and run
LEDGER_TABLE = "audit.ingest_files"  # one row per file read (or set aside as unreadable)

AUDIT_SCHEMA = T.StructType(
    [
        T.StructField("run_id", T.StringType()),
        T.StructField("started_at", T.TimestampType()),
        T.StructField("kind", T.StringType()),
        T.StructField("source_name", T.StringType()),
        T.StructField("path", T.StringType()),
        T.StructField("status", T.StringType()),  # ingested | nothing_new | empty | no_files | unreadable | reconciliation_failed | not_run
        T.StructField("files_seen", T.LongType()),
        T.StructField("files_read", T.LongType()),
        T.StructField("files_unreadable", T.LongType()),  # set aside (ledger status unreadable); null in older rows
        T.StructField("rows_read", T.LongType()),
        T.StructField("rows_bronze", T.LongType()),  # new rows written to bronze
        T.StructField("rows_quarantined", T.LongType()),
        T.StructField("rows_duplicate", T.LongType()),  # = duplicates_raw + duplicates_existing
        T.StructField("duplicates_raw", T.LongType()),  # identical raw records within the run
        T.StructField("duplicates_existing", T.LongType()),  # canonical record already in bronze / earlier in run
        T.StructField("quarantine_reasons", T.MapType(T.StringType(), T.LongType())),
        T.StructField("nulled_values", T.MapType(T.StringType(), T.LongType())),
        T.StructField("bronze_table", T.StringType()),
        T.StructField("bronze_version", T.LongType()),
        T.StructField("message", T.StringType()),
    ]
)

LEDGER_SCHEMA = T.StructType(
    [
        T.StructField("source_name", T.StringType()),
        T.StructField("kind", T.StringType()),
        T.StructField("path", T.StringType()),
        T.StructField("size", T.LongType()),
        T.StructField("modification_time", T.LongType()),
        T.StructField("spec_fingerprint", T.StringType()),
        T.StructField("run_id", T.StringType()),
        T.StructField("ingested_at", T.TimestampType()),
        # ingested | unreadable, and why (null in older ledgers = ingested).
        T.StructField("status", T.StringType()),
        T.StructField("reason", T.StringType()),
    ]
)
LEDGER_INGESTED, LEDGER_UNREADABLE = "ingested", "unreadable"

"""The one SparkSession builder used by every job, test and notebook.

Delta SQL extension + catalog, Kryo with Sedona's registrator, AQE on, session timezone UTC.
Sedona's ST_* functions are registered on first use (`with_sedona`), not with the session. Locally the Delta/Sedona jars come from the
offline cache `.jars/` (filled by `bin/fetch-jars`); on EMR/Glue `spark.jars`/`--packages`
are set by spark-submit and `spark.jars_dir` is null in conf.
"""

from __future__ import annotations

import glob
import hashlib
import logging
import os
import shlex
import threading
from collections.abc import Sequence
from typing import Any

from pyspark.sql import SparkSession

from common.core.config import Config, ConfigError, SparkConfig
from common.core.versions import ALL_COORDINATES, jar_file_name

log = logging.getLogger(__name__)


def local_jars(spark_cfg: SparkConfig, storage_root_resolver) -> list[str]:
    """Absolute paths of the cached jars, or a clear error telling how to fetch them.

    Parameters
    ----------
    spark_cfg : SparkConfig
        `jars_dir`: the jar cache; null on clusters.
    storage_root_resolver : callable
        Makes `jars_dir` absolute (`StorageConfig.resolve`).

    Returns
    -------
    list of str
        One jar per coordinate of ALL_COORDINATES; empty when `jars_dir` is null.

    Raises
    ------
    ConfigError
        A jar is missing (the message says to run `bin/fetch-jars`).
    """
    if not spark_cfg.jars_dir:
        return []
    jars_dir = storage_root_resolver(spark_cfg.jars_dir)
    wanted = [os.path.join(jars_dir, jar_file_name(c)) for c in ALL_COORDINATES]
    missing = [p for p in wanted if not os.path.exists(p)]
    if missing:
        raise ConfigError(
            f"missing Spark jars {', '.join(os.path.basename(m) for m in missing)} in {jars_dir}: run `bin/fetch-jars` once (needs Maven Central), or set spark.jars_dir: null on a cluster"
        )
    return wanted


def spark_conf(cfg: Config) -> dict[str, str]:
    """Every Spark setting the builder applies, as plain strings (also used by deploy tooling).

    Parameters
    ----------
    cfg : Config
        `spark`: app name, shuffle partitions, UI flags and `extra` settings (which win).

    Returns
    -------
    dict of str to str
        Spark config key -> value.
    """
    s = cfg.spark
    conf = {
        "spark.app.name": s.app_name,
        "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
        "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
        "spark.serializer": "org.apache.spark.serializer.KryoSerializer",
        "spark.kryo.registrator": "org.apache.sedona.core.serde.SedonaKryoRegistrator",
        "spark.sql.adaptive.enabled": "true",
        "spark.sql.adaptive.coalescePartitions.enabled": "true",
        "spark.sql.adaptive.skewJoin.enabled": "true",
        "spark.sql.shuffle.partitions": str(s.shuffle_partitions),
        "spark.sql.session.timeZone": "UTC",
        # Unparseable datetime strings become NULL (ingest quarantines them with a reason) instead of
        # SparkUpgradeException for strings the pre-3.0 parser would have accepted (e.g. '20181101 45').
        "spark.sql.legacy.timeParserPolicy": "CORRECTED",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        # Grouped-UDF batches: keep Python workers' memory bounded on big vehicles.
        "spark.sql.execution.arrow.maxRecordsPerBatch": "20000",
        "spark.ui.enabled": str(s.ui_enabled).lower(),
        "spark.ui.showConsoleProgress": str(s.progress_bar).lower(),
        "spark.databricks.delta.schema.autoMerge.enabled": "false",
        # Delta's optimistic concurrency needs no lock on a local/HDFS file system. On S3 it needs the
        # DynamoDB LogStore, which conf/emr.yaml and conf/glue.yaml set (docs/DEPLOY.md).
        "spark.sql.sources.partitionOverwriteMode": "static",
        # FAIR between pools, FIFO inside the default pool (the jobs' own order is unchanged): the run
        # lease's renewals (common/io/lease.py, own pool) get a task slot while a long stage holds the
        # others, instead of queueing behind it until the lease expires.
        "spark.scheduler.mode": "FAIR",
        # Delta's VACUUM lists the table's directories in one task per slot of this setting, 10000 by
        # default: 47 s for a three-file table on 2 cores, 3.7 s with 4 (docs/BENCHMARKS.md). The
        # shuffle width is the configured measure of the cluster's parallelism; Spark's own file
        # listing uses it only above 32 paths.
        "spark.sql.sources.parallelPartitionDiscovery.parallelism": str(s.shuffle_partitions),
    }
    conf.update(metastore_conf(cfg))
    conf.update(s.extra)
    return conf


# The AWS Glue Data Catalog's Hive client (on EMR and Glue's class path; Glue's --enable-glue-datacatalog sets the same).
GLUE_CLIENT_FACTORY = "com.amazonaws.glue.catalog.metastore.AWSGlueDataCatalogHiveClientFactory"


def metastore_path(cfg: Config) -> str:
    """Folder of the local metastore: `catalog.local_path`, else <storage.root>/_metastore.

    Parameters
    ----------
    cfg : Config

    Returns
    -------
    str
        Absolute path.
    """
    return cfg.storage.resolve(cfg.catalog.local_path or f"{cfg.storage.root.rstrip('/')}/_metastore")


def metastore_conf(cfg: Config) -> dict[str, str]:
    """Spark settings of the metastore that names the tables (`catalog.metastore`).

    Parameters
    ----------
    cfg : Config

    Returns
    -------
    dict of str to str
        {} for 'none' (Spark's in-memory catalog); the Hive catalog on a Derby database under
        `metastore_path` for 'local'; the Hive catalog on the Glue Data Catalog for 'glue'.
    """
    if cfg.catalog.metastore == "none":
        return {}
    conf = {"spark.sql.catalogImplementation": "hive"}
    if cfg.catalog.metastore == "local":
        root = metastore_path(cfg)
        conf["spark.hadoop.javax.jdo.option.ConnectionURL"] = f"jdbc:derby:;databaseName={root}/metastore_db;create=true"
        conf["spark.sql.warehouse.dir"] = f"{root}/warehouse"
    else:
        conf["spark.hadoop.hive.metastore.client.factory.class"] = GLUE_CLIENT_FACTORY
    return conf


DRIVER_JAVA_OPTIONS = "spark.driver.extraJavaOptions"


def java_executable() -> str | None:
    """The `java` that PySpark launches: $JAVA_HOME/bin/java, else the one on PATH (None: none).

    Returns
    -------
    str or None
    """
    import shutil

    return os.path.join(os.environ["JAVA_HOME"], "bin", "java") if os.environ.get("JAVA_HOME") else shutil.which("java")


def class_archive_path(jars_dir: str, jars: list[str]) -> str:
    """Where the driver's class-data sharing archive for this Java, Spark and jar set lives.

    A HotSpot CDS archive of the classes a local driver loads (Spark, Delta, Sedona) is mapped at
    JVM start instead of loading and verifying them: ~7 s less per driver start on 2 cores
    (docs/BENCHMARKS.md, "A job's fixed cost"). `make setup` builds it (deploy/class_archive.py).
    The name is a hash of the Java installation (path, `release` file, size and time of libjvm),
    PySpark's version and jars, and the driver's jars (names, sizes, times): an updated JDK, a
    reinstalled PySpark or another jar set gets a new name, which setup builds. HotSpot also
    validates the archive at start and runs without it when it does not match.

    Parameters
    ----------
    jars_dir : str
        The jar cache (absolute).
    jars : list of str
        The jars on the driver's class path, in order (`local_jars`).

    Returns
    -------
    str
        ``<jars_dir>/jvm-classes-<key>.jsa``.
    """
    import pyspark

    java = os.path.realpath(java_executable() or "java")
    java_home = os.path.dirname(os.path.dirname(java))
    spark_jars = os.path.join(os.environ.get("SPARK_HOME") or os.path.dirname(pyspark.__file__), "jars")
    parts = [java, pyspark.__version__]
    release = os.path.join(java_home, "release")
    if os.path.isfile(release):
        with open(release, encoding="utf-8", errors="replace") as f:
            parts.append(f.read())
    spark_files = sorted(os.path.join(spark_jars, n) for n in os.listdir(spark_jars)) if os.path.isdir(spark_jars) else []
    for path in [os.path.join(java_home, "lib", "server", "libjvm.so"), *spark_files, *jars]:
        if os.path.exists(path):
            st = os.stat(path)
            parts.append(f"{os.path.basename(path)} {st.st_size} {st.st_mtime_ns}")
        else:
            parts.append(os.path.basename(path))
    key = hashlib.sha256("\n".join(parts).encode()).hexdigest()[:12]
    return os.path.join(jars_dir, f"jvm-classes-{key}.jsa")


def java_options(cfg: Config, *options: str) -> str:
    """The driver's JVM options: those of `spark.extra` (if any), then `options`.

    Parameters
    ----------
    cfg : Config
    *options : str
        JVM flags to add.

    Returns
    -------
    str
        One space-separated string for spark.driver.extraJavaOptions.
    """
    return " ".join(o for o in (cfg.spark.extra.get(DRIVER_JAVA_OPTIONS, ""), *options) if o)


def class_archive_options(cfg: Config, jars: list[str]) -> str | None:
    """The driver's JVM options with the class archive, or None when there is no archive to use.

    Only a local master starts its driver JVM from this process; on a cluster spark-submit
    started it already.

    Parameters
    ----------
    cfg : Config
        `spark.master`, `spark.jars_dir`, `spark.extra` (JVM options kept).
    jars : list of str
        The driver's jars (`local_jars`).

    Returns
    -------
    str or None
    """
    if not jars or not cfg.spark.jars_dir or not (cfg.spark.master or "").startswith("local"):
        return None
    own = cfg.spark.extra.get(DRIVER_JAVA_OPTIONS, "")
    if "-Xshare" in own or "SharedArchiveFile" in own:  # the user's own class-sharing setting wins
        return None
    archive = class_archive_path(cfg.storage.resolve(cfg.spark.jars_dir), jars)
    if not os.path.exists(archive):
        return None
    return java_options(cfg, f"-XX:SharedArchiveFile={shlex.quote(archive)}", "-Xshare:auto")


def build_session(cfg: Config, extra_jars: Sequence[str] = ()) -> SparkSession:
    """Create (or return the running) SparkSession configured for Delta + Sedona.

    Parameters
    ----------
    cfg : Config
        `spark` (master, settings, jar cache, driver memory, log level) and `storage`.
    extra_jars : sequence of str, optional
        Jars appended to the cached ones (the test session's s3a jars, tests/conftest.py); they are
        part of the class archive's key like the others.

    Returns
    -------
    SparkSession
        Without Sedona's ST_* functions: code that uses them calls `with_sedona` first.
    """
    builder = SparkSession.builder
    if cfg.spark.master:
        builder = builder.master(cfg.spark.master)
    for key, value in spark_conf(cfg).items():
        builder = builder.config(key, value)
    jars = local_jars(cfg.spark, cfg.storage.resolve) + list(extra_jars)
    if jars:
        builder = builder.config("spark.jars", ",".join(jars))
        options = class_archive_options(cfg, jars)
        if options:
            builder = builder.config(DRIVER_JAVA_OPTIONS, options)
    if cfg.spark.driver_memory and cfg.spark.master and cfg.spark.master.startswith("local"):
        builder = builder.config("spark.driver.memory", cfg.spark.driver_memory)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel(cfg.spark.log_level)
    if cfg.catalog.metastore == "local":  # Derby boots on the first catalog call: its log goes beside its database, not to the working directory
        root = metastore_path(cfg)
        os.makedirs(root, exist_ok=True)  # Derby opens its log before it creates its database folder
        jvm_of(spark).java.lang.System.setProperty("derby.stream.error.file", f"{root}/derby.log")
    return spark


# AQE's starting number of shuffle partitions (it defaults to spark.sql.shuffle.partitions).
INITIAL_PARTITIONS = "spark.sql.adaptive.coalescePartitions.initialPartitionNum"
# Every heavy stage scales with the fleet's telemetry, so its size sizes the shuffles.
SIZING_TABLE = "bronze.telematics"


def shuffle_partitions_for(data_bytes: int, s: SparkConfig) -> int:
    """One shuffle partition per `bytes_per_shuffle_partition` of input, within [shuffle_partitions, max_shuffle_partitions].

    Why not a fixed number: AQE coalesces small shuffle partitions but never splits big ones, and a
    frame that is persisted keeps the partitions its shuffle started with (Spark 3.5 turns off the
    final stage's coalescing for a cached plan). A number small enough for a demo fleet gives a large
    fleet cached blocks too big to re-read from disk onto the heap (they are read whole:
    OutOfMemoryError, docs/BENCHMARKS.md); one large enough for a large fleet cuts every cached
    frame of a demo fleet into tiny partitions.

    Parameters
    ----------
    data_bytes : int
        Size of the input (bytes).
    s : SparkConfig

    Returns
    -------
    int
        Shuffle partitions; `shuffle_partitions` when `bytes_per_shuffle_partition` is null.
    """
    if not s.bytes_per_shuffle_partition:
        return s.shuffle_partitions
    wanted = -(-max(data_bytes, 0) // s.bytes_per_shuffle_partition)
    return max(s.shuffle_partitions, min(s.max_shuffle_partitions, wanted))


def size_shuffles(spark: SparkSession, cfg: Config, data_bytes: int | None = None) -> int:
    """Set the session's starting shuffle partitions from the size of SIZING_TABLE, or from `data_bytes`.

    Ingest passes each dataset's source-file bytes: bronze may not exist yet, and a small dataset
    needs few partitions. A runtime setting: the pipeline calls this before every stage, so the
    stages after ingest see the telemetry's new size.

    Parameters
    ----------
    spark : SparkSession
    cfg : Config
        `spark` sizing settings; `storage` locates SIZING_TABLE.
    data_bytes : int, optional
        Input size (bytes); default the size of SIZING_TABLE's current files (0 when absent).

    Returns
    -------
    int
        The partitions set (spark.sql.adaptive.coalescePartitions.initialPartitionNum).
    """
    from common.io import tables

    size = data_bytes if data_bytes is not None else tables.size_bytes(spark, cfg, SIZING_TABLE) or 0
    n = shuffle_partitions_for(size, cfg.spark)
    if spark.conf.get(INITIAL_PARTITIONS, None) != str(n):
        log.info("shuffles start with %d partitions (%s: %.0f MiB)", n, SIZING_TABLE if data_bytes is None else "input files", size / 2**20)
        spark.conf.set(INITIAL_PARTITIONS, str(n))
    return n


def jvm_of(spark: SparkSession) -> Any:
    """The driver JVM through Py4J (`spark.sparkContext._jvm`, e.g. `.org.apache.hadoop.fs.Path`).

    pyspark types it Optional (a class attribute that stays None until a SparkContext has launched
    the Py4J gateway); a running session always has it.

    Parameters
    ----------
    spark : SparkSession

    Returns
    -------
    Any
        The Py4J JVM view.

    Raises
    ------
    RuntimeError
        The SparkContext has no Py4J gateway.
    """
    gateway = spark.sparkContext._jvm
    if gateway is None:
        raise RuntimeError("no JVM gateway: spark.sparkContext._jvm is None (the SparkContext never started its Py4J gateway)")
    return gateway


_SEDONA_LOCK = threading.Lock()
_SEDONA_SESSIONS: set[int] = set()  # JVM SparkSessions (identity hash) with Sedona registered


def with_sedona(spark: SparkSession) -> SparkSession:
    """Register Sedona's ST_* functions and spatial-join rules on this session, once.

    Called by each function that builds an ST_ expression (tests/test_architecture.py checks the
    SQL text literals). Lazy because `SedonaContext.create` took 3-8 s in a cold driver, paid by
    every job while only clean, charging, stations and hotspots use Sedona; part of that is class
    loading the next Spark call pays instead (docs/BENCHMARKS.md, "a job's fixed cost").

    Parameters
    ----------
    spark : SparkSession

    Returns
    -------
    SparkSession
        The same session.
    """
    key = int(jvm_of(spark).java.lang.System.identityHashCode(spark._jsparkSession))
    with _SEDONA_LOCK:
        if key not in _SEDONA_SESSIONS:
            from sedona.spark import SedonaContext

            SedonaContext.create(spark)
            _SEDONA_SESSIONS.add(key)
    return spark


def python_for_workers() -> None:
    """Make executors use the same interpreter as the driver (venv), unless already set."""
    import sys

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)


def jar_cache_is_complete(jars_dir: str) -> bool:
    """Whether `jars_dir` holds the jar of every coordinate of ALL_COORDINATES.

    Parameters
    ----------
    jars_dir : str
        The jar cache folder.

    Returns
    -------
    bool
    """
    return all(glob.glob(os.path.join(jars_dir, jar_file_name(c))) for c in ALL_COORDINATES)

"""Tables by name: register the lakehouse's Delta tables in the session's metastore.

Each table `<layer>.<name>` of the catalog becomes the external table `<prefix><layer>.<name>`
(`catalog.database_prefix`) whose location is the table's folder, so `spark.sql("select * from
gold.driver_risk")` reads the same Delta table as `tables.read`. The metastore is the session's
(`catalog.metastore`, set up by `common.io.spark.metastore_conf`): a local Derby database or the
AWS Glue Data Catalog. Registration changes no data: a table whose folder moved is dropped from
the metastore (external: its files stay) and registered again at its new folder; a registration
whose folder holds no table any more is dropped. Comments and schemas come from the Delta log.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import unquote

from pyspark.sql import SparkSession

from common.core.config import Config
from common.io import tables
from common.io.spark import metastore_path

# Derby allows one process per database; its refusal is buried in the Hive client's error.
_DERBY_IN_USE = ("Another instance of Derby may have already booted the database", "Failed to start database")


@dataclass
class Registration:
    """What `register_tables` did.

    Attributes
    ----------
    registered : list of str
        Names registered for the first time.
    relocated : list of str
        Names whose registration pointed elsewhere and now points at the table's folder.
    unchanged : list of str
        Names already registered at the table's folder.
    dropped : list of str
        Registrations removed because their folder holds no Delta table any more.
    foreign : list of str
        Entries left alone: a managed table or view with the name, or the entry of an absent
        table that points at another folder.
    """

    registered: list[str] = field(default_factory=list)
    relocated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    foreign: list[str] = field(default_factory=list)

    @property
    def names(self) -> list[str]:
        """Every table now registered at its folder.

        Returns
        -------
        list of str
            `registered` + `relocated` + `unchanged`.
        """
        return self.registered + self.relocated + self.unchanged


def qualified_name(cfg: Config, table: str) -> str:
    """The metastore name of a catalog table.

    Parameters
    ----------
    cfg : Config
        `catalog.database_prefix`.
    table : str
        `<layer>.<name>`.

    Returns
    -------
    str
        `<prefix><layer>.<name>`.
    """
    layer, name = table.split(".", 1)
    return f"{cfg.catalog.database_prefix}{layer}.{name}"


def _same_folder(a: str, b: str) -> bool:
    """Whether two locations name the same folder ('file:/x/' and '/x' do)."""

    def norm(loc: str) -> str:
        """The location without a local file scheme or a trailing slash.

        Parameters
        ----------
        loc : str
            Path or URI.

        Returns
        -------
        str
            Comparable text.
        """
        for scheme in ("file://", "file:"):
            if loc.startswith(scheme):
                loc = loc[len(scheme) :]
                break
        return unquote(loc).rstrip("/")  # the metastore keeps a URI: '/EV lake' comes back as '/EV%20lake'

    return norm(a) == norm(b)


def _registered(spark: SparkSession, database: str, name: str) -> tuple[str, bool] | None:
    """(location, ours) of a metastore entry without reading its Delta log; None when absent.

    `ours` is True for an external Delta table, the only kind this module creates or drops: a
    managed table's files go with its entry, and a view has no location.
    """
    if not spark.catalog.tableExists(f"{database}.{name}"):
        return None
    entry = spark._jsparkSession.sessionState().catalog().externalCatalog().getTable(database, name)
    provider = entry.provider()
    ours = entry.tableType().name() == "EXTERNAL" and provider.isDefined() and str(provider.get()).lower() == "delta"
    location = str(entry.location().toString()) if entry.tableType().name() != "VIEW" else ""
    return location, ours


def _in_use(exc: BaseException) -> bool:
    """Whether an error, or a JVM exception it carries, is Derby refusing a second process."""
    texts = [str(exc)]
    java = getattr(exc, "_origin", None) or getattr(exc, "java_exception", None)
    while java is not None and len(texts) < 20:
        texts.append(str(java.toString()))
        java = java.getCause()
    return any(m in t for t in texts for m in _DERBY_IN_USE)


def _sql_text(value: str) -> str:
    """A SQL string literal."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def register_tables(spark: SparkSession, cfg: Config, names: tuple[str, ...]) -> Registration:
    """Register each existing table at its folder; drop registrations of tables that are gone.

    Parameters
    ----------
    spark : SparkSession
        A session whose catalog is the metastore (`common.io.spark.metastore_conf`); Spark's
        in-memory catalog works too (names last as long as the session).
    cfg : Config
        `storage` (the tables' folders) and `catalog`.
    names : tuple of str
        Catalog tables (`<layer>.<name>`) to register.

    Returns
    -------
    Registration

    Raises
    ------
    RuntimeError
        The local metastore is in use by another Spark process (Derby allows one at a time).
    """
    done = Registration()
    try:
        known = {db.name for db in spark.catalog.listDatabases()}
    except Exception as exc:
        if _in_use(exc):
            raise RuntimeError(
                f"the local metastore {metastore_path(cfg)} is in use by another Spark process (its Derby database allows one at a time): "
                "stop that session (a notebook or pyspark shell on this lakehouse) and run `python -m jobs.catalog` again; tables stay readable by path"
            ) from None
        raise
    for table in names:
        layer = table.split(".", 1)[0]
        database, name = qualified_name(cfg, table).split(".", 1)
        folder = cfg.storage.path(table)
        present = tables.exists(spark, cfg, table)
        if database not in known:
            if not present:
                continue
            spark.sql(f"CREATE DATABASE IF NOT EXISTS {database} COMMENT {_sql_text(f'ev-fleet-analytics {layer} tables')}")
            known.add(database)
        entry = _registered(spark, database, name)
        location, ours = entry if entry is not None else (None, False)
        if entry is not None and not ours:  # a managed table or view of someone else: never dropped
            done.foreign.append(table)
            continue
        if not present:
            if location is None:
                continue
            if _same_folder(location, folder):
                spark.sql(f"DROP TABLE {database}.{name}")
                done.dropped.append(table)
            else:
                done.foreign.append(table)
            continue
        if location is not None and _same_folder(location, folder):
            done.unchanged.append(table)
            continue
        if location is not None:  # an external Delta entry: dropping it leaves its files
            spark.sql(f"DROP TABLE {database}.{name}")
        spark.sql(f"CREATE TABLE {database}.{name} USING DELTA LOCATION {_sql_text(folder)}")
        (done.relocated if location is not None else done.registered).append(table)
    return done

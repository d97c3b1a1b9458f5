"""Delta table upkeep: compaction (Z-order on the catalog's `cluster_by`), CHECK constraints, VACUUM.

Every overwrite or append leaves the previous files in the table's folder (time travel needs them
for a while) and small appends leave many small files. `maintain_table` compacts the current
files (OPTIMIZE, Z-ordered where readers filter by vehicle or port), adds CHECK constraints so a
later write of a row breaking them fails instead of landing, and VACUUMs files unreferenced for
longer than ``maintain.vacuum_retention_hours``. Table contents do not change: OPTIMIZE rewrites
files in a commit with ``dataChange = false``.

Delta OSS cannot tighten a column to NOT NULL after creation ("TIGHTEN_NULLABILITY is not
supported"), so required columns get a ``<col> IS NOT NULL`` CHECK constraint instead, which
Delta enforces on every later write the same way.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field

from delta.tables import DeltaTable
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from common.core.catalog import TABLES
from common.core.config import DELTA_SAFE_RETENTION_HOURS, Config
from common.io.schemas import KINDS
from common.io.tables import first_row

log = logging.getLogger(__name__)

_CLEAN_TELEMATICS = "silver.telematics_clean"


@dataclass
class MaintenanceResult:
    """What `maintain_table` did to one table.

    Attributes
    ----------
    table : str
        Catalog name.
    files_before, files_after : int
        Files of the current version before and after compaction.
    zorder_by : tuple of str
        Columns the files were Z-ordered by (empty: plain compaction).
    constraints_added : list of str
        Names of CHECK constraints added in this run.
    constraints_skipped : dict of str to str
        Constraint name -> why it was not added (rows that break it, with their count).
    """

    table: str
    files_before: int
    files_after: int
    zorder_by: tuple[str, ...] = ()
    constraints_added: list[str] = field(default_factory=list)
    constraints_skipped: dict[str, str] = field(default_factory=dict)


def table_constraints(table: str, cfg: Config) -> dict[str, str]:
    """CHECK constraints a bronze or silver table keeps: required columns not null, ingest's ranges.

    Parameters
    ----------
    table : str
        Catalog name.
    cfg : Config
        ``ingest.lat_range``, ``lon_range`` and ``soc_range`` (degrees, degrees, SOC %) bound the
        positions and SOC that ingest lets into bronze.

    Returns
    -------
    dict of str to str
        Constraint name -> Spark SQL boolean expression; empty for tables without rules.
    """
    kinds = {bronze: (required, schema) for schema, required, _key, _ts, bronze in KINDS.values()}
    rules: dict[str, str] = {}
    if table in kinds:
        required, schema = kinds[table]
        columns = set(schema.fieldNames())
    elif table == _CLEAN_TELEMATICS:
        required, columns = ("vehicle_id", "ts"), {"lat", "lon", "soc_pct"}
    else:
        return rules
    for col in required:
        rules[f"{col}_not_null"] = f"{col} IS NOT NULL"
    ranges = {"lat": cfg.ingest.lat_range, "lon": cfg.ingest.lon_range, "soc_pct": cfg.ingest.soc_range}
    for col, (low, high) in ranges.items():
        if col in columns:
            rules[f"{col}_in_range"] = f"{col} IS NULL OR ({col} >= {float(low)} AND {col} <= {float(high)})"
    return rules


def _existing_constraints(dt: DeltaTable) -> dict[str, str]:
    props = first_row(dt.detail().select("properties"))["properties"] or {}
    prefix = "delta.constraints."
    return {k[len(prefix) :]: v for k, v in props.items() if k.startswith(prefix)}


def _add_constraints(spark: SparkSession, path: str, dt: DeltaTable, wanted: dict[str, str], result: MaintenanceResult) -> None:
    existing = _existing_constraints(dt)
    ident = f"delta.`{path}`"
    # Delta stores the expression as written; a changed rule (other ingest ranges) replaces the old one.
    todo = {name: expr for name, expr in wanted.items() if existing.get(name, "").replace(" ", "").lower() != expr.replace(" ", "").lower()}
    if not todo:
        return
    for name in todo:
        if not re.fullmatch(r"[a-z_][a-z0-9_]*", name):
            raise ValueError(f"constraint name {name!r} is not a plain identifier")
    # one scan counts the rows breaking each new rule
    counts = first_row(dt.toDF().agg(*[F.sum(F.when(F.expr(f"NOT ({expr})"), 1).otherwise(0)).alias(name) for name, expr in todo.items()]))
    for name, expr in todo.items():
        breaking = int(counts[name] or 0)
        if breaking:
            # ADD CONSTRAINT would fail on these rows; the table stays usable, keeps the rule it had
            # (dropped only once its replacement can be added) and the report says why.
            result.constraints_skipped[name] = f"{breaking} row(s) break {expr}"
            continue
        if name in existing:
            spark.sql(f"ALTER TABLE {ident} DROP CONSTRAINT {name}")
        spark.sql(f"ALTER TABLE {ident} ADD CONSTRAINT {name} CHECK ({expr})")
        result.constraints_added.append(name)


def _num_files(dt: DeltaTable) -> int:
    return int(first_row(dt.detail().select("numFiles"))["numFiles"])


def maintain_table(spark: SparkSession, cfg: Config, table: str) -> MaintenanceResult:
    """Compact (Z-order), constrain and VACUUM one Delta table in place; its rows do not change.

    Parameters
    ----------
    spark : SparkSession
    cfg : Config
        ``maintain`` settings and the storage paths.
    table : str
        Catalog name of an existing Delta table.

    Returns
    -------
    MaintenanceResult
        File counts of the current version before and after, the constraints added or skipped.
    """
    m = cfg.maintain
    path = cfg.storage.path(table)
    dt = DeltaTable.forPath(spark, path)
    zorder = TABLES[table].cluster_by if m.zorder else ()
    result = MaintenanceResult(table, _num_files(dt), 0, zorder)
    optimize = dt.optimize()
    optimize.executeZOrderBy(*zorder) if zorder else optimize.executeCompaction()
    if m.constraints:
        _add_constraints(spark, path, dt, table_constraints(table, cfg), result)
    if m.vacuum_retention_hours < DELTA_SAFE_RETENTION_HOURS:
        # Delta refuses a retention below its safety default unless this check is off; the config
        # allows it only with maintain.allow_short_retention.
        spark.conf.set("spark.databricks.delta.retentionDurationCheck.enabled", "false")
    try:
        dt.vacuum(m.vacuum_retention_hours)
    finally:
        spark.conf.unset("spark.databricks.delta.retentionDurationCheck.enabled")
    result.files_after = _num_files(dt)
    log.info("maintained %s: files %d -> %d, z-order %s, constraints added %s", table, result.files_before, result.files_after, zorder or "-", result.constraints_added or "-")
    return result

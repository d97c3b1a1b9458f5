"""Delta upkeep of every table of the lakehouse: OPTIMIZE (Z-order), CHECK constraints, VACUUM.

Runs last in the pipeline when `maintain.enabled` is set (conf/emr.yaml, conf/glue.yaml; off on a
laptop), or alone at any time. Table contents do not change; the current version's files are
compacted (Z-ordered on the catalog's `cluster_by` columns), bronze and silver tables get CHECK
constraints (required columns not null, ingest's lat/lon/SOC ranges) when their rows satisfy
them, and files unreferenced for longer than `maintain.vacuum_retention_hours` (168 h, Delta's
safety default; time travel works within it) are deleted. Logic: common/io/maintenance.py.

Reads / writes: every catalog table that exists (its files, not its rows).

    python -m jobs.maintain --env local
    python -m jobs.maintain --conf maintain.zorder=false
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

if __package__ in (None, ""):  # spark-submit jobs/maintain.py: make `common` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pyspark.sql import SparkSession

from common.core.catalog import TABLES
from common.core.config import Config
from common.io import tables
from common.io.cli import StageReport, bootstrap, job_main
from common.io.maintenance import maintain_table

log = logging.getLogger("ev_fleet.maintain")

# Every Delta table of the catalog (raw.files is the landing folder, not a table): declaring them
# as inputs puts this stage after every writer.
MAINTAINED: tuple[str, ...] = tuple(name for name in TABLES if name != "raw.files")
INPUTS: tuple[str, ...] = MAINTAINED
OUTPUTS: tuple[str, ...] = ()  # rewrites files, not rows
# Input groups of which at least one table must exist; otherwise the stage is skipped (common.io.cli).
REQUIRES: tuple[tuple[str, ...], ...] = ()


def run_maintain(spark: SparkSession, cfg: Config) -> StageReport:
    """Maintain every existing catalog table; the report counts files before and after."""
    report = StageReport(stage="maintain")
    before = after = 0
    for name in MAINTAINED:
        if not tables.exists(spark, cfg, name):
            continue
        done = maintain_table(spark, cfg, name)
        before, after = before + done.files_before, after + done.files_after
        version = tables.version(spark, cfg, name)
        if version is not None:
            report.tables[name] = version
        for constraint, why in done.constraints_skipped.items():
            report.notes.append(f"{name}: constraint {constraint} not added: {why}")
    report.notes.append(f"{len(report.tables)} tables maintained: {before} -> {after} files in their current versions")
    return report.finish()


@job_main
def main(argv=None) -> StageReport:
    cfg, spark, _ = bootstrap("maintain", argv, __doc__)
    return run_maintain(spark, cfg)


if __name__ == "__main__":
    main()

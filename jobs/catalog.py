"""Tables by name: register every Delta table of the lakehouse in the metastore (`catalog.metastore`).

After it, `spark.sql("select * from gold.driver_risk")` works in any session built from the same
config (`common.io.notebook`, `pyspark` with the settings of `common.io.spark.spark_conf`), and on
EMR/Glue in Athena and EMR Studio through the Glue Data Catalog. Locally the metastore is a Derby
database under <storage.root>/_metastore that one Spark process uses at a time. With
`catalog.metastore: none` (tests) the stage is skipped. Registration reads no rows and changes no
table; a rerun changes nothing. Logic: common/io/metastore.py.

Reads / writes: the metastore entries of every catalog table (not their rows).

    python -m jobs.catalog --env local
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

if __package__ in (None, ""):  # spark-submit jobs/catalog.py: make `common` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pyspark.sql import SparkSession

from common.core.catalog import TABLES
from common.core.config import Config
from common.io.cli import StageReport, bootstrap, job_main
from common.io.metastore import register_tables

log = logging.getLogger("ev_fleet.catalog")

# Every Delta table of the catalog (raw.files is the landing folder, not a table): declaring them
# as inputs puts this stage after every writer.
REGISTERED: tuple[str, ...] = tuple(name for name in TABLES if name != "raw.files")
INPUTS: tuple[str, ...] = REGISTERED
OUTPUTS: tuple[str, ...] = ()  # metastore entries, not tables
# Input groups of which at least one table must exist; otherwise the stage is skipped (common.io.cli).
REQUIRES: tuple[tuple[str, ...], ...] = ()


def run_catalog(spark: SparkSession, cfg: Config) -> StageReport:
    """Register the existing tables; skipped (with the reason) when `catalog.metastore` is none."""
    if cfg.catalog.metastore == "none":
        return StageReport("catalog", status="skipped", notes=["catalog.metastore is none: tables are read by path"]).finish()
    report = StageReport(stage="catalog")
    done = register_tables(spark, cfg, REGISTERED)
    report.notes.append(
        f"{len(done.names)} tables by name in the {cfg.catalog.metastore} metastore: {len(done.registered)} new, {len(done.relocated)} moved, "
        f"{len(done.unchanged)} unchanged, {len(done.dropped)} registrations of removed tables dropped"
    )
    if done.foreign:
        report.notes.append(f"left alone (registered at another folder, no table here): {', '.join(done.foreign)}")
    for note in report.notes:
        log.info("%s", note)
    return report.finish()


@job_main
def main(argv=None) -> StageReport:
    cfg, spark, _ = bootstrap("catalog", argv, __doc__)
    return run_catalog(spark, cfg)


if __name__ == "__main__":
    main()

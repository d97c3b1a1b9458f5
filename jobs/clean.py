"""Clean telematics: bronze.telematics -> silver.telematics_clean (flag, never delete) + gold.quality_daily.

Reads:  bronze.telematics (canonical columns + source_name, source_file, date),
        bronze.vehicles (vehicle_type, battery_kwh, timezone; optional).
Writes: silver.telematics_clean (partitioned by UTC `date`): every bronze row once, with repaired
        positions/SOC/speed/odometer, the originals, `quality_flags`/`quality_reasons`/`is_usable`
        and local time; gold.quality_daily (per vehicle and local day: counts per rule, usable
        share, coverage). Prints a per-rule summary table. Rules and thresholds: common/cleaning.py
        and the `clean` section of conf/base.yaml.

    python -m jobs.clean --env local
    python -m jobs.clean --conf clean.area_file=conf/areas/india_coarse.wkt
"""

from __future__ import annotations

import logging
import sys
from datetime import datetime, timezone
from pathlib import Path

if __package__ in (None, ""):  # spark-submit jobs/clean.py: make `common` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pyspark.sql import SparkSession

from common import tables
from common.cleaning import clean_telematics, cleaning_params, format_summary, quality_daily, rule_summary
from common.cli import StageReport, bootstrap
from common.config import Config
from common.schemas import VEHICLES

log = logging.getLogger("ev_fleet.clean")

BRONZE_TELEMATICS = "bronze.telematics"
BRONZE_VEHICLES = "bronze.vehicles"
SILVER_TELEMATICS = "silver.telematics_clean"
GOLD_QUALITY = "gold.quality_daily"


def add_arguments(parser) -> None:
    parser.add_argument(
        "--as-of",
        default=None,
        metavar="ISO_TIMESTAMP",
        help="reference 'now' (UTC) for the future-timestamp rule; default: the run's start time",
    )


def run_clean(spark: SparkSession, cfg: Config, as_of: datetime | None = None) -> StageReport:
    """Read bronze, clean, write silver and gold; rows in must equal rows out."""
    report = StageReport(stage="clean")
    params = cleaning_params(cfg, as_of=as_of)
    bronze = tables.read(spark, cfg, BRONZE_TELEMATICS)
    if tables.exists(spark, cfg, BRONZE_VEHICLES):
        vehicles = tables.read(spark, cfg, BRONZE_VEHICLES)
    else:
        report.notes.append("bronze.vehicles missing: default timezone, battery and speed caps for every vehicle")
        vehicles = spark.createDataFrame([], VEHICLES)

    silver = clean_telematics(bronze, vehicles, params)
    written = tables.write(
        silver,
        cfg,
        SILVER_TELEMATICS,
        mode="overwrite",
        partition_by=["date"],
        comment="Cleaned telematics: every bronze row with quality flags, repaired values and originals",
    )
    report.tables[SILVER_TELEMATICS] = written.version

    # Gold and counts from the written table: no second evaluation of the cleaning plan.
    silver = tables.read(spark, cfg, SILVER_TELEMATICS)
    daily = quality_daily(silver)
    gold = tables.write(
        daily,
        cfg,
        GOLD_QUALITY,
        mode="overwrite",
        comment="Per vehicle and local day: rows per cleaning rule, usable share, coverage hours",
    )
    report.tables[GOLD_QUALITY] = gold.version

    daily = tables.read(spark, cfg, GOLD_QUALITY)
    report.rows_in = bronze.count()
    totals = daily.groupBy().sum("rows", "usable_rows").first()
    report.rows_out = int(totals[0] or 0)
    usable = int(totals[1] or 0)
    if report.rows_out != report.rows_in:
        raise RuntimeError(f"clean lost or duplicated rows: {report.rows_in} in, {report.rows_out} out")
    summary = rule_summary(daily).collect()
    print(format_summary(summary, report.rows_out, usable))
    report.notes.append(f"usable share {usable / report.rows_out:.4%}" if report.rows_out else "no rows")
    return report.finish()


def main(argv=None) -> StageReport:
    cfg, spark, args = bootstrap("clean", argv, __doc__, add_arguments)
    as_of = datetime.fromisoformat(args.as_of) if args.as_of else datetime.now(timezone.utc)
    return run_clean(spark, cfg, as_of)


if __name__ == "__main__":
    main()

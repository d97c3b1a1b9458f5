"""Clean telematics: bronze.telematics -> silver.telematics_clean (flag, never delete) + gold.quality_daily.

Reads:  bronze.telematics (canonical columns + source_name, source_file, date),
        bronze.vehicles (vehicle_type, battery_kwh, timezone; optional).
Writes: silver.telematics_clean (partitioned by UTC `date`): every bronze row once, with repaired
        positions/SOC/speed/odometer, the originals, `quality_flags`/`quality_reasons`/`is_usable`
        and local time; gold.quality_daily (per vehicle and local day: counts per rule, usable
        share, coverage); silver.device_profiles (per vehicle: reporting mode, heartbeat and the
        intervals it rests on, common/silver/devices.py; registered vehicles without telemetry included).
        Prints a per-rule summary table and the device modes. Rules and thresholds:
        common/silver/cleaning.py and the `clean` / `devices` sections of conf/base.yaml.

`--start-date/--end-date` (local dates, inclusive, as for the other stages) re-clean only the UTC
`date` partitions that can hold those local days (start - 1 .. end + 1: every zone is within a
day of UTC) and replace exactly those partitions (Delta replaceWhere); other dates keep their
files. One more day of bronze either side is read so the first and last rows have their
neighbours; a vehicle's adaptive speed cap (p95) is then taken over that window, not its whole
history. gold.quality_daily and silver.device_profiles are recomputed from the whole silver table.

    python -m jobs.clean --env local
    python -m jobs.clean --conf clean.area_file=conf/areas/india_coarse.wkt
    python -m jobs.clean --start-date 2024-03-06 --end-date 2024-03-07   # late data for two days
"""

from __future__ import annotations

import logging
import sys
from datetime import date, datetime, timezone
from pathlib import Path

if __package__ in (None, ""):  # spark-submit jobs/clean.py: make `common` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pyspark.sql import SparkSession

from common.core.config import Config
from common.io import tables
from common.io.cli import StageReport, bootstrap, job_main, require_inputs
from common.io.ranges import DateRange, read_range, write_range
from common.io.schemas import VEHICLES
from common.silver.cleaning import (
    clean_telematics,
    cleaning_params,
    format_summary,
    known_timezones_only,
    quality_daily,
    require_vehicle_timezones,
    rule_summary,
)
from common.silver.devices import device_mode_summary, device_profiles

log = logging.getLogger("ev_fleet.clean")
BRONZE_TELEMATICS = "bronze.telematics"
BRONZE_VEHICLES = "bronze.vehicles"
SILVER_TELEMATICS = "silver.telematics_clean"
GOLD_QUALITY = "gold.quality_daily"
DEVICE_PROFILES = "silver.device_profiles"

# Catalog tables read and written (common/core/catalog.py); the pipeline orders stages by them.
INPUTS: tuple[str, ...] = (BRONZE_TELEMATICS, BRONZE_VEHICLES)
OUTPUTS: tuple[str, ...] = (SILVER_TELEMATICS, GOLD_QUALITY, DEVICE_PROFILES)
# Input groups of which at least one table must exist; otherwise the stage is skipped (common.io.cli).
REQUIRES: tuple[tuple[str, ...], ...] = ((BRONZE_TELEMATICS,),)


def add_arguments(parser) -> None:
    parser.add_argument(
        "--as-of",
        default=None,
        metavar="ISO_TIMESTAMP",
        help="reference 'now' (UTC) for the future-timestamp rule; default: the run's start time",
    )
    parser.add_argument("--start-date", type=date.fromisoformat, default=None, help="first local date to re-clean")
    parser.add_argument("--end-date", type=date.fromisoformat, default=None, help="last local date to re-clean")


def run_clean(
    spark: SparkSession,
    cfg: Config,
    as_of: datetime | None = None,
    start_date: date | None = None,
    end_date: date | None = None,
) -> StageReport:
    """Read bronze, clean, write silver and gold; rows in must equal rows out (of the range)."""
    report = StageReport(stage="clean")
    params = cleaning_params(cfg, as_of=as_of)
    local_days = DateRange(start_date, end_date)
    if not local_days.is_full and not tables.exists(spark, cfg, SILVER_TELEMATICS):
        report.notes.append(f"{SILVER_TELEMATICS} does not exist yet: cleaning every date")
        local_days = DateRange()
    # UTC `date` partitions that can hold those local days (every zone is within a day of UTC),
    # read with one more day either side so the first and last rows have their neighbours.
    partitions = local_days.widened(1)
    bronze = read_range(spark, cfg, BRONZE_TELEMATICS, partitions.widened(1), column="date")
    if not partitions.is_full:
        report.notes.append(f"re-cleaned partitions {partitions.sql('date')}")
    why = "default timezone, battery and speed caps for every vehicle"
    vehicles = known_timezones_only(tables.read_or_empty(spark, cfg, BRONZE_VEHICLES, VEHICLES, notes=report.notes, why=why), report.notes)

    if params.area_wkt is None:
        report.notes.append("clean.area_file not set: no operating-area rule (set it, or settings.clean.area_file in the dataset file)")
    if params.default_timezone is None:
        require_vehicle_timezones(bronze, vehicles)
    silver = clean_telematics(bronze, vehicles, params)
    written = write_range(silver, cfg, SILVER_TELEMATICS, partitions, column="date")
    report.tables[SILVER_TELEMATICS] = written.version

    # Gold and counts from the written table: no second evaluation of the cleaning plan.
    silver = tables.read(spark, cfg, SILVER_TELEMATICS)
    for table, df in ((GOLD_QUALITY, quality_daily(silver)), (DEVICE_PROFILES, device_profiles(silver, vehicles, cfg.kpis.trips, cfg.devices))):
        report.tables[table] = tables.write(df, cfg, table, mode="overwrite").version
    modes = device_mode_summary(tables.read(spark, cfg, DEVICE_PROFILES))
    report.notes.append(modes)

    daily = tables.read(spark, cfg, GOLD_QUALITY)
    report.rows_in = bronze.where(partitions.contains("date")).count()
    totals = tables.first_row(daily.groupBy().sum("rows", "usable_rows"))
    table_rows, usable = int(totals[0] or 0), int(totals[1] or 0)
    report.rows_out = table_rows if partitions.is_full else silver.where(partitions.contains("date")).count()
    if report.rows_out != report.rows_in:
        raise RuntimeError(f"clean lost or duplicated rows: {report.rows_in} in, {report.rows_out} out")
    summary = rule_summary(daily).collect()  # bounded: one row per rule
    print(format_summary(summary, table_rows, usable))
    print(modes)
    report.notes.append(f"usable share {usable / table_rows:.4%}" if table_rows else "no rows")
    return report.finish()


@job_main
def main(argv=None) -> StageReport:
    cfg, spark, args = bootstrap("clean", argv, __doc__, add_arguments)
    require_inputs(spark, cfg, REQUIRES)
    as_of = datetime.fromisoformat(args.as_of) if args.as_of else datetime.now(timezone.utc)
    return run_clean(spark, cfg, as_of, args.start_date, args.end_date)


if __name__ == "__main__":
    main()

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
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

if __package__ in (None, ""):  # spark-submit jobs/clean.py: make `common` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from common.core.config import Config, ConfigError
from common.io import tables
from common.io.cli import StageReport, bootstrap, job_main, require_inputs
from common.io.schemas import VEHICLES
from common.silver.cleaning import clean_telematics, cleaning_params, format_summary, quality_daily, rule_summary
from common.silver.devices import device_profiles

log = logging.getLogger("ev_fleet.clean")
# Input groups of which at least one table must exist; otherwise the stage is skipped (common.io.cli).
REQUIRES: tuple[tuple[str, ...], ...] = (("bronze.telematics",),)

BRONZE_TELEMATICS = "bronze.telematics"
BRONZE_VEHICLES = "bronze.vehicles"
SILVER_TELEMATICS = "silver.telematics_clean"
GOLD_QUALITY = "gold.quality_daily"
DEVICE_PROFILES = "silver.device_profiles"


def add_arguments(parser) -> None:
    parser.add_argument(
        "--as-of",
        default=None,
        metavar="ISO_TIMESTAMP",
        help="reference 'now' (UTC) for the future-timestamp rule; default: the run's start time",
    )
    parser.add_argument("--start-date", type=date.fromisoformat, default=None, help="first local date to re-clean")
    parser.add_argument("--end-date", type=date.fromisoformat, default=None, help="last local date to re-clean")


def utc_partitions(start_date: date | None, end_date: date | None, extra_days: int = 0) -> tuple[date | None, date | None]:
    """UTC `date` partitions that can hold rows of the local days start..end (+ extra_days of context)."""
    days = timedelta(days=1 + extra_days)
    return (start_date - days if start_date else None, end_date + days if end_date else None)


def _between(lo: date | None, hi: date | None) -> tuple[Column, str]:
    """(filter column, replaceWhere SQL) for partitions lo..hi of `date`; a missing bound is open."""
    cond, sql = F.lit(True), []
    if lo:
        cond, sql = cond & (F.col("date") >= F.lit(lo)), [*sql, f"date >= '{lo.isoformat()}'"]
    if hi:
        cond, sql = cond & (F.col("date") <= F.lit(hi)), [*sql, f"date <= '{hi.isoformat()}'"]
    return cond, " AND ".join(sql)


def known_timezones_only(vehicles: DataFrame, report: StageReport) -> DataFrame:
    """Null out timezones that are not IANA zones (from_utc_timestamp would fail on them); those
    vehicles fall back to clean.default_timezone. bronze.vehicles is small: one row per vehicle."""
    unknown = []
    for (zone,) in vehicles.select("timezone").where(F.col("timezone").isNotNull()).distinct().collect():  # bounded: one row per distinct timezone
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            unknown.append(zone)
    if not unknown:
        return vehicles
    note = f"unknown vehicle timezones {sorted(unknown)}: clean.default_timezone used instead"
    log.warning(note)
    report.notes.append(note)
    return vehicles.withColumn("timezone", F.when(~F.col("timezone").isin(unknown), F.col("timezone")))


def require_vehicle_timezones(bronze: DataFrame, vehicles: DataFrame) -> None:
    """Local days need a zone per vehicle: without clean.default_timezone, every vehicle must have one."""
    zoned = vehicles.where(F.col("timezone").isNotNull()).select("vehicle_id").distinct()
    missing = bronze.select("vehicle_id").distinct().join(zoned, "vehicle_id", "left_anti")
    sample = [r.vehicle_id for r in missing.limit(5).collect()]
    if sample:
        raise ConfigError(
            f"vehicle(s) {', '.join(sample)}{' ...' if len(sample) == 5 else ''} have no timezone in bronze.vehicles and "
            "clean.default_timezone is not set: set clean.default_timezone (e.g. --conf clean.default_timezone=Africa/Nairobi, "
            "or `settings: {clean.default_timezone: ...}` in the dataset file) or map a timezone column for the vehicles"
        )


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
    bronze = tables.read(spark, cfg, BRONZE_TELEMATICS)
    partial = (start_date or end_date) is not None
    if partial and not tables.exists(spark, cfg, SILVER_TELEMATICS):
        report.notes.append(f"{SILVER_TELEMATICS} does not exist yet: cleaning every date")
        partial = False
    in_range, replace_where = _between(*utc_partitions(start_date, end_date)) if partial else (F.lit(True), None)
    bronze_in_range = bronze.where(in_range)
    if partial:
        bronze = bronze.where(_between(*utc_partitions(start_date, end_date, extra_days=1))[0])
        report.notes.append(f"re-cleaned partitions {replace_where}")
    if tables.exists(spark, cfg, BRONZE_VEHICLES):
        vehicles = known_timezones_only(tables.read(spark, cfg, BRONZE_VEHICLES), report)
    else:
        report.notes.append("bronze.vehicles missing: default timezone, battery and speed caps for every vehicle")
        vehicles = spark.createDataFrame([], VEHICLES)

    if params.area_wkt is None:
        report.notes.append("clean.area_file not set: no operating-area rule (set it, or settings.clean.area_file in the dataset file)")
    if params.default_timezone is None:
        require_vehicle_timezones(bronze, vehicles)
    silver = clean_telematics(bronze, vehicles, params).where(in_range)
    written = tables.write(
        silver,
        cfg,
        SILVER_TELEMATICS,
        mode="overwrite",
        partition_by=["date"],
        replace_where=replace_where,
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

    profiles = device_profiles(silver, vehicles, cfg.kpis.trips, cfg.devices)
    written = tables.write(
        profiles,
        cfg,
        DEVICE_PROFILES,
        mode="overwrite",
        comment="Per vehicle: device reporting mode (continuous, ignition_only, bursty, mostly_silent, no_data), heartbeat and the intervals it rests on",
    )
    report.tables[DEVICE_PROFILES] = written.version
    modes = tables.read(spark, cfg, DEVICE_PROFILES).groupBy("device_mode").count().collect()  # bounded: one row per mode
    report.notes.append("device modes: " + ", ".join(f"{r['device_mode']} {r['count']}" for r in sorted(modes, key=lambda r: r["device_mode"])))

    daily = tables.read(spark, cfg, GOLD_QUALITY)
    report.rows_in = bronze_in_range.count()
    totals = daily.groupBy().sum("rows", "usable_rows").first()
    table_rows, usable = int(totals[0] or 0), int(totals[1] or 0)
    report.rows_out = silver.where(in_range).count() if partial else table_rows
    if report.rows_out != report.rows_in:
        raise RuntimeError(f"clean lost or duplicated rows: {report.rows_in} in, {report.rows_out} out")
    summary = rule_summary(daily).collect()  # bounded: one row per rule
    print(format_summary(summary, table_rows, usable))
    print(next(n for n in report.notes if n.startswith("device modes:")))
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

"""Fleet KPIs: silver.telematics_clean -> minutely, trips, segments, daily, fleet daily, PAYD billing.

Reads:  silver.telematics_clean (usable rows, repaired values, local time),
        bronze.vehicles (model, vehicle_type, battery_kwh; optional: energy is null without it).
Writes (all partitioned by local day, `local_date`, except billing by `period_start`):
        silver.vehicle_minutely  per vehicle and UTC minute: speed, GPS km, moving share, SOC,
                                 rolling event-time windows, charging flag;
        silver.trips             trips between stops / data gaps: GPS and odometer km, time,
                                 speeds, stops, SOC, energy (dSOC x battery), altitude;
        silver.segments          ~1 km pieces of trips with energy-model features;
        gold.daily_kpis          per vehicle and local day;
        gold.fleet_daily_kpis    fleet totals and percentiles per local day;
        gold.payd_billing        billable km per vehicle and period (odometer, GPS on faulty days).
Definitions: common/silver/trips.py and common/mobility/kpis.py; thresholds: the `kpis` section of conf/base.yaml.
Charging events (minutely flag, daily counts and kWh) come from common.mobility.charging.detect_charging_events
(`charging` section); without that module the minutely flag falls back to stationary SOC rises.

`--start-date/--end-date` (local dates, inclusive) recompute only those days (billing: the
periods containing them) and replace exactly those partitions (Delta replaceWhere). The job
reads `kpis.context_days` more days on either side plus each vehicle's last usable sample
before that, so trips over midnight and sample-to-sample steps come out as in a full run.

    python -m jobs.kpis --env local
    python -m jobs.kpis --start-date 2024-03-06 --end-date 2024-03-07
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

if __package__ in (None, ""):  # spark-submit jobs/kpis.py: make `common` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pyspark import StorageLevel
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from common.core.config import Config
from common.io import tables
from common.io.cli import StageReport, bootstrap, job_main, require_inputs
from common.io.schemas import VEHICLES
from common.mobility.kpis import (
    add_odometer_checks,
    daily_kpis,
    fleet_daily_kpis,
    payd_billing,
    vehicle_minutely,
)
from common.silver.devices import heartbeats
from common.silver.trips import POINT_COLUMNS, segments_from_points, trip_points, trips_from_points

log = logging.getLogger("ev_fleet.kpis")
# Input groups of which at least one table must exist; otherwise the stage is skipped (common.io.cli).
REQUIRES: tuple[tuple[str, ...], ...] = (("silver.telematics_clean",),)

SILVER_CLEAN = "silver.telematics_clean"
BRONZE_VEHICLES = "bronze.vehicles"
DEVICE_PROFILES = "silver.device_profiles"
MINUTELY = "silver.vehicle_minutely"
TRIPS = "silver.trips"
SEGMENTS = "silver.segments"
DAILY = "gold.daily_kpis"
FLEET_DAILY = "gold.fleet_daily_kpis"
BILLING = "gold.payd_billing"

COMMENTS = {
    MINUTELY: "Per vehicle and UTC minute: speed, GPS km, moving share, SOC, rolling event-time windows, charging flag",
    TRIPS: "Trips split at stops and data gaps: GPS/odometer km, duration, speeds, stops, SOC, energy (dSOC x battery)",
    SEGMENTS: "~1 km trip segments with energy-model features (speed, acceleration, altitude, temperature, SOC)",
    DAILY: "Per vehicle and local day: GPS/odometer km, utilisation, SOC, trips, charging, data coverage",
    FLEET_DAILY: "Per local day: fleet totals and percentiles over vehicles",
    BILLING: "Pay-as-you-drive km per vehicle and billing period: odometer, GPS on days the odometer is faulty",
}


def add_arguments(parser) -> None:
    parser.add_argument("--start-date", type=date.fromisoformat, default=None, help="first local date to (re)compute")
    parser.add_argument("--end-date", type=date.fromisoformat, default=None, help="last local date to (re)compute")


@dataclass(frozen=True)
class DateRange:
    """Inclusive local-date range of a partial run; a missing bound is open."""

    start: date | None
    end: date | None

    @property
    def is_full(self) -> bool:
        return self.start is None and self.end is None

    def contains(self, column: str = "local_date") -> Column:
        cond = F.lit(True)
        if self.start:
            cond = cond & (F.col(column) >= F.lit(self.start))
        if self.end:
            cond = cond & (F.col(column) <= F.lit(self.end))
        return cond

    def sql(self, column: str = "local_date") -> str:
        parts = []
        if self.start:
            parts.append(f"{column} >= '{self.start.isoformat()}'")
        if self.end:
            parts.append(f"{column} <= '{self.end.isoformat()}'")
        return " AND ".join(parts)

    def widened(self, days: int) -> DateRange:
        return DateRange(
            self.start - timedelta(days=days) if self.start else None,
            self.end + timedelta(days=days) if self.end else None,
        )


def read_window(spark: SparkSession, cfg: Config, rng: DateRange) -> DataFrame:
    """silver.telematics_clean rows a run needs: the range +- context days, plus each vehicle's
    last usable sample before that (the previous step of the first sample in the window)."""
    clean = tables.read(spark, cfg, SILVER_CLEAN)
    if rng.is_full:
        return clean
    ctx = rng.widened(cfg.kpis.context_days)
    # `date` (UTC, the partition column) is within a day of the local date: prune partitions first.
    window = clean.where(ctx.widened(1).contains("date")).where(ctx.contains("local_date"))
    if ctx.start is None:
        return window
    cols = [*POINT_COLUMNS, "is_usable"]
    before = clean.where((F.col("date") <= F.lit(ctx.start + timedelta(days=1))) & (F.col("local_date") < F.lit(ctx.start)))
    last_before = (
        before.where("is_usable")
        .groupBy("vehicle_id")
        .agg(F.max(F.struct("ts", *[c for c in cols if c not in ("vehicle_id", "ts")])).alias("_last"))
        .select("vehicle_id", "_last.*")
    )
    return window.select(*cols).unionByName(last_before.select(*cols))


def read_vehicles(spark: SparkSession, cfg: Config, report: StageReport) -> DataFrame:
    if tables.exists(spark, cfg, BRONZE_VEHICLES):
        return tables.read(spark, cfg, BRONZE_VEHICLES)
    report.notes.append("bronze.vehicles missing: model, vehicle type and battery size (energy) are null")
    return spark.createDataFrame([], VEHICLES)


def charging_events(clean: DataFrame, vehicles: DataFrame, cfg: Config, report: StageReport, beats: DataFrame | None = None) -> DataFrame | None:
    """Charging events from common.mobility.charging (owned by the insights stage), or None while it is missing.

    Normalised to vehicle_id, start_ts, end_ts, kwh, local_date (local day of the start).
    """
    try:
        from common.mobility.charging import detect_charging_events
    except ImportError:
        report.notes.append(
            "common.mobility.charging.detect_charging_events not available: charging flag per minute from SOC rises "
            "only; daily charging_events/charging_kwh are null"
        )
        return None
    params = getattr(cfg, "charging", None)
    events = detect_charging_events(clean, vehicles, params, cfg.kpis.trips, beats)
    cols = set(events.columns)
    kwh = F.col("kwh") if "kwh" in cols else F.col("energy_kwh")
    local_date = F.col("local_date") if "local_date" in cols else F.to_date(F.from_utc_timestamp("start_ts", F.col("timezone")))
    return events.select("vehicle_id", "start_ts", "end_ts", kwh.alias("kwh"), local_date.alias("local_date"))


def _write(df: DataFrame, cfg: Config, table: str, rng: DateRange, column: str, report: StageReport) -> None:
    """Full run: overwrite the table. Range run: replace exactly the range's partitions."""
    spark = df.sparkSession
    if rng.is_full or not tables.exists(spark, cfg, table):
        result = tables.write(df, cfg, table, mode="overwrite", partition_by=[column], comment=COMMENTS[table])
    else:
        result = tables.write(
            df.where(rng.contains(column)),
            cfg,
            table,
            mode="overwrite",
            partition_by=[column],
            replace_where=rng.sql(column),
            comment=COMMENTS[table],
        )
    report.tables[table] = result.version


def _read_range(spark: SparkSession, cfg: Config, table: str, rng: DateRange, column: str = "local_date") -> DataFrame:
    df = tables.read(spark, cfg, table)
    return df if rng.is_full else df.where(rng.contains(column))


def run_kpis(spark: SparkSession, cfg: Config, start_date: date | None = None, end_date: date | None = None) -> StageReport:
    """Compute and write the six KPI tables for all local days, or for [start_date, end_date]."""
    report = StageReport(stage="kpis")
    k = cfg.kpis
    rng = DateRange(start_date, end_date)
    if start_date and end_date and start_date > end_date:
        raise ValueError(f"--start-date {start_date} is after --end-date {end_date}")

    clean = read_window(spark, cfg, rng)
    vehicles = read_vehicles(spark, cfg, report)
    beats = heartbeats(tables.read_optional(spark, cfg, DEVICE_PROFILES))
    points = (
        trip_points(clean, k.trips, beats)
        .transform(add_odometer_checks, k.billing.odometer)
        .persist(StorageLevel.MEMORY_AND_DISK)
    )
    events = charging_events(clean, vehicles, cfg, report, beats)
    if events is not None:  # used by the minutely flag and the daily counts: detect once
        events = events.persist(StorageLevel.MEMORY_AND_DISK)
    try:

        # Each table is written, then read back (range-filtered) for the tables built on it:
        # no second evaluation of the plans, and a range run only ever sees its own days.
        trips = trips_from_points(points, vehicles, k.trips).where(rng.contains())
        _write(trips, cfg, TRIPS, rng, "local_date", report)
        trips = _read_range(spark, cfg, TRIPS, rng)

        _write(segments_from_points(points, trips, k.trips), cfg, SEGMENTS, rng, "local_date", report)

        minutely = vehicle_minutely(points, k, events).where(rng.contains())
        _write(minutely, cfg, MINUTELY, rng, "local_date", report)
        minutely = _read_range(spark, cfg, MINUTELY, rng)

        in_range_points = points.where(rng.contains())
        range_events = events.where(rng.contains()) if events is not None else None
        daily = daily_kpis(in_range_points, trips, minutely, vehicles, range_events)
        _write(daily, cfg, DAILY, rng, "local_date", report)
        report.rows_in = in_range_points.count()
    finally:
        points.unpersist()
        if events is not None:
            events.unpersist()

    daily = _read_range(spark, cfg, DAILY, rng)
    _write(fleet_daily_kpis(daily, k), cfg, FLEET_DAILY, rng, "local_date", report)

    # Billing periods touched by the range, recomputed from all their days.
    period = k.billing.period
    first = _period_start(rng.start, period) if rng.start else None
    last = _period_start(rng.end, period) if rng.end else None
    billing_days = _read_range(spark, cfg, DAILY, DateRange(first, _period_end(last, period) if last else None))
    _write(payd_billing(billing_days, k.billing), cfg, BILLING, DateRange(first, last), "period_start", report)

    report.rows_out = tables.read(spark, cfg, DAILY).where(rng.contains()).count()
    summary = _summary(spark, cfg, rng)
    print(summary)
    report.notes.append(summary.splitlines()[-1])
    return report.finish()


def _period_start(day: date, period: str) -> date:
    """Same as common.mobility.kpis.billing_period_start (Spark trunc: month, or week from Monday)."""
    return day.replace(day=1) if period == "month" else day - timedelta(days=day.weekday())


def _period_end(start: date, period: str) -> date:
    if period == "week":
        return start + timedelta(days=6)
    return (start.replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(days=1)


def _summary(spark: SparkSession, cfg: Config, rng: DateRange) -> str:
    trips = _read_range(spark, cfg, TRIPS, rng)
    daily = _read_range(spark, cfg, DAILY, rng)
    t = trips.agg(F.count(F.lit(1)).alias("n"), F.sum("distance_km").alias("km"), F.sum("energy_kwh").alias("kwh")).first()
    d = daily.agg(
        F.countDistinct("vehicle_id").alias("vehicles"),
        F.count(F.lit(1)).alias("days"),
        F.sum("gps_km").alias("gps_km"),
        F.sum((~F.col("odometer_ok")).cast("int")).alias("odo_bad"),
    ).first()
    scope = "all days" if rng.is_full else f"{rng.start or '...'} to {rng.end or '...'}"
    return "\n".join(
        [
            f"kpis ({scope}): {d['vehicles'] or 0} vehicles, {d['days'] or 0} vehicle-days, "
            f"{d['odo_bad'] or 0} vehicle-days billed on GPS (odometer missing or faulty)",
            f"trips {t['n'] or 0:,}  trip km {t['km'] or 0:,.1f}  trip energy {t['kwh'] or 0:,.1f} kWh  "
            f"GPS km {d['gps_km'] or 0:,.1f}",
        ]
    )


@job_main
def main(argv=None) -> StageReport:
    cfg, spark, args = bootstrap("kpis", argv, __doc__, add_arguments)
    require_inputs(spark, cfg, REQUIRES)
    return run_kpis(spark, cfg, args.start_date, args.end_date)


if __name__ == "__main__":
    main()

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

import sys
from datetime import date
from pathlib import Path

if __package__ in (None, ""):  # spark-submit jobs/kpis.py: make `common` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pyspark.sql import DataFrame, SparkSession

from common.core.config import Config
from common.core.frames import materialise, release
from common.io import tables
from common.io.cli import StageReport, bootstrap, job_main, require_inputs
from common.io.ranges import DateRange, read_range, write_range
from common.io.schemas import VEHICLES
from common.mobility.kpis import (
    add_odometer_checks,
    billing_ranges,
    charging_events,
    daily_kpis,
    fleet_daily_kpis,
    input_window,
    kpis_summary,
    payd_billing,
    vehicle_minutely,
)
from common.silver.devices import heartbeats
from common.silver.trips import segments_from_points, trip_points, trips_from_points

SILVER_CLEAN = "silver.telematics_clean"
BRONZE_VEHICLES = "bronze.vehicles"
DEVICE_PROFILES = "silver.device_profiles"
MINUTELY = "silver.vehicle_minutely"
TRIPS = "silver.trips"
SEGMENTS = "silver.segments"
DAILY = "gold.daily_kpis"
FLEET_DAILY = "gold.fleet_daily_kpis"
BILLING = "gold.payd_billing"

# Catalog tables read and written (common/core/catalog.py); the pipeline orders stages by them.
INPUTS: tuple[str, ...] = (SILVER_CLEAN, BRONZE_VEHICLES, DEVICE_PROFILES)
OUTPUTS: tuple[str, ...] = (MINUTELY, TRIPS, SEGMENTS, DAILY, FLEET_DAILY, BILLING)
# Input groups of which at least one table must exist; otherwise the stage is skipped (common.io.cli).
REQUIRES: tuple[tuple[str, ...], ...] = ((SILVER_CLEAN,),)


def add_arguments(parser) -> None:
    parser.add_argument("--start-date", type=date.fromisoformat, default=None, help="first local date to (re)compute")
    parser.add_argument("--end-date", type=date.fromisoformat, default=None, help="last local date to (re)compute")


def _write(df: DataFrame, cfg: Config, table: str, rng: DateRange, report: StageReport, column: str = "local_date") -> None:
    report.tables[table] = write_range(df, cfg, table, rng, column=column).version


def run_kpis(spark: SparkSession, cfg: Config, start_date: date | None = None, end_date: date | None = None) -> StageReport:
    """Compute and write the six KPI tables for all local days, or for [start_date, end_date]."""
    report = StageReport(stage="kpis")
    k = cfg.kpis
    rng = DateRange(start_date, end_date)  # raises ValueError when start_date > end_date

    clean = input_window(tables.read(spark, cfg, SILVER_CLEAN), rng, k.context_days)
    why = "model, vehicle type and battery size (energy) are null"
    vehicles = tables.read_or_empty(spark, cfg, BRONZE_VEHICLES, VEHICLES, notes=report.notes, why=why)
    beats = heartbeats(tables.read_optional(spark, cfg, DEVICE_PROFILES))
    kept: list[DataFrame] = []  # released at the end, also when a step fails
    try:
        points = materialise(trip_points(clean, k.trips, beats).transform(add_odometer_checks, k.billing.odometer))
        kept.append(points)
        events = charging_events(clean, vehicles, cfg.charging, k.trips, beats, notes=report.notes)
        if events is not None:  # used by the minutely flag and the daily counts: detect once
            events = materialise(events)
            kept.append(events)
        # Each table is written, then read back (range-filtered) for the tables built on it:
        # no second evaluation of the plans, and a range run only ever sees its own days.
        _write(trips_from_points(points, vehicles, k.trips).where(rng.contains()), cfg, TRIPS, rng, report)
        trips = read_range(spark, cfg, TRIPS, rng)
        _write(segments_from_points(points, trips, k.trips), cfg, SEGMENTS, rng, report)
        _write(vehicle_minutely(points, k, events).where(rng.contains()), cfg, MINUTELY, rng, report)
        minutely = read_range(spark, cfg, MINUTELY, rng)

        in_range_points = points.where(rng.contains())
        range_events = events.where(rng.contains()) if events is not None else None
        _write(daily_kpis(in_range_points, trips, minutely, vehicles, range_events), cfg, DAILY, rng, report)
        report.rows_in = in_range_points.count()
    finally:
        for df in kept:
            release(df)

    _write(fleet_daily_kpis(read_range(spark, cfg, DAILY, rng), k), cfg, FLEET_DAILY, rng, report)
    billing_days, billing_periods = billing_ranges(rng, k.billing.period)
    _write(payd_billing(read_range(spark, cfg, DAILY, billing_days), k.billing), cfg, BILLING, billing_periods, report, column="period_start")

    report.rows_out = tables.read(spark, cfg, DAILY).where(rng.contains()).count()
    summary = kpis_summary(read_range(spark, cfg, TRIPS, rng), read_range(spark, cfg, DAILY, rng), rng)
    print(summary)
    report.notes.append(summary.splitlines()[-1])
    return report.finish()


@job_main
def main(argv=None) -> StageReport:
    cfg, spark, args = bootstrap("kpis", argv, __doc__, add_arguments)
    require_inputs(spark, cfg, REQUIRES)
    return run_kpis(spark, cfg, args.start_date, args.end_date)


if __name__ == "__main__":
    main()

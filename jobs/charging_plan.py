"""Next-day charging plan: the cheapest schedule that keeps every vehicle above the SOC floor.

Per vehicle: tomorrow's expected km (its history on that weekday) x energy per km (the registered
energy model's predictions, else physics, else its measured rate), current SOC, battery size and
where, at which power and from when it can charge (home, depot or public site of its charging
history); per site one MILP (scipy `milp`, HiGHS) over the night's slots with the time-of-use
tariff, the site's grid capacity and ports, in a grouped pandas UDF. Definitions:
common/mobility/charging_plan.py; settings: `charging_plan` in conf (docs/CONFIG.md); formulation
and figures: docs/CHARGING_PLAN.md.

Reads:  bronze.vehicles, gold.daily_kpis, silver.charging_events, gold.charging_sites,
        bronze.stations (optional: ports and power; else conf defaults and observed power),
        gold.predictions_energy (optional: without it, physics, said in energy_source).
Writes: gold.charging_plan           per site, vehicle and slot with charge: kWh, kW, price, cost.
        gold.charging_plan_vehicles  per vehicle of the fleet: planned / no_charge_needed /
                                     infeasible with the reason, need, SOCs, cost.

    python -m jobs.charging_plan --env local
"""

from __future__ import annotations

import sys
from datetime import timedelta
from pathlib import Path

if __package__ in (None, ""):  # spark-submit jobs/charging_plan.py: make `common` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from common.core.config import Config
from common.core.frames import materialise, release
from common.io import tables
from common.io.cli import StageReport, StageSkipped, bootstrap, job_main, require_inputs
from common.io.schemas import VEHICLES
from common.mobility import charging_plan as cp
from common.network.stations import latest_stations

BRONZE_VEHICLES = "bronze.vehicles"
DAILY = "gold.daily_kpis"
EVENTS = "silver.charging_events"
SITES = "gold.charging_sites"
STATIONS = "bronze.stations"
PREDICTIONS = "gold.predictions_energy"
PLAN = "gold.charging_plan"
PLAN_VEHICLES = "gold.charging_plan_vehicles"

# Catalog tables read and written (common/core/catalog.py); the pipeline orders stages by them.
INPUTS: tuple[str, ...] = (BRONZE_VEHICLES, DAILY, EVENTS, SITES, STATIONS, PREDICTIONS)
OUTPUTS: tuple[str, ...] = (PLAN, PLAN_VEHICLES)
# Input groups of which at least one table must exist; otherwise the stage is skipped (common.io.cli).
REQUIRES: tuple[tuple[str, ...], ...] = ((DAILY,),)


def fleet(spark: SparkSession, cfg: Config, daily: DataFrame, report: StageReport) -> DataFrame:
    """Every vehicle of bronze.vehicles, and those only gold.daily_kpis knows (battery from there)."""
    registered = tables.read_or_empty(spark, cfg, BRONZE_VEHICLES, VEHICLES, notes=report.notes, why="vehicles and batteries from gold.daily_kpis")
    registered = registered.select("vehicle_id", "model", F.col("battery_kwh").cast("double").alias("battery_kwh")).dropDuplicates(["vehicle_id"])
    others = daily.groupBy("vehicle_id").agg(F.first("model", ignorenulls=True).alias("model"), F.first("battery_kwh", ignorenulls=True).alias("battery_kwh"))
    return registered.unionByName(others.join(registered.select("vehicle_id"), "vehicle_id", "left_anti"))


def run_charging_plan(spark: SparkSession, cfg: Config) -> StageReport:
    """Write gold.charging_plan and gold.charging_plan_vehicles for the day after the last day of data."""
    report = StageReport(stage="charging_plan")
    p = cfg.charging_plan
    daily = tables.read(spark, cfg, DAILY)
    plan_date = cp.planning_date(daily, p)
    if plan_date is None:
        raise StageSkipped(f"{DAILY} has no day: nothing to plan for")
    vehicles = materialise(fleet(spark, cfg, daily, report))
    stations = tables.read_optional(spark, cfg, STATIONS)
    if stations is None:
        report.notes.append(f"{STATIONS} missing: site ports charging_plan.default_ports, power observed or charging_plan.home_charger_kw")
    else:
        stations = latest_stations(stations)
    predictions = tables.read_optional(spark, cfg, PREDICTIONS)
    if predictions is None:
        report.notes.append(f"{PREDICTIONS} missing (no registered energy model scored): energy per km from physics, else measured (energy_source)")
    if tables.exists(spark, cfg, EVENTS) and tables.exists(spark, cfg, SITES):
        places = cp.charging_places(tables.read(spark, cfg, EVENTS), tables.read(spark, cfg, SITES), stations, p)
    else:
        report.notes.append(f"{EVENTS} or {SITES} missing: no known place to charge, vehicles needing a charge are infeasible")
        places = spark.createDataFrame([], cp.PLACES_SCHEMA)
    places = materialise(places)
    no_events = "vehicle_id string, site_id string, local_date date, start_ts_local timestamp, duration_min double, kwh double"
    events = tables.read(spark, cfg, EVENTS) if tables.exists(spark, cfg, EVENTS) else spark.createDataFrame([], no_events)
    e = cfg.ml.energy
    inputs = cp.plan_inputs(
        vehicles,
        cp.expected_km(daily, plan_date, p),
        cp.energy_rates(vehicles, daily, predictions, plan_date, p, e.physics, e.default_model),
        cp.enroute_kwh(daily, events, places, plan_date, p),
        cp.current_soc(daily, plan_date, p),
        places,
        cp.site_limits(places, stations, p),
        p,
        eve_km=cp.expected_km(daily, plan_date - timedelta(days=1), p),
    )
    solved = materialise(cp.plan_sites(inputs, p))
    try:
        report.rows_in = vehicles.count()
        report.tables[PLAN_VEHICLES] = tables.write(cp.plan_vehicles(solved, plan_date, p), cfg, PLAN_VEHICLES).version
        report.tables[PLAN] = tables.write(cp.plan_slots(solved, plan_date, p), cfg, PLAN).version
    finally:
        for df in (solved, places, vehicles):
            release(df)
    _summarise(spark, cfg, plan_date, report)
    return report.finish()


def _summarise(spark: SparkSession, cfg: Config, plan_date, report: StageReport) -> None:
    summary = tables.read(spark, cfg, PLAN_VEHICLES)
    report.rows_out = tables.read(spark, cfg, PLAN).count()
    by_status = {r["status"]: r["n"] for r in summary.groupBy("status").agg(F.count(F.lit(1)).alias("n")).collect()}  # bounded: three statuses
    reasons = {r["reason_code"]: r["n"] for r in summary.where("status = 'infeasible'").groupBy("reason_code").agg(F.count(F.lit(1)).alias("n")).collect()}  # bounded: one row per reason code
    sources = {r["energy_source"]: r["n"] for r in summary.groupBy("energy_source").agg(F.count(F.lit(1)).alias("n")).collect()}  # bounded: at most four sources
    solve = (
        summary.where(F.col("solve_seconds").isNotNull())
        .groupBy("site_id")
        .agg(F.max("solve_seconds").alias("s"))
        .agg(F.count(F.lit(1)).alias("sites"), F.max("s").alias("max_s"), F.sum("s").alias("sum_s"))
    )
    sites = solve.collect()[0]  # bounded: one aggregate row
    cost = summary.agg(F.sum("cost").alias("c"), F.sum("grid_kwh").alias("k")).collect()[0]  # bounded: one aggregate row
    report.notes.append(f"charging plan for {plan_date}: vehicles by status {by_status}; infeasible by reason {reasons}; energy per km from {sources}")
    if sites["sites"]:
        report.notes.append(f"charging plan: {sites['sites']} site MILPs solved in {sites['sum_s']:.2f} s (slowest {sites['max_s']:.2f} s); {cost['k'] or 0:.1f} grid kWh for {cost['c'] or 0:.2f}")


@job_main
def main(argv: list[str] | None = None) -> StageReport:
    cfg, spark, _args = bootstrap("charging_plan", argv, __doc__)
    require_inputs(spark, cfg, REQUIRES)
    return run_charging_plan(spark, cfg)


if __name__ == "__main__":
    main()

"""Next-day charging plan: the cheapest overnight schedule that keeps every vehicle above a SOC floor.

Pure transforms behind `jobs/charging_plan.py`, which writes gold.charging_plan (per site, vehicle
and slot with charge) and gold.charging_plan_vehicles (one row per vehicle of the fleet). Reads
bronze.vehicles (battery_kwh, model), gold.daily_kpis (km, SOC), silver.charging_events (where and
when each vehicle charged, at which power, with its fleet site), gold.charging_sites (site kind),
bronze.stations (ports, power; optional) and gold.predictions_energy (optional).

Per vehicle, for the plan date (the next duty after the latest reading, or ``charging_plan.plan_date``):

- **expected km** (`expected_km`): the ``km_quantile`` of its GPS km on the plan date's weekday over
  the last ``history_weeks`` weeks, or over every day of those weeks with fewer than
  ``min_weekday_days`` such days (``km_basis``);
- **energy per km** (`energy_rates`, ``energy_source``): the registered energy model's mean
  prediction (distance-weighted over the same weeks, gold.predictions_energy), else the physics
  model of its vehicle model at a steady ``physics_speed_kmh`` (`physics_kwh_per_km`), else its own
  measured trip kWh/km;
- **need** = expected km x kWh/km (battery kWh) less what it typically charges during its duty
  (`enroute_kwh`: its history's median daily kWh of charges neither at its planned site nor in its
  night window, with ``count_enroute_charging``); **SOC now** (`current_soc`, `plan_inputs`) = its
  last daily closing SOC before the horizon ends (no slot before that reading is planned), less
  the rest of the eve's duty when read before its arrival (``soc_basis``); older than
  ``max_soc_age_h`` before the horizon: ``stale_soc``;
- **place** (`charging_places`): its own home site (a home site is ``unknown`` to other vehicles)
  when it charged there at least ``min_arrival_events`` times, else the depot (or home) it charged
  at most, else the public (then unknown) site it charged at most; power = min(station power, the highest
  average power observed there), whichever is known, else ``home_charger_kw``; parked from its
  median local start hour of charging there (``default_arrival_hour`` with fewer than
  ``min_arrival_events`` events) to the duty start, or, at a public or unknown site, for its
  median plug-in time there.

Per site (`site_limits`): ports (the station's level 2 + DC-fast counts, else ``default_ports``;
a home site has one charger per vehicle) and grid capacity (``site_capacity_kw``, else
``capacity_share`` x ports x power). The schedule (`solve_site`, one MILP per site in a grouped
pandas UDF, `plan_sites`) is over slots of ``slot_minutes`` from ``horizon_start_hour`` of the
day before to ``duty_start_hour`` of the plan date, local time:

    lexicographic min  (sum_i s_i of servable vehicles, sum_i s_i of BEST_EFFORT ones, sum_it price_t / eff x e_it)
    s.t. sum_t e_it + s_i >= need_i - (SOC_i - floor) x B_i        (end-of-duty SOC >= floor)
         sum_t e_it       <= (max - SOC_i) x B_i                    (SOC at duty start <= max)
         0 <= e_it <= P_i x h x eff x available_it                 (charger power, parked slots)
         sum_i e_it / (eff x h) <= capacity_kw                      (site grid capacity per slot)
         e_it <= P_i x h x eff x u_it, sum_i u_it <= ports, u binary (only with more vehicles than ports)

with e_it the battery kWh of vehicle i in slot t, eff ``charger_efficiency``, h the slot length
(hours) and s_i >= 0 the shortfall: a vehicle the site cannot serve gets the most it can and is
reported ``infeasible`` (``site_capacity``) instead of making the whole site infeasible. The
objectives are solved in turn (`_solve`), each earlier optimum held as a constraint: the shortfall
is minimised first, then the cost. Solved with `scipy.optimize.milp` (HiGHS): SciPy is already a dependency, HiGHS is a
maintained, competitive MILP solver, and the problems are small (vehicles x slots variables per
site); OR-Tools or highspy would add a dependency for the same solver. Vehicles that cannot be
planned are decided before the solve, with the reason (`REASONS`); those with a place whose need
exceeds the battery or the charger (`BEST_EFFORT`) still get the most it can give, after the others
(their shortfall is minimised second), since the operator charges them anyway.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Mapping
from datetime import date, timedelta

import numpy as np
import pandas as pd
from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from common.core.config import ChargingPlanConfig, PhysicsVehicleParams

# Physical constants of the steady-state physics fallback (same values as the energy model's).
G = 9.81  # m/s2
AIR_DENSITY = 1.2  # kg/m3 at ~25 degC
KMH_PER_MPS = 3.6
J_PER_KWH = 3.6e6
PCT = 100.0
# Shortfalls and energies below this are solver round-off (kWh).
KWH_TOLERANCE = 1e-6
# HiGHS's default primal feasibility tolerance: the slack an earlier stage's optimum is held to in
# the later stages of `_solve` (the cost stage uses it up, so it must stay below KWH_TOLERANCE).
SOLVER_FEASIBILITY_TOLERANCE = 1e-7
NO_SITE = "(none)"

STATUSES = ("planned", "no_charge_needed", "infeasible")
# reason_code -> what it means (the order is the order they are checked in)
REASONS = {
    "unknown_battery_size": "bronze.vehicles has no battery_kwh for the vehicle",
    "no_driving_history": "no day of gold.daily_kpis in the history window: no expected km",
    "no_current_soc": "no closing SOC in gold.daily_kpis",
    "stale_soc": "its latest closing SOC was read more than charging_plan.max_soc_age_h before the horizon start",
    "no_energy_rate": "no energy model prediction, no physics parameters for its model and no measured trip energy",
    "no_place_to_charge": "no charging event at a fleet site: nowhere known to charge",
    "need_exceeds_battery": "the expected need is more than the battery holds between the SOC floor and the maximum SOC",
    "not_enough_time_or_power": "charger power x parked slots cannot add the energy needed",
    "site_capacity": "the site's grid capacity or ports cannot serve every vehicle parked there",
    "solver": "the site's MILP stopped without a solution",
}
SITE_KINDS_BY_PRIORITY = ("home", "depot", "public", "unknown")
# Reasons of vehicles that still get the most their place can give them (to max SOC, at full power):
# the operator charges them anyway, and they compete for the site's capacity after the others.
BEST_EFFORT = frozenset({"need_exceeds_battery", "not_enough_time_or_power"})
# `charging_places` output, empty when there are no charging events or sites.
PLACES_SCHEMA = "vehicle_id string, site_id string, site_kind string, station_id string, charger_kw double, charger_kw_source string, arrival_h double, stay_h double"

# One row per vehicle going into a site's solve (`plan_sites`).
SOLVE_INPUT_COLUMNS = (
    "group_id",
    "vehicle_id",
    "site_kind",
    "battery_kwh",
    "soc_now_pct",
    "need_kwh",
    "charger_kw",
    "first_slot",
    "end_slot",
    "site_ports",
    "site_capacity_kw",
    "reason_code",
)
SOLVED_SCHEMA = T.StructType(
    [
        T.StructField("vehicle_id", T.StringType()),
        T.StructField("status", T.StringType()),
        T.StructField("reason_code", T.StringType()),
        T.StructField("reason", T.StringType()),
        T.StructField("planned_kwh", T.DoubleType()),
        T.StructField("grid_kwh", T.DoubleType()),
        T.StructField("cost", T.DoubleType()),
        T.StructField("shortfall_kwh", T.DoubleType()),
        T.StructField("solve_seconds", T.DoubleType()),
        T.StructField("slot_kwh", T.ArrayType(T.DoubleType())),
    ]
)
VEHICLE_COLUMNS = (
    "plan_date",
    "vehicle_id",
    "model",
    "battery_kwh",
    "status",
    "reason_code",
    "reason",
    "site_id",
    "site_kind",
    "station_id",
    "charger_kw",
    "charger_kw_source",
    "site_ports",
    "site_capacity_kw",
    "window_start_local",
    "window_end_local",
    "expected_km",
    "km_basis",
    "history_days",
    "kwh_per_km",
    "energy_source",
    "duty_kwh",
    "enroute_kwh",
    "need_kwh",
    "soc_reading_pct",
    "soc_basis",
    "soc_now_pct",
    "soc_duty_start_pct",
    "soc_duty_end_pct",
    "planned_kwh",
    "grid_kwh",
    "cost",
    "shortfall_kwh",
    "solve_seconds",
)
SLOT_COLUMNS = (
    "plan_date",
    "site_id",
    "site_kind",
    "vehicle_id",
    "slot_no",
    "slot_start_local",
    "slot_end_local",
    "kwh",
    "grid_kwh",
    "grid_kw",
    "price_per_kwh",
    "cost",
    "site_ports",
    "site_capacity_kw",
)


# --------------------------------------------------------------------------------------------
# The slot grid and the tariff
# --------------------------------------------------------------------------------------------
def slot_hours(params: ChargingPlanConfig) -> float:
    """Length of one slot.

    Parameters
    ----------
    params : ChargingPlanConfig

    Returns
    -------
    float
        Hours.
    """
    return params.slot_minutes / 60.0


def n_slots(params: ChargingPlanConfig) -> int:
    """Slots from ``horizon_start_hour`` of the day before the plan date to ``duty_start_hour`` of it.

    Parameters
    ----------
    params : ChargingPlanConfig

    Returns
    -------
    int
        Number of slots of the schedule.
    """
    horizon_h = 24.0 - params.horizon_start_hour + params.duty_start_hour
    return int(round(horizon_h / slot_hours(params)))


def slot_prices(params: ChargingPlanConfig) -> np.ndarray:
    """Tariff price per grid kWh of each slot: the period containing the slot's local start hour.

    Parameters
    ----------
    params : ChargingPlanConfig
        ``tariff`` (local hours, ordered, the first at 0), the slot grid.

    Returns
    -------
    numpy.ndarray
        One price per slot (the tariff's currency per kWh).
    """
    starts = [p.start_hour for p in params.tariff]
    prices = [p.price_per_kwh for p in params.tariff]
    hours = (params.horizon_start_hour + np.arange(n_slots(params)) * slot_hours(params)) % 24.0
    return np.array([prices[bisect.bisect_right(starts, h) - 1] for h in hours])


# --------------------------------------------------------------------------------------------
# Inputs per vehicle
# --------------------------------------------------------------------------------------------
def planning_date(daily: DataFrame, params: ChargingPlanConfig) -> date | None:
    """The local day whose duty is planned: ``plan_date`` from conf, else the next duty after the data.

    "Now" is the fleet's latest reading (wall-clock time of its vehicle's zone): the plan is for
    that day when now is before ``duty_start_hour``, else for the day after.

    Parameters
    ----------
    daily : DataFrame
        gold.daily_kpis (local_date, last_ts in UTC, timezone).
    params : ChargingPlanConfig

    Returns
    -------
    datetime.date or None
        None when there is no day of data and no ``plan_date``.
    """
    if params.plan_date:
        return date.fromisoformat(params.plan_date)
    local = F.from_utc_timestamp(F.col("last_ts"), F.coalesce(F.col("timezone"), F.lit("UTC")))
    row = daily.agg(F.max(local).alias("now"), F.max("local_date").alias("d")).collect()[0]  # bounded: one aggregate row
    if row["now"] is None:
        return None if row["d"] is None else row["d"] + timedelta(days=1)
    now = row["now"]
    return now.date() if now.hour + now.minute / 60.0 < params.duty_start_hour else now.date() + timedelta(days=1)


def expected_km(daily: DataFrame, plan_date: date, params: ChargingPlanConfig) -> DataFrame:
    """Expected km of each vehicle on the plan date, from its days of the last ``history_weeks`` weeks.

    Parameters
    ----------
    daily : DataFrame
        gold.daily_kpis: vehicle_id, local_date, gps_km (km).
    plan_date : datetime.date
        The local day planned for.
    params : ChargingPlanConfig
        ``history_weeks``, ``km_quantile`` (0-1), ``min_weekday_days``.

    Returns
    -------
    DataFrame
        One row per vehicle with days in the window: vehicle_id, expected_km (km), km_basis
        (``weekday``: the plan date's weekday; ``all_days``: too few of those), history_days.
    """
    first = plan_date - timedelta(weeks=params.history_weeks)
    days = daily.where((F.col("local_date") >= F.lit(first)) & (F.col("local_date") < F.lit(plan_date))).select(
        "vehicle_id", F.coalesce(F.col("gps_km"), F.lit(0.0)).alias("km"), (F.dayofweek("local_date") == F.dayofweek(F.lit(plan_date))).alias("_same")
    )
    q = float(params.km_quantile)
    per_vehicle = days.groupBy("vehicle_id").agg(
        F.percentile(F.when(F.col("_same"), F.col("km")), q).alias("_weekday_km"),
        F.sum(F.col("_same").cast("int")).alias("_weekday_days"),
        F.percentile("km", q).alias("_all_km"),
        F.count(F.lit(1)).alias("history_days"),
    )
    weekday = F.col("_weekday_days") >= params.min_weekday_days
    return per_vehicle.select(
        "vehicle_id",
        F.when(weekday, F.col("_weekday_km")).otherwise(F.col("_all_km")).alias("expected_km"),
        F.when(weekday, F.lit("weekday")).otherwise(F.lit("all_days")).alias("km_basis"),
        F.col("history_days").cast("int").alias("history_days"),
    )


def physics_kwh_per_km(p: PhysicsVehicleParams, speed_kmh: float) -> float:
    """Battery kWh per km of the longitudinal model at a steady speed on the flat, at 21 degC.

    Rolling resistance and drag over one km divided by the drivetrain efficiency, plus the
    auxiliary load for the time one km takes. No acceleration or regeneration: a steady speed
    understates stop-and-go consumption, which is why the registered model comes first.

    Parameters
    ----------
    p : PhysicsVehicleParams
        The vehicle model's parameters (ml.energy.physics).
    speed_kmh : float
        Steady speed (km/h).

    Returns
    -------
    float
        kWh/km.
    """
    v = speed_kmh / KMH_PER_MPS
    force = p.mass_kg * G * p.crr + 0.5 * AIR_DENSITY * p.cda_m2 * v * v
    return force * 1000.0 / p.drivetrain_eff / J_PER_KWH + p.aux_kw / speed_kmh


def energy_rates(
    vehicles: DataFrame,
    daily: DataFrame,
    predictions: DataFrame | None,
    plan_date: date,
    params: ChargingPlanConfig,
    physics: Mapping[str, PhysicsVehicleParams],
    default_model: str | None,
) -> DataFrame:
    """Energy per km of each vehicle: the model's prediction, else physics, else its measured rate.

    Parameters
    ----------
    vehicles : DataFrame
        vehicle_id, model (one row per vehicle).
    daily : DataFrame
        gold.daily_kpis: vehicle_id, local_date, trip_km (km), trip_energy_kwh (kWh).
    predictions : DataFrame or None
        gold.predictions_energy (vehicle_id, local_date, pred_kwh_per_km, distance_km); None when
        no model is registered (jobs/score.py skipped).
    plan_date : datetime.date
    params : ChargingPlanConfig
        ``history_weeks``, ``physics_speed_kmh`` (km/h).
    physics : Mapping[str, PhysicsVehicleParams]
        ml.energy.physics.
    default_model : str or None
        ml.energy.default_model: physics parameters for models without their own.

    Returns
    -------
    DataFrame
        One row per vehicle: vehicle_id, kwh_per_km (null when nothing is known), energy_source
        (model | physics | measured | null).
    """
    spark = vehicles.sparkSession
    first = F.lit(plan_date - timedelta(weeks=params.history_weeks))
    in_window = (F.col("local_date") >= first) & (F.col("local_date") < F.lit(plan_date))
    rates = {name: physics_kwh_per_km(p, params.physics_speed_kmh) for name, p in physics.items()}
    phys = spark.createDataFrame([(m, float(r)) for m, r in rates.items()], "_model string, _physics double")
    model_col = F.coalesce(F.when(F.col("model").isin(list(rates)), F.col("model")), F.lit(default_model))
    out = vehicles.select("vehicle_id", model_col.alias("_model")).join(F.broadcast(phys), "_model", "left")
    measured = daily.where(in_window).groupBy("vehicle_id").agg(F.when(F.sum("trip_km") > 0, F.sum("trip_energy_kwh") / F.sum("trip_km")).alias("_measured"))
    out = out.join(measured, "vehicle_id", "left")
    if predictions is not None:
        pred = (
            predictions.where(in_window & F.col("pred_kwh_per_km").isNotNull())
            .groupBy("vehicle_id")
            .agg(F.when(F.sum("distance_km") > 0, F.sum(F.col("pred_kwh_per_km") * F.col("distance_km")) / F.sum("distance_km")).alias("_pred"))
        )
        out = out.join(pred, "vehicle_id", "left")
    else:
        out = out.withColumn("_pred", F.lit(None).cast("double"))
    positive = lambda c: F.when(F.col(c) > 0, F.col(c))  # noqa: E731 - a zero or negative rate is no rate
    return out.select(
        "vehicle_id",
        F.coalesce(positive("_pred"), positive("_physics"), positive("_measured")).alias("kwh_per_km"),
        F.when(positive("_pred").isNotNull(), "model").when(positive("_physics").isNotNull(), "physics").when(positive("_measured").isNotNull(), "measured").alias("energy_source"),
    )


def enroute_kwh(daily: DataFrame, events: DataFrame, places: DataFrame, plan_date: date, params: ChargingPlanConfig) -> DataFrame:
    """Battery kWh each vehicle typically charges during its duty (away from its overnight charging).

    A vehicle whose day is longer than its battery tops up on the way, as its history shows; the
    overnight plan covers the rest. Per day of the history window (gold.daily_kpis days; a day
    without such a charge counts 0), the kWh of its charging events that are neither at its planned
    site (`charging_places`) nor overlap its night window [arrival, duty start) (arrival of
    `charging_places`, else ``default_arrival_hour``): those are its overnight charges, wherever
    they were; the median over those days.

    Parameters
    ----------
    daily : DataFrame
        gold.daily_kpis: vehicle_id, local_date.
    events : DataFrame
        silver.charging_events: vehicle_id, site_id, local_date, start_ts_local, duration_min, kwh (battery kWh).
    places : DataFrame
        `charging_places` output (site_id, arrival_h).
    plan_date : datetime.date
    params : ChargingPlanConfig
        ``history_weeks``, ``count_enroute_charging``, the horizon.

    Returns
    -------
    DataFrame
        One row per vehicle with days in the window: vehicle_id, enroute_kwh (kWh; 0 when
        ``count_enroute_charging`` is false).
    """
    first = F.lit(plan_date - timedelta(weeks=params.history_weeks))
    days = daily.where((F.col("local_date") >= first) & (F.col("local_date") < F.lit(plan_date))).select("vehicle_id", "local_date").distinct()
    if not params.count_enroute_charging:
        return days.select("vehicle_id").distinct().withColumn("enroute_kwh", F.lit(0.0))
    horizon_h = n_slots(params) * slot_hours(params)
    default_arrival = (params.default_arrival_hour - params.horizon_start_hour) % 24.0
    # hours after the horizon start of the event's start and end (an end past the next horizon start wraps)
    offset = F.pmod(F.hour("start_ts_local") + F.minute("start_ts_local") / 60.0 - F.lit(params.horizon_start_hour), F.lit(24.0))
    end = offset + F.coalesce(F.col("duration_min"), F.lit(0.0)) / 60.0
    arrival = F.coalesce(F.col("arrival_h"), F.lit(default_arrival))
    night = ((offset < F.lit(horizon_h)) & (end > arrival)) | (end > arrival + F.lit(24.0))
    own_site = F.coalesce(F.col("site_id") == F.col("_place"), F.lit(False))
    joined = events.join(places.select("vehicle_id", F.col("site_id").alias("_place"), "arrival_h"), "vehicle_id", "left")
    on_duty = joined.where(~own_site & ~night)
    per_day = on_duty.groupBy("vehicle_id", "local_date").agg(F.sum("kwh").alias("_kwh"))
    filled = days.join(per_day, ["vehicle_id", "local_date"], "left").fillna(0.0, ["_kwh"])
    return filled.groupBy("vehicle_id").agg(F.percentile("_kwh", 0.5).alias("enroute_kwh"))


def current_soc(daily: DataFrame, plan_date: date, params: ChargingPlanConfig) -> DataFrame:
    """SOC now: each vehicle's latest closing SOC read before the horizon ends, and when it was read.

    Only readings before ``duty_start_hour`` of the plan date count (with ``plan_date`` inside
    the data, the plan day's own closing SOC comes after the duty being planned). A reading before
    the horizon start is "now" before the night: `plan_inputs` subtracts what is left of the eve's
    duty after it.

    Parameters
    ----------
    daily : DataFrame
        gold.daily_kpis: vehicle_id, local_date, soc_end_pct (percent), last_ts (UTC), timezone.
    plan_date : datetime.date
    params : ChargingPlanConfig
        The horizon: a last reading inside it is "now", and no slot before it is planned.

    Returns
    -------
    DataFrame
        One row per vehicle with a SOC: vehicle_id, soc_now_pct (percent, at the reading),
        reading_h (hours after the horizon start of the reading; negative before it), now_h
        (reading_h when the reading lies inside the horizon, else null).
    """
    eve = F.lit(plan_date - timedelta(days=1)).cast("timestamp")
    local = F.from_utc_timestamp(F.col("last_ts"), F.coalesce(F.col("timezone"), F.lit("UTC")))
    hours = (F.unix_timestamp(local) - F.unix_timestamp(eve)) / 3600.0 - F.lit(params.horizon_start_hour)
    horizon_h = n_slots(params) * slot_hours(params)
    last = daily.where((F.col("local_date") <= F.lit(plan_date)) & F.col("soc_end_pct").isNotNull()).withColumn("_h", hours).where(F.col("_h") < F.lit(horizon_h))
    latest = last.groupBy("vehicle_id").agg(F.max(F.struct("last_ts", "soc_end_pct", "_h")).alias("_l"))
    now_h = F.col("_l._h")
    return latest.select("vehicle_id", F.col("_l.soc_end_pct").alias("soc_now_pct"), now_h.alias("reading_h"), F.when(now_h >= 0, now_h).alias("now_h"))


def charging_places(events: DataFrame, sites: DataFrame, stations: DataFrame | None, params: ChargingPlanConfig) -> DataFrame:
    """Where each vehicle charges tonight, at which power and from when, from its charging history.

    Parameters
    ----------
    events : DataFrame
        silver.charging_events: vehicle_id, site_id, start_ts_local, duration_min, avg_power_kw (kW).
    sites : DataFrame
        gold.charging_sites: site_id, kind, station_id, home_vehicle_id (optional). A home site is
        ``home`` only to its home vehicle; to any other vehicle it is ``unknown``.
    stations : DataFrame or None
        Latest bronze.stations (station_id, power_kw in kW); None: power from the events or conf.
    params : ChargingPlanConfig
        ``horizon_start_hour``, ``default_arrival_hour``, ``min_arrival_events`` (also the events a
        home needs to outrank a depot; with fewer, the one with more events wins), ``home_charger_kw``.

    Returns
    -------
    DataFrame
        One row per vehicle with events at a site: vehicle_id, site_id, site_kind, station_id,
        charger_kw (kW), charger_kw_source (station | observed | station_observed | conf),
        arrival_h (hours after the horizon start), stay_h (hours parked; null = until the duty).
    """
    home_vehicle = F.col("home_vehicle_id") if "home_vehicle_id" in sites.columns else F.lit(None).cast("string")
    at = (
        events.where(F.col("site_id").isNotNull())
        .select("vehicle_id", "site_id", "start_ts_local", "duration_min", "avg_power_kw")
        .join(sites.select("site_id", F.col("kind").alias("_kind"), "station_id", home_vehicle.alias("_home_vehicle")), "site_id")
    )
    # someone else's home is no home of this vehicle: a private site of unknown status to it
    at = at.withColumn("site_kind", F.when((F.col("_kind") == "home") & ~F.coalesce(F.col("_home_vehicle") == F.col("vehicle_id"), F.lit(False)), "unknown").otherwise(F.col("_kind")))
    # hours after the horizon start, so that medians of late-evening and after-midnight starts make sense
    start_h = F.hour("start_ts_local") + F.minute("start_ts_local") / 60.0
    offset = F.pmod(start_h - F.lit(params.horizon_start_hour), F.lit(24.0))
    per_site = at.groupBy("vehicle_id", "site_id", "site_kind", "station_id").agg(
        F.count(F.lit(1)).alias("_events"),
        F.max("avg_power_kw").alias("_observed_kw"),
        F.percentile(offset, 0.5).alias("_arrival_h"),
        F.percentile(F.col("duration_min") / 60.0, 0.5).alias("_stay_h"),
    )
    rank = F.create_map(*[x for i, k in enumerate(SITE_KINDS_BY_PRIORITY) for x in (F.lit(k), F.lit(i))])[F.col("site_kind")]
    # a home seen fewer than min_arrival_events times does not outrank a depot: the more used one wins
    rank = F.when((F.col("site_kind") == "home") & (F.col("_events") < params.min_arrival_events), F.lit(SITE_KINDS_BY_PRIORITY.index("depot"))).otherwise(rank)
    best = Window.partitionBy("vehicle_id").orderBy(rank, F.desc("_events"), "site_id")
    chosen = per_site.withColumn("_rn", F.row_number().over(best)).where("_rn = 1").drop("_rn")
    if stations is not None:
        chosen = chosen.join(stations.select("station_id", F.col("power_kw").alias("_station_kw")), "station_id", "left")
    else:
        chosen = chosen.withColumn("_station_kw", F.lit(None).cast("double"))
    station_kw, observed_kw = F.when(F.col("_station_kw") > 0, F.col("_station_kw")), F.when(F.col("_observed_kw") > 0, F.col("_observed_kw"))
    default_arrival = (params.default_arrival_hour - params.horizon_start_hour) % 24.0
    horizon_h = n_slots(params) * slot_hours(params)
    overnight = F.col("site_kind").isin("home", "depot")
    return chosen.select(
        "vehicle_id",
        "site_id",
        "site_kind",
        "station_id",
        F.coalesce(F.least(station_kw, observed_kw), station_kw, observed_kw, F.lit(params.home_charger_kw)).alias("charger_kw"),
        F.when(station_kw.isNotNull() & observed_kw.isNotNull(), "station_observed")
        .when(station_kw.isNotNull(), "station")
        .when(observed_kw.isNotNull(), "observed")
        .otherwise("conf")
        .alias("charger_kw_source"),
        # a median start outside the night's horizon (daytime top-ups) says nothing about tonight
        F.when((F.col("_events") >= params.min_arrival_events) & (F.col("_arrival_h") < F.lit(horizon_h)), F.col("_arrival_h")).otherwise(F.lit(default_arrival)).alias("arrival_h"),
        F.when(~overnight, F.col("_stay_h")).alias("stay_h"),
    )


def site_limits(places: DataFrame, stations: DataFrame | None, params: ChargingPlanConfig) -> DataFrame:
    """Ports and grid capacity of every site a vehicle plans to charge at.

    Parameters
    ----------
    places : DataFrame
        `charging_places` output.
    stations : DataFrame or None
        Latest bronze.stations (station_id, level2_count, dc_fast_count, power_kw in kW).
    params : ChargingPlanConfig
        ``default_ports``, ``site_capacity_kw`` (by station_id or site_id), ``capacity_share``.

    Returns
    -------
    DataFrame
        One row per site: site_id, site_ports, site_capacity_kw (kW). A home site has one charger
        per vehicle and the capacity of all of them.
    """
    # one row per site even when it is one vehicle's home and `unknown` to another (`charging_places`)
    per_site = places.groupBy("site_id", "station_id").agg(
        F.count(F.lit(1)).alias("_vehicles"), F.max("charger_kw").alias("_max_kw"), F.sum("charger_kw").alias("_sum_kw"), F.max(F.col("site_kind") == "home").alias("_home")
    )
    if stations is not None:
        ports = F.coalesce(F.col("level2_count"), F.lit(0)) + F.coalesce(F.col("dc_fast_count"), F.lit(0))
        per_site = per_site.join(stations.select("station_id", ports.alias("_station_ports"), F.col("power_kw").alias("_station_kw")), "station_id", "left")
    else:
        per_site = per_site.withColumn("_station_ports", F.lit(None).cast("int")).withColumn("_station_kw", F.lit(None).cast("double"))
    home = F.col("_home")
    site_ports = F.when(home, F.col("_vehicles")).otherwise(F.coalesce(F.when(F.col("_station_ports") > 0, F.col("_station_ports")), F.lit(params.default_ports))).cast("int")
    power = F.coalesce(F.when(F.col("_station_kw") > 0, F.col("_station_kw")), F.col("_max_kw"))
    default_capacity = F.when(home, F.col("_sum_kw")).otherwise(F.lit(params.capacity_share) * site_ports * power)
    configured = F.create_map(*[x for k, v in params.site_capacity_kw.items() for x in (F.lit(k), F.lit(float(v)))]) if params.site_capacity_kw else None
    capacity = default_capacity if configured is None else F.coalesce(configured[F.col("station_id")], configured[F.col("site_id")], default_capacity)
    return per_site.select("site_id", site_ports.alias("site_ports"), capacity.cast("double").alias("site_capacity_kw"))


def plan_inputs(
    vehicles: DataFrame,
    km: DataFrame,
    rates: DataFrame,
    enroute: DataFrame,
    soc: DataFrame,
    places: DataFrame,
    limits: DataFrame,
    params: ChargingPlanConfig,
    eve_km: DataFrame | None = None,
) -> DataFrame:
    """One row per vehicle of the fleet with everything its site's solve needs, and the reason it
    cannot be planned when that is already clear.

    SOC now: the reading of `current_soc` (soc_reading_pct) when it was read at or after the
    vehicle's arrival (soc_basis ``at_arrival``); read before it (``before_arrival``), less the
    eve's duty still ahead of the reading, estimated as the eve's expected km (``eve_km``) x its
    kWh/km x the share of the eve's duty hours [``duty_start_hour``, arrival) after the reading:
    linear in time, an estimate, not a measurement. A reading more than ``max_soc_age_h`` before
    the horizon start is ``stale_soc``.

    Parameters
    ----------
    vehicles : DataFrame
        vehicle_id, model, battery_kwh (kWh), one row per vehicle: every vehicle gets a row.
    km, rates, enroute, soc, places, limits : DataFrame
        `expected_km`, `energy_rates`, `enroute_kwh`, `current_soc`, `charging_places`, `site_limits`.
    params : ChargingPlanConfig
        Slot grid, SOC floor and maximum, charger efficiency, ``max_soc_age_h``.
    eve_km : DataFrame or None
        `expected_km` of the day before the plan date (vehicle_id, expected_km); None: no eve
        duty is subtracted.

    Returns
    -------
    DataFrame
        vehicles + the inputs, duty_kwh (battery kWh of the expected duty), need_kwh (duty_kwh -
        enroute_kwh, at least 0: what the night must provide), first_slot / end_slot (the parked slots
        [first, end) of the grid), group_id (the site, `NO_SITE` without one) and reason_code (null
        while the vehicle may still be planned).
    """
    slots = n_slots(params)
    h, eff = slot_hours(params), params.charger_efficiency
    df = (
        vehicles.join(km, "vehicle_id", "left")
        .join(rates, "vehicle_id", "left")
        .join(enroute, "vehicle_id", "left")
        .join(soc, "vehicle_id", "left")
        .join(places, "vehicle_id", "left")
        .join(limits, "site_id", "left")
    )
    default_arrival = (params.default_arrival_hour - params.horizon_start_hour) % 24.0
    if eve_km is not None:
        df = df.join(eve_km.select("vehicle_id", F.col("expected_km").alias("_eve_km")), "vehicle_id", "left")
    else:
        df = df.withColumn("_eve_km", F.lit(None).cast("double"))
    # the eve's duty in hours after the horizon start: [duty start of the eve (<= 0), arrival)
    eve_start = F.lit(float(params.duty_start_hour - params.horizon_start_hour))
    arrival = F.coalesce(F.col("arrival_h"), F.lit(default_arrival))
    before = F.col("reading_h") < arrival
    share = F.when(arrival > eve_start, F.least(F.lit(1.0), F.greatest(F.lit(0.0), (arrival - F.greatest(F.col("reading_h"), eve_start)) / (arrival - eve_start)))).otherwise(F.lit(0.0))
    eve_kwh = F.when(before, F.coalesce(F.col("_eve_km"), F.lit(0.0)) * F.coalesce(F.col("kwh_per_km"), F.lit(0.0)) * share).otherwise(F.lit(0.0))
    df = (
        df.withColumnRenamed("soc_now_pct", "soc_reading_pct")
        .withColumn("soc_basis", F.when(F.col("soc_reading_pct").isNotNull(), F.when(before, "before_arrival").otherwise("at_arrival")))
        .withColumn(
            "soc_now_pct",
            F.when((F.col("battery_kwh") > 0) & F.col("soc_reading_pct").isNotNull(), F.greatest(F.lit(0.0), F.col("soc_reading_pct") - eve_kwh / F.col("battery_kwh") * PCT)).otherwise(
                F.col("soc_reading_pct")
            ),
        )
    )
    duty = F.col("expected_km") * F.col("kwh_per_km")
    need = F.greatest(duty - F.coalesce(F.col("enroute_kwh"), F.lit(0.0)), F.lit(0.0))
    # no slot before the vehicle is parked there, nor before its last reading ("now")
    start_h = F.greatest(F.col("arrival_h"), F.coalesce(F.col("now_h"), F.lit(0.0)))
    first_slot = F.ceil(start_h / F.lit(h) - F.lit(KWH_TOLERANCE)).cast("int")
    end_slot = F.when(F.col("stay_h").isNull(), F.lit(slots)).otherwise(F.least(F.lit(slots), F.floor((F.col("arrival_h") + F.col("stay_h")) / F.lit(h) + F.lit(KWH_TOLERANCE)))).cast("int")
    df = df.withColumn("duty_kwh", duty).withColumn("need_kwh", need).withColumn("first_slot", first_slot).withColumn("end_slot", F.greatest(end_slot, first_slot))
    battery = F.col("battery_kwh")
    required = F.col("need_kwh") - (F.col("soc_now_pct") - F.lit(params.soc_floor_pct)) / PCT * battery
    deliverable = F.col("charger_kw") * F.lit(h * eff) * (F.col("end_slot") - F.col("first_slot"))
    reason = (
        F.when(battery.isNull() | (battery <= 0), "unknown_battery_size")
        .when(F.col("expected_km").isNull(), "no_driving_history")
        .when(F.col("soc_now_pct").isNull(), "no_current_soc")
        .when(F.col("reading_h") < F.lit(-params.max_soc_age_h), "stale_soc")
        .when(F.col("kwh_per_km").isNull(), "no_energy_rate")
        .when(required <= 0, None)  # no charge needed: any site (or none) will do
        .when(F.col("site_id").isNull(), "no_place_to_charge")
        .when(F.col("need_kwh") > (F.lit(params.soc_max_pct - params.soc_floor_pct) / PCT * battery), "need_exceeds_battery")
        .when(required > deliverable + F.lit(KWH_TOLERANCE), "not_enough_time_or_power")
    )
    return df.withColumn("reason_code", reason).withColumn("group_id", F.coalesce(F.col("site_id"), F.lit(NO_SITE)))


# --------------------------------------------------------------------------------------------
# The optimisation of one site
# --------------------------------------------------------------------------------------------
def _reason_text(code: str, row: Mapping, params: ChargingPlanConfig) -> str:
    b, need = row["battery_kwh"], row["need_kwh"]
    if code == "need_exceeds_battery":
        return f"{REASONS[code]}: {need:.1f} kWh needed, {(params.soc_max_pct - params.soc_floor_pct) / PCT * b:.1f} kWh between {params.soc_floor_pct:g} % and {params.soc_max_pct:g} %"
    if code == "not_enough_time_or_power":
        parked = (row["end_slot"] - row["first_slot"]) * slot_hours(params)
        if parked <= 0:
            return f"{REASONS[code]}: {_required(row, params):.1f} kWh to add, no parked slot at its {row.get('site_kind') or 'charging'} site left before the duty"
        return f"{REASONS[code]}: {_required(row, params):.1f} kWh to add, {row['charger_kw']:.1f} kW for {parked:g} h"
    return REASONS[code]


def _required(row: Mapping, params: ChargingPlanConfig) -> float:
    return float(row["need_kwh"] - (row["soc_now_pct"] - params.soc_floor_pct) / PCT * row["battery_kwh"])


def solve_site(pdf: pd.DataFrame, params: ChargingPlanConfig) -> pd.DataFrame:
    """The cheapest schedule of one site's vehicles (the MILP of the module docstring).

    Parameters
    ----------
    pdf : pandas.DataFrame
        The site's vehicles, `SOLVE_INPUT_COLUMNS`: battery_kwh (kWh), soc_now_pct (percent),
        need_kwh (battery kWh for the duty), charger_kw (kW), first_slot / end_slot (parked slots
        [first, end)), site_ports, site_capacity_kw (kW, the same on every row), reason_code (set:
        decided before the solve).
    params : ChargingPlanConfig
        Slot grid, tariff, SOC floor / maximum, charger efficiency, solver limits.

    Returns
    -------
    pandas.DataFrame
        `SOLVED_SCHEMA` rows, one per vehicle: status, reason_code, reason, planned_kwh (battery),
        grid_kwh, cost (tariff currency), shortfall_kwh, solve_seconds (of the site), slot_kwh
        (battery kWh per slot of the grid; null for a vehicle decided before the solve).
    """
    from scipy.optimize import Bounds, LinearConstraint, milp
    from scipy.sparse import coo_array

    slots, h, eff = n_slots(params), slot_hours(params), params.charger_efficiency
    prices = slot_prices(params)
    rows = pdf.to_dict("records")
    out: dict[str, dict] = {}
    todo: list[tuple[dict, float, float]] = []
    for r in rows:
        base = {"vehicle_id": r["vehicle_id"], "planned_kwh": 0.0, "grid_kwh": 0.0, "cost": 0.0, "shortfall_kwh": 0.0, "solve_seconds": None, "slot_kwh": None}
        code = r["reason_code"]
        if isinstance(code, str) and code not in BEST_EFFORT:
            out[r["vehicle_id"]] = base | {"status": "infeasible", "reason_code": code, "reason": _reason_text(code, r, params)}
            continue
        required = _required(r, params)
        if required <= 0:
            out[r["vehicle_id"]] = base | {"status": "no_charge_needed", "reason_code": None, "reason": None, "slot_kwh": [0.0] * slots}
            continue
        room = max(0.0, (params.soc_max_pct - r["soc_now_pct"]) / PCT * r["battery_kwh"])
        todo.append((r, required, room))  # a BEST_EFFORT vehicle keeps its reason and gets the most the site can give
    if todo:
        out |= _solve(todo, slots, h, eff, prices, params, milp, LinearConstraint, Bounds, coo_array)
    order = [r["vehicle_id"] for r in rows]
    return pd.DataFrame([out[v] for v in order], columns=[f.name for f in SOLVED_SCHEMA.fields])


def _solve(todo, slots, h, eff, prices, params, milp, LinearConstraint, Bounds, coo_array) -> dict[str, dict]:
    """Lexicographic MILP of one site's vehicles to charge: least shortfall first, then least cost.

    Stage 1 minimises the total shortfall of the vehicles that can be served, stage 2 (only with
    `BEST_EFFORT` vehicles) that of the best-effort ones with stage 1's total fixed, stage 3 the
    cost with both fixed (a zero optimum at exactly 0, others within `SOLVER_FEASIBILITY_TOLERANCE`:
    the cost stage may use that slack, which stays below the `KWH_TOLERANCE` a shortfall is
    reported from).
    Separate stages instead of one weighted objective: the penalty that makes a kWh of shortfall
    dearer than any cost it saves depends on the whole site once ports bind (one kWh of a slow
    vehicle can push a fast one into dear slots), so no fixed factor is safe.

    Parameters
    ----------
    todo : list of (dict, float, float)
        Per vehicle its `SOLVE_INPUT_COLUMNS` row, kWh required above the floor and room to the
        maximum SOC (battery kWh).
    slots, h, eff, prices
        Slot count, slot hours, charger efficiency and price per grid kWh of each slot.
    params : ChargingPlanConfig
    milp, LinearConstraint, Bounds, coo_array
        scipy's, imported by the caller.

    Returns
    -------
    dict[str, dict]
        `SOLVED_SCHEMA` row per vehicle_id.
    """
    n = len(todo)
    ports = int(todo[0][0]["site_ports"])
    capacity_kw = float(todo[0][0]["site_capacity_kw"])
    use_ports = n > ports  # binaries only where the ports can bind
    ne = n * slots
    nu = ne if use_ports else 0
    nvar = ne + n + nu
    ub_e = np.zeros(ne)
    for i, (r, _req, _room) in enumerate(todo):
        ub_e[i * slots + int(r["first_slot"]) : i * slots + int(r["end_slot"])] = r["charger_kw"] * h * eff
    best_effort = np.array([isinstance(r["reason_code"], str) for r, _req, _room in todo])
    lb = np.zeros(nvar)
    ub = np.concatenate([ub_e, np.array([req for _r, req, _room in todo]), np.ones(nu)])
    cons_rows: list[int] = []
    cons_cols: list[int] = []
    cons_vals: list[float] = []
    c_lb: list[float] = []
    c_ub: list[float] = []

    def add(cols, vals, lo, hi):
        """Append one constraint row: lo <= sum of vals x the variables cols <= hi.

        Parameters
        ----------
        cols : list of int
            Variable indices.
        vals : list of float
            Their coefficients.
        lo, hi : float
            Bounds of the row.
        """
        k = len(c_lb)
        cons_rows.extend([k] * len(cols))
        cons_cols.extend(cols)
        cons_vals.extend(vals)
        c_lb.append(lo)
        c_ub.append(hi)

    for i, (_r, req, room) in enumerate(todo):
        e_cols = list(range(i * slots, (i + 1) * slots))
        add([*e_cols, ne + i], [1.0] * (slots + 1), req, np.inf)  # end-of-duty SOC >= floor (or shortfall)
        add(e_cols, [1.0] * slots, 0.0, room)  # SOC at duty start <= max
    for t in range(slots):
        add([i * slots + t for i in range(n)], [1.0] * n, 0.0, capacity_kw * h * eff)  # grid kW of the site
    if use_ports:
        for k in range(ne):
            add([k, ne + n + k], [1.0, -ub_e[k]], -np.inf, 0.0)  # charge only while plugged in
        for t in range(slots):
            add([ne + n + i * slots + t for i in range(n)], [1.0] * n, 0.0, float(ports))
    integrality = np.concatenate([np.zeros(ne + n), np.ones(nu)])
    groups = [g for g in (~best_effort, best_effort) if g.any()]  # servable vehicles' shortfall first
    objectives = [np.concatenate([np.zeros(ne), g.astype(float), np.zeros(nu)]) for g in groups]
    objectives.append(np.concatenate([np.tile(prices / eff, n), np.zeros(n + nu)]))
    res, solved, seconds = None, None, 0.0
    for stage, c in enumerate(objectives):
        a = coo_array((cons_vals, (cons_rows, cons_cols)), shape=(len(c_lb), nvar)).tocsr()
        started = time.perf_counter()
        res = milp(
            c,
            constraints=LinearConstraint(a, np.array(c_lb), np.array(c_ub)),
            integrality=integrality,
            bounds=Bounds(lb, ub),
            options={"time_limit": params.solver_time_limit_s, "mip_rel_gap": params.mip_rel_gap},
        )
        seconds += time.perf_counter() - started
        if res.x is None:
            # a later stage without a solution (its time limit): the earlier stage's schedule still holds
            res = solved if solved is not None else res
            break
        solved = res
        if stage < len(groups):  # keep this group's least shortfall in the later stages
            cols = [ne + i for i in np.flatnonzero(groups[stage])]
            least = float(res.x[cols].sum())
            # none short: held at exactly 0, else the cost stage would spend the slack below the floor
            add(cols, [1.0] * len(cols), 0.0, 0.0 if least <= KWH_TOLERANCE else least + SOLVER_FEASIBILITY_TOLERANCE)
    out: dict[str, dict] = {}
    for i, (r, req, _room) in enumerate(todo):
        vid = r["vehicle_id"]
        if res is None or res.x is None:
            out[vid] = {"vehicle_id": vid, "status": "infeasible", "reason_code": "solver", "reason": f"{REASONS['solver']}: {getattr(res, 'message', '')}", "planned_kwh": 0.0, "grid_kwh": 0.0,
                        "cost": 0.0, "shortfall_kwh": req, "solve_seconds": seconds, "slot_kwh": None}  # fmt: skip
            continue
        e = np.where(res.x[i * slots : (i + 1) * slots] > KWH_TOLERANCE, res.x[i * slots : (i + 1) * slots], 0.0)
        # the shortfall from the schedule, not the solver's s_i (stage 3 may leave s_i above it)
        short = max(0.0, req - float(e.sum()))
        short = short if short > KWH_TOLERANCE else 0.0
        grid = e / eff
        status, code = ("infeasible", "site_capacity") if short > 0 else ("planned", None)
        reason = f"{REASONS['site_capacity']}: {short:.1f} kWh short ({ports} ports, {capacity_kw:.1f} kW)" if short > 0 else None
        if best_effort[i]:
            status, code = "infeasible", r["reason_code"]
            reason = f"{_reason_text(code, r, params)}; best effort {float(e.sum()):.1f} kWh, {short:.1f} kWh short"
        out[vid] = {"vehicle_id": vid, "status": status, "reason_code": code, "reason": reason, "planned_kwh": float(e.sum()), "grid_kwh": float(grid.sum()),
                    "cost": float((grid * prices).sum()), "shortfall_kwh": short, "solve_seconds": seconds, "slot_kwh": [float(x) for x in e]}  # fmt: skip
    return out


def plan_sites(inputs: DataFrame, params: ChargingPlanConfig) -> DataFrame:
    """`solve_site` per site in a grouped pandas UDF (groupBy(group_id).applyInPandas): one task per
    site, so the plan scales with the number of depots.

    Parameters
    ----------
    inputs : DataFrame
        `plan_inputs` output.
    params : ChargingPlanConfig

    Returns
    -------
    DataFrame
        `inputs` + the `SOLVED_SCHEMA` columns (status, reason, kWh, cost, slot_kwh ...).
    """

    def solve(pdf: pd.DataFrame) -> pd.DataFrame:
        """applyInPandas body: the MILP of one site's vehicles.

        Parameters
        ----------
        pdf : pandas.DataFrame
            The site's `SOLVE_INPUT_COLUMNS` rows.

        Returns
        -------
        pandas.DataFrame
            `SOLVED_SCHEMA` rows (`solve_site`).
        """
        return solve_site(pdf, params)

    solved = inputs.select(*SOLVE_INPUT_COLUMNS).groupBy("group_id").applyInPandas(solve, SOLVED_SCHEMA)
    return inputs.drop("reason_code").join(solved, "vehicle_id")


def _local_ts(plan_date: date, hours_after_start: Column, params: ChargingPlanConfig) -> Column:
    """Local wall-clock timestamp (the convention of ts_local columns) this many hours after the horizon start."""
    eve = F.lit(plan_date - timedelta(days=1)).cast("timestamp")
    return (F.unix_timestamp(eve) + F.round((F.lit(params.horizon_start_hour) + hours_after_start) * 3600)).cast("timestamp")


def plan_vehicles(solved: DataFrame, plan_date: date, params: ChargingPlanConfig) -> DataFrame:
    """gold.charging_plan_vehicles: one row per vehicle with its status, reason, SOCs and totals.

    Parameters
    ----------
    solved : DataFrame
        `plan_sites` output.
    plan_date : datetime.date
    params : ChargingPlanConfig

    Returns
    -------
    DataFrame
        `VEHICLE_COLUMNS`; SOC at duty start / end in percent (null when not computable), window
        in local wall-clock time, kWh battery-side except grid_kwh.
    """
    h = slot_hours(params)
    start_pct = F.col("soc_now_pct") + F.col("planned_kwh") / F.col("battery_kwh") * PCT
    return (
        solved.withColumn("plan_date", F.lit(plan_date))
        .withColumn("soc_duty_start_pct", F.when(F.col("battery_kwh") > 0, start_pct))
        .withColumn("soc_duty_end_pct", F.col("soc_duty_start_pct") - F.col("need_kwh") / F.col("battery_kwh") * PCT)
        .withColumn("window_start_local", F.when(F.col("site_id").isNotNull(), _local_ts(plan_date, F.col("first_slot") * h, params)))
        .withColumn("window_end_local", F.when(F.col("site_id").isNotNull(), _local_ts(plan_date, F.col("end_slot") * h, params)))
        .select(*VEHICLE_COLUMNS)
    )


def plan_slots(solved: DataFrame, plan_date: date, params: ChargingPlanConfig) -> DataFrame:
    """gold.charging_plan: one row per site, vehicle and slot with charge (the operator's schedule).

    Parameters
    ----------
    solved : DataFrame
        `plan_sites` output.
    plan_date : datetime.date
    params : ChargingPlanConfig

    Returns
    -------
    DataFrame
        `SLOT_COLUMNS`: slot times in local wall-clock time, kwh (battery), grid_kwh, grid_kw (kW,
        average over the slot), price_per_kwh and cost (tariff currency).
    """
    h, eff = slot_hours(params), params.charger_efficiency
    prices = F.array(*[F.lit(float(p)) for p in slot_prices(params)])
    exploded = solved.where(F.col("slot_kwh").isNotNull()).select("*", F.posexplode("slot_kwh").alias("slot_no", "kwh")).where(F.col("kwh") > KWH_TOLERANCE)
    return (
        exploded.withColumn("plan_date", F.lit(plan_date))
        .withColumn("slot_no", F.col("slot_no").cast("int"))
        .withColumn("slot_start_local", _local_ts(plan_date, F.col("slot_no") * h, params))
        .withColumn("slot_end_local", _local_ts(plan_date, (F.col("slot_no") + 1) * h, params))
        .withColumn("grid_kwh", F.col("kwh") / eff)
        .withColumn("grid_kw", F.col("grid_kwh") / h)
        .withColumn("price_per_kwh", F.element_at(prices, F.col("slot_no") + 1))
        .withColumn("cost", F.col("grid_kwh") * F.col("price_per_kwh"))
        .select(*SLOT_COLUMNS)
    )

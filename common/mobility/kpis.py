"""Fleet KPIs from cleaned telematics (pure DataFrame transforms; `jobs/kpis.py` does the IO).

Input: the per-sample frame of `common.silver.trips.trip_points` (usable samples of
silver.telematics_clean with legs, stops and trips marked). Outputs:

- `vehicle_minutely` -> silver.vehicle_minutely: per vehicle and UTC minute, speed, GPS km,
  moving share, SOC stats and change, rolling event-time windows, charging flag;
- `add_odometer_checks` + `daily_kpis` -> gold.daily_kpis: per vehicle and local day;
- `fleet_daily_kpis` -> gold.fleet_daily_kpis: fleet totals and percentiles per local day;
- `payd_billing` -> gold.payd_billing: pay-as-you-drive km per vehicle and billing period.

Units are in the column names (km, kWh, percent points `_pct`, shares 0-1 `_share`). Every
sample-to-sample quantity belongs to the minute/day of the sample that ends the leg.

A range run (`--start-date/--end-date`) reads `input_window` of silver.telematics_clean and
recomputes the billing periods of `billing_ranges`; `charging_events` and `kpis_summary` are
the stage's charging input and printed summary.
"""

from __future__ import annotations

from datetime import date, timedelta

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from common.core.config import BillingConfig, ChargingConfig, KpisConfig, OdometerConfig, TripsConfig
from common.io.ranges import DateRange
from common.io.tables import first_row
from common.silver.trips import POINT_COLUMNS, events_window, peer_window, running_window, value_at_first, value_at_last

# A reading that moved less than this did not change (odometers report 0.1 km or finer).
_ODOMETER_EPS_KM = 1e-6


# --------------------------------------------------------------------------------------------
# Inputs of a (range) run
# --------------------------------------------------------------------------------------------
def input_window(clean: DataFrame, rng: DateRange, context_days: int) -> DataFrame:
    """The silver.telematics_clean rows a run over `rng` needs.

    Parameters
    ----------
    clean : DataFrame
        silver.telematics_clean (partitioned by UTC `date`, with `local_date`).
    rng : DateRange
        Local days to compute; a full range returns `clean` as it is.
    context_days : int
        Days read on either side of the range (kpis.context_days), so trips over midnight come
        out as in a full run.

    Returns
    -------
    DataFrame
        The rows of the widened range, plus each vehicle's last usable sample before it (the
        previous step of the first sample in the window); with a start bound only the
        POINT_COLUMNS and `is_usable` are kept.
    """
    if rng.is_full:
        return clean
    ctx = rng.widened(context_days)
    # `date` (UTC, the partition column) is within a day of the local date: prune partitions first.
    window = clean.where(ctx.widened(1).contains("date")).where(ctx.contains("local_date"))
    if ctx.start is None:
        return window
    cols = [*POINT_COLUMNS, "is_usable"]
    before = clean.where((F.col("date") <= F.lit(ctx.start + timedelta(days=1))) & (F.col("local_date") < F.lit(ctx.start)))
    last_before = before.where("is_usable").groupBy("vehicle_id").agg(F.max(F.struct("ts", *[c for c in cols if c not in ("vehicle_id", "ts")])).alias("_last")).select("vehicle_id", "_last.*")
    return window.select(*cols).unionByName(last_before.select(*cols))


def charging_events(
    clean: DataFrame,
    vehicles: DataFrame,
    charging: ChargingConfig | None,
    trips: TripsConfig,
    beats: DataFrame | None = None,
    notes: list[str] | None = None,
) -> DataFrame | None:
    """Charging events of common.mobility.charging, in the shape the KPIs read.

    Parameters
    ----------
    clean : DataFrame
        silver.telematics_clean rows (the run's window).
    vehicles : DataFrame
        bronze.vehicles (battery_kwh, kWh).
    charging : ChargingConfig or None
        The `charging` config section.
    trips : TripsConfig
        kpis.trips thresholds.
    beats : DataFrame, optional
        Heartbeats per vehicle (common.silver.devices.heartbeats).
    notes : list of str, optional
        A StageReport's notes: says so when the detector is not available.

    Returns
    -------
    DataFrame or None
        vehicle_id, start_ts, end_ts (UTC), kwh, local_date (local day of the start); None when
        common.mobility.charging cannot be imported (the minutely flag then falls back to SOC rises).
    """
    try:
        from common.mobility.charging import detect_charging_events
    except ImportError:
        if notes is not None:
            notes.append("common.mobility.charging.detect_charging_events not available: charging flag per minute from SOC rises only; daily charging_events/charging_kwh are null")
        return None
    events = detect_charging_events(clean, vehicles, charging, trips, beats)
    cols = set(events.columns)
    kwh = F.col("kwh") if "kwh" in cols else F.col("energy_kwh")
    local_date = F.col("local_date") if "local_date" in cols else F.to_date(F.from_utc_timestamp("start_ts", F.col("timezone")))
    return events.select("vehicle_id", "start_ts", "end_ts", kwh.alias("kwh"), local_date.alias("local_date"))


# --------------------------------------------------------------------------------------------
# silver.vehicle_minutely
# --------------------------------------------------------------------------------------------
def vehicle_minutely(points: DataFrame, params: KpisConfig, charging_events: DataFrame | None = None) -> DataFrame:
    """Per vehicle and UTC minute (`minute_ts`) with samples (silver.vehicle_minutely).

    Parameters
    ----------
    points : DataFrame
        `common.silver.trips.trip_points` output.
    params : KpisConfig
        rolling_window_minutes (min).
    charging_events : DataFrame, optional
        vehicle_id, start_ts, end_ts (UTC): the `charging` flag marks minutes inside an event;
        None: the flag comes from SOC rises.

    Returns
    -------
    DataFrame
        One row per (vehicle_id, minute_ts) with samples, MINUTELY_COLUMNS. minute_local (local
        time), local_date; speed_mean/max_kmh: sample speeds (reported, else implied, km/h); km:
        GPS km of the moving legs ending in the minute; moving_s: seconds of moving legs;
        moving_share: share (0-1) of samples above kpis.trips.moving_speed_kmh;
        soc_mean/min/max_pct (percent points); soc_delta_pct: SOC change since the vehicle's
        previous sample (so minutes add up to the change over any period).
        rolling_*: range window over event time, the `rolling_window_minutes` minutes ending with
        this one (minutes without samples contribute nothing; rolling_soc_delta_pct also includes
        the step from the last sample before the window). charging: inside a detected charging
        event when `charging_events` is given, else SOC rose in a minute whose samples are all
        stationary (`charging_source`: events | soc_rise).
    """
    soc_step = F.col("soc_pct") - F.col("prev_soc_pct")
    minutes = (
        points.withColumn("minute_ts", F.date_trunc("minute", "ts"))
        .groupBy("vehicle_id", "minute_ts")
        .agg(
            F.min(F.date_trunc("minute", "ts_local")).alias("minute_local"),
            F.min("local_date").alias("local_date"),
            F.count(F.lit(1)).alias("n_samples"),
            F.avg("speed_est_kmh").alias("speed_mean_kmh"),
            F.max("speed_est_kmh").alias("speed_max_kmh"),
            F.sum("speed_est_kmh").alias("_speed_sum"),
            F.count("speed_est_kmh").alias("_speed_n"),
            F.sum("leg_km").alias("km"),
            F.sum(F.when(F.col("leg_moving"), F.col("leg_s")).otherwise(0.0)).alias("moving_s"),
            F.avg(F.col("moving").cast("double")).alias("moving_share"),
            F.avg("soc_pct").alias("soc_mean_pct"),
            F.min("soc_pct").alias("soc_min_pct"),
            F.max("soc_pct").alias("soc_max_pct"),
            F.sum(soc_step).alias("soc_delta_pct"),
            F.max(F.col("moving").cast("int")).alias("_any_moving"),
        )
    )
    window_s = params.rolling_window_minutes * 60
    rolling = Window.partitionBy("vehicle_id").orderBy(F.col("minute_ts").cast("long")).rangeBetween(-(window_s - 60), 0)
    minutes = (
        minutes.withColumn("rolling_window_min", F.lit(params.rolling_window_minutes))
        .withColumn("rolling_km", F.sum("km").over(rolling))
        .withColumn("rolling_speed_mean_kmh", F.sum("_speed_sum").over(rolling) / F.sum("_speed_n").over(rolling))
        .withColumn("rolling_soc_delta_pct", F.sum("soc_delta_pct").over(rolling))
        .withColumn("rolling_n_samples", F.sum("n_samples").over(rolling))
    )
    if charging_events is not None:
        minutes = _charging_from_events(minutes, charging_events)
    else:
        soc_rise = F.coalesce((F.col("soc_delta_pct") > 0) & (F.col("_any_moving") == 0), F.lit(False))
        minutes = minutes.withColumn("charging", soc_rise).withColumn("charging_source", F.lit("soc_rise"))
    return minutes.select(*MINUTELY_COLUMNS)


def _charging_from_events(minutes: DataFrame, events: DataFrame) -> DataFrame:
    """charging = the minute overlaps a charging event of the vehicle."""
    ev = events.select(
        "vehicle_id",
        F.date_trunc("minute", "start_ts").alias("_ev_start"),
        F.col("end_ts").alias("_ev_end"),
    )
    hits = (
        minutes.select("vehicle_id", "minute_ts")
        .join(ev, "vehicle_id")
        .where((F.col("minute_ts") >= F.col("_ev_start")) & (F.col("minute_ts") <= F.col("_ev_end")))
        .select("vehicle_id", "minute_ts", F.lit(True).alias("_hit"))
        .distinct()
    )
    return minutes.join(hits, ["vehicle_id", "minute_ts"], "left").withColumn("charging", F.coalesce(F.col("_hit"), F.lit(False))).withColumn("charging_source", F.lit("events")).drop("_hit")


MINUTELY_COLUMNS = (
    "vehicle_id",
    "minute_ts",
    "minute_local",
    "local_date",
    "n_samples",
    "speed_mean_kmh",
    "speed_max_kmh",
    "km",
    "moving_s",
    "moving_share",
    "soc_mean_pct",
    "soc_min_pct",
    "soc_max_pct",
    "soc_delta_pct",
    "rolling_window_min",
    "rolling_km",
    "rolling_speed_mean_kmh",
    "rolling_soc_delta_pct",
    "rolling_n_samples",
    "charging",
    "charging_source",
)


# --------------------------------------------------------------------------------------------
# Odometer checks
# --------------------------------------------------------------------------------------------
def add_odometer_checks(points: DataFrame, settings: OdometerConfig) -> DataFrame:
    """Per sample: `odo_delta_km` since the previous reading and `odo_fault` of that step.

    Faults (null = healthy):

    - `decreasing`: the reading fell by more than decrease_tolerance_km;
    - `jump`: it rose by at least jump_min_km faster than max_speed_kmh (a device silent for a
      while may legitimately add km, so size alone is not enough);
    - `stuck`: the reading did not change over consecutive steps whose GPS moving distance adds
      up to stuck_min_gps_km (the steps that moved are flagged; parked steps are not evidence).

    Parameters
    ----------
    points : DataFrame
        Per-sample rows with vehicle_id, ts, odometer_km (km) and `leg_km` from
        common.silver.trips.add_legs.
    settings : OdometerConfig

    Returns
    -------
    DataFrame
        One row per sample: `points` plus odo_delta_km (km since the vehicle's previous non-null
        reading; null without a reading) and odo_fault (decreasing | jump | stuck | null).
    """
    w = events_window()
    point = F.when(F.col("odometer_km").isNotNull(), F.struct(F.col("ts").alias("ts"), F.col("odometer_km").alias("km")))
    df = points.withColumn("_odo_pt", point).withColumn("_odo_prev", F.expr("lag(_odo_pt) ignore nulls").over(w))
    delta = F.col("odometer_km") - F.col("_odo_prev.km")
    dt_h = (F.col("ts").cast("double") - F.col("_odo_prev.ts").cast("double")) / 3600.0
    df = df.withColumn("odo_delta_km", delta).withColumn("_odo_dt_h", dt_h)
    changed = F.when(F.col("odometer_km").isNull(), F.lit(False)).otherwise(F.coalesce(F.abs(F.col("odo_delta_km")) > _ODOMETER_EPS_KM, F.lit(True)))
    df = df.withColumn("_odo_changed", changed).withColumn("_odo_run", F.sum(F.col("_odo_changed").cast("long")).over(running_window()))
    df = df.withColumn("_odo_run_gps_km", F.sum(F.when(~F.col("_odo_changed"), F.col("leg_km")).otherwise(0.0)).over(peer_window("_odo_run")))
    s = settings
    decreasing = F.col("odo_delta_km") < -s.decrease_tolerance_km
    jump = (F.col("odo_delta_km") >= s.jump_min_km) & ((F.col("_odo_dt_h") <= 0) | (F.col("odo_delta_km") / F.col("_odo_dt_h") > s.max_speed_kmh))
    stuck = ~F.col("_odo_changed") & (F.col("_odo_run_gps_km") >= s.stuck_min_gps_km) & (F.col("leg_km") > 0)
    fault = F.when(F.coalesce(decreasing, F.lit(False)), "decreasing").when(F.coalesce(jump, F.lit(False)), "jump").when(F.coalesce(stuck, F.lit(False)), "stuck")
    return df.withColumn("odo_fault", fault).drop("_odo_pt", "_odo_prev", "_odo_dt_h", "_odo_changed", "_odo_run", "_odo_run_gps_km")


# --------------------------------------------------------------------------------------------
# gold.daily_kpis
# --------------------------------------------------------------------------------------------
def local_day_seconds(local_date: Column, timezone: Column) -> Column:
    """Length of a local calendar day in seconds (86400 except on DST change days).

    Parameters
    ----------
    local_date : Column
        Local date.
    timezone : Column
        IANA zone name.

    Returns
    -------
    Column
        Seconds (long) from the day's local midnight to the next one.
    """
    start = F.to_utc_timestamp(local_date.cast("timestamp"), timezone)
    end = F.to_utc_timestamp(F.date_add(local_date, 1).cast("timestamp"), timezone)
    return end.cast("long") - start.cast("long")


def daily_kpis(
    points: DataFrame,
    trips: DataFrame,
    minutely: DataFrame,
    vehicles: DataFrame,
    charging_events: DataFrame | None = None,
) -> DataFrame:
    """Per vehicle and local day with usable samples (gold.daily_kpis).

    Parameters
    ----------
    points : DataFrame
        `common.silver.trips.trip_points` output with the odometer checks (`add_odometer_checks`).
    trips : DataFrame
        silver.trips (vehicle_id, local_date, distance_km, energy_kwh).
    minutely : DataFrame
        `vehicle_minutely` output (vehicle_id, local_date, charging).
    vehicles : DataFrame
        bronze.vehicles (vehicle_id, model, vehicle_type, battery_kwh).
    charging_events : DataFrame, optional
        `charging_events` output (vehicle_id, local_date, kwh); None: charging_events and
        charging_kwh are null.

    Returns
    -------
    DataFrame
        One row per (vehicle_id, local_date), DAILY_COLUMNS: timezone, model, vehicle_type,
        battery_kwh (kWh); gps_km (moving legs, km), odometer_km (sum of healthy reading steps,
        km; null without readings), odometer_first/last_km, odometer_faults (array of fault
        types, see add_odometer_checks), odometer_ok; moving_hours (h) and utilisation_share
        (moving time / length of the local day, 0-1); soc_start/end/min/max_pct (percent points;
        first/last usable SOC of the day); trips, trip_km, trip_energy_kwh (kWh; trips counted on
        the day they start); charging_events/charging_kwh (kWh) from the charging events,
        charging_minutes from the minutely flag; data_coverage_share = time covered by legs no
        longer than kpis.trips.max_gap_minutes / length of the day (0-1, capped at 1);
        n_samples; first_ts/last_ts (UTC).
    """
    observed = F.when(~F.col("is_gap") & F.col("prev_ts").isNotNull(), F.col("leg_s")).otherwise(0.0)
    days = points.groupBy("vehicle_id", "local_date").agg(
        F.count(F.lit(1)).alias("n_samples"),
        F.first("timezone").alias("timezone"),
        F.min("ts").alias("first_ts"),
        F.max("ts").alias("last_ts"),
        F.sum("leg_km").alias("gps_km"),
        F.sum(F.when(F.col("leg_moving"), F.col("leg_s")).otherwise(0.0)).alias("_moving_s"),
        F.sum(observed).alias("_observed_s"),
        value_at_first("soc_pct").alias("soc_start_pct"),
        value_at_last("soc_pct").alias("soc_end_pct"),
        F.min("soc_pct").alias("soc_min_pct"),
        F.max("soc_pct").alias("soc_max_pct"),
        F.sum(F.when(F.col("odo_fault").isNull(), F.col("odo_delta_km"))).alias("odometer_km"),
        value_at_first("odometer_km").alias("odometer_first_km"),
        value_at_last("odometer_km").alias("odometer_last_km"),
        F.array_sort(F.collect_set("odo_fault")).alias("odometer_faults"),
    )
    day_s = local_day_seconds(F.col("local_date"), F.col("timezone"))
    days = (
        days.withColumn("moving_hours", F.col("_moving_s") / 3600.0)
        .withColumn("utilisation_share", F.col("_moving_s") / day_s)
        .withColumn("data_coverage_share", F.least(F.lit(1.0), F.col("_observed_s") / day_s))
        .withColumn("odometer_ok", F.col("odometer_last_km").isNotNull() & (F.size("odometer_faults") == 0))
    )
    per_trip_day = trips.groupBy("vehicle_id", "local_date").agg(
        F.count(F.lit(1)).alias("trips"),
        F.sum("distance_km").alias("trip_km"),
        F.sum("energy_kwh").alias("trip_energy_kwh"),
    )
    charging_minutes = minutely.groupBy("vehicle_id", "local_date").agg(F.sum(F.col("charging").cast("int")).alias("charging_minutes"))
    days = days.join(per_trip_day, ["vehicle_id", "local_date"], "left").join(charging_minutes, ["vehicle_id", "local_date"], "left")
    if charging_events is not None:
        per_charge_day = charging_events.groupBy("vehicle_id", "local_date").agg(F.count(F.lit(1)).alias("charging_events"), F.sum("kwh").alias("charging_kwh"))
        days = days.join(per_charge_day, ["vehicle_id", "local_date"], "left").fillna(0, ["charging_events", "charging_kwh"])
    else:
        days = days.withColumn("charging_events", F.lit(None).cast("long")).withColumn("charging_kwh", F.lit(None).cast("double"))
    fleet = vehicles.select("vehicle_id", "model", "vehicle_type", "battery_kwh").dropDuplicates(["vehicle_id"])
    days = days.fillna(0, ["trips", "charging_minutes"]).fillna(0.0, ["trip_km", "trip_energy_kwh"]).join(F.broadcast(fleet), "vehicle_id", "left")
    return days.select(*DAILY_COLUMNS)


DAILY_COLUMNS = (
    "vehicle_id",
    "local_date",
    "timezone",
    "model",
    "vehicle_type",
    "battery_kwh",
    "gps_km",
    "odometer_km",
    "odometer_first_km",
    "odometer_last_km",
    "odometer_faults",
    "odometer_ok",
    "moving_hours",
    "utilisation_share",
    "soc_start_pct",
    "soc_end_pct",
    "soc_min_pct",
    "soc_max_pct",
    "trips",
    "trip_km",
    "trip_energy_kwh",
    "charging_events",
    "charging_kwh",
    "charging_minutes",
    "data_coverage_share",
    "n_samples",
    "first_ts",
    "last_ts",
)


# --------------------------------------------------------------------------------------------
# gold.fleet_daily_kpis
# --------------------------------------------------------------------------------------------
def fleet_daily_kpis(daily: DataFrame, params: KpisConfig) -> DataFrame:
    """Per local day: fleet totals and the distribution over vehicles (exact percentiles).

    A vehicle is active on a day with a trip or at least kpis.billing.active_day_min_km GPS km.
    Percentiles (kpis.percentiles) of gps_km, moving_hours, soc_min_pct and
    data_coverage_share are taken over the vehicles reporting that day; the km percentiles
    also over active vehicles only (`active_gps_km_p*`).

    Parameters
    ----------
    daily : DataFrame
        gold.daily_kpis rows (`daily_kpis` output).
    params : KpisConfig
        percentiles (0-1) and billing.active_day_min_km (km).

    Returns
    -------
    DataFrame
        One row per local_date: vehicles_reporting, vehicles_active, the sums gps_km,
        odometer_km, trip_km (km), moving_hours (h), trips, trip_energy_kwh, charging_kwh (kWh),
        charging_events, charging_minutes; vehicles_odometer_not_ok, data_coverage_mean/min_share (0-1), one
        `<name>_pNN` column per percentile (NN = percent) and fleet_kwh_per_km (kWh/km; null
        without trip km).
    """
    active = (F.col("trips") > 0) | (F.col("gps_km") >= params.billing.active_day_min_km)
    pcts = list(params.percentiles)
    agg = [
        F.count(F.lit(1)).alias("vehicles_reporting"),
        F.sum(active.cast("int")).alias("vehicles_active"),
        F.sum("gps_km").alias("gps_km"),
        F.sum("odometer_km").alias("odometer_km"),
        F.sum("moving_hours").alias("moving_hours"),
        F.sum("trips").alias("trips"),
        F.sum("trip_km").alias("trip_km"),
        F.sum("trip_energy_kwh").alias("trip_energy_kwh"),
        F.sum("charging_events").alias("charging_events"),
        F.sum("charging_kwh").alias("charging_kwh"),
        F.sum("charging_minutes").alias("charging_minutes"),
        F.sum((~F.col("odometer_ok")).cast("int")).alias("vehicles_odometer_not_ok"),
        F.avg("data_coverage_share").alias("data_coverage_mean_share"),
        F.min("data_coverage_share").alias("data_coverage_min_share"),
    ]
    dists = {
        "gps_km": F.col("gps_km"),
        "active_gps_km": F.when(active, F.col("gps_km")),
        "moving_hours": F.col("moving_hours"),
        "soc_min_pct": F.col("soc_min_pct"),
        "data_coverage_share": F.col("data_coverage_share"),
    }
    for name, col in dists.items():
        agg.append(F.percentile(col, F.array(*[F.lit(p) for p in pcts])).alias(f"_p_{name}"))
    fleet = daily.groupBy("local_date").agg(*agg)
    out = [c for c in fleet.columns if not c.startswith("_p_")]
    cols = [F.col(c) for c in out]
    for name in dists:
        for i, p in enumerate(pcts):
            cols.append(F.col(f"_p_{name}")[i].alias(f"{name}_p{round(p * 100):02d}"))
    fleet = fleet.select(*cols)
    return fleet.withColumn("fleet_kwh_per_km", F.when(F.col("trip_km") > 0, F.col("trip_energy_kwh") / F.col("trip_km")))


# --------------------------------------------------------------------------------------------
# gold.payd_billing
# --------------------------------------------------------------------------------------------
def billing_period_start(local_date: Column, period: str) -> Column:
    """First local day of the billing period (`month`, or ISO `week` starting Monday).

    Parameters
    ----------
    local_date : Column
        Local date.
    period : str
        `month` or `week`.

    Returns
    -------
    Column
        Date of the period's first day.
    """
    return F.trunc(local_date, "month" if period == "month" else "week")


def billing_period_end(period_start: Column, period: str) -> Column:
    """Last local day of the billing period that starts on `period_start`.

    Parameters
    ----------
    period_start : Column
        First day of the period (`billing_period_start`).
    period : str
        `month` or `week`.

    Returns
    -------
    Column
        Date of the period's last day (month end, or start + 6 days).
    """
    return F.last_day(period_start) if period == "month" else F.date_add(period_start, 6)


def billing_ranges(rng: DateRange, period: str) -> tuple[DateRange, DateRange]:
    """The billing periods a range run touches, recomputed from all their days.

    Parameters
    ----------
    rng : DateRange
        Local days of the run.
    period : str
        kpis.billing.period: `month`, or `week` (ISO, from Monday).

    Returns
    -------
    tuple of DateRange
        (local days of gold.daily_kpis to read: first day of the first period to the last day of
        the last one; `period_start` values of gold.payd_billing to replace). Full for a full run.
    """
    first = _period_start(rng.start, period) if rng.start else None
    last = _period_start(rng.end, period) if rng.end else None
    return DateRange(first, _period_end(last, period) if last else None), DateRange(first, last)


def _period_start(day: date, period: str) -> date:
    """Same as billing_period_start (Spark trunc: month, or week from Monday)."""
    return day.replace(day=1) if period == "month" else day - timedelta(days=day.weekday())


def _period_end(start: date, period: str) -> date:
    if period == "week":
        return start + timedelta(days=6)
    return (start.replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(days=1)


def payd_billing(daily: DataFrame, settings: BillingConfig) -> DataFrame:
    """Pay-as-you-drive km per vehicle and billing period from gold.daily_kpis rows.

    Each day is billed on its odometer km when the odometer reported and showed no fault that
    day (`odometer_ok`), else on its GPS km: a stuck, decreasing or jumping odometer only costs
    the days it misbehaved, and km the GPS could not see (device silent, odometer still counting)
    stay billable on healthy days.

    Parameters
    ----------
    daily : DataFrame
        gold.daily_kpis rows (vehicle_id, local_date, model, gps_km, odometer_km, odometer_ok,
        odometer_faults, odometer_first_km, odometer_last_km).
    settings : BillingConfig

    Returns
    -------
    DataFrame
        One row per (vehicle_id, period_start), BILLING_COLUMNS (distances in km):
        period_start/period_end (local dates); billing_source: odometer | gps | mixed;
        discrepancy_km/pct: odometer km - GPS km over the odometer-billed days (same days, so a
        healthy pair differs only by GPS corner-cutting and device gaps), pct in percent of that
        GPS km (null when it is 0); discrepancy_flag when |pct| > discrepancy_threshold_pct and
        |km| > discrepancy_min_km -- a calibration problem the step rules cannot see.
        odometer_reading_km: last - first raw reading of the period (what odometer-only billing
        would charge). days_active: days with at least active_day_min_km billable km.
    """
    p = settings.period
    day_km = F.when(F.col("odometer_ok"), F.col("odometer_km")).otherwise(F.col("gps_km"))
    days = daily.withColumn("_billable", F.coalesce(day_km, F.lit(0.0))).withColumn("period_start", billing_period_start(F.col("local_date"), p))
    ok = F.col("odometer_ok")
    bills = days.groupBy("vehicle_id", "period_start").agg(
        F.first("model").alias("model"),
        F.count(F.lit(1)).alias("days_reporting"),
        F.sum((F.col("_billable") >= settings.active_day_min_km).cast("int")).alias("days_active"),
        F.sum("_billable").alias("billable_km"),
        F.sum("gps_km").alias("gps_km"),
        F.sum(F.when(ok, F.col("odometer_km"))).alias("odometer_km"),
        F.sum(F.when(ok, F.col("gps_km"))).alias("_gps_km_odo_days"),
        F.sum(ok.cast("int")).alias("odometer_billed_days"),
        F.sum((~ok).cast("int")).alias("gps_billed_days"),
        F.sum((F.size("odometer_faults") > 0).cast("int")).alias("odometer_fault_days"),
        F.array_sort(F.array_distinct(F.flatten(F.collect_list("odometer_faults")))).alias("odometer_faults"),
        (value_at_last("odometer_last_km", "local_date") - value_at_first("odometer_first_km", "local_date")).alias("odometer_reading_km"),
    )
    disc_km = F.col("odometer_km") - F.col("_gps_km_odo_days")
    disc_pct = F.when(F.col("_gps_km_odo_days") > 0, disc_km / F.col("_gps_km_odo_days") * 100.0)
    flag = (F.abs(F.col("discrepancy_pct")) > settings.discrepancy_threshold_pct) & (F.abs(F.col("discrepancy_km")) > settings.discrepancy_min_km)
    source = F.when(F.col("gps_billed_days") == 0, "odometer").when(F.col("odometer_billed_days") == 0, "gps").otherwise("mixed")
    return (
        bills.withColumn("period_end", billing_period_end(F.col("period_start"), p))
        .withColumn("billing_period", F.lit(p))
        .withColumn("billing_source", source)
        .withColumn("discrepancy_km", disc_km)
        .withColumn("discrepancy_pct", disc_pct)
        .withColumn("discrepancy_flag", F.coalesce(flag, F.lit(False)))
        .select(*BILLING_COLUMNS)
    )


BILLING_COLUMNS = (
    "vehicle_id",
    "period_start",
    "period_end",
    "billing_period",
    "model",
    "billable_km",
    "billing_source",
    "gps_km",
    "odometer_km",
    "odometer_reading_km",
    "odometer_billed_days",
    "gps_billed_days",
    "odometer_fault_days",
    "odometer_faults",
    "discrepancy_km",
    "discrepancy_pct",
    "discrepancy_flag",
    "days_reporting",
    "days_active",
)


# --------------------------------------------------------------------------------------------
# The stage's summary
# --------------------------------------------------------------------------------------------
def kpis_summary(trips: DataFrame, daily: DataFrame, rng: DateRange) -> str:
    """The two lines the KPI stage prints (the last one is also its note).

    Parameters
    ----------
    trips : DataFrame
        silver.trips of the range (distance_km, energy_kwh).
    daily : DataFrame
        gold.daily_kpis of the range.
    rng : DateRange
        The run's local days (named in the first line).

    Returns
    -------
    str
        Vehicles, vehicle-days and vehicle-days billed on GPS; trips, trip km, trip energy (kWh)
        and GPS km.
    """
    t = first_row(trips.agg(F.count(F.lit(1)).alias("n"), F.sum("distance_km").alias("km"), F.sum("energy_kwh").alias("kwh")))
    d = first_row(
        daily.agg(
            F.countDistinct("vehicle_id").alias("vehicles"),
            F.count(F.lit(1)).alias("days"),
            F.sum("gps_km").alias("gps_km"),
            F.sum((~F.col("odometer_ok")).cast("int")).alias("odo_bad"),
        )
    )
    scope = "all days" if rng.is_full else f"{rng.start or '...'} to {rng.end or '...'}"
    return "\n".join(
        [
            f"kpis ({scope}): {d['vehicles'] or 0} vehicles, {d['days'] or 0} vehicle-days, {d['odo_bad'] or 0} vehicle-days billed on GPS (odometer missing or faulty)",
            f"trips {t['n'] or 0:,}  trip km {t['km'] or 0:,.1f}  trip energy {t['kwh'] or 0:,.1f} kWh  GPS km {d['gps_km'] or 0:,.1f}",
        ]
    )

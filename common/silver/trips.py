"""Stops, trips and ~1 km energy segments from cleaned telematics (pure DataFrame transforms).

Input is silver.telematics_clean (see common/silver/cleaning.py); only `is_usable` rows are used, with
their repaired values. `jobs/kpis.py` writes silver.trips and silver.segments from these
functions; the insights jobs import `detect_stops` (hotspots: unique daily visits).

Definitions (thresholds in `kpis.trips`, common/core/config.py TripsConfig):

- **leg**: the step from a vehicle's previous usable sample to the current one (event time):
  `leg_m` (haversine, common.spatial.geo), `leg_s`. A data gap's distance is unknown (device silent) and
  never counted.
- **moving**: a sample whose reported speed (repaired; else the implied speed of its incoming
  leg) is above `moving_speed_kmh`. A leg is moving when the mean of its two end speeds is above
  the threshold -- the trapezoid speed of the leg, which ignores parked GPS jitter (a parked
  device drifts ~10 m between heartbeats, ~2 km a day) but keeps the legs that end in a stop.
  GPS distance = sum of moving legs.
- **silence**: a leg longer than `max_gap_minutes`. A *parked* silence (ends within
  `stop_radius_m`, SOC not falling more than `parked_soc_drop_pct`, no longer than the vehicle's
  limit from its device heartbeat, see `add_legs`) is a stationary leg: a device that sleeps while
  parked is parked. Any other silence is a **data gap**.
- **stop**: a run of consecutive stationary samples, each within `stop_radius_m` of the
  previous one, whose first and last samples are at least `min_stop_minutes` apart (dwell).
  A run spans parked silences; a move or a data gap ends it.
- **trip**: what lies between stops: it starts at a stop's last sample (the departure), ends at
  the next stop's first sample (the arrival) and also ends at a data gap. Shorter stationary
  runs inside a trip (traffic lights, congestion) are the trip's `n_stops`. Trips shorter than
  `min_trip_km` (jitter between two stops) are dropped.
- **segment**: a trip cut at every `segment_km` of cumulative GPS distance (a leg belongs to the
  segment in which it starts), the unit of the energy-per-km model.

Energy is inferred from SOC: `energy_kwh = (soc_start - soc_end) / 100 x battery_kwh`. SOC is
reported in whole percent, so one value carries +-0.5 points and a difference +-1 point
(+-battery_kwh / 100): fine for trips and days, coarse for single ~1 km segments, where
`soc_used_pct` is mostly 0 or 1 (aggregate segments, or weight by distance, before fitting).

Identifiers are stable across reruns and date-range reruns: `<vehicle_id>-T<start ts UTC>`
(`-S` for stops, `-G<n>` for segments), never running counters.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql.window import WindowSpec

from common.core.config import TripsConfig
from common.spatial.geo import haversine_m

KMH_PER_MPS = 3.6
_ID_TS = "yyyyMMdd'T'HHmmss"

# Columns of silver.telematics_clean the KPIs read.
POINT_COLUMNS = (
    "vehicle_id",
    "ts",
    "ts_local",
    "local_date",
    "timezone",
    "lat",
    "lon",
    "speed_kmh",
    "soc_pct",
    "odometer_km",
    "altitude_m",
    "ambient_temp_c",
    "soc_imputed",
)


def events_window() -> WindowSpec:
    """A vehicle's usable samples in event order ((vehicle_id, ts) is unique among usable rows).

    Returns
    -------
    WindowSpec
        Partitioned by vehicle_id, ordered by ts.
    """
    return Window.partitionBy("vehicle_id").orderBy("ts")


def running_window() -> WindowSpec:
    """`events_window` from the vehicle's first sample to the current one (running sums).

    Returns
    -------
    WindowSpec
        Rows between unbounded preceding and the current row.
    """
    return events_window().rowsBetween(Window.unboundedPreceding, Window.currentRow)


def peer_window(column: str) -> WindowSpec:
    """Rows of a vehicle sharing `column` (a run id that grows with ts): same partitioning, no reshuffle.

    Parameters
    ----------
    column : str
        The run id column, e.g. 'stop_run' or 'trip_seq'.

    Returns
    -------
    WindowSpec
        Partitioned by vehicle_id, range of equal `column` values.
    """
    return Window.partitionBy("vehicle_id").orderBy(column).rangeBetween(0, 0)


def value_at_first(value: Column | str, order: str = "ts") -> Column:
    """Aggregate: `value` at the smallest `order` among rows where value is not null.

    Parameters
    ----------
    value : Column or str
        The value (column name or expression).
    order : str
        Column that orders the rows.

    Returns
    -------
    Column
        Aggregate expression; null when every value is null.
    """
    v = F.col(value) if isinstance(value, str) else value
    return F.min(F.when(v.isNotNull(), F.struct(F.col(order).alias("o"), v.alias("v"))))["v"]


def value_at_last(value: Column | str, order: str = "ts") -> Column:
    """Aggregate: `value` at the largest `order` among rows where value is not null.

    Parameters
    ----------
    value : Column or str
        The value (column name or expression).
    order : str
        Column that orders the rows.

    Returns
    -------
    Column
        Aggregate expression; null when every value is null.
    """
    v = F.col(value) if isinstance(value, str) else value
    return F.max(F.when(v.isNotNull(), F.struct(F.col(order).alias("o"), v.alias("v"))))["v"]


def _stable_id(prefix: str, ts: Column) -> Column:
    return F.concat(F.col("vehicle_id"), F.lit(f"-{prefix}"), F.date_format(ts, _ID_TS))


# --------------------------------------------------------------------------------------------
# Points and legs
# --------------------------------------------------------------------------------------------
_OPTIONAL_POINT_COLUMNS = {"odometer_km": "double", "altitude_m": "double", "ambient_temp_c": "double", "soc_imputed": "boolean"}


def usable_points(clean: DataFrame) -> DataFrame:
    """Usable rows of silver.telematics_clean with the columns stops/trips/KPIs need.

    Optional sensor columns a narrower frame lacks are null.

    Parameters
    ----------
    clean : DataFrame
        silver.telematics_clean (is_usable and the POINT_COLUMNS).

    Returns
    -------
    DataFrame
        One row per usable sample, columns POINT_COLUMNS.
    """
    cols = [F.col(c) if c in clean.columns or c not in _OPTIONAL_POINT_COLUMNS else F.lit(None).cast(_OPTIONAL_POINT_COLUMNS[c]).alias(c) for c in POINT_COLUMNS]
    return clean.where(F.col("is_usable")).select(*cols)


def parked_silence_limit_s(params: TripsConfig, heartbeat_s: Column | None = None) -> Column:
    """Longest silence that can still be a parked period for a vehicle (s).

    max(parked_silence_factor x the device's heartbeat, parked_silence_min_minutes), at most
    parked_silence_max_hours; without a heartbeat (no profile) the minimum.

    Parameters
    ----------
    params : TripsConfig
    heartbeat_s : Column, optional
        The vehicle's heartbeat_interval_s (s); null or None: no profile.

    Returns
    -------
    Column
        The limit (s).
    """
    floor = F.lit(params.parked_silence_min_minutes * 60.0)
    limit = floor if heartbeat_s is None else F.greatest(F.coalesce(heartbeat_s * params.parked_silence_factor, floor), floor)
    return F.least(limit, F.lit(params.parked_silence_max_hours * 3600.0))


def add_legs(points: DataFrame, params: TripsConfig, heartbeats: DataFrame | None = None) -> DataFrame:
    """Per sample: its incoming leg, movement state and the silence rule (event time, one window).

    Adds `prev_ts`, `leg_s` (s), `leg_m` (m), `speed_est_kmh` (reported speed, else the implied
    speed of the incoming leg), `prev_speed_kmh`, `moving`, `prev_soc_pct` (previous non-null
    SOC), `leg_kind`, `is_gap`, `leg_moving`, `leg_km` (km of a moving, non-gap leg, else 0),
    `alt_smooth_m` (3-sample centred mean: the altitude sensor's noise would otherwise add metres
    of fake climb on every leg) and `prev_alt_smooth_m`.

    **The silence rule** (the one place every stage takes it from): a leg longer than
    max_gap_minutes is a silence. It is a `parked` period -- a stationary leg: part of a stop,
    dwell, a charging opportunity when SOC rose -- when its two ends are within stop_radius_m, SOC
    did not fall more than parked_soc_drop_pct across it, and it is not longer than the vehicle's
    limit (`parked_silence_limit_s` of its heartbeat in `heartbeats`: vehicle_id,
    heartbeat_interval_s from silver.device_profiles). Any other silence is a `gap`: the device
    was silent, distance is not invented, trips end there. `leg_kind`: first | moving |
    stationary | parked | gap.

    Parameters
    ----------
    points : DataFrame
        `usable_points` rows (vehicle_id, ts, lat, lon, speed_kmh; soc_pct and altitude_m when present).
    params : TripsConfig
    heartbeats : DataFrame, optional
        vehicle_id, heartbeat_interval_s (s) from silver.device_profiles (`common.silver.devices.heartbeats`);
        None: every vehicle gets the minimum parked-silence limit.

    Returns
    -------
    DataFrame
        One row per sample: `points` with the columns listed above.
    """
    w = events_window()
    prev = F.lag(F.struct(F.col("ts").alias("ts"), F.col("lat").alias("lat"), F.col("lon").alias("lon"))).over(w)
    altitude = F.col("altitude_m") if "altitude_m" in points.columns else F.lit(None).cast("double")
    df = points
    if heartbeats is not None:
        df = df.join(F.broadcast(heartbeats.select("vehicle_id", F.col("heartbeat_interval_s").alias("_heartbeat_s"))), "vehicle_id", "left")
    df = df.withColumn("_prev", prev)
    leg_s = F.col("ts").cast("double") - F.col("_prev.ts").cast("double")
    df = df.withColumn("prev_ts", F.col("_prev.ts")).withColumn("leg_s", leg_s).withColumn("leg_m", haversine_m(F.col("_prev.lat"), F.col("_prev.lon"), F.col("lat"), F.col("lon"))).drop("_prev")
    implied = F.when(F.col("leg_s") > 0, F.col("leg_m") / F.col("leg_s") * KMH_PER_MPS)
    speed = F.when(~F.isnan("speed_kmh"), F.col("speed_kmh"))
    df = (
        df.withColumn("speed_est_kmh", F.coalesce(speed, implied))
        .withColumn("prev_speed_kmh", F.lag("speed_est_kmh").over(w))
        .withColumn("prev_soc_pct", F.expr("lag(soc_pct) ignore nulls").over(w) if "soc_pct" in points.columns else F.lit(None).cast("double"))
    )
    limit = parked_silence_limit_s(params, F.col("_heartbeat_s") if heartbeats is not None else None)
    silence = F.col("leg_s") > params.max_gap_minutes * 60.0
    soc = F.col("soc_pct") if "soc_pct" in points.columns else F.lit(None).cast("double")
    soc_held = F.coalesce(F.col("prev_soc_pct") - soc <= params.parked_soc_drop_pct, F.lit(True))
    parked = silence & (F.col("leg_m") <= params.stop_radius_m) & soc_held & (F.col("leg_s") <= limit)
    leg_speed = (F.col("prev_speed_kmh") + F.col("speed_est_kmh")) / 2
    kind = (
        F.when(F.col("prev_ts").isNull(), F.lit("first"))
        .when(parked, F.lit("parked"))
        .when(silence, F.lit("gap"))
        .when(F.coalesce(leg_speed > params.moving_speed_kmh, F.lit(False)), F.lit("moving"))
        .otherwise(F.lit("stationary"))
    )
    df = df.withColumn("leg_kind", kind)
    leg_moving = F.col("leg_kind") == "moving"
    out = (
        df.withColumn("moving", F.coalesce(F.col("speed_est_kmh") > params.moving_speed_kmh, F.lit(False)))
        .withColumn("is_gap", F.col("leg_kind") == "gap")
        .withColumn("leg_moving", leg_moving)
        .withColumn("leg_km", F.when(leg_moving, F.col("leg_m") / 1000.0).otherwise(F.lit(0.0)))
        .withColumn("alt_smooth_m", F.avg(altitude).over(w.rowsBetween(-1, 1)))
        .withColumn("prev_alt_smooth_m", F.lag("alt_smooth_m").over(w))
    )
    return out.drop("_heartbeat_s") if heartbeats is not None else out


# --------------------------------------------------------------------------------------------
# Stops
# --------------------------------------------------------------------------------------------
def mark_stops(legs: DataFrame, params: TripsConfig) -> DataFrame:
    """Per sample (output of `add_legs`): `stop_run`, `in_stop`, `is_arrival`, `is_departure`.

    `stop_run` numbers the stationary runs of a vehicle (a moving sample carries the number of
    the run before it); `in_stop` marks samples of runs whose dwell reaches min_stop_minutes.

    Parameters
    ----------
    legs : DataFrame
        `add_legs` output (moving, leg_m in m, is_gap).
    params : TripsConfig
        stop_radius_m (m) and min_stop_minutes (min).

    Returns
    -------
    DataFrame
        One row per sample: `legs` with `stop_run`, `in_stop`, `is_arrival` (first sample of a
        stop), `is_departure` (last sample) and `short_stop_start` (first sample of a stationary
        run too short to be a stop).
    """
    w = events_window()
    stationary = ~F.col("moving")
    prev_stationary = F.coalesce(~F.lag("moving").over(w), F.lit(False))
    moved = F.coalesce(F.col("leg_m") > params.stop_radius_m, F.lit(False))
    # A gap ends a stop (the vehicle may have left and come back); a parked silence does not.
    run_start = stationary & (~prev_stationary | moved | F.col("is_gap"))
    df = legs.withColumn("_run_start", run_start).withColumn("stop_run", F.sum(F.col("_run_start").cast("long")).over(running_window()))
    run = peer_window("stop_run")
    df = df.withColumn("_run_first", F.min(F.when(stationary, F.col("ts"))).over(run)).withColumn("_run_last", F.max(F.when(stationary, F.col("ts"))).over(run))
    dwell_s = F.col("_run_last").cast("double") - F.col("_run_first").cast("double")
    in_stop = stationary & (dwell_s >= params.min_stop_minutes * 60.0)
    return (
        df.withColumn("in_stop", F.coalesce(in_stop, F.lit(False)))
        .withColumn("is_arrival", F.col("in_stop") & (F.col("ts") == F.col("_run_first")))
        .withColumn("is_departure", F.col("in_stop") & (F.col("ts") == F.col("_run_last")))
        .withColumn("short_stop_start", F.col("_run_start") & ~F.col("in_stop"))
        .drop("_run_start", "_run_first", "_run_last")
    )


def stops_from_points(marked: DataFrame) -> DataFrame:
    """One row per stop from `mark_stops` output (see `detect_stops` for the columns).

    Parameters
    ----------
    marked : DataFrame
        `mark_stops` output.

    Returns
    -------
    DataFrame
        One row per stop, columns as in `detect_stops`.
    """
    return (
        marked.where("in_stop")
        .groupBy("vehicle_id", "stop_run")
        .agg(
            F.min("ts").alias("start_ts"),
            F.max("ts").alias("end_ts"),
            value_at_first("ts_local").alias("start_ts_local"),
            value_at_last("ts_local").alias("end_ts_local"),
            value_at_first("local_date").alias("local_date"),
            F.avg("lat").alias("lat"),
            F.avg("lon").alias("lon"),
            F.count(F.lit(1)).alias("n_samples"),
            value_at_first("soc_pct").alias("soc_start_pct"),
            value_at_last("soc_pct").alias("soc_end_pct"),
            F.first("timezone").alias("timezone"),
        )
        .withColumn("dwell_minutes", (F.col("end_ts").cast("double") - F.col("start_ts").cast("double")) / 60.0)
        .select(
            "vehicle_id",
            _stable_id("S", F.col("start_ts")).alias("stop_id"),
            "lat",
            "lon",
            "start_ts",
            "end_ts",
            "dwell_minutes",
            "local_date",
            "start_ts_local",
            "end_ts_local",
            "timezone",
            "n_samples",
            "soc_start_pct",
            "soc_end_pct",
        )
    )


def detect_stops(clean_df: DataFrame, params: TripsConfig, heartbeats: DataFrame | None = None) -> DataFrame:
    """Stops (dwell >= params.min_stop_minutes) from silver.telematics_clean rows.

    One row per stop: vehicle_id, stop_id (`<vehicle>-S<start UTC yyyyMMddTHHmmss>`), lat/lon
    (mean of the stop's samples, degrees WGS84), start_ts/end_ts (UTC, first and last stationary
    sample), dwell_minutes (end - start), local_date (local day of the arrival), start_ts_local,
    end_ts_local, timezone, n_samples, soc_start_pct, soc_end_pct.

    Only usable rows count. A stop spanning midnight belongs to the local day it started on. A
    parked silence (see `add_legs`) is part of a stop: a device that sleeps while parked still
    stops where it parks.

    Parameters
    ----------
    clean_df : DataFrame
        silver.telematics_clean rows.
    params : TripsConfig
    heartbeats : DataFrame, optional
        vehicle_id, heartbeat_interval_s (s) from silver.device_profiles (`common.silver.devices.heartbeats`);
        None: every vehicle gets the minimum parked-silence limit.

    Returns
    -------
    DataFrame
        One row per stop with the columns above.
    """
    return usable_points(clean_df).transform(add_legs, params, heartbeats).transform(mark_stops, params).transform(stops_from_points)


# --------------------------------------------------------------------------------------------
# Trips
# --------------------------------------------------------------------------------------------
def mark_trips(marked: DataFrame) -> DataFrame:
    """Per sample (output of `mark_stops`): `trip_seq`, `in_trip`, `leg_in_trip`, start/end reasons.

    A new trip starts at a stop's departure sample, after a data gap, and at a vehicle's first
    sample. The departure sample opens its trip (its incoming leg is still part of the stop);
    the arrival sample closes the previous one (its incoming leg is the trip's last).

    Parameters
    ----------
    marked : DataFrame
        `mark_stops` output.

    Returns
    -------
    DataFrame
        One row per sample: `marked` with `trip_seq` (trip number within the vehicle), `in_trip`,
        `leg_in_trip` (the incoming leg counts for the trip) and `_start_reason`/`_end_reason`
        (stop | gap | start_of_data / end_of_data).
    """
    w = events_window()
    first = F.col("prev_ts").isNull()
    new_trip = F.col("is_departure") | F.col("is_gap") | first
    df = marked.withColumn("_new_trip", new_trip).withColumn("trip_seq", F.sum(F.col("_new_trip").cast("long")).over(running_window()))
    in_trip = ~F.col("in_stop") | F.col("is_departure") | F.col("is_arrival")
    next_gap = F.lead("is_gap").over(w)
    return (
        df.withColumn("in_trip", in_trip)
        .withColumn("leg_in_trip", in_trip & ~F.col("_new_trip"))
        .withColumn(
            "_start_reason",
            F.when(F.col("is_departure"), "stop").when(F.col("is_gap"), "gap").otherwise("start_of_data"),
        )
        .withColumn(
            "_end_reason",
            F.when(F.col("is_arrival"), "stop").when(next_gap, "gap").when(next_gap.isNull(), "end_of_data"),
        )
        .drop("_new_trip")
    )


def _attach_vehicles(df: DataFrame, vehicles: DataFrame) -> DataFrame:
    """model, vehicle_type, battery_kwh from bronze.vehicles (deduplicated; left join never multiplies rows)."""
    fleet = vehicles.select("vehicle_id", "model", "vehicle_type", "battery_kwh").dropDuplicates(["vehicle_id"])
    return df.join(F.broadcast(fleet), "vehicle_id", "left")


def _energy(df: DataFrame) -> DataFrame:
    """`soc_used_pct` (start - end, percent points) -> `energy_kwh` and `kwh_per_km` (GPS km)."""
    return (
        df.withColumn("soc_used_pct", F.col("soc_start_pct") - F.col("soc_end_pct"))
        .withColumn("energy_kwh", F.col("soc_used_pct") / 100.0 * F.col("battery_kwh"))
        .withColumn("kwh_per_km", F.when(F.col("distance_km") > 0, F.col("energy_kwh") / F.col("distance_km")))
    )


def trips_from_points(marked_trips: DataFrame, vehicles: DataFrame, params: TripsConfig) -> DataFrame:
    """One row per trip (silver.trips) from `mark_trips` output; units in the column names.

    distance_km: GPS (moving legs); distance_odometer_km: last - first odometer reading (raw:
    a stuck or jumping odometer shows here; gold.payd_billing decides which to trust);
    duration_min: first to last sample; moving_min: moving legs; avg_speed_kmh = distance /
    duration, avg_moving_speed_kmh = distance / moving time, max_speed_kmh: reported;
    n_stops: stationary runs shorter than a stop; SOC start/end at the departure/arrival samples;
    energy_kwh = (soc_start - soc_end) / 100 x battery_kwh (+-battery_kwh / 100 from integer
    SOC); altitude_gain_m/loss_m from the smoothed altitude; started_by/ended_by: stop | gap |
    start_of_data / end_of_data.

    Parameters
    ----------
    marked_trips : DataFrame
        `mark_trips` output (`trip_points`).
    vehicles : DataFrame
        bronze.vehicles: vehicle_id, model, vehicle_type, battery_kwh (kWh).
    params : TripsConfig
        min_trip_km (km): shorter trips, and trips of one sample, are dropped.

    Returns
    -------
    DataFrame
        silver.trips, one row per kept trip, columns TRIP_COLUMNS; timestamps `*_ts` UTC,
        `start_ts_local` local time, lat/lon in degrees.
    """
    pts = marked_trips.where("in_trip")
    leg = F.col("leg_in_trip")
    alt_step = F.when(leg, F.col("alt_smooth_m") - F.col("prev_alt_smooth_m"))
    trips = (
        pts.groupBy("vehicle_id", "trip_seq")
        .agg(
            F.min("ts").alias("start_ts"),
            F.max("ts").alias("end_ts"),
            value_at_first("ts_local").alias("start_ts_local"),
            value_at_first("local_date").alias("local_date"),
            F.count(F.lit(1)).alias("n_samples"),
            F.sum(F.when(leg, F.col("leg_km"))).alias("distance_km"),
            value_at_last("odometer_km").alias("_odo_end"),
            value_at_first("odometer_km").alias("_odo_start"),
            F.sum(F.when(leg & F.col("leg_moving"), F.col("leg_s"))).alias("_moving_s"),
            F.max("speed_est_kmh").alias("max_speed_kmh"),
            F.sum(F.when(leg & F.col("short_stop_start"), 1).otherwise(0)).alias("n_stops"),
            value_at_first("soc_pct").alias("soc_start_pct"),
            value_at_last("soc_pct").alias("soc_end_pct"),
            value_at_first("soc_imputed").alias("_soc_start_imputed"),
            value_at_last("soc_imputed").alias("_soc_end_imputed"),
            F.sum(F.greatest(alt_step, F.lit(0.0))).alias("altitude_gain_m"),
            F.sum(F.greatest(-alt_step, F.lit(0.0))).alias("altitude_loss_m"),
            F.avg("ambient_temp_c").alias("mean_ambient_temp_c"),
            value_at_first("lat").alias("start_lat"),
            value_at_first("lon").alias("start_lon"),
            value_at_last("lat").alias("end_lat"),
            value_at_last("lon").alias("end_lon"),
            value_at_first("_start_reason").alias("started_by"),
            value_at_last("_end_reason").alias("ended_by"),
            F.first("timezone").alias("timezone"),
        )
        .where((F.col("n_samples") >= 2) & (F.coalesce(F.col("distance_km"), F.lit(0.0)) >= params.min_trip_km))
    )
    duration_s = F.col("end_ts").cast("double") - F.col("start_ts").cast("double")
    trips = (
        trips.withColumn("duration_min", duration_s / 60.0)
        .withColumn("moving_min", F.coalesce(F.col("_moving_s"), F.lit(0.0)) / 60.0)
        .withColumn("distance_odometer_km", F.col("_odo_end") - F.col("_odo_start"))
        .withColumn("avg_speed_kmh", F.when(duration_s > 0, F.col("distance_km") / duration_s * 3600.0))
        .withColumn(
            "avg_moving_speed_kmh",
            F.when(F.col("_moving_s") > 0, F.col("distance_km") / F.col("_moving_s") * 3600.0),
        )
        .withColumn("soc_endpoints_imputed", F.coalesce(F.col("_soc_start_imputed") | F.col("_soc_end_imputed"), F.lit(False)))
        .withColumn("trip_id", _stable_id("T", F.col("start_ts")))
        .transform(_attach_vehicles, vehicles)
        .transform(_energy)
    )
    return trips.select(*TRIP_COLUMNS)


TRIP_COLUMNS = (
    "vehicle_id",
    "trip_id",
    "local_date",
    "start_ts",
    "end_ts",
    "start_ts_local",
    "timezone",
    "duration_min",
    "moving_min",
    "distance_km",
    "distance_odometer_km",
    "avg_speed_kmh",
    "avg_moving_speed_kmh",
    "max_speed_kmh",
    "n_stops",
    "n_samples",
    "soc_start_pct",
    "soc_end_pct",
    "soc_used_pct",
    "energy_kwh",
    "kwh_per_km",
    "soc_endpoints_imputed",
    "altitude_gain_m",
    "altitude_loss_m",
    "mean_ambient_temp_c",
    "start_lat",
    "start_lon",
    "end_lat",
    "end_lon",
    "started_by",
    "ended_by",
    "model",
    "vehicle_type",
    "battery_kwh",
)


# --------------------------------------------------------------------------------------------
# Segments (energy model)
# --------------------------------------------------------------------------------------------
def segments_from_points(marked_trips: DataFrame, trips: DataFrame, params: TripsConfig) -> DataFrame:
    """~segment_km pieces of the kept trips (silver.segments): features of an energy-per-km model.

    Per segment: distance_km, duration_s, mean_speed_kmh (distance / duration), sample speed
    mean/max/std and rms (aerodynamic load grows with v^2), acceleration per leg (m/s^2: mean
    of positive and of negative values, std, max, min), rpa_mps2 (relative positive acceleration
    = sum(v x a+ x dt) / distance, the standard drive-cycle measure of acceleration work),
    n_stops, idle_share (time in non-moving legs), altitude gain/loss/delta (m) and grade_pct,
    mean ambient temp, SOC start/end/used, energy_kwh and kwh_per_km (integer SOC: +-1 point
    per segment, so use these as a noisy target or aggregate), local hour and day of week,
    vehicle model/type and battery_kwh. `is_full_length`: at least half of segment_km (a trip's
    last piece is usually shorter).

    Parameters
    ----------
    marked_trips : DataFrame
        `mark_trips` output (`trip_points`).
    trips : DataFrame
        `trips_from_points` output: only segments of these trips are kept.
    params : TripsConfig
        segment_km (km) and moving_speed_kmh (km/h).

    Returns
    -------
    DataFrame
        silver.segments, one row per trip and segment_no, columns SEGMENT_COLUMNS; start_ts and
        end_ts UTC, local_date the trip's.
    """
    seg_m = params.segment_km * 1000.0
    legs = marked_trips.where("leg_in_trip")
    # Cumulative trip distance at each leg's start: vehicle-wide running sum minus the trip's base.
    legs = legs.withColumn("_cum_m", F.sum(F.col("leg_km") * 1000.0).over(running_window()))
    legs = legs.withColumn("_trip_base", F.min(F.col("_cum_m") - F.col("leg_km") * 1000.0).over(peer_window("trip_seq")))
    start_m = F.col("_cum_m") - F.col("leg_km") * 1000.0 - F.col("_trip_base")
    legs = legs.withColumn("segment_no", F.greatest(F.floor(start_m / seg_m + 1e-9), F.lit(0)).cast("int"))
    v_mps = F.col("speed_est_kmh") / KMH_PER_MPS
    v_prev_mps = F.col("prev_speed_kmh") / KMH_PER_MPS
    accel = F.when(F.col("leg_s") > 0, (v_mps - v_prev_mps) / F.col("leg_s"))
    legs = (
        legs.withColumn("_accel", accel)
        .withColumn("_pos_work", (v_mps + v_prev_mps) / 2 * F.greatest(F.col("_accel"), F.lit(0.0)) * F.col("leg_s"))
        .withColumn("_alt_step", F.col("alt_smooth_m") - F.col("prev_alt_smooth_m"))
        .withColumn("_stop_event", ~F.col("moving") & F.coalesce(F.col("prev_speed_kmh") > params.moving_speed_kmh, F.lit(False)))
    )
    kept = trips.select(
        "vehicle_id",
        "trip_id",
        F.col("start_ts").alias("_trip_start"),
        F.col("local_date").alias("trip_local_date"),
        "model",
        "vehicle_type",
        "battery_kwh",
    )
    legs = legs.withColumn("_trip_start", F.min("prev_ts").over(peer_window("trip_seq")))
    segs = (
        legs.groupBy("vehicle_id", "trip_seq", "segment_no")
        .agg(
            F.min("_trip_start").alias("_trip_start"),
            F.min("prev_ts").alias("start_ts"),
            F.max("ts").alias("end_ts"),
            F.count(F.lit(1)).alias("n_legs"),
            F.sum("leg_km").alias("distance_km"),
            F.sum("leg_s").alias("duration_s"),
            F.avg("speed_est_kmh").alias("speed_mean_kmh"),
            F.max("speed_est_kmh").alias("speed_max_kmh"),
            F.stddev_samp("speed_est_kmh").alias("speed_std_kmh"),
            F.sqrt(F.avg(F.col("speed_est_kmh") * F.col("speed_est_kmh"))).alias("speed_rms_kmh"),
            F.avg(F.when(F.col("_accel") > 0, F.col("_accel"))).alias("accel_pos_mean_mps2"),
            F.avg(F.when(F.col("_accel") < 0, F.col("_accel"))).alias("accel_neg_mean_mps2"),
            F.stddev_samp("_accel").alias("accel_std_mps2"),
            F.max("_accel").alias("accel_max_mps2"),
            F.min("_accel").alias("accel_min_mps2"),
            F.sum("_pos_work").alias("_pos_work"),
            F.sum(F.col("_stop_event").cast("int")).alias("n_stops"),
            F.sum(F.when(~F.col("leg_moving"), F.col("leg_s")).otherwise(0.0)).alias("_idle_s"),
            F.sum(F.greatest(F.col("_alt_step"), F.lit(0.0))).alias("altitude_gain_m"),
            F.sum(F.greatest(-F.col("_alt_step"), F.lit(0.0))).alias("altitude_loss_m"),
            F.sum("_alt_step").alias("altitude_delta_m"),
            F.avg("ambient_temp_c").alias("mean_ambient_temp_c"),
            value_at_first("prev_soc_pct", "prev_ts").alias("soc_start_pct"),
            value_at_last("soc_pct").alias("soc_end_pct"),
            value_at_first("ts_local").alias("_first_local"),
            F.first("timezone").alias("timezone"),
        )
        .join(kept, ["vehicle_id", "_trip_start"], "inner")
    )
    dist_m = F.col("distance_km") * 1000.0
    segs = (
        segs.withColumn("segment_id", F.concat(F.col("trip_id"), F.lit("-G"), F.lpad(F.col("segment_no").cast("string"), 3, "0")))
        .withColumn("mean_speed_kmh", F.when(F.col("duration_s") > 0, F.col("distance_km") / F.col("duration_s") * 3600.0))
        .withColumn("rpa_mps2", F.when(dist_m > 0, F.col("_pos_work") / dist_m))
        .withColumn("idle_share", F.when(F.col("duration_s") > 0, F.col("_idle_s") / F.col("duration_s")))
        .withColumn("grade_pct", F.when(dist_m > 0, F.col("altitude_delta_m") / dist_m * 100.0))
        .withColumn("local_hour", F.hour("_first_local"))
        .withColumn("day_of_week", F.dayofweek("_first_local"))
        .withColumn("is_full_length", F.col("distance_km") >= params.segment_km / 2)
        .withColumnRenamed("trip_local_date", "local_date")
        .transform(_energy)
    )
    return segs.select(*SEGMENT_COLUMNS)


SEGMENT_COLUMNS = (
    "vehicle_id",
    "trip_id",
    "segment_id",
    "segment_no",
    "local_date",
    "start_ts",
    "end_ts",
    "timezone",
    "local_hour",
    "day_of_week",
    "distance_km",
    "duration_s",
    "n_legs",
    "is_full_length",
    "mean_speed_kmh",
    "speed_mean_kmh",
    "speed_max_kmh",
    "speed_std_kmh",
    "speed_rms_kmh",
    "accel_pos_mean_mps2",
    "accel_neg_mean_mps2",
    "accel_std_mps2",
    "accel_max_mps2",
    "accel_min_mps2",
    "rpa_mps2",
    "n_stops",
    "idle_share",
    "altitude_gain_m",
    "altitude_loss_m",
    "altitude_delta_m",
    "grade_pct",
    "mean_ambient_temp_c",
    "soc_start_pct",
    "soc_end_pct",
    "soc_used_pct",
    "energy_kwh",
    "kwh_per_km",
    "model",
    "vehicle_type",
    "battery_kwh",
)


def trip_points(clean: DataFrame, params: TripsConfig, heartbeats: DataFrame | None = None) -> DataFrame:
    """silver.telematics_clean -> usable samples with legs, stop marks and trip marks (one sort).

    Parameters
    ----------
    clean : DataFrame
        silver.telematics_clean rows.
    params : TripsConfig
    heartbeats : DataFrame, optional
        vehicle_id, heartbeat_interval_s (s) from silver.device_profiles (`common.silver.devices.heartbeats`);
        None: every vehicle gets the minimum parked-silence limit.

    Returns
    -------
    DataFrame
        One row per usable sample with the columns of `add_legs`, `mark_stops` and `mark_trips`.
    """
    return usable_points(clean).transform(add_legs, params, heartbeats).transform(mark_stops, params).transform(mark_trips)

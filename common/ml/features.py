"""Feature and label building for the SOC-drop and energy-per-km models (pure DataFrame transforms).

Reads nothing and writes nothing: `jobs/train.py` / `jobs/score.py` pass in
silver.vehicle_minutely, silver.segments, silver.trips and silver.telematics_clean (via
common.silver.trips.trip_points) and get feature frames back. Every feature of a row at time t uses
data at or before t only (windows end at the current row; per-vehicle history features use
strictly earlier local days); labels are the only columns that look ahead.

SOC drop (per vehicle-minute, `soc_features` / `soc_labels`)
    label `soc_drop_pct` = soc(t) - soc(t + horizon) in percent points (reported, integer SOC),
    `soc_drop_event` = drop >= ml.soc.drop_threshold_pct. SOC at t + horizon is the last SOC
    of the vehicle in [t + horizon - label_max_staleness_min, t + horizon]; no reading there =
    no label. **Charging inside the horizon**: the models forecast the *discharge* of a vehicle
    that keeps operating; a row whose horizon (t, t + horizon] contains a charging minute (the
    minutely charging flag) or an SOC rise of more than 2 points (an unobserved charge) gets no
    label, so it is neither trained on nor scored in evaluation. Scoring still predicts every
    minute (one cannot know the future); gold rows carry `is_charging` at t.

Energy per km (per segment of silver.segments, `segment_energy_features`)
    label `kwh_per_km` from SOC (integer SOC: +-1 point per segment, used with distance
    weights, so the fit estimates the conditional mean); features: speed/acceleration/stop/
    altitude/temperature aggregates of the segment, time of day, vehicle type and battery,
    `physics_kwh_per_km` (longitudinal model with the conf parameters of the vehicle's model,
    integrated over the segment's legs) and `vehicle_physics_ratio` = observed / physics energy
    of the vehicle on strictly earlier local days (captures per-vehicle efficiency, load, tyres).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql.window import WindowSpec

from common.core.config import EnergyModelConfig, PhysicsVehicleParams, SocModelConfig
from common.spatial.dbscan import grid_cell
from common.spatial.geo import EARTH_RADIUS_M, haversine_m

G = 9.81
AIR_DENSITY = 1.2  # kg/m3 at ~25 degC
KMH_PER_MPS = 3.6
# Unobserved charge inside a label horizon: SOC may rise this much from regen / rounding.
SOC_RISE_TOLERANCE_PCT = 2.0
# vehicle_physics_ratio needs this much physics energy of history to be trusted (kWh): one
# integer SOC point of a 30 kWh car is 0.3 kWh, so 3 kWh keeps the ratio within ~10 %.
MIN_HISTORY_PHYSICS_KWH = 3.0

VEHICLE_TYPES = ("two_wheeler", "three_wheeler", "car", "van", "bus", "e_rickshaw")


def vehicle_type_features(vehicle_type: Column) -> list[Column]:
    """One-hot vehicle type (fixed list: a type unseen in training is all zeros, not an error).

    Parameters
    ----------
    vehicle_type : Column
        bronze.vehicles.vehicle_type.

    Returns
    -------
    list of Column
        One 0/1 double column ``vt_<type>`` per VEHICLE_TYPES.
    """
    return [(F.coalesce(vehicle_type, F.lit("")) == t).cast("double").alias(f"vt_{t}") for t in VEHICLE_TYPES]


VEHICLE_FEATURES = ("battery_kwh", *[f"vt_{t}" for t in VEHICLE_TYPES])


# --------------------------------------------------------------------------------------------
# Energy per km
# --------------------------------------------------------------------------------------------
SEGMENT_FEATURES = (
    "distance_km",
    "duration_s",
    "mean_speed_kmh",
    "speed_mean_kmh",
    "speed_max_kmh",
    "speed_std_kmh",
    "speed_rms_kmh",
    "accel_pos_mean_mps2",
    "accel_neg_mean_mps2",
    "accel_std_mps2",
    "rpa_mps2",
    "stops_per_km",
    "idle_share",
    "altitude_gain_m",
    "altitude_loss_m",
    "grade_pct",
    "mean_ambient_temp_c",
    "local_hour",
    "day_of_week",
    "physics_kwh_per_km",
    "vehicle_physics_ratio",
    "physics_x_ratio_kwh_per_km",
)
ENERGY_FEATURES = (*SEGMENT_FEATURES, *VEHICLE_FEATURES)
# Computed in segment_energy_features; every other feature is a column of the joined segment rows.
_DERIVED_ENERGY_FEATURES = frozenset({"stops_per_km", "physics_kwh_per_km", "physics_x_ratio_kwh_per_km", *[f"vt_{t}" for t in VEHICLE_TYPES]})
ENERGY_LABEL = "kwh_per_km"

# The energy model predicts the ratio of kWh/km to an *energy base*: physics x the vehicle's own
# observed/physics ratio of earlier days, physics alone while the vehicle has no history yet, and a
# fleet kWh/km where physics is unknown. Fitted on kWh/km directly, the booster leaned on the
# per-vehicle history features and missed vehicles it never saw by 10-30 % (two-wheelers above
# all: their small kWh/km barely counts in a squared error); on the ratio, without those features,
# it beats physics on unseen vehicles of both study fleets (docs/MODELS.md, "Energy: cold start").
ENERGY_TARGET = "ratio_to_energy_base"  # metadata `target` of such a registered version
HISTORY_FEATURES = ("vehicle_physics_ratio", "physics_x_ratio_kwh_per_km")
ENERGY_MODEL_FEATURES = tuple(f for f in ENERGY_FEATURES if f not in HISTORY_FEATURES)
ENERGY_RATIO_LABEL = "kwh_per_km_over_base"
ENERGY_RATIO_WEIGHT = "energy_ratio_weight"
SEGMENT_KEYS = ("vehicle_id", "trip_id", "segment_id", "local_date", "start_ts", "end_ts")
ENERGY_WEIGHT = "distance_km"


def physics_params_frame(spark: SparkSession, physics: Mapping[str, PhysicsVehicleParams]) -> DataFrame:
    """conf ml.energy.physics as a small DataFrame keyed by vehicle model name.

    Parameters
    ----------
    spark : SparkSession
    physics : Mapping[str, PhysicsVehicleParams]
        Vehicle model name -> longitudinal model parameters.

    Returns
    -------
    DataFrame
        One row per vehicle model: phys_model, p_mass_kg (kg), p_cda_m2 (m2), p_crr, p_drivetrain_eff and
        p_regen_eff (fractions 0-1), p_aux_kw (kW), p_hvac_kw_per_deg (kW/degC).
    """
    rows = [(name, *[float(getattr(p, f)) for f in _PHYS_FIELDS]) for name, p in physics.items()]
    schema = "phys_model string, " + ", ".join(f"p_{f} double" for f in _PHYS_FIELDS)
    return spark.createDataFrame(rows, schema)


_PHYS_FIELDS = ("mass_kg", "cda_m2", "crr", "drivetrain_eff", "regen_eff", "aux_kw", "hvac_kw_per_deg")


def physics_leg_kwh() -> Column:
    """Battery energy of one leg (kWh) from the longitudinal model; parameters in `p_*` columns.

    Same form as the generator's and most EV range models: rolling resistance (only when
    moving) + aerodynamic drag at the leg's mean speed + grade + inertia (1.05 x mass for
    rotating parts); positive wheel power / drivetrain efficiency, negative x regen efficiency;
    auxiliary + HVAC load (per degC away from 21 degC) for the leg's duration. Speeds are the
    reported km/h at both ends, distance the trapezoid v_mean x dt (what the speeds imply),
    grade from the smoothed altitude (clipped at +-8 %, the steepest urban roads). Reads
    speed_est_kmh, prev_speed_kmh (km/h), leg_s (s), alt_smooth_m, prev_alt_smooth_m (m),
    ambient_temp_c (degC; 21 when null) and the `physics_params_frame` columns.

    Returns
    -------
    Column
        The leg's battery energy (kWh; negative when regeneration exceeds the load).
    """
    v = F.coalesce(F.col("speed_est_kmh"), F.lit(0.0)) / KMH_PER_MPS
    v_prev = F.coalesce(F.col("prev_speed_kmh"), F.lit(0.0)) / KMH_PER_MPS
    dt = F.col("leg_s")
    vm = (v + v_prev) / 2
    ds = vm * dt
    accel = (v - v_prev) / dt
    dz = F.coalesce(F.col("alt_smooth_m") - F.col("prev_alt_smooth_m"), F.lit(0.0))
    grade = F.when(ds > 1, F.least(F.greatest(dz / ds, F.lit(-0.08)), F.lit(0.08))).otherwise(0.0)
    m = F.col("p_mass_kg")
    force = m * G * F.col("p_crr") * (vm > 0).cast("double") + 0.5 * AIR_DENSITY * F.col("p_cda_m2") * vm * vm + m * G * grade + 1.05 * m * accel
    p_wheel = force * vm
    p_batt = F.when(p_wheel > 0, p_wheel / F.col("p_drivetrain_eff")).otherwise(p_wheel * F.col("p_regen_eff"))
    temp = F.coalesce(F.col("ambient_temp_c"), F.lit(21.0))
    p_aux = 1000 * (F.col("p_aux_kw") + F.col("p_hvac_kw_per_deg") * F.abs(temp - 21.0))
    return (p_batt + p_aux) * dt / 3.6e6


def _day_buckets(df: DataFrame, start: str, end: str) -> DataFrame:
    """One row per UTC day a [start, end] interval touches: an equi-join key for interval joins."""
    return df.withColumn("_day", F.explode(F.sequence(F.to_date(start), F.to_date(end))))


def assign_to_intervals(points: DataFrame, intervals: DataFrame, key: str, ts: str = "ts") -> DataFrame:
    """Points (vehicle_id, ts) joined to the interval (vehicle_id, start_ts, end_ts] containing them.

    Interval joins on (vehicle_id, UTC day) + range: the equi key keeps the join distributed
    and small per task (a segment spans at most two days).

    Parameters
    ----------
    points : DataFrame
        Rows with vehicle_id and ``ts``.
    intervals : DataFrame
        vehicle_id, ``key``, start_ts, end_ts (UTC timestamps).
    key : str
        The interval id column (e.g. trip_id, segment_id).
    ts : str
        Timestamp column of ``points`` (UTC).

    Returns
    -------
    DataFrame
        One row per point inside an interval: the point's columns + ``key``; other points are dropped.
    """
    iv = _day_buckets(intervals.select("vehicle_id", key, "start_ts", "end_ts"), "start_ts", "end_ts")
    pts = points.withColumn("_day", F.to_date(ts))
    return pts.join(iv, ["vehicle_id", "_day"], "inner").where((F.col(ts) > F.col("start_ts")) & (F.col(ts) <= F.col("end_ts"))).drop("_day", "start_ts", "end_ts")


def segment_physics(trip_legs: DataFrame, segments: DataFrame, physics: DataFrame, default_model: str | None = None) -> DataFrame:
    """segment_id, physics_kwh: the physics model integrated over the legs of each segment.

    Vehicles whose model has no parameters use `default_model`'s, else get no physics value (null).

    Parameters
    ----------
    trip_legs : DataFrame
        common.silver.trips.trip_points output (legs with speeds, altitude, temperature, `leg_in_trip`).
    segments : DataFrame
        silver.segments (vehicle_id, segment_id, start_ts, end_ts, model).
    physics : DataFrame
        `physics_params_frame`.
    default_model : str or None
        Vehicle model whose parameters stand in for models without any.

    Returns
    -------
    DataFrame
        One row per segment with legs: segment_id, physics_kwh (kWh; null without parameters).
    """
    legs = trip_legs.where("leg_in_trip").select("vehicle_id", "ts", "leg_s", "speed_est_kmh", "prev_speed_kmh", "alt_smooth_m", "prev_alt_smooth_m", "ambient_temp_c")
    seg = segments.select("vehicle_id", "segment_id", "start_ts", "end_ts")
    model = segments.select("segment_id", F.coalesce(F.col("model"), F.lit(default_model)).alias("_model"))
    on_seg = assign_to_intervals(legs, seg, "segment_id").where(F.col("leg_s") > 0)
    params = F.broadcast(physics)
    per_leg = on_seg.join(model, "segment_id").join(params, F.col("_model") == F.col("phys_model"), "left").withColumn("_kwh", physics_leg_kwh())
    return per_leg.groupBy("segment_id").agg(F.sum("_kwh").alias("physics_kwh"))


def vehicle_history_ratio(segments_with_physics: DataFrame) -> DataFrame:
    """vehicle_id, local_date, vehicle_physics_ratio, vehicle_hist_kwh_per_km from strictly earlier days.

    Ratio of sums (observed SOC energy / physics energy) over the vehicle's segments of all local
    days before `local_date`: integer-SOC noise averages out over a day of driving, and no row
    sees its own label. Null until MIN_HISTORY_PHYSICS_KWH of history exists.

    Parameters
    ----------
    segments_with_physics : DataFrame
        silver.segments joined to `segment_physics` (vehicle_id, local_date, energy_kwh and physics_kwh in kWh,
        distance_km in km).

    Returns
    -------
    DataFrame
        One row per vehicle and local date with segments: vehicle_id, local_date, vehicle_physics_ratio
        (observed / physics energy), vehicle_hist_kwh_per_km (observed kWh/km).
    """
    daily = segments_with_physics.groupBy("vehicle_id", "local_date").agg(
        F.sum("energy_kwh").alias("_obs"),
        F.sum(F.when(F.col("energy_kwh").isNotNull(), F.col("physics_kwh"))).alias("_phys"),
        F.sum(F.when(F.col("energy_kwh").isNotNull(), F.col("distance_km"))).alias("_km"),
    )
    before = Window.partitionBy("vehicle_id").orderBy("local_date").rowsBetween(Window.unboundedPreceding, -1)
    hist = daily.withColumn("_obs_c", F.sum("_obs").over(before)).withColumn("_phys_c", F.sum("_phys").over(before)).withColumn("_km_c", F.sum("_km").over(before))
    return hist.select(
        "vehicle_id",
        "local_date",
        F.when(F.col("_phys_c") >= MIN_HISTORY_PHYSICS_KWH, F.col("_obs_c") / F.col("_phys_c")).alias("vehicle_physics_ratio"),
        F.when(F.col("_km_c") > 0, F.col("_obs_c") / F.col("_km_c")).alias("vehicle_hist_kwh_per_km"),
    )


def segment_energy_features(segments: DataFrame, physics_per_segment: DataFrame) -> DataFrame:
    """silver.segments + segment_physics -> one row per segment with ENERGY_FEATURES, label, keys.

    Parameters
    ----------
    segments : DataFrame
        silver.segments.
    physics_per_segment : DataFrame
        `segment_physics` (segment_id, physics_kwh).

    Returns
    -------
    DataFrame
        One row per segment: SEGMENT_KEYS, model, is_full_length, energy_kwh, physics_kwh (kWh),
        vehicle_hist_kwh_per_km, ENERGY_FEATURES (doubles) and ENERGY_LABEL (kWh/km; null without an
        SOC label).
    """
    seg = segments.join(physics_per_segment, "segment_id", "left")
    seg = seg.join(vehicle_history_ratio(seg), ["vehicle_id", "local_date"], "left")
    km = F.col("distance_km")
    return seg.select(
        *SEGMENT_KEYS,
        "model",
        "is_full_length",
        "energy_kwh",
        "physics_kwh",
        "vehicle_hist_kwh_per_km",
        *[F.col(c).cast("double").alias(c) for c in ENERGY_FEATURES if c not in _DERIVED_ENERGY_FEATURES],
        F.when(km > 0, F.col("n_stops") / km).alias("stops_per_km"),
        F.when(km > 0, F.col("physics_kwh") / km).alias("physics_kwh_per_km"),
        F.when(km > 0, F.col("physics_kwh") / km * F.col("vehicle_physics_ratio")).alias("physics_x_ratio_kwh_per_km"),
        *vehicle_type_features(F.col("vehicle_type")),
        F.col("kwh_per_km").cast("double").alias(ENERGY_LABEL),
    )


def energy_training_rows(features: DataFrame, cfg: EnergyModelConfig) -> DataFrame:
    """Rows an energy model may learn from: a label, long enough (min_segment_km).

    Parameters
    ----------
    features : DataFrame
        `segment_energy_features` rows.
    cfg : EnergyModelConfig
        ``min_segment_km`` (km).

    Returns
    -------
    DataFrame
        The rows with ENERGY_LABEL and distance_km >= min_segment_km.
    """
    return features.where(F.col(ENERGY_LABEL).isNotNull() & (F.col("distance_km") >= cfg.min_segment_km))


# --------------------------------------------------------------------------------------------
# Splits
# --------------------------------------------------------------------------------------------
def holdout_vehicles(vehicle_ids: Sequence[str], share: float, seed: int) -> list[str]:
    """A seeded, order-independent share of vehicles for the grouped-by-vehicle check.

    Parameters
    ----------
    vehicle_ids : Sequence[str]
    share : float
        Fraction 0-1 of the vehicles held out (at least one).
    seed : int

    Returns
    -------
    list of str
        The held-out vehicle ids, sorted.
    """
    import zlib

    ranked = sorted(vehicle_ids, key=lambda v: zlib.crc32(f"{seed}|{v}".encode()))
    n = max(1, int(round(share * len(ranked))))
    return sorted(ranked[:n])


# --------------------------------------------------------------------------------------------
# SOC drop, per vehicle-minute
# --------------------------------------------------------------------------------------------
SOC_WINDOWS_MIN = (15, 30, 60)  # SOC slope windows; also the persistence baseline candidates
SOC_FEATURES = (
    "soc_pct",
    "soc_slope_15m_pct_per_min",
    "soc_slope_30m_pct_per_min",
    "soc_slope_60m_pct_per_min",
    "km_15m",
    "km_60m",
    "km_180m",
    "moving_min_60m",
    "speed_mean_60m_kmh",
    "km_today",
    "km_today_vs_typical",
    "soc_used_today_pct",
    "minutes_since_moving",
    "minutes_since_parked",
    "km_since_parked",
    "minutes_since_shift_start",
    "minutes_since_prev_sample",
    "dist_from_day_start_km",
    "minutes_since_charging",
    "is_charging",
    "local_hour",
    "day_of_week",
    "ambient_temp_c",
    "vehicle_hist_daily_km",
    "vehicle_hist_soc_pct_per_km",
    *VEHICLE_FEATURES,
)
# Where the vehicle is probably going (`destination_features`): its usual trip ends on earlier
# days and its current heading. Null without positions or without trip history.
DESTINATION_FEATURES = (
    "vehicle_hist_trip_km",
    "vehicle_hist_trips_per_day",
    "trip_km_left_expected",
    "places_mean_dist_km",
    "places_min_dist_km",
    "places_mean_soc_pct",
    "dest_ahead_km",
    "dest_ahead_min_km",
    "dest_ahead_narrow_km",
    "dest_ahead_share",
    "dest_best_cos",
    "dest_ahead_soc_pct",
    "day_start_ahead_km",
    "day_start_cos",
)
# The current trip's direction (`trip_direction_features`): from where the vehicle last parked to
# now, and where the fleet's trips ended on earlier days in that direction.
TRIP_DIRECTION_FEATURES = (
    "trip_disp_km",
    "trip_straightness",
    "tripdir_fleet_mean_km",
    "tripdir_fleet_p90_km",
    "tripdir_fleet_share",
    "tripdir_fleet_soc_pct",
)
SOC_FEATURES = SOC_FEATURES + DESTINATION_FEATURES + TRIP_DIRECTION_FEATURES
SOC_LABEL = "soc_drop_pct"
PARKED_GAP_MIN = 4  # heartbeat silence that marks a parked row (generator/real parked interval ~5 min)
SOC_EVENT = "soc_drop_event"


def minutely_temperature(clean: DataFrame) -> DataFrame:
    """Ambient temperature and position per vehicle-minute from the usable samples.

    Parameters
    ----------
    clean : DataFrame
        silver.telematics_clean (vehicle_id, ts, is_usable, lat, lon, ambient_temp_c when the source has it).

    Returns
    -------
    DataFrame
        One row per vehicle and UTC minute with usable samples: vehicle_id, minute_ts (UTC), ambient_temp_c
        (degC, mean of the minute's usable samples; null when the source has no temperature), lat/lon
        (degrees, the minute's last usable position).
    """
    temp = F.avg("ambient_temp_c") if "ambient_temp_c" in clean.columns else F.lit(None).cast("double")
    last = F.max(F.struct(F.col("ts").alias("ts"), F.col("lat").alias("lat"), F.col("lon").alias("lon")))
    return (
        clean.where(F.col("is_usable"))
        .groupBy("vehicle_id", F.date_trunc("minute", "ts").alias("minute_ts"))
        .agg(temp.alias("ambient_temp_c"), last.alias("_pos"))
        .select("vehicle_id", "minute_ts", "ambient_temp_c", F.col("_pos.lat").alias("lat"), F.col("_pos.lon").alias("lon"))
    )


def _range(seconds_back: int, seconds_ahead: int = 0) -> WindowSpec:
    return Window.partitionBy("vehicle_id").orderBy(F.col("_t")).rangeBetween(seconds_back, seconds_ahead)


def vehicle_minutely_history(minutely: DataFrame) -> DataFrame:
    """vehicle_id, local_date, vehicle_hist_daily_km, vehicle_hist_soc_pct_per_km from strictly earlier days.

    Daily km (mean over the vehicle's earlier days with data) and SOC points used per km while
    driving (ratio of sums over earlier days; minutes with charging excluded): how active and
    how thirsty the vehicle usually is.

    Parameters
    ----------
    minutely : DataFrame
        silver.vehicle_minutely (vehicle_id, local_date, km, charging, soc_delta_pct).

    Returns
    -------
    DataFrame
        One row per vehicle and local date: vehicle_id, local_date, vehicle_hist_daily_km (km),
        vehicle_hist_soc_pct_per_km (SOC percent points per km; null under 5 km of earlier driving).
    """
    driving = (F.col("km") > 0) & ~F.col("charging")
    daily = minutely.groupBy("vehicle_id", "local_date").agg(
        F.sum("km").alias("_km"),
        F.sum(F.when(driving, -F.col("soc_delta_pct"))).alias("_soc_used"),
        F.sum(F.when(driving, F.col("km"))).alias("_drive_km"),
    )
    before = Window.partitionBy("vehicle_id").orderBy("local_date").rowsBetween(Window.unboundedPreceding, -1)
    return daily.select(
        "vehicle_id",
        "local_date",
        F.avg("_km").over(before).alias("vehicle_hist_daily_km"),
        F.when(F.sum("_drive_km").over(before) >= 5, F.sum("_soc_used").over(before) / F.sum("_drive_km").over(before)).alias("vehicle_hist_soc_pct_per_km"),
    )


# Destination features. The next hour's discharge of a moving vehicle is mostly the rest of its
# current trip; drivers mostly go to places they went before, so "usual places ahead of the
# current heading" estimate the trip left. Places = trip ends binned to a PLACE_CELL_M grid.
PLACE_CELL_M = 300.0
MAX_PLACES = 25  # most visited places per vehicle kept (the long tail adds noise, not signal)
PLACE_HISTORY_DAYS = 28  # places and trip habits from at most this many earlier days (bounds the join)
HEADING_LOOKBACK_S = (5 * 60, 2 * 60)  # heading = displacement from the position 2-5 min before now
MIN_HEADING_M = 200.0  # less displacement than this: no heading (parked, GPS jitter)
AHEAD_COS = math.cos(math.radians(45))  # a place is "ahead" within +-45 deg of the heading ...
NARROW_AHEAD_COS = math.cos(math.radians(30))  # ... and "straight ahead" within +-30 deg
MIN_PLACE_KM = 0.3  # a place closer than this is where the vehicle already is
_M_PER_DEG = math.pi / 180 * EARTH_RADIUS_M


def _towards(place: Column, dx: str, dy: str, dn: str) -> Column:
    """struct<d, c, w> of a place (struct<lat, lon, w>) seen from the row's (lat, lon): distance in
    km, cosine between the direction (dx, dy) of length dn (metres east / north) and the place, and
    the place's weight. Equirectangular offsets: < 0.1 % error at city scale, and no trigonometry
    per place."""
    px = (place["lon"] - F.col("lon")) * F.lit(_M_PER_DEG) * F.cos(F.radians("lat"))
    py = (place["lat"] - F.col("lat")) * F.lit(_M_PER_DEG)
    norm = F.sqrt(px * px + py * py)
    return F.struct((norm / 1000.0).alias("d"), ((px * F.col(dx) + py * F.col(dy)) / (norm * F.col(dn))).alias("c"), place["w"].alias("w"))


def vehicle_trip_history(trips: DataFrame, dates: DataFrame) -> DataFrame:
    """Trip habits and usual trip ends per vehicle-day, from trips that ended on strictly earlier local days.

    At most PLACE_HISTORY_DAYS back; local days in the trip's timezone (UTC without one).

    Parameters
    ----------
    trips : DataFrame
        silver.trips (vehicle_id, end_ts, end_lat, end_lon, distance_km, timezone).
    dates : DataFrame
        The (vehicle_id, local_date) rows to describe.

    Returns
    -------
    DataFrame
        One row per ``dates`` row: + vehicle_hist_trip_km (mean trip km), vehicle_hist_trips_per_day
        (per day with trips) and `_places`, the MAX_PLACES most frequent trip ends as
        array<struct<lat, lon, w>> (degrees; w = trips ending there); null without history.
    """
    row, col = grid_cell("end_lat", "end_lon", PLACE_CELL_M)
    ends = trips.where(F.col("end_lat").isNotNull() & F.col("end_lon").isNotNull() & F.col("end_ts").isNotNull()).select(
        "vehicle_id",
        F.to_date(F.from_utc_timestamp("end_ts", F.coalesce(F.col("timezone"), F.lit("UTC")))).alias("_end_date"),
        "distance_km",
        "end_lat",
        "end_lon",
        row.alias("_r"),
        col.alias("_c"),
    )
    earlier = dates.join(ends, "vehicle_id").where((F.col("_end_date") < F.col("local_date")) & (F.col("_end_date") >= F.date_sub("local_date", PLACE_HISTORY_DAYS)))
    habits = earlier.groupBy("vehicle_id", "local_date").agg(
        F.avg("distance_km").alias("vehicle_hist_trip_km"),
        (F.count(F.lit(1)) / F.countDistinct("_end_date")).alias("vehicle_hist_trips_per_day"),
    )
    rank = Window.partitionBy("vehicle_id", "local_date").orderBy(F.desc("w"), "_r", "_c")
    places = (
        earlier.groupBy("vehicle_id", "local_date", "_r", "_c")
        .agg(F.count(F.lit(1)).cast("double").alias("w"), F.avg("end_lat").alias("lat"), F.avg("end_lon").alias("lon"))
        .withColumn("_k", F.row_number().over(rank))
        .where(F.col("_k") <= MAX_PLACES)
        .groupBy("vehicle_id", "local_date")
        .agg(F.collect_list(F.struct("lat", "lon", "w")).alias("_places"))
    )
    return dates.join(habits, ["vehicle_id", "local_date"], "left").join(places, ["vehicle_id", "local_date"], "left")


def destination_features(df: DataFrame, trips: DataFrame | None) -> DataFrame:
    """Add DESTINATION_FEATURES to per vehicle-minute rows.

    Distances in km (straight line); `*_cos` = cosine between the heading and the direction to the
    place (1 = straight ahead); `*_soc_pct` = distance x the vehicle's historical SOC points per km.
    Uses positions at or before t and trips that ended on earlier days only.

    Parameters
    ----------
    df : DataFrame
        vehicle_id, local_date, _t (epoch s), lat, lon (degrees), km_since_parked, vehicle_hist_soc_pct_per_km,
        `_day_start` struct<lat, lon>.
    trips : DataFrame or None
        silver.trips; None gives null features.

    Returns
    -------
    DataFrame
        ``df`` + DESTINATION_FEATURES.
    """
    if trips is None:
        return df.select("*", *[F.lit(None).cast("double").alias(c) for c in DESTINATION_FEATURES])
    hist = vehicle_trip_history(trips, df.select("vehicle_id", "local_date").distinct())
    back = Window.partitionBy("vehicle_id").orderBy("_t").rangeBetween(-HEADING_LOOKBACK_S[0], -HEADING_LOOKBACK_S[1])
    prev = F.first(F.when(F.col("lat").isNotNull(), F.struct("lat", "lon")), ignorenulls=True).over(back)
    coslat = F.cos(F.radians("lat"))
    df = (
        df.join(hist, ["vehicle_id", "local_date"], "left")
        .withColumn("_prev", prev)
        .withColumn("_hx", (F.col("lon") - F.col("_prev.lon")) * F.lit(_M_PER_DEG) * coslat)
        .withColumn("_hy", (F.col("lat") - F.col("_prev.lat")) * F.lit(_M_PER_DEG))
        .withColumn("_hn", F.sqrt(F.col("_hx") ** 2 + F.col("_hy") ** 2))
    )
    heading = F.col("_hn") > MIN_HEADING_M

    def towards(p: Column) -> Column:
        """`_towards` along the row's heading (``_hx``, ``_hy``, ``_hn``).

        Parameters
        ----------
        p : Column
            struct<lat, lon, w> of a place.

        Returns
        -------
        Column
            struct<d, c, w>: distance (km), cosine to the heading, weight.
        """
        return _towards(p, "_hx", "_hy", "_hn")

    cand = F.transform("_places", towards)
    away = F.filter(cand, lambda x: x["d"] > MIN_PLACE_KM)
    ahead = F.filter(away, lambda x: x["c"] >= AHEAD_COS)
    narrow = F.filter(away, lambda x: x["c"] >= NARROW_AHEAD_COS)
    w_all = F.aggregate("_places", F.lit(0.0), lambda a, p: a + p["w"])
    w_ahead = F.aggregate(ahead, F.lit(0.0), lambda a, x: a + x["w"])
    wd_all = F.aggregate(cand, F.lit(0.0), lambda a, x: a + x["w"] * x["d"])
    wd_ahead = F.aggregate(ahead, F.lit(0.0), lambda a, x: a + x["w"] * x["d"])
    dists = F.transform(cand, lambda x: x["d"])
    soc_per_km = F.col("vehicle_hist_soc_pct_per_km")
    start = towards(F.struct(F.col("_day_start.lat").alias("lat"), F.col("_day_start.lon").alias("lon"), F.lit(1.0).alias("w")))
    return (
        df.withColumn("trip_km_left_expected", F.col("vehicle_hist_trip_km") - F.col("km_since_parked"))
        .withColumn("places_mean_dist_km", F.when(w_all > 0, wd_all / w_all))
        .withColumn("places_min_dist_km", F.array_min(dists))
        .withColumn("places_mean_soc_pct", F.col("places_mean_dist_km") * soc_per_km)
        .withColumn("dest_ahead_km", F.when(heading & (w_ahead > 0), wd_ahead / w_ahead))
        .withColumn("dest_ahead_min_km", F.when(heading, F.array_min(F.transform(ahead, lambda x: x["d"]))))
        .withColumn("dest_ahead_narrow_km", F.when(heading, F.array_min(F.transform(narrow, lambda x: x["d"]))))
        .withColumn("dest_ahead_share", F.when(heading & (w_all > 0), w_ahead / w_all))
        .withColumn("dest_best_cos", F.when(heading, F.array_max(F.transform(away, lambda x: x["c"]))))
        .withColumn("dest_ahead_soc_pct", F.col("dest_ahead_km") * soc_per_km)
        .withColumn("_start", start)
        .withColumn("day_start_ahead_km", F.when(heading & (F.col("_start.c") >= AHEAD_COS), F.col("_start.d")))
        .withColumn("day_start_cos", F.when(heading, F.col("_start.c")))
        .drop("_places", "_prev", "_hx", "_hy", "_hn", "_start")
    )


# Trip-direction features. A trip's direction from its start is steadier than the last minutes'
# heading (roads bend), and how straight the trip has been so far tells a through-route from a
# winding one. Fleet places: every vehicle's trip ends on earlier days, FLEET_PLACE_CELL_M grid.
FLEET_PLACE_CELL_M = 1000.0
MAX_FLEET_PLACES = 400  # most visited fleet cells kept per day (bounds the per-row array)
TRIP_DIRECTION_COS = math.cos(math.radians(35))  # a fleet place within +-35 deg of the trip's direction
MIN_TRIP_KM = 0.3  # less driven since parking: no current trip
MIN_TRIP_DISP_M = 300.0  # less displacement from the trip's start: no direction yet
TRIP_P90 = 0.9  # far end of the places ahead: how far the trip could still go


def fleet_trip_places(trips: DataFrame, dates: DataFrame) -> DataFrame:
    """The cells where most of the fleet's trips ended on strictly earlier local days, per local date.

    At most PLACE_HISTORY_DAYS back. Fleet-wide and coarse: no person's places, only where the
    fleet goes.

    Parameters
    ----------
    trips : DataFrame
        silver.trips (end_ts, end_lat, end_lon, timezone).
    dates : DataFrame
        Rows with local_date (the dates to describe).

    Returns
    -------
    DataFrame
        One row per local date with history: local_date, `_fleet_places`, the MAX_FLEET_PLACES
        FLEET_PLACE_CELL_M cells as array<struct<lat, lon, w>> (degrees; w = trips ending there).
    """
    row, col = grid_cell("end_lat", "end_lon", FLEET_PLACE_CELL_M)
    ends = trips.where(F.col("end_lat").isNotNull() & F.col("end_lon").isNotNull() & F.col("end_ts").isNotNull()).select(
        F.to_date(F.from_utc_timestamp("end_ts", F.coalesce(F.col("timezone"), F.lit("UTC")))).alias("_end_date"),
        "end_lat",
        "end_lon",
        row.alias("_r"),
        col.alias("_c"),
    )
    cells = ends.groupBy("_end_date", "_r", "_c").agg(F.count(F.lit(1)).alias("_n"), F.sum("end_lat").alias("_slat"), F.sum("end_lon").alias("_slon"))
    earlier = F.broadcast(dates.select("local_date").distinct()).join(cells, (F.col("_end_date") < F.col("local_date")) & (F.col("_end_date") >= F.date_sub("local_date", PLACE_HISTORY_DAYS)))
    rank = Window.partitionBy("local_date").orderBy(F.desc("w"), "_r", "_c")
    return (
        earlier.groupBy("local_date", "_r", "_c")
        .agg(F.sum("_n").cast("double").alias("w"), (F.sum("_slat") / F.sum("_n")).alias("lat"), (F.sum("_slon") / F.sum("_n")).alias("lon"))
        .withColumn("_k", F.row_number().over(rank))
        .where(F.col("_k") <= MAX_FLEET_PLACES)
        .groupBy("local_date")
        .agg(F.collect_list(F.struct("lat", "lon", "w")).alias("_fleet_places"))
    )


FLEET_AHEAD_COLUMNS = ("tripdir_fleet_mean_km", "tripdir_fleet_p90_km", "tripdir_fleet_share")


def _fleet_ahead(places_by_date: dict, local_date: pd.Series, lat: pd.Series, lon: pd.Series, tx: pd.Series, ty: pd.Series, tn: pd.Series) -> pd.DataFrame:
    """Body of the pandas UDF of `trip_direction_features`: FLEET_AHEAD_COLUMNS per row (NaN, i.e.
    null, where the trip has no direction yet or the date has no places), numpy over (rows x
    places) blocks rather than Spark's higher-order array functions (transform/filter/aggregate),
    which are interpreted per element: with up to MAX_FLEET_PLACES places per row they dominate
    the feature frame's build time (docs/MODELS.md section 4)."""
    res = np.full((len(lat), len(FLEET_AHEAD_COLUMNS)), np.nan)
    dates = local_date.to_numpy()
    has_dir = (tn > MIN_TRIP_DISP_M).to_numpy(dtype=bool)  # null _tn compares False
    lat_a, lon_a, tx_a, ty_a, tn_a = (s.to_numpy(dtype="float64") for s in (lat, lon, tx, ty, tn))
    for day in set(dates[has_dir]):
        places = places_by_date.get(day)
        if places is None:
            continue
        plat, plon, w = places[:, 0], places[:, 1], places[:, 2]
        idx = np.flatnonzero(has_dir & (dates == day))
        for block in np.array_split(idx, max(1, len(idx) // 2000)):
            coslat = np.cos(np.radians(lat_a[block]))[:, None]
            px = (plon[None, :] - lon_a[block][:, None]) * _M_PER_DEG * coslat
            py = (plat[None, :] - lat_a[block][:, None]) * _M_PER_DEG
            d = np.sqrt(px * px + py * py) / 1000.0
            with np.errstate(invalid="ignore", divide="ignore"):
                c = (px * tx_a[block][:, None] + py * ty_a[block][:, None]) / (d * 1000.0 * tn_a[block][:, None])
            away = d > MIN_PLACE_KM
            ahead = away & (c >= TRIP_DIRECTION_COS)
            w_away = (w[None, :] * away).sum(1)
            w_ahead = (w[None, :] * ahead).sum(1)
            n_ahead = ahead.sum(1)
            far = np.sort(np.where(ahead, d, np.inf), axis=1)
            k = np.maximum(np.ceil(n_ahead * TRIP_P90).astype(int), 1) - 1  # nearest rank
            with np.errstate(invalid="ignore", divide="ignore"):
                res[block, 0] = np.where(w_ahead > 0, (w[None, :] * ahead * d).sum(1) / w_ahead, np.nan)
                res[block, 2] = np.where(w_away > 0, w_ahead / w_away, np.nan)
            res[block, 1] = np.where(n_ahead > 0, np.take_along_axis(far, k[:, None], 1)[:, 0], np.nan)
    return pd.DataFrame(res, columns=list(FLEET_AHEAD_COLUMNS))


def trip_direction_features(df: DataFrame, trips: DataFrame | None) -> DataFrame:
    """Add TRIP_DIRECTION_FEATURES to per vehicle-minute rows.

    trip_disp_km / trip_straightness: straight-line km from the trip's start, and that / km driven
    since (null when not on a trip). tripdir_fleet_*: fleet places (`fleet_trip_places`) farther
    than MIN_PLACE_KM within +-35 deg of the trip's direction -- their visit-weighted mean and 90th
    percentile (nearest rank) distance, their share of all visits, and the mean x the vehicle's
    SOC points per km. Uses positions at or before t and trips that ended on earlier days only.
    The fleet places per date are collected on the driver and shipped with a scalar pandas UDF,
    so the rows are not shuffled or joined back.

    Parameters
    ----------
    df : DataFrame
        local_date, lat, lon (degrees), km_since_parked, minutes_since_parked, vehicle_hist_soc_pct_per_km,
        `_trip_start` struct<lat, lon> (the position where the vehicle last parked).
    trips : DataFrame or None
        silver.trips; None gives null tripdir_fleet_* features.

    Returns
    -------
    DataFrame
        ``df`` + TRIP_DIRECTION_FEATURES.
    """
    on_trip = (F.col("minutes_since_parked") < 1440) & (F.col("km_since_parked") > MIN_TRIP_KM)
    coslat = F.cos(F.radians("lat"))
    df = (
        df.withColumn("_tx", F.when(on_trip, (F.col("lon") - F.col("_trip_start.lon")) * _M_PER_DEG * coslat))
        .withColumn("_ty", F.when(on_trip, (F.col("lat") - F.col("_trip_start.lat")) * _M_PER_DEG))
        .withColumn("_tn", F.sqrt(F.col("_tx") * F.col("_tx") + F.col("_ty") * F.col("_ty")))
        .withColumn("trip_disp_km", F.col("_tn") / 1000.0)
        .withColumn("trip_straightness", F.col("trip_disp_km") / F.greatest(F.col("km_since_parked"), F.lit(0.1)))
    )
    places = [] if trips is None else fleet_trip_places(trips, df.select("local_date")).collect()  # bounded: one row per local date, <= MAX_FLEET_PLACES places each
    by_date = {r["local_date"]: np.array([(p["lat"], p["lon"], p["w"]) for p in r["_fleet_places"]], dtype="float64") for r in places}
    if by_date:

        def fleet_ahead(local_date: pd.Series, lat: pd.Series, lon: pd.Series, tx: pd.Series, ty: pd.Series, tn: pd.Series) -> pd.DataFrame:
            return _fleet_ahead(by_date, local_date, lat, lon, tx, ty, tn)

        schema = ", ".join(f"{c} double" for c in FLEET_AHEAD_COLUMNS)
        ahead = F.pandas_udf(fleet_ahead, schema)(  # type: ignore[call-overload]  # pyspark 3.5 stubs lack the DDL-string form
            "local_date", "lat", "lon", "_tx", "_ty", "_tn"
        )
        out = df.withColumn("_ahead", ahead).select("*", *[F.col(f"_ahead.{c}").alias(c) for c in FLEET_AHEAD_COLUMNS]).drop("_ahead")
    else:
        out = df.select("*", *[F.lit(None).cast("double").alias(c) for c in FLEET_AHEAD_COLUMNS])
    return out.withColumn("tripdir_fleet_soc_pct", F.col("tripdir_fleet_mean_km") * F.col("vehicle_hist_soc_pct_per_km")).drop("_tx", "_ty", "_tn")


def soc_features(minutely: DataFrame, vehicles: DataFrame, temperature: DataFrame | None = None, trips: DataFrame | None = None) -> DataFrame:
    """SOC_FEATURES per vehicle-minute from silver.vehicle_minutely and its companions.

    Windows are event-time ranges ending at the current minute (minutes without samples count
    nothing). Slopes are percent points per minute between the first minute of the window with
    SOC and now, null when that minute is less than half the window back.

    Parameters
    ----------
    minutely : DataFrame
        silver.vehicle_minutely; minutes without SOC are dropped.
    vehicles : DataFrame
        bronze.vehicles (vehicle_id, vehicle_type, battery_kwh).
    temperature : DataFrame or None
        `minutely_temperature` (temperature and positions); None gives null temperature and positions.
    trips : DataFrame or None
        silver.trips, for the destination and trip-direction features.

    Returns
    -------
    DataFrame
        One row per vehicle-minute with SOC: vehicle_id, minute_ts (UTC), local_date, _t (epoch s),
        charging, soc_pct, SOC_FEATURES and soc_max_pct.
    """
    t = F.col("minute_ts").cast("long")
    df = minutely.where(F.col("soc_mean_pct").isNotNull()).withColumn("_t", t)
    for w in SOC_WINDOWS_MIN:
        first = F.first(F.struct(F.col("_t").alias("t"), F.col("soc_mean_pct").alias("soc"))).over(_range(-w * 60))
        span_min = (F.col("_t") - first["t"]) / 60.0
        df = df.withColumn(
            f"soc_slope_{w}m_pct_per_min",
            F.when(span_min >= w / 2, (F.col("soc_mean_pct") - first["soc"]) / span_min),
        )
    day = Window.partitionBy("vehicle_id", "local_date").orderBy("_t").rowsBetween(Window.unboundedPreceding, 0)
    last_moving = F.max(F.when(F.col("km") > 0, F.col("_t"))).over(Window.partitionBy("vehicle_id").orderBy("_t").rowsBetween(Window.unboundedPreceding, 0))
    last_charging = F.max(F.when(F.col("charging"), F.col("_t"))).over(Window.partitionBy("vehicle_id").orderBy("_t").rowsBetween(Window.unboundedPreceding, 0))
    # A parked vehicle reports a heartbeat every few minutes, a moving one every <= 1 min: a row
    # after a >= PARKED_GAP_MIN silence without km is "parked". Minutes/km since then = the
    # current trip so far (0 while parked).
    by_vehicle = Window.partitionBy("vehicle_id").orderBy("_t")
    so_far = by_vehicle.rowsBetween(Window.unboundedPreceding, 0)
    prev_t = F.lag("_t").over(by_vehicle)
    df = df.withColumn("minutes_since_prev_sample", F.least((F.col("_t") - prev_t) / 60.0, F.lit(1440.0)))
    df = df.withColumn("_cum_km", F.sum(F.coalesce(F.col("km"), F.lit(0.0))).over(so_far))
    parked_row = F.coalesce(F.col("minutes_since_prev_sample") >= PARKED_GAP_MIN, F.lit(True)) & (F.coalesce(F.col("km"), F.lit(0.0)) == 0)
    last_parked = F.max(F.when(parked_row, F.struct(F.col("_t").alias("t"), F.col("_cum_km").alias("km")))).over(so_far)
    df = df.withColumn("minutes_since_parked", F.coalesce(F.least((F.col("_t") - last_parked["t"]) / 60.0, F.lit(1440.0)), F.lit(1440.0))).withColumn(
        "km_since_parked", F.coalesce(F.col("_cum_km") - last_parked["km"], F.col("_cum_km"))
    )
    first_move_today = F.min(F.when(F.col("km") > 0, F.col("_t"))).over(day)
    df = (
        df.withColumn("km_15m", F.sum("km").over(_range(-14 * 60)))
        .withColumn(
            "minutes_since_shift_start",
            F.when(F.col("_t") >= first_move_today, (F.col("_t") - first_move_today) / 60.0).otherwise(-1.0),
        )
        .withColumn("km_60m", F.sum("km").over(_range(-59 * 60)))
        .withColumn("km_180m", F.sum("km").over(_range(-179 * 60)))
        .withColumn("moving_min_60m", F.sum("moving_s").over(_range(-59 * 60)) / 60.0)
        .withColumn("speed_mean_60m_kmh", F.avg("speed_mean_kmh").over(_range(-59 * 60)))
        .withColumn("km_today", F.sum("km").over(day))
        .withColumn("soc_used_today_pct", F.first("soc_mean_pct").over(day) - F.col("soc_mean_pct"))
        # capped at 24 h: "long ago" and "never seen" are the same thing for a 1-hour forecast
        .withColumn("minutes_since_moving", F.coalesce(F.least((F.col("_t") - last_moving) / 60.0, F.lit(1440.0)), F.lit(1440.0)))
        .withColumn("minutes_since_charging", F.coalesce(F.least((F.col("_t") - last_charging) / 60.0, F.lit(1440.0)), F.lit(1440.0)))
        .withColumn("is_charging", F.col("charging").cast("double"))
        .withColumn("local_hour", F.hour("minute_local") + F.minute("minute_local") / 60.0)
        .withColumn("day_of_week", F.dayofweek("minute_local").cast("double"))
    )
    if temperature is not None:
        df = df.join(temperature, ["vehicle_id", "minute_ts"], "left")
    else:
        df = df.withColumn("ambient_temp_c", F.lit(None).cast("double")).withColumn("lat", F.lit(None).cast("double")).withColumn("lon", F.lit(None).cast("double"))
    # Where the vehicle spent the night (its first position of the local day): parked there in the
    # evening usually means the shift is over; parked elsewhere means a dwell that will end.
    day_all = Window.partitionBy("vehicle_id", "local_date").orderBy("_t").rowsBetween(Window.unboundedPreceding, 0)
    first_pos = F.first(F.when(F.col("lat").isNotNull(), F.struct("lat", "lon")), ignorenulls=True).over(day_all)
    df = df.withColumn("_day_start", first_pos)
    # Where the current trip started: the position of the last parked row (null without one).
    start = F.max(F.when(parked_row & F.col("lat").isNotNull(), F.struct(F.col("_t").alias("t"), "lat", "lon"))).over(so_far)
    df = df.withColumn("_trip_start", F.struct(start["lat"].alias("lat"), start["lon"].alias("lon")))
    df = df.withColumn("dist_from_day_start_km", haversine_m(F.col("_day_start.lat"), F.col("_day_start.lon"), F.col("lat"), F.col("lon")) / 1000.0)
    fleet = vehicles.select("vehicle_id", "vehicle_type", "battery_kwh").dropDuplicates(["vehicle_id"])
    df = df.join(F.broadcast(fleet), "vehicle_id", "left").join(vehicle_minutely_history(minutely), ["vehicle_id", "local_date"], "left")
    df = df.withColumn("km_today_vs_typical", F.col("km_today") / F.col("vehicle_hist_daily_km"))
    df = trip_direction_features(destination_features(df, trips), trips)
    return df.select(
        "vehicle_id",
        "minute_ts",
        "local_date",
        "_t",
        "charging",
        F.col("soc_mean_pct").alias("soc_pct"),
        *[F.col(c).cast("double").alias(c) for c in SOC_FEATURES if c not in VEHICLE_FEATURES and c != "soc_pct"],
        F.col("battery_kwh").cast("double").alias("battery_kwh"),
        *vehicle_type_features(F.col("vehicle_type")),
        "soc_max_pct",
    )


def soc_labels(features: DataFrame, cfg: SocModelConfig) -> DataFrame:
    """Add `soc_future_pct`, `charging_in_horizon`, SOC_LABEL and SOC_EVENT (null = no label).

    The label is null when no SOC exists in [t + h - staleness, t + h] or the horizon [t, t + h]
    holds a charging minute or an SOC rise above SOC_RISE_TOLERANCE_PCT (see module docstring).

    Parameters
    ----------
    features : DataFrame
        `soc_features` rows.
    cfg : SocModelConfig
        Horizon h and label staleness (min), drop threshold (SOC percent points).

    Returns
    -------
    DataFrame
        ``features`` + soc_future_pct (SOC percent), charging_in_horizon, SOC_LABEL (drop, SOC percent
        points) and SOC_EVENT (0/1).
    """
    h = cfg.horizon_min * 60
    s = cfg.label_max_staleness_min * 60
    future = F.last(F.col("soc_pct")).over(_range(h - s, h))
    charging_ahead = F.max(F.col("charging").cast("int")).over(_range(0, h)) > 0
    rise_ahead = F.max("soc_max_pct").over(_range(60, h)) > F.col("soc_pct") + SOC_RISE_TOLERANCE_PCT
    df = features.withColumn("soc_future_pct", future).withColumn("charging_in_horizon", F.coalesce(charging_ahead | F.coalesce(rise_ahead, F.lit(False)), F.lit(False)))
    drop = F.when(~F.col("charging_in_horizon"), F.col("soc_pct") - F.col("soc_future_pct"))
    return df.withColumn(SOC_LABEL, drop).withColumn(SOC_EVENT, F.when(F.col(SOC_LABEL).isNotNull(), (F.col(SOC_LABEL) >= cfg.drop_threshold_pct).cast("int")))


def persistence_drop(slope_col: str, horizon_min: int) -> Column:
    """Persistence baseline: the recent SOC slope extrapolated over the horizon (points).

    A discharge forecast: a rising slope predicts no drop, and SOC cannot fall below 0.

    Parameters
    ----------
    slope_col : str
        SOC slope column (percent points per min).
    horizon_min : int
        Horizon (min).

    Returns
    -------
    Column
        The forecast drop (SOC percent points, 0 .. soc_pct; 0 without a slope).
    """
    drop = -F.col(slope_col) * horizon_min
    return F.least(F.greatest(F.coalesce(drop, F.lit(0.0)), F.lit(0.0)), F.col("soc_pct"))


def energy_base(fleet_kwh_per_km: float) -> Column:
    """The energy base of a segment (kWh/km): physics x the vehicle's history ratio, else physics, else the fleet's kWh/km.

    Parameters
    ----------
    fleet_kwh_per_km : float
        The training segments' mean kWh/km (stored with the registered version).

    Returns
    -------
    Column
    """
    return F.coalesce(F.col("physics_x_ratio_kwh_per_km"), F.col("physics_kwh_per_km"), F.lit(float(fleet_kwh_per_km)))


def with_energy_ratio_label(segments: DataFrame, fleet_kwh_per_km: float) -> DataFrame:
    """Add the ratio label and its weight: kWh/km over `energy_base`, weighted by km x base².

    With this weight the ratio's squared error is the kWh/km squared error of the segment; unweighted,
    segments with a tiny physics energy (downhill) dominated the fit. A base <= 0 gives no label.

    Parameters
    ----------
    segments : DataFrame
        `segment_energy_features` rows.
    fleet_kwh_per_km : float

    Returns
    -------
    DataFrame
        ``segments`` + ENERGY_RATIO_LABEL (ratio, null without a label) and ENERGY_RATIO_WEIGHT.
    """
    base = energy_base(fleet_kwh_per_km)
    positive = (base > 0) & ~F.isnan(base)  # NaN > 0 is true in Spark
    return segments.withColumn(ENERGY_RATIO_LABEL, F.when(positive, F.col(ENERGY_LABEL) / base)).withColumn(
        ENERGY_RATIO_WEIGHT, F.col(ENERGY_WEIGHT) * F.greatest(base, F.lit(0.0)) * F.greatest(base, F.lit(0.0))
    )


def energy_from_ratio(ratio: Column, fleet_kwh_per_km: float) -> Column:
    """kWh/km from the model's ratio: physics exactly for a vehicle without history, else base x ratio (the base itself where it is <= 0).

    A vehicle the fleet has no history of gets physics, not a learned correction: on both study
    fleets every model without the vehicle's own history was worse than plain physics.

    Parameters
    ----------
    ratio : Column
        The booster's output on the row.
    fleet_kwh_per_km : float
        The version's `energy_base` fallback.

    Returns
    -------
    Column
        kWh/km.
    """
    no_history = F.col("vehicle_physics_ratio").isNull() & F.col("physics_kwh_per_km").isNotNull()
    base = energy_base(fleet_kwh_per_km)
    # a base <= 0 (downhill, regeneration) has no learned ratio: the model never trains on such rows
    return F.when(no_history, F.col("physics_kwh_per_km")).when(base > 0, base * ratio).otherwise(base)


# --------------------------------------------------------------------------------------------
# Whole feature frames from the silver tables (shared by jobs/train.py and jobs/score.py)
# --------------------------------------------------------------------------------------------
def build_energy_features(clean: DataFrame, segments: DataFrame, trips_cfg, energy_cfg: EnergyModelConfig, heartbeats: DataFrame | None = None) -> DataFrame:
    """silver.telematics_clean + silver.segments -> segment_energy_features (physics from conf).

    Parameters
    ----------
    clean : DataFrame
        silver.telematics_clean.
    segments : DataFrame
        silver.segments.
    trips_cfg : TripsConfig
        ``kpis.trips`` (how legs are built).
    energy_cfg : EnergyModelConfig
        ``physics`` and ``default_model``.
    heartbeats : DataFrame or None
        silver.device_profiles: must be the ones silver.segments was cut with, so the legs integrated
        here are the segments' legs.

    Returns
    -------
    DataFrame
        `segment_energy_features`: one row per segment.
    """
    from common.silver.trips import trip_points

    legs = trip_points(clean, trips_cfg, heartbeats)
    physics = physics_params_frame(segments.sparkSession, energy_cfg.physics)
    per_segment = segment_physics(legs, segments, physics, energy_cfg.default_model)
    return segment_energy_features(segments, per_segment)


def build_soc_features(minutely: DataFrame, vehicles: DataFrame, clean: DataFrame | None, trips: DataFrame | None = None) -> DataFrame:
    """silver.vehicle_minutely (+ bronze.vehicles, silver.telematics_clean, silver.trips) -> soc_features.

    Parameters
    ----------
    minutely : DataFrame
        silver.vehicle_minutely.
    vehicles : DataFrame
        bronze.vehicles.
    clean : DataFrame or None
        silver.telematics_clean, for temperature and positions (`minutely_temperature`).
    trips : DataFrame or None
        silver.trips.

    Returns
    -------
    DataFrame
        `soc_features`: one row per vehicle-minute with SOC.
    """
    temperature = minutely_temperature(clean) if clean is not None else None
    return soc_features(minutely, vehicles, temperature, trips)

"""Device reporting modes: how each vehicle's telematics unit reports, measured from its data.

Real fleets mix devices: some send a heartbeat every few minutes while parked, some report only
while the ignition is on (a sample at key-off and key-on, then a heartbeat every few hours), some
send 1 Hz bursts and irregular samples, some go silent for days. Every later rule that reads time
between samples (trips, stops, visits, dwell, charging, coverage) must know which silence is
normal for the device. `device_profiles` measures it once, in the clean stage, into
silver.device_profiles (one row per vehicle, also for registered vehicles without telemetry);
`common.silver.trips.add_legs` turns the profile's heartbeat into the vehicle's parked-silence limit.

Modes (thresholds in the `devices` config section; docs/DEVICES.md):
- `mostly_silent`: no sample on at least `silent_day_share` of the days between the vehicle's
  first and last sample;
- `ignition_only`: at least `ignition_parked_share` of the parked time lies in silences longer
  than `ignition_min_interval_s` (the device sleeps while parked);
- `bursty`: at least `burst_share` of the moving intervals are 1 Hz bursts
  (<= `burst_interval_s`), or the moving intervals vary a lot (coefficient of variation >=
  `irregular_cv`);
- `continuous`: otherwise (a regular heartbeat while parked);
- `no_data`: a registered vehicle (bronze.vehicles) without usable telemetry.

Intervals are between consecutive usable samples of silver.telematics_clean. A *parked* interval
has both samples at or below `kpis.trips.moving_speed_kmh`, at most `kpis.trips.stop_radius_m`
apart, and is shorter than a day; a *moving* interval is no
longer than `kpis.trips.max_gap_minutes` with both samples moving (the device's rate while driving).
"""

from __future__ import annotations

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from common.core.config import DevicesConfig, TripsConfig
from common.spatial.geo import haversine_m

_DAY_S = 86400.0
_KMH_PER_MPS = 3.6

PROFILE_COLUMNS = (
    "vehicle_id",
    "device_mode",
    "mode_reason",
    "heartbeat_interval_s",
    "median_interval_moving_s",
    "median_interval_parked_s",
    "burst_share",
    "moving_interval_cv",
    "parked_silence_share",
    "longest_silence_h",
    "n_samples",
    "days_with_data",
    "span_days",
    "silent_day_share",
    "first_ts",
    "last_ts",
)


def sample_intervals(clean_df: DataFrame, trips: TripsConfig) -> DataFrame:
    """Usable samples with their incoming interval: `dt_s`, `leg_m`, `moving_interval`, `parked_interval`.

    Parameters
    ----------
    clean_df : DataFrame
        silver.telematics_clean (is_usable, vehicle_id, ts, local_date, lat, lon, speed_kmh).
    trips : TripsConfig
        moving_speed_kmh (km/h), max_gap_minutes (min) and stop_radius_m (m).

    Returns
    -------
    DataFrame
        One row per usable sample: vehicle_id, ts, local_date, lat, lon, speed_kmh, `dt_s` (s since
        the previous usable sample), `leg_m` (m from it; both null on a vehicle's first sample) and
        the booleans `moving_interval` and `parked_interval` (see the module docstring).
    """
    pts = clean_df.where(F.col("is_usable")).select("vehicle_id", "ts", "local_date", "lat", "lon", "speed_kmh")
    w = Window.partitionBy("vehicle_id").orderBy("ts")
    prev = F.lag(F.struct(F.col("ts").alias("ts"), F.col("lat").alias("lat"), F.col("lon").alias("lon"), F.col("speed_kmh").alias("v"))).over(w)
    df = pts.withColumn("_p", prev)
    dt = F.col("ts").cast("double") - F.col("_p.ts").cast("double")
    leg_m = haversine_m(F.col("_p.lat"), F.col("_p.lon"), F.col("lat"), F.col("lon"))
    df = df.withColumn("dt_s", dt).withColumn("leg_m", leg_m)
    implied = F.when(F.col("dt_s") > 0, F.col("leg_m") / F.col("dt_s") * _KMH_PER_MPS)
    speed = F.coalesce(F.when(~F.isnan("speed_kmh"), F.col("speed_kmh")), implied)
    prev_speed = F.coalesce(F.when(~F.isnan(F.col("_p.v")), F.col("_p.v")), implied)
    moving_end = (speed > trips.moving_speed_kmh) | (prev_speed > trips.moving_speed_kmh)
    both_moving = (speed > trips.moving_speed_kmh) & (prev_speed > trips.moving_speed_kmh)
    has_prev = F.col("_p.ts").isNotNull()
    return (
        # sampling while driving: both ends moving (a departure or arrival step mixes in the parked rate)
        df.withColumn("moving_interval", has_prev & both_moving & (F.col("dt_s") <= trips.max_gap_minutes * 60.0))
        .withColumn(
            "parked_interval",
            has_prev & ~F.coalesce(moving_end, F.lit(False)) & (F.col("leg_m") <= trips.stop_radius_m) & (F.col("dt_s") < _DAY_S),
        )
        .drop("_p")
    )


def device_profiles(clean_df: DataFrame, vehicles: DataFrame | None, trips: TripsConfig, params: DevicesConfig) -> DataFrame:
    """One row per vehicle (silver.device_profiles); columns PROFILE_COLUMNS.

    heartbeat_interval_s: 90th percentile of the parked intervals (s): about the heartbeat of a
    device that sends one, the key-off -> key-on silence of one that does not. The parked-silence
    limit of common.silver.trips.add_legs is derived from it. burst_share and parked_silence_share are
    shares (0-1); silent_day_share: local days without a sample between the first and the last.
    Vehicles of `vehicles` (bronze.vehicles) without usable telemetry get device_mode `no_data`.

    Parameters
    ----------
    clean_df : DataFrame
        silver.telematics_clean rows (see `sample_intervals`).
    vehicles : DataFrame or None
        bronze.vehicles (vehicle_id); None: only vehicles with usable telemetry.
    trips : TripsConfig
        Moving and parked thresholds (see `sample_intervals`).
    params : DevicesConfig
        The `devices` section: mode thresholds.

    Returns
    -------
    DataFrame
        silver.device_profiles, one row per vehicle: device_mode, mode_reason, the intervals
        heartbeat_interval_s, median_interval_moving_s, median_interval_parked_s (s), the shares
        (0-1), longest_silence_h (h), n_samples, days_with_data, span_days (local days),
        first_ts and last_ts (UTC); null statistics for a `no_data` vehicle.
    """
    p = params
    iv = sample_intervals(clean_df, trips)
    moving_dt = F.when(F.col("moving_interval"), F.col("dt_s"))
    parked_dt = F.when(F.col("parked_interval"), F.col("dt_s"))
    long_parked = F.when(F.col("parked_interval") & (F.col("dt_s") > p.ignition_min_interval_s), F.col("dt_s"))
    per = iv.groupBy("vehicle_id").agg(
        F.count(F.lit(1)).alias("n_samples"),
        F.countDistinct("local_date").alias("days_with_data"),
        F.min("local_date").alias("_first_day"),
        F.max("local_date").alias("_last_day"),
        F.min("ts").alias("first_ts"),
        F.max("ts").alias("last_ts"),
        F.percentile_approx(parked_dt, 0.9, 10000).cast("double").alias("heartbeat_interval_s"),
        F.percentile_approx(moving_dt, 0.5, 10000).cast("double").alias("median_interval_moving_s"),
        F.percentile_approx(parked_dt, 0.5, 10000).cast("double").alias("median_interval_parked_s"),
        F.avg(F.when(F.col("moving_interval"), (F.col("dt_s") <= p.burst_interval_s).cast("double"))).alias("burst_share"),
        (F.stddev_pop(moving_dt) / F.avg(moving_dt)).alias("moving_interval_cv"),
        (F.coalesce(F.sum(long_parked), F.lit(0.0)) / F.sum(parked_dt)).alias("parked_silence_share"),
        (F.max("dt_s") / 3600.0).alias("longest_silence_h"),
    )
    per = per.withColumn("span_days", F.datediff("_last_day", "_first_day") + 1).withColumn("silent_day_share", 1.0 - F.col("days_with_data") / F.col("span_days"))
    silent = F.col("silent_day_share") >= p.silent_day_share
    ignition = F.coalesce(F.col("parked_silence_share"), F.lit(0.0)) >= p.ignition_parked_share
    bursty = (F.coalesce(F.col("burst_share"), F.lit(0.0)) >= p.burst_share) | (F.coalesce(F.col("moving_interval_cv"), F.lit(0.0)) >= p.irregular_cv)
    pct = lambda c: F.format_number(F.col(c) * 100.0, 0)  # noqa: E731 - percent text of a share
    mode = F.when(silent, F.lit("mostly_silent")).when(ignition, F.lit("ignition_only")).when(bursty, F.lit("bursty")).otherwise(F.lit("continuous"))
    reason = (
        F.when(silent, F.concat(F.lit("no sample on "), pct("silent_day_share"), F.lit(f" % of days (>= {p.silent_day_share:.0%})")))
        .when(
            ignition,
            F.concat(
                pct("parked_silence_share"), F.lit(f" % of parked time in silences > {p.ignition_min_interval_s / 60:g} min; heartbeat ~"),
                F.format_number(F.col("heartbeat_interval_s") / 60.0, 0), F.lit(" min"),
            ),
        )
        .when(
            bursty,
            F.concat(
                pct("burst_share"), F.lit(" % of moving intervals at 1 Hz; interval CV "),
                F.format_number(F.coalesce(F.col("moving_interval_cv"), F.lit(0.0)), 2),
            ),
        )
        .otherwise(F.concat(F.lit("parked heartbeat ~"), F.format_number(F.col("heartbeat_interval_s") / 60.0, 1), F.lit(" min")))
    )  # fmt: skip
    per = per.withColumn("device_mode", mode).withColumn("mode_reason", reason)
    if vehicles is not None:
        registered = vehicles.select("vehicle_id").where(F.col("vehicle_id").isNotNull()).distinct()
        per = (
            registered.join(per, "vehicle_id", "full")
            .withColumn("device_mode", F.coalesce(F.col("device_mode"), F.lit("no_data")))
            .withColumn("mode_reason", F.coalesce(F.col("mode_reason"), F.lit("registered in bronze.vehicles, no usable telemetry")))
        )
    return per.select(*PROFILE_COLUMNS)


def heartbeats(profiles: DataFrame | None) -> DataFrame | None:
    """vehicle_id, heartbeat_interval_s: what common.silver.trips.add_legs needs of silver.device_profiles.

    Parameters
    ----------
    profiles : DataFrame or None
        silver.device_profiles; None when it does not exist.

    Returns
    -------
    DataFrame or None
        vehicle_id, heartbeat_interval_s (s), one row per vehicle that has a heartbeat; None when
        `profiles` is None.
    """
    if profiles is None:
        return None
    return profiles.where(F.col("heartbeat_interval_s").isNotNull()).select("vehicle_id", "heartbeat_interval_s")


def device_mode_summary(profiles: DataFrame) -> str:
    """The clean stage's note on reporting modes, e.g. 'device modes: bursty 2, continuous 20'.

    Parameters
    ----------
    profiles : DataFrame
        silver.device_profiles (one row per vehicle).

    Returns
    -------
    str
        Vehicles per `device_mode`, modes in alphabetical order.
    """
    modes = profiles.groupBy("device_mode").count().collect()  # bounded: one row per mode
    return "device modes: " + ", ".join(f"{r['device_mode']} {r['count']}" for r in sorted(modes, key=lambda r: r["device_mode"]))

"""Charging events, per-vehicle charging locations and fleet charging sites (pure transforms).

Reads silver.telematics_clean rows (usable rows, repaired lat/lon/soc_pct/speed_kmh, ts_local,
local_date, timezone), bronze.vehicles (battery_kwh), bronze.stations and the residences;
`jobs/charging.py` writes silver.charging_events, gold.charging_locations and gold.charging_sites.

- **event** (`detect_charging_events`): a run of SOC increase while the vehicle stands still.
  Steps between consecutive usable samples of a vehicle are *stationary* when both samples are at
  or below `stationary_speed_kmh`, the position moved at most `stationary_radius_m` and the step
  is not a data gap (common.silver.trips.add_legs: a parked silence counts, so a SOC rise across a device's
  sleep is a charge). A stationary run ends at a move, a gap or a
  SOC drop beyond `soc_drop_tolerance_pct` (integer SOC jitter). The rising steps of one run form
  one event unless SOC stays flat for more than `max_pause_min` between two rises. Two passes as
  in the original analysis: events gaining more than `min_delta_soc_pct` are high confidence;
  vehicles with none of them get their events above `fallback_min_delta_soc_pct` (low confidence).
  kWh added = delta SOC / 100 x battery_kwh (battery energy, not energy drawn from the grid).
- **location** (`label_event_locations`, `charging_locations`): per-vehicle DBSCAN (haversine,
  ball tree) over event positions in a grouped pandas UDF.
- **site** (`charging_sites`): vehicles' locations grouped fleet-wide with the exact distributed
  DBSCAN of common.spatial.dbscan (min_samples 1 = connected components at `site_eps_m`), then classified:
  `home` (within `home_radius_m` of the residence of a vehicle charging there), a station of
  bronze.stations within `station_radius_m` (Sedona ST_DistanceSphere join: `public`, or `depot`
  for private-access stations), else `unknown`.
"""

from __future__ import annotations

import pandas as pd
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T
from pyspark.sql.window import WindowSpec

from common.core.config import ChargingConfig, TripsConfig
from common.core.limits import cap_rows_per_group
from common.io.spark import with_sedona
from common.spatial.dbscan import distributed_dbscan, haversine_dbscan
from common.spatial.geo import haversine_m

_ID_TS = "yyyyMMdd'T'HHmmss"

EVENT_COLUMNS = (
    "vehicle_id",
    "event_id",
    "confidence",
    "start_ts",
    "end_ts",
    "start_ts_local",
    "end_ts_local",
    "local_date",
    "timezone",
    "duration_min",
    "soc_start_pct",
    "soc_end_pct",
    "delta_soc_pct",
    "battery_kwh",
    "kwh",
    "avg_power_kw",
    "lat",
    "lon",
    "n_samples",
)


def _events_window() -> WindowSpec:
    return Window.partitionBy("vehicle_id").orderBy("ts")


def _running() -> WindowSpec:
    return _events_window().rowsBetween(Window.unboundedPreceding, Window.currentRow)


def charging_steps(clean_df: DataFrame, params: ChargingConfig, trips: TripsConfig | None = None, heartbeats: DataFrame | None = None) -> DataFrame:
    """Usable samples with SOC and their incoming step: `stationary_step`, `d_soc`, `run` (stationary run id).

    Steps come from common.silver.trips.add_legs, so silences follow the shared rule: a parked silence
    (same place, SOC not falling, within the device's limit) is a stationary step -- an
    ignition-only device that sleeps on the charger shows its charge as one rising step -- and a
    gap ends the run. Speeds are the repaired reported speeds, else the implied speed of the step.
    Times are UTC; distances in metres; SOC in percent points.

    Parameters
    ----------
    clean_df : DataFrame
        silver.telematics_clean rows (is_usable, ts, ts_local, local_date, timezone, lat, lon,
        speed_kmh, soc_pct).
    params : ChargingConfig
    trips : TripsConfig, optional
        Silence rule of the legs; None = the defaults.
    heartbeats : DataFrame, optional
        vehicle_id, heartbeat_interval_s (s) from silver.device_profiles (`common.silver.devices.heartbeats`);
        None: every vehicle gets the minimum parked-silence limit.

    Returns
    -------
    DataFrame
        One row per usable sample with a position and SOC: the `add_legs` columns, `_p` (the
        previous sample's ts, ts_local, local_date, soc), step_s (s), step_m (m),
        stationary_step, d_soc (percent points since the previous sample) and run.
    """
    from common.silver.trips import add_legs

    p = params
    pts = clean_df.where(F.col("is_usable") & F.col("lat").isNotNull() & F.col("lon").isNotNull() & F.col("soc_pct").isNotNull()).select(
        "vehicle_id", "ts", "ts_local", "local_date", "timezone", "lat", "lon", "speed_kmh", "soc_pct"
    )
    w = _events_window()
    prev = F.lag(F.struct(F.col("ts_local").alias("ts_local"), F.col("local_date").alias("local_date"))).over(w)
    df = (
        pts.transform(add_legs, trips or TripsConfig(), heartbeats)
        .withColumn("_p", F.struct(F.col("prev_ts").alias("ts"), prev["ts_local"].alias("ts_local"), prev["local_date"].alias("local_date"), F.col("prev_soc_pct").alias("soc")))
        .withColumn("step_s", F.col("leg_s"))
        .withColumn("step_m", F.col("leg_m"))
    )
    stationary = (
        (F.col("speed_est_kmh") <= p.stationary_speed_kmh)
        & (F.col("prev_speed_kmh") <= p.stationary_speed_kmh)
        & (F.col("step_m") <= p.stationary_radius_m)
        & F.col("leg_kind").isin("stationary", "parked")
    )
    df = df.withColumn("stationary_step", F.coalesce(stationary, F.lit(False))).withColumn("d_soc", F.col("soc_pct") - F.col("prev_soc_pct"))
    breaks = ~F.col("stationary_step") | F.coalesce(F.col("d_soc") < -p.soc_drop_tolerance_pct, F.lit(False))
    return df.withColumn("run", F.sum(breaks.cast("long")).over(_running()))


def _rising_events(steps: DataFrame, params: ChargingConfig) -> DataFrame:
    """One row per candidate event (any positive SOC gain) from `charging_steps` output."""
    rises = steps.where(F.col("stationary_step") & (F.col("d_soc") > 0))
    w = _events_window()
    prev_rise = F.lag(F.struct(F.col("run").alias("run"), F.col("ts").alias("ts"))).over(w)
    pause_s = F.col("_p.ts").cast("double") - prev_rise["ts"].cast("double")
    new_event = prev_rise.isNull() | (prev_rise["run"] != F.col("run")) | (pause_s > params.max_pause_min * 60.0)
    rises = rises.withColumn("_new", new_event).withColumn("_event", F.sum(F.col("_new").cast("long")).over(_running()))
    first = lambda c: F.min(F.struct(F.col("ts"), c.alias("v")))["v"]  # noqa: E731 - value at the first rise
    last = lambda c: F.max(F.struct(F.col("ts"), c.alias("v")))["v"]  # noqa: E731
    return rises.groupBy("vehicle_id", "_event").agg(
        first(F.col("_p.ts")).alias("start_ts"),
        first(F.col("_p.ts_local")).alias("start_ts_local"),
        first(F.col("_p.local_date")).alias("local_date"),
        first(F.col("_p.soc")).alias("soc_start_pct"),
        last(F.col("ts")).alias("end_ts"),
        last(F.col("ts_local")).alias("end_ts_local"),
        last(F.col("soc_pct")).alias("soc_end_pct"),
        F.first("timezone").alias("timezone"),
        # The median resists a single drifted fix; parked GPS jitter is ~10 m either way.
        F.percentile_approx("lat", 0.5, 10000).alias("lat"),
        F.percentile_approx("lon", 0.5, 10000).alias("lon"),
        (F.count(F.lit(1)) + 1).alias("n_samples"),
    )


def detect_charging_events(
    clean_df: DataFrame,
    vehicles_df: DataFrame | None,
    params: ChargingConfig | None = None,
    trips: TripsConfig | None = None,
    heartbeats: DataFrame | None = None,
) -> DataFrame:
    """Charging events from silver.telematics_clean rows (stable signature: fleet KPIs use it).

    Parameters
    ----------
    clean_df : DataFrame
        silver.telematics_clean rows (see `charging_steps`).
    vehicles_df : DataFrame or None
        bronze.vehicles (vehicle_id, battery_kwh in kWh); None: battery only from
        `params.default_battery_kwh`.
    params : ChargingConfig, optional
        None = the config defaults.
    trips : TripsConfig, optional
        Silence rule of the legs; None = the defaults.
    heartbeats : DataFrame, optional
        vehicle_id, heartbeat_interval_s (s) from silver.device_profiles: each vehicle's
        parked-silence limit (common.silver.trips.add_legs).

    Returns
    -------
    DataFrame
        One row per event (columns EVENT_COLUMNS): vehicle_id, event_id (`<vehicle>-C<start UTC
        yyyyMMddTHHmmss>`), confidence (`high`: gain > min_delta_soc_pct; `low`: second pass for
        vehicles without a high one), start_ts/end_ts (UTC: the sample before the first rise, the
        sample of the last rise), start/end_ts_local (local time), local_date (local day of the
        start), timezone, duration_min (min), soc_start_pct/soc_end_pct/delta_soc_pct (percent
        points), battery_kwh (kWh), kwh (delta SOC x battery, kWh; null without a battery size),
        avg_power_kw (kW; null for a zero duration), lat/lon (median position, degrees), n_samples.
    """
    p = params or ChargingConfig()
    candidates = _rising_events(charging_steps(clean_df, p, trips, heartbeats), p).withColumn("delta_soc_pct", F.col("soc_end_pct") - F.col("soc_start_pct"))
    # Both passes in one: a vehicle's events above the fallback threshold are kept only when the
    # vehicle has no high-confidence event (one window instead of a self anti-join).
    is_high = F.col("delta_soc_pct") > p.min_delta_soc_pct
    vehicle_has_high = F.max(is_high.cast("int")).over(Window.partitionBy("vehicle_id")) > 0
    events = (
        candidates.withColumn("_vehicle_has_high", vehicle_has_high)
        .where(is_high | (~F.col("_vehicle_has_high") & (F.col("delta_soc_pct") > p.fallback_min_delta_soc_pct)))
        .withColumn("confidence", F.when(is_high, F.lit("high")).otherwise(F.lit("low")))
    )

    battery = F.col("battery_kwh")
    if vehicles_df is not None:
        fleet = vehicles_df.select("vehicle_id", F.col("battery_kwh").cast("double").alias("battery_kwh")).dropDuplicates(["vehicle_id"])
        events = events.join(F.broadcast(fleet), "vehicle_id", "left")
    else:
        events = events.withColumn("battery_kwh", F.lit(None).cast("double"))
    if p.default_battery_kwh is not None:
        battery = F.coalesce(battery, F.lit(float(p.default_battery_kwh)))
    duration_h = (F.col("end_ts").cast("double") - F.col("start_ts").cast("double")) / 3600.0
    events = (
        events.withColumn("battery_kwh", battery)
        .withColumn("kwh", F.col("delta_soc_pct") / 100.0 * F.col("battery_kwh"))
        .withColumn("duration_min", duration_h * 60.0)
        .withColumn("avg_power_kw", F.when(duration_h > 0, F.col("kwh") / duration_h))
        .withColumn("event_id", F.concat(F.col("vehicle_id"), F.lit("-C"), F.date_format("start_ts", _ID_TS)))
    )
    return events.select(*EVENT_COLUMNS)


# --------------------------------------------------------------------------------------------
# Per-vehicle charging locations
# --------------------------------------------------------------------------------------------
LOCATION_SCHEMA = T.StructType(
    [
        T.StructField("vehicle_id", T.StringType()),
        T.StructField("event_id", T.StringType()),
        T.StructField("location_no", T.IntegerType()),
    ]
)


def _locations_udf(eps_m: float, min_samples: int):
    def fn(pdf: pd.DataFrame) -> pd.DataFrame:
        """applyInPandas body: DBSCAN over one vehicle's events.

        Parameters
        ----------
        pdf : pandas.DataFrame
            One vehicle's events: vehicle_id, event_id, lat, lon (degrees).

        Returns
        -------
        pandas.DataFrame
            LOCATION_SCHEMA rows, one per event in event_id order: location_no (-1 = noise).
        """
        pdf = pdf.sort_values("event_id", kind="stable")  # labels must not depend on row arrival order
        labels = haversine_dbscan(pdf["lat"].to_numpy(), pdf["lon"].to_numpy(), eps_m, min_samples)
        return pd.DataFrame({"vehicle_id": pdf["vehicle_id"], "event_id": pdf["event_id"], "location_no": labels.astype("int32")})

    return fn


def label_event_locations(events: DataFrame, params: ChargingConfig) -> DataFrame:
    """events + `location_id` (`<vehicle>-L<n>`; null for DBSCAN noise, only with location_min_events > 1).

    Per vehicle, scikit-learn DBSCAN (haversine, ball tree, location_eps_m) over the events'
    positions in a grouped pandas UDF (groupBy(vehicle_id).applyInPandas): a vehicle's events are
    few (one or two a day), so one task per vehicle group is cheap.

    Parameters
    ----------
    events : DataFrame
        `detect_charging_events` output (vehicle_id, event_id, lat, lon in degrees).
    params : ChargingConfig

    Returns
    -------
    DataFrame
        One row per event: `events` plus location_id (also null for events beyond
        max_events_per_vehicle, which are left out of the clustering).
    """
    # A Python worker loads a whole group: at most max_events_per_vehicle events per vehicle (seeded
    # sample); events left out keep a null location_id, like DBSCAN noise.
    labelled = (
        events.select("vehicle_id", "event_id", "lat", "lon")
        .transform(cap_rows_per_group, ["vehicle_id"], params.max_events_per_vehicle)
        .groupBy("vehicle_id")
        .applyInPandas(_locations_udf(params.location_eps_m, params.location_min_events), LOCATION_SCHEMA)
        .select(
            "vehicle_id",
            "event_id",
            F.when(F.col("location_no") >= 0, F.concat(F.col("vehicle_id"), F.lit("-L"), F.col("location_no").cast("string"))).alias("location_id"),
        )
    )
    return events.join(labelled, ["vehicle_id", "event_id"], "left")


def charging_locations(labelled_events: DataFrame) -> DataFrame:
    """Charging locations per vehicle from labelled events.

    Parameters
    ----------
    labelled_events : DataFrame
        `label_event_locations` output; events without a location_id are ignored.

    Returns
    -------
    DataFrame
        One row per (vehicle, location): vehicle_id, location_id, lat/lon (degrees: mean of the
        events' positions weighted by kWh, each event at least 1), n_events, n_high_confidence,
        kwh_total (kWh), first_start_ts, last_end_ts (UTC), local_dates (sorted distinct local
        days with a charge at the location).
    """
    weight = F.greatest(F.coalesce(F.col("kwh"), F.lit(0.0)), F.lit(1.0))
    return (
        labelled_events.where(F.col("location_id").isNotNull())
        .groupBy("vehicle_id", "location_id")
        .agg(
            (F.sum(F.col("lat") * weight) / F.sum(weight)).alias("lat"),
            (F.sum(F.col("lon") * weight) / F.sum(weight)).alias("lon"),
            F.count(F.lit(1)).alias("n_events"),
            F.sum((F.col("confidence") == "high").cast("int")).alias("n_high_confidence"),
            F.sum("kwh").alias("kwh_total"),
            F.min("start_ts").alias("first_start_ts"),
            F.max("end_ts").alias("last_end_ts"),
            F.array_sort(F.collect_set("local_date")).alias("local_dates"),
        )
    )


# --------------------------------------------------------------------------------------------
# Fleet charging sites
# --------------------------------------------------------------------------------------------
def group_sites(locations: DataFrame, params: ChargingConfig) -> DataFrame:
    """locations + `site_no` (1..k): fleet-wide exact DBSCAN with min_samples 1.

    Locations chained within site_eps_m of each other are one site. Point ids come from a row
    number over location_id, so reruns number sites the same way.

    Parameters
    ----------
    locations : DataFrame
        `charging_locations` output (location_id, lat, lon in degrees).
    params : ChargingConfig
        site_eps_m (m) and partition_cell_m (m).

    Returns
    -------
    DataFrame
        One row per location: `locations` plus site_no (int, 1..k in order of each site's
        first location_id).
    """
    pts = locations.select("location_id", "lat", "lon").withColumn("point_id", F.row_number().over(Window.orderBy("location_id")).cast("long"))
    labels = distributed_dbscan(pts.select("point_id", "lat", "lon"), eps_m=params.site_eps_m, min_samples=1, cell_m=params.partition_cell_m)
    site_no = F.dense_rank().over(Window.orderBy("cluster_id"))
    mapping = pts.join(labels, "point_id").select("location_id", site_no.alias("site_no"))
    return locations.join(mapping, "location_id")


def charging_sites(
    locations: DataFrame,
    residences: DataFrame | None,
    stations: DataFrame | None,
    params: ChargingConfig,
) -> tuple[DataFrame, DataFrame]:
    """Fleet sites and the locations annotated with their site.

    Home wins over a station match: a driver charging at home next to a public charger is
    charging at home.

    Parameters
    ----------
    locations : DataFrame
        `charging_locations` output.
    residences : DataFrame or None
        restricted.residences: vehicle_id, home_lat, home_lon (degrees; rows without a home are
        ignored); None: no `home` sites.
    stations : DataFrame or None
        bronze.stations: station_id, lat, lon (degrees), name, access; None: no station matching.
    params : ChargingConfig

    Returns
    -------
    sites : DataFrame
        One row per site: site_id (`SITE-<n>`), kind (home | public | depot | unknown),
        station_id, station_name, station_distance_m (m), home_vehicle_id (home sites), lat/lon
        (degrees, event-weighted centroid of the member locations), n_vehicles, n_locations,
        n_events, kwh_total (kWh), first_start_ts, last_end_ts (UTC).
    locations_with_site : DataFrame
        One row per location: `locations` plus site_id.
    """
    with_site = group_sites(locations, params)
    w = F.col("n_events").cast("double")
    sites = with_site.groupBy("site_no").agg(
        (F.sum(F.col("lat") * w) / F.sum(w)).alias("lat"),
        (F.sum(F.col("lon") * w) / F.sum(w)).alias("lon"),
        F.countDistinct("vehicle_id").alias("n_vehicles"),
        F.count(F.lit(1)).alias("n_locations"),
        F.sum("n_events").alias("n_events"),
        F.sum("kwh_total").alias("kwh_total"),
        F.min("first_start_ts").alias("first_start_ts"),
        F.max("last_end_ts").alias("last_end_ts"),
    )

    # home: a member location lies within home_radius_m of its own vehicle's residence
    if residences is not None:
        homes = residences.where(F.col("home_lat").isNotNull()).select("vehicle_id", "home_lat", "home_lon")
        near_home = (
            with_site.join(homes, "vehicle_id")
            .withColumn("_d", haversine_m("lat", "lon", "home_lat", "home_lon"))
            .where(F.col("_d") <= params.home_radius_m)
            .groupBy("site_no")
            .agg(F.min(F.struct("_d", "vehicle_id"))["vehicle_id"].alias("home_vehicle_id"))
        )
        sites = sites.join(near_home, "site_no", "left")
    else:
        sites = sites.withColumn("home_vehicle_id", F.lit(None).cast("string"))

    if stations is not None:
        matched = nearest_station(sites.select("site_no", "lat", "lon"), stations, params.station_radius_m)
        sites = sites.join(matched, "site_no", "left")
    else:
        sites = (
            sites.withColumn("station_id", F.lit(None).cast("string"))
            .withColumn("station_name", F.lit(None).cast("string"))
            .withColumn("station_access", F.lit(None).cast("string"))
            .withColumn("station_distance_m", F.lit(None).cast("double"))
        )
    kind = (
        F.when(F.col("home_vehicle_id").isNotNull(), F.lit("home"))
        .when(F.col("station_id").isNotNull() & (F.lower(F.col("station_access")) == "private"), F.lit("depot"))
        .when(F.col("station_id").isNotNull(), F.lit("public"))
        .otherwise(F.lit("unknown"))
    )
    sites = sites.withColumn("kind", kind).withColumn("site_id", F.concat(F.lit("SITE-"), F.col("site_no").cast("string")))
    sites = sites.select(
        "site_id", "kind", "station_id", "station_name", "station_distance_m", "home_vehicle_id", "lat", "lon",
        "n_vehicles", "n_locations", "n_events", "kwh_total", "first_start_ts", "last_end_ts",
    )  # fmt: skip
    locs = with_site.withColumn("site_id", F.concat(F.lit("SITE-"), F.col("site_no").cast("string"))).drop("site_no")
    return sites, locs


def nearest_station(points: DataFrame, stations: DataFrame, radius_m: float) -> DataFrame:
    """Nearest station within radius_m of each point (Sedona ST_DistanceSphere range join).

    `ST_DistanceSphere(a, b) <= r` is a predicate Sedona's optimizer plans as a distance join
    (spatially partitioned / broadcast index) instead of a cross product; sphere radius
    6 371 008 m, the same as common.spatial.geo.

    Parameters
    ----------
    points : DataFrame
        site_no, lat, lon (degrees).
    stations : DataFrame
        bronze.stations: station_id, lat, lon (degrees), name, access.
    radius_m : float
        Search radius, m.

    Returns
    -------
    DataFrame
        One row per point with a station in range: site_no, station_id, station_name,
        station_access, station_distance_m (m); ties go to the smallest station_id.
    """
    with_sedona(points.sparkSession)
    pts = points.select("site_no", F.expr("ST_Point(lon, lat)").alias("_geom_p"))
    st = stations.where(F.col("lat").isNotNull() & F.col("lon").isNotNull()).select(
        "station_id",
        F.col("name").alias("station_name"),
        F.col("access").alias("station_access"),
        F.expr("ST_Point(lon, lat)").alias("_geom_s"),
    )
    distance = F.expr("ST_DistanceSphere(_geom_p, _geom_s)")
    pairs = pts.join(st, distance <= F.lit(float(radius_m))).select("site_no", "station_id", "station_name", "station_access", distance.alias("station_distance_m"))
    best = Window.partitionBy("site_no").orderBy("station_distance_m", "station_id")
    return pairs.withColumn("_r", F.row_number().over(best)).where("_r = 1").drop("_r")

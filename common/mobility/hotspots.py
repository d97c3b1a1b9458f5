"""Fleet hotspots: unique daily visits clustered with the exact distributed DBSCAN (pure transforms).

Reads silver.telematics_clean rows through common.silver.trips.detect_stops (the fleet-KPI stop
definition, with `hotspots.min_dwell_min` as the minimum dwell); `jobs/hotspots.py` writes
restricted.unique_daily_visits (it holds every vehicle's stops, homes included) and gold.hotspots.

1. `unique_daily_visits`: stops reduced to one row per (vehicle, local day, place): stops of one
   vehicle on one local day within `visit_merge_m` of a visit's first stop are that visit
   (grouped pandas UDF per vehicle: a handful of stops per day). A vehicle parked all day at a
   depot, or shuttling in and out of it, counts once per day -- the place's popularity is the
   number of vehicle-days, not hours or heartbeats -- and a stay over midnight counts on both days.
2. `find_hotspots`: exact DBSCAN (common.spatial.dbscan.distributed_dbscan: grid cells with a 2 x eps
   halo, per-cell scikit-learn in applyInPandas, union-find merge) over the visit positions;
   a cluster is a hotspot when at least `min_unique_visits` of its visits, from at least
   `min_distinct_vehicles` vehicles, lie within `radius_m` of its centroid. Per hotspot:
   centroid, convex hull (Sedona ST_ConvexHull / ST_AsText), unique visits, distinct vehicles,
   busiest local arrival hours.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from common.core.config import HotspotsConfig, TripsConfig
from common.core.frames import materialise
from common.io.spark import with_sedona
from common.spatial.dbscan import distributed_dbscan
from common.spatial.geo import haversine_m, haversine_np

VISIT_SCHEMA = T.StructType(
    [
        T.StructField("vehicle_id", T.StringType()),
        T.StructField("local_date", T.DateType()),
        T.StructField("visit_no", T.IntegerType()),
        T.StructField("lat", T.DoubleType()),
        T.StructField("lon", T.DoubleType()),
        T.StructField("n_stops", T.IntegerType()),
        T.StructField("dwell_minutes", T.DoubleType()),
        T.StructField("first_arrival_local", T.TimestampType()),
        T.StructField("arrival_hour", T.IntegerType()),
    ]
)


def stops_for_visits(clean_df: DataFrame, trips: TripsConfig, params: HotspotsConfig, heartbeats: DataFrame | None = None) -> DataFrame:
    """common.silver.trips.detect_stops with the hotspot dwell threshold (minutes) and the shared silence rule.

    Parameters
    ----------
    clean_df : DataFrame
        silver.telematics_clean rows.
    trips : TripsConfig
        Stop and silence rules; min_stop_minutes is replaced by params.min_dwell_min.
    params : HotspotsConfig
    heartbeats : DataFrame, optional
        vehicle_id, heartbeat_interval_s (s) from silver.device_profiles (`common.silver.devices.heartbeats`);
        None: every vehicle gets the minimum parked-silence limit.

    Returns
    -------
    DataFrame
        One row per stop of at least min_dwell_min minutes, columns as in `detect_stops`.
    """
    from common.silver.trips import detect_stops

    return detect_stops(clean_df, trips.model_copy(update={"min_stop_minutes": params.min_dwell_min}), heartbeats)


def _merge_day(day: pd.DataFrame, merge_m: float) -> list[int]:
    """Leader clustering of one vehicle-day's stops (time order): visit number per stop."""
    lead_lat: list[float] = []
    lead_lon: list[float] = []
    out = []
    for la, lo in zip(day["lat"].to_numpy(), day["lon"].to_numpy()):
        if lead_lat:
            d = haversine_np(la, lo, np.array(lead_lat), np.array(lead_lon))
            k = int(np.argmin(d))
            if d[k] <= merge_m:
                out.append(k)
                continue
        lead_lat.append(la)
        lead_lon.append(lo)
        out.append(len(lead_lat) - 1)
    return out


def _visits_udf(merge_m: float):
    cols = [f.name for f in VISIT_SCHEMA.fields]

    def fn(pdf: pd.DataFrame) -> pd.DataFrame:
        """applyInPandas body: one vehicle's stop-days merged into visits.

        Parameters
        ----------
        pdf : pandas.DataFrame
            One vehicle's `stop_days` rows: vehicle_id, local_date, start_ts, start_ts_local,
            lat, lon, dwell_minutes, continued.

        Returns
        -------
        pandas.DataFrame
            VISIT_SCHEMA rows, one per (local_date, visit_no).
        """
        pdf = pdf.sort_values(["local_date", "start_ts"], kind="stable")
        pdf["visit_no"] = np.concatenate([_merge_day(day, merge_m) for _, day in pdf.groupby("local_date", sort=True)])
        pdf["w"] = pdf["dwell_minutes"].clip(lower=1.0)
        pdf["wlat"] = pdf["lat"] * pdf["w"]
        pdf["wlon"] = pdf["lon"] * pdf["w"]
        # a day that only continues the night's stay has no arrival on it
        pdf["arrival_local"] = pdf["start_ts_local"].where(~pdf["continued"])
        g = pdf.groupby(["local_date", "visit_no"], sort=True)
        out = g.agg(
            vehicle_id=("vehicle_id", "first"),
            wlat=("wlat", "sum"),
            wlon=("wlon", "sum"),
            w=("w", "sum"),
            n_stops=("lat", "size"),
            dwell_minutes=("dwell_minutes", "sum"),
            first_arrival_local=("arrival_local", "min"),
        ).reset_index()
        out["lat"] = out["wlat"] / out["w"]
        out["lon"] = out["wlon"] / out["w"]
        out["arrival_hour"] = pd.to_datetime(out["first_arrival_local"]).dt.hour.astype("Int32")
        out["visit_no"] = out["visit_no"].astype("int32")
        out["n_stops"] = out["n_stops"].astype("int32")
        return out[cols]

    return fn


def stop_days(stops: DataFrame) -> DataFrame:
    """A stop on every local day it covers: a vehicle charging from 23:30 to 01:30 was at the place on both days.

    Each part keeps the stop's position; its dwell is the part within that day; `continued` marks
    the days after the arrival day.

    Parameters
    ----------
    stops : DataFrame
        Stops with start_ts_local and end_ts_local (local time).

    Returns
    -------
    DataFrame
        One row per (stop, local day it covers): the stop's columns with local_date set to that
        day, start_ts_local moved to the day's start on later days, dwell_minutes (min, within
        the day) and continued.
    """
    first = F.to_date("start_ts_local")
    day_start = F.col("local_date").cast("timestamp")
    part_start = F.greatest(F.col("start_ts_local"), day_start)
    part_end = F.least(F.col("end_ts_local"), F.expr("local_date + interval 1 day").cast("timestamp"))
    return (
        stops.withColumn("local_date", F.explode(F.sequence(first, F.greatest(first, F.to_date("end_ts_local")))))
        .withColumn("continued", F.col("local_date") > first)
        .withColumn("dwell_minutes", F.greatest((part_end.cast("double") - part_start.cast("double")) / 60.0, F.lit(0.0)))
        .withColumn("start_ts_local", part_start)
    )


def unique_daily_visits(stops: DataFrame, params: HotspotsConfig) -> DataFrame:
    """detect_stops output -> one row per (vehicle_id, local_date, visit_no) (see module docstring).

    A stop counts on every local day it covers (`stop_days`).

    Parameters
    ----------
    stops : DataFrame
        `stops_for_visits` output (vehicle_id, start_ts, start_ts_local, end_ts_local, lat, lon).
    params : HotspotsConfig
        visit_merge_m (m).

    Returns
    -------
    DataFrame
        One row per (vehicle_id, local_date, visit_no): VISIT_SCHEMA columns -- lat/lon
        (dwell-weighted mean of the visit's stops, degrees), n_stops, dwell_minutes (min, sum
        within the day), first_arrival_local (local wall clock) and arrival_hour (its hour, 0-23;
        null on a day that only continues a stay) -- plus visit_id.
    """
    visits = (
        stops.select("vehicle_id", "start_ts", "start_ts_local", "end_ts_local", "lat", "lon")
        .transform(stop_days)
        .select("vehicle_id", "local_date", "start_ts", "start_ts_local", "lat", "lon", "dwell_minutes", "continued")
        # one vehicle per UDF call (it merges visits day by day): bounded by one vehicle's stops
        .groupBy("vehicle_id")
        .applyInPandas(_visits_udf(params.visit_merge_m), VISIT_SCHEMA)
    )
    visit_id = F.concat_ws("-", F.col("vehicle_id"), F.date_format("local_date", "yyyyMMdd"), F.col("visit_no").cast("string"))
    return visits.withColumn("visit_id", visit_id)


HOTSPOT_COLUMNS = (
    "hotspot_id",
    "lat",
    "lon",
    "hull_wkt",
    "unique_visits",
    "distinct_vehicles",
    "busiest_hours",
    "visits_by_hour",
    "cluster_visits",
    "radius_p90_m",
    "days",
    "visits_per_day",
    "first_date",
    "last_date",
)


def cluster_visits(visits: DataFrame, params: HotspotsConfig) -> DataFrame:
    """visits + point_id + cluster_id (-1 noise) + is_core from the exact distributed DBSCAN.

    point_id is a row number over visit_id, so cluster ids (smallest core point_id) are stable.

    Parameters
    ----------
    visits : DataFrame
        `unique_daily_visits` output (visit_id, lat, lon in degrees).
    params : HotspotsConfig
        eps_m (m), min_samples (visits), partition_cell_m (m).

    Returns
    -------
    DataFrame
        One row per visit: `visits` plus point_id, cluster_id and is_core.
    """
    pts = materialise(visits.withColumn("point_id", F.row_number().over(Window.orderBy("visit_id")).cast("long")))
    labels = distributed_dbscan(pts.select("point_id", "lat", "lon"), params.eps_m, params.min_samples, params.partition_cell_m)
    return pts.join(labels, "point_id")


def find_hotspots(clustered: DataFrame, params: HotspotsConfig) -> DataFrame:
    """Hotspots (gold.hotspots) from `cluster_visits` output.

    A cluster is a hotspot when at least min_unique_visits of its visits, from at least
    min_distinct_vehicles vehicles, lie within radius_m of its centroid.

    Parameters
    ----------
    clustered : DataFrame
        `cluster_visits` output.
    params : HotspotsConfig
        radius_m (m), min_unique_visits, min_distinct_vehicles, busiest_hours.

    Returns
    -------
    DataFrame
        One row per hotspot, HOTSPOT_COLUMNS: hotspot_id (`HOT-001`, ... by unique_visits
        descending); lat/lon: centroid of the cluster's visits (degrees); unique_visits: distinct
        (vehicle, local day) pairs among the visits within radius_m of it; distinct_vehicles:
        vehicles among them; hull_wkt: their convex hull (WKT, lon lat order); busiest_hours: the
        `busiest_hours` local arrival hours with most visits (ties: earlier hour first);
        visits_by_hour: 24 counts (local hours 0-23); cluster_visits: all visits DBSCAN put in the
        cluster; radius_p90_m: 90 % of the counted visits lie within it (m); days, first_date,
        last_date (local dates); visits_per_day over the days between the first and the last visit.
    """
    with_sedona(clustered.sparkSession)
    members = clustered.where(F.col("cluster_id") >= 0)
    centroids = members.groupBy("cluster_id").agg(F.avg("lat").alias("c_lat"), F.avg("lon").alias("c_lon"), F.count(F.lit(1)).alias("cluster_visits"))
    near = members.join(centroids, "cluster_id").withColumn("_d", haversine_m("lat", "lon", "c_lat", "c_lon")).where(F.col("_d") <= params.radius_m)
    per_hour = near.where(F.col("arrival_hour").isNotNull()).groupBy("cluster_id", "arrival_hour").agg(F.count(F.lit(1)).alias("_n"))
    hours = per_hour.groupBy("cluster_id").agg(
        F.map_from_entries(F.collect_list(F.struct("arrival_hour", "_n"))).alias("_hour_map"),
        F.slice(
            F.transform(
                F.array_sort(F.collect_list(F.struct((-F.col("_n")).alias("neg"), F.col("arrival_hour").alias("h")))),
                lambda s: s["h"],
            ),
            1,
            params.busiest_hours,
        ).alias("busiest_hours"),
    )
    by_hour = F.transform(F.sequence(F.lit(0), F.lit(23)), lambda h: F.coalesce(F.col("_hour_map")[h], F.lit(0)))
    stats = near.groupBy("cluster_id", "c_lat", "c_lon", "cluster_visits").agg(
        # a vehicle counts once per local day at a place, however many spots of it it stopped at
        F.countDistinct("vehicle_id", "local_date").alias("unique_visits"),
        F.countDistinct("vehicle_id").alias("distinct_vehicles"),
        F.expr("ST_AsText(ST_ConvexHull(ST_Collect(collect_list(ST_Point(lon, lat)))))").alias("hull_wkt"),
        F.percentile_approx("_d", 0.9, 10000).alias("radius_p90_m"),
        F.min("local_date").alias("first_date"),
        F.max("local_date").alias("last_date"),
    )
    hot = (
        stats.where((F.col("unique_visits") >= params.min_unique_visits) & (F.col("distinct_vehicles") >= params.min_distinct_vehicles))
        .join(hours, "cluster_id", "left")
        .withColumn("busiest_hours", F.coalesce(F.col("busiest_hours"), F.array().cast("array<int>")))
        .withColumn("visits_by_hour", by_hour)
        .withColumn("days", F.datediff("last_date", "first_date") + 1)
        .withColumn("visits_per_day", F.col("unique_visits") / F.col("days"))
    )
    rank = F.row_number().over(Window.orderBy(F.desc("unique_visits"), "cluster_id"))
    return hot.withColumn("hotspot_id", F.format_string("HOT-%03d", rank)).select(
        "hotspot_id",
        F.col("c_lat").alias("lat"),
        F.col("c_lon").alias("lon"),
        *HOTSPOT_COLUMNS[3:],
    )

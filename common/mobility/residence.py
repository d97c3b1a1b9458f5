"""Home location of each vehicle from where it parks at night (pure transforms; personal data).

Reads silver.telematics_clean rows (is_usable, repaired lat/lon/speed_kmh, ts, ts_local,
local_date, timezone); `jobs/residence.py` writes restricted.residences (docs/PRIVACY.md).

1. `night_points`: usable, stationary points whose **local** wall-clock time (ts_local: the
   vehicle's timezone, DST-aware, derived once by cleaning) falls in the night window
   [night_start_hour, night_end_hour). Each point carries `night_date` (the local date on which
   the night ends) and `dwell_s` (time to the vehicle's next night point, capped).
2. `night_cells`: the points snapped to a ~grid_m grid per vehicle: one row per (vehicle, cell)
   with the point count (DBSCAN sample_weight), the summed dwell and the set of nights. A vehicle
   parked in one place for 10x more nights adds weight, not rows, so the per-vehicle DBSCAN costs
   what the number of distinct places costs.
3. `find_residences`: per vehicle (groupBy(vehicle_id).applyInPandas), scikit-learn DBSCAN
   (haversine, ball tree, eps_m, min_samples counted in points) over the cells; the home is the
   cluster with the most distinct nights, then the most dwell time (not the most raw points: a
   chatty device at a workshop does not outvote a quiet one at home). Its centroid
   (point-weighted) is the home; `confidence` = nights at home / nights observed. Homes with fewer
   than `min_nights` nights are not labelled (coordinates null, status `insufficient_nights`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from common.core.config import ResidenceConfig, TripsConfig
from common.core.limits import cap_rows_per_group
from common.spatial.dbscan import grid_cell, haversine_dbscan
from common.spatial.geo import haversine_np


def _in_window(hour: Column, start: int, end: int) -> Column:
    """Local hour (fractional) inside [start, end); a window with start > end wraps midnight."""
    if start < end:
        return (hour >= start) & (hour < end)
    return (hour >= start) | (hour < end)


def night_window_points(clean_df: DataFrame, params: ResidenceConfig, trips: TripsConfig | None = None, heartbeats: DataFrame | None = None) -> DataFrame:
    """Usable points in the local night window with `night_date`, `dwell_s` and `stationary`.

    `dwell_s` is the time to the vehicle's next usable point when the leg to it is not a data gap
    (common.silver.trips.add_legs: a parked silence -- a device asleep at home -- is dwell), else that
    time capped at max_dwell_s (a gap's time is unknown). The legs are taken over all points, so a
    device that sends one heartbeat at 01:00 and wakes at 07:30 dwells 6.5 h.

    Parameters
    ----------
    clean_df : DataFrame
        silver.telematics_clean rows (is_usable, vehicle_id, ts, ts_local, local_date, timezone,
        lat, lon, speed_kmh).
    params : ResidenceConfig
    trips : TripsConfig, optional
        Silence rule of the legs; None = the defaults.
    heartbeats : DataFrame, optional
        vehicle_id, heartbeat_interval_s (s) from silver.device_profiles (`common.silver.devices.heartbeats`);
        None: every vehicle gets the minimum parked-silence limit.

    Returns
    -------
    DataFrame
        One row per usable point whose local time (ts_local) is in the night window: vehicle_id,
        ts (UTC), ts_local, local_date, timezone, lat, lon (degrees), speed_kmh, dwell_s (s),
        night_date (local date the night ends on) and stationary (speed at or below
        stationary_speed_kmh; a missing speed counts as 0).
    """
    from common.silver.trips import add_legs, events_window

    p = params
    needed = ["vehicle_id", "ts", "ts_local", "local_date", "timezone", "lat", "lon", "speed_kmh", "soc_pct"]
    usable = clean_df.where(F.col("is_usable") & F.col("lat").isNotNull() & F.col("lon").isNotNull()).select(*[c for c in needed if c in clean_df.columns])
    w = events_window()
    legs = usable.transform(add_legs, trips or TripsConfig(), heartbeats)
    next_s = F.lead("leg_s").over(w)
    dwell = F.when(~F.lead("is_gap").over(w), next_s).otherwise(F.least(next_s, F.lit(float(p.max_dwell_s))))
    pts = legs.withColumn("dwell_s", F.coalesce(dwell, F.lit(0.0))).select("vehicle_id", "ts", "ts_local", "local_date", "timezone", "lat", "lon", "speed_kmh", "dwell_s")
    hour = F.hour("ts_local") + F.minute("ts_local") / 60.0 + F.second("ts_local") / 3600.0
    wraps = p.night_start_hour >= p.night_end_hour
    # A wrapped window (e.g. 22-05) belongs to the date on which it ends.
    night_date = F.when(hour >= p.night_start_hour, F.date_add("local_date", 1)).otherwise(F.col("local_date")) if wraps else F.col("local_date")
    stationary = F.coalesce(F.when(~F.isnan("speed_kmh"), F.col("speed_kmh")), F.lit(0.0)) <= p.stationary_speed_kmh
    return pts.where(_in_window(hour, p.night_start_hour, p.night_end_hour)).withColumn("night_date", night_date).withColumn("stationary", stationary)


def night_points(clean_df: DataFrame, params: ResidenceConfig, trips: TripsConfig | None = None, heartbeats: DataFrame | None = None) -> DataFrame:
    """Usable, stationary points inside the local night window (see module docstring).

    Parameters
    ----------
    clean_df : DataFrame
        silver.telematics_clean rows (is_usable, vehicle_id, ts, ts_local, local_date, timezone,
        lat, lon, speed_kmh).
    params : ResidenceConfig
    trips : TripsConfig, optional
        Silence rule of the legs; None = the defaults.
    heartbeats : DataFrame, optional
        vehicle_id, heartbeat_interval_s (s) from silver.device_profiles (`common.silver.devices.heartbeats`);
        None: every vehicle gets the minimum parked-silence limit.

    Returns
    -------
    DataFrame
        The `night_window_points` rows that are stationary.
    """
    return night_window_points(clean_df, params, trips, heartbeats).where("stationary")


def nights_observed(window_points: DataFrame) -> DataFrame:
    """Per vehicle: distinct nights with any usable point in the night window (moving or not).

    Parameters
    ----------
    window_points : DataFrame
        `night_window_points` output.

    Returns
    -------
    DataFrame
        One row per vehicle: vehicle_id, nights_observed, timezone.
    """
    return window_points.groupBy("vehicle_id").agg(F.countDistinct("night_date").alias("nights_observed"), F.first("timezone").alias("timezone"))


def night_cells(points: DataFrame, grid_m: float) -> DataFrame:
    """Night points snapped to a ~grid_m grid per vehicle.

    Parameters
    ----------
    points : DataFrame
        `night_points` rows (vehicle_id, ts, lat, lon, dwell_s, night_date).
    grid_m : float
        Side of a grid cell, m.

    Returns
    -------
    DataFrame
        One row per (vehicle, ~grid_m cell): vehicle_id, weight (points), mean lat/lon (degrees),
        dwell_s (s, summed), nights (set of night_date), first_ts/last_ts (UTC).
    """
    row, col = grid_cell("lat", "lon", grid_m)
    return (
        points.withColumn("_row", row)
        .withColumn("_col", col)
        .groupBy("vehicle_id", "_row", "_col")
        .agg(
            F.count(F.lit(1)).alias("weight"),
            F.avg("lat").alias("lat"),
            F.avg("lon").alias("lon"),
            F.sum("dwell_s").alias("dwell_s"),
            F.collect_set("night_date").alias("nights"),
            F.min("ts").alias("first_ts"),
            F.max("ts").alias("last_ts"),
        )
        .drop("_row", "_col")
    )


HOME_SCHEMA = T.StructType(
    [
        T.StructField("vehicle_id", T.StringType()),
        T.StructField("home_lat", T.DoubleType()),
        T.StructField("home_lon", T.DoubleType()),
        T.StructField("home_nights", T.IntegerType()),
        T.StructField("home_dwell_h", T.DoubleType()),
        T.StructField("home_points", T.LongType()),
        T.StructField("home_radius_m", T.DoubleType()),
        T.StructField("first_seen", T.TimestampType()),
        T.StructField("last_seen", T.TimestampType()),
        T.StructField("night_places", T.IntegerType()),
        T.StructField("second_place_nights", T.IntegerType()),
        T.StructField("residence_changed", T.BooleanType()),
        T.StructField("night_cells", T.IntegerType()),
    ]
)


def home_of_vehicle(cells: pd.DataFrame, eps_m: float, min_samples: int, min_nights: int) -> dict | None:
    """The home cluster of one vehicle's night cells (pandas; used by the UDF and the benchmark).

    Parameters
    ----------
    cells : pandas.DataFrame
        One vehicle's `night_cells` rows: lat, lon (degrees), weight (points), dwell_s (s),
        nights (list of dates), first_ts, last_ts.
    eps_m : float
        DBSCAN radius, m.
    min_samples : int
        Weighted night points that make a cell core.
    min_nights : int
        Nights a place needs to count in night_places and residence_changed.

    Returns
    -------
    dict or None
        The HOME_SCHEMA fields except vehicle_id (home_lat/home_lon in degrees, home_dwell_h in h,
        home_radius_m in m, first_seen/last_seen UTC), or None when no cluster exists.
    """
    if cells.empty:
        return None
    labels = haversine_dbscan(cells["lat"].to_numpy(), cells["lon"].to_numpy(), eps_m, min_samples, cells["weight"].to_numpy(dtype=float))
    places = []
    for label in np.unique(labels[labels >= 0]):
        m = labels == label
        nights = set()
        for ns in cells["nights"].to_numpy()[m]:
            nights.update(ns)
        places.append((len(nights), float(cells["dwell_s"].to_numpy()[m].sum()), label, nights))
    if not places:
        return None
    places.sort(key=lambda x: (x[0], x[1]), reverse=True)
    n_nights, dwell_s, label, nights = places[0]
    m = labels == label
    part = cells[m]
    wts = part["weight"].to_numpy(dtype=float)
    lat = float(np.average(part["lat"], weights=wts))
    lon = float(np.average(part["lon"], weights=wts))
    dist = haversine_np(lat, lon, part["lat"].to_numpy(), part["lon"].to_numpy())
    order = np.argsort(dist)
    cum = np.cumsum(wts[order]) / wts.sum()
    radius = float(dist[order][np.searchsorted(cum, 0.9)])
    qualified = [pl for pl in places if pl[0] >= min_nights]
    second = places[1][0] if len(places) > 1 else 0
    # Moved: two places with enough nights each, one period entirely before the other.
    changed = False
    if len(qualified) >= 2:
        a, b = qualified[0][3], qualified[1][3]
        changed = max(a) < min(b) or max(b) < min(a)
    return {
        "home_lat": lat,
        "home_lon": lon,
        "home_nights": int(n_nights),
        "home_dwell_h": dwell_s / 3600.0,
        "home_points": int(wts.sum()),
        "home_radius_m": radius,
        "first_seen": part["first_ts"].min(),
        "last_seen": part["last_ts"].max(),
        "night_places": len(qualified),
        "second_place_nights": int(second),
        "residence_changed": bool(changed),
        "night_cells": int(len(cells)),
    }


def _homes_udf(params: ResidenceConfig):
    cols = [f.name for f in HOME_SCHEMA.fields]

    def fn(pdf: pd.DataFrame) -> pd.DataFrame:
        """applyInPandas body: `home_of_vehicle` on one vehicle's night cells.

        Parameters
        ----------
        pdf : pandas.DataFrame
            One vehicle's `night_cells` rows.

        Returns
        -------
        pandas.DataFrame
            One HOME_SCHEMA row, or none when the vehicle has no cluster.
        """
        pdf = pdf.sort_values(["lat", "lon"], kind="stable")  # deterministic DBSCAN labels
        home = home_of_vehicle(pdf, params.eps_m, params.min_samples, params.min_nights)
        if home is None:
            return pd.DataFrame(columns=cols)
        home["vehicle_id"] = pdf["vehicle_id"].iloc[0]
        return pd.DataFrame([home], columns=cols)

    return fn


RESIDENCE_COLUMNS = (
    "vehicle_id",
    "status",
    "home_lat",
    "home_lon",
    "confidence",
    "nights_observed",
    "home_nights",
    "home_dwell_h",
    "home_points",
    "home_radius_m",
    "first_seen",
    "last_seen",
    "night_places",
    "second_place_nights",
    "residence_changed",
    "night_cells",
    "timezone",
)


def find_residences(
    clean_df: DataFrame,
    params: ResidenceConfig,
    trips: TripsConfig | None = None,
    heartbeats: DataFrame | None = None,
    fleet: DataFrame | None = None,
) -> DataFrame:
    """silver.telematics_clean -> one row per vehicle (restricted.residences).

    Parameters
    ----------
    clean_df : DataFrame
        silver.telematics_clean rows (is_usable, vehicle_id, ts, ts_local, local_date, timezone,
        lat, lon, speed_kmh).
    params : ResidenceConfig
    trips : TripsConfig, optional
        Silence rule of the legs; None = the defaults.
    heartbeats : DataFrame, optional
        vehicle_id, heartbeat_interval_s (s) from silver.device_profiles (`common.silver.devices.heartbeats`);
        None: every vehicle gets the minimum parked-silence limit.
    fleet : DataFrame, optional
        vehicle_id of every vehicle (silver.device_profiles): those without a usable night point
        get a `no_night_data` row, so no vehicle is silently absent.

    Returns
    -------
    DataFrame
        One row per vehicle, RESIDENCE_COLUMNS. status: `home` (labelled) or
        `insufficient_nights` (home_lat/home_lon null) or `no_cluster`, and `no_night_data` for
        vehicles of `fleet` without a usable night point (nights_observed 0).
        home_lat/home_lon: degrees. confidence = home_nights / nights_observed (share of observed
        nights spent at home, 0-1, 4 decimals). home_dwell_h: h. first_seen/last_seen: first/last
        night point at home (UTC). home_radius_m: 90 % of the home's night points lie within it
        (m). night_places: places with at least min_nights nights; residence_changed: two such
        places used in separate periods (a move).
    """
    window_pts = night_window_points(clean_df, params, trips, heartbeats)
    observed = nights_observed(window_pts)
    homes = (
        night_cells(window_pts.where("stationary"), params.grid_m)
        # bounded UDF input: the heaviest max_cells_per_vehicle cells of a vehicle (the home is among them)
        .transform(cap_rows_per_group, ["vehicle_id"], params.max_cells_per_vehicle, [F.desc("weight")])
        .groupBy("vehicle_id")
        .applyInPandas(_homes_udf(params), HOME_SCHEMA)
    )
    labelled = F.col("home_nights") >= params.min_nights
    out = (
        observed.join(homes, "vehicle_id", "left")
        .withColumn(
            "status",
            F.when(F.col("home_nights").isNull(), F.lit("no_cluster")).when(labelled, F.lit("home")).otherwise(F.lit("insufficient_nights")),
        )
        .withColumn("home_lat", F.when(labelled, F.col("home_lat")))
        .withColumn("home_lon", F.when(labelled, F.col("home_lon")))
        .withColumn("confidence", F.when(labelled, F.round(F.col("home_nights") / F.col("nights_observed"), 4)))
    )
    if fleet is not None:
        ids = fleet.select("vehicle_id").where(F.col("vehicle_id").isNotNull()).distinct()
        out = (
            ids.join(out, "vehicle_id", "full")
            .withColumn("status", F.coalesce(F.col("status"), F.lit("no_night_data")))
            .withColumn("nights_observed", F.coalesce(F.col("nights_observed"), F.lit(0).cast("long")))
        )
    return out.select(*RESIDENCE_COLUMNS)

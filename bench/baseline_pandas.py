"""Single-process pandas + scikit-learn baseline of the original analysis (for bench/run_all.py).

    .venv/bin/python -m bench.baseline_pandas --conf storage.root=bench/out/rows_300000/lakehouse \\
        --conf generator.vehicles=31 --conf generator.days=14 --out bench/out/rows_300000/baseline

Reads the raw files the generator wrote under <storage.root>/raw/ (docs/GENERATOR.md) -- the
same files the Spark pipeline ingests -- and runs the analysis the way one would in one Python
process, with every threshold taken from the same config object (`common.core.config.load_config`
with the same env and overrides as the Spark run), never re-typed:

| stage     | what it does (pandas / numpy / scikit-learn)                                           |
|-----------|-----------------------------------------------------------------------------------------|
| ingest    | read raw telemetry (Parquet/CSV) + vehicles CSV; drop byte-identical copies; drop rows  |
|           | the ingest contract quarantines (missing required column, lat/lon/SOC out of range,     |
|           | timestamp before `ingest.min_valid_year` or after now + `ingest.max_future_days`)       |
| clean     | bench/clean_pandas.py (the cleaning rules of common/silver/cleaning.py); writes silver Parquet  |
| kpis      | legs, stops and trips as in common/silver/trips.py; daily KPIs per vehicle and local day       |
|           | (GPS km, moving hours, coverage, SOC, trips, charging events/kWh as in jobs/kpis.py)    |
| residence | night points per vehicle; one scikit-learn DBSCAN per vehicle over the raw points (no   |
|           | grid); home = cluster with most nights, then dwell (common.mobility.residence.home_of_vehicle)   |
| charging  | two-pass charging detection (common/mobility/charging.py rules) + per-vehicle location DBSCAN    |
| hotspots  | stops -> unique daily visits (common.mobility.hotspots._merge_day) -> one single-node DBSCAN     |
|           | over all visits -> clusters with enough visits / vehicles within `hotspots.radius_m`    |
| risk      | original rule: average daily km over reported days, fleet z-score < `risk.z_threshold`  |

Each stage starts from the cleaned rows kept in memory (the pipeline reads them from Delta), so
stages are timed independently, like the pipeline's; kpis and charging both detect charging
events, as jobs/kpis.py and jobs/charging.py do. Not in the baseline (the pipeline does more):
vehicle-minutely, segments, odometer checks and billing in kpis; fleet charging sites in
charging; the added risk signals.

Writes outputs as Parquet under --out and, after every stage, a JSON result (seconds, rows,
peak RSS per stage, agreement counts; `current` names the stage running) so a run killed for
memory or time still reports the stages it finished.
"""

from __future__ import annotations

import argparse
import gc
import glob
import json
import os
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import psutil

from bench.clean_pandas import clean_pandas, haversine_np
from bench.harness import Sampler
from common.core.config import Config, load_config

STAGES = ("ingest", "clean", "kpis", "residence", "charging", "hotspots", "risk")
NEEDS = {"clean": ("ingest",), "kpis": ("clean",), "residence": ("clean",), "charging": ("clean",), "hotspots": ("clean",), "risk": ("kpis",)}
POINT_COLUMNS = ("vehicle_id", "ts", "ts_local", "local_date", "timezone", "lat", "lon", "speed_kmh", "soc_pct")


def with_prerequisites(stages) -> list[str]:
    wanted = set(stages)
    changed = True
    while changed:
        before = len(wanted)
        for s in list(wanted):
            wanted.update(NEEDS.get(s, ()))
        changed = len(wanted) != before
    return [s for s in STAGES if s in wanted]


# --------------------------------------------------------------------------------------------
# Small numpy helpers (frames sorted by vehicle_id, ts)
# --------------------------------------------------------------------------------------------
def _seconds(ts: pd.Series) -> np.ndarray:
    return ts.to_numpy(dtype="datetime64[ns]").astype("int64") / 1e9


def _naive_utc_ns(ts: pd.Series) -> pd.Series:
    if getattr(ts.dt, "tz", None) is not None:
        ts = ts.dt.tz_convert("UTC").dt.tz_localize(None)
    return ts.astype("datetime64[ns]")


def _first_of_vehicle(vid: np.ndarray) -> np.ndarray:
    first = np.ones(len(vid), dtype=bool)
    first[1:] = vid[1:] != vid[:-1]
    return first


def _lag(values: np.ndarray, first: np.ndarray) -> np.ndarray:
    """Previous row's value within the vehicle (NaN at a vehicle's first row)."""
    out = np.empty(len(values), dtype=float)
    if len(values):
        out[0] = np.nan
        out[1:] = values[:-1]
        out[first] = np.nan
    return out


def _lead(values: np.ndarray, first: np.ndarray) -> np.ndarray:
    out = np.empty(len(values), dtype=float)
    if len(values):
        out[-1] = np.nan
        out[:-1] = values[1:]
        last = np.roll(first, -1)
        out[last] = np.nan
    return out


# --------------------------------------------------------------------------------------------
# Stages
# --------------------------------------------------------------------------------------------
def stage_ingest(cfg: Config, state: dict) -> dict:
    """Raw files -> bronze-equivalent frames (the rows jobs/ingest.py would keep)."""
    from common.io.landing import default_inputs
    from common.io.schemas import TELEMATICS_REQUIRED

    inputs = default_inputs(cfg)
    tel = inputs.telematics[0]
    if tel.format == "parquet":
        raw = pd.read_parquet(tel.path)
    else:
        files = sorted(glob.glob(os.path.join(tel.path, "*.csv")))
        raw = pd.concat([pd.read_csv(f) for f in files], ignore_index=True)
        raw["ts"] = pd.to_datetime(raw["ts"], errors="coerce")
    raw["ts"] = _naive_utc_ns(raw["ts"])
    n_raw = len(raw)
    dup = raw.duplicated(keep="first").to_numpy()
    r = cfg.ingest
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    bad = np.zeros(n_raw, dtype=bool)
    for c in TELEMATICS_REQUIRED:
        bad |= raw[c].isna().to_numpy()
    for c, (lo, hi) in (("lat", r.lat_range), ("lon", r.lon_range), ("soc_pct", r.soc_range)):
        v = raw[c].to_numpy(float)
        with np.errstate(invalid="ignore"):
            bad |= ~((v >= lo) & (v <= hi))
    bad |= (raw["ts"].dt.year < r.min_valid_year).to_numpy()
    bad |= (raw["ts"] > now + timedelta(days=r.max_future_days)).to_numpy()
    bronze = raw.loc[~dup & ~bad].reset_index(drop=True)
    del raw
    files = sorted(glob.glob(os.path.join(inputs.vehicles[0].path, "*.csv")))
    vehicles = pd.concat([pd.read_csv(f) for f in files], ignore_index=True)
    vehicles = vehicles.dropna(subset=["vehicle_id", "battery_kwh"]).drop_duplicates("vehicle_id")
    state.update(bronze=bronze, vehicles=vehicles, raw_rows=n_raw)
    return {"raw_rows": n_raw, "exact_duplicates": int(dup.sum()), "quarantined": int((bad & ~dup).sum()), "bronze_rows": len(bronze)}


def stage_clean(cfg: Config, state: dict, out: Path) -> dict:
    from common.silver.cleaning import FLAGS, cleaning_params

    params = cleaning_params(cfg, as_of=datetime.now(timezone.utc))
    cleaned = clean_pandas(state.pop("bronze"), state["vehicles"], params)
    cleaned["local_date"] = cleaned["ts_local"].dt.normalize()
    cleaned.to_parquet(out / "silver.parquet", index=False)
    flags = cleaned["quality_flags"].to_numpy()
    counts = {name: int(np.count_nonzero(flags & bit)) for name, bit in FLAGS.items()}
    # clean_pandas sorts by vehicle_id, ts; usable rows are unique per (vehicle_id, ts)
    state["usable"] = cleaned.loc[cleaned["is_usable"].to_numpy(), list(POINT_COLUMNS)].reset_index(drop=True)
    del cleaned
    return {"silver_rows": len(flags), "usable_rows": len(state["usable"]), "flag_counts": counts}


def add_legs(usable: pd.DataFrame, tp) -> pd.DataFrame:
    """common.silver.trips.add_legs: incoming leg, speed estimate, moving, gap, moving-leg km."""
    pts = usable
    vid = pts["vehicle_id"].to_numpy()
    first = _first_of_vehicle(vid)
    t = _seconds(pts["ts"])
    lat, lon = pts["lat"].to_numpy(float), pts["lon"].to_numpy(float)
    leg_s = t - _lag(t, first)
    leg_m = haversine_np(_lag(lat, first), _lag(lon, first), lat, lon)
    speed = pts["speed_kmh"].to_numpy(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        implied = np.where(leg_s > 0, leg_m / leg_s * 3.6, np.nan)
        speed_est = np.where(np.isnan(speed), implied, speed)
        prev_speed = _lag(speed_est, first)
        is_gap = leg_s > tp.max_gap_minutes * 60.0
        leg_moving = ~is_gap & ((prev_speed + speed_est) / 2 > tp.moving_speed_kmh)
        moving = speed_est > tp.moving_speed_kmh
    return pts.assign(
        _first=first, _t=t, leg_s=leg_s, leg_m=leg_m, speed_est_kmh=speed_est, moving=moving, is_gap=is_gap,
        leg_moving=leg_moving, leg_km=np.where(leg_moving, leg_m / 1000.0, 0.0),
    )  # fmt: skip


def mark_stops(legs: pd.DataFrame, min_stop_minutes: float, stop_radius_m: float) -> pd.DataFrame:
    """common.silver.trips.mark_stops: stationary runs, in_stop (dwell >= min), arrival / departure."""
    first = legs["_first"].to_numpy()
    stationary = ~legs["moving"].to_numpy()
    prev_stationary = np.zeros(len(legs), dtype=bool)
    prev_stationary[1:] = stationary[:-1]
    prev_stationary[first] = False
    with np.errstate(invalid="ignore"):
        moved = legs["leg_m"].to_numpy() > stop_radius_m
    run_start = stationary & (~prev_stationary | moved)
    run_key = np.cumsum(run_start | first)
    t = legs["_t"].to_numpy()
    st = pd.Series(np.where(stationary, t, np.nan))
    g = st.groupby(run_key)
    run_first, run_last = g.transform("min").to_numpy(), g.transform("max").to_numpy()
    with np.errstate(invalid="ignore"):
        in_stop = stationary & (run_last - run_first >= min_stop_minutes * 60.0)
    return legs.assign(_run=run_key, in_stop=in_stop, is_arrival=in_stop & (t == run_first), is_departure=in_stop & (t == run_last))


def stops_from(marked: pd.DataFrame) -> pd.DataFrame:
    """common.silver.trips.stops_from_points (the columns hotspots need)."""
    s = marked.loc[marked["in_stop"].to_numpy()]
    g = s.groupby("_run", sort=False)
    stops = g.agg(
        vehicle_id=("vehicle_id", "first"), start_t=("_t", "min"), end_t=("_t", "max"), start_ts=("ts", "first"),
        start_ts_local=("ts_local", "first"), local_date=("local_date", "first"), lat=("lat", "mean"), lon=("lon", "mean"),
    )  # fmt: skip
    stops["dwell_minutes"] = (stops["end_t"] - stops["start_t"]) / 60.0
    return stops.reset_index(drop=True)


def trips_from(marked: pd.DataFrame, tp) -> pd.DataFrame:
    """common.silver.trips.mark_trips + trips_from_points (count, km, local day of each kept trip)."""
    new_trip = marked["is_departure"].to_numpy() | marked["is_gap"].to_numpy() | marked["_first"].to_numpy()
    in_stop = marked["in_stop"].to_numpy()
    in_trip = ~in_stop | marked["is_departure"].to_numpy() | marked["is_arrival"].to_numpy()
    leg_in_trip = in_trip & ~new_trip
    df = pd.DataFrame(
        {
            "trip": np.cumsum(new_trip),
            "vehicle_id": marked["vehicle_id"].to_numpy(),
            "local_date": marked["local_date"].to_numpy(),
            "km": np.where(leg_in_trip, marked["leg_km"].to_numpy(), 0.0),
        }
    )[in_trip]
    trips = df.groupby("trip", sort=False).agg(vehicle_id=("vehicle_id", "first"), local_date=("local_date", "first"), n=("km", "size"), distance_km=("km", "sum"))
    return trips[(trips["n"] >= 2) & (trips["distance_km"] >= tp.min_trip_km)].reset_index(drop=True)


def _day_seconds(days: pd.DataFrame) -> np.ndarray:
    """Length of each (local_date, timezone) day in seconds (DST-aware, as common.mobility.kpis.local_day_seconds)."""
    out = np.full(len(days), 86400.0)
    for zone, idx in days.groupby("timezone", sort=False).indices.items():
        d = pd.DatetimeIndex(days["local_date"].to_numpy()[idx])
        start = d.tz_localize(zone, nonexistent="shift_forward", ambiguous=False).tz_convert("UTC")
        end = (d + pd.Timedelta(days=1)).tz_localize(zone, nonexistent="shift_forward", ambiguous=False).tz_convert("UTC")
        out[idx] = (end - start).total_seconds()
    return out


def charging_events(usable: pd.DataFrame, vehicles: pd.DataFrame, p) -> pd.DataFrame:
    """common.mobility.charging.detect_charging_events: stationary SOC-rise runs, two passes (high, then low)."""
    keep = usable["lat"].notna() & usable["lon"].notna() & usable["soc_pct"].notna()
    pts = usable.loc[keep.to_numpy()].reset_index(drop=True)
    vid = pts["vehicle_id"].to_numpy()
    first = _first_of_vehicle(vid)
    t = _seconds(pts["ts"])
    lat, lon, soc = (pts[c].to_numpy(float) for c in ("lat", "lon", "soc_pct"))
    speed = pts["speed_kmh"].to_numpy(float)
    pt = _lag(t, first)
    step_s = t - pt
    step_m = haversine_np(_lag(lat, first), _lag(lon, first), lat, lon)
    psoc, pspeed = _lag(soc, first), _lag(speed, first)
    with np.errstate(invalid="ignore", divide="ignore"):
        implied = np.where(step_s > 0, step_m / step_s * 3.6, np.nan)
        here = np.where(np.isnan(speed), implied, speed)
        before = np.where(np.isnan(pspeed), implied, pspeed)
        stationary = (
            (here <= p.stationary_speed_kmh) & (before <= p.stationary_speed_kmh)
            & (step_m <= p.stationary_radius_m) & (step_s <= p.max_gap_min * 60.0)
        )  # fmt: skip
        d_soc = soc - psoc
        run = np.cumsum(~stationary | (d_soc < -p.soc_drop_tolerance_pct))
        rise = np.flatnonzero(stationary & (d_soc > 0))
    cols = ["vehicle_id", "event_id", "confidence", "start_ts", "end_ts", "local_date", "soc_start_pct", "soc_end_pct",
            "delta_soc_pct", "battery_kwh", "kwh", "lat", "lon", "n_samples"]  # fmt: skip
    if len(rise) == 0:
        return pd.DataFrame(columns=cols)
    r_first = _first_of_vehicle(vid[rise])
    r_run, r_t = run[rise], t[rise]
    prev_run = np.r_[-1, r_run[:-1]]
    prev_t = np.r_[np.nan, r_t[:-1]]
    with np.errstate(invalid="ignore"):
        new = r_first | (prev_run != r_run) | (pt[rise] - prev_t > p.max_pause_min * 60.0)
    rises = pd.DataFrame({"event": np.cumsum(new), "start_idx": rise - 1, "end_idx": rise, "lat": lat[rise], "lon": lon[rise]})
    g = rises.groupby("event", sort=False)
    ev = g.agg(start_idx=("start_idx", "first"), end_idx=("end_idx", "last"), n=("lat", "size"))
    # percentile_approx(0.5) returns the lower middle element
    ev["lat"] = g["lat"].quantile(0.5, interpolation="lower")
    ev["lon"] = g["lon"].quantile(0.5, interpolation="lower")
    s, e = ev["start_idx"].to_numpy(), ev["end_idx"].to_numpy()
    events = pd.DataFrame(
        {
            "vehicle_id": vid[e],
            "start_ts": pts["ts"].to_numpy()[s],
            "end_ts": pts["ts"].to_numpy()[e],
            "local_date": pts["local_date"].to_numpy()[s],
            "soc_start_pct": soc[s],
            "soc_end_pct": soc[e],
            "lat": ev["lat"].to_numpy(),
            "lon": ev["lon"].to_numpy(),
            "n_samples": ev["n"].to_numpy() + 1,
        }
    )
    events["delta_soc_pct"] = events["soc_end_pct"] - events["soc_start_pct"]
    is_high = (events["delta_soc_pct"] > p.min_delta_soc_pct).to_numpy()
    has_high = pd.Series(is_high).groupby(events["vehicle_id"].to_numpy()).transform("max").to_numpy()
    events = events[is_high | (~has_high & (events["delta_soc_pct"] > p.fallback_min_delta_soc_pct).to_numpy())].copy()
    events["confidence"] = np.where(events["delta_soc_pct"] > p.min_delta_soc_pct, "high", "low")
    battery = events["vehicle_id"].map(vehicles.set_index("vehicle_id")["battery_kwh"].astype(float))
    if p.default_battery_kwh is not None:
        battery = battery.fillna(float(p.default_battery_kwh))
    events["battery_kwh"] = battery
    events["kwh"] = events["delta_soc_pct"] / 100.0 * events["battery_kwh"]
    events["event_id"] = events["vehicle_id"] + "-C" + pd.to_datetime(events["start_ts"]).dt.strftime("%Y%m%dT%H%M%S")
    return events[cols].reset_index(drop=True)


def stage_kpis(cfg: Config, state: dict, out: Path) -> dict:
    tp = cfg.kpis.trips
    legs = add_legs(state["usable"], tp)
    marked = mark_stops(legs, tp.min_stop_minutes, tp.stop_radius_m)
    trips = trips_from(marked, tp)
    observed = np.where(~marked["is_gap"].to_numpy() & ~marked["_first"].to_numpy(), marked["leg_s"].to_numpy(), 0.0)
    moving_s = np.where(marked["leg_moving"].to_numpy(), marked["leg_s"].to_numpy(), 0.0)
    frame = marked[["vehicle_id", "local_date", "timezone", "soc_pct", "leg_km"]].assign(_obs=observed, _mov=moving_s)
    g = frame.groupby(["vehicle_id", "local_date"], sort=True)
    daily = g.agg(
        timezone=("timezone", "first"), n_samples=("leg_km", "size"), gps_km=("leg_km", "sum"), _moving_s=("_mov", "sum"),
        _observed_s=("_obs", "sum"), soc_start_pct=("soc_pct", "first"), soc_end_pct=("soc_pct", "last"),
        soc_min_pct=("soc_pct", "min"), soc_max_pct=("soc_pct", "max"),
    ).reset_index()  # fmt: skip
    day_s = _day_seconds(daily)
    daily["moving_hours"] = daily["_moving_s"] / 3600.0
    daily["utilisation_share"] = daily["_moving_s"] / day_s
    daily["data_coverage_share"] = np.minimum(1.0, daily["_observed_s"] / day_s)
    per_trip_day = trips.groupby(["vehicle_id", "local_date"]).agg(trips=("n", "size"), trip_km=("distance_km", "sum"))
    events = charging_events(state["usable"], state["vehicles"], cfg.charging)
    per_charge_day = events.groupby(["vehicle_id", "local_date"]).agg(charging_events=("kwh", "size"), charging_kwh=("kwh", "sum"))
    daily = daily.join(per_trip_day, on=["vehicle_id", "local_date"]).join(per_charge_day, on=["vehicle_id", "local_date"])
    daily = daily.fillna({"trips": 0, "trip_km": 0.0, "charging_events": 0, "charging_kwh": 0.0}).drop(columns=["_moving_s", "_observed_s"])
    daily.to_parquet(out / "daily_kpis.parquet", index=False)
    trips.to_parquet(out / "trips.parquet", index=False)
    state["daily"] = daily
    return {"vehicle_days": len(daily), "trips": len(trips), "gps_km": float(daily["gps_km"].sum())}


def stage_residence(cfg: Config, state: dict, out: Path) -> dict:
    """Per-vehicle DBSCAN over raw night points (the original loop), homes chosen as the pipeline does."""
    from common.mobility.residence import home_of_vehicle  # scikit-learn DBSCAN (common.spatial.dbscan.haversine_dbscan) + home rule

    p = cfg.residence
    u = state["usable"]
    pts = u.loc[(u["lat"].notna() & u["lon"].notna()).to_numpy()]
    tl = pts["ts_local"].dt
    hour = tl.hour + tl.minute / 60.0 + tl.second / 3600.0
    if p.night_start_hour < p.night_end_hour:
        in_window = (hour >= p.night_start_hour) & (hour < p.night_end_hour)
        night_date = pts["local_date"]
    else:
        in_window = (hour >= p.night_start_hour) | (hour < p.night_end_hour)
        night_date = pts["local_date"].where(hour < p.night_start_hour, pts["local_date"] + pd.Timedelta(days=1))
    win = pts.loc[in_window.to_numpy()].assign(night_date=night_date[in_window].to_numpy())
    first = _first_of_vehicle(win["vehicle_id"].to_numpy())
    t = _seconds(win["ts"])
    gap = _lead(t, first) - t
    win["dwell_s"] = np.minimum(np.nan_to_num(gap, nan=0.0), float(p.max_dwell_s))
    win["stationary"] = win["speed_kmh"].fillna(0.0).to_numpy() <= p.stationary_speed_kmh
    observed = win.groupby("vehicle_id")["night_date"].nunique()
    homes = []
    for vid, night in win[win["stationary"].to_numpy()].groupby("vehicle_id", sort=True):
        cells = pd.DataFrame(
            {
                "lat": night["lat"].to_numpy(),
                "lon": night["lon"].to_numpy(),
                "weight": np.ones(len(night)),
                "dwell_s": night["dwell_s"].to_numpy(),
                "nights": [(d,) for d in night["night_date"].to_numpy()],
                "first_ts": night["ts"].to_numpy(),
                "last_ts": night["ts"].to_numpy(),
            }
        ).sort_values(["lat", "lon"], kind="stable")
        home = home_of_vehicle(cells, p.eps_m, p.min_samples, p.min_nights)
        if home is not None:
            homes.append({"vehicle_id": vid, **home})
    res = pd.DataFrame({"vehicle_id": observed.index, "nights_observed": observed.to_numpy()})
    if homes:
        res = res.merge(pd.DataFrame(homes), on="vehicle_id", how="left")
    else:
        res["home_nights"] = np.nan
    labelled = res["home_nights"] >= p.min_nights
    res["status"] = np.where(res["home_nights"].isna(), "no_cluster", np.where(labelled, "home", "insufficient_nights"))
    for c in ("home_lat", "home_lon"):
        if c in res:
            res[c] = res[c].where(labelled)
    res["confidence"] = (res["home_nights"] / res["nights_observed"]).where(labelled).round(4)
    res.drop(columns=["first_seen", "last_seen"], errors="ignore").to_parquet(out / "residences.parquet", index=False)
    return {"vehicles_with_night_data": len(res), "homes": int(labelled.sum()), "night_points": int(win["stationary"].sum())}


def stage_charging(cfg: Config, state: dict, out: Path) -> dict:
    from common.spatial.dbscan import haversine_dbscan

    p = cfg.charging
    events = charging_events(state["usable"], state["vehicles"], p)
    locations = 0
    loc_ids = pd.Series(None, index=events.index, dtype=object)
    for vid, ev in events.sort_values("event_id", kind="stable").groupby("vehicle_id", sort=True):
        labels = haversine_dbscan(ev["lat"].to_numpy(), ev["lon"].to_numpy(), p.location_eps_m, p.location_min_events)
        loc_ids.loc[ev.index] = [f"{vid}-L{n}" if n >= 0 else None for n in labels]
        locations += len(np.unique(labels[labels >= 0]))
    events["location_id"] = loc_ids
    events.to_parquet(out / "charging_events.parquet", index=False)
    return {
        "events": len(events),
        "events_high": int((events["confidence"] == "high").sum()),
        "events_low": int((events["confidence"] == "low").sum()),
        "locations": int(locations),
    }


def stage_hotspots(cfg: Config, state: dict, out: Path) -> dict:
    from common.mobility.hotspots import _merge_day
    from common.spatial.dbscan import haversine_dbscan

    h, tp = cfg.hotspots, cfg.kpis.trips
    legs = add_legs(state["usable"], tp)
    stops = stops_from(mark_stops(legs, h.min_dwell_min, tp.stop_radius_m))
    del legs
    # unique daily visits: leader clustering of one vehicle-day's stops in time order
    stops = stops.sort_values(["vehicle_id", "local_date", "start_t"], kind="stable").reset_index(drop=True)
    visit_no = np.empty(len(stops), dtype=np.int64)
    for _, idx in stops.groupby(["vehicle_id", "local_date"], sort=False).indices.items():
        visit_no[idx] = _merge_day(stops.iloc[idx], h.visit_merge_m)
    stops["visit_no"] = visit_no
    stops["w"] = stops["dwell_minutes"].clip(lower=1.0)
    stops["wlat"], stops["wlon"] = stops["lat"] * stops["w"], stops["lon"] * stops["w"]
    visits = (
        stops.groupby(["vehicle_id", "local_date", "visit_no"], sort=True)
        .agg(wlat=("wlat", "sum"), wlon=("wlon", "sum"), w=("w", "sum"), n_stops=("lat", "size"), dwell_minutes=("dwell_minutes", "sum"), first_arrival_local=("start_ts_local", "min"))  # fmt: skip
        .reset_index()
    )
    visits["lat"], visits["lon"] = visits["wlat"] / visits["w"], visits["wlon"] / visits["w"]
    visits["visit_id"] = visits["vehicle_id"] + "-" + visits["local_date"].dt.strftime("%Y%m%d") + "-" + visits["visit_no"].astype(str)
    # point_id = row number over visit_id (common.mobility.hotspots.cluster_visits): DBSCAN in that order
    visits = visits.sort_values("visit_id", kind="stable").reset_index(drop=True)
    labels = haversine_dbscan(visits["lat"].to_numpy(), visits["lon"].to_numpy(), h.eps_m, h.min_samples)
    visits["cluster"] = labels
    members = visits[labels >= 0]
    cent = members.groupby("cluster")[["lat", "lon"]].mean()
    c = cent.loc[members["cluster"]].to_numpy()
    d = haversine_np(members["lat"].to_numpy(), members["lon"].to_numpy(), c[:, 0], c[:, 1])
    near = members[d <= h.radius_m]
    stats = near.groupby("cluster").agg(unique_visits=("visit_id", "size"), distinct_vehicles=("vehicle_id", "nunique"))
    hot = stats[(stats["unique_visits"] >= h.min_unique_visits) & (stats["distinct_vehicles"] >= h.min_distinct_vehicles)]
    hot = hot.join(cent).sort_values(["unique_visits"], ascending=False).reset_index()
    visits.drop(columns=["wlat", "wlon", "w"]).to_parquet(out / "unique_daily_visits.parquet", index=False)
    hot.to_parquet(out / "hotspots.parquet", index=False)
    return {
        "stops": len(stops),
        "unique_daily_visits": len(visits),
        "clusters": int(labels.max() + 1) if len(labels) else 0,
        "hotspots": len(hot),
        "hotspot_visits": int(hot["unique_visits"].sum()),
    }


def stage_risk(cfg: Config, state: dict, out: Path) -> dict:
    """The original rule: average daily km over reported days, z-score against the fleet."""
    p = cfg.risk
    daily = state["daily"]
    reported = daily[daily["data_coverage_share"].fillna(1.0) >= p.min_day_coverage]
    per = reported.assign(km=reported["gps_km"].fillna(0.0)).groupby("vehicle_id").agg(avg_daily_km=("km", "mean"), reported_days=("km", "size"))
    mean, std = per["avg_daily_km"].mean(), per["avg_daily_km"].std(ddof=1)
    per["z_score"] = (per["avg_daily_km"] - mean) / std if std > 0 else 0.0
    per["baseline_high"] = per["z_score"] < p.z_threshold
    per.reset_index().to_parquet(out / "driver_risk.parquet", index=False)
    return {"drivers": len(per), "baseline_high": int(per["baseline_high"].sum())}


RUNNERS = {
    "ingest": lambda cfg, st, out: stage_ingest(cfg, st),
    "clean": stage_clean,
    "kpis": stage_kpis,
    "residence": stage_residence,
    "charging": stage_charging,
    "hotspots": stage_hotspots,
    "risk": stage_risk,
}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--env", default="local")
    ap.add_argument("--conf", action="append", default=[], help="config override key=value (repeatable), as for the Spark run")
    ap.add_argument("--out", required=True, help="directory for the Parquet outputs and result.json")
    ap.add_argument("--result", default=None, help="result JSON (default <out>/result.json)")
    ap.add_argument("--stages", nargs="+", default=list(STAGES), choices=STAGES)
    args = ap.parse_args(argv)
    started = psutil.Process().create_time()
    cfg = load_config(args.env, args.conf)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    result_path = Path(args.result) if args.result else out / "result.json"
    result: dict = {"stages": {}, "agreement": {}, "current": None, "startup_s": time.time() - started}
    state: dict = {}

    def save() -> None:
        tmp = result_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(result, indent=1, default=str))
        tmp.replace(result_path)

    for name in with_prerequisites(args.stages):
        result["current"] = name
        save()
        sampler = Sampler()
        sampler.start()
        t0 = time.perf_counter()
        try:
            info = RUNNERS[name](cfg, state, out)
        finally:
            seconds = time.perf_counter() - t0
            sampler.stop.set()
            sampler.join()
        rows = state["raw_rows"] if name == "ingest" else result["agreement"]["ingest"]["bronze_rows"]
        result["stages"][name] = {"seconds": seconds, "rows": rows, "peak_mb": sampler.pydriver}
        result["agreement"][name] = info
        result["current"] = None
        save()
        print(f"  baseline {name}: {seconds:,.1f} s, peak {sampler.pydriver:,.0f} MB", flush=True)
        gc.collect()
    return result


if __name__ == "__main__":
    main()

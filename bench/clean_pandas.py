"""Single-process pandas baseline of the cleaning rules (for bench/bench_clean.py only).

The same rules, thresholds and repair as common/silver/cleaning.py, written the way one would in pandas:
sort once, then vectorised `groupby(...).shift` / `ffill` / `bfill` per vehicle and one shapely
`contains_xy` call for the operating area. It produces the same `quality_flags` bitmask,
`is_usable`, repaired values, `*_imputed` flags and local time; it does not build the
`quality_reasons` arrays (a list per row would only slow pandas down further).

Not used by the pipeline: the numpy haversine below is the pandas twin of common.spatial.geo.haversine_m.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import shapely
from shapely import wkt as shapely_wkt

from common.silver.cleaning import BLOCKING_MASK, FLAGS, POSITION_FLAGS, ROW_FLAGS, SOC_FLAGS, CleaningParams
from common.spatial.geo import haversine_np


def _mask(*names: str) -> int:
    return sum(FLAGS[n] for n in names)


def _shift_within(values: pd.DataFrame, groups: pd.Series, periods: int) -> pd.DataFrame:
    return values.groupby(groups, sort=False).shift(periods)


def _neighbours(df: pd.DataFrame, mask: np.ndarray, cols: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Previous and next row among `mask` rows of the same vehicle (NaN where none / not in mask)."""
    sub = df.loc[mask, cols]
    vid = df.loc[mask, "vehicle_id"]
    prev = _shift_within(sub, vid, 1).reindex(df.index)
    nxt = _shift_within(sub, vid, -1).reindex(df.index)
    return prev, nxt


def _blame(df, cand, in_bad, out_bad, has_prev):
    """Same decisions as common.silver.cleaning._blame_legs, with shifts inside the candidate subset."""
    ib = cand & np.nan_to_num(in_bad, nan=0).astype(bool)
    ob = cand & np.nan_to_num(out_bad, nan=0).astype(bool)
    state = pd.DataFrame({"outlier": (ib & ob).astype(float), "has_prev": has_prev.astype(float), "out_bad": ob.astype(float)}, index=df.index)
    prev, nxt = _neighbours(pd.concat([df[["vehicle_id"]], state], axis=1), cand, ["outlier", "has_prev", "out_bad"])
    prev_outlier = prev["outlier"].fillna(0).to_numpy().astype(bool)
    prev_is_first = ~prev["has_prev"].fillna(0).to_numpy().astype(bool)
    next_out_bad = nxt["out_bad"].fillna(0).to_numpy().astype(bool)
    blame_in = ib & (ob | (~prev_outlier & ~prev_is_first))
    blame_out = ob & (ib | (~has_prev & ~next_out_bad))
    return blame_in, blame_out


def clean_pandas(bronze: pd.DataFrame, vehicles: pd.DataFrame, params: CleaningParams) -> pd.DataFrame:
    s = params.settings
    fleet = vehicles[["vehicle_id", "vehicle_type", "battery_kwh", "timezone"]].drop_duplicates("vehicle_id")
    df = bronze.merge(fleet, on="vehicle_id", how="left")
    df["battery_kwh"] = df["battery_kwh"].fillna(s.default_battery_kwh)
    df["timezone"] = df["timezone"].fillna(s.default_timezone)
    for c in ("lat", "lon", "soc_pct", "speed_kmh", "odometer_km"):
        df[f"{c}_orig"] = df[c]
    ts = df["ts"]
    t = ts.astype("int64").to_numpy() / 1e9
    df["_t"] = t
    lat, lon, soc = df["lat"].to_numpy(float), df["lon"].to_numpy(float), df["soc_pct"].to_numpy(float)
    flags = np.zeros(len(df), dtype=np.int64)

    # rules 1, 2, 6, 5a and missing values: row-local
    valid = np.isfinite(lat) & np.isfinite(lon) & (np.abs(lat) <= 90) & (np.abs(lon) <= 180)
    zero = (lat == 0) | (lon == 0) if s.zero_coord_either_axis else (lat == 0) & (lon == 0)
    flags |= np.where(~valid, FLAGS["invalid_coord"], 0)
    flags |= np.where(valid & zero, FLAGS["zero_coord"], 0)
    testable = valid & ~zero
    area = shapely_wkt.loads(params.area_wkt)
    shapely.prepare(area)
    inside = np.zeros(len(df), dtype=bool)
    inside[testable] = shapely.contains_xy(area, lon[testable], lat[testable])
    flags |= np.where(testable & ~inside, FLAGS["outside_area"], 0)
    latest = pd.Timestamp(params.as_of).tz_convert("UTC").tz_localize(None) + pd.Timedelta(minutes=s.future_tolerance_min)
    flags |= np.where((ts > latest).to_numpy(), FLAGS["ts_future"], 0)
    before = ts.isna().to_numpy()
    if params.dataset_start is not None:
        before |= (ts < pd.Timestamp(params.dataset_start).tz_convert("UTC").tz_localize(None)).to_numpy()
    flags |= np.where(before, FLAGS["ts_before_start"], 0)
    soc_present = ~pd.isna(df["soc_pct"]).to_numpy()
    soc_ok = np.isfinite(soc) & (soc >= 0) & (soc <= 100)
    flags |= np.where(soc_present & ~soc_ok, FLAGS["soc_out_of_range"], 0)
    missing = ~np.isfinite(df["speed_kmh"].to_numpy(float)) | ~np.isfinite(df["odometer_km"].to_numpy(float)) | ~soc_present
    flags |= np.where(missing, FLAGS["missing_value"], 0)

    # event order; among equal timestamps rows without row-local flags first (as in Spark)
    df["_suspect"] = ((flags & BLOCKING_MASK) != 0).astype(np.int8)
    df["_tie"] = pd.util.hash_pandas_object(bronze, index=False).to_numpy()
    df["quality_flags"] = flags
    df = df.sort_values(["vehicle_id", "ts", "_suspect", "_tie"], kind="stable").reset_index(drop=True)
    vid = df["vehicle_id"]
    t = df["_t"].to_numpy()
    lat, lon, soc = df["lat"].to_numpy(float), df["lon"].to_numpy(float), df["soc_pct"].to_numpy(float)
    flags = df["quality_flags"].to_numpy().copy()

    # rule 3
    same_vehicle = (vid == vid.shift(1)).to_numpy()
    dup = same_vehicle & (df["ts"] == df["ts"].shift(1)).to_numpy()
    flags |= np.where(dup, FLAGS["duplicate"], 0)

    # rule 4
    def has(f, names):
        return (f & _mask(*names)) != 0

    cand = ~has(flags, ("invalid_coord", "zero_coord", "outside_area", *ROW_FLAGS))
    pos = df[["vehicle_id", "lat", "lon"]]
    prev0, _ = _neighbours(pos, cand, ["lat", "lon"])
    new_fix = cand & ~((prev0["lat"].to_numpy() == lat) & (prev0["lon"].to_numpy() == lon))
    fix = pd.Series(np.where(new_fix, t, np.nan)).groupby(vid, sort=False).ffill().to_numpy()
    df["_fix"] = fix
    pts = df[["vehicle_id", "_t", "_fix", "lat", "lon"]]
    pp, pn = _neighbours(pts, cand, ["_t", "_fix", "lat", "lon"])
    d_in = haversine_np(pp["lat"].to_numpy(), pp["lon"].to_numpy(), lat, lon)
    d_out = haversine_np(lat, lon, pn["lat"].to_numpy(), pn["lon"].to_numpy())
    d_pn = haversine_np(pp["lat"].to_numpy(), pp["lon"].to_numpy(), pn["lat"].to_numpy(), pn["lon"].to_numpy())
    with np.errstate(divide="ignore", invalid="ignore"):
        dt_in, dt_out = t - pp["_fix"].to_numpy(), pn["_t"].to_numpy() - fix
        v_in = np.where(dt_in > 0, d_in / dt_in * 3.6, np.nan)
        v_out = np.where(dt_out > 0, d_out / dt_out * 3.6, np.nan)
    caps = s.physical_max_speed_kmh
    cap = df["vehicle_type"].map(caps).fillna(caps.get("default", max(caps.values()))).to_numpy(float)
    moving = np.where(cand & (v_in > s.moving_speed_kmh) & (v_in <= cap), v_in, np.nan)
    q = vid.map(pd.Series(moving).groupby(vid, sort=False).quantile(s.adaptive_speed_quantile))
    vmax = np.fmax(cap, s.adaptive_speed_alpha * q.to_numpy(float))
    with np.errstate(invalid="ignore"):
        leg_in_bad = (d_in > s.min_jump_m) & (v_in > vmax)
        leg_out_bad = (d_out > s.min_jump_m) & (v_out > vmax)
        shorter = np.fmin(d_in, d_out)
        spike = (
            cand
            & (d_in > s.spike_min_distance_m)
            & (d_out > s.spike_min_distance_m)
            & (d_pn < shorter)
            & ((leg_in_bad & leg_out_bad) | ((d_pn < s.spike_return_ratio * shorter) & (leg_in_bad | leg_out_bad)))
        )
    flags |= np.where(spike, FLAGS["speed_spike"], 0)
    cand2 = cand & ~spike
    pp2, pn2 = _neighbours(pts, cand2, ["_t", "_fix", "lat", "lon"])
    d_in2 = haversine_np(pp2["lat"].to_numpy(), pp2["lon"].to_numpy(), lat, lon)
    d_out2 = haversine_np(lat, lon, pn2["lat"].to_numpy(), pn2["lon"].to_numpy())
    with np.errstate(divide="ignore", invalid="ignore"):
        dt_in2, dt_out2 = t - pp2["_fix"].to_numpy(), pn2["_t"].to_numpy() - fix
        in_bad = (d_in2 > s.min_jump_m) & (np.where(dt_in2 > 0, d_in2 / dt_in2 * 3.6, np.nan) > vmax)
        out_bad = (d_out2 > s.min_jump_m) & (np.where(dt_out2 > 0, d_out2 / dt_out2 * 3.6, np.nan) > vmax)
    b_in, b_out = _blame(df, cand2, in_bad, out_bad, ~np.isnan(pp2["_t"].to_numpy()))
    flags |= np.where(b_in | b_out, FLAGS["impossible_speed"], 0)

    # rule 5
    speed = df["speed_kmh"].to_numpy(float)
    moving_now = np.where(np.isfinite(speed), speed, v_in) > s.moving_speed_kmh
    scand = ~has(flags, ("soc_out_of_range", *ROW_FLAGS)) & np.isfinite(soc)
    samples = pd.DataFrame({"vehicle_id": vid, "_t": t, "soc": soc, "moving": moving_now.astype(float)})
    sp, sn = _neighbours(samples, scand, ["_t", "soc", "moving"])
    j_in, j_out = soc - sp["soc"].to_numpy(), sn["soc"].to_numpy() - soc
    with np.errstate(invalid="ignore"):
        smaller = np.fmin(np.abs(j_in), np.abs(j_out))
        soc_spike = (
            scand
            & (np.abs(j_in) >= s.soc_spike_min_pct)
            & (np.abs(j_out) >= s.soc_spike_min_pct)
            & (np.sign(j_in) != np.sign(j_out))
            & (np.abs(sn["soc"].to_numpy() - sp["soc"].to_numpy()) <= s.soc_spike_return_ratio * smaller)
            & (np.fmax(t - sp["_t"].to_numpy(), sn["_t"].to_numpy() - t) <= s.soc_spike_max_gap_s)
        )
    flags |= np.where(soc_spike, FLAGS["soc_spike"], 0)
    scand2 = scand & ~soc_spike
    sp2, sn2 = _neighbours(samples, scand2, ["_t", "soc", "moving"])
    rise_per_s = s.max_charger_kw / df["battery_kwh"].to_numpy(float) * 100 / 3600
    fall_per_s = s.max_discharge_c_rate * 100 / 3600
    d2_in, d2_out = soc - sp2["soc"].to_numpy(), sn2["soc"].to_numpy() - soc
    dt2_in, dt2_out = t - sp2["_t"].to_numpy(), sn2["_t"].to_numpy() - t
    with np.errstate(invalid="ignore"):
        rate_in = (d2_in > rise_per_s * dt2_in + s.soc_tolerance_pct) | (-d2_in > fall_per_s * dt2_in + s.soc_tolerance_pct)
        rate_out = (d2_out > rise_per_s * dt2_out + s.soc_tolerance_pct) | (-d2_out > fall_per_s * dt2_out + s.soc_tolerance_pct)
        here = moving_now & scand2
        rise_in = (d2_in > s.soc_rise_driving_tolerance_pct) & (sp2["moving"].to_numpy() == 1) & here
        rise_out = (d2_out > s.soc_rise_driving_tolerance_pct) & here & (sn2["moving"].to_numpy() == 1)
    b_in, b_out = _blame(df, scand2, rate_in | rise_in, rate_out | rise_out, ~np.isnan(sp2["_t"].to_numpy()))
    flags |= np.where((b_in & rate_in) | (b_out & rate_out), FLAGS["soc_rate"], 0)
    flags |= np.where((b_in & rise_in) | (b_out & rise_out), FLAGS["soc_rise_while_driving"], 0)

    # repair
    row_ok = ~has(flags, ROW_FLAGS)
    groups = [
        (("lat", "lon"), row_ok & ~has(flags, POSITION_FLAGS), "position_imputed"),
        (("soc_pct",), row_ok & ~has(flags, SOC_FLAGS) & np.isfinite(soc), "soc_imputed"),
        (("speed_kmh",), row_ok & np.isfinite(speed) & (np.nan_to_num(speed, nan=-1) >= 0), "speed_imputed"),
        (("odometer_km",), row_ok & np.isfinite(df["odometer_km"].to_numpy(float)) & (np.nan_to_num(df["odometer_km"].to_numpy(float), nan=-1) >= 0), "odometer_imputed"),
    ]  # fmt: skip
    for fields, good, imputed in groups:
        cols = ["_t", *fields]
        masked = df[cols].where(pd.Series(good, index=df.index), np.nan)
        g = masked.groupby(vid, sort=False)
        prev = g.shift(1).groupby(vid, sort=False).ffill()
        nxt = g.shift(-1).groupby(vid, sort=False).bfill()
        tp, tn = prev["_t"].to_numpy(), nxt["_t"].to_numpy()
        gap, since, until = tn - tp, t - tp, tn - t
        with np.errstate(invalid="ignore", divide="ignore"):
            interp = ~np.isnan(tp) & ~np.isnan(tn) & (gap <= s.repair_max_gap_s)
            prev_ok = ~np.isnan(tp) & (since <= s.repair_fill_limit_s)
            next_ok = ~np.isnan(tn) & (until <= s.repair_fill_limit_s)
            use_prev = ~interp & prev_ok & (~next_ok | (since <= until))
            use_next = ~interp & next_ok & ~use_prev
            frac = np.where(gap > 0, since / gap, 0.0)
        for f in fields:
            pv, nv = prev[f].to_numpy(), nxt[f].to_numpy()
            value = np.where(interp, pv + (nv - pv) * frac, np.where(use_prev, pv, np.where(use_next, nv, np.nan)))
            df[f] = np.where(good, df[f].to_numpy(float), value)
        df[imputed] = ~good & (interp | use_prev | use_next)

    # local time, output
    df["quality_flags"] = flags
    df["is_usable"] = (flags & BLOCKING_MASK) == 0
    local = pd.Series(pd.NaT, index=df.index, dtype="datetime64[ns]")
    for zone, idx in df.groupby("timezone", sort=False).groups.items():
        local.loc[idx] = df.loc[idx, "ts"].dt.tz_localize("UTC").dt.tz_convert(zone).dt.tz_localize(None)
    df["ts_local"] = local
    df["local_date"] = local.dt.date
    return df.drop(columns=["_t", "_fix", "_suspect", "_tie", "vehicle_type", "battery_kwh"])

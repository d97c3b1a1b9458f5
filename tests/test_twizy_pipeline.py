"""The real RSK Twizy log through the pipeline, checked against figures derived from the raw file.

`python -m jobs.pipeline --inputs conf/datasets/twizy.yaml` (the dataset file carries the
vehicle's register line, Morocco's operating area and the Africa/Casablanca clock). The expected
values are computed here with pandas from ../shared/data/real/rsk_twizy_ev_trips/twizy_trips.csv.gz
alone, applying the documented rules by hand (docs/DEVICES.md, common/silver/trips.py definitions):
drives split at silences > 10 min and at standstills of >= 5 min, GPS km of moving legs, charges
= SOC rising across a silence at one place that is short enough to be a parked period. The
figures are recorded in docs/INSIGHTS.md. Model training and scoring on the log are covered by
tests/test_ml.py.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from common.io import tables
from tests.accuracy.scoring import dist_m
from tests.conftest import real_data

pytestmark = [pytest.mark.realdata, pytest.mark.timeout(2400)]

GAP_S = 600  # kpis.trips.max_gap_minutes
STOP_S = 300  # kpis.trips.min_stop_minutes
RADIUS_M = 100  # kpis.trips.stop_radius_m
MOVING_KMH = 2  # kpis.trips.moving_speed_kmh
PARKED_LIMIT_S = 2 * 3600  # a 1 Hz logger's parked-silence limit: the 2 h floor
MOROCCO = (27.0, 36.5, -13.5, -0.9)  # lat/lon box of conf/areas/morocco_coarse.wkt (its bounds)


def raw_log() -> pd.DataFrame:
    """The raw CSV as a user would read it: parseable timestamps (local Casablanca time -> UTC), valid positions."""
    path = real_data("rsk_twizy_ev_trips", "twizy_trips.csv.gz")
    raw = pd.read_csv(path)
    local = pd.to_datetime(raw["Date"] + " " + raw["Time"], format="%m/%d/%Y %H:%M:%S", errors="coerce")
    ok = local.notna() & local.dt.year.between(2021, 2021)
    df = raw[ok].assign(ts=local[ok].dt.tz_localize("Africa/Casablanca", ambiguous="NaT", nonexistent="NaT").dt.tz_convert("UTC"))
    lat0, lat1, lon0, lon1 = MOROCCO
    df = df[df.LAT.between(lat0, lat1) & df.LON.between(lon0, lon1)]
    return df.sort_values("ts").drop_duplicates("ts").reset_index(drop=True)


def expected_figures(df: pd.DataFrame) -> dict:
    t = df.ts.astype("int64").to_numpy() / 1e9
    dt = np.r_[np.inf, np.diff(t)]
    leg_m = np.r_[0.0, dist_m(df.LAT.to_numpy()[:-1], df.LON.to_numpy()[:-1], df.LAT.to_numpy()[1:], df.LON.to_numpy()[1:])]
    speed = df.Speed.to_numpy()
    moving_leg = (dt <= GAP_S) & ((np.r_[0.0, speed[:-1]] + speed) / 2 > MOVING_KMH)
    # standstills of >= 5 min end a drive; so does a silence > 10 min
    still = speed <= MOVING_KMH
    run = np.cumsum(~still | (dt > GAP_S) | (leg_m > RADIUS_M))
    run_span = pd.Series(t).groupby(run).transform(lambda x: x.max() - x.min()).to_numpy()
    in_stop = still & (run_span >= STOP_S)
    drive = np.cumsum((dt > GAP_S) | (in_stop & ~np.r_[False, in_stop[:-1]]))
    km = pd.Series(np.where(moving_leg & ~in_stop, leg_m / 1000, 0.0)).groupby(drive).sum()
    drives = km[km >= 0.2]
    # charges: the SOC rose > 5 points across a silence at one place short enough to be parked
    edges = pd.DataFrame({"t": t, "lat": df.LAT, "lon": df.LON, "soc": df.Soc})
    silence = dt > GAP_S
    before = edges.shift(1)
    same_place = dist_m(before.lat, before.lon, edges.lat, edges.lon) <= RADIUS_M
    charges = silence & same_place & (dt <= PARKED_LIMIT_S) & (edges.soc - before.soc > 5)
    dates = df.ts.dt.tz_convert("Africa/Casablanca").dt.date
    span = (max(dates) - min(dates)).days + 1
    return {
        "drives": len(drives),
        "km": float(drives.sum()),
        "charges": int(charges.sum()),
        "days_with_data": dates.nunique(),
        "silent_day_share": 1 - dates.nunique() / span,
    }


def test_twizy_runs_every_stage_that_applies(twizy_lakehouse):
    _, _, reports = twizy_lakehouse
    assert [s for s, r in reports.items() if r.status == "ok"] == ["ingest", "clean", "kpis", "residence", "charging", "hotspots", "risk", "charging_plan", "report", "export"]
    assert reports["stations"].notes == ["no bronze.stations - configure inputs.stations to enable"]
    print("\ncharging_plan: " + "; ".join(reports["charging_plan"].notes))
    assert reports["charging_plan"].rows_in == reports["risk"].rows_out  # every vehicle of the log is planned or says why


def test_twizy_figures_match_the_raw_file(spark, twizy_lakehouse):
    _, cfg, _ = twizy_lakehouse
    want = expected_figures(raw_log())
    trips = tables.read(spark, cfg, "silver.trips").toPandas()
    events = tables.read(spark, cfg, "silver.charging_events").toPandas()
    profile = tables.read(spark, cfg, "silver.device_profiles").toPandas().iloc[0]
    risk = tables.read(spark, cfg, "gold.driver_risk").toPandas().iloc[0]
    print(f"\ntwizy: {len(trips)} trips, {trips.distance_km.sum():.1f} km, {len(events)} charging events, mode {profile.device_mode}; expected {want}")
    assert len(trips) == want["drives"]
    assert trips.distance_km.sum() == pytest.approx(want["km"], rel=0.01)
    assert len(events) == want["charges"]
    assert profile.days_with_data == want["days_with_data"]
    assert profile.silent_day_share == pytest.approx(want["silent_day_share"], abs=1e-9)
    assert profile.device_mode == ("mostly_silent" if want["silent_day_share"] >= cfg.devices.silent_day_share else profile.device_mode)
    # a 1-2 h logger day is never 50 % covered: not scored, and says so
    assert risk.tier == "insufficient_data" and risk.reasons[0].startswith("no reported day")

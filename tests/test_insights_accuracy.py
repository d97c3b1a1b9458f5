"""Accuracy of residences, charging sites, hotspots and driver risk against the generator's truth.

Runs jobs.residence, jobs.charging, jobs.hotspots and jobs.risk once on the shared generated
fleet (`fleet_silver`: 24 vehicles x 7 days, seed 7) and prints a table of the scores it asserts:

- homes within 150 m of truth.homes, vehicles with >= 5 observed nights: >= 97 %;
- charging sites (truth.charging_sites: homes and stations with a successful charge) matched
  one-to-one within 150 m: recall >= 95 %, precision >= 95 %;
- hotspots (truth.hotspots with expected_unique_daily_visits >= the configured minimum) matched
  within 150 m: recall >= 95 %, precision >= 90 %. The small fleet makes ~7 x 24 vehicle-days,
  so the minimum is lowered from the production default 50 to 15 unique visits for this test
  (min_samples 5): the truth then has 11 places with 22-88 expected visits and none between 9 and 21;
- at-risk drivers (truth.at_risk_drivers.is_at_risk) = tier High: recall >= 90 %, precision >= 80 %.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from common import tables
from common.geo import EARTH_RADIUS_M

# The first test builds the shared fleet (generate, ingest, clean) if no earlier test did, then
# runs the four insight jobs: more than the suite's per-test default on a busy 2-core machine.
pytestmark = pytest.mark.timeout(3600)

MATCH_M = 150.0
SCORES: dict[str, tuple[str, float, str]] = {}


def _dist_m(lat1, lon1, lat2, lon2):
    p1, p2 = np.radians(lat1), np.radians(lat2)
    a = np.sin((p2 - p1) / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(np.radians(lon2 - lon1) / 2) ** 2
    return 2 * EARTH_RADIUS_M * np.arcsin(np.sqrt(np.clip(a, 0, 1)))


def match_one_to_one(truth: pd.DataFrame, found: pd.DataFrame, radius_m: float) -> list[tuple[int, int, float]]:
    """Greedy one-to-one matching by increasing distance (index in truth, index in found, metres)."""
    if truth.empty or found.empty:
        return []
    d = _dist_m(truth.lat.to_numpy()[:, None], truth.lon.to_numpy()[:, None], found.lat.to_numpy()[None, :], found.lon.to_numpy()[None, :])
    pairs = sorted((d[i, j], i, j) for i, j in zip(*np.nonzero(d <= radius_m)))
    used_t, used_f, out = set(), set(), []
    for dist, i, j in pairs:
        if i not in used_t and j not in used_f:
            used_t.add(i)
            used_f.add(j)
            out.append((i, j, dist))
    return out


@pytest.fixture(scope="module")
def insights(spark, fleet_silver):
    """The four insight jobs on the shared fleet; hotspot minimum lowered for 24 vehicles x 7 days."""
    from jobs.charging import run_charging
    from jobs.hotspots import run_hotspots
    from jobs.residence import run_residence
    from jobs.risk import run_risk

    cfg = fleet_silver.model_copy(deep=True)
    cfg.hotspots.min_unique_visits = 15
    cfg.hotspots.min_samples = 5
    for run in (run_residence, run_charging, run_hotspots, run_risk):
        run(spark, cfg)
    yield cfg
    if SCORES:
        print("\n" + format_scores())


def format_scores() -> str:
    lines = [f"{'metric':<44}{'score':>9}  {'target':<8} detail", "-" * 100]
    for name, (target, value, detail) in SCORES.items():
        lines.append(f"{name:<44}{value:>9.1%}  {target:<8} {detail}")
    return "\n".join(lines)


def _read(spark, cfg, table) -> pd.DataFrame:
    return tables.read(spark, cfg, table).toPandas()


def test_homes_within_150m(spark, insights):
    res = _read(spark, insights, "restricted.residences")
    truth = _read(spark, insights, "truth.homes")
    m = truth.merge(res, on="vehicle_id", how="left")
    m = m[m.nights_observed.fillna(0) >= 5]
    err = _dist_m(m.home_lat_x.to_numpy(), m.home_lon_x.to_numpy(), m.home_lat_y.to_numpy(), m.home_lon_y.to_numpy())
    ok = np.nan_to_num(err, nan=np.inf) <= MATCH_M
    share = ok.mean()
    SCORES["homes within 150 m (>= 5 nights)"] = (">= 97%", share, f"{ok.sum()}/{len(m)} vehicles, median error {np.nanmedian(err):.1f} m")
    print(f"\nhomes: {ok.sum()}/{len(m)} within {MATCH_M:.0f} m; errors (m): {np.round(np.sort(err), 1).tolist()}")
    assert len(m) >= 20 and share >= 0.97


def test_charging_sites(spark, insights):
    sites = _read(spark, insights, "gold.charging_sites")
    exact_homes = _read(spark, insights, "restricted.home_charging_sites")[["site_id", "lat", "lon"]]
    # gold keeps private sites (home, single-vehicle unknown) coarsened; score them at their exact (restricted) position
    sites = sites.merge(exact_homes, on="site_id", how="left", suffixes=("", "_exact"))
    home = sites.lat_exact.notna()
    sites.loc[home, "lat"] = sites.loc[home, "lat_exact"]
    sites.loc[home, "lon"] = sites.loc[home, "lon_exact"]
    truth = _read(spark, insights, "truth.charging_sites").reset_index(drop=True)
    sites = sites.reset_index(drop=True)
    pairs = match_one_to_one(truth, sites, MATCH_M)
    recall, precision = len(pairs) / len(truth), len(pairs) / len(sites)
    kinds_ok = sum(truth.kind[i] == sites.kind[j] for i, j, _ in pairs)
    detail = f"{len(pairs)} matched of {len(truth)} truth / {len(sites)} found; kind agrees on {kinds_ok}"
    SCORES["charging sites recall"] = (">= 95%", recall, detail)
    SCORES["charging sites precision"] = (">= 95%", precision, "")
    missed = truth.drop(index=[i for i, _, _ in pairs])
    extra = sites.drop(index=[j for _, j, _ in pairs])
    print(f"\ncharging sites: {detail}\nmissed:\n{missed.to_string()}\nextra:\n{extra[['site_id', 'kind', 'n_events', 'n_vehicles']].to_string()}")
    assert recall >= 0.95 and precision >= 0.95


def test_hotspots(spark, insights):
    found = _read(spark, insights, "gold.hotspots").reset_index(drop=True)
    truth_all = _read(spark, insights, "truth.hotspots")
    truth = truth_all[truth_all.expected_unique_daily_visits >= insights.hotspots.min_unique_visits].reset_index(drop=True)
    pairs = match_one_to_one(truth, found, MATCH_M)
    recall, precision = len(pairs) / len(truth), len(pairs) / max(len(found), 1)
    SCORES["hotspots recall"] = (">= 95%", recall, f"{len(pairs)} of {len(truth)} truth places (>= {insights.hotspots.min_unique_visits} visits)")
    SCORES["hotspots precision"] = (">= 90%", precision, f"{len(pairs)} of {len(found)} hotspots")
    rows = [
        (truth.hotspot_id[i], truth.kind[i], int(truth.expected_unique_daily_visits[i]), found.hotspot_id[j], int(found.unique_visits[j]), round(d, 1))
        for i, j, d in pairs
    ]
    print("\n" + pd.DataFrame(rows, columns=["truth", "kind", "expected", "found", "unique_visits", "dist_m"]).to_string())
    assert recall >= 0.95 and precision >= 0.90


def test_at_risk_drivers(spark, insights):
    risk = _read(spark, insights, "gold.driver_risk")
    truth = _read(spark, insights, "truth.at_risk_drivers")
    m = truth.merge(risk, on="vehicle_id", how="left")
    flagged = m.tier == "High"
    tp = int((flagged & m.is_at_risk).sum())
    recall = tp / max(int(m.is_at_risk.sum()), 1)
    precision = tp / max(int(flagged.sum()), 1)
    SCORES["at-risk drivers recall (tier High)"] = (">= 90%", recall, f"{tp} of {int(m.is_at_risk.sum())} at-risk drivers")
    SCORES["at-risk drivers precision (tier High)"] = (">= 80%", precision, f"{tp} of {int(flagged.sum())} High")
    offline = m[m.profile == "offline"]
    print("\n" + m[["vehicle_id", "profile", "tier", "score", "z_score", "coverage_share", "low_coverage", "signals"]].to_string())
    assert recall >= 0.90 and precision >= 0.80
    # an offline device is reported as low coverage, never High because of the missing days
    assert (offline.tier != "High").all()

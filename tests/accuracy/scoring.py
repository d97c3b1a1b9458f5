"""Scores of the insight tables against the generator's truth (denominators from the truth tables).

Shared by the accuracy tests (tests/accuracy/) and ad-hoc runs: every function takes pandas frames
read from the lakehouse and returns a `Score` (value, numerator, denominator, detail). Matching is
greedy one-to-one by increasing distance (haversine, metres), computed here with numpy
independently of the product's code.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

EARTH_RADIUS_M = 6_371_008.8
MATCH_M = 150.0  # a found place within 150 m of a true one is that place


@dataclass(frozen=True)
class Score:
    name: str
    target: float
    numerator: int
    denominator: int
    detail: str = ""

    @property
    def value(self) -> float:
        return self.numerator / self.denominator if self.denominator else float("nan")

    @property
    def ok(self) -> bool:
        return self.denominator > 0 and self.value >= self.target


def dist_m(lat1, lon1, lat2, lon2) -> np.ndarray:
    p1, p2 = np.radians(lat1), np.radians(lat2)
    a = np.sin((p2 - p1) / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(np.radians(np.asarray(lon2) - np.asarray(lon1)) / 2) ** 2
    return 2 * EARTH_RADIUS_M * np.arcsin(np.sqrt(np.clip(a, 0, 1)))


def match_one_to_one(truth: pd.DataFrame, found: pd.DataFrame, radius_m: float = MATCH_M) -> list[tuple[int, int, float]]:
    """Greedy one-to-one matching by increasing distance: (row in truth, row in found, metres)."""
    if truth.empty or found.empty:
        return []
    d = dist_m(truth.lat.to_numpy()[:, None], truth.lon.to_numpy()[:, None], found.lat.to_numpy()[None, :], found.lon.to_numpy()[None, :])
    pairs = sorted((d[i, j], i, j) for i, j in zip(*np.nonzero(d <= radius_m)))
    used_t, used_f, out = set(), set(), []
    for dist, i, j in pairs:
        if i not in used_t and j not in used_f:
            used_t.add(i)
            used_f.add(j)
            out.append((i, j, float(dist)))
    return out


def homes(truth_homes: pd.DataFrame, residences: pd.DataFrame, min_nights: int = 5) -> Score:
    """Vehicles with >= min_nights observed nights whose home is within MATCH_M of the true one."""
    m = truth_homes.merge(residences, on="vehicle_id", how="left", suffixes=("_true", ""))
    m = m[m.nights_observed.fillna(0) >= min_nights]
    err = dist_m(m.home_lat_true.to_numpy(), m.home_lon_true.to_numpy(), m.home_lat.to_numpy(dtype=float), m.home_lon.to_numpy(dtype=float))
    ok = np.nan_to_num(err, nan=np.inf) <= MATCH_M
    return Score("homes within 150 m", 0.97, int(ok.sum()), len(m), f"median error {np.nanmedian(err):.1f} m")


def charging_sites(truth_sites: pd.DataFrame, found_sites: pd.DataFrame) -> tuple[Score, Score]:
    """Recall and precision of the fleet's charging sites (homes and stations with a successful charge)."""
    truth, found = truth_sites.reset_index(drop=True), found_sites.reset_index(drop=True)
    pairs = match_one_to_one(truth, found)
    detail = f"{len(pairs)} matched of {len(truth)} true / {len(found)} found"
    return Score("charging sites recall", 0.95, len(pairs), len(truth), detail), Score("charging sites precision", 0.95, len(pairs), len(found), detail)


def hotspots(truth_hotspots: pd.DataFrame, found: pd.DataFrame, min_unique_visits: int) -> tuple[Score, Score, pd.DataFrame]:
    """Recall over true places with >= min_unique_visits expected unique daily visits; precision over
    the found hotspots, a found one counting as right only when matched to such a place."""
    truth = truth_hotspots[truth_hotspots.expected_unique_daily_visits >= min_unique_visits].reset_index(drop=True)
    found = found.reset_index(drop=True)
    pairs = match_one_to_one(truth, found)
    rows = pd.DataFrame(
        [(truth.hotspot_id[i], int(truth.expected_unique_daily_visits[i]), found.hotspot_id[j], int(found.unique_visits[j]), round(d, 1)) for i, j, d in pairs],
        columns=["truth", "expected_visits", "found", "unique_visits", "dist_m"],
    )
    return (
        Score("hotspots recall", 0.95, len(pairs), len(truth), f"true places with >= {min_unique_visits} visits"),
        Score("hotspots precision", 0.90, len(pairs), len(found), f"{len(found)} hotspots found"),
        rows,
    )


def at_risk(truth_drivers: pd.DataFrame, risk: pd.DataFrame) -> tuple[Score, Score]:
    """Low-activity (at-risk) drivers flagged High: recall over truth, precision over the High tier."""
    m = truth_drivers.merge(risk[["vehicle_id", "tier"]], on="vehicle_id", how="left")
    flagged = (m.tier == "High").to_numpy()
    truth = m.is_at_risk.to_numpy(dtype=bool)
    tp = int((flagged & truth).sum())
    return (
        Score("low-activity drivers recall", 0.90, tp, int(truth.sum())),
        Score("low-activity drivers precision", 0.80, tp, int(flagged.sum())),
    )


# anomaly type -> (silver flags that handle it, ingest quarantine reasons that handle it)
ANOMALY_HANDLING = {
    "invalid_coord": (("invalid_coord",), ("missing_lat", "missing_lon", "lat_out_of_range", "lon_out_of_range")),
    "zero_coord": (("zero_coord",), ()),
    "outside_area": (("outside_area",), ()),
    "speed_spike": (("speed_spike", "impossible_speed"), ()),
    "soc_spike": (("soc_spike", "soc_rate", "soc_rise_while_driving"), ()),
    "soc_out_of_range": (("soc_out_of_range",), ("soc_pct_out_of_range",)),
    "near_duplicate": (("duplicate",), ()),
}


def anomalies(keys: pd.DataFrame, flag_bits: dict[str, int]) -> tuple[Score, Score]:
    """Injected anomalies (the types cleaning or ingest must catch) over all keys (vehicle_id, ts).

    `keys`: one row per key with `flags` (silver bitmask, OR over the key's rows), `reasons` (ingest
    quarantine reasons) and `anomaly_type` (truth, null = clean). A key is detected when a rule
    meant for its type fired; precision counts every key any position/SOC/duplicate rule fired on."""
    handled = keys.anomaly_type.isin(list(ANOMALY_HANDLING))

    def caught(row) -> bool:
        flags, reasons = ANOMALY_HANDLING[row["anomaly_type"]]
        mask = sum(flag_bits[f] for f in flags)
        return bool(int(row["flags"]) & mask) or any(r in reasons for r in (row["reasons"] if row["reasons"] is not None else []))

    tp = int(keys[handled].apply(caught, axis=1).sum()) if handled.any() else 0
    rule_mask = sum(flag_bits[f] for fl, _ in ANOMALY_HANDLING.values() for f in fl)
    fired = ((keys["flags"].astype(int) & rule_mask) != 0) | keys["reasons"].apply(lambda r: any(x in {q for _, qs in ANOMALY_HANDLING.values() for q in qs} for x in (r if r is not None else [])))
    correct = fired & handled
    return (
        Score("injected anomalies recall", 0.95, tp, int(handled.sum())),
        Score("injected anomalies precision", 0.99, int(correct.sum()), int(fired.sum())),
    )


def format_table(fleet: str, scores: list[Score]) -> str:
    lines = [f"accuracy on fleet {fleet}", f"{'metric':<34}{'score':>8}  {'n/N':>11}  {'target':>7}  ok  detail", "-" * 96]
    for s in scores:
        lines.append(f"{s.name:<34}{s.value:>8.1%}  {f'{s.numerator}/{s.denominator}':>11}  {s.target:>7.0%}  {'yes' if s.ok else 'NO ':<3} {s.detail}")
    return "\n".join(lines)

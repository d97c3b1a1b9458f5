"""Site capacity (gold.site_capacity): Erlang C against the textbook formula and a queue
simulation, ports needed by brute force, the hour-of-week table against pandas on a simulated
4-port station (Europe/London). The job's table on the generated network and on Dundee's
sessions: tests/test_reliability.py.
"""

from __future__ import annotations

import heapq
import math

import numpy as np
import pandas as pd
import pytest
from chispa import assert_df_equality
from pyspark.sql import functions as F

from common.core.config import CapacityConfig
from common.network.capacity import erlang_c, ports_needed, site_capacity, station_ports

PARAMS = CapacityConfig()


def textbook_erlang_c(c: int, a: float) -> float:
    """C(c, a) = (a^c / c! x c / (c - a)) / (sum_{k<c} a^k / k! + a^c / c! x c / (c - a))."""
    top = a**c / math.factorial(c) * c / (c - a)
    return top / (sum(a**k / math.factorial(k) for k in range(c)) + top)


def mmc_queue(arrivals: np.ndarray, services: np.ndarray, ports: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """FCFS M/M/c: (service start, end, port) per customer, arrivals sorted."""
    free = [(0.0, p) for p in range(ports)]
    heapq.heapify(free)
    start, end, port = np.empty(len(arrivals)), np.empty(len(arrivals)), np.empty(len(arrivals), dtype=int)
    for i, (t, s) in enumerate(zip(arrivals, services)):
        at, p = heapq.heappop(free)
        start[i] = max(t, at)
        end[i] = start[i] + s
        port[i] = p
        heapq.heappush(free, (end[i], p))
    return start, end, port


# --------------------------------------------------------------------------------------------
# Erlang C and ports needed
# --------------------------------------------------------------------------------------------
def test_erlang_c_matches_the_textbook_formula_and_its_edges():
    cases = [(1, 0.5), (2, 1.0), (4, 3.0), (11, 10.0), (30, 25.5), (60, 40.0)]
    got = erlang_c(np.array([c for c, _ in cases]), np.array([a for _, a in cases]))
    assert got == pytest.approx([textbook_erlang_c(c, a) for c, a in cases], rel=1e-9)
    assert got[1] == pytest.approx(1 / 3)  # by hand: (1/2 x 2) / (1 + 1 + 1)
    edges = erlang_c(np.array([3.0, 3.0, 3.0, np.nan, 2.0]), np.array([0.0, 3.0, 7.5, 1.0, np.nan]))
    assert edges[:3].tolist() == [0.0, 1.0, 1.0]  # no load never waits; a >= c is unstable
    assert np.isnan(edges[3:]).all()


@pytest.mark.parametrize("target", [0.05, 0.1, 0.3])
def test_ports_needed_is_the_fewest_ports_meeting_the_target(target):
    loads = np.array([0.0, 0.2, 0.9, 1.5, 2.0, 3.0, 6.0, 17.3, 42.0])
    brute = [next(c for c in range(1, 200) if c > a and textbook_erlang_c(c, a) <= target) if a > 0 else 1 for a in loads]
    assert ports_needed(loads, target, 500).tolist() == brute
    assert ports_needed(np.array([42.0, np.nan]), target, 10).tolist() == [-1, -1]  # beyond the bound, unknown load


@pytest.mark.parametrize("ports,load", [(1, 0.5), (3, 2.0), (8, 6.0)])
def test_erlang_c_and_mean_wait_match_a_queue_simulation(ports, load):
    rng = np.random.default_rng(ports)
    n = 200_000
    arrivals = np.cumsum(rng.exponential(1.0, n))  # rate 1 per hour: service mean = load hours
    services = rng.exponential(load, n)
    start, _, _ = mmc_queue(arrivals, services, ports)
    wait = (start - arrivals)[n // 10 :]  # after the warm-up
    c = erlang_c(np.array([ports]), np.array([load]))[0]
    mean_wait = c * load / (ports - load)
    print(f"\nM/M/{ports}, a={load}: P(wait) sim {np.mean(wait > 0):.4f} vs Erlang C {c:.4f}; mean wait sim {wait.mean():.4f} h vs {mean_wait:.4f} h")
    assert np.mean(wait > 0) == pytest.approx(c, abs=0.02)
    assert wait.mean() == pytest.approx(mean_wait, rel=0.1)


def test_ports_needed_holds_the_target_in_a_simulation_and_one_fewer_does_not():
    load, target = 3.5, 0.1  # C(6, 3.5) = 0.177, C(7, 3.5) = 0.076: a clear step either side of the target
    need = int(ports_needed(np.array([load]), target, 500)[0])
    rng = np.random.default_rng(7)
    n = 200_000
    arrivals, services = np.cumsum(rng.exponential(1.0, n)), rng.exponential(load, n)
    waited = {c: np.mean((mmc_queue(arrivals, services, c)[0] - arrivals)[n // 10 :] > 0) for c in (need - 1, need)}
    print(f"\na={load}, target {target}: {need} ports; simulated P(wait) {waited}")
    assert waited[need] <= target + 0.01 and waited[need - 1] > target + 0.02


# --------------------------------------------------------------------------------------------
# The hour-of-week table
# --------------------------------------------------------------------------------------------
ZONE = "Europe/London"
T0 = pd.Timestamp("2024-04-01 00:00", tz=ZONE)  # a Monday; 26 weeks stay inside British Summer Time
WEEKS = 26
PEAK_RATE, OFF_RATE, SERVICE_H, PORTS = 2.0, 0.3, 1.0, 4


def _is_peak(local: pd.DatetimeIndex) -> np.ndarray:
    return (local.dayofweek < 5) & (local.hour >= 8) & (local.hour < 18)


@pytest.fixture(scope="module")
def simulated_station():
    """Non-homogeneous Poisson arrivals (2/h weekdays 08-18 local, 0.3/h otherwise), exponential
    1 h plug-in, 4 ports FCFS; a session starts when a port frees (what a charger records)."""
    rng = np.random.default_rng(24)
    hours = pd.date_range(T0, periods=WEEKS * 168, freq="h")
    rates = np.where(_is_peak(hours), PEAK_RATE, OFF_RATE)
    counts = rng.poisson(rates)
    h0 = np.repeat(hours.asi8 / 1e9, counts)
    arrivals = np.sort(h0 + rng.uniform(0, 3600, len(h0)))
    services = rng.exponential(SERVICE_H * 3600, len(arrivals))
    start, end, port = mmc_queue(arrivals, services, PORTS)
    sessions = pd.DataFrame(
        {
            "session_id": [f"S{i:06d}" for i in range(len(arrivals))],
            "station_id": "SIM",
            "port_id": [f"SIM-{p}" for p in port],
            "start_ts": pd.to_datetime(start, unit="s"),
            "end_ts": pd.to_datetime(end, unit="s"),
            "arrival": pd.to_datetime(arrivals, unit="s"),
        }
    )
    obs_end = (T0 + pd.Timedelta(weeks=WEEKS)).tz_convert("UTC").strftime("%Y-%m-%d %H:%M:%S")
    return sessions, obs_end


@pytest.fixture(scope="module")
def simulated_capacity(spark, simulated_station):
    sessions, obs_end = simulated_station
    sdf = spark.createDataFrame(sessions.drop(columns="arrival")).withColumn("source_name", F.lit("sim"))
    ports = station_ports(sdf, None, None)
    return site_capacity(sdf, ports, PARAMS, ZONE, obs_end).toPandas().sort_values("hour_of_week").reset_index(drop=True)


def _how(local: pd.Series) -> pd.Series:
    return local.dt.dayofweek * 24 + local.dt.hour


def test_hour_of_week_table_equals_a_pandas_computation(simulated_station, simulated_capacity):
    everything, obs_end = simulated_station
    end = pd.Timestamp(obs_end)
    sessions = everything[everything.start_ts < end]  # a queue can start a session after the window end
    got = simulated_capacity
    assert len(got) == 168 and got.hour_of_week.tolist() == list(range(168))
    assert (got.ports == PORTS).all() and (got.ports_basis == "observed_ports").all() and (got.timezone == ZONE).all()
    assert (got.rate_basis == "hour_of_week").all()  # 25-26 weeks >= min_slot_hours
    assert got.arrivals.sum() == len(sessions)  # every session inside the window counted once

    local_start = sessions.start_ts.dt.tz_localize("UTC").dt.tz_convert(ZONE)
    window = pd.date_range(local_start.min().floor("h"), T0 + pd.Timedelta(weeks=WEEKS), freq="h", inclusive="left")
    slots = pd.Series(window.dayofweek * 24 + window.hour).value_counts().reindex(range(168), fill_value=0)
    assert got.slot_hours.tolist() == slots.tolist()  # from the first session's hour to the observation end
    assert set(slots) <= {WEEKS - 1, WEEKS}
    local_end = sessions.end_ts.clip(upper=end).dt.tz_localize("UTC").dt.tz_convert(ZONE)  # occupancy cut at the window end
    by_slot = sessions.assign(how=_how(local_start), h=(sessions.end_ts - sessions.start_ts).dt.total_seconds() / 3600).groupby("how")
    expected_arrivals = by_slot.size().reindex(range(168), fill_value=0)
    expected_service = by_slot.h.mean().reindex(range(168))
    occupied = np.zeros(168)
    for a, b in zip(local_start, local_end):  # split each session at local hour boundaries
        h = a.floor("h")
        while h < b:
            occupied[h.dayofweek * 24 + h.hour] += (min(b, h + pd.Timedelta(hours=1)) - max(a, h)).total_seconds() / 3600
            h += pd.Timedelta(hours=1)
    assert got.arrivals.tolist() == expected_arrivals.tolist()
    assert got.arrival_rate_per_h.to_numpy() == pytest.approx(expected_arrivals.to_numpy() / slots.to_numpy())
    own = expected_arrivals >= PARAMS.min_service_sessions
    assert (got.service_basis == np.where(own, "slot", "station")).all()
    assert got.mean_service_h[own.to_numpy()].to_numpy() == pytest.approx(expected_service[own].to_numpy())
    station_mean = (sessions.end_ts - sessions.start_ts).dt.total_seconds().mean() / 3600
    assert got.mean_service_h[~own.to_numpy()].to_numpy() == pytest.approx(station_mean)
    assert got.occupied_port_h.to_numpy() == pytest.approx(occupied)
    assert got.utilisation.to_numpy() == pytest.approx(occupied / (PORTS * slots.to_numpy()))
    load = got.arrival_rate_per_h * got.mean_service_h
    assert got.offered_load_erlangs.to_numpy() == pytest.approx(load.to_numpy())
    stable = load < PORTS
    assert (got.stable == stable).all()
    assert got.p_wait[stable].to_numpy() == pytest.approx([textbook_erlang_c(PORTS, a) for a in load[stable]], rel=1e-9)
    assert got.ports_needed.tolist() == [next(c for c in range(1, 50) if c > a and textbook_erlang_c(c, a) <= PARAMS.target_p_wait) for a in load]
    assert (got.additional_ports == np.maximum(got.ports_needed - PORTS, 0)).all()


def test_capacity_recovers_the_simulated_demand_and_waiting(simulated_station, simulated_capacity):
    """Against what was simulated, not the table's own definitions: the arrival rate and offered
    load of peak hours, and the share of peak arrivals that waited for a port."""
    sessions, _ = simulated_station
    got = simulated_capacity
    slot_local = pd.date_range("2024-04-01", periods=168, freq="h")  # a Monday: index = hour of week
    peak = got[_is_peak(slot_local)]
    arrivals_local = sessions.arrival.dt.tz_localize("UTC").dt.tz_convert(ZONE)
    peak_arrivals = sessions[_is_peak(pd.DatetimeIndex(arrivals_local)) & (arrivals_local.dt.hour >= 10)]
    waited = (peak_arrivals.start_ts > peak_arrivals.arrival).mean()
    w = peak[peak.hour >= 10]
    table_p_wait = np.average(w.p_wait, weights=w.arrivals)
    true_c = textbook_erlang_c(PORTS, PEAK_RATE * SERVICE_H)
    print(
        f"\npeak: rate {peak.arrival_rate_per_h.mean():.3f}/h (true {PEAK_RATE}), load {peak.offered_load_erlangs.mean():.3f} "
        f"(true {PEAK_RATE * SERVICE_H}), utilisation 10-18 h {w.utilisation.mean():.3f} (true {PEAK_RATE * SERVICE_H / PORTS}); P(wait) 10-18 h: table {table_p_wait:.3f}, "
        f"simulated {waited:.3f}, Erlang C of the true load {true_c:.3f}"
    )
    n = PEAK_RATE * len(peak) * WEEKS  # Poisson count of peak arrivals: 4 sigma
    assert peak.arrival_rate_per_h.mean() == pytest.approx(PEAK_RATE, rel=4 / math.sqrt(n) + 0.02)
    assert peak.offered_load_erlangs.mean() == pytest.approx(PEAK_RATE * SERVICE_H, rel=0.1)
    # occupancy lags arrivals by a plug-in time: judged from 10 h, when the peak's queue has built up
    assert w.utilisation.mean() == pytest.approx(PEAK_RATE * SERVICE_H / PORTS, abs=0.04)
    assert table_p_wait == pytest.approx(waited, abs=0.06)
    off = got[~_is_peak(slot_local) & (slot_local.hour < 6)]  # far from the peak: no carry-over
    assert off.arrival_rate_per_h.mean() == pytest.approx(OFF_RATE, rel=0.2)


def test_station_without_ports_or_finished_sessions_keeps_its_rows(spark):
    """Ports from the register, or unknown; a slot without finished sessions takes the station's
    mean plug-in time; a station with none has no load: rows stay, figures are null."""
    rows = [
        ("A1", "A", None, "2024-04-01 09:10:00", "2024-04-01 10:10:00"),
        ("A2", "A", None, "2024-04-01 09:40:00", "2024-04-01 10:10:00"),
        ("A3", "A", None, "2024-04-02 15:00:00", None),
        ("B1", "B", None, "2024-04-03 12:00:00", None),
    ]
    sdf = spark.createDataFrame(rows, "session_id string, station_id string, port_id string, start_ts string, end_ts string")
    sdf = sdf.select("session_id", "station_id", "port_id", *[F.col(c).cast("timestamp").alias(c) for c in ("start_ts", "end_ts")])
    register = spark.createDataFrame([("A", 2, 1)], "station_id string, level2_count int, dc_fast_count int")
    params = PARAMS.model_copy(update={"min_service_sessions": 2, "min_slot_hours": 1})
    got = site_capacity(sdf, station_ports(sdf, None, register), params, "UTC", "2024-04-08 00:00:00").cache()
    assert got.count() == 2 * 168
    assert got.groupBy().sum("arrivals").first()[0] == 4
    view = got.where("hour_of_week IN (9, 39, 60)").select("station_id", "hour_of_week", "arrivals", "mean_service_h", "service_basis", "ports", "ports_basis")
    expected = spark.createDataFrame(
        [
            ("A", 9, 2, 0.75, "slot", 3, "station_register"),
            ("A", 39, 1, 0.75, "station", 3, "station_register"),  # Tuesday 15:00: open session, station mean
            ("A", 60, 0, 0.75, "station", 3, "station_register"),
            ("B", 9, 0, None, None, None, "unknown"),
            ("B", 39, 0, None, None, None, "unknown"),
            ("B", 60, 1, None, None, None, "unknown"),
        ],
        "station_id string, hour_of_week int, arrivals long, mean_service_h double, service_basis string, ports long, ports_basis string",
    )
    assert_df_equality(view, expected, ignore_row_order=True, ignore_nullable=True)
    b = got.where("station_id = 'B'").select("p_wait", "ports_needed", "additional_ports", "stable", "expected_wait_min").distinct().collect()
    assert [tuple(r) for r in b] == [(None, None, None, None, None)]  # unknown ports: no queueing figure, not "0 more"
    a9 = got.where("station_id = 'A' AND hour_of_week = 9").first()
    assert a9.offered_load_erlangs == pytest.approx(2 * 0.75) and a9.p_wait == pytest.approx(textbook_erlang_c(3, 1.5))
    assert a9.expected_wait_min == pytest.approx(textbook_erlang_c(3, 1.5) * 0.75 / (3 - 1.5) * 60)
    got.unpersist()

    # one week of data (slot_hours 1 < min_slot_hours 4): the rate pools the local hour over the week
    pooled = site_capacity(sdf, station_ports(sdf, None, register), PARAMS.model_copy(update={"min_service_sessions": 2}), "UTC", "2024-04-08 00:00:00")
    nine = pooled.where("station_id = 'A' AND hour = 9").select("arrival_rate_per_h", "rate_basis").distinct().collect()
    assert [(r.arrival_rate_per_h, r.rate_basis) for r in nine] == [(pytest.approx(2 / 7), "hour_of_day")]


def test_a_window_of_one_hour_or_ending_before_the_sessions_keeps_every_row(spark):
    """A source whose sessions all fall in one clock hour, and an observation end before the first
    session: no error (Spark's sequence() raises on a stop before its start), 168 rows each;
    sessions at or after the window end are outside it."""
    rows = [("S1", "A", "A-1", "2024-04-01 09:10:00", None), ("S2", "A", "A-1", "2024-04-01 09:20:00", "2024-04-01 09:50:00")]
    sdf = spark.createDataFrame(rows, "session_id string, station_id string, port_id string, start_ts string, end_ts string")
    sdf = sdf.select("session_id", "station_id", "port_id", *[F.col(c).cast("timestamp").alias(c) for c in ("start_ts", "end_ts")])
    ports = station_ports(sdf, None, None)
    one_hour = site_capacity(sdf, ports, PARAMS, "UTC", None).where("slot_hours > 0 OR arrivals > 0").select("hour_of_week", "slot_hours", "arrivals").collect()
    assert [tuple(r) for r in one_hour] == [(9, 1, 2)]  # Monday 09:00, the hour holding the window end (09:50)
    early = site_capacity(sdf, ports, PARAMS, "UTC", "2024-03-01 00:00:00")
    totals = early.agg(F.count(F.lit(1)), F.sum("slot_hours"), F.sum("arrivals"), F.count("arrival_rate_per_h")).first()
    assert tuple(totals) == (168, 0, 0, 0)

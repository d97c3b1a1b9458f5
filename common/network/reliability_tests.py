"""Rows of gold.reliability_tests per session source, and the per-charger fault rates behind them.

Spark aggregates the sessions; the tests themselves (`common/network/stats.py`) run on the
driver on bounded inputs: one row per source or charger, the load regression on at most
reliability.stats_max_rows sessions and the bootstrap on at most reliability.bootstrap_max_sessions
successful sessions (seeded samples). Nothing here reads or writes storage.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import pandas as pd
from pyspark import StorageLevel
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from common.core.config import ReliabilityConfig
from common.network import stats
from common.network.reliability import charger_fault_rates, charger_window_uptime, session_load, window_counts


@dataclass
class SessionTests:
    """What `session_tests` found.

    Attributes
    ----------
    rows : list of dict
        Rows of gold.reliability_tests (`stats.TEST_SCHEMA` keys).
    rates : DataFrame
        Per-charger fault rates (`charger_fault_rates`), persisted: the caller unpersists it.
    mean_kwh : float or None
        Mean energy of a successful session over all sources (kWh); None without one.
    """

    rows: list[dict]
    rates: DataFrame
    mean_kwh: float | None


def comparison_windows(first: datetime, last: datetime, window_days: int) -> tuple[datetime, datetime, str]:
    """Boundaries of the two-window fault-rate test of one session source.

    Parameters
    ----------
    first, last : datetime
        Start of the source's first and last session.
    window_days : int
        reliability.compare_window_days (days).

    Returns
    -------
    tuple
        (start, mid, basis): baseline window (start, mid], recent window (mid, last], and the
        basis in words. The last `window_days` days vs the ones before when the data spans twice
        that; otherwise the second half vs the first half of the observed period.
    """
    n_days = timedelta(days=window_days)
    if last - first >= 2 * n_days:
        return last - 2 * n_days, last - n_days, f"last {window_days} days vs the {window_days} before"
    return first - timedelta(microseconds=1), first + (last - first) / 2, "second half vs first half of the observed period"


def session_tests(outcomes: DataFrame, intervals: DataFrame | None, params: ReliabilityConfig) -> SessionTests:
    """Two-window z-test, load-vs-fault logit, lost-revenue bootstrap, fault-rate hotspots and
    alert precision/recall per session source.

    Parameters
    ----------
    outcomes : DataFrame
        Session outcomes (`session_outcomes`: source_name, station_id, port_id, start_ts,
        succeeded, kwh in kWh, ...).
    intervals : DataFrame or None
        Port status intervals (silver.port_status_intervals); None without a status feed (no
        charger ids for the fault rates, no alert precision/recall).
    params : ReliabilityConfig
        The `reliability` config section (windows in days, alpha, price per kWh, seed, ...).

    Returns
    -------
    SessionTests
        Test rows, per-charger fault rates (persisted) and the mean kWh of a successful session.
    """
    p = params
    rows: list[dict] = []
    spans = {
        r.source_name: (r.first, r.last)
        for r in outcomes.groupBy("source_name")
        .agg(  # bounded: one row per session source
            F.min("start_ts").alias("first"), F.max("start_ts").alias("last")
        )
        .collect()
    }
    port_chargers = intervals.select("port_id", "charger_id").distinct() if intervals is not None else None
    as_of = outcomes.groupBy("source_name").agg(F.max("start_ts").alias("as_of"))
    rates = charger_fault_rates(outcomes.join(F.broadcast(as_of), "source_name"), port_chargers, "as_of", p)
    rates = rates.persist(StorageLevel.MEMORY_AND_DISK)
    rates_pdf: pd.DataFrame = rates.toPandas()  # bounded: one row per charger

    success_kwh = outcomes.where("succeeded AND kwh IS NOT NULL")
    mean_kwh_row = success_kwh.agg(F.avg("kwh")).first()
    mean_kwh = mean_kwh_row[0] if mean_kwh_row else None

    for source, (first, last) in sorted(spans.items()):
        src = outcomes.where(F.col("source_name") == source)
        start, mid, basis = comparison_windows(first, last, p.compare_window_days)
        counts = {r.source_name: (r.failed, r.sessions) for r in window_counts(src, F.lit(mid), F.lit(last)).collect()}  # bounded: one row per source
        base = {r.source_name: (r.failed, r.sessions) for r in window_counts(src, F.lit(start), F.lit(mid)).collect()}  # bounded: one row per source
        windows = {"baseline": f"({start:%Y-%m-%d %H:%M}, {mid:%Y-%m-%d %H:%M}]", "recent": f"({mid:%Y-%m-%d %H:%M}, {last:%Y-%m-%d %H:%M}]", "basis": basis}
        rows += stats.two_window_fault_test(source, counts.get(source, (0, 0)), base.get(source, (0, 0)), windows, p.alpha)

        loads = session_load(src)
        n = loads.count()
        if n > p.stats_max_rows:
            loads = loads.sample(fraction=p.stats_max_rows / n, seed=p.seed)
        rows += stats.load_fault_logit(source, loads.select("failed", "load_sessions_24h").toPandas(), p.alpha)  # bounded: sampled to ~reliability.stats_max_rows above

        ok = success_kwh.where(F.col("source_name") == source)
        n_ok = ok.count()
        if n_ok > p.bootstrap_max_sessions:
            ok = ok.sample(fraction=p.bootstrap_max_sessions / n_ok, seed=p.seed)
        kwh = np.array([r[0] for r in ok.select("kwh").collect()], dtype=float)  # bounded: sampled to ~reliability.bootstrap_max_sessions above
        n_failed = src.where("NOT succeeded").count()
        rows += stats.lost_revenue_bootstrap(source, kwh, n_failed, p.price_per_kwh, p.currency, p.bootstrap_resamples, p.confidence_level, p.seed, sampled_from=n_ok)

        src_rates = rates_pdf[rates_pdf.source_name == source]
        rows += stats.hotspot_rows(source, src_rates, p.hotspot_z)
        if intervals is not None and len(src_rates):
            w_start, w_end = last - timedelta(days=p.hotspot_window_days), last
            uptime: pd.DataFrame = charger_window_uptime(intervals, F.lit(w_start), F.lit(w_end)).toPandas()  # bounded: one row per charger
            up = uptime[["charger_id", "uptime_pct"]]
            scored = src_rates.merge(up, on="charger_id", how="inner")
            if len(scored):
                rows += stats.alert_precision_recall(source, scored, p.alert_thresholds_z, p.nevi_target_pct)
    return SessionTests(rows=rows, rates=rates, mean_kwh=mean_kwh)

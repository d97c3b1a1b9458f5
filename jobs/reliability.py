"""Charger reliability: status intervals, NEVI uptime, MTBF/MTTR, session success, tests.

Reads:  bronze.charger_status (OCPP 1.6 notifications, or snapshot feeds such as ESB cpinfo),
        bronze.charging_sessions, bronze.stations; silver.telematics_clean (optional: fleet
        stops for failed charge attempts).
Writes: gold.port_status_intervals     per port: merged intervals with status, state
                                       (up / down / excluded / no_data), down and excluded cause;
        gold.port_reliability_monthly  per port and UTC month: minutes by state, failures, MTBF,
                                       MTTR, sessions, NEVI uptime over the trailing 12 months and
                                       over the observed period (uptime_basis says which is used);
        gold.site_reliability          per station: availability, uptime, failures, MTBF/MTTR,
                                       session / first-time success, faults per 1,000 sessions,
                                       lost energy and revenue, fault-rate hotspot chargers;
        gold.reliability_tests         two-window z-test, load-vs-fault logit, lost-revenue
                                       bootstrap CI, alert precision/recall, fault-rate hotspots;
        gold.failed_charge_attempts    fleet stops at a station without SOC gain, with the state
                                       of its ports at arrival (only when silver.telematics_clean exists).
Definitions: common/network/reliability.py, common/network/stats.py; thresholds: `reliability`
section of conf/base.yaml.

    python -m jobs.reliability --env local
"""

from __future__ import annotations

import logging
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

if __package__ in (None, ""):  # spark-submit jobs/reliability.py: make `common` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from common.core.config import Config
from common.io import tables
from common.io.cli import StageReport, bootstrap, job_main, require_inputs
from common.network import stats
from common.network.reliability import (
    charger_fault_rates,
    charger_window_uptime,
    failed_charge_attempts,
    mark_failures,
    port_month_minutes,
    port_reliability_monthly,
    port_status_intervals,
    session_load,
    session_outcomes,
    sessions_by_port_month,
    site_session_summary,
    site_status_summary,
    window_counts,
)

log = logging.getLogger("ev_fleet.reliability")
# Input groups of which at least one table must exist; otherwise the stage is skipped (common.io.cli).
REQUIRES: tuple[tuple[str, ...], ...] = (("bronze.charger_status", "bronze.charging_sessions"),)

STATUS = "bronze.charger_status"
SESSIONS = "bronze.charging_sessions"
STATIONS = "bronze.stations"
CLEAN = "silver.telematics_clean"
INTERVALS = "gold.port_status_intervals"
MONTHLY = "gold.port_reliability_monthly"
SITES = "gold.site_reliability"
TESTS = "gold.reliability_tests"
FAILED_ATTEMPTS = "gold.failed_charge_attempts"

COMMENTS = {
    INTERVALS: "Per port: status intervals from OCPP notifications (offline after reliability.offline_timeout_s of silence) "
    "or snapshot feeds; state up/down/excluded/no_data; jobs/reliability.py",
    MONTHLY: "Per port and UTC month: minutes by state, failures, MTBF/MTTR, sessions; NEVI uptime "
    "(525600 - (T_outage - T_excluded)) / 525600 x 100 over the trailing 12 months and over the observed period; jobs/reliability.py",
    SITES: "Per station: availability, observed uptime, failures, MTBF/MTTR, session and first-time success, faults per 1000 "
    "sessions, lost kWh/revenue, fault-rate hotspot chargers; jobs/reliability.py",
    TESTS: "Reliability tests: two-window fault-rate z-test, load-vs-fault logit (odds ratio), lost-revenue bootstrap CI, "
    "alert-threshold precision/recall, fault-rate hotspots; jobs/reliability.py",
    FAILED_ATTEMPTS: "Fleet stops at a station without SOC gain, with port states at arrival; is_failed_attempt = no port "
    "available and at least one down; jobs/reliability.py",
}


SITE_COLUMNS = (
    ("station_id", "string"), ("status_source", "string"), ("session_source", "string"),
    ("ports", "long"), ("chargers", "long"), ("first_seen_ts", "timestamp"), ("last_seen_ts", "timestamp"),
    ("observed_hours", "double"), ("up_hours", "double"), ("down_hours", "double"), ("excluded_hours", "double"),
    ("fault_hours", "double"), ("offline_hours", "double"), ("availability_pct", "double"), ("uptime_observed_pct", "double"),
    ("failures", "long"), ("fault_failures", "long"), ("down_episodes", "long"), ("mtbf_hours", "double"), ("mttr_hours", "double"),
    ("latest_month", "date"), ("uptime_basis", "string"), ("min_port_uptime_pct", "double"), ("mean_port_uptime_pct", "double"),
    ("min_port_nevi_uptime_pct", "double"), ("ports_below_target", "long"),
    ("sessions", "long"), ("successful_sessions", "long"), ("failed_sessions", "long"), ("delivered_kwh", "double"),
    ("session_success_rate_pct", "double"), ("attempt_sequences", "long"), ("first_time_successes", "long"),
    ("first_time_success_rate_pct", "double"), ("faults_per_1000_sessions", "double"),
    ("lost_kwh_est", "double"), ("lost_revenue_est", "double"), ("currency", "string"),
    ("max_charger_fault_rate_window", "double"), ("max_charger_fault_z", "double"), ("fault_hotspot_chargers", "long"),
    ("is_fault_hotspot", "boolean"),
)


def observation_end(cfg: Config) -> str | None:
    """reliability.observation_end, else for the synthetic generator's inputs the end of its simulated
    period (local midnight after the last day, UTC), else None (= each source's latest message).

    The generator emits the status of ports with a charge running past the period end beyond it;
    with the latest message as the end, every other port would look offline for that last hour."""
    if cfg.reliability.observation_end:
        return cfg.reliability.observation_end
    if not cfg.inputs.is_empty():
        return None
    from common.core.regions import get_region
    from common.synthetic.generator import day_midnights_utc

    g = cfg.generator
    end = day_midnights_utc(g.start_date, g.days, get_region(g.region).timezone)[-1]
    return datetime.fromtimestamp(float(end), tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def run_reliability(spark: SparkSession, cfg: Config) -> StageReport:
    """Compute and write the reliability tables from whatever status and session feeds exist."""
    report = StageReport(stage="reliability")
    p = cfg.reliability.model_copy(update={"observation_end": observation_end(cfg)})
    status = tables.read_optional(spark, cfg, STATUS)
    sessions = tables.read_optional(spark, cfg, SESSIONS)
    if status is None and sessions is None:
        raise tables.TableNotFound(f"neither {STATUS} nor {SESSIONS} exists: run jobs/ingest.py first")
    report.rows_in = (status.count() if status is not None else 0) + (sessions.count() if sessions is not None else 0)

    # 1) status -> intervals (written, then read back so later steps do not recompute the windows)
    intervals = None
    if status is not None:
        result = tables.write(mark_failures(port_status_intervals(status, p)), cfg, INTERVALS, comment=COMMENTS[INTERVALS])
        report.tables[INTERVALS] = result.version
        intervals = tables.read(spark, cfg, INTERVALS)
    else:
        report.notes.append(f"{STATUS} not found: no status intervals, uptime or MTBF/MTTR (sessions only)")

    outcomes = hotspots = None
    if sessions is not None:
        outcomes = session_outcomes(sessions, p).persist(StorageLevel.MEMORY_AND_DISK)
    else:
        report.notes.append(f"{SESSIONS} not found: no session success rates or tests")
    try:
        # 2) monthly per port
        if intervals is not None:
            first_seen = intervals.groupBy("source_name", "port_id").agg(F.min("start_ts").alias("first_seen_ts"))
            monthly = port_reliability_monthly(
                port_month_minutes(intervals), first_seen, sessions_by_port_month(outcomes) if outcomes is not None else None, p
            )
            result = tables.write(monthly, cfg, MONTHLY, comment=COMMENTS[MONTHLY])
            report.tables[MONTHLY] = result.version

        # 3) statistics (driver side, small aggregates) and hotspots
        test_rows: list[dict] = []
        mean_kwh = None
        if outcomes is not None:
            hotspots, mean_kwh = _session_tests(p, outcomes, intervals, test_rows)

        # 4) per site
        site = _site_table(spark, cfg, intervals, outcomes, hotspots, mean_kwh)
        result = tables.write(site, cfg, SITES, comment=COMMENTS[SITES])
        report.tables[SITES] = result.version

        if test_rows:
            result = tables.write(spark.createDataFrame(test_rows, stats.TEST_SCHEMA), cfg, TESTS, comment=COMMENTS[TESTS])
            report.tables[TESTS] = result.version
    finally:
        if outcomes is not None:
            outcomes.unpersist()
        if hotspots is not None:
            hotspots.unpersist()

    # 5) fleet stops without SOC gain at a station while its ports were down
    if intervals is not None:
        _failed_attempts(spark, cfg, intervals, report)

    report.rows_out = tables.read(spark, cfg, INTERVALS).count() if intervals is not None else 0
    summary = uptime_summary(spark, cfg)
    if summary:
        print(summary)
        report.notes.append(summary.splitlines()[-1])
    return report.finish()


def _session_tests(p, outcomes, intervals, test_rows) -> tuple[DataFrame, float | None]:
    """Fill test_rows per session source; return charger fault rates (as DataFrame) and mean kWh."""
    spans = {r.source_name: (r.first, r.last) for r in outcomes.groupBy("source_name").agg(  # bounded: one row per session source
        F.min("start_ts").alias("first"), F.max("start_ts").alias("last")).collect()}
    port_chargers = intervals.select("port_id", "charger_id").distinct() if intervals is not None else None
    as_of = outcomes.groupBy("source_name").agg(F.max("start_ts").alias("as_of"))
    rates = charger_fault_rates(outcomes.join(F.broadcast(as_of), "source_name"), port_chargers, "as_of", p)
    rates = rates.persist(StorageLevel.MEMORY_AND_DISK)
    rates_pdf = rates.toPandas()  # bounded: one row per charger

    success_kwh = outcomes.where("succeeded AND kwh IS NOT NULL")
    mean_kwh_row = success_kwh.agg(F.avg("kwh")).first()
    mean_kwh = mean_kwh_row[0] if mean_kwh_row else None

    for source, (first, last) in sorted(spans.items()):
        src = outcomes.where(F.col("source_name") == source)
        # two windows: the last N days vs the N days before; shorter data: its two halves
        n_days = timedelta(days=p.compare_window_days)
        if last - first >= 2 * n_days:
            mid, start, basis = last - n_days, last - 2 * n_days, f"last {p.compare_window_days} days vs the {p.compare_window_days} before"
        else:
            mid, start, basis = first + (last - first) / 2, first - timedelta(microseconds=1), "second half vs first half of the observed period"
        counts = {r.source_name: (r.failed, r.sessions) for r in window_counts(src, F.lit(mid), F.lit(last)).collect()}  # bounded: one row per source
        base = {r.source_name: (r.failed, r.sessions) for r in window_counts(src, F.lit(start), F.lit(mid)).collect()}  # bounded: one row per source
        windows = {"baseline": f"({start:%Y-%m-%d %H:%M}, {mid:%Y-%m-%d %H:%M}]", "recent": f"({mid:%Y-%m-%d %H:%M}, {last:%Y-%m-%d %H:%M}]", "basis": basis}
        test_rows += stats.two_window_fault_test(source, counts.get(source, (0, 0)), base.get(source, (0, 0)), windows, p.alpha)

        loads = session_load(src)
        n = loads.count()
        if n > p.stats_max_rows:
            loads = loads.sample(fraction=p.stats_max_rows / n, seed=p.seed)
        test_rows += stats.load_fault_logit(source, loads.select("failed", "load_sessions_24h").toPandas(), p.alpha)  # bounded: sampled to ~reliability.stats_max_rows above

        ok = success_kwh.where(F.col("source_name") == source)
        n_ok = ok.count()
        if n_ok > p.bootstrap_max_sessions:
            ok = ok.sample(fraction=p.bootstrap_max_sessions / n_ok, seed=p.seed)
        kwh = np.array([r[0] for r in ok.select("kwh").collect()], dtype=float)  # bounded: sampled to ~reliability.bootstrap_max_sessions above
        n_failed = src.where("NOT succeeded").count()
        test_rows += stats.lost_revenue_bootstrap(
            source, kwh, n_failed, p.price_per_kwh, p.currency, p.bootstrap_resamples, p.confidence_level, p.seed, sampled_from=n_ok
        )

        src_rates = rates_pdf[rates_pdf.source_name == source]
        test_rows += stats.hotspot_rows(source, src_rates, p.hotspot_z)
        if intervals is not None and len(src_rates):
            w_start, w_end = last - timedelta(days=p.hotspot_window_days), last
            up = charger_window_uptime(intervals, F.lit(w_start), F.lit(w_end)).toPandas()[["charger_id", "uptime_pct"]]  # bounded: one row per charger
            scored = src_rates.merge(up, on="charger_id", how="inner")
            if len(scored):
                test_rows += stats.alert_precision_recall(source, scored, p.alert_thresholds_z, p.nevi_target_pct)
    return rates, mean_kwh


def _site_table(spark, cfg, intervals, outcomes, hotspots, mean_kwh) -> DataFrame:
    """Per station: status summary (full outer) session summary, hotspot chargers, latest-month uptime."""
    p = cfg.reliability
    parts = []
    if intervals is not None:
        status_part = site_status_summary(intervals)
        monthly = tables.read(spark, cfg, MONTHLY)
        latest = monthly.groupBy("port_id").agg(F.max("month").alias("month"))
        last_month = monthly.join(latest, ["port_id", "month"]).groupBy("station_id").agg(
            F.max("month").alias("latest_month"),
            F.min("uptime_pct").alias("min_port_uptime_pct"),
            F.avg("uptime_pct").alias("mean_port_uptime_pct"),
            F.min("nevi_uptime_pct").alias("min_port_nevi_uptime_pct"),
            F.sum(F.col("below_target").cast("int")).cast("long").alias("ports_below_target"),
            F.first("uptime_basis").alias("uptime_basis"),
        )
        parts.append(status_part.join(last_month, "station_id", "left"))
    if outcomes is not None:
        parts.append(site_session_summary(outcomes, p, mean_kwh))
    site = parts[0] if len(parts) == 1 else parts[0].join(parts[1], "station_id", "full_outer")
    for c in ("sessions", "fault_failures"):
        if c not in site.columns:
            site = site.withColumn(c, F.lit(None).cast("long"))
    site = site.withColumn("faults_per_1000_sessions", F.when(F.col("sessions") > 0, F.col("fault_failures") / F.col("sessions") * 1000.0))
    if hotspots is not None:
        per_station = hotspots.groupBy("station_id").agg(
            F.max("fault_rate").alias("max_charger_fault_rate_window"),
            F.max("z").alias("max_charger_fault_z"),
            F.sum(F.col("is_hotspot").cast("int")).cast("long").alias("fault_hotspot_chargers"),
        )
        site = site.join(per_station, "station_id", "left")
    else:
        site = site.withColumn("max_charger_fault_rate_window", F.lit(None).cast("double")).withColumn(
            "max_charger_fault_z", F.lit(None).cast("double")).withColumn("fault_hotspot_chargers", F.lit(None).cast("long"))
    site = site.withColumn("is_fault_hotspot", F.coalesce(F.col("fault_hotspot_chargers") > 0, F.lit(False))).withColumn(
        "currency", F.lit(p.currency))
    # One schema whatever feeds exist (status only, sessions only, both): absent parts are null.
    present = set(site.columns)
    return site.select(*[(F.col(c) if c in present else F.lit(None)).cast(t).alias(c) for c, t in SITE_COLUMNS])


def _failed_attempts(spark: SparkSession, cfg: Config, intervals: DataFrame, report: StageReport) -> None:
    clean = tables.read_optional(spark, cfg, CLEAN)
    stations = tables.read_optional(spark, cfg, STATIONS)
    if clean is None or stations is None:
        report.notes.append(f"{CLEAN} or {STATIONS} not found: {FAILED_ATTEMPTS} not written")
        return
    from common.network.stations import latest_stations, match_events_to_stations, normalise_fleet_events
    from common.silver.devices import heartbeats
    from common.silver.trips import detect_stops

    beats = heartbeats(tables.read_optional(spark, cfg, "silver.device_profiles"))
    stops = normalise_fleet_events(detect_stops(clean, cfg.kpis.trips, beats))
    matched = match_events_to_stations(stops, latest_stations(stations), cfg.stations)
    attempts = failed_charge_attempts(matched, intervals, cfg.stations.min_soc_gain_pct)
    result = tables.write(attempts, cfg, FAILED_ATTEMPTS, comment=COMMENTS[FAILED_ATTEMPTS])
    report.tables[FAILED_ATTEMPTS] = result.version
    n = tables.read(spark, cfg, FAILED_ATTEMPTS).where("is_failed_attempt").count()
    report.notes.append(f"{n} failed fleet charge attempt(s) at stations with no port available")


def uptime_summary(spark: SparkSession, cfg: Config) -> str:
    """Per status source: ports, observed days, mean / median uptime of the latest month, ports
    below target, failures, MTBF / MTTR (for logs and tests)."""
    if not tables.exists(spark, cfg, MONTHLY):
        return ""
    m = tables.read(spark, cfg, MONTHLY)
    latest = m.groupBy("port_id").agg(F.max("month").alias("month"))
    last = m.join(latest, ["port_id", "month"])
    per_port = m.groupBy("source_name", "port_id").agg(
        F.sum("observed_minutes").alias("obs"), F.sum("up_minutes").alias("up"), F.sum("down_minutes").alias("down"),
        F.sum("failures").alias("failures"), F.sum("down_episodes").alias("episodes"),
    )
    agg = per_port.groupBy("source_name").agg(
        F.count(F.lit(1)).alias("ports"), (F.sum("obs") / 1440).alias("port_days"),
        (100 * (F.sum("obs") - F.sum("down")) / F.sum("obs")).alias("uptime"),
        (100 * F.sum("up") / (F.sum("up") + F.sum("down"))).alias("availability"),
        F.sum("failures").alias("failures"),
        (F.sum("up") / 60 / F.sum("failures")).alias("mtbf_h"),
        (F.sum("down") / 60 / F.sum("episodes")).alias("mttr_h"),
    )
    lat = last.groupBy("source_name").agg(
        F.avg("uptime_pct").alias("mean_uptime"), F.percentile_approx("uptime_pct", 0.5).alias("median_uptime"),
        F.sum(F.col("below_target").cast("int")).alias("below"), F.first("uptime_basis").alias("basis"),
    )
    rows = agg.join(lat, "source_name").orderBy("source_name").collect()  # bounded: one row per status source
    head = f"{'source':<26} {'ports':>5} {'port-days':>9} {'uptime%':>8} {'avail%':>7} {'mean/med port uptime%':>22} {'<target':>7} {'failures':>8} {'MTBF h':>8} {'MTTR h':>7}  basis"
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(
            f"{r.source_name[:26]:<26} {r.ports:>5} {r.port_days:>9.1f} {r.uptime:>8.3f} {r.availability or 0:>7.3f} "
            f"{r.mean_uptime:>10.3f}/{r.median_uptime:>10.3f} {r.below:>8} {r.failures:>8} {r.mtbf_h or 0:>8.1f} {r.mttr_h or 0:>7.2f}  {r.basis}"
        )
    return "\n".join(lines)


@job_main
def main(argv: list[str] | None = None) -> StageReport:
    cfg, spark, _args = bootstrap("reliability", argv, __doc__)
    require_inputs(spark, cfg, REQUIRES)
    return run_reliability(spark, cfg)


if __name__ == "__main__":
    main()

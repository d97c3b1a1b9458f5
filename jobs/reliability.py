"""Charger reliability: status intervals, NEVI uptime, MTBF/MTTR, session success, tests, capacity.

Reads:  bronze.charger_status (OCPP 1.6 or snapshot feeds such as ESB cpinfo), bronze.charging_sessions,
        bronze.stations; silver.telematics_clean (optional: fleet stops for failed charge attempts).
Writes: silver.port_status_intervals     per port: intervals with status, state (up / down /
                                       excluded / no_data), down and excluded cause;
        gold.port_reliability_monthly  per port and UTC month: minutes by state, failures, MTBF,
                                       MTTR, sessions, NEVI uptime (trailing 12 months or observed);
        gold.site_reliability          per station: availability, uptime, MTBF/MTTR, session and
                                       first-time success, faults per 1,000 sessions, lost revenue;
        gold.site_capacity             per station and local hour of week: arrivals, plug-in time,
                                       occupancy, Erlang C P(wait) and wait, ports needed;
        gold.reliability_tests         window z-test, load-vs-fault logit, lost-revenue CI, alerts;
        gold.failed_charge_attempts    fleet stops at a station without SOC gain, with the state
                                       of its ports at arrival (only when silver.telematics_clean exists).
Definitions: common/network/ (reliability, site_reliability, reliability_tests, stats, capacity);
thresholds: the `reliability` and `capacity` sections of the config (docs/CONFIG.md).

    python -m jobs.reliability --env local
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # spark-submit jobs/reliability.py: make `common` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from common.core.config import Config
from common.core.frames import materialise, release
from common.io import tables
from common.io.cli import StageReport, bootstrap, job_main, require_inputs
from common.network import capacity, site_reliability, stats
from common.network import reliability as rel
from common.network.reliability_tests import session_tests
from common.network.stations import latest_stations, match_events_to_stations, normalise_fleet_events
from common.silver.devices import heartbeats
from common.silver.trips import detect_stops

STATUS = "bronze.charger_status"
SESSIONS = "bronze.charging_sessions"
STATIONS = "bronze.stations"
CLEAN = "silver.telematics_clean"
INTERVALS = "silver.port_status_intervals"
MONTHLY = "gold.port_reliability_monthly"
SITES = "gold.site_reliability"
TESTS = "gold.reliability_tests"
FAILED_ATTEMPTS = "gold.failed_charge_attempts"
CAPACITY = "gold.site_capacity"

# Catalog tables read and written (common/core/catalog.py); the pipeline orders stages by them.
INPUTS: tuple[str, ...] = (STATUS, SESSIONS, STATIONS, CLEAN, "silver.device_profiles")
OUTPUTS: tuple[str, ...] = (INTERVALS, MONTHLY, SITES, CAPACITY, TESTS, FAILED_ATTEMPTS)
# Input groups of which at least one table must exist; otherwise the stage is skipped (common.io.cli).
REQUIRES: tuple[tuple[str, ...], ...] = ((STATUS, SESSIONS),)


def _write(df: DataFrame, cfg: Config, table: str, report: StageReport) -> None:
    report.tables[table] = tables.write(df, cfg, table).version


def run_reliability(spark: SparkSession, cfg: Config) -> StageReport:
    """Compute and write the reliability tables from whatever status and session feeds exist."""
    report = StageReport(stage="reliability")
    p = cfg.reliability.model_copy(update={"observation_end": rel.observation_end(cfg)})
    status = tables.read_optional(spark, cfg, STATUS)
    sessions = tables.read_optional(spark, cfg, SESSIONS)
    if status is None and sessions is None:
        raise tables.TableNotFound(f"neither {STATUS} nor {SESSIONS} exists: run jobs/ingest.py first")
    report.rows_in = (status.count() if status is not None else 0) + (sessions.count() if sessions is not None else 0)

    intervals = None  # written, then read back so later steps do not recompute the windows
    if status is not None:
        _write(rel.mark_failures(rel.port_status_intervals(status, p)), cfg, INTERVALS, report)
        intervals = tables.read(spark, cfg, INTERVALS)
    else:
        report.notes.append(f"{STATUS} not found: no status intervals, uptime or MTBF/MTTR (sessions only)")

    outcomes = found = None
    if sessions is not None:
        outcomes = materialise(rel.session_outcomes(sessions, p))
    else:
        report.notes.append(f"{SESSIONS} not found: no session success rates or tests")
    try:
        monthly = None
        if intervals is not None:
            first_seen = intervals.groupBy("source_name", "port_id").agg(F.min("start_ts").alias("first_seen_ts"))
            by_month = rel.sessions_by_port_month(outcomes) if outcomes is not None else None
            _write(rel.port_reliability_monthly(rel.port_month_minutes(intervals), first_seen, by_month, p), cfg, MONTHLY, report)
            monthly = tables.read(spark, cfg, MONTHLY)
        if outcomes is not None:
            found = session_tests(outcomes, intervals, p)
        hotspots, mean_kwh = (found.rates, found.mean_kwh) if found is not None else (None, None)
        _write(site_reliability.site_reliability(intervals, monthly, outcomes, hotspots, mean_kwh, cfg.reliability), cfg, SITES, report)
        if found is not None and found.rows:
            _write(spark.createDataFrame(found.rows, stats.TEST_SCHEMA), cfg, TESTS, report)
        if outcomes is not None:  # ports counted from sessions and status, else the station register
            register = tables.read_optional(spark, cfg, STATIONS)
            ports = capacity.station_ports(outcomes, status, latest_stations(register) if register is not None else None)
            _write(capacity.site_capacity(outcomes, ports, cfg.capacity, capacity.capacity_timezone(cfg), p.observation_end), cfg, CAPACITY, report)
    finally:
        if outcomes is not None:
            release(outcomes)
        if found is not None:
            found.rates.unpersist()

    if intervals is not None:
        _failed_attempts(spark, cfg, intervals, report)

    report.rows_out = tables.read(spark, cfg, INTERVALS).count() if intervals is not None else 0
    if summary := uptime_summary(spark, cfg):
        print(summary)
        report.notes.append(summary.splitlines()[-1])
    return report.finish()


def _failed_attempts(spark: SparkSession, cfg: Config, intervals: DataFrame, report: StageReport) -> None:
    """gold.failed_charge_attempts: fleet stops without SOC gain at a station while its ports were down."""
    clean = tables.read_optional(spark, cfg, CLEAN)
    stations = tables.read_optional(spark, cfg, STATIONS)
    if clean is None or stations is None:
        report.notes.append(f"{CLEAN} or {STATIONS} not found: {FAILED_ATTEMPTS} not written")
        return
    beats = heartbeats(tables.read_optional(spark, cfg, "silver.device_profiles"))
    stops = normalise_fleet_events(detect_stops(clean, cfg.kpis.trips, beats))
    matched = match_events_to_stations(stops, latest_stations(stations), cfg.stations)
    _write(rel.failed_charge_attempts(matched, intervals, cfg.stations.min_soc_gain_pct), cfg, FAILED_ATTEMPTS, report)
    n = tables.read(spark, cfg, FAILED_ATTEMPTS).where("is_failed_attempt").count()
    report.notes.append(f"{n} failed fleet charge attempt(s) at stations with no port available")


def uptime_summary(spark: SparkSession, cfg: Config) -> str:
    """Text table per status source (site_reliability.uptime_summary_table); "" before gold.port_reliability_monthly exists."""
    monthly = tables.read_optional(spark, cfg, MONTHLY)
    return "" if monthly is None else site_reliability.uptime_summary_table(monthly)


@job_main
def main(argv: list[str] | None = None) -> StageReport:
    cfg, spark, _args = bootstrap("reliability", argv, __doc__)
    require_inputs(spark, cfg, REQUIRES)
    return run_reliability(spark, cfg)


if __name__ == "__main__":
    main()

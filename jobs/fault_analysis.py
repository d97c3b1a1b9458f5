"""Fault analysis of a charging network: what makes sessions fail, and how many faults come next.

Reads:  bronze.charging_sessions (outcomes), silver.port_status_intervals (optional: sessions on
        ports that were down are left out; written by jobs/reliability.py), bronze.stations
        (optional: network, DC-fast ports and power of each station).
Writes: gold.fault_drivers  per session source: a model row (sessions, failures, sessions left
                            out, convergence, notes) and per driver level the failure logit's
                            coefficient, odds ratio with its CI, p-value, Holm-adjusted p-value
                            and average marginal effect (percentage points).
        gold.fault_forecast  per site and for the network ('(network)'): faults of the next
                             fault_forecast.horizon buckets with prediction intervals (needs the
                             status intervals).
        gold.fault_forecast_backtest  per series: rolling-origin MAE, MAPE and interval coverage of
                             the model and of the seasonal-naive and mean baselines.
Definitions: common/network/fault_drivers.py, common/network/forecast.py; settings: the
`fault_drivers` and `fault_forecast` sections of the config (docs/CONFIG.md); what the figures mean
and do not mean: docs/NETWORK.md.

    python -m jobs.fault_analysis --env local
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # spark-submit jobs/fault_analysis.py: make `common` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from common.core.config import Config
from common.core.frames import materialise, release
from common.io import tables
from common.io.cli import StageReport, bootstrap, job_main, require_inputs
from common.network import fault_drivers as fd
from common.network import forecast as fc
from common.network import reliability as rel
from common.network.capacity import capacity_timezone
from common.network.stations import latest_stations

SESSIONS = "bronze.charging_sessions"
INTERVALS = "silver.port_status_intervals"
STATIONS = "bronze.stations"
DRIVERS = "gold.fault_drivers"
FORECAST = "gold.fault_forecast"
BACKTEST = "gold.fault_forecast_backtest"

# Catalog tables read and written (common/core/catalog.py); the pipeline orders stages by them.
INPUTS: tuple[str, ...] = (SESSIONS, INTERVALS, STATIONS)
OUTPUTS: tuple[str, ...] = (DRIVERS, FORECAST, BACKTEST)
# Input groups of which at least one table must exist; otherwise the stage is skipped (common.io.cli).
REQUIRES: tuple[tuple[str, ...], ...] = ((SESSIONS, INTERVALS),)


def run_fault_analysis(spark: SparkSession, cfg: Config) -> StageReport:
    """Write gold.fault_drivers from the sessions (and the status intervals and register when
    present) and the fault forecast from the status intervals; each is skipped, with a note,
    when its input is missing."""
    report = StageReport(stage="fault_analysis")
    intervals = tables.read_optional(spark, cfg, INTERVALS)
    if tables.exists(spark, cfg, SESSIONS):
        _drivers(spark, cfg, intervals, report)
    else:
        report.notes.append(f"{SESSIONS} not found: no fault drivers")
    if intervals is not None:
        _forecast(spark, cfg, intervals, report)
    else:
        report.notes.append(f"{INTERVALS} not found: no fault forecast (jobs/reliability.py writes it from charger status)")
    return report.finish()


def _forecast(spark: SparkSession, cfg: Config, intervals, report: StageReport) -> None:
    params = cfg.fault_forecast
    marked = rel.mark_failures(intervals)
    failures = marked.where("is_failure AND episode_cause = 'fault'").select("source_name", "station_id", "charger_id", "port_id", F.col("start_ts").alias("ts"))
    counts = materialise(fc.fault_counts(failures, intervals, params))
    short = intervals.select("source_name").distinct().join(counts.select("source_name").distinct(), "source_name", "left_anti").collect()  # bounded: one row per source
    for r in short:
        report.notes.append(f"fault forecast: {r.source_name} was observed for less than one bucket of {params.bucket_days} days: no series")
    out = materialise(fc.forecast_faults(counts, params))
    release(counts)
    try:
        forecast, backtest = fc.split(out)
        report.tables[FORECAST] = tables.write(forecast, cfg, FORECAST).version
        report.tables[BACKTEST] = tables.write(backtest, cfg, BACKTEST).version
    finally:
        release(out)
    net = tables.read(spark, cfg, BACKTEST).where((F.col("site_id") == fc.NETWORK) & (F.col("origins") > 0)).collect()  # bounded: three methods per source
    for r in sorted(net, key=lambda r: (r.source_name, r.method)):
        report.notes.append(f"fault forecast backtest, {r.source_name} network: {r.method} MAE {r.mae:.2f}" + (f", coverage {r.coverage:.0%}" if r.coverage is not None else ""))
    if not net:
        p = cfg.fault_forecast
        report.notes.append(f"fault forecast: no network series long enough to backtest (fault_forecast.min_buckets + horizon = {p.min_buckets + p.horizon} buckets)")


def _drivers(spark: SparkSession, cfg: Config, intervals, report: StageReport) -> None:
    params = cfg.fault_drivers
    sessions = tables.read(spark, cfg, SESSIONS)
    register = tables.read_optional(spark, cfg, STATIONS)
    if intervals is None:
        report.notes.append(f"{INTERVALS} not found: every port's state unknown, no session left out")
    if register is None:
        report.notes.append(f"{STATIONS} not found: no network, DC-fast or power driver")
    tz = capacity_timezone(cfg)
    outcomes = rel.session_outcomes(sessions, cfg.reliability)
    features = materialise(fd.session_features(outcomes, intervals, latest_stations(register) if register is not None else None, tz, params))
    try:
        report.rows_in = features.count()
        report.tables[DRIVERS] = tables.write(fd.fault_drivers(features, params, tz), cfg, DRIVERS).version
    finally:
        release(features)
    drivers = tables.read(spark, cfg, DRIVERS)
    report.rows_out = drivers.count()
    found = drivers.where("significant").orderBy("source_name", "p_value_holm").collect()  # bounded: one row per significant term of each source's model
    for r in found:
        report.notes.append(f"{r.source_name}: {r.driver}={r.level} odds ratio {r.odds_ratio:.2f} ({r.or_ci_low:.2f}-{r.or_ci_high:.2f}) vs {r.reference or 'none'}")
    if not found:
        report.notes.append("no significant fault driver")


@job_main
def main(argv: list[str] | None = None) -> StageReport:
    cfg, spark, _args = bootstrap("fault_analysis", argv, __doc__)
    require_inputs(spark, cfg, REQUIRES)
    return run_fault_analysis(spark, cfg)


if __name__ == "__main__":
    main()

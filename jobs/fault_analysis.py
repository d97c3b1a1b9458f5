"""Fault analysis of a charging network: what makes sessions fail.

Reads:  bronze.charging_sessions (outcomes), silver.port_status_intervals (optional: sessions on
        ports that were down are left out; written by jobs/reliability.py), bronze.stations
        (optional: network, DC-fast ports and power of each station).
Writes: gold.fault_drivers  per session source: a model row (sessions, failures, sessions left
                            out, convergence, notes) and per driver level the failure logit's
                            coefficient, odds ratio with its CI, p-value, Holm-adjusted p-value
                            and average marginal effect (percentage points).
Definitions: common/network/fault_drivers.py; settings: the `fault_drivers` section of the config
(docs/CONFIG.md); what the figures mean and do not mean: docs/NETWORK.md.

    python -m jobs.fault_analysis --env local
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # spark-submit jobs/fault_analysis.py: make `common` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pyspark.sql import SparkSession

from common.core.config import Config
from common.core.frames import materialise, release
from common.io import tables
from common.io.cli import StageReport, bootstrap, job_main, require_inputs
from common.network import fault_drivers as fd
from common.network import reliability as rel
from common.network.capacity import capacity_timezone
from common.network.stations import latest_stations

SESSIONS = "bronze.charging_sessions"
INTERVALS = "silver.port_status_intervals"
STATIONS = "bronze.stations"
DRIVERS = "gold.fault_drivers"

# Catalog tables read and written (common/core/catalog.py); the pipeline orders stages by them.
INPUTS: tuple[str, ...] = (SESSIONS, INTERVALS, STATIONS)
OUTPUTS: tuple[str, ...] = (DRIVERS,)
# Input groups of which at least one table must exist; otherwise the stage is skipped (common.io.cli).
REQUIRES: tuple[tuple[str, ...], ...] = ((SESSIONS,),)


def run_fault_analysis(spark: SparkSession, cfg: Config) -> StageReport:
    """Write gold.fault_drivers from the sessions (and the status intervals and register when present)."""
    report = StageReport(stage="fault_analysis")
    params = cfg.fault_drivers
    sessions = tables.read(spark, cfg, SESSIONS)
    intervals = tables.read_optional(spark, cfg, INTERVALS)
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
    return report.finish()


@job_main
def main(argv: list[str] | None = None) -> StageReport:
    cfg, spark, _args = bootstrap("fault_analysis", argv, __doc__)
    require_inputs(spark, cfg, REQUIRES)
    return run_fault_analysis(spark, cfg)


if __name__ == "__main__":
    main()

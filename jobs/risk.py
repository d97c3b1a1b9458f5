"""Driver risk: gold.daily_kpis (or silver) + charging + residences -> gold.driver_risk.

Baseline rule of the original analysis -- average daily km over the days the vehicle reported,
z-score against the fleet, High if z < `risk.z_threshold` -- plus weekly trend, inactive days,
days since the last trip, charging regularity and residence changes, each a weighted signal
with a human-readable reason. Drivers whose device reported on few days are flagged
`low_coverage` and scored on their reported days only. Logic: common/mobility/risk.py.

Reads:  gold.daily_kpis (else silver.telematics_clean through the same trip legs),
        silver.charging_events (optional), restricted.residences (optional; only the
        residence_changed flag and confidence are used), bronze.vehicles (driver_id),
        silver.device_profiles (the fleet and each device's mode).
Writes: gold.driver_risk: one row per vehicle of the fleet (telemetry or bronze.vehicles), a
        tier or `insufficient_data` with the reason; the job fails if the rows do not
        reconcile with the fleet.

    python -m jobs.risk --env local
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

if __package__ in (None, ""):  # spark-submit jobs/risk.py: make `common` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from common.core.config import Config
from common.core.frames import materialise, release
from common.io import tables
from common.io.cli import StageReport, bootstrap, job_main, require_inputs
from common.io.schemas import VEHICLES
from common.mobility.risk import INSUFFICIENT, TIERS, daily_activity, driver_risk
from common.silver.devices import heartbeats

log = logging.getLogger("ev_fleet.risk")
DAILY_KPIS = "gold.daily_kpis"
SILVER_TELEMATICS = "silver.telematics_clean"
EVENTS = "silver.charging_events"
RESIDENCES = "restricted.residences"
BRONZE_VEHICLES = "bronze.vehicles"
DEVICE_PROFILES = "silver.device_profiles"
DRIVER_RISK = "gold.driver_risk"

# Catalog tables read and written (common/core/catalog.py); the pipeline orders stages by them.
INPUTS: tuple[str, ...] = (DAILY_KPIS, SILVER_TELEMATICS, EVENTS, RESIDENCES, BRONZE_VEHICLES, DEVICE_PROFILES)
OUTPUTS: tuple[str, ...] = (DRIVER_RISK,)
# Input groups of which at least one table must exist; otherwise the stage is skipped (common.io.cli).
REQUIRES: tuple[tuple[str, ...], ...] = ((DAILY_KPIS, SILVER_TELEMATICS),)


def run_risk(spark: SparkSession, cfg: Config) -> StageReport:
    report = StageReport(stage="risk")
    profiles = tables.read_optional(spark, cfg, DEVICE_PROFILES)
    kept = None
    if tables.exists(spark, cfg, DAILY_KPIS):
        daily = tables.read(spark, cfg, DAILY_KPIS).select("vehicle_id", "local_date", "gps_km", "data_coverage_share")
    else:
        report.notes.append("gold.daily_kpis missing: daily km computed from silver.telematics_clean")
        # computed once: the scores and the fleet count both read it
        daily = kept = materialise(daily_activity(tables.read(spark, cfg, SILVER_TELEMATICS), cfg.kpis.trips, heartbeats(profiles)))
    optional = {}
    for table in (EVENTS, RESIDENCES):
        optional[table] = tables.read_optional(spark, cfg, table)
        if optional[table] is None:
            report.notes.append(f"{table} missing: its signals are not scored")
    vehicles = tables.read_or_empty(spark, cfg, BRONZE_VEHICLES, VEHICLES, notes=report.notes, why="its signals are not scored")
    if profiles is None:
        report.notes.append(f"{DEVICE_PROFILES} missing: the fleet is the vehicles with daily data or in bronze.vehicles")
    risk = driver_risk(daily, vehicles, cfg.risk, optional[EVENTS], optional[RESIDENCES], fleet=profiles)
    written = tables.write(risk, cfg, DRIVER_RISK, mode="overwrite")
    report.tables[DRIVER_RISK] = written.version
    rows = tables.read(spark, cfg, DRIVER_RISK).orderBy(F.desc_nulls_last("score"), "vehicle_id").collect()  # bounded: one row per driver
    report.rows_out = len(rows)
    fleet = fleet_size(daily, vehicles, profiles)
    if kept is not None:
        release(kept)
    tiers = {t: sum(1 for r in rows if r["tier"] == t) for t in TIERS}
    line = f"driver_risk: {len(rows)} vehicles = " + " + ".join(f"{n} {t}" for t, n in tiers.items()) + f"; fleet {fleet}"
    print(line)
    report.notes.append(line)
    if len(rows) != fleet or len({r["vehicle_id"] for r in rows}) != len(rows):
        raise RuntimeError(f"gold.driver_risk does not reconcile with the fleet: {len(rows)} rows for {fleet} vehicles")
    low_cov = sum(1 for r in rows if r["low_coverage"])
    report.notes.append(f"low coverage {low_cov}")
    print(format_summary(rows))
    return report.finish()


def fleet_size(daily, vehicles, profiles) -> int:
    """Vehicles with daily data, in bronze.vehicles or in silver.device_profiles (the fleet risk must cover)."""
    ids = daily.select("vehicle_id")
    for other in (vehicles, profiles):
        if other is not None:
            ids = ids.unionByName(other.select("vehicle_id"))
    return ids.where("vehicle_id is not null").distinct().count()


def format_summary(rows, limit: int = 20) -> str:
    num = lambda v, spec: format(v, spec) if v is not None else "-"  # noqa: E731
    lines = [f"{'vehicle':<10}{'tier':<18}{'score':>6}{'z':>7}{'km/day':>8}{'cover':>7}  reasons"]
    for r in rows[:limit]:
        lines.append(
            f"{r['vehicle_id']:<10}{r['tier']:<18}{num(r['score'], '>6.0f'):>6}{num(r['z_score'], '>7.2f'):>7}{num(r['avg_daily_km'], '>8.1f'):>8}"
            f"{num(r['coverage_share'], '>7.2f'):>7}  {'; '.join(r['reasons'])}"
        )
    low = [r["vehicle_id"] for r in rows if r["low_coverage"]]
    lines.append(f"low data coverage (reported separately, not scored as inactivity): {', '.join(low) or '-'}")
    missing = [f"{r['vehicle_id']} ({'; '.join(r['reasons'])})" for r in rows if r["tier"] == INSUFFICIENT]
    lines.append(f"insufficient data (not scored): {', '.join(missing[:limit]) or '-'}{' ...' if len(missing) > limit else ''}")
    return "\n".join(lines)


@job_main
def main(argv=None) -> StageReport:
    cfg, spark, _ = bootstrap("risk", argv, __doc__)
    require_inputs(spark, cfg, REQUIRES)
    return run_risk(spark, cfg)


if __name__ == "__main__":
    main()

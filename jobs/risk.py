"""Driver risk: gold.daily_kpis (or silver) + charging + residences -> gold.driver_risk.

Baseline rule of the original analysis -- average daily km over the days the vehicle reported,
z-score against the fleet, High if z < `risk.z_threshold` -- plus weekly trend, inactive days,
days since the last trip, charging regularity and residence changes, each a weighted signal
with a human-readable reason. Drivers whose device reported on few days are flagged
`low_coverage` and scored on their reported days only. Logic: common/risk.py.

Reads:  gold.daily_kpis (else silver.telematics_clean through the same trip legs),
        gold.charging_events (optional), restricted.residences (optional; only the
        residence_changed flag and confidence are used), bronze.vehicles (driver_id).
Writes: gold.driver_risk.

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

from common import tables
from common.cli import StageReport, bootstrap
from common.config import Config
from common.risk import daily_activity, driver_risk

log = logging.getLogger("ev_fleet.risk")

DAILY_KPIS = "gold.daily_kpis"
SILVER_TELEMATICS = "silver.telematics_clean"
EVENTS = "gold.charging_events"
RESIDENCES = "restricted.residences"
BRONZE_VEHICLES = "bronze.vehicles"
DRIVER_RISK = "gold.driver_risk"
COMMENT = (
    "Driver risk: score 0-100, tier High/Medium/Low, baseline z-score of average daily km (High if z < threshold), "
    "signals and reasons; low_coverage drivers flagged, scored on reported days only"
)


def run_risk(spark: SparkSession, cfg: Config) -> StageReport:
    report = StageReport(stage="risk")
    if tables.exists(spark, cfg, DAILY_KPIS):
        daily = tables.read(spark, cfg, DAILY_KPIS).select("vehicle_id", "local_date", "gps_km", "data_coverage_share")
    else:
        report.notes.append("gold.daily_kpis missing: daily km computed from silver.telematics_clean")
        daily = daily_activity(tables.read(spark, cfg, SILVER_TELEMATICS), cfg.kpis.trips)
    optional = {}
    for table in (EVENTS, RESIDENCES, BRONZE_VEHICLES):
        optional[table] = tables.read_optional(spark, cfg, table)
        if optional[table] is None:
            report.notes.append(f"{table} missing: its signals are not scored")
    risk = driver_risk(daily, optional[BRONZE_VEHICLES], cfg.risk, optional[EVENTS], optional[RESIDENCES])
    written = tables.write(risk, cfg, DRIVER_RISK, mode="overwrite", comment=COMMENT)
    report.tables[DRIVER_RISK] = written.version
    rows = tables.read(spark, cfg, DRIVER_RISK).orderBy(F.desc("score"), "vehicle_id").collect()  # bounded: one row per driver
    report.rows_out = len(rows)
    tiers = {t: sum(1 for r in rows if r["tier"] == t) for t in ("High", "Medium", "Low")}
    low_cov = sum(1 for r in rows if r["low_coverage"])
    report.notes.append(f"tiers {tiers}; low coverage {low_cov}")
    print(format_summary(rows))
    return report.finish()


def format_summary(rows, limit: int = 20) -> str:
    lines = [f"{'vehicle':<10}{'tier':<8}{'score':>6}{'z':>7}{'km/day':>8}{'cover':>7}  reasons"]
    for r in rows[:limit]:
        lines.append(
            f"{r['vehicle_id']:<10}{r['tier']:<8}{r['score']:>6.0f}{r['z_score']:>7.2f}{r['avg_daily_km']:>8.1f}"
            f"{r['coverage_share']:>7.2f}  {'; '.join(r['reasons'])}"
        )
    low = [r["vehicle_id"] for r in rows if r["low_coverage"]]
    lines.append(f"low data coverage (reported separately, not scored as inactivity): {', '.join(low) or '-'}")
    return "\n".join(lines)


def main(argv=None) -> StageReport:
    cfg, spark, _ = bootstrap("risk", argv, __doc__)
    return run_risk(spark, cfg)


if __name__ == "__main__":
    main()

"""Fleet hotspots: unique daily visits -> exact distributed DBSCAN -> gold.hotspots.

Stops (common.silver.trips.detect_stops, dwell >= `hotspots.min_dwell_min`) are reduced to one visit
per (vehicle, local day, place), clustered with the exact distributed DBSCAN of common.spatial.dbscan
(grid cells with a 2 x eps halo, scikit-learn per cell in applyInPandas, union-find merge:
the same clusters as single-node scikit-learn) and kept as hotspots when at least
`hotspots.min_unique_visits` visits from `hotspots.min_distinct_vehicles` vehicles lie within
`hotspots.radius_m` of the centroid. Logic: common/mobility/hotspots.py.

Reads:  silver.telematics_clean.
Writes: restricted.unique_daily_visits (every vehicle's daily places, homes included: personal
        data), gold.hotspots (hotspot_id, centroid, hull_wkt, unique_visits, distinct_vehicles,
        busiest_hours, ...).

    python -m jobs.hotspots --env local
    python -m jobs.hotspots --conf hotspots.min_unique_visits=20
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

if __package__ in (None, ""):  # spark-submit jobs/hotspots.py: make `common` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from common.core.config import Config
from common.io import tables
from common.io.cli import StageReport, bootstrap, job_main, require_inputs
from common.mobility.hotspots import cluster_visits, find_hotspots, stops_for_visits, unique_daily_visits
from common.silver.devices import heartbeats

log = logging.getLogger("ev_fleet.hotspots")
SILVER_TELEMATICS = "silver.telematics_clean"
DEVICE_PROFILES = "silver.device_profiles"
VISITS = "restricted.unique_daily_visits"
HOTSPOTS = "gold.hotspots"

# Catalog tables read and written (common/core/catalog.py); the pipeline orders stages by them.
INPUTS: tuple[str, ...] = (SILVER_TELEMATICS, DEVICE_PROFILES)
OUTPUTS: tuple[str, ...] = (VISITS, HOTSPOTS)
# Input groups of which at least one table must exist; otherwise the stage is skipped (common.io.cli).
REQUIRES: tuple[tuple[str, ...], ...] = ((SILVER_TELEMATICS,),)


def run_hotspots(spark: SparkSession, cfg: Config) -> StageReport:
    report = StageReport(stage="hotspots")
    p = cfg.hotspots
    clean = tables.read(spark, cfg, SILVER_TELEMATICS)
    beats = heartbeats(tables.read_optional(spark, cfg, DEVICE_PROFILES))
    visits = unique_daily_visits(stops_for_visits(clean, cfg.kpis.trips, p, beats), p)
    written = tables.write(visits, cfg, VISITS, mode="overwrite", properties={"evfa.personal_data": "true"})
    report.tables[VISITS] = written.version
    visits = tables.read(spark, cfg, VISITS)
    report.rows_in = visits.count()

    clustered = cluster_visits(visits, p)
    hotspots = find_hotspots(clustered, p)
    written = tables.write(hotspots, cfg, HOTSPOTS, mode="overwrite")
    report.tables[HOTSPOTS] = written.version
    rows = tables.read(spark, cfg, HOTSPOTS).orderBy(F.desc("unique_visits")).collect()  # bounded: one row per hotspot
    report.rows_out = len(rows)
    report.notes.append(f"{report.rows_in} unique daily visits -> {len(rows)} hotspots")
    print(format_summary(rows, report.rows_in))
    return report.finish()


def format_summary(rows, n_visits: int, limit: int = 15) -> str:
    lines = [
        f"hotspots: {len(rows)} from {n_visits:,} unique daily visits",
        f"{'hotspot':<10}{'lat':>10}{'lon':>11}{'visits':>8}{'vehicles':>9}  busiest hours",
    ]
    for r in rows[:limit]:
        hours = ", ".join(f"{h:02d}h" for h in r["busiest_hours"])
        lines.append(f"{r['hotspot_id']:<10}{r['lat']:>10.4f}{r['lon']:>11.4f}{r['unique_visits']:>8}{r['distinct_vehicles']:>9}  {hours}")
    return "\n".join(lines)


@job_main
def main(argv=None) -> StageReport:
    cfg, spark, _ = bootstrap("hotspots", argv, __doc__)
    require_inputs(spark, cfg, REQUIRES)
    return run_hotspots(spark, cfg)


if __name__ == "__main__":
    main()

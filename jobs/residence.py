"""Residences: silver.telematics_clean -> restricted.residences (personal data, docs/PRIVACY.md).

Night points (usable, stationary, local 00:00-05:00 by default: `residence.*` in conf) are
snapped to a ~10 m grid per vehicle and clustered with scikit-learn DBSCAN (haversine, ball
tree) in a grouped pandas UDF; the home is the cluster with the most distinct nights, then the
most dwell time. Logic: common/mobility/residence.py.

Reads:  silver.telematics_clean.
Writes: restricted.residences (under storage.restricted_root, table property
        evfa.personal_data=true): vehicle_id, status, home_lat/home_lon, confidence,
        nights_observed, home_nights, first/last_seen, ... Printed summaries show homes only
        coarsened to report.residence_cell_m cells unless report.show_exact_residences is set.

    python -m jobs.residence --env local
    python -m jobs.residence --conf residence.min_nights=5
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

if __package__ in (None, ""):  # spark-submit jobs/residence.py: make `common` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pyspark.sql import SparkSession

from common.core.config import Config
from common.io import tables
from common.io.cli import StageReport, bootstrap, job_main, require_inputs
from common.mobility.residence import find_residences
from common.silver.devices import heartbeats
from common.spatial.privacy import coarsen_point

log = logging.getLogger("ev_fleet.residence")
SILVER_TELEMATICS = "silver.telematics_clean"
RESIDENCES = "restricted.residences"

# Catalog tables read and written (common/core/catalog.py); the pipeline orders stages by them.
INPUTS: tuple[str, ...] = (SILVER_TELEMATICS, "silver.device_profiles")
OUTPUTS: tuple[str, ...] = (RESIDENCES,)
# Input groups of which at least one table must exist; otherwise the stage is skipped (common.io.cli).
REQUIRES: tuple[tuple[str, ...], ...] = ((SILVER_TELEMATICS,),)

PERSONAL_DATA_PROPERTIES = {
    "evfa.personal_data": "true",
    "evfa.data_classification": "restricted",
    "evfa.personal_fields": "home_lat,home_lon,first_seen,last_seen",
    "evfa.display_rule": "coarsen to report.residence_cell_m unless report.show_exact_residences",
}


def run_residence(spark: SparkSession, cfg: Config) -> StageReport:
    """Find homes and write restricted.residences; print a coarsened summary."""
    report = StageReport(stage="residence")
    clean = tables.read(spark, cfg, SILVER_TELEMATICS)
    profiles = tables.read_optional(spark, cfg, "silver.device_profiles")
    homes = find_residences(clean, cfg.residence, cfg.kpis.trips, heartbeats(profiles), fleet=profiles)
    written = tables.write(homes, cfg, RESIDENCES, mode="overwrite", properties=PERSONAL_DATA_PROPERTIES)
    report.tables[RESIDENCES] = written.version
    rows = tables.read(spark, cfg, RESIDENCES).collect()  # bounded: one row per vehicle
    report.rows_out = len(rows)
    labelled = [r for r in rows if r["status"] == "home"]
    no_nights = sum(1 for r in rows if r["status"] == "no_night_data")
    report.notes.append(f"{len(labelled)} of {len(rows)} vehicles have a labelled home ({no_nights} without night data)")
    print(format_summary(rows, cfg.report.residence_cell_m, cfg.report.show_exact_residences))
    return report.finish()


def format_summary(rows, cell_m: float, exact: bool = False, limit: int = 20) -> str:
    """Per-status counts and the first vehicles, positions coarsened unless `exact`."""
    from collections import Counter

    counts = Counter(r["status"] for r in rows)
    where = "exact (explicitly enabled)" if exact else f"coarsened to {cell_m:.0f} m cells"
    lines = [f"residences: {dict(counts)}; positions {where}", f"{'vehicle':<12}{'status':<22}{'lat':>10}{'lon':>11}{'nights':>8}{'conf':>7}"]
    for r in sorted(rows, key=lambda r: r["vehicle_id"])[:limit]:
        lat, lon = (r["home_lat"], r["home_lon"]) if exact else coarsen_point(r["home_lat"], r["home_lon"], cell_m)
        fmt = lambda v, n: f"{v:>{n}.4f}" if v is not None else f"{'-':>{n}}"  # noqa: E731
        conf = f"{r['confidence']:>7.2f}" if r["confidence"] is not None else f"{'-':>7}"
        lines.append(f"{r['vehicle_id']:<12}{r['status']:<22}{fmt(lat, 10)}{fmt(lon, 11)}{r['home_nights'] or 0:>8}{conf}")
    if len(rows) > limit:
        lines.append(f"... {len(rows) - limit} more")
    return "\n".join(lines)


@job_main
def main(argv=None) -> StageReport:
    cfg, spark, _ = bootstrap("residence", argv, __doc__)
    require_inputs(spark, cfg, REQUIRES)
    return run_residence(spark, cfg)


if __name__ == "__main__":
    main()

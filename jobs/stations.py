"""Charging-network KPIs, fleet usage of stations and coverage gaps.

Reads:  bronze.stations (AFDC-like station master; the latest ingested version of each station),
        silver.charging_events (fleet charges, written by jobs/charging.py; optional),
        gold.hotspots (fleet hotspots, written by jobs/hotspots.py; optional).
Writes: gold.station_kpis         per level overall / region (state) / network: operational rate,
                                  DC-fast share, 24/7 access rate, public share and public/private
                                  ratio, average connector diversity (fractions 0-1);
        gold.station_fleet_usage  per station: fleet charging events matched within
                                  stations.match_radius_m (Sedona distance join), vehicles, kWh,
                                  hours, events without SOC gain;
        gold.expansion_gaps       hotspots with no open DC-fast station within stations.dc_fast_gap_m.
Definitions: common/network/stations.py; thresholds: the `stations` section of conf/base.yaml.

    python -m jobs.stations --env local
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

if __package__ in (None, ""):  # spark-submit jobs/stations.py: make `common` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession

from common.core.config import Config
from common.io import tables
from common.io.cli import StageReport, bootstrap, job_main, require_inputs
from common.network.stations import (
    expansion_gaps,
    kpi_summary_table,
    latest_stations,
    match_events_to_stations,
    normalise_fleet_events,
    normalise_hotspots,
    overall_kpi_note,
    station_attributes,
    station_fleet_usage,
    station_kpis,
)

log = logging.getLogger("ev_fleet.stations")
BRONZE_STATIONS = "bronze.stations"
CHARGING_EVENTS = "silver.charging_events"
HOTSPOTS = "gold.hotspots"
STATION_KPIS = "gold.station_kpis"
FLEET_USAGE = "gold.station_fleet_usage"
EXPANSION_GAPS = "gold.expansion_gaps"

# Catalog tables read and written (common/core/catalog.py); the pipeline orders stages by them.
INPUTS: tuple[str, ...] = (BRONZE_STATIONS, CHARGING_EVENTS, HOTSPOTS)
OUTPUTS: tuple[str, ...] = (STATION_KPIS, FLEET_USAGE, EXPANSION_GAPS)
# Input groups of which at least one table must exist; otherwise the stage is skipped (common.io.cli).
REQUIRES: tuple[tuple[str, ...], ...] = ((BRONZE_STATIONS,),)


def read_station_attributes(spark: SparkSession, cfg: Config) -> DataFrame:
    """Latest version of every station in bronze.stations with the derived attributes."""
    return latest_stations(tables.read(spark, cfg, BRONZE_STATIONS)).transform(lambda df: station_attributes(df, cfg.stations))


def run_stations(spark: SparkSession, cfg: Config) -> StageReport:
    """Write gold.station_kpis, and gold.station_fleet_usage / gold.expansion_gaps when their inputs exist."""
    report = StageReport(stage="stations")
    params = cfg.stations
    stations = read_station_attributes(spark, cfg).persist(StorageLevel.MEMORY_AND_DISK)
    try:
        report.rows_in = stations.count()
        result = tables.write(station_kpis(stations), cfg, STATION_KPIS)
        report.tables[STATION_KPIS] = result.version
        note = overall_kpi_note(tables.read(spark, cfg, STATION_KPIS))
        if note:
            report.notes.append(note)

        if tables.exists(spark, cfg, CHARGING_EVENTS):
            events = normalise_fleet_events(tables.read(spark, cfg, CHARGING_EVENTS))
            usage = station_fleet_usage(match_events_to_stations(events, stations, params), params)
            result = tables.write(usage, cfg, FLEET_USAGE)
            report.tables[FLEET_USAGE] = result.version
        else:
            report.notes.append(f"{CHARGING_EVENTS} not found (run jobs/charging.py): {FLEET_USAGE} not written")

        if tables.exists(spark, cfg, HOTSPOTS):
            hotspots = normalise_hotspots(tables.read(spark, cfg, HOTSPOTS))
            result = tables.write(expansion_gaps(hotspots, stations, params), cfg, EXPANSION_GAPS)
            report.tables[EXPANSION_GAPS] = result.version
            n_gaps = tables.read(spark, cfg, EXPANSION_GAPS).count()
            report.notes.append(f"{n_gaps} hotspot(s) without a DC-fast station within {params.dc_fast_gap_m:.0f} m")
        else:
            report.notes.append(f"{HOTSPOTS} not found (run jobs/hotspots.py): {EXPANSION_GAPS} not written")
    finally:
        stations.unpersist()
    report.rows_out = tables.read(spark, cfg, STATION_KPIS).count()
    for note in report.notes:
        log.info("%s", note)
    return report.finish()


def kpi_summary(spark: SparkSession, cfg: Config, levels: tuple[str, ...] = ("overall", "region")) -> str:
    """Text table of gold.station_kpis for the given levels (for logs and tests)."""
    return kpi_summary_table(tables.read(spark, cfg, STATION_KPIS), levels)


@job_main
def main(argv: list[str] | None = None) -> StageReport:
    cfg, spark, _args = bootstrap("stations", argv, __doc__)
    require_inputs(spark, cfg, REQUIRES)
    report = run_stations(spark, cfg)
    print(kpi_summary(spark, cfg))
    return report


if __name__ == "__main__":
    main()

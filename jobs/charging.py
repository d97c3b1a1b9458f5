"""Charging events, per-vehicle charging locations and fleet charging sites.

Events are runs of SOC increase while a vehicle stands still (two passes: gain > 5 points, then
a lower threshold for vehicles with none); locations are a per-vehicle DBSCAN of event positions
(grouped pandas UDF); sites group all vehicles' locations with the exact distributed DBSCAN and
are classified home / public / depot / unknown (residence within `charging.home_radius_m`,
bronze.stations within `charging.station_radius_m` via a Sedona distance join). Logic and
definitions: common/mobility/charging.py; thresholds: `charging.*` in conf.

Reads:  silver.telematics_clean, bronze.vehicles (battery_kwh), bronze.stations,
        restricted.residences (optional: without it no site is classified home).
Writes: silver.charging_events, gold.charging_locations, gold.charging_sites and
        restricted.home_charging_sites. A home charging site is where a driver lives, and an
        unmatched site a single vehicle uses may be: in gold their positions (and those of their
        events and locations) are null; the exact positions stay in the restricted table, and
        the report shows them coarsened to report.residence_cell_m cells.

    python -m jobs.charging --env local
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

if __package__ in (None, ""):  # spark-submit jobs/charging.py: make `common` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from common.core.config import Config
from common.core.frames import materialise, release
from common.io import tables
from common.io.cli import StageReport, bootstrap, job_main, require_inputs
from common.io.schemas import VEHICLES
from common.mobility.charging import charging_locations, charging_sites, detect_charging_events, label_event_locations
from common.silver.devices import heartbeats
from common.spatial.privacy import withhold_where

log = logging.getLogger("ev_fleet.charging")
SILVER_TELEMATICS = "silver.telematics_clean"
BRONZE_VEHICLES = "bronze.vehicles"
BRONZE_STATIONS = "bronze.stations"
RESIDENCES = "restricted.residences"
DEVICE_PROFILES = "silver.device_profiles"
EVENTS = "silver.charging_events"
LOCATIONS = "gold.charging_locations"
SITES = "gold.charging_sites"
HOME_SITES = "restricted.home_charging_sites"

# Catalog tables read and written (common/core/catalog.py); the pipeline orders stages by them.
INPUTS: tuple[str, ...] = (SILVER_TELEMATICS, BRONZE_VEHICLES, BRONZE_STATIONS, RESIDENCES, DEVICE_PROFILES)
OUTPUTS: tuple[str, ...] = (EVENTS, LOCATIONS, SITES, HOME_SITES)
# Input groups of which at least one table must exist; otherwise the stage is skipped (common.io.cli).
REQUIRES: tuple[tuple[str, ...], ...] = ((SILVER_TELEMATICS,),)


def _optional(spark: SparkSession, cfg: Config, table: str, report: StageReport, why: str) -> DataFrame | None:
    if tables.exists(spark, cfg, table):
        return tables.read(spark, cfg, table)
    report.notes.append(f"{table} missing: {why}")
    return None


def run_charging(spark: SparkSession, cfg: Config) -> StageReport:
    report = StageReport(stage="charging")
    p = cfg.charging
    clean = tables.read(spark, cfg, SILVER_TELEMATICS)
    vehicles = tables.read_or_empty(spark, cfg, BRONZE_VEHICLES, VEHICLES, notes=report.notes, why="kWh is null unless charging.default_battery_kwh is set")
    stations = _optional(spark, cfg, BRONZE_STATIONS, report, "no site is matched to a station")
    residences = _optional(spark, cfg, RESIDENCES, report, "no site is classified home (run jobs/residence.py first)")

    # Events and their per-vehicle locations are computed once and reused by every output.
    beats = heartbeats(tables.read_optional(spark, cfg, DEVICE_PROFILES))
    events = kept_events = materialise(label_event_locations(detect_charging_events(clean, vehicles, p, cfg.kpis.trips, beats), p))
    locations = materialise(charging_locations(events))
    sites, located = charging_sites(locations, residences, stations, p)
    sites = materialise(sites)
    located = located.join(sites.select("site_id", F.col("kind").alias("site_kind")), "site_id", "left")
    site_of_location = located.select("location_id", "site_id", "site_kind")
    events = events.join(site_of_location, "location_id", "left")

    # Personal places: home sites, and unmatched sites only one vehicle uses (often the home of a
    # driver without a labelled residence). No position in gold, exact in the restricted table.
    private = (F.col("kind") == "home") | ((F.col("kind") == "unknown") & (F.col("n_vehicles") == 1))
    private_sites = sites.where(private).select("site_id")
    located = located.join(private_sites.withColumn("_private", F.lit(True)), "site_id", "left")
    events = events.join(private_sites.withColumn("_private", F.lit(True)), "site_id", "left")
    is_private = F.coalesce(F.col("_private"), F.lit(False))
    results = {
        EVENTS: withhold_where(events, is_private).drop("_private"),
        LOCATIONS: withhold_where(located, is_private).drop("_private"),
        SITES: withhold_where(sites, private),
        HOME_SITES: sites.where(private).select("site_id", "kind", "home_vehicle_id", "lat", "lon", "n_events"),
    }
    for table, df in results.items():
        props = {"evfa.personal_data": "true"} if table.startswith("restricted.") else None
        written = tables.write(df, cfg, table, mode="overwrite", properties=props)
        report.tables[table] = written.version
    for kept in (kept_events, locations, sites):
        release(kept)

    counts = tables.read(spark, cfg, SITES).groupBy("kind").agg(F.count("*").alias("n"), F.sum("n_events").alias("events"))
    by_kind = {r["kind"]: (r["n"], r["events"]) for r in counts.collect()}  # bounded: one row per site kind
    n_events = tables.read(spark, cfg, EVENTS).count()
    report.rows_out = n_events
    report.notes.append(f"{n_events} charging events; sites by kind (sites, events): {by_kind}")
    print(f"charging: {n_events} events; sites by kind (sites, events): {by_kind}")
    return report.finish()


@job_main
def main(argv=None) -> StageReport:
    cfg, spark, _ = bootstrap("charging", argv, __doc__)
    require_inputs(spark, cfg, REQUIRES)
    return run_charging(spark, cfg)


if __name__ == "__main__":
    main()

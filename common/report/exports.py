"""Extracts for operations teams: one pure transform per extract, and what each reads (`jobs/export.py`).

The seed analysis handed its users CSV lists; these are their successors, written per run as
CSV / Parquet files (common/io/extracts.py). Each extract is a DataFrame -> DataFrame transform
over gold (and restricted) tables with flat columns and a fixed sort order, and a *source query*:
the rows it must hold, counted straight from its input, which the job reconciles with the rows it
wrote. Extracts:

- ``high_risk_drivers`` (personal: vehicle and driver ids with their home cell, so written only to
  the restricted folder): tier High of gold.driver_risk with its signals and reasons, and the home
  of restricted.residences as an H3 cell id, never coordinates;
- ``sites_needing_ports``: stations of gold.site_capacity whose busiest hour of week needs more
  ports (`common.network.capacity.site_needs`);
- ``fault_forecast_sites``: faults forecast per site over the horizon of gold.fault_forecast;
- ``charging_plan``: tomorrow's charging schedule of gold.charging_plan at shared sites (depots,
  then public sites), per site and slot. Home and ``unknown`` sites are left out (`PLAN_SITE_KINDS`):
  a vehicle's slots at home say when its driver is at home, and an unknown site may be one
  driver's private place; their rows stay in gold.charging_plan (no position in either).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from common.core.catalog import TABLES
from common.core.config import Config
from common.network.capacity import site_needs
from common.network.forecast import NETWORK
from common.report.sections import h3_cells
from common.spatial.privacy import h3_resolution_for

# Joins the string lists of gold.driver_risk (signals, reasons) into one CSV cell; the reasons'
# texts hold commas but never this.
LIST_SEPARATOR = "; "
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")

HIGH_RISK_COLUMNS = (
    "vehicle_id",
    "driver_id",
    "tier",
    "score",
    "z_score",
    "avg_daily_km",
    "reported_days",
    "period_days",
    "low_coverage",
    "days_since_last_trip",
    "signals",
    "reasons",
    "period_start",
    "period_end",
    "home_status",
    "home_h3_cell",
    "home_h3_resolution",
)


def high_risk_drivers(risk: DataFrame, residences: DataFrame, cell_m: float) -> DataFrame:
    """Drivers of tier High with their reasons and the H3 cell of their home.

    Parameters
    ----------
    risk : DataFrame
        gold.driver_risk (common.mobility.risk.RISK_COLUMNS).
    residences : DataFrame
        restricted.residences: vehicle_id, status, home_lat, home_lon (degrees); one row per vehicle.
    cell_m : float
        The home cell is the H3 cell, at `privacy.h3_resolution_for(cell_m)`, holding the home: no
        smaller than a square of this side (m).

    Returns
    -------
    DataFrame
        One row per High-tier vehicle, HIGH_RISK_COLUMNS: signals and reasons joined by
        LIST_SEPARATOR; home_status (residences' status, null without a residence row),
        home_h3_cell (the H3 index as 15 lower-case hex digits, as H3 tools print it; null without
        a labelled home), home_h3_resolution. No coordinate column. Sorted by score (highest
        first), then z_score (lowest first), then vehicle_id.
    """
    homes = h3_cells(residences.select("vehicle_id", "status", "home_lat", "home_lon"), cell_m, "home_lat", "home_lon")
    homes = homes.select(
        "vehicle_id",
        F.col("status").alias("home_status"),
        F.lower(F.hex("h3_cell")).alias("home_h3_cell"),
        F.when(F.col("h3_cell").isNotNull(), F.lit(h3_resolution_for(cell_m))).alias("home_h3_resolution"),
    )
    high = risk.where(F.col("tier") == "High").select(
        *[c for c in HIGH_RISK_COLUMNS if c in risk.columns and c not in ("signals", "reasons")],
        F.array_join("signals", LIST_SEPARATOR).alias("signals"),
        F.array_join("reasons", LIST_SEPARATOR).alias("reasons"),
    )
    return high.join(homes, "vehicle_id", "left").select(*HIGH_RISK_COLUMNS).orderBy(F.desc_nulls_last("score"), F.asc_nulls_last("z_score"), "vehicle_id")


def sites_needing_ports(capacity: DataFrame) -> DataFrame:
    """Stations whose busiest hour of week needs more ports than they have.

    Parameters
    ----------
    capacity : DataFrame
        gold.site_capacity.

    Returns
    -------
    DataFrame
        The columns of `common.network.capacity.site_needs` for stations with additional_ports
        > 0, plus peak_local_time (e.g. ``Mon 18:00``, the station's local wall clock of
        peak_hour_of_week, Monday 00:00 = 0). Sorted by additional ports, then P(wait) of the
        peak hour (both highest first), then station_id.
    """
    needs = site_needs(capacity).where(F.col("additional_ports") > 0)
    how = F.col("peak_hour_of_week")
    day = F.element_at(F.array(*[F.lit(d) for d in WEEKDAYS]), (F.floor(how / 24) + 1).cast("int"))
    peak = F.concat(day, F.lit(" "), F.lpad((how % 24).cast("string"), 2, "0"), F.lit(":00"))
    cols = needs.columns
    at = cols.index("peak_hour_of_week") + 1
    return needs.withColumn("peak_local_time", peak).select(*cols[:at], "peak_local_time", *cols[at:]).orderBy(F.desc_nulls_last("additional_ports"), F.desc_nulls_last("peak_p_wait"), "station_id")


FAULT_SITE_COLUMNS = ("source_name", "site_id", "faults_forecast", "buckets", "first_bucket_start", "last_bucket_start", "method", "spec", "history_buckets", "note")


def fault_forecast_sites(forecast: DataFrame) -> DataFrame:
    """Faults forecast per site, summed over the forecast horizon.

    Parameters
    ----------
    forecast : DataFrame
        gold.fault_forecast: per source_name, site_id and bucket_start the observed buckets
        (step <= 0) and the forecast ones (step >= 1, forecast, method, spec, note); the
        network's own series has site_id NETWORK.

    Returns
    -------
    DataFrame
        One row per source and site (the network's series left out), FAULT_SITE_COLUMNS:
        faults_forecast (sum of the forecast faults of the buckets ahead), buckets (how many),
        first/last_bucket_start (dates), the series' method, spec, history_buckets and note.
        Sorted by faults_forecast (most first), then source_name, site_id.
    """
    ahead = forecast.where((F.col("step") >= 1) & (F.col("site_id") != NETWORK))
    per_site = ahead.groupBy("source_name", "site_id").agg(
        F.sum("forecast").alias("faults_forecast"),
        F.count("*").alias("buckets"),
        F.min("bucket_start").alias("first_bucket_start"),
        F.max("bucket_start").alias("last_bucket_start"),
        # one value per series (the forecast step rows repeat them); max picks it deterministically
        F.max("method").alias("method"),
        F.max("spec").alias("spec"),
        F.max("history_buckets").alias("history_buckets"),
        F.max("note").alias("note"),
    )
    return per_site.select(*FAULT_SITE_COLUMNS).orderBy(F.desc_nulls_last("faults_forecast"), "source_name", "site_id")


PLAN_COLUMNS = (
    "plan_date",
    "site_kind",
    "site_id",
    "vehicle_id",
    "slot_start_local",
    "slot_end_local",
    "kwh",
    "grid_kwh",
    "grid_kw",
    "price_per_kwh",
    "cost",
    "site_ports",
    "site_capacity_kw",
)
# Site kinds of the unrestricted extract, in its order: shared sites only (module docstring).
PLAN_SITE_KINDS = ("depot", "public")
PLAN_EXTRACT_NOTE = "home and unknown sites left out (when a driver is at home is personal); their rows are in gold.charging_plan"


def charging_plan_rows(plan: DataFrame) -> DataFrame:
    """The charging schedule an operator works through at shared sites, site by site and slot by slot.

    Parameters
    ----------
    plan : DataFrame
        gold.charging_plan (common.mobility.charging_plan.SLOT_COLUMNS).

    Returns
    -------
    DataFrame
        One row per plan row at a `PLAN_SITE_KINDS` site, PLAN_COLUMNS. Sorted by plan date, site
        kind (depot, public), site_id, slot start, vehicle_id.
    """
    kind_order = F.create_map(*[x for i, k in enumerate(PLAN_SITE_KINDS) for x in (F.lit(k), F.lit(i))])[F.col("site_kind")]
    rows = shared_plan_rows(plan).withColumn("_k", kind_order)
    return rows.orderBy("plan_date", "_k", "site_id", "slot_start_local", "vehicle_id").select(*PLAN_COLUMNS)


def shared_plan_rows(plan: DataFrame) -> DataFrame:
    """Rows of gold.charging_plan at shared sites (`PLAN_SITE_KINDS`): the extract's source query.

    Parameters
    ----------
    plan : DataFrame
        gold.charging_plan.

    Returns
    -------
    DataFrame
        The rows whose site_kind is in `PLAN_SITE_KINDS`.
    """
    return plan.where(F.col("site_kind").isin(*PLAN_SITE_KINDS))


# --------------------------------------------------------------------------------------------
# The extracts of a run
# --------------------------------------------------------------------------------------------
Frames = Mapping[str, DataFrame]


@dataclass(frozen=True)
class Extract:
    """One extract of the export stage.

    Attributes
    ----------
    name : str
        File name (``<name>.csv`` / ``<name>.parquet``) and manifest key.
    description : str
        What a row is (manifest).
    sources : tuple of str
        Catalog names of the tables it reads; all must exist, else the extract is skipped.
    personal : bool
        Carries personal data: written only to the restricted folder.
    build : callable or None
        (tables by name, config) -> the extract; None while no transform exists yet.
    source_query : callable or None
        Tables by name -> the rows the extract must hold (the job counts them and reconciles).
    note : str or None
        What the extract leaves out of its sources and why (manifest and stage report).
    """

    name: str
    description: str
    sources: tuple[str, ...]
    personal: bool
    build: Callable[[Frames, Config], DataFrame] | None
    source_query: Callable[[Frames], DataFrame] | None
    note: str | None = None


EXTRACTS: tuple[Extract, ...] = (
    Extract(
        "high_risk_drivers",
        "Per vehicle of risk tier High: score, z-score, signals and reasons, and the H3 cell of its home (export.home_cell_m); personal data",
        ("gold.driver_risk", "restricted.residences"),
        True,
        lambda t, cfg: high_risk_drivers(t["gold.driver_risk"], t["restricted.residences"], cfg.export.home_cell_m),
        lambda t: t["gold.driver_risk"].where(F.col("tier") == "High"),
    ),
    Extract(
        "sites_needing_ports",
        "Per station whose busiest hour of week needs more ports for capacity.target_p_wait: ports, peak hour, P(wait), ports needed",
        ("gold.site_capacity",),
        False,
        lambda t, cfg: sites_needing_ports(t["gold.site_capacity"]),
        lambda t: t["gold.site_capacity"].where(F.col("additional_ports") > 0).select("source_name", "station_id").distinct(),
    ),
    Extract(
        "fault_forecast_sites",
        "Per source and site: faults forecast over the next fault_forecast.horizon buckets, with the method",
        ("gold.fault_forecast",),
        False,
        lambda t, cfg: fault_forecast_sites(t["gold.fault_forecast"]),
        lambda t: t["gold.fault_forecast"].where((F.col("step") >= 1) & (F.col("site_id") != NETWORK)).select("source_name", "site_id").distinct(),
    ),
    Extract(
        "charging_plan",
        "Per depot and public site: the charging plan (per site, vehicle and slot with charge: kWh, kW, price, cost)",
        ("gold.charging_plan",),
        False,
        lambda t, cfg: charging_plan_rows(t["gold.charging_plan"]),
        lambda t: shared_plan_rows(t["gold.charging_plan"]),
        PLAN_EXTRACT_NOTE,
    ),
)

# The catalog tables the extracts read (the job's INPUTS); a source not in the catalog yet is not
# declared and its extract is skipped with the reason.
SOURCE_TABLES: tuple[str, ...] = tuple(dict.fromkeys(t for e in EXTRACTS for t in e.sources if t in TABLES))


def unavailable(extract: Extract, exists: Callable[[str], bool]) -> str | None:
    """Why `extract` cannot be written in this run, or None.

    Parameters
    ----------
    extract : Extract
    exists : callable
        Catalog name -> whether the table exists in the lakehouse.

    Returns
    -------
    str or None
        A sentence naming the table that is not in the catalog or not written yet, or the missing
        transform.
    """
    uncatalogued = [t for t in extract.sources if t not in TABLES]
    if uncatalogued:
        return f"{', '.join(uncatalogued)} is not a table of the catalog yet (no stage writes it)"
    if extract.build is None:
        return "no transform for this extract yet"
    missing = [t for t in extract.sources if not exists(t)]
    if missing:
        return f"{', '.join(missing)} missing (its stage has not run or was skipped)"
    return None

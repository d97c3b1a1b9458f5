"""Sections of the HTML report, built from the gold tables a job has read.

Each `section_*` takes the report's inputs (`ReportInputs`: the tables of `REPORT_TABLES`, None
when absent, and the last pipeline run's stage status) and the config, and returns an
`html.Section`; a section whose table does not exist says why (the stage's skip reason from the
last run, else which stage writes it). Only bounded, aggregated data is brought to the driver
(`report.max_points_per_layer` rows per layer or chart). Residences appear only coarsened to
`report.residence_cell_m` cells unless `report.show_exact_residences` is set. Nothing here
reads or writes storage (model metrics come from the MLflow tracking store).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from common.core.config import Config
from common.io.tables import first_row
from common.report import html as R
from common.silver.cleaning import cleaning_params

# Tables the sections read; a job reads each one that exists (tables.read_optional).
STAGE_RUNS = "audit.stage_runs"
REPORT_TABLES = (
    STAGE_RUNS,
    "gold.quality_daily",
    "gold.fleet_daily_kpis",
    "gold.charging_sites",
    "restricted.home_charging_sites",
    "gold.hotspots",
    "gold.expansion_gaps",
    "bronze.stations",
    "restricted.residences",
    "gold.driver_risk",
    "gold.station_kpis",
    "gold.port_reliability_monthly",
    "gold.site_reliability",
    "gold.reliability_tests",
    "gold.site_capacity",
    "gold.fault_drivers",
    "gold.fault_forecast",
    "gold.fault_forecast_backtest",
    "gold.rollout_effects",
    "gold.rollout_event_study",
    "gold.charging_plan",
    "gold.charging_plan_vehicles",
    "gold.model_monitoring",
    "silver.telematics_clean",
)

StageStatus = dict[str, tuple[str, str | None]]


@dataclass
class ReportInputs:
    """What the sections show.

    Attributes
    ----------
    tables : Mapping[str, DataFrame or None]
        Table name -> DataFrame, None (or missing) when the table does not exist.
    status : dict
        Stage -> (status, reason) of the newest pipeline run (`last_run_status`); {} when none.
    """

    tables: Mapping[str, DataFrame | None] = field(default_factory=dict)
    status: StageStatus = field(default_factory=dict)

    def get(self, table: str) -> DataFrame | None:
        """The table, or None when it does not exist.

        Parameters
        ----------
        table : str
            Qualified table name, e.g. 'gold.hotspots'.

        Returns
        -------
        DataFrame or None
            The table as read by the job; None when it does not exist.
        """
        return self.tables.get(table)


def _bounded(df: DataFrame, cfg: Config) -> pd.DataFrame:
    """Bring at most max_points_per_layer rows to the driver (report inputs are aggregates)."""
    return df.limit(cfg.report.max_points_per_layer).toPandas()


def _latlon(pdf: pd.DataFrame) -> pd.DataFrame:
    """Rows with a position (every mapped gold table has lat/lon columns)."""
    return pdf.dropna(subset=["lat", "lon"])


def last_run_status(runs: DataFrame | None) -> StageStatus:
    """Stage status of the newest pipeline run.

    Parameters
    ----------
    runs : DataFrame or None
        audit.stage_runs (run_id, finished_at, stage, status, reason); None when it does not exist.

    Returns
    -------
    dict
        stage -> (status, reason) of the run with the latest finished_at; {} when there is none.
    """
    if runs is None:
        return {}
    latest = first_row(runs.agg(F.max(F.struct("finished_at", "run_id")).alias("m")))["m"]
    if latest is None:
        return {}
    rows = runs.where(F.col("run_id") == latest["run_id"]).select("stage", "status", "reason").collect()  # bounded: one row per stage
    return {r["stage"]: (r["status"], r["reason"]) for r in rows}


def no_data(table: str, stage: str, status: StageStatus) -> str:
    """Why a section is empty: the stage's skip reason from the last run, else which stage writes the table.

    Parameters
    ----------
    table : str
        The missing table's name.
    stage : str
        The pipeline stage that writes it.
    status : StageStatus
        `ReportInputs.status`: stage -> (status, reason) of the newest run.

    Returns
    -------
    str
        A `<p class='empty'>` note: the stage was skipped (with its reason), failed, or has not been run.
    """
    state, reason = status.get(stage, (None, None))
    if state == "skipped" and reason:
        return f"<p class='empty'>No data: the {R.esc(stage)} stage was skipped ({R.esc(reason)}).</p>"
    if state == "failed":
        return f"<p class='empty'>No data: the {R.esc(stage)} stage failed in the last run ({R.esc(reason or '')}).</p>"
    return f"<p class='empty'>No data: {R.esc(table)} does not exist (run the {R.esc(stage)} stage).</p>"


def section_status(inputs: ReportInputs, cfg: Config) -> R.Section:
    """Stage status table of the newest pipeline run.

    Parameters
    ----------
    inputs : ReportInputs
    cfg : Config

    Returns
    -------
    html.Section
        Section 'status': one row per stage (stage, status, reason), or a note when no run is recorded.
    """
    s = R.Section("status", "Pipeline run")
    status = inputs.status
    if not status:
        return s.add("<p class='empty'>No pipeline run recorded (stages were run one by one).</p>")
    pdf = pd.DataFrame([(stage, st, reason or "") for stage, (st, reason) in status.items()], columns=["stage", "status", "reason"])
    skipped = pdf[pdf.status != "ok"]
    if len(skipped):
        s.add(f"<p>{len(skipped)} stage(s) did not produce data in the last run; their sections say why.</p>")
    return s.add(R.table_html(pdf, "status_table", "{}"))


def section_quality(inputs: ReportInputs, cfg: Config) -> R.Section:
    """Rows cleaned, usable share and rows flagged per cleaning rule (gold.quality_daily).

    Parameters
    ----------
    inputs : ReportInputs
    cfg : Config

    Returns
    -------
    html.Section
        Section 'quality': KPI tiles (rows, usable share as %), a bar chart and a table of rows
        flagged per rule (share as a fraction 0-1).
    """
    s = R.Section("quality", "Data quality")
    daily = inputs.get("gold.quality_daily")
    if daily is None:
        return s.add(no_data("gold.quality_daily", "clean", inputs.status))
    from common.silver.cleaning import rule_summary

    rules: pd.DataFrame = rule_summary(daily).toPandas()  # bounded: one row per cleaning rule
    totals = first_row(daily.agg(F.sum("rows").alias("rows"), F.sum("usable_rows").alias("usable")))
    share = (totals.usable or 0) / max(totals.rows or 1, 1)
    s.add(R.kpi_tiles([("rows cleaned", f"{totals.rows:,}"), ("usable share", f"{share:.2%}"), ("rules", str(len(rules)))]))
    s.add(R.bar_chart("quality_rules", rules["rule"].tolist(), {"rows flagged": rules["rows_flagged"].tolist()}, "Rows flagged per rule", "rows", horizontal=True))
    s.add(R.table_html(rules[["rule", "rows_flagged", "share"]], "quality_table", "{:,.4f}"))
    return s


def section_fleet(inputs: ReportInputs, cfg: Config) -> R.Section:
    """Daily fleet distance (km), moving hours and lowest SOC (%) percentiles (gold.fleet_daily_kpis).

    Parameters
    ----------
    inputs : ReportInputs
    cfg : Config

    Returns
    -------
    html.Section
        Section 'fleet': line charts over local dates; the p10/p50/p90 percentiles over vehicles
        that the table has (all of its percentiles when it has none of these).
    """
    s = R.Section("fleet", "Fleet activity")
    fleet = inputs.get("gold.fleet_daily_kpis")
    if fleet is None:
        return s.add(no_data("gold.fleet_daily_kpis", "kpis", inputs.status))
    pdf = _bounded(fleet, cfg).sort_values("local_date")
    x = pd.to_datetime(pdf["local_date"])

    # Distributions over the vehicles reporting each day (common.mobility.kpis.fleet_daily_kpis; the
    # percentiles come from kpis.percentiles, so take the ones this table has).
    def dist(name: str) -> dict[str, list]:
        """The percentile columns `<name>_p<NN>` of the table, as chart series.

        Parameters
        ----------
        name : str
            Column stem, e.g. 'moving_hours'.

        Returns
        -------
        dict of str to list
            'p10'/'p50'/'p90' (or every percentile present) -> values per day; {} when the table has none.
        """
        cols = [c for c in pdf.columns if c.startswith(f"{name}_p") and c[len(name) + 2 :].isdigit()]
        pick = [c for c in cols if c[-2:] in ("10", "50", "90")] or cols
        return {c.replace(f"{name}_", ""): pdf[c].tolist() for c in pick}

    s.add(R.line_chart("fleet_km", x, {"fleet GPS km": pdf["gps_km"].tolist()}, "Daily fleet distance", "km"))
    util = dist("moving_hours")
    if util:
        s.add(R.line_chart("fleet_utilisation", x, util, "Utilisation: moving hours per vehicle (percentiles over vehicles)", "hours"))
    soc = dist("soc_min_pct")
    if soc:
        s.add(R.line_chart("fleet_soc", x, soc, "Lowest state of charge of the day (percentiles over vehicles)", "%"))
    return s


def _capped(df: DataFrame, cfg: Config) -> tuple[pd.DataFrame, int | None]:
    """`_bounded` rows and, when the cap cut the table, how many rows it has (for the legend)."""
    pdf = _bounded(df, cfg)
    return pdf, (df.count() if len(pdf) >= cfg.report.max_points_per_layer else None)


def histogram_bins(df: DataFrame, column: str, bins: int) -> tuple[list[float], list[int]]:
    """Equal-width bins over every finite value of a column, counted in Spark (no sample).

    Parameters
    ----------
    df : DataFrame
        Any rows with `column` (numeric).
    column : str
        Column to count.
    bins : int
        Number of bins between the column's minimum and maximum (the last bin holds the maximum).

    Returns
    -------
    tuple of list
        (edges, counts): `bins` + 1 edges and `bins` counts; one bin of width 1 around a constant
        column; ([], []) when no value is finite.
    """
    v = F.col(column).cast("double")
    vals = df.select(v.alias("v")).where(F.col("v").isNotNull() & ~F.isnan("v") & (F.abs("v") < F.lit(float("inf"))))
    stats = first_row(vals.agg(F.min("v").alias("lo"), F.max("v").alias("hi"), F.count("v").alias("n")))
    if not stats["n"]:
        return [], []
    lo, hi = float(stats["lo"]), float(stats["hi"])
    if hi == lo:
        return [lo - 0.5, lo + 0.5], [int(stats["n"])]
    width = (hi - lo) / bins
    edges = [lo + i * width for i in range(bins)] + [hi]
    # numpy's rule: the quotient's bin, moved by one where float rounding put a value on the wrong
    # side of the edges themselves (a value equal to an edge opens that edge's bin).
    guess = F.least(F.floor((F.col("v") - F.lit(lo)) / F.lit(width)), F.lit(bins - 1)).cast("int")
    low_edge = F.lit(lo) + guess.cast("double") * F.lit(width)
    high_edge = F.when(guess >= bins - 1, F.lit(hi)).otherwise(F.lit(lo) + (guess + 1).cast("double") * F.lit(width))
    idx = F.when(F.col("v") < low_edge, guess - 1).when((F.col("v") >= high_edge) & (guess < bins - 1), guess + 1).otherwise(guess)
    counted = {r["b"]: r["count"] for r in vals.groupBy(idx.alias("b")).count().collect()}  # bounded: `bins` rows
    return edges, [int(counted.get(i, 0)) for i in range(bins)]


def h3_cells(df: DataFrame, cell_m: float, lat_col: str = "lat", lon_col: str = "lon") -> DataFrame:
    """Add `h3_cell`: the H3 cell (Sedona, at `privacy.h3_resolution_for(cell_m)`) holding each position.

    Parameters
    ----------
    df : DataFrame
        Any rows with `lat_col` and `lon_col` (degrees WGS84).
    cell_m : float
        Side of the coarsening cell, m.
    lat_col, lon_col : str
        Names of the position columns.

    Returns
    -------
    DataFrame
        `df` with `h3_cell` (long; null where the position is null).
    """
    from common.io.spark import with_sedona
    from common.spatial.privacy import h3_resolution_for

    with_sedona(df.sparkSession)
    res = h3_resolution_for(cell_m)
    return df.withColumn("h3_cell", F.expr(f"ST_H3CellIDs(ST_Point(`{lon_col}`, `{lat_col}`), {res}, true)[0]"))


def with_h3_geojson(df: DataFrame, cell_col: str = "h3_cell") -> DataFrame:
    """Add `geojson`: the hexagon of each row's H3 cell as GeoJSON text (lon/lat degrees, Sedona).

    Parameters
    ----------
    df : DataFrame
        Rows with `cell_col`.
    cell_col : str
        Column with the H3 cell id (long).

    Returns
    -------
    DataFrame
        `df` with `geojson` (GeoJSON Polygon text; null for a null cell).
    """
    from common.io.spark import with_sedona

    with_sedona(df.sparkSession)
    return df.withColumn("geojson", F.expr(f"ST_AsGeoJSON(ST_H3ToGeom(array(`{cell_col}`))[0])"))


def _home_layers(inputs: ReportInputs, cfg: Config) -> list:
    """Drivers per H3 cell of their home (cells no smaller than report.residence_cell_m squares),
    with the risk tiers in the hover text where the cell holds report.min_drivers_for_tiers drivers
    of more than one tier;
    exact home points only when report.show_exact_residences."""
    res = inputs.get("restricted.residences")
    if res is None:
        return []
    homes = res.where(F.col("home_lat").isNotNull()).select("vehicle_id", F.col("home_lat").alias("lat"), F.col("home_lon").alias("lon"))
    risk = inputs.get("gold.driver_risk")
    tier = F.coalesce(F.col("tier"), F.lit("unknown"))
    homes = homes.join(risk.select("vehicle_id", "tier"), "vehicle_id", "left") if risk is not None else homes.withColumn("tier", F.lit(None).cast("string"))
    if cfg.report.show_exact_residences:
        pdf, total = _capped(homes.withColumn("tier", tier), cfg)
        return [R.Layer("homes (exact points, explicitly enabled)", pdf, R.PALETTE[4], label_col="tier", total=total)]
    tiers = {t: F.sum(F.when(tier == t, 1).otherwise(0)).alias(t.lower()) for t in ("High", "Medium", "Low")}
    cells = (
        h3_cells(homes, cfg.report.residence_cell_m)
        .groupBy("h3_cell")
        .agg(F.count("*").alias("drivers"), *tiers.values())
        .withColumn("other", F.col("drivers") - F.col("high") - F.col("medium") - F.col("low"))
        .transform(with_h3_geojson)
        # A cell shows tiers only with enough drivers and more than one tier among its scored ones:
        # where every scored driver has the same tier, the breakdown would tell each one's tier.
        .withColumn("scored", F.col("high") + F.col("medium") + F.col("low"))
        .withColumn(
            "shows_tiers",
            (F.col("drivers") >= cfg.report.min_drivers_for_tiers)
            & ((F.col("scored") == 0) | ~((F.col("high") == F.col("scored")) | (F.col("medium") == F.col("scored")) | (F.col("low") == F.col("scored")))),
        )
        .withColumn(
            "label",
            F.when(F.col("shows_tiers"), F.format_string("%d drivers; risk: %d high, %d medium, %d low, %d not scored", "drivers", "high", "medium", "low", "other")).otherwise(
                F.format_string("%d drivers; risk not shown (fewer than %d drivers, or one tier for all)", "drivers", F.lit(cfg.report.min_drivers_for_tiers))
            ),
        )
    )
    pdf, total = _capped(cells.orderBy(F.desc("drivers"), "h3_cell"), cfg)
    high, high_total = _capped(cells.where("high > 0 and shows_tiers").orderBy(F.desc("high"), "h3_cell"), cfg)
    return [
        R.AreaLayer("homes: drivers per H3 cell", pdf, R.PALETTE[4], value_col="drivers", label_col="label", total=total),
        R.AreaLayer("homes of high-risk drivers", high, R.PALETTE[1], value_col="high", label_col="label", total=high_total, visible=False),
    ]


def _quality_layers(inputs: ReportInputs, cfg: Config) -> list:
    """Rows that cleaning flagged (a blocking flag, a valid coordinate) per H3 cell, with the most
    frequent reason; positions are the vehicles', so cells as coarse as the homes'."""
    silver = inputs.get("silver.telematics_clean")
    if silver is None:
        return []
    from common.silver.cleaning import BLOCKING_MASK, FLAGS, INFORMATIONAL_FLAGS

    no_position = FLAGS["invalid_coord"] | FLAGS["zero_coord"]
    flags = F.col("quality_flags")
    flagged = silver.where((flags.bitwiseAND(BLOCKING_MASK) != 0) & (flags.bitwiseAND(no_position) == 0) & F.col("lat").isNotNull() & F.col("lon").isNotNull())
    flagged = h3_cells(flagged.select("lat", "lon", "quality_reasons"), cfg.report.residence_cell_m)
    reasons = (
        flagged.select("h3_cell", F.explode("quality_reasons").alias("reason"))
        .where(~F.col("reason").isin(*INFORMATIONAL_FLAGS))
        .groupBy("h3_cell", "reason")
        .count()
        .groupBy("h3_cell")
        .agg(F.max_by("reason", F.struct("count", "reason")).alias("top_reason"))
    )
    cells = (
        flagged.groupBy("h3_cell")
        .agg(F.count("*").alias("rows"))
        .join(reasons, "h3_cell", "left")
        .transform(with_h3_geojson)
        .withColumn("label", F.format_string("%d flagged rows, most often %s", "rows", "top_reason"))
        .orderBy(F.desc("rows"), "h3_cell")
    )
    pdf, total = _capped(cells, cfg)
    return [R.AreaLayer("quality issues: flagged rows per H3 cell", pdf, R.PALETTE[1], value_col="rows", label_col="label", total=total, visible=False)]


def _hotspot_layers(inputs: ReportInputs, cfg: Config) -> list:
    """Hotspots sized by unique visits, with their hulls."""
    hot = inputs.get("gold.hotspots")
    if hot is None:
        return []
    pdf, total = _capped(hot.orderBy(F.desc("unique_visits")), cfg)  # the busiest first when capped
    pdf = _latlon(pdf)
    pdf["r"] = 3 + 10 * pdf["unique_visits"] / max(pdf["unique_visits"].max(), 1) if len(pdf) else []
    pdf["label"] = [f"{v:,} unique visits" for v in pdf["unique_visits"]]
    hulls = pd.DataFrame({"geojson": [R.hull_geojson(w) for w in pdf["hull_wkt"]], "label": pdf["label"]}) if "hull_wkt" in pdf else pd.DataFrame({"geojson": []})
    return [R.AreaLayer("hotspot hull", hulls, R.PALETTE[3], label_col="label", total=total), R.Layer("hotspot", pdf, R.PALETTE[3], radius_col="r", label_col="label", total=total)]


def _charging_site_layers(inputs: ReportInputs, cfg: Config) -> list:
    """Charging sites by kind; private (home) sites only coarsened to report.residence_cell_m (m)."""
    sites = inputs.get("gold.charging_sites")
    if sites is None:
        return []
    private = inputs.get("restricted.home_charging_sites")
    if private is not None:  # gold has no position for private sites: show them coarsened
        from common.spatial.privacy import coarsen_location

        cell = coarsen_location(private.select("site_id", F.col("lat").alias("_lat"), F.col("lon").alias("_lon")), cfg.report.residence_cell_m, "_lat", "_lon")
        sites = sites.join(cell, "site_id", "left").withColumn("lat", F.coalesce("lat", "_lat")).withColumn("lon", F.coalesce("lon", "_lon"))
    pdf, capped = _capped(sites, cfg)
    pdf = _latlon(pdf)
    totals: dict = {}
    if capped is not None:  # the legend says how many sites each kind has
        totals = {r["kind"]: int(r["count"]) for r in sites.groupBy("kind").count().collect()}  # bounded: one row per kind
    return [R.Layer(f"charging site: {name}", g, R.PALETTE[(i + 5) % len(R.PALETTE)], label_col="kind", total=totals.get(name)) for i, (name, g) in enumerate(pdf.groupby("kind"))]


def _station_layers(inputs: ReportInputs, cfg: Config) -> list:
    """DC-fast stations (newest register version), expansion gaps and fault-hotspot stations."""
    from common.network.stations import latest_stations

    layers = []
    gaps = inputs.get("gold.expansion_gaps")
    if gaps is not None:
        pdf, total = _capped(gaps, cfg)
        layers.append(R.Layer("expansion gap (no DC fast nearby)", _latlon(pdf), R.PALETTE[1], total=total))
    stations = inputs.get("bronze.stations")
    if stations is None:
        return layers
    register = latest_stations(stations)
    dc, total = _capped(register.where(F.coalesce(F.col("dc_fast_count"), F.lit(0)) > 0).select("lat", "lon", "name"), cfg)
    layers.append(R.Layer("DC-fast station", dc, R.PALETTE[2], label_col="name", total=total))
    site = inputs.get("gold.site_reliability")
    if site is not None:
        hot = (
            site.where(F.col("is_fault_hotspot"))
            .join(register.select("station_id", "lat", "lon", "name"), "station_id")
            .withColumn("label", F.format_string("%s: %.1f faults per 1000 sessions, %.1f %% available", "name", "faults_per_1000_sessions", "availability_pct"))
        )
        pdf, total = _capped(hot, cfg)
        layers.append(R.Layer("fault-hotspot station", _latlon(pdf), "#000000", label_col="label", total=total))
    return layers


def operating_area(cfg: Config) -> list[list[tuple[float, float]]]:
    """Outline rings of the configured operating area (cleaning's area), [] when there is none.

    Parameters
    ----------
    cfg : Config

    Returns
    -------
    list of list of tuple of float
        (lon, lat) rings for `html.map_figure`.
    """
    area_wkt = cleaning_params(cfg).area_wkt
    return R.area_rings_from_wkt(area_wkt) if area_wkt else []


def map_layers(inputs: ReportInputs, cfg: Config, quality: bool = True) -> list:
    """Every map layer whose table exists, bottom to top (the report's map and the notebooks').

    Parameters
    ----------
    inputs : ReportInputs
    cfg : Config
    quality : bool
        Include the cleaning-flagged rows per cell (reads silver.telematics_clean).

    Returns
    -------
    list of html.Layer or html.AreaLayer
        Homes per H3 cell (exact points only with report.show_exact_residences), flagged rows per
        cell, hotspot hulls and hotspots, charging sites by kind, expansion gaps, DC-fast and
        fault-hotspot stations.
    """
    return [
        *_home_layers(inputs, cfg),
        *(_quality_layers(inputs, cfg) if quality else []),
        *_hotspot_layers(inputs, cfg),
        *_charging_site_layers(inputs, cfg),
        *_station_layers(inputs, cfg),
    ]


def section_maps(inputs: ReportInputs, cfg: Config) -> R.Section:
    """One interactive map of every spatial layer; the legend switches layers on and off.

    Parameters
    ----------
    inputs : ReportInputs
    cfg : Config

    Returns
    -------
    html.Section
        Section 'maps': homes as drivers per H3 cell (exact points only when
        report.show_exact_residences), flagged rows per cell, hotspots with hulls, charging sites
        by kind, DC-fast stations, expansion gaps and fault-hotspot stations, each when its table
        exists; a note when there is nothing to map.
    """
    from common.spatial.privacy import H3_MEAN_AREA_M2, h3_resolution_for

    s = R.Section("maps", "Maps")
    area = operating_area(cfg)
    layers = map_layers(inputs, cfg)
    if not layers and not area:
        return s.add("<p class='empty'>No map inputs yet.</p>")
    s.add(R.web_map("map-fleet", "Fleet, charging and network layers over the operating area", layers, area, cfg.report.map_coordinate_decimals))
    res = h3_resolution_for(cfg.report.residence_cell_m)
    homes = "exact home points (explicitly enabled)" if cfg.report.show_exact_residences else f"homes coarsened to H3 cells of resolution {res}"
    return s.add(
        f"<p class='note'>Scroll to zoom, drag to pan, point at a shape for its details. Click a legend entry to switch its layer, double-click to show it "
        f"alone. Shown: {R.esc(homes)} and flagged rows per cell (mean cell area {H3_MEAN_AREA_M2[res] / 1e6:,.2f} km&sup2;, at least twice a "
        f"{cfg.report.residence_cell_m:,.0f} m square, since one resolution's cells vary up to ~2x); coordinates to {cfg.report.map_coordinate_decimals} decimals; at most "
        f"{cfg.report.max_points_per_layer:,} rows per layer (the legend says when a layer is capped).</p>"
    )


def section_risk(inputs: ReportInputs, cfg: Config) -> R.Section:
    """Distribution of the drivers' distance z-scores and drivers per risk tier (gold.driver_risk).

    Parameters
    ----------
    inputs : ReportInputs
    cfg : Config

    Returns
    -------
    html.Section
        Section 'risk': a histogram of z-scores with report.risk_z_line marked and a bar chart of
        drivers per tier.
    """
    s = R.Section("risk", "Driver risk")
    risk = inputs.get("gold.driver_risk")
    if risk is None:
        return s.add(no_data("gold.driver_risk", "risk", inputs.status))
    edges, counts = histogram_bins(risk, "z_score", cfg.report.histogram_bins)
    s.add(R.histogram("risk_z", edges, counts, f"Average daily distance z-score ({sum(counts)} scored drivers)", "z", vline=cfg.report.risk_z_line))
    tiers: pd.DataFrame = risk.groupBy(F.coalesce(F.col("tier"), F.lit("unknown")).alias("tier")).count().orderBy(F.desc("count")).toPandas()  # bounded: one row per tier
    s.add(R.bar_chart("risk_tiers", tiers["tier"].tolist(), {"drivers": tiers["count"].tolist()}, "Drivers per risk tier", "drivers"))
    return s


def section_stations(inputs: ReportInputs, cfg: Config) -> R.Section:
    """Station KPI table and KPIs per network (fractions 0-1, gold.station_kpis).

    Parameters
    ----------
    inputs : ReportInputs
    cfg : Config

    Returns
    -------
    html.Section
        Section 'stations': the first 40 KPI rows and one bar chart of the KPIs per network (the
        first 15 network rows; the overall row when there are none).
    """
    s = R.Section("stations", "Charging stations")
    kpis = inputs.get("gold.station_kpis")
    if kpis is None:
        return s.add(no_data("gold.station_kpis", "stations", inputs.status))
    pdf = _bounded(kpis, cfg)
    s.add(R.table_html(pdf.head(40), "station_kpis_table", "{:,.3f}"))
    metrics = [c for c in ("operational_rate", "dc_fast_share", "access_24_7_rate", "public_share") if c in pdf.columns]
    sub = pdf[pdf["level"] == "network"].head(15)
    if len(sub) == 0:  # a network without network names: show the overall row
        sub = pdf[pdf["level"] == "overall"]
    if metrics and len(sub):
        s.add(R.bar_chart("station_kpis", sub["group"].astype(str).tolist(), {m: sub[m].tolist() for m in metrics}, "Station KPIs per network", "share", horizontal=True))
    return s


def section_reliability(inputs: ReportInputs, cfg: Config) -> R.Section:
    """Port uptime (%), MTBF and MTTR (hours) distributions and the reliability tests table.

    Parameters
    ----------
    inputs : ReportInputs
    cfg : Config

    Returns
    -------
    html.Section
        Section 'reliability': histograms over port-months (gold.port_reliability_monthly) and the
        gold.reliability_tests table, each when present.
    """
    s = R.Section("reliability", "Charger reliability")
    monthly = inputs.get("gold.port_reliability_monthly")
    site = inputs.get("gold.site_reliability")
    if monthly is None and site is None:
        return s.add(no_data("gold.port_reliability_monthly", "reliability", inputs.status))
    if monthly is not None:
        for col, title, unit in (("uptime_pct", "Port uptime", "%"), ("mtbf_hours", "MTBF", "hours"), ("mttr_hours", "MTTR", "hours")):
            edges, counts = histogram_bins(monthly, col, cfg.report.histogram_bins)
            s.add(R.histogram(f"rel_{col}", edges, counts, f"{title} distribution ({sum(counts):,} port-months)", unit))
    tests = inputs.get("gold.reliability_tests")
    if tests is not None:
        s.add(R.table_html(_bounded(tests, cfg), "reliability_tests_table", "{:,.4f}"))
    return s


def section_capacity(inputs: ReportInputs, cfg: Config) -> R.Section:
    """Charging-site capacity: the network's week of waiting and the sites that need ports.

    Parameters
    ----------
    inputs : ReportInputs
    cfg : Config

    Returns
    -------
    html.Section
        Section 'capacity': heatmaps of the worst station's P(wait) and the mean utilisation per
        local weekday x hour, and the stations by ports needed (gold.site_capacity).
    """
    from common.network.capacity import site_needs, weekly_profile

    s = R.Section("capacity", "Charging-site capacity (Erlang C)")
    cap = inputs.get("gold.site_capacity")
    if cap is None:
        return s.add(no_data("gold.site_capacity", "reliability", inputs.status))
    profile: pd.DataFrame = weekly_profile(cap).toPandas()  # bounded: 168 rows (weekday x hour)
    days = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
    zone = cap.select("timezone").first()
    where = f"local hour ({zone.timezone})" if zone else "local hour"
    for col, title, unit in (
        ("max_p_wait", "Worst station's P(wait) by weekday and " + where, "P(wait)"),
        ("mean_utilisation", "Mean port utilisation by weekday and " + where, "share of port-hours"),
    ):
        grid = profile.pivot(index="weekday", columns="hour", values=col).reindex(index=range(7), columns=range(24))
        s.add(R.heatmap(f"capacity_{col}", grid.to_numpy(), days, list(range(24)), title, unit))
    target = cfg.capacity.target_p_wait
    needs = site_needs(cap)
    shown = _bounded(needs, cfg)
    total = needs.count()
    s.add(
        f"<p>Ports for P(wait) &le; {target:g} in every hour of the week; {len(shown):,} of {total:,} stations shown, most ports needed "
        "first. Demand is what sessions recorded: drivers who left a full site are not counted.</p>"
    )
    return s.add(R.table_html(shown, "site_capacity_table", "{:,.3f}"))


def section_fault_drivers(inputs: ReportInputs, cfg: Config) -> R.Section:
    """What makes sessions fail: the failure logit's odds ratios (gold.fault_drivers).

    Parameters
    ----------
    inputs : ReportInputs
    cfg : Config

    Returns
    -------
    html.Section
        Section 'fault_drivers': a forest plot of the odds ratios of the source with the most
        modelled sessions, and the model and term rows of every source.
    """
    s = R.Section("fault_drivers", "What makes sessions fail (fault drivers)")
    drivers = inputs.get("gold.fault_drivers")
    if drivers is None:
        return s.add(no_data("gold.fault_drivers", "fault_analysis", inputs.status))
    models: pd.DataFrame = drivers.where("driver = 'model'").orderBy(F.desc("sessions")).toPandas()  # bounded: one row per session source
    terms = _bounded(drivers.where("driver <> 'model'").orderBy("source_name", "p_value_holm"), cfg)
    for m in models.itertuples():
        s.add(f"<p><b>{R.esc(m.source_name)}</b>: {m.sessions:,} sessions modelled, {m.failed:,} failed, {m.excluded_sessions:,} on unavailable ports left out. {R.esc(m.note)}</p>")
    top = terms[terms.source_name == models.source_name.iloc[0]] if len(models) else terms.iloc[0:0]
    if len(top):
        labels = [f"{r.driver}: {r.level}" + (f" vs {r.reference}" if r.reference else "") + (" *" if r.significant else "") for r in top.itertuples()]
        title = f"Odds ratio of a failed session with {round(100 * (1 - cfg.fault_drivers.alpha))} % CI ({models.source_name.iloc[0]}; * Holm-significant)"
        s.add(R.forest_plot("fault_drivers_odds", labels, top.odds_ratio, top.or_ci_low, top.or_ci_high, title, "odds ratio (log scale; 1 = no effect)"))
    s.add("<p>Associations in observed sessions, adjusted for each other; sessions that started on a port already down are left out (the reliability tables count them).</p>")
    cols = ["source_name", "driver", "level", "reference", "sessions", "failed", "failure_rate", "odds_ratio", "or_ci_low", "or_ci_high", "p_value_holm", "significant", "marginal_effect_pp"]
    return s.add(R.table_html(terms[cols], "fault_drivers_table", "{:,.3f}"))


# Sites listed in the fault forecast section (a reading list, not a data export).
TOP_SITES = 20


def section_fault_forecast(inputs: ReportInputs, cfg: Config) -> R.Section:
    """How many faults next: the network's observed and forecast faults, and the backtest (gold.fault_forecast*).

    Parameters
    ----------
    inputs : ReportInputs
    cfg : Config

    Returns
    -------
    html.Section
        Section 'fault_forecast': per source a chart of the network's faults per bucket, the
        forecast and its interval; the backtest rows of the networks; the sites with the most
        faults forecast.
    """
    s = R.Section("fault_forecast", "How many faults next (fault forecast)")
    forecast = inputs.get("gold.fault_forecast")
    if forecast is None:
        return s.add(no_data("gold.fault_forecast", "fault_analysis", inputs.status))
    p = cfg.fault_forecast
    network: pd.DataFrame = forecast.where(F.col("site_id") == "(network)").orderBy("source_name", "step").toPandas()  # bounded: history + horizon buckets per source
    for source, g in network.groupby("source_name", sort=True):
        ahead = g[g.step >= 1]
        method = ahead.method.iloc[0] if len(ahead) else "none"
        series = {"observed faults": g.actual.tolist(), f"forecast ({method})": g.forecast.tolist()}
        if ahead.lower.notna().any():
            series[f"{p.interval_level:.0%} interval, low"] = g.lower.tolist()
            series[f"{p.interval_level:.0%} interval, high"] = g.upper.tolist()
        title = f"{source}: faults per {p.bucket_days}-day bucket, network"
        s.add(R.line_chart("fault_forecast" if source == network.source_name.min() else f"fault_forecast_{source}", g.bucket_start.tolist(), series, title, "faults"))
        notes = ahead.note.dropna().unique()
        if len(notes):
            s.add(f"<p>{R.esc(source)}: {R.esc(notes[0])}</p>")
    backtest = inputs.get("gold.fault_forecast_backtest")
    if backtest is not None:
        rows: pd.DataFrame = backtest.where(F.col("site_id") == "(network)").orderBy("source_name", "method").toPandas()  # bounded: three methods per source
        s.add(f"<p>Rolling-origin backtest ({p.backtest_origins} origins, {p.horizon} buckets each): the model is re-chosen on the history before each origin.</p>")
        s.add(R.table_html(rows[["source_name", "method", "spec", "origins", "buckets", "mae", "mape", "coverage"]], "fault_forecast_backtest_table", "{:,.3f}"))
    sites = forecast.where("step >= 1 AND site_id <> '(network)'").groupBy("source_name", "site_id", "method").agg(F.sum("forecast").alias("faults_forecast"))
    shown = sites.orderBy(F.desc("faults_forecast"), "site_id").limit(TOP_SITES).toPandas()  # bounded: TOP_SITES rows
    s.add(f"<p>Sites with the most faults forecast over the next {p.horizon} buckets ({len(shown):,} of {sites.count():,} sites shown):</p>")
    return s.add(R.table_html(shown, "fault_forecast_sites_table", "{:,.2f}"))


def section_rollout(inputs: ReportInputs, cfg: Config) -> R.Section:
    """Did the rollout work: the difference-in-differences effects and event studies (gold.rollout_*).

    Parameters
    ----------
    inputs : ReportInputs
    cfg : Config

    Returns
    -------
    html.Section
        Section 'rollout': the effects table (rate ratio of the fault rate, percentage points of
        uptime, CI, pre-trend p-value, or why nothing was estimated) and per source and change
        type a chart of the fault rate's event study with its CI.
    """
    s = R.Section("rollout", "Did the rollout work? (rollout evaluation)")
    effects = inputs.get("gold.rollout_effects")
    if effects is None:
        return s.add(no_data("gold.rollout_effects", "rollout", inputs.status))
    p = cfg.rollout
    rows: pd.DataFrame = effects.orderBy("source_name", "change_type", "outcome").toPandas()  # bounded: two outcomes per source and change type
    if rows.empty:
        return s.add("<p class='empty'>No rollout falls on a site a status source observes: nothing to evaluate (the rollout stage's notes count the rows).</p>")
    level = f"{p.confidence_level:.0%}"
    s.add(
        f"<p>Sites given a change against sites never given one, per {p.period_days}-day period (two-way fixed effects, SEs clustered by site): "
        f"the fault rate as a rate ratio (below 1: fewer faults), uptime in percentage points, with {level} intervals. A pre-trend p-value "
        f"below {p.alpha:g} says the sites already drifted apart before the change, and the estimate is in doubt.</p>"
    )
    cols = ["source_name", "change_type", "outcome", "estimate", "ci_low", "ci_high", "p_value", "n_treated_units", "n_control_units", "n_periods", "pretrend_p_value", "note"]
    s.add(R.table_html(rows[cols], "rollout_effects_table", "{:,.3f}"))
    events = inputs.get("gold.rollout_event_study")
    if events is None:
        return s
    fault: pd.DataFrame = events.where(F.col("outcome") == "fault_rate").orderBy("source_name", "change_type", "rel_period").toPandas()  # bounded: leads + lags + 1 rows per source and change type
    for i, ((source, change), g) in enumerate(fault.groupby(["source_name", "change_type"], sort=True)):
        series = {"rate ratio": g.estimate.tolist(), f"{level} CI, low": g.ci_low.tolist(), f"{level} CI, high": g.ci_high.tolist()}
        title = f"{source}, {change}: fault rate ratio by period relative to the rollout (-1 = reference)"
        s.add(R.line_chart("rollout_event_study" if i == 0 else f"rollout_event_study_{i}", g.rel_period.tolist(), series, title, "fault rate ratio"))
    return s


# Non-home sites drawn in the charging plan's load chart (the rest are in its table).
TOP_PLAN_SITES = 3


def section_charging_plan(inputs: ReportInputs, cfg: Config) -> R.Section:
    """Tomorrow's charging plan: load per slot against capacity and tariff, and the infeasible vehicles.

    Parameters
    ----------
    inputs : ReportInputs
    cfg : Config

    Returns
    -------
    html.Section
        Section 'charging_plan': vehicles by status; a chart of grid kW per slot of the busiest
        depot / public sites (dashed: their capacity) and of all home chargers, with the tariff;
        per site the planned kWh, cost and peak; the infeasible vehicles with their reasons
        (gold.charging_plan, gold.charging_plan_vehicles).
    """
    s = R.Section("charging_plan", "Tomorrow's charging plan")
    plan_vehicles = inputs.get("gold.charging_plan_vehicles")
    if plan_vehicles is None:
        return s.add(no_data("gold.charging_plan_vehicles", "charging_plan", inputs.status))
    p = cfg.charging_plan
    by_status = plan_vehicles.groupBy("plan_date", "status").agg(F.count(F.lit(1)).alias("vehicles"), F.sum("grid_kwh").alias("grid_kwh"), F.sum("cost").alias("cost"))
    status: pd.DataFrame = by_status.toPandas()  # bounded: three statuses
    plan_date = status.plan_date.iloc[0] if len(status) else None
    s.add(
        R.kpi_tiles(
            [("plan date", str(plan_date))]
            + [(f"vehicles {st}", f"{int(n):,}") for st, n in zip(status.status, status.vehicles)]
            + [("grid kWh", f"{status.grid_kwh.sum():,.1f}"), ("cost", f"{status.cost.sum():,.2f}")]
        )
    )
    slots = inputs.get("gold.charging_plan")
    per_site = (
        plan_vehicles.where("site_id IS NOT NULL")
        .groupBy("site_id", "site_kind")
        .agg(
            F.count(F.lit(1)).alias("vehicles"),
            F.sum((F.col("status") == "infeasible").cast("int")).alias("infeasible"),
            F.sum("planned_kwh").alias("planned_kwh"),
            F.sum("cost").alias("cost"),
            F.first("site_ports").alias("ports"),
            F.first("site_capacity_kw").alias("capacity_kw"),
        )
    )
    loads: dict[str, list] = {}
    limits: dict[str, list] = {}
    labels: list[str] = []
    prices: list = []
    if slots is not None:
        # the slot axis from the table itself: the conf may have changed since it was written
        per_slot = slots.groupBy("slot_no").agg(F.min("slot_start_local").alias("start"), F.min("slot_end_local").alias("end"), F.first("price_per_kwh").alias("price"))
        axis: pd.DataFrame = per_slot.toPandas()  # bounded: slots of one night
        slot_nos, labels, prices = plan_slot_axis(axis)
        kw = slots.groupBy(F.when(F.col("site_kind") == "home", F.lit("(home chargers)")).otherwise(F.col("site_id")).alias("site"), "slot_no").agg(F.sum("grid_kw").alias("kw"))
        profile: pd.DataFrame = kw.toPandas()  # bounded: sites x slots of the plan (one night)
        busiest = profile[profile.site != "(home chargers)"].groupby("site").kw.sum().sort_values(ascending=False).index[:TOP_PLAN_SITES].tolist()
        caps: pd.DataFrame = per_site.where(F.col("site_id").isin(busiest)).select("site_id", "capacity_kw").toPandas()  # bounded: TOP_PLAN_SITES rows
        capacity = dict(zip(caps.site_id, caps.capacity_kw))
        for site in [*busiest, "(home chargers)"]:
            by_slot = profile[profile.site == site].set_index("slot_no").kw
            if len(by_slot):
                loads[f"{site} grid kW"] = [float(by_slot.get(k, 0.0)) for k in slot_nos]
        for site in busiest:
            limits[f"{site} grid kW"] = [capacity.get(site)] * len(labels)  # this site's own capacity line
    if not loads:
        loads["all sites grid kW"] = [0.0] * len(labels)
    title = f"Grid kW per slot, local time, night before {plan_date}: busiest depot / public sites side by side, each against its own grid capacity (dashed, same colour), home chargers, tariff"
    s.add(R.load_profile_chart("charging_plan_load", labels, loads, limits, prices, title))
    shown_sites = _bounded(per_site.orderBy(F.desc("planned_kwh"), "site_id"), cfg)
    s.add(f"<p>Per site ({len(shown_sites):,} shown, most energy first); a home site is one vehicle's charger, named by its site id only.</p>")
    s.add(R.table_html(shown_sites, "charging_plan_sites_table", "{:,.2f}"))
    infeasible = _bounded(
        plan_vehicles.where("status = 'infeasible'")
        .orderBy("reason_code", "vehicle_id")
        .select("vehicle_id", "site_kind", "reason_code", "reason", "need_kwh", "soc_now_pct", "planned_kwh", "shortfall_kwh"),
        cfg,
    )
    s.add(
        f"<p>Infeasible vehicles ({len(infeasible):,} shown): the plan cannot keep them above {p.soc_floor_pct:g} % SOC through their expected duty; "
        "those with a place still get the most it can give (planned kWh).</p>"
    )
    return s.add(R.table_html(infeasible, "charging_plan_infeasible_table", "{:,.2f}"))


def plan_slot_axis(axis: pd.DataFrame) -> tuple[list[int], list[str], list]:
    """The slot axis of a charging plan from its own rows, every slot from the first to the last with charge.

    Parameters
    ----------
    axis : pandas.DataFrame
        One row per slot_no of gold.charging_plan: slot_no, start / end (local wall-clock
        timestamps), price (per grid kWh).

    Returns
    -------
    slot_nos : list of int
        Every slot number from the first to the last.
    labels : list of str
        Their local start times (HH:MM): the first start plus whole slot lengths.
    prices : list
        The price of each slot; None for a slot without charge (not in the table).
    """
    if axis.empty:
        return [], [], []
    axis = axis.sort_values("slot_no")
    first, length = axis.iloc[0], (pd.to_datetime(axis.end) - pd.to_datetime(axis.start)).median()
    slot_nos = list(range(int(axis.slot_no.min()), int(axis.slot_no.max()) + 1))
    labels = [(pd.Timestamp(first.start) + (k - int(first.slot_no)) * length).strftime("%H:%M") for k in slot_nos]
    price = dict(zip(axis.slot_no.astype(int), axis.price))
    return slot_nos, labels, [None if pd.isna(price.get(k)) else float(price[k]) for k in slot_nos]


def section_models(inputs: ReportInputs, cfg: Config) -> R.Section:
    """Registered champions and each model's test metric against its baselines (MLflow).

    Parameters
    ----------
    inputs : ReportInputs
    cfg : Config

    Returns
    -------
    html.Section
        Section 'models': the champion table (`champion_status`), the metrics table and one bar
        chart per model; a note when tracking is unavailable or has no runs.
    """
    s = R.Section("models", "Models vs baselines")
    try:
        from common.ml.tracking import model_metrics_summary
    except ImportError:
        return s.add("<p class='empty'>Model tracking not available.</p>")
    try:
        summary = model_metrics_summary(cfg)
    except Exception as exc:  # noqa: BLE001 - the report must not fail because MLflow is empty
        return s.add(f"<p class='empty'>No model runs found ({R.esc(type(exc).__name__)}).</p>")
    registry = champion_status(cfg)
    if registry is not None:
        s.add(R.table_html(registry, "model_registry_table", "{}"))
    if summary is None or len(summary) == 0:
        return s.add(no_data("MLflow runs", "train", inputs.status))
    s.add(R.table_html(summary, "model_metrics_table", "{:,.4f}"))
    for model, g in summary.groupby("model"):
        metric = g["metric"].iloc[0]
        better = "higher" if bool(g["higher_is_better"].iloc[0]) else "lower"
        s.add(R.bar_chart(f"model_{model}", g["candidate"].tolist(), {metric: g["value"].tolist()}, f"{model}: test {metric} vs baselines ({better} is better)", metric))
    return s


MONITORING_TOP_FEATURES = 8  # features with the highest PSI shown per model version


def section_monitoring(inputs: ReportInputs, cfg: Config) -> R.Section:
    """Drift and realised error of the scored model versions (gold.model_monitoring, newest scoring run).

    Parameters
    ----------
    inputs : ReportInputs
    cfg : Config
        ``ml.monitoring.psi_threshold`` (named in the text).

    Returns
    -------
    html.Section
        Section 'monitoring': one table row per model version (drifted inputs, prediction PSI,
        realised metrics beside training's), and per version a bar chart of its inputs with the
        highest PSI.
    """
    s = R.Section("monitoring", "Model monitoring: drift and realised error")
    mon = inputs.get("gold.model_monitoring")
    if mon is None:
        return s.add(no_data("gold.model_monitoring", "score", inputs.status))
    latest = mon.groupBy("model_name").agg(F.max("scored_at").alias("scored_at"))
    pdf: pd.DataFrame = mon.join(latest, ["model_name", "scored_at"]).toPandas()  # bounded: one row per input and figure of 3 models
    threshold = cfg.ml.monitoring.psi_threshold
    s.add(
        f"<p>Population stability index (PSI) of each model input and of the prediction on the scored rows that have a label, against the "
        f"rows the version was trained on; above {threshold:g} a figure is marked drifted. Realised errors need the label, which arrives "
        "after the forecast horizon. docs/MODELS.md, section 9.</p>"
    )
    summary = []
    for (name, version), g in pdf.groupby(["model_name", "model_version"], sort=True):
        feats = g[(g.kind == "feature_psi") & g.drifted.notna()].sort_values("value", ascending=False)  # calendar inputs never mark drift
        pred = g[g.kind == "prediction_psi"]
        realised = g[g.kind == "realised"]
        window = f"{g.window_start.iloc[0] or 'first'} .. {g.window_end.iloc[0] or 'last'}"
        notes = "; ".join(sorted({n for n in g.note.dropna()}))
        summary.append(
            {
                "model": f"{name} v{version}",
                "window": window,
                "inputs drifted": f"{int(feats.drifted.fillna(False).sum())} of {len(feats)}",
                "highest input PSI": f"{feats.name.iloc[0]} {feats.value.iloc[0]:.3f}" if len(feats) else "-",
                "prediction PSI": f"{pred.value.iloc[0]:.3f}" if len(pred) and pd.notna(pred.value.iloc[0]) else "-",
                "realised (training)": ", ".join(
                    f"{r.name} {r.value:.4g} ({r.reference:.4g})" if pd.notna(r.value) and pd.notna(r.reference) else f"{r.name} {r.value if pd.notna(r.value) else '-'}" for r in realised.itertuples()
                ),
                "note": notes,
            }
        )
        top = feats.head(MONITORING_TOP_FEATURES)
        if len(top):
            title = f"{name} v{version}: inputs with the highest PSI (drift above {threshold:g})"
            s.add(R.bar_chart(f"monitoring_{name}", top.name.tolist(), {"PSI": top.value.round(4).tolist()}, title, "PSI", horizontal=True))
    s.add(R.table_html(pd.DataFrame(summary), "monitoring_table", "{}"))
    return s


def champion_status(cfg: Config) -> pd.DataFrame | None:
    """Per registered model: the champion version, or why there is none (the gate's reason).

    Parameters
    ----------
    cfg : Config
        The run's config (mlflow tracking store, ml.*.registered_model, ml.champion_alias).

    Returns
    -------
    pandas.DataFrame or None
        Columns 'registered model', '@<alias>' (v<version> or '-') and 'why not'; None when the
        tracking store cannot be configured.
    """
    try:
        from common.ml import tracking

        client = tracking.configure(cfg)
    except Exception:  # noqa: BLE001 - no tracking store: the models section says so
        return None
    rows = []
    names = (cfg.ml.soc.registered_model, cfg.ml.soc.registered_classifier, cfg.ml.energy.registered_model)
    for name in names:
        mv = tracking.current_champion(client, name, cfg.ml.champion_alias)
        rows.append((name, f"v{mv.version}" if mv else "-", "" if mv else tracking.why_no_champion(client, name, cfg.ml.champion_alias)))
    return pd.DataFrame(rows, columns=["registered model", f"@{cfg.ml.champion_alias}", "why not"])


SECTIONS = (
    section_status,
    section_quality,
    section_fleet,
    section_maps,
    section_risk,
    section_stations,
    section_reliability,
    section_capacity,
    section_fault_drivers,
    section_fault_forecast,
    section_rollout,
    section_charging_plan,
    section_models,
    section_monitoring,
)

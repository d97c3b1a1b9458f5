"""Build the static HTML report (reports/<run>/index.html, linked as reports/latest).

Reads gold tables (and the MLflow tracking store for model metrics); every section is skipped
with a note when its table does not exist yet. Only bounded, aggregated data is brought to the
driver (`report.max_points_per_layer`). Residences appear only coarsened to
`report.residence_cell_m` cells unless `report.show_exact_residences` is set.
"""

from __future__ import annotations

import logging
import os
import shutil
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from common.core.config import Config
from common.io import tables
from common.io.cli import StageReport, bootstrap, job_main
from common.report.html import html as R
from common.silver.cleaning import cleaning_params

log = logging.getLogger("ev_fleet.report")
# Input groups of which at least one table must exist; otherwise the stage is skipped (common.io.cli).
REQUIRES: tuple[tuple[str, ...], ...] = ()


def _bounded(df: DataFrame, cfg: Config) -> pd.DataFrame:
    """Bring at most max_points_per_layer rows to the driver (report inputs are aggregates)."""
    return df.limit(cfg.report.max_points_per_layer).toPandas()


def _latlon(pdf: pd.DataFrame) -> pd.DataFrame:
    """Rows with a position (every mapped gold table has lat/lon columns)."""
    return pdf.dropna(subset=["lat", "lon"])


def last_run_status(spark: SparkSession, cfg: Config) -> dict[str, tuple[str, str | None]]:
    """stage -> (status, reason) of the newest pipeline run (audit.stage_runs), {} when none."""
    runs = tables.read_optional(spark, cfg, "audit.stage_runs")
    if runs is None:
        return {}
    latest = runs.agg(F.max(F.struct("finished_at", "run_id")).alias("m")).first()["m"]
    if latest is None:
        return {}
    rows = runs.where(F.col("run_id") == latest["run_id"]).select("stage", "status", "reason").collect()  # bounded: one row per stage
    return {r["stage"]: (r["status"], r["reason"]) for r in rows}


def no_data(table: str, stage: str, status: dict[str, tuple[str, str | None]]) -> str:
    """Why a section is empty: the stage's skip reason from the last run, else which stage writes the table."""
    state, reason = status.get(stage, (None, None))
    if state == "skipped" and reason:
        return f"<p class='empty'>No data: the {R.esc(stage)} stage was skipped ({R.esc(reason)}).</p>"
    if state == "failed":
        return f"<p class='empty'>No data: the {R.esc(stage)} stage failed in the last run ({R.esc(reason or '')}).</p>"
    return f"<p class='empty'>No data: {R.esc(table)} does not exist (run the {R.esc(stage)} stage).</p>"


# ----------------------------------------------------------------------------------------------
# Sections
# ----------------------------------------------------------------------------------------------
def section_status(spark, cfg) -> R.Section:
    s = R.Section("status", "Pipeline run")
    status = last_run_status(spark, cfg)
    if not status:
        return s.add("<p class='empty'>No pipeline run recorded (stages were run one by one).</p>")
    pdf = pd.DataFrame([(stage, st, reason or "") for stage, (st, reason) in status.items()], columns=["stage", "status", "reason"])
    skipped = pdf[pdf.status != "ok"]
    if len(skipped):
        s.add(f"<p>{len(skipped)} stage(s) did not produce data in the last run; their sections say why.</p>")
    return s.add(R.table_html(pdf, "status_table", "{}"))


def section_quality(spark, cfg) -> R.Section:
    s = R.Section("quality", "Data quality")
    daily = tables.read_optional(spark, cfg, "gold.quality_daily")
    if daily is None:
        return s.add(no_data("gold.quality_daily", "clean", last_run_status(spark, cfg)))
    from common.silver.cleaning import rule_summary

    rules = rule_summary(daily).toPandas()  # bounded: one row per cleaning rule
    totals = daily.agg(F.sum("rows").alias("rows"), F.sum("usable_rows").alias("usable")).first()
    share = (totals.usable or 0) / max(totals.rows or 1, 1)
    s.add(R.kpi_tiles([("rows cleaned", f"{totals.rows:,}"), ("usable share", f"{share:.2%}"), ("rules", str(len(rules)))]))
    s.add(R.bar_chart("quality_rules", rules["rule"].tolist(), {"rows flagged": rules["rows_flagged"].tolist()}, "Rows flagged per rule", "rows", horizontal=True))
    s.add(R.table_html(rules[["rule", "rows_flagged", "share"]], "quality_table", "{:,.4f}"))
    return s


def section_fleet(spark, cfg) -> R.Section:
    s = R.Section("fleet", "Fleet activity")
    fleet = tables.read_optional(spark, cfg, "gold.fleet_daily_kpis")
    if fleet is None:
        return s.add(no_data("gold.fleet_daily_kpis", "kpis", last_run_status(spark, cfg)))
    pdf = _bounded(fleet, cfg).sort_values("local_date")
    x = pd.to_datetime(pdf["local_date"])
    # Distributions over the vehicles reporting each day (common.mobility.kpis.fleet_daily_kpis; the
    # percentiles come from kpis.percentiles, so take the ones this table has).
    def dist(name: str) -> dict[str, list]:
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


def section_maps(spark, cfg) -> R.Section:
    s = R.Section("maps", "Maps")
    area_wkt = cleaning_params(cfg).area_wkt
    area = R.area_rings_from_wkt(area_wkt) if area_wkt else []

    sites = tables.read_optional(spark, cfg, "gold.charging_sites")
    if sites is not None:
        private = tables.read_optional(spark, cfg, "restricted.home_charging_sites")
        if private is not None:  # gold has no position for private sites: show them coarsened
            from common.spatial.privacy import coarsen_location

            cell = coarsen_location(private.select("site_id", F.col("lat").alias("_lat"), F.col("lon").alias("_lon")), cfg.report.residence_cell_m, "_lat", "_lon")
            sites = sites.join(cell, "site_id", "left").withColumn("lat", F.coalesce("lat", "_lat")).withColumn("lon", F.coalesce("lon", "_lon"))
        pdf = _latlon(_bounded(sites, cfg))
        layers = [
            R.Layer(f"charging site: {name}", g, R.PALETTE[i % len(R.PALETTE)], label_col="kind")
            for i, (name, g) in enumerate(pdf.groupby("kind"))
        ]
        s.add(R.svg_map("map-charging-sites", "Charging sites used by the fleet", layers, area))

    hot = tables.read_optional(spark, cfg, "gold.hotspots")
    gaps = tables.read_optional(spark, cfg, "gold.expansion_gaps")
    layers = []
    if hot is not None:
        pdf = _latlon(_bounded(hot, cfg))
        pdf["r"] = 3 + 10 * pdf["unique_visits"] / max(pdf["unique_visits"].max(), 1)
        layers.append(R.Layer("hotspot", pdf, R.PALETTE[3], radius_col="r", label_col="unique_visits"))
    if gaps is not None:
        layers.append(R.Layer("expansion gap (no DC fast nearby)", _latlon(_bounded(gaps, cfg)), R.PALETTE[1], shape="square"))
    stations = tables.read_optional(spark, cfg, "bronze.stations")
    if stations is not None:
        dc = _bounded(stations.where(F.coalesce(F.col("dc_fast_count"), F.lit(0)) > 0).select("lat", "lon", "name"), cfg)
        layers.append(R.Layer("DC-fast station", dc, R.PALETTE[2], label_col="name"))
    if layers:
        s.add(R.svg_map("map-hotspots", "Operational hotspots, DC-fast stations and expansion gaps", layers, area))

    res = tables.read_optional(spark, cfg, "restricted.residences")
    risk = tables.read_optional(spark, cfg, "gold.driver_risk")
    if res is not None:
        from common.spatial.privacy import coarsen_location

        homes = res.where(F.col("home_lat").isNotNull()).select("vehicle_id", F.col("home_lat").alias("lat"), F.col("home_lon").alias("lon"))
        layers = []
        exact = cfg.report.show_exact_residences
        if not exact:
            homes = coarsen_location(homes, cfg.report.residence_cell_m)
        if risk is not None:
            homes = homes.join(risk.select("vehicle_id", "tier"), "vehicle_id", "left")
        else:
            homes = homes.withColumn("tier", F.lit("unknown"))
        agg = homes.groupBy("lat", "lon", "tier").agg(F.count("*").alias("drivers"))
        pdf = _bounded(agg, cfg)
        pdf["r"] = 3 + 2 * pdf.drivers
        colors = {"High": R.PALETTE[1], "Medium": R.PALETTE[3], "Low": R.PALETTE[2]}
        for tier, g in pdf.groupby(pdf.tier.fillna("unknown")):
            layers.append(R.Layer(f"drivers ({tier} risk)", g, colors.get(tier, "#888"), radius_col="r", label_col="drivers"))
        what = "exact home points (explicitly enabled)" if exact else f"home areas coarsened to {cfg.report.residence_cell_m:.0f} m cells"
        s.add(R.svg_map("map-risk-areas", f"Drivers by risk tier: {what}", layers, area))
    if not s.body:
        s.add("<p class='empty'>No map inputs yet.</p>")
    return s


def section_risk(spark, cfg) -> R.Section:
    s = R.Section("risk", "Driver risk")
    risk = tables.read_optional(spark, cfg, "gold.driver_risk")
    if risk is None:
        return s.add(no_data("gold.driver_risk", "risk", last_run_status(spark, cfg)))
    pdf = _bounded(risk, cfg)
    z = pdf["z_score"].dropna()
    s.add(R.histogram("risk_z", z.tolist(), f"Average daily distance z-score ({len(z)} scored drivers)", "z", vline=cfg.report.risk_z_line))
    counts = pdf.tier.value_counts()
    s.add(R.bar_chart("risk_tiers", counts.index.tolist(), {"drivers": counts.values.tolist()}, "Drivers per risk tier", "drivers"))
    return s


def section_stations(spark, cfg) -> R.Section:
    s = R.Section("stations", "Charging stations")
    kpis = tables.read_optional(spark, cfg, "gold.station_kpis")
    if kpis is None:
        return s.add(no_data("gold.station_kpis", "stations", last_run_status(spark, cfg)))
    pdf = _bounded(kpis, cfg)
    s.add(R.table_html(pdf.head(40), "station_kpis_table", "{:,.3f}"))
    metrics = [c for c in ("operational_rate", "dc_fast_share", "access_24_7_rate", "public_share") if c in pdf.columns]
    sub = pdf[pdf["level"] == "network"].head(15)
    if len(sub) == 0:  # a network without network names: show the overall row
        sub = pdf[pdf["level"] == "overall"]
    if metrics and len(sub):
        s.add(R.bar_chart("station_kpis", sub["group"].astype(str).tolist(), {m: sub[m].tolist() for m in metrics}, "Station KPIs per network", "share", horizontal=True))
    return s


def section_reliability(spark, cfg) -> R.Section:
    s = R.Section("reliability", "Charger reliability")
    monthly = tables.read_optional(spark, cfg, "gold.port_reliability_monthly")
    site = tables.read_optional(spark, cfg, "gold.site_reliability")
    if monthly is None and site is None:
        return s.add(no_data("gold.port_reliability_monthly", "reliability", last_run_status(spark, cfg)))
    if monthly is not None:
        pdf = _bounded(monthly, cfg)
        for col, title, unit in (("uptime_pct", "Port uptime", "%"), ("mtbf_hours", "MTBF", "hours"), ("mttr_hours", "MTTR", "hours")):
            s.add(R.histogram(f"rel_{col}", pdf[col].tolist(), f"{title} distribution (ports x months)", unit))
    tests = tables.read_optional(spark, cfg, "gold.reliability_tests")
    if tests is not None:
        s.add(R.table_html(_bounded(tests, cfg), "reliability_tests_table", "{:,.4f}"))
    return s


def section_models(spark, cfg) -> R.Section:
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
        return s.add(no_data("MLflow runs", "train", last_run_status(spark, cfg)))
    s.add(R.table_html(summary, "model_metrics_table", "{:,.4f}"))
    for model, g in summary.groupby("model"):
        metric = g["metric"].iloc[0]
        better = "higher" if bool(g["higher_is_better"].iloc[0]) else "lower"
        s.add(R.bar_chart(f"model_{model}", g["candidate"].tolist(), {metric: g["value"].tolist()}, f"{model}: test {metric} vs baselines ({better} is better)", metric))
    return s


def champion_status(cfg: Config) -> pd.DataFrame | None:
    """Per registered model: the champion version, or why there is none (the gate's reason)."""
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


SECTIONS = (section_status, section_quality, section_fleet, section_maps, section_risk, section_stations, section_reliability, section_models)


def build_report(spark: SparkSession, cfg: Config, run_id: str | None = None) -> Path:
    run_id = run_id or datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    sections = []
    for fn in SECTIONS:
        try:
            sections.append(fn(spark, cfg))
        except tables.TableNotFound as exc:
            sections.append(R.Section(fn.__name__, fn.__name__.replace("section_", "").title()).add(f"<p class='empty'>{R.esc(exc)}</p>"))
    html = R.page("EV fleet analytics report", f"run {run_id} · env {cfg.env} · lakehouse {cfg.storage.root}", sections)
    out_root = Path(cfg.storage.resolve(cfg.report.output_dir))
    out_dir = out_root / run_id
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "index.html").write_text(html, encoding="utf-8")
    latest = out_root / "latest"
    if latest.is_symlink() or latest.is_file():
        latest.unlink()
    elif latest.is_dir():
        shutil.rmtree(latest)
    try:
        os.symlink(run_id, latest, target_is_directory=True)
    except OSError:  # filesystems without symlinks: copy
        shutil.copytree(out_dir, latest)
    return out_dir / "index.html"


def run_report(spark: SparkSession, cfg: Config, run_id: str | None = None) -> StageReport:
    report = StageReport("report")
    path = build_report(spark, cfg, run_id)
    report.notes.append(str(path))
    log.info("report written to %s", path)
    return report.finish()


@job_main
def main(argv=None) -> StageReport:
    cfg, spark, _ = bootstrap("report", argv, __doc__)
    return run_report(spark, cfg)


if __name__ == "__main__":
    main()

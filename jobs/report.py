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

from common import report as R
from common import tables
from common.cli import StageReport, bootstrap
from common.config import Config
from common.regions import read_area_wkt

log = logging.getLogger("ev_fleet.report")


def _pick(df: DataFrame | pd.DataFrame, *candidates: str) -> str | None:
    cols = set(df.columns)
    return next((c for c in candidates if c in cols), None)


def _bounded(df: DataFrame, cfg: Config) -> pd.DataFrame:
    """Bring at most max_points_per_layer rows to the driver (report inputs are aggregates)."""
    return df.limit(cfg.report.max_points_per_layer).toPandas()


def _read(spark: SparkSession, cfg: Config, table: str) -> DataFrame | None:
    return tables.read(spark, cfg, table) if tables.exists(spark, cfg, table) else None


def _latlon(pdf: pd.DataFrame, lat_candidates=("lat", "centroid_lat", "site_lat", "latitude"), lon_candidates=("lon", "centroid_lon", "site_lon", "longitude")) -> pd.DataFrame | None:
    lat, lon = _pick(pdf, *lat_candidates), _pick(pdf, *lon_candidates)
    if not lat or not lon:
        return None
    out = pdf.rename(columns={lat: "lat", lon: "lon"})
    return out.dropna(subset=["lat", "lon"])


# ----------------------------------------------------------------------------------------------
# Sections
# ----------------------------------------------------------------------------------------------
def section_quality(spark, cfg) -> R.Section:
    s = R.Section("quality", "Data quality")
    daily = _read(spark, cfg, "gold.quality_daily")
    if daily is None:
        return s.add("<p class='empty'>gold.quality_daily not available (run the clean stage).</p>")
    from common.cleaning import rule_summary

    rules = rule_summary(daily).toPandas()  # bounded: one row per cleaning rule
    totals = daily.agg(F.sum("rows").alias("rows"), F.sum("usable_rows").alias("usable")).first()
    share = (totals.usable or 0) / max(totals.rows or 1, 1)
    s.add(R.kpi_tiles([("rows cleaned", f"{totals.rows:,}"), ("usable share", f"{share:.2%}"), ("rules", str(len(rules)))]))
    s.add(R.bar_chart("quality_rules", rules["rule"].tolist(), {"rows flagged": rules["rows_flagged"].tolist()}, "Rows flagged per rule", "rows", horizontal=True))
    s.add(R.table_html(rules[["rule", "rows_flagged", "share"]], "quality_table", "{:,.4f}"))
    return s


def section_fleet(spark, cfg) -> R.Section:
    s = R.Section("fleet", "Fleet activity")
    fleet = _read(spark, cfg, "gold.fleet_daily_kpis")
    if fleet is None:
        return s.add("<p class='empty'>gold.fleet_daily_kpis not available (run the kpis stage).</p>")
    pdf = _bounded(fleet, cfg)
    day = _pick(pdf, "local_date", "date", "day")
    pdf = pdf.sort_values(day)
    x = pd.to_datetime(pdf[day])
    km = _pick(pdf, "total_gps_km", "fleet_km", "gps_km", "total_km")
    util = _pick(pdf, "mean_utilisation_hours", "avg_moving_hours", "utilisation_hours_mean", "mean_moving_hours", "total_moving_hours")
    soc = [c for c in ("soc_min_mean", "mean_soc_min", "soc_end_mean", "mean_soc_end", "soc_mean", "mean_soc") if c in pdf.columns]
    if km:
        s.add(R.line_chart("fleet_km", x, {km: pdf[km].tolist()}, "Daily fleet distance", "km"))
    if util:
        s.add(R.line_chart("fleet_utilisation", x, {util: pdf[util].tolist()}, "Utilisation (moving hours)", "hours"))
    if soc:
        s.add(R.line_chart("fleet_soc", x, {c: pdf[c].tolist() for c in soc[:2]}, "State of charge", "%"))
    return s


def section_maps(spark, cfg) -> R.Section:
    s = R.Section("maps", "Maps")
    area = R.area_rings_from_wkt(read_area_wkt(cfg.clean.area_file))

    sites = _read(spark, cfg, "gold.charging_sites")
    if sites is not None:
        pdf = _latlon(_bounded(sites, cfg))
        if pdf is not None:
            kind = _pick(pdf, "site_type", "kind", "classification", "site_class")
            layers = []
            groups = pdf.groupby(kind) if kind else [("charging site", pdf)]
            for i, (name, g) in enumerate(groups):
                layers.append(R.Layer(f"charging site: {name}", g, R.PALETTE[i % len(R.PALETTE)], label_col=kind))
            s.add(R.svg_map("map-charging-sites", "Charging sites used by the fleet", layers, area))

    hot = _read(spark, cfg, "gold.hotspots")
    gaps = _read(spark, cfg, "gold.expansion_gaps")
    layers = []
    if hot is not None:
        pdf = _latlon(_bounded(hot, cfg))
        if pdf is not None:
            visits = _pick(pdf, "unique_visits", "unique_daily_visits", "visits")
            if visits:
                pdf["r"] = 3 + 10 * pdf[visits] / max(pdf[visits].max(), 1)
            layers.append(R.Layer("hotspot", pdf, R.PALETTE[3], radius_col="r" if visits else None, label_col=visits))
    if gaps is not None:
        pdf = _latlon(_bounded(gaps, cfg))
        if pdf is not None:
            layers.append(R.Layer("expansion gap (no DC fast nearby)", pdf, R.PALETTE[1], shape="square"))
    stations = _read(spark, cfg, "bronze.stations")
    if stations is not None:
        dc = _bounded(stations.where(F.coalesce(F.col("dc_fast_count"), F.lit(0)) > 0).select("lat", "lon", "name"), cfg)
        layers.append(R.Layer("DC-fast station", dc, R.PALETTE[2], label_col="name"))
    if layers:
        s.add(R.svg_map("map-hotspots", "Operational hotspots, DC-fast stations and expansion gaps", layers, area))

    res = _read(spark, cfg, "restricted.residences")
    risk = _read(spark, cfg, "gold.driver_risk")
    if res is not None:
        from common.privacy import coarsen_location

        lat_c = _pick(res, "home_lat", "lat")
        lon_c = _pick(res, "home_lon", "lon")
        homes = res.select("vehicle_id", F.col(lat_c).alias("lat"), F.col(lon_c).alias("lon"))
        layers = []
        exact = cfg.report.show_exact_residences
        if not exact:
            homes = coarsen_location(homes, cfg.report.residence_cell_m)
        if risk is not None and "tier" in risk.columns:
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
    risk = _read(spark, cfg, "gold.driver_risk")
    if risk is None:
        return s.add("<p class='empty'>gold.driver_risk not available.</p>")
    pdf = _bounded(risk, cfg)
    z = _pick(pdf, "z_score", "distance_z", "zscore", "z")
    if z:
        s.add(R.histogram("risk_z", pdf[z].tolist(), "Average daily distance z-score", "z", vline=cfg.report.risk_z_line))
    if "tier" in pdf.columns:
        counts = pdf.tier.value_counts()
        s.add(R.bar_chart("risk_tiers", counts.index.tolist(), {"drivers": counts.values.tolist()}, "Drivers per risk tier", "drivers"))
    return s


def section_stations(spark, cfg) -> R.Section:
    s = R.Section("stations", "Charging stations")
    kpis = _read(spark, cfg, "gold.station_kpis")
    if kpis is None:
        return s.add("<p class='empty'>gold.station_kpis not available.</p>")
    pdf = _bounded(kpis, cfg)
    s.add(R.table_html(pdf.head(40), "station_kpis_table", "{:,.3f}"))
    level = _pick(pdf, "level", "grouping", "group_type")
    name = _pick(pdf, "group", "group_value", "network", "key")
    metrics = [c for c in ("operational_rate", "dc_fast_share", "access_24_7_rate", "public_share") if c in pdf.columns]
    if name and metrics:
        sub = pdf[pdf[level] == "network"] if level else pdf
        sub = sub.head(15)
        s.add(R.bar_chart("station_kpis", sub[name].astype(str).tolist(), {m: sub[m].tolist() for m in metrics}, "Station KPIs per network", "share", horizontal=True))
    return s


def section_reliability(spark, cfg) -> R.Section:
    s = R.Section("reliability", "Charger reliability")
    monthly = _read(spark, cfg, "gold.port_reliability_monthly")
    site = _read(spark, cfg, "gold.site_reliability")
    if monthly is None and site is None:
        return s.add("<p class='empty'>Reliability tables not available.</p>")
    if monthly is not None:
        pdf = _bounded(monthly, cfg)
        for col, title, unit in (
            (_pick(pdf, "uptime_pct", "nevi_uptime_pct", "uptime_observed_pct"), "Port uptime", "%"),
            (_pick(pdf, "mtbf_hours", "mtbf_h"), "MTBF", "hours"),
            (_pick(pdf, "mttr_hours", "mttr_h"), "MTTR", "hours"),
        ):
            if col:
                s.add(R.histogram(f"rel_{col}", pdf[col].tolist(), f"{title} distribution", unit))
    tests = _read(spark, cfg, "gold.reliability_tests")
    if tests is not None:
        s.add(R.table_html(_bounded(tests, cfg), "reliability_tests_table", "{:,.4f}"))
    return s


def section_models(spark, cfg) -> R.Section:
    s = R.Section("models", "Models vs baselines")
    try:
        from common.tracking import model_metrics_summary
    except ImportError:
        return s.add("<p class='empty'>Model tracking not available.</p>")
    try:
        summary = model_metrics_summary(cfg)
    except Exception as exc:  # noqa: BLE001 - the report must not fail because MLflow is empty
        return s.add(f"<p class='empty'>No model runs found ({R.esc(type(exc).__name__)}).</p>")
    if summary is None or len(summary) == 0:
        return s.add("<p class='empty'>No model runs found.</p>")
    s.add(R.table_html(summary, "model_metrics_table", "{:,.4f}"))
    for model, g in summary.groupby("model"):
        metric = g["metric"].iloc[0]
        better = "higher" if bool(g["higher_is_better"].iloc[0]) else "lower"
        s.add(R.bar_chart(f"model_{model}", g["candidate"].tolist(), {metric: g["value"].tolist()}, f"{model}: test {metric} vs baselines ({better} is better)", metric))
    return s


SECTIONS = (section_quality, section_fleet, section_maps, section_risk, section_stations, section_reliability, section_models)


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


def main(argv=None) -> StageReport:
    cfg, spark, _ = bootstrap("report", argv, __doc__)
    return run_report(spark, cfg)


if __name__ == "__main__":
    main()

"""Per-station reliability table (gold.site_reliability) and the per-source uptime summary.

Pure DataFrame functions behind `jobs/reliability.py`: status summary (full outer) session
summary, fault-rate hotspot chargers and the latest month's port uptime per station, in one
schema (`SITE_COLUMNS`) whatever feeds exist. Definitions of the parts are in
`common/network/reliability.py`. Nothing here reads or writes storage.
"""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from common.core.config import ReliabilityConfig
from common.network.reliability import site_session_summary, site_status_summary

# (column, Spark SQL type) of gold.site_reliability, in order. Hours, minutes and kWh as named;
# *_pct in percent (0-100); currency is reliability.currency.
SITE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("station_id", "string"),
    ("status_source", "string"),
    ("session_source", "string"),
    ("ports", "long"),
    ("chargers", "long"),
    ("first_seen_ts", "timestamp"),
    ("last_seen_ts", "timestamp"),
    ("observed_hours", "double"),
    ("up_hours", "double"),
    ("down_hours", "double"),
    ("excluded_hours", "double"),
    ("fault_hours", "double"),
    ("offline_hours", "double"),
    ("availability_pct", "double"),
    ("uptime_observed_pct", "double"),
    ("failures", "long"),
    ("fault_failures", "long"),
    ("down_episodes", "long"),
    ("mtbf_hours", "double"),
    ("mttr_hours", "double"),
    ("latest_month", "date"),
    ("uptime_basis", "string"),
    ("min_port_uptime_pct", "double"),
    ("mean_port_uptime_pct", "double"),
    ("min_port_nevi_uptime_pct", "double"),
    ("ports_below_target", "long"),
    ("sessions", "long"),
    ("successful_sessions", "long"),
    ("failed_sessions", "long"),
    ("delivered_kwh", "double"),
    ("session_success_rate_pct", "double"),
    ("attempt_sequences", "long"),
    ("first_time_successes", "long"),
    ("first_time_success_rate_pct", "double"),
    ("faults_per_1000_sessions", "double"),
    ("lost_kwh_est", "double"),
    ("lost_revenue_est", "double"),
    ("currency", "string"),
    ("max_charger_fault_rate_window", "double"),
    ("max_charger_fault_z", "double"),
    ("fault_hotspot_chargers", "long"),
    ("is_fault_hotspot", "boolean"),
)


def latest_month_uptime(monthly: DataFrame) -> DataFrame:
    """Per station, the port uptime of each port's latest month.

    Parameters
    ----------
    monthly : DataFrame
        gold.port_reliability_monthly (port_id, station_id, month, uptime_pct, nevi_uptime_pct
        in percent, below_target, uptime_basis).

    Returns
    -------
    DataFrame
        station_id, latest_month (date), min_port_uptime_pct, mean_port_uptime_pct,
        min_port_nevi_uptime_pct (percent), ports_below_target (ports), uptime_basis.
    """
    latest = monthly.groupBy("port_id").agg(F.max("month").alias("month"))
    return (
        monthly.join(latest, ["port_id", "month"])
        .groupBy("station_id")
        .agg(
            F.max("month").alias("latest_month"),
            F.min("uptime_pct").alias("min_port_uptime_pct"),
            F.avg("uptime_pct").alias("mean_port_uptime_pct"),
            F.min("nevi_uptime_pct").alias("min_port_nevi_uptime_pct"),
            F.sum(F.col("below_target").cast("int")).cast("long").alias("ports_below_target"),
            F.first("uptime_basis").alias("uptime_basis"),
        )
    )


def site_reliability(
    intervals: DataFrame | None,
    monthly: DataFrame | None,
    outcomes: DataFrame | None,
    hotspots: DataFrame | None,
    mean_kwh: float | None,
    params: ReliabilityConfig,
) -> DataFrame:
    """gold.site_reliability: one row per station from whatever feeds exist.

    Parameters
    ----------
    intervals : DataFrame or None
        Port status intervals with failures marked (silver.port_status_intervals); None without a
        status feed.
    monthly : DataFrame or None
        gold.port_reliability_monthly (given together with `intervals`).
    outcomes : DataFrame or None
        Session outcomes (`session_outcomes`); None without a session feed. At least one of
        `intervals` and `outcomes` is given.
    hotspots : DataFrame or None
        Per-charger fault rates (`charger_fault_rates`: station_id, fault_rate as a fraction, z,
        is_hotspot); None without sessions.
    mean_kwh : float or None
        Mean energy of a successful session (kWh), for the lost-energy estimate.
    params : ReliabilityConfig
        The `reliability` config section (price_per_kwh, currency).

    Returns
    -------
    DataFrame
        `SITE_COLUMNS`, the columns of an absent part null: hours, kWh and revenue in
        reliability.currency as named, *_pct in percent, faults_per_1000_sessions per 1,000
        sessions.
    """
    parts = []
    if intervals is not None:
        if monthly is None:
            raise ValueError("site_reliability: `monthly` (gold.port_reliability_monthly) is given together with `intervals`")
        parts.append(site_status_summary(intervals).join(latest_month_uptime(monthly), "station_id", "left"))
    if outcomes is not None:
        parts.append(site_session_summary(outcomes, params, mean_kwh))
    site = parts[0] if len(parts) == 1 else parts[0].join(parts[1], "station_id", "full_outer")
    for c in ("sessions", "fault_failures"):
        if c not in site.columns:
            site = site.withColumn(c, F.lit(None).cast("long"))
    site = site.withColumn("faults_per_1000_sessions", F.when(F.col("sessions") > 0, F.col("fault_failures") / F.col("sessions") * 1000.0))
    if hotspots is not None:
        per_station = hotspots.groupBy("station_id").agg(
            F.max("fault_rate").alias("max_charger_fault_rate_window"),
            F.max("z").alias("max_charger_fault_z"),
            F.sum(F.col("is_hotspot").cast("int")).cast("long").alias("fault_hotspot_chargers"),
        )
        site = site.join(per_station, "station_id", "left")
    else:
        site = (
            site.withColumn("max_charger_fault_rate_window", F.lit(None).cast("double"))
            .withColumn("max_charger_fault_z", F.lit(None).cast("double"))
            .withColumn("fault_hotspot_chargers", F.lit(None).cast("long"))
        )
    site = site.withColumn("is_fault_hotspot", F.coalesce(F.col("fault_hotspot_chargers") > 0, F.lit(False))).withColumn("currency", F.lit(params.currency))
    present = set(site.columns)
    return site.select(*[(F.col(c) if c in present else F.lit(None)).cast(t).alias(c) for c, t in SITE_COLUMNS])


def uptime_summary_table(monthly: DataFrame) -> str:
    """Text table per status source of gold.port_reliability_monthly (for logs and tests).

    Parameters
    ----------
    monthly : DataFrame
        gold.port_reliability_monthly.

    Returns
    -------
    str
        One line per source_name: ports, port-days, uptime and availability over the whole
        period (percent), mean / median port uptime of each port's latest month (percent), ports
        below target, failures, MTBF and MTTR (hours), uptime basis; after a header and a rule.
    """
    latest = monthly.groupBy("port_id").agg(F.max("month").alias("month"))
    last = monthly.join(latest, ["port_id", "month"])
    per_port = monthly.groupBy("source_name", "port_id").agg(
        F.sum("observed_minutes").alias("obs"),
        F.sum("up_minutes").alias("up"),
        F.sum("down_minutes").alias("down"),
        F.sum("failures").alias("failures"),
        F.sum("down_episodes").alias("episodes"),
    )
    agg = per_port.groupBy("source_name").agg(
        F.count(F.lit(1)).alias("ports"),
        (F.sum("obs") / 1440).alias("port_days"),
        (100 * (F.sum("obs") - F.sum("down")) / F.sum("obs")).alias("uptime"),
        (100 * F.sum("up") / (F.sum("up") + F.sum("down"))).alias("availability"),
        F.sum("failures").alias("failures"),
        (F.sum("up") / 60 / F.sum("failures")).alias("mtbf_h"),
        (F.sum("down") / 60 / F.sum("episodes")).alias("mttr_h"),
    )
    lat = last.groupBy("source_name").agg(
        F.avg("uptime_pct").alias("mean_uptime"),
        F.percentile_approx("uptime_pct", 0.5).alias("median_uptime"),
        F.sum(F.col("below_target").cast("int")).alias("below"),
        F.first("uptime_basis").alias("basis"),
    )
    rows = agg.join(lat, "source_name").orderBy("source_name").collect()  # bounded: one row per status source
    head = f"{'source':<26} {'ports':>5} {'port-days':>9} {'uptime%':>8} {'avail%':>7} {'mean/med port uptime%':>22} {'<target':>7} {'failures':>8} {'MTBF h':>8} {'MTTR h':>7}  basis"
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(
            f"{r.source_name[:26]:<26} {r.ports:>5} {r.port_days:>9.1f} {r.uptime:>8.3f} {r.availability or 0:>7.3f} "
            f"{r.mean_uptime:>10.3f}/{r.median_uptime:>10.3f} {r.below:>8} {r.failures:>8} {r.mtbf_h or 0:>8.1f} {r.mttr_h or 0:>7.2f}  {r.basis}"
        )
    return "\n".join(lines)

"""Driver risk: the original z-score rule plus activity trend, inactivity, charging and coverage.

Inputs (pure transforms; `jobs/risk.py` does the IO):
- daily activity per vehicle and local day with data: `gps_km` and `data_coverage_share`
  (gold.daily_kpis when the KPI stage ran, else `daily_activity` from silver with the same
  common.trips legs, so both give the same numbers);
- charging events (gold.charging_events, optional), residences (restricted.residences,
  optional: only `residence_changed`/`confidence` are used, never positions), vehicles
  (driver_id).

Per driver (vehicle), over the days the device **reported** data (data over at least
`min_day_coverage` of the day) -- so a device that was offline never turns into inactive days:
- baseline (original analysis): average daily km, z-score against the fleet; z < z_threshold
  (-1.5) is the `low_distance_z` signal and alone reaches the High tier (its weight equals
  `high_score` by default);
- `declining_trend` / `steep_decline`: least-squares slope of daily km x 7, as a share of the
  driver's mean, beyond `trend_drop_pct_per_week` / `steep_drop_pct_per_week`;
- `inactive_days`: share of reported days under `active_day_min_km`;
- `no_recent_trip`: reported days since the last active day (counted to the driver's own last
  reported day, not the fleet's);
- `irregular_charging`: days since the last charge above `charging_gap_factor` x the median
  interval between charge days (or no charge at all while reporting);
- `residence_change`: a move between two night places, or home confidence under
  `min_residence_confidence`.
score = sum of the weights of the signals present (capped at 100); tier High / Medium / Low by
`high_score` / `medium_score`. `low_coverage` (reported days / period days below
`low_coverage_share`) is reported beside the tier, never scored. `reasons` lists every signal
with its numbers in words.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from common.config import RiskConfig, TripsConfig

RISK_COLUMNS = (
    "vehicle_id",
    "driver_id",
    "score",
    "tier",
    "z_score",
    "baseline_high",
    "avg_daily_km",
    "reported_days",
    "period_days",
    "coverage_share",
    "low_coverage",
    "active_days",
    "inactive_share",
    "trend_pct_per_week",
    "days_since_last_trip",
    "charge_days",
    "days_since_last_charge",
    "median_charge_interval_days",
    "residence_changed",
    "residence_confidence",
    "signals",
    "reasons",
    "period_start",
    "period_end",
)


def daily_activity(clean_df: DataFrame, trips: TripsConfig) -> DataFrame:
    """Per vehicle and local day with usable samples: gps_km (moving legs) and data_coverage_share.

    The same definitions as gold.daily_kpis (common.trips.add_legs): km of moving legs that are
    not data gaps; coverage = time covered by non-gap legs / 24 h (capped at 1).
    """
    from common.trips import add_legs, usable_points

    legs = usable_points(clean_df).transform(add_legs, trips)
    observed = F.when(~F.col("is_gap") & F.col("prev_ts").isNotNull(), F.col("leg_s")).otherwise(0.0)
    return legs.groupBy("vehicle_id", "local_date").agg(
        F.sum("leg_km").alias("gps_km"),
        F.least(F.lit(1.0), F.sum(observed) / F.lit(86400.0)).alias("data_coverage_share"),
    )


def _charging_features(events: DataFrame, last_reported: DataFrame) -> DataFrame:
    """charge_days, days_since_last_charge, median_charge_interval_days per vehicle."""
    days = events.select("vehicle_id", "local_date").distinct()
    w = Window.partitionBy("vehicle_id").orderBy("local_date")
    gaps = days.withColumn("_gap", F.datediff("local_date", F.lag("local_date").over(w)))
    per = gaps.groupBy("vehicle_id").agg(
        F.count(F.lit(1)).alias("charge_days"),
        F.max("local_date").alias("_last_charge"),
        F.percentile_approx("_gap", 0.5, 1000).cast("double").alias("median_charge_interval_days"),
    )
    return (
        last_reported.join(per, "vehicle_id", "left")
        .withColumn("charge_days", F.coalesce(F.col("charge_days"), F.lit(0)))
        .withColumn("days_since_last_charge", F.datediff("_last_reported", "_last_charge"))
        .select("vehicle_id", "charge_days", "days_since_last_charge", "median_charge_interval_days")
    )


def _fmt(col: Column, digits: int = 1) -> Column:
    return F.format_number(col, digits)


def driver_risk(
    daily: DataFrame,
    vehicles: DataFrame | None,
    params: RiskConfig,
    charging_events: DataFrame | None = None,
    residences: DataFrame | None = None,
) -> DataFrame:
    """One row per vehicle with reported days (gold.driver_risk); columns RISK_COLUMNS.

    `daily`: vehicle_id, local_date, gps_km (km). The period is the fleet's first to last local
    date in `daily`; trend, inactivity and recency use only each driver's reported days.
    """
    p = params
    if "data_coverage_share" in daily.columns:
        # A day the device covered only partly (switched on late, the period's ragged ends) would
        # read as a short or inactive day: it is not a reported day.
        daily = daily.where(F.coalesce(F.col("data_coverage_share"), F.lit(1.0)) >= p.min_day_coverage)
    bounds = daily.agg(F.min("local_date").alias("period_start"), F.max("local_date").alias("period_end"))
    days = daily.select("vehicle_id", "local_date", F.coalesce(F.col("gps_km"), F.lit(0.0)).alias("km")).crossJoin(
        F.broadcast(bounds)
    )
    days = days.withColumn("_x", F.datediff("local_date", "period_start").cast("double")).withColumn(
        "_active", F.col("km") >= p.active_day_min_km
    )
    per = days.groupBy("vehicle_id", "period_start", "period_end").agg(
        F.count(F.lit(1)).alias("reported_days"),
        F.avg("km").alias("avg_daily_km"),
        F.sum(F.col("_active").cast("int")).alias("active_days"),
        F.max(F.when(F.col("_active"), F.col("local_date"))).alias("_last_active"),
        F.max("local_date").alias("_last_reported"),
        F.min("local_date").alias("_first_reported"),
        (F.covar_samp("_x", "km") / F.var_samp("_x")).alias("_slope_km_per_day"),
    )
    fleet = per.agg(F.avg("avg_daily_km").alias("_fleet_mean"), F.stddev_samp("avg_daily_km").alias("_fleet_std"))
    per = per.crossJoin(F.broadcast(fleet))
    per = (
        per.withColumn("period_days", F.datediff("period_end", "period_start") + 1)
        .withColumn("coverage_share", F.col("reported_days") / F.col("period_days"))
        .withColumn("low_coverage", F.col("coverage_share") < p.low_coverage_share)
        .withColumn(
            "z_score",
            F.when(F.col("_fleet_std") > 0, (F.col("avg_daily_km") - F.col("_fleet_mean")) / F.col("_fleet_std")).otherwise(
                F.lit(0.0)
            ),
        )
        .withColumn("baseline_high", F.col("z_score") < p.z_threshold)
        .withColumn("inactive_share", 1.0 - F.col("active_days") / F.col("reported_days"))
        .withColumn(
            "trend_pct_per_week",
            F.when(
                (F.col("reported_days") >= 4) & (F.col("avg_daily_km") > 0),
                F.col("_slope_km_per_day") * 7.0 / F.col("avg_daily_km") * 100.0,
            ),
        )
        .withColumn(
            "days_since_last_trip",
            F.coalesce(F.datediff("_last_reported", "_last_active"), F.datediff("_last_reported", "_first_reported") + 1),
        )
    )

    last_reported = per.select("vehicle_id", "_last_reported")
    if charging_events is not None:
        per = per.join(_charging_features(charging_events, last_reported), "vehicle_id", "left")
    else:
        per = (
            per.withColumn("charge_days", F.lit(None).cast("int"))
            .withColumn("days_since_last_charge", F.lit(None).cast("int"))
            .withColumn("median_charge_interval_days", F.lit(None).cast("double"))
        )
    if residences is not None:
        res = residences.select(
            "vehicle_id",
            F.col("residence_changed"),
            F.col("confidence").alias("residence_confidence"),
        )
        per = per.join(res, "vehicle_id", "left")
    else:
        per = per.withColumn("residence_changed", F.lit(None).cast("boolean")).withColumn(
            "residence_confidence", F.lit(None).cast("double")
        )

    usual_gap = F.greatest(F.coalesce(F.col("median_charge_interval_days"), F.lit(1.0)), F.lit(1.0))
    signals = {
        "low_distance_z": F.col("baseline_high"),
        "declining_trend": F.col("trend_pct_per_week") < -p.trend_drop_pct_per_week,
        "steep_decline": F.col("trend_pct_per_week") < -p.steep_drop_pct_per_week,
        "inactive_days": F.col("inactive_share") > p.inactive_share,
        "no_recent_trip": F.col("days_since_last_trip") >= p.days_since_trip,
        "irregular_charging": (
            ((F.col("charge_days") >= 2) & (F.col("days_since_last_charge") > p.charging_gap_factor * usual_gap))
            | ((F.col("charge_days") == 0) & (F.col("reported_days") >= 3))
        ),
        "residence_change": F.col("residence_changed") | (F.col("residence_confidence") < p.min_residence_confidence),
    }
    reasons = {
        "low_distance_z": F.concat(
            F.lit("average "), _fmt(F.col("avg_daily_km")), F.lit(" km/day is far below the fleet (z = "),
            _fmt(F.col("z_score"), 2), F.lit(f" < {p.z_threshold:g})"),
        ),
        "declining_trend": F.concat(
            F.lit("daily distance falling "), _fmt(-F.col("trend_pct_per_week"), 0), F.lit(" % per week")
        ),
        "steep_decline": F.lit(f"steep decline: more than {p.steep_drop_pct_per_week:g} % per week"),
        "inactive_days": F.concat(
            (F.col("reported_days") - F.col("active_days")).cast("string"), F.lit(" of "), F.col("reported_days").cast("string"),
            F.lit(f" reported days inactive (< {p.active_day_min_km:g} km)"),
        ),
        "no_recent_trip": F.concat(
            F.lit("no trip in the last "), F.col("days_since_last_trip").cast("string"), F.lit(" reported days")
        ),
        "irregular_charging": F.when(F.col("charge_days") == 0, F.lit("no charge while reporting")).otherwise(
            F.concat(
                F.lit("no charge for "), F.col("days_since_last_charge").cast("string"), F.lit(" days (usual interval "),
                _fmt(usual_gap), F.lit(" d)"),
            )
        ),
        "residence_change": F.when(F.col("residence_changed"), F.lit("moved between two night places")).otherwise(
            F.concat(F.lit("nights split between places (home confidence "), _fmt(F.col("residence_confidence"), 2), F.lit(")"))
        ),
    }  # fmt: skip
    weights = p.weights
    per = per.withColumn(
        "signals",
        F.filter(F.array(*[F.when(F.coalesce(c, F.lit(False)), F.lit(name)) for name, c in signals.items()]), lambda x: x.isNotNull()),
    )
    score = sum(
        (F.when(F.array_contains("signals", name), F.lit(float(weights.get(name, 0.0)))).otherwise(F.lit(0.0)) for name in signals),
        F.lit(0.0),
    )
    per = per.withColumn("score", F.least(F.lit(100.0), score))
    coverage_note = F.when(
        F.col("low_coverage"),
        F.concat(
            F.lit("low data coverage: "), F.col("reported_days").cast("string"), F.lit(" of "),
            F.col("period_days").cast("string"), F.lit(" days reported (scored on reported days only)"),
        ),
    )  # fmt: skip
    per = per.withColumn(
        "reasons",
        F.filter(
            F.array(*[F.when(F.array_contains("signals", name), text) for name, text in reasons.items()], coverage_note),
            lambda x: x.isNotNull(),
        ),
    ).withColumn(
        "tier",
        F.when(F.col("score") >= p.high_score, F.lit("High")).when(F.col("score") >= p.medium_score, F.lit("Medium")).otherwise(F.lit("Low")),
    )
    if vehicles is not None:
        drivers = vehicles.select("vehicle_id", "driver_id").dropDuplicates(["vehicle_id"])
        per = per.join(F.broadcast(drivers), "vehicle_id", "left")
    else:
        per = per.withColumn("driver_id", F.lit(None).cast("string"))
    return per.select(*RISK_COLUMNS)

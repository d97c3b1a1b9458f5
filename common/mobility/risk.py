"""Driver risk: the original z-score rule plus tested trend/inactivity signals, charging and coverage.

Inputs (pure transforms; `jobs/risk.py` does the IO):
- daily activity per vehicle and local day with data: `gps_km` and `data_coverage_share`
  (gold.daily_kpis when the KPI stage ran, else `daily_activity` from silver with the same
  common.silver.trips legs, so both give the same numbers; a parked silence of a device that sleeps
  while parked is covered time, so a parked day with heartbeats is an inactive day, not a
  missing one);
- the fleet: every vehicle with telemetry (silver.device_profiles) or in bronze.vehicles -- each
  gets exactly one row;
- charging events (silver.charging_events, optional), residences (restricted.residences,
  optional: only `residence_changed`/`confidence` are used, never positions), vehicles
  (driver_id).

Per driver (vehicle), over the days the device **reported** data (data over at least
`min_day_coverage` of the day) -- so a device that was offline never turns into inactive days:
- baseline (original analysis): average daily km, z-score against the fleet; z < z_threshold
  (-1.5) is the `low_distance_z` signal and alone reaches the High tier (its weight equals
  `high_score` by default);
- `declining_trend` / `steep_decline`: least-squares slope of daily km x 7, as a share of the
  driver's mean, beyond `trend_drop_pct_per_week` / `steep_drop_pct_per_week` **and**
  significant: one-sided t-test of the slope against its standard error, on at least
  `trend_min_days` reported days, its p-value adjusted across the fleet's drivers
  (Benjamini-Hochberg) below `fdr` (a steady part-time driver's random idle days are noise, and
  testing a hundred drivers finds a few 'significant' ones by chance);
- `rising_inactivity`: inactive days more frequent in the later half of the reported days than
  in the earlier half, one-sided Fisher exact test (hypergeometric tail, scipy), same FDR rule;
- `inactive_days`: share of reported days under `active_day_min_km` (a steady pattern: light);
- `no_recent_trip`: reported days since the last active day (counted to the driver's own last
  reported day, not the fleet's);
- `irregular_charging`: days since the last charge above `charging_gap_factor` x the median
  interval between charge days (or no charge at all while reporting);
- `residence_change`: a move between two night places, or home confidence under
  `min_residence_confidence`.
score = sum of the weights of the signals present (capped at 100); tier High / Medium / Low by
`high_score` / `medium_score`; fewer than `min_reported_days` reported days (or no usable
telemetry): tier `insufficient_data` with the reason. `low_coverage` (reported days / period days
below `low_coverage_share`) is reported beside the tier, never scored. `reasons` lists every
signal with its numbers in words.
"""

from __future__ import annotations

import pandas as pd
from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from common.core.config import RiskConfig, TripsConfig

INSUFFICIENT = "insufficient_data"
TIERS = ("High", "Medium", "Low", INSUFFICIENT)

RISK_COLUMNS = (
    "vehicle_id",
    "driver_id",
    "score",
    "tier",
    "device_mode",
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
    "trend_p_value",
    "trend_q_value",
    "inactive_share_early",
    "inactive_share_late",
    "inactivity_p_value",
    "inactivity_q_value",
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


def daily_activity(clean_df: DataFrame, trips: TripsConfig, heartbeats: DataFrame | None = None) -> DataFrame:
    """Per vehicle and local day with usable samples: gps_km (moving legs) and data_coverage_share.

    The same definitions as gold.daily_kpis (common.silver.trips.add_legs): km of moving legs that are
    not data gaps; coverage = time covered by non-gap legs (parked silences included) / 24 h (capped at 1).

    Parameters
    ----------
    clean_df : DataFrame
        silver.telematics_clean rows.
    trips : TripsConfig
        Silence rule of the legs.
    heartbeats : DataFrame, optional
        vehicle_id, heartbeat_interval_s (s) from silver.device_profiles (`common.silver.devices.heartbeats`);
        None: every vehicle gets the minimum parked-silence limit.

    Returns
    -------
    DataFrame
        One row per (vehicle_id, local_date): gps_km (km), data_coverage_share (0-1).
    """
    from common.silver.trips import add_legs, usable_points

    legs = usable_points(clean_df).transform(add_legs, trips, heartbeats)
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


@F.pandas_udf(T.DoubleType())  # type: ignore[call-overload]  # type-hinted pandas UDF: pyspark 3.5 stubs only overload the functionType form
def _slope_p_value(t: pd.Series, dof: pd.Series) -> pd.Series:
    """P(T <= t) under a Student t with `dof` degrees of freedom: one-sided test of a falling trend."""
    from scipy import stats

    return pd.Series(stats.t.cdf(t.to_numpy(float), dof.to_numpy(float)))


@F.pandas_udf(T.DoubleType())  # type: ignore[call-overload]  # type-hinted pandas UDF: pyspark 3.5 stubs only overload the functionType form
def _later_inactivity_p_value(days: pd.Series, inactive: pd.Series, late_days: pd.Series, late_inactive: pd.Series) -> pd.Series:
    """One-sided Fisher exact test that inactive days are more frequent in the later days:
    P(X >= late_inactive), X hypergeometric (population days, inactive of them, late_days drawn)."""
    from scipy import stats

    return pd.Series(stats.hypergeom.sf(late_inactive.to_numpy(float) - 1, days.to_numpy(float), inactive.to_numpy(float), late_days.to_numpy(float)))


def _trend_and_inactivity(days: DataFrame, p: RiskConfig) -> DataFrame:
    """Per vehicle: least-squares slope of daily km with its one-sided p-value, and the early/late
    inactive shares with their Fisher p-value (reported days split at the vehicle's middle day)."""
    order = Window.partitionBy("vehicle_id").orderBy("local_date")
    half = days.withColumn("_rank", F.row_number().over(order)).withColumn("_n", F.count(F.lit(1)).over(Window.partitionBy("vehicle_id")))
    half = half.withColumn("_late", F.col("_rank") > F.col("_n") / 2)
    inactive = (~F.col("_active")).cast("double")
    stats = half.groupBy("vehicle_id").agg(
        F.count(F.lit(1)).alias("_n"),
        (F.covar_samp("_x", "km") / F.var_samp("_x")).alias("_slope"),
        F.var_samp("_x").alias("_var_x"),
        F.var_samp("km").alias("_var_y"),
        F.corr("_x", "km").alias("_r"),
        F.sum(inactive).alias("_inactive"),
        F.sum(F.col("_late").cast("double")).alias("_late_days"),
        F.sum(F.when(F.col("_late"), inactive)).alias("_late_inactive"),
        F.avg(F.when(~F.col("_late"), inactive)).alias("inactive_share_early"),
        F.avg(F.when(F.col("_late"), inactive)).alias("inactive_share_late"),
    )
    # SE of the OLS slope: sqrt((1 - r^2) var_y / ((n - 2) var_x)); t = slope / SE.
    se = F.sqrt((1.0 - F.col("_r") * F.col("_r")) * F.col("_var_y") / ((F.col("_n") - 2.0) * F.col("_var_x")))
    t = F.when(se > 0, F.col("_slope") / se).when(F.col("_slope") < 0, F.lit(float("-inf"))).when(F.col("_slope") > 0, F.lit(float("inf")))
    enough = F.col("_n") >= p.trend_min_days
    return stats.select(
        "vehicle_id",
        "_slope",
        F.when(enough & F.col("_slope").isNotNull(), _slope_p_value(t, F.col("_n") - 2.0)).alias("trend_p_value"),
        "inactive_share_early",
        "inactive_share_late",
        F.when(enough, _later_inactivity_p_value(F.col("_n").cast("double"), F.col("_inactive"), F.col("_late_days"), F.col("_late_inactive"))).alias("inactivity_p_value"),
    )


_Q_SCHEMA = T.StructType([T.StructField("vehicle_id", T.StringType()), T.StructField("trend_q_value", T.DoubleType()), T.StructField("inactivity_q_value", T.DoubleType())])


def _bh_fn(pdf: pd.DataFrame) -> pd.DataFrame:
    from statsmodels.stats.multitest import multipletests

    out = pd.DataFrame({"vehicle_id": pdf["vehicle_id"]})
    for p_col, q_col in (("trend_p_value", "trend_q_value"), ("inactivity_p_value", "inactivity_q_value")):
        q = pd.Series(float("nan"), index=pdf.index)
        tested = pdf[p_col].notna()
        if tested.any():
            q[tested] = multipletests(pdf.loc[tested, p_col].to_numpy(float), method="fdr_bh")[1]
        out[q_col] = q
    return out


def fleet_q_values(per: DataFrame) -> DataFrame:
    """Benjamini-Hochberg q-values of the trend and rising-inactivity p-values across the fleet.

    Every driver is tested, so at a 5 % level about 5 % of steady drivers would show a 'significant'
    change by chance; controlling the false discovery rate across the fleet keeps the flagged set
    mostly real (statsmodels multipletests, fdr_bh). One row per vehicle, one group: small.

    Parameters
    ----------
    per : DataFrame
        One row per vehicle: vehicle_id, trend_p_value, inactivity_p_value (null = not tested).

    Returns
    -------
    DataFrame
        One row per vehicle: vehicle_id, trend_q_value, inactivity_q_value (null where the
        p-value is null).
    """
    tests = per.select("vehicle_id", "trend_p_value", "inactivity_p_value")
    return tests.groupBy(F.lit(1).alias("_fleet")).applyInPandas(_bh_fn, _Q_SCHEMA)


def driver_risk(
    daily: DataFrame,
    vehicles: DataFrame | None,
    params: RiskConfig,
    charging_events: DataFrame | None = None,
    residences: DataFrame | None = None,
    fleet: DataFrame | None = None,
) -> DataFrame:
    """One row per vehicle of the fleet (gold.driver_risk); columns RISK_COLUMNS.

    The period is the fleet's first to last reported local date; trend, inactivity and recency
    use only each driver's reported days. A vehicle with fewer than min_reported_days reported
    days gets tier `insufficient_data` and its reason, and no score.

    Parameters
    ----------
    daily : DataFrame
        vehicle_id, local_date, gps_km (km) and optionally data_coverage_share (0-1):
        gold.daily_kpis or `daily_activity` output.
    vehicles : DataFrame or None
        bronze.vehicles (vehicle_id, driver_id); None: driver_id is null.
    params : RiskConfig
    charging_events : DataFrame, optional
        silver.charging_events (vehicle_id, local_date); None: charging columns null, no
        irregular_charging signal.
    residences : DataFrame, optional
        restricted.residences (vehicle_id, residence_changed, confidence); None: no
        residence_change signal.
    fleet : DataFrame, optional
        vehicle_id and optionally device_mode (silver.device_profiles, which also lists registered
        vehicles without telemetry); vehicles of `daily` and `vehicles` are added to it.

    Returns
    -------
    DataFrame
        One row per vehicle, RISK_COLUMNS: score (0-100), tier (High | Medium | Low |
        insufficient_data), signals and reasons (arrays of strings); avg_daily_km (km),
        coverage_share and inactive_share (0-1), trend_pct_per_week (% of the driver's mean
        daily km per week), days_since_last_trip (reported days after the last active day; all
        reported days when none was active), days_since_last_charge and median_charge_interval_days (days),
        period_start/period_end (local dates).
    """
    p = params
    if "data_coverage_share" in daily.columns:
        # A day the device covered only partly (switched on late, the period's ragged ends) would
        # read as a short or inactive day: it is not a reported day.
        daily = daily.where(F.coalesce(F.col("data_coverage_share"), F.lit(1.0)) >= p.min_day_coverage)
    bounds = daily.agg(F.min("local_date").alias("period_start"), F.max("local_date").alias("period_end"))
    days = daily.select("vehicle_id", "local_date", F.coalesce(F.col("gps_km"), F.lit(0.0)).alias("km")).crossJoin(F.broadcast(bounds))
    days = days.withColumn("_x", F.datediff("local_date", "period_start").cast("double")).withColumn("_active", F.col("km") >= p.active_day_min_km)
    per = days.groupBy("vehicle_id", "period_start", "period_end").agg(
        F.count(F.lit(1)).alias("reported_days"),
        F.avg("km").alias("avg_daily_km"),
        F.sum(F.col("_active").cast("int")).alias("active_days"),
        F.max(F.when(F.col("_active"), F.col("local_date"))).alias("_last_active"),
        F.max("local_date").alias("_last_reported"),
        F.min("local_date").alias("_first_reported"),
        F.collect_list("local_date").alias("_reported_dates"),  # bounded: the days of one period
    )
    tests = _trend_and_inactivity(days, p)
    per = per.join(tests, "vehicle_id", "left").join(fleet_q_values(tests), "vehicle_id", "left")
    scored = F.col("reported_days") >= p.min_reported_days
    fleet_stats = per.where(scored).agg(F.avg("avg_daily_km").alias("_fleet_mean"), F.stddev_samp("avg_daily_km").alias("_fleet_std"))
    per = per.crossJoin(F.broadcast(fleet_stats))
    per = (
        per.withColumn("period_days", F.datediff("period_end", "period_start") + 1)
        .withColumn("coverage_share", F.col("reported_days") / F.col("period_days"))
        .withColumn("low_coverage", F.col("coverage_share") < p.low_coverage_share)
        .withColumn(
            "z_score",
            F.when(F.col("_fleet_std") > 0, (F.col("avg_daily_km") - F.col("_fleet_mean")) / F.col("_fleet_std")).otherwise(F.lit(0.0)),
        )
        .withColumn("baseline_high", F.col("z_score") < p.z_threshold)
        .withColumn("inactive_share", 1.0 - F.col("active_days") / F.col("reported_days"))
        .withColumn(
            "trend_pct_per_week",
            F.when(
                (F.col("reported_days") >= 4) & (F.col("avg_daily_km") > 0),
                F.col("_slope") * 7.0 / F.col("avg_daily_km") * 100.0,
            ),
        )
        # Reported days after the last active day (all of them without one): a silent device's
        # calendar days are not days without a trip.
        .withColumn(
            "days_since_last_trip",
            F.size(F.filter("_reported_dates", lambda d: F.col("_last_active").isNull() | (d > F.col("_last_active")))),
        )
        .drop("_reported_dates")
    )

    last_reported = per.select("vehicle_id", "_last_reported")
    if charging_events is not None:
        per = per.join(_charging_features(charging_events, last_reported), "vehicle_id", "left")
    else:
        per = per.withColumn("charge_days", F.lit(None).cast("int")).withColumn("days_since_last_charge", F.lit(None).cast("int")).withColumn("median_charge_interval_days", F.lit(None).cast("double"))
    if residences is not None:
        res = residences.select(
            "vehicle_id",
            F.col("residence_changed"),
            F.col("confidence").alias("residence_confidence"),
        )
        per = per.join(res, "vehicle_id", "left")
    else:
        per = per.withColumn("residence_changed", F.lit(None).cast("boolean")).withColumn("residence_confidence", F.lit(None).cast("double"))

    per = _score(per, p).withColumn("_scored", scored)
    return _with_whole_fleet(per, daily, vehicles, fleet, p)


def _score(per: DataFrame, p: RiskConfig) -> DataFrame:
    """signals, score, reasons and tier of the vehicles with reported days."""
    usual_gap = F.greatest(F.coalesce(F.col("median_charge_interval_days"), F.lit(1.0)), F.lit(1.0))
    falling = F.col("trend_q_value") < p.fdr
    signals = {
        "low_distance_z": F.col("baseline_high"),
        "declining_trend": falling & (F.col("trend_pct_per_week") < -p.trend_drop_pct_per_week),
        "steep_decline": falling & (F.col("trend_pct_per_week") < -p.steep_drop_pct_per_week),
        "rising_inactivity": F.col("inactivity_q_value") < p.fdr,
        "inactive_days": F.col("inactive_share") > p.inactive_share,
        "no_recent_trip": F.col("days_since_last_trip") >= p.days_since_trip,
        "irregular_charging": (((F.col("charge_days") >= 2) & (F.col("days_since_last_charge") > p.charging_gap_factor * usual_gap)) | ((F.col("charge_days") == 0) & (F.col("reported_days") >= 3))),
        "residence_change": F.col("residence_changed") | (F.col("residence_confidence") < p.min_residence_confidence),
    }
    reasons = {
        "low_distance_z": F.concat(
            F.lit("average "), _fmt(F.col("avg_daily_km")), F.lit(" km/day is far below the fleet (z = "),
            _fmt(F.col("z_score"), 2), F.lit(f" < {p.z_threshold:g})"),
        ),
        "declining_trend": F.concat(
            F.lit("daily distance falling "), _fmt(-F.col("trend_pct_per_week"), 0), F.lit(" % per week (one-sided p = "),
            F.format_number(F.col("trend_p_value"), 4), F.lit(", fleet FDR q = "), F.format_number(F.col("trend_q_value"), 3), F.lit(")"),
        ),
        "steep_decline": F.lit(f"steep decline: more than {p.steep_drop_pct_per_week:g} % per week"),
        "rising_inactivity": F.concat(
            F.lit("inactive days rising: "), _fmt(F.col("inactive_share_early") * 100.0, 0), F.lit(" % of the earlier reported days, "),
            _fmt(F.col("inactive_share_late") * 100.0, 0), F.lit(" % of the later ones (Fisher p = "),
            F.format_number(F.col("inactivity_p_value"), 4), F.lit(", fleet FDR q = "), F.format_number(F.col("inactivity_q_value"), 3), F.lit(")"),
        ),
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
    return per.withColumn(
        "reasons",
        F.filter(
            F.array(*[F.when(F.array_contains("signals", name), text) for name, text in reasons.items()], coverage_note),
            lambda x: x.isNotNull(),
        ),
    ).withColumn(
        "tier",
        F.when(F.col("score") >= p.high_score, F.lit("High")).when(F.col("score") >= p.medium_score, F.lit("Medium")).otherwise(F.lit("Low")),
    )


def _with_whole_fleet(per: DataFrame, daily: DataFrame, vehicles: DataFrame | None, fleet: DataFrame | None, p: RiskConfig) -> DataFrame:
    """Every vehicle of the fleet exactly once: scored, or `insufficient_data` with the reason."""
    ids = [daily.select("vehicle_id")]
    if vehicles is not None:
        ids.append(vehicles.select("vehicle_id"))
    if fleet is not None:
        ids.append(fleet.select("vehicle_id"))
    universe = ids[0]
    for other in ids[1:]:
        universe = universe.unionByName(other)
    universe = universe.where(F.col("vehicle_id").isNotNull()).distinct()
    if fleet is not None and "device_mode" in fleet.columns:
        universe = universe.join(fleet.select("vehicle_id", "device_mode").dropDuplicates(["vehicle_id"]), "vehicle_id", "left")
    else:
        universe = universe.withColumn("device_mode", F.lit(None).cast("string"))
    out = universe.join(per, "vehicle_id", "left")
    scored = F.coalesce(F.col("_scored"), F.lit(False))
    why = F.when(
        F.col("reported_days").isNull(),
        F.when(F.col("device_mode") == "no_data", F.lit("no usable telemetry (registered vehicle)")).otherwise(F.lit(f"no reported day (no day with data over {p.min_day_coverage:.0%} of 24 h)")),
    ).otherwise(
        F.concat(
            F.col("reported_days").cast("string"),
            F.lit(f" reported day(s), fewer than risk.min_reported_days = {p.min_reported_days}"),
        )
    )
    mode_note = F.when(F.col("device_mode").isNotNull(), F.concat(F.lit("device mode "), F.col("device_mode")))
    out = (
        out.withColumn("tier", F.when(scored, F.col("tier")).otherwise(F.lit(INSUFFICIENT)))
        .withColumn("score", F.when(scored, F.col("score")))
        .withColumn("signals", F.when(scored, F.col("signals")).otherwise(F.array().cast("array<string>")))
        .withColumn(
            "reasons",
            F.when(scored, F.col("reasons")).otherwise(F.filter(F.array(why, mode_note), lambda x: x.isNotNull())),
        )
        .withColumn("baseline_high", F.when(scored, F.col("baseline_high")))
        .withColumn("z_score", F.when(scored, F.col("z_score")))
    )
    if vehicles is not None:
        drivers = vehicles.select("vehicle_id", "driver_id").dropDuplicates(["vehicle_id"])
        out = out.join(F.broadcast(drivers), "vehicle_id", "left")
    else:
        out = out.withColumn("driver_id", F.lit(None).cast("string"))
    return out.select(*RISK_COLUMNS)

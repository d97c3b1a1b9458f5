"""Accuracy of jobs/kpis.py against the generator's truth (shared 24-vehicle x 7-day fleet).

Scores are printed (run with -s to see them) and asserted with tolerances argued next to each
assert. Trips are matched to truth.trips by time overlap per vehicle.
"""

from __future__ import annotations

import time

import pytest
from pyspark.sql import functions as F

from common.io import tables

FLEET_TZ = "Asia/Kolkata"  # the generator's region timezone (delhi_ncr)


@pytest.fixture(scope="module")
def fleet_kpis(spark, fleet_silver):
    """The shared fleet with the KPI tables written (jobs.kpis full run)."""
    from jobs.kpis import run_kpis

    t0 = time.time()
    report = run_kpis(spark, fleet_silver)
    print(f"\n[kpis] full run on the fixture fleet: {time.time() - t0:.1f}s, tables {report.tables}, notes {report.notes}")
    return fleet_silver


@pytest.fixture(scope="module")
def matched_trips(spark, fleet_kpis):
    """Truth trips with the detected trips that overlap them in time (one row per pair)."""
    cfg = fleet_kpis
    truth = tables.read(spark, cfg, "truth.trips").select(
        "vehicle_id",
        F.col("trip_id").alias("true_trip_id"),
        F.col("start_ts").alias("t_start"),
        F.col("end_ts").alias("t_end"),
        F.col("distance_km").alias("true_km"),
        F.col("energy_kwh").alias("true_kwh"),
    )
    trips = tables.read(spark, cfg, "silver.trips")
    pairs = truth.join(trips, "vehicle_id").where((F.col("start_ts") <= F.col("t_end")) & (F.col("end_ts") >= F.col("t_start")))
    n_per_truth = pairs.groupBy("true_trip_id").count().withColumnRenamed("count", "n_detected")
    n_per_detected = pairs.groupBy("trip_id").count().withColumnRenamed("count", "n_truth")
    return (
        truth.join(pairs.select("true_trip_id", "trip_id", "distance_km", "energy_kwh", "battery_kwh", "soc_endpoints_imputed"), "true_trip_id", "left")
        .join(n_per_truth, "true_trip_id", "left")
        .join(n_per_detected, "trip_id", "left")
        .fillna(0, ["n_detected", "n_truth"])
        .cache()
    )


def test_trips_match_truth_one_to_one(matched_trips):
    # Truth trips below 2 x min_trip_km are short hops to a nearby point; GPS jitter decides them.
    rows = matched_trips.where("true_km >= 0.4")
    n_truth = rows.select("true_trip_id").distinct().count()
    one_to_one = rows.where("n_detected = 1 AND n_truth = 1").count()
    share = one_to_one / n_truth
    print(f"\n[kpis] trips: {n_truth} truth trips >= 0.4 km, {one_to_one} matched one-to-one ({share:.2%})")
    # Every truth trip is a drive between two parked periods (>= one 5-min heartbeat), and a
    # stop needs >= 5 min of stationary samples, so nearly all must match exactly.
    assert share >= 0.95


def test_trip_distance_matches_truth(matched_trips):
    m = matched_trips.where("n_detected = 1 AND n_truth = 1 AND true_km >= 0.4")
    rel = (F.col("distance_km") - F.col("true_km")) / F.col("true_km")
    s = m.agg(
        F.count(F.lit(1)).alias("n"),
        F.percentile(F.abs(rel), 0.5).alias("median_abs"),
        F.percentile(F.abs(rel), 0.95).alias("p95_abs"),
        F.avg(rel).alias("mean_rel"),
        (F.sum("distance_km") / F.sum("true_km") - 1).alias("total_rel"),
    ).first()
    print(f"\n[kpis] trip distance vs truth over {s['n']} trips: median |err| {s['median_abs']:.2%}, p95 |err| {s['p95_abs']:.2%}, mean err {s['mean_rel']:+.2%}, total {s['total_rel']:+.2%}")
    # Straight chords between 30-60 s samples cut the polyline's bends a little (a bias of well
    # under 1 %); departure/arrival samples carry ~7 m GPS jitter. 2 % / 5 % leaves room for
    # short trips where 10 m is a larger share.
    assert s["median_abs"] < 0.02
    assert s["p95_abs"] < 0.05
    assert abs(s["total_rel"]) < 0.02


def test_trip_energy_matches_truth_within_integer_soc_resolution(matched_trips):
    m = matched_trips.where("n_detected = 1 AND n_truth = 1 AND true_km >= 0.4 AND battery_kwh IS NOT NULL")
    err = F.col("energy_kwh") - F.col("true_kwh")
    # SOC is reported rounded to whole percent: each end is off by < 0.5 points, the difference
    # by < 1 point, i.e. < battery_kwh / 100 (0.029 kWh on a 2.9 kWh scooter, 0.30 kWh on a
    # 30.2 kWh car). Trips whose end SOC was repaired by cleaning (spikes) may exceed that.
    one_point = F.col("battery_kwh") / 100.0
    s = m.agg(
        F.count(F.lit(1)).alias("n"),
        F.avg((F.abs(err) <= one_point + 1e-9).cast("double")).alias("within_one_point"),
        F.avg((F.abs(err) <= 2 * one_point + 1e-9).cast("double")).alias("within_two_points"),
        F.avg(F.abs(err)).alias("mae_kwh"),
        F.avg(F.abs(err) / one_point).alias("mae_points"),
        (F.sum("energy_kwh") / F.sum("true_kwh") - 1).alias("total_rel"),
        F.sum("true_kwh").alias("true_total"),
    ).first()
    print(
        f"\n[kpis] trip energy (dSOC x battery) vs truth over {s['n']} trips: "
        f"{s['within_one_point']:.2%} within 1 SOC point, {s['within_two_points']:.2%} within 2, "
        f"MAE {s['mae_kwh']:.3f} kWh ({s['mae_points']:.2f} SOC points), fleet total {s['total_rel']:+.2%} "
        f"of {s['true_total']:.1f} kWh"
    )
    assert s["within_one_point"] >= 0.97
    assert s["within_two_points"] >= 0.99
    # Rounding errors have mean ~0: over hundreds of trips the total must be close.
    assert abs(s["total_rel"]) < 0.03


def test_daily_gps_km_matches_truth_distance(spark, fleet_kpis):
    cfg = fleet_kpis
    points = tables.read(spark, cfg, "truth.points").where(F.col("anomaly_type").isNull() | (F.col("anomaly_type") != "near_duplicate"))
    truth = points.groupBy("vehicle_id", F.to_date(F.from_utc_timestamp("ts", FLEET_TZ)).alias("local_date")).agg(F.sum("distance_km").alias("true_km"))
    daily = tables.read(spark, cfg, "gold.daily_kpis").select("vehicle_id", "local_date", "gps_km", "odometer_km", "odometer_ok")
    j = truth.join(daily, ["vehicle_id", "local_date"], "inner").where("true_km >= 5")
    rel = (F.col("gps_km") - F.col("true_km")) / F.col("true_km")
    s = j.agg(
        F.count(F.lit(1)).alias("n"),
        F.percentile(F.abs(rel), 0.5).alias("median_abs"),
        F.max(F.abs(rel)).alias("max_abs"),
        (F.sum("gps_km") / F.sum("true_km") - 1).alias("total_rel"),
        F.percentile(F.abs(F.when(F.col("odometer_ok"), (F.col("odometer_km") - F.col("true_km")) / F.col("true_km"))), 0.5).alias("odo_median_abs"),
    ).first()
    print(
        f"\n[kpis] GPS km per vehicle-day vs truth over {s['n']} days: median |err| {s['median_abs']:.2%}, "
        f"max |err| {s['max_abs']:.2%}, total {s['total_rel']:+.2%}; healthy odometer days median |err| {s['odo_median_abs']:.2%}"
    )
    assert s["median_abs"] < 0.02
    assert s["max_abs"] < 0.06
    assert abs(s["total_rel"]) < 0.02


def test_stuck_odometer_vehicles_are_billed_on_gps(spark, fleet_kpis):
    cfg = fleet_kpis
    faults = tables.read(spark, cfg, "truth.vehicles").select("vehicle_id", "odometer_fault")
    truth_km = (
        tables.read(spark, cfg, "truth.points").where(F.col("anomaly_type").isNull() | (F.col("anomaly_type") != "near_duplicate")).groupBy("vehicle_id").agg(F.sum("distance_km").alias("true_km"))
    )
    bills = (
        tables.read(spark, cfg, "gold.payd_billing")
        .groupBy("vehicle_id")
        .agg(
            F.sum("billable_km").alias("billable_km"),
            F.sum("gps_billed_days").alias("gps_billed_days"),
            F.array_distinct(F.flatten(F.collect_list("odometer_faults"))).alias("faults"),
            F.collect_set("billing_source").alias("sources"),
        )
    )
    rows = bills.join(faults, "vehicle_id").join(truth_km, "vehicle_id").collect()
    stuck = [r for r in rows if r["odometer_fault"] == "stuck"]
    healthy = [r for r in rows if r["odometer_fault"] != "stuck"]
    worst = max(abs(r["billable_km"] / r["true_km"] - 1) for r in rows if r["true_km"] > 0)
    print(
        f"\n[kpis] billing: {len(stuck)} stuck-odometer vehicles "
        + ", ".join(f"{r['vehicle_id']} {r['sources']} gps days {r['gps_billed_days']} faults {r['faults']} billable {r['billable_km']:.1f} / true {r['true_km']:.1f} km" for r in stuck)
        + f"; healthy billed on odometer only: {sum(r['sources'] == ['odometer'] for r in healthy)}/{len(healthy)}; "
        f"worst billable vs true km {worst:.2%}"
    )
    assert stuck, "the fixture fleet should contain a stuck odometer (generator: 5 % of vehicles)"
    for r in stuck:
        assert r["gps_billed_days"] >= 1 and "stuck" in r["faults"], r
        assert not set(r["sources"]) - {"gps", "mixed"}, r
    # No false alarms: healthy odometers are billed on the odometer.
    assert all(r["sources"] == ["odometer"] for r in healthy), [r for r in healthy if r["sources"] != ["odometer"]]
    # Whatever the source, the bill is close to the true distance.
    assert worst < 0.03

"""Generator invariants: the synthetic data must be plausible and its truth self-consistent."""

from __future__ import annotations

import numpy as np
import pytest
from pyspark.sql import Window
from pyspark.sql import functions as F

from common.core.config import GeneratorConfig
from common.io import tables
from common.spatial.geo import haversine_np
from common.synthetic.generator import MODEL_BY_NAME, VehicleSim, build_world


@pytest.fixture(scope="module")
def points(spark, fleet_cfg):
    return tables.read(spark, fleet_cfg, "truth.points").cache()


def test_world_is_deterministic_for_a_seed():
    a = build_world(GeneratorConfig(vehicles=5, days=2, seed=3))
    b = build_world(GeneratorConfig(vehicles=5, days=2, seed=3))
    c = build_world(GeneratorConfig(vehicles=5, days=2, seed=4))
    assert a.vehicles.equals(b.vehicles) and a.stations.equals(b.stations)
    assert not a.vehicles.home_lat.equals(c.vehicles.home_lat)


def test_vehicle_simulation_is_deterministic():
    w = build_world(GeneratorConfig(vehicles=2, days=2, seed=11))
    v = w.vehicles.iloc[0].copy()
    one, two = VehicleSim(v, w).run(), VehicleSim(v, w).run()
    assert one.equals(two)


def test_soc_and_coordinates_in_range(points):
    clean = points.where(F.col("anomaly_type").isNull())
    row = clean.agg(F.min("true_soc"), F.max("true_soc"), F.min("soc_pct"), F.max("soc_pct"), F.count(F.when(F.isnan("lat") | F.col("lat").isNull(), 1))).first()
    assert 0 <= row[0] and row[1] <= 100 and 0 <= row[2] and row[3] <= 100
    assert row[4] == 0
    # no vehicle is driven to an empty battery
    assert row[0] > 3, f"min true SOC {row[0]:.1f}"


def test_no_teleports_in_true_path(points):
    w = Window.partitionBy("vehicle_id").orderBy("ts", "seq")
    p = points.where(F.col("anomaly_type").isNull() | (F.col("anomaly_type") != "near_duplicate"))
    p = p.withColumn("plat", F.lag("true_lat").over(w)).withColumn("plon", F.lag("true_lon").over(w)).withColumn("pts", F.lag("ts").over(w))
    pdf = p.where("plat is not null").select("vehicle_id", "true_lat", "true_lon", "plat", "plon", (F.col("ts").cast("long") - F.col("pts").cast("long")).alias("dt")).toPandas()
    kmh = haversine_np(pdf.true_lat, pdf.true_lon, pdf.plat, pdf.plon) / np.maximum(pdf.dt, 1) * 3.6
    print(f"max true implied speed {kmh.max():.1f} km/h, p99 {np.percentile(kmh, 99):.1f}")
    assert kmh.max() < 160


def test_homes_occupied_at_night(spark, fleet_cfg, points):
    homes = tables.read(spark, fleet_cfg, "truth.homes")
    night = points.where(F.col("anomaly_type").isNull()).withColumn("h", F.hour(F.from_utc_timestamp("ts", "Asia/Kolkata"))).where("h >= 1 and h < 5")
    pdf = night.join(homes, "vehicle_id").select("true_lat", "true_lon", "home_lat", "home_lon").toPandas()
    d = haversine_np(pdf.true_lat, pdf.true_lon, pdf.home_lat, pdf.home_lon)
    share = float((d < 60).mean())
    print(f"night points within 60 m of home: {share:.3%}")
    assert share > 0.97


def test_anomalies_labelled_and_visible_in_emitted_values(spark, fleet_cfg, points):
    an = points.where(F.col("anomaly_type").isNotNull()).toPandas()
    counts = an.anomaly_type.value_counts()
    print(counts.to_string())
    for t in ("zero_coord", "outside_area", "speed_spike", "soc_spike", "near_duplicate", "exact_duplicate", "null_field", "invalid_coord"):
        assert counts.get(t, 0) > 0, t
    z = an[an.anomaly_type == "zero_coord"]
    assert ((z.lat == 0) & (z.lon == 0)).all()
    sp = an[an.anomaly_type == "speed_spike"]
    assert (haversine_np(sp.lat, sp.lon, sp.true_lat, sp.true_lon) > 4500).all()
    ss = an[an.anomaly_type == "soc_spike"]
    assert ((ss.soc_pct - ss.true_soc).abs() >= 14).all()
    assert (an[an.anomaly_type == "exact_duplicate"].copies == 2).all()
    # the truth table has exactly these rows
    assert tables.read(spark, fleet_cfg, "truth.anomalies").count() == len(an)


def test_energy_consistent_with_soc(spark, fleet_cfg):
    """Per trip, the true SOC drop equals battery energy / capacity (same physics the SOC comes from)."""
    trips = tables.read(spark, fleet_cfg, "truth.trips").join(tables.read(spark, fleet_cfg, "truth.vehicles").select("vehicle_id", "battery_kwh", "model"), "vehicle_id").toPandas()
    drop_kwh = (trips.soc_start - trips.soc_end) / 100 * trips.battery_kwh
    ok = trips[trips.energy_kwh > 0.05]
    rel = ((drop_kwh[ok.index] - ok.energy_kwh) / ok.energy_kwh).abs()
    print(f"trips {len(trips)}, median |rel err| {rel.median():.4f}")
    assert rel.median() < 0.02
    wh_km = (trips.energy_kwh / trips.distance_km * 1000).groupby(trips.model).median()
    print(wh_km.to_string())
    assert 8 < wh_km["Ather 450X"] < 40 and 80 < wh_km["Tata Nexon EV"] < 220


def test_odometer_tracks_distance(points):
    per_vehicle = points.where(F.col("anomaly_type").isNull()).groupBy("vehicle_id").agg((F.max("odometer_km") - F.min("odometer_km")).alias("odo"), F.sum("distance_km").alias("dist")).toPandas()
    rel = ((per_vehicle.odo - per_vehicle.dist) / per_vehicle.dist).abs()
    assert (rel < 0.01).mean() > 0.8  # a few vehicles have a deliberately stuck odometer


def test_raw_files_and_network_consistency(spark, fleet_cfg):
    from common.io.landing import default_inputs

    inp = default_inputs(fleet_cfg)
    raw = spark.read.parquet(inp.telematics[0].path)
    points_rows = tables.read(spark, fleet_cfg, "truth.points").agg(F.sum("copies")).first()[0]
    assert raw.count() == points_rows
    sessions = spark.read.json(inp.charging_sessions[0].path)
    status = spark.read.option("header", True).csv(inp.charger_status[0].path)
    assert set(r.status for r in status.select("status").distinct().collect()) <= {
        "Available",
        "Preparing",
        "Charging",
        "SuspendedEVSE",
        "SuspendedEV",
        "Finishing",
        "Reserved",
        "Unavailable",
        "Faulted",
    }
    # every successful fleet charge at a station has a session for that vehicle
    fleet = tables.read(spark, fleet_cfg, "truth.charging_events").where("success and site_id like 'ST%'")
    matched = fleet.join(sessions.where("vehicle_id is not null").select(F.col("session_id").alias("charge_id")), "charge_id")
    assert matched.count() == fleet.count() > 0
    # models in the vehicles file are known
    vehicles = spark.read.option("header", True).csv(inp.vehicles[0].path).toPandas()
    assert set(vehicles.model) <= set(MODEL_BY_NAME)


@pytest.mark.parametrize("region", ["delhi_ncr", "nairobi", "london"])
def test_true_paths_stay_inside_the_region_operating_area(region):
    """Only the injected outside_area anomalies may leave the area cleaning checks against."""
    import shapely
    from shapely import wkt

    from common.core.regions import REGIONS, read_area_wkt

    w = build_world(GeneratorConfig(vehicles=8, days=3, seed=5, region=region))
    area = wkt.loads(read_area_wkt(REGIONS[region].area_file))
    for i in range(len(w.vehicles)):
        df = VehicleSim(w.vehicles.iloc[i].copy(), w).run()
        inside = shapely.contains_xy(area, df.true_lon.to_numpy(), df.true_lat.to_numpy())
        assert inside.all(), f"{region} {w.vehicles.vehicle_id.iloc[i]}: {int((~inside).sum())} true points outside the area"


def test_device_modes_change_what_is_sent_not_what_happened():
    """Same vehicle, same trace: the truth sums are equal across modes; ignition-only devices send
    key-off/key-on and sparse heartbeats while parked, bursty ones 1 Hz bursts."""
    modes = {}
    for mode in ("continuous", "ignition_only", "bursty"):
        w = build_world(GeneratorConfig(vehicles=3, days=4, seed=9, device_modes={mode: 1.0}))
        v = w.vehicles.iloc[0].copy()
        modes[mode] = (v, VehicleSim(v, w).run())
    true_rows = {m: df[df.anomaly_type.ne("near_duplicate")] for m, (_, df) in modes.items()}  # as truth tables read them
    dist = {m: df.distance_km.sum() for m, df in true_rows.items()}
    energy = {m: df.energy_kwh.sum() for m, df in true_rows.items()}
    assert dist["bursty"] == pytest.approx(dist["continuous"], rel=1e-9) and energy["bursty"] == pytest.approx(energy["continuous"], rel=1e-9)
    assert dist["ignition_only"] == pytest.approx(dist["continuous"], rel=1e-12)
    v, ign = modes["ignition_only"]
    sent = ign[ign.copies > 0].sort_values("ts")
    parked = (sent.state != "moving").to_numpy()
    gaps = sent.ts.diff().dt.total_seconds().to_numpy()
    both_parked = parked[1:] & parked[:-1]
    # heartbeats at most one parked step (5 min) after each multiple of the device's heartbeat
    assert gaps[1:][both_parked].max() <= v.heartbeat_s + 310 and (ign.copies == 0).sum() > 0
    _, bursty = modes["bursty"]
    moving = bursty[(bursty.copies > 0) & (bursty.state == "moving")].sort_values("ts").ts.diff().dt.total_seconds()
    assert (moving == 1).mean() > 0.1

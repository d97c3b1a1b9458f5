"""SOC-drop and energy-per-km models: feature/label rules, registry gate, accuracy on the generated
fleet against baselines and truth, MLflow contents, batch scoring, online serving, real Twizy log.

Every test prints the scores it asserts (run with -s to see them). The thresholds are the
modelling issue's acceptance targets: trip energy MAPE <= 6 %, SOC MAE <= 0.6 x persistence
(measured 0.578 on this fleet with driver fits, 0.568 with xgboost.spark) and ROC-AUC >= 0.9 (measured 0.906); see docs/MODELS.md.
"""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
import time
import urllib.request
from datetime import date, datetime, timezone
from types import SimpleNamespace

import numpy as np
import pytest
from pyspark.sql import functions as F

from common.core.config import SocModelConfig, load_config

SOC_MAE_VS_PERSISTENCE_MAX = 0.6  # the target (measured 0.578 with driver fits, 0.568 with xgboost.spark; 0.588 before the trip-direction features)
SOC_GROUP_MAE_VS_PERSISTENCE_MAX = 0.77  # on 6 vehicles never seen in training (measured 0.71)
SOC_ROC_AUC_MIN = 0.9  # the target (measured 0.906; 0.897 before the trip-direction features)


# ---------------------------------------------------------------------------------------------
# Pure rules (tiny inline frames)
# ---------------------------------------------------------------------------------------------
def test_soc_labels_horizon_staleness_and_charging(spark):
    """Label = SOC now - last SOC in [t+50, t+60] min; charging or an SOC rise in the horizon -> no label."""
    from common.ml.features import SOC_EVENT, SOC_LABEL, soc_labels

    rows = [
        # vehicle, minute, soc, charging
        ("A", 0, 80.0, False),
        ("A", 30, 75.0, False),
        ("A", 60, 70.0, False),  # 10-point drop -> event
        ("B", 0, 60.0, False),
        ("B", 45, 58.0, False),  # nothing in [50, 60] -> no label
        ("C", 0, 50.0, False),
        ("C", 20, 52.0, True),
        ("C", 60, 55.0, False),  # charging inside -> no label
        ("D", 0, 50.0, False),
        ("D", 55, 49.0, False),  # reading 5 min early is fine -> 1 point
        ("E", 0, 40.0, False),
        ("E", 30, 47.0, False),
        ("E", 60, 46.0, False),  # unobserved charge (+7) -> no label
    ]
    df = spark.createDataFrame([(v, m * 60, soc, soc, ch) for v, m, soc, ch in rows], "vehicle_id string, _t long, soc_pct double, soc_max_pct double, charging boolean")
    cfg = SocModelConfig(horizon_min=60, label_max_staleness_min=10, drop_threshold_pct=10)
    got = {r["vehicle_id"]: (r[SOC_LABEL], r[SOC_EVENT]) for r in soc_labels(df, cfg).where("_t = 0").collect()}
    assert got == {"A": (10.0, 1), "B": (None, None), "C": (None, None), "D": (1.0, 0), "E": (None, None)}


def test_destination_features_use_heading_and_earlier_days_only(spark):
    """Usual places ahead of the heading give the distance left; places behind, places first
    reached today and a vehicle without heading give nothing."""
    from common.ml.features import destination_features
    from common.synthetic.generator import offset_m

    def at(north_m: float, east_m: float) -> tuple[float, float]:
        return tuple(float(x) for x in offset_m(lat0, lon0, north_m, east_m))

    lat0, lon0 = 48.85, 2.35
    east_3km, west_2km, north_5km = at(0, 3000), at(0, -2000), at(5000, 0)
    moved = at(0, -600)  # 3 min ago the vehicle was 600 m west: heading east
    day = date(2026, 3, 10)
    trips = spark.createDataFrame(
        [  # vehicle, trip end (UTC), km, end lat, end lon
            ("A", datetime(2026, 3, 8, 9), 4.0, *east_3km),
            ("A", datetime(2026, 3, 9, 9), 6.0, *east_3km),
            ("A", datetime(2026, 3, 9, 12), 2.0, *west_2km),
            ("A", datetime(2026, 3, 10, 7), 8.0, *north_5km),  # today: not history yet
        ],
        "vehicle_id string, end_ts timestamp, distance_km double, end_lat double, end_lon double",
    ).withColumn("timezone", F.lit("UTC"))
    t_now = int(datetime(2026, 3, 10, 10, tzinfo=timezone.utc).timestamp())
    rows = spark.createDataFrame(
        [
            ("A", day, t_now - 180, *moved, 0.0),
            ("A", day, t_now, lat0, lon0, 0.6),
            ("B", day, t_now, lat0, lon0, 0.0),  # no trips at all
        ],
        "vehicle_id string, local_date date, _t long, lat double, lon double, km_since_parked double",
    ).select(
        "*",
        F.lit(0.5).alias("vehicle_hist_soc_pct_per_km"),
        F.struct(F.lit(lat0).alias("lat"), F.lit(lon0 - 0.1).alias("lon")).alias("_day_start"),
    )
    got = {r["vehicle_id"]: r for r in destination_features(rows, trips).where(F.col("_t") == t_now).collect()}
    a, b = got["A"], got["B"]
    assert a["vehicle_hist_trip_km"] == pytest.approx(4.0)  # (4 + 6 + 2) / 3; today's 8 km trip excluded
    assert a["vehicle_hist_trips_per_day"] == pytest.approx(1.5)  # 3 trips over 2 days with trips
    assert a["trip_km_left_expected"] == pytest.approx(3.4)
    assert a["dest_ahead_km"] == pytest.approx(3.0, rel=0.01)  # only the eastern place is ahead
    assert a["dest_ahead_min_km"] == pytest.approx(3.0, rel=0.01)
    assert a["dest_ahead_share"] == pytest.approx(2 / 3)
    assert a["dest_best_cos"] == pytest.approx(1.0, abs=1e-3)
    assert a["dest_ahead_soc_pct"] == pytest.approx(1.5, rel=0.01)
    assert a["places_mean_dist_km"] == pytest.approx((2 * 3 + 2) / 3, rel=0.01)
    assert a["places_min_dist_km"] == pytest.approx(2.0, rel=0.01)
    assert a["day_start_cos"] == pytest.approx(-1.0, abs=1e-3)  # the day started behind (west)
    assert a["day_start_ahead_km"] is None
    assert all(b[c] is None for c in ("vehicle_hist_trip_km", "dest_ahead_km", "places_mean_dist_km", "dest_best_cos"))


def test_trip_direction_features_from_the_trips_start_and_fleet_places_of_earlier_days(spark):
    """Direction = trip start -> now; fleet places ahead of it within +-35 deg count, places behind,
    places first reached today and rows not on a trip (or not yet displaced) give nothing."""
    from common.ml.features import trip_direction_features
    from common.synthetic.generator import offset_m

    def at(north_m: float, east_m: float) -> tuple[float, float]:
        return tuple(float(x) for x in offset_m(lat0, lon0, north_m, east_m))

    lat0, lon0 = 48.85, 2.35
    east_3km, west_2km, east_5km, now_1km_east = at(0, 3000), at(0, -2000), at(0, 5000), at(0, 1000)
    day = date(2026, 3, 10)
    trips = spark.createDataFrame(
        [  # trip end (UTC), end lat, end lon -- any vehicle: these are the fleet's places
            (datetime(2026, 3, 8, 9), *east_3km),
            (datetime(2026, 3, 9, 9), *east_3km),
            (datetime(2026, 3, 9, 12), *west_2km),
            (datetime(2026, 3, 10, 7), *east_5km),  # today: not history yet
        ],
        "end_ts timestamp, end_lat double, end_lon double",
    ).withColumn("timezone", F.lit("UTC"))
    start = F.struct(F.lit(lat0).alias("lat"), F.lit(lon0).alias("lon"))
    rows = spark.createDataFrame(
        [  # vehicle, position, km and minutes since parked
            ("A", *now_1km_east, 2.0, 10.0),  # on a trip, 1 km east of where it parked after 2 km
            ("B", *now_1km_east, 0.0, 1440.0),  # not on a trip
            ("C", *at(0, 100), 0.5, 3.0),  # on a trip, only 100 m from its start: no direction yet
        ],
        "vehicle_id string, lat double, lon double, km_since_parked double, minutes_since_parked double",
    ).select("*", F.lit(day).alias("local_date"), F.lit(0.5).alias("vehicle_hist_soc_pct_per_km"), start.alias("_trip_start"))
    got = {r["vehicle_id"]: r for r in trip_direction_features(rows, trips).collect()}
    a, b, c = got["A"], got["B"], got["C"]
    assert a["trip_disp_km"] == pytest.approx(1.0, rel=0.01)
    assert a["trip_straightness"] == pytest.approx(0.5, rel=0.01)
    assert a["tripdir_fleet_mean_km"] == pytest.approx(2.0, rel=0.01)  # only the eastern place, 2 km ahead
    assert a["tripdir_fleet_p90_km"] == pytest.approx(2.0, rel=0.01)
    assert a["tripdir_fleet_share"] == pytest.approx(2 / 3)
    assert a["tripdir_fleet_soc_pct"] == pytest.approx(1.0, rel=0.01)
    assert all(b[k] is None for k in ("trip_disp_km", "trip_straightness", "tripdir_fleet_mean_km", "tripdir_fleet_share"))
    assert c["trip_disp_km"] == pytest.approx(0.1, rel=0.02)
    assert all(c[k] is None for k in ("tripdir_fleet_mean_km", "tripdir_fleet_p90_km", "tripdir_fleet_share"))
    assert trip_direction_features(rows, None).where("vehicle_id = 'A'").first()["tripdir_fleet_mean_km"] is None


def test_persistence_baseline_extrapolates_discharge_only(spark):
    from common.ml.features import persistence_drop

    df = spark.createDataFrame([(-0.2, 80.0), (0.1, 50.0), (-0.5, 12.0), (None, 40.0)], "slope double, soc_pct double")
    got = [r[0] for r in df.select(persistence_drop("slope", 60)).collect()]
    assert got == pytest.approx([12.0, 0.0, 12.0, 0.0])  # rising -> 0; capped at the SOC left; no slope -> 0


def test_physics_leg_energy_matches_the_generators_model(spark):
    """The physics baseline with conf parameters is the generator's longitudinal model (efficiency factor 1)."""
    from common.ml.features import physics_leg_kwh, physics_params_frame
    from common.synthetic.generator import MODEL_BY_NAME, VehicleSim

    cfg = load_config("test")
    model = "Tata Nexon EV"
    v = np.array([8.0, 10.0, 0.0, 12.5])
    v_prev = np.array([6.0, 10.0, 5.0, 12.5])
    dt = np.array([40.0, 55.0, 30.0, 60.0])
    ds = 0.5 * (v + v_prev) * dt
    dz = np.array([2.0, -3.0, 0.0, 9.0])
    temp = np.array([30.0, 12.0, 21.0, 35.0])
    sim = SimpleNamespace(m=MODEL_BY_NAME[model], v=SimpleNamespace(efficiency_factor=1.0))
    expected = VehicleSim.energy_kwh(sim, v, v_prev, dt, ds, dz, temp)
    legs = spark.createDataFrame(
        [(i, float(a * 3.6), float(b * 3.6), float(c), float(z), 0.0, float(t), model) for i, (a, b, c, z, t) in enumerate(zip(v, v_prev, dt, dz, temp))],
        "i int, speed_est_kmh double, prev_speed_kmh double, leg_s double, alt_smooth_m double, prev_alt_smooth_m double, ambient_temp_c double, model string",
    )
    params = physics_params_frame(spark, cfg.ml.energy.physics)
    joined = legs.join(params, F.col("model") == F.col("phys_model")).orderBy("i")
    got = [r[0] for r in joined.select(physics_leg_kwh()).collect()]
    assert got == pytest.approx(list(expected), rel=1e-9)


def test_energy_ratio_target_base_weight_and_cold_start(spark):
    """The energy model's target: kWh/km over physics x the vehicle's history ratio (physics without
    history, the fleet's kWh/km without physics), weighted km x base²; a vehicle without history is
    predicted as physics exactly (hand-computed values)."""
    from common.ml.features import ENERGY_RATIO_LABEL, ENERGY_RATIO_WEIGHT, energy_from_ratio, with_energy_ratio_label

    rows = spark.createDataFrame(
        [
            ("hist", 2.0, 0.10, 1.2, 0.12, 0.15),  # base 0.12
            ("new", 1.0, 0.10, None, None, 0.08),  # no history: base = physics
            ("nophys", 1.0, None, None, None, 0.30),  # no physics: base = fleet 0.2
            ("downhill", 1.0, -0.02, 1.1, -0.022, 0.01),  # base <= 0: no label, the base itself is the forecast
        ],
        "id string, distance_km double, physics_kwh_per_km double, vehicle_physics_ratio double, physics_x_ratio_kwh_per_km double, kwh_per_km double",
    )
    out = {r["id"]: r for r in with_energy_ratio_label(rows, 0.2).withColumn("pred", energy_from_ratio(F.lit(1.5), 0.2)).collect()}
    assert out["hist"][ENERGY_RATIO_LABEL] == pytest.approx(0.15 / 0.12) and out["hist"][ENERGY_RATIO_WEIGHT] == pytest.approx(2.0 * 0.12**2)
    assert out["new"][ENERGY_RATIO_LABEL] == pytest.approx(0.8) and out["nophys"][ENERGY_RATIO_LABEL] == pytest.approx(1.5)
    assert out["downhill"][ENERGY_RATIO_LABEL] is None and out["downhill"][ENERGY_RATIO_WEIGHT] == 0.0
    assert out["hist"]["pred"] == pytest.approx(0.12 * 1.5) and out["nophys"]["pred"] == pytest.approx(0.2 * 1.5)
    assert out["new"]["pred"] == pytest.approx(0.10)  # cold start: physics, the model's ratio is not used
    assert out["downhill"]["pred"] == pytest.approx(-0.022)  # regeneration: no learned ratio applies


def test_time_split_roles_keep_a_gap_before_validation_and_test(spark):
    from common.ml.evaluate import time_split

    days = spark.createDataFrame([(date(2024, 3, d), 1_709_500_000 + 86_400 * i) for i, d in enumerate(range(4, 11))], "local_date date, first_s long")
    split = time_split(days, test_days=2, gap_min=60)
    assert split.test_dates == ["2024-03-09", "2024-03-10"] and split.valid_date == "2024-03-08"
    t0, v0 = split.test_start_s, split.valid_start_s
    rows = spark.createDataFrame(
        [
            (t0, t0 + 3600, "test"),
            (t0 - 3600, t0, None),  # label ends inside the gap before the test window
            (t0 - 7300, t0 - 3700, "valid"),
            (v0 - 7200, v0 - 3600, "train"),
            (v0 - 3000, v0 + 600, None),
        ],
        "s long, e long, expected string",
    )
    got = rows.select("expected", split.role(F.col("s"), F.col("e")).alias("role")).collect()
    assert [r["role"] for r in got] == [r["expected"] for r in got]


def test_holdout_vehicles_is_seeded_and_order_independent():
    from common.ml.features import holdout_vehicles

    ids = [f"V{i:05d}" for i in range(20)]
    a = holdout_vehicles(ids, 0.25, 7)
    assert len(a) == 5 and a == holdout_vehicles(list(reversed(ids)), 0.25, 7)
    assert a != holdout_vehicles(ids, 0.25, 8)


def _xgb_rows(spark, n_per_vehicle: int = 300):
    rng = np.random.default_rng(3)
    rows = []
    for v in ("V1", "V2", "V3"):
        for t in range(n_per_vehicle):
            x1, x2 = float(rng.uniform(0, 10)), float(rng.normal())
            x3 = None if t % 17 == 0 else float(rng.uniform(-1, 1))  # nulls are XGBoost 'missing'
            y = 2.0 * x1 + 3.0 * x2 + (0.0 if x3 is None else 5.0 * x3) + float(rng.normal(0, 0.5))
            rows.append((v, t, x1, x2, x3, y, float(rng.uniform(0.5, 2.0)), t >= n_per_vehicle - 40))
    return spark.createDataFrame(rows, "vehicle_id string, _t int, x1 double, x2 double, x3 double, y double, w double, is_valid boolean")


def test_small_fits_run_in_the_driver_as_the_same_booster_xgboost_would_fit(spark):
    """Below ml.local_fit_max_rows the fit is single-process XGBoost on the rows in their fixed
    order: the booster equals one fitted directly with xgboost's scikit-learn API on a pandas copy
    (expected values from xgboost alone); above it the same call runs xgboost.spark, whose
    predictions agree with the driver's within the sketch differences of 2 workers."""
    import xgboost

    from common.core.config import XgbParams
    from common.ml.train import fit_xgb, predict, xgb_kwargs

    rows = _xgb_rows(spark)
    params = XgbParams(n_estimators=40, max_depth=4)
    feats = ["x1", "x2", "x3"]
    local = fit_xgb(rows, feats, "y", params, 2, 5, weight_col="w", validation_col="is_valid", order_cols=("vehicle_id", "_t"), local_max_rows=10_000)
    assert local.where == "driver" and (local.train_rows, local.valid_rows) == (780, 120)
    assert len(local.evals_result["train"]["mae"]) == len(local.evals_result["validation"]["mae"]) == 40

    threads = spark.sparkContext.defaultParallelism  # the local master's slots (driver_threads)
    pdf = rows.withColumn("_h", F.xxhash64("vehicle_id", "_t")).toPandas().sort_values(["_h", "vehicle_id", "_t"], kind="stable")
    tr, va = pdf[~pdf.is_valid], pdf[pdf.is_valid]
    ref = xgboost.XGBRegressor(**xgb_kwargs(params, 5), eval_metric="mae", n_jobs=threads)
    ref.fit(tr[feats], tr["y"], sample_weight=tr["w"], eval_set=[(tr[feats], tr["y"]), (va[feats], va["y"])], sample_weight_eval_set=[tr["w"], va["w"]], verbose=False)
    got = predict(local, rows, out="pred").orderBy("vehicle_id", "_t").toPandas()
    expected = ref.predict(pdf.sort_values(["vehicle_id", "_t"])[feats])
    np.testing.assert_allclose(got["pred"].to_numpy(), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(local.evals_result["validation"]["mae"], ref.evals_result()["validation_1"]["mae"], rtol=1e-6)

    # the classifier: binary logistic objective, P(class 1) as xgboost's own predict_proba gives it
    labelled = rows.withColumn("event", (F.col("y") > 10).cast("int"))
    clf = fit_xgb(labelled, feats, "event", params, 2, 5, classification=True, validation_col="is_valid", order_cols=("vehicle_id", "_t"), local_max_rows=10_000)
    pdf["event"] = (pdf["y"] > 10).astype(int)
    tr = pdf[~pdf.is_valid]
    ref_clf = xgboost.XGBClassifier(**xgb_kwargs(params, 5), eval_metric="logloss", n_jobs=threads).fit(tr[feats], tr["event"])
    prob = predict(clf, labelled, classification=True, out="prob").orderBy("vehicle_id", "_t").toPandas()["prob"].to_numpy()
    np.testing.assert_allclose(prob, ref_clf.predict_proba(pdf.sort_values(["vehicle_id", "_t"])[feats])[:, 1], rtol=1e-5, atol=1e-6)

    spread = fit_xgb(rows, feats, "y", params, 2, 5, weight_col="w", validation_col="is_valid", order_cols=("vehicle_id", "_t"), local_max_rows=0)
    assert spread.where == "xgboost.spark"
    dist = predict(spread, rows, out="pred").orderBy("vehicle_id", "_t").toPandas()["pred"].to_numpy()
    assert np.mean(np.abs(dist - got["pred"].to_numpy())) < 0.1 * pdf["y"].std()


def test_registry_gate_promotes_only_a_better_model(tmp_path):
    """Champion moves for a model that beats baselines and champion; others are tagged rejected with a reason."""
    from mlflow.tracking import MlflowClient

    from common.ml import tracking

    uri = f"sqlite:///{tmp_path}/gate.db"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    client.create_registered_model("m")
    src = tmp_path / "artifact"
    src.mkdir()
    versions = [client.create_model_version("m", str(src)).version for _ in range(4)]

    first = tracking.promote_if_better(client, "m", versions[0], "champion", "mae", 1.0, False, {"persistence": 2.0}, None, None)
    assert first.promoted and client.get_model_version_by_alias("m", "champion").version == versions[0]
    worse_than_baseline = tracking.promote_if_better(client, "m", versions[1], "champion", "mae", 2.5, False, {"persistence": 2.0}, 1.0, versions[0])
    tie = tracking.promote_if_better(client, "m", versions[2], "champion", "mae", 1.0, False, {"persistence": 2.0}, 1.0, versions[0])
    better = tracking.promote_if_better(client, "m", versions[3], "champion", "mae", 0.9, False, {"persistence": 2.0}, 1.0, versions[0])
    assert not worse_than_baseline.promoted and "baseline" in worse_than_baseline.reason
    assert not tie.promoted and "does not beat champion" in tie.reason
    assert better.promoted and client.get_model_version_by_alias("m", "champion").version == versions[3]
    tags = client.get_model_version("m", versions[1]).tags
    assert tags["challenger_status"] == "rejected" and "persistence" in tags["gate_reason"]
    assert client.get_model_version("m", versions[0]).tags["challenger_status"].startswith("retired")


def test_registry_gate_refuses_a_classifier_a_rate_lookup_beats_on_pr_auc_or_brier(tmp_path):
    """Issue 19's case: ROC-AUC 0.96 beats every baseline, but the per-vehicle rate has the better
    PR-AUC (0.41 vs 0.07) and Brier score (0.0035 vs 0.0037): refused, the figures are tags."""
    from mlflow.tracking import MlflowClient

    from common.ml import tracking

    uri = f"sqlite:///{tmp_path}/gate.db"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    client.create_registered_model("c")
    src = tmp_path / "artifact"
    src.mkdir()
    v1, v2 = (client.create_model_version("c", str(src)).version for _ in range(2))
    roc = {"persistence": 0.78, "vehicle_rate": 0.70}
    weak = (tracking.GateCheck("test_pr_auc", 0.07, True, {"persistence": 0.05, "vehicle_rate": 0.41}), tracking.GateCheck("test_brier", 0.0037, False, {"vehicle_rate": 0.0035}))
    refused = tracking.promote_if_better(client, "c", v1, "champion", "test_roc_auc", 0.96, True, roc, None, None, checks=weak)
    assert not refused.promoted and tracking.current_champion(client, "c", "champion") is None
    assert "vehicle_rate test_pr_auc=0.41" in refused.reason and "vehicle_rate test_brier=0.0035" in refused.reason
    assert "persistence test_pr_auc" not in refused.reason  # only the baselines that won are named
    tags = client.get_model_version("c", v1).tags
    assert tags["challenger_status"] == "rejected" and tags["gate_checks"].startswith("test_pr_auc=0.07 [persistence=0.05, vehicle_rate=0.41]")
    # a NaN baseline (an AUC over one class) cannot be compared: skipped, not a loss
    strong = (
        tracking.GateCheck("test_pr_auc", 0.75, True, {"persistence": float("nan"), "vehicle_rate": 0.41}),
        tracking.GateCheck("test_brier", 0.11, False, {"persistence": None, "vehicle_rate": 0.18}),
    )
    assert tracking.promote_if_better(client, "c", v2, "champion", "test_roc_auc", 0.91, True, roc, None, None, checks=strong).promoted
    assert client.get_model_version("c", v2).tags["gate_baselines"] == "persistence=0.78, vehicle_rate=0.7"


# ---------------------------------------------------------------------------------------------
# Accuracy on the generated fleet (acceptance targets)
# ---------------------------------------------------------------------------------------------
def _show(title: str, metrics: dict, keys: list[str]) -> None:
    print(f"\n{title}")
    for k in keys:
        if k in metrics:
            print(f"  {k:<52} {metrics[k]:.4f}")


def test_soc_drop_regression_beats_persistence(trained):
    m = trained["soc_regressor"].metrics
    _show(
        "SOC drop 60 min ahead (points), test window",
        m,
        [
            "test_mae",
            "test_rmse",
            "test_r2",
            "baseline_persistence_test_mae",
            "baseline_persistence_test_rmse",
            "baseline_persistence_test_r2",
            "baseline_vehicle_mean_test_mae",
            "baseline_vehicle_mean_test_rmse",
            "baseline_vehicle_mean_test_r2",
            "test_mae_vs_persistence",
            "group_test_mae",
            "group_baseline_persistence_test_mae",
            "group_baseline_vehicle_mean_test_mae",
            "valid_mae",
            "test_n",
            "train_seconds",
        ],
    )
    assert m["test_mae"] <= SOC_MAE_VS_PERSISTENCE_MAX * m["baseline_persistence_test_mae"]
    assert m["test_mae"] < m["baseline_vehicle_mean_test_mae"]
    assert m["group_test_mae"] <= SOC_GROUP_MAE_VS_PERSISTENCE_MAX * m["group_baseline_persistence_test_mae"]  # vehicles never seen in training


def test_soc_drop_classifier_auc(trained):
    m = trained["soc_classifier"].metrics
    _show(
        "P(SOC drop >= 10 points in 60 min), test window",
        m,
        [
            "test_roc_auc",
            "test_pr_auc",
            "test_brier",
            "test_f1",
            "test_precision",
            "test_recall",
            "test_threshold",
            "test_base_rate",
            "baseline_persistence_test_roc_auc",
            "baseline_persistence_test_pr_auc",
            "baseline_persistence_test_brier",
            "baseline_persistence_test_f1",
            "baseline_vehicle_rate_test_roc_auc",
            "baseline_vehicle_rate_test_pr_auc",
            "baseline_vehicle_rate_test_brier",
            "baseline_vehicle_rate_test_f1",
            "train_seconds",
        ],
    )
    assert m["test_roc_auc"] >= SOC_ROC_AUC_MIN
    assert m["test_roc_auc"] > m["baseline_persistence_test_roc_auc"]
    assert m["test_brier"] < m["baseline_persistence_test_brier"]


def test_energy_trip_mape_against_truth(trained):
    m = trained["energy"].metrics
    _show(
        "Energy per trip, test window (truth = generator physics; observed = SOC x battery)",
        m,
        [
            "truth_test_trip_mape_pct",
            "truth_test_trip_mae_kwh",
            "truth_test_trip_median_ape_pct",
            "baseline_physics_truth_test_trip_mape_pct",
            "baseline_physics_truth_test_trip_mae_kwh",
            "baseline_vehicle_mean_truth_test_trip_mape_pct",
            "baseline_vehicle_mean_truth_test_trip_mae_kwh",
            "observed_soc_vs_truth_test_trip_mape_pct",
            "test_trip_wape_pct",
            "baseline_physics_test_trip_wape_pct",
            "baseline_vehicle_mean_test_trip_wape_pct",
            "test_segment_mae",
            "test_segment_rmse",
            "test_segment_r2",
            "baseline_physics_test_segment_mae",
            "baseline_vehicle_mean_test_segment_mae",
            "group_truth_test_trip_mape_pct",
            "group_baseline_physics_truth_test_trip_mape_pct",
            "group_baseline_vehicle_mean_truth_test_trip_mape_pct",
            "truth_test_trip_n",
            "train_seconds",
        ],
    )
    assert m["truth_test_trip_mape_pct"] <= 6.0
    assert m["truth_test_trip_mape_pct"] < m["baseline_physics_truth_test_trip_mape_pct"]
    assert m["truth_test_trip_mape_pct"] < m["baseline_vehicle_mean_truth_test_trip_mape_pct"]
    # issue 19: never worse than physics on vehicles the model never saw (was 11.8 % vs 5.4 % when fitted on kWh/km)
    assert m["group_truth_test_trip_mape_pct"] <= m["group_baseline_physics_truth_test_trip_mape_pct"]


# ---------------------------------------------------------------------------------------------
# MLflow: run contents, registry, reproducibility
# ---------------------------------------------------------------------------------------------
def test_run_logs_params_metrics_baselines_versions_plots_and_model(spark, ml_cfg, trained):
    import mlflow
    from mlflow.tracking import MlflowClient

    from common.io import tables
    from common.ml import tracking

    tracking.configure(ml_cfg)
    client = MlflowClient()
    for key, plot in [("soc_regressor", "plots/residuals.png"), ("soc_classifier", "plots/calibration.png"), ("energy", "plots/residuals.png")]:
        o = trained[key]
        run = client.get_run(o.run_id)
        assert "table_version.silver.vehicle_minutely" in run.data.params and "table_version.silver.segments" in run.data.params
        assert run.data.params["num_workers"] == "2" and "split.test_dates" in run.data.params
        assert any(k.startswith("baseline_") for k in run.data.metrics)
        files = {f.path for f in client.list_artifacts(o.run_id, "plots")}
        assert {plot, "plots/feature_importance.png"} <= files
        assert "feature_importance.json" in {f.path for f in client.list_artifacts(o.run_id)}
        info = mlflow.models.get_model_info(f"models:/{o.registered_name}/{o.version}")
        assert info.signature is not None and "xgboost" in info.flavors
        assert info.saved_input_example_info is not None
        assert o.promoted, o.reason  # first run: no champion yet, beats the baselines
        assert str(client.get_model_version_by_alias(o.registered_name, "champion").version) == str(o.version)
        # lineage: the Delta inputs as MLflow datasets (path + version), the same versions as tags on the registered version
        datasets = {d.dataset.name: (json.loads(d.dataset.source), {t.key: t.value for t in d.tags}) for d in run.inputs.dataset_inputs}
        minutely = tables.version(spark, ml_cfg, "silver.vehicle_minutely")
        source, input_tags = datasets[f"silver.vehicle_minutely@v{minutely}"]
        assert source["path"] == ml_cfg.storage.path("silver.vehicle_minutely") and input_tags["delta_table_version"] == str(minutely)
        assert input_tags["mlflow.data.context"] == "training"
        mv = client.get_model_version(o.registered_name, o.version)
        assert mv.tags["input.silver.vehicle_minutely"] == f"v{minutely}" and mv.tags["gate_metric"]
        assert "Evaluated" in mv.description and "local days (time split)" in mv.description and "champion gate" in mv.description
        # the evaluation table artifact holds the run's test metrics, model and baselines, both evaluation sets
        local = client.download_artifacts(o.run_id, "evaluation/metrics.json", tracking.scratch_dir())
        with open(local) as fh:
            table = json.load(fh)
        ev = {(r[0], r[1], r[2], r[3]): r[4] for r in table["data"]}
        metric = {"soc_regressor": "mae", "soc_classifier": "roc_auc", "energy": "trip_wape_pct"}[key]
        assert ev[("time split", "model", "observed", metric)] == pytest.approx(run.data.metrics[f"test_{metric}"])
        assert {p for (_, p, _, _) in ev} >= {"model", "vehicle_mean" if key != "soc_classifier" else "vehicle_rate"}
        if key != "soc_classifier":
            assert any(s == "unseen vehicles" for (s, _, _, _) in ev)
        # the drift reference: every input profiled on the training rows, and the prediction
        profile = info.metadata["monitoring_reference"]
        assert set(profile["columns"]) == set(info.signature.inputs.input_names()) | {"prediction"} and profile["rows"] > 0


@pytest.fixture(scope="module")
def scored(spark, ml_cfg, trained):
    """jobs/score.py with the champions `trained` registered: its StageReport."""
    from jobs.score import run_score

    return run_score(spark, ml_cfg)


def test_score_writes_predictions_with_champion_versions(spark, ml_cfg, trained, scored):
    from common.io import tables
    from jobs.score import PRED_ENERGY, PRED_SOC

    report = scored
    soc = tables.read(spark, ml_cfg, PRED_SOC)
    energy = tables.read(spark, ml_cfg, PRED_ENERGY)
    s = soc.agg(
        F.count(F.lit(1)).alias("n"),
        F.sum(F.col("pred_soc_drop_pct").isNull().cast("int")).alias("null_pred"),
        F.collect_set("soc_model_version").alias("v"),
        F.collect_set("event_model_version").alias("ev"),
        F.min("prob_drop_event").alias("pmin"),
        F.max("prob_drop_event").alias("pmax"),
    ).first()
    e = energy.agg(F.count(F.lit(1)).alias("n"), F.collect_set("model_version").alias("v"), F.sum("pred_energy_kwh").alias("kwh")).first()
    minutely_rows = tables.read(spark, ml_cfg, "silver.vehicle_minutely").where("soc_mean_pct is not null").count()
    print(f"\nscore: {s['n']} vehicle-minutes, {e['n']} segments ({e['kwh']:.1f} kWh predicted) in {report.seconds}s")
    assert s["n"] == minutely_rows and s["null_pred"] == 0
    assert s["v"] == [trained["soc_regressor"].version] and s["ev"] == [trained["soc_classifier"].version]
    assert s["pmax"] > s["pmin"]  # the classifier separates minutes, it is not a constant
    assert e["n"] == tables.read(spark, ml_cfg, "silver.segments").count() and e["v"] == [trained["energy"].version]
    assert soc.select("soc_model_name").distinct().collect()[0][0] == ml_cfg.ml.soc.registered_model
    _check_monitoring(spark, ml_cfg, trained, energy)


def test_soc_metrics_recomputed_from_the_scored_predictions_with_sklearn(spark, ml_cfg, trained, scored):
    """Issue 19 item 1: the SOC models' test-window figures recomputed, not read back. Labels and
    baselines are rebuilt from silver.vehicle_minutely with numpy (tests/accuracy/model_reference.py,
    from the definitions in docs/MODELS.md), the predictions are batch scoring's
    (gold.predictions_soc_minutely), the metrics scikit-learn's. The targets hold on these figures,
    and the job's own figures match them (so batch scoring reproduces the tested predictions)."""
    import mlflow

    from common.io import tables
    from jobs.score import PRED_SOC
    from tests.accuracy import model_reference

    soc = ml_cfg.ml.soc
    t = F.col("minute_ts").cast("long").alias("t")  # epoch seconds: no session wall clock in pandas
    minutely = tables.read(spark, ml_cfg, "silver.vehicle_minutely").select("vehicle_id", t, "soc_mean_pct", "soc_max_pct", "charging").toPandas()  # bounded: test fleet
    pred = tables.read(spark, ml_cfg, PRED_SOC).select("vehicle_id", t, "pred_soc_drop_pct", "prob_drop_event").toPandas()  # bounded: test fleet
    reg, clf = trained["soc_regressor"], trained["soc_classifier"]
    start = mlflow.models.get_model_info(f"models:/{reg.registered_name}/{reg.version}").metadata["monitoring_reference"]["out_of_sample_from_s"]
    got = model_reference.scores(model_reference.reference_rows(minutely, soc.horizon_min, soc.label_max_staleness_min), pred, start, soc.horizon_min, soc.drop_threshold_pct)
    print("\nsklearn on gold.predictions_soc_minutely, test window: " + ", ".join(f"{k} {v:.4f}" for k, v in got.items()))
    # the evaluated minutes are the truth's: the same labelled rows as the job's test window
    assert got["n"] == reg.metrics["test_n"] == clf.metrics["test_n"]
    assert got["mae"] == pytest.approx(reg.metrics["test_mae"], rel=1e-6)
    assert got["persistence_mae"] == pytest.approx(reg.metrics["baseline_persistence_test_mae"], rel=1e-6)  # the same slope window as the gate's
    assert got["brier"] == pytest.approx(clf.metrics["test_brier"], rel=1e-6)
    assert got["roc_auc"] == pytest.approx(clf.metrics["test_roc_auc"], abs=1e-3)
    # the targets (issue 19 item 2), on the recomputed figures
    assert got["mae"] <= SOC_MAE_VS_PERSISTENCE_MAX * got["persistence_mae"] and got["mae"] < got["vehicle_mean_mae"]
    assert got["roc_auc"] >= SOC_ROC_AUC_MIN
    assert got["pr_auc"] > max(got["persistence_pr_auc"], got["vehicle_rate_pr_auc"])
    assert got["brier"] < min(got["persistence_brier"], got["vehicle_rate_brier"])


def test_energy_trip_mape_recomputed_from_the_scored_predictions(spark, ml_cfg, trained, scored):
    """Issue 19 item 1 for the energy model: trip MAPE against the generator's truth from batch
    scoring's gold.predictions_energy and truth.points with pandas (tests/accuracy/model_reference.py),
    on the champion's test window; the target holds and the job's figure matches."""
    import mlflow

    from common.io import tables
    from jobs.score import PRED_ENERGY
    from tests.accuracy import model_reference

    o = trained["energy"]
    start = mlflow.models.get_model_info(f"models:/{o.registered_name}/{o.version}").metadata["monitoring_reference"]["out_of_sample_from_s"]
    epoch = lambda c: F.col(c).cast("long")  # noqa: E731
    trips = (
        tables.read(spark, ml_cfg, "silver.trips").select("vehicle_id", "trip_id", epoch("start_ts").alias("start_s"), epoch("end_ts").alias("end_s"), "distance_km").toPandas()
    )  # bounded: test fleet
    segments = tables.read(spark, ml_cfg, PRED_ENERGY).select("trip_id", "distance_km", "pred_kwh_per_km", "physics_kwh_per_km").toPandas()  # bounded: test fleet
    truth = tables.read(spark, ml_cfg, "truth.points").select("vehicle_id", epoch("ts").alias("ts_s"), "energy_kwh", "anomaly_type").toPandas()  # bounded: test fleet
    got = model_reference.energy_trip_scores(trips, segments, truth, start, ml_cfg.ml.energy.min_eval_trip_km)
    print(f"\npandas on gold.predictions_energy, test window: {got}")
    assert got["n"] == o.metrics["truth_test_trip_n"]
    assert got["mape_pct"] == pytest.approx(o.metrics["truth_test_trip_mape_pct"], rel=1e-6)
    assert got["physics_mape_pct"] == pytest.approx(o.metrics["baseline_physics_truth_test_trip_mape_pct"], rel=1e-6)
    assert got["mape_pct"] <= 6.0 and got["mape_pct"] < got["physics_mape_pct"]


def _check_monitoring(spark, ml_cfg, trained, energy):
    """gold.model_monitoring after a full scoring run: every scored version has a PSI row per input and
    for its prediction, and realised errors; the energy model's figures recomputed here with numpy."""
    import mlflow

    from common.io import tables
    from jobs.score import MONITORING, run_score

    mon = tables.read(spark, ml_cfg, MONITORING).toPandas()  # bounded: ~60 rows per model version
    cfg = ml_cfg.ml.monitoring
    for key in ("soc_regressor", "soc_classifier", "energy"):
        o = trained[key]
        rows = mon[(mon.model_name == o.registered_name) & (mon.model_version == str(o.version))]
        inputs = mlflow.models.get_model_info(f"models:/{o.registered_name}/{o.version}").signature.inputs.input_names()
        assert set(rows[rows.kind == "feature_psi"].name) == set(inputs), key
        assert len(rows[rows.kind == "prediction_psi"]) == 1 and (rows.kind == "realised").any()
        print(f"\nmonitoring {key}: max feature PSI {rows[rows.kind == 'feature_psi'].value.max():.3f}, realised {rows[rows.kind == 'realised'][['name', 'value', 'reference']].values.tolist()}")
    # energy: the scored segments training could learn from (SOC label, >= min_segment_km) against the training profile
    o = trained["energy"]
    profile = mlflow.models.get_model_info(f"models:/{o.registered_name}/{o.version}").metadata["monitoring_reference"]
    # only the rows after the version's training data are monitored (its test window on)
    labelled = F.col("observed_kwh_per_km").isNotNull() & (F.col("distance_km") >= ml_cfg.ml.energy.min_segment_km)
    after = F.col("start_ts").cast("long") >= profile["out_of_sample_from_s"]
    seg = energy.where(labelled & after).select("distance_km", "pred_kwh_per_km", "observed_kwh_per_km").toPandas()  # bounded: test fleet
    rows = mon[(mon.model_name == o.registered_name) & (mon.model_version == str(o.version))].set_index(["kind", "name"])
    realised = rows.loc[("realised", "segment_mae")]
    assert realised["rows"] == len(seg) and realised["value"] == pytest.approx(float(np.mean(np.abs(seg.pred_kwh_per_km - seg.observed_kwh_per_km))), rel=1e-9)
    assert realised["reference"] == pytest.approx(trained["energy"].metrics["test_segment_mae"], rel=1e-9)
    for name, col in (("distance_km", "distance_km"), ("prediction", "pred_kwh_per_km")):
        ref = profile["columns"][name]
        counts = np.bincount(np.searchsorted(np.asarray(ref["edges"]), seg[col], side="right"), minlength=len(ref["edges"]) + 1).tolist() + [0]
        e = np.maximum(np.asarray(ref["shares"]), cfg.psi_floor)
        a = np.maximum(np.asarray(counts) / len(seg), cfg.psi_floor)
        e, a = e / e.sum(), a / a.sum()
        kind = "prediction_psi" if name == "prediction" else "feature_psi"
        assert rows.loc[(kind, name), "value"] == pytest.approx(float(np.sum((a - e) * np.log(a / e))), rel=1e-6, abs=1e-9), name
    # a rerun of one model's scoring replaces that model's rows of the window, and only those
    before = mon.groupby("model_name").size().to_dict()
    run_score(spark, ml_cfg, models=("energy",))
    after = tables.read(spark, ml_cfg, MONITORING).groupBy("model_name").count().toPandas().set_index("model_name")["count"].to_dict()
    assert after == before


def test_retrain_on_same_data_is_reproducible_and_not_promoted(spark, ml_cfg, trained):
    """Same data + seed -> same metrics; a challenger that only ties the champion is rejected with a reason."""
    from mlflow.tracking import MlflowClient

    from jobs.train import run_train

    first = trained["energy"]
    report = run_train(spark, ml_cfg, models=("energy",), run_name="test-train-2")
    second = report.outcomes[0]
    print(f"\nretrain: v{second.version} {'promoted' if second.promoted else 'rejected'}: {second.reason}")
    assert int(second.version) == int(first.version) + 1
    for k in ("test_trip_wape_pct", "truth_test_trip_mape_pct", "test_segment_mae"):
        assert second.metrics[k] == pytest.approx(first.metrics[k], rel=1e-9, abs=1e-12), k
    assert not second.promoted and "does not beat champion" in second.reason
    client = MlflowClient()
    tags = client.get_model_version(second.registered_name, second.version).tags
    assert tags["challenger_status"] == "rejected" and tags["gate_reason"] == second.reason
    assert str(client.get_model_version_by_alias(second.registered_name, "champion").version) == str(first.version)


# ---------------------------------------------------------------------------------------------
# Online: `mlflow models serve` for the champion, one real HTTP request
# ---------------------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_champion_answers_one_http_request(spark, ml_cfg, trained):
    import mlflow
    import xgboost as xgb

    from common.ml import tracking
    from jobs.train import energy_dataset

    tracking.configure(ml_cfg)
    name = ml_cfg.ml.energy.registered_model
    uri = f"models:/{name}@champion"
    features = mlflow.models.get_model_info(uri).signature.inputs.input_names()
    info = mlflow.models.get_model_info(uri)
    history = ["physics_kwh_per_km", "vehicle_physics_ratio", "physics_x_ratio_kwh_per_km"]
    full = (
        energy_dataset(spark, ml_cfg)
        .where("distance_km >= 0.9 AND vehicle_physics_ratio IS NOT NULL AND physics_x_ratio_kwh_per_km > 0")
        .orderBy("segment_id")
        .select(*features, *[c for c in history if c not in features])
        .limit(1)
        .toPandas()
        .astype("float64")
    )
    row = full[features]
    port = _free_port()
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking.tracking_uri(ml_cfg), "MLFLOW_REGISTRY_URI": tracking.registry_uri(ml_cfg)}
    # mlflow execs `uvicorn` through a shell: the venv's bin must be on PATH (as `make serve-model` does)
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    cmd = [os.path.join(os.path.dirname(sys.executable), "mlflow"), "models", "serve", "-m", uri, "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port), "--workers", "1"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.time() + 240
        while True:
            if proc.poll() is not None:
                pytest.fail(f"mlflow models serve exited {proc.returncode}: {proc.stdout.read()[-3000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.time() > deadline:
                pytest.fail("mlflow models serve did not answer /ping within 240 s")
            time.sleep(1)
        body = json.dumps({"dataframe_split": json.loads(row.to_json(orient="split", index=False))}).encode()
        req = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", data=body, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as r:
            answer = json.loads(r.read())
        served = float(answer["predictions"][0])
        local = float(mlflow.xgboost.load_model(uri).predict(xgb.DMatrix(row))[0])
        # the energy booster answers the ratio to the energy base (physics x the vehicle's history ratio; docs/MODELS.md section 7)
        assert info.metadata["target"] == "ratio_to_energy_base"
        kwh_per_km = served * float(full["physics_x_ratio_kwh_per_km"].iloc[0])
        print(f"\nserve: POST /invocations -> {answer} (booster: {local:.5f}; x energy base -> {kwh_per_km:.4f} kWh/km)")
        assert served == pytest.approx(local, rel=1e-5) and 0 < kwh_per_km < 1.0
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


# ---------------------------------------------------------------------------------------------
# Real data: RSK Twizy log (one vehicle): the energy and SOC models with a time split, then scoring
# ---------------------------------------------------------------------------------------------
@pytest.mark.realdata
@pytest.mark.timeout(2400)
def test_twizy_models_time_split_and_scoring(spark, twizy_lakehouse):
    """Train and score on the Twizy pipeline's lakehouse (tests/conftest.py `twizy_lakehouse`:
    ingest of conf/datasets/twizy.yaml with its register line, clean, kpis, ...)."""
    from common.io import tables
    from common.io.cli import StageSkipped
    from jobs.score import MONITORING, run_score
    from jobs.train import run_train
    from tests.conftest import twizy_config

    root, _, _ = twizy_lakehouse
    cfg = twizy_config(root, "ml.energy.default_model=Renault Twizy")
    report = run_train(spark, cfg, run_name="twizy")
    outcomes = {o.key: o for o in report.outcomes}
    m = outcomes["energy"].metrics
    _show(
        "RSK Twizy (real, single vehicle): energy per trip on the last 2 days (observed = SOC x 6.1 kWh)",
        m,
        [
            "test_trip_mae_kwh",
            "test_trip_mape_pct",
            "test_trip_wape_pct",
            "test_trip_n",
            "baseline_vehicle_mean_test_trip_mae_kwh",
            "baseline_vehicle_mean_test_trip_mape_pct",
            "baseline_vehicle_mean_test_trip_wape_pct",
            "baseline_physics_test_trip_mae_kwh",
            "baseline_physics_test_trip_mape_pct",
            "test_segment_mae",
            "baseline_vehicle_mean_test_segment_mae",
            "train_seconds",
        ],
    )
    for o in report.outcomes:
        print(f"  gate {o.key}: v{o.version} {'champion' if o.promoted else 'rejected'}: {o.reason}")
    assert m["test_trip_n"] >= 1 and math.isfinite(m["test_trip_mape_pct"])
    # the SOC models on the same log: reported, not tuned to (one real vehicle); every skip says why
    skipped = [n for n in report.notes if n.startswith("skipped")]
    print("  " + ("; ".join(skipped) or "SOC models trained"))
    for key, keys in (
        ("soc_regressor", ["test_mae", "baseline_persistence_test_mae", "baseline_vehicle_mean_test_mae", "test_n"]),
        (
            "soc_classifier",
            ["test_roc_auc", "test_pr_auc", "test_brier", "baseline_persistence_test_roc_auc", "baseline_vehicle_rate_test_pr_auc", "baseline_vehicle_rate_test_brier", "test_base_rate"],
        ),
    ):
        if key in outcomes:
            _show(f"RSK Twizy: {key} on the last 2 days", outcomes[key].metrics, keys)
    assert "soc_regressor" in outcomes or any(n.startswith("skipped soc model") for n in skipped)
    assert "soc_classifier" in outcomes or any(n.startswith(("skipped soc model", "skipped soc classifier")) for n in skipped)
    # scoring with whatever the gate promoted writes predictions and gold.model_monitoring, or says why not
    try:
        scored = run_score(spark, cfg)
    except StageSkipped as exc:
        assert not any(o.promoted for o in report.outcomes), exc
        print(f"  score skipped: {exc}")
        return
    monitoring = tables.read(spark, cfg, MONITORING).toPandas()
    print("  score: " + "; ".join(scored.notes) + "\n" + monitoring[monitoring.kind == "realised"][["model_name", "name", "value", "reference", "rows"]].to_string(index=False))
    monitored = monitoring[monitoring.model_version != "none"]
    assert set(monitored.model_name) and set(monitored.model_name) <= {o.registered_name for o in report.outcomes if o.promoted}
    # a SOC model that was not scored (no champion) says so in one row instead of showing old figures
    not_scored = monitoring[monitoring.model_version == "none"]
    assert all(n.startswith("not scored:") for n in not_scored.note)
    if "soc_classifier" not in outcomes and "soc_regressor" in outcomes and outcomes["soc_regressor"].promoted:
        assert set(not_scored.model_name) == {cfg.ml.soc.registered_classifier}


def test_physics_baseline_says_where_it_is_the_vehicle_mean(spark):
    """A vehicle model missing from ml.energy.physics: the baseline there is the per-vehicle mean,
    and its name in the gate and the run's tag says so (issue 19: never a silent fallback)."""
    from common.ml.evaluate import physics_baseline_name, physics_coverage

    seg = spark.createDataFrame([("Leaf",), ("Leaf",), ("Nairobi Tuk",), (None,)], "model string")
    share, missing = physics_coverage(seg, ["Leaf", "Model 3"], None)
    assert share == 0.5 and missing == ["Nairobi Tuk", "unknown"]
    assert physics_baseline_name(share) == "physics+vehicle_mean (50 % per-vehicle mean)"
    assert physics_coverage(seg, ["Leaf"], "Leaf") == (0.75, ["Nairobi Tuk"])  # a null model takes default_model's
    assert physics_coverage(seg.where("model = 'Leaf'"), ["Leaf"], None) == (1.0, []) and physics_baseline_name(1.0) == "physics"
    assert physics_baseline_name(0.9996) == "physics+vehicle_mean (0.1 % per-vehicle mean)"  # never "0 %" while any falls back


def test_tracking_uris_of_remote_servers_pass_unchanged(tmp_path):
    """A SageMaker tracking server's ARN (no '://') is a server, not a folder to create."""
    from common.ml import tracking

    arn = "arn:aws:sagemaker:eu-west-1:123456789012:mlflow-tracking-server/evfa-mlflow"
    for uri in (arn, "https://mlflow.example.com", "databricks"):
        cfg = load_config("local", overrides=[f"mlflow.tracking_uri={uri}"])
        assert tracking.tracking_uri(cfg) == uri and tracking.registry_uri(cfg) == uri
    assert not (tracking.PROJECT_ROOT / arn).exists()

"""Next-day charging plan (gold.charging_plan, gold.charging_plan_vehicles): the MILP against a
brute force over integer schedules (ports binding, capacity binding), every infeasibility reason
from a hand-built case, the inputs (expected km, energy per km) against hand computations, and the
stage on the generated fleet (no registered model, no stations) re-checked in pandas.
"""

from __future__ import annotations

import itertools
from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest
from chispa import assert_approx_df_equality, assert_df_equality

from common.core.config import ChargingPlanConfig, PhysicsVehicleParams, TariffPeriod
from common.io import tables
from common.mobility import charging_plan as cp
from tests.conftest import declared_only

# Four one-hour slots 21:00-01:00, prices 1, 3, 2, 1 per kWh, lossless charger, SOC 0-100 %: with
# integer powers, needs and capacities the LP is a flow problem with an integral optimum, and the
# port binaries keep it so, so integer enumeration finds the true optimum.
SMALL = ChargingPlanConfig(
    slot_minutes=60,
    horizon_start_hour=21,
    duty_start_hour=1,
    charger_efficiency=1.0,
    soc_floor_pct=0,
    soc_max_pct=100,
    tariff=[TariffPeriod(start_hour=0, price_per_kwh=1), TariffPeriod(start_hour=22, price_per_kwh=3), TariffPeriod(start_hour=23, price_per_kwh=2)],
)


def site_rows(vehicles, ports: int, capacity_kw: float) -> pd.DataFrame:
    """(need kWh, charger kW, first slot, end slot) per vehicle -> solve_site input. SOC 0 and a battery of
    exactly the need: the room up to the maximum SOC equals the need, so every feasible schedule adds
    exactly the need, as the brute force enumerates."""
    return pd.DataFrame(
        [
            dict(
                group_id="S",
                vehicle_id=f"v{i}",
                battery_kwh=float(need),
                soc_now_pct=0.0,
                need_kwh=float(need),
                charger_kw=float(kw),
                first_slot=a,
                end_slot=b,
                site_ports=ports,
                site_capacity_kw=capacity_kw,
                reason_code=None,
            )
            for i, (need, kw, a, b) in enumerate(vehicles)
        ]
    )


def brute_force_cost(vehicles, ports: int, capacity_kw: float, prices: np.ndarray) -> float:
    """Minimum cost over every integer schedule meeting needs, power, windows, ports and capacity."""
    slots = len(prices)
    per_vehicle = []
    for need, kw, a, b in vehicles:
        ranges = [range(int(kw) + 1) if a <= t < b else range(1) for t in range(slots)]
        per_vehicle.append([s for s in itertools.product(*ranges) if sum(s) == need])
    best = np.inf
    for combo in itertools.product(*per_vehicle):
        load = np.sum(combo, axis=0)
        plugged = np.sum(np.array(combo) > 0, axis=0)
        if (load <= capacity_kw).all() and (plugged <= ports).all():
            best = min(best, float(np.sum(np.array(combo) * prices)))
    return best


@pytest.mark.parametrize(
    "vehicles, ports, capacity_kw",
    [
        ([(4, 3, 0, 4), (3, 3, 0, 4), (2, 3, 0, 4)], 1, 9.0),  # one port for three vehicles
        ([(4, 3, 0, 4), (3, 3, 1, 4), (2, 2, 0, 3)], 2, 9.0),  # two ports, different windows
        ([(5, 3, 0, 4), (4, 3, 0, 4), (3, 3, 0, 4)], 3, 4.0),  # the site's 4 kW binds, ports do not
        ([(4, 3, 0, 4), (4, 3, 0, 4), (3, 2, 0, 4)], 2, 4.0),  # both bind
    ],
)
def test_milp_cost_equals_the_brute_force_minimum(vehicles, ports, capacity_kw):
    prices = cp.slot_prices(SMALL)
    assert prices.tolist() == [1, 3, 2, 1]
    got = cp.solve_site(site_rows(vehicles, ports, capacity_kw), SMALL)
    expected = brute_force_cost(vehicles, ports, capacity_kw, prices)
    print(f"ports {ports}, capacity {capacity_kw} kW: MILP {got.cost.sum():.4f}, brute force {expected:.4f}")
    assert (got.status == "planned").all() and got.cost.sum() == pytest.approx(expected, abs=1e-6)
    schedule = np.array(got.slot_kwh.tolist())
    assert (schedule.sum(axis=0) <= capacity_kw + 1e-6).all() and ((schedule > 1e-6).sum(axis=0) <= ports).all()
    assert schedule.sum(axis=1) == pytest.approx([v[0] for v in vehicles])


def test_capacity_binding_costs_more_than_without_it():
    free = cp.solve_site(site_rows([(5, 3, 0, 4), (4, 3, 0, 4), (3, 3, 0, 4)], 3, 9.0), SMALL).cost.sum()
    tight = cp.solve_site(site_rows([(5, 3, 0, 4), (4, 3, 0, 4), (3, 3, 0, 4)], 3, 4.0), SMALL).cost.sum()
    # by hand: without the limit every kWh goes at price 1 (slots 0 and 3, 6 kWh each): 12; at 4 kW
    # the cheap slots hold 8 kWh, the other 4 go at price 2
    assert (free, tight) == (pytest.approx(12.0), pytest.approx(16.0))


# --------------------------------------------------------------------------------------------
# Reasons
# --------------------------------------------------------------------------------------------
def test_every_reason_comes_from_a_hand_built_case(spark):
    p = ChargingPlanConfig()  # 30 min slots 12:00-07:00 (38), floor 20 %, max 90 %, efficiency 0.9
    vehicles = spark.createDataFrame(
        [(v, "m", b) for v, b in [("ok", 50.0), ("full", 50.0), ("battery", None), ("history", 50.0), ("soc", 50.0), ("rate", 50.0), ("nowhere", 50.0), ("big", 50.0), ("slow", 50.0), ("grid", 50.0)]],
        "vehicle_id string, model string, battery_kwh double",
    )
    ids = [r[0] for r in vehicles.collect()]
    km = spark.createDataFrame([(v, 100.0, "weekday", 8) for v in ids if v != "history"], "vehicle_id string, expected_km double, km_basis string, history_days int")
    rates = spark.createDataFrame(
        [(v, None if v == "rate" else (0.5 if v == "big" else 0.1), None if v == "rate" else "physics") for v in ids], "vehicle_id string, kwh_per_km double, energy_source string"
    )
    soc = spark.createDataFrame([(v, 60.0 if v == "full" else 30.0, None) for v in ids if v != "soc"], "vehicle_id string, soc_now_pct double, now_h double")
    # 100 km x 0.1 kWh/km = 10 kWh, 5 kWh above what SOC 30 % holds over the 20 % floor; "full" has 20
    # kWh above it; "big" needs 50 kWh > 35 kWh between 20 % and 90 %; "slow" can add 0.5 kW x 0.9 x 1 h
    # (14:00-15:00); "grid" arrives 05:30 at a 22 kW charger of a 1 kW site: 0.9 x 1 kW x 1.5 h
    places = spark.createDataFrame(
        [
            ("ok", "H1", "home", None, 7.4, "conf", 6.0, None),
            ("full", "H2", "home", None, 7.4, "conf", 6.0, None),
            ("big", "D", "depot", "S1", 22.0, "station", 6.0, None),
            ("slow", "P", "public", "S2", 0.5, "observed", 2.0, 1.0),
            ("grid", "G", "depot", "S3", 22.0, "station", 17.5, None),
        ],
        cp.PLACES_SCHEMA,
    )
    limits = spark.createDataFrame([("H1", 1, 7.4), ("H2", 1, 7.4), ("D", 4, 60.0), ("P", 2, 1.0), ("G", 2, 1.0)], "site_id string, site_ports int, site_capacity_kw double")
    enroute = spark.createDataFrame([(v, 0.0) for v in ids], "vehicle_id string, enroute_kwh double")
    inputs = cp.plan_inputs(vehicles, km, rates, enroute, soc, places, limits, p)
    out = cp.plan_vehicles(cp.plan_sites(inputs, p), date(2024, 3, 10), p).select("vehicle_id", "status", "reason_code")
    expected = spark.createDataFrame(
        [
            ("battery", "infeasible", "unknown_battery_size"),
            ("big", "infeasible", "need_exceeds_battery"),
            ("full", "no_charge_needed", None),
            ("grid", "infeasible", "site_capacity"),
            ("history", "infeasible", "no_driving_history"),
            ("nowhere", "infeasible", "no_place_to_charge"),
            ("ok", "planned", None),
            ("rate", "infeasible", "no_energy_rate"),
            ("slow", "infeasible", "not_enough_time_or_power"),
            ("soc", "infeasible", "no_current_soc"),
        ],
        "vehicle_id string, status string, reason_code string",
    )
    assert_df_equality(out.orderBy("vehicle_id"), expected, ignore_nullable=True)
    rows = {r.vehicle_id: r for r in cp.plan_vehicles(cp.plan_sites(inputs, p), date(2024, 3, 10), p).collect()}
    assert "kWh short (2 ports, 1.0 kW)" in rows["grid"].reason and rows["grid"].shortfall_kwh == pytest.approx(5 - 0.9 * 1.0 * 1.5)
    assert rows["grid"].planned_kwh == pytest.approx(0.9 * 1.0 * 1.5) and "0.5 kW for 1 h" in rows["slow"].reason
    assert rows["ok"].soc_duty_end_pct == pytest.approx(20.0) and rows["ok"].window_start_local.hour == 18


def test_expected_km_takes_the_weekday_quantile_or_every_day(spark):
    plan = date(2024, 3, 11)  # a Monday
    days = [(plan - timedelta(days=k)) for k in range(1, 29)]
    km = {d: float(10 * (i + 1)) for i, d in enumerate(days)}  # 10, 20, ... km going back
    rows = [("a", d, km[d]) for d in days] + [("b", days[0], 5.0), ("b", days[1], 7.0)]
    daily = spark.createDataFrame(rows, "vehicle_id string, local_date date, gps_km double")
    got = cp.expected_km(daily, plan, ChargingPlanConfig(km_quantile=0.5)).orderBy("vehicle_id")
    mondays = sorted(km[d] for d in days if d.weekday() == 0)  # 4 Mondays: 70, 140, 210, 280 km
    expected = spark.createDataFrame([("a", float(np.median(mondays)), "weekday", 28), ("b", 6.0, "all_days", 2)], "vehicle_id string, expected_km double, km_basis string, history_days int")
    assert_approx_df_equality(got, expected, 1e-9, ignore_nullable=True)


def test_energy_per_km_prefers_the_model_then_physics_then_the_measured_rate(spark):
    plan = date(2024, 3, 11)
    p = ChargingPlanConfig(physics_speed_kmh=36.0)
    car = PhysicsVehicleParams(mass_kg=1500, cda_m2=0.6, crr=0.01, drivetrain_eff=0.9, regen_eff=0.6, aux_kw=0.5)
    # by hand at 10 m/s: (1500 x 9.81 x 0.01 + 0.5 x 1.2 x 0.6 x 100) N x 1 km / 0.9 = 183.15 kJ... / 3600 -> kWh, + 0.5 kW / 36 km/h
    by_hand = (147.15 + 36.0) * 1000 / 0.9 / 3.6e6 + 0.5 / 36.0
    vehicles = spark.createDataFrame([("m", "Car"), ("p", "Car"), ("x", "Other"), ("n", "Other")], "vehicle_id string, model string")
    daily = spark.createDataFrame(
        [("x", plan - timedelta(days=1), 20.0, 3.0), ("m", plan - timedelta(days=1), 10.0, 9.0)], "vehicle_id string, local_date date, trip_km double, trip_energy_kwh double"
    )
    preds = spark.createDataFrame(
        [("m", plan - timedelta(days=2), 0.2, 1.0), ("m", plan - timedelta(days=1), 0.1, 3.0)], "vehicle_id string, local_date date, pred_kwh_per_km double, distance_km double"
    )
    got = cp.energy_rates(vehicles, daily, preds, plan, p, {"Car": car}, None).orderBy("vehicle_id")
    expected = spark.createDataFrame([("m", 0.125, "model"), ("n", None, None), ("p", by_hand, "physics"), ("x", 0.15, "measured")], "vehicle_id string, kwh_per_km double, energy_source string")
    assert_approx_df_equality(got, expected, 1e-9, ignore_nullable=True)
    no_model = cp.energy_rates(vehicles, daily, None, plan, p, {"Car": car}, "Car").where("vehicle_id = 'm'").first()
    assert (no_model.energy_source, no_model.kwh_per_km) == ("physics", pytest.approx(by_hand))  # default_model stands in


# --------------------------------------------------------------------------------------------
# The stage on the generated fleet
# --------------------------------------------------------------------------------------------
def recheck(vehicles: pd.DataFrame, slots: pd.DataFrame, p: ChargingPlanConfig) -> None:
    """Every constraint of every planned vehicle and site, recomputed in pandas from the slot rows."""
    h, eff = p.slot_minutes / 60, p.charger_efficiency
    planned = vehicles[vehicles.status == "planned"].set_index("vehicle_id")
    per_vehicle = slots.groupby("vehicle_id").kwh.sum()
    assert per_vehicle.reindex(planned.index, fill_value=0).to_numpy() == pytest.approx(planned.planned_kwh.to_numpy(), abs=1e-6)
    end_soc = planned.soc_now_pct + (per_vehicle.reindex(planned.index, fill_value=0) - planned.need_kwh) / planned.battery_kwh * 100
    assert (end_soc >= p.soc_floor_pct - 1e-6).all(), end_soc[end_soc < p.soc_floor_pct]
    assert (planned.soc_now_pct + per_vehicle.reindex(planned.index, fill_value=0) / planned.battery_kwh * 100 <= max(p.soc_max_pct, 0) + 1e-6).all()
    power = slots.vehicle_id.map(vehicles.set_index("vehicle_id").charger_kw)
    assert (slots.kwh <= power * h * eff + 1e-6).all()
    per_slot = slots.groupby(["site_id", "slot_no"]).agg(kw=("grid_kw", "sum"), plugged=("vehicle_id", "nunique"), cap=("site_capacity_kw", "first"), ports=("site_ports", "first"))
    assert (per_slot.kw <= per_slot.cap + 1e-6).all() and (per_slot.plugged <= per_slot.ports).all()
    prices = cp.slot_prices(p)
    assert slots.cost.to_numpy() == pytest.approx(slots.kwh.to_numpy() / eff * prices[slots.slot_no.to_numpy()], abs=1e-9)
    assert slots.groupby("vehicle_id").cost.sum().reindex(planned.index, fill_value=0).to_numpy() == pytest.approx(planned.cost.to_numpy(), abs=1e-6)
    windows = vehicles.set_index("vehicle_id")
    assert (slots.slot_start_local >= slots.vehicle_id.map(windows.window_start_local)).all() and (slots.slot_end_local <= slots.vehicle_id.map(windows.window_end_local)).all()


def test_stage_on_the_generated_fleet_plans_every_vehicle_without_model_or_stations(spark, fleet_gold, tmp_path):
    from jobs.charging_plan import run_charging_plan

    cfg = fleet_gold
    with declared_only("charging_plan"):
        report = run_charging_plan(spark, cfg)
    print("\n".join(report.notes))
    assert report.status == "ok"
    # fleet_gold has predictions only when the session built fleet_scored first: the label says which
    scored = tables.exists(spark, cfg, "gold.predictions_energy")
    assert any("gold.predictions_energy missing" in n for n in report.notes) is not scored
    vehicles = tables.read(spark, cfg, "gold.charging_plan_vehicles").toPandas()
    fleet = tables.read(spark, cfg, "bronze.vehicles").select("vehicle_id").distinct().toPandas()
    assert sorted(vehicles.vehicle_id) == sorted(fleet.vehicle_id)  # every vehicle, once
    assert set(vehicles.status) <= set(cp.STATUSES) and vehicles[vehicles.status == "infeasible"].reason.notna().all()
    assert set(vehicles.energy_source.dropna()) <= ({"model", "physics", "measured"} if scored else {"physics", "measured"})
    print(f"generated fleet: {vehicles.status.value_counts().to_dict()}; reasons {vehicles.reason_code.value_counts().to_dict()}")
    slots = tables.read(spark, cfg, "gold.charging_plan").toPandas()
    recheck(vehicles, slots, cfg.charging_plan)
    assert not [c for c in [*slots.columns, *vehicles.columns] if "lat" in c or "lon" in c]  # no positions in the plan

    # Without bronze.stations nor a registered model, and with a floor of 50 % and charging to 100 %
    # so that most vehicles need the night: conf ports, observed power, physics energy per km (said
    # in energy_source), still every vehicle, still feasible schedules.
    stressed = cfg.model_copy(deep=True)
    stressed.storage.root = str(tmp_path / "lakehouse")
    stressed.storage.restricted_root = str(tmp_path / "lakehouse" / "restricted")
    stressed.charging_plan.soc_floor_pct, stressed.charging_plan.soc_max_pct = 50.0, 100.0
    for name in ("bronze.vehicles", "gold.daily_kpis", "silver.charging_events", "gold.charging_sites"):
        tables.write(tables.read(spark, cfg, name), stressed, name)
    report = run_charging_plan(spark, stressed)
    print("\n".join(report.notes))
    assert any("bronze.stations missing" in n for n in report.notes) and any("gold.predictions_energy missing" in n for n in report.notes)
    vehicles = tables.read(spark, stressed, "gold.charging_plan_vehicles").toPandas()
    assert len(vehicles) == len(fleet) and not vehicles.charger_kw_source.isin(["station", "station_observed"]).any()
    assert set(vehicles.energy_source.dropna()) <= {"physics", "measured"} and (vehicles.energy_source == "physics").any()
    counts = vehicles.status.value_counts().to_dict()
    print(f"generated fleet, floor 50 %, no stations: {counts}; reasons {vehicles.reason_code.value_counts().to_dict()}; slowest site {vehicles.solve_seconds.max():.3f} s")
    assert counts.get("planned", 0) > 0
    recheck(vehicles, tables.read(spark, stressed, "gold.charging_plan").toPandas(), stressed.charging_plan)

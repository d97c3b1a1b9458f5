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
from pydantic import ValidationError

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
    default_arrival_hour=21,
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


def test_a_servable_vehicle_is_not_left_short_to_save_cost_when_the_port_binds():
    # one port; v0 (100 kW, slots 0-1 at prices 1 and 3) needs 100 kWh, v1 (1 kW, slot 0 only) 1 kWh:
    # by hand v1 takes slot 0 (cost 1), v0 slot 1 (cost 300), nobody short: 301
    got = cp.solve_site(site_rows([(100, 100, 0, 2), (1, 1, 0, 1)], 1, 1000.0), SMALL)
    assert got.status.tolist() == ["planned", "planned"] and got.shortfall_kwh.tolist() == [0.0, 0.0]
    assert got.cost.sum() == pytest.approx(301.0) and got.slot_kwh.tolist() == [[0.0, 100.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0]]


# Four 30-minute slots 22:00-00:00 at prices 3, 1, 2, 1 per grid kWh, efficiency 0.9, floor 20 %, max 90 %.
LEX = ChargingPlanConfig(
    slot_minutes=30,
    horizon_start_hour=22,
    duty_start_hour=0,
    default_arrival_hour=22,
    charger_efficiency=0.9,
    soc_floor_pct=20,
    soc_max_pct=90,
    tariff=[
        TariffPeriod(start_hour=0, price_per_kwh=1),
        TariffPeriod(start_hour=22, price_per_kwh=3),
        TariffPeriod(start_hour=22.5, price_per_kwh=1),
        TariffPeriod(start_hour=23, price_per_kwh=2),
        TariffPeriod(start_hour=23.5, price_per_kwh=1),
    ],
)


def test_milp_is_the_brute_force_lexicographic_optimum_of_shortfall_then_cost():
    prices = [3.0, 1.0, 2.0, 1.0]
    # (battery kWh, SOC now %, need kWh, charger kW, first slot, end slot, reason); 40/9 kW x 0.5 h x
    # 0.9 = 2 battery kWh per slot and a 20/3 kW grid limit = 3 battery kWh per slot keep the
    # optimum integral (a flow problem once the ports are fixed), so integer kWh enumeration finds it
    vehicles = [
        (50.0, 30.0, 9.0, 40 / 9, 0, 4, None),  # 9 - (30 - 20) % x 50 = 4 kWh to add, room (90 - 30) % x 50 = 30
        (40.0, 25.0, 6.0, 40 / 9, 1, 3, None),  # 6 - 5 % x 40 = 4 kWh in its two slots: both, at full power
        (20.0, 80.0, 16.0, 40 / 9, 0, 4, "need_exceeds_battery"),  # 16 - 60 % x 20 = 4 to add, room 10 % x 20 = 2
    ]
    ports, capacity_kw = 2, 20 / 3
    pdf = pd.DataFrame(
        [
            dict(
                group_id="S",
                vehicle_id=f"v{i}",
                site_kind="depot",
                battery_kwh=b,
                soc_now_pct=soc,
                need_kwh=need,
                charger_kw=kw,
                first_slot=a,
                end_slot=e,
                site_ports=ports,
                site_capacity_kw=capacity_kw,
                reason_code=code,
            )  # fmt: skip
            for i, (b, soc, need, kw, a, e, code) in enumerate(vehicles)
        ]
    )
    assert cp.slot_prices(LEX).tolist() == prices
    got = cp.solve_site(pdf, LEX)

    per_slot, slot_cap = 2, 3  # by hand, as above
    required = [need - (soc - 20) / 100 * b for b, soc, need, *_ in vehicles]
    room = [(90 - soc) / 100 * b for b, soc, *_ in vehicles]
    options = []
    for (_b, _soc, _need, _kw, a, e, _code), r in zip(vehicles, room):
        ranges = [range(per_slot + 1) if a <= t < e else range(1) for t in range(4)]
        options.append([s for s in itertools.product(*ranges) if sum(s) <= r + 1e-9])
    best, best_combo = None, None
    for combo in itertools.product(*options):
        if any(sum(col) > slot_cap or sum(x > 0 for x in col) > ports for col in zip(*combo)):
            continue
        short = [max(0.0, req - sum(s)) for req, s in zip(required, combo)]
        cost = sum(x / 0.9 * p for s in combo for x, p in zip(s, prices))
        key = (short[0] + short[1], short[2], round(cost, 9))
        if best is None or key < best:
            best, best_combo = key, combo
    print(f"brute force (servable short, best-effort short, cost) {best} with {best_combo}; MILP {got.shortfall_kwh.tolist()} {got.cost.sum():.6f}")
    assert got.shortfall_kwh[:2].sum() == pytest.approx(best[0], abs=1e-6) and got.shortfall_kwh[2] == pytest.approx(best[1], abs=1e-6)
    assert got.cost.sum() == pytest.approx(best[2], abs=1e-6)
    assert got.status.tolist() == ["planned", "planned", "infeasible"] and got.reason_code[2] == "need_exceeds_battery"


@pytest.mark.parametrize(
    "settings, message",
    [
        (dict(site_capacity_kw={"SITE-1": -5.0}), "site_capacity_kw must not be negative"),
        (dict(horizon_start_hour=12, duty_start_hour=7, default_arrival_hour=9), "default_arrival_hour must lie inside the horizon"),
        (dict(horizon_start_hour=6, duty_start_hour=7, default_arrival_hour=18), "at most 24 h"),
    ],
)
def test_config_refuses_negative_capacity_an_arrival_outside_the_horizon_and_a_horizon_over_a_day(settings, message):
    with pytest.raises(ValidationError, match=message):
        ChargingPlanConfig(**settings)
    # the edges of the horizon are allowed: arrival at its start, just before the duty; a 24 h horizon
    ChargingPlanConfig(horizon_start_hour=12, duty_start_hour=7, default_arrival_hour=12)
    ChargingPlanConfig(horizon_start_hour=12, duty_start_hour=7, default_arrival_hour=6.5)
    ChargingPlanConfig(horizon_start_hour=7, duty_start_hour=7, default_arrival_hour=18, site_capacity_kw={"SITE-1": 0.0})


# --------------------------------------------------------------------------------------------
# Reasons
# --------------------------------------------------------------------------------------------
def test_every_reason_comes_from_a_hand_built_case(spark):
    p = ChargingPlanConfig()  # 30 min slots 12:00-07:00 (38), floor 20 %, max 90 %, efficiency 0.9
    vehicles = spark.createDataFrame(
        [
            (v, "m", b)
            for v, b in [
                ("ok", 50.0),
                ("full", 50.0),
                ("battery", None),
                ("history", 50.0),
                ("soc", 50.0),
                ("stale", 50.0),
                ("rate", 50.0),
                ("nowhere", 50.0),
                ("big", 50.0),
                ("slow", 50.0),
                ("grid", 50.0),
            ]
        ],
        "vehicle_id string, model string, battery_kwh double",
    )
    ids = [r[0] for r in vehicles.collect()]
    km = spark.createDataFrame([(v, 100.0, "weekday", 8) for v in ids if v != "history"], "vehicle_id string, expected_km double, km_basis string, history_days int")
    rates = spark.createDataFrame(
        [(v, None if v == "rate" else (0.5 if v == "big" else 0.1), None if v == "rate" else "physics") for v in ids], "vehicle_id string, kwh_per_km double, energy_source string"
    )
    # read at 18:00 on the eve (6 h after the horizon start), "stale" 30 h before the horizon start (> 24 h)
    soc = spark.createDataFrame(
        [(v, 60.0 if v == "full" else 30.0, -30.0 if v == "stale" else 6.0, None) for v in ids if v != "soc"], "vehicle_id string, soc_now_pct double, reading_h double, now_h double"
    )
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
            ("stale", "infeasible", "stale_soc"),
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


def test_enroute_kwh_counts_daytime_top_ups_but_not_overnight_charges(spark):
    plan = date(2024, 3, 11)
    p = ChargingPlanConfig()  # horizon 12:00 -> 07:00
    days = [plan - timedelta(days=k) for k in range(1, 5)]
    ts = lambda d, hh, mm: pd.Timestamp(d.year, d.month, d.day, hh, mm)  # noqa: E731
    events = (
        # "home" plugs in at home at 17:30 and 18:30 on alternate evenings: median arrival 18:00, all overnight
        [("home", "H", d, ts(d, 17 if i % 2 else 18, 30), 240.0, 20.0) for i, d in enumerate(days)]
        # "pub": a 15 kWh public top-up at 12:30 for 30 min each day, its depot overnight, and one
        # evening charge at another site overlapping its night window (from 19:00): only the 15 count
        + [("pub", "P", d, ts(d, 12, 30), 30.0, 15.0) for d in days]
        + [("pub", "D", d, ts(d, 18, 0), 600.0, 40.0) for d in days]
        + [("pub", "X", days[0], ts(days[0], 17, 0), 180.0, 10.0)]
    )
    events_df = spark.createDataFrame(
        [(v, s, d, t.to_pydatetime(), m, k) for v, s, d, t, m, k in events], "vehicle_id string, site_id string, local_date date, start_ts_local timestamp, duration_min double, kwh double"
    )
    daily = spark.createDataFrame([(v, d) for v in ("home", "pub") for d in days], "vehicle_id string, local_date date")
    # the places as charging_places reports them: arrival 18:00 = 6 h after the horizon start
    places = spark.createDataFrame([("home", "H", "home", None, 7.4, "conf", 6.0, None), ("pub", "D", "depot", None, 22.0, "observed", 6.0, None)], cp.PLACES_SCHEMA)
    got = {r.vehicle_id: r.enroute_kwh for r in cp.enroute_kwh(daily, events_df, places, plan, p).collect()}
    assert got == {"home": 0.0, "pub": 15.0}


def test_charging_places_takes_only_the_vehicles_own_home_and_a_home_needs_enough_events(spark):
    p = ChargingPlanConfig(min_arrival_events=3)
    sites = spark.createDataFrame(
        [("H1", "home", None, "v1"), ("H3", "home", None, "v3"), ("H4", "home", None, "v4"), ("D", "depot", None, None)], "site_id string, kind string, station_id string, home_vehicle_id string"
    )
    # v1: its home 5 times; v2: once at v1's home, 60 times at the depot; v3: its home twice, the
    # depot 4 times (too few home events to outrank it: more depot events); v4: its home twice, the depot once
    counts = {("v1", "H1"): 5, ("v2", "H1"): 1, ("v2", "D"): 60, ("v3", "H3"): 2, ("v3", "D"): 4, ("v4", "H4"): 2, ("v4", "D"): 1}
    start = pd.Timestamp(2024, 3, 1, 18, 0).to_pydatetime()
    events = spark.createDataFrame(
        [(v, s, start + timedelta(days=k), 60.0, 7.0) for (v, s), n in counts.items() for k in range(n)],
        "vehicle_id string, site_id string, start_ts_local timestamp, duration_min double, avg_power_kw double",
    )
    got = {r.vehicle_id: (r.site_id, r.site_kind) for r in cp.charging_places(events, sites, None, p).collect()}
    assert got == {"v1": ("H1", "home"), "v2": ("D", "depot"), "v3": ("D", "depot"), "v4": ("H4", "home")}
    # v2 alone at v1's home: the site is unknown to it, not its home
    only = cp.charging_places(events.where("vehicle_id = 'v2' and site_id = 'H1'"), sites, None, p).first()
    assert (only.site_id, only.site_kind) == ("H1", "unknown")


def test_planning_date_is_the_next_duty_after_the_latest_reading_or_conf(spark):
    schema = "vehicle_id string, local_date date, last_ts timestamp, timezone string"
    p = ChargingPlanConfig()  # duty at 07:00
    # 05:00 UTC = 06:00 in Berlin, before the duty: that day; 20:00 local: the next day
    early = spark.createDataFrame([("a", date(2024, 3, 10), pd.Timestamp(2024, 3, 10, 5, 0).to_pydatetime(), "Europe/Berlin")], schema)
    late = spark.createDataFrame([("a", date(2024, 3, 10), pd.Timestamp(2024, 3, 10, 19, 0).to_pydatetime(), "Europe/Berlin")], schema)
    assert cp.planning_date(early, p) == date(2024, 3, 10) and cp.planning_date(late, p) == date(2024, 3, 11)
    assert cp.planning_date(late, ChargingPlanConfig(plan_date="2024-03-05")) == date(2024, 3, 5)


def test_current_soc_ignores_readings_after_the_horizon_and_says_when_it_was_read(spark):
    p = ChargingPlanConfig(plan_date="2024-03-11")  # horizon 2024-03-10 12:00 -> 2024-03-11 07:00 local
    ts = lambda *a: pd.Timestamp(*a).to_pydatetime()  # noqa: E731
    daily = spark.createDataFrame(
        [
            # a (Berlin, UTC+1): 21:00 local on the eve, then the plan day's own closing SOC (after its duty)
            ("a", date(2024, 3, 9), ts(2024, 3, 9, 18, 0), "Europe/Berlin", 50.0),
            ("a", date(2024, 3, 10), ts(2024, 3, 10, 20, 0), "Europe/Berlin", 30.0),
            ("a", date(2024, 3, 11), ts(2024, 3, 11, 17, 0), "Europe/Berlin", 10.0),
            # b: last read 18:00 two days before the plan date: 18 h before the horizon start
            ("b", date(2024, 3, 9), ts(2024, 3, 9, 18, 0), "UTC", 70.0),
            # c: read at 06:00 on the plan date, before the duty: inside the horizon, 18 h after its start
            ("c", date(2024, 3, 11), ts(2024, 3, 11, 6, 0), "UTC", 40.0),
        ],
        "vehicle_id string, local_date date, last_ts timestamp, timezone string, soc_end_pct double",
    )
    got = {r.vehicle_id: (r.soc_now_pct, r.reading_h, r.now_h) for r in cp.current_soc(daily, date(2024, 3, 11), p).collect()}
    assert got == {"a": (30.0, 9.0, 9.0), "b": (70.0, -18.0, None), "c": (40.0, 18.0, 18.0)}


def test_soc_read_before_arrival_loses_the_rest_of_the_eves_duty(spark):
    p = ChargingPlanConfig()  # horizon from 12:00 of the eve, duty from 07:00: the eve's duty 07:00 -> arrival
    ids = ["before", "after", "morning"]
    vehicles = spark.createDataFrame([(v, "m", 60.0) for v in ids], "vehicle_id string, model string, battery_kwh double")
    km = spark.createDataFrame([(v, 50.0, "weekday", 8) for v in ids], "vehicle_id string, expected_km double, km_basis string, history_days int")
    eve_km = spark.createDataFrame([(v, 110.0, "weekday", 8) for v in ids], "vehicle_id string, expected_km double, km_basis string, history_days int")
    rates = spark.createDataFrame([(v, 0.2, "physics") for v in ids], "vehicle_id string, kwh_per_km double, energy_source string")
    enroute = spark.createDataFrame([(v, 0.0) for v in ids], "vehicle_id string, enroute_kwh double")
    # read at 12:00 (0 h), 20:00 (8 h) and 02:00 of the eve (-10 h, before its duty), all at 50 %
    soc = spark.createDataFrame([("before", 50.0, 0.0, 0.0), ("after", 50.0, 8.0, 8.0), ("morning", 50.0, -10.0, None)], "vehicle_id string, soc_now_pct double, reading_h double, now_h double")
    places = spark.createDataFrame([(v, "D", "depot", None, 22.0, "observed", 6.0, None) for v in ids], cp.PLACES_SCHEMA)  # arrival 18:00
    limits = spark.createDataFrame([("D", 4, 60.0)], "site_id string, site_ports int, site_capacity_kw double")
    got = {r.vehicle_id: (r.soc_basis, r.soc_now_pct) for r in cp.plan_inputs(vehicles, km, rates, enroute, soc, places, limits, p, eve_km=eve_km).collect()}
    # by hand: the eve's duty is 110 km x 0.2 = 22 kWh over 07:00-18:00 (11 h); at 12:00, 6 h of it
    # are ahead: 12 kWh = 20 % of 60 kWh; at 02:00 all of it: 22 / 60 = 36.67 %
    assert got["after"] == ("at_arrival", 50.0)
    assert got["before"][0] == "before_arrival" and got["before"][1] == pytest.approx(50.0 - 22.0 * 6 / 11 / 60 * 100)
    assert got["morning"][0] == "before_arrival" and got["morning"][1] == pytest.approx(50.0 - 22.0 / 60 * 100)


def test_the_charts_slot_axis_comes_from_the_plan_rows_and_sites_are_not_stacked():
    from common.report.html import load_profile_figure
    from common.report.sections import plan_slot_axis

    # slots 3 and 5 charged (30 min, 22:30 and 23:30): slot 4 in between has no row, so no price
    axis = pd.DataFrame({"slot_no": [5, 3], "start": pd.to_datetime(["2024-03-10 23:30", "2024-03-10 22:30"]), "end": pd.to_datetime(["2024-03-11 00:00", "2024-03-10 23:00"]), "price": [0.1, 0.3]})
    assert plan_slot_axis(axis) == ([3, 4, 5], ["22:30", "23:00", "23:30"], [0.3, None, 0.1])
    fig = load_profile_figure(["a", "b"], {"S1 grid kW": [1.0, 2.0], "S2 grid kW": [3.0, 4.0]}, {"S2 grid kW": [5.0, 5.0]}, [0.1, 0.2])
    assert fig.layout.barmode == "group"
    line = next(t for t in fig.data if t.name == "S2 grid kW: limit")
    bar = next(t for t in fig.data if t.name == "S2 grid kW")
    assert line.line.color == bar.marker.color and line.legendgroup == bar.legendgroup == "S2 grid kW"


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
    # the price of each slot by hand: the last tariff period starting at or before its local start hour
    hour = slots.slot_start_local.dt.hour + slots.slot_start_local.dt.minute / 60
    by_hand = hour.map(lambda x: [t.price_per_kwh for t in p.tariff if t.start_hour <= x][-1])
    assert slots.price_per_kwh.to_numpy() == pytest.approx(by_hand.to_numpy(), abs=1e-12)
    assert slots.grid_kw.to_numpy() == pytest.approx(slots.kwh.to_numpy() / eff / h, abs=1e-9)
    assert slots.cost.to_numpy() == pytest.approx(slots.kwh.to_numpy() / eff * by_hand.to_numpy(), abs=1e-9)
    # no charge needed exactly when SOC now less the duty's need stays at or above the floor
    known = vehicles.dropna(subset=["soc_now_pct", "need_kwh", "battery_kwh"])
    known = known[~known.reason_code.isin(["unknown_battery_size", "no_driving_history", "no_current_soc", "stale_soc", "no_energy_rate"])]
    enough = known.soc_now_pct - known.need_kwh / known.battery_kwh * 100 >= p.soc_floor_pct
    assert ((known.status == "no_charge_needed") == enough).all(), known[(known.status == "no_charge_needed") != enough]
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

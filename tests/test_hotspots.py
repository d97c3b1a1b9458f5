"""Unique daily visits (one row per vehicle, local day and place) and hotspot selection."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import numpy as np
from chispa import assert_df_equality

from common.core.config import HotspotsConfig
from common.mobility.hotspots import cluster_visits, find_hotspots, unique_daily_visits
from common.spatial.geo import EARTH_RADIUS_M

M_PER_DEG = np.pi * EARTH_RADIUS_M / 180
H1 = (28.60, 77.20)


def _at(place, north_m=0.0, east_m=0.0):
    return float(place[0] + north_m / M_PER_DEG), float(place[1] + east_m / (M_PER_DEG * np.cos(np.radians(place[0]))))


def test_unique_daily_visits(spark):
    d1, d2 = date(2024, 3, 4), date(2024, 3, 5)

    def stop(v, d, hour, place, dwell):
        local = datetime.combine(d, datetime.min.time()) + timedelta(hours=hour)
        return (v, d, local - timedelta(hours=5, minutes=30), local, local + timedelta(minutes=dwell), *place, float(dwell))

    stops = spark.createDataFrame(
        [
            stop("V1", d1, 9, _at(H1), 20),
            stop("V1", d1, 11, _at(H1, east_m=60), 30),  # same place, same day: same visit
            stop("V1", d1, 13, _at(H1, north_m=2000), 15),  # another place
            stop("V1", d1, 15, _at(H1, north_m=-40), 10),  # back at H1: still the first visit
            stop("V1", d2, 10, _at(H1), 25),  # next day: a new visit
            stop("V2", d1, 8, _at(H1, east_m=20), 300),  # parked at the depot all day ...
            stop("V2", d1, 17, _at(H1, east_m=25), 200),  # ... and again in the evening: one visit
        ],
        "vehicle_id string, local_date date, start_ts timestamp, start_ts_local timestamp, end_ts_local timestamp, lat double, lon double, dwell_minutes double",
    )
    got = unique_daily_visits(stops, HotspotsConfig(visit_merge_m=150.0))
    expected = spark.createDataFrame(
        [
            ("V1", d1, 0, 3, 60.0, 9, "V1-20240304-0"),
            ("V1", d1, 1, 1, 15.0, 13, "V1-20240304-1"),
            ("V1", d2, 0, 1, 25.0, 10, "V1-20240305-0"),
            ("V2", d1, 0, 2, 500.0, 8, "V2-20240304-0"),
        ],
        "vehicle_id string, local_date date, visit_no int, n_stops int, dwell_minutes double, arrival_hour int, visit_id string",
    )
    assert_df_equality(got.select(*expected.columns), expected, ignore_row_order=True, ignore_nullable=True)


def _visits(spark):
    rng = np.random.default_rng(2)
    rows = []
    n = 0

    def add(vehicle, place, radius_m, hour, day):
        nonlocal n
        r, th = radius_m * np.sqrt(rng.random()), rng.random() * 2 * np.pi
        lat, lon = _at(place, r * np.cos(th), r * np.sin(th))
        d = date(2024, 3, 4) + timedelta(days=day)
        rows.append((vehicle, d, n, float(lat), float(lon), hour, f"{vehicle}-{d:%Y%m%d}-{n}"))
        n += 1

    market = (28.60, 77.20)
    for i, hour in enumerate([9] * 10 + [17] * 8 + [12] * 7 + [20] * 5):  # 30 visits, 5 vehicles
        add(f"V{i % 5}", market, 40, hour, i // 5)
    for day in range(12):  # one driver's home: 12 visits, 1 vehicle
        add("V9", (28.65, 77.25), 10, 21, day)
    for i in range(8):  # small shared place: 8 visits from 4 vehicles
        add(f"V{i % 4}", (28.55, 77.15), 30, 14, i)
    for i in range(20):  # scattered one-off stops
        add(f"V{i % 6}", (28.60 + rng.uniform(-0.1, 0.1), 77.20 + rng.uniform(-0.1, 0.1)), 0, 11, i % 7)
    return spark.createDataFrame(rows, "vehicle_id string, local_date date, visit_no int, lat double, lon double, arrival_hour int, visit_id string")


def test_find_hotspots(spark):
    params = HotspotsConfig(eps_m=100.0, min_samples=3, min_unique_visits=10, min_distinct_vehicles=2, radius_m=500.0, partition_cell_m=1000.0)
    hot = find_hotspots(cluster_visits(_visits(spark), params), params).collect()
    assert len(hot) == 1  # the home (1 vehicle) and the small place (8 visits) are not hotspots
    h = hot[0]
    assert h["hotspot_id"] == "HOT-001"
    assert (h["unique_visits"], h["distinct_vehicles"], h["cluster_visits"]) == (30, 5, 30)
    assert h["busiest_hours"] == [9, 17, 12]
    assert h["visits_by_hour"][9] == 10 and sum(h["visits_by_hour"]) == 30
    assert h["hull_wkt"].startswith("POLYGON ((")
    assert abs(h["lat"] - 28.60) * M_PER_DEG < 25 and h["radius_p90_m"] <= 50
    assert h["days"] == 6 and h["visits_per_day"] == 5.0

"""Synthetic EV fleet with ground truth: the embedded default input of the pipeline.

What it simulates (see docs/GENERATOR.md for the tables and anomaly types):
- people: each driver has a home (parks there at night, GPS jitter ~5-15 m), a daily shift,
  favourite shared hotspots and random places; a share of at-risk drivers whose activity falls
  and who stay home on more and more days; a share whose device goes offline for days;
- movement along bent polylines at plausible, autocorrelated speeds with traffic stops;
  odometer = cumulative true distance;
- battery: a longitudinal physics model (rolling resistance, aero drag, grade from a synthetic
  terrain, acceleration, regen, auxiliary/HVAC by ambient temperature) with per-vehicle
  variation; SOC reported as integer % like real telematics; charging at home or at
  public/depot stations when low, with power tapering above 80 %;
- a charging network: stations with AFDC-like metadata, per-port outages (faults, scheduled
  maintenance, offline gaps), OCPP 1.6 status notifications and sessions (some failed),
  consistent with the fleet's charging stops;
- labelled anomalies injected into the emitted telemetry.

Small world state (places, stations, outages, vehicles) is built on the driver from the seed;
telemetry is simulated on executors with `mapInPandas` over vehicle chunks, so 50 M rows never
sit in driver memory. Everything is a pure function of `cfg.generator`.

This module returns DataFrames (`simulate`, `truth_frames`, `truth_charging_sites`, ...) and
writes only the raw files a source system would deliver (`write_raw_*`); jobs/generate.py
writes the truth.* Delta tables through common.io.tables.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from common.core.config import GeneratorConfig
from common.core.dates import day_midnights_utc
from common.core.regions import Region, get_region
from common.io.tables import first_row
from common.spatial.geo import EARTH_RADIUS_M, haversine_np  # noqa: F401 - haversine_np is part of this module's API

G = 9.81
AIR_DENSITY = 1.2  # kg/m3 at ~25 degC
KMH = 1 / 3.6


# ----------------------------------------------------------------------------------------------
# Vehicle models and their energy parameters
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class VehicleModel:
    """A vehicle model and the parameters of its energy physics.

    Attributes
    ----------
    name : str
        Make and model.
    vehicle_type : str
        two_wheeler | three_wheeler | car | van.
    battery_kwh : float
        Usable battery capacity (kWh).
    mass_kg : float
        Loaded mass (kg).
    cda_m2 : float
        Drag coefficient x frontal area (m2).
    crr : float
        Rolling resistance coefficient.
    drivetrain_eff : float
        Battery -> wheel efficiency (fraction 0-1).
    regen_eff : float
        Wheel -> battery efficiency when braking (fraction 0-1).
    aux_kw : float
        Base auxiliary load (kW).
    hvac_kw_per_deg : float
        HVAC load per degC away from 21 degC (kW).
    max_ac_kw : float
        On-board charger limit (kW).
    max_dc_kw : float
        DC fast-charge limit (kW); 0 = cannot DC charge.
    cruise_kmh : float
        Typical urban cruise speed (km/h).
    max_kmh : float
        Top speed (km/h).
    share : float
        Share of the fleet (weights, normalised over the region's models).
    typical_wh_km : float, optional
        Drivers' rule of thumb (Wh/km); None = TYPICAL_WH_PER_KM of the type.
    """

    name: str
    vehicle_type: str
    battery_kwh: float
    mass_kg: float  # loaded
    cda_m2: float  # drag coefficient x frontal area
    crr: float  # rolling resistance coefficient
    drivetrain_eff: float  # battery -> wheel
    regen_eff: float  # wheel -> battery when braking
    aux_kw: float  # base auxiliary load
    hvac_kw_per_deg: float  # HVAC load per degC away from 21 degC
    max_ac_kw: float  # on-board charger limit
    max_dc_kw: float  # DC fast-charge limit (0 = cannot DC charge)
    cruise_kmh: float  # typical urban cruise speed
    max_kmh: float  # top speed
    share: float  # share of the fleet
    typical_wh_km: float | None = None  # drivers' rule of thumb; None = TYPICAL_WH_PER_KM of the type


# Manufacturer-class figures per region's fleet (common.core.regions.Region.fleet). Only the Indian
# set is in conf/base.yaml's physics table: the other fleets run models the project has no
# parameters for, as a new customer's fleet would.
FLEETS: dict[str, tuple[VehicleModel, ...]] = {
    "india": (
        VehicleModel("Mahindra Treo", "three_wheeler", 7.4, 650, 0.95, 0.016, 0.86, 0.55, 0.08, 0.0, 3.3, 0.0, 27, 55, 0.40),
        VehicleModel("Ather 450X", "two_wheeler", 2.9, 210, 0.45, 0.013, 0.88, 0.55, 0.03, 0.0, 0.75, 0.0, 30, 90, 0.20),
        VehicleModel("Tata Nexon EV", "car", 30.2, 1550, 0.72, 0.011, 0.90, 0.65, 0.25, 0.12, 7.2, 30.0, 32, 140, 0.25),
        VehicleModel("Tata Ace EV", "van", 21.3, 2100, 1.60, 0.013, 0.88, 0.60, 0.20, 0.08, 3.3, 25.0, 28, 80, 0.15),
    ),
    "east_africa": (
        VehicleModel("Roam Air", "two_wheeler", 4.4, 260, 0.55, 0.015, 0.87, 0.50, 0.03, 0.0, 1.5, 0.0, 30, 90, 0.45),
        VehicleModel("Bajaj RE E-TEC", "three_wheeler", 8.9, 700, 1.00, 0.017, 0.86, 0.55, 0.08, 0.0, 3.3, 0.0, 25, 50, 0.20),
        VehicleModel("Nissan Leaf", "car", 40.0, 1700, 0.70, 0.011, 0.90, 0.65, 0.30, 0.10, 6.6, 46.0, 30, 140, 0.25),
        VehicleModel("Foton eView", "van", 50.0, 3000, 2.00, 0.013, 0.88, 0.60, 0.30, 0.10, 7.0, 40.0, 27, 100, 0.10, 230.0),
    ),
    "uk": (
        VehicleModel("Nissan Leaf", "car", 40.0, 1700, 0.70, 0.011, 0.90, 0.65, 0.30, 0.10, 6.6, 46.0, 28, 140, 0.30),
        VehicleModel("Renault Zoe", "car", 52.0, 1600, 0.65, 0.010, 0.90, 0.65, 0.30, 0.15, 22.0, 50.0, 28, 135, 0.25),
        VehicleModel("Ford E-Transit", "van", 68.0, 3200, 2.20, 0.012, 0.88, 0.60, 0.40, 0.20, 11.0, 115.0, 26, 120, 0.30, 260.0),
        VehicleModel("Vauxhall Vivaro-e", "van", 50.0, 2400, 1.70, 0.012, 0.88, 0.60, 0.30, 0.15, 7.4, 100.0, 27, 110, 0.15, 210.0),
    ),
}
MODELS: tuple[VehicleModel, ...] = FLEETS["india"]
MODEL_BY_NAME = {m.name: m for fleet in FLEETS.values() for m in fleet}
# Rough consumption used only by the simulated drivers' "do I need to charge first?" decision.
TYPICAL_WH_PER_KM = {"three_wheeler": 45.0, "two_wheeler": 15.0, "car": 135.0, "van": 140.0}

HOTSPOT_KINDS = ("market", "taxi_stand", "depot", "mall", "metro_station", "hospital", "bus_terminal")
ACCESS_HOURS_24_7 = ("24 hours daily", "24/7", "Open 24 hours", "24 HOURS DAILY")
ACCESS_HOURS_LIMITED = ("7am-10pm daily", "08:00-20:00 Mon-Sat", "Dealership business hours", "6am-11pm")
FAULT_CODES = ("GroundFailure", "PowerMeterFailure", "ConnectorLockFailure", "EVCommunicationError", "InternalError")
ANOMALY_TYPES = (
    "invalid_coord",
    "zero_coord",
    "outside_area",
    "speed_spike",
    "soc_spike",
    "soc_out_of_range",
    "near_duplicate",
    "exact_duplicate",
    "null_field",
)
ANOMALY_WEIGHTS = (0.08, 0.10, 0.10, 0.18, 0.16, 0.04, 0.12, 0.11, 0.11)
OUT_OF_ORDER_SHARE = 0.08  # late-arriving rows, relative to anomaly_rate

# Simulation schema: emitted telemetry + the truth columns behind each emitted row.
SIM_SCHEMA = T.StructType(
    [
        T.StructField("vehicle_id", T.StringType()),
        T.StructField("seq", T.LongType()),  # emission order within the vehicle (file order)
        T.StructField("ts", T.TimestampType()),
        T.StructField("lat", T.DoubleType()),
        T.StructField("lon", T.DoubleType()),
        T.StructField("speed_kmh", T.DoubleType()),
        T.StructField("odometer_km", T.DoubleType()),
        T.StructField("soc_pct", T.DoubleType()),
        T.StructField("altitude_m", T.DoubleType()),
        T.StructField("heading_deg", T.DoubleType()),
        T.StructField("ambient_temp_c", T.DoubleType()),
        T.StructField("copies", T.IntegerType()),  # 2 = exact duplicate emitted
        T.StructField("true_lat", T.DoubleType()),
        T.StructField("true_lon", T.DoubleType()),
        T.StructField("true_soc", T.DoubleType()),
        T.StructField("true_speed_kmh", T.DoubleType()),
        T.StructField("state", T.StringType()),  # moving | parked | charging
        T.StructField("place_id", T.StringType()),  # HOME-<vid> | hotspot id | station id | RND-... | null
        T.StructField("trip_id", T.StringType()),
        T.StructField("charge_id", T.StringType()),
        T.StructField("energy_kwh", T.DoubleType()),  # battery energy used since the previous true sample
        T.StructField("distance_km", T.DoubleType()),  # true distance since previous true sample
        T.StructField("anomaly_type", T.StringType()),
        T.StructField("anomaly_detail", T.StringType()),
    ]
)


def _seed(*parts: object) -> int:
    """Stable 32-bit seed from parts (Python's hash() is salted per process)."""
    return zlib.crc32("|".join(str(p) for p in parts).encode())


# ----------------------------------------------------------------------------------------------
# Geometry helpers (numpy; the Spark side uses common.spatial.geo)
# ----------------------------------------------------------------------------------------------
def offset_m(lat: np.ndarray | float, lon: np.ndarray | float, north_m, east_m):
    """Move a point by metres north/east (local tangent plane; fine for < 50 km).

    Parameters
    ----------
    lat, lon : numpy.ndarray or float
        Start position (degrees WGS84).
    north_m, east_m : numpy.ndarray or float
        Offsets (m); arrays broadcast against the position.

    Returns
    -------
    tuple
        (lat, lon) of the moved point(s) (degrees).
    """
    dlat = np.asarray(north_m) / EARTH_RADIUS_M
    dlon = np.asarray(east_m) / (EARTH_RADIUS_M * np.cos(np.radians(lat)))
    return lat + np.degrees(dlat), lon + np.degrees(dlon)


def bearing_np(lat1, lon1, lat2, lon2):
    """Initial great-circle bearing from point 1 to point 2 (vectorised).

    Parameters
    ----------
    lat1, lon1, lat2, lon2 : numpy.ndarray or float
        Positions (degrees WGS84).

    Returns
    -------
    numpy.ndarray or float
        Bearing in degrees clockwise from north, in [0, 360).
    """
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dl = np.radians(np.asarray(lon2) - np.asarray(lon1))
    x = np.sin(dl) * np.cos(p2)
    y = np.cos(p1) * np.sin(p2) - np.sin(p1) * np.cos(p2) * np.cos(dl)
    return (np.degrees(np.arctan2(x, y)) + 360) % 360


def terrain_altitude_m(lat, lon):
    """Smooth synthetic terrain around ~215 m (Delhi ridge scale: +-30 m over a few km).

    Parameters
    ----------
    lat, lon : numpy.ndarray or float
        Positions (degrees WGS84).

    Returns
    -------
    numpy.ndarray
        Altitude (m), same shape as the inputs.
    """
    lat = np.asarray(lat)
    lon = np.asarray(lon)
    return 215 + 18 * np.sin(lat * 95.0) * np.cos(lon * 80.0) + 9 * np.sin(lat * 260.0 + lon * 170.0)


def random_in_disk(rng: np.random.Generator, lat0, lon0, radius_m, n):
    """Random points spread uniformly over a disk.

    Parameters
    ----------
    rng : numpy.random.Generator
    lat0, lon0 : float
        Centre (degrees WGS84).
    radius_m : float
        Radius (m).
    n : int
        Number of points.

    Returns
    -------
    tuple of numpy.ndarray
        (lat, lon) arrays of `n` positions (degrees).
    """
    r = radius_m * np.sqrt(rng.random(n))
    th = rng.random(n) * 2 * np.pi
    return offset_m(lat0, lon0, r * np.cos(th), r * np.sin(th))


# ----------------------------------------------------------------------------------------------
# The small, driver-side world
# ----------------------------------------------------------------------------------------------
# Columns of World.rollouts and truth.rollouts.
ROLLOUT_COLUMNS = ("rollout_id", "station_id", "ts", "change_type", "fault_effect")


@dataclass
class World:
    """The small world state built on the driver (`build_world`); everything else is simulated from it.

    Attributes
    ----------
    gcfg : GeneratorConfig
    region : Region
    timezone : str
        IANA zone of the simulated days.
    hotspots : pandas.DataFrame
        One row per shared place: hotspot_id, name, kind, lat, lon (degrees), radius_m (m), popularity (sums to 1).
    stations : pandas.DataFrame
        One row per station (AFDC-like): station_id, lat, lon (degrees), status (E/T/P), access, power_kw (kW), ...
    ports : pandas.DataFrame
        One row per port of the stations that exist: station_id, charger_id, port_id, is_dc, power_kw (kW).
    outages : pandas.DataFrame
        One row per port outage: station_id, port_id, start, end (UTC epoch s), cause (fault | maintenance |
        offline), excluded (from uptime), error_code.
    vehicles : pandas.DataFrame
        One row per vehicle: ids, model, battery_kwh (kWh), home_lat/home_lon (degrees), profile, device_mode,
        heartbeat_s (s) and the driver's behaviour.
    day_temp_offsets : numpy.ndarray
        Ambient temperature offset of each day (degC).
    day_midnights : numpy.ndarray
        Local midnights as UTC epoch seconds, days + 1 entries (`day_midnights_utc`).
    rollouts : pandas.DataFrame
        One row per injected rollout (`generator.rollout_*`; empty when off): rollout_id, station_id,
        ts (UTC epoch s, a local midnight), change_type, fault_effect (the true multiplier of the
        station's port fault rate from ts on).
    """

    gcfg: GeneratorConfig
    region: Region
    timezone: str
    hotspots: pd.DataFrame
    stations: pd.DataFrame
    ports: pd.DataFrame
    outages: pd.DataFrame
    vehicles: pd.DataFrame
    day_temp_offsets: np.ndarray
    day_midnights: np.ndarray = field(default_factory=lambda: np.zeros(0))
    rollouts: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=list(ROLLOUT_COLUMNS)))


def build_world(gcfg: GeneratorConfig, timezone: str | None = None) -> World:
    """The driver-side world of a generator config: places, stations, ports, outages, vehicles.

    Parameters
    ----------
    gcfg : GeneratorConfig
        The `generator` config section (sizes, region, start date, days, seed).
    timezone : str, optional
        IANA time zone of the simulated days; default the region's.

    Returns
    -------
    World
        A pure function of `gcfg` (one seeded random stream, drawn in a fixed order).
    """
    region = get_region(gcfg.region)
    tz = timezone or region.timezone
    rng = np.random.default_rng(_seed(gcfg.seed, "world"))
    hotspots = _build_hotspots(rng, gcfg, region)
    stations = _build_stations(rng, gcfg, region, hotspots)
    ports = _build_ports(stations)
    midnights = day_midnights_utc(gcfg.start_date, gcfg.days, tz)
    outages = _build_outages(rng, stations, ports, midnights, gcfg)
    vehicles = _build_vehicles(rng, gcfg, region, tz, hotspots, stations)
    temps = rng.normal(0, 1.5, gcfg.days)
    rollouts = build_rollouts(stations, ports, midnights, gcfg)
    outages = apply_rollouts(outages, rollouts, gcfg)
    return World(gcfg, region, tz, hotspots, stations, ports, outages, vehicles, temps, midnights, rollouts)


def build_rollouts(stations: pd.DataFrame, ports: pd.DataFrame, midnights: np.ndarray, gcfg) -> pd.DataFrame:
    """The injected rollouts: `rollout_share` of the operating stations, each on its own day.

    From their own random stream, so a world with rollouts has the same stations, outages and
    vehicles as one without (until `apply_rollouts` thins the treated stations' faults).

    Parameters
    ----------
    stations, ports : pandas.DataFrame
        `World.stations` and `World.ports`.
    midnights : numpy.ndarray
        Local midnights (UTC epoch s) of the generated days.
    gcfg : GeneratorConfig
        ``rollout_share``, ``rollout_window``, ``rollout_change_type``, ``rollout_fault_effect``.

    Returns
    -------
    pandas.DataFrame
        `ROLLOUT_COLUMNS`; empty when ``rollout_share`` is 0. A station unavailable the whole period
        (status T) or without ports is never treated (there is no fault to change).
    """
    eligible = stations[(stations.status == "E") & stations.station_id.isin(ports.station_id)].station_id.to_numpy()
    if gcfg.rollout_share <= 0 or len(eligible) == 0:
        return pd.DataFrame(columns=list(ROLLOUT_COLUMNS))
    rng = np.random.default_rng(_seed(gcfg.seed, "rollouts"))
    n = max(1, int(round(gcfg.rollout_share * len(eligible))))
    treated = np.sort(rng.choice(eligible, size=n, replace=False))
    days = len(midnights) - 1
    lo, hi = (int(math.floor(share * days)) for share in gcfg.rollout_window)
    day = rng.integers(lo, max(lo + 1, min(hi, days - 1) + 1), size=n)
    return pd.DataFrame(
        {
            "rollout_id": [f"RO{i:04d}" for i in range(n)],
            "station_id": treated,
            "ts": np.asarray(midnights, dtype=float)[day],
            "change_type": gcfg.rollout_change_type,
            "fault_effect": float(gcfg.rollout_fault_effect),
        }
    )


def apply_rollouts(outages: pd.DataFrame, rollouts: pd.DataFrame, gcfg) -> pd.DataFrame:
    """Thin the port faults of each treated station from its rollout on to `fault_effect` of the rate.

    Parameters
    ----------
    outages : pandas.DataFrame
        `World.outages` before the rollouts.
    rollouts : pandas.DataFrame
        `build_rollouts`.
    gcfg : GeneratorConfig
        ``seed``.

    Returns
    -------
    pandas.DataFrame
        `outages` without the thinned faults (a fault starting at or after its station's rollout
        is kept with probability fault_effect; whole-period outages are kept).
    """
    if rollouts.empty or (rollouts.fault_effect >= 1).all():
        return outages
    when = outages.station_id.map(rollouts.groupby("station_id").ts.min())
    effect = outages.station_id.map(rollouts.groupby("station_id").fault_effect.min())
    after = (outages.cause == "fault") & when.notna() & (outages.start >= when)
    chance = np.random.default_rng(_seed(gcfg.seed, "rollout_thinning")).random(len(outages))
    return outages[~after | (chance < effect.fillna(1.0))].reset_index(drop=True)


def _build_hotspots(rng: np.random.Generator, gcfg: GeneratorConfig, region: Region) -> pd.DataFrame:
    """Shared places (hotspot_id, name, kind, lat, lon, radius_m in m, popularity summing to 1)."""
    lat0, lon0, R = region.center_lat, region.center_lon, region.radius_km * 1000
    # >= 1.5 km apart so each is its own cluster
    hs: list[tuple[float, float]] = []
    while len(hs) < gcfg.hotspots:
        la, lo = random_in_disk(rng, lat0, lon0, 0.85 * R, 1)
        if all(haversine_np(la[0], lo[0], a, b) > 1500 for a, b in hs):
            hs.append((float(la[0]), float(lo[0])))
    popularity = rng.dirichlet(np.full(gcfg.hotspots, 2.0))
    return pd.DataFrame(
        {
            "hotspot_id": [f"HS{i:03d}" for i in range(gcfg.hotspots)],
            "name": [f"{HOTSPOT_KINDS[i % len(HOTSPOT_KINDS)].replace('_', ' ').title()} {i}" for i in range(gcfg.hotspots)],
            "kind": [HOTSPOT_KINDS[i % len(HOTSPOT_KINDS)] for i in range(gcfg.hotspots)],
            "lat": [h[0] for h in hs],
            "lon": [h[1] for h in hs],
            "radius_m": rng.uniform(60, 140, gcfg.hotspots).round(0),
            "popularity": popularity,
        }
    )


def _build_stations(rng: np.random.Generator, gcfg: GeneratorConfig, region: Region, hotspots: pd.DataFrame) -> pd.DataFrame:
    """AFDC-like station master (one row per station; power_kw in kW, hotspot_id of a station at a hotspot)."""
    lat0, lon0, R = region.center_lat, region.center_lon, region.radius_km * 1000
    # ~40 % at hotspots (depots / public chargers at markets), the rest spread out
    n_st = gcfg.stations
    at_hs = min(int(round(0.4 * n_st)), gcfg.hotspots)
    st_lat = np.empty(n_st)
    st_lon = np.empty(n_st)
    hs_idx = rng.choice(gcfg.hotspots, size=at_hs, replace=False)
    for i in range(n_st):
        if i < at_hs:
            a, b = offset_m(hotspots.lat[hs_idx[i]], hotspots.lon[hs_idx[i]], *rng.normal(0, 40, 2))
        else:
            a, b = random_in_disk(rng, lat0, lon0, 0.95 * R, 1)
            a, b = a[0], b[0]
        st_lat[i], st_lon[i] = a, b
    is_depot = np.array([i < at_hs and hotspots.kind[hs_idx[i]] == "depot" for i in range(n_st)])
    access = np.where(is_depot | (rng.random(n_st) < 0.12), "private", "public")
    dc_fast = np.where(rng.random(n_st) < 0.45, rng.integers(1, 3, n_st), 0)
    level2 = np.where(dc_fast == 0, rng.integers(1, 4, n_st), rng.integers(0, 3, n_st))
    status = np.where(rng.random(n_st) < 0.93, "E", np.where(rng.random(n_st) < 0.5, "T", "P"))
    status[:at_hs] = "E"  # chargers at hotspots exist and are used by the fleet
    hours = np.where(
        rng.random(n_st) < 0.65,
        rng.choice(ACCESS_HOURS_24_7, n_st),
        rng.choice(ACCESS_HOURS_LIMITED, n_st),
    )
    connectors = [
        " ".join(sorted(set((["CCS2"] * bool(d) + (["CHADEMO"] if d and rng.random() < 0.3 else [])) + (["TYPE2"] if l2 else []) + (["BHARAT_AC001"] if rng.random() < 0.4 else []))))
        for d, l2 in zip(dc_fast, level2)
    ]
    power = np.where(dc_fast > 0, rng.choice([30.0, 50.0, 60.0], n_st), rng.choice([3.3, 7.4, 11.0], n_st))
    return pd.DataFrame(
        {
            "station_id": [f"ST{i:04d}" for i in range(n_st)],
            "name": [f"{'Depot' if is_depot[i] else 'EV Station'} {i}" for i in range(n_st)],
            "lat": st_lat,
            "lon": st_lon,
            "status": status,
            "access": access,
            "access_hours": hours,
            "level2_count": level2.astype(int),
            "dc_fast_count": dc_fast.astype(int),
            "connector_types": connectors,
            "network": np.where(is_depot, "Fleet Depot", rng.choice(region.networks, n_st)),
            "power_kw": power,
            "city": region.city,
            "state": region.state,
            "hotspot_id": [hotspots.hotspot_id[hs_idx[i]] if i < at_hs else None for i in range(n_st)],
        }
    )


def _build_ports(stations: pd.DataFrame) -> pd.DataFrame:
    """Ports of the stations that exist (not planned): DC-fast ports first, two ports per charger."""
    return pd.DataFrame(
        [
            {
                "station_id": s.station_id,
                "charger_id": f"{s.station_id}-C{p // 2}",
                "port_id": f"{s.station_id}-P{p}",
                "is_dc": p < s.dc_fast_count,
                "power_kw": s.power_kw if p < s.dc_fast_count else min(s.power_kw, 7.4),
            }
            for s in stations.itertuples()
            if s.status != "P"
            for p in range(int(s.dc_fast_count + s.level2_count))
        ]
    )


def _build_outages(rng, stations, ports, midnights, gcfg) -> pd.DataFrame:
    """Per-port faults, per-station maintenance (excluded from uptime) and offline gaps."""
    rows: list[tuple[Any, Any, Any, Any, str, bool, str | None]] = []  # error_code is None for maintenance and offline gaps
    t0, t1 = midnights[0], midnights[-1]
    span_days = (t1 - t0) / 86400
    bad = set(rng.choice(stations.station_id, size=max(1, len(stations) // 10), replace=False))
    for st in stations.itertuples():
        sp = ports[ports.station_id == st.station_id]
        if sp.empty:
            continue
        if st.status == "T":  # temporarily unavailable for the whole period
            for p in sp.port_id:
                rows.append((st.station_id, p, t0, t1, "fault", False, "InternalError"))
            continue
        rate = (1 / 6) if st.station_id in bad else (1 / 40)  # faults per port-day
        for p in sp.port_id:
            for _ in range(rng.poisson(rate * span_days)):
                s = rng.uniform(t0, t1)
                rows.append((st.station_id, p, s, min(t1, s + rng.exponential(5 * 3600) + 1200), "fault", False, rng.choice(FAULT_CODES)))
        for _ in range(rng.poisson(span_days / 14)):
            day = rng.integers(0, len(midnights) - 1)
            s = midnights[day] + rng.uniform(10, 14) * 3600
            e = s + rng.uniform(2, 4) * 3600
            for p in sp.port_id:
                rows.append((st.station_id, p, s, e, "maintenance", True, None))
        for _ in range(rng.poisson(span_days / 15)):
            s = rng.uniform(t0, t1)
            e = min(t1, s + rng.uniform(1, 6) * 3600)
            for p in sp.port_id:
                rows.append((st.station_id, p, s, e, "offline", False, None))
    df = pd.DataFrame(rows, columns=["station_id", "port_id", "start", "end", "cause", "excluded", "error_code"])
    if gcfg.fault_trend_per_year or gcfg.fault_season_amplitude:
        # Thinning (Lewis-Shedler) to the seasonal, trending rate, from its own random stream so the
        # world's other draws stay those of a network without them.
        keep_p = fault_rate_multiplier(df["start"].to_numpy(float), t0, t1, gcfg)
        chance = np.random.default_rng(_seed(gcfg.seed, "fault_season")).random(len(df))
        whole_period = (df["start"] == t0) & (df["end"] == t1)
        df = df[(df["cause"] != "fault") | whole_period | (chance < keep_p)]
    return df.sort_values(["port_id", "start"]).reset_index(drop=True)


def fault_rate_multiplier(ts: np.ndarray, t0: float, t1: float, gcfg) -> np.ndarray:
    """Share of a port's base fault rate in force at `ts`: the thinning probability of a fault.

    Parameters
    ----------
    ts : numpy.ndarray
        Instants, UTC epoch s.
    t0, t1 : float
        Start and end of the generated period, UTC epoch s.
    gcfg : GeneratorConfig
        ``fault_trend_per_year``, ``fault_season_amplitude``, ``fault_season_days``.

    Returns
    -------
    numpy.ndarray
        (1 + trend x years since t0) x (1 + amplitude x sin(2 pi (ts - t0) / season)), divided by
        its maximum over [t0, t1].
    """

    def raw(t: np.ndarray) -> np.ndarray:
        """The unnormalised rate multiplier.

        Parameters
        ----------
        t : numpy.ndarray
            Instants, UTC epoch s.

        Returns
        -------
        numpy.ndarray
            Trend x seasonal factor at `t`.
        """
        years = (t - t0) / (365.25 * 86400)
        trend = np.maximum(0.0, 1 + gcfg.fault_trend_per_year * years)
        return trend * (1 + gcfg.fault_season_amplitude * np.sin(2 * np.pi * (t - t0) / (gcfg.fault_season_days * 86400)))

    peak = raw(np.linspace(t0, t1, 4097)).max()
    return raw(np.asarray(ts, dtype=float)) / peak if peak > 0 else np.zeros(len(ts))


def _build_vehicles(rng, gcfg, region, tz, hotspots, stations) -> pd.DataFrame:
    n = gcfg.vehicles
    models = FLEETS[region.fleet]
    shares = np.array([m.share for m in models])
    model_idx = rng.choice(len(models), size=n, p=shares / shares.sum())
    home_lat, home_lon = random_in_disk(rng, region.center_lat, region.center_lon, 0.9 * region.radius_km * 1000, n)
    profile = np.full(n, "regular", dtype=object)
    order = rng.permutation(n)
    n_risk = int(round(gcfg.at_risk_share * n))
    n_off = int(round(gcfg.offline_share * n))
    profile[order[:n_risk]] = "at_risk"
    profile[order[n_risk : n_risk + n_off]] = "offline"
    usable_st = stations[(stations.status == "E")]
    public = usable_st[usable_st.access == "public"]
    rows = []
    for i in range(n):
        m = models[model_idx[i]]
        vid = f"V{i:05d}"
        d = haversine_np(home_lat[i], home_lon[i], public.lat.values, public.lon.values)
        fav = rng.choice(len(hotspots), size=rng.integers(3, 6), replace=False, p=hotspots.popularity.values)
        rows.append(
            {
                "vehicle_id": vid,
                "driver_id": f"D{i:05d}",
                "model": m.name,
                "vehicle_type": m.vehicle_type,
                "battery_kwh": m.battery_kwh,
                "timezone": tz,
                "home_lat": float(home_lat[i]),
                "home_lon": float(home_lon[i]),
                "profile": profile[i],
                "home_charger": bool(rng.random() < 0.5),
                "preferred_station_id": public.station_id.values[int(np.argmin(d))],
                "favourite_hotspots": ",".join(hotspots.hotspot_id.values[fav]),
                "efficiency_factor": float(rng.normal(1.0, 0.06)),
                "daily_km": float(rng.uniform(90, 150)),
                "odometer_start_km": float(rng.uniform(3000, 40000)),
                "odometer_fault": "stuck" if rng.random() < 0.05 else "none",
            }
        )
    vehicles = pd.DataFrame(rows)
    # Devices and behaviours draw from random streams of their own: the draws above do not depend on them.
    return _assign_behaviour(_assign_devices(vehicles, gcfg), gcfg, region)


def _assign_devices(vehicles: pd.DataFrame, gcfg) -> pd.DataFrame:
    """device_mode per vehicle (shares of generator.device_modes) and its parked heartbeat (s)."""
    rng = np.random.default_rng(_seed(gcfg.seed, "devices"))
    n = len(vehicles)
    modes = list(gcfg.device_modes)
    p = np.array([gcfg.device_modes[m] for m in modes], dtype=float)
    counts = np.floor(p * n).astype(int)
    counts[np.argsort(-(p * n - counts))[: n - counts.sum()]] += 1  # largest remainders: shares as exact as n allows
    mode = np.repeat(modes, counts)[rng.permutation(n)]
    lo, hi = gcfg.ignition_heartbeat_s
    ignition_hb = np.exp(rng.uniform(np.log(lo), np.log(hi), n))  # log-uniform: 20 min as likely as 2-4 h
    heartbeat = np.where(mode == "ignition_only", np.round(ignition_hb), float(gcfg.parked_interval_s))
    return vehicles.assign(device_mode=mode, heartbeat_s=heartbeat.astype(int))


def _assign_behaviour(vehicles: pd.DataFrame, gcfg, region) -> pd.DataFrame:
    """Part-time drivers (a profile, not at risk), pre-dawn starters and drivers who sometimes sleep away."""
    rng = np.random.default_rng(_seed(gcfg.seed, "behaviour"))
    n = len(vehicles)
    profile = vehicles.profile.to_numpy(dtype=object).copy()
    regular = np.flatnonzero(profile == "regular")
    n_part = min(len(regular), int(round(gcfg.part_time_share * n)))
    part = rng.permutation(regular)[:n_part]
    profile[part] = "part_time"
    early = rng.random(n) < gcfg.early_start_share
    still_regular = np.flatnonzero(profile == "regular")
    away = np.zeros(n, dtype=bool)
    away[rng.permutation(still_regular)[: int(round(gcfg.away_night_share * n))]] = True
    # away place (a relative's home, a second job's lodging): 3-12 km from home
    dist = rng.uniform(3000, 12000, n)
    bearing = rng.uniform(0, 2 * np.pi, n)
    away_lat, away_lon = offset_m(vehicles.home_lat.to_numpy(), vehicles.home_lon.to_numpy(), dist * np.cos(bearing), dist * np.sin(bearing))
    return vehicles.assign(
        profile=profile,
        early_start=early,
        away_night_prob=np.where(away, gcfg.away_night_prob, 0.0),
        away_lat=away_lat,
        away_lon=away_lon,
    )


# ----------------------------------------------------------------------------------------------
# Per-vehicle simulation (runs on executors)
# ----------------------------------------------------------------------------------------------
class _Trace:
    """Accumulates true samples of one vehicle as column lists of numpy arrays."""

    COLS = ("t", "lat", "lon", "speed", "soc", "state", "place", "trip", "charge", "energy", "dist")

    def __init__(self):
        self.parts: dict[str, list] = {c: [] for c in self.COLS}

    def add(self, **cols):
        """Append n true samples.

        Parameters
        ----------
        **cols : numpy.ndarray or scalar
            Columns of COLS: `t` (UTC epoch s) is an array and sets n; the others are arrays of n
            values or one value for all (str and None stored as object, numbers as float). Units:
            lat/lon degrees, speed km/h, soc %, energy kWh, dist km.
        """
        n = len(cols["t"])
        for c in self.COLS:
            v = cols.get(c)
            if isinstance(v, np.ndarray):
                self.parts[c].append(v)
            else:
                self.parts[c].append(np.full(n, v, dtype=object if isinstance(v, str) or v is None else float))

    def arrays(self) -> dict[str, np.ndarray]:
        """The samples added so far.

        Returns
        -------
        dict of str to numpy.ndarray
            Column of COLS -> all its values in the order added (empty when nothing was added).
        """
        return {c: (np.concatenate(v) if v else np.zeros(0)) for c, v in self.parts.items()}


class VehicleSim:
    """Simulates one vehicle over all days; state carried between activities.

    Parameters
    ----------
    v : pandas.Series
        The vehicle's row of `World.vehicles`, vehicle_id included.
    world : World
    """

    def __init__(self, v: pd.Series, world: World):
        self.v = v
        self.w = world
        self.g = world.gcfg
        self.m = {m.name: m for m in FLEETS[world.region.fleet]}[v.model]
        self.rng = np.random.default_rng(_seed(self.g.seed, "vehicle", v.vehicle_id))
        # part-time days and away nights draw from a stream of their own
        self.brng = np.random.default_rng(_seed(self.g.seed, "behaviour", v.vehicle_id))
        self.trace = _Trace()
        self.t = world.day_midnights[0]
        self.lat, self.lon = v.home_lat, v.home_lon
        self.soc = float(self.rng.uniform(70, 95))
        self.place = f"HOME-{v.vehicle_id}"
        self.trip_n = 0
        self.charge_n = 0
        self.station_lookup = world.stations.set_index("station_id")
        st = world.stations
        self.charge_stations = st[(st.status == "E") & ((st.access == "public") | (st.network == "Fleet Depot"))]
        self.outages = world.outages[world.outages.cause != "maintenance"]
        self.charge_threshold = float(self.rng.uniform(22, 32))

    # ---- ambient temperature (same weather for the whole fleet) ----
    def temp_at(self, t: np.ndarray) -> np.ndarray:
        """Ambient temperature: the region's mean, the day's offset and a daily cycle peaking at 15:00 local.

        Parameters
        ----------
        t : numpy.ndarray
            Instants (UTC epoch s).

        Returns
        -------
        numpy.ndarray
            Temperature (degC) at each instant.
        """
        day = np.clip(((t - self.w.day_midnights[0]) // 86400).astype(int), 0, self.g.days - 1)
        hour = ((t - self.w.day_midnights[day]) / 3600.0) % 24
        r = self.w.region
        return r.mean_temp_c + self.w.day_temp_offsets[day] + r.temp_amplitude_c * np.sin(2 * np.pi * (hour - 9) / 24)

    # ---- parking (optionally charging) ----
    def park_until(self, t_end: float, charge_kw: float = 0.0, target_soc: float = 100.0, attempt_id: str | None = None):
        """Heartbeats every parked_interval_s at the current place; charges if charge_kw > 0.

        `attempt_id` marks a failed charging attempt (at a station whose ports are all down).

        Parameters
        ----------
        t_end : float
            Leave at this instant (UTC epoch s); nothing happens when it is not after the current time.
        charge_kw : float
            Charging power (kW); 0 = no charging.
        target_soc : float
            Stop charging at this SOC (%).
        attempt_id : str, optional
            Charge id of a failed attempt; its samples get state 'failed_attempt'.
        """
        if t_end <= self.t:
            return
        step = self.g.parked_interval_s
        n = max(1, int((t_end - self.t) // step))
        t = self.t + step * np.arange(1, n + 1) + self.rng.uniform(-5, 5, n)
        t = np.minimum(t, t_end)
        t = np.maximum.accumulate(np.maximum(t, self.t + 1))
        jit = self.rng.normal(0, 7, (2, n))
        lat, lon = offset_m(self.lat, self.lon, jit[0], jit[1])
        soc = np.full(n, self.soc)
        state: object = "failed_attempt" if attempt_id else "parked"
        charge = attempt_id
        if charge_kw > 0 and self.soc < target_soc - 1:
            self.charge_n += 1
            charge = f"{self.v.vehicle_id}-C{self.charge_n:04d}"
            soc = self._charge_curve(t - self.t, self.soc, charge_kw, target_soc)
            state = np.where(np.r_[self.soc, soc[:-1]] < target_soc - 0.05, "charging", "parked").astype(object)
            self.soc = float(soc[-1])
        self.trace.add(
            t=t,
            lat=lat,
            lon=lon,
            speed=np.zeros(n),
            soc=soc,
            state=state,
            place=self.place,
            trip=None,
            charge=charge if charge else None,
            energy=np.zeros(n),
            dist=np.zeros(n),
        )
        self.t = float(t[-1])

    def _charge_curve(self, dt: np.ndarray, soc0: float, kw: float, target: float) -> np.ndarray:
        """SOC after dt seconds of charging: constant power to 80 %, then power tapers linearly to 0 at 100 %."""
        rate = kw * 0.92 / self.m.battery_kwh * 100 / 3600  # % per second (92 % charger efficiency)
        if soc0 < 80:
            t80 = (80 - soc0) / rate
            lin = soc0 + rate * dt
            tail = 100 - 20 * np.exp(-rate * np.maximum(dt - t80, 0) / 20)
            soc = np.where(dt <= t80, lin, tail)
        else:
            soc = 100 - (100 - soc0) * np.exp(-rate * dt / 20)
        return np.minimum(soc, target)

    # ---- driving ----
    def drive_to(self, lat2: float, lon2: float, place: str, speed_factor: float = 1.0):
        """Drive along a bent polyline to (lat2, lon2); samples every 30-60 s; physics energy.

        Parameters
        ----------
        lat2, lon2 : float
            Destination (degrees WGS84); closer than 30 m: no trip, only the place changes.
        place : str
            Place id at the destination (HOME-<vid>, AWAY-<vid>, hotspot id, station id or RND-...).
        speed_factor : float
            Multiplies the model's cruise speed.
        """
        straight = float(haversine_np(self.lat, self.lon, lat2, lon2))
        if straight < 30:
            self.place = place
            return
        self.trip_n += 1
        trip = f"{self.v.vehicle_id}-T{self.trip_n:05d}"
        # one or two bends so the path is road-like (~1.25x the straight line)
        k = 2 if straight > 4000 else 1
        fr = np.sort(self.rng.uniform(0.25, 0.75, k))
        north = (lat2 - self.lat) * math.pi / 180 * EARTH_RADIUS_M
        east = (lon2 - self.lon) * math.pi / 180 * EARTH_RADIUS_M * math.cos(math.radians(self.lat))
        perp = self.rng.normal(0, 0.25 * straight, k)
        norm = max(straight, 1.0)
        wl = np.array([self.lat] + [float(offset_m(self.lat, self.lon, f * north - p * east / norm, f * east + p * north / norm)[0]) for f, p in zip(fr, perp)] + [lat2])
        wo = np.array([self.lon] + [float(offset_m(self.lat, self.lon, f * north - p * east / norm, f * east + p * north / norm)[1]) for f, p in zip(fr, perp)] + [lon2])
        seg = haversine_np(wl[:-1], wo[:-1], wl[1:], wo[1:])
        cum = np.r_[0, np.cumsum(seg)]
        length = cum[-1]

        cruise = self.m.cruise_kmh * speed_factor * KMH
        lo, hi = self.g.moving_interval_s
        n_max = int(length / (0.3 * cruise * lo)) + 5
        dt = self.rng.uniform(lo, hi, n_max)
        eps = self.rng.normal(0, 0.22, n_max)
        ar = np.empty(n_max)
        acc = 0.0
        for i in range(n_max):  # AR(1) speed noise; n_max is small (tens)
            acc = 0.7 * acc + eps[i]
            ar[i] = acc
        v = np.clip(cruise * (1 + ar), 2 * KMH, self.m.max_kmh * KMH)
        stops = self.rng.random(n_max) < 0.08  # traffic signals / congestion
        v[stops] = 0.0
        v_prev = np.r_[0.0, v[:-1]]
        ds = 0.5 * (v + v_prev) * dt
        s = np.cumsum(ds)
        n = int(np.searchsorted(s, length)) + 1
        n = min(n, n_max)
        dt, v, v_prev, ds, s = dt[:n], v[:n], v_prev[:n], ds[:n], s[:n]
        # last sample: arrive, speed 0
        over = s[-1] - length
        if over > 0:
            frac = 1 - over / max(ds[-1], 1e-6)
            dt[-1] = max(1.0, dt[-1] * frac)
            ds[-1] -= over
            s[-1] = length
        v[-1] = 0.0
        t = self.t + np.cumsum(dt)
        lat = np.interp(np.minimum(s, length), cum, wl)
        lon = np.interp(np.minimum(s, length), cum, wo)
        alt = terrain_altitude_m(lat, lon)
        alt_prev = np.r_[terrain_altitude_m(self.lat, self.lon), alt[:-1]]
        temp = self.temp_at(t)
        energy = self.energy_kwh(v, v_prev, dt, ds, alt - alt_prev, temp)
        soc = self.soc - np.cumsum(energy) / self.m.battery_kwh * 100
        self.trace.add(
            t=t,
            lat=lat,
            lon=lon,
            speed=v / KMH,
            soc=soc,
            state="moving",
            place=None,
            trip=trip,
            charge=None,
            energy=energy,
            dist=ds / 1000,
        )
        # the arrival sample is stationary at the destination
        self.t, self.lat, self.lon, self.soc, self.place = float(t[-1]), lat2, lon2, float(soc[-1]), place

    def energy_kwh(self, v, v_prev, dt, ds, dz, temp) -> np.ndarray:
        """Battery energy per interval (kWh): traction with regen + auxiliary/HVAC.

        Parameters
        ----------
        v, v_prev : numpy.ndarray
            Speed at the end and at the start of each interval (m/s).
        dt : numpy.ndarray
            Interval durations (s).
        ds : numpy.ndarray
            Distance driven in each interval (m).
        dz : numpy.ndarray
            Altitude change over each interval (m); the grade is capped at +-8 %.
        temp : numpy.ndarray
            Ambient temperature (degC).

        Returns
        -------
        numpy.ndarray
            Energy drawn from the battery per interval (kWh; negative when regen exceeds the load),
            scaled by the vehicle's efficiency_factor.
        """
        m = self.m
        vm = 0.5 * (v + v_prev)
        a = (v - v_prev) / dt
        grade = np.where(ds > 1, np.clip(dz / np.maximum(ds, 1), -0.08, 0.08), 0.0)
        force = m.mass_kg * G * m.crr * (vm > 0) + 0.5 * AIR_DENSITY * m.cda_m2 * vm**2 + m.mass_kg * G * grade + 1.05 * m.mass_kg * a
        p_wheel = force * vm
        p_batt = np.where(p_wheel > 0, p_wheel / m.drivetrain_eff, p_wheel * m.regen_eff)
        p_aux = 1000 * (m.aux_kw + m.hvac_kw_per_deg * np.abs(temp - 21.0))
        e = (p_batt + p_aux) * dt / 3.6e6
        return e * self.v.efficiency_factor

    # ---- charging trips ----
    def nearest_charge_station(self, exclude=()):
        """The nearest station the fleet may charge at (existing, public or a fleet depot).

        Parameters
        ----------
        exclude : iterable of str
            Station ids not to consider (already tried).

        Returns
        -------
        pandas.Series
            The station's row of `World.stations`.
        """
        st = self.charge_stations[~self.charge_stations.station_id.isin(list(exclude))]
        d = haversine_np(self.lat, self.lon, st.lat.values, st.lon.values)
        return st.iloc[int(np.argmin(d))]

    def ports_up(self, station_id: str, t: float) -> list[str]:
        """Ports of a station not in a fault or offline outage (maintenance does not stop the fleet).

        Parameters
        ----------
        station_id : str
        t : float
            Instant (UTC epoch s).

        Returns
        -------
        list of str
            Port ids usable at `t`.
        """
        ports = self.w.ports[self.w.ports.station_id == station_id]
        o = self.outages[(self.outages.station_id == station_id) & (self.outages.start <= t) & (self.outages.end > t)]
        return [p for p in ports.port_id if p not in set(o.port_id)]

    def charge_at_station(self, preferred: str | None = None, target: float = 90.0):
        """Drive to a station and charge; when all its ports are down, try the next nearest (three stations at most).

        A failed attempt waits 8-14 min without SOC gain. The charging power (kW) is the smaller of the
        station's and the vehicle's limit: its DC limit at stations above 22 kW when it can DC charge, else its AC limit.

        Parameters
        ----------
        preferred : str, optional
            Station id tried first; default the nearest.
        target : float
            SOC to charge to (%).
        """
        tried: list[str] = []
        for _ in range(3):
            st = self.station_lookup.loc[preferred] if preferred and not tried else self.nearest_charge_station(tried)
            sid = st.name if preferred and not tried else st.station_id
            slat, slon = offset_m(st.lat, st.lon, *self.rng.normal(0, 10, 2))
            self.drive_to(float(slat), float(slon), sid)
            if self.ports_up(sid, self.t):
                kw = min(float(st.power_kw), self.m.max_dc_kw if st.power_kw > 22 and self.m.max_dc_kw else self.m.max_ac_kw)
                need_h = (target - self.soc) / 100 * self.m.battery_kwh / (kw * 0.92)
                self.park_until(self.t + (need_h * 1.35 + 0.15) * 3600, charge_kw=kw, target_soc=target)
                return
            # failed attempt: wait ~10 min with no SOC gain, then try the next station
            self.charge_n += 1
            self.park_until(self.t + self.rng.uniform(8, 14) * 60, attempt_id=f"{self.v.vehicle_id}-C{self.charge_n:04d}")
            tried.append(sid)

    # ---- the whole period ----
    def run(self) -> pd.DataFrame:
        """Simulate every day of the period, then emit what the device reports.

        Returns
        -------
        pandas.DataFrame
            SIM_SCHEMA columns, in file order (`seq`): one row per true sample (`copies` 0 for one
            the device never sent), plus 1 Hz burst rows and near duplicates; empty when nothing was simulated.
        """
        v, g, rng = self.v, self.g, self.rng
        fav = v.favourite_hotspots.split(",")
        hs = self.w.hotspots.set_index("hotspot_id")
        offline_days: set[int] = set()
        if v.profile == "offline":
            start = int(rng.integers(1, max(2, g.days - 4)))
            offline_days = set(range(start, min(g.days, start + int(rng.integers(3, 6)))))
        for day in range(g.days):
            midnight = self.w.day_midnights[day]
            next_midnight = self.w.day_midnights[day + 1]
            activity = 1.0
            inactive = False
            if v.profile == "at_risk":
                activity = max(0.08, 0.55 - 0.05 * day)
                inactive = rng.random() < min(0.85, 0.15 + 0.06 * day)
            elif v.profile == "part_time":
                inactive = self.brng.random() >= g.part_time_active_share
            if day in offline_days:
                # device off: no rows at all; the vehicle still works (km not observed)
                self.t = next_midnight
                continue
            start_h, end_h = float(rng.normal(8.0, 0.6)), float(rng.normal(20.3, 0.8))
            if v.get("early_start", False):  # same draws, moved before dawn: 04:00-05:30, home by ~16:00
                start_h, end_h = 4.7 + (start_h - 8.0) * 0.6, 16.0 + (end_h - 20.3)
            shift_start = midnight + float(np.clip(start_h, 3.8 if v.get("early_start", False) else 6.0, 10.5)) * 3600
            shift_end = midnight + float(np.clip(end_h, 14.0 if v.get("early_start", False) else 18.0, 22.5)) * 3600
            self.park_until(shift_start, **self._home_charge_kwargs())
            if not inactive:
                target_km = v.daily_km * activity * float(np.clip(rng.normal(1, 0.12), 0.6, 1.4))
                km = 0.0
                while self.t < shift_end and km < target_km:
                    if rng.random() < 0.65:
                        h = hs.loc[rng.choice(fav)]
                        dlat, dlon = random_in_disk(rng, h.lat, h.lon, h.radius_m, 1)
                        place, dwell = h.name, rng.uniform(12, 40)
                    else:
                        dlat, dlon = random_in_disk(rng, self.w.region.center_lat, self.w.region.center_lon, 0.95 * self.w.region.radius_km * 1000, 1)
                        place, dwell = f"RND-{v.vehicle_id}-{day}-{self.trip_n}", rng.uniform(10, 30)
                    # charge first when the trip (plus the way to a charger) would drain the battery
                    need = self.trip_soc_estimate(float(dlat[0]), float(dlon[0]))
                    if self.soc < self.charge_threshold or self.soc - need < 12:
                        self.charge_at_station(target=float(rng.uniform(85, 95)))
                        continue
                    odo0 = self._odo()
                    self.drive_to(float(dlat[0]), float(dlon[0]), place)
                    km += self._odo() - odo0
                    self.park_until(self.t + dwell * 60)
                hl, ho = offset_m(v.home_lat, v.home_lon, *rng.normal(0, 4, 2))
                night_place = f"HOME-{v.vehicle_id}"
                if v.get("away_night_prob", 0.0) > 0 and self.brng.random() < v.away_night_prob:
                    hl, ho = offset_m(v.away_lat, v.away_lon, *self.brng.normal(0, 4, 2))
                    night_place = f"AWAY-{v.vehicle_id}"
                if not v.home_charger and self.soc < 45:
                    self.charge_at_station(preferred=v.preferred_station_id, target=float(rng.uniform(88, 96)))
                elif self.soc - self.trip_soc_estimate(float(hl), float(ho)) < 8:
                    self.charge_at_station(target=float(rng.uniform(60, 80)))
                self.drive_to(float(hl), float(ho), night_place)
            self.park_until(next_midnight, **self._home_charge_kwargs())
        return self._emit()

    def trip_soc_estimate(self, lat2: float, lon2: float) -> float:
        """Pessimistic SOC points a trip to (lat2, lon2) needs (road factor 1.4, 1.5x typical Wh/km).

        Parameters
        ----------
        lat2, lon2 : float
            Destination (degrees WGS84).

        Returns
        -------
        float
            SOC needed (percent points).
        """
        km = float(haversine_np(self.lat, self.lon, lat2, lon2)) / 1000 * 1.4
        wh_km = self.m.typical_wh_km or TYPICAL_WH_PER_KM[self.m.vehicle_type]
        return km * wh_km * 1.5 / 1000 / self.m.battery_kwh * 100

    def _home_charge_kwargs(self) -> dict:
        if self.v.home_charger and self.place == f"HOME-{self.v.vehicle_id}" and self.soc < 70:
            return {"charge_kw": min(self.m.max_ac_kw, 3.3), "target_soc": 100.0}
        return {}

    def _odo(self) -> float:
        d = self.trace.parts["dist"]
        return float(sum(x.sum() for x in d)) if d else 0.0

    # ---- emission: reported values, anomalies, duplicates, order ----
    def _emit(self) -> pd.DataFrame:
        a = self.trace.arrays()
        n = len(a["t"])
        if n == 0:
            return pd.DataFrame(columns=[f.name for f in SIM_SCHEMA.fields])
        rng = np.random.default_rng(_seed(self.g.seed, "emit", self.v.vehicle_id))
        # strictly increasing whole seconds (rounding may collide): t'[i] = max_{j<=i}(t[j]-j) + i
        steps = np.arange(n, dtype="int64")
        t = np.maximum.accumulate(np.round(a["t"]).astype("int64") - steps) + steps
        true_soc = np.clip(a["soc"].astype(float), 0, 100)
        speed = a["speed"].astype(float)
        odo = self.v.odometer_start_km + np.cumsum(a["dist"].astype(float))
        if self.v.odometer_fault == "stuck":
            k0 = int(rng.integers(0, max(1, n // 2)))
            k1 = min(n, k0 + n // 4)
            odo[k0:k1] = odo[k0]
        df = pd.DataFrame(
            {
                "vehicle_id": self.v.vehicle_id,
                "ts": pd.to_datetime(t, unit="s"),
                "lat": a["lat"].astype(float),
                "lon": a["lon"].astype(float),
                "speed_kmh": np.round(speed, 1),
                "odometer_km": np.round(odo, 1),
                "soc_pct": np.round(true_soc),
                "altitude_m": np.round(terrain_altitude_m(a["lat"].astype(float), a["lon"].astype(float)) + rng.normal(0, 3, n), 1),
                "heading_deg": np.round(np.r_[0.0, bearing_np(a["lat"][:-1].astype(float), a["lon"][:-1].astype(float), a["lat"][1:].astype(float), a["lon"][1:].astype(float))], 0),
                "ambient_temp_c": np.round(self.temp_at(a["t"].astype(float)), 1),
                "copies": 1,
                "true_lat": a["lat"].astype(float),
                "true_lon": a["lon"].astype(float),
                "true_soc": true_soc,
                "true_speed_kmh": speed,
                "state": a["state"],
                "place_id": a["place"],
                "trip_id": a["trip"],
                "charge_id": a["charge"],
                "energy_kwh": a["energy"].astype(float),
                "distance_km": a["dist"].astype(float),
                "anomaly_type": None,
                "anomaly_detail": None,
            }
        )
        df.loc[df.state != "moving", "heading_deg"] = np.nan
        df["heading_deg"] = df["heading_deg"].ffill().fillna(0.0)
        vid = self.v.vehicle_id
        df = device_emission(df, self.v.get("device_mode", "continuous"), int(self.v.get("heartbeat_s", self.g.parked_interval_s)), self.g, np.random.default_rng(_seed(self.g.seed, "device", vid)))
        df = self._inject(df, rng)
        df = gps_multipath(df, self.g.multipath_rate, np.random.default_rng(_seed(self.g.seed, "multipath", vid)))
        df["seq"] = np.arange(len(df), dtype="int64")
        df = self._shuffle_order(df, rng)
        return df[[f.name for f in SIM_SCHEMA.fields]]

    def _inject(self, df: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
        n = len(df)
        sent = np.flatnonzero(df["copies"].to_numpy() > 0)  # only rows the device sends can be corrupted
        k = rng.binomial(max(len(sent) - 8, 0), self.g.anomaly_rate)
        if k == 0:
            return df
        # candidates spaced >= 4 sent rows apart, away from the series ends
        cand = sent[4:-4:4]
        idx = np.sort(rng.choice(cand, size=min(k, len(cand)), replace=False))
        types = rng.choice(ANOMALY_TYPES, size=len(idx), p=np.array(ANOMALY_WEIGHTS) / sum(ANOMALY_WEIGHTS))
        extra = []
        r = self.w.region
        for i, typ in zip(idx, types):
            row = df.index[i]
            moving = df.at[row, "state"] == "moving"
            if typ == "speed_spike" and not moving:
                typ = "soc_spike"
            if typ == "soc_spike" and df.at[row, "state"] == "charging":
                typ = "zero_coord"
            detail = None
            if typ == "invalid_coord":
                kind = rng.integers(0, 3)
                if kind == 0:
                    df.at[row, "lat"], df.at[row, "lon"] = np.nan, np.nan
                    detail = "null"
                elif kind == 1:
                    df.at[row, "lon"] = float(rng.choice([1555.63, 181.5, -250.0]))
                    detail = "lon_out_of_range"
                else:
                    df.at[row, "lat"] = float(rng.choice([91.2, -123.0]))
                    detail = "lat_out_of_range"
            elif typ == "zero_coord":
                df.at[row, "lat"], df.at[row, "lon"] = 0.0, 0.0
            elif typ == "outside_area":
                d = rng.uniform(300e3, 900e3)
                th = rng.uniform(0, 2 * np.pi)
                la, lo = offset_m(r.center_lat, r.center_lon, d * np.cos(th), d * np.sin(th))
                df.at[row, "lat"], df.at[row, "lon"] = float(la), float(lo)
                detail = f"{d / 1000:.0f} km from center"
            elif typ == "speed_spike":
                # teleport and return: 5-15 km away, still inside the operating area
                for _ in range(20):
                    d = rng.uniform(5e3, 15e3)
                    th = rng.uniform(0, 2 * np.pi)
                    la, lo = offset_m(df.at[row, "true_lat"], df.at[row, "true_lon"], d * np.cos(th), d * np.sin(th))
                    if haversine_np(la, lo, r.center_lat, r.center_lon) < 0.95 * r.radius_km * 1000:
                        break
                df.at[row, "lat"], df.at[row, "lon"] = float(la), float(lo)
                detail = f"{d / 1000:.1f} km jump"
            elif typ == "soc_spike":
                s = df.at[row, "soc_pct"]
                mag = rng.uniform(15, 40)
                new = s - mag if s - mag >= 0 and (s + mag > 100 or rng.random() < 0.5) else s + mag
                df.at[row, "soc_pct"] = float(np.round(new))
                detail = f"{s:.0f}->{new:.0f}"
            elif typ == "soc_out_of_range":
                df.at[row, "soc_pct"] = float(rng.choice([-3.0, 101.0, 125.0, 255.0]))
            elif typ == "near_duplicate":
                dup = df.loc[row].copy()
                la, lo = offset_m(dup.lat, dup.lon, *rng.normal(0, 15, 2))
                dup["lat"], dup["lon"] = float(la), float(lo)
                dup["speed_kmh"] = float(max(0.0, dup.speed_kmh + rng.normal(0, 2)))
                dup["anomaly_type"] = "near_duplicate"
                extra.append((i + 0.5, dup))
                continue
            elif typ == "exact_duplicate":
                df.at[row, "copies"] = 2
            elif typ == "null_field":
                col = rng.choice(["speed_kmh", "odometer_km"])
                df.at[row, col] = np.nan
                detail = col
            if typ:
                df.at[row, "anomaly_type"] = typ
                df.at[row, "anomaly_detail"] = detail
        if extra:
            pos = np.r_[np.arange(n, dtype=float), [e[0] for e in extra]]
            df = pd.concat([df, pd.DataFrame([e[1] for e in extra])], ignore_index=True)
            df = df.iloc[np.argsort(pos, kind="stable")].reset_index(drop=True)
        return df

    def _shuffle_order(self, df: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
        """Late arrival: a few rows are written after their successor (file order != time order)."""
        n = len(df)
        k = rng.binomial(max(n - 2, 0), self.g.anomaly_rate * OUT_OF_ORDER_SHARE)
        if k == 0:
            return df
        copies = df["copies"].to_numpy()
        cand = np.arange(2, n - 2, 3)
        cand = cand[(copies[cand] > 0) & (copies[cand + 1] > 0)]  # only rows the device sends
        if len(cand) == 0:
            return df
        idx = np.sort(rng.choice(cand, size=min(k, max(1, (n - 4) // 3), len(cand)), replace=False))
        order = np.arange(n)
        for i in idx:
            if pd.isna(df.anomaly_type.iat[i]) and pd.isna(df.anomaly_type.iat[i + 1]):
                order[i], order[i + 1] = order[i + 1], order[i]
                df.iat[i, df.columns.get_loc("anomaly_type")] = "out_of_order"
        df = df.iloc[order].reset_index(drop=True)
        df["seq"] = np.arange(n, dtype="int64")
        return df


# ----------------------------------------------------------------------------------------------
# Device reporting modes (what a telematics unit sends of the true trace)
# ----------------------------------------------------------------------------------------------
BURST_MAX_S = 20  # a burst: up to 20 s of 1 Hz samples (harsh-event style), then the normal rate
_INTERPOLATED = ("lat", "lon", "speed_kmh", "odometer_km", "altitude_m", "ambient_temp_c", "true_lat", "true_lon", "true_soc", "true_speed_kmh")


def device_emission(df: pd.DataFrame, mode: str, heartbeat_s: int, g: GeneratorConfig, rng: np.random.Generator) -> pd.DataFrame:
    """Rows a device of `mode` sends: `copies` = 0 for true samples it never sends; bursts added.

    - continuous: every true sample (moving every moving_interval_s, parked every parked_interval_s);
    - ignition_only: all moving samples, the first (key-off) and last (key-on) parked sample of
      each stop, and one heartbeat per `heartbeat_s` while parked or charging (ignition off);
    - bursty: 1 Hz bursts on `burst_share` of the moving intervals, and `irregular_drop_share`
      of the other moving samples and parked heartbeats never sent (first/last of a stop or trip kept).
    Truth columns stay on every row, so truth tables describe what happened, not what was sent.

    Parameters
    ----------
    df : pandas.DataFrame
        One vehicle's true samples in time order (SIM_SCHEMA columns without `seq`).
    mode : str
        continuous | ignition_only | bursty.
    heartbeat_s : int
        Parked heartbeat of an ignition-only device (s).
    g : GeneratorConfig
        burst_share and irregular_drop_share (fractions 0-1).
    rng : numpy.random.Generator

    Returns
    -------
    pandas.DataFrame
        `df` with `copies` = 0 on the rows not sent (and, for bursty, the 1 Hz rows added).

    Raises
    ------
    ValueError
        For an unknown `mode`.
    """
    if mode == "continuous" or df.empty:
        return df
    parked = (df["state"] != "moving").to_numpy()
    first_parked = parked & ~np.r_[False, parked[:-1]]
    last_parked = parked & ~np.r_[parked[1:], False]
    if mode == "ignition_only":
        t = df["ts"].to_numpy("datetime64[s]").astype("int64")
        run = np.cumsum(first_parked)
        run_start_t = np.where(first_parked, t, 0)
        start_of_run = np.maximum.accumulate(run_start_t)  # t of the run's first row (runs start in time order)
        bucket = np.where(parked, (t - start_of_run) // max(heartbeat_s, 1), -1)
        new_bucket = parked & ((bucket != np.r_[-1, bucket[:-1]]) | (run != np.r_[0, run[:-1]]))
        keep = ~parked | first_parked | last_parked | new_bucket
        return df.assign(copies=np.where(keep, df["copies"], 0))
    if mode == "bursty":
        df = _insert_bursts(df, g.burst_share, rng)
        parked = (df["state"] != "moving").to_numpy()
        trip = df["trip_id"].to_numpy(object)
        first_parked = parked & ~np.r_[False, parked[:-1]]
        last_parked = parked & ~np.r_[parked[1:], False]
        trip_edge = ~parked & ((trip != np.r_[None, trip[:-1]]) | (trip != np.r_[trip[1:], None]))
        protected = first_parked | last_parked | trip_edge | df["_burst"].to_numpy()
        drop = ~protected & (rng.random(len(df)) < g.irregular_drop_share)
        return df.assign(copies=np.where(drop, 0, df["copies"])).drop(columns="_burst")
    raise ValueError(f"unknown device mode {mode!r}")


def _insert_bursts(df: pd.DataFrame, share: float, rng: np.random.Generator) -> pd.DataFrame:
    """1 Hz rows inside `share` of the moving intervals, linearly interpolated between true samples.

    The interval's true energy and distance are split evenly over its new rows, so sums over a trip
    stay what the physics produced."""
    t = df["ts"].to_numpy("datetime64[s]").astype("int64")
    moving = (df["state"] == "moving").to_numpy()
    dt = np.diff(t)
    cand = np.flatnonzero(moving[1:] & (dt >= 3)) + 1
    chosen = cand[rng.random(len(cand)) < share]
    out = df.assign(_burst=False)
    if len(chosen) == 0:
        return out
    steps = dt[chosen - 1]  # seconds of the interval
    inserted = np.minimum(steps - 1, BURST_MAX_S)  # 1 Hz from the interval's start, at most BURST_MAX_S rows
    at = np.repeat(chosen, inserted)
    offset = np.arange(inserted.sum()) - np.repeat(np.cumsum(inserted) - inserted, inserted) + 1
    frac = offset / np.repeat(steps, inserted)
    end, start = df.iloc[at], df.iloc[at - 1]
    new = end.copy()
    for col in _INTERPOLATED:
        a, b = start[col].to_numpy(float), end[col].to_numpy(float)
        new[col] = a + frac * (b - a)
    new["ts"] = pd.to_datetime(t[at - 1] + offset, unit="s")
    new["soc_pct"] = np.round(new["true_soc"].to_numpy(float))
    new["speed_kmh"] = np.round(new["speed_kmh"].to_numpy(float), 1)
    new["odometer_km"] = np.round(new["odometer_km"].to_numpy(float), 1)
    share_of_step = 1.0 / np.repeat(steps, inserted)
    new["energy_kwh"] = end["energy_kwh"].to_numpy(float) * share_of_step
    new["distance_km"] = end["distance_km"].to_numpy(float) * share_of_step
    new["_burst"] = True
    ends = out.index[chosen]
    rest = (steps - inserted) / steps  # the row that ends the interval keeps the remaining seconds' share
    out.loc[ends, "energy_kwh"] = out.loc[ends, "energy_kwh"] * rest
    out.loc[ends, "distance_km"] = out.loc[ends, "distance_km"] * rest
    out.loc[ends, "_burst"] = True
    merged = pd.concat([out, new], ignore_index=True)
    return merged.sort_values("ts", kind="stable").reset_index(drop=True)


def gps_multipath(df: pd.DataFrame, rate: float, rng: np.random.Generator) -> pd.DataFrame:
    """Urban-canyon multipath: from a few sent rows on, 1-3 sent samples reported 15-80 m off.

    Real receivers do this near tall buildings; it is noise the pipeline must live with (below the
    cleaning rules' jump thresholds), not a labelled anomaly: truth positions are unchanged.

    Parameters
    ----------
    df : pandas.DataFrame
        One vehicle's rows after anomaly injection (copies, anomaly_type, lat, lon).
    rate : float
        Probability that an episode starts at a sent, unlabelled row (generator.multipath_rate).
    rng : numpy.random.Generator

    Returns
    -------
    pandas.DataFrame
        `df` with the reported lat/lon (degrees) of the affected rows moved.
    """
    if rate <= 0 or df.empty:
        return df
    ok = np.flatnonzero((df["copies"].to_numpy() > 0) & df["anomaly_type"].isna().to_numpy())
    starts = np.flatnonzero(rng.random(len(ok)) < rate)
    lat = df["lat"].to_numpy(float).copy()
    lon = df["lon"].to_numpy(float).copy()
    for s in starts:
        rows = ok[s : s + int(rng.integers(1, 4))]
        d, th = rng.uniform(15, 80), rng.uniform(0, 2 * np.pi)
        lat[rows], lon[rows] = offset_m(lat[rows], lon[rows], d * np.cos(th), d * np.sin(th))
    return df.assign(lat=lat, lon=lon)


def simulate_vehicles(world: World):
    """mapInPandas function: vehicle rows in, simulated telemetry rows out.

    Parameters
    ----------
    world : World

    Returns
    -------
    callable
        Iterator of pandas frames with vehicle_id -> iterator of SIM_SCHEMA frames.
    """

    def fn(batches):
        """Simulate each vehicle of each batch (`VehicleSim.run`).

        Parameters
        ----------
        batches : iterator of pandas.DataFrame
            Frames with a vehicle_id column.

        Yields
        ------
        pandas.DataFrame
            One vehicle's rows (SIM_SCHEMA); vehicles without rows yield nothing.
        """
        for pdf in batches:
            for _, v in pdf.iterrows():
                full = world.vehicles.set_index("vehicle_id").loc[v.vehicle_id]
                full["vehicle_id"] = v.vehicle_id
                out = VehicleSim(full, world).run()
                if len(out):
                    yield out

    return fn


# ----------------------------------------------------------------------------------------------
# Charging network side: sessions and OCPP status per port (runs per station on executors)
# ----------------------------------------------------------------------------------------------
NETWORK_SCHEMA = T.StructType(
    [
        T.StructField("record_type", T.StringType()),  # session | status
        T.StructField("station_id", T.StringType()),
        T.StructField("charger_id", T.StringType()),
        T.StructField("port_id", T.StringType()),
        T.StructField("ts", T.TimestampType()),
        T.StructField("end_ts", T.TimestampType()),
        T.StructField("status", T.StringType()),
        T.StructField("error_code", T.StringType()),
        T.StructField("info", T.StringType()),
        T.StructField("session_id", T.StringType()),
        T.StructField("vehicle_id", T.StringType()),
        T.StructField("kwh", T.DoubleType()),
        T.StructField("success", T.BooleanType()),
    ]
)

FLEET_EVENT_SCHEMA = "station_id string, charge_id string, vehicle_id string, start double, end double, kwh double, success boolean"

STATUS_HEARTBEAT_S = 1800  # status re-sent every 30 min while nothing changes (offline = silence)

# One session: (port_id, start, end, kwh, success, error_code, vehicle_id, session_id); start, end in UTC epoch s.
_Session = tuple[Any, Any, Any, Any, bool, Any, Any, Any]


class _PortOutages:
    """One station's outages indexed by port (built once per station: the session and status loops
    ask "is this port down at t" for every session and heartbeat).

    Parameters
    ----------
    outages : pandas.DataFrame
        The station's rows of `World.outages` (start, end in UTC epoch s), in their order.
    """

    def __init__(self, outages: pd.DataFrame) -> None:
        self._by_port: dict[str, list[Any]] = {}
        for o in outages.itertuples(index=False):
            self._by_port.setdefault(o.port_id, []).append(o)
        self._offline = {p: [(o.start, o.end) for o in rows if o.cause == "offline"] for p, rows in self._by_port.items()}

    def records(self, port: str) -> list[Any]:
        """The port's outages (namedtuples with start, end, cause, error_code), in `World.outages` order.

        Parameters
        ----------
        port : str
            Port id.

        Returns
        -------
        list
            Outage rows of the port.
        """
        return self._by_port.get(port, [])

    def offline(self, port: str) -> list[tuple[float, float]]:
        """(start, end) of the port's offline gaps (UTC epoch s).

        Parameters
        ----------
        port : str
            Port id.

        Returns
        -------
        list of tuple
            The gaps, in `World.outages` order.
        """
        return self._offline.get(port, [])


def _port_down(outages: _PortOutages, port: str, t: float) -> Any:
    """The outage (fault, maintenance or offline) of a port at an instant.

    Parameters
    ----------
    outages : _PortOutages
        The station's outages.
    port : str
        Port id.
    t : float
        Instant (UTC epoch s).

    Returns
    -------
    namedtuple or None
        The first outage of the port (in `World.outages` order) with start <= t < end; None when
        the port is not down.
    """
    return next((o for o in outages.records(port) if o.start <= t and o.end > t), None)


def _fleet_sessions(events: pd.DataFrame, ports: pd.DataFrame, outages: _PortOutages) -> tuple[list[_Session], dict[str, list[tuple[float, float]]]]:
    """Place the fleet's charging events on the station's ports, in order of start.

    Parameters
    ----------
    events : pandas.DataFrame
        The station's fleet charging events (FLEET_EVENT_SCHEMA: start, end in UTC epoch s, kwh in kWh).
    ports : pandas.DataFrame
        The station's rows of `World.ports`.
    outages : _PortOutages
        The station's outages (`World.outages` rows).

    Returns
    -------
    sessions : list of tuple
        (port_id, start, end, kwh, success, error_code, vehicle_id, charge_id) per event; start, end in UTC
        epoch s, kwh in kWh (0 when failed). An event goes to the first free port that is up, else the first
        free port, else the first port; it fails on a port that is down.
    busy : dict of str to list of tuple
        Port id -> (start, end) intervals (UTC epoch s) taken by these sessions.
    """
    sessions: list[_Session] = []
    busy: dict[str, list[tuple[float, float]]] = {p: [] for p in ports.port_id}
    for e in events.sort_values("start").itertuples():
        free = [p for p in ports.port_id if all(not (s < e.end and e.start < en) for s, en in busy[p])]
        up = [p for p in free if _port_down(outages, p, e.start) is None]
        port = (up or free or list(ports.port_id))[0]
        o = _port_down(outages, port, e.start)
        ok = bool(e.success) and o is None
        err = None if ok else (o.error_code if o is not None and o.error_code else "EVCommunicationError")
        busy[port].append((e.start, e.end))
        sessions.append((port, e.start, e.end, e.kwh if ok else 0.0, ok, err, e.vehicle_id, e.charge_id))
    return sessions, busy


def session_failure_probability(gcfg: GeneratorConfig, station: Any, timezone: str) -> Callable[[float, int], float]:
    """P(failure) of a background session on an available port of one station: the injected drivers.

    Parameters
    ----------
    gcfg : GeneratorConfig
        ``session_failure_rate`` (probability at the reference levels) and ``session_failure_log_odds``.
    station : namedtuple
        The station's row of `World.stations` (dc_fast_count, network).
    timezone : str
        IANA zone of the local start hour and weekday.

    Returns
    -------
    callable
        (start in UTC epoch s, sessions started on the port in the previous 24 h) -> probability.
        Without injected drivers it returns the base rate itself, so the draws compare as before.
    """
    base, log_odds = gcfg.session_failure_rate, gcfg.session_failure_log_odds
    if not log_odds:
        return lambda _start, _load: base
    fixed = log_odds.get("dc_station", 0.0) * float(station.dc_fast_count > 0) + log_odds.get(f"network:{station.network}", 0.0)
    zone = ZoneInfo(timezone)

    def probability(start: float, load: int) -> float:
        """P(failure) of a session starting at `start` (UTC epoch s) after `load` recent sessions on its port.

        Parameters
        ----------
        start : float
            Session start (UTC epoch s).
        load : int
            Sessions started on the port in the previous 24 h.

        Returns
        -------
        float
            Probability in (0, 1).
        """
        local = datetime.fromtimestamp(start, zone)
        x = fixed + log_odds.get("night", 0.0) * (local.hour < 6) + log_odds.get("weekend", 0.0) * (local.weekday() >= 5) + log_odds.get("load", 0.0) * load
        return base if x == 0 else 1.0 / (1.0 + math.exp(-(math.log(base / (1.0 - base)) + x)))

    return probability


def _recent_load(busy: list[tuple[float, float]], start: float) -> int:
    """Sessions on a port that started in the 24 h before `start` (the product's load_sessions_24h)."""
    return sum(1 for s, _ in busy if start - 86400 <= s < start)


def _background_sessions(
    rng: np.random.Generator,
    ports: pd.DataFrame,
    outages: _PortOutages,
    busy: dict[str, list[tuple[float, float]]],
    t0: float,
    t1: float,
    failure: Callable[[float, int], float] | None = None,
) -> list[_Session]:
    """Sessions of background (non-fleet) users: ~3 per port-day, skipped where a port is busy.

    Parameters
    ----------
    rng : numpy.random.Generator
        The station's random stream (draws per port, in port order).
    ports : pandas.DataFrame
        The station's rows of `World.ports` (power_kw in kW).
    outages : _PortOutages
        The station's outages (`World.outages` rows).
    busy : dict of str to list of tuple
        Port id -> taken (start, end) intervals (UTC epoch s); the new sessions are appended to it.
    t0, t1 : float
        Start and end of the simulated period (UTC epoch s).
    failure : callable, optional
        `session_failure_probability` of the station; default a 4 % failure rate. A session on a
        port that is down fails whatever it says.

    Returns
    -------
    list of tuple
        (port_id, start, end, kwh, success, error_code, None, session_id) per session; start, end in UTC
        epoch s, kwh in kWh (0 when failed).
    """
    failure = failure or (lambda _start, _load: 0.04)
    sessions: list[_Session] = []
    for p in ports.itertuples():
        n = rng.poisson(3 * (t1 - t0) / 86400)
        for j, s in enumerate(np.sort(rng.uniform(t0, t1 - 3 * 3600, n))):
            dur = rng.uniform(0.4, 2.0) * 3600
            if any(s < en and bs < s + dur for bs, en in busy[p.port_id]):
                continue
            o = _port_down(outages, p.port_id, s)
            ok = o is None and rng.random() > failure(s, _recent_load(busy[p.port_id], s))
            err = None if ok else (o.error_code if o is not None and o.error_code else rng.choice(FAULT_CODES))
            kwh = float(p.power_kw * 0.85 * dur / 3600 * rng.uniform(0.5, 1.0)) if ok else 0.0
            end = s + (dur if ok else rng.uniform(60, 300))
            busy[p.port_id].append((s, end))
            sessions.append((p.port_id, s, end, kwh, ok, err, None, f"{p.port_id}-S{j:05d}"))
    return sessions


def _session_rows(station_id: str, ports: pd.DataFrame, sessions: list[_Session]) -> list[tuple[Any, ...]]:
    """NETWORK_SCHEMA rows of record_type session, one per session in order.

    Parameters
    ----------
    station_id : str
        The station.
    ports : pandas.DataFrame
        The station's rows of `World.ports` (gives each port's charger_id).
    sessions : list of tuple
        (port_id, start, end, kwh, success, error_code, vehicle_id, session_id); start, end in UTC epoch s, kwh in kWh.

    Returns
    -------
    list of tuple
        Rows in NETWORK_SCHEMA column order; ts, end_ts still UTC epoch s.
    """
    rows: list[tuple[Any, ...]] = []
    charger = dict(zip(ports.port_id, ports.charger_id))
    for sess in sessions:
        port, s, e, kwh, ok, err, vid, sid_ = sess
        rows.append(("session", station_id, charger[port], port, s, e, None, err, None, sid_, vid, kwh, ok))
    return rows


def _port_status_changes(port_id: str, outages: _PortOutages, sessions: list[_Session], t0: float) -> list[tuple[Any, str, str | None, str | None]]:
    """OCPP status changes of one port from its faults, maintenance and sessions, sorted by time.

    Parameters
    ----------
    port_id : str
        The port.
    outages : _PortOutages
        The station's outages (`World.outages` rows; start, end in UTC epoch s).
    sessions : list of tuple
        All the station's sessions (port_id, start, end, kwh, success, error_code, vehicle_id, session_id).
    t0 : float
        Start of the simulated period (UTC epoch s): the port is Available then.

    Returns
    -------
    list of tuple
        (ts, status, error_code, info) with ts in UTC epoch s, stably sorted by ts. A failed session on a port
        that is down adds nothing.
    """
    ev: list[tuple[Any, str, str | None, str | None]] = [(t0, "Available", None, None)]  # (ts, status, error_code, info)
    for o in outages.records(port_id):
        if o.cause == "fault":
            ev += [(o.start, "Faulted", o.error_code, None), (o.end, "Available", None, None)]
        elif o.cause == "maintenance":
            ev += [(o.start, "Unavailable", None, "scheduled_maintenance"), (o.end, "Available", None, None)]
    for port, s, e, _kwh, ok, err, _vid, _ in sessions:
        if port != port_id:
            continue
        if ok:
            ev += [(s, "Preparing", None, None), (s + 60, "Charging", None, None), (e, "Finishing", None, None), (e + 60, "Available", None, None)]
        elif _port_down(outages, port, s) is None:
            ev += [(s, "Preparing", None, None), (s + 30, "Faulted", err, "session failed"), (e, "Available", None, None)]
    ev.sort(key=lambda x: x[0])
    return ev


def _status_rows(station_id: str, ports: pd.DataFrame, outages: _PortOutages, sessions: list[_Session], t0: float, t1: float, heartbeat_s: int) -> list[tuple[Any, ...]]:
    """NETWORK_SCHEMA rows of record_type status: each port's changes, heartbeats, none in offline gaps.

    Parameters
    ----------
    station_id : str
        The station.
    ports : pandas.DataFrame
        The station's rows of `World.ports`.
    outages : _PortOutages
        The station's outages (`World.outages` rows; start, end in UTC epoch s).
    sessions : list of tuple
        All the station's sessions (port_id, start, end, kwh, success, error_code, vehicle_id, session_id).
    t0, t1 : float
        Start and end of the simulated period (UTC epoch s).
    heartbeat_s : int
        Interval (s) at which an unchanged status is re-sent.

    Returns
    -------
    list of tuple
        Rows in NETWORK_SCHEMA column order, port by port in time order; ts still UTC epoch s. A re-sent
        status repeats status and error_code but not info.
    """
    rows: list[tuple[Any, ...]] = []
    for p in ports.itertuples():
        ev = _port_status_changes(p.port_id, outages, sessions, t0)
        # fill heartbeats (re-sent status) and drop everything inside offline gaps
        off = outages.offline(p.port_id)
        out = []
        for i, (t, st, err, info) in enumerate(ev):
            t_next = ev[i + 1][0] if i + 1 < len(ev) else t1
            hb = np.arange(t, t_next, heartbeat_s)
            for k, th in enumerate(hb):
                out.append((th, st, err, info if k == 0 else None))
        for th, st, err, info in out:
            if any(start <= th < end for start, end in off):
                continue
            rows.append(("status", station_id, p.charger_id, p.port_id, th, None, st, err, info, None, None, None, None))
    return rows


def _network_frame_of_rows(rows: list[tuple[Any, ...]]) -> pd.DataFrame:
    """A pandas frame of NETWORK_SCHEMA rows, ts and end_ts converted to timestamps.

    Parameters
    ----------
    rows : list of tuple
        Rows in NETWORK_SCHEMA column order; ts, end_ts in UTC epoch s (end_ts None for status rows).

    Returns
    -------
    pandas.DataFrame
        The rows; ts, end_ts as naive UTC datetime64 rounded to the second (NaT where missing).
    """
    df = pd.DataFrame(rows, columns=[f.name for f in NETWORK_SCHEMA.fields])
    df["ts"] = pd.to_datetime(np.round(df.ts.astype(float)), unit="s")
    df["end_ts"] = pd.to_datetime(df.end_ts.astype(float).round(), unit="s")
    return df


def with_rollout(failure: Callable[[float, int], float], rollouts: pd.DataFrame, station_id: str) -> Callable[[float, int], float]:
    """A station's session failure probability times its rollout's fault effect from the rollout on.

    A failed session on an available port is a fault of the status feed (Preparing, then
    Faulted) and outnumbers the port faults, so a rollout's effect on the fault rate applies to
    both. The session's own draw is unchanged (only the threshold moves): every other draw of the
    world stays that of the same world without rollouts.

    Parameters
    ----------
    failure : callable
        `session_failure_probability` of the station.
    rollouts : pandas.DataFrame
        `World.rollouts`.
    station_id : str
        The station.

    Returns
    -------
    callable
        `failure` itself for an untreated station (or an effect of 1).
    """
    mine = rollouts[rollouts.station_id == station_id]
    if mine.empty or float(mine.fault_effect.min()) >= 1:
        return failure
    ts, effect = float(mine.ts.min()), float(mine.fault_effect.min())
    return lambda start, load: failure(start, load) * (effect if start >= ts else 1.0)


def network_records(world: World):
    """cogroup function: (station's fleet charging events) -> sessions + status notifications.

    Parameters
    ----------
    world : World

    Returns
    -------
    callable
        (key, events) -> pandas frame of NETWORK_SCHEMA rows for one station.
    """

    def fn(key, events: pd.DataFrame) -> pd.DataFrame:
        """Sessions (fleet and background users) and OCPP status notifications of one station.

        Parameters
        ----------
        key : tuple
            (station_id,).
        events : pandas.DataFrame
            The station's fleet charging events (FLEET_EVENT_SCHEMA: start, end in UTC epoch s, kwh).

        Returns
        -------
        pandas.DataFrame
            NETWORK_SCHEMA rows (ts, end_ts UTC); status re-sent every 30 min, none inside offline
            gaps; empty for a station without ports.
        """
        sid = key[0]
        rng = np.random.default_rng(_seed(world.gcfg.seed, "station", sid))
        ports = world.ports[world.ports.station_id == sid]
        if ports.empty:
            return pd.DataFrame(columns=[f.name for f in NETWORK_SCHEMA.fields])
        outages = _PortOutages(world.outages[world.outages.station_id == sid])
        t0, t1 = world.day_midnights[0], world.day_midnights[-1]
        sessions, busy = _fleet_sessions(events, ports, outages)
        station = next(world.stations[world.stations.station_id == sid].itertuples())
        failure = with_rollout(session_failure_probability(world.gcfg, station, world.timezone), world.rollouts, sid)
        sessions += _background_sessions(rng, ports, outages, busy, t0, t1, failure)
        rows = _session_rows(sid, ports, sessions) + _status_rows(sid, ports, outages, sessions, t0, t1, STATUS_HEARTBEAT_S)
        return _network_frame_of_rows(rows)

    return fn


# ----------------------------------------------------------------------------------------------
# Spark side: telemetry, raw files and truth tables
# ----------------------------------------------------------------------------------------------
def simulate(spark: SparkSession, world: World) -> DataFrame:
    """Distributed telemetry simulation: one mapInPandas task per chunk of vehicles.

    Parameters
    ----------
    spark : SparkSession
    world : World
        The generated world (`build_world`).

    Returns
    -------
    DataFrame
        SIM_SCHEMA rows (truth.points), as `VehicleSim.run` returns them for each vehicle.
    """
    n_tasks = max(1, math.ceil(len(world.vehicles) / world.gcfg.vehicles_per_task))
    ids = spark.createDataFrame(world.vehicles[["vehicle_id"]])
    return ids.repartition(n_tasks, "vehicle_id").mapInPandas(simulate_vehicles(world), SIM_SCHEMA)


def _epoch(col: str) -> F.Column:
    return F.col(col).cast("double")


def _timestamp_text(ts: F.Column, timezone: str, style: str) -> F.Column:
    """UTC instant -> text as a source system writes it (generator.timestamp_style)."""
    if style == "utc":
        return F.date_format(ts, "yyyy-MM-dd HH:mm:ss")
    if style == "utc_z":
        return F.date_format(ts, "yyyy-MM-dd'T'HH:mm:ss'Z'")
    local = F.from_utc_timestamp(ts, timezone)
    offset_min = ((local.cast("long") - ts.cast("long")) / 60).cast("int")
    sign = F.when(offset_min < 0, "-").otherwise("+")
    hh = F.lpad((F.abs(offset_min) / 60).cast("int").cast("string"), 2, "0")
    mm = F.lpad((F.abs(offset_min) % 60).cast("string"), 2, "0")
    return F.concat(F.date_format(local, "yyyy-MM-dd'T'HH:mm:ss"), sign, hh, F.lit(":"), mm)


def write_raw_telemetry(points: DataFrame, world: World, path: str) -> int:
    """Raw telemetry as the devices sent it (exact duplicates twice, file order = seq); rows written.

    Parameters
    ----------
    points : DataFrame
        truth.points (`simulate`).
    world : World
        The generated world; its gcfg sets layout, output_format and timestamp_style.
    path : str
        Output folder (overwritten).

    Returns
    -------
    int
        Rows written (sum of `copies`).
    """
    g = world.gcfg
    sent = points.where(F.col("copies") > 0).withColumn("copy", F.explode(F.sequence(F.lit(1), F.col("copies"))))
    telemetry = sent.select("vehicle_id", "ts", "lat", "lon", "speed_kmh", "odometer_km", "soc_pct", "altitude_m", "heading_deg", "ambient_temp_c", "seq")
    telemetry = telemetry.repartition(max(1, math.ceil(len(world.vehicles) / g.vehicles_per_task)), "vehicle_id").sortWithinPartitions("vehicle_id", "seq").drop("seq")
    if g.layout == "payd":
        # A PAYD operator's export: its own names, no altitude/heading/temperature columns.
        telemetry = telemetry.select(
            _timestamp_text(F.col("ts"), world.timezone, g.timestamp_style).alias("timestamp"),
            F.col("vehicle_id").alias("telematics_id"),
            F.col("lat").alias("latitude"),
            F.col("lon").alias("longitude"),
            F.col("speed_kmh").alias("speed_km_h"),
            F.col("odometer_km").alias("odometer_reading_kms"),
            F.col("soc_pct").alias("state_of_charge"),
        )
        telemetry.write.mode("overwrite").option("header", True).csv(path)
    elif g.output_format == "parquet":
        telemetry.write.mode("overwrite").parquet(path)
    else:
        telemetry.withColumn("ts", _timestamp_text(F.col("ts"), world.timezone, g.timestamp_style)).write.mode("overwrite").option("header", True).csv(path)
    # rows written = sum of copies (the explode above), counted on truth.points, not the raw files
    return int(first_row(points.agg(F.sum("copies")))[0] or 0)


# The PAYD register's own words for vehicle types (mapped back by conf/datasets/payd_fleet.yaml).
PAYD_CATEGORIES = {"two_wheeler": "motorbike", "three_wheeler": "tuk-tuk", "car": "saloon", "van": "panel van"}


def write_raw_masters(spark: SparkSession, world: World, raw: dict[str, str]) -> None:
    """Vehicles (and, with the network, stations) as single CSV files.

    Parameters
    ----------
    spark : SparkSession
    world : World
        The generated world (`build_world`).
    raw : dict
        `raw_paths`: the vehicles and stations folders (overwritten).
    """
    v = world.vehicles
    if world.gcfg.layout == "payd":
        register = pd.DataFrame(
            {
                "telematics_id": v.vehicle_id,
                "make_model": v.model,
                "category": v.vehicle_type.map(PAYD_CATEGORIES),
                "battery_capacity_kwh": v.battery_kwh,
                "driver_ref": v.driver_id,
            }
        )
        spark.createDataFrame(register).coalesce(1).write.mode("overwrite").option("header", True).csv(raw["vehicles"])
    else:
        spark.createDataFrame(v[["vehicle_id", "model", "vehicle_type", "battery_kwh", "driver_id", "timezone"]]).coalesce(1).write.mode("overwrite").option("header", True).csv(raw["vehicles"])
    if world.gcfg.network:
        st = world.stations.drop(columns=["hotspot_id"])
        spark.createDataFrame(st).coalesce(1).write.mode("overwrite").option("header", True).csv(raw["stations"])


def truth_frames(spark: SparkSession, world: World, points: DataFrame) -> dict[str, DataFrame]:
    """The truth tables derived from the world and truth.points, in the order they are written.

    Parameters
    ----------
    spark : SparkSession
    world : World
        The generated world (`build_world`).
    points : DataFrame
        truth.points as written (`simulate`), read back.

    Returns
    -------
    dict
        truth table name (without `truth.`) -> DataFrame: vehicles, homes, at_risk_drivers,
        anomalies, trips, hotspots, charging_events. truth.charging_sites and
        truth.network_records are built from the written charging_events
        (`truth_charging_sites`, `network_frame`); truth.charger_outages by `truth_charger_outages`.
    """
    clean = true_samples(points)
    return {
        **truth_people(spark, world),
        "anomalies": truth_anomalies(points),
        "trips": truth_trips(clean),
        "hotspots": truth_hotspots(spark, world, clean),
        "charging_events": truth_charging_events(spark, world, clean),
    }


def true_samples(points: DataFrame) -> DataFrame:
    """truth.points without the near-duplicate rows the devices added (one row per true sample).

    Parameters
    ----------
    points : DataFrame
        truth.points.

    Returns
    -------
    DataFrame
        `points` rows whose anomaly_type is not 'near_duplicate' (1 Hz burst rows stay).
    """
    return points.where(F.col("anomaly_type").isNull() | (F.col("anomaly_type") != "near_duplicate"))


def truth_people(spark: SparkSession, world: World) -> dict[str, DataFrame]:
    """truth.vehicles (fleet and people), truth.homes (lat/lon in degrees) and truth.at_risk_drivers.

    Parameters
    ----------
    spark : SparkSession
    world : World
        The generated world (`build_world`).

    Returns
    -------
    dict
        'vehicles', 'homes', 'at_risk_drivers' -> DataFrame, each one row per vehicle.
    """
    v = world.vehicles
    return {
        "vehicles": spark.createDataFrame(v.drop(columns=["favourite_hotspots", "away_lat", "away_lon"])),
        "homes": spark.createDataFrame(v[["vehicle_id", "home_lat", "home_lon"]]),
        "at_risk_drivers": spark.createDataFrame(v[["vehicle_id", "driver_id", "profile"]]).withColumn("is_at_risk", F.col("profile") == "at_risk"),
    }


def truth_anomalies(points: DataFrame) -> DataFrame:
    """truth.anomalies: every injected anomaly (vehicle_id, ts of the affected raw row, anomaly_type, detail).

    Parameters
    ----------
    points : DataFrame
        truth.points.

    Returns
    -------
    DataFrame
        One row per labelled row (out-of-order rows included), ts UTC.
    """
    return points.where(F.col("anomaly_type").isNotNull()).select("vehicle_id", "ts", "anomaly_type", F.col("anomaly_detail").alias("detail"))


def truth_trips(clean: DataFrame) -> DataFrame:
    """truth.trips per trip: start/end, distance (km), battery energy (kWh), SOC (%), mean speed (km/h), temperature (degC).

    Parameters
    ----------
    clean : DataFrame
        `true_samples` of truth.points.

    Returns
    -------
    DataFrame
        One row per simulated trip: vehicle_id, trip_id, start_ts, end_ts (UTC), distance_km,
        energy_kwh, soc_start and soc_end (highest and lowest true SOC, %), mean_speed_kmh, ambient_temp_c (mean).
    """
    return (
        clean.where(F.col("trip_id").isNotNull())
        .groupBy("vehicle_id", "trip_id")
        .agg(
            F.min("ts").alias("start_ts"),
            F.max("ts").alias("end_ts"),
            F.sum("distance_km").alias("distance_km"),
            F.sum("energy_kwh").alias("energy_kwh"),
            F.max("true_soc").alias("soc_start"),
            F.min("true_soc").alias("soc_end"),
            F.avg("true_speed_kmh").alias("mean_speed_kmh"),
            F.avg("ambient_temp_c").alias("ambient_temp_c"),
        )
    )


def truth_hotspots(spark: SparkSession, world: World, clean: DataFrame) -> DataFrame:
    """truth.hotspots: shared places with their expected unique daily visits (vehicles x local days).

    A charging station placed at a hotspot counts for the hotspot; other stations are places of
    their own (a busy depot is a real hotspot, radius_m 20 m).

    Parameters
    ----------
    spark : SparkSession
    world : World
    clean : DataFrame
        `true_samples` of truth.points.

    Returns
    -------
    DataFrame
        One row per hotspot and per station not at a hotspot: hotspot_id, name, kind, lat, lon
        (degrees), radius_m (m), expected_unique_daily_visits (0 when never visited).
    """
    local_day = F.to_date(F.from_utc_timestamp("ts", world.timezone))
    place_map = spark.createDataFrame(world.stations[["station_id", "hotspot_id"]].fillna({"hotspot_id": ""}))
    stops = (
        clean.where((F.col("state") != "moving") & (F.col("place_id").startswith("HS") | F.col("place_id").startswith("ST")))
        .join(place_map, F.col("place_id") == place_map.station_id, "left")
        .withColumn("place", F.when(F.coalesce(F.col("hotspot_id"), F.lit("")) != "", F.col("hotspot_id")).otherwise(F.col("place_id")))
    )
    visits = stops.select("vehicle_id", "place", local_day.alias("local_day")).distinct().groupBy(F.col("place").alias("hotspot_id")).agg(F.count("*").alias("expected_unique_daily_visits"))
    hs_pdf = world.hotspots.drop(columns=["popularity"])
    st_places = world.stations[world.stations.hotspot_id.isna()][["station_id", "name", "lat", "lon"]].rename(columns={"station_id": "hotspot_id"})
    st_places = st_places.assign(kind="charging_station", radius_m=20.0)[hs_pdf.columns]
    hs = spark.createDataFrame(pd.concat([hs_pdf, st_places], ignore_index=True))
    return hs.join(visits, "hotspot_id", "left").fillna(0, ["expected_unique_daily_visits"])


def truth_charging_events(spark: SparkSession, world: World, clean: DataFrame) -> DataFrame:
    """truth.charging_events: every simulated charge (site_id, start/end, SOC start/end in %, kWh, success).

    Parameters
    ----------
    spark : SparkSession
    world : World
    clean : DataFrame
        `true_samples` of truth.points.

    Returns
    -------
    DataFrame
        One row per charge, failed attempts included: vehicle_id, charge_id, site_id, start_ts,
        end_ts (UTC), soc_start, soc_end (%), success, kwh (from the SOC gain and battery_kwh).
    """
    return (
        clean.where(F.col("charge_id").isNotNull())
        .groupBy("vehicle_id", "charge_id", "place_id")
        .agg(
            F.min("ts").alias("start_ts"),
            F.max("ts").alias("end_ts"),
            F.min("true_soc").alias("soc_start"),
            F.max("true_soc").alias("soc_end"),
            F.max(F.col("state") == "charging").alias("success"),
        )
        .join(spark.createDataFrame(world.vehicles[["vehicle_id", "battery_kwh"]]), "vehicle_id")
        .withColumn("kwh", (F.col("soc_end") - F.col("soc_start")) / 100 * F.col("battery_kwh"))
        .withColumnRenamed("place_id", "site_id")
        .drop("battery_kwh")
    )


def truth_charging_sites(spark: SparkSession, world: World, charges: DataFrame) -> DataFrame:
    """truth.charging_sites: places where fleet vehicles charged (home or station) and their successful charges.

    Parameters
    ----------
    spark : SparkSession
    world : World
    charges : DataFrame
        truth.charging_events as written (read back: recomputing it would scan truth.points again).

    Returns
    -------
    DataFrame
        site_id, kind (home / depot / public / private), station_id, vehicle_id (of a home), lat,
        lon (degrees), n_events.
    """
    st_df = spark.createDataFrame(world.stations[["station_id", "lat", "lon", "access", "network"]])
    homes_df = spark.createDataFrame(world.vehicles[["vehicle_id", "home_lat", "home_lon"]])
    site_counts = charges.where("success").groupBy("site_id").agg(F.count("*").alias("n_events"), F.first("vehicle_id").alias("any_vehicle"))
    return (
        site_counts.join(st_df, site_counts.site_id == st_df.station_id, "left")
        .join(homes_df, F.concat(F.lit("HOME-"), homes_df.vehicle_id) == site_counts.site_id, "left")
        .select(
            "site_id",
            F.when(F.col("station_id").isNotNull(), F.when(F.col("network") == "Fleet Depot", "depot").otherwise(F.col("access"))).otherwise("home").alias("kind"),
            "station_id",
            homes_df.vehicle_id.alias("vehicle_id"),
            F.coalesce(st_df.lat, F.col("home_lat")).alias("lat"),
            F.coalesce(st_df.lon, F.col("home_lon")).alias("lon"),
            "n_events",
        )
    )


def truth_rollouts(spark: SparkSession, world: World) -> DataFrame:
    """truth.rollouts: the injected rollouts with their true effect (empty without rollouts).

    Parameters
    ----------
    spark : SparkSession
    world : World
        The generated world (`build_world`).

    Returns
    -------
    DataFrame
        rollout_id, station_id, ts (UTC), change_type, fault_effect (multiplier of the port fault rate).
    """
    schema = "rollout_id string, station_id string, ts double, change_type string, fault_effect double"
    return spark.createDataFrame(world.rollouts[list(ROLLOUT_COLUMNS)].astype({"ts": float}), schema).withColumn("ts", F.col("ts").cast("timestamp"))


def write_raw_rollouts(spark: SparkSession, world: World, path: str) -> None:
    """The rollouts as one CSV file in the contract's columns (ts as UTC text).

    Parameters
    ----------
    spark : SparkSession
    world : World
        The generated world; its `rollouts` (not empty).
    path : str
        The raw rollouts folder (overwritten).
    """
    ro = world.rollouts
    text = pd.to_datetime(ro.ts.astype(float), unit="s").dt.strftime("%Y-%m-%d %H:%M:%S")
    raw = pd.DataFrame({"rollout_id": ro.rollout_id, "station_id": ro.station_id, "charger_id": None, "ts": text, "change_type": ro.change_type, "description": "injected"})
    schema = "rollout_id string, station_id string, charger_id string, ts string, change_type string, description string"
    spark.createDataFrame(raw, schema).coalesce(1).write.mode("overwrite").option("header", True).csv(path)


def truth_charger_outages(spark: SparkSession, world: World) -> DataFrame:
    """truth.charger_outages: true per-port downtime (start_ts, end_ts, cause, excluded, error_code).

    Parameters
    ----------
    spark : SparkSession
    world : World
        The generated world (`build_world`).

    Returns
    -------
    DataFrame
        One row per port outage: station_id, port_id, start_ts, end_ts (UTC), cause (fault |
        maintenance | offline), excluded (from uptime), error_code.
    """
    return spark.createDataFrame(world.outages).select(
        "station_id", "port_id", F.col("start").cast("timestamp").alias("start_ts"), F.col("end").cast("timestamp").alias("end_ts"), "cause", "excluded", "error_code"
    )


def network_frame(spark: SparkSession, world: World, charges: DataFrame) -> DataFrame:
    """truth.network_records: sessions and OCPP status per station, consistent with the fleet's charges.

    Parameters
    ----------
    spark : SparkSession
    world : World
    charges : DataFrame
        truth.charging_events as written.

    Returns
    -------
    DataFrame
        `NETWORK_SCHEMA` rows (record_type session | status), simulated per station on the executors.
    """
    fleet_events = charges.where(F.col("site_id").startswith("ST")).select(
        F.col("site_id").alias("station_id"), "charge_id", "vehicle_id", _epoch("start_ts").alias("start"), _epoch("end_ts").alias("end"), "kwh", "success"
    )
    all_stations = spark.createDataFrame(world.stations[["station_id"]])
    events = all_stations.join(fleet_events, "station_id", "left")
    return events.groupBy("station_id").applyInPandas(
        lambda key_pdf: network_records(world)((key_pdf.station_id.iloc[0],), key_pdf.dropna(subset=["charge_id"])),
        NETWORK_SCHEMA,
    )


def write_raw_network(net: DataFrame, raw: dict[str, str]) -> None:
    """Raw network feeds from truth.network_records: status notifications as one CSV file and
    sessions as one JSON-lines file (timestamps as UTC text, kWh rounded to 3 decimals).

    Parameters
    ----------
    net : DataFrame
        truth.network_records as written.
    raw : dict
        `raw_paths` (charger_status and charging_sessions folders).
    """
    fmt = "yyyy-MM-dd HH:mm:ss"
    (
        net.where("record_type = 'status'")
        .select("charger_id", "port_id", "station_id", F.date_format("ts", fmt).alias("ts"), "status", "error_code", "info")
        .repartition(1)
        .sortWithinPartitions("port_id", "ts")
        .write.mode("overwrite")
        .option("header", True)
        .csv(raw["charger_status"])
    )
    (
        net.where("record_type = 'session'")
        .select(
            "session_id",
            "port_id",
            "station_id",
            "vehicle_id",
            F.date_format("ts", fmt).alias("start_ts"),
            F.date_format("end_ts", fmt).alias("end_ts"),
            F.round("kwh", 3).alias("kwh"),
            "success",
            "error_code",
        )  # fmt: skip
        .repartition(1)
        .write.mode("overwrite")
        .json(raw["charging_sessions"])
    )

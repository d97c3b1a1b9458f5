"""Canonical schemas of the input contract (docs/DATA_CONTRACT.md) and of bronze tables.

Raw files of any layout are mapped onto these by `common.bronze.ingest` through a DatasetSpec.
This module is the table contract shared by the layers: bronze writes the lineage columns below,
silver reads them, neither imports the other.
"""

from __future__ import annotations

from pyspark.sql import types as T

# Lineage columns ingest adds to every bronze row: where and when a row was loaded, not what it
# says (common/silver/cleaning.py breaks timestamp ties without them).
SOURCE_NAME = "source_name"  # the DatasetSpec's name
SOURCE_FILE = "source_file"  # fully qualified path of the raw file
ROW_HASH = "row_hash"  # SHA-256 of the canonical values (hex)
RUN_ID = "ingest_run_id"
INGESTED_AT = "ingested_at"  # UTC instant of the ingest run
LINEAGE_COLUMNS = frozenset({SOURCE_NAME, SOURCE_FILE, ROW_HASH, RUN_ID, INGESTED_AT})

TELEMATICS = T.StructType(
    [
        T.StructField("vehicle_id", T.StringType(), False),
        T.StructField("ts", T.TimestampType(), False),  # UTC instant
        T.StructField("lat", T.DoubleType(), True),  # WGS84 degrees
        T.StructField("lon", T.DoubleType(), True),
        T.StructField("speed_kmh", T.DoubleType(), True),
        T.StructField("odometer_km", T.DoubleType(), True),
        T.StructField("soc_pct", T.DoubleType(), True),  # 0-100
        T.StructField("altitude_m", T.DoubleType(), True),
        T.StructField("heading_deg", T.DoubleType(), True),
        T.StructField("ambient_temp_c", T.DoubleType(), True),
    ]
)
TELEMATICS_REQUIRED = ("vehicle_id", "ts", "lat", "lon", "soc_pct")
TELEMATICS_KEY = ("vehicle_id", "ts")

VEHICLES = T.StructType(
    [
        T.StructField("vehicle_id", T.StringType(), False),
        T.StructField("model", T.StringType(), True),
        T.StructField("vehicle_type", T.StringType(), True),  # e_rickshaw | two_wheeler | car | van | bus
        T.StructField("battery_kwh", T.DoubleType(), True),
        T.StructField("driver_id", T.StringType(), True),
        T.StructField("timezone", T.StringType(), True),  # IANA zone, e.g. Asia/Kolkata
    ]
)
VEHICLES_REQUIRED = ("vehicle_id", "battery_kwh")
VEHICLES_KEY = ("vehicle_id",)

STATIONS = T.StructType(
    [
        T.StructField("station_id", T.StringType(), False),
        T.StructField("name", T.StringType(), True),
        T.StructField("lat", T.DoubleType(), True),
        T.StructField("lon", T.DoubleType(), True),
        T.StructField("status", T.StringType(), True),  # AFDC status code: E available, P planned, T temporarily unavailable
        T.StructField("access", T.StringType(), True),  # public | private
        T.StructField("access_hours", T.StringType(), True),  # free text, e.g. "24 hours daily"
        T.StructField("level2_count", T.IntegerType(), True),
        T.StructField("dc_fast_count", T.IntegerType(), True),
        T.StructField("connector_types", T.StringType(), True),  # space separated, e.g. "J1772 CHADEMO"
        T.StructField("network", T.StringType(), True),
        T.StructField("power_kw", T.DoubleType(), True),
        T.StructField("city", T.StringType(), True),
        T.StructField("state", T.StringType(), True),
    ]
)
STATIONS_REQUIRED = ("station_id", "lat", "lon")
STATIONS_KEY = ("station_id",)

CHARGER_STATUS = T.StructType(
    [
        T.StructField("charger_id", T.StringType(), False),
        T.StructField("port_id", T.StringType(), False),
        T.StructField("station_id", T.StringType(), True),
        T.StructField("ts", T.TimestampType(), False),
        T.StructField("status", T.StringType(), True),  # OCPP 1.6 ChargePointStatus
        T.StructField("error_code", T.StringType(), True),  # OCPP 1.6 ChargePointErrorCode
        T.StructField("info", T.StringType(), True),  # free text / cause, e.g. scheduled_maintenance
    ]
)
CHARGER_STATUS_REQUIRED = ("port_id", "ts", "status")
CHARGER_STATUS_KEY = ("port_id", "ts", "status")

CHARGING_SESSIONS = T.StructType(
    [
        T.StructField("session_id", T.StringType(), False),
        T.StructField("port_id", T.StringType(), True),
        T.StructField("station_id", T.StringType(), True),
        T.StructField("vehicle_id", T.StringType(), True),
        T.StructField("start_ts", T.TimestampType(), False),
        T.StructField("end_ts", T.TimestampType(), True),
        T.StructField("kwh", T.DoubleType(), True),
        T.StructField("success", T.BooleanType(), True),
        T.StructField("error_code", T.StringType(), True),
    ]
)
CHARGING_SESSIONS_REQUIRED = ("session_id", "start_ts")
CHARGING_SESSIONS_KEY = ("session_id",)

# A change made to a site or a charger (firmware, replacement, maintenance contract, ...): the
# treatment of the rollout evaluation (common/network/rollout.py). change_type is free text there
# normalised to a label (`normalise_change_type`), an unknown type kept as its own label.
ROLLOUTS = T.StructType(
    [
        T.StructField("rollout_id", T.StringType(), True),
        T.StructField("station_id", T.StringType(), True),  # the site; or
        T.StructField("charger_id", T.StringType(), True),  # the charger (at least one of the two)
        T.StructField("ts", T.TimestampType(), False),  # UTC instant the change took effect (a day alone: its midnight in the source's zone)
        T.StructField("change_type", T.StringType(), False),  # firmware | replacement | maintenance_contract | other text
        T.StructField("description", T.StringType(), True),  # e.g. the firmware version
    ]
)
ROLLOUTS_REQUIRED = ("ts", "change_type")
ROLLOUTS_KEY = ("station_id", "charger_id", "ts", "change_type")
ROLLOUT_CHANGE_TYPES = ("firmware", "replacement", "maintenance_contract")

OCPP_STATUSES = (
    "Available",
    "Preparing",
    "Charging",
    "SuspendedEVSE",
    "SuspendedEV",
    "Finishing",
    "Reserved",
    "Unavailable",
    "Faulted",
)

# kind -> (schema, required columns, natural key, timestamp columns, bronze table)
KINDS = {
    "telematics": (TELEMATICS, TELEMATICS_REQUIRED, TELEMATICS_KEY, ("ts",), "bronze.telematics"),
    "vehicles": (VEHICLES, VEHICLES_REQUIRED, VEHICLES_KEY, (), "bronze.vehicles"),
    "stations": (STATIONS, STATIONS_REQUIRED, STATIONS_KEY, (), "bronze.stations"),
    "charger_status": (CHARGER_STATUS, CHARGER_STATUS_REQUIRED, CHARGER_STATUS_KEY, ("ts",), "bronze.charger_status"),
    "charging_sessions": (
        CHARGING_SESSIONS,
        CHARGING_SESSIONS_REQUIRED,
        CHARGING_SESSIONS_KEY,
        ("start_ts", "end_ts"),
        "bronze.charging_sessions",
    ),
    "rollouts": (ROLLOUTS, ROLLOUTS_REQUIRED, ROLLOUTS_KEY, ("ts",), "bronze.rollouts"),
}

"""Typed, validated configuration: `conf/base.yaml` + `conf/<env>.yaml` + `--conf key=value`.

Loaded once per process by `load_config`; every job, test and notebook goes through it.
Unknown keys and wrong types are errors that name the offending key. String values may
reference the environment as `${VAR}` or `${VAR:-default}` (credentials never live in conf).
"""

from __future__ import annotations

import copy
import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from common.core.catalog import POSITION_TRACES
from common.core.redaction import redact


def _known_zone(value: str | None) -> str | None:
    from zoneinfo import ZoneInfo

    if value is None:
        return value
    try:
        ZoneInfo(value)
    except Exception as exc:  # noqa: BLE001 - re-raised as a validation error naming the key
        raise ValueError(f"unknown timezone {value!r}") from exc
    return value


IanaZone = Annotated[str | None, AfterValidator(_known_zone)]

PROJECT_ROOT = Path(__file__).resolve().parents[2]
# On EMR/Glue the code runs from a zip; common.io.cluster_entry extracts conf/ and sets EVFA_CONF_DIR.
CONF_DIR = Path(os.environ["EVFA_CONF_DIR"]) if os.environ.get("EVFA_CONF_DIR") else PROJECT_ROOT / "conf"
# Delta's spark.databricks.delta.retentionDurationCheck default (7 days): VACUUM below it can
# delete files a concurrent reader or a time-travel query still needs.
DELTA_SAFE_RETENTION_HOURS = 168.0
LAYERS = ("raw", "bronze", "silver", "gold", "quarantine", "truth", "audit", "restricted")


class ConfigError(ValueError):
    """A configuration problem a user can fix; the message names the key."""


class Section(BaseModel):
    """Base for every config section: unknown keys are errors, values are validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)


# --------------------------------------------------------------------------------------------
# Platform sections
# --------------------------------------------------------------------------------------------
class SparkConfig(Section):
    """The SparkSession's settings (`common.io.spark.build_session`)."""

    master: str | None = Field("local[*]", description="Spark master; null on EMR/Glue (spark-submit sets it).")
    app_name: str = "ev-fleet-analytics"
    shuffle_partitions: int = Field(8, ge=1, description="spark.sql.shuffle.partitions; ~2-3x total cores.")
    bytes_per_shuffle_partition: int | None = Field(
        16 * 2**20,
        ge=2**20,
        description="Shuffles start with one partition per this many bytes of bronze.telematics (at least "
        "shuffle_partitions, at most max_shuffle_partitions); AQE coalesces them, except under a cached frame. "
        "Null: always shuffle_partitions.",
    )
    max_shuffle_partitions: int = Field(2000, ge=1, description="Upper bound of the sized shuffle partitions.")
    driver_memory: str | None = Field("4g", description="Only applied when the builder starts the JVM (local).")
    jars_dir: str | None = Field(".jars", description="Local jar cache filled by bin/fetch-jars; null on clusters.")
    log_level: str = "WARN"
    ui_enabled: bool = True
    progress_bar: bool = True
    extra: dict[str, str] = Field(default_factory=dict, description="Any further spark.* settings.")


class StorageConfig(Section):
    """Where the lakehouse's tables live: the roots and per-table overrides behind `path`."""

    root: str = Field("lakehouse", description="Lakehouse root; relative paths resolve against the project root.")
    restricted_root: str | None = Field(
        None,
        description="Personal data: restricted.* tables and the position traces (POSITION_TRACES). "
        "Keep it on a path with its own access policy. Null: <root>/restricted, so a lakehouse moved "
        "with storage.root alone takes its personal data along.",
    )
    tables: dict[str, str] = Field(default_factory=dict, description="Per-table location overrides: 'gold.x' -> path.")

    @property
    def restricted(self) -> str:
        """The restricted root in effect (restricted_root, else <root>/restricted).

        Returns
        -------
        str
            A path or URI, not yet resolved against the project root.
        """
        return self.restricted_root or f"{self.root.rstrip('/')}/restricted"

    def resolve(self, path: str) -> str:
        """A configured path made absolute: URIs and absolute paths as they are, others under the project root.

        Parameters
        ----------
        path : str
            A relative or absolute path, or a URI (``s3://...``).

        Returns
        -------
        str
        """
        if "://" in path or os.path.isabs(path):
            return path
        return str(PROJECT_ROOT / path)

    def path(self, table: str) -> str:
        """Location of a table named '<layer>.<name>' (e.g. 'silver.telematics_clean').

        Parameters
        ----------
        table : str
            ``<layer>.<name>``; restricted tables and position traces (POSITION_TRACES) resolve under
            the restricted root.

        Returns
        -------
        str
            Absolute path or URI of the table's folder.

        Raises
        ------
        ConfigError
            The name has no known layer or no table part.
        """
        if table in self.tables:
            return self.resolve(self.tables[table])
        layer, _, name = table.partition(".")
        if layer not in LAYERS or not name:
            raise ConfigError(f"table name {table!r} must be '<layer>.<name>' with layer in {LAYERS}")
        if layer == "restricted":
            base = self.restricted
        elif table in POSITION_TRACES:
            base = f"{self.restricted.rstrip('/')}/{layer}"
        else:
            base = f"{self.root.rstrip('/')}/{layer}"
        return self.resolve(f"{base.rstrip('/')}/{name}")


class MlflowConfig(Section):
    """MLflow tracking store, artifact location, experiment and model registry."""

    tracking_uri: str = Field("sqlite:///lakehouse/mlflow/mlflow.db", description="Or ${MLFLOW_TRACKING_URI}.")
    artifact_location: str = "lakehouse/mlflow/artifacts"
    experiment: str = "ev-fleet-analytics"
    registry_uri: str | None = None


# --------------------------------------------------------------------------------------------
# Input datasets (see docs/DATA_CONTRACT.md)
# --------------------------------------------------------------------------------------------
DatasetKind = Literal["telematics", "vehicles", "stations", "charger_status", "charging_sessions", "rollouts"]


# Timestamp patterns that are numbers since 1970-01-01 UTC (common/bronze/ingest.py parse_timestamp).
EPOCH_FORMATS = ("epoch_s", "epoch_ms", "epoch_auto")
# A Spark datetime pattern with an offset/zone letter (outside quoted text) reads an instant.
_ZONE_LETTERS = re.compile(r"[XxZzOV]")
# Dataset kinds whose canonical schema has timestamp columns (common.io.schemas.KINDS; a test checks):
# only they parse timestamps. Kept here because config must load without Spark (cluster bootstrap).
TIMESTAMPED_KINDS = ("telematics", "charger_status", "charging_sessions", "rollouts")


def zoneless_formats(formats: list[str] | tuple[str, ...]) -> list[str]:
    """The patterns of `formats` that read wall-clock time: no offset/zone letter, not epoch.

    Parameters
    ----------
    formats : list or tuple of str
        Spark datetime patterns and the special names in EPOCH_FORMATS.

    Returns
    -------
    list of str
        Those patterns, in their order, that need a source time zone.
    """
    return [f for f in formats if f not in EPOCH_FORMATS and not _ZONE_LETTERS.search(re.sub(r"'[^']*'", "", f))]


def missing_timezone(spec: "DatasetSpec", where: str) -> str | None:
    """Why `spec` cannot be read without a source time zone, or None.

    A wall-clock pattern needs the zone it was written in, and guessing UTC shifts every row.

    Parameters
    ----------
    spec : DatasetSpec
    where : str
        The dataset's conf key, e.g. inputs.telematics[0], named in the message.

    Returns
    -------
    str or None
        The message naming ``<where>.source_timezone`` and the zoneless patterns; None when
        `source_timezone` is set or every pattern carries a zone or is an epoch.
    """
    zoneless = zoneless_formats(spec.timestamp_formats)
    if spec.source_timezone is not None or not zoneless:
        return None
    return f"{where}.source_timezone is not set but timestamp_formats {zoneless} carry no zone: set it to the IANA zone the source writes wall-clock time in (e.g. UTC, Europe/London)"


class CsvOptions(Section):
    """Options of Spark's CSV reader for one dataset."""

    delimiter: str = ","
    encoding: str = "UTF-8"
    header: bool = True
    quote: str = '"'
    escape: str = '"'
    multiline: bool = Field(True, description="Quoted fields may contain newlines (AFDC exports do).")
    max_chars_per_column: int = Field(
        1_000_000,
        ge=1,
        description="Longest value (characters) a line may hold (Spark's maxCharsPerColumn); a file with a longer "
        "one (a binary blob, a quote that never closes in a huge file) is recorded as unreadable and skipped.",
    )


class DatasetSpec(Section):
    """One source of raw files and how to map it onto the canonical schema."""

    name: str = Field(..., description="Short id used in audit rows and quarantine reasons.")
    path: str = Field(..., description="File, folder or glob.")
    format: Literal["csv", "parquet", "json", "xlsx"] = "csv"
    columns: dict[str, str | list[str]] = Field(
        default_factory=dict,
        description="canonical name -> source column name; a list is joined with spaces (e.g. ts: [Date, Time]).",
    )
    expressions: dict[str, str] = Field(
        default_factory=dict,
        description="canonical name -> Spark SQL expression over source columns (wins over `columns`).",
    )
    values: dict[str, dict[str, str]] = Field(
        default_factory=dict,
        description="canonical name -> {source value: canonical value}, e.g. status codes; others pass through.",
    )
    null_values: list[str] = Field(
        default_factory=lambda: ["", "NA", "N/A", "n/a", "null", "NULL", "None", "-"],
        description="Source strings (after trimming) that mean 'no value'.",
    )
    filter: str | None = Field(None, description="Spark SQL predicate over source columns; other rows are quarantined as excluded_by_filter.")
    timestamp_formats: list[str] = Field(
        default_factory=lambda: ["yyyy-MM-dd'T'HH:mm:ss[.SSS]XXX", "yyyy-MM-dd HH:mm:ss[.SSS]"],
        description="Spark datetime patterns tried in order; 'epoch_s', 'epoch_ms' and 'epoch_auto' are special.",
    )
    source_timezone: IanaZone = Field(
        None,
        description="IANA zone of timestamps that carry no offset (wall-clock time). Required when a pattern of timestamp_formats has no zone: there is no safe default.",
    )
    constants: dict[str, Any] = Field(default_factory=dict, description="canonical column -> constant value.")
    decimal_comma: bool = Field(False, description="Numbers use ',' as decimal separator ('12,5').")
    csv: CsvOptions = Field(default_factory=CsvOptions)
    sheet: str | int | None = Field(None, description="Excel sheet name or index.")
    header_row: int = Field(0, ge=0, description="Excel: 0-based row holding the column names.")


class InputsConfig(Section):
    """Configured input datasets. Empty lists mean: use the synthetic generator's output."""

    telematics: list[DatasetSpec] = Field(default_factory=list)
    vehicles: list[DatasetSpec] = Field(default_factory=list)
    stations: list[DatasetSpec] = Field(default_factory=list)
    charger_status: list[DatasetSpec] = Field(default_factory=list)
    charging_sessions: list[DatasetSpec] = Field(default_factory=list)
    rollouts: list[DatasetSpec] = Field(default_factory=list)

    def is_empty(self) -> bool:
        """Whether no dataset is configured for any kind (the generator's files are then read).

        Returns
        -------
        bool
        """
        return not any(getattr(self, k) for k in type(self).model_fields)

    @model_validator(mode="after")
    def _zone_of_wall_clock_times(self) -> "InputsConfig":
        problems = [msg for kind in TIMESTAMPED_KINDS for i, spec in enumerate(getattr(self, kind)) if (msg := missing_timezone(spec, f"inputs.{kind}[{i}]"))]
        if problems:
            raise ValueError("; ".join(problems))
        return self


# --------------------------------------------------------------------------------------------
# Stage sections
# --------------------------------------------------------------------------------------------
SESSION_FAILURE_DRIVERS = ("dc_station", "night", "weekend", "load")


class GeneratorConfig(Section):
    """The synthetic fleet the generator writes (`jobs/generate.py`, docs/GENERATOR.md)."""

    vehicles: int = Field(40, ge=1)
    days: int = Field(14, ge=1)
    start_date: str = Field("2024-03-04", description="First local day (ISO date).")
    seed: int = 42
    region: str = Field("delhi_ncr", description="Key into common.core.regions.REGIONS.")
    moving_interval_s: tuple[int, int] = Field((30, 60), description="Sampling interval range while moving (s).")
    parked_interval_s: int = Field(300, ge=30, description="Heartbeat while parked (s).")
    hotspots: int = Field(12, ge=1)
    stations: int = Field(30, ge=1)
    at_risk_share: float = Field(0.15, ge=0, le=1, description="Share of low-activity / at-risk drivers.")
    offline_share: float = Field(0.05, ge=0, le=1, description="Share of drivers whose device goes offline for days (not at risk).")
    anomaly_rate: float = Field(0.004, ge=0, le=0.2, description="Per-row probability of an injected anomaly.")
    fault_trend_per_year: float = Field(0.0, ge=-0.9, le=5, description="Charger faults: relative change of the fault rate per year (0.2: +20 %/year), for the fault forecast's truth.")
    fault_season_amplitude: float = Field(0.0, ge=0, lt=1, description="Charger faults: amplitude of a sinusoidal seasonal cycle of the fault rate (0.4: +-40 %).")
    fault_season_days: float = Field(364.0, gt=1, description="Charger faults: length of that cycle (days).")
    rollout_share: float = Field(0.0, ge=0, le=1, description="Rollouts: share of the operating stations given a change (0: none, no rollouts file), for the rollout evaluation's truth.")
    rollout_change_type: str = Field("firmware", min_length=1, description="Rollouts: the change type written for every injected rollout.")
    rollout_fault_effect: float = Field(1.0, gt=0, le=1, description="Rollouts: multiplier of a treated station's fault rate (port faults, failed sessions) from its rollout (0.6: -40 %; 1: placebo).")
    rollout_window: tuple[float, float] = Field((0.3, 0.7), description="Rollouts: each station's rollout day is drawn uniformly between these shares of the generated period (staggered).")
    vehicles_per_task: int = Field(25, ge=1, description="Vehicles simulated per Spark task (mapInPandas chunk).")
    output_format: Literal["parquet", "csv"] = "parquet"
    # --- device behaviour (docs/GENERATOR.md "Device reporting modes") ---
    device_modes: dict[str, float] = Field(
        default_factory=lambda: {"continuous": 1.0},
        description="Share of devices per reporting mode: continuous (a heartbeat every parked_interval_s while "
        "parked), ignition_only (a sample at key-off and key-on, one heartbeat every ignition_heartbeat_s while "
        "parked or charging), bursty (1 Hz bursts while moving, irregular sampling and heartbeats). Sums to 1.",
    )
    ignition_heartbeat_s: tuple[int, int] = Field((1200, 14400), description="Range of the parked heartbeat interval of an ignition-only device, drawn per device (s).")
    burst_share: float = Field(0.03, ge=0, le=1, description="bursty devices: share of moving intervals sampled at 1 Hz.")
    irregular_drop_share: float = Field(0.35, ge=0, lt=1, description="bursty devices: share of other moving samples and parked heartbeats never sent.")
    multipath_rate: float = Field(
        0.0,
        ge=0,
        le=0.1,
        description="Per sent row: start of a GPS multipath episode (1-3 samples displaced 15-80 m; realistic noise, not a labelled anomaly).",
    )
    # --- driver behaviour ---
    part_time_share: float = Field(0.0, ge=0, le=1, description="Drivers who work on part_time_active_share of days at random (not at risk).")
    part_time_active_share: float = Field(0.6, gt=0, le=1, description="Share of days a part-time driver works.")
    early_start_share: float = Field(0.0, ge=0, le=1, description="Drivers whose shift starts before dawn (about 04:00-05:30 local).")
    away_night_share: float = Field(0.0, ge=0, le=1, description="Drivers who now and then sleep away from home.")
    away_night_prob: float = Field(0.12, ge=0, le=0.5, description="Per night, for those drivers: sleep at their away place.")
    # --- what the raw files look like ---
    layout: Literal["canonical", "payd"] = Field(
        "canonical",
        description="canonical: the contract's column names (docs/DATA_CONTRACT.md), read by the generator's default "
        "inputs; payd: a pay-as-you-drive operator's CSV export (telematics_id, timestamp, latitude, ... and a "
        "fleet register), ingested through a dataset mapping such as conf/datasets/payd_fleet.yaml.",
    )
    timestamp_style: Literal["utc", "utc_z", "local_offset"] = Field(
        "utc", description="CSV timestamps: 'utc' (yyyy-MM-dd HH:mm:ss), 'utc_z' (ISO with Z), 'local_offset' (ISO local time with +hh:mm)."
    )
    network: bool = Field(True, description="Write the charging network's files (stations, charger status, sessions); false = a telematics-only deployment.")
    session_failure_rate: float = Field(0.04, gt=0, lt=1, description="Background sessions on an available port: failure probability at the reference level of every injected driver.")
    session_failure_log_odds: dict[str, float] = Field(
        default_factory=dict,
        description="Injected fault drivers of background sessions on available ports, as log-odds added to logit(session_failure_rate): "
        "dc_station (the station has DC-fast ports), night (local start hour 0-5), weekend (local Saturday or Sunday), load (per "
        "session started on the port in the previous 24 h), network:<name> (the station's operator). Empty: every such session "
        "fails at the base rate (the random stream is the same either way).",
    )

    @field_validator("start_date", mode="before")
    @classmethod
    def _iso_date(cls, value: Any) -> Any:
        # YAML and --conf turn an unquoted 2024-03-23 into a date; keep the ISO text.
        from datetime import date

        return value.isoformat() if isinstance(value, date) else value

    @model_validator(mode="after")
    def _shares(self) -> "GeneratorConfig":
        known = {"continuous", "ignition_only", "bursty"}
        unknown = set(self.device_modes) - known
        if unknown:
            raise ValueError(f"generator.device_modes: unknown mode(s) {sorted(unknown)}; known: {sorted(known)}")
        if any(v < 0 for v in self.device_modes.values()) or abs(sum(self.device_modes.values()) - 1.0) > 1e-6:
            raise ValueError(f"generator.device_modes: shares must be >= 0 and sum to 1 (got {self.device_modes})")
        if self.at_risk_share + self.offline_share + self.part_time_share > 1:
            raise ValueError("generator: at_risk_share + offline_share + part_time_share must be <= 1")
        if not 0 <= self.rollout_window[0] <= self.rollout_window[1] <= 1:
            raise ValueError(f"generator.rollout_window: two shares of the period, 0 <= first <= second <= 1 (got {self.rollout_window})")
        bad = [k for k in self.session_failure_log_odds if k not in SESSION_FAILURE_DRIVERS and not k.startswith("network:")]
        if bad:
            raise ValueError(f"generator.session_failure_log_odds: unknown driver(s) {bad}; known: {list(SESSION_FAILURE_DRIVERS)} and network:<name>")
        lo, hi = self.ignition_heartbeat_s
        if not 0 < lo <= hi:
            raise ValueError(f"generator.ignition_heartbeat_s: need 0 < low <= high (got {self.ignition_heartbeat_s})")
        return self


LEASE_MIN_RENEWALS_PER_TTL = 3


class LeaseConfig(Section):
    """Run lease (`common/io/lease.py`, table audit.run_lease): one pipeline or job run at a time per lakehouse."""

    enabled: bool = Field(True, description="Take the lease in every job's bootstrap; false only for lakehouses with one writer by construction.")
    ttl_s: float = Field(900.0, gt=0, description="A lease not renewed for this long is taken for a dead holder's: the next run takes it over, with a warning (s).")
    heartbeat_s: float = Field(60.0, gt=0, description="The holder renews its lease this often, from a daemon thread (s).")

    @model_validator(mode="after")
    def _renewed_within_ttl(self) -> "LeaseConfig":
        # Several renewals per TTL: one late renewal (a busy driver, an S3 retry) must not lose the lease.
        if self.heartbeat_s * LEASE_MIN_RENEWALS_PER_TTL > self.ttl_s:
            raise ValueError(f"lease.heartbeat_s ({self.heartbeat_s}) must be at most lease.ttl_s / {LEASE_MIN_RENEWALS_PER_TTL} ({self.ttl_s})")
        return self


class IngestConfig(Section):
    """Validation rules and the file ledger of the ingest stage (`jobs/ingest.py`, `common.bronze.ingest.validate`)."""

    lat_range: tuple[float, float] = (-90.0, 90.0)
    lon_range: tuple[float, float] = (-180.0, 180.0)
    soc_range: tuple[float, float] = (0.0, 100.0)
    min_valid_year: int = Field(1990, description="Timestamps before this are sentinel/corrupt -> quarantine.")
    max_future_days: int = Field(2, description="Timestamps more than this many days after ingest time -> quarantine.")
    quarantine_open_sessions: bool = Field(True, description="Charging sessions without an end time -> quarantine.")
    skip_ingested_files: bool = Field(True, description="File ledger: skip files already ingested with the same size, mtime and mapping.")
    partition_column: str = "date"


class CleanConfig(Section):
    """Thresholds of `jobs/clean.py` (bronze.telematics -> silver.telematics_clean). Units in the names."""

    area_file: str | None = Field(
        None,
        description="Operating area (WKT or GeoJSON file; relative to the project root); points outside are flagged. "
        "Null: the generator region's area for the generator's own inputs, else no area rule (logged).",
    )
    default_timezone: IanaZone = Field(
        None,
        description="IANA zone for vehicles without bronze.vehicles.timezone. Null: the generator region's zone for "
        "the generator's own inputs; with other inputs a vehicle without a zone is a configuration error naming this key.",
    )
    dataset_start: str | None = Field(
        None,
        description="ISO date/timestamp (UTC): earlier rows are flagged. Null = generator.start_date minus one day "
        "when inputs are the synthetic generator, else no lower bound (ingest already drops sentinel years).",
    )
    future_tolerance_min: float = Field(10.0, ge=0, description="Rows later than run time + this are flagged (min).")
    zero_coord_either_axis: bool = Field(
        True,
        description="Also treat lat == 0 or lon == 0 (not only both) as a receiver default; set false for fleets that really drive on the equator or the prime meridian.",
    )
    physical_max_speed_kmh: dict[str, float] = Field(
        default_factory=lambda: {
            "e_rickshaw": 60.0,
            "three_wheeler": 80.0,
            "two_wheeler": 150.0,
            "car": 220.0,
            "van": 160.0,
            "bus": 130.0,
            "default": 220.0,
        },
        description="Physical cap on implied speed per vehicle_type (km/h); 'default' for unknown types.",
    )
    adaptive_speed_alpha: float = Field(3.0, gt=0, description="Adaptive cap = alpha x the vehicle's quantile speed.")
    adaptive_speed_quantile: float = Field(0.95, gt=0, lt=1, description="Quantile of the vehicle's moving implied speed.")
    moving_speed_kmh: float = Field(5.0, ge=0, description="Above this (reported or implied) a vehicle is driving (km/h).")
    min_jump_m: float = Field(200.0, ge=0, description="Legs shorter than this are never impossible (GPS jitter / stale fixes at 1 Hz) (m).")
    spike_min_distance_m: float = Field(1000.0, ge=0, description="A position spike is at least this far from both neighbours (m).")
    spike_return_ratio: float = Field(0.5, gt=0, le=1, description="Spike: neighbours closer to each other than this x the shorter leg.")
    max_charger_kw: float = Field(150.0, gt=0, description="Fastest charger the fleet can use (kW): caps SOC rise per minute.")
    max_discharge_c_rate: float = Field(4.0, gt=0, description="Fastest discharge in pack capacities per hour (1/h).")
    default_battery_kwh: float = Field(5.0, gt=0, description="Battery size for vehicles missing from bronze.vehicles (kWh).")
    soc_tolerance_pct: float = Field(1.0, ge=0, description="Slack for SOC quantisation/noise in rate checks (pct points).")
    soc_rise_driving_tolerance_pct: float = Field(2.0, ge=0, description="SOC may rise this much between two driving samples (regenerative braking) (pct points).")
    soc_spike_min_pct: float = Field(10.0, gt=0, description="A SOC spike jumps at least this far on both legs (pct points).")
    soc_spike_return_ratio: float = Field(0.5, gt=0, le=1, description="SOC spike: neighbours differ by at most this x the smaller jump.")
    soc_spike_max_gap_s: float = Field(1800.0, gt=0, description="Both legs of a SOC spike are at most this long (s).")
    soc_spike_parked_max_gap_s: float = Field(
        43200.0,
        gt=0,
        description="... or this long when all three samples are parked at one place (devices that report every few hours while parked) (s).",
    )
    soc_spike_parked_radius_m: float = Field(100.0, gt=0, description="Parked at one place: neighbours within this distance (m).")
    repair_max_gap_s: float = Field(600.0, ge=0, description="Interpolate only between usable neighbours this close (s).")
    repair_fill_limit_s: float = Field(300.0, ge=0, description="Else copy the nearest usable value within this time (s).")

    @field_validator("dataset_start", mode="before")
    @classmethod
    def _iso_start(cls, value: Any) -> Any:
        # YAML turns an unquoted 2021-01-01 into a date; keep the ISO text and check it parses.
        from datetime import date, datetime

        if isinstance(value, date | datetime):
            value = value.isoformat()
        if isinstance(value, str):
            datetime.fromisoformat(value)
        return value


class TripsConfig(Section):
    """Stops, trips and ~1 km energy segments (`common/silver/trips.py`, used by jobs/kpis.py and the insights jobs)."""

    moving_speed_kmh: float = Field(2.0, ge=0, description="A sample (reported speed) or leg (mean of its end speeds) above this is moving (km/h).")
    min_stop_minutes: float = Field(5.0, gt=0, description="A stop: stationary samples whose first and last are at least this far apart (dwell, min).")
    stop_radius_m: float = Field(100.0, gt=0, description="Consecutive stationary samples further apart than this start a new stop (m).")
    max_gap_minutes: float = Field(10.0, gt=0, description="A leg longer than this is a data gap: trips split there and its distance is not counted (min).")
    parked_silence_factor: float = Field(
        3.0,
        gt=0,
        description="A silence (leg longer than max_gap_minutes) whose ends are within stop_radius_m, with SOC not "
        "falling more than parked_soc_drop_pct across it, is a parked period when no longer than this x the vehicle's "
        "heartbeat (silver.device_profiles) ...",
    )
    parked_silence_min_minutes: float = Field(120.0, gt=0, description="... and at least this long is always allowed (missed heartbeats, no profile yet) (min) ...")
    parked_silence_max_hours: float = Field(48.0, gt=0, description="... but never longer: a device silent for days is an outage, not a parked vehicle (h).")
    parked_soc_drop_pct: float = Field(2.0, ge=0, description="SOC falling more than this across a silence means the vehicle was driven: a gap (pct points).")
    min_trip_km: float = Field(0.2, ge=0, description="Shorter 'trips' (GPS jitter between two stops) are dropped (km).")
    segment_km: float = Field(1.0, gt=0, description="Target length of the energy-model segments a trip is cut into (km).")


class DevicesConfig(Section):
    """Device reporting modes measured by the clean stage (silver.device_profiles, `common/silver/devices.py`)."""

    silent_day_share: float = Field(0.5, gt=0, le=1, description="mostly_silent: no sample on at least this share of days between the first and last sample.")
    ignition_min_interval_s: float = Field(900.0, gt=0, description="Parked silences longer than this mean the device sleeps while parked (s) ...")
    ignition_parked_share: float = Field(0.5, gt=0, le=1, description="... ignition_only when at least this share of the parked time lies in such silences.")
    burst_interval_s: float = Field(2.0, gt=0, description="Moving intervals this short are 1 Hz bursts (s).")
    burst_share: float = Field(0.1, gt=0, le=1, description="bursty: at least this share of the moving intervals are bursts ...")
    irregular_cv: float = Field(1.0, gt=0, description="... or the moving intervals' coefficient of variation is at least this.")


class OdometerConfig(Section):
    """Odometer fault detection of gold.payd_billing: a faulty vehicle-day is billed on GPS km."""

    decrease_tolerance_km: float = Field(0.2, ge=0, description="A reading may drop this much (rounding to 0.1 km, reordering) before it is 'decreasing' (km).")
    jump_min_km: float = Field(5.0, gt=0, description="An increase is a 'jump' only when at least this big (km) ...")
    max_speed_kmh: float = Field(200.0, gt=0, description="... and faster than this over the leg (km/h): device gaps may legitimately add km.")
    stuck_min_gps_km: float = Field(2.0, gt=0, description="'Stuck': the reading does not change while GPS moving distance adds up to this (km).")


class BillingConfig(Section):
    """Pay-as-you-drive billing (gold.payd_billing)."""

    period: Literal["month", "week"] = Field("month", description="Billing period (local calendar).")
    discrepancy_threshold_pct: float = Field(10.0, ge=0, description="Flag a period whose |odometer km - GPS km| exceeds this share of GPS km (percent).")
    discrepancy_min_km: float = Field(5.0, ge=0, description="... and this many km (short periods are noisy) (km).")
    active_day_min_km: float = Field(0.5, ge=0, description="A day with at least this many billable km is active (km).")
    odometer: OdometerConfig = Field(default_factory=OdometerConfig, description="Odometer fault rules: faulty days are billed on GPS km.")


class KpisConfig(Section):
    """Fleet KPIs (`jobs/kpis.py`): minutely, trips, segments, daily, fleet daily, PAYD billing."""

    rolling_window_minutes: int = Field(15, ge=1, description="Rolling window of silver.vehicle_minutely (event time, min).")
    context_days: int = Field(1, ge=0, description="--start-date/--end-date runs also read this many days either side (trips over midnight).")
    percentiles: list[float] = Field(default_factory=lambda: [0.1, 0.25, 0.5, 0.75, 0.9], description="Percentiles of gold.fleet_daily_kpis (0-1).")
    trips: TripsConfig = Field(default_factory=TripsConfig)
    billing: BillingConfig = Field(default_factory=BillingConfig, description="gold.payd_billing periods and discrepancy flags.")


# Longitudinal model per vehicle model (rolling + aero + grade + inertia, regen, aux/HVAC).
DEFAULT_PHYSICS: dict[str, dict[str, float]] = {
    "Mahindra Treo": {"mass_kg": 650, "cda_m2": 0.95, "crr": 0.016, "drivetrain_eff": 0.86, "regen_eff": 0.55, "aux_kw": 0.08, "hvac_kw_per_deg": 0.0},
    "Ather 450X": {"mass_kg": 210, "cda_m2": 0.45, "crr": 0.013, "drivetrain_eff": 0.88, "regen_eff": 0.55, "aux_kw": 0.03, "hvac_kw_per_deg": 0.0},
    "Tata Nexon EV": {"mass_kg": 1550, "cda_m2": 0.72, "crr": 0.011, "drivetrain_eff": 0.90, "regen_eff": 0.65, "aux_kw": 0.25, "hvac_kw_per_deg": 0.12},
    "Tata Ace EV": {"mass_kg": 2100, "cda_m2": 1.60, "crr": 0.013, "drivetrain_eff": 0.88, "regen_eff": 0.60, "aux_kw": 0.20, "hvac_kw_per_deg": 0.08},
    # Renault Twizy 80 (rsk_twizy dataset): ~474 kg + driver, small frontal area, 6.1 kWh pack.
    "Renault Twizy": {"mass_kg": 560, "cda_m2": 0.64, "crr": 0.013, "drivetrain_eff": 0.85, "regen_eff": 0.5, "aux_kw": 0.05, "hvac_kw_per_deg": 0.0},
}


class PhysicsVehicleParams(Section):
    """Longitudinal energy model of one vehicle model (the physics baseline of the energy model)."""

    mass_kg: float = Field(..., gt=0, description="Loaded mass (kg).")
    cda_m2: float = Field(..., gt=0, description="Drag coefficient x frontal area (m2).")
    crr: float = Field(..., gt=0, description="Rolling resistance coefficient.")
    drivetrain_eff: float = Field(..., gt=0, le=1, description="Battery -> wheel efficiency.")
    regen_eff: float = Field(..., ge=0, le=1, description="Wheel -> battery efficiency when braking.")
    aux_kw: float = Field(0.0, ge=0, description="Base auxiliary load (kW).")
    hvac_kw_per_deg: float = Field(0.0, ge=0, description="HVAC load per degC away from 21 degC (kW/degC).")


class XgbParams(Section):
    """XGBoost booster parameters shared by xgboost.spark and the logged booster."""

    n_estimators: int = Field(300, ge=1)
    max_depth: int = Field(6, ge=1)
    learning_rate: float = Field(0.08, gt=0, le=1)
    subsample: float = Field(0.9, gt=0, le=1)
    colsample_bytree: float = Field(0.9, gt=0, le=1)
    min_child_weight: float = Field(5.0, ge=0)
    reg_lambda: float = Field(1.0, ge=0)
    tree_method: str = "hist"
    max_bin: int = Field(256, ge=2)
    objective: str | None = Field(None, description="Regression objective (e.g. reg:absoluteerror for an MAE-judged forecast); null = xgboost default.")


class SocModelConfig(Section):
    """SOC drop `horizon_min` ahead, per vehicle-minute (jobs/train.py, common/ml/features.py)."""

    registered_model: str = "evfa_soc_drop_60m"
    registered_classifier: str = "evfa_soc_drop_ge10_60m"
    horizon_min: int = Field(60, ge=1, description="Forecast horizon (minutes).")
    drop_threshold_pct: float = Field(10.0, gt=0, description="Classification event: drop >= this (SOC points).")
    label_max_staleness_min: int = Field(10, ge=0, description="SOC at t+horizon may come from the last minute with SOC at most this old (min).")
    slope_window_min: int = Field(15, ge=2, description="Recent SOC slope / persistence baseline window (min).")
    # MAE is the acceptance metric: fit the conditional median (integer SOC, many zero drops); the
    # parameter sweep behind these values is in docs/MODELS.md.
    xgb: XgbParams = Field(default_factory=lambda: XgbParams(n_estimators=400, max_depth=5, learning_rate=0.04, min_child_weight=20, colsample_bytree=0.7, objective="reg:absoluteerror"))


class EnergyModelConfig(Section):
    """Energy per km per segment (silver.segments), evaluated per trip."""

    registered_model: str = "evfa_energy_per_km"
    min_segment_km: float = Field(0.5, gt=0, description="Shorter (trip-tail) segments are not used to train (km).")
    min_eval_trip_km: float = Field(1.0, gt=0, description="Trips shorter than this are not scored for MAPE (km).")
    default_model: str | None = Field(None, description="Physics parameters for vehicles whose model is not in `physics`.")
    physics: dict[str, PhysicsVehicleParams] = Field(
        default_factory=lambda: {name: PhysicsVehicleParams(**p) for name, p in DEFAULT_PHYSICS.items()},
        description="Vehicle model name -> longitudinal energy parameters (physics baseline). The defaults are the "
        "manufacturer-class figures the synthetic generator uses; replace them with measured ones for a real fleet.",
    )
    xgb: XgbParams = Field(default_factory=lambda: XgbParams(n_estimators=400, max_depth=5, learning_rate=0.05))


class MonitoringConfig(Section):
    """Model monitoring (common/ml/monitoring.py): the training profile stored with each version and the drift rows of gold.model_monitoring."""

    bins: int = Field(10, ge=2, le=50, description="Quantile bins per feature in the training profile (10 = deciles); missing values are one more bin.")
    psi_threshold: float = Field(0.2, gt=0, description="Population stability index above which a feature or the prediction is marked drifted (0.1-0.25 is the usual 'moderate shift' band).")
    psi_floor: float = Field(1e-4, gt=0, lt=0.1, description="Smallest bin share in the PSI, so that an empty bin gives a large, finite index.")
    quantile_relative_error: float = Field(0.001, ge=0, lt=0.1, description="Relative error of Spark's approxQuantile for the bin edges and prediction quantiles.")
    min_rows: int = Field(
        500,
        ge=1,
        description="Fewest scored rows for a PSI to mark drift: with 11 bins, sampling noise alone exceeds 0.2 in most windows of 30 rows and in a quarter of 60-row windows.",
    )
    calendar_features: tuple[str, ...] = Field(
        ("day_of_week", "local_hour"),
        description="Inputs whose distribution follows the scored window's calendar (a one-day window holds one weekday): their PSI is written but never marks drift.",
    )


class MlConfig(Section):
    """Model training/scoring (jobs/train.py, jobs/score.py). docs/MODELS.md explains the choices."""

    num_workers: int = Field(2, ge=1, description="xgboost.spark workers (one Spark task each).")
    local_fit_max_rows: int = Field(
        1_000_000,
        ge=0,
        description="A fit on at most this many rows runs in the driver (single-process XGBoost on all its cores, same booster "
        "parameters) instead of as an xgboost.spark barrier stage: below ~1 M rows the barrier stage's start-up and the workers' "
        "histogram allreduce cost more than the fit (docs/BENCHMARKS.md). 0 = always xgboost.spark.",
    )
    seed: int = 42
    test_days: int = Field(2, ge=1, description="Last N local days of data are the test window.")
    gap_min: int = Field(60, ge=0, description="Gap between train and test (min); must be >= soc.horizon_min.")
    holdout_vehicle_share: float = Field(0.25, gt=0, lt=1, description="Grouped-by-vehicle check: vehicles held out.")
    refit_with_validation: bool = Field(
        True,
        description="SOC models: after the validation window has given its metrics and the decision threshold, refit on train + validation rows (one day more history) before testing and logging.",
    )
    champion_alias: str = "champion"
    soc: SocModelConfig = Field(default_factory=SocModelConfig)
    energy: EnergyModelConfig = Field(default_factory=EnergyModelConfig)
    monitoring: MonitoringConfig = Field(default_factory=MonitoringConfig)

    @model_validator(mode="after")
    def _gap_covers_horizon(self) -> "MlConfig":
        if self.gap_min < self.soc.horizon_min:
            raise ValueError(f"ml.gap_min ({self.gap_min}) must be >= ml.soc.horizon_min ({self.soc.horizon_min}): a training label would otherwise look into the test window")
        return self


class ReportConfig(Section):
    """The HTML report (`jobs/report.py`): where it goes, map limits and how residences are shown."""

    output_dir: str = Field("reports", description="Reports go to <output_dir>/<run>/index.html; <output_dir>/latest links the newest.")
    max_points_per_layer: int = Field(5000, ge=10, description="Cap on markers per map layer (rows brought to the driver).")
    residence_cell_m: float = Field(1000.0, gt=0, description="Residences are shown coarsened to cells of this size (m).")
    show_exact_residences: bool = Field(False, description="Explicit opt-in to plot exact home points (personal data).")
    min_drivers_for_tiers: int = Field(
        3,
        ge=3,
        description="A home cell shows its drivers' risk tiers (and enters the high-risk layer) only with at least this many drivers and more than one tier among them, "
        "so no cell tells one driver's tier (with two, each would learn the other's; with one tier for all, every driver's).",
    )
    risk_z_line: float = Field(-1.5, description="Reference line on the risk z-score histogram.")
    histogram_bins: int = Field(30, ge=2, le=200, description="Bins of the report's histograms, counted over every row of their table (no sample).")
    map_coordinate_decimals: int = Field(
        3,
        ge=1,
        le=3,
        description="Decimals of every map coordinate written to the report (3: within ~55 m). At most 3, so no position in the file is precise enough to identify a doorstep.",
    )


class ExportConfig(Section):
    """Extracts for operations teams (`jobs/export.py`): one CSV / Parquet file per extract and run, personal ones in a restricted folder."""

    enabled: bool = Field(True, description="Run the export stage; false: the pipeline records it as skipped with this reason.")
    output_dir: str = Field(
        "exports",
        description="Extracts without personal data go to <output_dir>/<run>/<extract>.<format> with the run's manifest.json; <output_dir>/latest points at the newest run. "
        "Relative paths resolve against the project root (like report.output_dir).",
    )
    restricted_dir: str | None = Field(
        None,
        description="Extracts with personal data (vehicle ids with their home cell) go to <restricted_dir>/<run>/, with a latest pointer. "
        "Null: <storage.restricted>/exports, so they share the restricted root's access policy (docs/PRIVACY.md). Must not be output_dir or lie inside it.",
    )
    formats: list[Literal["csv", "parquet"]] = Field(
        ["csv", "parquet"],  # pydantic copies a mutable default per instance
        description="Files written per extract: csv (UTF-8, header row, RFC 4180 quoting: opens in a spreadsheet) and/or parquet.",
    )
    max_rows: int = Field(
        100_000,
        ge=1,
        description="Rows per extract at most (each is one file, collected on one task); a longer extract keeps its first rows in its sort order and the stage notes the cut.",
    )
    home_cell_m: float = Field(
        1000.0,
        gt=0,
        description="The high-risk drivers extract gives each home as an H3 cell no smaller than a square of this side (m), never coordinates (`common.spatial.privacy.h3_resolution_for`).",
    )

    @field_validator("formats")
    @classmethod
    def _some_format(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("export.formats needs at least one of csv, parquet (set export.enabled: false to write none)")
        return list(dict.fromkeys(value))

    def folders(self, storage: StorageConfig) -> tuple[str, str]:
        """The resolved folders of ordinary and of personal-data extracts.

        Parameters
        ----------
        storage : StorageConfig
            Resolves relative paths; its restricted root holds the personal extracts by default.

        Returns
        -------
        tuple of str
            (output folder, restricted folder), absolute paths or URIs without a trailing slash.

        Raises
        ------
        ConfigError
            The restricted folder is the output folder or inside it (personal data would be
            published with the ordinary extracts).
        """
        public = storage.resolve(self.output_dir).rstrip("/")
        restricted = storage.resolve(self.restricted_dir or f"{storage.restricted.rstrip('/')}/exports").rstrip("/")
        if restricted == public or restricted.startswith(public + "/"):
            raise ConfigError(f"export.restricted_dir ({restricted}) must not be export.output_dir ({public}) or lie inside it: personal extracts would be published with the others")
        return public, restricted


class StationsConfig(Section):
    """Station KPIs, fleet <-> network join and coverage gaps (`jobs/stations.py`, `common/network/stations.py`)."""

    operational_status_codes: list[str] = Field(default_factory=lambda: ["E"], description="AFDC status codes of an open station (E = available; P planned, T temporarily unavailable).")
    public_access_values: list[str] = Field(default_factory=lambda: ["public"], description="`access` values that mean public (lower case).")
    match_radius_m: float = Field(75.0, gt=0, description="A fleet charging event or stop whose position is within this of a station is at that station (m).")
    min_soc_gain_pct: float = Field(1.0, ge=0, description="A stop at a station gaining less SOC than this did not charge: failed-attempt candidate (pct points).")
    dc_fast_gap_m: float = Field(3000.0, gt=0, description="A hotspot with no open DC-fast station within this distance is an expansion gap (m).")
    gap_search_m: float = Field(50000.0, gt=0, description="The nearest DC-fast station of a gap is searched within this radius; farther = null (m).")


class ReliabilityConfig(Section):
    """Charger reliability from OCPP status and sessions (`jobs/reliability.py`, `common/network/reliability.py`)."""

    offline_timeout_s: float = Field(
        2100.0,
        gt=0,
        description="A port silent for longer than this is offline from last message + timeout until its next message (s). "
        "OCPP 1.6 chargers re-send their status every 30 min (1800 s) while unchanged; 300 s grace.",
    )
    down_statuses: list[str] = Field(default_factory=lambda: ["Faulted", "Unavailable"], description="OCPP statuses that are an outage.")
    excluded_causes: list[str] = Field(
        default_factory=lambda: [
            "scheduled_maintenance",
            "outside_opening_hours",
            "utility_outage",
            "vandalism",
            "natural_disaster",
            "vehicle_fault",
        ],
        description="`info` values (case-insensitive) that make a down status an excluded outage (23 CFR 680.116(b)).",
    )
    offline_info_codes: list[str] = Field(default_factory=lambda: ["OOC"], description="`info` values of a down status that mean lost communication (ESB 'out of contact').")
    snapshot_sources: dict[str, float] = Field(
        default_factory=lambda: {"esb_cpinfo": 300.0},
        description="source_name -> snapshot interval (s) of status feeds that list only non-free connectors (absent = Available) instead of sending OCPP notifications.",
    )
    snapshot_max_gap_s: float = Field(900.0, gt=0, description="Snapshot feeds: consecutive snapshots farther apart than this leave a no-data gap (s).")
    observation_end: str | None = Field(
        None,
        description="ISO timestamp (UTC) closing the last interval of every port; null = the synthetic generator's period end for its inputs, else the latest message of the source.",
    )
    nevi_target_pct: float = Field(97.0, ge=0, le=100, description="NEVI minimum port uptime (23 CFR 680.116(b)) (percent).")
    nevi_window_months: int = Field(12, ge=1, description="Trailing window of the NEVI uptime (months).")
    session_success_min_kwh: float = Field(0.1, ge=0, description="Sources without a success flag: a session delivering at least this much energy succeeded (kWh).")
    retry_window_min: float = Field(30.0, ge=0, description="A vehicle's next session at the same station starting within this of the previous end is a retry (min).")
    hotspot_window_days: int = Field(14, ge=1, description="Fault-rate hotspots: trailing window of failed/all sessions (days).")
    hotspot_z: float = Field(2.0, description="A charger whose fault-rate z against the portfolio exceeds this is a hotspot.")
    hotspot_min_sessions: int = Field(20, ge=1, description="Chargers with fewer sessions in the window are not scored.")
    compare_window_days: int = Field(14, ge=1, description="Two-window test: the last N days vs the N days before (days).")
    alpha: float = Field(0.05, gt=0, lt=1, description="Significance level of the two-window and regression tests.")
    price_per_kwh: float = Field(0.35, ge=0, description="Tariff used to value lost energy of failed sessions (currency per kWh).")
    currency: str = "USD"
    bootstrap_resamples: int = Field(2000, ge=100, description="scipy.stats.bootstrap resamples of the lost-revenue CI.")
    bootstrap_max_sessions: int = Field(10000, ge=100, description="Successful sessions sampled (seeded) for the bootstrap; bounds driver memory and time.")
    stats_max_rows: int = Field(200000, ge=100, description="Sessions brought to the driver for the load-vs-fault regression (seeded sample beyond).")
    confidence_level: float = Field(0.95, gt=0, lt=1)
    seed: int = 42
    alert_thresholds_z: list[float] = Field(
        default_factory=lambda: [1.0, 1.5, 2.0, 2.5, 3.0],
        description="Fault-rate z thresholds scored by precision/recall against ports below the uptime target.",
    )


class CapacityConfig(Section):
    """Site capacity from sessions: demand per hour of week, Erlang C waiting, ports needed (`common/network/capacity.py`)."""

    target_p_wait: float = Field(0.10, gt=0, lt=1, description="Ports needed: the fewest with P(an arriving driver waits) at most this (fraction).")
    min_service_sessions: int = Field(5, ge=1, description="An hour-of-week slot with fewer completed sessions uses its station's mean plug-in time.")
    min_slot_hours: int = Field(4, ge=1, description="An hour of week seen fewer times than this (a window under ~4 weeks) takes the arrival rate of that local hour over all seven days.")
    max_ports: int = Field(500, ge=1, description="Search bound of ports_needed; a load needing more is written as null.")
    timezone: IanaZone = Field(
        None,
        description="IANA zone of the hour of week. Null: clean.default_timezone, else the generator region's zone for the generator's own inputs, else UTC (the table's timezone column says which).",
    )


FAULT_DRIVERS = ("network", "dc_station", "power_kw", "hour_band", "weekend", "load")


TrendTerm = Literal["c", "ct"]
TREND_TERMS: tuple[TrendTerm, ...] = ("c", "ct")


class FaultForecastConfig(Section):
    """Fault counts per site and for the network, forecast with a seasonal regression (`common/network/forecast.py`)."""

    bucket_days: int = Field(7, ge=1, le=31, description="Faults are counted per bucket of this many days (7: weekly), from the first observed day of the source.")
    season_length: int = Field(52, ge=2, description="Buckets per seasonal cycle (52 weekly buckets: a year).")
    horizon: int = Field(13, ge=1, description="Buckets forecast after the last complete bucket.")
    interval_level: float = Field(0.8, gt=0, lt=1, description="Coverage of the prediction intervals (0.8: the 10th to 90th percentile).")
    fourier_terms: list[int] = Field(
        default_factory=lambda: [0, 1, 2],
        description="Candidate numbers of sine/cosine pairs of the seasonal cycle; K > 0 only with min_seasons cycles of history.",
    )
    trends: list[TrendTerm] = Field(default_factory=lambda: list(TREND_TERMS), description="Candidate deterministic terms: c (level), ct (level and linear trend).")
    ar_orders: list[int] = Field(default_factory=lambda: [0, 1], description="Candidate AR orders of the errors (SARIMAX (p,0,0)).")
    min_buckets: int = Field(12, ge=4, description="A series with fewer complete buckets gets the mean baseline, with the reason, instead of a fit.")
    min_seasons: float = Field(2.0, ge=1, description="Seasonal (Fourier) candidates need this many cycles of history; fewer: level and trend only.")
    backtest_origins: int = Field(3, ge=1, description="Rolling origins of the backtest, one horizon apart, the last one horizon before the end.")

    @field_validator("fourier_terms", "ar_orders")
    @classmethod
    def _non_negative(cls, v: list[int]) -> list[int]:
        if not v or min(v) < 0:
            raise ValueError("a non-empty list of non-negative integers")
        return sorted(set(v))


class TariffPeriod(Section):
    """One period of the time-of-use tariff: from ``start_hour`` (local) to the next period's start."""

    start_hour: float = Field(..., ge=0, lt=24, description="Local hour the period starts (0-24, fractions allowed).")
    price_per_kwh: float = Field(..., ge=0, description="Price of one grid kWh in this period (the tariff's currency).")


class ChargingPlanConfig(Section):
    """Next-day charging plan: expected need, current SOC, where and when each vehicle can charge -> the cheapest schedule (`common/mobility/charging_plan.py`)."""

    plan_date: str | None = Field(None, description="Local day of the duty planned for (YYYY-MM-DD). Null: the next duty after the fleet's latest reading.")
    slot_minutes: int = Field(30, ge=5, le=240, description="Length of one time slot of the schedule (min); 60 must be a multiple of it or it a multiple of 60.")
    horizon_start_hour: float = Field(12.0, ge=0, lt=24, description="The schedule's first slot starts at this local hour of the day before the plan date.")
    duty_start_hour: float = Field(7.0, ge=0, lt=24, description="Local hour the duty starts on the plan date; the last slot ends there.")
    default_arrival_hour: float = Field(18.0, ge=0, lt=24, description="Local hour a vehicle is parked at its charging place from, when its history does not say (on the day before the plan date).")
    min_arrival_events: int = Field(3, ge=1, description="A vehicle's arrival hour comes from its charging events at the site (median local start hour) when it has at least this many there.")
    max_soc_age_h: float = Field(
        24.0, gt=0, description="A closing SOC read more than this many hours before the horizon start is stale: the vehicle is infeasible (stale_soc) rather than planned on it."
    )
    tariff: list[TariffPeriod] = Field(
        default_factory=lambda: [
            TariffPeriod(start_hour=0, price_per_kwh=0.10),
            TariffPeriod(start_hour=6, price_per_kwh=0.20),
            TariffPeriod(start_hour=17, price_per_kwh=0.32),
            TariffPeriod(start_hour=21, price_per_kwh=0.15),
        ],
        description="Time-of-use tariff in local time: periods ordered by start_hour, the first at hour 0; each lasts until the next one starts.",
    )
    soc_floor_pct: float = Field(20.0, ge=0, lt=100, description="SOC no vehicle may fall below during its expected duty (percent).")
    soc_max_pct: float = Field(90.0, gt=0, le=100, description="SOC charging stops at (percent; below 100 spares the battery).")
    charger_efficiency: float = Field(0.90, gt=0, le=1, description="Battery kWh per grid kWh (charger and battery losses); the cost is paid on grid kWh.")
    history_weeks: int = Field(4, ge=1, description="Expected km: the vehicle's days of the last this many weeks before the plan date.")
    km_quantile: float = Field(0.8, gt=0, le=1, description="Expected km = this quantile of the vehicle's km on the plan date's weekday (over history_weeks), a prudent rather than a mean day.")
    min_weekday_days: int = Field(2, ge=1, description="With fewer days of the plan date's weekday in the history, the quantile is taken over every day of the history.")
    physics_speed_kmh: float = Field(35.0, gt=0, description="Steady speed of the physics fallback's energy per km (km/h; urban duty).")
    count_enroute_charging: bool = Field(
        True, description="Subtract from the duty's energy what the vehicle typically charges during its duty (median daily kWh of its history outside its overnight window)."
    )
    home_charger_kw: float = Field(7.4, gt=0, description="Power of a home charger, and of any site whose power is neither in bronze.stations nor observed (kW).")
    default_ports: int = Field(4, ge=1, description="Ports of a depot or public site whose station has no port counts.")
    site_capacity_kw: dict[str, float] = Field(
        default_factory=dict,
        description="Grid capacity (kW) of sites by station_id or site_id; other sites get capacity_share x ports x power.",
    )
    capacity_share: float = Field(0.7, gt=0, le=1, description="A site's default grid capacity as a share of the sum of its ports' power (depots are provisioned below their nameplate).")
    solver_time_limit_s: float = Field(30.0, gt=0, description="Time limit of one site's MILP (s); a site stopped without a solution reports its vehicles infeasible (solver).")
    mip_rel_gap: float = Field(1e-6, ge=0, lt=1, description="Relative optimality gap the MILP stops at.")

    @field_validator("tariff")
    @classmethod
    def _tariff_ordered(cls, v: list[TariffPeriod]) -> list[TariffPeriod]:
        hours = [p.start_hour for p in v]
        if not v or hours[0] != 0 or any(b <= a for a, b in zip(hours, hours[1:])):
            raise ValueError("tariff periods must start at hour 0 and be ordered by strictly increasing start_hour")
        return v

    @field_validator("plan_date")
    @classmethod
    def _iso_date(cls, v: str | None) -> str | None:
        from datetime import date

        if v is not None:
            date.fromisoformat(v)
        return v

    @model_validator(mode="after")
    def _consistent(self) -> ChargingPlanConfig:
        if self.soc_max_pct <= self.soc_floor_pct:
            raise ValueError("soc_max_pct must be above soc_floor_pct")
        if (self.slot_minutes % 60 and 60 % self.slot_minutes) or (self.horizon_start_hour * 60) % self.slot_minutes or (self.duty_start_hour * 60) % self.slot_minutes:
            raise ValueError("slot_minutes must divide an hour (or be whole hours) and horizon_start_hour / duty_start_hour must fall on slot boundaries")
        # the horizon runs from horizon_start_hour of the eve to duty_start_hour of the plan date
        if self.duty_start_hour > self.horizon_start_hour:
            raise ValueError("the horizon (horizon_start_hour of the eve to duty_start_hour of the plan date) must be at most 24 h: duty_start_hour <= horizon_start_hour")
        if self.duty_start_hour <= self.default_arrival_hour < self.horizon_start_hour:
            raise ValueError("default_arrival_hour must lie inside the horizon: at or after horizon_start_hour or before duty_start_hour")
        negative = {k: v for k, v in self.site_capacity_kw.items() if v < 0}
        if negative:
            raise ValueError(f"site_capacity_kw must not be negative: {negative}")
        return self


class RolloutConfig(Section):
    """Rollout evaluation: difference-in-differences of the fault rate and uptime around changes to sites (`common/network/rollout.py`)."""

    period_days: int = Field(7, ge=1, le=31, description="Sites are compared per period of this many days (7: weeks), from the first observed UTC day of the source.")
    leads: int = Field(4, ge=2, description="Event study: periods before the rollout shown (the earliest bins every earlier period); period -1 is the reference.")
    lags: int = Field(8, ge=1, description="Event study: periods after the rollout shown (the last bins every later period).")
    min_treated_units: int = Field(4, ge=2, description="A change type with fewer treated sites gets a row with the reason and no estimate.")
    min_control_units: int = Field(4, ge=2, description="Fewer never-treated sites: a row with the reason and no estimate (SEs are clustered by site).")
    confidence_level: float = Field(0.95, gt=0, lt=1, description="Level of the confidence intervals (t with min(treated, control sites) - 1 degrees of freedom).")
    alpha: float = Field(0.05, gt=0, lt=1, description="Significance level of the effect and of the pre-trend test.")


class FaultDriversConfig(Section):
    """Root cause of failed sessions: a logit of failure on charger and session attributes (`common/network/fault_drivers.py`)."""

    drivers: list[str] = Field(
        default_factory=lambda: ["network", "dc_station", "hour_band", "weekend", "load"],
        description="Terms of the model: network (the station's operator, categorical), dc_station (the station has DC-fast "
        "ports), power_kw (the station register's power, log2; mostly collinear with dc_station, so off by default), hour_band "
        "(local start hour, categorical), weekend (local Saturday or Sunday), load (sessions started on the port in the previous "
        "24 h). A term whose data is missing or constant is left out with a note.",
    )
    hour_band_edges: list[int] = Field(default_factory=lambda: [0, 6, 10, 16, 20], description="Local start hours opening each hour band (first 0, increasing, < 24).")
    reference_hour: int = Field(12, ge=0, le=23, description="The hour band containing this local hour is the reference level of hour_band.")
    exclude_unavailable_ports: bool = Field(
        True,
        description="Leave out sessions that started while silver.port_status_intervals had their port down, excluded or without data "
        "(the attempt failed because the port was out, whatever the session's attributes); counted in the model row.",
    )
    min_sessions: int = Field(200, ge=10, description="A source with fewer modelled sessions gets no fit (its model row says why).")
    min_failed: int = Field(20, ge=1, description="A source with fewer failed modelled sessions gets no fit.")
    min_stations: int = Field(10, ge=2, description="A source whose modelled sessions come from fewer stations gets no fit: standard errors clustered by station need clusters.")
    min_level_sessions: int = Field(
        100,
        ge=1,
        description="A network with fewer sessions, or with no or only failures, is pooled into '(other)' (its odds could not be estimated); "
        "a pool that is still this small or one-sided leaves the fit (noted).",
    )
    max_sessions: int = Field(500000, ge=1000, description="Sessions per source the fit reads; a seeded sample beyond (noted).")
    alpha: float = Field(0.05, gt=0, lt=1, description="Significance level of the Wald CIs and of the Holm-adjusted p-values.")
    seed: int = 42

    @field_validator("drivers")
    @classmethod
    def _known_drivers(cls, value: list[str]) -> list[str]:
        unknown = sorted(set(value) - set(FAULT_DRIVERS))
        if unknown:
            raise ValueError(f"fault_drivers.drivers: unknown {unknown}; known: {list(FAULT_DRIVERS)}")
        return value

    @field_validator("hour_band_edges")
    @classmethod
    def _edges(cls, value: list[int]) -> list[int]:
        if not value or value[0] != 0 or any(b <= a for a, b in zip(value, value[1:])) or value[-1] > 23:
            raise ValueError(f"fault_drivers.hour_band_edges: need 0 first, strictly increasing, all < 24 (got {value})")
        return value


class ResidenceConfig(Section):
    """Home location per vehicle from night parking (`jobs/residence.py`, `common/mobility/residence.py`)."""

    night_start_hour: int = Field(0, ge=0, le=23, description="Night window start, local wall-clock hour (inclusive).")
    night_end_hour: int = Field(5, ge=1, le=24, description="Night window end, local hour (exclusive); a window with start > end wraps midnight.")
    stationary_speed_kmh: float = Field(2.0, ge=0, description="A night point at or below this reported speed is parked (km/h).")
    grid_m: float = Field(10.0, gt=0, description="Night points are snapped to cells of this size before DBSCAN; counts become sample_weight (m).")
    eps_m: float = Field(50.0, gt=0, description="DBSCAN neighbourhood radius (haversine, m).")
    min_samples: int = Field(6, ge=1, description="DBSCAN min weighted night points for a core point (6 x 5-min heartbeats = 30 min parked).")
    max_dwell_s: float = Field(900.0, gt=0, description="Dwell of a night point = time to the vehicle's next night point, capped at this (device gaps) (s).")
    min_nights: int = Field(3, ge=1, description="A home is labelled only when the vehicle spent at least this many nights there.")

    @model_validator(mode="after")
    def _window_not_empty(self) -> "ResidenceConfig":
        if self.night_start_hour == self.night_end_hour % 24:
            raise ValueError("residence.night_start_hour and night_end_hour must differ")
        return self

    max_cells_per_vehicle: int = Field(
        50000,
        ge=1,
        description="Most night grid cells of one vehicle the home DBSCAN (a grouped pandas UDF) loads; above "
        "it the cells with the most points are kept. Bounds a Python worker's memory (50 000 cells = 5 km2 of 10 m cells).",
    )


class ChargingConfig(Section):
    """Charging events, per-vehicle charging locations and fleet charging sites (`jobs/charging.py`)."""

    stationary_speed_kmh: float = Field(2.0, ge=0, description="Both samples of a step at or below this are stationary (km/h).")
    stationary_radius_m: float = Field(100.0, gt=0, description="A step longer than this is a move, even at zero reported speed (m).")
    max_pause_min: float = Field(60.0, ge=0, description="Flat SOC for longer than this between two rises starts a new event (min).")
    soc_drop_tolerance_pct: float = Field(1.0, ge=0, description="A stationary SOC drop up to this does not end a run (integer SOC jitter) (pct points).")
    min_delta_soc_pct: float = Field(5.0, ge=0, description="High-confidence events gain more than this (pct points).")
    fallback_min_delta_soc_pct: float = Field(2.0, ge=0, description="Second pass, only for vehicles without a high-confidence event: gain more than this (pct points).")
    default_battery_kwh: float | None = Field(None, gt=0, description="Battery for vehicles missing from bronze.vehicles (kWh); null = kwh stays null.")
    location_eps_m: float = Field(75.0, gt=0, description="Per-vehicle DBSCAN radius over event positions (m).")
    location_min_events: int = Field(1, ge=1, description="DBSCAN min_samples: one successful charge makes a location.")
    max_events_per_vehicle: int = Field(
        20000,
        ge=1,
        description="Most events of one vehicle the location DBSCAN (a grouped pandas UDF) loads; above it a "
        "seeded sample is clustered and the rest get no location_id. Bounds a Python worker's memory.",
    )
    site_eps_m: float = Field(75.0, gt=0, description="Fleet-wide grouping of vehicles' locations into sites (m).")
    home_radius_m: float = Field(150.0, gt=0, description="A site within this of a charging vehicle's residence is 'home' (m).")
    station_radius_m: float = Field(100.0, gt=0, description="A site within this of a bronze.stations row is that station (m).")
    partition_cell_m: float = Field(5000.0, gt=0, description="Spatial partition cell of the fleet-wide site grouping (m).")

    @model_validator(mode="after")
    def _cell_covers_halo(self) -> "ChargingConfig":
        if self.partition_cell_m < 4 * self.site_eps_m:
            raise ValueError(f"charging.partition_cell_m ({self.partition_cell_m}) must be >= 4 x site_eps_m ({self.site_eps_m})")
        return self


class HotspotsConfig(Section):
    """Fleet hotspots from unique daily visits with exact distributed DBSCAN (`jobs/hotspots.py`)."""

    min_dwell_min: float = Field(5.0, gt=0, description="A stop counts as a visit when its dwell reaches this (min).")
    visit_merge_m: float = Field(150.0, gt=0, description="Stops of one vehicle on one local day within this of each other are one visit (m).")
    eps_m: float = Field(
        100.0,
        gt=0,
        description="DBSCAN radius over unique-visit positions (m). Kept well below radius_m: at fleet scale a 500 m radius chains a whole city's scattered stops into one cluster.",
    )
    min_samples: int = Field(10, ge=1, description="DBSCAN min unique visits within eps_m of a core visit.")
    min_unique_visits: int = Field(50, ge=1, description="A cluster is a hotspot with at least this many unique visits ...")
    radius_m: float = Field(500.0, gt=0, description="... within this distance of its centroid (m).")
    min_distinct_vehicles: int = Field(2, ge=1, description="A hotspot is shared: at least this many vehicles (one driver's home is not a fleet hotspot).")
    busiest_hours: int = Field(3, ge=1, le=24, description="Local arrival hours listed per hotspot, busiest first.")
    partition_cell_m: float = Field(2000.0, gt=0, description="Distributed DBSCAN partition cell (m); at least 4 x eps_m. Halo = 2 x eps_m.")

    @model_validator(mode="after")
    def _cell_covers_halo(self) -> "HotspotsConfig":
        if self.partition_cell_m < 4 * self.eps_m:
            raise ValueError(f"hotspots.partition_cell_m ({self.partition_cell_m}) must be >= 4 x eps_m ({self.eps_m})")
        return self


class RiskConfig(Section):
    """Driver risk (`jobs/risk.py`): the original z-score rule plus tested trend/inactivity signals."""

    z_threshold: float = Field(-1.5, description="Baseline: High risk when the average daily km z-score is below this.")
    active_day_min_km: float = Field(5.0, ge=0, description="A reported day with less GPS distance is inactive (km).")
    min_reported_days: int = Field(3, ge=1, description="Fewer reported days: tier `insufficient_data` with the reason (never a silent absence).")
    low_coverage_share: float = Field(
        0.6,
        ge=0,
        le=1,
        description="Drivers whose device reported on fewer than this share of the period's days are 'low coverage': listed separately, never High only because of missing days.",
    )
    fdr: float = Field(
        0.05,
        gt=0,
        lt=1,
        description="False discovery rate of the trend and rising-inactivity signals across the fleet: a "
        "signal beyond the z rule scores only when its one-sided test's Benjamini-Hochberg q-value is below this.",
    )
    trend_min_days: int = Field(10, ge=4, description="Trend and rising-inactivity signals need at least this many reported days.")
    trend_drop_pct_per_week: float = Field(
        30.0, ge=0, description="Signal: daily km falling faster than this share of the driver's mean per week (percent), significant (least-squares slope, one-sided t-test, fleet FDR)."
    )
    steep_drop_pct_per_week: float = Field(60.0, ge=0, description="Extra signal: the same test, falling faster than this (percent per week).")
    min_day_coverage: float = Field(
        0.5,
        ge=0,
        le=1,
        description="Days whose data covers less than this share of 24 h (gold.daily_kpis data_coverage_share; parked silences count as covered, see kpis.trips) are not reported days.",
    )
    inactive_share: float = Field(0.3, ge=0, le=1, description="Signal: share of reported days that are inactive above this.")
    days_since_trip: int = Field(2, ge=1, description="Signal: no active day in the last N reported days of the period.")
    charging_gap_factor: float = Field(2.0, gt=0, description="Signal: days since the last charge above this x the driver's median charging interval.")
    min_residence_confidence: float = Field(0.6, ge=0, le=1, description="Signal: home confidence below this (nights split between places: moved or unstable).")
    weights: dict[str, float] = Field(
        default_factory=lambda: {
            "low_distance_z": 50.0,
            "declining_trend": 25.0,
            "steep_decline": 25.0,
            "rising_inactivity": 25.0,
            "inactive_days": 10.0,
            "no_recent_trip": 15.0,
            "irregular_charging": 10.0,
            "residence_change": 10.0,
        },
        description="Points per signal; score = sum of the signals present (0-100, capped). A steady pattern (inactive "
        "days, charging, residence) stays below high_score on its own: only the z rule or a tested change reaches High.",
    )
    high_score: float = Field(50.0, ge=0, description="Tier High at or above this score (or z below z_threshold).")
    medium_score: float = Field(25.0, ge=0, description="Tier Medium at or above this score.")


class MaintainConfig(Section):
    """Delta table upkeep (`jobs/maintain.py`): compaction with Z-order, CHECK constraints, VACUUM."""

    enabled: bool = Field(False, description="Run the maintain stage in the pipeline (off on a laptop; on in conf/emr.yaml and conf/glue.yaml). `jobs/maintain.py` run alone ignores it.")
    zorder: bool = Field(True, description="OPTIMIZE ZORDER BY the catalog's cluster_by columns (plain compaction for tables without any).")
    constraints: bool = Field(True, description="Add CHECK constraints (required columns not null, ingest ranges) to bronze and silver tables whose rows satisfy them.")
    vacuum_retention_hours: float = Field(
        168.0,
        ge=0,
        description="VACUUM removes files unreferenced for longer than this (h); time travel works within it. Below Delta's 168 h safety default only with allow_short_retention.",
    )
    allow_short_retention: bool = Field(False, description="Allow vacuum_retention_hours < 168: readers or time travel older than it can fail.")

    @model_validator(mode="after")
    def _safe_retention(self) -> "MaintainConfig":
        if self.vacuum_retention_hours < DELTA_SAFE_RETENTION_HOURS and not self.allow_short_retention:
            raise ValueError(
                f"maintain.vacuum_retention_hours ({self.vacuum_retention_hours}) is below Delta's safety default of {DELTA_SAFE_RETENTION_HOURS} h: "
                "set maintain.allow_short_retention: true if no reader or time travel needs older versions"
            )
        return self


class CatalogConfig(Section):
    """Tables by name (`jobs/catalog.py`): every Delta table registered in a metastore as <layer>.<name>."""

    metastore: Literal["none", "local", "glue"] = Field(
        "none",
        description="none: tables are read by path only; local: a Derby metastore in local_path (one Spark process at a time; conf/local.yaml); "
        "glue: the AWS Glue Data Catalog (conf/emr.yaml, conf/glue.yaml; terraform creates the databases).",
    )
    local_path: str = Field("", description="Folder of the local metastore (Derby database, warehouse); empty: <storage.root>/_metastore.")
    database_prefix: str = Field("", description="Prefix of the databases (one per layer): '' gives gold.driver_risk, 'evfa_' evfa_gold.driver_risk.")

    @field_validator("database_prefix")
    @classmethod
    def _identifier(cls, value: str) -> str:
        if value and not value.replace("_", "a").isalnum():
            raise ValueError("catalog.database_prefix may hold letters, digits and underscores only")
        return value.lower()


class Config(Section):
    """The whole configuration: the environment's name and one section per platform part and stage."""

    env: str = "local"
    spark: SparkConfig = Field(default_factory=SparkConfig)
    storage: StorageConfig = Field(default_factory=StorageConfig)
    mlflow: MlflowConfig = Field(default_factory=MlflowConfig)
    inputs: InputsConfig = Field(default_factory=InputsConfig)
    generator: GeneratorConfig = Field(default_factory=GeneratorConfig)
    ingest: IngestConfig = Field(default_factory=IngestConfig)
    lease: LeaseConfig = Field(default_factory=LeaseConfig)
    clean: CleanConfig = Field(default_factory=CleanConfig)
    devices: DevicesConfig = Field(default_factory=DevicesConfig)
    kpis: KpisConfig = Field(default_factory=KpisConfig)
    ml: MlConfig = Field(default_factory=MlConfig)
    report: ReportConfig = Field(default_factory=ReportConfig)
    export: ExportConfig = Field(default_factory=ExportConfig)
    stations: StationsConfig = Field(default_factory=StationsConfig)
    reliability: ReliabilityConfig = Field(default_factory=ReliabilityConfig)
    capacity: CapacityConfig = Field(default_factory=CapacityConfig)
    fault_drivers: FaultDriversConfig = Field(default_factory=FaultDriversConfig)
    fault_forecast: FaultForecastConfig = Field(default_factory=FaultForecastConfig)
    charging_plan: ChargingPlanConfig = Field(default_factory=ChargingPlanConfig)
    rollout: RolloutConfig = Field(default_factory=RolloutConfig)
    residence: ResidenceConfig = Field(default_factory=ResidenceConfig)
    charging: ChargingConfig = Field(default_factory=ChargingConfig)
    hotspots: HotspotsConfig = Field(default_factory=HotspotsConfig)
    risk: RiskConfig = Field(default_factory=RiskConfig)
    maintain: MaintainConfig = Field(default_factory=MaintainConfig)
    catalog: CatalogConfig = Field(default_factory=CatalogConfig)

    def redacted(self) -> dict[str, Any]:
        """The config as a dict with values that may carry credentials masked (for logs).

        Returns
        -------
        dict
            JSON-like dump of every section; masked values are ``***`` (`common.core.redaction.redact`).
        """
        return redact(self.model_dump(mode="json"))


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-(.*?))?\}")


def _expand_env(obj: Any, env: dict[str, str] | None = None) -> Any:
    """`${VAR}` / `${VAR:-default}` from `env` (then the process environment)."""
    if isinstance(obj, dict):
        return {k: _expand_env(v, env) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_expand_env(v, env) for v in obj]
    if isinstance(obj, str):

        def sub(m: re.Match[str]) -> str:
            value = (env or {}).get(m.group(1), os.environ.get(m.group(1)))
            if value is None:
                if m.group(2) is None:
                    raise ConfigError(f"environment variable {m.group(1)} is referenced in conf but not set")
                return m.group(2)
            return value

        return _ENV_REF.sub(sub, obj)
    return obj


# Sections a dataset file may set in `settings:`: properties of the data (its area, clock, codes),
# never the platform (where tables live, how Spark runs, where MLflow is).
DATASET_SETTING_SECTIONS = ("clean", "ingest", "kpis", "residence", "charging", "hotspots", "risk", "stations", "reliability", "capacity", "fault_drivers", "ml")


def _dataset_file(name: str) -> Path:
    path = Path(name)
    if not path.exists() and (PROJECT_ROOT / name).exists():
        path = PROJECT_ROOT / name
    if not path.exists():
        raise ConfigError(f"--inputs {name}: file not found")
    return path


def load_dataset_files(paths: list[str], env: dict[str, str] | None = None) -> InputsConfig:
    """Concatenate the `inputs:` lists of dataset YAML files (relative to cwd or the project).

    Parameters
    ----------
    paths : list of str
        Dataset YAML files (`--inputs`).
    env : dict of str to str, optional
        Values that win over the process environment for `${VAR}` references (the generator points
        a shipped mapping at its own raw folder this way).

    Returns
    -------
    InputsConfig
        The datasets of every file, per kind in file order.

    Raises
    ------
    ConfigError
        A file is missing, not a mapping, or its datasets do not validate (each problem named).
    """
    merged: dict[str, list] = {}
    for name in paths:
        data = _read_yaml(_dataset_file(name))
        data = _expand_env(data.get("inputs", {k: v for k, v in data.items() if k != "settings"}), env)
        if not isinstance(data, dict):
            raise ConfigError(f"--inputs {name}: expected a mapping 'inputs: {{<kind>: [datasets]}}'")
        for kind, specs in data.items():
            merged.setdefault(kind, []).extend(specs or [])
    try:
        return InputsConfig.model_validate(merged)
    except ValidationError as exc:
        lines = [f"  inputs.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
        raise ConfigError(f"--inputs {', '.join(paths)}: invalid dataset config:\n" + "\n".join(lines)) from None


def dataset_settings(paths: list[str]) -> dict[str, Any]:
    """`settings:` of dataset files: dotted config keys that describe the data.

    E.g. `clean.default_timezone: Africa/Nairobi`, `clean.area_file: conf/areas/nairobi.wkt`.

    Parameters
    ----------
    paths : list of str
        Dataset YAML files (`--inputs`).

    Returns
    -------
    dict
        Dotted key -> value; a later file wins for the same key.

    Raises
    ------
    ConfigError
        `settings` is not a mapping, or a key is outside DATASET_SETTING_SECTIONS (platform settings).
    """
    out: dict[str, Any] = {}
    for name in paths:
        settings = _read_yaml(_dataset_file(name)).get("settings") or {}
        if not isinstance(settings, dict):
            raise ConfigError(f"--inputs {name}: 'settings' must map dotted keys to values")
        for key, value in settings.items():
            section = str(key).split(".", 1)[0]
            if section not in DATASET_SETTING_SECTIONS:
                raise ConfigError(
                    f"--inputs {name}: settings.{key}: a dataset file may set only {', '.join(DATASET_SETTING_SECTIONS)} (the data's properties); platform settings belong in conf/<env>.yaml or --conf"
                )
            out[str(key)] = value
    return out


def _set_dotted(data: dict[str, Any], key: str, value: Any) -> None:
    node = data
    parts = key.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"{key}: {part!r} is a value, not a section")
    node[parts[-1]] = value


def deep_merge(base: dict[str, Any], overlay: dict[str, Any]) -> dict[str, Any]:
    """`overlay` merged into a copy of `base`, key by key through nested dicts.

    Parameters
    ----------
    base : dict
    overlay : dict
        Its values win; a dict merges into a dict of `base`, anything else replaces the value.

    Returns
    -------
    dict
        A deep copy; neither input is changed.
    """
    out = copy.deepcopy(base)
    for key, value in (overlay or {}).items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping")
    return data


def apply_override(data: dict[str, Any], override: str) -> dict[str, Any]:
    """Apply one `a.b.c=value` override; the value is parsed as YAML (numbers, lists, null).

    Parameters
    ----------
    data : dict
        The merged config data; changed in place.
    override : str
        ``key=value`` as given to `--conf`; an empty value sets ``""``.

    Returns
    -------
    dict
        `data`.

    Raises
    ------
    ConfigError
        No ``=`` or no key, or a section on the key's path is a value.
    """
    key, sep, raw = override.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--conf {override!r}: expected key=value, e.g. --conf clean.max_speed_kmh=150")
    parts = key.strip().split(".")
    node = data
    for part in parts[:-1]:
        nxt = node.setdefault(part, {})
        if not isinstance(nxt, dict):
            raise ConfigError(f"--conf {key}: {part!r} is a value, not a section")
        node = nxt
    node[parts[-1]] = yaml.safe_load(raw) if raw.strip() else ""
    return data


def load_config(env: str = "local", overrides: list[str] | None = None, conf_dir: Path | None = None, dataset_files: list[str] | None = None) -> Config:
    """base.yaml <- <env>.yaml <- dataset files (`--inputs`) <- overrides, then validate.

    Dataset files replace `inputs` and may set the data's properties (`settings:`); `--conf`
    overrides win over both. `${VAR}` references are expanded last.

    Parameters
    ----------
    env : str
        Name of ``conf/<env>.yaml``.
    overrides : list of str, optional
        ``key=value`` overrides (`--conf`).
    conf_dir : pathlib.Path, optional
        Folder of the YAML files; default CONF_DIR.
    dataset_files : list of str, optional
        Dataset YAML files (`--inputs`).

    Returns
    -------
    Config
        Validated.

    Raises
    ------
    ConfigError
        Unknown env, invalid YAML, an unset `${VAR}` or an invalid value; the message names the key
        and the file.
    """
    conf_dir = conf_dir or CONF_DIR
    base_file = conf_dir / "base.yaml"
    env_file = conf_dir / f"{env}.yaml"
    if not env_file.exists():
        known = sorted(p.stem for p in conf_dir.glob("*.yaml") if p.stem != "base")
        raise ConfigError(f"unknown --env {env!r}: no {env_file} (known: {', '.join(known)})")
    # Files and overrides merge into the models' defaults key by key: `ml.energy.xgb.n_estimators=300`
    # changes one value and keeps the section's other defaults (a nested model built from a partial
    # dict would take its class defaults instead).
    defaults = Config.model_construct().model_dump(mode="json", exclude={"env"})
    data = deep_merge(defaults, deep_merge(_read_yaml(base_file) if base_file.exists() else {}, _read_yaml(env_file)))
    data["env"] = env
    if dataset_files:
        data["inputs"] = load_dataset_files(dataset_files).model_dump(mode="json")
        for key, value in dataset_settings(dataset_files).items():
            _set_dotted(data, key, value)
    for override in overrides or []:
        data = apply_override(data, override)
    data = _expand_env(data)
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"])
            lines.append(f"  {where}: {err['msg']} (got {err.get('input')!r})"[:300])
        raise ConfigError(f"invalid configuration for env {env!r}:\n" + "\n".join(lines)) from None

"""The table catalog: every Delta table of the lakehouse, declared once.

Each entry names the table's layer and name, its partition columns, what a row is (the Delta
table comment), whether it holds personal data, and where it lives (``location``):

- ``lakehouse``: ``<storage.root>/<layer>/<name>``, readable by analysts;
- ``restricted``: under ``storage.restricted_root`` (docs/PRIVACY.md): homes, places a vehicle
  stopped at, and the *position traces*, every position a vehicle reported, from which homes and
  routines can be re-derived.

Jobs declare their inputs and outputs with these names (``INPUTS`` / ``OUTPUTS`` in each job);
``jobs.pipeline`` derives the stage order from those declarations, ``common.io.tables.write``
takes comments and partitions from here, and the table flow in docs/ARCHITECTURE.md is generated
from this module (``python -m deploy.gen_docs``; a test fails when it drifts). The module imports
no Spark: configuration (which places tables) loads on a cluster bootstrap before Spark does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Layer = Literal["raw", "bronze", "silver", "gold", "quarantine", "audit", "truth", "restricted"]


@dataclass(frozen=True)
class Table:
    """One Delta table.

    Attributes
    ----------
    name : str
        ``<layer>.<name>``, the name every job and test uses.
    description : str
        What one row is; written as the Delta table comment.
    partition_by : tuple of str
        Partition columns (``date`` is the UTC day of ``ts``; ``local_date`` the vehicle's local day).
    personal : bool
        Holds personal data (positions of people's places or movements).
    position_trace : bool
        Every reported position (or a trip's exact ends): stored under the restricted root even
        though its layer is bronze/silver/quarantine.
    properties : dict of str to str
        Delta table properties; no catalog entry sets any (jobs pass theirs to `common.io.tables.write`).
    cluster_by : tuple of str
        Columns readers filter by: `jobs/maintain.py` Z-orders the table's files on them.
    """

    name: str
    description: str
    partition_by: tuple[str, ...] = ()
    personal: bool = False
    position_trace: bool = False
    properties: dict[str, str] = field(default_factory=dict)
    cluster_by: tuple[str, ...] = ()

    @property
    def layer(self) -> str:
        """The layer, the part of `name` before the dot.

        Returns
        -------
        str
            raw, bronze, silver, gold, quarantine, audit, truth or restricted.
        """
        return self.name.split(".", 1)[0]

    @property
    def location(self) -> str:
        """Which storage root holds the table.

        Returns
        -------
        str
            ``restricted`` for the restricted layer and position traces, else ``lakehouse``.
        """
        return "restricted" if self.layer == "restricted" or self.position_trace else "lakehouse"


TABLES: dict[str, Table] = {
    t.name: t
    for t in (
        # raw: the landed files themselves (not a Delta table): ingest reads them, the generator writes them
        Table("raw.files", "Input files as they land (CSV, Parquet, JSON, Excel): <storage.root>/raw or the dataset files' paths"),
        # bronze: the landed files in canonical columns, nothing dropped
        Table("bronze.telematics", "Bronze telematics: canonical columns (UTC), lineage; jobs/ingest.py", ("date",), personal=True, position_trace=True, cluster_by=("vehicle_id", "ts")),
        Table("bronze.vehicles", "Bronze vehicles: canonical columns (UTC), lineage; jobs/ingest.py"),
        Table("bronze.stations", "Bronze stations: canonical columns (UTC), lineage; jobs/ingest.py"),
        Table("bronze.charger_status", "Bronze charger_status: canonical columns (UTC), lineage; jobs/ingest.py", ("date",), cluster_by=("port_id", "ts")),
        Table("bronze.charging_sessions", "Bronze charging_sessions: canonical columns (UTC), lineage; jobs/ingest.py", ("date",)),
        Table("bronze.rollouts", "Bronze rollouts: changes to sites or chargers (firmware, replacement, maintenance contract, ...), canonical columns (UTC), lineage; jobs/ingest.py", ("date",)),
        # quarantine: rows that failed validation, with the raw record and the reason
        Table("quarantine.telematics", "Rows of telematics inputs that failed ingest validation (jobs/ingest.py)", personal=True, position_trace=True),
        Table("quarantine.vehicles", "Rows of vehicles inputs that failed ingest validation, with the reason"),
        Table("quarantine.stations", "Rows of stations inputs that failed ingest validation, with the reason"),
        Table("quarantine.charger_status", "Rows of charger_status inputs that failed ingest validation, with the reason"),
        Table("quarantine.charging_sessions", "Rows of charging_sessions inputs that failed ingest validation, with the reason"),
        Table("quarantine.rollouts", "Rows of rollouts inputs that failed ingest validation, with the reason"),
        # silver: cleaned, conformed, event grain
        Table(
            "silver.telematics_clean",
            "Cleaned telematics: every bronze row with quality flags, repaired values and originals",
            ("date",),
            personal=True,
            position_trace=True,
            cluster_by=("vehicle_id", "ts"),
        ),
        Table(
            "silver.device_profiles",
            "Per vehicle: device reporting mode (continuous, ignition_only, bursty, mostly_silent, no_data), heartbeat and the intervals it rests on",
        ),
        Table(
            "silver.vehicle_minutely",
            "Per vehicle and UTC minute: speed, GPS km, moving share, SOC, rolling event-time windows, charging flag",
            ("local_date",),
            cluster_by=("vehicle_id",),
        ),
        Table(
            "silver.trips",
            "Trips split at stops and data gaps: GPS/odometer km, duration, speeds, stops, SOC, energy (dSOC x battery)",
            ("local_date",),
            personal=True,
            position_trace=True,
            cluster_by=("vehicle_id",),
        ),
        Table("silver.segments", "~1 km trip segments with energy-model features (speed, acceleration, altitude, temperature, SOC)", ("local_date",), cluster_by=("vehicle_id",)),
        Table(
            "silver.charging_events",
            "Charging events: stationary SOC rises (high: > min_delta_soc_pct; low: fallback pass), kWh = dSOC x battery; positions at private sites (home, single-vehicle unknown) withheld (null)",
            cluster_by=("vehicle_id",),
        ),
        Table(
            "silver.port_status_intervals",
            "Per port: status intervals from OCPP notifications (offline after reliability.offline_timeout_s of silence) or snapshot feeds; state up/down/excluded/no_data; jobs/reliability.py",
            cluster_by=("station_id",),
        ),
        # gold: what users read
        Table("gold.quality_daily", "Per vehicle and local day: rows per cleaning rule, usable share, coverage hours"),
        Table("gold.daily_kpis", "Per vehicle and local day: GPS/odometer km, utilisation, SOC, trips, charging, data coverage", ("local_date",), cluster_by=("vehicle_id",)),
        Table("gold.fleet_daily_kpis", "Per local day: fleet totals and percentiles over vehicles", ("local_date",)),
        Table("gold.payd_billing", "Pay-as-you-drive km per vehicle and billing period: odometer, GPS on days the odometer is faulty", ("period_start",)),
        Table(
            "gold.charging_locations",
            "Per-vehicle charging locations (DBSCAN of event positions) with their fleet site; private-site positions withheld (null)",
        ),
        Table(
            "gold.charging_sites",
            "Fleet charging sites: home / public / depot / unknown (station match via Sedona distance join); home and single-vehicle unknown sites without position (exact in restricted.home_charging_sites)",
        ),
        Table(
            "gold.hotspots",
            "Fleet hotspots: DBSCAN clusters of unique daily visits with >= min_unique_visits within radius_m from >= min_distinct_vehicles vehicles; hull WKT, busiest local hours",
        ),
        Table(
            "gold.driver_risk",
            "Driver risk: score 0-100, tier High/Medium/Low, baseline z-score of average daily km (High if z < threshold), signals and reasons; low_coverage drivers flagged, scored on reported days only",
        ),
        Table(
            "gold.station_kpis",
            "Station KPIs per level (overall/region/network): operational rate, DC-fast share, 24/7 access rate, public share, public/private ratio, avg connector diversity (fractions 0-1); jobs/stations.py",
        ),
        Table(
            "gold.station_fleet_usage",
            "Fleet charging events matched to the nearest station within stations.match_radius_m: events, vehicles, kWh, hours, events without SOC gain per station; jobs/stations.py",
        ),
        Table("gold.expansion_gaps", "Hotspots without an open DC-fast station within stations.dc_fast_gap_m, with the nearest one; jobs/stations.py"),
        Table(
            "gold.port_reliability_monthly",
            "Per port and UTC month: minutes by state, failures, MTBF/MTTR, sessions; NEVI uptime (525600 - (T_outage - T_excluded)) / 525600 x 100 over the trailing 12 months and over the observed period; jobs/reliability.py",
        ),
        Table(
            "gold.site_reliability",
            "Per station: availability, observed uptime, failures, MTBF/MTTR, session and first-time success, faults per 1000 sessions, lost kWh/revenue, fault-rate hotspot chargers; jobs/reliability.py",
        ),
        Table(
            "gold.site_capacity",
            "Per station and local hour of week: arrivals per hour, plug-in time, occupied share, offered load, Erlang C P(wait) and mean wait, ports needed for capacity.target_p_wait; jobs/reliability.py",
            cluster_by=("station_id",),
        ),
        Table(
            "gold.fault_drivers",
            "Per session source: a failure logit on network, DC-fast, local hour band, weekend and port load (a model row, then per driver level the odds ratio with CI, Holm-adjusted p-value, marginal effect); jobs/fault_analysis.py",
        ),
        Table(
            "gold.fault_forecast",
            "Per source, site and the network ('(network)'): the observed faults (failures with a fault cause) per bucket (step <= 0, actual) and the next fault_forecast.horizon buckets (step >= 1) with prediction intervals; method sarimax (Fourier seasonal regression, AIC-chosen) or the mean baseline with the reason; jobs/fault_analysis.py",
        ),
        Table(
            "gold.fault_forecast_backtest",
            "Per source, site and the network: rolling-origin backtest of the fault forecast (MAE, MAPE over buckets with faults, interval coverage) beside the seasonal-naive and mean baselines; jobs/fault_analysis.py",
        ),
        Table(
            "gold.rollout_effects",
            "Per source, change type and outcome (fault_rate, uptime_pct): the difference-in-differences effect of the rollouts (two-way fixed effects against never-treated sites; fault rate as a rate ratio, uptime in percentage points) with CI, SE clustered by site, p-value, sites treated and control, periods, the pre-trend test's p-value; a row with the reason where nothing was estimated; jobs/rollout.py",
        ),
        Table(
            "gold.rollout_event_study",
            "Per source, change type, outcome and period relative to the rollout (-1 the reference, the ends binned): the event-study coefficient (rate ratio or percentage points) with CI; jobs/rollout.py",
        ),
        Table(
            "gold.reliability_tests",
            "Reliability tests: two-window fault-rate z-test, load-vs-fault logit (odds ratio), lost-revenue bootstrap CI, alert-threshold precision/recall, fault-rate hotspots; jobs/reliability.py",
        ),
        Table(
            "gold.failed_charge_attempts",
            "Fleet stops at a station without SOC gain, with port states at arrival; is_failed_attempt = no port available and at least one down; jobs/reliability.py",
        ),
        Table("gold.predictions_soc_minutely", "Per vehicle-minute SOC drop forecast (champion models, version on every row)", ("local_date",), cluster_by=("vehicle_id",)),
        Table("gold.predictions_energy", "Per segment energy forecast in kWh/km and kWh (champion model, version on every row)", ("local_date",), cluster_by=("vehicle_id",)),
        Table(
            "gold.model_monitoring",
            "Per scored model version, window (local dates) and figure: PSI of each input and of the prediction against the version's training profile "
            "(drifted above ml.monitoring.psi_threshold), prediction quantiles beside training's, realised error where labels have arrived; jobs/score.py",
        ),
        Table(
            "gold.charging_plan",
            "Per site, vehicle and time slot with charge: battery and grid kWh, average kW, tariff price and cost, the site's ports and grid capacity (kW); "
            "the cheapest schedule keeping every vehicle above charging_plan.soc_floor_pct through its expected duty; no position; jobs/charging_plan.py",
            cluster_by=("site_id",),
        ),
        Table(
            "gold.charging_plan_vehicles",
            "Per vehicle of the fleet: status planned / no_charge_needed / infeasible with the reason, expected km and kWh (energy_source: model, physics or measured), "
            "SOC now and at duty start and end, charging place (site kind, power), kWh and cost planned, site solve time; jobs/charging_plan.py",
        ),
        # restricted: personal places (docs/PRIVACY.md)
        Table(
            "restricted.residences",
            "PERSONAL DATA: home location per vehicle from night parking (DBSCAN); restricted access, see docs/PRIVACY.md",
            personal=True,
        ),
        Table(
            "restricted.home_charging_sites",
            "PERSONAL DATA: exact positions of home charging sites and unmatched sites used by one vehicle; restricted access, see docs/PRIVACY.md",
            personal=True,
        ),
        Table(
            "restricted.unique_daily_visits",
            "PERSONAL DATA: one row per vehicle, local day and place stopped at (homes included); restricted, see docs/PRIVACY.md",
            personal=True,
        ),
        # audit: what ran, what was read, who holds the lakehouse
        Table("audit.ingest_files", "Files read by ingest (status ingested | unreadable + reason), with size/mtime and mapping fingerprint"),
        Table("audit.ingest_runs", "One row per dataset per ingest run (jobs/ingest.py)"),
        Table("audit.stage_runs", "One row per stage per pipeline run: ok / skipped (with the reason) / failed"),
        Table("audit.run_lease", "Run lease: which pipeline/job run may write to this lakehouse (common/lease.py)"),
        # truth: the synthetic generator's ground truth (tests and docs score against it)
        Table("truth.points", "Simulated samples: emitted values + truth behind each row", personal=True),
        Table("truth.anomalies", "Every injected anomaly, keyed by vehicle_id and ts of the affected raw row"),
        Table("truth.vehicles", "Generator fleet and people (truth)"),
        Table("truth.homes", "True home locations (synthetic personal data)", personal=True),
        Table("truth.trips", "Physics truth per trip: distance, battery energy"),
        Table("truth.charging_events", "Every simulated charge (truth)"),
        Table("truth.charging_sites", "Places where fleet vehicles charged (home or station)"),
        Table("truth.hotspots", "Shared places (hotspots and stand-alone stations) with expected unique daily visits"),
        Table("truth.at_risk_drivers", "At-risk (declining, inactive) and offline-device drivers"),
        Table("truth.charger_outages", "True per-port downtime: faults, scheduled maintenance (excluded), offline gaps"),
        Table("truth.network_records", "Generated sessions and status notifications"),
        Table("truth.rollouts", "Injected rollouts (generator.rollout_*): station, day, change type and the true multiplier of its port fault rate from then on"),
    )
}

POSITION_TRACES = frozenset(t.name for t in TABLES.values() if t.position_trace)


def table(name: str) -> Table:
    """The catalog entry of ``name``.

    Parameters
    ----------
    name : str
        ``<layer>.<name>``, e.g. ``silver.trips``.

    Returns
    -------
    Table

    Raises
    ------
    KeyError
        ``name`` is not in the catalog; the message lists the known tables of its layer.
    """
    try:
        return TABLES[name]
    except KeyError:
        layer = name.split(".", 1)[0]
        known = sorted(n for n in TABLES if n.startswith(layer + "."))
        raise KeyError(f"{name!r} is not in the table catalog (common/core/catalog.py); {layer} tables: {', '.join(known)}") from None


def names(*tables: str) -> tuple[str, ...]:
    """Validate a job's declared table names against the catalog (fails at import on a typo).

    Parameters
    ----------
    *tables : str
        ``<layer>.<name>`` table names.

    Returns
    -------
    tuple of str
        ``tables`` unchanged.

    Raises
    ------
    KeyError
        A name is not in the catalog.
    """
    for name in tables:
        table(name)
    return tables

"""Charger reliability transforms: status intervals, NEVI uptime, MTBF/MTTR, session success.

Pure DataFrame -> DataFrame functions behind `jobs/reliability.py`; statistical tests on small
aggregates are in `common/network/stats.py`. Nothing here reads or writes storage.

Status -> intervals
    OCPP 1.6 feeds (bronze.charger_status): a port's status holds from its notification until
    the next one. Chargers re-send the status every 30 min while it is unchanged, so a silence
    longer than `offline_timeout_s` means the port is offline: from last message + timeout until
    the next message (or the end of observation). Snapshot feeds (`snapshot_sources`, e.g. ESB
    cpinfo): every snapshot lists only non-free connectors, so a known port absent from a
    snapshot is Available; a gap between snapshots longer than `snapshot_max_gap_s` is NoData.
States
    up        Available, Preparing, Charging, SuspendedEV(SE), Finishing, Reserved
    down      Faulted / Unavailable (down_statuses) without an excluded cause, and Offline
    excluded  a down status whose `info` is an excluded cause (scheduled maintenance, outside
              opening hours ... -- 23 CFR 680.116(b)); counts as outage minutes but not against uptime
    no_data   snapshot gaps and unknown statuses: not observed
NEVI uptime (per port, monthly, trailing `nevi_window_months`)
    mu = (525,600 - (T_outage - T_excluded)) / 525,600 x 100, minutes; T_outage includes the
    excluded minutes, so T_outage - T_excluded is the `down` minutes. With less than 12 months of
    data the same numerator is also reported over the observed minutes (uptime_basis says which
    one `uptime_pct` carries).
Failures and repairs
    a failure is a transition up/excluded -> down; a down episode is a run of consecutive down
    intervals (Faulted then Offline is one episode). MTBF = up hours / failures; MTTR = down
    hours / down episodes (episodes counted where they start).
All timestamps are UTC; months are UTC calendar months.
"""

from __future__ import annotations

from datetime import datetime, timezone

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from common.core.config import Config, ReliabilityConfig
from common.core.dates import day_midnights_utc
from common.core.regions import get_region

UP_STATUSES = ("Available", "Preparing", "Charging", "SuspendedEVSE", "SuspendedEV", "Finishing", "Reserved")
OFFLINE = "Offline"
NO_DATA = "NoData"
UP, DOWN, EXCLUDED, UNOBSERVED = "up", "down", "excluded", "no_data"
MINUTES_PER_YEAR = 525_600  # the NEVI formula's fixed denominator (365 days)

INTERVAL_COLUMNS = (
    "source_name",
    "station_id",
    "charger_id",
    "port_id",
    "start_ts",
    "end_ts",
    "duration_s",
    "status",
    "error_code",
    "info",
    "state",
    "down_cause",
    "excluded_cause",
)

# Per (port, ts) a snapshot feed may list one connector type twice (multi-socket charge points):
# the most operational status wins, because one working socket means the port can serve a driver.
_SNAPSHOT_RANK = {s: i for i, s in enumerate(("Available", "Charging", "SuspendedEV", "SuspendedEVSE", "Preparing", "Finishing", "Reserved", "Unavailable", "Faulted"))}


def _secs(c: str | Column) -> Column:
    col = F.col(c) if isinstance(c, str) else c
    return col.cast("double")


def _ts(seconds: Column) -> Column:
    return F.timestamp_micros((seconds * 1_000_000).cast("long"))


def _port_key() -> list[str]:
    return ["source_name", "port_id"]


def _with_source(status: DataFrame) -> DataFrame:
    if "source_name" not in status.columns:
        status = status.withColumn("source_name", F.lit("default"))
    for c in ("charger_id", "station_id", "error_code", "info"):
        if c not in status.columns:
            status = status.withColumn(c, F.lit(None).cast("string"))
    return status


# --------------------------------------------------------------------------------------------
# Status -> intervals
# --------------------------------------------------------------------------------------------
def observation_end(cfg: Config) -> str | None:
    """End of the observation period of the status feeds (UTC, 'YYYY-MM-DD HH:MM:SS').

    Parameters
    ----------
    cfg : Config
        The run's config: reliability.observation_end, inputs, generator.

    Returns
    -------
    str or None
        reliability.observation_end when set; else, for the synthetic generator's inputs (no
        configured inputs), the end of its simulated period (local midnight after the last day);
        else None (each source's latest message ends its observation). The generator emits the
        status of ports with a charge running past the period end beyond it; with the latest
        message as the end, every other port would look offline for that last hour.
    """
    if cfg.reliability.observation_end:
        return cfg.reliability.observation_end
    if not cfg.inputs.is_empty():
        return None
    g = cfg.generator
    end = day_midnights_utc(g.start_date, g.days, get_region(g.region).timezone)[-1]
    return datetime.fromtimestamp(float(end), tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def observation_ends(status: DataFrame, params: ReliabilityConfig) -> DataFrame:
    """source_name -> observation_end: the configured end, else the source's latest message.

    Parameters
    ----------
    status : DataFrame
        bronze.charger_status rows (ts in UTC; source_name 'default' when absent).
    params : ReliabilityConfig
        ``observation_end`` (UTC).

    Returns
    -------
    DataFrame
        One row per source_name: source_name, observation_end (UTC timestamp).
    """
    status = _with_source(status)
    if params.observation_end:
        return status.select("source_name").distinct().withColumn("observation_end", F.lit(params.observation_end).cast("timestamp"))
    return status.groupBy("source_name").agg(F.max("ts").alias("observation_end"))


def _message_runs(messages: DataFrame) -> DataFrame:
    """Per message: `cause_info`, the first non-null info since the status (or error) last changed.

    Chargers put the cause on the notification of a change and send heartbeats without it; the
    cause must survive both the heartbeats and offline gaps inside one status run."""
    w = Window.partitionBy(*_port_key()).orderBy("ts", "status")
    running = w.rowsBetween(Window.unboundedPreceding, Window.currentRow)
    info_ff = F.last("info", ignorenulls=True).over(running)
    prev_info_ff = F.lag("_info_ff").over(w)
    changed = (
        F.lag("status").over(w).isNull()
        | (F.col("status") != F.lag("status").over(w))
        | ~F.col("error_code").eqNullSafe(F.lag("error_code").over(w))
        | (F.col("info").isNotNull() & ~F.col("info").eqNullSafe(prev_info_ff))
    )
    df = messages.withColumn("_info_ff", info_ff).withColumn("_new", changed.cast("int"))
    df = df.withColumn("_mrun", F.sum("_new").over(running))
    run = Window.partitionBy(*_port_key(), "_mrun").orderBy("ts", "status").rowsBetween(Window.unboundedPreceding, Window.unboundedFollowing)
    return df.withColumn("cause_info", F.first("info", ignorenulls=True).over(run)).drop("_info_ff", "_new", "_mrun")


def _merge_segments(segments: DataFrame) -> DataFrame:
    """Contiguous segments of a port with equal (status, error_code, cause_info) -> one interval."""
    segments = segments.where(F.col("end_ts") > F.col("start_ts"))
    w = Window.partitionBy(*_port_key()).orderBy("start_ts")
    new = (
        F.lag("status").over(w).isNull()
        | (F.col("status") != F.lag("status").over(w))
        | ~F.col("error_code").eqNullSafe(F.lag("error_code").over(w))
        | ~F.col("cause_info").eqNullSafe(F.lag("cause_info").over(w))
        | (F.col("start_ts") != F.lag("end_ts").over(w))
    )
    runs = segments.withColumn("_run", F.sum(new.cast("int")).over(w.rowsBetween(Window.unboundedPreceding, Window.currentRow)))
    return (
        runs.groupBy(*_port_key(), "_run")
        .agg(
            F.first("station_id", ignorenulls=True).alias("station_id"),
            F.first("charger_id", ignorenulls=True).alias("charger_id"),
            F.min("start_ts").alias("start_ts"),
            F.max("end_ts").alias("end_ts"),
            F.first("status").alias("status"),
            F.first("error_code").alias("error_code"),
            F.first("cause_info").alias("info"),
        )
        .drop("_run")
    )


def ocpp_status_intervals(status: DataFrame, params: ReliabilityConfig, ends: DataFrame | None = None) -> DataFrame:
    """OCPP status notifications (bronze.charger_status rows) -> merged status intervals per port.

    A message holds until the next one; a silence longer than offline_timeout_s becomes an
    `Offline` interval from (last message + timeout) to the next message. The last message of a
    port holds until the source's observation end (`observation_ends`), with the same timeout
    rule.

    Parameters
    ----------
    status : DataFrame
        bronze.charger_status rows of OCPP sources (port_id, ts in UTC, status; source_name, station_id,
        charger_id, error_code, info null when absent).
    params : ReliabilityConfig
        ``offline_timeout_s`` (s), ``observation_end``.
    ends : DataFrame or None
        `observation_ends`; computed from ``status`` when None.

    Returns
    -------
    DataFrame
        One row per merged interval: source_name, station_id, charger_id, port_id, start_ts, end_ts
        (UTC), status, error_code, info (the cause carried by the run's first notification); not
        yet classified.
    """
    status = _with_source(status)
    ends = ends if ends is not None else observation_ends(status, params)
    timeout = float(params.offline_timeout_s)
    msgs = (
        status.select("source_name", "station_id", "charger_id", "port_id", "ts", "status", "error_code", "info")
        .dropDuplicates(["source_name", "port_id", "ts", "status", "error_code", "info"])
        .transform(_message_runs)
        .join(F.broadcast(ends), "source_name")
    )
    w = Window.partitionBy(*_port_key()).orderBy("ts", "status")
    nxt = F.coalesce(F.lead("ts").over(w), F.greatest(F.col("observation_end"), F.col("ts")))
    msgs = msgs.withColumn("_next", nxt).withColumn("_gap", _secs("_next") - _secs("ts"))
    silent = F.col("_gap") > timeout
    held_until = F.when(silent, _ts(_secs("ts") + timeout)).otherwise(F.col("_next"))
    return _held_and_gaps(msgs, held_until, silent, _ts(_secs("ts") + timeout), OFFLINE)


def _held_and_gaps(rows: DataFrame, held_until: Column, gap: Column, gap_start: Column, gap_status: str) -> DataFrame:
    """Each row's status held until `held_until`; where `gap`, a `gap_status` interval from
    `gap_start` to the next row (`_next`). Merged into status intervals per port."""
    base = ["source_name", "station_id", "charger_id", "port_id"]
    held = rows.select(*base, F.col("ts").alias("start_ts"), held_until.alias("end_ts"), "status", "error_code", "cause_info")
    gaps = rows.where(gap).select(
        *base,
        gap_start.alias("start_ts"),
        F.col("_next").alias("end_ts"),
        F.lit(gap_status).alias("status"),
        F.lit(None).cast("string").alias("error_code"),
        F.lit(None).cast("string").alias("cause_info"),
    )
    return _merge_segments(held.unionByName(gaps))


def snapshot_status_intervals(snapshots: DataFrame, params: ReliabilityConfig) -> DataFrame:
    """Snapshot status feeds (only non-free connectors listed) -> merged status intervals per port.

    The snapshot times of a source are the distinct `ts` of its rows; the ports are every port the
    source ever listed (a port never listed in the period is invisible). At each snapshot a port
    not listed is Available. A snapshot holds until the next one, or -- when the next is more
    than snapshot_max_gap_s away -- for one nominal interval, then NoData until the next. The
    last snapshot of the source ends the observation.

    Parameters
    ----------
    snapshots : DataFrame
        bronze.charger_status rows of snapshot sources (port_id, ts in UTC, status, ...).
    params : ReliabilityConfig
        ``snapshot_sources`` (source -> nominal interval, s) and ``snapshot_max_gap_s`` (s).

    Returns
    -------
    DataFrame
        Merged status intervals per port, in the columns of `ocpp_status_intervals`.
    """
    snapshots = _with_source(snapshots)
    interval_s = F.create_map(*[F.lit(x) for kv in params.snapshot_sources.items() for x in (kv[0], float(kv[1]))])
    rank = F.create_map(*[F.lit(x) for kv in _SNAPSHOT_RANK.items() for x in kv])
    listed = snapshots.withColumn("_rank", F.coalesce(F.element_at(rank, F.col("status")), F.lit(99)))
    best = Window.partitionBy(*_port_key(), "ts").orderBy("_rank", "info")
    listed = listed.withColumn("_rn", F.row_number().over(best)).where("_rn = 1").select("source_name", "port_id", "ts", "status", "error_code", F.col("info").alias("cause_info"))
    times = snapshots.select("source_name", "ts").distinct()
    ports = snapshots.groupBy("source_name", "port_id").agg(F.first("station_id", ignorenulls=True).alias("station_id"), F.first("charger_id", ignorenulls=True).alias("charger_id"))
    grid = ports.join(times, "source_name").join(listed, ["source_name", "port_id", "ts"], "left").withColumn("status", F.coalesce(F.col("status"), F.lit("Available")))
    w = Window.partitionBy(*_port_key()).orderBy("ts")
    step = F.coalesce(F.element_at(interval_s, F.col("source_name")), F.lit(float(params.snapshot_max_gap_s)))
    grid = grid.withColumn("_next", F.lead("ts").over(w)).withColumn("_step", step)
    gap = _secs("_next") - _secs("ts")
    broken = F.col("_next").isNotNull() & (gap > params.snapshot_max_gap_s)
    # The source's last snapshot closes the observation (as the latest message does for OCPP).
    held_until = F.when(F.col("_next").isNull(), F.col("ts")).when(broken, _ts(_secs("ts") + F.col("_step"))).otherwise(F.col("_next"))
    return _held_and_gaps(grid, held_until, broken, _ts(_secs("ts") + F.col("_step")), NO_DATA)


def classify_intervals(intervals: DataFrame, params: ReliabilityConfig) -> DataFrame:
    """Classify status intervals: state, down cause and excluded cause.

    Parameters
    ----------
    intervals : DataFrame
        `ocpp_status_intervals` / `snapshot_status_intervals` rows.
    params : ReliabilityConfig
        ``down_statuses``; ``excluded_causes`` and ``offline_info_codes`` (matched on the lower-cased info).

    Returns
    -------
    DataFrame
        One row per interval in INTERVAL_COLUMNS: + duration_s (s), state (up/down/excluded/no_data),
        down_cause (fault/unavailable/offline, down intervals only) and excluded_cause (the info that
        excluded the outage).
    """
    info = F.lower(F.trim("info"))
    excluded = [c.lower() for c in params.excluded_causes]
    offline_codes = [c.lower() for c in params.offline_info_codes]
    is_down_status = F.col("status").isin(*params.down_statuses)
    state = (
        F.when(F.col("status") == NO_DATA, F.lit(UNOBSERVED))
        .when(F.col("status") == OFFLINE, F.lit(DOWN))
        .when(F.col("status").isin(*UP_STATUSES), F.lit(UP))
        .when(is_down_status & F.coalesce(info.isin(*excluded), F.lit(False)), F.lit(EXCLUDED))
        .when(is_down_status, F.lit(DOWN))
        .otherwise(F.lit(UNOBSERVED))
    )
    out = intervals.withColumn("state", state)
    cause = (
        F.when(F.col("state") != DOWN, F.lit(None).cast("string"))
        .when((F.col("status") == OFFLINE) | F.coalesce(info.isin(*offline_codes), F.lit(False)), F.lit("offline"))
        .when(F.col("status") == "Faulted", F.lit("fault"))
        .otherwise(F.lit("unavailable"))
    )
    derived = {
        "duration_s": _secs("end_ts") - _secs("start_ts"),
        "down_cause": cause,
        "excluded_cause": F.when(F.col("state") == EXCLUDED, F.col("info")),
    }
    return out.select(*[derived[c].alias(c) if c in derived else F.col(c) for c in INTERVAL_COLUMNS])


def port_status_intervals(status: DataFrame, params: ReliabilityConfig) -> DataFrame:
    """bronze.charger_status -> classified intervals of every port (OCPP and snapshot sources).

    Parameters
    ----------
    status : DataFrame
        bronze.charger_status.
    params : ReliabilityConfig
        ``snapshot_sources`` names the snapshot feeds; every other source is OCPP.

    Returns
    -------
    DataFrame
        `classify_intervals` rows: one per merged status interval of a port.
    """
    status = _with_source(status)
    snap_names = list(params.snapshot_sources)
    is_snap = F.col("source_name").isin(*snap_names) if snap_names else F.lit(False)
    ocpp = ocpp_status_intervals(status.where(~is_snap), params)
    snap = snapshot_status_intervals(status.where(is_snap), params) if snap_names else None
    merged = ocpp if snap is None else ocpp.unionByName(snap)
    return classify_intervals(merged, params)


# --------------------------------------------------------------------------------------------
# Failures and episodes
# --------------------------------------------------------------------------------------------
def mark_failures(intervals: DataFrame) -> DataFrame:
    """Mark down episodes and failures on classified intervals.

    Parameters
    ----------
    intervals : DataFrame
        `classify_intervals` rows.

    Returns
    -------
    DataFrame
        ``intervals`` + episode_start (first interval of a run of down intervals), is_failure (that
        run follows an up or excluded interval) and episode_cause (down_cause of the episode's first
        interval; null elsewhere).
    """
    w = Window.partitionBy(*_port_key()).orderBy("start_ts")
    prev_state = F.lag("state").over(w)
    is_down = F.col("state") == DOWN
    start = is_down & (prev_state.isNull() | (prev_state != DOWN))
    return (
        intervals.withColumn("episode_start", start)
        .withColumn("is_failure", start & F.coalesce(prev_state.isin(UP, EXCLUDED), F.lit(False)))
        .withColumn("episode_cause", F.when(start, F.col("down_cause")))
    )


# --------------------------------------------------------------------------------------------
# Sessions
# --------------------------------------------------------------------------------------------
def session_outcomes(sessions: DataFrame, params: ReliabilityConfig) -> DataFrame:
    """Sessions with `succeeded` and `first_attempt`.

    Parameters
    ----------
    sessions : DataFrame
        bronze.charging_sessions (session_id, station_id, vehicle_id, start_ts, end_ts in UTC, kwh in kWh,
        success; source_name 'default' when absent).
    params : ReliabilityConfig
        ``session_success_min_kwh`` (kWh), ``retry_window_min`` (min).

    Returns
    -------
    DataFrame
        ``sessions`` + succeeded (the source's success flag, else kwh >= session_success_min_kwh;
        null when neither is known) and first_attempt (true for the first session of an attempt
        sequence: a vehicle's next session at the same station starting within retry_window_min of
        the previous session's end is a retry; sessions without vehicle_id are their own sequence).
    """
    if "source_name" not in sessions.columns:
        sessions = sessions.withColumn("source_name", F.lit("default"))
    succeeded = F.coalesce(F.col("success"), F.when(F.col("kwh").isNotNull(), F.col("kwh") >= params.session_success_min_kwh))
    df = sessions.withColumn("succeeded", succeeded)
    w = Window.partitionBy("source_name", "station_id", "vehicle_id").orderBy("start_ts", "session_id")
    prev_end = F.lag(F.coalesce("end_ts", "start_ts")).over(w)
    retry = F.col("vehicle_id").isNotNull() & prev_end.isNotNull() & ((_secs("start_ts") - _secs(prev_end)) <= params.retry_window_min * 60.0)
    return df.withColumn("first_attempt", ~F.coalesce(retry, F.lit(False)))


def first_time_success(outcomes: DataFrame, keys: list[str]) -> DataFrame:
    """Per `keys`: attempt sequences and those whose first session succeeded (first-time success).

    Parameters
    ----------
    outcomes : DataFrame
        `session_outcomes` rows: each sequence has exactly one first_attempt session.
    keys : list of str
        Grouping columns (e.g. station_id).

    Returns
    -------
    DataFrame
        One row per ``keys`` value: ``keys``, attempt_sequences, first_time_successes.
    """
    firsts = outcomes.where("first_attempt AND succeeded IS NOT NULL")
    return firsts.groupBy(*keys).agg(
        F.count(F.lit(1)).alias("attempt_sequences"),
        F.sum(F.col("succeeded").cast("int")).cast("long").alias("first_time_successes"),
    )


def session_load(outcomes: DataFrame) -> DataFrame:
    """Sessions with their port's recent load and a 0/1 failure flag.

    Parameters
    ----------
    outcomes : DataFrame
        `session_outcomes` rows; sessions without an outcome are dropped.

    Returns
    -------
    DataFrame
        ``outcomes`` + load_sessions_24h (sessions started on the same port in the 24 h before this
        one; earlier sessions only, so the session's own outcome cannot feed its predictor) and
        failed (1/0).
    """
    start_s = F.col("start_ts").cast("long")  # whole seconds: range frames need an integral order key
    w = Window.partitionBy("source_name", "port_id").orderBy(start_s).rangeBetween(-86400, -1)
    return outcomes.where(F.col("succeeded").isNotNull()).withColumn("load_sessions_24h", F.count(F.lit(1)).over(w)).withColumn("failed", (~F.col("succeeded")).cast("int"))


def window_counts(outcomes: DataFrame, start: Column, end: Column) -> DataFrame:
    """Sessions and failed sessions starting in (start, end] per source_name.

    Parameters
    ----------
    outcomes : DataFrame
        `session_outcomes` rows.
    start, end : Column
        Window bounds (UTC timestamps).

    Returns
    -------
    DataFrame
        One row per source_name with sessions: source_name, sessions, failed.
    """
    df = outcomes.where(F.col("succeeded").isNotNull() & (F.col("start_ts") > start) & (F.col("start_ts") <= end))
    return df.groupBy("source_name").agg(F.count(F.lit(1)).alias("sessions"), F.sum((~F.col("succeeded")).cast("int")).cast("long").alias("failed"))


def charger_window_uptime(intervals: DataFrame, start: Column, end: Column) -> DataFrame:
    """Per (source_name, charger_id): observed and down minutes of its ports within [start, end).

    Intervals are clipped to the window; a port without charger_id counts for its station.

    Parameters
    ----------
    intervals : DataFrame
        Classified status intervals (silver.port_status_intervals).
    start, end : Column
        Window bounds (UTC timestamps).

    Returns
    -------
    DataFrame
        One row per charger: source_name, charger_id, observed_minutes, down_minutes (min) and
        uptime_pct (observed uptime, percent).
    """
    s = _secs(F.greatest("start_ts", start))
    e = _secs(F.least("end_ts", end))
    clipped = intervals.withColumn("_m", (e - s) / 60.0).where(F.col("_m") > 0)
    out = clipped.groupBy("source_name", F.coalesce("charger_id", "station_id").alias("charger_id")).agg(
        F.sum(F.when(F.col("state") != UNOBSERVED, F.col("_m"))).alias("observed_minutes"),
        F.coalesce(F.sum(F.when(F.col("state") == DOWN, F.col("_m"))), F.lit(0.0)).alias("down_minutes"),
    )
    return out.withColumn("uptime_pct", _ratio(F.col("observed_minutes") - F.col("down_minutes"), F.col("observed_minutes"), 100.0))


# --------------------------------------------------------------------------------------------
# Monthly port reliability (NEVI)
# --------------------------------------------------------------------------------------------
def _month_pieces(intervals: DataFrame) -> DataFrame:
    """Intervals cut at UTC month boundaries: one row per (interval, month) with minutes in it."""
    last_instant = _ts(_secs("end_ts") - 1e-6)
    months = F.sequence(F.trunc("start_ts", "month"), F.trunc(last_instant, "month"), F.expr("INTERVAL 1 MONTH"))
    df = intervals.withColumn("month", F.explode(months))
    month_start = F.col("month").cast("timestamp")
    month_end = F.add_months(F.col("month"), 1).cast("timestamp")
    piece_s = _secs(F.least("end_ts", month_end)) - _secs(F.greatest("start_ts", month_start))
    return df.withColumn("minutes", piece_s / 60.0).where(F.col("minutes") > 0)


def _mins(state_cond: Column) -> Column:
    return F.coalesce(F.sum(F.when(state_cond, F.col("minutes"))), F.lit(0.0))


def port_month_minutes(failures: DataFrame) -> DataFrame:
    """Per port and UTC month: minutes by state and cause, failures and down episodes.

    Parameters
    ----------
    failures : DataFrame
        `mark_failures` rows.

    Returns
    -------
    DataFrame
        One row per port and month: source_name, station_id, charger_id, port_id, month (first day),
        observed / up / down / excluded minutes, fault / offline / unavailable minutes, failures,
        fault_failures and down_episodes (counted in the month their interval starts).
    """
    pieces = _month_pieces(failures)
    first_piece = F.col("start_ts") >= F.col("month").cast("timestamp")
    keys = ["source_name", "station_id", "charger_id", "port_id", "month"]
    return pieces.groupBy(*keys).agg(
        _mins(F.col("state") != UNOBSERVED).alias("observed_minutes"),
        _mins(F.col("state") == UP).alias("up_minutes"),
        _mins(F.col("state") == DOWN).alias("down_minutes"),
        _mins(F.col("state") == EXCLUDED).alias("excluded_minutes"),
        _mins(F.col("down_cause") == "fault").alias("fault_minutes"),
        _mins(F.col("down_cause") == "offline").alias("offline_minutes"),
        _mins(F.col("down_cause") == "unavailable").alias("unavailable_minutes"),
        F.sum((F.col("is_failure") & first_piece).cast("int")).cast("long").alias("failures"),
        F.sum((F.col("is_failure") & first_piece & (F.col("episode_cause") == "fault")).cast("int")).cast("long").alias("fault_failures"),
        F.sum((F.col("episode_start") & first_piece).cast("int")).cast("long").alias("down_episodes"),
    )


def _ratio(num: Column, den: Column, scale: float = 1.0) -> Column:
    return F.when(den > 0, num / den * scale)


def port_reliability_monthly(month_minutes: DataFrame, port_first_seen: DataFrame, sessions_monthly: DataFrame | None, params: ReliabilityConfig) -> DataFrame:
    """NEVI uptime per port and month over the trailing `nevi_window_months`, plus the month's availability, MTBF/MTTR and sessions.

    Parameters
    ----------
    month_minutes : DataFrame
        `port_month_minutes` rows.
    port_first_seen : DataFrame
        source_name, port_id, first_seen_ts (UTC).
    sessions_monthly : DataFrame or None
        `sessions_by_port_month` (port_id, month, sessions, successful_sessions, failed_sessions);
        joined on the port id because the session feed of a network is usually another source than
        its status feed. None: the session columns are null.
    params : ReliabilityConfig
        ``nevi_window_months`` (months), ``nevi_target_pct`` (percent).

    Returns
    -------
    DataFrame
        One row per port and month. Columns (minutes unless named otherwise):
        outage_minutes_12m = T_outage (down + excluded), excluded_minutes_12m = T_excluded;
        nevi_uptime_pct = (525,600 - (T_outage - T_excluded)) / 525,600 x 100;
        observed_uptime_pct = (observed - (T_outage - T_excluded)) / observed x 100 over the same window;
        window_complete = the port was observed since the window's first month;
        uptime_basis / uptime_pct = 'trailing_12m' with nevi_uptime_pct when complete, else
        'observed_period' with observed_uptime_pct; below_target = uptime_pct < nevi_target_pct;
        availability_pct (month) = up / (up + down) x 100; mtbf_hours, mttr_hours (h);
        faults_per_1000_sessions (per 1,000 sessions).
    """
    n = params.nevi_window_months
    df = month_minutes.withColumn("_mi", F.year("month") * 12 + F.month("month"))
    if sessions_monthly is not None:
        df = df.join(sessions_monthly, ["port_id", "month"], "left")
    else:
        for c in ("sessions", "successful_sessions", "failed_sessions"):
            df = df.withColumn(c, F.lit(None).cast("long"))
    df = df.join(port_first_seen, ["source_name", "port_id"], "left")
    w = Window.partitionBy("source_name", "port_id").orderBy("_mi").rangeBetween(-(n - 1), 0)
    df = (
        df.withColumn("window_start", F.add_months(F.col("month"), -(n - 1)))
        .withColumn("observed_minutes_12m", F.sum("observed_minutes").over(w))
        .withColumn("down_minutes_12m", F.sum("down_minutes").over(w))
        .withColumn("excluded_minutes_12m", F.sum("excluded_minutes").over(w))
        .withColumn("months_in_window", F.count(F.lit(1)).over(w))
    )
    outage = F.col("down_minutes_12m") + F.col("excluded_minutes_12m")
    nevi = (F.lit(float(MINUTES_PER_YEAR)) - (outage - F.col("excluded_minutes_12m"))) / MINUTES_PER_YEAR * 100.0
    observed = _ratio(F.col("observed_minutes_12m") - F.col("down_minutes_12m"), F.col("observed_minutes_12m"), 100.0)
    complete = F.coalesce(F.col("first_seen_ts") <= F.col("window_start").cast("timestamp"), F.lit(False))
    df = (
        df.withColumn("outage_minutes_12m", outage)
        .withColumn("nevi_uptime_pct", nevi)
        .withColumn("observed_uptime_pct", observed)
        .withColumn("window_complete", complete)
        .withColumn("uptime_basis", F.when(complete, F.lit("trailing_12m")).otherwise(F.lit("observed_period")))
        .withColumn("uptime_pct", F.when(complete, F.col("nevi_uptime_pct")).otherwise(F.col("observed_uptime_pct")))
        .withColumn("below_target", F.col("uptime_pct") < params.nevi_target_pct)
        .withColumn("nevi_below_target", F.col("nevi_uptime_pct") < params.nevi_target_pct)
        .withColumn("availability_pct", _ratio(F.col("up_minutes"), F.col("up_minutes") + F.col("down_minutes"), 100.0))
        .withColumn("mtbf_hours", _ratio(F.col("up_minutes") / 60.0, F.col("failures")))
        .withColumn("mttr_hours", _ratio(F.col("down_minutes") / 60.0, F.col("down_episodes")))
        .withColumn("faults_per_1000_sessions", _ratio(F.col("fault_failures"), F.col("sessions"), 1000.0))
    )
    return df.select(
        "source_name",
        "station_id",
        "charger_id",
        "port_id",
        "month",
        "window_start",
        "months_in_window",
        "observed_minutes",
        "up_minutes",
        "down_minutes",
        "excluded_minutes",
        "fault_minutes",
        "offline_minutes",
        "unavailable_minutes",
        "failures",
        "fault_failures",
        "down_episodes",
        "mtbf_hours",
        "mttr_hours",
        "availability_pct",
        "sessions",
        "successful_sessions",
        "failed_sessions",
        "faults_per_1000_sessions",
        "observed_minutes_12m",
        "outage_minutes_12m",
        "excluded_minutes_12m",
        "down_minutes_12m",
        "nevi_uptime_pct",
        "observed_uptime_pct",
        "window_complete",
        "uptime_basis",
        "uptime_pct",
        "below_target",
        "nevi_below_target",
    )


def sessions_by_port_month(outcomes: DataFrame) -> DataFrame:
    """Sessions, successful and failed sessions per (port_id, UTC month of start).

    Parameters
    ----------
    outcomes : DataFrame
        `session_outcomes` rows.

    Returns
    -------
    DataFrame
        One row per port and month: port_id, month (first day), sessions, successful_sessions,
        failed_sessions.
    """
    return (
        outcomes.where(F.col("succeeded").isNotNull())
        .groupBy("port_id", F.trunc("start_ts", "month").alias("month"))
        .agg(
            F.count(F.lit(1)).alias("sessions"),
            F.sum(F.col("succeeded").cast("int")).cast("long").alias("successful_sessions"),
            F.sum((~F.col("succeeded")).cast("int")).cast("long").alias("failed_sessions"),
        )
    )


# --------------------------------------------------------------------------------------------
# Per station (site)
# --------------------------------------------------------------------------------------------
def site_status_summary(failures: DataFrame) -> DataFrame:
    """Per station_id, whole observed period: hours by state, failures, MTBF/MTTR.

    Parameters
    ----------
    failures : DataFrame
        `mark_failures` rows.

    Returns
    -------
    DataFrame
        One row per station: status_source (the status feed's source_name), ports, chargers,
        first_seen_ts / last_seen_ts (UTC), observed / up / down / excluded / fault / offline hours,
        failures, fault_failures, down_episodes, availability_pct and uptime_observed_pct (percent),
        mtbf_hours and mttr_hours (h).
    """
    h = lambda cond: F.coalesce(F.sum(F.when(cond, F.col("duration_s"))), F.lit(0.0)) / 3600.0  # noqa: E731
    return (
        failures.groupBy("station_id")
        .agg(
            F.first("source_name").alias("status_source"),
            F.countDistinct("port_id").alias("ports"),
            F.countDistinct("charger_id").alias("chargers"),
            F.min("start_ts").alias("first_seen_ts"),
            F.max("end_ts").alias("last_seen_ts"),
            h(F.col("state") != UNOBSERVED).alias("observed_hours"),
            h(F.col("state") == UP).alias("up_hours"),
            h(F.col("state") == DOWN).alias("down_hours"),
            h(F.col("state") == EXCLUDED).alias("excluded_hours"),
            h(F.col("down_cause") == "fault").alias("fault_hours"),
            h(F.col("down_cause") == "offline").alias("offline_hours"),
            F.sum(F.col("is_failure").cast("int")).cast("long").alias("failures"),
            F.sum((F.col("is_failure") & (F.col("episode_cause") == "fault")).cast("int")).cast("long").alias("fault_failures"),
            F.sum(F.col("episode_start").cast("int")).cast("long").alias("down_episodes"),
        )
        .withColumn("availability_pct", _ratio(F.col("up_hours"), F.col("up_hours") + F.col("down_hours"), 100.0))
        .withColumn("uptime_observed_pct", _ratio(F.col("observed_hours") - F.col("down_hours"), F.col("observed_hours"), 100.0))
        .withColumn("mtbf_hours", _ratio(F.col("up_hours"), F.col("failures")))
        .withColumn("mttr_hours", _ratio(F.col("down_hours"), F.col("down_episodes")))
    )


def site_session_summary(outcomes: DataFrame, params: ReliabilityConfig, mean_kwh: float | None) -> DataFrame:
    """Per station_id: sessions, success rates, lost energy/revenue of failed sessions.

    Parameters
    ----------
    outcomes : DataFrame
        `session_outcomes` rows.
    params : ReliabilityConfig
        ``price_per_kwh`` (reliability.currency per kWh).
    mean_kwh : float or None
        Mean energy of a successful session in the portfolio (kWh).

    Returns
    -------
    DataFrame
        One row per station with sessions: session_source (the session feed's source_name), sessions,
        successful_sessions, failed_sessions, delivered_kwh (kWh), attempt_sequences,
        first_time_successes, session_success_rate_pct and first_time_success_rate_pct (percent),
        lost_kwh_est = failed sessions x `mean_kwh` (kWh), lost_revenue_est = lost_kwh_est x
        price_per_kwh (reliability.currency).
    """
    keys = ["station_id"]
    base = (
        outcomes.where(F.col("succeeded").isNotNull())
        .groupBy(*keys)
        .agg(
            F.first("source_name").alias("session_source"),
            F.count(F.lit(1)).alias("sessions"),
            F.sum(F.col("succeeded").cast("int")).cast("long").alias("successful_sessions"),
            F.sum((~F.col("succeeded")).cast("int")).cast("long").alias("failed_sessions"),
            F.sum(F.when(F.col("succeeded"), F.col("kwh"))).alias("delivered_kwh"),
        )
    )
    fts = first_time_success(outcomes, keys)
    mean = F.lit(mean_kwh).cast("double")
    return (
        base.join(fts, keys, "left")
        .withColumn("session_success_rate_pct", _ratio(F.col("successful_sessions"), F.col("sessions"), 100.0))
        .withColumn("first_time_success_rate_pct", _ratio(F.col("first_time_successes"), F.col("attempt_sequences"), 100.0))
        .withColumn("lost_kwh_est", F.col("failed_sessions") * mean)
        .withColumn("lost_revenue_est", F.col("failed_sessions") * mean * F.lit(params.price_per_kwh))
    )


def charger_fault_rates(outcomes: DataFrame, port_chargers: DataFrame | None, as_of: Column | str, params: ReliabilityConfig) -> DataFrame:
    """Per charger, the failed-session share over the trailing hotspot_window_days up to `as_of`
    (sessions starting in (as_of - window, as_of]) and its z against the portfolio.

    z = (p_i - p) / sqrt(p (1 - p) / n_i), p = pooled portfolio share over scored chargers (those
    with >= hotspot_min_sessions sessions). The binomial standard error at the charger's own n
    (a funnel plot) keeps small chargers from being flagged by noise, which a z over the spread
    of raw rates would not. This is statsmodels' `proportions_ztest(failed, n, value=p,
    prop_var=p)` written as a column expression so it runs per charger on the executors
    (tests/test_reliability.py checks it against statsmodels). is_hotspot = z > hotspot_z. Charger = status charger_id of the port,
    else the station (Dundee-style sources where a CP id is the station).

    Parameters
    ----------
    outcomes : DataFrame
        `session_outcomes` rows.
    port_chargers : DataFrame or None
        port_id -> charger_id from the status feed; None without one.
    as_of : Column or str
        End of the window (UTC timestamp), or the name of such a column of ``outcomes``.
    params : ReliabilityConfig
        ``hotspot_window_days`` (days), ``hotspot_min_sessions``, ``hotspot_z``.

    Returns
    -------
    DataFrame
        One row per (source_name, station_id, charger_id) with sessions in the window: sessions_window,
        failed_window, fault_rate and portfolio_rate (fractions 0-1), scored, z, is_hotspot, window_days.
    """
    end = F.col(as_of) if isinstance(as_of, str) else as_of
    start = end - F.expr(f"INTERVAL {int(params.hotspot_window_days)} DAYS")
    df = outcomes.where(F.col("succeeded").isNotNull() & (F.col("start_ts") > start) & (F.col("start_ts") <= end))
    if port_chargers is not None:
        df = df.join(F.broadcast(port_chargers), ["port_id"], "left")
    else:
        df = df.withColumn("charger_id", F.lit(None).cast("string"))
    df = df.withColumn("charger_id", F.coalesce("charger_id", "station_id"))
    per = df.groupBy("source_name", "station_id", "charger_id").agg(
        F.count(F.lit(1)).alias("sessions_window"),
        F.sum((~F.col("succeeded")).cast("int")).cast("long").alias("failed_window"),
    )
    per = per.withColumn("fault_rate", F.col("failed_window") / F.col("sessions_window")).withColumn("scored", F.col("sessions_window") >= params.hotspot_min_sessions)
    pool = Window.partitionBy("source_name")
    p = F.sum(F.when(F.col("scored"), F.col("failed_window"))).over(pool) / F.sum(F.when(F.col("scored"), F.col("sessions_window"))).over(pool)
    se = F.sqrt(F.col("portfolio_rate") * (1 - F.col("portfolio_rate")) / F.col("sessions_window"))
    return (
        per.withColumn("portfolio_rate", p)
        .withColumn("z", F.when(F.col("scored") & (se > 0), (F.col("fault_rate") - F.col("portfolio_rate")) / se))
        .withColumn("is_hotspot", F.coalesce(F.col("z") > params.hotspot_z, F.lit(False)))
        .withColumn("window_days", F.lit(int(params.hotspot_window_days)))
    )


# --------------------------------------------------------------------------------------------
# Failed charge attempts of the fleet
# --------------------------------------------------------------------------------------------
def failed_charge_attempts(matched_stops: DataFrame, intervals: DataFrame, min_soc_gain_pct: float) -> DataFrame:
    """Fleet stops at a station (common.network.stations.match_events_to_stations rows) without SOC gain,
    with the state of the station's ports at arrival (from port status intervals).

    ports_available = ports in status Available; ports_down = ports in state down; ports_busy =
    other up ports (charging someone else). is_failed_attempt: no SOC gain (< min_soc_gain_pct),
    no port available and at least one down -- the driver came to charge and the network failed
    them. `port_state` summarises: all_down | some_down | none_down | no_status.

    Parameters
    ----------
    matched_stops : DataFrame
        `match_events_to_stations` rows (station_id, start_ts in UTC, soc_gain_pct).
    intervals : DataFrame
        Classified port status intervals (silver.port_status_intervals).
    min_soc_gain_pct : float
        SOC gain below which a stop did not charge (SOC percent points).

    Returns
    -------
    DataFrame
        One row per stop without SOC gain: its columns + ports_with_status, ports_available,
        ports_down, ports_busy, down_ports (port ids), port_state, is_failed_attempt.
    """
    stops = matched_stops.where(F.coalesce(F.col("soc_gain_pct"), F.lit(0.0)) < min_soc_gain_pct)
    iv = intervals.select(F.col("station_id").alias("_sid"), F.col("port_id"), F.col("start_ts").alias("_s"), F.col("end_ts").alias("_e"), "status", "state")
    at_arrival = stops.join(iv, (stops.station_id == iv._sid) & (iv._s <= stops.start_ts) & (iv._e > stops.start_ts), "left")
    keys = [c for c in matched_stops.columns]
    out = at_arrival.groupBy(*keys).agg(
        F.countDistinct("port_id").alias("ports_with_status"),
        F.countDistinct(F.when(F.col("status") == "Available", F.col("port_id"))).alias("ports_available"),
        F.countDistinct(F.when(F.col("state") == DOWN, F.col("port_id"))).alias("ports_down"),
        F.countDistinct(F.when((F.col("state") == UP) & (F.col("status") != "Available"), F.col("port_id"))).alias("ports_busy"),
        F.collect_set(F.when(F.col("state") == DOWN, F.col("port_id"))).alias("down_ports"),
    )
    port_state = (
        F.when(F.col("ports_with_status") == 0, F.lit("no_status"))
        .when(F.col("ports_down") == F.col("ports_with_status"), F.lit("all_down"))
        .when(F.col("ports_down") > 0, F.lit("some_down"))
        .otherwise(F.lit("none_down"))
    )
    return out.withColumn("port_state", port_state).withColumn("is_failed_attempt", (F.col("ports_available") == 0) & (F.col("ports_down") > 0))

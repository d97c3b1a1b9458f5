"""Charging-site capacity: demand per hour of week, waiting (Erlang C / M/M/c) and ports needed.

Pure functions behind the `gold.site_capacity` step of `jobs/reliability.py`; nothing here reads
or writes storage.

Per station and local hour of week (Monday 00:00 = 0 ... Sunday 23:00 = 167):

- ``slot_hours``: how many times that hour occurs in the source's observation window (first
  session's hour to the observation end); ``arrival_rate_per_h`` = sessions starting in the slot
  / slot_hours. Failed sessions count: they held a port. With fewer than ``min_slot_hours``
  occurrences the rate pools the same local hour over all seven days (``rate_basis``).
- ``mean_service_h``: mean plug-in time (end - start) of the slot's sessions, or of the
  station's sessions when the slot has fewer than ``min_service_sessions`` (``service_basis``).
- ``utilisation``: port-hours occupied in the slot (sessions split at hour boundaries) / (ports x
  slot_hours): what was observed, whatever the queueing model says.
- ``offered_load_erlangs`` a = rate x service; with ``ports`` c, M/M/c gives the probability an
  arriving driver waits, Erlang C(c, a), and the mean wait C x service / (c - a); with a >= c
  the queue is unstable (``stable`` false, P(wait) = 1, no finite wait).
- ``ports_needed``: the fewest ports with P(wait) <= ``target_p_wait``.

Assumptions (docs/NETWORK.md): Poisson arrivals within an hour-of-week slot, exponential service,
a shared queue per site; sessions record served demand, so drivers who found every port busy and
left are not seen and a busy site's demand is understated. Local time is the wall clock of one
zone (``timezone`` column); a DST change shifts one hour twice a year.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T
from scipy.stats import poisson

from common.core.config import CapacityConfig, Config
from common.core.regions import get_region

HOURS_PER_WEEK = 168
OBSERVED, REGISTER, UNKNOWN = "observed_ports", "station_register", "unknown"

# (column, Spark SQL type) of gold.site_capacity, in order.
CAPACITY_COLUMNS: tuple[tuple[str, str], ...] = (
    ("source_name", "string"),
    ("station_id", "string"),
    ("hour_of_week", "int"),
    ("weekday", "int"),
    ("hour", "int"),
    ("timezone", "string"),
    ("slot_hours", "long"),
    ("arrivals", "long"),
    ("arrival_rate_per_h", "double"),
    ("rate_basis", "string"),
    ("mean_service_h", "double"),
    ("service_basis", "string"),
    ("occupied_port_h", "double"),
    ("ports", "long"),
    ("ports_basis", "string"),
    ("utilisation", "double"),
    ("offered_load_erlangs", "double"),
    ("stable", "boolean"),
    ("p_wait", "double"),
    ("expected_wait_min", "double"),
    ("target_p_wait", "double"),
    ("ports_needed", "int"),
    ("additional_ports", "int"),
)


def erlang_c(ports: np.ndarray, load: np.ndarray) -> np.ndarray:
    """Probability that an arrival waits in an M/M/c queue (Erlang C).

    C(c, a) = P_c / (F_{c-1} + P_c) with P_c = pmf(c; a) x c / (c - a) and F the Poisson CDF:
    the textbook a^c/c! form divided through by e^a, so large loads do not overflow. scipy's
    Poisson functions do the numerics; no maintained Python queueing library offers a vectorised
    Erlang C.

    Parameters
    ----------
    ports : numpy.ndarray
        Servers c (>= 0).
    load : numpy.ndarray
        Offered load a = arrival rate x mean service time (Erlangs, >= 0).

    Returns
    -------
    numpy.ndarray
        C(c, a) in [0, 1]: 0 where a = 0, 1 where a >= c (unstable: every arrival eventually
        waits), NaN where either input is NaN.
    """
    c = np.asarray(ports, dtype=float)
    a = np.asarray(load, dtype=float)
    out = np.full(np.broadcast(c, a).shape, np.nan)
    c, a = np.broadcast_arrays(c, a)
    known = ~(np.isnan(c) | np.isnan(a))
    out[known & (a >= c)] = 1.0
    out[known & (a == 0) & (c > 0)] = 0.0
    ok = known & (a > 0) & (a < c)
    if ok.any():
        cc, aa = c[ok], a[ok]
        top = poisson.pmf(cc, aa) * cc / (cc - aa)
        out[ok] = top / (poisson.cdf(cc - 1, aa) + top)
    return out


def ports_needed(load: np.ndarray, target_p_wait: float, max_ports: int) -> np.ndarray:
    """Fewest ports (>= 1) whose Erlang C at `load` is at most `target_p_wait`.

    Parameters
    ----------
    load : numpy.ndarray
        Offered load per slot (Erlangs).
    target_p_wait : float
        Target probability of waiting (0-1).
    max_ports : int
        Search bound: loads that need more are returned as -1 (the caller writes null).

    Returns
    -------
    numpy.ndarray of int
        Ports per slot; -1 beyond `max_ports` or where the load is NaN.
    """
    a = np.asarray(load, dtype=float)
    need = np.full(a.shape, -1, dtype=np.int64)
    known = ~np.isnan(a)
    c = np.where(known, np.maximum(np.floor(a) + 1, 1), 0).astype(np.int64)
    open_ = known & (c <= max_ports)
    while open_.any():
        done = open_ & (erlang_c(c, a) <= target_p_wait)
        need[done] = c[done]
        open_ &= ~done & (c < max_ports)
        c = np.where(open_, c + 1, c)
    return need


@F.pandas_udf(T.DoubleType())  # type: ignore[call-overload]  # type-hinted pandas UDF: pyspark 3.5 stubs only overload the functionType form
def _erlang_c_udf(ports: pd.Series, load: pd.Series) -> pd.Series:
    """`erlang_c` per row; NaN (unknown ports or load) becomes null."""
    return pd.Series(erlang_c(ports.astype(float).to_numpy(), load.astype(float).to_numpy()))


@F.pandas_udf(T.IntegerType())  # type: ignore[call-overload]  # as above
def _ports_needed_udf(load: pd.Series, target: pd.Series, max_ports: pd.Series) -> pd.Series:
    """`ports_needed` per row (target and bound are literals); beyond the bound or unknown load: null."""
    n = ports_needed(load.astype(float).to_numpy(), float(target.iloc[0]), int(max_ports.iloc[0])) if len(load) else np.array([], dtype=np.int64)
    return pd.Series(n).where(n >= 0).astype("Int32")


def capacity_timezone(cfg: Config) -> str:
    """The zone of the hour of week.

    Parameters
    ----------
    cfg : Config
        capacity.timezone, clean.default_timezone, inputs.charging_sessions, generator.region.

    Returns
    -------
    str
        capacity.timezone, else the one wall-clock zone the session inputs are written in (their
        source_timezone), else clean.default_timezone, else the generator region's zone for the
        generator's own inputs, else UTC.
    """
    if cfg.capacity.timezone:
        return str(cfg.capacity.timezone)
    zones = {spec.source_timezone for spec in cfg.inputs.charging_sessions if spec.source_timezone}
    if len(zones) == 1:  # the sessions' own wall clock before the vehicles' default zone
        return zones.pop()
    if cfg.clean.default_timezone:
        return str(cfg.clean.default_timezone)
    return get_region(cfg.generator.region).timezone if cfg.inputs.is_empty() else "UTC"


def hour_of_week(local_ts: str | Column) -> Column:
    """Hour of week of a local wall-clock timestamp.

    Parameters
    ----------
    local_ts : str or Column
        Local wall-clock time (from_utc_timestamp), not a UTC instant.

    Returns
    -------
    Column
        int: Monday 00:00 -> 0 ... Sunday 23:00 -> 167.
    """
    col = F.col(local_ts) if isinstance(local_ts, str) else local_ts
    return F.weekday(col) * 24 + F.hour(col)


def _hours_between(start: Column, end: Column) -> Column:
    return (end.cast("double") - start.cast("double")) / 3600.0


def observation_windows(sessions: DataFrame, observation_end: str | None) -> DataFrame:
    """Per source: the window the rates are measured over.

    Parameters
    ----------
    sessions : DataFrame
        source_name, start_ts, end_ts (UTC).
    observation_end : str or None
        UTC end of the window; None: the source's latest session start or end.

    Returns
    -------
    DataFrame
        source_name, window_start (first session start), window_end (UTC timestamps; sessions
        starting at or after window_end are outside the window).
    """
    end = F.lit(observation_end).cast("timestamp") if observation_end else F.max(F.greatest("start_ts", F.coalesce("end_ts", "start_ts")))
    return sessions.groupBy("source_name").agg(F.min("start_ts").alias("window_start"), end.alias("window_end"))


def slot_hours(windows: DataFrame, timezone: str) -> DataFrame:
    """Per source and local hour of week: how many such hours the observation window touches.

    Parameters
    ----------
    windows : DataFrame
        `observation_windows` rows.
    timezone : str
        IANA zone of the wall clock.

    Returns
    -------
    DataFrame
        source_name, hour_of_week, slot_hours (long; 0 for an hour the window never reaches):
        local clock hours from the first session's hour to the hour holding the window end
        (exclusive end; a window ending at 10:30 counts the 10:00 hour).
    """
    hour = F.expr("INTERVAL 1 HOUR")
    first = F.date_trunc("hour", F.from_utc_timestamp("window_start", timezone))
    last = F.date_trunc("hour", F.from_utc_timestamp(F.col("window_end") - F.expr("INTERVAL 1 SECOND"), timezone))
    # sequence() raises on a stop before its start (an end before the first session): no hours then
    hours = windows.select("source_name", F.explode(F.when(last >= first, F.sequence(first, last, hour))).alias("_h"))
    counted = hours.groupBy("source_name", hour_of_week("_h").alias("hour_of_week")).agg(F.count(F.lit(1)).alias("slot_hours"))
    every = windows.select("source_name").crossJoin(_all_slots(windows))
    return every.join(counted, ["source_name", "hour_of_week"], "left").fillna(0, subset=["slot_hours"])


def _all_slots(frame: DataFrame) -> DataFrame:
    return frame.sparkSession.range(HOURS_PER_WEEK).select(F.col("id").cast("int").alias("hour_of_week"))


def station_ports(sessions: DataFrame, status: DataFrame | None, stations: DataFrame | None) -> DataFrame:
    """Ports per station: distinct ports seen in sessions or status, else the station register.

    Parameters
    ----------
    sessions : DataFrame
        source_name, station_id, port_id.
    status : DataFrame or None
        bronze.charger_status (station_id, port_id); matched by station_id whatever its source.
    stations : DataFrame or None
        Latest bronze.stations rows (station_id, level1/level2/dc_fast counts where present).

    Returns
    -------
    DataFrame
        One row per (source_name, station_id) of `sessions` (source_name 'default' when absent): ports (long, null when unknown) and
        ports_basis (observed_ports, station_register or unknown).
    """
    sessions = _with_source(sessions)
    sites = sessions.select("source_name", "station_id").distinct()
    seen = sessions.where(F.col("port_id").isNotNull()).groupBy("source_name", "station_id").agg(F.countDistinct("port_id").alias("_s"))
    ports = sites.join(seen, ["source_name", "station_id"], "left")
    if status is not None:
        by_status = status.where(F.col("port_id").isNotNull()).groupBy("station_id").agg(F.countDistinct("port_id").alias("_t"))
        ports = ports.join(by_status, "station_id", "left")
    else:
        ports = ports.withColumn("_t", F.lit(None).cast("long"))
    counts = [c for c in ("level1_count", "level2_count", "dc_fast_count") if stations is not None and c in stations.columns]
    if stations is not None and counts:
        total = sum((F.coalesce(F.col(c), F.lit(0)) for c in counts), F.lit(0))
        register = stations.select("station_id", F.when(total > 0, total.cast("long")).alias("_r"))
        ports = ports.join(register, "station_id", "left")
    else:
        ports = ports.withColumn("_r", F.lit(None).cast("long"))
    observed = F.greatest("_s", "_t")
    # a port nobody used in the window still serves: the register wins when it lists more
    return ports.select(
        "source_name",
        "station_id",
        F.greatest(observed, F.col("_r")).cast("long").alias("ports"),
        F.when(F.col("_r") > F.coalesce(observed, F.lit(0)), F.lit(REGISTER)).when(observed.isNotNull(), F.lit(OBSERVED)).otherwise(F.lit(UNKNOWN)).alias("ports_basis"),
    )


def _with_source(sessions: DataFrame) -> DataFrame:
    return sessions if "source_name" in sessions.columns else sessions.withColumn("source_name", F.lit("default"))


def _slot_demand(sessions: DataFrame, timezone: str) -> DataFrame:
    """Per station and hour of week: arrivals and the service time of sessions starting there."""
    local_start = F.from_utc_timestamp("start_ts", timezone)
    served = F.when(F.col("end_ts") >= F.col("start_ts"), _hours_between(F.col("start_ts"), F.col("end_ts")))
    return sessions.groupBy("source_name", "station_id", hour_of_week(local_start).alias("hour_of_week")).agg(
        F.count(F.lit(1)).alias("arrivals"),
        F.count(served).alias("_served"),
        F.sum(served).alias("_service_h"),
    )


def _slot_occupancy(sessions: DataFrame, timezone: str) -> DataFrame:
    """Per station and hour of week: port-hours occupied, sessions split at local hour boundaries
    and cut at the window end (sessions carry `window_end`)."""
    end = F.least("end_ts", "window_end")
    s = sessions.where(end > F.col("start_ts")).select(
        "source_name",
        "station_id",
        F.from_utc_timestamp("start_ts", timezone).alias("_a"),
        F.from_utc_timestamp(end, timezone).alias("_b"),
    )
    hour = F.expr("INTERVAL 1 HOUR")
    buckets = s.select("*", F.explode(F.sequence(F.date_trunc("hour", "_a"), F.date_trunc("hour", "_b"), hour)).alias("_h"))
    overlap = _hours_between(F.greatest("_a", "_h"), F.least("_b", F.col("_h") + hour))
    return buckets.where(overlap > 0).groupBy("source_name", "station_id", hour_of_week("_h").alias("hour_of_week")).agg(F.sum(overlap).alias("occupied_port_h"))


def site_capacity(sessions: DataFrame, ports: DataFrame, params: CapacityConfig, timezone: str, observation_end: str | None) -> DataFrame:
    """gold.site_capacity: every station with sessions x 168 local hours of week.

    Parameters
    ----------
    sessions : DataFrame
        bronze.charging_sessions (session_id, station_id, port_id, start_ts, end_ts in UTC;
        source_name 'default' when absent).
    ports : DataFrame
        `station_ports` of the same sessions.
    params : CapacityConfig
        target_p_wait, min_service_sessions, min_slot_hours, max_ports.
    timezone : str
        IANA zone of the hour of week.
    observation_end : str or None
        UTC end of the observation window (reliability.observation_end); None: the latest session.

    Returns
    -------
    DataFrame
        `CAPACITY_COLUMNS`; rates per hour, times in hours, wait in minutes, utilisation and
        probabilities as fractions (0-1).
    """
    sessions = _with_source(sessions)
    keys = ["source_name", "station_id", "hour_of_week"]
    windows = observation_windows(sessions, observation_end)
    slots = slot_hours(windows, timezone)
    # sessions starting at or after the window end are outside it (a status feed's configured end)
    sessions = sessions.join(windows, "source_name").where(F.col("start_ts") < F.col("window_end"))
    demand = _slot_demand(sessions, timezone)
    station_service = demand.groupBy("source_name", "station_id").agg((F.sum("_service_h") / F.sum("_served")).alias("_station_service_h"))
    grid = ports.join(slots, "source_name").join(station_service, ["source_name", "station_id"], "left")
    df = grid.join(demand, keys, "left").join(_slot_occupancy(sessions, timezone), keys, "left").fillna(0, subset=["arrivals", "_served", "occupied_port_h"])
    # A window shorter than min_slot_hours weeks pools each hour over the seven days: one
    # observation of "Tuesday 17:00" says little, seven of "17:00" say more.
    same_hour = Window.partitionBy("source_name", "station_id", F.col("hour_of_week") % 24)
    df = df.withColumns({"_pool_arrivals": F.sum("arrivals").over(same_hour), "_pool_hours": F.sum("slot_hours").over(same_hour)})

    own = F.col("_served") >= params.min_service_sessions
    service = F.when(own, F.col("_service_h") / F.col("_served")).otherwise(F.col("_station_service_h"))
    by_week = F.col("slot_hours") >= params.min_slot_hours
    rate = F.when(by_week, F.col("arrivals") / F.col("slot_hours")).when(F.col("_pool_hours") > 0, F.col("_pool_arrivals") / F.col("_pool_hours"))
    load = rate * service
    target = params.target_p_wait
    df = df.withColumns(
        {
            "weekday": (F.col("hour_of_week") / 24).cast("int"),
            "hour": (F.col("hour_of_week") % 24).cast("int"),
            "timezone": F.lit(timezone),
            "arrival_rate_per_h": rate,
            "rate_basis": F.when(by_week, F.lit("hour_of_week")).when(F.col("_pool_hours") > 0, F.lit("hour_of_day")),
            "mean_service_h": service,
            "service_basis": F.when(own, F.lit("slot")).when(F.col("_station_service_h").isNotNull(), F.lit("station")),
            "utilisation": F.when((F.col("ports") > 0) & (F.col("slot_hours") > 0), F.col("occupied_port_h") / (F.col("ports") * F.col("slot_hours"))),
            "offered_load_erlangs": load,
            "target_p_wait": F.lit(target),
        }
    )
    df = df.withColumns(
        {
            "stable": F.when(F.col("ports").isNotNull() & F.col("offered_load_erlangs").isNotNull(), F.col("offered_load_erlangs") < F.col("ports")),
            "p_wait": _erlang_c_udf(F.col("ports").cast("double"), F.col("offered_load_erlangs")),
            "ports_needed": _ports_needed_udf(F.col("offered_load_erlangs"), F.lit(target), F.lit(params.max_ports)),
        }
    )
    wait = F.when(F.col("stable") & (F.col("offered_load_erlangs") > 0), F.col("p_wait") * F.col("mean_service_h") / (F.col("ports") - F.col("offered_load_erlangs")) * 60.0)
    df = df.withColumns(
        {
            "expected_wait_min": F.when(F.col("stable"), F.coalesce(wait, F.lit(0.0))),
            # greatest() skips nulls: unknown ports or load must stay unknown, not "0 more"
            "additional_ports": F.when(F.col("ports_needed").isNotNull() & F.col("ports").isNotNull(), F.greatest(F.col("ports_needed") - F.col("ports"), F.lit(0))).cast("int"),
        }
    )
    return df.select(*[F.col(c).cast(t).alias(c) for c, t in CAPACITY_COLUMNS])


def weekly_profile(capacity: DataFrame) -> DataFrame:
    """Network view per local weekday and hour: the worst station's P(wait), mean utilisation.

    Parameters
    ----------
    capacity : DataFrame
        gold.site_capacity.

    Returns
    -------
    DataFrame
        168 rows: weekday (0 = Monday), hour, max_p_wait, mean_utilisation, stations, arrivals.
    """
    return capacity.groupBy("weekday", "hour").agg(
        F.max("p_wait").alias("max_p_wait"),
        F.avg("utilisation").alias("mean_utilisation"),
        F.countDistinct("source_name", "station_id").alias("stations"),
        F.sum("arrivals").alias("arrivals"),
    )


def site_needs(capacity: DataFrame) -> DataFrame:
    """Per station: its worst hour of week and the ports that hour needs.

    Parameters
    ----------
    capacity : DataFrame
        gold.site_capacity.

    Returns
    -------
    DataFrame
        source_name, station_id, ports; the peak slot (highest P(wait), then load) with its
        peak_hour_of_week, peak_p_wait, peak_utilisation, peak_wait_min (null when that hour is
        unstable) and stable; ports_needed and additional_ports (the most over all slots);
        busy_hours_per_week (slots whose P(wait) exceeds the target). Sorted by additional ports
        then P(wait), descending.
    """
    worst = F.struct(F.coalesce("p_wait", F.lit(-1.0)), F.coalesce("offered_load_erlangs", F.lit(-1.0)))
    peak = F.max_by(F.struct("hour_of_week", "p_wait", "utilisation", "expected_wait_min", "stable"), worst)
    agg = capacity.groupBy("source_name", "station_id").agg(
        F.first("ports").alias("ports"),
        peak.alias("_peak"),
        F.max("ports_needed").alias("ports_needed"),
        F.max("additional_ports").alias("additional_ports"),
        F.count(F.when(F.col("p_wait") > F.col("target_p_wait"), 1)).alias("busy_hours_per_week"),
    )
    return agg.select(
        "source_name",
        "station_id",
        "ports",
        F.col("_peak.hour_of_week").alias("peak_hour_of_week"),
        F.col("_peak.p_wait").alias("peak_p_wait"),
        F.col("_peak.utilisation").alias("peak_utilisation"),
        F.col("_peak.expected_wait_min").alias("peak_wait_min"),
        F.col("_peak.stable").alias("stable"),
        "ports_needed",
        "additional_ports",
        "busy_hours_per_week",
    ).orderBy(F.desc_nulls_last("additional_ports"), F.desc_nulls_last("peak_p_wait"), "station_id")

"""Telematics cleaning rules: flag, never delete (bronze.telematics -> silver.telematics_clean).

Pure DataFrame -> DataFrame transforms; `jobs/clean.py` does the IO. Every bronze row comes out
once, with

- `quality_flags` (int bitmask, bits in `FLAGS`), `quality_reasons` (array of flag names) and
  `is_usable` (no blocking flag set; `missing_value` is informational only);
- repaired `lat`/`lon`/`soc_pct`/`speed_kmh`/`odometer_km` next to the originals (`*_orig`) and an
  `*_imputed` flag per field (`position_imputed` covers lat and lon together);
- local time `ts_local`/`local_date` from the vehicle's timezone (bronze.vehicles) or the
  dataset default (`clean.default_timezone`).

Rules (thresholds in `clean.*`, see common/core/config.py CleanConfig):

1. invalid coordinates (null, NaN/inf, out of range) and receiver defaults ((0, 0), see
   `zero_coord_either_axis`);
2. outside the operating area: Sedona `ST_Contains` against one broadcast polygon;
3. duplicates: rows sharing (vehicle_id, ts) -- the first in event order is kept, the others
   flagged (exact duplicates are already dropped by ingest, near duplicates are not);
4. impossible speed between consecutive usable positions: implied speed above
   max(physical cap of the vehicle type, alpha x the vehicle's p95 moving speed). A single
   point far from both neighbours that are close to each other is a `speed_spike`
   ("teleport and return"); any other impossible leg blames one point (`impossible_speed`, see
   `_blame_legs`). A long gap with a plausible implied speed is never flagged;
5. battery: SOC outside 0-100, SOC change faster than the battery and the fastest charger (rise)
   or `max_discharge_c_rate` (fall) allow, SOC rising while driving (beyond regen tolerance),
   single-point SOC spikes;
6. timestamps after run time (+ tolerance) or before the dataset start. Late-arriving rows need
   no flag: all neighbour logic orders by event time.

Neighbour logic uses window functions over (vehicle_id ordered by ts) with `lag`/`lead ...
IGNORE NULLS` over the rows a rule may use, so "previous usable point" skips flagged rows
without Python UDFs or self-joins. All windows share one partitioning and ordering, so Spark
sorts the data once.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql.window import WindowSpec

from common.core.config import CleanConfig, Config, ConfigError
from common.core.regions import get_region, read_area_wkt
from common.io.schemas import LINEAGE_COLUMNS
from common.io.spark import with_sedona
from common.spatial.geo import haversine_m

log = logging.getLogger("ev_fleet.clean")

# Bit per rule. Order is the order of `quality_reasons`.
FLAGS: dict[str, int] = {
    "invalid_coord": 1,  # rule 1
    "zero_coord": 2,  # rule 1
    "outside_area": 4,  # rule 2
    "duplicate": 8,  # rule 3
    "speed_spike": 16,  # rule 4
    "impossible_speed": 32,  # rule 4
    "soc_out_of_range": 64,  # rule 5
    "soc_rate": 128,  # rule 5
    "soc_rise_while_driving": 256,  # rule 5
    "soc_spike": 512,  # rule 5
    "ts_future": 1024,  # rule 6
    "ts_before_start": 2048,  # rule 6 (also a null ts)
    "missing_value": 4096,  # informational: null soc/speed/odometer, repaired where possible
}
INFORMATIONAL_FLAGS = ("missing_value",)
BLOCKING_MASK = sum(bit for name, bit in FLAGS.items() if name not in INFORMATIONAL_FLAGS)

POSITION_FLAGS = ("invalid_coord", "zero_coord", "outside_area", "speed_spike", "impossible_speed")
SOC_FLAGS = ("soc_out_of_range", "soc_rate", "soc_rise_while_driving", "soc_spike")
# Rows whose timestamp or key is wrong are nobody's neighbour.
ROW_FLAGS = ("duplicate", "ts_future", "ts_before_start")

CANONICAL = (
    "vehicle_id",
    "ts",
    "lat",
    "lon",
    "speed_kmh",
    "odometer_km",
    "soc_pct",
    "altitude_m",
    "heading_deg",
    "ambient_temp_c",
)
REPAIRED = ("lat", "lon", "soc_pct", "speed_kmh", "odometer_km")
_KMH_PER_MPS = 3.6


@dataclass(frozen=True)
class CleaningParams:
    """Everything the rules need, resolved once from config (the polygon is read here, not per row).

    Attributes
    ----------
    settings : CleanConfig
        The `clean` config section (thresholds of every rule).
    area_wkt : str or None
        Operating area as WKT, (lon lat) degrees WGS84; None: no area configured, rule 2 is off.
    as_of : datetime
        "Now" for the future-timestamp rule, timezone-aware UTC.
    dataset_start : datetime or None
        UTC; earlier rows are flagged (`ts_before_start`).
    default_timezone : str or None
        IANA zone for vehicles without one; None: such a vehicle is an error.
    """

    settings: CleanConfig
    area_wkt: str | None  # None: no operating area configured, rule 2 is off
    as_of: datetime  # "now" for the future-timestamp rule, timezone-aware UTC
    dataset_start: datetime | None  # UTC; earlier rows are flagged
    default_timezone: str | None = None  # for vehicles without a zone; None: such a vehicle is an error


def cleaning_params(cfg: Config, as_of: datetime | None = None) -> CleaningParams:
    """Resolve conf into CleaningParams: read the operating area, default the dataset start and zone.

    The generator's own inputs default to its region's area and zone; other inputs use only what
    conf (or the dataset file's `settings:`) says.

    Parameters
    ----------
    cfg : Config
    as_of : datetime, optional
        Run time for the future-timestamp rule (naive = UTC); default the current time.

    Returns
    -------
    CleaningParams
        With the area file read; without clean.dataset_start the synthetic inputs start one day
        before the generator's first day (UTC midnight), other inputs have no start.
    """
    c = cfg.clean
    synthetic = cfg.inputs.is_empty()
    region = get_region(cfg.generator.region) if synthetic else None
    area_file = c.area_file or (region.area_file if region else None)
    start: datetime | None = None
    if c.dataset_start:
        start = _utc(datetime.fromisoformat(c.dataset_start))
    elif cfg.inputs.is_empty():
        # Synthetic inputs: the first local day starts at most 14 h before its UTC midnight.
        first_day = date.fromisoformat(cfg.generator.start_date)
        start = datetime(first_day.year, first_day.month, first_day.day, tzinfo=timezone.utc) - timedelta(days=1)
    return CleaningParams(
        settings=c,
        area_wkt=read_area_wkt(area_file) if area_file else None,
        as_of=_utc(as_of or datetime.now(timezone.utc)),
        dataset_start=start,
        default_timezone=c.default_timezone or (region.timezone if region else None),
    )


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


# --------------------------------------------------------------------------------------------
# Vehicle timezones (local days need one per vehicle)
# --------------------------------------------------------------------------------------------
def known_timezones_only(vehicles: DataFrame, notes: list[str] | None = None) -> DataFrame:
    """Null out timezones that are not IANA zones (from_utc_timestamp would fail on them).

    Parameters
    ----------
    vehicles : DataFrame
        bronze.vehicles rows (small: one row per vehicle) with a `timezone` column.
    notes : list of str, optional
        A StageReport's notes: the unknown zones are named there (and logged).

    Returns
    -------
    DataFrame
        `vehicles` with unknown zones set to null: those vehicles fall back to
        clean.default_timezone.
    """
    unknown = []
    for (zone,) in vehicles.select("timezone").where(F.col("timezone").isNotNull()).distinct().collect():  # bounded: one row per distinct timezone
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            unknown.append(zone)
    if not unknown:
        return vehicles
    note = f"unknown vehicle timezones {sorted(unknown)}: clean.default_timezone used instead"
    log.warning(note)
    if notes is not None:
        notes.append(note)
    return vehicles.withColumn("timezone", F.when(~F.col("timezone").isin(unknown), F.col("timezone")))


def require_vehicle_timezones(bronze: DataFrame, vehicles: DataFrame) -> None:
    """Check that every vehicle of `bronze` has a zone in `vehicles` (needed without clean.default_timezone).

    Parameters
    ----------
    bronze : DataFrame
        bronze.telematics rows (only `vehicle_id` is read).
    vehicles : DataFrame
        bronze.vehicles rows with `timezone` (IANA zone or null).

    Raises
    ------
    ConfigError
        Naming up to five vehicles without a zone and the settings that fix it.
    """
    zoned = vehicles.where(F.col("timezone").isNotNull()).select("vehicle_id").distinct()
    missing = bronze.select("vehicle_id").distinct().join(zoned, "vehicle_id", "left_anti")
    sample = [r.vehicle_id for r in missing.limit(5).collect()]
    if sample:
        raise ConfigError(
            f"vehicle(s) {', '.join(sample)}{' ...' if len(sample) == 5 else ''} have no timezone in bronze.vehicles and "
            "clean.default_timezone is not set: set clean.default_timezone (e.g. --conf clean.default_timezone=Africa/Nairobi, "
            "or `settings: {clean.default_timezone: ...}` in the dataset file) or map a timezone column for the vehicles"
        )


# --------------------------------------------------------------------------------------------
# The whole job as one chain
# --------------------------------------------------------------------------------------------
def clean_telematics(bronze: DataFrame, vehicles: DataFrame, params: CleaningParams) -> DataFrame:
    """bronze.telematics (+ bronze.vehicles) -> silver.telematics_clean rows; rows in = rows out.

    Parameters
    ----------
    bronze : DataFrame
        bronze.telematics rows (the CANONICAL columns plus lineage and `date`).
    vehicles : DataFrame
        bronze.vehicles: vehicle_id, vehicle_type, battery_kwh (kWh), timezone (IANA or null).
    params : CleaningParams

    Returns
    -------
    DataFrame
        silver.telematics_clean: one row per bronze row, columns as in `finalize`.
    """
    s = params.settings
    return (
        bronze.transform(prepare, vehicles, s, params.default_timezone)
        .transform(flag_invalid_coordinates, s)
        .transform(flag_outside_area, params.area_wkt)
        .transform(flag_timestamps, params.as_of, params.dataset_start, s)
        .transform(flag_soc_out_of_range)
        .transform(flag_missing_values)
        .transform(order_events)
        .transform(flag_duplicates)
        .transform(flag_speed_outliers, s)
        .transform(flag_soc_anomalies, s)
        .transform(repair_values, s)
        .transform(add_local_time, s)
        .transform(finalize)
    )


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------
def _has(*names: str) -> Column:
    mask = sum(FLAGS[n] for n in names)
    return (F.col("quality_flags").bitwiseAND(F.lit(mask))) != 0


def _add_flags(df: DataFrame, **conditions: Column) -> DataFrame:
    """Set flag bits where the conditions hold (one projection for several flags; null = false)."""
    flags = F.col("quality_flags")
    for name, condition in conditions.items():
        flags = flags.bitwiseOR(F.when(F.coalesce(condition, F.lit(False)), F.lit(FLAGS[name])).otherwise(F.lit(0)))
    return df.withColumn("quality_flags", flags)


def _events() -> WindowSpec:
    """The one window: a vehicle's rows in event order; `_suspect`/`_tie` order equal timestamps."""
    return Window.partitionBy("vehicle_id").orderBy("ts", "_suspect", "_tie")


def _prev(column: str) -> Column:
    """Previous non-null value of `column` in event order (the previous row a rule may use)."""
    return F.expr(f"lag(`{column}`) ignore nulls").over(_events())


def _next(column: str) -> Column:
    return F.expr(f"lead(`{column}`) ignore nulls").over(_events())


def _finite(c: Column) -> Column:
    return c.isNotNull() & ~F.isnan(c) & (F.abs(c) != F.lit(float("inf")))


def _speed_kmh(distance_m: Column, dt_s: Column) -> Column:
    return F.when(dt_s > 0, distance_m / dt_s * _KMH_PER_MPS)


# --------------------------------------------------------------------------------------------
# Preparation
# --------------------------------------------------------------------------------------------
def prepare(bronze: DataFrame, vehicles: DataFrame, settings: CleanConfig, default_timezone: str | None = None) -> DataFrame:
    """Attach vehicle type, battery size and timezone; keep originals; start with no flags.

    Vehicles are deduplicated on vehicle_id first so the left join can never multiply rows.
    `_t` is the event time in epoch seconds (double) used for every time difference.

    Parameters
    ----------
    bronze : DataFrame
        bronze.telematics rows.
    vehicles : DataFrame
        bronze.vehicles: vehicle_id, vehicle_type, battery_kwh (kWh), timezone.
    settings : CleanConfig
    default_timezone : str, optional
        IANA zone for vehicles without one; default clean.default_timezone.

    Returns
    -------
    DataFrame
        One row per bronze row: its columns, `<field>_orig` for each of REPAIRED, `_vehicle_type`,
        `_battery_kwh` (kWh, clean.default_battery_kwh when unknown), `timezone`, `_t` (epoch s),
        `_tie` (hash ordering equal timestamps) and `quality_flags` = 0.
    """
    fleet = vehicles.select(
        "vehicle_id",
        F.col("vehicle_type").alias("_vehicle_type"),
        F.col("battery_kwh").alias("_battery_kwh"),
        F.col("timezone").alias("_vehicle_tz"),
    ).dropDuplicates(["vehicle_id"])
    originals = [F.col(c).alias(f"{c}_orig") for c in REPAIRED]
    # Deterministic order among rows with the same timestamp, from their values only (exact copies
    # hash equal, which is fine). Lineage is left out: the file a row came from has a different
    # path in every lakehouse, and the copy kept must not depend on where the input was stored.
    tie = F.xxhash64(*[F.col(c) for c in bronze.columns if c not in LINEAGE_COLUMNS])
    return bronze.join(F.broadcast(fleet), "vehicle_id", "left").select(
        *bronze.columns,
        *originals,
        "_vehicle_type",
        F.coalesce(F.col("_battery_kwh"), F.lit(settings.default_battery_kwh)).alias("_battery_kwh"),
        F.coalesce(F.col("_vehicle_tz"), F.lit(default_timezone or settings.default_timezone)).alias("timezone"),
        F.col("ts").cast("double").alias("_t"),
        tie.alias("_tie"),
        F.lit(0).alias("quality_flags"),
    )


# --------------------------------------------------------------------------------------------
# Rules 1, 2, 6 and the row-local part of 5
# --------------------------------------------------------------------------------------------
def valid_coordinates(lat: Column | None = None, lon: Column | None = None) -> Column:
    """Both coordinates present, finite and within WGS84 ranges (degrees).

    Parameters
    ----------
    lat, lon : Column, optional
        Latitude and longitude (degrees); default the `lat` and `lon` columns.

    Returns
    -------
    Column
        Boolean, false when either is null, NaN, infinite or out of range.
    """
    lat = F.col("lat") if lat is None else lat
    lon = F.col("lon") if lon is None else lon
    return _finite(lat) & _finite(lon) & lat.between(-90.0, 90.0) & lon.between(-180.0, 180.0)


def flag_invalid_coordinates(points: DataFrame, settings: CleanConfig) -> DataFrame:
    """Rule 1: `invalid_coord` (null, NaN, inf, out of range) and `zero_coord` (receiver default).

    Parameters
    ----------
    points : DataFrame
        Rows in cleaning (output of `prepare` and the earlier rules of `clean_telematics`); reads lat, lon (degrees).
    settings : CleanConfig
        `zero_coord_either_axis`: flag a zero on either axis, not only (0, 0).

    Returns
    -------
    DataFrame
        `points` with the two flag bits set in `quality_flags`.
    """
    valid = valid_coordinates()
    zero = (F.col("lat") == 0) & (F.col("lon") == 0)
    if settings.zero_coord_either_axis:
        zero = (F.col("lat") == 0) | (F.col("lon") == 0)
    return points.transform(_add_flags, invalid_coord=~valid, zero_coord=valid & zero)


def flag_outside_area(points: DataFrame, area_wkt: str | None) -> DataFrame:
    """Rule 2: valid, non-zero positions not inside the operating area (Sedona ST_Contains).

    The polygon is parsed once and broadcast as a one-row table; rows already flagged by rule 1
    are not tested (a (0, 0) point is a receiver default, not a trip abroad). Without an area
    (`area_wkt` None) the rule is off.

    Parameters
    ----------
    points : DataFrame
        Rows in cleaning (output of `prepare` and the earlier rules of `clean_telematics`); reads lat, lon (degrees).
    area_wkt : str or None
        Operating area as WKT, (lon lat) degrees WGS84.

    Returns
    -------
    DataFrame
        `points` with the `outside_area` bit set in `quality_flags`.
    """
    if area_wkt is None:
        return points
    with_sedona(points.sparkSession)
    area = points.sparkSession.createDataFrame([(area_wkt,)], "area_wkt string").select(F.expr("ST_GeomFromWKT(area_wkt)").alias("_area"))
    testable = ~_has("invalid_coord", "zero_coord")
    inside = F.expr("ST_Contains(_area, ST_Point(lon, lat))")
    return points.crossJoin(F.broadcast(area)).transform(_add_flags, outside_area=F.when(testable, ~inside).otherwise(F.lit(False))).drop("_area")


def flag_timestamps(points: DataFrame, as_of: datetime, dataset_start: datetime | None, settings: CleanConfig) -> DataFrame:
    """Rule 6: `ts_future` (after as_of + future_tolerance_min) and `ts_before_start` (or null ts).

    Parameters
    ----------
    points : DataFrame
        Rows in cleaning (output of `prepare` and the earlier rules of `clean_telematics`); reads ts (UTC).
    as_of : datetime
        Run time (naive = UTC).
    dataset_start : datetime or None
        First valid instant (naive = UTC); None: only a null ts is `ts_before_start`.
    settings : CleanConfig
        `future_tolerance_min` (minutes).

    Returns
    -------
    DataFrame
        `points` with the two flag bits set in `quality_flags`.
    """
    latest = _utc(as_of) + timedelta(minutes=settings.future_tolerance_min)
    before = F.col("ts").isNull()
    if dataset_start is not None:
        before = before | (F.col("ts") < F.lit(_utc(dataset_start)))
    return points.transform(_add_flags, ts_future=F.col("ts") > F.lit(latest), ts_before_start=before)


def flag_soc_out_of_range(points: DataFrame) -> DataFrame:
    """Rule 5a: SOC present but not a finite value within 0-100 %.

    Parameters
    ----------
    points : DataFrame
        Rows in cleaning (output of `prepare` and the earlier rules of `clean_telematics`); reads soc_pct (%).

    Returns
    -------
    DataFrame
        `points` with the `soc_out_of_range` bit set in `quality_flags`.
    """
    soc = F.col("soc_pct")
    return points.transform(_add_flags, soc_out_of_range=soc.isNotNull() & ~(_finite(soc) & soc.between(0.0, 100.0)))


def flag_missing_values(points: DataFrame) -> DataFrame:
    """Informational `missing_value`: null/NaN soc, speed or odometer (kept usable, repaired later).

    Parameters
    ----------
    points : DataFrame
        Rows in cleaning (output of `prepare` and the earlier rules of `clean_telematics`); reads soc_pct, speed_kmh, odometer_km.

    Returns
    -------
    DataFrame
        `points` with the `missing_value` bit set in `quality_flags`.
    """
    missing = ~_finite(F.col("speed_kmh")) | ~_finite(F.col("odometer_km")) | F.col("soc_pct").isNull()
    return points.transform(_add_flags, missing_value=missing)


# --------------------------------------------------------------------------------------------
# Rule 3
# --------------------------------------------------------------------------------------------
def order_events(points: DataFrame) -> DataFrame:
    """Among rows with the same (vehicle_id, ts), rows without row-local flags come first.

    So when a near duplicate carries a broken position or SOC, the intact row is the one kept.

    Parameters
    ----------
    points : DataFrame
        Rows in cleaning (output of `prepare` and the earlier rules of `clean_telematics`); rules 1, 2, 5a and 6 applied.

    Returns
    -------
    DataFrame
        `points` with `_suspect` (int: 1 when a blocking flag is already set, else 0), part of the
        `_events()` order.
    """
    return points.withColumn("_suspect", (F.col("quality_flags").bitwiseAND(F.lit(BLOCKING_MASK)) != 0).cast("int"))


def flag_duplicates(points: DataFrame) -> DataFrame:
    """Rule 3: every row whose key (vehicle_id, ts) equals the previous row's is a `duplicate`.

    Exactly one row per key stays unflagged (the first in `_events()` order).

    Parameters
    ----------
    points : DataFrame
        Rows in cleaning (output of `prepare` and the earlier rules of `clean_telematics`); needs `_suspect` (`order_events`) and `_tie`.

    Returns
    -------
    DataFrame
        `points` with the `duplicate` bit set in `quality_flags`.
    """
    same_key = F.lag("ts").over(_events()) == F.col("ts")
    return points.transform(_add_flags, duplicate=same_key)


# --------------------------------------------------------------------------------------------
# Rule 4
# --------------------------------------------------------------------------------------------
def speed_cap_kmh(settings: CleanConfig) -> Column:
    """Physical cap of the row's vehicle type (km/h), 'default' for unknown types.

    Parameters
    ----------
    settings : CleanConfig
        `physical_max_speed_kmh`: vehicle type -> cap (km/h), optionally with a 'default' entry.

    Returns
    -------
    Column
        Double (km/h) for the row's `_vehicle_type`; without a 'default' entry unknown types get
        the largest cap (250 km/h when none is configured).
    """
    caps = settings.physical_max_speed_kmh
    default = caps.get("default", max(caps.values()) if caps else 250.0)
    lookup = F.create_map(*[x for k, v in caps.items() for x in (F.lit(k), F.lit(float(v)))])
    return F.coalesce(lookup[F.col("_vehicle_type")], F.lit(float(default)))


def _blame_legs(df: DataFrame, prefix: str, candidate: Column, in_bad: Column, out_bad: Column, has_prev: Column) -> DataFrame:
    """Decide which point of an implausible leg is wrong; adds `<prefix>_blame_in/_out` booleans.

    A leg joins a candidate to its previous (in) or next (out) candidate.
    - both legs bad: the point itself is the outlier (blamed through both legs);
    - one bad leg: the arrival point is blamed -- unless the previous point is already an outlier
      (its return leg is not a second error), or the previous point is the first of the series
      and the arrival is consistent with its own successor, in which case the first point is
      blamed instead.
    Known limit: a cluster of several consecutive displaced points gets its first point and the
    point after the cluster flagged, not the whole cluster.
    """
    ib, ob = f"{prefix}_ib", f"{prefix}_ob"
    df = df.withColumns({ib: candidate & F.coalesce(in_bad, F.lit(False)), ob: candidate & F.coalesce(out_bad, F.lit(False))})
    state = f"{prefix}_state"
    df = df.withColumn(
        state,
        F.when(
            candidate,
            F.struct(
                (F.col(ib) & F.col(ob)).alias("outlier"),
                has_prev.alias("has_prev"),
                F.col(ob).alias("out_bad"),
            ),
        ),
    )
    prev_state, next_state = F.col(f"{prefix}_prev_state"), F.col(f"{prefix}_next_state")
    df = df.withColumns({f"{prefix}_prev_state": _prev(state), f"{prefix}_next_state": _next(state)})
    prev_is_outlier = F.coalesce(prev_state["outlier"], F.lit(False))
    prev_is_first = ~F.coalesce(prev_state["has_prev"], F.lit(False))
    next_out_bad = F.coalesce(next_state["out_bad"], F.lit(False))
    blame_in = F.col(ib) & (F.col(ob) | (~prev_is_outlier & ~prev_is_first))
    blame_out = F.col(ob) & (F.col(ib) | (~has_prev & ~next_out_bad))
    return df.withColumns({f"{prefix}_blame_in": blame_in, f"{prefix}_blame_out": blame_out}).drop(ib, ob, state, f"{prefix}_prev_state", f"{prefix}_next_state")


def flag_speed_outliers(points: DataFrame, settings: CleanConfig) -> DataFrame:
    """Rule 4: `speed_spike` (teleport and return) and `impossible_speed` between usable positions.

    Implied speed = haversine distance / time between consecutive candidate positions (km/h).
    Candidates: no rule 1-3/6 flag. A leg is impossible when it is longer than `min_jump_m` and
    faster than the vehicle's threshold max(physical cap of its type, alpha x p95 of its moving
    implied speed) -- both caps must be exceeded (MovingPandas' OutlierCleaner uses alpha x a
    quantile; the physical floor keeps a mostly parked vehicle's low p95 from flagging a drive,
    the adaptive cap keeps a fast vehicle's real speeds from being flagged). The p95 is taken
    over the vehicle's legs faster than `moving_speed_kmh` and not above the physical cap.

    Spike: farther than `spike_min_distance_m` from both neighbours, neighbours closer to each
    other than to the point, and either both legs impossible or the neighbours within
    `spike_return_ratio` x the shorter leg of each other with one leg impossible (the other may
    be a long parked gap). A long gap whose implied speed is plausible is never flagged.

    Parameters
    ----------
    points : DataFrame
        Rows in cleaning (output of `prepare` and the earlier rules of `clean_telematics`) up to `flag_duplicates`;
        reads lat, lon (degrees), `_t` (epoch s), `_vehicle_type`.
    settings : CleanConfig
        Thresholds: min_jump_m, spike_min_distance_m (m), moving_speed_kmh (km/h),
        adaptive_speed_alpha, adaptive_speed_quantile, spike_return_ratio.

    Returns
    -------
    DataFrame
        `points` with the two flag bits set in `quality_flags`, plus `_v_in` (implied speed of the
        incoming leg, km/h) for `flag_soc_anomalies`, which drops it.
    """
    s = settings
    candidate = ~_has("invalid_coord", "zero_coord", "outside_area", *ROW_FLAGS)
    # A receiver that repeats its last fix (1 Hz loggers whose GPS updates every few seconds)
    # makes the next real fix look like a jump made in one second. A leg's time therefore runs
    # from when the earlier position was first reported (`fix`), not from its last repeat.
    df = points.withColumn("_pos0", F.when(candidate, F.struct("lat", "lon")))
    df = df.withColumn("_pp0", _prev("_pos0"))
    new_fix = candidate & (F.col("_pp0").isNull() | (F.col("_pp0")["lat"] != F.col("lat")) | (F.col("_pp0")["lon"] != F.col("lon")))
    running = _events().rowsBetween(Window.unboundedPreceding, Window.currentRow)
    df = df.withColumn("_fix", F.last(F.when(new_fix, F.col("_t")), ignorenulls=True).over(running))
    point = F.struct(F.col("_t").alias("t"), F.col("_fix").alias("fix"), F.col("lat").alias("lat"), F.col("lon").alias("lon"))
    df = df.withColumn("_pos", F.when(candidate, point))
    df = df.withColumns({"_pp": _prev("_pos"), "_pn": _next("_pos")})
    pp, pn = F.col("_pp"), F.col("_pn")
    df = df.withColumns(
        {
            "_d_in": haversine_m(pp["lat"], pp["lon"], F.col("lat"), F.col("lon")),
            "_d_out": haversine_m(F.col("lat"), F.col("lon"), pn["lat"], pn["lon"]),
            "_d_pn": haversine_m(pp["lat"], pp["lon"], pn["lat"], pn["lon"]),
        }
    )
    df = df.withColumns(
        {
            "_v_in": _speed_kmh(F.col("_d_in"), F.col("_t") - pp["fix"]),
            "_v_out": _speed_kmh(F.col("_d_out"), pn["t"] - F.col("_fix")),
        }
    )
    # The quantile ignores legs above the physical cap, so a few spikes in a short series cannot
    # inflate the adaptive cap of their own vehicle.
    cap = speed_cap_kmh(s)
    moving_leg = F.when(candidate & (F.col("_v_in") > s.moving_speed_kmh) & (F.col("_v_in") <= cap), F.col("_v_in"))
    p_moving = F.percentile_approx(moving_leg, s.adaptive_speed_quantile).over(Window.partitionBy("vehicle_id"))
    df = df.withColumn("_vmax", F.greatest(cap, F.lit(s.adaptive_speed_alpha) * p_moving))

    vmax = F.col("_vmax")
    leg_in_bad = (F.col("_d_in") > s.min_jump_m) & (F.col("_v_in") > vmax)
    leg_out_bad = (F.col("_d_out") > s.min_jump_m) & (F.col("_v_out") > vmax)
    shorter = F.least(F.col("_d_in"), F.col("_d_out"))
    far_from_both = (F.col("_d_in") > s.spike_min_distance_m) & (F.col("_d_out") > s.spike_min_distance_m)
    neighbours_closer = F.col("_d_pn") < shorter
    clear_return = F.col("_d_pn") < F.lit(s.spike_return_ratio) * shorter
    spike = candidate & far_from_both & neighbours_closer & ((leg_in_bad & leg_out_bad) | (clear_return & (leg_in_bad | leg_out_bad)))
    df = df.transform(_add_flags, speed_spike=spike)

    # Second pass without the spikes: what is left are jumps; blame one point per bad leg.
    candidate2 = candidate & ~_has("speed_spike")
    df = df.withColumn("_pos2", F.when(candidate2, point))
    df = df.withColumns({"_pp2": _prev("_pos2"), "_pn2": _next("_pos2")})
    pp2, pn2 = F.col("_pp2"), F.col("_pn2")
    d_in2 = haversine_m(pp2["lat"], pp2["lon"], F.col("lat"), F.col("lon"))
    d_out2 = haversine_m(F.col("lat"), F.col("lon"), pn2["lat"], pn2["lon"])
    in_bad = (d_in2 > s.min_jump_m) & (_speed_kmh(d_in2, F.col("_t") - pp2["fix"]) > vmax)
    out_bad = (d_out2 > s.min_jump_m) & (_speed_kmh(d_out2, pn2["t"] - F.col("_fix")) > vmax)
    df = df.transform(_blame_legs, "_spd", candidate2, in_bad, out_bad, pp2.isNotNull())
    df = df.transform(_add_flags, impossible_speed=F.col("_spd_blame_in") | F.col("_spd_blame_out"))
    return df.drop(
        "_pos0", "_pp0", "_fix", "_pos", "_pp", "_pn", "_d_in", "_d_out", "_d_pn", "_v_out", "_vmax",
        "_pos2", "_pp2", "_pn2", "_spd_blame_in", "_spd_blame_out",
    )  # fmt: skip


# --------------------------------------------------------------------------------------------
# Rule 5 (neighbour part)
# --------------------------------------------------------------------------------------------
def flag_soc_anomalies(points: DataFrame, settings: CleanConfig) -> DataFrame:
    """Rule 5: `soc_spike`, then `soc_rate` and `soc_rise_while_driving` between usable SOC values.

    Candidates: SOC in 0-100 and no rule 3/6 flag. Spike: the value jumps at least
    `soc_spike_min_pct` points away from both neighbours in opposite directions, the neighbours
    agree within `soc_spike_return_ratio` x the smaller jump and both legs are at most
    `soc_spike_max_gap_s` long (a real charge followed by a drive takes longer than that). When
    all three samples are parked at one place (not moving, neighbours within
    `soc_spike_parked_radius_m`), the legs may be up to `soc_spike_parked_max_gap_s` long: a
    device that reports every few hours while parked shows a spike between two heartbeats, and a
    parked vehicle cannot give back a charge without moving.

    Rate (percent points over dt seconds): a rise may not exceed
    max_charger_kw / battery_kwh x 100 / 3600 x dt + soc_tolerance_pct, a fall may not exceed
    max_discharge_c_rate x 100 / 3600 x dt + soc_tolerance_pct. A rise of more than
    `soc_rise_driving_tolerance_pct` between two samples that are both driving (reported speed,
    else implied speed, above `moving_speed_kmh`) is `soc_rise_while_driving`.

    Parameters
    ----------
    points : DataFrame
        Rows in cleaning (output of `prepare` and the earlier rules of `clean_telematics`) up to
        `flag_speed_outliers`; reads soc_pct (%), speed_kmh, `_v_in` (km/h), lat, lon, `_t` (epoch s),
        `_battery_kwh` (kWh).
    settings : CleanConfig
        The `soc_*` thresholds, max_charger_kw (kW), max_discharge_c_rate (1/h) and moving_speed_kmh.

    Returns
    -------
    DataFrame
        `points` with the three SOC flag bits set in `quality_flags`; `_v_in` dropped.
    """
    s = settings
    candidate = ~_has("soc_out_of_range", *ROW_FLAGS) & _finite(F.col("soc_pct"))
    speed = F.when(_finite(F.col("speed_kmh")), F.col("speed_kmh")).otherwise(F.col("_v_in"))
    sample = F.struct(
        F.col("_t").alias("t"),
        F.col("soc_pct").alias("soc"),
        F.coalesce(speed > s.moving_speed_kmh, F.lit(False)).alias("moving"),
        F.col("lat").alias("lat"),
        F.col("lon").alias("lon"),
    )
    df = points.withColumn("_soc", F.when(candidate, sample))
    df = df.withColumns({"_sp": _prev("_soc"), "_sn": _next("_soc")})
    sp, sn, soc = F.col("_sp"), F.col("_sn"), F.col("soc_pct")
    jump_in, jump_out = soc - sp["soc"], sn["soc"] - soc
    smaller = F.least(F.abs(jump_in), F.abs(jump_out))
    here = F.col("_soc")
    parked_here = (
        ~here["moving"] & ~sp["moving"] & ~sn["moving"]
        & (haversine_m(sp["lat"], sp["lon"], here["lat"], here["lon"]) <= s.soc_spike_parked_radius_m)
        & (haversine_m(here["lat"], here["lon"], sn["lat"], sn["lon"]) <= s.soc_spike_parked_radius_m)
    )  # fmt: skip
    max_gap = F.when(F.coalesce(parked_here, F.lit(False)), F.lit(s.soc_spike_parked_max_gap_s)).otherwise(F.lit(s.soc_spike_max_gap_s))
    spike = (
        candidate
        & (F.abs(jump_in) >= s.soc_spike_min_pct)
        & (F.abs(jump_out) >= s.soc_spike_min_pct)
        & (F.signum(jump_in) != F.signum(jump_out))
        & (F.abs(sn["soc"] - sp["soc"]) <= F.lit(s.soc_spike_return_ratio) * smaller)
        & (F.greatest(F.col("_t") - sp["t"], sn["t"] - F.col("_t")) <= max_gap)
    )
    df = df.transform(_add_flags, soc_spike=spike)

    candidate2 = candidate & ~_has("soc_spike")
    df = df.withColumn("_soc2", F.when(candidate2, sample))
    df = df.withColumns({"_sp2": _prev("_soc2"), "_sn2": _next("_soc2")})
    sp2, sn2 = F.col("_sp2"), F.col("_sn2")
    rise_pct_per_s = F.lit(s.max_charger_kw) / F.col("_battery_kwh") * 100 / 3600
    fall_pct_per_s = F.lit(s.max_discharge_c_rate * 100 / 3600)

    def rate_bad(delta: Column, dt: Column) -> Column:
        """Whether a SOC change is faster than charging or discharging allows.

        Parameters
        ----------
        delta : Column
            SOC change across the leg (percent points, later minus earlier).
        dt : Column
            Duration of the leg (s).

        Returns
        -------
        Column
            Boolean: the rise or the fall exceeds its limit plus soc_tolerance_pct.
        """
        too_fast_up = delta > rise_pct_per_s * dt + s.soc_tolerance_pct
        too_fast_down = -delta > fall_pct_per_s * dt + s.soc_tolerance_pct
        return too_fast_up | too_fast_down

    d_in, d_out = soc - sp2["soc"], sn2["soc"] - soc
    here_moving = F.col("_soc2")["moving"]
    df = df.withColumns(
        {
            "_rate_in": rate_bad(d_in, F.col("_t") - sp2["t"]),
            "_rate_out": rate_bad(d_out, sn2["t"] - F.col("_t")),
            "_rise_in": (d_in > s.soc_rise_driving_tolerance_pct) & sp2["moving"] & here_moving,
            "_rise_out": (d_out > s.soc_rise_driving_tolerance_pct) & here_moving & sn2["moving"],
        }
    )
    c = {k: F.coalesce(F.col(k), F.lit(False)) for k in ("_rate_in", "_rate_out", "_rise_in", "_rise_out")}
    df = df.transform(
        _blame_legs,
        "_socb",
        candidate2,
        c["_rate_in"] | c["_rise_in"],
        c["_rate_out"] | c["_rise_out"],
        sp2.isNotNull(),
    )
    by_in, by_out = F.col("_socb_blame_in"), F.col("_socb_blame_out")
    df = df.transform(
        _add_flags,
        soc_rate=(by_in & c["_rate_in"]) | (by_out & c["_rate_out"]),
        soc_rise_while_driving=(by_in & c["_rise_in"]) | (by_out & c["_rise_out"]),
    )
    return df.drop(
        "_soc", "_sp", "_sn", "_soc2", "_sp2", "_sn2", "_rate_in", "_rate_out", "_rise_in", "_rise_out",
        "_socb_blame_in", "_socb_blame_out", "_v_in",
    )  # fmt: skip


# --------------------------------------------------------------------------------------------
# Repair
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RepairGroup:
    """Fields repaired together from the same usable rows, and the name of their imputed flag.

    Attributes
    ----------
    fields : tuple of str
        Columns repaired together (e.g. lat and lon).
    good : Column
        Boolean: rows whose values may be used (and are kept as they are).
    imputed : str
        Name of the boolean column marking repaired rows.
    """

    fields: tuple[str, ...]
    good: Column  # rows whose values may be used (and are kept as they are)
    imputed: str


def interpolate_groups(df: DataFrame, groups: Iterable[RepairGroup], settings: CleanConfig) -> DataFrame:
    """Time-based repair of each group's fields on rows where its `good` is false.

    Linear in time between the previous and next good rows when they are at most
    `repair_max_gap_s` apart; otherwise the nearer of the two if within `repair_fill_limit_s`
    (forward fill wins a tie); otherwise null. The group's `imputed` column is true where a value
    was found for a row that was not good. Rows with equal timestamps interpolate to the earlier
    row's value. Latitude/longitude are interpolated linearly in degrees (fine for the
    minutes-long gaps allowed; not across the antimeridian). All groups share one window pass.

    Parameters
    ----------
    df : DataFrame
        Rows in cleaning with `_t` (epoch s) and the `_events()` columns (vehicle_id, ts, `_suspect`, `_tie`).
    groups : iterable of RepairGroup
        The groups to repair; their fields must be numeric.
    settings : CleanConfig
        `repair_max_gap_s` and `repair_fill_limit_s` (s).

    Returns
    -------
    DataFrame
        `df` with each group's fields repaired (null where no value was found) and its `imputed`
        boolean column added.
    """
    s = settings
    groups = list(groups)
    t = F.col("_t")
    names = {g.imputed: (f"_{g.imputed}_g", f"_{g.imputed}_p", f"_{g.imputed}_n") for g in groups}
    df = df.withColumns({names[g.imputed][0]: F.when(g.good, F.struct(t.alias("t"), *[F.col(f).alias(f) for f in g.fields])) for g in groups})
    df = df.withColumns({c: fn(names[g.imputed][0]) for g in groups for c, fn in ((names[g.imputed][1], _prev), (names[g.imputed][2], _next))})
    repaired: dict[str, Column] = {}
    for g in groups:
        _, p, n = names[g.imputed]
        prev, nxt = F.col(p), F.col(n)
        gap = nxt["t"] - prev["t"]
        since_prev, until_next = t - prev["t"], nxt["t"] - t
        interpolate = prev.isNotNull() & nxt.isNotNull() & (gap <= s.repair_max_gap_s)
        prev_ok = prev.isNotNull() & (since_prev <= s.repair_fill_limit_s)
        next_ok = nxt.isNotNull() & (until_next <= s.repair_fill_limit_s)
        use_prev = ~interpolate & prev_ok & (~next_ok | (since_prev <= until_next))
        use_next = ~interpolate & next_ok & ~use_prev
        fraction = F.when(gap > 0, since_prev / gap).otherwise(F.lit(0.0))
        repaired[g.imputed] = ~g.good & (interpolate | use_prev | use_next)
        for f in g.fields:
            value = F.when(interpolate, prev[f] + (nxt[f] - prev[f]) * fraction).when(use_prev, prev[f]).when(use_next, nxt[f])
            repaired[f] = F.when(g.good, F.col(f)).otherwise(value)
    return df.withColumns(repaired).drop(*[c for triple in names.values() for c in triple])


def repair_values(points: DataFrame, settings: CleanConfig) -> DataFrame:
    """Repair flagged or missing values per vehicle in time order (see `interpolate_groups`).

    - position (lat, lon -> `position_imputed`): rows with a position flag or a row flag;
    - SOC (`soc_imputed`): rows with a SOC flag or a row flag, or a null SOC;
    - speed and odometer (`speed_imputed`, `odometer_imputed`), each on its own: null, NaN or
      negative values (generator type `null_field`) and rows with a row flag.
    Rows with a row flag (duplicate, bad timestamp) are never anybody's neighbour; a duplicate
    takes the values of the kept row with the same timestamp.

    Parameters
    ----------
    points : DataFrame
        Rows in cleaning (output of `prepare` and the earlier rules of `clean_telematics`), all rules applied.
    settings : CleanConfig
        `repair_max_gap_s` and `repair_fill_limit_s` (s).

    Returns
    -------
    DataFrame
        `points` with lat/lon, soc_pct, speed_kmh and odometer_km repaired and the boolean
        position_imputed, soc_imputed, speed_imputed and odometer_imputed columns.
    """
    row_ok = ~_has(*ROW_FLAGS)

    def present(c: str) -> Column:
        """Whether a reading is usable as it is.

        Parameters
        ----------
        c : str
            Column name.

        Returns
        -------
        Column
            Boolean: finite and not negative.
        """
        return _finite(F.col(c)) & (F.col(c) >= 0)

    groups = [
        RepairGroup(("lat", "lon"), row_ok & ~_has(*POSITION_FLAGS), "position_imputed"),
        RepairGroup(("soc_pct",), row_ok & ~_has(*SOC_FLAGS) & _finite(F.col("soc_pct")), "soc_imputed"),
        RepairGroup(("speed_kmh",), row_ok & present("speed_kmh"), "speed_imputed"),
        RepairGroup(("odometer_km",), row_ok & present("odometer_km"), "odometer_imputed"),
    ]
    return interpolate_groups(points, groups, settings)


# --------------------------------------------------------------------------------------------
# Local time and output shape
# --------------------------------------------------------------------------------------------
def add_local_time(points: DataFrame, settings: CleanConfig) -> DataFrame:
    """`ts_local` (wall clock of the vehicle's timezone, DST-aware) and `local_date`.

    Parameters
    ----------
    points : DataFrame
        Rows in cleaning with ts (UTC) and timezone (IANA zone from `prepare`).
    settings : CleanConfig
        Not read (the zone is already in `timezone`); part of the rules' common signature.

    Returns
    -------
    DataFrame
        `points` with `ts_local` (local wall-clock time as a timestamp, not a UTC instant) and `local_date`.
    """
    local = F.from_utc_timestamp(F.col("ts"), F.col("timezone"))
    return points.withColumns({"ts_local": local, "local_date": F.to_date(local)})


def finalize(points: DataFrame) -> DataFrame:
    """Reasons, usability and the silver column order; bronze lineage columns pass through.

    Parameters
    ----------
    points : DataFrame
        Rows after every rule, the repair and `add_local_time`.

    Returns
    -------
    DataFrame
        silver.telematics_clean: CANONICAL, `<field>_orig`, the four `*_imputed` flags,
        quality_flags, quality_reasons (flag names), is_usable, timezone, ts_local, local_date,
        the lineage columns, then `date` (UTC date of ts when bronze has none); helper `_*` columns dropped.
    """
    reasons = F.filter(
        F.array(*[F.when(_has(name), F.lit(name)) for name in FLAGS]),
        lambda r: r.isNotNull(),
    )
    df = points.withColumns({"quality_reasons": reasons, "is_usable": F.col("quality_flags").bitwiseAND(F.lit(BLOCKING_MASK)) == 0})
    if "date" not in df.columns:
        df = df.withColumn("date", F.to_date("ts"))
    silver = [
        *CANONICAL,
        *[f"{c}_orig" for c in REPAIRED],
        "position_imputed",
        "soc_imputed",
        "speed_imputed",
        "odometer_imputed",
        "quality_flags",
        "quality_reasons",
        "is_usable",
        "timezone",
        "ts_local",
        "local_date",
    ]
    lineage = [c for c in df.columns if c not in silver and not c.startswith("_") and c != "date"]
    return df.select(*silver, *lineage, "date")


# --------------------------------------------------------------------------------------------
# gold.quality_daily and the run summary
# --------------------------------------------------------------------------------------------
def quality_daily(silver: DataFrame) -> DataFrame:
    """Per vehicle and local day: rows, usable share, count per rule, imputations, coverage.

    `coverage_hours` = distinct local clock hours with any row; `usable_hours` = with a usable row.

    Parameters
    ----------
    silver : DataFrame
        silver.telematics_clean rows.

    Returns
    -------
    DataFrame
        gold.quality_daily, one row per vehicle_id and local_date: rows, usable_rows, `n_<flag>`
        per FLAGS, n_position_imputed, n_soc_imputed, coverage_hours, usable_hours (hours),
        first_ts, last_ts (UTC), share_usable (fraction 0-1, 6 decimals).
    """
    hour = F.date_trunc("hour", F.col("ts_local"))
    per_rule = [F.sum((F.col("quality_flags").bitwiseAND(F.lit(bit)) != 0).cast("int")).alias(f"n_{name}") for name, bit in FLAGS.items()]
    return (
        silver.groupBy("vehicle_id", "local_date")
        .agg(
            F.count(F.lit(1)).alias("rows"),
            F.sum(F.col("is_usable").cast("int")).alias("usable_rows"),
            *per_rule,
            F.sum(F.col("position_imputed").cast("int")).alias("n_position_imputed"),
            F.sum(F.col("soc_imputed").cast("int")).alias("n_soc_imputed"),
            F.countDistinct(hour).alias("coverage_hours"),
            F.countDistinct(F.when(F.col("is_usable"), hour)).alias("usable_hours"),
            F.min("ts").alias("first_ts"),
            F.max("ts").alias("last_ts"),
        )
        .withColumn("share_usable", F.round(F.col("usable_rows") / F.col("rows"), 6))
    )


def rule_summary(daily: DataFrame) -> DataFrame:
    """One row per rule over the whole run (from gold.quality_daily): rule, bit, rows_flagged, share.

    Parameters
    ----------
    daily : DataFrame
        gold.quality_daily (rows and the `n_<flag>` columns).

    Returns
    -------
    DataFrame
        One row per flag of FLAGS, in bit order: rule, bit, rows_flagged, share (fraction 0-1 of all rows).
    """
    totals = daily.agg(F.sum("rows").alias("rows"), *[F.sum(f"n_{n}").alias(n) for n in FLAGS])
    per_rule = [
        F.struct(
            F.lit(name).alias("rule"),
            F.lit(bit).alias("bit"),
            F.coalesce(F.col(name), F.lit(0)).cast("long").alias("rows_flagged"),
            F.coalesce(F.col(name) / F.col("rows"), F.lit(0.0)).alias("share"),
        )
        for name, bit in FLAGS.items()
    ]
    return totals.select(F.explode(F.array(*per_rule)).alias("r")).select("r.*")


def format_summary(summary_rows: list, rows_in: int, usable: int) -> str:
    """The per-rule table the job prints.

    Parameters
    ----------
    summary_rows : list
        Collected `rule_summary` rows (rule, bit, rows_flagged, share).
    rows_in : int
        Rows cleaned.
    usable : int
        Usable rows among them.

    Returns
    -------
    str
        Fixed-width text table, shares as %, with a closing line for the usable rows.
    """
    lines = [f"{'rule':<24}{'bit':>6}{'rows':>12}{'share':>10}", "-" * 52]
    for r in summary_rows:
        lines.append(f"{r['rule']:<24}{r['bit']:>6}{r['rows_flagged']:>12,}{r['share']:>10.4%}")
    lines.append("-" * 52)
    share = usable / rows_in if rows_in else 0.0
    lines.append(f"{'usable':<24}{'':>6}{usable:>12,}{share:>10.4%}  of {rows_in:,} rows")
    return "\n".join(lines)

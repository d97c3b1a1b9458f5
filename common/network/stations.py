"""Charging-station transforms: station attributes, network KPIs, fleet <-> station matching, coverage gaps.

Pure DataFrame -> DataFrame functions used by `jobs/stations.py` (gold.station_kpis,
gold.station_fleet_usage, gold.expansion_gaps) and `jobs/reliability.py` (gold.failed_charge_attempts).
Nothing here reads or writes storage.

Inputs are the canonical bronze.stations columns (common.io.schemas.STATIONS; AFDC semantics:
`status` E open / P planned / T temporarily unavailable, `access` public | private, free-text
`access_hours`, port counts per level, space-separated `connector_types`). Distances are metres on
a sphere (Sedona ST_DistanceSphere, radius 6,371,008 m).
"""

from __future__ import annotations

from functools import reduce

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from common.core.config import StationsConfig
from common.io.spark import with_sedona

# --------------------------------------------------------------------------------------------
# Opening hours ("Access Days Time" in AFDC exports)
# --------------------------------------------------------------------------------------------
ACCESS_24_7, ACCESS_LIMITED, ACCESS_UNKNOWN = "24_7", "limited", "unknown"

# Free text that starts with a round-the-clock statement: "24 hours daily", "24 Hours Daily; pay lot",
# "24/7", "24x7", "Open 24 hours", "24 hrs". What follows a ';' are access restrictions ("for Tesla
# use only", "permit required 6am to 9pm") -- they limit who may charge, not when.
_TEXT_24_7 = r"(?i)^\s*(open\s+)?(24\s*-?\s*(hours?|hrs?)\b|24\s*/\s*7\b|24\s*x\s*7\b)"
# AFDC's structured weekly form: "Mon 12:00am - 12:00am; Tue ...; Sun 12:00am - 11:59pm". 24/7 when
# all seven days run from midnight to midnight (or 11:59pm).
_DAY_ALL_DAY = r"(?i)\b(Mon|Tue|Wed|Thu|Fri|Sat|Sun)\s+12:00\s*am\s*-\s*(12:00\s*am|11:59\s*pm)"
_DAY_ANY = r"(?i)\b(Mon|Tue|Wed|Thu|Fri|Sat|Sun)\s+\d{1,2}:\d{2}\s*[ap]m\s*-"
# Texts that give no hours at all.
_TEXT_UNKNOWN = r"(?i)^\s*(contact|call|check|see|unknown|n/?a\b|varies)"


def access_hours_class(text: Column | str) -> Column:
    """'24_7' | 'limited' | 'unknown' for a free-text opening-hours value (null/blank -> 'unknown').

    Only the hours are judged: "24 hours daily; for customer use only" is 24/7 (a restriction on
    who, not when). Seasonal or business-hours texts are 'limited'.

    Parameters
    ----------
    text : Column or str
        The opening hours (bronze.stations.access_hours), or its column name.

    Returns
    -------
    Column
        String column.
    """
    t = F.col(text) if isinstance(text, str) else text
    trimmed = F.trim(t)
    all_days = F.regexp_count(trimmed, F.lit(_DAY_ALL_DAY))
    any_days = F.regexp_count(trimmed, F.lit(_DAY_ANY))
    return (
        F.when(t.isNull() | (trimmed == ""), F.lit(ACCESS_UNKNOWN))
        .when(trimmed.rlike(_TEXT_24_7), F.lit(ACCESS_24_7))
        .when((all_days >= 7) & (all_days == any_days), F.lit(ACCESS_24_7))
        .when(trimmed.rlike(_TEXT_UNKNOWN), F.lit(ACCESS_UNKNOWN))
        .otherwise(F.lit(ACCESS_LIMITED))
    )


def connector_diversity(connector_types: Column | str) -> Column:
    """Number of distinct connector standards in a space-separated list (null when none is listed).

    Parameters
    ----------
    connector_types : Column or str
        The list (bronze.stations.connector_types; commas and semicolons also separate), or its column name.

    Returns
    -------
    Column
        Integer column.
    """
    c = F.col(connector_types) if isinstance(connector_types, str) else connector_types
    tokens = F.array_distinct(F.filter(F.split(F.upper(F.trim(c)), r"[\s,;]+"), lambda x: x != ""))
    return F.when(F.size(tokens) > 0, F.size(tokens)).cast("int")


# --------------------------------------------------------------------------------------------
# Station attributes
# --------------------------------------------------------------------------------------------
def latest_stations(bronze_stations: DataFrame) -> DataFrame:
    """One row per station_id: the most recently ingested version (bronze keeps every change).

    Parameters
    ----------
    bronze_stations : DataFrame
        bronze.stations (ingested_at, source_file order the versions when present).

    Returns
    -------
    DataFrame
        One row per station_id, in the input's columns.
    """
    order = [F.col(c).desc_nulls_last() for c in ("ingested_at", "source_file") if c in bronze_stations.columns]
    if not order:
        return bronze_stations.dropDuplicates(["station_id"])
    w = Window.partitionBy("station_id").orderBy(*order)
    return bronze_stations.withColumn("_rn", F.row_number().over(w)).where("_rn = 1").drop("_rn")


def station_attributes(stations: DataFrame, params: StationsConfig) -> DataFrame:
    """Canonical stations + is_operational, is_public, has_dc_fast, access_hours_class, connector_diversity.

    Port counts: blank = 0 (AFDC leaves the column empty when a station has no port of that level).

    Parameters
    ----------
    stations : DataFrame
        Canonical bronze.stations rows (`latest_stations`).
    params : StationsConfig
        ``operational_status_codes`` and ``public_access_values``.

    Returns
    -------
    DataFrame
        One row per station: ``stations`` + level2_ports, dc_fast_ports, is_operational, is_public,
        is_private, has_dc_fast, access_hours_class, connector_diversity.
    """
    public = [v.lower() for v in params.public_access_values]
    return (
        stations.withColumn("level2_ports", F.coalesce(F.col("level2_count"), F.lit(0)))
        .withColumn("dc_fast_ports", F.coalesce(F.col("dc_fast_count"), F.lit(0)))
        .withColumn("is_operational", F.coalesce(F.col("status").isin(*params.operational_status_codes), F.lit(False)))
        .withColumn("is_public", F.coalesce(F.lower(F.trim("access")).isin(*public), F.lit(False)))
        .withColumn("is_private", F.coalesce(F.col("access").isNotNull() & ~F.col("is_public"), F.lit(False)))
        .withColumn("has_dc_fast", F.col("dc_fast_ports") > 0)
        .withColumn("access_hours_class", access_hours_class("access_hours"))
        .withColumn("connector_diversity", connector_diversity("connector_types"))
    )


# --------------------------------------------------------------------------------------------
# KPIs per network, region and overall
# --------------------------------------------------------------------------------------------
KPI_LEVELS = ("overall", "region", "network")


def _share(num: Column, den: Column) -> Column:
    return F.when(den > 0, num / den)


def station_kpis(attrs: DataFrame) -> DataFrame:
    """KPIs of `station_attributes` rows for `level` overall / region (state) / network.

    Shares are fractions 0-1 of all stations in the group:
    operational_rate   open stations (status in operational_status_codes);
    dc_fast_share      stations with at least one DC-fast port (DC-fast availability);
    dc_fast_port_share DC-fast ports / (Level 2 + DC-fast ports);
    access_24_7_rate   stations whose opening hours parse as 24/7 (unknown hours count as not 24/7;
                       `access_hours_unknown` says how many had none);
    public_share       public stations; public_private_ratio = public / private stations (null
                       without private ones);
    avg_connector_diversity  mean number of distinct connector standards, over stations listing any.
    A null state or network is grouped as 'unknown'.

    Parameters
    ----------
    attrs : DataFrame
        `station_attributes` rows.

    Returns
    -------
    DataFrame
        One row per (level, group): station and port counts and the shares above (gold.station_kpis).
    """
    groups = {
        "overall": F.lit("all"),
        "region": F.coalesce(F.col("state"), F.lit("unknown")),
        "network": F.coalesce(F.col("network"), F.lit("unknown")),
    }
    n = F.count(F.lit(1))

    def agg(level: str) -> DataFrame:
        """Station and port counts of ``attrs`` per group of one level.

        Parameters
        ----------
        level : str
            One of KPI_LEVELS.

        Returns
        -------
        DataFrame
            One row per group: level, group and the counts the KPIs divide.
        """
        return attrs.groupBy(F.lit(level).alias("level"), groups[level].alias("group")).agg(
            n.alias("stations"),
            F.sum(F.col("is_operational").cast("int")).alias("operational_stations"),
            F.sum(F.col("has_dc_fast").cast("int")).alias("dc_fast_stations"),
            F.sum("level2_ports").cast("long").alias("level2_ports"),
            F.sum("dc_fast_ports").cast("long").alias("dc_fast_ports"),
            F.sum((F.col("access_hours_class") == ACCESS_24_7).cast("int")).alias("access_24_7_stations"),
            F.sum((F.col("access_hours_class") == ACCESS_UNKNOWN).cast("int")).alias("access_hours_unknown"),
            F.sum(F.col("is_public").cast("int")).alias("public_stations"),
            F.sum(F.col("is_private").cast("int")).alias("private_stations"),
            F.avg("connector_diversity").alias("avg_connector_diversity"),
        )

    out = reduce(DataFrame.unionByName, [agg(level) for level in KPI_LEVELS])
    return out.select(
        "level",
        "group",
        F.col("stations").cast("long").alias("stations"),
        F.col("operational_stations").cast("long").alias("operational_stations"),
        _share(F.col("operational_stations"), F.col("stations")).alias("operational_rate"),
        F.col("dc_fast_stations").cast("long").alias("dc_fast_stations"),
        _share(F.col("dc_fast_stations"), F.col("stations")).alias("dc_fast_share"),
        "level2_ports",
        "dc_fast_ports",
        _share(F.col("dc_fast_ports"), F.col("level2_ports") + F.col("dc_fast_ports")).alias("dc_fast_port_share"),
        F.col("access_24_7_stations").cast("long").alias("access_24_7_stations"),
        F.col("access_hours_unknown").cast("long").alias("access_hours_unknown"),
        _share(F.col("access_24_7_stations"), F.col("stations")).alias("access_24_7_rate"),
        F.col("public_stations").cast("long").alias("public_stations"),
        F.col("private_stations").cast("long").alias("private_stations"),
        _share(F.col("public_stations"), F.col("stations")).alias("public_share"),
        _share(F.col("public_stations"), F.col("private_stations")).alias("public_private_ratio"),
        "avg_connector_diversity",
    )


def overall_kpi_note(kpis: DataFrame) -> str | None:
    """One line of the `overall` row of gold.station_kpis (shares in percent); None without it.

    Parameters
    ----------
    kpis : DataFrame
        `station_kpis` rows (fractions 0-1).

    Returns
    -------
    str or None
        Stations, operational, DC-fast, 24/7 and public shares, mean connector diversity.
    """
    overall = kpis.where("level = 'overall'").first()
    if not overall:
        return None
    return (
        f"{overall.stations} stations: operational {overall.operational_rate:.1%}, DC fast {overall.dc_fast_share:.1%}, "
        f"24/7 {overall.access_24_7_rate:.1%}, public {overall.public_share:.1%}, "
        f"connector diversity {overall.avg_connector_diversity or 0:.2f}"
    )


def kpi_summary_table(kpis: DataFrame, levels: tuple[str, ...] = ("overall", "region")) -> str:
    """Text table of `station_kpis` rows for the given levels (for logs and tests).

    Parameters
    ----------
    kpis : DataFrame
        `station_kpis` rows (gold.station_kpis; shares as fractions 0-1).
    levels : tuple of str
        Levels to show (of `KPI_LEVELS`).

    Returns
    -------
    str
        A header, a rule and one line per (level, group): stations, operational, DC-fast, 24/7
        and public shares (fractions 0-1), public/private ratio, mean connector diversity.
    """
    rows = kpis.where(F.col("level").isin(*levels)).orderBy("level", "group").collect()  # bounded: overall + per-region KPI rows
    head = f"{'level':<8} {'group':<14} {'stations':>8} {'oper.':>7} {'DCfast':>7} {'24/7':>7} {'public':>7} {'pub/priv':>8} {'conn.div':>8}"
    lines = [head, "-" * len(head)]
    for r in rows:
        ratio = "-" if r.public_private_ratio is None else f"{r.public_private_ratio:.2f}"
        lines.append(
            f"{r.level:<8} {r.group[:14]:<14} {r.stations:>8} {r.operational_rate:>7.3f} {r.dc_fast_share:>7.3f} "
            f"{r.access_24_7_rate:>7.3f} {r.public_share:>7.3f} {ratio:>8} {r.avg_connector_diversity or 0:>8.3f}"
        )
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Spatial matching (Sedona)
# --------------------------------------------------------------------------------------------
def nearest_within(
    left: DataFrame,
    right: DataFrame,
    radius_m: float,
    left_key: str,
    right_prefix: str,
    how: str = "inner",
) -> DataFrame:
    """Each `left` row (columns lat, lon, key `left_key`) with its nearest `right` row within radius_m.

    Uses Sedona's distance join: `ST_DistanceSphere(a, b) <= r` on point geometries is planned as a
    DistanceJoin / BroadcastIndexJoin (an envelope prefilter expanded by the radius, then the exact
    spherical distance), so no cartesian product is built.

    Parameters
    ----------
    left : DataFrame
        Rows with lat, lon (degrees) and a unique ``left_key``.
    right : DataFrame
        Rows with lat, lon (degrees); ties are broken by station_id when it has one.
    radius_m : float
        Search radius (m).
    left_key : str
        Key column of ``left``.
    right_prefix : str
        Put before every ``right`` column name.
    how : str
        'inner' drops unmatched ``left`` rows; 'left' keeps them (right columns null).

    Returns
    -------
    DataFrame
        One row per (matched) ``left`` row: its columns, the ``right`` columns prefixed with
        `right_prefix` and `distance_m`, the great-circle distance (m).
    """
    with_sedona(left.sparkSession)
    l_geom, r_geom = "__l_geom", "__r_geom"
    lhs = left.withColumn(l_geom, F.expr("ST_Point(CAST(lon AS DOUBLE), CAST(lat AS DOUBLE))")).where(F.col(l_geom).isNotNull())
    rhs = right.where(F.col("lat").isNotNull() & F.col("lon").isNotNull()).select(
        *[F.col(c).alias(f"{right_prefix}{c}") for c in right.columns],
        F.expr("ST_Point(CAST(lon AS DOUBLE), CAST(lat AS DOUBLE))").alias(r_geom),
    )
    pairs = lhs.join(rhs, F.expr(f"ST_DistanceSphere({l_geom}, {r_geom}) <= {float(radius_m)}"))
    pairs = pairs.withColumn("distance_m", F.expr(f"ST_DistanceSphere({l_geom}, {r_geom})"))
    w = Window.partitionBy(left_key).orderBy("distance_m", f"{right_prefix}station_id" if f"{right_prefix}station_id" in rhs.columns else "distance_m")
    nearest = pairs.withColumn("__rank", F.row_number().over(w)).where("__rank = 1").drop("__rank", l_geom, r_geom)
    if how == "inner":
        return nearest
    matched = nearest.select(left_key, *[c for c in nearest.columns if c.startswith(right_prefix)], "distance_m")
    return left.join(matched, left_key, "left")


# --------------------------------------------------------------------------------------------
# Fleet <-> network
# --------------------------------------------------------------------------------------------
def _pick(df: DataFrame, *names: str) -> str | None:
    lower = {c.lower(): c for c in df.columns}
    return next((lower[n] for n in names if n in lower), None)


def normalise_fleet_events(events: DataFrame) -> DataFrame:
    """Fleet charging events (silver.charging_events, or a stop table) in the columns this module uses.

    Accepts the usual alternative names (charge_id / stop_id, soc_start, energy_kwh, centroid_lat
    ...) so the insights job's schema can evolve without breaking this join.

    Parameters
    ----------
    events : DataFrame
        Charging events or stops: vehicle_id, start and end time and a position are required.

    Returns
    -------
    DataFrame
        One row per event: event_id (built from vehicle_id and start time when absent), vehicle_id,
        start_ts, end_ts (UTC), lat, lon (degrees), soc_start_pct, soc_end_pct (SOC percent), kwh
        (kWh; null when unknown).

    Raises
    ------
    ValueError
        When vehicle_id, a start or end time, or lat/lon is missing.
    """
    need = {"vehicle_id": ("vehicle_id",), "start_ts": ("start_ts", "start"), "end_ts": ("end_ts", "end")}
    optional = {
        "event_id": ("event_id", "charge_id", "charging_event_id", "stop_id", "session_id"),
        "lat": ("lat", "latitude", "centroid_lat", "center_lat", "mean_lat"),
        "lon": ("lon", "longitude", "centroid_lon", "center_lon", "mean_lon"),
        "soc_start_pct": ("soc_start_pct", "soc_start"),
        "soc_end_pct": ("soc_end_pct", "soc_end"),
        "kwh": ("kwh", "energy_kwh", "charged_kwh"),
    }
    cols = []
    for name, alts in need.items():
        src = _pick(events, *alts)
        if src is None:
            raise ValueError(f"fleet charging events need a {name!r} column (have {events.columns})")
        cols.append(F.col(src).alias(name))
    for name, alts in optional.items():
        src = _pick(events, *alts)
        cols.append((F.col(src) if src else F.lit(None)).cast("string" if name == "event_id" else "double").alias(name))
    out = events.select(*cols)
    if _pick(events, *optional["event_id"]) is None:
        out = out.withColumn("event_id", F.concat_ws("-", "vehicle_id", F.date_format("start_ts", "yyyyMMdd'T'HHmmss")))
    if _pick(events, *optional["lat"]) is None or _pick(events, *optional["lon"]) is None:
        raise ValueError(f"fleet charging events need lat/lon columns to be matched to stations (have {events.columns})")
    return out


def match_events_to_stations(events: DataFrame, stations: DataFrame, params: StationsConfig) -> DataFrame:
    """Normalised fleet events with the nearest station within `match_radius_m`.

    Inner: unmatched events -- home or depot charging away from any listed station -- are dropped.

    Parameters
    ----------
    events : DataFrame
        `normalise_fleet_events` rows.
    stations : DataFrame
        Canonical stations (station_id, name, lat, lon, network, dc_fast_count).
    params : StationsConfig
        ``match_radius_m`` (m).

    Returns
    -------
    DataFrame
        One row per matched event: ``events`` + station_id, station_name, station_network,
        has_dc_fast, distance_m (m), soc_gain_pct (SOC percent points).
    """
    st = stations.select(
        "station_id",
        F.col("name").alias("name"),
        "lat",
        "lon",
        F.col("network").alias("network"),
        (F.coalesce(F.col("dc_fast_count"), F.lit(0)) > 0).alias("has_dc_fast"),
    )
    matched = nearest_within(events, st, params.match_radius_m, "event_id", "st_")
    return matched.select(
        *events.columns,
        F.col("st_station_id").alias("station_id"),
        F.col("st_name").alias("station_name"),
        F.col("st_network").alias("station_network"),
        F.col("st_has_dc_fast").alias("has_dc_fast"),
        "distance_m",
        (F.col("soc_end_pct") - F.col("soc_start_pct")).alias("soc_gain_pct"),
    )


def station_fleet_usage(matched: DataFrame, params: StationsConfig) -> DataFrame:
    """Per station: the fleet's charging events, vehicles, energy and hours there.

    Parameters
    ----------
    matched : DataFrame
        `match_events_to_stations` rows.
    params : StationsConfig
        ``min_soc_gain_pct`` (SOC percent points).

    Returns
    -------
    DataFrame
        One row per station: station_id, station_name, station_network, has_dc_fast,
        fleet_charging_events (SOC gain >= min_soc_gain_pct or energy > 0), fleet_vehicles (distinct),
        fleet_kwh (kWh, when the events carry it), fleet_charging_hours (h), events_without_soc_gain,
        first_use_ts and last_use_ts (UTC), mean_distance_m (m).
    """
    charged = F.coalesce(F.col("soc_gain_pct") >= params.min_soc_gain_pct, F.col("kwh") > 0, F.lit(False))
    hours = (F.col("end_ts").cast("double") - F.col("start_ts").cast("double")) / 3600.0
    return matched.groupBy("station_id", "station_name", "station_network", "has_dc_fast").agg(
        F.sum(charged.cast("int")).cast("long").alias("fleet_charging_events"),
        F.countDistinct(F.when(charged, F.col("vehicle_id"))).cast("long").alias("fleet_vehicles"),
        F.sum(F.when(charged, F.col("kwh"))).alias("fleet_kwh"),
        F.sum(F.when(charged, hours)).alias("fleet_charging_hours"),
        F.sum((~charged).cast("int")).cast("long").alias("events_without_soc_gain"),
        F.min("start_ts").alias("first_use_ts"),
        F.max("end_ts").alias("last_use_ts"),
        F.avg("distance_m").alias("mean_distance_m"),
    )


def expansion_gaps(hotspots: DataFrame, stations: DataFrame, params: StationsConfig) -> DataFrame:
    """Hotspots with no open DC-fast station within `dc_fast_gap_m`.

    Open = status in operational_status_codes.

    Parameters
    ----------
    hotspots : DataFrame
        hotspot_id, lat, lon (degrees); other columns are kept.
    stations : DataFrame
        Canonical stations (station_id, name, lat, lon, status, dc_fast_count).
    params : StationsConfig
        ``dc_fast_gap_m``, ``gap_search_m`` (m), ``operational_status_codes``.

    Returns
    -------
    DataFrame
        One row per gap: ``hotspots`` + nearest_dc_station_id, nearest_dc_station_name,
        nearest_dc_distance_m (m; null when none within gap_search_m) and gap_threshold_m (m).
    """
    dc = stations.where((F.coalesce(F.col("dc_fast_count"), F.lit(0)) > 0) & F.col("status").isin(*params.operational_status_codes)).select("station_id", "name", "lat", "lon")
    search = max(params.gap_search_m, params.dc_fast_gap_m)
    nearest = nearest_within(hotspots, dc, search, "hotspot_id", "dc_", how="left")
    return (
        nearest.where(F.col("distance_m").isNull() | (F.col("distance_m") > params.dc_fast_gap_m))
        .withColumnRenamed("dc_station_id", "nearest_dc_station_id")
        .withColumnRenamed("dc_name", "nearest_dc_station_name")
        .withColumnRenamed("distance_m", "nearest_dc_distance_m")
        .drop("dc_lat", "dc_lon")
        .withColumn("gap_threshold_m", F.lit(float(params.dc_fast_gap_m)))
    )


def normalise_hotspots(hotspots: DataFrame) -> DataFrame:
    """gold.hotspots with hotspot_id, lat, lon under these names (accepts cluster_id / centroid_lat ...).

    Parameters
    ----------
    hotspots : DataFrame
        gold.hotspots.

    Returns
    -------
    DataFrame
        ``hotspots`` with hotspot_id (string), lat, lon first; the other columns kept.

    Raises
    ------
    ValueError
        When no id or lat/lon column is found.
    """
    hid = _pick(hotspots, "hotspot_id", "cluster_id", "id", "place_id")
    lat = _pick(hotspots, "lat", "centroid_lat", "center_lat", "latitude")
    lon = _pick(hotspots, "lon", "centroid_lon", "center_lon", "longitude")
    if not (hid and lat and lon):
        raise ValueError(f"hotspots need an id and lat/lon columns (have {hotspots.columns})")
    renames = {hid: "hotspot_id", lat: "lat", lon: "lon"}
    keep = [c for c in hotspots.columns if c not in renames and c.lower() not in ("lat", "lon", "hotspot_id")]
    return hotspots.select(*[F.col(src).alias(dst) for src, dst in renames.items()], *keep).withColumn("hotspot_id", F.col("hotspot_id").cast("string"))

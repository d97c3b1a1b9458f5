"""Root cause of failed charging sessions: what makes a session fail, with effects and CIs.

Pure functions behind `gold.fault_drivers` (`jobs/fault_analysis.py`); nothing here reads or
writes storage.

Per session source, one logistic regression of ``failed`` (the session did not succeed,
`reliability.session_outcomes`) on the drivers of `fault_drivers.drivers`:

- ``network``: the station's operator from the station register (categorical; the most common
  network is the reference; networks with too few sessions, or with no or only failures, are pooled
  into ``other``: their odds could not be estimated);
- ``dc_station``: the station has DC-fast ports (register);
- ``power_kw``: log2 of the register's station power (off by default: collinear with dc_station);
- ``hour_band``: local start hour in the bands of ``hour_band_edges`` (reference: the band holding
  ``reference_hour``);
- ``weekend``: local Saturday or Sunday;
- ``load``: sessions started on the same port in the previous 24 h (`reliability.session_load`).

Sessions that started while their port was down, excluded or without data
(`silver.port_status_intervals`, the state one second before the start, so the session's own
status messages do not count) are left out when ``exclude_unavailable_ports``: such an attempt
failed because the port was out, which is what the reliability tables already measure. Sessions on
ports without status are kept (state unknown).

The fit is statsmodels' Logit with standard errors clustered by station (sessions of one station
share its condition), Wald CIs, Holm-adjusted p-values over the source's terms (a family-wise
error of ``alpha``) and average marginal effects (discrete change for 0/1 terms) in percentage
points. Effects are associations in observational data; the generator's injected drivers
(`generator.session_failure_log_odds`) are what the tests recover.
"""

from __future__ import annotations

import math
from datetime import datetime, timezone

import numpy as np
import pandas as pd
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from common.core.config import FaultDriversConfig
from common.network.reliability import DOWN, EXCLUDED, UNOBSERVED, session_load

MODEL = "model"
# Labels of pooled small networks and of stations missing from the register; the parentheses keep
# them apart from a real network's name.
OTHER, UNKNOWN_NETWORK = "(other)", "(not in register)"
# (column, Spark SQL type) of gold.fault_drivers, in order.
DRIVER_COLUMNS: tuple[tuple[str, str], ...] = (
    ("source_name", "string"),
    ("driver", "string"),
    ("level", "string"),
    ("reference", "string"),
    ("sessions", "long"),
    ("failed", "long"),
    ("failure_rate", "double"),
    ("coef", "double"),
    ("std_err", "double"),
    ("odds_ratio", "double"),
    ("or_ci_low", "double"),
    ("or_ci_high", "double"),
    ("p_value", "double"),
    ("p_value_holm", "double"),
    ("significant", "boolean"),
    ("marginal_effect_pp", "double"),
    ("excluded_sessions", "long"),
    ("sampled", "boolean"),
    ("converged", "boolean"),
    ("timezone", "string"),
    ("note", "string"),
    ("computed_at", "timestamp"),
)
DRIVER_SCHEMA = ", ".join(f"{c} {t}" for c, t in DRIVER_COLUMNS)
# Per-session frame the fit reads (one row per session; columns a driver does not use are null).
FEATURE_COLUMNS = ("source_name", "station_id", "failed", "network", "dc_station", "power_kw", "hour_band", "weekend", "load")


def hour_bands(edges: list[int]) -> list[str]:
    """Labels of the local hour bands opened by `edges`: [0, 6, 10] -> 00-06, 06-10, 10-24.

    Parameters
    ----------
    edges : list of int
        `fault_drivers.hour_band_edges` (0 first, increasing, < 24).

    Returns
    -------
    list of str
        One label per band, in order.
    """
    ends = [*edges[1:], 24]
    return [f"{a:02d}-{b:02d}" for a, b in zip(edges, ends)]


def _hour_band(hour: Column, edges: list[int]) -> Column:
    labels = hour_bands(edges)
    out = F.lit(labels[0])
    for edge, label in zip(edges[1:], labels[1:]):
        out = F.when(hour >= edge, F.lit(label)).otherwise(out)
    return out


def port_state_at_start(sessions: DataFrame, intervals: DataFrame | None) -> DataFrame:
    """Each session's port state one second before it started (null when the port has no status there).

    Intervals are expanded to the UTC dates they cover and joined on (port_id, date), so each
    session meets only the intervals of its port and day. Port ids join across feeds (a network's
    status and session exports are two datasets with their own source_name), as everywhere in the
    reliability tables.

    Parameters
    ----------
    sessions : DataFrame
        Sessions with source_name, session_id, port_id, start_ts (UTC).
    intervals : DataFrame or None
        silver.port_status_intervals (port_id, start_ts, end_ts, state); None: no status feed.

    Returns
    -------
    DataFrame
        ``sessions`` + port_state (up / down / excluded / no_data, or null).
    """
    if intervals is None:
        return sessions.withColumn("port_state", F.lit(None).cast("string"))
    probe = F.col("start_ts") - F.expr("INTERVAL 1 SECOND")
    keys = sessions.select("source_name", "session_id", "port_id", probe.alias("_probe")).withColumn("_day", F.to_date("_probe"))
    spans = intervals.select(
        "port_id",
        F.col("start_ts").alias("_from"),
        F.col("end_ts").alias("_to"),
        F.col("state").alias("port_state"),
        F.explode(F.sequence(F.to_date("start_ts"), F.to_date(F.coalesce("end_ts", "start_ts")))).alias("_day"),
    )
    within = (F.col("_from") <= F.col("_probe")) & (F.col("_probe") < F.col("_to"))
    # intervals of one port do not overlap; should a feed repeat one, the latest start wins
    state = keys.join(spans, ["port_id", "_day"]).where(within).groupBy("source_name", "session_id").agg(F.max_by("port_state", "_from").alias("port_state"))
    return sessions.join(state, ["source_name", "session_id"], "left")


def session_features(outcomes: DataFrame, intervals: DataFrame | None, stations: DataFrame | None, tz: str, params: FaultDriversConfig) -> DataFrame:
    """One row per session with a known outcome: failed, the drivers, and whether it is modelled.

    Parameters
    ----------
    outcomes : DataFrame
        `reliability.session_outcomes` rows (source_name, session_id, station_id, port_id, start_ts, succeeded).
    intervals : DataFrame or None
        silver.port_status_intervals; None: every port state unknown.
    stations : DataFrame or None
        One row per station_id (`stations.latest_stations`): network, dc_fast_count, power_kw; None: no register.
    tz : str
        IANA zone of the local hour and weekday.
    params : FaultDriversConfig
        ``hour_band_edges``, ``exclude_unavailable_ports``.

    Returns
    -------
    DataFrame
        FEATURE_COLUMNS + port_state and modelled (false for sessions on unavailable ports when
        ``exclude_unavailable_ports``).
    """
    df = session_load(outcomes).withColumnRenamed("load_sessions_24h", "load")
    df = port_state_at_start(df, intervals)
    local = F.from_utc_timestamp("start_ts", tz)
    df = df.withColumn("hour_band", _hour_band(F.hour(local), params.hour_band_edges)).withColumn("weekend", F.dayofweek(local).isin(1, 7))
    if stations is not None:
        reg = stations.select(
            "station_id",
            F.coalesce(F.nullif(F.trim("network"), F.lit("")), F.lit(UNKNOWN_NETWORK)).alias("network"),
            (F.coalesce(F.col("dc_fast_count"), F.lit(0)) > 0).alias("dc_station"),
            F.when(F.col("power_kw") > 0, F.col("power_kw")).alias("power_kw"),
        )
        df = df.join(F.broadcast(reg), "station_id", "left")
    else:
        df = df.withColumn("network", F.lit(None).cast("string")).withColumn("dc_station", F.lit(None).cast("boolean")).withColumn("power_kw", F.lit(None).cast("double"))
    unavailable = F.coalesce(F.col("port_state").isin(DOWN, EXCLUDED, UNOBSERVED), F.lit(False))
    modelled = ~unavailable if params.exclude_unavailable_ports else F.lit(True)
    return df.select(*FEATURE_COLUMNS, "port_state", modelled.alias("modelled"))


def sample_fraction(features: DataFrame, max_sessions: int) -> DataFrame:
    """Modelled sessions per source, sampled (seeded by the caller) to at most about `max_sessions`.

    Parameters
    ----------
    features : DataFrame
        `session_features` rows.
    max_sessions : int
        `fault_drivers.max_sessions`.

    Returns
    -------
    DataFrame
        One row per source_name: modelled, excluded (sessions on unavailable ports) and fraction
        (1.0 when the source fits).
    """
    return features.groupBy("source_name").agg(
        F.sum(F.col("modelled").cast("long")).alias("modelled"),
        F.sum((~F.col("modelled")).cast("long")).alias("excluded"),
    ).withColumn("fraction", F.least(F.lit(1.0), F.lit(float(max_sessions)) / F.greatest(F.col("modelled"), F.lit(1))))  # fmt: skip


def fault_drivers(features: DataFrame, params: FaultDriversConfig, tz: str, computed_at: datetime | None = None) -> DataFrame:
    """gold.fault_drivers: per source, a model row and one row per term of the failure logit.

    Parameters
    ----------
    features : DataFrame
        `session_features` rows.
    params : FaultDriversConfig
        The section (drivers, bands, pooling, thresholds, sample size, alpha, seed).
    tz : str
        IANA zone of the hour bands (written to the rows).
    computed_at : datetime, optional
        Timestamp written to every row; default now (UTC).

    Returns
    -------
    DataFrame
        DRIVER_COLUMNS rows; the fit runs per source in a grouped pandas UDF (`fit_source`).
    """
    stamp = computed_at or datetime.now(timezone.utc)
    counts = sample_fraction(features, params.max_sessions)
    rows = features.where("modelled").join(F.broadcast(counts), "source_name")
    rows = rows.where((F.col("fraction") >= 1.0) | (F.rand(params.seed) < F.col("fraction")))
    cols = [*FEATURE_COLUMNS, "excluded", "fraction"]

    def fit(pdf: pd.DataFrame) -> pd.DataFrame:
        """`fit_source` of one source's sessions.

        Parameters
        ----------
        pdf : pandas.DataFrame
            One source's sampled, modelled sessions.

        Returns
        -------
        pandas.DataFrame
            DRIVER_COLUMNS rows.
        """
        return fit_source(pdf, params, tz, stamp)

    fitted = rows.select(*cols).groupBy("source_name").applyInPandas(fit, DRIVER_SCHEMA)
    # a source whose every session was left out still gets its model row
    nulls = {c: F.lit(None).cast(t) for c, t in DRIVER_COLUMNS}
    nulls |= {
        "source_name": F.col("source_name"),
        "driver": F.lit(MODEL),
        "sessions": F.lit(0).cast("long"),
        "failed": F.lit(0).cast("long"),
        "excluded_sessions": F.col("excluded"),
        "sampled": F.lit(False),
        "converged": F.lit(False),
        "timezone": F.lit(tz),
        "note": F.lit("not fitted: no session on an available port"),
        "computed_at": F.lit(stamp).cast("timestamp"),
    }
    empty = counts.where("modelled = 0").select(*[nulls[c].alias(c) for c, _ in DRIVER_COLUMNS])
    return fitted.unionByName(empty)


def _pool_networks(network: pd.Series, failed: pd.Series, min_sessions: int) -> tuple[pd.Series, pd.Series]:
    """Networks with fewer than `min_sessions` sessions, or with no or only failures, become OTHER.

    Returns the pooled labels and a mask of the sessions to keep: when the pool itself cannot be
    estimated (too few sessions, no or only failures) its sessions are left out, not fitted."""
    pooled = network.where(~network.isin(_weak_levels(network, failed, min_sessions)), OTHER)
    return pooled, ~pooled.isin(_weak_levels(pooled, failed, min_sessions).intersection([OTHER]))


def _weak_levels(labels: pd.Series, failed: pd.Series, min_sessions: int) -> pd.Index:
    """Levels with fewer than `min_sessions` sessions or with no or only failures."""
    stats = failed.groupby(labels).agg(["size", "sum"])
    return stats.index[(stats["size"] < min_sessions) | (stats["sum"] == 0) | (stats["sum"] == stats["size"])]


# 0/1 and continuous drivers: (level written to the table, reference level or None)
_NUMERIC_LEVELS: dict[str, tuple[str, str | None]] = {
    "dc_station": ("true", "false"),
    "weekend": ("true", "false"),
    "load": ("per session", None),
    "power_kw": ("per doubling", None),
}


def _reference(driver: str, values: pd.Series, params: FaultDriversConfig) -> str:
    """Reference level: the most common network (not the pool), the band holding reference_hour."""
    counts = values.value_counts()
    if driver == "network":
        named = [str(v) for v in counts.index if v != OTHER]
        return named[0] if named else OTHER
    ref = hour_bands(params.hour_band_edges)[max(i for i, e in enumerate(params.hour_band_edges) if e <= params.reference_hour)]
    return ref if ref in counts.index else str(counts.index[0])


def _design(pdf: pd.DataFrame, params: FaultDriversConfig) -> tuple[pd.DataFrame, pd.Series, dict[str, tuple[str, str, str | None]], list[str]]:
    """The design matrix, the sessions it keeps, what each column is (driver, level, reference), and notes."""
    x: dict[str, pd.Series] = {}
    keep = pd.Series(True, index=pdf.index)
    what: dict[str, tuple[str, str, str | None]] = {}
    notes: list[str] = []
    for driver in params.drivers:
        if driver in ("network", "hour_band"):
            values = pd.Series(pdf[driver], dtype="object")
            if values.isna().all():
                notes.append(f"{driver}: no data")
                continue
            values = values.fillna(UNKNOWN_NETWORK)  # stations missing from the register
            if driver == "network":
                values, estimable = _pool_networks(values, pdf["failed"], params.min_level_sessions)
                if not estimable.all():
                    notes.append(f"network: {int((~estimable).sum())} session(s) of small networks left out (even pooled, their odds cannot be estimated)")
                    keep &= estimable
            ref = _reference(driver, values, params)
            levels = sorted(set(values[keep]) - {ref})
            if not levels:
                notes.append(f"{driver}: one level ({ref})")
            for level in levels:
                x[f"{driver}[{level}]"] = (values == level).astype(float)
                what[f"{driver}[{level}]"] = (driver, str(level), ref)
            continue
        numeric = pd.to_numeric(pd.Series(pdf[driver], dtype="object"), errors="coerce").astype(float)
        if numeric.isna().all():
            notes.append(f"{driver}: no data")
            continue
        if numeric.isna().any():  # e.g. stations missing from the register: those sessions, not the driver
            notes.append(f"{driver}: unknown for {int(numeric.isna().sum())} session(s), left out")
            keep &= numeric.notna()
        if numeric[keep].nunique() < 2:
            notes.append(f"{driver}: constant")
            continue
        x[driver] = np.log2(numeric) if driver == "power_kw" else numeric
        what[driver] = (driver, *_NUMERIC_LEVELS[driver])
    return pd.DataFrame(x, index=pdf.index)[keep], keep, what, notes


def _identified(x: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Columns of `x` (in order) that add rank beside the constant; the aliased ones are dropped.

    A term that is a combination of earlier ones (every network all DC-fast or all not, say) has
    no estimate of its own; statsmodels would still print one."""
    kept: list[str] = []
    base = np.ones((len(x), 1))
    for col in x.columns:
        trial = np.column_stack([base, x[kept + [col]].to_numpy()]) if kept else np.column_stack([base, x[[col]].to_numpy()])
        if np.linalg.matrix_rank(trial) == trial.shape[1]:
            kept.append(col)
    return x[kept], [c for c in x.columns if c not in kept]


def _frame(rows: list[dict]) -> pd.DataFrame:
    """DRIVER_COLUMNS rows with each column in its declared type: a string column that is all
    missing would otherwise be float NaN, which pyarrow 25 converts to a ChunkedArray that
    PySpark 3.5's applyInPandas cannot assemble (the stage failed on a source with no fit)."""
    frame = pd.DataFrame(rows, columns=[c for c, _ in DRIVER_COLUMNS])
    for column, kind in DRIVER_COLUMNS:
        if kind == "string":
            frame[column] = frame[column].astype(object).where(frame[column].notna(), None)
        elif kind == "boolean":
            frame[column] = frame[column].astype("boolean")
    return frame


def _row(source: str, driver: str, **values) -> dict:
    return {"source_name": source, "driver": driver, **values}


def fit_source(pdf: pd.DataFrame, params: FaultDriversConfig, tz: str, computed_at: datetime) -> pd.DataFrame:
    """The failure logit of one source's sessions (statsmodels, clustered by station).

    Parameters
    ----------
    pdf : pandas.DataFrame
        One source's modelled sessions: FEATURE_COLUMNS + excluded (its sessions left out) and
        fraction (the sample fraction, 1.0 = all).
    params : FaultDriversConfig
        Drivers, bands, pooling, thresholds and alpha.
    tz : str
        IANA zone of the hour bands.
    computed_at : datetime
        Timestamp of every row.

    Returns
    -------
    pandas.DataFrame
        DRIVER_COLUMNS rows: a model row (sessions, failures, convergence, note) and, when the model
        was fitted, one row per term with its level's counts, coefficient, odds ratio and Wald CI,
        p-value, Holm-adjusted p-value and average marginal effect.
    """
    import statsmodels.api as sm
    from statsmodels.stats.multitest import multipletests

    source = str(pdf["source_name"].iloc[0])
    failed = pdf["failed"].astype(float)
    n, k = len(pdf), int(failed.sum())
    sampled = bool(pdf["fraction"].iloc[0] < 1.0)
    common = {"excluded_sessions": int(pdf["excluded"].iloc[0]), "sampled": sampled, "timezone": tz, "computed_at": computed_at}
    model = _row(source, MODEL, sessions=n, failed=k, failure_rate=k / n if n else None, **common)

    stations = int(pdf["station_id"].fillna("").nunique())
    if n < params.min_sessions or k < params.min_failed or k == n:
        return _frame([{**model, "converged": False, "note": f"not fitted: {n} session(s), {k} failed; needs {params.min_sessions} and {params.min_failed}, and a success"}])
    if stations < params.min_stations:  # station-clustered SEs need clusters: with 1-2 they are degenerate
        return _frame([{**model, "converged": False, "note": f"not fitted: {stations} station(s); SEs clustered by station need {params.min_stations}"}])
    x, keep, what, notes = _design(pdf, params)
    x, aliased = _identified(x)
    if aliased:
        notes.append(f"left out as aliased with earlier terms: {', '.join(aliased)}")
    if x.empty:
        return _frame([{**model, "converged": False, "note": "not fitted: no driver with data; " + "; ".join(notes)}])
    failed = failed[keep]
    n, k = len(failed), int(failed.sum())
    model |= {"sessions": n, "failed": k, "failure_rate": k / n}
    groups = pd.factorize(pdf["station_id"][keep].fillna(""))[0]
    try:
        fit = sm.Logit(failed, sm.add_constant(x, has_constant="add")).fit(disp=0, maxiter=200, cov_type="cluster", cov_kwds={"groups": groups}, use_t=True)
        margeff = fit.get_margeff(at="overall", dummy=True).summary_frame()
    except Exception as exc:  # noqa: BLE001 - separation / a singular design: say so in the table, do not fail the job
        return _frame([{**model, "converged": False, "note": f"fit failed: {type(exc).__name__}: {exc}"[:300]}])
    terms = list(x.columns)
    holm = multipletests(fit.pvalues[terms].to_numpy(), alpha=params.alpha, method="holm")[1]
    ci = fit.conf_int(alpha=params.alpha)
    converged = bool(fit.mle_retvals.get("converged", True))
    summary = f"logit on {len(terms)} term(s), SEs clustered by {len(set(groups))} station(s)" + (f", sample of {n}" if sampled else "")
    rows = [{**model, "converged": converged, "note": "; ".join([summary, *notes])}]
    for i, term in enumerate(terms):
        driver, level, ref = what[term]
        at = x[term] == 1.0 if ref is not None else pd.Series(True, index=x.index)
        beta, se = float(fit.params[term]), float(fit.bse[term])
        rows.append(
            _row(
                source,
                driver,
                level=level,
                reference=ref,
                sessions=int(at.sum()),
                failed=int(failed[at].sum()),
                failure_rate=float(failed[at].mean()),
                coef=beta,
                std_err=se,
                odds_ratio=math.exp(beta),
                or_ci_low=math.exp(float(ci.loc[term, 0])),
                or_ci_high=math.exp(float(ci.loc[term, 1])),
                p_value=float(fit.pvalues[term]),
                p_value_holm=float(holm[i]),
                significant=bool(converged and holm[i] < params.alpha),
                marginal_effect_pp=100.0 * float(margeff.loc[term, "dy/dx"]),
                converged=converged,
                **common,
            )
        )
    return _frame(rows)

"""Fault forecast of a charging network: how many faults per site and for the network next.

Faults are the failures of `reliability.mark_failures` (a port going down after being up),
counted per site and per bucket of `fault_forecast.bucket_days` days (complete buckets only,
zero-filled over the observed span). Each series is forecast with a regression on a level, an
optional linear trend and K Fourier pairs of the seasonal cycle, with AR(p) errors (statsmodels
SARIMAX): K, the trend and p are chosen by AIC within the conf grid, on the Anscombe square root
of the counts (variance-stabilised: fault counts are Poisson-like, so raw-count intervals are too
narrow where counts are high and too wide where they are low). Fourier terms rather than a
seasonal ARIMA because a weekly series' cycle is 52 buckets long: a seasonal difference or
seasonal ARMA of that lag needs years of history and minutes per fit, two Fourier pairs need
four parameters.

A rolling-origin backtest compares the chosen model (re-selected at every origin, on the history
before it) with the seasonal-naive and mean baselines: MAE, MAPE (over buckets with faults) and
the coverage of the model's intervals. A series with fewer than `min_buckets` complete buckets
gets the mean baseline and says so.
"""

from __future__ import annotations

import itertools
import math
import warnings
from datetime import date, timedelta

import numpy as np
import pandas as pd
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from scipy.stats import norm

from common.core.config import FaultForecastConfig

NETWORK = "(network)"
KEY = ("source_name", "site_id")
# The Anscombe transform: sqrt(y + 3/8) of a Poisson count has variance ~1/4 whatever its mean.
_ANSCOMBE = 3.0 / 8.0

COUNT_COLUMNS = ("source_name", "site_id", "bucket", "bucket_start", "faults")
OUT_SCHEMA = (
    "kind string, source_name string, site_id string, bucket_start date, step int, actual long, forecast double, lower double, upper double, "
    "method string, spec string, history_buckets int, origins int, buckets int, mae double, mape double, coverage double, note string"
)
FORECAST_COLUMNS = ("source_name", "site_id", "bucket_start", "step", "actual", "forecast", "lower", "upper", "method", "spec", "history_buckets", "note")
BACKTEST_COLUMNS = ("source_name", "site_id", "method", "spec", "origins", "buckets", "mae", "mape", "coverage", "history_buckets", "note")


def site_id(df: DataFrame) -> Column:
    """The site of a status row or fault: its station, else its charger, else its port (station_id
    is optional in charger status, and a fault without one must still count).

    Parameters
    ----------
    df : DataFrame
        Rows with some of station_id, charger_id, port_id.

    Returns
    -------
    Column
        The first non-null of those present.
    """
    return F.coalesce(*[F.col(c).cast("string") for c in ("station_id", "charger_id", "port_id") if c in df.columns])


def _bucket(ts: str, days: int) -> Column:
    return F.floor((F.unix_timestamp(ts) - F.unix_timestamp(F.col("origin").cast("timestamp"))) / (days * 86400)).cast("int")


def fault_counts(failures: DataFrame, observed: DataFrame, params: FaultForecastConfig) -> DataFrame:
    """Faults per site and bucket over each site's observed span, zero-filled, plus the network.

    Parameters
    ----------
    failures : DataFrame
        One row per fault: source_name, station_id (and charger_id / port_id when present: see
        `site_id`), ts (timestamp of the failure).
    observed : DataFrame
        Rows telling which sites were observed when: source_name, station_id (charger_id, port_id),
        start_ts, end_ts (e.g. silver.port_status_intervals). Every site listed gets a series,
        faults or not.
    params : FaultForecastConfig
        ``bucket_days``.

    Returns
    -------
    DataFrame
        source_name, site_id (`site_id`, or '(network)' for every fault of the source), bucket
        (0 = the bucket opening on the source's first observed UTC day), bucket_start (date),
        faults (long). A site's series runs from the bucket of its first observation to its last
        complete one (a site added or removed mid-span is not zero-filled where it was not
        observed); the network's over the source's complete buckets.
    """
    days = params.bucket_days
    obs = observed.withColumn("site_id", site_id(observed))
    spans = obs.groupBy("source_name").agg(F.to_date(F.min("start_ts")).alias("origin"), F.max("end_ts").alias("last_ts"))
    spans = spans.withColumn("n_buckets", _bucket("last_ts", days))
    site_spans = (
        obs.groupBy("source_name", "site_id")
        .agg(F.min("start_ts").alias("first_ts"), F.max("end_ts").alias("site_last_ts"))
        .join(spans.select("source_name", "origin"), "source_name")
        .select("source_name", "site_id", "origin", _bucket("first_ts", days).alias("k_first"), (_bucket("site_last_ts", days) - 1).alias("k_last"))
    )
    grid = site_spans.where("k_last >= k_first").select("source_name", "site_id", "origin", F.explode(F.sequence("k_first", "k_last")).alias("bucket"))
    counted = (
        failures.withColumn("site_id", site_id(failures))
        .join(spans.select("source_name", "origin", "n_buckets"), "source_name")
        .withColumn("bucket", _bucket("ts", days))
        .where((F.col("bucket") >= 0) & (F.col("bucket") < F.col("n_buckets")))
        .groupBy("source_name", "site_id", "bucket")
        .agg(F.count("*").alias("faults"))
    )
    per_site = grid.join(counted, ["source_name", "site_id", "bucket"], "left").withColumn("faults", F.coalesce(F.col("faults"), F.lit(0)).cast("long"))
    source_buckets = spans.where("n_buckets > 0").select("source_name", "origin", F.explode(F.sequence(F.lit(0), F.col("n_buckets") - 1)).alias("bucket"))
    network = (
        source_buckets.join(counted.groupBy("source_name", "bucket").agg(F.sum("faults").alias("faults")), ["source_name", "bucket"], "left")
        .withColumn("faults", F.coalesce(F.col("faults"), F.lit(0)).cast("long"))
        .withColumn("site_id", F.lit(NETWORK))
    )
    return per_site.unionByName(network.select(*per_site.columns)).withColumn("bucket_start", F.date_add(F.col("origin"), F.col("bucket") * days)).select(*COUNT_COLUMNS)


def _fourier(t: np.ndarray, season: int, k: int) -> np.ndarray | None:
    if k == 0:
        return None
    return np.column_stack([f(2 * np.pi * j * t / season) for j in range(1, k + 1) for f in (np.sin, np.cos)])


def _candidates(n: int, params: FaultForecastConfig) -> list[tuple[int, str, int]]:
    seasonal_ok = n >= params.min_seasons * params.season_length
    ks = [k for k in params.fourier_terms if k == 0 or (seasonal_ok and 2 * k < params.season_length)] or [0]
    return [(k, trend, p) for k, trend, p in itertools.product(ks, params.trends, params.ar_orders) if p < n // 4]


def _spec(k: int, trend: str, p: int) -> str:
    return f"fourier={k} trend={trend} ar={p}"


def fit_best(y: np.ndarray, params: FaultForecastConfig):
    """The AIC-best candidate of the conf grid fitted to the square-rooted counts `y`.

    Parameters
    ----------
    y : numpy.ndarray
        Fault counts of consecutive buckets.
    params : FaultForecastConfig
        The grid (fourier_terms, trends, ar_orders), season_length, min_seasons.

    Returns
    -------
    tuple
        (statsmodels results, K, spec text); results is None when no candidate could be fitted.
    """
    from statsmodels.tsa.statespace.sarimax import SARIMAX

    z = np.sqrt(np.asarray(y, dtype=float) + _ANSCOMBE)
    t = np.arange(len(z), dtype=float)
    best = (None, 0, "")
    best_aic = math.inf
    for k, trend, p in _candidates(len(z), params):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # statsmodels warns on every slow convergence; the AIC judges the fit
            try:
                res = SARIMAX(z, exog=_fourier(t, params.season_length, k), order=(p, 0, 0), trend=trend).fit(disp=False)
            except (ValueError, np.linalg.LinAlgError):
                continue
        if np.isfinite(res.aic) and res.aic < best_aic:
            best, best_aic = (res, k, _spec(k, trend, p)), res.aic
    return best


def predict(res, k: int, start: int, steps: int, params: FaultForecastConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean, lower and upper bound of the counts of buckets start .. start + steps - 1.

    Parameters
    ----------
    res : statsmodels results
        From `fit_best` (fitted on buckets 0 .. start - 1).
    k : int
        Its Fourier pairs.
    start, steps : int
        First bucket forecast and how many.
    params : FaultForecastConfig
        season_length, interval_level.

    Returns
    -------
    tuple of numpy.ndarray
        Counts: mean (the expected square of the transformed forecast cut at zero, minus 3/8), and
        the interval's bounds (the squares of the transformed interval's bounds cut at zero, minus
        3/8; never below 0).
    """
    future = _fourier(np.arange(start, start + steps, dtype=float), params.season_length, k)
    f = res.get_forecast(steps, exog=future)
    m = np.asarray(f.predicted_mean, dtype=float)
    var = np.asarray(f.var_pred_mean, dtype=float)
    ci = np.asarray(f.conf_int(alpha=1 - params.interval_level), dtype=float)
    # E[max(z, 0)^2] of z ~ N(m, var): the square root of a count is never negative, so a fit
    # projecting below zero (a falling trend) means "near zero", not a count rising again.
    sd = np.sqrt(np.maximum(var, 1e-12))
    r = m / sd
    mean = np.maximum((m**2 + sd**2) * norm.cdf(r) + m * sd * norm.pdf(r) - _ANSCOMBE, 0.0)
    lower = np.maximum(np.maximum(ci[:, 0], 0.0) ** 2 - _ANSCOMBE, 0.0)
    upper = np.maximum(np.maximum(ci[:, 1], 0.0) ** 2 - _ANSCOMBE, 0.0)
    return mean, lower, upper


def seasonal_naive(y: np.ndarray, start: int, steps: int, season: int) -> np.ndarray:
    """The count of the same bucket one cycle earlier (the last count when history is shorter).

    Parameters
    ----------
    y : numpy.ndarray
        Counts of buckets 0 .. start - 1 (later ones ignored).
    start, steps : int
        First bucket forecast and how many.
    season : int
        Buckets per cycle.

    Returns
    -------
    numpy.ndarray
        One value per bucket forecast.
    """
    hist = np.asarray(y[:start], dtype=float)
    if start < season:
        return np.full(steps, hist[-1])
    return np.array([hist[start - season + (i % season)] for i in range(steps)])


def _errors(pred: np.ndarray, actual: np.ndarray) -> tuple[float, float | None]:
    mae = float(np.mean(np.abs(pred - actual)))
    nz = actual > 0
    mape = float(np.mean(np.abs(pred[nz] - actual[nz]) / actual[nz]) * 100) if nz.any() else None
    return mae, mape


def forecast_series(y: np.ndarray, params: FaultForecastConfig) -> tuple[list[dict], list[dict]]:
    """Forecast and backtest rows of one series (pure; `forecast_faults` runs it per site).

    Parameters
    ----------
    y : numpy.ndarray
        Fault counts of consecutive complete buckets, oldest first.
    params : FaultForecastConfig
        Horizon, grid, interval level, min_buckets, backtest_origins.

    Returns
    -------
    tuple of list of dict
        Forecast rows (step 1 .. horizon: forecast, lower, upper, method, spec, note) and backtest
        rows (method model / seasonal_naive / mean: origins, buckets, mae, mape, coverage).
    """
    y = np.asarray(y, dtype=float)
    n, h = len(y), params.horizon
    rows: list[dict] = []
    if n < params.min_buckets:
        level = float(y.mean()) if n else 0.0
        note = f"{n} complete buckets < fault_forecast.min_buckets ({params.min_buckets}): mean baseline, no interval"
        rows = [{"step": i + 1, "forecast": level, "lower": None, "upper": None, "method": "mean", "spec": None, "note": note} for i in range(h)]
        return rows, [{"method": "mean", "spec": None, "origins": 0, "buckets": 0, "mae": None, "mape": None, "coverage": None, "note": note}]
    if not y.any():  # nothing to fit: a zero-variance fit would claim a zero-width interval
        note = f"no fault in {n} buckets: forecast 0, no interval"
        rows = [{"step": i + 1, "forecast": 0.0, "lower": None, "upper": None, "method": "mean", "spec": None, "note": note} for i in range(h)]
        return rows, [{"method": "mean", "spec": None, "origins": 0, "buckets": 0, "mae": None, "mape": None, "coverage": None, "note": note}]
    res, k, spec = fit_best(y, params)
    if res is None:
        note = "no candidate of the grid could be fitted: mean baseline"
        return [{"step": i + 1, "forecast": float(y.mean()), "lower": None, "upper": None, "method": "mean", "spec": None, "note": note} for i in range(h)], []
    mean, lower, upper = predict(res, k, n, h, params)
    short: str | None = None if n >= params.min_seasons * params.season_length else f"history {n} buckets < {params.min_seasons:g} cycles of {params.season_length}: no seasonal terms"
    rows = [{"step": i + 1, "forecast": float(mean[i]), "lower": float(lower[i]), "upper": float(upper[i]), "method": "sarimax", "spec": spec, "note": short} for i in range(h)]

    origins = [n - h * j for j in range(params.backtest_origins, 0, -1) if n - h * j >= params.min_buckets]
    scored: dict[str, list] = {"model": [], "seasonal_naive": [], "mean": []}
    covered, specs, used = [], [], []
    for origin in origins:
        actual = y[origin : origin + h]
        if not y[:origin].any():  # as above: no fault before the origin, nothing to fit
            continue
        r, kk, sp = fit_best(y[:origin], params)
        if r is None:
            continue
        used.append(origin)
        m, lo, hi = predict(r, kk, origin, len(actual), params)
        specs.append(sp)
        scored["model"].append(m - actual)
        scored["seasonal_naive"].append(seasonal_naive(y, origin, len(actual), params.season_length) - actual)
        scored["mean"].append(np.full(len(actual), y[:origin].mean()) - actual)
        covered.append((actual >= lo) & (actual <= hi))
    back = []
    if not covered:
        note = f"too short to backtest: {n} buckets, the backtest needs fault_forecast.min_buckets + horizon = {params.min_buckets + h} with a fault before an origin"
        back.append({"method": "model", "spec": spec, "origins": 0, "buckets": 0, "mae": None, "mape": None, "coverage": None, "note": note})
    else:
        actual_all = np.concatenate([y[o : o + h] for o in used])
        for method, errs in scored.items():
            err = np.concatenate(errs)
            mae, mape = _errors(actual_all + err, actual_all)
            back.append(
                {
                    "method": method,
                    "spec": ", ".join(sorted(set(specs))) if method == "model" else None,
                    "origins": len(covered),
                    "buckets": len(actual_all),
                    "mae": mae,
                    "mape": mape,
                    "coverage": float(np.mean(np.concatenate(covered))) if method == "model" else None,
                    "note": None,
                }
            )
    return rows, back


def forecast_faults(counts: DataFrame, params: FaultForecastConfig) -> DataFrame:
    """Forecast and backtest rows of every series of `fault_counts`, one pandas call per series.

    Parameters
    ----------
    counts : DataFrame
        `fault_counts` rows.
    params : FaultForecastConfig
        As `forecast_series`; ``bucket_days`` dates the forecast buckets.

    Returns
    -------
    DataFrame
        `OUT_SCHEMA`: kind 'forecast' rows, the observed buckets (step <= 0, method 'observed',
        actual) then the forecast ones (step >= 1: forecast, lower, upper), and kind 'backtest'
        rows (method, origins, buckets, mae, mape, coverage); split with `split`.
    """
    days = params.bucket_days

    def run(pdf: pd.DataFrame) -> pd.DataFrame:
        """Observed, forecast and backtest rows of one series (the applyInPandas function).

        Parameters
        ----------
        pdf : pandas.DataFrame
            `fault_counts` rows of one (source_name, site_id).

        Returns
        -------
        pandas.DataFrame
            `OUT_SCHEMA` rows.
        """
        pdf = pdf.sort_values("bucket")
        source, site = pdf["source_name"].iloc[0], pdf["site_id"].iloc[0]
        fc, back = forecast_series(pdf["faults"].to_numpy(float), params)
        last = pd.Timestamp(pdf["bucket_start"].iloc[-1]).date() if len(pdf) else date.today()
        out = [
            {"kind": "forecast", "bucket_start": pd.Timestamp(b).date(), "step": i - len(pdf) + 1, "actual": int(a), "method": "observed"}
            for i, (b, a) in enumerate(zip(pdf["bucket_start"], pdf["faults"]))
        ]
        for r in fc:
            out.append({**r, "kind": "forecast", "bucket_start": last + timedelta(days=days * r["step"])})
        for r in back:
            out.append({**r, "kind": "backtest"})
        frame = pd.DataFrame(out, columns=[c.split()[0] for c in OUT_SCHEMA.split(", ")])
        frame["source_name"], frame["site_id"], frame["history_buckets"] = source, site, len(pdf)
        for col in ("bucket_start", "spec", "note"):  # None, not float NaN: pyarrow cannot make a date or string of NaN
            frame[col] = frame[col].astype(object).where(frame[col].notna(), None)
        return frame.astype({"step": "Int32", "actual": "Int64", "origins": "Int32", "buckets": "Int32", "history_buckets": "int32"})

    return counts.groupBy(*KEY).applyInPandas(run, OUT_SCHEMA)


def split(out: DataFrame) -> tuple[DataFrame, DataFrame]:
    """(gold.fault_forecast rows, gold.fault_forecast_backtest rows) of `forecast_faults`.

    Parameters
    ----------
    out : DataFrame
        `forecast_faults` output.

    Returns
    -------
    tuple of DataFrame
        FORECAST_COLUMNS rows and BACKTEST_COLUMNS rows.
    """
    return out.where("kind = 'forecast'").select(*FORECAST_COLUMNS), out.where("kind = 'backtest'").select(*BACKTEST_COLUMNS)

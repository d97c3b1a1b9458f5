"""Statistical tests of charger reliability on small driver-side aggregates (statsmodels, scipy).

Rows of gold.reliability_tests (one long table, `TEST_SCHEMA`): every function returns a list
of plain dicts with those keys, so the job turns them into one DataFrame. Inputs are numbers or
pandas frames already aggregated in Spark (`common/network/reliability.py`); nothing here touches Spark.

- two_window_fault_test   fault (failed-session) rates of two windows, two-proportion z-test
                          (statsmodels.stats.proportion.proportions_ztest, pooled variance)
- load_fault_logit        failed ~ load (sessions on the port in the previous 24 h), statsmodels
                          Logit; odds ratio per additional session with its Wald CI. An
                          association, not an effect: a broken charger also loses its load, so
                          an odds ratio below 1 is the usual observational result
- lost_revenue_bootstrap  lost revenue of failed sessions = failed x mean kWh of a successful
                          session x price, CI by scipy.stats.bootstrap over the kWh sample
- alert_precision_recall  precision/recall of "fault-rate z > t" alerts against chargers whose
                          observed uptime is below the NEVI target in the same window
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
from pyspark.sql import types as T

TEST_SCHEMA = T.StructType(
    [
        T.StructField("test", T.StringType()),
        T.StructField("scope", T.StringType()),  # source_name (dataset) the test ran on
        T.StructField("subject", T.StringType()),  # portfolio | charger id | threshold label
        T.StructField("metric", T.StringType()),
        T.StructField("value", T.DoubleType()),
        T.StructField("ci_low", T.DoubleType()),
        T.StructField("ci_high", T.DoubleType()),
        T.StructField("statistic", T.DoubleType()),
        T.StructField("p_value", T.DoubleType()),
        T.StructField("n", T.LongType()),
        T.StructField("parameters", T.StringType()),  # JSON: inputs and settings of the test
        T.StructField("note", T.StringType()),
    ]
)


def _f(x) -> float | None:
    if x is None:
        return None
    x = float(x)
    return None if math.isnan(x) or math.isinf(x) else x


def row(test: str, scope: str, subject: str, metric: str, value=None, ci_low=None, ci_high=None, statistic=None, p_value=None, n=None, parameters: dict | None = None, note: str | None = None) -> dict:
    """One row of gold.reliability_tests (`TEST_SCHEMA`).

    Parameters
    ----------
    test : str
        Test name.
    scope : str
        source_name (dataset) the test ran on.
    subject : str
        portfolio | charger id | threshold label.
    metric : str
        What ``value`` is.
    value, ci_low, ci_high, statistic, p_value : float or None
        The estimate, its confidence interval (in ``metric``'s unit), the test statistic and p-value;
        NaN and infinity become None.
    n : int or None
        Sample size.
    parameters : dict or None
        Inputs and settings of the test (stored as JSON).
    note : str or None

    Returns
    -------
    dict
        The `TEST_SCHEMA` keys.
    """
    return {
        "test": test,
        "scope": scope,
        "subject": subject,
        "metric": metric,
        "value": _f(value),
        "ci_low": _f(ci_low),
        "ci_high": _f(ci_high),
        "statistic": _f(statistic),
        "p_value": _f(p_value),
        "n": None if n is None else int(n),
        "parameters": json.dumps(parameters or {}, sort_keys=True, default=str),
        "note": note,
    }


def two_window_fault_test(scope: str, recent: tuple[int, int], baseline: tuple[int, int], windows: dict, alpha: float) -> list[dict]:
    """Two-proportion z-test of failed/all sessions, recent vs baseline window.

    The CI is the Wald interval of the difference (unpooled), reported beside the pooled test.

    Parameters
    ----------
    scope : str
        source_name.
    recent, baseline : tuple of (int, int)
        (failed, sessions) of each window.
    windows : dict
        Window descriptions, stored in the row's parameters.
    alpha : float
        Significance level (and 1 - CI level).

    Returns
    -------
    list of dict
        One `row`: value = recent rate - baseline rate (fraction); statistic = z (positive: more
        failures recently); p_value two-sided. Without a test (the note says why) when a window is
        empty or there is no variation.
    """
    from statsmodels.stats.proportion import confint_proportions_2indep, proportions_ztest

    (k1, n1), (k0, n0) = recent, baseline
    params = {"recent_failed": k1, "recent_sessions": n1, "baseline_failed": k0, "baseline_sessions": n0, "alpha": alpha, **windows}
    if min(n1, n0) == 0:
        return [row("two_window_fault_rate", scope, "portfolio", "fault_rate_diff", n=n1 + n0, parameters=params, note="a window has no sessions")]
    p1, p0 = k1 / n1, k0 / n0
    params.update(recent_rate=p1, baseline_rate=p0)
    if k1 + k0 in (0, n1 + n0):
        return [row("two_window_fault_rate", scope, "portfolio", "fault_rate_diff", p1 - p0, n=n1 + n0, parameters=params, note="no variation (all sessions succeeded or all failed): test undefined")]
    z, p = proportions_ztest(np.array([k1, k0]), np.array([n1, n0]), alternative="two-sided")
    lo, hi = confint_proportions_2indep(k1, n1, k0, n0, method="wald", compare="diff", alpha=alpha)
    verdict = "significant change" if p < alpha else "no significant change"
    return [row("two_window_fault_rate", scope, "portfolio", "fault_rate_diff", p1 - p0, lo, hi, z, p, n1 + n0, params, verdict)]


def load_fault_logit(scope: str, sessions: pd.DataFrame, alpha: float) -> list[dict]:
    """Logit(failed ~ 1 + load_sessions_24h) of the sessions of one source.

    Parameters
    ----------
    scope : str
        source_name.
    sessions : pandas.DataFrame
        `session_load` rows: failed (0/1), load_sessions_24h.
    alpha : float
        Significance level (and 1 - CI level).

    Returns
    -------
    list of dict
        One `row`: value = odds ratio per additional session in the port's previous 24 h, CI =
        exp(Wald CI of the coefficient), statistic = z of the coefficient. Without an estimate (the
        note says why) when there is too little variation or the fit fails.
    """
    import statsmodels.api as sm

    n = len(sessions)
    params = {"predictor": "load_sessions_24h", "outcome": "failed session", "alpha": alpha}
    if n < 10 or sessions["failed"].nunique() < 2 or sessions["load_sessions_24h"].nunique() < 2:
        return [row("load_fault_logit", scope, "portfolio", "odds_ratio", n=n, parameters=params, note="not enough variation to fit")]
    x = sm.add_constant(sessions[["load_sessions_24h"]].astype(float))
    try:
        fit = sm.Logit(sessions["failed"].astype(float), x).fit(disp=0, maxiter=100)
    except Exception as exc:  # noqa: BLE001 - perfect separation / singular matrix: report, do not fail the job
        return [row("load_fault_logit", scope, "portfolio", "odds_ratio", n=n, parameters=params, note=f"fit failed: {type(exc).__name__}: {exc}"[:300])]
    beta = fit.params["load_sessions_24h"]
    lo, hi = fit.conf_int(alpha=alpha).loc["load_sessions_24h"]
    params.update(
        coef=float(beta),
        intercept=float(fit.params["const"]),
        mean_load=float(sessions["load_sessions_24h"].mean()),
        failure_rate=float(sessions["failed"].mean()),
        converged=bool(fit.mle_retvals.get("converged", True)),
    )
    p = fit.pvalues["load_sessions_24h"]
    note = ("higher load, more failures" if beta > 0 else "higher load, fewer failures") if p < alpha else "no significant association"
    return [row("load_fault_logit", scope, "portfolio", "odds_ratio", math.exp(beta), math.exp(lo), math.exp(hi), fit.tvalues["load_sessions_24h"], p, n, params, note)]


def lost_revenue_bootstrap(
    scope: str, success_kwh: np.ndarray, failed_sessions: int, price_per_kwh: float, currency: str, resamples: int, confidence: float, seed: int, sampled_from: int | None = None
) -> list[dict]:
    """Lost revenue = failed sessions x mean kWh of a successful session x price.

    The CI comes from scipy.stats.bootstrap of the mean kWh (BCa, which corrects the skew of
    session energy; percentile when the sample is degenerate); failed_sessions and the price are
    taken as known.

    Parameters
    ----------
    scope : str
        source_name.
    success_kwh : numpy.ndarray
        Energy of successful sessions (kWh; non-finite values skipped), possibly a sample.
    failed_sessions : int
    price_per_kwh : float
        Tariff (``currency`` per kWh).
    currency : str
    resamples : int
        Bootstrap resamples.
    confidence : float
        Confidence level of the CI (0-1).
    seed : int
    sampled_from : int or None
        Successful sessions ``success_kwh`` was sampled from (for the parameters); None: not sampled.

    Returns
    -------
    list of dict
        One `row`: lost revenue and its CI (``currency``). Without an estimate (the note says why) with
        fewer than 2 successful sessions with energy.
    """
    from scipy.stats import bootstrap

    kwh = np.asarray(success_kwh, dtype=float)
    kwh = kwh[np.isfinite(kwh)]
    params = {
        "failed_sessions": failed_sessions,
        "price_per_kwh": price_per_kwh,
        "currency": currency,
        "resamples": resamples,
        "confidence_level": confidence,
        "kwh_sample": len(kwh),
        "successful_sessions": sampled_from or len(kwh),
    }
    if len(kwh) < 2:
        return [row("lost_revenue_bootstrap", scope, "portfolio", "lost_revenue", n=failed_sessions, parameters=params, note="fewer than 2 successful sessions with energy")]
    scale = failed_sessions * price_per_kwh
    mean = kwh.mean()
    method = "BCa"
    try:
        if np.ptp(kwh) == 0:
            raise ValueError("all values equal: BCa undefined")
        res = bootstrap((kwh,), np.mean, n_resamples=resamples, confidence_level=confidence, method="BCa", rng=np.random.default_rng(seed), batch=200)
        lo, hi = res.confidence_interval
        if not (np.isfinite(lo) and np.isfinite(hi)):
            raise ValueError("BCa interval not finite")
    except Exception:  # noqa: BLE001 - degenerate samples (all equal): fall back to the percentile interval
        method = "percentile"
        res = bootstrap((kwh,), np.mean, n_resamples=resamples, confidence_level=confidence, method="percentile", rng=np.random.default_rng(seed), batch=200)
        lo, hi = res.confidence_interval
    params.update(mean_kwh=float(mean), mean_kwh_ci=[float(lo), float(hi)], method=method, lost_kwh=float(failed_sessions * mean))
    return [
        row(
            "lost_revenue_bootstrap",
            scope,
            "portfolio",
            "lost_revenue",
            scale * mean,
            scale * lo,
            scale * hi,
            None,
            None,
            failed_sessions,
            params,
            f"{currency}; failed sessions x mean successful kWh x price",
        )
    ]


def alert_precision_recall(scope: str, chargers: pd.DataFrame, thresholds: Sequence[float], target_pct: float) -> list[dict]:
    """Precision/recall of the alert rule "fault-rate z > t" per threshold t.

    Positive label = uptime_pct < target_pct.

    Parameters
    ----------
    scope : str
        source_name.
    chargers : pandas.DataFrame
        One row per scored charger with `z` and `uptime_pct` (observed, same window, percent).
    thresholds : Sequence[float]
        The z thresholds t.
    target_pct : float
        Uptime target (percent).

    Returns
    -------
    list of dict
        Two `row` dicts per threshold (precision, recall; fractions 0-1) with tp/fp/fn in parameters;
        precision is null when no alert fires.
    """
    out: list[dict] = []
    df = chargers.dropna(subset=["z", "uptime_pct"])
    label = df["uptime_pct"] < target_pct
    positives = int(label.sum())
    for t in thresholds:
        alert = df["z"] > t
        tp = int((alert & label).sum())
        fp = int((alert & ~label).sum())
        fn = int((~alert & label).sum())
        params = {
            "threshold_z": t,
            "tp": tp,
            "fp": fp,
            "fn": fn,
            "alerts": tp + fp,
            "positives": positives,
            "label": f"charger observed uptime < {target_pct}% in the window",
            "population": "chargers scored for fault rate",
        }
        precision = tp / (tp + fp) if tp + fp else None
        recall = tp / positives if positives else None
        out.append(row("alert_threshold_pr", scope, f"z>{t:g}", "precision", precision, n=len(df), parameters=params))
        out.append(row("alert_threshold_pr", scope, f"z>{t:g}", "recall", recall, n=len(df), parameters=params))
    return out


def hotspot_rows(scope: str, chargers: pd.DataFrame, z_threshold: float) -> list[dict]:
    """One row per scored charger: its window fault rate, z against the portfolio and the flag.

    Parameters
    ----------
    scope : str
        source_name.
    chargers : pandas.DataFrame
        `charger_fault_rates` rows of the source; chargers without z are skipped.
    z_threshold : float
        ``hotspot_z`` (stored in the parameters).

    Returns
    -------
    list of dict
        One `row` per charger with a z: fault_rate (fraction 0-1), statistic = z, n = sessions in the
        window, note 'hotspot' when flagged.
    """
    out = []
    for r in chargers.itertuples(index=False):
        if r.z is None or (isinstance(r.z, float) and math.isnan(r.z)):
            continue
        params = {"station_id": r.station_id, "failed": int(r.failed_window), "portfolio_rate": _f(r.portfolio_rate), "window_days": int(r.window_days), "z_threshold": z_threshold}
        out.append(
            row("fault_rate_hotspot", scope, str(r.charger_id), "fault_rate", r.fault_rate, statistic=r.z, n=int(r.sessions_window), parameters=params, note="hotspot" if r.is_hotspot else None)
        )
    return out

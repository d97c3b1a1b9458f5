"""Rollout evaluation: did a change to sites (firmware, replacement, maintenance contract) change
their fault rate or their uptime?

Reads silver.port_status_intervals (written by jobs/reliability.py) and bronze.rollouts; the job
(jobs/rollout.py) writes gold.rollout_effects and gold.rollout_event_study.

The unit is the site (the station; the charger, else the port, without station id: as the fault
forecast's `site_id`), the time step a period of `rollout.period_days` days from the source's
first observed UTC day (complete periods only). Per site and period: faults (failures with a
fault cause, `reliability.mark_failures`), observed port-hours (the exposure) and observed uptime.

Per change type, a difference-in-differences with two-way fixed effects (site and period) on the
sites given that change (treated from the period after the one holding their rollout: the
rollout period itself is part before, part after, and is left out) and the sites never given
any change (controls): the fault rate by a Poisson GLM with the log of the exposure as offset
(the effect a rate ratio), uptime by OLS (percentage points). Standard errors are clustered by
site (statsmodels ``cov_type="cluster"``), with t(min(treated, control) - 1) critical values
(see `did_effect`).

Why never-treated controls: with staggered rollouts, a two-way fixed-effects regression that
also used not-yet-treated sites as controls would compare later-treated sites with
already-treated ones, which biases the pooled estimate when the effect grows or fades after a
rollout (Goodman-Bacon 2021). Never-treated controls reduce that bias but do not remove it:
already-treated sites still help identify the period effects, and the event-study terms mix
cohorts (Sun and Abraham 2021). With a constant effect (the generator's) the estimate is
unbiased; the event study shows whether the effect is constant, and docs/NETWORK.md names the
cohort-by-period design that would be next. Sites with another change type are left out of the
controls, and a site's rows stop at its first rollout of another type.

The event study replaces the single post term by one term per period relative to the rollout
(``-leads .. lags``, the ends binned, -1 the reference). Its pre-trend test is the joint Wald
test that every lead is zero, as Hotelling's T^2 with the cluster covariance estimated from
d = min(treated, control) - 1 degrees of freedom: F = (d - q + 1) / (d q) W against F(q, d - q + 1)
for q leads (W / q against F(q, d) rejects too often with ~10 clusters): a small p-value
says treated and control sites already drifted apart before the rollout, so the parallel-trends
assumption of the estimate is in doubt. A large one does not prove the assumption (the test has
little power with few sites or short leads).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from scipy import stats

from common.core.config import RolloutConfig
from common.io.schemas import ROLLOUT_CHANGE_TYPES
from common.network import reliability as rel
from common.network.forecast import site_id

FAULT_RATE, UPTIME = "fault_rate", "uptime_pct"
OUTCOMES = (FAULT_RATE, UPTIME)
PANEL_COLUMNS = ("source_name", "site_id", "period", "period_start", "faults", "exposure_hours", "uptime_pct")
TREATED_COLUMNS = ("source_name", "site_id", "change_type", "rollout_period")
EFFECT_COLUMNS = (
    "source_name",
    "change_type",
    "outcome",
    "estimate",
    "ci_low",
    "ci_high",
    "se",
    "p_value",
    "significant",
    "n_treated_units",
    "n_control_units",
    "n_periods",
    "pretrend_p_value",
    "method",
    "note",
)
EVENT_COLUMNS = ("source_name", "change_type", "outcome", "rel_period", "estimate", "ci_low", "ci_high", "se", "n_treated_units")
EFFECTS_SCHEMA = (
    "source_name string, change_type string, outcome string, estimate double, ci_low double, ci_high double, se double, p_value double, "
    "significant boolean, n_treated_units int, n_control_units int, n_periods int, pretrend_p_value double, method string, note string"
)
EVENT_SCHEMA = "source_name string, change_type string, outcome string, rel_period int, estimate double, ci_low double, ci_high double, se double, n_treated_units int"
_METHODS = {FAULT_RATE: "poisson_twfe_did", UPTIME: "ols_twfe_did"}


# --------------------------------------------------------------------------------------------
# Spark: the site x period panel and the treated sites
# --------------------------------------------------------------------------------------------
def normalise_change_type(col: Column) -> Column:
    """A change type as a label: lower case, runs of other characters as one underscore.

    'Maintenance Contract' and 'maintenance-contract' are both ``maintenance_contract``; a type
    outside `common.io.schemas.ROLLOUT_CHANGE_TYPES` keeps its own label (evaluated on its own).

    Parameters
    ----------
    col : Column
        The change type as written.

    Returns
    -------
    Column
        The label; 'other' when nothing is left.
    """
    label = F.regexp_replace(F.regexp_replace(F.lower(F.trim(col)), "[^a-z0-9]+", "_"), "^_+|_+$", "")
    return F.when(F.length(label) > 0, label).otherwise(F.lit("other"))


def _secs(col: str | Column) -> Column:
    """Seconds since the epoch with their fraction (unix_timestamp truncates; reliability keeps it)."""
    return (F.col(col) if isinstance(col, str) else col).cast("double")


def _origins(intervals: DataFrame, days: int) -> DataFrame:
    """Per source: period 0's start (its first observed UTC day) and the number of complete periods."""
    spans = intervals.groupBy("source_name").agg(F.to_date(F.min("start_ts")).cast("timestamp").alias("origin"), F.max("end_ts").alias("last_ts"))
    return spans.withColumn("n_periods", F.floor((_secs("last_ts") - _secs("origin")) / (days * 86400)).cast("int"))


def _period(ts: str, days: int) -> Column:
    """The period holding the instant `ts` (0 = the source's first)."""
    return F.floor((_secs(ts) - _secs("origin")) / (days * 86400)).cast("int")


def site_panel(intervals: DataFrame, params: RolloutConfig) -> DataFrame:
    """Per site and complete period: faults, observed port-hours and observed uptime.

    Parameters
    ----------
    intervals : DataFrame
        silver.port_status_intervals (classified: state up / down / excluded / no_data).
    params : RolloutConfig
        ``period_days``.

    Returns
    -------
    DataFrame
        `PANEL_COLUMNS`: period 0 opens on the source's first observed UTC day; faults (failures
        whose episode cause is a fault, counted in the period the failure starts), exposure_hours
        (port-hours not no_data, h) and uptime_pct ((observed - down) / observed x 100, the
        reliability tables' observed uptime). Only periods before the source's last complete
        one ends and with observed time.
    """
    days = params.period_days
    marked = rel.mark_failures(intervals).withColumn("site_id", site_id(intervals))
    marked = marked.join(_origins(intervals, days), "source_name")
    last_instant = F.col("end_ts") - F.expr("INTERVAL 1 MICROSECOND")
    pieces = marked.withColumn("period", F.explode(F.sequence(_period("start_ts", days), F.floor((_secs(last_instant) - _secs("origin")) / (days * 86400)).cast("int"))))
    p_start = F.col("origin") + F.make_interval(days=F.col("period") * days)
    p_end = F.col("origin") + F.make_interval(days=(F.col("period") + 1) * days)
    secs = _secs(F.least("end_ts", p_end)) - _secs(F.greatest("start_ts", p_start))
    first_piece = (F.col("start_ts") >= p_start) & (F.col("start_ts") < p_end)
    # a failure counts in the period it starts even when its interval has no length there
    fault = F.col("is_failure") & (F.col("episode_cause") == "fault") & first_piece
    pieces = pieces.withColumn("hours", secs / 3600.0).where(((F.col("hours") > 0) | fault) & (F.col("period") < F.col("n_periods")))
    out = pieces.groupBy("source_name", "site_id", "period", "origin").agg(
        F.sum(F.when((F.col("state") != rel.UNOBSERVED) & (F.col("hours") > 0), F.col("hours"))).alias("exposure_hours"),
        F.coalesce(F.sum(F.when((F.col("state") == rel.DOWN) & (F.col("hours") > 0), F.col("hours"))), F.lit(0.0)).alias("down_hours"),
        F.sum(fault.cast("int")).cast("long").alias("faults"),
    )
    return (
        out.where(F.col("exposure_hours") > 0)
        .withColumn("uptime_pct", (F.col("exposure_hours") - F.col("down_hours")) / F.col("exposure_hours") * 100.0)
        .withColumn("period_start", F.date_add(F.to_date("origin"), F.col("period") * days))
        .select(*PANEL_COLUMNS)
    )


def rollout_matches(rollouts: DataFrame, intervals: DataFrame) -> DataFrame:
    """Each rollout row with the sites it falls on, per status source (none: not in the output).

    A row naming a station a source observes is that station's; else a row naming a charger the
    source observes is the charger's site (the station whose intervals list it; the charger or
    its port where the feed has no station ids). Charger ids are matched within each source.

    Parameters
    ----------
    rollouts : DataFrame
        bronze.rollouts: station_id and / or charger_id, ts, change_type.
    intervals : DataFrame
        silver.port_status_intervals.

    Returns
    -------
    DataFrame
        rollout_row (a hash of the row, for counting the rows without a site),
        source_name, site_id, ts, change_type (as written).
    """
    sites = intervals.select("source_name", site_id(intervals).alias("site_id"), "charger_id").distinct()
    observed = sites.select("source_name", "site_id").distinct()
    chargers = sites.where("charger_id IS NOT NULL").select("source_name", "charger_id", F.col("site_id").alias("charger_site")).distinct()
    # a hash of the whole row, not monotonically_increasing_id: `rows` is read twice below; the
    # rollouts' own lineage (source_name: the change log) is not the status source
    rows = rollouts.select(F.xxhash64(*rollouts.columns).alias("rollout_row"), "station_id", "charger_id", "ts", "change_type")
    by_station = rows.where("station_id IS NOT NULL").join(observed, F.col("station_id") == F.col("site_id")).select("rollout_row", "source_name", "site_id", "ts", "change_type")
    by_charger = (
        rows.where("charger_id IS NOT NULL")
        .join(chargers, "charger_id")
        .join(by_station.select("rollout_row", "source_name"), ["rollout_row", "source_name"], "left_anti")
        .select("rollout_row", "source_name", F.col("charger_site").alias("site_id"), "ts", "change_type")
    )
    return by_station.unionByName(by_charger)


def treated_sites(matches: DataFrame, intervals: DataFrame, params: RolloutConfig) -> DataFrame:
    """Per source, site and change type: the period of the site's first rollout of that type.

    Parameters
    ----------
    matches : DataFrame
        `rollout_matches` output.
    intervals : DataFrame
        silver.port_status_intervals (the sources' first days).
    params : RolloutConfig
        ``period_days``.

    Returns
    -------
    DataFrame
        `TREATED_COLUMNS`: change_type normalised (`normalise_change_type`); rollout_period (0 =
        the source's first period; negative before it). A charger's rollout counts for its
        site: the site is the unit, so a change to one charger of several is diluted in its
        site's rates.
    """
    days = params.period_days
    labelled = matches.withColumn("change_type", normalise_change_type(F.col("change_type")))
    first = labelled.groupBy("source_name", "site_id", "change_type").agg(F.min("ts").alias("ts"))
    return first.join(_origins(intervals, days), "source_name").select("source_name", "site_id", "change_type", _period("ts", days).alias("rollout_period"))


# --------------------------------------------------------------------------------------------
# pandas / statsmodels: the estimates
# --------------------------------------------------------------------------------------------
def _design(df: pd.DataFrame, extra: pd.DataFrame) -> pd.DataFrame:
    """Constant, site and period dummies (dense: a site x period panel of a few thousand rows) and `extra`."""
    fe = pd.get_dummies(df[["site_id", "period"]].astype(str), drop_first=True, dtype=float)
    x = pd.concat([pd.Series(1.0, index=df.index, name="const"), fe, extra], axis=1)
    return x.loc[:, x.std(ddof=0).gt(0) | (x.columns == "const")]


def _fit(df: pd.DataFrame, outcome: str, extra: pd.DataFrame, caught: list[str]):
    """The two-way fixed-effects fit, SEs clustered by site; statsmodels' warnings go to `caught`."""
    import statsmodels.api as sm

    x = _design(df, extra)
    groups = pd.factorize(df["site_id"])[0]
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        if outcome == FAULT_RATE:
            model = sm.GLM(df["faults"].to_numpy(float), x, family=sm.families.Poisson(), offset=np.log(df["exposure_hours"].to_numpy(float)))
            res = model.fit(cov_type="cluster", cov_kwds={"groups": groups}, use_t=True)
        else:
            res = sm.OLS(df["uptime_pct"].to_numpy(float), x).fit(cov_type="cluster", cov_kwds={"groups": groups}, use_t=True)
    caught += [w.category.__name__ for w in seen]
    return res


def _scale(outcome: str, v: float) -> float:
    """A coefficient on the outcome's scale: a rate ratio for the fault rate, points for uptime."""
    return float(np.exp(v)) if outcome == FAULT_RATE else float(v)


def _informative(df: pd.DataFrame, outcome: str) -> tuple[pd.DataFrame, str | None]:
    """Rows that carry information about a Poisson fixed-effects fit (all of them for OLS)."""
    if outcome != FAULT_RATE:
        return df, None
    # A site or period without any fault has a fixed effect of minus infinity: its rows add
    # nothing to the estimate of the effect (the Poisson FE likelihood conditions them out).
    site_faults = df.groupby("site_id")["faults"].transform("sum")
    period_faults = df.groupby("period")["faults"].transform("sum")
    keep = (site_faults > 0) & (period_faults > 0)
    dropped = df.loc[~(site_faults > 0), "site_id"].nunique()
    return df[keep], (f"{dropped} site(s) without any fault left out" if dropped else None)


def did_effect(panel: pd.DataFrame, outcome: str, params: RolloutConfig) -> tuple[dict, list[dict]]:
    """The difference-in-differences effect and the event study of one change type and outcome.

    Parameters
    ----------
    panel : pandas.DataFrame
        One row per site and period: site_id, period, faults, exposure_hours (h), uptime_pct and
        rollout_period (NaN for the control sites, which must never have had any change).
    outcome : str
        'fault_rate' (Poisson GLM, log exposure offset; estimate a rate ratio) or 'uptime_pct'
        (OLS; estimate in percentage points).
    params : RolloutConfig
        leads, lags, min_treated_units, min_control_units, confidence_level.

    Returns
    -------
    tuple
        The effect row (estimate, ci_low, ci_high, se (of the log rate ratio for the fault
        rate), p_value, significant, n_treated_units, n_control_units, n_periods,
        pretrend_p_value, method, note; estimate None with the reason in note when there is not
        enough to fit) and the event-study rows (rel_period, estimate, ci_low, ci_high, se,
        n_treated_units; rel_period -1 the reference, without CI).
    """
    df = panel[panel["exposure_hours"] > 0].copy() if outcome == FAULT_RATE else panel[panel["uptime_pct"].notna()].copy()
    df, dropped = _informative(df, outcome)
    rp = df["rollout_period"]
    treated = rp.notna()
    # Treated sites must be observed before and after their rollout to say anything.
    has_pre = (df["period"] < rp).groupby(df["site_id"]).transform("any")
    has_post = (df["period"] > rp).groupby(df["site_id"]).transform("any")
    one_sided = int(df.loc[treated & ~(has_pre & has_post), "site_id"].nunique())
    df = df[~treated | (has_pre & has_post)]
    treated = df["rollout_period"].notna()
    n_treated, n_control = int(df.loc[treated, "site_id"].nunique()), int(df.loc[~treated, "site_id"].nunique())
    row: dict = {
        "outcome": outcome,
        "n_treated_units": n_treated,
        "n_control_units": n_control,
        "n_periods": int(df["period"].nunique()),
        "method": _METHODS[outcome],
    }
    notes = [dropped] if dropped else []
    if one_sided:
        notes.append(f"{one_sided} treated site(s) left out: not observed both before and after their rollout (rolled out before the first or in or after the last complete period)")
    if n_treated < params.min_treated_units or n_control < params.min_control_units:
        why = (
            f"not estimated: {n_treated} treated site(s) observed before and after their rollout (rollout.min_treated_units {params.min_treated_units}), "
            f"{n_control} never-treated site(s) (rollout.min_control_units {params.min_control_units})"
        )
        return {**row, "note": "; ".join([why, *notes])}, []
    if outcome == FAULT_RATE:
        pre = df.loc[treated & (df["period"] < df["rollout_period"]), "faults"].sum()
        post = df.loc[treated & (df["period"] > df["rollout_period"]), "faults"].sum()
        if pre == 0 or post == 0:
            # the rate ratio would be 0 or infinite: the Poisson fit reports a huge coefficient as "converged"
            side = "before" if pre == 0 else "after"
            why = f"not estimated: the treated sites have no fault {side} their rollouts, so the rate ratio is {'infinite' if pre == 0 else '0'} or undefined"
            return {**row, "note": "; ".join([why, *notes])}, []
    alpha = 1 - params.confidence_level
    # Critical values from t(min(treated, control) - 1), not statsmodels' t(sites - 1): with a
    # dozen treated sites among ~40 clustered SEs are too small (few clusters carry the
    # treatment), and over 200 null worlds of the generator t(sites - 1) called 9 % significant at
    # alpha 0.05 (this: 7 %; 4.5 % over 1,000 others, docs/NETWORK.md). The effective degrees of freedom of a treatment on few clusters approach their
    # number (Imbens and Kolesar 2016); statsmodels has no such correction, hence the lines below.
    dof = min(n_treated, n_control) - 1
    crit = float(stats.t.ppf(1 - alpha / 2, dof))

    # The pooled effect: the rollout period itself (part before, part after) is left out.
    pooled = df[df["period"] != df["rollout_period"]]
    post = (pooled["period"] > pooled["rollout_period"]).astype(float).rename("post")
    rel_period = (df["period"] - df["rollout_period"]).clip(-params.leads, params.lags)
    terms = {e: f"rel_{e}".replace("-", "m") for e in range(-params.leads, params.lags + 1) if e != -1}
    events = pd.DataFrame({name: (rel_period == e).astype(float) for e, name in terms.items()}, index=df.index)
    caught: list[str] = []
    try:
        res = _fit(pooled, outcome, post.to_frame(), caught)
        ev = _fit(df, outcome, events, caught)
    except (ValueError, np.linalg.LinAlgError, MemoryError) as exc:  # e.g. a singular design, or too many sites for dense dummies: say so, never abort the stage
        return {**row, "note": "; ".join([f"not estimated: the fit failed ({type(exc).__name__}: {exc})"[:300], *notes])}, []
    b, se = float(res.params["post"]), float(res.bse["post"])
    lo, hi = b - crit * se, b + crit * se
    usable_se = bool(np.isfinite(se) and se > 0)
    p = float(2 * stats.t.sf(abs(b / se), dof)) if usable_se else float("nan")
    if not usable_se:
        notes.append(f"no usable standard error ({se}): no p-value or interval")

    # The event study: one term per period relative to the rollout (fitted above), ends binned, -1 the reference.
    counts = df[treated].groupby(rel_period[treated])["site_id"].nunique()
    faults_at = df[treated].groupby(rel_period[treated])["faults"].sum()
    # an event term whose treated sites had no fault has no finite rate ratio: no row for it, and not in the pre-trend test
    unidentified = {e for e in terms if outcome == FAULT_RATE and faults_at.get(e, 0) == 0}
    if unidentified:
        notes.append(f"event-study period(s) {sorted(unidentified)} without a treated fault: not estimated")
    event_rows = [{"rel_period": -1, "estimate": _scale(outcome, 0.0), "ci_low": None, "ci_high": None, "se": None, "n_treated_units": int(counts.get(-1, 0))}]
    for e, name in terms.items():
        if name in ev.params.index and e not in unidentified:
            c, c_se = float(ev.params[name]), float(ev.bse[name])
            low, high, est = c - crit * c_se, c + crit * c_se, _scale(outcome, c)
            event_rows.append({"rel_period": e, "estimate": est, "ci_low": _scale(outcome, low), "ci_high": _scale(outcome, high), "se": float(ev.bse[name]), "n_treated_units": int(counts.get(e, 0))})
    leads = [name for e, name in terms.items() if e < -1 and name in ev.params.index and e not in unidentified]
    pretrend = None
    if leads:
        # The joint Wald statistic over the leads as Hotelling's T^2 with a covariance estimated
        # from `dof` degrees of freedom (module docstring); q is the rank the leads really have.
        cov = ev.cov_params().loc[leads, leads].to_numpy()
        lead_b = ev.params[leads].to_numpy()
        q = int(np.linalg.matrix_rank(cov))
        wald = float(lead_b @ np.linalg.pinv(cov) @ lead_b)
        if q >= 1 and dof - q + 1 >= 1 and np.isfinite(wald):
            pretrend = float(stats.f.sf((dof - q + 1) / (dof * q) * wald, q, dof - q + 1))
        else:
            notes.append(f"no pre-trend test: {q} lead(s) against {dof} degrees of freedom")
    notes.insert(0, f"SEs clustered by {n_treated + n_control} sites, t({dof}) (treated or control sites - 1); rollout period left out")
    if pretrend is not None and pretrend < params.alpha:
        notes.append(f"pre-trend test rejects parallel trends (p {pretrend:.3f}): the estimate is in doubt")
    if caught:
        notes.append("statsmodels warned: " + ", ".join(f"{name} x{caught.count(name)}" for name in sorted(set(caught))))
    effect = {
        **row,
        "estimate": _scale(outcome, b),
        "ci_low": _scale(outcome, lo) if usable_se else None,
        "ci_high": _scale(outcome, hi) if usable_se else None,
        "se": se,
        "p_value": p if usable_se else None,
        "significant": bool(p < params.alpha) if usable_se else None,
        "pretrend_p_value": pretrend,
        "note": "; ".join(notes),
    }
    return effect, event_rows


def evaluate_rollouts(panel: pd.DataFrame, treated: pd.DataFrame, params: RolloutConfig) -> tuple[pd.DataFrame, pd.DataFrame]:
    """gold.rollout_effects and gold.rollout_event_study rows of every source and change type.

    Parameters
    ----------
    panel : pandas.DataFrame
        `site_panel` rows.
    treated : pandas.DataFrame
        `treated_sites` rows.
    params : RolloutConfig

    Returns
    -------
    tuple of pandas.DataFrame
        `EFFECT_COLUMNS` rows (one per source, change type and outcome) and `EVENT_COLUMNS` rows.
        Controls of a change type are the source's sites without any rollout; sites with only
        another change type are in neither group, and a treated site's rows stop at its first
        rollout of another type (what follows mixes both changes).
    """
    effects, events = [], []
    for (source, change), tr in treated.groupby(["source_name", "change_type"], sort=True):
        sp = panel[panel["source_name"] == source]
        of_source = treated[treated["source_name"] == source]
        ever = set(of_source["site_id"])
        sample = sp[(~sp["site_id"].isin(ever)) | sp["site_id"].isin(tr["site_id"])]
        sample = sample.merge(tr[["site_id", "rollout_period"]], on="site_id", how="left")
        sample["rollout_period"] = sample["rollout_period"].astype(float)
        other = of_source[(of_source["change_type"] != change) & of_source["site_id"].isin(tr["site_id"])].groupby("site_id")["rollout_period"].min()
        cut_at = sample["site_id"].map(other)
        sample = sample[cut_at.isna() | (sample["period"] < cut_at)]
        for outcome in OUTCOMES:
            effect, rows = did_effect(sample, outcome, params)
            if len(other):
                effect["note"] = f"{len(other)} treated site(s) cut at their first rollout of another type; " + effect["note"]
            if change not in ROLLOUT_CHANGE_TYPES:
                effect["note"] = f"change type not among {', '.join(ROLLOUT_CHANGE_TYPES)}: evaluated as its own label; " + effect["note"]
            effects.append({"source_name": source, "change_type": change, **effect})
            events += [{"source_name": source, "change_type": change, "outcome": outcome, **r} for r in rows]
    out = pd.DataFrame(effects, columns=list(EFFECT_COLUMNS))
    ev = pd.DataFrame(events, columns=list(EVENT_COLUMNS)).sort_values(["source_name", "change_type", "outcome", "rel_period"], ignore_index=True)
    for frame in (out, ev):
        for col in frame.columns:
            if frame[col].dtype == object:
                frame[col] = frame[col].astype(object).where(frame[col].notna(), None)
    return out.astype({"n_treated_units": "Int32", "n_control_units": "Int32", "n_periods": "Int32"}), ev.astype({"rel_period": "int32", "n_treated_units": "Int32"})

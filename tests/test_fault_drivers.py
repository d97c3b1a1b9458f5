"""Root cause of failed sessions (gold.fault_drivers): the logit against an independent fit
(scikit-learn) and hand-computed marginal effects, its family-wise error over repeated null
worlds, the port state at a session's start, the features, and the generator's injected drivers
recovered end to end (generate -> ingest -> reliability -> fault_analysis). Dundee's real
sessions and the demo fleet (nothing injected): tests/test_reliability.py.
"""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
import pandas as pd
import pytest
from chispa import assert_df_equality
from pyspark.sql import functions as F
from scipy import stats as sps
from sklearn.linear_model import LogisticRegression

from common.core.config import FaultDriversConfig
from common.io import tables
from common.network.fault_drivers import MODEL, fit_source, hour_bands, port_state_at_start, session_features
from tests.conftest import make_config

PARAMS = FaultDriversConfig()
STAMP = datetime(2026, 1, 1, tzinfo=timezone.utc)
BANDS = hour_bands(PARAMS.hour_band_edges)


def simulated_sessions(rng: np.random.Generator, n: int, log_odds: dict[str, float], base: float = 0.05, stations: int = 40) -> pd.DataFrame:
    """Sessions of `stations` stations (network by station, every third one DC) whose failure follows
    logit(base) + the given log-odds (keys: dc, night, load, network:<X>)."""
    st = rng.integers(0, stations, n)
    network = np.array(["A", "B", "C", "D"])[st % 4]
    dc = st % 3 == 0
    band = np.array(BANDS)[rng.integers(0, len(BANDS), n)]
    load = rng.poisson(3, n)
    x = np.log(base / (1 - base)) + log_odds.get("dc", 0) * dc + log_odds.get("night", 0) * (band == "00-06") + log_odds.get("load", 0) * load
    x = x + sum(v * (network == k.split(":")[1]) for k, v in log_odds.items() if k.startswith("network:"))
    failed = (rng.random(n) < 1 / (1 + np.exp(-x))).astype(int)
    return pd.DataFrame(
        {
            "source_name": "s",
            "station_id": [f"S{i}" for i in st],
            "failed": failed,
            "network": network,
            "dc_station": dc,
            "power_kw": None,
            "hour_band": band,
            "weekend": rng.random(n) < 2 / 7,
            "load": load,
            "excluded": 3,
            "fraction": 1.0,
        }
    )


def test_the_logit_equals_an_independent_fit_and_recovers_the_simulated_drivers():
    truth = {"dc": 0.8, "night": 1.0, "load": 0.1, "network:B": 0.7}
    pdf = simulated_sessions(np.random.default_rng(1), 20000, truth)
    raw = fit_source(pdf, PARAMS, "UTC", STAMP)
    model = raw[raw.driver == MODEL].iloc[0]
    assert model.sessions == 20000 and model.failed == pdf.failed.sum() and model.excluded_sessions == 3 and model.converged

    # the same design built here by hand, fitted without penalty by scikit-learn
    design = pd.DataFrame({f"network[{k}]": (pdf.network == k).astype(float) for k in "BCD"})  # A: the most common network
    design["dc_station"] = pdf.dc_station.astype(float)
    for band in BANDS:
        if band != "10-16":  # the band holding reference_hour 12
            design[f"hour_band[{band}]"] = (pdf.hour_band == band).astype(float)
    design["weekend"] = pdf.weekend.astype(float)
    design["load"] = pdf.load.astype(float)
    sk = LogisticRegression(penalty=None, tol=1e-10, max_iter=10000).fit(design.to_numpy(), pdf.failed)
    coef = dict(zip(design.columns, sk.coef_[0]))
    p = sk.predict_proba(design.to_numpy())[:, 1]

    rows = {f"{r.driver}[{r.level}]" if r.driver in ("network", "hour_band") else r.driver: r for r in raw[raw.driver != MODEL].itertuples()}
    assert set(rows) == set(design.columns)
    for term, r in rows.items():
        assert r.coef == pytest.approx(coef[term], abs=1e-4), term
        assert r.odds_ratio == pytest.approx(np.exp(coef[term]), rel=1e-3)
        assert r.or_ci_low < r.odds_ratio < r.or_ci_high
        # average marginal effect by hand: discrete change for 0/1 terms, mean p(1-p) x beta for load
        if term == "load":
            ame = np.mean(p * (1 - p)) * coef[term]
        else:
            z = sk.decision_function(design.to_numpy())
            on, off = z + coef[term] * (1 - design[term]), z - coef[term] * design[term]
            ame = np.mean(1 / (1 + np.exp(-on)) - 1 / (1 + np.exp(-off)))
        assert r.marginal_effect_pp == pytest.approx(100 * ame, abs=1e-3), term

    # every true coefficient within its Bonferroni-adjusted interval (all terms at once, 95 %)
    expected = {t: 0.0 for t in rows} | {"dc_station": 0.8, "hour_band[00-06]": 1.0, "load": 0.1, "network[B]": 0.7}
    crit = sps.t.ppf(1 - PARAMS.alpha / (2 * len(rows)), df=40 - 1)
    for term, r in rows.items():
        assert abs(r.coef - expected[term]) <= crit * r.std_err, (term, r.coef, r.std_err)
        assert r.significant == (expected[term] != 0), term  # strong effects found, none invented


def test_no_driver_is_found_in_null_worlds_more_often_than_alpha():
    """Family-wise error over 100 simulated worlds without drivers (40 clusters): Holm over the
    terms with t(G-1) cluster-robust inference keeps P(any term significant) near alpha. The bound
    is Binomial(100, alpha)'s upper 1 % tail."""
    reps = 100
    hits = sum(bool(fit_source(simulated_sessions(np.random.default_rng(500 + r), 2500, {}), PARAMS, "UTC", STAMP).significant.fillna(False).any()) for r in range(reps))
    bound = int(sps.binom.ppf(0.99, reps, PARAMS.alpha))
    print(f"\n{hits} of {reps} null worlds with a significant term (alpha {PARAMS.alpha}, bound {bound})")
    assert hits <= bound


def test_small_or_one_sided_sources_are_not_fitted_and_say_why():
    rng = np.random.default_rng(3)
    few = simulated_sessions(rng, 150, {})
    none_failed = simulated_sessions(rng, 1000, {}).assign(failed=0)
    two_stations = simulated_sessions(rng, 3000, {}, stations=2)  # clustered SEs on 2 clusters are degenerate
    for pdf in (few, none_failed, two_stations):
        out = fit_source(pdf, PARAMS, "UTC", STAMP)
        assert len(out) == 1 and out.driver[0] == MODEL and not out.converged[0]
        assert out.note[0].startswith("not fitted") and out.sessions[0] == len(pdf)
    assert "2 station(s)" in fit_source(two_stations, PARAMS, "UTC", STAMP).note[0]


def test_an_unfitted_source_comes_through_spark(spark):
    """The model row of a source with too few sessions crosses applyInPandas: its all-missing
    string columns were float NaN, which pyarrow 25 hands PySpark 3.5 as a ChunkedArray (the
    stage failed on a small network)."""
    from common.network.fault_drivers import FEATURE_COLUMNS, fault_drivers

    few = simulated_sessions(np.random.default_rng(4), 150, {}).assign(modelled=True)
    features = spark.createDataFrame(few[[*FEATURE_COLUMNS, "modelled"]])
    rows = fault_drivers(features, PARAMS, "UTC", STAMP).collect()
    assert len(rows) == 1 and rows[0].driver == MODEL and rows[0].level is None and rows[0].significant is None
    assert rows[0].note.startswith("not fitted: 150 session(s)")


def test_terms_without_an_estimate_are_left_out_with_a_note():
    rng = np.random.default_rng(4)
    # a constant driver, and a network too small to estimate even when pooled: its sessions leave
    pdf = simulated_sessions(rng, 5000, {"night": 1.0}).assign(weekend=False)
    pdf.loc[pdf.index[:40], "network"] = "Tiny"
    out = fit_source(pdf, PARAMS, "UTC", STAMP)
    assert "weekend: constant" in out.note[0] and "network: 40 session(s) of small networks left out" in out.note[0]
    assert out.sessions[0] == 5000 - 40 and not {"Tiny", "(other)"} & set(out.level.dropna())
    # DC-fast is the same as two networks (A and C all DC, B and D none): no estimate of its own
    pdf = simulated_sessions(rng, 5000, {"night": 1.0})
    pdf["dc_station"] = pdf.network.isin(["A", "C"])
    out = fit_source(pdf, PARAMS, "UTC", STAMP)
    assert "aliased with earlier terms: dc_station" in out.note[0] and "dc_station" not in set(out.driver)
    # stations missing from the register: their sessions leave, the driver stays
    pdf = simulated_sessions(rng, 5000, {"night": 1.0})
    unregistered = pdf.station_id.isin(["S1", "S2"])
    pdf["dc_station"] = pdf.dc_station.astype(object).where(~unregistered, None)
    out = fit_source(pdf, PARAMS, "UTC", STAMP)
    assert f"dc_station: unknown for {int(unregistered.sum())} session(s), left out" in out.note[0]
    assert "dc_station" in set(out.driver) and out.sessions[0] == int((~unregistered).sum())


def test_port_state_is_read_one_second_before_the_start(spark):
    t = lambda s: datetime(2024, 3, 1, tzinfo=timezone.utc).timestamp() + s  # noqa: E731
    iv = spark.createDataFrame(
        [
            ("src", "P1", t(0), t(100), "up"),
            ("src", "P1", t(100), t(200), "down"),
            ("src", "P1", t(200), t(3 * 86400), "up"),  # spans three days
            ("src", "P2", t(0), t(86400), "no_data"),
        ],
        "source_name string, port_id string, s double, e double, state string",
    ).select("source_name", "port_id", F.col("s").cast("timestamp").alias("start_ts"), F.col("e").cast("timestamp").alias("end_ts"), "state")
    sessions = spark.createDataFrame(
        [
            ("src", "a", "P1", t(50)),
            ("src", "b", "P1", t(150)),
            ("src", "c", "P1", t(200)),  # starts as the port comes back: it was down a second before
            ("src", "d", "P1", t(2 * 86400 + 5)),
            ("src", "e", "P2", t(10)),
            ("src", "f", "P3", t(10)),  # a port without status
            ("sessions_feed", "g", "P1", t(50)),  # the network's session export: another dataset, the same ports
        ],
        "source_name string, session_id string, port_id string, s double",
    ).select("source_name", "session_id", "port_id", F.col("s").cast("timestamp").alias("start_ts"))
    got = port_state_at_start(sessions, iv).select("session_id", "port_state")
    expected = spark.createDataFrame(
        [("a", "up"), ("b", "down"), ("c", "down"), ("d", "up"), ("e", "no_data"), ("f", None), ("g", "up")],
        "session_id string, port_state string",
    )
    assert_df_equality(got, expected, ignore_row_order=True, ignore_nullable=True)
    none = port_state_at_start(sessions, None)
    assert none.where("port_state IS NOT NULL").count() == 0 and none.count() == sessions.count()


def test_session_features_local_bands_register_and_exclusion(spark):
    """Europe/London in summer (UTC+1): 23:30 UTC Friday is 00:30 Saturday local."""
    rows = [
        ("s1", "ST1", "P1", "2024-06-07 23:30:00", True),  # local Sat 00:30: night band, weekend
        ("s2", "ST1", "P1", "2024-06-08 10:00:00", False),  # local Sat 11:00, one session before it in 24 h
        ("s3", "ST2", "P2", "2024-06-10 15:30:00", True),  # local Mon 16:30; ST2 not in the register
        ("s4", "ST3", "P3", "2024-06-10 08:00:00", None),  # unknown outcome: not a row
    ]
    sessions = spark.createDataFrame(rows, "session_id string, station_id string, port_id string, ts string, success boolean").select(
        F.lit("default").alias("source_name"), "session_id", "station_id", "port_id", F.to_timestamp("ts").alias("start_ts"), "success", F.lit(None).cast("double").alias("kwh")
    )
    outcomes = sessions.withColumn("succeeded", F.col("success"))
    register = spark.createDataFrame([("ST1", " Pod Point ", 2, 50.0)], "station_id string, network string, dc_fast_count int, power_kw double")
    intervals = spark.createDataFrame([("default", "P2", "2024-06-10 00:00:00", "2024-06-11 00:00:00", "down")], "source_name string, port_id string, s string, e string, state string").select(
        "source_name", "port_id", F.to_timestamp("s").alias("start_ts"), F.to_timestamp("e").alias("end_ts"), "state"
    )
    got = session_features(outcomes, intervals, register, "Europe/London", PARAMS).drop("power_kw")
    expected = spark.createDataFrame(
        [
            ("default", "ST1", 0, "Pod Point", True, "00-06", True, 0, None, True),
            ("default", "ST1", 1, "Pod Point", True, "10-16", True, 1, None, True),
            ("default", "ST2", 0, None, None, "16-20", False, 0, "down", False),
        ],
        "source_name string, station_id string, failed int, network string, dc_station boolean, hour_band string, weekend boolean, load long, port_state string, modelled boolean",
    )
    assert_df_equality(got, expected, ignore_row_order=True, ignore_nullable=True, ignore_column_order=True)
    kept = session_features(outcomes, intervals, register, "Europe/London", PARAMS.model_copy(update={"exclude_unavailable_ports": False}))
    assert kept.where("modelled").count() == 3


# --------------------------------------------------------------------------------------------
# The generator's injected drivers, end to end
# --------------------------------------------------------------------------------------------
INJECTED = {"dc_station": 0.8, "night": 1.0, "load": 0.15, "network:Statiq": 0.9}
WORLD = (
    "generator.vehicles=2",
    "generator.days=28",
    "generator.stations=40",
    "generator.seed=5",
    "generator.region=delhi_ncr",
    "generator.session_failure_log_odds={" + ", ".join(f"'{k}': {v}" for k, v in INJECTED.items()) + "}",
)


@pytest.fixture(scope="module")
def injected_world(spark, session_root):
    from common.io.landing import default_inputs
    from jobs.fault_analysis import run_fault_analysis
    from jobs.generate import generate
    from jobs.ingest import run_ingest
    from jobs.reliability import run_reliability

    cfg = make_config(session_root / "fault_drivers", *WORLD)
    generate(spark, cfg)
    run_ingest(spark, cfg, default_inputs(cfg), generated=True)
    run_reliability(spark, cfg)
    report = run_fault_analysis(spark, cfg)
    print("\n", report.notes)
    return cfg


def test_the_generators_injected_drivers_are_recovered(spark, injected_world):
    cfg = injected_world
    assert cfg.generator.session_failure_log_odds == INJECTED
    out = tables.read(spark, cfg, "gold.fault_drivers").toPandas()
    model = out[out.driver == MODEL].iloc[0]
    terms = out[out.driver != MODEL].set_index(["driver", "level"])
    print("\n" + terms[["reference", "sessions", "failed", "coef", "std_err", "odds_ratio", "p_value_holm", "significant"]].to_string())
    print(model.note, f"; {model.sessions} sessions, {model.failed} failed, {model.excluded_sessions} on unavailable ports left out")
    assert model.converged and model.excluded_sessions > 0  # the generator's outages fail sessions whatever their drivers

    def truth(driver: str, level: str, reference: str | None) -> float:
        if driver == "network":
            return INJECTED.get(f"network:{level}", 0.0) - INJECTED.get(f"network:{reference}", 0.0)
        if driver == "hour_band":
            return INJECTED["night"] * ((level == "00-06") - (reference == "00-06"))
        return {"dc_station": INJECTED["dc_station"], "load": INJECTED["load"]}.get(driver, 0.0)

    checked = terms.drop(index=[("network", "other")], errors="ignore")  # a pool of networks has no single truth
    assert {"dc_station", "hour_band", "load", "network", "weekend"} <= set(checked.index.get_level_values("driver"))
    assert ("network", "Statiq") in checked.index or terms.xs("network", level="driver").reference.iloc[0] == "Statiq"
    stations = tables.read(spark, cfg, "bronze.charging_sessions").select("station_id").distinct().count()
    crit = sps.t.ppf(1 - cfg.fault_drivers.alpha / (2 * len(checked)), df=stations - 1)
    for (driver, level), r in checked.iterrows():
        want = truth(driver, level, r.reference)
        assert abs(r.coef - want) <= crit * r.std_err, (driver, level, r.coef, want, r.std_err)
        if want == 0:
            assert not r.significant, (driver, level)
    for key in (("dc_station", "true"), ("hour_band", "00-06"), ("load", "per session")):
        assert terms.loc[key].significant, key

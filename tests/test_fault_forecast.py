"""Fault forecast (common/network/forecast.py, gold.fault_forecast*): counts zero-filled per site
and bucket, the model against the generator's seasonal, trending fault process (held-out weeks,
seasonal-naive baseline, interval coverage) and the mean baseline where history is short."""

from __future__ import annotations

from datetime import date, datetime, timezone

import numpy as np
import pandas as pd
from chispa import assert_df_equality

from common.core.config import Config, FaultForecastConfig
from common.io import tables
from common.network import forecast as fc


def _ts(day: int, hour: int = 12) -> datetime:
    return datetime(2024, 1, day, hour, tzinfo=timezone.utc)


def test_fault_counts_are_zero_filled_per_site_and_complete_bucket(spark):
    params = FaultForecastConfig(bucket_days=7)
    # observed 2024-01-01 00:00 .. 2024-01-16 12:00: two complete weekly buckets (the third ends after the last observation)
    observed = spark.createDataFrame(
        [("s", "A", "A1", _ts(1, 0), _ts(16)), ("s", "B", "B1", _ts(3), _ts(10)), ("s", None, "C1", _ts(1, 0), _ts(16))],
        "source_name string, station_id string, charger_id string, start_ts timestamp, end_ts timestamp",
    )
    failures = spark.createDataFrame(
        # the one on the 15th is in the incomplete bucket; C1's charger has no station id
        [("s", "A", "A1", _ts(2)), ("s", "A", "A1", _ts(5)), ("s", "A", "A1", _ts(9)), ("s", "A", "A1", _ts(15)), ("s", None, "C1", _ts(3))],
        "source_name string, station_id string, charger_id string, ts timestamp",
    )
    got = fc.fault_counts(failures, observed, params)
    want = spark.createDataFrame(
        [
            ("s", "A", 0, date(2024, 1, 1), 2),
            ("s", "A", 1, date(2024, 1, 8), 1),
            ("s", "B", 0, date(2024, 1, 1), 0),  # no fault, still a series, but only while observed (to the 10th: bucket 1 is not complete for B)
            ("s", "C1", 0, date(2024, 1, 1), 1),  # no station id: the charger is the site
            ("s", "C1", 1, date(2024, 1, 8), 0),
            ("s", fc.NETWORK, 0, date(2024, 1, 1), 3),
            ("s", fc.NETWORK, 1, date(2024, 1, 8), 1),
        ],
        "source_name string, site_id string, bucket int, bucket_start date, faults long",
    )
    assert_df_equality(got, want, ignore_row_order=True, ignore_nullable=True)


def test_short_history_gets_the_mean_baseline_and_says_so():
    params = FaultForecastConfig(min_buckets=12, horizon=4)
    rows, back = fc.forecast_series(np.array([1.0, 3.0, 2.0]), params)
    assert [r["forecast"] for r in rows] == [2.0] * 4 and {r["method"] for r in rows} == {"mean"}
    assert all("min_buckets" in r["note"] and r["lower"] is None for r in rows)
    assert back[0]["method"] == "mean" and back[0]["origins"] == 0


def test_no_fault_history_and_falling_trends_stay_at_or_near_zero():
    params = FaultForecastConfig(min_buckets=12, horizon=6)
    rows, back = fc.forecast_series(np.zeros(30), params)
    assert {r["forecast"] for r in rows} == {0.0} and all(r["upper"] is None and "no fault" in r["note"] for r in rows)
    # a site that was fixed: counts falling to zero are forecast near zero, never rising again, and inside their interval
    falling = np.array([12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 1, 0, 0], dtype=float)
    rows, _ = fc.forecast_series(falling, params)
    forecast = np.array([r["forecast"] for r in rows])
    assert (forecast <= np.array([r["upper"] for r in rows]) + 1e-9).all()
    assert (np.diff(forecast) <= 1e-9).all() and forecast[0] < 1.5, forecast


def test_seasonal_naive_repeats_the_last_cycle():
    y = np.arange(10, dtype=float)
    assert fc.seasonal_naive(y, 8, 3, 4).tolist() == [4.0, 5.0, 6.0]
    assert fc.seasonal_naive(y, 3, 2, 4).tolist() == [2.0, 2.0]  # history shorter than a cycle: the last count


def test_forecast_beats_seasonal_naive_on_the_generated_network(spark):
    """The generator's faults with a yearly cycle (+-50 %) and a trend (+30 %/year) over three years
    of a 10-station network: in the rolling-origin backtest the model's network MAE is below the
    seasonal-naive's, and its 80 % intervals cover 70-90 % of the held-out weeks of every series."""
    from common.synthetic.generator import build_world

    cfg = Config()
    gcfg = cfg.generator.model_copy(update={"days": 3 * 364, "vehicles": 5, "stations": 10, "seed": 11, "region": "london", "fault_trend_per_year": 0.3, "fault_season_amplitude": 0.5})
    world = build_world(gcfg)
    t0, t1 = world.day_midnights[0], world.day_midnights[-1]
    out = world.outages
    faults = out[(out.cause == "fault") & ~((out.start == t0) & (out.end == t1))]
    to_ts = lambda s: pd.to_datetime(s, unit="s")  # noqa: E731
    failures = spark.createDataFrame(pd.DataFrame({"source_name": "gen", "station_id": faults.station_id, "ts": to_ts(faults.start)}))
    sites = world.ports.station_id.unique()
    observed = spark.createDataFrame(pd.DataFrame({"source_name": "gen", "station_id": sites, "start_ts": to_ts(t0), "end_ts": to_ts(t1)}))
    params = cfg.fault_forecast
    counts = fc.fault_counts(failures, observed, params)
    forecast, backtest = fc.split(fc.forecast_faults(counts, params))
    back = backtest.toPandas()
    everything = forecast.toPandas()
    fcst = everything[everything.step >= 1]
    print("\n" + back.sort_values(["site_id", "method"]).to_string())

    weeks = int((t1 - t0) // (7 * 86400))
    assert counts.where(f"site_id = '{fc.NETWORK}'").count() == weeks
    assert counts.where(f"site_id = '{fc.NETWORK}'").agg({"faults": "sum"}).first()[0] == int(((faults.start - t0) < weeks * 7 * 86400).sum())
    assert len(fcst) == params.horizon * (len(sites) + 1) and set(fcst.method) <= {"sarimax", "mean"}
    # the mean baseline only where a site never faulted (a station unavailable the whole period)
    assert fcst[fcst.method == "mean"].note.str.startswith("no fault").all() and (fcst[fcst.site_id == fc.NETWORK].method == "sarimax").all()
    history = everything[everything.step <= 0]
    assert len(history) == weeks * (len(sites) + 1) and set(history.method) == {"observed"} and history.forecast.isna().all()
    fitted = fcst[fcst.method == "sarimax"]
    assert (fitted.lower <= fitted.forecast).all() and (fitted.forecast <= fitted.upper).all() and (fitted.lower >= 0).all()
    net = back[back.site_id == fc.NETWORK].set_index("method")
    assert net.loc["model", "mae"] < net.loc["seasonal_naive", "mae"], net
    model = back[back.method == "model"]
    coverage = float((model.coverage * model.buckets).sum() / model.buckets.sum())
    print(f"pooled coverage of the {params.interval_level:.0%} intervals: {coverage:.3f} over {int(model.buckets.sum())} held-out weeks")
    assert 0.70 <= coverage <= 0.90


def test_demo_fleet_forecast_says_its_history_is_short(spark, fleet_gold):
    """The demo's 14 days are two weekly buckets: every series gets the mean baseline, with the reason."""
    cfg = fleet_gold
    fcst = tables.read(spark, cfg, "gold.fault_forecast").where("step >= 1").toPandas()
    iv = tables.read(spark, cfg, "silver.port_status_intervals").select("source_name", "station_id", "charger_id", "port_id", "start_ts", "end_ts").toPandas()
    # the series expected, by hand: a site with at least one complete week inside its own observed span
    iv["site"] = iv.station_id.fillna(iv.charger_id).fillna(iv.port_id)
    origin = iv.groupby("source_name").start_ts.transform("min").dt.normalize()
    week = pd.Timedelta(days=7)
    iv["k_first"], iv["k_last"] = (iv.start_ts - origin) // week, (iv.end_ts - origin) // week - 1
    spans = iv.groupby(["source_name", "site"]).agg(k_first=("k_first", "min"), k_last=("k_last", "max"))
    sites = int((spans.k_last >= spans.k_first).sum())
    assert sites > 0 and len(fcst) == cfg.fault_forecast.horizon * (sites + iv.source_name.nunique())
    assert set(fcst.method) == {"mean"} and fcst.note.str.contains("min_buckets").all()
    assert tables.read(spark, cfg, "gold.fault_forecast_backtest").where("origins > 0").count() == 0

"""Energy-per-km cold start: which design meets trip MAPE <= 6 % on the time split and is never
worse than physics on vehicles unseen in training?

Two steps (read only on both lakehouses; scratch under --out, default /tmp/energy_cs):

    python bench/energy_cold_start.py dump            # Spark (local[2]): segments + test trips + truth -> parquet
    python bench/energy_cold_start.py eval            # pandas + xgboost (nthread=2): every candidate, both fleets
    python bench/energy_cold_start.py eval --fleets A --candidates current,hist_target_gated_w --seeds 11,1,2,3
    python bench/energy_cold_start.py diag --fleets A --candidates current    # errors by vehicle type / vehicle
    python bench/energy_cold_start.py depth --candidates hist_target_gated_w,current   # cold-start curve (k days of history)

Every eval also reports the baselines physics, vehicle_mean and physics_x_hist (no model: physics x
the vehicle's earlier-days observed/physics ratio, physics without history) and, on the unseen
vehicles, each candidate '@nohist' (the held-out vehicles as brand new: history features null).
Holdout seeds: holdout_vehicles ranks by crc32("seed|vid"), so some seeds give the same set
(3 and 4; 2 and 5 on both fleets); 11,1,2,3 are four distinct sets.

Fleet A: the tests' ML fleet (tests/conftest.py FLEET_OVERRIDES + ML_OVERRIDES) at --fleet-a-root
(default /tmp/mlfleet). Fleet B: the demo lakehouse of env 'local' (/work/main/lakehouse).

Protocol (mirrors common/ml/energy_model.py): features `jobs.train.energy_dataset`, split
`energy_split_rows`; the fit uses the labelled 'train' rows (validation rows are only the eval set
in the real fit, so they are not fitted on); every segment of a test trip (>= min_eval_trip_km) is
predicted and trip kWh = sum(kWh/km x km); MAPE against truth.points (`trip_truth_energy`) and
against the observed SOC energy. Unseen vehicles: `holdout_vehicles(vids, share, seed)` left out of
the fit, their test trips scored; repeated over --seeds.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

HIST = ("vehicle_physics_ratio", "physics_x_ratio_kwh_per_km")
SESSION_OVERRIDES = ("spark.master=local[2]", "spark.shuffle_partitions=4", "spark.ui_enabled=false", "spark.progress_bar=false", "catalog.metastore=none", "spark.driver_memory=3g")


# --------------------------------------------------------------------------------------------
# Configs and dump (Spark)
# --------------------------------------------------------------------------------------------
def fleet_configs(fleet_a_root: str):
    from common.core.config import load_config
    from tests.conftest import FLEET_OVERRIDES, ML_OVERRIDES, make_config

    a = make_config(Path(fleet_a_root), *FLEET_OVERRIDES, *ML_OVERRIDES, *SESSION_OVERRIDES)
    b = load_config("local", list(SESSION_OVERRIDES))
    return {"A": a, "B": b}


def dump(args) -> None:
    from pyspark.sql import functions as F

    from common.io import tables
    from common.io.spark import build_session, python_for_workers
    from common.ml.evaluate import energy_split_rows, trip_truth_energy
    from common.ml.features import ENERGY_FEATURES, ENERGY_LABEL
    from jobs.train import energy_dataset

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cfgs = fleet_configs(args.fleet_a_root)
    python_for_workers()
    spark = build_session(cfgs["A"])
    for name in args.fleets.split(","):
        cfg = cfgs[name]
        t0 = time.time()
        seg = energy_dataset(spark, cfg).persist()
        rows = energy_split_rows(seg, cfg.ml)
        split = rows.split
        labelled_ids = rows.labelled.select("segment_id", F.lit(True).alias("labelled"))
        keys = ["vehicle_id", "trip_id", "segment_id", "local_date", "start_ts", "end_ts", "model", "is_full_length"]
        keep = [*keys, "energy_kwh", "physics_kwh", "vehicle_hist_kwh_per_km", *ENERGY_FEATURES, ENERGY_LABEL, "role"]
        allrows = rows.all_rows.select(*keep).join(labelled_ids, "segment_id", "left").withColumn("labelled", F.coalesce("labelled", F.lit(False)))
        vtype = tables.read(spark, cfg, "silver.segments").select("segment_id", "vehicle_type")
        allrows = allrows.join(vtype, "segment_id", "left")
        pdf = allrows.toPandas()
        trips = tables.read(spark, cfg, "silver.trips")
        e = cfg.ml.energy
        test_trips = trips.where((F.col("start_ts").cast("long") >= split.test_start_s) & (F.col("distance_km") >= e.min_eval_trip_km))
        truth = trip_truth_energy(tables.read_optional(spark, cfg, "truth.points"), test_trips)
        tt = test_trips.select("trip_id", "vehicle_id", F.col("energy_kwh").alias("observed_kwh"), F.col("distance_km").alias("trip_km"), "start_ts")
        if truth is not None:
            tt = tt.join(truth, "trip_id", "left")
        tpdf = tt.toPandas()
        pdf.to_parquet(out / f"{name}_segments.parquet", index=False)
        tpdf.to_parquet(out / f"{name}_test_trips.parquet", index=False)
        meta = {
            "split": split.as_params(),
            "test_start_s": split.test_start_s,
            "valid_start_s": split.valid_start_s,
            "counts": rows.counts,
            "seed": cfg.ml.seed,
            "holdout_share": cfg.ml.holdout_vehicle_share,
            "xgb": cfg.ml.energy.xgb.model_dump(),
            "min_segment_km": e.min_segment_km,
            "min_eval_trip_km": e.min_eval_trip_km,
            "root": cfg.storage.root,
        }
        (out / f"{name}_meta.json").write_text(json.dumps(meta, indent=1, default=str))
        seg.unpersist()
        print(f"fleet {name}: {len(pdf)} segments, {len(tpdf)} test trips, {time.time() - t0:.0f}s; {meta['split']}", flush=True)
    spark.stop()


# --------------------------------------------------------------------------------------------
# Evaluation (pandas + xgboost)
# --------------------------------------------------------------------------------------------
def load(out: Path, name: str):
    seg = pd.read_parquet(out / f"{name}_segments.parquet")
    trips = pd.read_parquet(out / f"{name}_test_trips.parquet")
    meta = json.loads((out / f"{name}_meta.json").read_text())
    seg = seg.sort_values(["vehicle_id", "start_ts", "segment_id"], kind="stable", ignore_index=True)
    # earlier local days with labelled driving of the vehicle (a history-depth measure; no look-ahead)
    days = seg.loc[seg["energy_kwh"].notna(), ["vehicle_id", "local_date"]].drop_duplicates().sort_values(["vehicle_id", "local_date"])
    days["hist_days"] = days.groupby("vehicle_id").cumcount()
    seg = seg.merge(days, on=["vehicle_id", "local_date"], how="left")
    seg["hist_days"] = seg.groupby("vehicle_id")["hist_days"].transform(lambda s: s.ffill()).fillna(0)
    seg["ratio_label"] = seg["kwh_per_km"] / seg["physics_kwh_per_km"]
    return seg, trips, meta


def xgb_params(meta, nthread: int) -> dict:
    p = meta["xgb"]
    names = ("n_estimators", "max_depth", "learning_rate", "subsample", "colsample_bytree", "min_child_weight", "reg_lambda", "tree_method", "max_bin")
    d = {k: p[k] for k in names} | {"random_state": meta["seed"], "n_jobs": nthread}
    if p.get("objective"):
        d["objective"] = p["objective"]
    return d


def fit_predict(train: pd.DataFrame, scores: dict, features: list[str], target: str, params: dict, sample_weight: str = "distance_km") -> dict:
    import xgboost as xgb

    tr = train[np.isfinite(train[target])]
    m = xgb.XGBRegressor(**params)
    order = tr.assign(_h=pd.util.hash_pandas_object(tr[["vehicle_id", "start_ts"]], index=False).to_numpy()).sort_values(["_h", "vehicle_id", "start_ts"], kind="stable")
    m.fit(order[features].astype(float), order[target].astype(float), sample_weight=order[sample_weight].astype(float), verbose=False)
    return {k: m.predict(df[features].astype(float)) for k, df in scores.items()}


def trip_mape(seg_pred: pd.DataFrame, trips: pd.DataFrame, col: str, ref: str) -> float:
    kwh = (seg_pred[col] * seg_pred["distance_km"]).groupby(seg_pred["trip_id"]).sum(min_count=1).rename("_kwh")
    t = trips.join(kwh, on="trip_id", how="inner")
    t = t[[ref, "_kwh"]].astype(float).dropna()
    t = t[t[ref] > 0]
    return float(np.mean(np.abs(t["_kwh"] - t[ref]) / t[ref]) * 100)


def trip_bias(seg_pred, trips, col, ref, by=None):
    kwh = (seg_pred[col] * seg_pred["distance_km"]).groupby(seg_pred["trip_id"]).sum(min_count=1).rename("_kwh")
    t = trips.join(kwh, on="trip_id", how="inner").dropna(subset=[ref, "_kwh"])
    t = t[t[ref] > 0]
    t["ape"] = (t["_kwh"] - t[ref]).abs() / t[ref] * 100
    t["err_pct"] = (t["_kwh"] - t[ref]) / t[ref] * 100
    return t


# Candidates: name -> (features, target mode, history handling)
def candidate_specs(base_features):
    nohist = [f for f in base_features if f not in HIST]
    return {
        "current": dict(features=list(base_features), target="kwh"),
        "nohist": dict(features=nohist, target="kwh"),
        "ratio": dict(features=list(base_features), target="ratio"),
        "ratio_nohist": dict(features=nohist, target="ratio"),
        "diff_nohist": dict(features=nohist, target="diff"),
        "ratio_hist_target": dict(features=nohist, target="hist_ratio"),  # target = label / (physics x vehicle ratio), physics where no history
        # cold-start gate: a row whose vehicle has no history ratio yet (vehicle_physics_ratio null) gets physics
        "current_gated": dict(features=list(base_features), target="kwh", gate=True),
        "ratio_gated": dict(features=list(base_features), target="ratio", gate=True),
        "hist_target_gated": dict(features=nohist, target="hist_ratio", gate=True),
        "hist_target_gated_trainhist": dict(features=nohist, target="hist_ratio", gate=True, train_hist_only=True),
        "ratio_gated_w": dict(features=list(base_features), target="ratio", gate=True, weight="energy"),
        "ratio_nohist_w": dict(features=nohist, target="ratio", weight="energy"),
        "hist_target_gated_w": dict(features=nohist, target="hist_ratio", gate=True, weight="energy"),
        "current_histdrop": dict(features=list(base_features), target="kwh", drop_hist_share=0.3),
        "ratio_histdrop": dict(features=list(base_features), target="ratio", drop_hist_share=0.3),
        "ratio_hist_mingate": dict(features=list(base_features), target="ratio", min_hist_days=2),
    }


def prepare_target(df: pd.DataFrame, spec) -> pd.Series:
    t = spec["target"]
    if t == "kwh":
        return df["kwh_per_km"]
    if t == "ratio":
        return df["kwh_per_km"] / df["physics_kwh_per_km"]
    if t == "diff":
        return df["kwh_per_km"] - df["physics_kwh_per_km"]
    if t == "hist_ratio":
        return df["kwh_per_km"] / hist_base(df)
    raise ValueError(t)


def sample_weights(df: pd.DataFrame, spec) -> pd.Series:
    """distance_km (the project's weight); "energy": km x base^2, so that the squared error of a ratio
    target equals the squared error in kWh/km (a multiplicative residual weighted like the kWh fit);
    rows with a base <= 0 (downhill regen segments) get weight 0."""
    if spec.get("weight") != "energy":
        return df["distance_km"]
    base = hist_base(df) if spec["target"] == "hist_ratio" else df["physics_kwh_per_km"]
    return (df["distance_km"] * base.clip(lower=0) ** 2).fillna(0.0)


def hist_base(df: pd.DataFrame) -> pd.Series:
    r = df["vehicle_physics_ratio"].where(df["vehicle_physics_ratio"].notna(), 1.0)
    return df["physics_kwh_per_km"] * r


def to_kwh_per_km(df: pd.DataFrame, pred: np.ndarray, spec) -> np.ndarray:
    t = spec["target"]
    phys = df["physics_kwh_per_km"].to_numpy()
    if t == "kwh":
        return pred
    if t == "ratio":
        return phys * pred
    if t == "diff":
        return phys + pred
    if t == "hist_ratio":
        return hist_base(df).to_numpy() * pred
    raise ValueError(t)


def mask_history(df: pd.DataFrame, spec, rng=None) -> pd.DataFrame:
    """History features NaN where the cold-start rule says so (scoring) or by random vehicle-days (training)."""
    df = df.copy()
    mhd = spec.get("min_hist_days")
    if mhd:
        gone = df["hist_days"] < mhd
        for c in HIST:
            df.loc[gone, c] = np.nan
    return df


def augment_train(train: pd.DataFrame, spec, seed: int) -> pd.DataFrame:
    share = spec.get("drop_hist_share")
    if not share:
        return train
    rng = np.random.default_rng(seed)
    keys = train[["vehicle_id", "local_date"]].drop_duplicates()
    pick = keys.sample(frac=share, random_state=int(rng.integers(1 << 30)))
    copy = train.merge(pick, on=["vehicle_id", "local_date"])
    for c in HIST:
        copy[c] = np.nan
    return pd.concat([train, copy], ignore_index=True)


def run_candidate(seg, trips, meta, spec, params, train_mask, score_mask, seed, no_history_too=False):
    """Fit on train_mask rows, score score_mask rows: ``pred`` (history as it is) and, with
    no_history_too, ``pred_nohist`` (the held-out vehicles as brand-new: history features NaN)."""
    train = seg[train_mask].copy()
    if spec.get("train_hist_only"):
        train = train[train["vehicle_physics_ratio"].notna()]
    train = mask_history(train, spec)
    train = augment_train(train, spec, seed)
    train["_y"] = prepare_target(train, spec)
    train["_w"] = sample_weights(train, spec)
    score = mask_history(seg[score_mask].copy(), spec)
    scores = {"pred": score}
    if no_history_too:
        blank = score.copy()
        for c in HIST:
            blank[c] = np.nan
        scores["pred_nohist"] = blank
    preds = fit_predict(train, scores, spec["features"], "_y", params, sample_weight="_w")
    out = seg[score_mask][["trip_id", "vehicle_id", "distance_km"]].copy()
    for k, df in scores.items():
        out[k] = np.asarray(to_kwh_per_km(df, preds[k], spec), dtype=float)
        if spec.get("gate"):
            cold = df["vehicle_physics_ratio"].isna().to_numpy() & df["physics_kwh_per_km"].notna().to_numpy()
            out.loc[cold, k] = df.loc[cold, "physics_kwh_per_km"].to_numpy()
    return out


def baselines(seg, train_mask, score_mask):
    tr = seg[train_mask]
    vm = tr.groupby("vehicle_id")["energy_kwh"].sum() / tr.groupby("vehicle_id")["distance_km"].sum()
    fleet = tr["energy_kwh"].sum() / tr["distance_km"].sum()
    s = seg[score_mask][["trip_id", "vehicle_id", "distance_km", "physics_kwh_per_km", "physics_x_ratio_kwh_per_km"]].copy()
    s["b_vehicle_mean"] = s["vehicle_id"].map(vm).fillna(fleet)
    s["b_physics"] = s["physics_kwh_per_km"].fillna(s["b_vehicle_mean"])
    s["b_physics_x_hist"] = s["physics_x_ratio_kwh_per_km"].fillna(s["b_physics"])  # no model: physics x the vehicle's earlier-days ratio
    return s


def evaluate(args) -> None:
    from common.ml.features import ENERGY_FEATURES, holdout_vehicles

    out = Path(args.out)
    specs = candidate_specs(ENERGY_FEATURES)
    names = list(specs) if args.candidates == "all" else [c for c in args.candidates.split(",") if c]
    seeds = [int(s) for s in args.seeds.split(",")]
    results = []
    for fleet in args.fleets.split(","):
        seg, trips, meta = load(out, fleet)
        params = xgb_params(meta, args.nthread)
        if args.n_estimators:
            params["n_estimators"] = args.n_estimators
        is_train = (seg["role"] == "train") & seg["labelled"]
        test_trip_ids = set(trips["trip_id"])
        is_test = (seg["role"] == "test") & seg["trip_id"].isin(test_trip_ids)
        vids = sorted(seg.loc[is_train, "vehicle_id"].unique())
        refs = ["truth_kwh", "observed_kwh"] if "truth_kwh" in trips and trips["truth_kwh"].notna().any() else ["observed_kwh"]
        evals = [("time", None)] + [(f"unseen_s{s}", s) for s in seeds]
        for ev, s in evals:
            if s is None:
                tm, sm = is_train, is_test
            else:
                held = holdout_vehicles(vids, meta["holdout_share"], s)
                tm, sm = is_train & ~seg["vehicle_id"].isin(held), is_test & seg["vehicle_id"].isin(held)
            b = baselines(seg, is_train, sm)  # vehicle means over all training rows, as energy_group_metrics (baselines of the full fit)
            tsub = trips[trips["trip_id"].isin(set(seg.loc[sm, "trip_id"]))]
            row = {"fleet": fleet, "eval": ev, "n_trips": len(tsub)}
            for ref in refs:
                row[f"physics|{ref}"] = trip_mape(b, tsub, "b_physics", ref)
                row[f"vehicle_mean|{ref}"] = trip_mape(b, tsub, "b_vehicle_mean", ref)
                row[f"physics_x_hist|{ref}"] = trip_mape(b, tsub, "b_physics_x_hist", ref)
            for name in names:
                t0 = time.time()
                p = run_candidate(seg, trips, meta, specs[name], params, tm, sm, s or 0, no_history_too=s is not None)
                for ref in refs:
                    row[f"{name}|{ref}"] = trip_mape(p, tsub, "pred", ref)
                    if s is not None:
                        row[f"{name}@nohist|{ref}"] = trip_mape(p, tsub, "pred_nohist", ref)
                if args.save_preds:
                    p.to_parquet(out / f"pred_{fleet}_{ev}_{name}.parquet", index=False)
                print(f"  {fleet} {ev} {name}: {row[f'{name}|{refs[0]}']:.2f} ({time.time() - t0:.0f}s)", flush=True)
            print(f"{fleet} {ev}: physics {row[f'physics|{refs[0]}']:.2f} vehicle_mean {row[f'vehicle_mean|{refs[0]}']:.2f} n={len(tsub)}", flush=True)
            results.append(row)
            pd.DataFrame(results).to_csv(out / f"results_{args.tag}.csv", index=False)
    res = pd.DataFrame(results)
    summary(res)


def diagnose(args) -> None:
    """Why a candidate fails on unseen vehicles: trip APE and signed error per vehicle type and per
    vehicle (held-out vehicles of every seed), beside physics."""
    from common.ml.features import ENERGY_FEATURES, holdout_vehicles

    out = Path(args.out)
    specs = candidate_specs(ENERGY_FEATURES)
    names = args.candidates.split(",") if args.candidates != "all" else ["current"]
    seeds = [int(s) for s in args.seeds.split(",")]
    for fleet in args.fleets.split(","):
        seg, trips, meta = load(out, fleet)
        params = xgb_params(meta, args.nthread)
        is_train = (seg["role"] == "train") & seg["labelled"]
        is_test = (seg["role"] == "test") & seg["trip_id"].isin(set(trips["trip_id"]))
        vids = sorted(seg.loc[is_train, "vehicle_id"].unique())
        vinfo = seg.groupby("vehicle_id").agg(vehicle_type=("vehicle_type", "first"), battery_kwh=("battery_kwh", "first"))
        tr = seg[is_train]
        vinfo["train_ratio"] = tr.groupby("vehicle_id")["energy_kwh"].sum() / tr.groupby("vehicle_id")["physics_kwh"].sum()
        rows = []
        for s in seeds:
            held = holdout_vehicles(vids, meta["holdout_share"], s)
            tm, sm = is_train & ~seg["vehicle_id"].isin(held), is_test & seg["vehicle_id"].isin(held)
            b = baselines(seg, is_train, sm)
            types_in_train = set(seg.loc[tm, "vehicle_type"])
            for name in names:
                p = run_candidate(seg, trips, meta, specs[name], params, tm, sm, s)
                t = trip_bias(p, trips, "pred", "truth_kwh").assign(seed=s, cand=name)
                tb = trip_bias(b, trips, "b_physics", "truth_kwh")[["trip_id", "ape", "err_pct"]].rename(columns={"ape": "phys_ape", "err_pct": "phys_err_pct"})
                t = t.merge(tb, on="trip_id").join(vinfo, on="vehicle_id")
                t["type_seen"] = t["vehicle_type"].isin(types_in_train)
                t["n_same_type_train"] = t["vehicle_type"].map(seg.loc[tm].groupby("vehicle_type")["vehicle_id"].nunique()).fillna(0)
                rows.append(t)
        d = pd.concat(rows, ignore_index=True)
        d.to_parquet(out / f"diag_{fleet}_{args.tag}.parquet", index=False)
        pd.set_option("display.width", 200)
        for name in names:
            x = d[d["cand"] == name]
            print(f"== fleet {fleet} {name}: held-out test trips over seeds {seeds} (vs truth)")
            print(x.groupby("vehicle_type")[["ape", "phys_ape", "err_pct", "phys_err_pct"]].mean().round(2).assign(n=x.groupby("vehicle_type").size()).to_string())
            print(x.groupby("n_same_type_train")[["ape", "phys_ape", "err_pct"]].mean().round(2).assign(n=x.groupby("n_same_type_train").size()).to_string())
            v = x.groupby(["seed", "vehicle_id"]).agg(
                vt=("vehicle_type", "first"),
                ratio=("train_ratio", "first"),
                ape=("ape", "mean"),
                phys_ape=("phys_ape", "mean"),
                err=("err_pct", "mean"),
                phys_err=("phys_err_pct", "mean"),
                n=("ape", "size"),
            )
            print(v.round(3).to_string())
            print("corr(err - phys_err, train_ratio):", round(float(np.corrcoef(v["err"] - v["phys_err"], v["ratio"])[0, 1]), 3))


def limited_history(seg: pd.DataFrame, first_test_date: str, k: int | None, prior_kwh: float = 0.0) -> pd.Series:
    """vehicle_physics_ratio recomputed as if each vehicle joined ``k`` local days before the test
    window (None: all its history, as the feature is): observed / physics energy over its labelled
    segments of local days in [join, date), null below MIN_HISTORY_PHYSICS_KWH of physics energy.
    ``prior_kwh`` > 0 shrinks towards 1: (obs + prior) / (phys + prior)."""
    from common.ml.features import MIN_HISTORY_PHYSICS_KWH

    lab = seg[seg["energy_kwh"].notna()]
    daily = lab.groupby(["vehicle_id", "local_date"]).agg(obs=("energy_kwh", "sum"), phys=("physics_kwh", "sum")).reset_index()
    dates = sorted(seg["local_date"].astype(str).unique())
    i0 = dates.index(first_test_date)
    join = dates[max(0, i0 - k)] if k is not None else dates[0]
    daily = daily[daily["local_date"].astype(str) >= join]
    out = pd.Series(np.nan, index=seg.index)
    keys = seg[["vehicle_id", "local_date"]].drop_duplicates()
    for vid, g in keys.groupby("vehicle_id"):
        d = daily[daily["vehicle_id"] == vid]
        for date in g["local_date"]:
            h = d[d["local_date"].astype(str) < str(date)]
            o, ph = h["obs"].sum(), h["phys"].sum()
            if ph >= MIN_HISTORY_PHYSICS_KWH:
                idx = seg.index[(seg["vehicle_id"] == vid) & (seg["local_date"] == date)]
                out.loc[idx] = (o + prior_kwh) / (ph + prior_kwh)
    return out


def depth(args) -> None:
    """Cold-start curve: held-out vehicles (fit without them) scored as if they joined k days before
    the test window; physics, physics x history ratio (plain / shrunk) and ML candidates."""
    from common.ml.features import ENERGY_FEATURES, holdout_vehicles

    out = Path(args.out)
    specs = candidate_specs(ENERGY_FEATURES)
    names = [c for c in args.candidates.split(",") if c] if args.candidates != "all" else ["hist_target_gated", "ratio_gated"]
    seeds = [int(s) for s in args.seeds.split(",")]
    res = []
    for fleet in args.fleets.split(","):
        seg, trips, meta = load(out, fleet)
        params = xgb_params(meta, args.nthread)
        first_test = meta["split"]["split.test_dates"].split(",")[0]
        is_train = (seg["role"] == "train") & seg["labelled"]
        is_test = (seg["role"] == "test") & seg["trip_id"].isin(set(trips["trip_id"]))
        vids = sorted(seg.loc[is_train, "vehicle_id"].unique())
        test_rows = seg[is_test]
        ratios = {k: limited_history(seg[seg["vehicle_id"].isin(test_rows["vehicle_id"].unique())], first_test, k) for k in (0, 1, 2, 3, None)}
        shrunk = {k: limited_history(seg[seg["vehicle_id"].isin(test_rows["vehicle_id"].unique())], first_test, k, prior_kwh=args.prior_kwh) for k in (1, 2, 3, None)}
        for s in seeds:
            held = holdout_vehicles(vids, meta["holdout_share"], s)
            tm, sm = is_train & ~seg["vehicle_id"].isin(held), is_test & seg["vehicle_id"].isin(held)
            tsub = trips[trips["trip_id"].isin(set(seg.loc[sm, "trip_id"]))]
            models = {}
            for name in names:
                spec = specs[name]
                train = seg[tm].copy()
                train["_y"] = prepare_target(train, spec)
                train["_w"] = sample_weights(train, spec)
                models[name] = fit_models(train, spec, params)
            for k in (0, 1, 2, 3, None):
                sc = seg[sm].copy()
                sc["vehicle_physics_ratio"] = ratios[k].reindex(sc.index)
                sc["physics_x_ratio_kwh_per_km"] = sc["physics_kwh_per_km"] * sc["vehicle_physics_ratio"]
                sc["b_physics"] = sc["physics_kwh_per_km"]
                sc["b_phys_x_hist"] = sc["physics_x_ratio_kwh_per_km"].fillna(sc["physics_kwh_per_km"])
                if k in shrunk:
                    sc["b_phys_x_shrunk"] = (sc["physics_kwh_per_km"] * shrunk[k].reindex(sc.index)).fillna(sc["physics_kwh_per_km"])
                row = {"fleet": fleet, "seed": s, "k_days": "all" if k is None else k, "hist_share": float(sc["vehicle_physics_ratio"].notna().mean())}
                for col in ("b_physics", "b_phys_x_hist", "b_phys_x_shrunk"):
                    if col in sc:
                        row[col] = trip_mape(sc, tsub, col, "truth_kwh")
                for name in names:
                    spec = specs[name]
                    pred = models[name].predict(sc[spec["features"]].astype(float))
                    p = np.asarray(to_kwh_per_km(sc, pred, spec), dtype=float)
                    cold = sc["vehicle_physics_ratio"].isna().to_numpy()
                    p[cold] = sc["physics_kwh_per_km"].to_numpy()[cold]
                    sc["_p"] = p
                    row[name] = trip_mape(sc, tsub, "_p", "truth_kwh")
                res.append(row)
                print(row, flush=True)
    d = pd.DataFrame(res)
    d.to_csv(out / f"depth_{args.tag}.csv", index=False)
    print(d.groupby(["fleet", "k_days"]).mean(numeric_only=True).drop(columns="seed").round(2).to_string())


def fit_models(train, spec, params):
    import xgboost as xgb

    tr = train[np.isfinite(train["_y"])]
    order = tr.assign(_h=pd.util.hash_pandas_object(tr[["vehicle_id", "start_ts"]], index=False).to_numpy()).sort_values(["_h", "vehicle_id", "start_ts"], kind="stable")
    m = xgb.XGBRegressor(**params)
    m.fit(order[spec["features"]].astype(float), order["_y"].astype(float), sample_weight=order["_w"].astype(float), verbose=False)
    return m


def summary(res: pd.DataFrame) -> None:
    res = res.copy()
    res["set"] = np.where(res["eval"] == "time", "time", "unseen_mean")
    cols = [c for c in res.columns if "|" in c]
    agg = res.groupby(["fleet", "set"])[cols].mean().T
    pd.set_option("display.width", 200)
    print(agg.round(2).to_string())


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("step", choices=("dump", "eval", "diag", "depth", "summary"), help="dump | eval | diag | depth | summary (see above)")
    ap.add_argument("--out", default="/tmp/energy_cs", help="scratch folder (parquet, results csv)")
    ap.add_argument("--fleets", default="A,B", help="A (tests' ML fleet), B (demo lakehouse)")
    ap.add_argument("--fleet-a-root", default="/tmp/mlfleet")
    ap.add_argument("--candidates", default="all", help="comma list of candidate names or 'all'")
    ap.add_argument("--seeds", default="11,1,2,3", help="holdout seeds of the unseen-vehicle check")
    ap.add_argument("--nthread", type=int, default=2)
    ap.add_argument("--n-estimators", type=int, default=0, help="override n_estimators (0: the fleet's config)")
    ap.add_argument("--prior-kwh", type=float, default=3.0, help="depth: shrinkage prior of the history ratio towards 1 (kWh of physics energy)")
    ap.add_argument("--tag", default="run", help="results_<tag>.csv")
    ap.add_argument("--save-preds", action="store_true")
    args = ap.parse_args(argv)
    if args.step == "dump":
        dump(args)
    elif args.step == "eval":
        evaluate(args)
    elif args.step == "diag":
        diagnose(args)
    elif args.step == "depth":
        depth(args)
    else:
        summary(pd.read_csv(Path(args.out) / f"results_{args.tag}.csv"))


if __name__ == "__main__":
    main()

"""Issue 19's model table: model × evaluation set × metric, with the baselines beside.

    python bench/model_table.py --fleet tests=/tmp/mlfleet --env test       # a lakehouse already trained and scored
    python bench/model_table.py --build seed8_delhi --build seed303_nairobi  # generate, pipeline through score, then the table
    python bench/model_table.py ... --out /tmp/model_table.md

Sources of each figure:
- time split: recomputed from what batch scoring wrote (gold.predictions_soc_minutely,
  gold.predictions_energy) against labels, baselines and trip truth rebuilt from silver and truth
  tables (tests/accuracy/model_reference.py, scikit-learn metrics), on the champion's test window;
- unseen vehicles: the training run's grouped fit (`group_*` metrics of the champion's MLflow run):
  the registered model has seen every vehicle, so these figures cannot come from its predictions.

--build runs `python -m jobs.pipeline --env local --only generate,ingest,clean,kpis,train,score`
in a process of its own for each of EVALUATION_FLEETS (none of them is the tests' fleet, seed 7,
on which features and parameters were tuned). The targets are issue 19's.
"""

from __future__ import annotations

import argparse
import math
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

SESSION_OVERRIDES = ("spark.ui_enabled=false", "spark.progress_bar=false", "catalog.metastore=none")
# Evaluation fleets: other seeds, regions, device mixes and timestamp styles than the tests' fleet
# (tests/conftest.py FLEET_OVERRIDES: seed 7, the default region delhi_ncr and device mix).
EVALUATION_FLEETS = {
    "seed8_default": ("generator.seed=8", "generator.vehicles=24", "generator.days=7"),
    "seed101_london_mixed": (
        "generator.seed=101",
        "generator.region=london",
        "generator.vehicles=24",
        "generator.days=7",
        "generator.device_modes={continuous: 0.5, ignition_only: 0.3, bursty: 0.2}",
    ),
    "seed202_nairobi_utc": (
        "generator.seed=202",
        "generator.region=nairobi",
        "generator.vehicles=24",
        "generator.days=7",
        "generator.timestamp_style=utc_z",
        "generator.device_modes={continuous: 0.25, ignition_only: 0.5, bursty: 0.25}",
    ),
}
SOC_MAE_VS_PERSISTENCE_MAX = 0.6
ROC_AUC_MIN = 0.9
ENERGY_MAPE_MAX_PCT = 6.0


@dataclass(frozen=True)
class Row:
    fleet: str
    model: str
    evaluation: str
    metric: str
    value: float | None
    baselines: str
    target: str
    met: bool | None
    source: str


def storage(root: Path) -> list[str]:
    return [
        f"storage.root={root}/lakehouse",
        f"storage.restricted_root={root}/lakehouse/restricted",
        f"mlflow.tracking_uri=sqlite:///{root}/mlflow/mlflow.db",
        f"mlflow.artifact_location={root}/mlflow/artifacts",
    ]


def build(name: str, base: Path) -> Path:
    root = base / name
    confs = [a for c in (*storage(root), *EVALUATION_FLEETS[name], *SESSION_OVERRIDES) for a in ("--conf", c)]
    cmd = [sys.executable, "-m", "jobs.pipeline", "--env", "local", "--only", "generate,ingest,clean,kpis,train,score", *confs]
    root.mkdir(parents=True, exist_ok=True)
    with (root / "pipeline.log").open("w") as log:
        subprocess.run(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, check=True)
    return root


def fleet_rows(spark, name: str, root: Path, env: str) -> list[Row]:
    import mlflow
    from mlflow.tracking import MlflowClient
    from pyspark.sql import functions as F

    from common.core.config import load_config
    from common.io import tables
    from common.ml import tracking
    from jobs.score import PRED_ENERGY, PRED_SOC
    from tests.accuracy import model_reference as ref

    cfg = load_config(env, [*storage(root), *SESSION_OVERRIDES])
    tracking.configure(cfg)
    client = MlflowClient()

    def champion(registered: str, label: str):
        try:
            v = client.get_model_version_by_alias(registered, "champion")
        except mlflow.exceptions.MlflowException:
            versions = client.search_model_versions(f"name = '{registered}'")
            newest = max(versions, key=lambda v: int(v.version)) if versions else None
            why = (newest.tags or {}).get("gate_reason", "no reason recorded") if newest else "never registered (training skipped it; see the train stage's notes)"
            rows.append(Row(name, label, "-", "-", None, "", "", False, f"no champion: {why}"))
            return None, {}
        start = mlflow.models.get_model_info(f"models:/{registered}/{v.version}").metadata["monitoring_reference"]["out_of_sample_from_s"]
        return start, client.get_run(v.run_id).data.metrics

    def fmt(d: dict) -> str:
        return ", ".join(f"{k} {v:.4g}" for k, v in d.items() if v is not None and not math.isnan(v))

    rows: list[Row] = []
    soc, energy = cfg.ml.soc, cfg.ml.energy
    event = f"P(drop ≥ {soc.drop_threshold_pct:g})"
    t = F.col("minute_ts").cast("long").alias("t")
    reg_start, reg_m = champion(soc.registered_model, "SOC drop")
    clf_start, clf_m = champion(soc.registered_classifier, event)
    if reg_start is None and clf_start is not None:  # jobs/score.py scores SOC only with a drop regressor
        rows.append(Row(name, event, "-", "-", None, "", "", False, "not scored: the drop regressor has no champion"))
    if reg_start is not None:
        minutely = tables.read(spark, cfg, "silver.vehicle_minutely").select("vehicle_id", t, "soc_mean_pct", "soc_max_pct", "charging").toPandas()  # bounded: evaluation fleets
        pred = tables.read(spark, cfg, PRED_SOC).select("vehicle_id", t, "pred_soc_drop_pct", "prob_drop_event").toPandas()  # bounded: evaluation fleets
        reference = ref.reference_rows(minutely, soc.horizon_min, soc.label_max_staleness_min)
        s = ref.scores(reference, pred, reg_start, soc.horizon_min, soc.drop_threshold_pct, classifier=False)
        src = f"sklearn on scored predictions, {int(s['n'])} minutes"
        met = s["mae"] <= SOC_MAE_VS_PERSISTENCE_MAX * s["persistence_mae"] and s["mae"] < s["vehicle_mean_mae"]
        baselines = fmt({"persistence": s["persistence_mae"], "vehicle mean": s["vehicle_mean_mae"]})
        rows.append(Row(name, "SOC drop", "time split", "MAE", s["mae"], baselines, f"≤ {SOC_MAE_VS_PERSISTENCE_MAX:g} × persistence, < vehicle mean", met, src))
        g = {k: reg_m.get(f"group_{k}test_mae") for k in ("", "baseline_persistence_", "baseline_vehicle_mean_")}
        met = None if None in g.values() else g[""] < min(g["baseline_persistence_"], g["baseline_vehicle_mean_"])
        baselines = fmt({"persistence": g["baseline_persistence_"], "vehicle mean": g["baseline_vehicle_mean_"]})
        rows.append(Row(name, "SOC drop", "unseen vehicles", "MAE", g[""], baselines, "< every baseline", met, "training run's grouped fit"))
        if clf_start is not None:  # the classifier's own test window (it may differ from the regressor's)
            c = ref.scores(reference, pred, clf_start, soc.horizon_min, soc.drop_threshold_pct)
            src = f"sklearn on scored predictions, {int(c['n'])} minutes"
            base = {"persistence": "persistence_", "vehicle rate": "vehicle_rate_"}
            rows.append(Row(name, event, "time split", "ROC-AUC", c["roc_auc"], fmt({b: c[f"{p}roc_auc"] for b, p in base.items()}), f"≥ {ROC_AUC_MIN:.2f}", c["roc_auc"] >= ROC_AUC_MIN, src))
            pr_met = c["pr_auc"] > max(c[f"{p}pr_auc"] for p in base.values())
            rows.append(Row(name, event, "time split", "PR-AUC", c["pr_auc"], fmt({b: c[f"{p}pr_auc"] for b, p in base.items()}), "> every baseline", pr_met, src))
            brier_met = c["brier"] < min(c[f"{p}brier"] for p in base.values())
            rows.append(Row(name, event, "time split", "Brier", c["brier"], fmt({b: c[f"{p}brier"] for b, p in base.items()}), "< every baseline", brier_met, src))
            rows.append(Row(name, event, "unseen vehicles", "ROC-AUC / PR-AUC / Brier", None, "", "", None, "not evaluated: the classifier has no grouped fit"))
    start, en_m = champion(energy.registered_model, "energy per km")
    if start is not None and not tables.exists(spark, cfg, "truth.points"):
        rows.append(Row(name, "energy per km", "time split", "trip MAPE vs truth (%)", None, "", "", None, "no truth.points (real data): see the run's observed-energy metrics"))
    elif start is not None:
        epoch = lambda c: F.col(c).cast("long")  # noqa: E731
        span = (epoch("start_ts").alias("start_s"), epoch("end_ts").alias("end_s"))
        trips = tables.read(spark, cfg, "silver.trips").select("vehicle_id", "trip_id", *span, "distance_km").toPandas()  # bounded: evaluation fleets
        segs = tables.read(spark, cfg, PRED_ENERGY).select("trip_id", "distance_km", "pred_kwh_per_km", "physics_kwh_per_km").toPandas()  # bounded: evaluation fleets
        truth = tables.read(spark, cfg, "truth.points").select("vehicle_id", epoch("ts").alias("ts_s"), "energy_kwh", "anomaly_type").toPandas()  # bounded: evaluation fleets
        e = ref.energy_trip_scores(trips, segs, truth, start, energy.min_eval_trip_km)
        src = f"pandas on scored predictions, {int(e['n'])} trips"
        # physics only where ml.energy.physics has the vehicle's model: compared on those trips
        if e["physics_n"] == e["n"]:
            physics, beats = fmt({"physics": e["physics_mape_pct"]}), e["mape_pct"] < e["physics_mape_pct"]
        elif e["physics_n"] > 0:
            physics = f"on the {int(e['physics_n'])} trips with physics parameters: model {e['mape_pct_on_physics_trips']:.4g}, physics {e['physics_mape_pct']:.4g}"
            beats = e["mape_pct_on_physics_trips"] < e["physics_mape_pct"]
        else:
            physics, beats = f"physics: none of {int(e['n'])} trips (ml.energy.physics lacks the fleet's models)", True
        job_fallback = fmt({"job's physics-or-vehicle-mean": en_m.get("baseline_physics_truth_test_trip_mape_pct")})
        met = e["mape_pct"] <= ENERGY_MAPE_MAX_PCT and beats
        rows.append(Row(name, "energy per km", "time split", "trip MAPE vs truth (%)", e["mape_pct"], f"{physics}; {job_fallback}", f"≤ {ENERGY_MAPE_MAX_PCT:g} %, < physics", met, src))
        g = {k: en_m.get(f"group_{k}truth_test_trip_mape_pct") for k in ("", "baseline_physics_", "baseline_vehicle_mean_", "baseline_physics_x_hist_")}
        met = None if g[""] is None or g["baseline_physics_"] is None else g[""] <= g["baseline_physics_"]
        # the job's physics baseline falls back to the vehicle mean for models without parameters (it logs the share)
        baselines = fmt({"physics-or-vehicle-mean": g["baseline_physics_"], "vehicle mean": g["baseline_vehicle_mean_"], "physics × history (no model)": g["baseline_physics_x_hist_"]})
        rows.append(Row(name, "energy per km", "unseen vehicles", "trip MAPE vs truth (%)", g[""], baselines, "≤ physics-or-vehicle-mean", met, "training run's grouped fit"))
    return rows


def markdown(rows: list[Row]) -> str:
    out = ["| fleet | model | evaluation set | metric | model | baselines | target | met | source |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        value = "–" if r.value is None or math.isnan(r.value) else f"{r.value:.4g}"
        met = "–" if r.met is None else ("yes" if r.met else "**no**")
        source = r.source.replace("|", "/").replace("\n", " ")
        out.append(f"| {r.fleet} | {r.model} | {r.evaluation} | {r.metric} | {value} | {r.baselines} | {r.target} | {met} | {source} |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fleet", action="append", default=[], help="NAME=ROOT[@ENV] of a trained and scored lakehouse (storage and MLflow under ROOT as --build lays them out)")
    ap.add_argument("--env", default="local", help="config env of a --fleet without @ENV (test for the tests' fleet)")
    ap.add_argument("--build", action="append", default=[], choices=sorted(EVALUATION_FLEETS), help="build this evaluation fleet first")
    ap.add_argument("--base", default="/tmp/evfa-model-table", help="folder of the --build fleets")
    ap.add_argument("--out", help="also write the markdown table here")
    args = ap.parse_args(argv)

    from common.core.config import load_config
    from common.io.spark import build_session

    fleets = []
    for spec in args.fleet:
        name, _, rest = spec.partition("=")
        root, _, env = rest.partition("@")
        fleets.append((name, Path(root), env or args.env))
    fleets += [(n, build(n, Path(args.base)), "local") for n in args.build]
    if not fleets:
        ap.error("give --fleet NAME=ROOT or --build NAME")
    spark = build_session(load_config("local", list(SESSION_OVERRIDES)))
    rows = [r for name, root, env in fleets for r in fleet_rows(spark, name, root, env)]
    table = markdown(rows)
    print(table)
    if args.out:
        Path(args.out).write_text(table + "\n")


if __name__ == "__main__":
    main()

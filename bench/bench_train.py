"""The train stage, old code beside new, on one lakehouse: stage seconds, fit seconds and the models' scores.

    .venv/bin/python -m bench.bench_train --lakehouse lakehouse --baseline-tree /work/before

Input: a lakehouse the pipeline has run through `reliability` (`make demo` leaves one). Each code
tree (`--baseline-tree`, a `git worktree` of the commit to compare with, then this checkout) runs
`python -m jobs.train` `--repeat` times, alternating, in fresh processes; the trees read the same
tables and write to MLflow stores of their own under bench/out/train/. Printed per run: the stage's
wall seconds (`StageReport`, JVM start excluded), the sum of the xgboost fit seconds (the models'
`train_seconds`), and the test-window scores the acceptance targets use, so a faster fit that
scores worse shows here.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

OUT = Path("bench/out/train").resolve()
DONE = re.compile(r"stage train done in ([0-9.]+)s")
SCORES = {
    "evfa_soc_drop_60m": ("test_mae", "test_mae_vs_persistence", "group_test_mae"),
    "evfa_soc_drop_ge10_60m": ("test_roc_auc", "test_brier", "test_f1"),
    "evfa_energy_per_km": ("truth_test_trip_mape_pct", "test_trip_mape_pct", "group_truth_test_trip_mape_pct"),
}


def train(tree: Path, lakehouse: Path, store: Path) -> float:
    """One `jobs.train` run of `tree`'s code: the stage's wall seconds."""
    shutil.rmtree(store, ignore_errors=True)
    store.mkdir(parents=True)
    env = dict(os.environ, PYTHONPATH=str(tree))
    confs = {
        "storage.root": lakehouse,
        "storage.restricted_root": lakehouse / "restricted",
        "mlflow.tracking_uri": f"sqlite:///{store}/mlflow.db",
        "mlflow.artifact_location": store / "artifacts",
    }
    argv = [sys.executable, "-m", "jobs.train", "--env", "local", *[a for k, v in confs.items() for a in ("--conf", f"{k}={v}")]]
    done = subprocess.run(argv, cwd=tree, env=env, capture_output=True, text=True)
    (store / "train.log").write_text(done.stdout + done.stderr)
    found = DONE.search(done.stdout + done.stderr)
    if done.returncode or not found:
        raise RuntimeError(f"train failed in {tree} (exit {done.returncode}): {(done.stdout + done.stderr)[-2000:]}")
    return float(found[1])


def scores(store: Path) -> tuple[float, dict[str, float]]:
    """(sum of train_seconds, the SCORES metrics) of the run's nested model runs."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{store}/mlflow.db")
    fit_s, out = 0.0, {}
    for version in client.search_model_versions():
        metrics = client.get_run(version.run_id).data.metrics
        fit_s += metrics.get("train_seconds", 0.0)
        out |= {f"{version.name}.{k}": metrics.get(k, float("nan")) for k in SCORES.get(version.name, ())}
    return fit_s, out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lakehouse", type=Path, default=Path("lakehouse"))
    ap.add_argument("--baseline-tree", type=Path, required=True, help="a git worktree of the code to compare with")
    ap.add_argument("--repeat", type=int, default=1, help="runs per tree, alternating")
    args = ap.parse_args(argv)
    lakehouse, trees = args.lakehouse.resolve(), {"baseline": args.baseline_tree.resolve(), "this": Path.cwd()}
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    runs = []
    for i in range(args.repeat):
        for label, tree in trees.items():
            store = OUT / f"{label}-{i}"
            stage_s = train(tree, lakehouse, store)
            runs.append((label, stage_s, *scores(store)))
    rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=args.baseline_tree, capture_output=True, text=True).stdout.strip()
    print(f"\n### Train stage on {lakehouse} ({started})\n")
    command = f"python -m bench.bench_train --lakehouse {args.lakehouse} --baseline-tree {args.baseline_tree} --repeat {args.repeat}"
    print(f"Baseline: {args.baseline_tree} at {rev}; this: working tree. Command: `{command}`\n")
    keys = sorted({k for r in runs for k in r[3]})
    print("| code | stage s | fits s | " + " | ".join(keys) + " |")
    print("|---|---:|---:|" + "---:|" * len(keys))
    for label, stage_s, fit_s, got in runs:
        print(f"| {label} | {stage_s:.1f} | {fit_s:.1f} | " + " | ".join(f"{got.get(k, float('nan')):.4g}" for k in keys) + " |")


if __name__ == "__main__":
    main()

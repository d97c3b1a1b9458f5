"""Pipeline stages, old code beside new, from the same raw files: seconds per stage and equal outputs.

    .venv/bin/python -m bench.bench_stages --landing <generated fleet> --baseline-tree /work/before

Input: a folder holding a generated fleet's `lakehouse/raw` and `lakehouse/truth` (what
`jobs.generate` writes; the accuracy fleets of tests/accuracy/ leave one under EVFA_ACCURACY_ROOT).
Each code tree (`--baseline-tree`, a `git worktree` of the commit to compare with, then this
checkout) gets a fresh copy of it under bench/out/stages/ and runs `python -m jobs.pipeline --only
<stages>` there in a fresh process, `--repeat` times, alternating. Printed per run: each stage's
wall seconds (`StageReport`, JVM start excluded) and their sum; then every silver, gold and
restricted table of the last two runs is compared row for row (bench/compare_tables.py), so a
faster stage that writes other rows shows here.
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

OUT = Path("bench/out/stages").resolve()
DONE = re.compile(r"stage (\w+) done in ([0-9.]+)s")
STAGES = "ingest,clean,residence,charging,hotspots,risk"


def run(tree: Path, landing: Path, work: Path, stages: str, extra: list[str]) -> dict[str, float]:
    """One pipeline run of `tree`'s code on a fresh copy of `landing`: seconds per stage."""
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    for part in ("raw", "truth"):
        shutil.copytree(landing / "lakehouse" / part, work / "lakehouse" / part)
    confs = {
        "storage.root": work / "lakehouse",
        "storage.restricted_root": work / "lakehouse" / "restricted",
        "mlflow.tracking_uri": f"sqlite:///{work}/mlflow/mlflow.db",
        "mlflow.artifact_location": work / "mlflow" / "artifacts",
    }
    argv = [sys.executable, "-m", "jobs.pipeline", "--env", "local", "--only", stages, *extra]
    argv += [a for k, v in confs.items() for a in ("--conf", f"{k}={v}")]
    env = dict(os.environ, PYTHONPATH=str(tree), PYSPARK_PYTHON=sys.executable)
    done = subprocess.run(argv, cwd=tree, env=env, capture_output=True, text=True)
    (work / "pipeline.log").write_text(done.stdout + done.stderr)
    if done.returncode:
        raise RuntimeError(f"pipeline failed in {tree} (exit {done.returncode}): {(done.stdout + done.stderr)[-2000:]}")
    return {name: float(s) for name, s in DONE.findall(done.stdout + done.stderr)}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--landing", type=Path, required=True, help="folder with lakehouse/raw and lakehouse/truth of a generated fleet")
    ap.add_argument("--baseline-tree", type=Path, required=True, help="a git worktree of the code to compare with")
    ap.add_argument("--stages", default=STAGES)
    ap.add_argument("--repeat", type=int, default=1, help="runs per tree, alternating")
    ap.add_argument("pipeline_args", nargs="*", help="more jobs.pipeline arguments after --, e.g. -- --conf generator.vehicles=100")
    args = ap.parse_args(argv)
    landing, trees = args.landing.resolve(), {"baseline": args.baseline_tree.resolve(), "this": Path.cwd()}
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    runs: list[tuple[str, dict[str, float]]] = []
    for i in range(args.repeat):
        for label, tree in trees.items():
            runs.append((label, run(tree, landing, OUT / f"{label}-{i}", args.stages, args.pipeline_args)))
    rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=args.baseline_tree, capture_output=True, text=True).stdout.strip()
    print(f"\n### Stages {args.stages} on {landing} ({started})\n")
    print(f"Baseline: {args.baseline_tree} at {rev}; this: working tree. Command: `python -m bench.bench_stages {' '.join(argv or sys.argv[1:])}`\n")
    names = args.stages.split(",")
    print("| code | " + " | ".join(names) + " | sum |")
    print("|---|" + "---:|" * (len(names) + 1))
    for label, secs in runs:
        print(f"| {label} | " + " | ".join(f"{secs.get(n, float('nan')):.1f}" for n in names) + f" | {sum(secs.values()):.1f} |")
    last = args.repeat - 1
    left, right = OUT / f"baseline-{last}" / "lakehouse", OUT / f"this-{last}" / "lakehouse"
    # lineage that differs between any two runs by construction: run id, ingest instant, file path
    ignore = "ingest_run_id,ingested_at,source_file"
    same = subprocess.run([sys.executable, "-m", "bench.compare_tables", str(left), str(right), "--ignore-columns", ignore], capture_output=True, text=True)
    print("\nOutputs of the last two runs, row for row:\n\n```\n" + same.stdout.strip() + "\n```")
    print("all tables equal" if same.returncode == 0 else "TABLES DIFFER")


if __name__ == "__main__":
    main()

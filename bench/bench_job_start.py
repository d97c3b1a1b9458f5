"""A job's fixed cost, old code beside new: wall seconds of `python -m jobs.<stage>` with nothing new to do.

    .venv/bin/python -m bench.bench_job_start --baseline-tree /work/before --stages ingest,kpis --repeat 3

A small fleet (`--vehicles` x `--days`) is generated and run through `--prepare` once with this
checkout's code under bench/out/job_start/; then each stage runs as its own process on it, each
tree in turn (`--baseline-tree`, a `git worktree` of the commit to compare with, then this
checkout), `--repeat` times. The figure is the process's wall time (interpreter, JVM and session
start, the stage's own work, shutdown): what a user or an orchestrator waits for a stage that has
nothing new to do.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

OUT = Path("bench/out/job_start").resolve()


def confs(work: Path) -> list[str]:
    """The --conf arguments that point a job at the bench's lakehouse and MLflow store."""
    pairs = {
        "storage.root": work / "lakehouse",
        "storage.restricted_root": work / "lakehouse" / "restricted",
        "mlflow.tracking_uri": f"sqlite:///{work}/mlflow/mlflow.db",
        "mlflow.artifact_location": work / "mlflow" / "artifacts",
    }
    return [a for k, v in pairs.items() for a in ("--conf", f"{k}={v}")]


def run(tree: Path, module: str, args: list[str]) -> float:
    """Wall seconds of `python -m <module>` with `tree`'s code; raises on a non-zero exit."""
    env = dict(os.environ, PYTHONPATH=str(tree), PYSPARK_PYTHON=sys.executable)
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", module, "--env", "local", *args], cwd=tree, env=env, capture_output=True, text=True)
    took = time.perf_counter() - t0
    if done.returncode:
        raise RuntimeError(f"{module} failed in {tree} (exit {done.returncode}): {(done.stdout + done.stderr)[-2000:]}")
    return took


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--baseline-tree", type=Path, required=True, help="a git worktree of the code to compare with")
    ap.add_argument("--stages", default="ingest,kpis", help="jobs run one process each, nothing new to do")
    ap.add_argument("--prepare", default="generate,ingest,clean,kpis", help="pipeline stages run once before timing")
    ap.add_argument("--vehicles", type=int, default=3)
    ap.add_argument("--days", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3, help="runs per tree and stage, alternating")
    args = ap.parse_args(argv)
    trees = {"baseline": args.baseline_tree.resolve(), "this": Path.cwd()}
    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir(parents=True)
    common = confs(OUT)
    run(trees["this"], "jobs.pipeline", ["--only", args.prepare, *common, "--conf", f"generator.vehicles={args.vehicles}", "--conf", f"generator.days={args.days}"])
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    stages = args.stages.split(",")
    secs: dict[tuple[str, str], list[float]] = {}
    for _ in range(args.repeat):
        for stage in stages:
            for label, tree in trees.items():
                secs.setdefault((label, stage), []).append(run(tree, f"jobs.{stage}", common))
    rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=args.baseline_tree, capture_output=True, text=True).stdout.strip()
    print(f"\n### A job with nothing new to do: process wall seconds ({started})\n")
    print(f"Baseline: {args.baseline_tree} at {rev}; this: working tree. {args.vehicles} vehicles x {args.days} days, prepared with `{args.prepare}`. "
          f"Command: `python -m bench.bench_job_start {' '.join(argv or sys.argv[1:])}`\n")  # fmt: skip
    print("| job | baseline (median) | this (median) | baseline runs | this runs |")
    print("|---|---:|---:|---|---|")
    for stage in stages:
        b, t = secs[("baseline", stage)], secs[("this", stage)]
        print(f"| {stage} | {statistics.median(b):.1f} | {statistics.median(t):.1f} | {', '.join(f'{x:.1f}' for x in b)} | {', '.join(f'{x:.1f}' for x in t)} |")


if __name__ == "__main__":
    main()

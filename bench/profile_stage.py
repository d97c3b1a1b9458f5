"""Profile one pipeline stage from the Spark event log: where do its seconds go?

    .venv/bin/python -m bench.profile_stage kpis --root bench/out/rows_1000000/lakehouse
    .venv/bin/python -m bench.profile_stage ingest --root <lakehouse> --top 15

Runs the stage once (exactly as `jobs/pipeline.py` calls it) on an existing lakehouse with
`spark.eventLog.enabled`, then reads the event log (JSON lines, Spark's own format) and prints,
per Spark job: wall seconds, the Python call site that triggered it (PySpark records the user
frame as `callSite.short`), tasks, executor CPU seconds, shuffle read/write MB and input MB --
sorted by wall time, plus the share of the stage's wall time that no Spark job covers (driver-side
Python, Delta log commits, planning). Used for the profile in docs/BENCHMARKS.md (issue 9).

The stage writes into the given lakehouse (it is a rerun, so idempotent stages leave the same
data); point --root at a bench copy, never at production data.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from common.core.config import load_config


def read_event_log(path: str) -> dict[int, dict]:
    """Spark event log -> {job_id: {start, end, call_site, stages, tasks, cpu_s, shuffle_*_mb, input_mb}}."""
    jobs: dict[int, dict] = {}
    stage_job: dict[int, int] = {}
    with open(path) as fh:
        for line in fh:
            ev = json.loads(line)
            kind = ev.get("Event")
            if kind == "SparkListenerJobStart":
                props = ev.get("Properties") or {}
                jid = ev["Job ID"]
                jobs[jid] = {
                    "start": ev["Submission Time"] / 1000,
                    "end": None,
                    "call_site": props.get("spark.job.description") or props.get("callSite.short") or "?",
                    "tasks": 0,
                    "cpu_s": 0.0,
                    "shuffle_read_mb": 0.0,
                    "shuffle_write_mb": 0.0,
                    "input_mb": 0.0,
                }
                for sid in ev.get("Stage IDs", []):
                    stage_job[sid] = jid
            elif kind == "SparkListenerJobEnd" and ev["Job ID"] in jobs:
                jobs[ev["Job ID"]]["end"] = ev["Completion Time"] / 1000
            elif kind == "SparkListenerTaskEnd":
                job = jobs.get(stage_job.get(ev.get("Stage ID"), -1))
                metrics = ev.get("Task Metrics") or {}
                if job is None or not metrics:
                    continue
                job["tasks"] += 1
                job["cpu_s"] += metrics.get("Executor CPU Time", 0) / 1e9
                sr = metrics.get("Shuffle Read Metrics") or {}
                job["shuffle_read_mb"] += (sr.get("Remote Bytes Read", 0) + sr.get("Local Bytes Read", 0)) / 1e6
                job["shuffle_write_mb"] += (metrics.get("Shuffle Write Metrics") or {}).get("Shuffle Bytes Written", 0) / 1e6
                job["input_mb"] += (metrics.get("Input Metrics") or {}).get("Bytes Read", 0) / 1e6
    return jobs


def covered_seconds(intervals: list[tuple[float, float]]) -> float:
    """Length of the union of [start, end] intervals."""
    total, cur_s, cur_e = 0.0, None, None
    for s, e in sorted(intervals):
        if cur_e is None or s > cur_e:
            if cur_e is not None:
                total += cur_e - cur_s
            cur_s, cur_e = s, e
        else:
            cur_e = max(cur_e, e)
    if cur_e is not None:
        total += cur_e - cur_s
    return total


def report(jobs: dict[int, dict], wall_s: float, top: int) -> str:
    done = [j for j in jobs.values() if j["end"] is not None]
    by_site: dict[str, dict] = defaultdict(lambda: {"n": 0, "wall": 0.0, "cpu": 0.0, "sr": 0.0, "sw": 0.0, "in": 0.0, "tasks": 0})
    for j in done:
        s = by_site[j["call_site"]]
        s["n"] += 1
        s["wall"] += j["end"] - j["start"]
        s["cpu"] += j["cpu_s"]
        s["sr"] += j["shuffle_read_mb"]
        s["sw"] += j["shuffle_write_mb"]
        s["in"] += j["input_mb"]
        s["tasks"] += j["tasks"]
    in_jobs = covered_seconds([(j["start"], j["end"]) for j in done])
    lines = [
        f"stage wall {wall_s:.1f} s; {len(done)} Spark jobs covering {in_jobs:.1f} s; outside any job (driver Python, Delta commits, planning): {wall_s - in_jobs:.1f} s",
        "",
        "| call site | jobs | wall s | tasks | executor CPU s | input MB | shuffle write MB | shuffle read MB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for site, s in sorted(by_site.items(), key=lambda kv: -kv[1]["wall"])[:top]:
        lines.append(f"| `{site}` | {s['n']} | {s['wall']:.1f} | {s['tasks']} | {s['cpu']:.1f} | {s['in']:.1f} | {s['sw']:.1f} | {s['sr']:.1f} |")
    return "\n".join(lines)


def main(argv=None) -> str:
    from jobs import pipeline

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("stage", choices=[s for s in pipeline.STAGE_NAMES if s != "generate"])
    ap.add_argument("--root", required=True, help="lakehouse root holding the stage's inputs (a bench copy)")
    ap.add_argument("--env", default="local")
    ap.add_argument("--conf", action="append", default=[], help="config override key=value (repeatable)")
    ap.add_argument("--spark-conf", action="append", default=[], metavar="KEY=VALUE", help="extra spark.* setting (repeatable)")
    ap.add_argument("--top", type=int, default=12)
    args = ap.parse_args(argv)

    from common.io.spark import build_session, python_for_workers

    log_dir = tempfile.mkdtemp(prefix="evfa-eventlog-")
    root = os.path.abspath(args.root)
    extra = dict(load_config(args.env, args.conf).spark.extra)  # the env's own settings, then ours
    extra |= {"spark.eventLog.enabled": "true", "spark.eventLog.dir": "file://" + log_dir}
    extra |= dict(kv.split("=", 1) for kv in args.spark_conf)
    cfg = load_config(
        args.env,
        [
            f"storage.root={root}",
            f"storage.restricted_root={root}/restricted",
            "spark.progress_bar=false",
            "spark.extra=" + json.dumps(extra),
            *args.conf,
        ],
    )
    python_for_workers()
    spark = build_session(cfg)
    t0 = time.perf_counter()
    ns = argparse.Namespace(regenerate=False, start_date=None, end_date=None)
    pipeline._call_stage(next(s for s in pipeline.STAGES if s.name == args.stage), spark, cfg, ns)
    wall = time.perf_counter() - t0
    spark.stop()
    (log_file,) = glob.glob(os.path.join(log_dir, "*"))
    jobs = read_event_log(log_file)
    shutil.rmtree(log_dir, ignore_errors=True)
    settings = "".join(f", {kv}" for kv in args.spark_conf)
    text = f"#### Profile of `{args.stage}` ({Path(root).name}{settings})\n\n" + report(jobs, wall, args.top)
    print(text)
    return text


if __name__ == "__main__":
    main()

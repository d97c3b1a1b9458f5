"""Daily ingest cost: one new day on top of the history vs a full ingest, old code beside new.

    .venv/bin/python -m bench.bench_daily_ingest --raw lakehouse/raw --copies 4 --baseline-tree /work/before

Input: the raw files of a generated fleet (`make demo` leaves them in lakehouse/raw/). Telematics
are split into one Parquet file per UTC day (each vehicle `--copies` times under new ids, to make
the history larger than the demo's); the other kinds are copied as they are. Per code tree (this
checkout, and `--baseline-tree`: a `git worktree` of the commit to compare with), in fresh
lakehouses under bench/out/daily_ingest/:

- **full**: every day's file ingested in one run;
- **history + day**: all days but the last ingested, then the last day's file landed and
  ingested: the second run is the daily run that is timed.

Times are the ingest stage's own wall seconds (`StageReport`, JVM start excluded), each run a
fresh `python -m jobs.ingest` process with the tree's code. Both trees must produce the same
bronze rows; the script compares the row counts of bronze.telematics after each path.
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

import pandas as pd

OUT = Path("bench/out/daily_ingest").resolve()
DONE = re.compile(r"stage ingest done in ([0-9.]+)s: rows in=(\d+) out=(\d+)")


def land(raw: Path, landing: Path, copies: int, days: slice) -> list[str]:
    """Raw files into `landing`: telematics one file per UTC day (the `days` slice of the sorted
    days, added beside files already there), the other kinds copied once."""
    for kind in sorted(p.name for p in raw.iterdir() if p.is_dir()):
        if kind != "telematics" and not (landing / kind).exists():
            shutil.copytree(raw / kind, landing / kind)
    frame = pd.read_parquet(raw / "telematics")
    ts = next(c for c in ("ts", "timestamp", "time") if c in frame.columns)
    vid = next(c for c in ("vehicle_id", "vehicle", "device_id") if c in frame.columns)
    frame = pd.concat([frame.assign(**{vid: frame[vid].astype(str) + (f"-{k}" if k else "")}) for k in range(copies)], ignore_index=True)
    day = pd.to_datetime(frame[ts], utc=True).dt.date  # raises on an unparseable ts rather than drop its row
    all_days = sorted(d for d in day.dropna().unique())
    (landing / "telematics").mkdir(parents=True, exist_ok=True)
    for d in all_days[days]:
        # microseconds: Spark 3.5 cannot read the nanosecond timestamps pandas writes by default
        frame[day == d].to_parquet(landing / "telematics" / f"day={d.isoformat()}.parquet", index=False, coerce_timestamps="us", allow_truncated_timestamps=True)
    return [d.isoformat() for d in all_days]


def ingest(tree: Path, root: Path) -> tuple[float, int, int]:
    """One `jobs.ingest` run of `tree`'s code on lakehouse `root`: (stage seconds, rows in, rows out)."""
    env = dict(os.environ, PYTHONPATH=str(tree))
    argv = [sys.executable, "-m", "jobs.ingest", "--env", "local", "--conf", f"storage.root={root}", "--conf", f"storage.restricted_root={root}/restricted"]
    done = subprocess.run(argv, cwd=tree, env=env, capture_output=True, text=True)
    found = DONE.search(done.stdout + done.stderr)
    if done.returncode or not found:
        raise RuntimeError(f"ingest failed in {tree} (exit {done.returncode}): {(done.stdout + done.stderr)[-2000:]}")
    return float(found[1]), int(found[2]), int(found[3])


def bronze_rows(root: Path) -> int:
    # telematics carry positions: bronze.telematics lives under the restricted root; an insert-only
    # ingest never removes files, so the Parquet files are the table's rows
    return len(pd.read_parquet(root / "restricted" / "bronze" / "telematics", columns=["vehicle_id"]))


def run_tree(label: str, tree: Path, raw: Path, copies: int) -> dict:
    base = OUT / label
    full_root, incr_root = base / "full", base / "incremental"
    for r in (full_root, incr_root):
        shutil.rmtree(r, ignore_errors=True)
    days = land(raw, full_root / "raw", copies, slice(None))
    full = ingest(tree, full_root)
    land(raw, incr_root / "raw", copies, slice(0, -1))
    history = ingest(tree, incr_root)
    land(raw, incr_root / "raw", copies, slice(-1, None))  # the last day arrives beside the ingested files
    daily = ingest(tree, incr_root)
    return {"label": label, "days": len(days), "full": full, "history": history, "daily": daily, "bronze_full": bronze_rows(full_root), "bronze_incr": bronze_rows(incr_root)}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--raw", type=Path, default=Path("lakehouse/raw"), help="raw files of a generated fleet")
    ap.add_argument("--copies", type=int, default=4, help="each vehicle this many times under new ids")
    ap.add_argument("--baseline-tree", type=Path, required=True, help="a git worktree of the code to compare with")
    args = ap.parse_args(argv)
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    results = [run_tree("baseline", args.baseline_tree.resolve(), args.raw.resolve(), args.copies), run_tree("this", Path.cwd(), args.raw.resolve(), args.copies)]
    rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=args.baseline_tree, capture_output=True, text=True).stdout.strip()
    print(f"\n### Daily ingest, {results[0]['days']} days x {args.copies} copies of the fleet ({started})\n")
    print(f"Baseline: {args.baseline_tree} at {rev}; this: working tree. Command: `python -m bench.bench_daily_ingest --raw {args.raw} --copies {args.copies} --baseline-tree {args.baseline_tree}`\n")
    print("| code | full ingest s (rows in) | history ingest s | daily ingest s (rows in) | daily / full | bronze rows full / incremental |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in results:
        f, h, d = r["full"], r["history"], r["daily"]
        print(f"| {r['label']} | {f[0]:.1f} ({f[1]:,}) | {h[0]:.1f} | {d[0]:.1f} ({d[1]:,}) | {d[0] / f[0]:.0%} | {r['bronze_full']:,} / {r['bronze_incr']:,} |")


if __name__ == "__main__":
    main()

"""Fixed cost of a Delta write through `common.io.tables.write`, old code beside new.

    .venv/bin/python -m bench.bench_writes --baseline-tree /work/before --tables 20

Per code tree (this checkout, and `--baseline-tree`: a `git worktree` of the commit to compare
with), one process with one SparkSession (the test env: local[2], 2 shuffle partitions) writes
`--tables` catalog tables of one small partitioned frame, three times: creation, an unchanged
overwrite, an append. Printed: median seconds per write, the Delta commits each table ends with,
and the same write done directly with `df.write.format("delta")` (the floor: what Delta itself
costs) in the same process. The catalog comment is set by `tables.write`, so the raw writer does
less; the difference is the wrapper's fixed cost.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

SNIPPET = r"""
import json, statistics, sys, time
from datetime import date
from pathlib import Path
from common.core.catalog import TABLES
from common.core.config import load_config
from common.io import tables
from common.io.spark import build_session
root, n = sys.argv[1], int(sys.argv[2])
cfg = load_config("test", [f"storage.root={root}/lh", f"storage.restricted_root={root}/lh/restricted"])
spark = build_session(cfg)
df = spark.createDataFrame([(f"V{i}", float(i), date(2024, 1, 1 + i % 3)) for i in range(50)], "vehicle_id string, x double, date date").cache()
df.count()
names = [t for t in sorted(TABLES) if t.split(".")[0] in ("silver", "gold")][:n]
spark.range(1).write.format("delta").mode("overwrite").save(f"{root}/warmup")  # JVM and Delta classes loaded outside the timings
out = {}
for phase, mode in (("create", "overwrite"), ("overwrite", "overwrite"), ("append", "append")):
    secs = []
    for t in names:
        a = time.perf_counter(); tables.write(df, cfg, t, mode=mode, partition_by=["date"]); secs.append(time.perf_counter() - a)
    out[phase] = statistics.median(secs)
    secs = []
    for i in range(len(names)):
        a = time.perf_counter(); df.write.format("delta").mode(mode).partitionBy("date").save(f"{root}/raw/{i}"); secs.append(time.perf_counter() - a)
    out["raw " + phase] = statistics.median(secs)
out["commits"] = statistics.median(len(list(Path(cfg.storage.path(t), "_delta_log").glob("*.json"))) for t in names)
print("RESULT " + json.dumps(out))
"""


def run(tree: Path, n: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench_writes_") as root:
        done = subprocess.run([sys.executable, "-c", SNIPPET, root, str(n)], cwd=tree, env=dict(os.environ, PYTHONPATH=str(tree)), capture_output=True, text=True)
    line = next((x for x in done.stdout.splitlines() if x.startswith("RESULT ")), None)
    if done.returncode or line is None:
        raise RuntimeError(f"{tree}: exit {done.returncode}: {done.stderr[-2000:]}")
    return json.loads(line[len("RESULT ") :])


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--baseline-tree", type=Path, required=True, help="a git worktree of the code to compare with")
    ap.add_argument("--tables", type=int, default=20)
    args = ap.parse_args(argv)
    rows = [("baseline", run(args.baseline_tree.resolve(), args.tables)), ("this", run(Path.cwd(), args.tables))]
    rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=args.baseline_tree, capture_output=True, text=True).stdout.strip()
    print(f"\nBaseline: {args.baseline_tree} at {rev}; this: working tree; {args.tables} tables, median s per write\n")
    print("| code | create s (raw Delta) | overwrite s (raw) | append s (raw) | commits per table after the 3 writes |")
    print("|---|---:|---:|---:|---:|")
    for label, r in rows:
        print(f"| {label} | {r['create']:.2f} ({r['raw create']:.2f}) | {r['overwrite']:.2f} ({r['raw overwrite']:.2f}) | {r['append']:.2f} ({r['raw append']:.2f}) | {r['commits']:.0f} |")


if __name__ == "__main__":
    main()

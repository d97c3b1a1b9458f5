"""Generation and ingest throughput (rows/s) and peak memory at 1 M and 10 M telemetry rows.

    .venv/bin/python -m bench.bench_foundation --rows 1000000 10000000
    .venv/bin/python -m bench.bench_foundation --rows 50000000 --generate-only

Each size is a fresh lakehouse under bench/out/ (git-ignored). Prints a Markdown table and
appends it to docs/BENCHMARKS.md with the machine description and the exact command.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from datetime import datetime, timezone
from pathlib import Path

from bench.harness import HEADER, machine_description, measure
from common.core.config import PROJECT_ROOT, load_config

ROWS_PER_VEHICLE_DAY = 603  # measured: 261,931 raw rows from 31 vehicles x 14 days (default sampling: moving 30-60 s, parked 300 s)


def fleet_for(rows: int, days: int) -> int:
    return max(1, round(rows / (ROWS_PER_VEHICLE_DAY * days)))


def main(argv=None) -> str:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 10_000_000])
    ap.add_argument("--days", type=int, default=14)
    ap.add_argument("--out", default=str(PROJECT_ROOT / "bench" / "out"))
    ap.add_argument("--no-append", action="store_true", help="do not append to docs/BENCHMARKS.md")
    ap.add_argument("--generate-only", action="store_true", help="measure generation only (e.g. the 50 M-row target of issue 2)")
    args = ap.parse_args(argv)

    from common.io.landing import default_inputs
    from common.io.spark import build_session, python_for_workers
    from jobs.generate import run_generate
    from jobs.ingest import run_ingest

    python_for_workers()
    lines = []
    spark = None
    for rows in args.rows:
        root = Path(args.out) / f"foundation_{rows}"
        shutil.rmtree(root, ignore_errors=True)
        vehicles = fleet_for(rows, args.days)
        cfg = load_config(
            "local",
            [
                f"storage.root={root}/lakehouse",
                f"storage.restricted_root={root}/lakehouse/restricted",
                f"generator.vehicles={vehicles}",
                f"generator.days={args.days}",
                "spark.progress_bar=false",
                "spark.driver_memory=8g",
            ],
        )
        spark = spark or build_session(cfg)
        m_gen, rep = measure(spark, f"generate {vehicles} vehicles x {args.days} d", lambda spark=spark, cfg=cfg: run_generate(spark, cfg, force=True))
        m_gen.rows = rep.rows_out
        lines.append(m_gen.line())
        if not args.generate_only:
            m_ing, rep2 = measure(spark, "ingest (raw -> bronze)", lambda spark=spark, cfg=cfg: run_ingest(spark, cfg, default_inputs(cfg), generated=True), rows=None)
            m_ing.rows = rep2.rows_in
            lines.append(m_ing.line())
        print(HEADER, *lines, sep="\n", flush=True)
    cmd = "python -m bench.bench_foundation " + " ".join(sys.argv[1:] if argv is None else argv)
    text = f"\n### Generation and ingest — {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC\nMachine: {machine_description()}  \nCommand: `{cmd}`\n\n{HEADER}\n" + "\n".join(lines) + "\n"
    if not args.no_append:
        with open(PROJECT_ROOT / "docs" / "BENCHMARKS.md", "a") as fh:
            fh.write(text)
    print(text)
    return text


if __name__ == "__main__":
    main()

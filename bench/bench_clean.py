"""Cleaning throughput: Spark (common.silver.cleaning) vs the same rules in single-process pandas.

    .venv/bin/python -m bench.bench_clean                 # 10 M rows (default)
    .venv/bin/python -m bench.bench_clean --rows 1000000 --no-append

Input: a synthetic bronze-shaped Parquet data set (vehicles driving loops in Delhi every 30 s,
~0.6 % injected anomalies and 0.1 % near duplicates), built once per size under bench/out/ and
reused. Both engines read that Parquet, clean it with the default `clean` conf and write Parquet:
Spark with `clean_telematics` on `local[*]`, pandas in a separate single Python process
(bench/clean_pandas.py; its peak RSS is measured). Prints rows/s of both, the ratio and the
per-rule counts of both (they must agree), and appends the table to docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import psutil

from bench.harness import HEADER, Measurement, machine_description, measure
from common.core.config import PROJECT_ROOT, load_config

AS_OF = datetime(2025, 1, 1, tzinfo=timezone.utc)
START = "2024-03-04 00:00:00"
TYPES = (("three_wheeler", 7.4), ("two_wheeler", 2.9), ("car", 30.2), ("van", 21.3))


def synthetic_bronze(spark, rows: int, vehicles: int, seed: int = 7):
    """Bronze-shaped telemetry: each vehicle drives a 3.3 km-radius loop (~21 km/h), 30 s apart."""
    from pyspark.sql import functions as F

    per_vehicle = max(1, rows // vehicles)
    # One random column, materialised: a rand() repeated inside CASE branches would draw a new
    # number per branch and inflate the anomaly rates.
    base = spark.range(per_vehicle * vehicles).select(
        (F.col("id") / per_vehicle).cast("long").alias("v"),
        (F.col("id") % per_vehicle).alias("i"),
        F.rand(seed).alias("r"),
        F.rand(seed + 1).alias("noise"),
    )
    angle = F.col("i") * (2 * math.pi / 120)  # one loop per hour
    lat0 = F.lit(28.50) + (F.col("v") % 97) / 97 * 0.20
    lon0 = F.lit(77.08) + (F.col("v") % 89) / 89 * 0.24
    r = F.col("r")
    lat = lat0 + 0.03 * F.sin(angle)
    lon = lon0 + 0.034 * F.cos(angle)
    soc = F.lit(95.0) - (F.col("i") % 1000) * 0.07
    clean = base.select(
        F.format_string("B%05d", F.col("v")).alias("vehicle_id"),
        (F.to_timestamp(F.lit(START)) + F.make_dt_interval(secs=F.col("i") * 30 + F.col("v") % 30)).alias("ts"),
        F.when(r < 0.001, 0.0).when(r < 0.002, None).when(r < 0.003, lat + 0.08).when(r < 0.004, lat + 3.0).otherwise(lat).alias("lat"),
        F.when(r < 0.001, 0.0).otherwise(lon).alias("lon"),
        F.when((r >= 0.005) & (r < 0.006), None).otherwise(F.lit(21.0) + F.col("noise") * 4).alias("speed_kmh"),
        (F.lit(10_000.0) + F.col("i") * 0.175).alias("odometer_km"),
        F.when((r >= 0.004) & (r < 0.005), F.when(soc > 60, soc - 30).otherwise(soc + 30)).otherwise(soc).alias("soc_pct"),
        F.lit(215.0).alias("altitude_m"),
        F.lit(90.0).alias("heading_deg"),
        F.lit(30.0).alias("ambient_temp_c"),
    )
    near_dups = clean.where(F.rand(seed + 2) < 0.001).withColumn("lat", F.col("lat") + 0.0001)
    return clean.unionByName(near_dups).withColumn("source_name", F.lit("bench")).withColumn("source_file", F.lit("synthetic")).withColumn("date", F.to_date("ts"))


def vehicles_pdf(vehicles: int):
    import pandas as pd

    return pd.DataFrame(
        [(f"B{v:05d}", "bench", TYPES[v % 4][0], TYPES[v % 4][1], f"D{v:05d}", "Asia/Kolkata") for v in range(vehicles)],
        columns=["vehicle_id", "model", "vehicle_type", "battery_kwh", "driver_id", "timezone"],
    )


def ensure_input(spark, root: Path, rows: int, vehicles: int) -> Path:
    data = root / "bronze.parquet"
    if not (data / "_SUCCESS").exists():
        synthetic_bronze(spark, rows, vehicles).write.mode("overwrite").parquet(str(data))
    vehicles_pdf(vehicles).to_parquet(root / "vehicles.parquet")
    return data


def run_pandas(data: str, vehicles: str, out: str, result: str, overrides: list[str]) -> None:
    """Entry point of the pandas subprocess: read, clean, write, report seconds and flag counts."""
    import numpy as np
    import pandas as pd

    from bench.clean_pandas import clean_pandas
    from common.silver.cleaning import FLAGS, cleaning_params

    params = cleaning_params(load_config("local", overrides), as_of=AS_OF)
    t0 = time.perf_counter()
    bronze = pd.read_parquet(data)
    bronze["ts"] = bronze["ts"].dt.tz_localize(None) if bronze["ts"].dt.tz is not None else bronze["ts"]
    t_read = time.perf_counter()
    cleaned = clean_pandas(bronze, pd.read_parquet(vehicles), params)
    t_clean = time.perf_counter()
    cleaned.to_parquet(out, index=False)
    t_end = time.perf_counter()
    flags = cleaned["quality_flags"].to_numpy()
    counts = {name: int(np.count_nonzero(flags & bit)) for name, bit in FLAGS.items()}
    Path(result).write_text(
        json.dumps(
            {
                "rows": len(cleaned),
                "read_s": t_read - t0,
                "clean_s": t_clean - t_read,
                "write_s": t_end - t_clean,
                "usable": int(cleaned["is_usable"].sum()),
                "counts": counts,
            }
        )
    )


def run_capped(label: str, argv: list[str], rows: int, max_mb: float, timeout: float) -> Measurement:
    """Like harness.measure_subprocess, but kills the process above `max_mb` of RSS so a pandas run
    that does not fit cannot push the shared machine into the OOM killer."""
    t0 = time.perf_counter()
    proc = psutil.Popen(argv)
    peak, status = 0.0, "ok"
    while proc.poll() is None:
        try:
            rss = proc.memory_info().rss + sum(c.memory_info().rss for c in proc.children(recursive=True))
            peak = max(peak, rss / 2**20)
        except psutil.Error:
            pass
        if peak > max_mb:
            proc.kill()
            status = f"stopped: needed more than {max_mb:,.0f} MB"
            break
        if time.perf_counter() - t0 > timeout:
            proc.kill()
            status = f"timeout after {timeout:.0f}s"
            break
        time.sleep(0.2)
    rc = proc.wait()
    if status == "ok" and rc != 0:
        status = "out of memory (killed)" if rc in (-9, 137) else f"failed (exit {rc})"
    return Measurement(label, time.perf_counter() - t0, rows, 0.0, 0.0, peak, None, {"status": status})


def main(argv=None) -> str:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=10_000_000, help="telemetry rows (before 0.1 %% near duplicates)")
    ap.add_argument("--rows-per-vehicle", type=int, default=5_000, help="about 42 h at 30 s")
    ap.add_argument("--env", default="local")
    ap.add_argument("--out", default=str(PROJECT_ROOT / "bench" / "out"))
    ap.add_argument("--skip-pandas", action="store_true")
    ap.add_argument("--pandas-timeout", type=float, default=3600.0, help="seconds before the pandas run is killed")
    ap.add_argument(
        "--pandas-max-mb",
        type=float,
        default=None,
        help="RSS above which the pandas run is stopped (default: 85 %% of the memory available when it starts)",
    )
    ap.add_argument("--no-append", action="store_true", help="do not append to docs/BENCHMARKS.md")
    ap.add_argument("--pandas-worker", nargs=4, metavar=("DATA", "VEHICLES", "OUT", "RESULT"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    overrides = ["spark.progress_bar=false"]
    if args.pandas_worker:
        run_pandas(*args.pandas_worker, overrides)
        return ""

    from pyspark.sql import functions as F

    from common.io.spark import build_session, python_for_workers
    from common.silver.cleaning import FLAGS, clean_telematics, cleaning_params

    python_for_workers()
    cfg = load_config(args.env, overrides)
    spark = build_session(cfg)
    vehicles = max(1, args.rows // args.rows_per_vehicle)
    root = Path(args.out) / f"clean_{args.rows}"
    root.mkdir(parents=True, exist_ok=True)
    data = ensure_input(spark, root, args.rows, vehicles)
    bronze = spark.read.parquet(str(data))
    rows = bronze.count()
    fleet = spark.read.parquet(str(root / "vehicles.parquet"))
    params = cleaning_params(cfg, as_of=AS_OF)

    spark_out = root / "silver_spark.parquet"
    m_spark, _ = measure(
        spark,
        f"clean, Spark {cfg.spark.master} ({vehicles} vehicles)",
        lambda: clean_telematics(bronze, fleet, params).write.mode("overwrite").parquet(str(spark_out)),
        rows=rows,
    )
    silver = spark.read.parquet(str(spark_out))
    spark_counts = silver.agg(*[F.sum((F.col("quality_flags").bitwiseAND(F.lit(bit)) != 0).cast("long")).alias(n) for n, bit in FLAGS.items()]).first().asDict()
    assert silver.count() == rows, "rows in != rows out"

    lines = [HEADER, m_spark.line()]
    pandas = None
    spark.stop()  # give the pandas process the driver's memory
    if not args.skip_pandas:
        result = root / "pandas_result.json"
        result.unlink(missing_ok=True)
        argv_p = [sys.executable, "-m", "bench.bench_clean", "--pandas-worker", str(data), str(root / "vehicles.parquet"),
                  str(root / "silver_pandas.parquet"), str(result)]  # fmt: skip
        max_mb = args.pandas_max_mb or 0.85 * psutil.virtual_memory().available / 2**20
        m_pd = run_capped("clean, pandas single process (read + clean + write)", argv_p, rows, max_mb, args.pandas_timeout)
        if result.exists():
            pandas = json.loads(result.read_text())
        lines.append(m_pd.line())

    text = [
        f"### Cleaning, {rows:,} rows ({datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC)",
        "",
        machine_description(),
        f"`.venv/bin/python -m bench.bench_clean --rows {args.rows}`",
        "",
        *lines,
        "",
        f"Spark: {rows / m_spark.seconds:,.0f} rows/s (read Parquet, clean, write Parquet; {m_spark.seconds:,.1f} s)",
    ]
    if pandas:
        total = pandas["read_s"] + pandas["clean_s"] + pandas["write_s"]
        text += [
            f"pandas: {rows / total:,.0f} rows/s end to end ({total:,.1f} s: read {pandas['read_s']:.1f}, "
            f"clean {pandas['clean_s']:.1f}, write {pandas['write_s']:.1f}); {rows / pandas['clean_s']:,.0f} rows/s clean only",
            f"Spark speed-up over pandas, end to end: {total / m_spark.seconds:.2f}x (above 1: Spark faster)",
            "",
            "| rule | Spark rows | pandas rows |",
            "|---|---:|---:|",
            *[f"| {n} | {spark_counts[n]:,} | {pandas['counts'][n]:,} |" for n in FLAGS],
        ]
    elif not args.skip_pandas:
        text.append(f"pandas: {m_pd.extra.get('status')}")
    report = "\n".join(text)
    print(report)
    if not args.no_append:
        with open(PROJECT_ROOT / "docs" / "BENCHMARKS.md", "a") as fh:
            fh.write("\n" + report + "\n")
    for p in (spark_out, root / "silver_pandas.parquet"):
        shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
    return report


if __name__ == "__main__":
    main()

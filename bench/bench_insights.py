"""Insights benchmark: the residence stage against a sequential pandas + scikit-learn loop over
vehicles (the original analysis), and the exact distributed hotspot DBSCAN against single-node
scikit-learn DBSCAN -- on the same data, in the same run.

    .venv/bin/python -m bench.bench_insights                                   # 10 M rows, 2 M visits
    .venv/bin/python -m bench.bench_insights --rows 200000 --visits 100000 --no-append

Residence: a synthetic silver.telematics_clean (Delta, one sample a minute, drivers parked at
home from 21:00 to 07:00 local with ~5 m GPS jitter, one night in ten elsewhere, daytime stops
and drives) is built once per size under bench/out/. Spark runs `jobs.residence.run_residence`
(night points -> ~10 m grid -> grouped pandas UDF DBSCAN -> restricted.residences). The baseline,
in its own Python process, reads the same Parquet files with pandas, filters night points and
loops over vehicles running scikit-learn DBSCAN on the raw points, home = the largest cluster.
Both times include reading the input and writing the result; homes of both are compared.

Hotspots: `--visits` synthetic unique-visit points over a city (scattered one-off stops, a long
tail of places, and dense depots holding `--depot-share` of all visits). The exact distributed
DBSCAN (common.spatial.dbscan) is timed from Parquet to materialised labels; single-node scikit-learn
runs on the same points when its neighbour lists fit `--sklearn-max-pairs` (its memory grows
with the square of a depot's size), else the estimate is printed. A second scenario without
depots gives a scikit-learn time at full size; labels are compared (they must be identical).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from bench.harness import HEADER, Measurement, machine_description, measure, measure_subprocess
from common.core.config import PROJECT_ROOT, load_config
from common.spatial.geo import EARTH_RADIUS_M

START_UTC = "2024-03-03 18:30:00"  # local midnight of 2024-03-04 in Asia/Kolkata
TZ = "Asia/Kolkata"
CENTER = (28.6139, 77.2090)
M_PER_DEG = math.pi * EARTH_RADIUS_M / 180


# --------------------------------------------------------------------------------------------
# Residence data
# --------------------------------------------------------------------------------------------
def synthetic_silver(spark, rows: int, days: int):
    """silver.telematics_clean-shaped rows, one a minute per vehicle (vectorised Spark)."""
    from pyspark.sql import functions as F

    per_vehicle = days * 1440
    vehicles = max(1, rows // per_vehicle)

    def u(*parts) -> F.Column:  # deterministic uniform [0, 1) from a hash
        return (F.abs(F.xxhash64(*[F.lit(p) if not isinstance(p, F.Column) else p for p in parts])) % 1_000_003) / 1_000_003.0

    base = spark.range(vehicles * per_vehicle).select((F.col("id") / per_vehicle).cast("long").alias("v"), (F.col("id") % per_vehicle).alias("i"))
    day = (F.col("i") / 1440).cast("long")
    minute = F.col("i") % 1440  # local minute of day
    night = (minute >= 21 * 60) | (minute < 7 * 60)
    # the night from 21:00 belongs to the next morning's date
    night_id = F.when(minute >= 21 * 60, day + 1).otherwise(day)
    away = u(F.col("v"), night_id, F.lit("away")) < 0.1

    def place(tag, key):
        r = 14000 * F.sqrt(u(F.col("v"), key, F.lit(tag + "r")))
        th = 2 * math.pi * u(F.col("v"), key, F.lit(tag + "t"))
        return F.lit(CENTER[0]) + r * F.cos(th) / M_PER_DEG, F.lit(CENTER[1]) + r * F.sin(th) / (M_PER_DEG * math.cos(math.radians(CENTER[0])))

    home_lat, home_lon = place("home", F.lit(0))
    away_lat, away_lon = place("away", night_id)
    block = (F.col("i") / 60).cast("long")  # daytime: one hour = 20 min drive + 40 min stop
    stop_lat, stop_lon = place("stop", block)
    prev_lat, prev_lon = place("stop", block - 1)
    in_block = F.col("i") % 60
    driving = ~night & (in_block < 20)
    frac = in_block / 20.0
    jit_n = (u(F.col("v"), F.col("i"), F.lit("n")) - 0.5) * 10
    jit_e = (u(F.col("v"), F.col("i"), F.lit("e")) - 0.5) * 10
    lat = (F.when(night & away, away_lat).when(night, home_lat).when(driving, prev_lat + (stop_lat - prev_lat) * frac).otherwise(stop_lat)) + jit_n / M_PER_DEG
    lon = (F.when(night & away, away_lon).when(night, home_lon).when(driving, prev_lon + (stop_lon - prev_lon) * frac).otherwise(stop_lon)) + jit_e / (M_PER_DEG * math.cos(math.radians(CENTER[0])))
    ts = F.to_timestamp(F.lit(START_UTC)) + F.make_dt_interval(mins=F.col("i"), secs=(F.col("v") % 50).cast("decimal(8,6)"))
    df = base.select(
        F.format_string("R%05d", F.col("v")).alias("vehicle_id"),
        ts.alias("ts"),
        lat.alias("lat"),
        lon.alias("lon"),
        F.when(driving, F.lit(25.0)).otherwise(F.lit(0.0)).alias("speed_kmh"),
        (F.lit(90.0) - (F.col("i") % 600) * 0.1).alias("soc_pct"),
        F.lit(True).alias("is_usable"),
        F.lit(TZ).alias("timezone"),
    )
    local = F.from_utc_timestamp("ts", F.col("timezone"))
    return df.withColumn("ts_local", local).withColumn("local_date", F.to_date(local)).withColumn("date", F.to_date("ts")), vehicles


def run_pandas_residence(files_json: str, out: str, result: str, eps_m: float, min_samples: int) -> None:
    """The original analysis: pandas read, night filter, one scikit-learn DBSCAN per vehicle on raw points."""
    import pandas as pd
    from sklearn.cluster import DBSCAN

    t0 = time.perf_counter()
    files = json.loads(Path(files_json).read_text())
    df = pd.concat(
        [pd.read_parquet(f, columns=["vehicle_id", "ts_local", "lat", "lon", "speed_kmh", "is_usable"]) for f in files],
        ignore_index=True,
    )
    t_read = time.perf_counter()
    hour = df["ts_local"].dt.hour
    night = df[df["is_usable"] & (hour < 5) & (df["speed_kmh"] <= 2.0)]
    homes = []
    for vid, pts in night.groupby("vehicle_id", sort=True):
        X = np.radians(pts[["lat", "lon"]].to_numpy())
        labels = DBSCAN(eps=eps_m / EARTH_RADIUS_M, min_samples=min_samples, metric="haversine", algorithm="ball_tree").fit_predict(X)
        if (labels >= 0).any():
            best = np.bincount(labels[labels >= 0]).argmax()
            m = labels == best
            homes.append((vid, float(pts["lat"].to_numpy()[m].mean()), float(pts["lon"].to_numpy()[m].mean()), int(m.sum())))
    t_cluster = time.perf_counter()
    pd.DataFrame(homes, columns=["vehicle_id", "home_lat", "home_lon", "points"]).to_parquet(out, index=False)
    Path(result).write_text(
        json.dumps({"rows": len(df), "night_points": len(night), "vehicles": len(homes), "read_s": t_read - t0, "cluster_s": t_cluster - t_read, "total_s": time.perf_counter() - t0})  # fmt: skip
    )


def bench_residence(spark, cfg, args, root: Path) -> list[str]:
    import pandas as pd
    from delta.tables import DeltaTable

    from common.io import tables
    from jobs.residence import run_residence

    lines = []
    silver_path = cfg.storage.path("silver.telematics_clean")
    meta = root / "silver_meta.json"
    if not meta.exists() or not DeltaTable.isDeltaTable(spark, silver_path):
        df, vehicles = synthetic_silver(spark, args.rows, args.days)
        t0 = time.perf_counter()
        tables.write(df, cfg, "silver.telematics_clean", mode="overwrite", partition_by=["date"])
        meta.write_text(json.dumps({"vehicles": vehicles, "build_s": time.perf_counter() - t0}))
    vehicles = json.loads(meta.read_text())["vehicles"]
    silver = tables.read(spark, cfg, "silver.telematics_clean")
    rows = silver.count()
    files = root / "silver_files.json"
    files.write_text(json.dumps([f.replace("file://", "").replace("file:", "") for f in silver.inputFiles()]))

    m_spark, _ = measure(spark, f"residence stage, Spark {cfg.spark.master} ({vehicles} vehicles)", lambda: run_residence(spark, cfg), rows=rows)
    result = root / "pandas_residence.json"
    result.unlink(missing_ok=True)
    out = root / "pandas_homes.parquet"
    argv_p = [sys.executable, "-m", "bench.bench_insights", "--pandas-residence", str(files), str(out), str(result),
              str(cfg.residence.eps_m), str(cfg.residence.min_samples)]  # fmt: skip
    m_pd = measure_subprocess("residence, pandas + scikit-learn loop over vehicles (1 process)", argv_p, rows=rows, timeout=args.pandas_timeout)
    lines += [HEADER, m_spark.line(), m_pd.line(), ""]
    spark_homes = tables.read(spark, cfg, "restricted.residences").toPandas()
    labelled = spark_homes[spark_homes.status == "home"]
    lines.append(f"Spark: {len(labelled)} of {len(spark_homes)} vehicles labelled; {rows / m_spark.seconds:,.0f} rows/s")
    if result.exists():
        pdres = json.loads(result.read_text())
        base = pd.read_parquet(out).merge(labelled, on="vehicle_id", suffixes=("_pd", ""))
        d = np.hypot((base.home_lat_pd - base.home_lat) * M_PER_DEG, (base.home_lon_pd - base.home_lon) * M_PER_DEG * math.cos(math.radians(CENTER[0])))
        lines += [
            f"pandas: {pdres['total_s']:,.1f} s (read {pdres['read_s']:.1f}, DBSCAN loop {pdres['cluster_s']:.1f}) over {pdres['night_points']:,} raw night points of {pdres['vehicles']} vehicles",
            f"speed-up Spark vs pandas loop: {m_pd.seconds / m_spark.seconds:.2f}x (target >= 3x)",
            f"homes agreeing within 25 m: {int((d <= 25).sum())} of {len(base)}",
        ]
    else:
        lines.append(f"pandas: {m_pd.extra.get('status')}")
    return lines


# --------------------------------------------------------------------------------------------
# Hotspot data
# --------------------------------------------------------------------------------------------
def synthetic_visits(n: int, depot_share: float, seed: int = 11) -> tuple[np.ndarray, np.ndarray]:
    """Visit positions: 25 % scattered stops, a Zipf tail of places, 5 dense depots."""
    rng = np.random.default_rng(seed)
    cos0 = math.cos(math.radians(CENTER[0]))

    def disk(lat0, lon0, radius_m, k):
        r = radius_m * np.sqrt(rng.random(k))
        th = rng.random(k) * 2 * np.pi
        return lat0 + r * np.cos(th) / M_PER_DEG, lon0 + r * np.sin(th) / (M_PER_DEG * cos0)

    n_depot = int(n * depot_share)
    n_scatter = int(n * 0.25)
    n_places = n - n_depot - n_scatter
    parts = [disk(CENTER[0], CENTER[1], 25_000, n_scatter)]
    k_places = max(20, n // 1000)
    centres = disk(CENTER[0], CENTER[1], 22_000, k_places)
    pop = 1.0 / np.arange(1, k_places + 1) ** 1.1
    counts = rng.multinomial(n_places, pop / pop.sum())
    radii = rng.uniform(40, 150, k_places)
    for la, lo, r, c in zip(centres[0], centres[1], radii, counts):
        parts.append(disk(la, lo, r, c))
    depots = disk(CENTER[0], CENTER[1], 15_000, 5)
    for k, (la, lo) in enumerate(zip(*depots)):
        parts.append(disk(la, lo, 120, n_depot // 5 + (n_depot % 5 if k == 0 else 0)))
    lat = np.concatenate([p[0] for p in parts])
    lon = np.concatenate([p[1] for p in parts])
    order = rng.permutation(len(lat))
    return lat[order], lon[order]


def estimated_pairs(lat: np.ndarray, lon: np.ndarray, eps_m: float) -> float:
    """Neighbour pairs single-node DBSCAN materialises (grid estimate: cells of eps, 3x3 blocks x pi/9)."""
    import pandas as pd

    r = np.floor(lat * M_PER_DEG / eps_m).astype(np.int64)
    c = np.floor(lon * M_PER_DEG * math.cos(math.radians(CENTER[0])) / eps_m).astype(np.int64)
    cells = pd.Series(1, index=pd.MultiIndex.from_arrays([r, c])).groupby(level=[0, 1]).sum()
    lookup = cells.to_dict()
    total = 0.0
    for (i, j), n in lookup.items():
        block = sum(lookup.get((i + di, j + dj), 0) for di in (-1, 0, 1) for dj in (-1, 0, 1))
        total += n * block
    return total * math.pi / 9


def bench_hotspots_scenario(spark, cfg, args, root: Path, label: str, depot_share: float) -> tuple[list[str], list[str]]:
    import pandas as pd

    from common.core.frames import release
    from common.spatial.dbscan import dense_labels, distributed_dbscan, haversine_dbscan

    p = cfg.hotspots
    lat, lon = synthetic_visits(args.visits, depot_share)
    path = root / f"visits_{label}.parquet"
    pd.DataFrame({"point_id": np.arange(len(lat), dtype="int64"), "lat": lat, "lon": lon}).to_parquet(path, index=False)
    out = root / f"labels_{label}.parquet"

    def distributed():
        pts = spark.read.parquet(str(path))
        labels = distributed_dbscan(pts, p.eps_m, p.min_samples, p.partition_cell_m)
        labels.write.mode("overwrite").parquet(str(out))
        release(labels)

    m_dist, _ = measure(spark, f"hotspot DBSCAN, exact distributed ({label}), Spark {cfg.spark.master}", distributed, rows=len(lat))
    got = pd.read_parquet(out).sort_values("point_id")
    labels = dense_labels(got.cluster_id.to_numpy())
    lines = [m_dist.line()]
    pairs = estimated_pairs(lat, lon, p.eps_m)
    notes = [
        f"{label}: {len(lat):,} visits, eps {p.eps_m:g} m, min_samples {p.min_samples}, cells {p.partition_cell_m:g} m: "
        f"{labels.max() + 1:,} clusters, {int((labels == -1).sum()):,} noise; distributed {m_dist.seconds:,.1f} s "
        f"(target < 300 s at 2 M)"
    ]
    if pairs <= args.sklearn_max_pairs:
        t0 = time.perf_counter()
        ref = haversine_dbscan(lat, lon, p.eps_m, p.min_samples)
        sk_s = time.perf_counter() - t0
        lines.append(Measurement(f"hotspot DBSCAN, scikit-learn single node ({label})", sk_s, len(lat)).line())
        notes.append(f"{label}: scikit-learn {sk_s:,.1f} s; identical labels: {bool(np.array_equal(ref, labels))} (~{pairs:,.0f} neighbour pairs)")
    else:
        notes.append(
            f"{label}: scikit-learn single node not run: ~{pairs:,.0f} neighbour pairs (~{pairs * 8 / 2**30:,.1f} GiB of neighbour indices) exceed --sklearn-max-pairs {args.sklearn_max_pairs:,.0f}"
        )
    return lines, notes


# --------------------------------------------------------------------------------------------
def main(argv=None) -> str:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=10_000_000, help="telemetry rows of the residence benchmark")
    ap.add_argument("--days", type=int, default=14, help="days per vehicle (one row a minute)")
    ap.add_argument("--visits", type=int, default=2_000_000, help="unique-visit points of the hotspot benchmark")
    ap.add_argument("--depot-share", type=float, default=0.1, help="share of visits in 5 dense depots")
    ap.add_argument("--sklearn-max-pairs", type=float, default=2.5e8, help="run single-node DBSCAN only below this")
    ap.add_argument("--only", choices=["residence", "hotspots"], default=None)
    ap.add_argument("--env", default="local")
    ap.add_argument("--conf", action="append", default=[], help="config override key=value (repeatable)")
    ap.add_argument("--out", default=str(PROJECT_ROOT / "bench" / "out"))
    ap.add_argument("--pandas-timeout", type=float, default=3600.0)
    ap.add_argument("--no-append", action="store_true", help="do not append to docs/BENCHMARKS.md")
    ap.add_argument("--pandas-residence", nargs=5, metavar=("FILES", "OUT", "RESULT", "EPS", "MIN"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.pandas_residence:
        files, out, result, eps, min_samples = args.pandas_residence
        run_pandas_residence(files, out, result, float(eps), int(min_samples))
        return ""

    from common.io.spark import build_session, python_for_workers

    root = Path(args.out) / f"insights_{args.rows}_{args.visits}"
    root.mkdir(parents=True, exist_ok=True)
    overrides = [
        "spark.progress_bar=false",
        f"storage.root={root}/lakehouse",
        f"storage.restricted_root={root}/lakehouse/restricted",
        *args.conf,
    ]
    python_for_workers()
    cfg = load_config(args.env, overrides)
    spark = build_session(cfg)
    text = [
        f"### Insights, {args.rows:,} telemetry rows / {args.visits:,} visits ({datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC)",
        "",
        machine_description(),
        f"`.venv/bin/python -m bench.bench_insights --rows {args.rows} --visits {args.visits}`",
        "",
    ]
    if args.only in (None, "residence"):
        text += bench_residence(spark, cfg, args, root) + [""]
    if args.only in (None, "hotspots"):
        rows, notes = [], []
        for label, share in (("city with dense depots", args.depot_share), ("no depots", 0.0)):
            r, n = bench_hotspots_scenario(spark, cfg, args, root, label, share)
            rows += r
            notes += n
        text += [HEADER, *rows, "", *notes]
    report = "\n".join(text)
    print(report)
    if not args.no_append:
        with open(PROJECT_ROOT / "docs" / "BENCHMARKS.md", "a") as fh:
            fh.write("\n" + report + "\n")
    return report


if __name__ == "__main__":
    main()

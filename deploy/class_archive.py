"""Build the local driver's class-data sharing archive (`make setup` runs it; a no-op once built).

    .venv/bin/python -m deploy.class_archive [--force] [--test]

A driver JVM started with ``-XX:ArchiveClassesAtExit`` runs a small workload that touches what the
jobs use (a Delta table created, appended, read, MERGEd; Sedona; a window; a grouped pandas UDF)
and writes the classes it loaded into `common.io.spark.class_archive_path` when it exits.
`common.io.spark.build_session` then starts local drivers with ``-XX:SharedArchiveFile`` (HotSpot
maps the archive instead of loading and verifying the classes; a JVM that cannot use it, e.g. after
a Java update, starts as before). The archive (~170 MB) stays beside the jars, out of git.
`--test` (run by `make test`) builds the archive of the test session's jar set instead: the cached
jars plus the s3a test jars (`s3a_test_jars`), another class path and so another archive; each
build keeps the other set's archive.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def workload(spark, cfg) -> None:
    """What a job's driver does first: Delta create/append/read/MERGE, Sedona, a window, a pandas UDF."""
    import pandas as pd
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    from common.io import tables
    from common.io.spark import with_sedona

    rows = spark.range(2000).select((F.col("id") % 7).cast("string").alias("vehicle_id"), F.col("id").alias("ts"), (F.rand(1) * 100).alias("soc_pct"))
    tables.write(rows, cfg, "bronze.telematics", partition_by=["vehicle_id"])
    tables.write(rows.limit(10), cfg, "bronze.telematics", mode="append", commit_metrics=True)
    tables.merge(rows.limit(20), cfg, "bronze.telematics", keys=["vehicle_id", "ts"])
    back = tables.read(spark, cfg, "bronze.telematics")
    # bounded: one row per vehicle id, 7 of them
    back.withColumn("prev", F.lag("soc_pct").over(Window.partitionBy("vehicle_id").orderBy("ts"))).groupBy("vehicle_id").agg(F.avg("prev")).collect()
    # bounded: one row per vehicle id, 7 of them
    back.groupBy("vehicle_id").applyInPandas(lambda pdf: pd.DataFrame({"vehicle_id": [pdf.vehicle_id.iloc[0]], "n": [len(pdf)]}), "vehicle_id string, n long").collect()
    with_sedona(spark)
    spark.sql("SELECT ST_DistanceSphere(ST_Point(77.2, 28.6), ST_Point(77.3, 28.7)) AS m").collect()  # bounded: one row


def s3a_test_jars(cfg) -> list[str]:
    """The cached s3a test jars (`bin/fetch-jars --test`) the test session adds (tests/conftest.py); those missing are left out."""
    from common.core.versions import S3A_TEST_COORDINATES, jar_file_name

    if not cfg.spark.jars_dir:
        return []
    jars = [os.path.join(cfg.storage.resolve(cfg.spark.jars_dir), jar_file_name(c)) for c in S3A_TEST_COORDINATES]
    return [j for j in jars if os.path.exists(j)]


def unsupported() -> str | None:
    """Why this Java cannot write a dynamic class archive (HotSpot 13+), or None when it can."""
    from common.io.spark import java_executable

    java = java_executable()
    if not java:
        return "no java on PATH"
    flags = subprocess.run([java, "-XX:+PrintFlagsFinal", "-version"], capture_output=True, text=True)
    if flags.returncode != 0 or "ArchiveClassesAtExit" not in flags.stdout:
        return f"{java} has no -XX:ArchiveClassesAtExit (HotSpot 13 or later needed)"
    return None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--force", action="store_true", help="rebuild even if the archive exists")
    ap.add_argument("--test", action="store_true", help="the archive of the test session's jar set (cached jars + s3a test jars)")
    args = ap.parse_args(argv)

    from pyspark import SparkContext

    from common.core.config import load_config
    from common.core.versions import S3A_TEST_COORDINATES
    from common.io.spark import DRIVER_JAVA_OPTIONS, build_session, class_archive_path, java_options, local_jars, python_for_workers

    with tempfile.TemporaryDirectory(prefix="evfa-class-archive-") as tmp:
        cfg = load_config("local", [f"storage.root={tmp}/lakehouse", f"storage.restricted_root={tmp}/restricted"])
        jars = local_jars(cfg.spark, cfg.storage.resolve)
        if not jars:
            print("class archive: no local jar cache (spark.jars_dir is null): nothing to build")
            return 0
        jars_dir = cfg.storage.resolve(cfg.spark.jars_dir)
        test_jars = s3a_test_jars(cfg)
        test_set = jars + test_jars if len(test_jars) == len(S3A_TEST_COORDINATES) else None
        if args.test and test_set is None:
            print("class archive: the s3a test jars are not cached (bin/fetch-jars --test): nothing to build")
            return 0
        extra = test_jars if args.test else []
        target = class_archive_path(jars_dir, jars + extra)
        # the archive of the other jar set (jobs' or tests') is current too: not stale
        keep = {class_archive_path(jars_dir, jars)} | ({class_archive_path(jars_dir, test_set)} if test_set else set())
        failed = Path(f"{target}.failed")
        if not args.force and (os.path.exists(target) or failed.exists()):
            if failed.exists():
                print(f"class archive: not built for this Java and jar set ({failed.read_text().strip()}); --force retries")
            return 0
        why = unsupported()
        if why:
            failed.write_text(why + "\n")
            print(f"class archive: {why}; Spark drivers start without one")
            return 0
        partial = f"{target}.{os.getpid()}.partial"  # two setups at once each write their own
        Path(target).unlink(missing_ok=True)  # --force: the new driver must not start from the old archive
        failed.unlink(missing_ok=True)
        t0 = time.time()
        cfg.spark.extra = {**cfg.spark.extra, DRIVER_JAVA_OPTIONS: java_options(cfg, f"-XX:ArchiveClassesAtExit={shlex.quote(partial)}", "-Xlog:cds=off", "-Xlog:cds+dynamic=off")}
        cfg.spark.ui_enabled, cfg.spark.progress_bar = False, False
        python_for_workers()
        spark = build_session(cfg, extra_jars=extra)
        try:
            workload(spark, cfg)
        except Exception as exc:  # noqa: BLE001 - the archive is optional: recorded, setup goes on
            failed.write_text(f"the workload failed: {type(exc).__name__}: {str(exc)[:300]}\n")
            print(f"class archive: the workload failed ({type(exc).__name__}: {str(exc)[:300]}); Spark drivers start without one")
            return 0
        spark.stop()
        gateway = SparkContext._gateway
        proc = getattr(gateway, "proc", None)
        if gateway is None or proc is None:
            print("class archive: the driver JVM was not launched by this process; nothing built", file=sys.stderr)
            return 1
        gateway.shutdown()
        proc.stdin.close()  # the launched JVM exits when its stdin closes, and writes the archive then
        proc.wait(timeout=600)
        if not os.path.exists(partial):
            failed.write_text(f"the JVM wrote no archive (exit {proc.returncode})\n")
            print(f"class archive: the JVM wrote no archive (exit {proc.returncode}); Spark drivers start without one")
            return 0
        os.replace(partial, target)
        for stale in Path(target).parent.glob("jvm-classes-*.jsa*"):  # archives of an earlier Java or jar set
            if str(stale) not in keep and not stale.name.endswith(".partial"):
                stale.unlink(missing_ok=True)
        print(f"class archive: {target} ({os.path.getsize(target) / 2**20:.0f} MiB) in {time.time() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

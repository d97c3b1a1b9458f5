"""Faults (slow): a SIGKILLed driver mid-write, an executor JVM lost during a shuffle, and the same
job on separate executor JVMs (`local-cluster[2,1,1024]`, the lost executor's run). Cases
`crash_mid_write`, `executor_loss` and `local_cluster_equals_local` of docs/ROBUSTNESS.md.

Every job here runs as `python -m jobs.clean` in a subprocess (its own driver JVM) on a copy of
the session's generated fleet in bronze; outputs are compared with chispa against the fleet's
silver table written in-process by `local[2]` (the `fleet_silver` fixture, same `as_of`).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import psutil
import pytest
from chispa import assert_df_equality
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from common.io import tables
from jobs.clean import run_clean
from tests.conftest import PROJECT_ROOT, make_config, wait_for_lease_expiry

pytestmark = pytest.mark.slow

SILVER = "silver.telematics_clean"
AS_OF = "2030-01-01T00:00:00+00:00"  # as the fleet_silver fixture
JOB_TIMEOUT_S = 2400
SHORT_LEASE = ("--conf", "lease.ttl_s=15", "--conf", "lease.heartbeat_s=5")


def copy_bronze(src_cfg, dst_cfg) -> None:
    for table in ("bronze.telematics", "bronze.vehicles"):
        shutil.copytree(src_cfg.storage.path(table), dst_cfg.storage.path(table))


def job_command(root: Path, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "jobs.clean", "--env", "test",
        "--conf", f"storage.root={root}/lakehouse",
        "--conf", f"storage.restricted_root={root}/lakehouse/restricted",
        "--conf", f"mlflow.tracking_uri=sqlite:///{root}/mlflow/mlflow.db",
        "--as-of", AS_OF,
        *extra,
    ]  # fmt: skip


def job_env(tmp: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYSPARK_PYTHON"] = sys.executable
    env["PYSPARK_DRIVER_PYTHON"] = sys.executable
    # Executors of local-cluster write shuffle files and work dirs here (not under the venv).
    env["SPARK_LOCAL_DIRS"] = str(tmp / "spark-local")
    env["SPARK_WORKER_DIR"] = str(tmp / "spark-work")
    return env


def start(cmd: list[str], tmp: Path, log_name: str) -> tuple[subprocess.Popen, Path]:
    log = tmp / log_name
    (tmp / "spark-local").mkdir(exist_ok=True)
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=PROJECT_ROOT, env=job_env(tmp), stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    return proc, log


def wait(proc: subprocess.Popen, log: Path) -> None:
    try:
        rc = proc.wait(timeout=JOB_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        raise
    tail = "\n".join(log.read_text(errors="replace").splitlines()[-40:])
    assert rc == 0, f"job exited with {rc}:\n{tail}"


def digest(df: DataFrame) -> DataFrame:
    """One row per silver row: key + SHA-256 of every column (chispa then compares all values)."""
    cols = sorted(c for c in df.columns)
    return df.select(
        "vehicle_id",
        F.col("ts").cast("string").alias("ts"),
        F.sha2(F.to_json(F.struct(*cols), {"ignoreNullFields": "false"}), 256).alias("row_sha256"),
    )


def data_files(table_dir: Path) -> set[Path]:
    return {p for p in table_dir.rglob("*.parquet") if "_delta_log" not in p.parts}


def test_killed_clean_leaves_previous_version_and_rerun_converges(spark, fleet_silver, tmp_path):
    cfg = make_config(tmp_path)
    copy_bronze(fleet_silver, cfg)
    # Previous version: a finished clean with another as_of (different flags, so partial rows would show).
    run_clean(spark, cfg, as_of=datetime(2024, 3, 6, tzinfo=timezone.utc))
    previous_version = tables.version(spark, cfg, SILVER)
    previous = digest(tables.read(spark, cfg, SILVER)).localCheckpoint()
    table_dir = Path(cfg.storage.path(SILVER))
    files_before = data_files(table_dir)

    # The killed driver leaves its run lease behind: a short TTL lets the rerun take it over.
    proc, log = start(job_command(tmp_path, *SHORT_LEASE), tmp_path, "killed.log")
    deadline = time.time() + JOB_TIMEOUT_S
    while time.time() < deadline and proc.poll() is None and not (data_files(table_dir) - files_before):
        time.sleep(0.05)
    assert proc.poll() is None, "the job ended before it started writing: nothing was killed"
    os.killpg(proc.pid, signal.SIGKILL)  # the driver (python + its JVM), mid-write
    proc.wait(timeout=60)
    orphans = data_files(table_dir) - files_before
    print(f"killed mid-write: {len(orphans)} uncommitted data file(s) on disk")

    assert orphans, "no partial output on disk: the kill came too late to test anything"
    assert tables.version(spark, cfg, SILVER) == previous_version, "a commit appeared although the job was killed"
    assert_df_equality(digest(tables.read(spark, cfg, SILVER)), previous, ignore_row_order=True, ignore_nullable=True)

    wait_for_lease_expiry(spark, cfg)
    proc, log = start(job_command(tmp_path), tmp_path, "rerun.log")
    wait(proc, log)
    expected = digest(tables.read(spark, fleet_silver, SILVER))
    assert_df_equality(digest(tables.read(spark, cfg, SILVER)), expected, ignore_row_order=True, ignore_nullable=True)


def executors(proc: subprocess.Popen) -> list[psutil.Process]:
    """Executor JVMs under `proc`. A child of an executor with the same command line is a fork
    about to exec a helper (Hadoop shell commands), not another executor: not counted."""
    found = []
    for child in psutil.Process(proc.pid).children(recursive=True):
        try:
            if any("CoarseGrainedExecutorBackend" in part for part in child.cmdline()):
                found.append(child)
        except psutil.Error:
            continue
    pids = {p.pid for p in found}
    top = []
    for p in found:
        try:
            if p.ppid() not in pids:
                top.append(p)
        except psutil.Error:
            continue
    return top


LOCAL_CLUSTER = ("--conf", "spark.master=local-cluster[2,1,1024]")


def test_executor_loss_during_shuffle_gives_same_output(spark, fleet_silver, tmp_path):
    """`jobs.clean` on separate executor JVMs (`local-cluster[2,1,1024]`: jars shipped via
    spark.jars, Python workers per executor) loses one executor during a shuffle and still writes
    exactly what `local[2]` wrote: cases `executor_loss` and `local_cluster_equals_local` (the
    code does not rely on driver and executors sharing a JVM) in one run."""
    cfg = make_config(tmp_path)
    copy_bronze(fleet_silver, cfg)
    proc, log = start(job_command(tmp_path, *LOCAL_CLUSTER), tmp_path, "executor_loss.log")
    killed = None
    seen = 0
    deadline = time.time() + JOB_TIMEOUT_S
    while killed is None and proc.poll() is None and time.time() < deadline:
        running = executors(proc)
        seen = max(seen, len(running))
        # map output of a shuffle written by an executor: kill that stage's data with its JVM
        # (once both executors run, so the run also shows the work spread over two JVMs)
        if len(running) == 2 and any(tmp_path.rglob("shuffle_*.data")):
            killed = running[0]
            killed.send_signal(signal.SIGKILL)
            print(f"killed executor pid {killed.pid} after shuffle files appeared")
            break
        time.sleep(0.2)
    wait(proc, log)
    assert killed is not None, "the job finished before any shuffle output appeared: nothing was killed"
    assert seen == 2, f"expected 2 executor JVMs, saw {seen}"
    text = log.read_text(errors="replace")
    assert "Lost executor" in text or "Executor lost" in text or "ExecutorLost" in text, "Spark did not notice the lost executor"
    expected = digest(tables.read(spark, fleet_silver, SILVER))
    assert_df_equality(digest(tables.read(spark, cfg, SILVER)), expected, ignore_row_order=True, ignore_nullable=True)

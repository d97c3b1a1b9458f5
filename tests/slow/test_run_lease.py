"""The run lease across processes (slow: every job here is a `python -m jobs.<job>` subprocess with
its own driver JVM). Cases `run_lease_second_run`, `run_lease_released_on_error` and
`run_lease_killed_holder` of docs/ROBUSTNESS.md.

- while this test process holds the lakehouse's lease, `python -m jobs.clean` on the same
  lakehouse exits non-zero at once, naming the holder, and leaves the lease alone;
- a job that fails with an exception still releases its lease at exit;
- a SIGKILLed holder (ingest killed by its test hook right after its bronze commit) leaves its
  lease behind; it expires after lease.ttl_s and the next run takes it over with a warning.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from common.io.lease import LEASE_TABLE, Owner, acquire, read_lease
from jobs.ingest import KILL_AFTER_COMMIT_ENV
from tests.conftest import PROJECT_ROOT, wait_for_lease_expiry
from tests.robustness_table import TELEMATICS_HEADER

pytestmark = pytest.mark.slow
JOB_TIMEOUT_S = 1200


def job(cfg, name: str, *extra: str, env: dict | None = None) -> subprocess.CompletedProcess:
    root = Path(cfg.storage.root).parent
    cmd = [
        sys.executable, "-m", f"jobs.{name}", "--env", "test",
        "--conf", f"storage.root={cfg.storage.root}",
        "--conf", f"storage.restricted_root={cfg.storage.restricted_root}",
        "--conf", f"mlflow.tracking_uri=sqlite:///{root}/mlflow/mlflow.db",
        *extra,
    ]  # fmt: skip
    full_env = {**os.environ, "PYSPARK_PYTHON": sys.executable, **(env or {})}
    return subprocess.run(cmd, cwd=PROJECT_ROOT, env=full_env, capture_output=True, text=True, timeout=JOB_TIMEOUT_S)


def test_second_job_fails_fast_naming_the_holder(spark, fresh_cfg):
    owner = Owner.current("pipeline")
    held = acquire(spark, fresh_cfg, owner)
    try:
        res = job(fresh_cfg, "clean")
        err = res.stderr
        print(err[-1500:])
        assert res.returncode != 0
        assert "is in use by job 'pipeline'" in err
        for part in (owner.run_id, f"host {socket.gethostname()}", f"pid {os.getpid()}", "since ", "last heartbeat ", "expires at "):
            assert part in err, part
        # refused before reading or writing any table: the clean job's own error never came
        assert "TableNotFound" not in err and "not found at" not in err
        state = read_lease(spark, fresh_cfg.storage.path(LEASE_TABLE))
        assert state.token == held.token and state.released_at is None
    finally:
        held.release()


def test_failing_job_releases_its_lease(spark, fresh_cfg):
    res = job(fresh_cfg, "clean")  # no bronze.telematics: the job raises after taking the lease
    assert res.returncode != 0 and "bronze.telematics" in res.stderr, res.stderr[-1500:]
    state = read_lease(spark, fresh_cfg.storage.path(LEASE_TABLE))
    print(state)
    assert state.owner.job == "clean" and state.released_at is not None


def test_killed_holder_lease_expires_and_the_next_run_takes_over(spark, fresh_cfg, tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "a.csv").write_text(TELEMATICS_HEADER + "\nlk_1,2024-03-04 08:00:00,28.6,77.2,10,100,50\n")
    inputs = tmp_path / "inputs.yaml"
    inputs.write_text(f"inputs:\n  telematics:\n    - {{name: lk, path: {raw}, source_timezone: UTC}}\n")
    short_lease = ("--conf", "lease.ttl_s=9", "--conf", "lease.heartbeat_s=3")

    # the holder: ingest SIGKILLed by its test hook right after its bronze commit, lease in hand
    killed = job(fresh_cfg, "ingest", "--inputs", str(inputs), *short_lease, env={KILL_AFTER_COMMIT_ENV: "bronze"})
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-1500:]
    dead = read_lease(spark, fresh_cfg.storage.path(LEASE_TABLE))
    assert dead.owner.job == "ingest" and dead.released_at is None, dead

    # once its recorded expiry has passed, the next run takes the lease over with a warning
    wait_for_lease_expiry(spark, fresh_cfg)
    rerun = job(fresh_cfg, "ingest", "--inputs", str(inputs))
    print(rerun.stderr[-2000:])
    assert rerun.returncode == 0, rerun.stderr[-1500:]
    assert "took over the EXPIRED lease" in rerun.stderr and f"pid {dead.owner.pid}" in rerun.stderr
    state = read_lease(spark, fresh_cfg.storage.path(LEASE_TABLE))
    assert state.owner.job == "ingest" and state.owner.pid != dead.owner.pid and state.released_at is not None

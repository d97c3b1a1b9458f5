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
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from common.lease import LEASE_TABLE, Owner, acquire, read_lease
from tests.conftest import PROJECT_ROOT

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

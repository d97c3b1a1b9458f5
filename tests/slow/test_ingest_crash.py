"""SIGKILL of the ingest driver between each of its commits (slow): quarantine MERGE, bronze MERGE,
audit append, ledger append. Case `crash_between_ingest_commits` of docs/ROBUSTNESS.md.

`python -m jobs.ingest` runs as a subprocess with the test hook EVFA_TEST_KILL_AFTER_COMMIT=<commit>
(jobs/ingest.py): the driver SIGKILLs itself right after that commit, so the kill lands at a
known point between two commits instead of somewhere by timing. Ingest then runs again on the same
lakehouse and every table must equal a clean single run (chispa on all rows; the run id and
ingest time of a row differ by construction and are left out), the rerun's numbers must reconcile,
and the ledger must hold every file once as ingested.

A kill after the bronze commit but before the ledger append leaves the files unrecorded: the
rerun reads them again and counts their rows as `duplicates_existing` (nothing is inserted twice).
That is the intended behaviour, asserted below.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest
from chispa import assert_df_equality
from pyspark.sql import functions as F

from common.io import tables
from jobs.ingest import AUDIT_TABLE, KILL_AFTER_COMMIT_ENV, LEDGER_TABLE, load_dataset_files, run_ingest
from tests.conftest import PROJECT_ROOT, make_config
from tests.robustness_table import TELEMATICS_HEADER

pytestmark = pytest.mark.slow
NOW = datetime(2024, 3, 10, 12, 0, tzinfo=timezone.utc)
JOB_TIMEOUT_S = 1200
RUN_COLUMNS = ("ingest_run_id", "ingested_at")  # differ between any two runs by construction
COMMITS = ("quarantine", "bronze", "audit", "ledger")


def write_inputs(root: Path) -> Path:
    """Telematics (valid, out-of-range and duplicated rows) and JSON sessions (one open session,
    quarantined); returns the --inputs YAML."""
    tele, sess = root / "telematics", root / "sessions"
    tele.mkdir(parents=True)
    sess.mkdir(parents=True)
    lines = [f"ck_{v},2024-03-04 08:{m:02d}:00,28.6{m},77.2,10,{100 + m},{80 - m}" for v in (1, 2) for m in range(6)]
    lines += ["ck_1,2024-03-04 09:00:00,95,77.2,0,1,50", lines[0]]  # latitude out of range; exact duplicate
    (tele / "day1.csv").write_text("\n".join([TELEMATICS_HEADER, *lines]) + "\n")
    (tele / "day2.csv").write_text("\n".join([TELEMATICS_HEADER, "ck_3,2024-03-05 08:00:00,28.7,77.3,0,1,40"]) + "\n")
    (sess / "s.json").write_text(
        '{"session_id": "cs_1", "start_ts": "2024-03-04 08:00:00", "end_ts": "2024-03-04 09:00:00", "kwh": 10.5}\n'
        '{"session_id": "cs_2", "start_ts": "2024-03-04 10:00:00", "kwh": 3}\n'  # no end: open_session
    )
    spec = root / "inputs.yaml"
    spec.write_text(
        f"inputs:\n  telematics:\n    - {{name: ck_tele, path: {tele}, source_timezone: UTC}}\n  charging_sessions:\n    - {{name: ck_sess, path: {sess}, format: json, source_timezone: UTC}}\n"
    )
    return spec


def ingest_killed_after(root: Path, commit: str, inputs_yaml: Path) -> subprocess.CompletedProcess:
    cmd = [
        sys.executable, "-m", "jobs.ingest", "--env", "test",
        "--conf", f"storage.root={root}/lakehouse",
        "--conf", f"storage.restricted_root={root}/lakehouse/restricted",
        "--conf", f"mlflow.tracking_uri=sqlite:///{root}/mlflow.db",
        "--inputs", str(inputs_yaml),
    ]  # fmt: skip
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable, KILL_AFTER_COMMIT_ENV: commit}
    return subprocess.run(cmd, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=JOB_TIMEOUT_S)


def table_rows(spark, cfg, table: str):
    """All rows, the source file relative to the run's raw folder (each run has its own copy)."""
    df = tables.read(spark, cfg, table).drop(*RUN_COLUMNS)
    return df.withColumn("source_file", F.regexp_extract("source_file", r"/raw/(.*)$", 1))


def ledger_files(spark, cfg) -> list[tuple[str, str]]:
    rows = tables.read(spark, cfg, LEDGER_TABLE).select("path", "status").collect()
    return sorted((r["path"].rsplit("/", 1)[-1], r["status"]) for r in rows)


@pytest.fixture(scope="module")
def clean_run(spark, tmp_path_factory):
    """The reference: one uninterrupted ingest of the same files."""
    root = tmp_path_factory.mktemp("ingest_clean")
    inputs_yaml = write_inputs(root / "raw")
    cfg = make_config(root)
    run_ingest(spark, cfg, load_dataset_files([str(inputs_yaml)]), now=NOW, run_id="clean")
    return cfg, inputs_yaml


# What each kill leaves behind: tables that must exist (committed) and must not (not reached).
AFTER_KILL = {
    "quarantine": ({"quarantine.telematics"}, {"bronze.telematics", AUDIT_TABLE, LEDGER_TABLE}),
    "bronze": ({"quarantine.telematics", "bronze.telematics"}, {"bronze.charging_sessions", AUDIT_TABLE, LEDGER_TABLE}),
    "audit": ({"bronze.telematics", "bronze.charging_sessions", AUDIT_TABLE}, {LEDGER_TABLE}),
    "ledger": ({AUDIT_TABLE, LEDGER_TABLE}, set()),
}


@pytest.mark.parametrize("commit", COMMITS)
def test_killed_ingest_reruns_to_the_clean_tables(spark, clean_run, tmp_path, commit):
    clean_cfg, _ = clean_run
    inputs_yaml = write_inputs(tmp_path / "raw")
    cfg = make_config(tmp_path)

    res = ingest_killed_after(tmp_path, commit, inputs_yaml)
    print(res.stderr[-1200:])
    assert res.returncode == -signal.SIGKILL, f"ingest was not killed by its hook (exit {res.returncode})"
    committed, not_reached = AFTER_KILL[commit]
    assert all(tables.exists(spark, cfg, t) for t in committed), commit
    assert not any(tables.exists(spark, cfg, t) for t in not_reached), commit

    # The rerun (in-process: the killed driver's lease only blocks other jobs' bootstrap).
    report = run_ingest(spark, cfg, load_dataset_files([str(inputs_yaml)]), now=NOW, run_id="rerun")
    print("\n".join(report.notes))

    for table in ("bronze.telematics", "bronze.charging_sessions", "quarantine.telematics", "quarantine.charging_sessions"):
        assert_df_equality(table_rows(spark, cfg, table), table_rows(spark, clean_cfg, table), ignore_row_order=True, ignore_nullable=True)
    assert ledger_files(spark, cfg) == ledger_files(spark, clean_cfg)

    rerun = {r["source_name"]: r for r in tables.read(spark, cfg, AUDIT_TABLE).where("run_id = 'rerun'").collect()}
    clean = {r["source_name"]: r for r in tables.read(spark, clean_cfg, AUDIT_TABLE).collect()}
    for row in rerun.values():
        assert row["rows_read"] == row["rows_bronze"] + row["rows_quarantined"] + row["rows_duplicate"], row
    if commit == "ledger":  # everything was recorded: the rerun skips every file
        assert {r["status"] for r in rerun.values()} == {"nothing_new"}
    elif commit in ("bronze", "audit"):
        # telematics' rows reached bronze but its files never reached the ledger: read again, counted
        # as already in bronze, none inserted twice
        tele = rerun["ck_tele"]
        assert tele["rows_bronze"] == 0 and tele["duplicates_existing"] == clean["ck_tele"]["rows_bronze"]
        assert tele["rows_quarantined"] == clean["ck_tele"]["rows_quarantined"]
    else:  # killed after the quarantine commit: bronze had nothing yet
        assert rerun["ck_tele"]["rows_bronze"] == clean["ck_tele"]["rows_bronze"]
    assert tables.read(spark, cfg, "bronze.telematics").where(F.col("vehicle_id") == "ck_3").count() == 1

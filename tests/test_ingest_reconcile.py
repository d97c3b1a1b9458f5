"""Ingest's reconciliation can fail: every term of rows read = bronze + quarantined + duplicates is
measured on its own, bronze's from Delta's own operation metric of the commit ingest made, and a
mismatch fails the run with the numbers (audit status `reconciliation_failed`, files not marked
as read). Case `reconciliation_can_fail` of docs/ROBUSTNESS.md; the SIGKILL-between-commits
cases are in tests/slow/test_ingest_crash.py.
"""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from delta.tables import DeltaTable
from pyspark.sql import functions as F

from common.bronze import ingest
from common.bronze import load as ingest_job
from common.bronze.ingest import IN_TABLE, IngestCounts, ReconciliationError, reconcile
from common.core.config import DatasetSpec, InputsConfig
from common.io import tables
from common.io.tables import rows_inserted
from jobs.ingest import AUDIT_TABLE, LEDGER_TABLE, run_ingest
from tests.robustness_table import TELEMATICS_HEADER

NOW = datetime(2024, 3, 10, 12, 0, tzinfo=timezone.utc)
BALANCED = IngestCounts(
    read=10, quarantined=2, duplicates_raw=1, existing_in_bronze=3, new_in_run=4, new_records=3, bronze_inserted=3,
    quarantine_new=2, quarantine_inserted=2,
)  # fmt: skip


def test_reconcile_accepts_balanced_numbers_and_names_a_forced_mismatch():
    assert reconcile(BALANCED) == []
    assert (BALANCED.repeated_in_run, BALANCED.duplicates_existing) == (1, 4)

    short = IngestCounts(**{**BALANCED.__dict__, "bronze_inserted": 2})  # the commit inserted one row fewer
    problems = reconcile(short)
    print(problems)
    assert problems == [
        "rows read 10 != bronze inserted 2 + quarantined 2 + duplicates raw 1 + already in bronze 3 + repeated in run 1 = 9",
        "the bronze commit inserted 2 rows (Delta's metric) but was given 3 new records",
    ]
    lost = IngestCounts(**{**BALANCED.__dict__, "existing_in_bronze": 2})  # a row fell out of the join
    assert reconcile(lost) == ["rows read 10 != bronze inserted 3 + quarantined 2 + duplicates raw 1 + already in bronze 2 + repeated in run 1 = 9"]
    quarantine = IngestCounts(**{**BALANCED.__dict__, "quarantine_inserted": 0})
    assert reconcile(quarantine) == ["the quarantine commit inserted 0 rows (Delta's metric) but was given 2 new rows"]


def test_inserted_rows_come_from_the_commits_own_metrics(spark, fresh_cfg):
    assert rows_inserted("MERGE", {"numTargetRowsInserted": "7", "numOutputRows": "9"}) == 7
    assert rows_inserted("WRITE", {"numOutputRows": "5"}) == 5
    with pytest.raises(ValueError, match="DELETE"):
        rows_inserted("DELETE", {"numDeletedRows": "1"})

    df = spark.createDataFrame([(1, "a"), (2, "b")], "k int, v string")
    created = tables.merge(df, fresh_cfg, "audit.metric_probe", keys=["k"], comment="test table")
    # a new table is created with its rows and comment in one commit
    assert (created.operation, created.inserted()) == ("CREATE TABLE AS SELECT", 2)
    merged = tables.merge(spark.createDataFrame([(2, "b"), (3, "c")], "k int, v string"), fresh_cfg, "audit.metric_probe", keys=["k"])
    assert (merged.operation, merged.inserted()) == ("MERGE", 1)
    history = {r["version"]: r["operation"] for r in DeltaTable.forPath(spark, fresh_cfg.storage.path("audit.metric_probe")).history().collect()}
    assert history == {0: "CREATE TABLE AS SELECT", 1: "MERGE"} and (created.commit_version, merged.commit_version) == (0, 1)


def rows(vehicle: str, n: int) -> list[str]:
    return [f"{vehicle},2024-03-04 08:{m:02d}:00,28.6,77.2,10,{100 + m},{60 - m}" for m in range(n)]


def test_a_mismatch_fails_the_run_loudly(spark, fresh_cfg, tmp_path, monkeypatch):
    """A join that misses the rows already in bronze (the kind of bug the old `valid - inserted`
    arithmetic absorbed): the MERGE inserts only the truly new rows, Delta's metric says so, and
    the run fails with the numbers instead of reporting rows it did not write."""
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "a.csv").write_text("\n".join([TELEMATICS_HEADER, *rows("rc_1", 4)]) + "\n")
    inputs = InputsConfig(telematics=[DatasetSpec(name="rc", path=str(raw), source_timezone="UTC")])
    run_ingest(spark, fresh_cfg, inputs, now=NOW, run_id="first")
    (raw / "b.csv").write_text("\n".join([TELEMATICS_HEADER, *rows("rc_1", 4), *rows("rc_2", 3)]) + "\n")

    def blind(batch, existing, keys):  # "nothing is in bronze yet"
        return batch.withColumn(IN_TABLE, F.lit(False))

    monkeypatch.setattr(ingest_job, "mark_in_table", blind)
    with pytest.raises(ReconciliationError) as err:
        run_ingest(spark, fresh_cfg, inputs, now=NOW, run_id="second")
    message = str(err.value)
    print(message)
    assert "the bronze commit inserted 3 rows (Delta's metric) but was given 7 new records" in message
    assert "rows read 7 != bronze inserted 3" in message

    audit = tables.read(spark, fresh_cfg, AUDIT_TABLE).where("run_id = 'second'").first()
    assert audit["status"] == "reconciliation_failed" and audit["message"] == message and audit["rows_bronze"] == 3
    files = {r["path"].rsplit("/", 1)[-1] for r in tables.read(spark, fresh_cfg, LEDGER_TABLE).collect()}
    assert files == {"a.csv"}  # b.csv is read again next time
    bronze = tables.read(spark, fresh_cfg, "bronze.telematics")
    assert bronze.count() == bronze.select("vehicle_id", "ts", "row_hash").distinct().count() == 7

    monkeypatch.setattr(ingest_job, "mark_in_table", ingest.mark_in_table)
    run_ingest(spark, fresh_cfg, inputs, now=NOW, run_id="third")  # the real join: reconciles
    third = tables.read(spark, fresh_cfg, AUDIT_TABLE).where("run_id = 'third'").first()
    assert (third["status"], third["rows_read"], third["rows_bronze"], third["duplicates_existing"]) == ("nothing_new", 7, 0, 7)

"""The whole ingest job over every bad-input case of docs/ROBUSTNESS.md at once (one dataset per
case, one run): the audit row of each dataset carries the expected numbers, they reconcile, the
bronze rows are the expected ones and quarantined raw records keep what was rejected. A second
run on the same files writes nothing new."""

from __future__ import annotations

from datetime import datetime

import pytest
from chispa import assert_df_equality
from pyspark.sql import functions as F

from common.core.config import DatasetSpec, InputsConfig
from common.io import tables
from jobs.ingest import run_ingest
from tests.conftest import make_config
from tests.robustness_table import INGEST_NOW, INPUT_CASES, InputCase
from tests.test_robustness_input import expected_bronze

pytestmark = pytest.mark.slow
NOW = datetime.fromisoformat(INGEST_NOW)


@pytest.fixture(scope="module")
def ingested(spark, tmp_path_factory):
    root = tmp_path_factory.mktemp("robust_ingest")
    cfg = make_config(root)
    by_kind: dict[str, list[DatasetSpec]] = {}
    for case in INPUT_CASES:
        folder = case.materialise(root / "raw")
        by_kind.setdefault(case.kind, []).append(DatasetSpec(name=case.id, path=str(folder), **case.spec_fields()))
    inputs = InputsConfig(**by_kind)
    first = run_ingest(spark, cfg, inputs, now=NOW, run_id="robust-1")
    versions = {t: tables.version(spark, cfg, t) for t in ("bronze.telematics", "quarantine.telematics")}
    second = run_ingest(spark, cfg, inputs, now=NOW, run_id="robust-2")
    audit = {r["source_name"]: r for r in tables.read(spark, cfg, "audit.ingest_runs").where("run_id = 'robust-1'").collect()}
    return cfg, audit, versions, first, second


@pytest.mark.parametrize("case", INPUT_CASES, ids=lambda c: c.id)
def test_ingest_job_audit_per_case(spark, ingested, case: InputCase):
    cfg, audit, _versions, _first, _second = ingested
    row = audit[case.id]
    e = case.expected
    print(case.id, row["status"], row["rows_read"], row["rows_bronze"], row["rows_quarantined"], row["rows_duplicate"], row["quarantine_reasons"], row["message"])
    assert row["status"] == e.status
    if e.status in ("empty", "no_files"):
        assert row["rows_read"] == 0 and row["message"]
        return
    got = (row["rows_read"], row["rows_bronze"], row["rows_quarantined"], row["rows_duplicate"], dict(row["quarantine_reasons"]), dict(row["nulled_values"]))
    assert got == (e.read, e.bronze, e.quarantined, e.duplicates, e.reasons, e.nulled)
    assert row["rows_read"] == row["rows_bronze"] + row["rows_quarantined"] + row["rows_duplicate"]
    bronze_table = {"telematics": "bronze.telematics", "stations": "bronze.stations", "charging_sessions": "bronze.charging_sessions"}[case.kind]
    if case.bronze_rows:
        cols = case.bronze_rows[0].split()
        bronze = tables.read(spark, cfg, bronze_table).where(F.col("source_name") == case.id).select(*cols)
        assert_df_equality(bronze, expected_bronze(spark, case), ignore_row_order=True, ignore_nullable=True)
    if case.quarantine_contains:
        q = tables.read(spark, cfg, f"quarantine.{case.kind}").where(F.col("source_name") == case.id)
        records = [r["raw_record"] for r in q.select("raw_record").collect()]
        for text in case.quarantine_contains:
            assert any(text in r for r in records), f"{text!r} not in quarantined records {records}"


def test_ingest_job_rerun_writes_nothing(spark, ingested):
    cfg, _audit, versions, first, second = ingested
    assert second.rows_in == 0 and second.rows_out == 0
    assert {t: tables.version(spark, cfg, t) for t in versions} == versions
    print(f"first run: read {first.rows_in}, bronze {first.rows_out}, quarantined {first.rows_quarantined}")

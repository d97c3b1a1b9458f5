"""Bad input through ingest: every case of docs/ROBUSTNESS.md "Bad input through ingest".

Each case (tests/robustness_table.py INPUT_CASES) is planned by the ingest job's own planner
(`common.bronze.plan.plan_dataset`: file listing, empty-file handling, mapping) and classified by the job's
transforms; the numbers the audit row would carry are computed with the same functions the job
uses, without Delta writes (fast). tests/slow/test_robustness_ingest_job.py runs the whole job over
all cases and checks the audit rows against the same expectations.
"""

from __future__ import annotations

from datetime import datetime

import pytest
from chispa import assert_df_equality
from pyspark.sql import functions as F

from common.bronze.ingest import (
    DUPLICATE,
    QUARANTINED,
    STATUS,
    VALID,
    IngestInputError,
    MissingColumnError,
    bronze_merge_keys,
    bronze_rows,
    new_rows,
    nulled_value_counts,
    quarantine_rows,
    status_counts,
)
from common.bronze.plan import plan_dataset as _plan
from common.core.config import DatasetSpec, InputsConfig
from common.io.schemas import KINDS
from jobs.ingest import run_ingest
from tests.robustness_table import INGEST_NOW, INPUT_CASES, TELEMATICS_HEADER, InputCase

NOW = datetime.fromisoformat(INGEST_NOW)


def spec_for(case: InputCase, folder) -> DatasetSpec:
    return DatasetSpec(name=case.id, path=str(folder), **case.spec_fields())


def expected_bronze(spark, case: InputCase):
    names, rows = case.bronze_rows
    cols = names.split()
    schema = KINDS[case.kind][0]
    ddl = ", ".join(f"`{c}` {'string' if schema[c].dataType.typeName() == 'timestamp' else schema[c].dataType.simpleString()}" for c in cols)
    df = spark.createDataFrame(rows, ddl)
    for c in cols:
        if schema[c].dataType.typeName() == "timestamp":
            df = df.withColumn(c, F.col(c).cast("timestamp"))
    return df


def classify_case(spark, cfg, case: InputCase, folder):
    """(status, counts dict, classified DataFrame or None) as jobs.ingest would record them."""
    run = _plan(spark, cfg, case.kind, 0, spec_for(case, folder), set(), NOW, False)
    if run.classified is None:
        return run.status, {}, None
    classified = run.classified.cache()
    by_status: dict[str, int] = {}
    reasons: dict[str, int] = {}
    for row in status_counts(classified).collect():
        by_status[row[STATUS]] = by_status.get(row[STATUS], 0) + row["count"]
        if row[STATUS] == QUARANTINED:
            reasons[row["reason"]] = row["count"]
    read = sum(by_status.values())
    bronze = bronze_rows(classified, case.kind, cfg.ingest.partition_column, "run", NOW)
    n_bronze = new_rows(bronze, None, bronze_merge_keys(case.kind)).count()
    counts = {
        "read": read,
        "bronze": n_bronze,
        "quarantined": by_status.get(QUARANTINED, 0),
        "duplicates": by_status.get(DUPLICATE, 0) + by_status.get(VALID, 0) - n_bronze,
        "reasons": reasons,
        "nulled": {r["column"]: r["count"] for r in nulled_value_counts(classified).collect()},
    }
    return ("empty" if read == 0 else "ingested"), counts, classified


@pytest.mark.parametrize("case", INPUT_CASES, ids=lambda c: c.id)
def test_bad_input_is_classified(spark, cfg, tmp_path, case: InputCase):
    folder = case.materialise(tmp_path)
    status, counts, classified = classify_case(spark, cfg, case, folder)
    e = case.expected
    print(f"{case.id}: status={status} {counts}")
    assert status == e.status
    if classified is None or status != "ingested":
        return
    got = {k: counts[k] for k in ("read", "bronze", "quarantined", "duplicates", "reasons", "nulled")}
    want = {"read": e.read, "bronze": e.bronze, "quarantined": e.quarantined, "duplicates": e.duplicates, "reasons": e.reasons, "nulled": e.nulled}
    assert got == want
    assert got["read"] == got["bronze"] + got["quarantined"] + got["duplicates"]  # counts reconcile
    if case.bronze_rows:
        bronze = bronze_rows(classified, case.kind, cfg.ingest.partition_column, "run", NOW)
        cols = case.bronze_rows[0].split()
        assert_df_equality(bronze.select(*cols), expected_bronze(spark, case), ignore_row_order=True, ignore_nullable=True)
    if case.quarantine_contains:
        records = [r["raw_record"] for r in quarantine_rows(classified, case.kind, "run", NOW).select("raw_record").collect()]
        for text in case.quarantine_contains:
            assert any(text in r for r in records), f"{text!r} not kept in any quarantined raw_record: {records}"


def test_renamed_required_column_stops_with_the_fix(spark, fresh_cfg, tmp_path):
    """The whole run stops before any write; the message names dataset, path, column and conf key."""
    folder = tmp_path / "renamed"
    folder.mkdir()
    (folder / "a.csv").write_text(TELEMATICS_HEADER.replace("vehicle_id", "vehicle") + "\nv1,2024-03-04 08:00:00,28.6,77.2,0,1,50\n")
    inputs = InputsConfig(telematics=[DatasetSpec(source_timezone="UTC", name="renamed", path=str(folder))])
    with pytest.raises(IngestInputError) as err:
        run_ingest(spark, fresh_cfg, inputs, now=NOW)
    message = str(err.value)
    print(message)
    assert isinstance(err.value, MissingColumnError)
    for text in ("'renamed'", str(folder), "'vehicle_id'", "inputs.telematics[0].columns.vehicle_id", "vehicle"):
        assert text in message
    assert not (tmp_path / "lakehouse").exists() or not any((tmp_path / "lakehouse").rglob("_delta_log"))


def test_ambiguous_day_month_formats_are_refused(spark, fresh_cfg, tmp_path):
    folder = tmp_path / "ambiguous"
    folder.mkdir()
    (folder / "a.csv").write_text(TELEMATICS_HEADER + "\nv1,03/04/2021 10:00,28.6,77.2,0,1,50\nv1,13/04/2021 10:00,28.6,77.2,0,1,50\n")
    spec = DatasetSpec(source_timezone="UTC", name="ambiguous", path=str(folder), timestamp_formats=["MM/dd/yyyy HH:mm", "dd/MM/yyyy HH:mm"])
    with pytest.raises(IngestInputError) as err:
        run_ingest(spark, fresh_cfg, InputsConfig(telematics=[spec]), now=NOW)
    message = str(err.value)
    print(message)
    for text in ("inputs.telematics[0].timestamp_formats", "MM/dd/yyyy HH:mm", "dd/MM/yyyy HH:mm", "keep only"):
        assert text in message
    assert not any((tmp_path / "lakehouse").rglob("_delta_log")) if (tmp_path / "lakehouse").exists() else True

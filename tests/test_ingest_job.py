"""jobs/ingest.py end to end on tiny files: the PAYD bus format (CSV + .xlsx) by config alone,
rows read = bronze + quarantined + duplicates, idempotent reruns, error and empty-input messages."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import pytest
from chispa import assert_df_equality
from pyspark.sql import functions as F

from common.bronze.ingest import IngestInputError
from common.core.config import InputsConfig
from common.io import tables
from jobs.ingest import load_dataset_files, main, run_ingest

NOW = datetime(2024, 3, 10, 12, 0, tzinfo=timezone.utc)
HEADER = "timestamp,telematics_id,latitude,longitude,speed_km_h,odometer_reading_kms,state_of_charge"


def write_payd_dump(folder: Path) -> None:
    """Two CSVs (one with BOM + CRLF, one latin-1) and one .xlsx, as the operator exports them."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = [
        HEADER,
        "2024-03-04 08:00:00,KBZ101A,-1.2921,36.8219,0,10234.5,81",
        "2024-03-04 08:00:30,KBZ101A,-1.2925,36.8225,32.5,10234.8,80.5",
        "2024-03-04 08:00:30,KBZ101A,-1.2925,36.8225,32.5,10234.8,80.5",  # exact duplicate
        "2024-03-04 08:01:00,KBZ101A,-1.2930,36.8230,N/A,10235.1,112",  # SOC > 100
        "2024-13-04 08:01:30,KBZ101A,-1.2935,36.8235,30,10235.4,80",  # month 13
    ]
    (folder / "payd_2024-03-04.csv").write_bytes(("\ufeff" + "\r\n".join(lines) + "\r\n").encode("utf-8"))
    (folder / "payd_latin1.csv").write_bytes((HEADER + "\n2024-03-04 09:00:00,KBZ\xe9,-1.3,36.8,0,1.0,50\n").encode("latin-1"))
    pd.DataFrame(
        {
            "timestamp": [datetime(2024, 3, 5, 7, 0, 0), datetime(2024, 3, 5, 7, 0, 30)],
            "telematics_id": ["KBZ202B", "KBZ202B"],
            "latitude": [-1.28, -1.281],
            "longitude": [36.82, 36.821],
            "speed_km_h": [0.0, 12.0],
            "odometer_reading_kms": [5000.0, 5000.1],
            "state_of_charge": [64, 63.5],
        }
    ).to_excel(folder / "payd_2024-03-05.xlsx", index=False)


def payd_inputs(folder: Path) -> InputsConfig:
    inputs = load_dataset_files(["conf/datasets/payd_bus.yaml"])
    for spec in inputs.telematics:
        spec.path = str(folder / Path(spec.path).name)  # keep the shipped glob (*.csv / *.xlsx)
    return inputs


def audit_rows(spark, cfg):
    return tables.read(spark, cfg, "audit.ingest_runs").orderBy("started_at", "source_name").collect()


def test_payd_bus_csv_and_xlsx_ingest_by_config(spark, fresh_cfg, tmp_path):
    write_payd_dump(tmp_path / "payd")
    report = run_ingest(spark, fresh_cfg, payd_inputs(tmp_path / "payd"), now=NOW, run_id="r1")

    assert (report.rows_in, report.rows_out, report.rows_quarantined) == (8, 4, 3)
    bronze = tables.read(spark, fresh_cfg, "bronze.telematics")
    got = bronze.select("vehicle_id", F.date_format("ts", "yyyy-MM-dd HH:mm:ss").alias("ts_utc"), "speed_kmh", "soc_pct", "source_name", "date").orderBy("ts")
    expected = spark.createDataFrame(
        [
            # Africa/Nairobi is UTC+3: 08:00 local = 05:00 UTC
            ("KBZ101A", "2024-03-04 05:00:00", 0.0, 81.0, "payd_bus_csv", "2024-03-04"),
            ("KBZ101A", "2024-03-04 05:00:30", 32.5, 80.5, "payd_bus_csv", "2024-03-04"),
            ("KBZ202B", "2024-03-05 04:00:00", 0.0, 64.0, "payd_bus_xlsx", "2024-03-05"),
            ("KBZ202B", "2024-03-05 04:00:30", 12.0, 63.5, "payd_bus_xlsx", "2024-03-05"),
        ],
        "vehicle_id string, ts_utc string, speed_kmh double, soc_pct double, source_name string, date string",
    ).withColumn("date", F.col("date").cast("date"))
    assert_df_equality(got, expected, ignore_nullable=True)
    assert bronze.where(~F.col("source_file").endswith(".csv") & ~F.col("source_file").endswith(".xlsx")).count() == 0

    quarantine = tables.read(spark, fresh_cfg, "quarantine.telematics")
    reasons = {(r.reason, Path(r.source_file).name) for r in quarantine.collect()}
    assert reasons == {
        ("soc_pct_out_of_range", "payd_2024-03-04.csv"),
        ("unparseable_ts", "payd_2024-03-04.csv"),
        ("invalid_encoding", "payd_latin1.csv"),  # 0xE9 is not UTF-8: the value holds U+FFFD
    }
    raw = quarantine.where("reason = 'unparseable_ts'").first().raw_record
    assert '"timestamp":"2024-13-04 08:01:30"' in raw and '"telematics_id":"KBZ101A"' in raw

    csv_audit = [r for r in audit_rows(spark, fresh_cfg) if r.source_name == "payd_bus_csv"][0]
    assert (csv_audit.rows_read, csv_audit.rows_bronze, csv_audit.rows_quarantined, csv_audit.rows_duplicate) == (6, 2, 3, 1)
    assert csv_audit.rows_read == csv_audit.rows_bronze + csv_audit.rows_quarantined + csv_audit.rows_duplicate
    assert csv_audit.quarantine_reasons == {"soc_pct_out_of_range": 1, "unparseable_ts": 1, "invalid_encoding": 1}
    assert csv_audit.nulled_values == {}  # 'N/A' speed is "no value", not an unparseable one


def test_ingest_twice_changes_nothing(spark, fresh_cfg, tmp_path):
    folder = tmp_path / "payd"
    write_payd_dump(folder)
    inputs = payd_inputs(folder)
    run_ingest(spark, fresh_cfg, inputs, now=NOW, run_id="r1")
    versions = {t: tables.version(spark, fresh_cfg, t) for t in ("bronze.telematics", "quarantine.telematics")}
    counts = {t: tables.read(spark, fresh_cfg, t).count() for t in versions}

    second = run_ingest(spark, fresh_cfg, inputs, now=NOW, run_id="r2")  # file ledger: nothing new
    third = run_ingest(spark, fresh_cfg, inputs, now=NOW, run_id="r3", reprocess=True)  # re-read all, MERGE dedupes

    for t in versions:
        assert tables.version(spark, fresh_cfg, t) == versions[t], f"{t} got a new Delta version on a rerun"
        assert tables.read(spark, fresh_cfg, t).count() == counts[t]
    assert second.rows_in == 0 and any("already ingested" in n for n in second.notes)
    assert (third.rows_in, third.rows_out, third.rows_quarantined) == (8, 0, 3)
    r3 = [r for r in audit_rows(spark, fresh_cfg) if r.run_id == "r3" and r.source_name == "payd_bus_csv"][0]
    assert (r3.rows_read, r3.rows_bronze, r3.rows_duplicate, r3.duplicates_existing, r3.status) == (6, 0, 3, 2, "nothing_new")

    # a new file: only its rows are read and added
    (folder / "payd_2024-03-06.csv").write_text(HEADER + "\n2024-03-06 10:00:00,KBZ101A,-1.3,36.8,0,10240.0,77\n")
    fourth = run_ingest(spark, fresh_cfg, inputs, now=NOW, run_id="r4")
    assert (fourth.rows_in, fourth.rows_out) == (1, 1)
    assert tables.read(spark, fresh_cfg, "bronze.telematics").count() == counts["bronze.telematics"] + 1


def test_missing_column_stops_before_writing(spark, fresh_cfg, tmp_path):
    folder = tmp_path / "payd"
    write_payd_dump(folder)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "dump.csv").write_text("timestamp,bus,latitude,longitude,state_of_charge\n2024-03-04 08:00:00,B1,1,2,50\n")
    inputs = payd_inputs(folder)
    broken = inputs.telematics[0].model_copy(update={"name": "other_dump", "path": str(tmp_path / "other" / "*.csv")})
    inputs.telematics = [inputs.telematics[0], broken]

    with pytest.raises(IngestInputError) as err:
        run_ingest(spark, fresh_cfg, inputs, now=NOW)
    msg = str(err.value)
    assert "'telematics_id'" in msg and "'vehicle_id'" in msg and "inputs.telematics[1].columns.vehicle_id" in msg
    assert not tables.exists(spark, fresh_cfg, "bronze.telematics")  # the good dataset was not written either

    yaml_file = tmp_path / "broken.yaml"
    yaml_file.write_text(f"inputs:\n  telematics:\n    - name: other_dump\n      path: {tmp_path}/other/*.csv\n      columns: {{vehicle_id: telematics_id}}\n      source_timezone: Africa/Nairobi\n")
    with pytest.raises(SystemExit) as exit_:
        main(["--env", "test", "--conf", f"storage.root={fresh_cfg.storage.root}", "--inputs", str(yaml_file)])
    assert "inputs.telematics[0].columns.vehicle_id" in str(exit_.value.code)


def test_empty_inputs_are_messages_not_crashes(spark, fresh_cfg, tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "header_only.csv").write_text(HEADER + "\n")
    (tmp_path / "empty" / "zero_bytes.csv").write_text("")
    inputs = load_dataset_files(["conf/datasets/payd_bus.yaml"])
    inputs.telematics[0].path = str(tmp_path / "empty" / "*.csv")
    inputs.telematics[1].path = str(tmp_path / "nowhere" / "*.xlsx")

    report = run_ingest(spark, fresh_cfg, inputs, now=NOW)
    print("\n".join(report.notes))
    assert report.rows_in == 0 and report.rows_out == 0
    assert any("payd_bus_csv" in n and "contain no rows" in n for n in report.notes)
    assert any("payd_bus_xlsx" in n and "no input files match" in n for n in report.notes)
    assert not tables.exists(spark, fresh_cfg, "bronze.telematics")
    statuses = {r.source_name: r.status for r in audit_rows(spark, fresh_cfg)}
    assert statuses == {"payd_bus_csv": "empty", "payd_bus_xlsx": "no_files"}

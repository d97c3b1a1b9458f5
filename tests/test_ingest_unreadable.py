"""File-level quarantine in ingest: a file that cannot be read at all is recorded in
audit.ingest_files with status `unreadable` and the reason, skipped and counted; the other files of
the dataset still load; the next run does not retry it unless it changed or `--reprocess`.
Cases `unreadable_files` and `ledger_schema_evolution` of docs/ROBUSTNESS.md.

Unreadable kinds, each next to a good file of the same dataset: a gzip cut in half (found by the
dataset's read, then by reading each file alone), a `.gz` that is not gzip, binary content in a
.csv, a value longer than `csv.max_chars_per_column`, a truncated Parquet file, a corrupt .xlsx.
Expected rows are derived from the good files written here.
"""

from __future__ import annotations

import gzip
import os
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import pytest
from chispa import assert_df_equality
from pyspark.sql import functions as F

from common.bronze.ingest import LEDGER_SCHEMA, failure_reason
from common.core.config import DatasetSpec, InputsConfig
from common.io import tables
from jobs.ingest import LEDGER_TABLE, run_ingest
from tests.robustness_table import TELEMATICS_HEADER

NOW = datetime(2024, 3, 10, 12, 0, tzinfo=timezone.utc)
MAX_CHARS = 1000
# Enough rows that the cut gzip's damage lies beyond what the cheap probe reads (64 KiB).
CUT_GZIP_ROWS = 4000


def rows(vehicle: str, n: int, minute0: int = 0) -> list[str]:
    return [f"{vehicle},2024-03-04 08:{minute0 + i:02d}:00,28.61,77.20,10,{100 + i},{50 + i}" for i in range(n)]


def csv_text(lines: list[str]) -> str:
    return "\n".join([TELEMATICS_HEADER, *lines]) + "\n"


def frame(lines: list[str]) -> pd.DataFrame:
    return pd.DataFrame([line.split(",") for line in lines], columns=TELEMATICS_HEADER.split(","))


def write_inputs(root: Path) -> tuple[InputsConfig, dict[str, list[str]], dict[str, str]]:
    """Three datasets with good and unreadable files; returns the inputs, the good rows per dataset
    and the expected reason text per unreadable file name."""
    csv_dir, pq_dir, xl_dir = root / "csv", root / "parquet", root / "xlsx"
    for d in (csv_dir, pq_dir, xl_dir):
        d.mkdir(parents=True)
    good = {"csv": rows("ur_csv", 3), "parquet": rows("ur_pq", 2), "xlsx": rows("ur_xl", 2)}

    (csv_dir / "good.csv").write_text(csv_text(good["csv"]))
    whole = gzip.compress(csv_text([f"ur_cut,2024-03-05 {i // 60 % 24:02d}:{i % 60:02d}:00,28.6,77.2,10,1,50" for i in range(CUT_GZIP_ROWS)]).encode())
    (csv_dir / "cut.csv.gz").write_bytes(whole[: len(whole) // 2])
    (csv_dir / "not_gzip.csv.gz").write_text(csv_text(rows("ur_notgz", 2)))
    (csv_dir / "binary.csv").write_bytes(b"PK\x03\x04\x00\x00" + bytes(range(256)) * 8)
    (csv_dir / "long.csv").write_text(csv_text([f"ur_long,2024-03-04 09:00:00,28.6,77.2,10,{'9' * (MAX_CHARS + 1)},50"]))

    frame(good["parquet"]).to_parquet(pq_dir / "good.parquet", index=False)
    frame(rows("ur_pq_cut", 50)).to_parquet(pq_dir / "cut.parquet", index=False)
    cut = (pq_dir / "cut.parquet").read_bytes()
    (pq_dir / "cut.parquet").write_bytes(cut[: len(cut) // 2])

    frame(good["xlsx"]).to_excel(xl_dir / "good.xlsx", index=False)
    (xl_dir / "corrupt.xlsx").write_bytes(os.urandom(2048))

    utc = {"source_timezone": "UTC"}
    inputs = InputsConfig(
        telematics=[
            DatasetSpec(name="ur_csv", path=str(csv_dir), csv={"max_chars_per_column": MAX_CHARS}, **utc),
            DatasetSpec(name="ur_parquet", path=str(pq_dir), format="parquet", **utc),
            DatasetSpec(name="ur_xlsx", path=str(xl_dir), format="xlsx", **utc),
        ]
    )
    reasons = {
        "cut.csv.gz": "Unexpected end of input stream",
        "not_gzip.csv.gz": "not a gzip file",
        "binary.csv": "BinaryContent: NUL bytes",
        "long.csv": f"exceeds the maximum number of characters defined in your parser settings ({MAX_CHARS})",
        "cut.parquet": "is not a Parquet file",
        "corrupt.xlsx": "BadZipFile",
    }
    return inputs, good, reasons


def ledger(spark, cfg):
    return {(r["path"].rsplit("/", 1)[-1], r["run_id"]): r for r in tables.read(spark, cfg, LEDGER_TABLE).collect()}


def audit(spark, cfg, run_id: str) -> dict[str, dict]:
    return {r["source_name"]: r.asDict() for r in tables.read(spark, cfg, "audit.ingest_runs").where(F.col("run_id") == run_id).collect()}


def test_unreadable_files_are_set_aside_and_the_others_ingest(spark, fresh_cfg, tmp_path, capsys):
    inputs, good, reasons = write_inputs(tmp_path / "raw")
    run_ingest(spark, fresh_cfg, inputs, now=NOW, run_id="u1")
    printed = capsys.readouterr().out
    print(printed)

    # the good files are in bronze, row for row
    expected = [tuple(line.split(",")[:2]) for lines in good.values() for line in lines]
    bronze = tables.read(spark, fresh_cfg, "bronze.telematics").select("vehicle_id", F.col("ts").cast("string").alias("ts"))
    assert_df_equality(bronze, spark.createDataFrame(expected, "vehicle_id string, ts string"), ignore_row_order=True, ignore_nullable=True)

    runs = audit(spark, fresh_cfg, "u1")
    for name, n_bad in (("ur_csv", 4), ("ur_parquet", 1), ("ur_xlsx", 1)):
        row = runs[name]
        kind = name.removeprefix("ur_")
        assert (row["status"], row["files_unreadable"], row["files_read"]) == ("ingested", n_bad, 1), row
        assert row["rows_read"] == row["rows_bronze"] == len(good[kind])
        assert f"{n_bad} unreadable file(s) set aside" in row["message"]

    # every unreadable file is in the ledger with its reason, and in the printed summary
    book = ledger(spark, fresh_cfg)
    for file, text in reasons.items():
        entry = book[(file, "u1")]
        assert entry["status"] == "unreadable" and text in entry["reason"], (file, entry["reason"])
        assert file in printed
    assert {book[(f, "u1")]["status"] for f in ("good.csv", "good.parquet", "good.xlsx")} == {"ingested"}
    assert "unreadable files: 4 set aside" in printed

    # the next run retries none of them
    run_ingest(spark, fresh_cfg, inputs, now=NOW, run_id="u2")
    assert {r["status"] for r in audit(spark, fresh_cfg, "u2").values()} == {"nothing_new"}
    assert not [k for k in ledger(spark, fresh_cfg) if k[1] == "u2"]

    # a replaced file is read again (size/mtime changed); the others stay skipped
    fixed = tmp_path / "raw" / "csv" / "not_gzip.csv.gz"
    fixed.write_bytes(gzip.compress(csv_text(rows("ur_fixed", 2)).encode()))
    run_ingest(spark, fresh_cfg, inputs, now=NOW, run_id="u3")
    row = audit(spark, fresh_cfg, "u3")["ur_csv"]
    assert (row["status"], row["files_read"], row["files_unreadable"], row["rows_bronze"]) == ("ingested", 1, 0, 2)
    assert ledger(spark, fresh_cfg)[("not_gzip.csv.gz", "u3")]["status"] == "ingested"

    # --reprocess reads everything again: the broken files are found and recorded again
    run_ingest(spark, fresh_cfg, inputs, now=NOW, run_id="u4", reprocess=True)
    again = {k[0] for k, r in ledger(spark, fresh_cfg).items() if k[1] == "u4" and r["status"] == "unreadable"}
    assert again == set(reasons) - {"not_gzip.csv.gz"}


# The ledger's layout before issue 20 (no status / reason).
OLD_LEDGER_COLUMNS = ("source_name", "kind", "path", "size", "modification_time", "spec_fingerprint", "run_id", "ingested_at")


def test_existing_ledger_gains_status_and_reason(spark, fresh_cfg, tmp_path):
    """A lakehouse whose audit.ingest_files (and audit.ingest_runs) predate the new columns: the
    run appends with schema evolution; old rows read the new columns as null (= ingested)."""
    old_schema = LEDGER_SCHEMA.__class__([f for f in LEDGER_SCHEMA.fields if f.name in OLD_LEDGER_COLUMNS])
    old_row = ("old_ds", "telematics", "file:/nowhere/old.csv", 1, 1, "f" * 16, "old-run", NOW)
    tables.write(spark.createDataFrame([old_row], old_schema), fresh_cfg, LEDGER_TABLE, mode="overwrite")
    assert "status" not in tables.read(spark, fresh_cfg, LEDGER_TABLE).columns

    folder = tmp_path / "raw"
    folder.mkdir()
    (folder / "good.csv").write_text(csv_text(rows("ev_ok", 2)))
    (folder / "binary.csv").write_bytes(b"\x00" * 100)
    run_ingest(spark, fresh_cfg, InputsConfig(telematics=[DatasetSpec(name="ev", path=str(folder), source_timezone="UTC")]), now=NOW, run_id="e1")

    book = tables.read(spark, fresh_cfg, LEDGER_TABLE)
    assert {"status", "reason"} <= set(book.columns)
    got = {r["path"].rsplit("/", 1)[-1]: (r["status"], r["reason"] is not None) for r in book.collect()}
    assert got == {"old.csv": (None, False), "good.csv": ("ingested", False), "binary.csv": ("unreadable", True)}


def test_failure_reason_names_the_cause_not_the_wrapper(spark, tmp_path):
    path = tmp_path / "x.csv.gz"
    path.write_text("not gzip\n")
    with pytest.raises(Exception) as err:
        spark.read.text(str(path)).collect()
    reason = failure_reason(err.value)
    print(reason)
    # the Java cause (EOFException / ZipException / IOException, depending on the zlib Hadoop finds), never the wrappers
    assert not reason.startswith(("Py4JJavaError", "SparkException", "An error occurred"))
    assert reason.split(":")[0].endswith(("Exception", "Error")), reason
    assert failure_reason(ValueError("bad\nsecond line")) == "ValueError: bad"

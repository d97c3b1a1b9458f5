"""Delta upkeep (jobs/maintain.py, common/io/maintenance.py): same rows, fewer files, time travel
within retention, CHECK constraints enforced on later writes, VACUUM's safety default."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest
from chispa import assert_df_equality

from common.core.config import ConfigError
from common.io import tables
from common.io.maintenance import maintain_table, table_constraints
from common.io.stages import select
from jobs import maintain as maintain_job
from jobs.pipeline import STAGES
from tests.conftest import make_config

SCHEMA = "vehicle_id string, ts timestamp, lat double, lon double, soc_pct double, date date"
T0 = datetime(2024, 3, 4, 8, 0)


def _batch(spark, k: int, n: int = 5):
    rows = [(f"V{i % 3}", T0 + timedelta(minutes=10 * (k * n + i)), 28.6 + i / 1000, 77.2, 80.0 - i, (T0 + timedelta(minutes=10 * (k * n + i))).date()) for i in range(n)]
    return spark.createDataFrame(rows, SCHEMA)


def _parquet_files(path: str) -> int:
    return sum(1 for f in Path(path).rglob("*.parquet") if "_delta_log" not in f.parts)


@pytest.fixture()
def appended(spark, tmp_path):
    """bronze.telematics written in four appends: at least four small files in its current version."""
    cfg = make_config(tmp_path)
    for k in range(4):
        tables.write(_batch(spark, k), cfg, "bronze.telematics", mode="append", partition_by=["date"])
    return cfg


def test_constraints_follow_the_required_columns_and_the_ingest_ranges():
    cfg = make_config(Path("/unused"), "ingest.soc_range=[0, 110]")
    rules = table_constraints("bronze.telematics", cfg)
    assert rules["vehicle_id_not_null"] == "vehicle_id IS NOT NULL" and rules["ts_not_null"] == "ts IS NOT NULL"
    assert rules["soc_pct_in_range"] == "soc_pct IS NULL OR (soc_pct >= 0.0 AND soc_pct <= 110.0)"
    assert rules["lat_in_range"] == "lat IS NULL OR (lat >= -90.0 AND lat <= 90.0)"
    assert "lat_in_range" in table_constraints("bronze.stations", cfg) and "soc_pct_in_range" not in table_constraints("bronze.stations", cfg)
    assert table_constraints("gold.daily_kpis", cfg) == {}


def test_maintenance_keeps_rows_and_time_travel_compacts_files_and_enforces_constraints(spark, appended):
    cfg = appended
    path = cfg.storage.path("bronze.telematics")
    before = tables.read(spark, cfg, "bronze.telematics")
    expected = spark.createDataFrame(before.collect(), before.schema)
    first_version = spark.read.format("delta").option("versionAsOf", 0).load(path).count()

    done = maintain_table(spark, cfg, "bronze.telematics")

    assert done.files_after < done.files_before, done
    assert done.zorder_by == ("vehicle_id", "ts")
    assert_df_equality(tables.read(spark, cfg, "bronze.telematics"), expected, ignore_row_order=True, ignore_nullable=True)
    # VACUUM kept the replaced files: they are younger than the 168 h retention
    assert spark.read.format("delta").option("versionAsOf", 0).load(path).count() == first_version == 5
    assert sorted(done.constraints_added) == sorted(table_constraints("bronze.telematics", cfg))

    # later bad rows are refused by the constraints; a rerun changes nothing
    bad_lat = spark.createDataFrame([("V9", T0, 95.0, 77.2, 50.0, T0.date())], SCHEMA)
    with pytest.raises(Exception, match="(?i)check constraint.*lat_in_range"):
        tables.write(bad_lat, cfg, "bronze.telematics", mode="append", partition_by=["date"])
    no_vehicle = spark.createDataFrame([(None, T0, 28.6, 77.2, 50.0, T0.date())], SCHEMA)
    with pytest.raises(Exception, match="(?i)vehicle_id_not_null"):
        tables.write(no_vehicle, cfg, "bronze.telematics", mode="append", partition_by=["date"])
    again = maintain_table(spark, cfg, "bronze.telematics")
    assert again.constraints_added == [] and again.constraints_skipped == {}
    assert tables.read(spark, cfg, "bronze.telematics").count() == 20


def test_a_rule_the_rows_break_is_reported_not_forced(spark, tmp_path):
    cfg = make_config(tmp_path)
    rows = [("V1", T0, 28.6, 77.2, 104.0, T0.date()), ("V1", T0 + timedelta(minutes=1), 28.6, 77.2, 99.0, T0.date())]
    tables.write(spark.createDataFrame(rows, SCHEMA), cfg, "bronze.telematics", mode="overwrite", partition_by=["date"])
    done = maintain_table(spark, cfg, "bronze.telematics")
    assert done.constraints_skipped == {"soc_pct_in_range": "1 row(s) break soc_pct IS NULL OR (soc_pct >= 0.0 AND soc_pct <= 100.0)"}
    assert "lat_in_range" in done.constraints_added and tables.read(spark, cfg, "bronze.telematics").count() == 2


def test_a_changed_rule_the_rows_break_keeps_the_rule_the_table_had(spark, tmp_path):
    wide = make_config(tmp_path, "ingest.soc_range=[0, 110]")
    rows = [("V1", T0, 28.6, 77.2, 104.0, T0.date())]
    tables.write(spark.createDataFrame(rows, SCHEMA), wide, "bronze.telematics", mode="overwrite", partition_by=["date"])
    assert "soc_pct_in_range" in maintain_table(spark, wide, "bronze.telematics").constraints_added
    narrow = make_config(tmp_path)  # the default 0-100 range: the stored 104 % breaks it
    done = maintain_table(spark, narrow, "bronze.telematics")
    assert list(done.constraints_skipped) == ["soc_pct_in_range"]
    too_high = spark.createDataFrame([("V1", T0 + timedelta(minutes=1), 28.6, 77.2, 120.0, T0.date())], SCHEMA)
    with pytest.raises(Exception, match="(?i)soc_pct_in_range"):  # the 0-110 rule still holds
        tables.write(too_high, narrow, "bronze.telematics", mode="append", partition_by=["date"])


def test_short_retention_needs_the_explicit_flag_and_then_deletes_old_files(spark, appended, tmp_path):
    with pytest.raises(ConfigError, match="allow_short_retention"):
        make_config(tmp_path, "maintain.vacuum_retention_hours=0")
    cfg = make_config(tmp_path, "maintain.vacuum_retention_hours=0", "maintain.allow_short_retention=true")
    path = cfg.storage.path("bronze.telematics")
    files_before = _parquet_files(path)
    done = maintain_table(spark, cfg, "bronze.telematics")
    assert _parquet_files(path) == done.files_after < files_before
    assert spark.conf.get("spark.databricks.delta.retentionDurationCheck.enabled", "true") == "true"  # restored


def test_maintain_stage_runs_last_only_when_enabled(spark, appended):
    names = [s.name for s in STAGES]
    assert names[-2:] == ["maintain", "catalog"]  # only the registration of the tables by name follows
    assert names[-4:-2] == ["report", "export"]  # the report and the extracts read tables; maintain comes after them
    assert names.index("fault_analysis") < names.index("rollout") < names.index("report")  # the rollout evaluation reads the status intervals; the report reads it
    assert names.index("score") < names.index("charging_plan") < names.index("report")  # the plan reads the energy predictions; the report and the extracts read the plan
    assert "maintain" not in [s.name for s in select(STAGES, None, None, None, generate=True)]
    assert [s.name for s in select(STAGES, None, None, None, generate=True, maintain=True)][-2:] == ["maintain", "catalog"]
    assert [s.name for s in select(STAGES, "maintain", None, None, generate=False)] == ["maintain"]
    report = maintain_job.run_maintain(spark, appended)
    assert list(report.tables) == ["bronze.telematics"] and report.status == "ok"

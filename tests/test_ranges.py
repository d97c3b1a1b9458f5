"""common.io.ranges and tables.read_or_empty: the one implementation of range runs and optional inputs."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from chispa import assert_df_equality
from pyspark.sql import functions as F

from common.io import tables
from common.io.ranges import DateRange, read_range, write_range
from common.io.schemas import VEHICLES


def test_date_range_predicates_and_sql():
    full = DateRange()
    assert full.is_full and full.sql() is None
    r = DateRange(date(2024, 3, 4), date(2024, 3, 5))
    assert r.sql("local_date") == "local_date >= '2024-03-04' AND local_date <= '2024-03-05'"
    assert DateRange(None, date(2024, 3, 5)).sql("date") == "date <= '2024-03-05'"
    assert r.widened(1) == DateRange(date(2024, 3, 3), date(2024, 3, 6))
    assert DateRange(date(2024, 3, 4)).widened(2) == DateRange(date(2024, 3, 2), None)
    with pytest.raises(ValueError, match="is after"):
        DateRange(date(2024, 3, 6), date(2024, 3, 5))


def _cfg(cfg, name: str):
    out = cfg.model_copy(deep=True)
    out.storage.root = str(Path(cfg.storage.resolve(cfg.storage.root)) / name)
    out.storage.restricted_root = None
    return out


def test_write_range_replaces_exactly_the_range_and_a_full_run_overwrites(spark, cfg):
    run_cfg = _cfg(cfg, "ranges")
    days = ["2024-03-03", "2024-03-04", "2024-03-05", "2024-03-06"]
    first = spark.createDataFrame([(d, 1) for d in days], "d string, v int").withColumn("local_date", F.to_date("d")).drop("d")
    write_range(first, run_cfg, "gold.fleet_daily_kpis", DateRange())  # table absent: created whole
    # a range run: rows outside the range in the new frame are dropped, other partitions keep theirs
    second = first.withColumn("v", F.lit(2))
    write_range(second, run_cfg, "gold.fleet_daily_kpis", DateRange(date(2024, 3, 4), date(2024, 3, 5)))
    got = tables.read(spark, run_cfg, "gold.fleet_daily_kpis")
    expected = spark.createDataFrame([(d, v) for d, v in zip(days, [1, 2, 2, 1])], "d string, v int").withColumn("local_date", F.to_date("d")).drop("d")
    assert_df_equality(got, expected, ignore_row_order=True, ignore_column_order=True)
    assert_df_equality(
        read_range(spark, run_cfg, "gold.fleet_daily_kpis", DateRange(date(2024, 3, 5), None)),
        expected.where("local_date >= '2024-03-05'"),
        ignore_row_order=True,
        ignore_column_order=True,
    )
    # a full run replaces everything
    write_range(first.where("local_date = '2024-03-03'"), run_cfg, "gold.fleet_daily_kpis", DateRange())
    assert tables.read(spark, run_cfg, "gold.fleet_daily_kpis").count() == 1
    # the catalog supplies the table comment
    comment = spark.sql(f"DESCRIBE DETAIL delta.`{run_cfg.storage.path('gold.fleet_daily_kpis')}`").first()["description"]
    assert comment == "Per local day: fleet totals and percentiles over vehicles"


def test_read_or_empty_says_what_is_missing(spark, cfg):
    run_cfg = _cfg(cfg, "read_or_empty")
    notes: list[str] = []
    df = tables.read_or_empty(spark, run_cfg, "bronze.vehicles", VEHICLES, notes=notes, why="battery size unknown")
    assert df.count() == 0 and df.schema == VEHICLES
    assert notes == ["bronze.vehicles missing: battery size unknown"]
    tables.write(spark.createDataFrame([], VEHICLES), run_cfg, "bronze.vehicles")
    assert tables.read_or_empty(spark, run_cfg, "bronze.vehicles", VEHICLES, notes=notes).columns == VEHICLES.fieldNames()
    assert len(notes) == 1

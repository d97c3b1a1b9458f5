"""common.core.frames: a materialised frame holds the same rows, computed once, behind a short plan."""

from __future__ import annotations

import pytest
from chispa import assert_df_equality
from pyspark.sql import Window
from pyspark.sql import functions as F

from common.core.frames import materialise, release, single_jvm


@pytest.mark.parametrize(
    ("master", "expected"),
    [("local", True), ("local[2]", True), ("local[*]", True), ("local-cluster[2,1,1024]", False), ("yarn", False), ("spark://h:7077", False), ("k8s://h", False)],
)
def test_single_jvm_only_for_local_masters(master, expected):
    assert single_jvm(master) is expected


def _persisted_rdds(spark) -> int:
    return spark.sparkContext._jsc.getPersistentRDDs().size()


def test_materialise_keeps_the_rows_behind_a_scan_and_release_frees_them(spark):
    assert single_jvm(spark.sparkContext.master)  # the test session is local[n]
    df = spark.range(2000).withColumn("g", F.col("id") % 7).withColumn("rank", F.row_number().over(Window.partitionBy("g").orderBy(F.desc("id"))))
    before = _persisted_rdds(spark)
    kept = materialise(df)
    # the plan of anything built on it starts from the stored rows, not from the window's lineage
    assert kept._jdf.queryExecution().logical().nodeName() == "LogicalRDD"
    assert "Window" not in kept.groupBy("g").count()._jdf.queryExecution().optimizedPlan().toString()
    assert _persisted_rdds(spark) == before + 1
    assert_df_equality(kept, df, ignore_row_order=True)
    release(kept)
    assert _persisted_rdds(spark) == before


def test_release_of_a_persisted_frame_unpersists_it(spark):
    df = spark.range(10).persist()
    df.count()
    release(df)
    assert not df.is_cached

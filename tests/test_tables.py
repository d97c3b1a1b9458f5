"""common.io.tables helpers that are not covered through the jobs."""

from __future__ import annotations

from bench.profile_stage import covered_seconds
from common.io import tables


def test_job_description_names_jobs_and_restores_the_previous_one(spark, cfg):
    sc = spark.sparkContext
    sc.setJobDescription("outer")
    try:
        with tables.job_description(spark, "write silver.x"):
            assert sc.getLocalProperty("spark.job.description") == "write silver.x"
        assert sc.getLocalProperty("spark.job.description") == "outer"
    finally:
        sc.setLocalProperty("spark.job.description", None)
    assert sc.getLocalProperty("spark.job.description") is None


def test_covered_seconds_is_the_union_of_job_intervals():
    assert covered_seconds([]) == 0.0
    assert covered_seconds([(0, 10), (5, 12), (20, 21)]) == 13.0  # overlapping jobs count once
    assert covered_seconds([(3, 4), (0, 1)]) == 2.0


def test_read_optional_is_none_for_a_missing_table_and_the_table_otherwise(spark, fresh_cfg):
    from chispa import assert_df_equality

    cfg = fresh_cfg
    assert tables.read_optional(spark, cfg, "silver.optional_probe") is None
    df = spark.createDataFrame([(1, "a"), (2, "b")], "id int, v string")
    tables.write(df, cfg, "silver.optional_probe")
    assert_df_equality(tables.read_optional(spark, cfg, "silver.optional_probe"), df, ignore_row_order=True)


def test_shuffle_partitions_grow_with_the_data_within_bounds():
    from common.core.config import SparkConfig
    from common.io.spark import shuffle_partitions_for

    mib = 2**20
    s = SparkConfig(shuffle_partitions=8, bytes_per_shuffle_partition=16 * mib, max_shuffle_partitions=500)
    assert shuffle_partitions_for(0, s) == 8  # no telemetry yet / a demo fleet
    assert shuffle_partitions_for(100 * mib, s) == 8
    assert shuffle_partitions_for(4976 * mib, s) == 311  # bronze of a 50 M-row fleet
    assert shuffle_partitions_for(10**13, s) == 500
    assert shuffle_partitions_for(10**13, s.model_copy(update={"bytes_per_shuffle_partition": None})) == 8


def test_size_shuffles_sets_the_partitions_a_cached_shuffle_keeps(spark, fresh_cfg):
    """The design rests on this: in our session a persisted shuffle keeps AQE's starting partition
    count (not coalesced), so size_shuffles bounds the cached block size."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    from common.io.spark import INITIAL_PARTITIONS, SIZING_TABLE, size_shuffles

    before = spark.conf.get(INITIAL_PARTITIONS, None)
    mib = 2**20
    try:
        rows = spark.range(60000).selectExpr("id", "sha2(cast(id AS string), 256) AS pad")  # ~2-4 MB of Parquet
        tables.write(rows, fresh_cfg, SIZING_TABLE)
        size = tables.size_bytes(spark, fresh_cfg, SIZING_TABLE)
        cfg = fresh_cfg.model_copy(deep=True)
        cfg.spark.shuffle_partitions, cfg.spark.bytes_per_shuffle_partition = 1, mib
        n = -(-size // mib)
        assert n >= 2, size
        assert size_shuffles(spark, cfg) == n
        assert spark.conf.get(INITIAL_PARTITIONS) == str(n)
        w = Window.partitionBy(F.col("id") % 7).orderBy("id")
        cached = spark.range(5000).withColumn("n", F.row_number().over(w)).persist()
        try:
            assert cached.count() == 5000
            assert cached.rdd.getNumPartitions() == n
        finally:
            cached.unpersist()
        assert tables.size_bytes(spark, fresh_cfg, "silver.no_such_table") is None
        assert size_shuffles(spark, cfg, data_bytes=(n + 3) * mib) == n + 3  # ingest: a dataset's source files
        assert size_shuffles(spark, cfg, data_bytes=0) == 1
    finally:
        if before is None:
            spark.conf.unset(INITIAL_PARTITIONS)
        else:
            spark.conf.set(INITIAL_PARTITIONS, before)

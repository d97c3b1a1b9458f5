"""common.tables helpers that are not covered through the jobs."""

from __future__ import annotations

from bench.profile_stage import covered_seconds
from common import tables


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

"""common.io.tables helpers that are not covered through the jobs."""

from __future__ import annotations

import re
from pathlib import Path

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


def test_a_new_table_is_created_with_its_comment_and_properties_in_one_commit(spark, fresh_cfg):
    from delta.tables import DeltaTable

    df = spark.createDataFrame([("V1", 1.0)], "vehicle_id string, x double")
    first = tables.write(df, fresh_cfg, "bronze.vehicles", properties={"evfa.owner": "fleet-ops"}, commit_metrics=True)
    path = fresh_cfg.storage.path("bronze.vehicles")
    history = DeltaTable.forPath(spark, path).history().select("version", "operation").collect()
    assert [(r["version"], r["operation"]) for r in history] == [(0, "CREATE TABLE AS SELECT")]
    assert first.version == 0 and first.inserted() == 1
    detail = DeltaTable.forPath(spark, path).detail().select("description", "properties").first()
    assert detail["description"] == tables.TABLES["bronze.vehicles"].description
    assert detail["properties"]["evfa.owner"] == "fleet-ops"
    # an unchanged rewrite adds its data commit only (no property commit)
    again = tables.write(df, fresh_cfg, "bronze.vehicles", properties={"evfa.owner": "fleet-ops"})
    assert again.version == 1 and tables.read(spark, fresh_cfg, "bronze.vehicles").count() == 1
    # a location another writer filled first (a table, or files that are not one): the SQL path
    # writes nothing and leaves the write to the DataFrameWriter
    assert tables._create_as_select(df, path, "probe", None, None, None) is False
    stray = Path(fresh_cfg.storage.path("bronze.stations"))
    stray.mkdir(parents=True)
    (stray / "notes.txt").write_text("not a table")
    assert tables._create_as_select(df, str(stray), "probe", None, None, None) is False
    assert tables.write(df, fresh_cfg, "bronze.stations").version == 1  # the writer, then the comment commit
    assert DeltaTable.forPath(spark, path).history().count() == 2


def test_a_merge_with_a_partition_filter_reads_only_those_partitions(spark, fresh_cfg):
    from datetime import date

    from common.bronze.ingest import batch_partitions, partition_predicate

    schema = "vehicle_id string, x double, date date"
    old = spark.createDataFrame([("V1", 1.0, date(2024, 1, 1)), ("V1", 2.0, date(2024, 1, 2))], schema)
    tables.write(old, fresh_cfg, "bronze.vehicles", partition_by=["date"])
    batch = spark.createDataFrame([("V1", 2.0, date(2024, 1, 2)), ("V2", 3.0, date(2024, 1, 3))], schema)
    days = batch_partitions(batch, "date")
    assert sorted(days) == [date(2024, 1, 2), date(2024, 1, 3)]
    assert partition_predicate("date", days, alias="t") == "(t.`date` IN (DATE'2024-01-02', DATE'2024-01-03'))"
    assert partition_predicate("date", [None, date(2024, 1, 2)]) == "(`date` IN (DATE'2024-01-02') OR `date` IS NULL)"
    assert partition_predicate("date", []) == "false"
    # the predicate prunes the bronze scan to the batch's days (2024-01-01 is not read)
    files = tables.read(spark, fresh_cfg, "bronze.vehicles").where(partition_predicate("date", days)).inputFiles()
    assert len(files) == 1 and "date=2024-01-02" in files[0]
    # the MERGE does not read 2024-01-01 either: with its data file gone it still succeeds
    outside = [f for f in tables.read(spark, fresh_cfg, "bronze.vehicles").inputFiles() if "date=2024-01-01" in f]
    assert len(outside) == 1
    Path(outside[0].removeprefix("file:")).unlink()
    result = tables.merge(batch, fresh_cfg, "bronze.vehicles", keys=["vehicle_id", "x", "date"], target_filter=partition_predicate("date", days, alias="t"))
    assert result.inserted() == 1
    rows = tables.read(spark, fresh_cfg, "bronze.vehicles").where("date > DATE'2024-01-01'").collect()
    assert sorted(r["x"] for r in rows) == [2.0, 3.0]


def test_version_and_properties_come_from_the_log_and_see_other_writers_commits(spark, fresh_cfg):
    import shutil

    from delta.tables import DeltaTable

    assert tables.version(spark, fresh_cfg, "bronze.vehicles") is None
    assert tables.properties(spark, fresh_cfg, "bronze.vehicles") is None
    df = spark.createDataFrame([("V1", 1.0)], "vehicle_id string, x double")
    tables.write(df, fresh_cfg, "bronze.vehicles", properties={"evfa.owner": "fleet-ops"})
    path = fresh_cfg.storage.path("bronze.vehicles")
    # commits made around tables.write (SQL, the DataFrameWriter) are seen, as history()/detail() see them
    spark.sql(f"ALTER TABLE delta.`{path}` SET TBLPROPERTIES ('evfa.owner' = 'network-ops', 'evfa.x' = '1')")
    df.write.format("delta").mode("append").save(path)
    detail = DeltaTable.forPath(spark, path).detail().select("description", "properties").first()
    expected = {**detail["properties"], "comment": detail["description"]}
    assert tables.properties(spark, fresh_cfg, "bronze.vehicles") == expected
    assert expected["evfa.owner"] == "network-ops" and expected["comment"] == tables.TABLES["bronze.vehicles"].description
    assert tables.version(spark, fresh_cfg, "bronze.vehicles") == DeltaTable.forPath(spark, path).history(1).first()["version"] == 2
    # set_properties compares against the log's current metadata: one commit for the change, none after
    tables.set_properties(spark, fresh_cfg, "bronze.vehicles", properties={"evfa.owner": "fleet-ops"})
    tables.set_properties(spark, fresh_cfg, "bronze.vehicles", properties={"evfa.owner": "fleet-ops"})
    assert tables.version(spark, fresh_cfg, "bronze.vehicles") == 3
    assert tables.properties(spark, fresh_cfg, "bronze.vehicles")["evfa.owner"] == "fleet-ops"

    # A commit this JVM did not make (another process's): the copy's log, read (and cached) at
    # version 3, gains versions 4 and 5 on disk behind Delta's back; both are seen.
    copy = fresh_cfg.storage.path("bronze.stations")
    shutil.copytree(path, copy)
    assert tables.version(spark, fresh_cfg, "bronze.stations") == 3
    df.write.format("delta").mode("append").save(path)
    spark.sql(f"ALTER TABLE delta.`{path}` SET TBLPROPERTIES ('evfa.owner' = 'elsewhere')")
    shutil.copytree(path, copy, dirs_exist_ok=True)
    assert tables.version(spark, fresh_cfg, "bronze.stations") == 5
    assert tables.properties(spark, fresh_cfg, "bronze.stations")["evfa.owner"] == "elsewhere"

    # no comment: no 'comment' key; a folder inside a table is not a table
    bare = fresh_cfg.storage.path("gold.bare")
    spark.range(1).write.format("delta").save(bare)
    bare_cfg = fresh_cfg.model_copy(update={"storage": fresh_cfg.storage.model_copy(update={"tables": {"gold.bare": bare, "gold.inner": f"{bare}/inner"}})})
    assert tables.properties(spark, bare_cfg, "gold.bare") == {}
    assert tables.version(spark, bare_cfg, "gold.inner") is None and tables.properties(spark, bare_cfg, "gold.inner") is None


def test_size_bytes_is_the_size_of_the_current_files_with_or_without_checksums(spark, fresh_cfg):
    """size_bytes reads the version's checksum file; it equals detail()'s sizeInBytes after an
    append and an overwrite, and a table whose log has no checksum files is measured all the same."""
    import shutil
    from pathlib import Path

    from delta.tables import DeltaTable

    path = fresh_cfg.storage.path("bronze.vehicles")
    tables.write(spark.range(500).selectExpr("cast(id AS string) AS vehicle_id"), fresh_cfg, "bronze.vehicles")
    tables.write(spark.range(300).selectExpr("cast(id AS string) AS vehicle_id"), fresh_cfg, "bronze.vehicles", mode="append")
    files = spark.read.format("delta").load(path).inputFiles()
    on_disk = sum(Path(f.removeprefix("file:")).stat().st_size for f in files)
    assert tables.size_bytes(spark, fresh_cfg, "bronze.vehicles") == on_disk == DeltaTable.forPath(spark, path).detail().first()["sizeInBytes"]
    tables.write(spark.range(7).selectExpr("cast(id AS string) AS vehicle_id"), fresh_cfg, "bronze.vehicles")  # overwrite: old files removed
    small = tables.size_bytes(spark, fresh_cfg, "bronze.vehicles")
    assert 0 < small < on_disk and small == DeltaTable.forPath(spark, path).detail().first()["sizeInBytes"]

    copy = fresh_cfg.storage.path("bronze.stations")  # the same table written by a tool that keeps no checksums
    shutil.copytree(path, copy, ignore=shutil.ignore_patterns("*.crc", ".*.crc"))
    assert not list(Path(copy, "_delta_log").glob("*.crc"))
    assert tables.size_bytes(spark, fresh_cfg, "bronze.stations") == small

    # the figure is the checksum's: a copy whose latest checksum says otherwise is believed
    marked = fresh_cfg.storage.path("bronze.charger_status")
    shutil.copytree(path, marked, ignore=shutil.ignore_patterns(".*.crc"))
    crc = Path(marked, "_delta_log", "00000000000000000002.crc")
    crc.write_text(re.sub(r'"tableSizeBytes":\d+', '"tableSizeBytes":123456789', crc.read_text()))
    assert tables.size_bytes(spark, fresh_cfg, "bronze.charger_status") == 123456789


def test_file_listing_parallelism_follows_the_shuffle_width(spark, cfg):
    # Delta's VACUUM lists directories in one task per unit of this setting (10000 by default)
    from common.io.spark import spark_conf

    assert spark.conf.get("spark.sql.sources.parallelPartitionDiscovery.parallelism") == str(cfg.spark.shuffle_partitions)
    wide = cfg.model_copy(update={"spark": cfg.spark.model_copy(update={"shuffle_partitions": 200})})
    assert spark_conf(wide)["spark.sql.sources.parallelPartitionDiscovery.parallelism"] == "200"

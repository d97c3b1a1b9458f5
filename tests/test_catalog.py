"""Tables by name (common/io/metastore.py, jobs/catalog.py): each existing catalog table registered
at its folder, reruns change nothing, a moved table follows its folder, a removed one is dropped,
and (slow) the names persist across processes in the local Derby metastore."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap

import pytest
from chispa import assert_df_equality

from common.io import tables
from common.io.metastore import qualified_name, register_tables
from tests.conftest import PROJECT_ROOT, make_config

NAMES = ("gold.driver_risk", "gold.hotspots", "gold.station_kpis")


def _table(spark, cfg, table: str, n: int) -> None:
    spark.range(n).selectExpr("id", "id * 2 AS twice").write.format("delta").mode("overwrite").save(cfg.storage.path(table))


def test_register_follow_and_drop_in_spark_catalog(spark, tmp_path):
    here = make_config(tmp_path / "a lake", "catalog.database_prefix=t_reg_")  # the metastore keeps '%20'
    spark.sql("CREATE DATABASE IF NOT EXISTS t_reg_gold")
    spark.range(2).write.saveAsTable("t_reg_gold.station_kpis")  # someone's managed table with a catalog name
    _table(spark, here, "gold.driver_risk", 5)
    _table(spark, here, "gold.hotspots", 3)
    try:
        _table(spark, here, "gold.station_kpis", 1)
        first = register_tables(spark, here, NAMES)
        assert (sorted(first.registered), first.unchanged, first.dropped) == (["gold.driver_risk", "gold.hotspots"], [], [])
        assert first.foreign == ["gold.station_kpis"] and spark.table("t_reg_gold.station_kpis").count() == 2  # left alone, not dropped
        assert qualified_name(here, "gold.driver_risk") == "t_reg_gold.driver_risk"
        assert_df_equality(spark.sql("SELECT * FROM t_reg_gold.driver_risk"), tables.read(spark, here, "gold.driver_risk"), ignore_row_order=True)

        again = register_tables(spark, here, NAMES)  # a rerun changes nothing
        assert (again.registered, again.relocated, sorted(again.unchanged), again.dropped) == ([], [], ["gold.driver_risk", "gold.hotspots"], [])

        # the lakehouse moved (a copy of one table under another root): the name follows the folder
        moved = make_config(tmp_path / "b", "catalog.database_prefix=t_reg_")
        _table(spark, moved, "gold.driver_risk", 7)
        there = register_tables(spark, moved, NAMES)
        assert (there.relocated, sorted(there.foreign)) == (["gold.driver_risk"], ["gold.hotspots", "gold.station_kpis"])
        assert spark.sql("SELECT count(*) AS n FROM t_reg_gold.driver_risk").first().n == 7
        assert tables.read(spark, here, "gold.driver_risk").count() == 5  # dropping the old entry left its files

        # a table removed from the lakehouse loses its name; a foreign registration is kept
        shutil.rmtree(here.storage.path("gold.hotspots"))
        gone = register_tables(spark, here, ("gold.hotspots",))
        assert gone.dropped == ["gold.hotspots"]
        assert not spark.catalog.tableExists("t_reg_gold.hotspots")
    finally:
        spark.sql("DROP DATABASE IF EXISTS t_reg_gold CASCADE")


@pytest.mark.slow
def test_tables_by_name_persist_in_the_local_metastore(spark, tmp_path):
    """jobs.catalog in one process with the local Derby metastore; a second process, built from the
    same config, reads the tables by name, and a rerun there registers nothing new."""
    cfg = make_config(tmp_path, "catalog.metastore=local")
    _table(spark, cfg, "gold.driver_risk", 11)
    _table(spark, cfg, "silver.trips", 4)
    conf = [f"--conf=storage.root={cfg.storage.root}", f"--conf=storage.restricted_root={cfg.storage.restricted}", "--conf=catalog.metastore=local"]
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable}
    run = [sys.executable, "-m", "jobs.catalog", "--env", "test", *conf]
    first = subprocess.run(run, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    # the two tables and the run lease (audit.run_lease) the job itself takes
    assert "3 tables by name in the local metastore: 3 new" in first.stdout + first.stderr, first.stderr[-3000:]

    query = textwrap.dedent(
        f"""
        from common.core.config import load_config
        from common.io.spark import build_session
        cfg = load_config("test", {[c.removeprefix("--conf=") for c in conf]!r})
        spark = build_session(cfg)
        print("ROWS", spark.sql("SELECT count(*) AS n FROM gold.driver_risk").first().n, spark.sql("SELECT sum(id) AS s FROM silver.trips").first().s)
        from jobs.catalog import run_catalog
        print("RERUN", run_catalog(spark, cfg).notes[0])
        """
    )
    second = subprocess.run([sys.executable, "-c", query], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert "ROWS 11 6" in second.stdout, second.stdout[-3000:] + second.stderr[-3000:]
    assert "0 new, 0 moved, 3 unchanged" in second.stdout, second.stdout[-3000:]  # a rerun changes nothing
    assert os.path.exists(os.path.join(cfg.storage.root, "_metastore", "derby.log"))
    assert not os.path.exists(os.path.join(PROJECT_ROOT, "derby.log"))

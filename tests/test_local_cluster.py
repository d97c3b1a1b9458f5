"""One job (`jobs.clean`) under `local-cluster[2,1,1024]` -- separate executor JVMs, jars shipped
via spark.jars, Python workers per executor -- writes exactly what `local[2]` wrote.

In the default suite (not tests/slow) because it is the one check that the code does not rely on
driver and executors sharing a JVM. Helpers: tests/slow/test_faults.py.
"""

from __future__ import annotations

import time

from chispa import assert_df_equality

from common.io import tables
from tests.conftest import make_config
from tests.slow.test_faults import LOCAL_CLUSTER, SILVER, copy_bronze, digest, executors, job_command, start, wait


def test_local_cluster_output_equals_local(spark, fleet_silver, tmp_path):
    cfg = make_config(tmp_path)
    copy_bronze(fleet_silver, cfg)
    proc, log = start(job_command(tmp_path, *LOCAL_CLUSTER), tmp_path, "local_cluster.log")
    seen = 0
    while proc.poll() is None:
        seen = max(seen, len(executors(proc)))
        time.sleep(1)
    wait(proc, log)
    assert seen == 2, f"expected 2 executor JVMs, saw {seen}"
    expected = digest(tables.read(spark, fleet_silver, SILVER))
    assert_df_equality(digest(tables.read(spark, cfg, SILVER)), expected, ignore_row_order=True, ignore_nullable=True)

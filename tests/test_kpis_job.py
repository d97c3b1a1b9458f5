"""jobs/kpis.py end to end: reruns are idempotent and a --start-date/--end-date run replaces
exactly its partitions (checked in the Delta log) with the rows a full run produces.

Runs on a private lakehouse seeded with four vehicles of the shared fleet's silver table (the
stuck-odometer and offline-device vehicles among them), so it is small and can rewrite freely.
"""

from __future__ import annotations

import json
import os
from datetime import date

from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from common.io import tables
from jobs.kpis import BILLING, DAILY, FLEET_DAILY, MINUTELY, SEGMENTS, TRIPS, main, run_kpis

PARTITION = {MINUTELY: "local_date", TRIPS: "local_date", SEGMENTS: "local_date", DAILY: "local_date", FLEET_DAILY: "local_date", BILLING: "period_start"}
START, END = date(2024, 3, 6), date(2024, 3, 7)  # the fixture fleet covers 2024-03-04 .. 03-10


def _rounded(df: DataFrame) -> DataFrame:
    """Doubles to 6 decimals: sums over shuffled rows may differ in the last bit between runs."""
    return df.select(*[F.round(F.col(f.name), 6).alias(f.name) if isinstance(f.dataType, T.DoubleType) else F.col(f.name) for f in df.schema.fields])


def _same_rows(a: DataFrame, b: DataFrame) -> bool:
    a, b = _rounded(a), _rounded(b)
    return a.count() == b.count() and a.exceptAll(b).isEmpty() and b.exceptAll(a).isEmpty()


def _seed(spark, fleet_cfg, cfg) -> list[str]:
    truth = tables.read(spark, fleet_cfg, "truth.vehicles")
    special = sorted(r.vehicle_id for r in truth.where("odometer_fault = 'stuck' OR profile = 'offline'").collect())
    regular = [r.vehicle_id for r in truth.where("odometer_fault != 'stuck' AND profile = 'regular'").orderBy("vehicle_id").limit(2).collect()]
    vids = sorted(set(special[:2] + regular))
    silver = tables.read(spark, fleet_cfg, "silver.telematics_clean").where(F.col("vehicle_id").isin(vids))
    tables.write(silver, cfg, "silver.telematics_clean", partition_by=["date"])
    tables.write(tables.read(spark, fleet_cfg, "bronze.vehicles"), cfg, "bronze.vehicles")
    return vids


def _last_commit_actions(cfg, table: str, version: int) -> list[dict]:
    log_file = os.path.join(cfg.storage.path(table), "_delta_log", f"{version:020d}.json")
    with open(log_file) as fh:
        return [json.loads(line) for line in fh if line.strip()]


def test_rerun_is_idempotent_and_date_range_rewrites_only_its_partitions(spark, fleet_silver, fresh_cfg):
    cfg = fresh_cfg
    vids = _seed(spark, fleet_silver, cfg)

    first = run_kpis(spark, cfg)
    v1 = dict(first.tables)
    assert set(v1) == set(PARTITION)
    second = run_kpis(spark, cfg)
    for table, version in second.tables.items():
        assert version == v1[table] + 1, (table, v1[table], version)  # one commit per table per run
        assert _same_rows(tables.read(spark, cfg, table, version=v1[table]), tables.read(spark, cfg, table)), table
    trips = tables.read(spark, cfg, TRIPS)
    assert trips.count() > 0 and trips.select("trip_id").distinct().count() == trips.count()

    # Range rerun through the command line.
    argv = [
        "--env", "test",
        "--conf", f"storage.root={cfg.storage.root}",
        "--conf", f"storage.restricted_root={cfg.storage.restricted_root}",
        "--start-date", START.isoformat(), "--end-date", END.isoformat(),
    ]  # fmt: skip
    third = main(argv)
    full_run = second.tables
    for table, column in PARTITION.items():
        version = third.tables[table]
        assert version == full_run[table] + 1, table
        history = tables_history(spark, cfg, table)
        assert history["operation"] == "WRITE" and column in history["operationParameters"].get("predicate", ""), history
        actions = _last_commit_actions(cfg, table, version)
        touched = [a.get("add") or a.get("remove") for a in actions if "add" in a or "remove" in a]
        assert any("remove" in a for a in actions), f"{table}: the range run replaced nothing"
        values = {date.fromisoformat(t["partitionValues"][column]) for t in touched}
        lo, hi = (START, END) if column == "local_date" else (date(2024, 3, 1), date(2024, 3, 1))
        assert all(lo <= d <= hi for d in values), (table, sorted(values))
        # ... and the replaced partitions hold exactly what the full run wrote there.
        before = tables.read(spark, cfg, table, version=full_run[table])
        after = tables.read(spark, cfg, table)
        assert _same_rows(before, after), table
    print(f"\n[kpis] idempotency on vehicles {vids}: full run {first.seconds}s, rerun {second.seconds}s, range run {third.seconds}s")


def tables_history(spark, cfg, table: str) -> dict:
    from delta.tables import DeltaTable

    row = DeltaTable.forPath(spark, cfg.storage.path(table)).history(1).first()
    return {"operation": row["operation"], "operationParameters": row["operationParameters"]}

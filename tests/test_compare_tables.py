"""bench.compare_tables: the before/after check of a refactor reports identical and differing tables."""

from __future__ import annotations

from bench.compare_tables import main
from common.io import tables
from tests.conftest import make_config


def _lakehouse(spark, root, rows, old_layout: bool = False):
    cfg = make_config(root)
    df = spark.createDataFrame(rows, "vehicle_id string, local_date date, gps_km double")
    tables.write(df, cfg, "gold.daily_kpis", mode="overwrite")
    events = spark.createDataFrame([("v1", 1.5)], "vehicle_id string, kwh double")
    if old_layout:  # the name the table had before the catalog moved it to silver
        events.write.format("delta").save(str(root / "lakehouse" / "gold" / "charging_events"))
    else:
        tables.write(events, cfg, "silver.charging_events", mode="overwrite")
    return cfg


def test_identical_lakehouses_pass_and_a_changed_row_fails(spark, tmp_path, capsys):
    import datetime as dt

    rows = [("v1", dt.date(2024, 1, 1), 12.0), ("v2", dt.date(2024, 1, 1), 3.5)]
    _lakehouse(spark, tmp_path / "before", rows, old_layout=True)
    _lakehouse(spark, tmp_path / "after", rows)
    _lakehouse(spark, tmp_path / "changed", [rows[0], ("v2", dt.date(2024, 1, 1), 3.6)])
    before, after, changed = (str(tmp_path / side / "lakehouse") for side in ("before", "after", "changed"))
    renamed = ["--renamed", "gold.charging_events=silver.charging_events"]

    assert main([before, after, "--layers", "silver", "gold", *renamed]) == 0
    out = capsys.readouterr().out
    assert "gold.charging_events -> silver.charging_events" in out and "identical" in out

    assert main([after, changed, "--layers", "gold"]) == 1
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("gold.daily_kpis"))
    assert "only left       1" in line and "only right       1" in line and "DIFFERENT" in line

    # without the rename the moved table is missing on the left: a difference, not a silent pass
    assert main([before, after, "--layers", "silver"]) == 1

"""Ingest of the real public samples in ../shared/data/real with the shipped conf/datasets/*.yaml.

Each test skips when its folder is absent. Expected counts come from the datasets' READMEs
(Twizy: ~170 corrupted dates; AFDC: fuel mix; Dundee: open sessions, negative kWh, 1970 sentinel).
"""

from __future__ import annotations

import gzip
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from common.io import tables
from common.io.schemas import STATIONS
from jobs.ingest import load_dataset_files, run_ingest
from tests.conftest import real_data

pytestmark = pytest.mark.realdata
NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)


def shipped(name: str, kind: str, path: Path):
    inputs = load_dataset_files([f"conf/datasets/{name}.yaml"])
    spec = getattr(inputs, kind)[0]
    spec.path = str(path / Path(spec.path).name)  # same file name / glob, in the real folder found here
    return inputs


def audit(spark, cfg, kind: str | None = None):
    """The audit row of the run (of its `kind` dataset when a dataset file ships several)."""
    runs = tables.read(spark, cfg, "audit.ingest_runs")
    return (runs.where(F.col("kind") == kind) if kind else runs).first()


def test_twizy_log(spark, fresh_cfg):
    folder = real_data("rsk_twizy_ev_trips")
    report = run_ingest(spark, fresh_cfg, shipped("twizy", "telematics", folder), now=NOW)
    row = audit(spark, fresh_cfg, "telematics")
    print(f"\ntwizy: read={row.rows_read} bronze={row.rows_bronze} quarantined={dict(row.quarantine_reasons)} duplicates={row.rows_duplicate}")

    assert row.rows_read == 55645
    assert row.rows_read == row.rows_bronze + row.rows_quarantined + row.rows_duplicate
    # corrupted dates such as 29/00/2003, 02/00/2090, 90/02/2032 (README: ~170); LON=1555.63 glitch
    assert row.quarantine_reasons == {"unparseable_ts": 170, "lon_out_of_range": 3}
    q = tables.read(spark, fresh_cfg, "quarantine.telematics")
    assert q.where("reason = 'unparseable_ts' AND raw_record LIKE '%\"Date\":\"29/00/2003\"%'").count() == 32

    bronze = tables.read(spark, fresh_cfg, "bronze.telematics")
    assert bronze.select("vehicle_id").distinct().collect()[0][0] == "rsk_twizy_01"
    utc = F.date_format("ts", "yyyy-MM-dd HH:mm:ss")
    # 03/29/2021 11:13:45 local; Morocco is UTC+1 -> 10:13:45 UTC
    assert bronze.where("date = '2021-03-29'").select(F.min(utc)).first()[0] == "2021-03-29 10:13:45"
    # 04/22/2021 08:42:50 local during Ramadan 2021, when Morocco ran on UTC+0
    assert bronze.where("date = '2021-04-22'").select(F.min(utc)).first()[0] == "2021-04-22 08:42:50"
    # the stage's rows out: the log's bronze rows plus the one-line register twizy.yaml ships
    assert report.rows_out == row.rows_bronze + audit(spark, fresh_cfg, "vehicles").rows_bronze == row.rows_bronze + 1


def test_afdc_exports_with_bom_newlines_and_schema_drift(spark, fresh_cfg):
    folder = real_data("afdc_alt_fuel_stations")
    run_ingest(spark, fresh_cfg, shipped("afdc_stations", "stations", folder), now=NOW)
    row = audit(spark, fresh_cfg)
    print(f"\nafdc: read={row.rows_read} bronze={row.rows_bronze} quarantined={dict(row.quarantine_reasons)} duplicates={row.rows_duplicate}")

    assert row.rows_read == 4857 + 1704  # quoted newlines did not split rows
    assert row.quarantine_reasons == {"excluded_by_filter": (4857 - 4736) + (1704 - 1642)}  # non-ELEC fuels
    bronze = tables.read(spark, fresh_cfg, "bronze.stations")
    per_file = {Path(r.source_file).name: r["count"] for r in bronze.groupBy("source_file").count().collect()}
    assert per_file == {"alt_fuel_stations_NY_2025-02.csv.gz": 4736, "alt_fuel_stations_WA_2023-02.csv.gz": 1642}
    assert [f.name for f in bronze.schema.fields][: len(STATIONS.fields)] == STATIONS.fieldNames()
    # columns after the WA file's last one are aligned by name, not position: every station has
    # coordinates, and the connector list looks like connector names in both files
    assert bronze.where("lat IS NULL OR lon IS NULL OR NOT (lat BETWEEN 40 AND 50)").count() == 0
    per_state = {r.state: r.l2 for r in bronze.groupBy("state").agg(F.sum("level2_count").alias("l2")).collect()}
    assert per_state["NY"] > 10000 and per_state["WA"] > 1000
    assert bronze.where("connector_types IS NOT NULL AND connector_types NOT RLIKE '^[A-Z0-9 _]+$'").count() == 0


def test_dundee_sessions(spark, fresh_cfg):
    folder = real_data("dundee_ev_charging_sessions")
    run_ingest(spark, fresh_cfg, shipped("dundee_sessions", "charging_sessions", folder), now=NOW)
    row = audit(spark, fresh_cfg)
    print(f"\ndundee: read={row.rows_read} bronze={row.rows_bronze} quarantined={dict(row.quarantine_reasons)} duplicates={row.rows_duplicate}")

    assert row.rows_read == 15610 + 16773 + 19227
    assert row.rows_read == row.rows_bronze + row.rows_quarantined + row.rows_duplicate
    q = tables.read(spark, fresh_cfg, "quarantine.charging_sessions")
    has = {code: q.where(F.array_contains("reasons", code)).count() for code in ("open_session", "negative_kwh", "end_ts_too_old")}
    assert has == {"open_session": 61 + 114 + 72, "negative_kwh": 7 + 12 + 8, "end_ts_too_old": 1}  # README counts
    bronze = tables.read(spark, fresh_cfg, "bronze.charging_sessions")
    # session 7751157: 06/09/2018 23:55 -> 07/09/2018 07:03 Europe/London (BST, UTC+1)
    s = bronze.where("session_id = '7751157'").select(F.date_format("start_ts", "yyyy-MM-dd HH:mm").alias("s"), F.date_format("end_ts", "yyyy-MM-dd HH:mm").alias("e"), "port_id", "kwh").first()
    assert tuple(s) == ("2018-09-06 22:55", "2018-09-07 06:03", "50914:1", 22.287)


def test_esb_status_slice(spark, fresh_cfg, tmp_path):
    """The first 15k rows of the ESB snapshots plus 300 of its 'NA' gap rows (the full 175k-row
    file is measured in docs/DATA_CONTRACT.md); expected counts computed here from the text."""
    folder = real_data("ireland_esb_chargepoint_status")
    src = folder / "cpinfo_status_nov2018_60cp.csv.gz"
    with gzip.open(src, "rt", encoding="utf-8") as f:
        header, *rows = f.readlines()
    gap_rows = [ln for ln in rows[15000:] if ln.split(",")[2] == "NA"][:300]
    data = rows[:15000] + gap_rows
    (tmp_path / "esb").mkdir()
    with gzip.open(tmp_path / "esb" / src.name, "wt", encoding="utf-8") as f:
        f.writelines([header, *data])
    gaps = sum(1 for ln in data if ln.split(",")[2] == "NA")
    copies = sum(n - 1 for n in Counter(data).values())

    run_ingest(spark, fresh_cfg, shipped("esb_status", "charger_status", tmp_path / "esb"), now=NOW)
    row = audit(spark, fresh_cfg)
    print(f"\nesb slice: read={row.rows_read} bronze={row.rows_bronze} quarantined={dict(row.quarantine_reasons)} duplicates={row.rows_duplicate}")
    assert row.rows_read == len(data)
    assert gaps >= 300 and row.quarantine_reasons == {"missing_port_id": gaps}  # 'NA' scrape-gap rows
    assert row.duplicates_raw == copies
    assert row.rows_read == row.rows_bronze + row.rows_quarantined + row.rows_duplicate
    bronze = tables.read(spark, fresh_cfg, "bronze.charger_status")
    assert {r.status for r in bronze.select("status").distinct().collect()} <= {"Charging", "Faulted", "Unavailable"}
    # first source row: 20181101,1009,CP:C6WY4,StandardType2,OOC -> Irish time = GMT in November
    first = bronze.where("port_id = 'CP:C6WY4/StandardType2' AND ts = timestamp'2018-11-01 10:09:00'")
    assert [(r.status, r.info, r.charger_id) for r in first.collect()] == [("Unavailable", "OOC", "CP:C6WY4")]


def test_caltech_sessions(spark, fresh_cfg):
    folder = real_data("caltech_acn_sessions")
    run_ingest(spark, fresh_cfg, shipped("caltech_sessions", "charging_sessions", folder), now=NOW)
    row = audit(spark, fresh_cfg)
    print(f"\ncaltech: read={row.rows_read} bronze={row.rows_bronze} quarantined={dict(row.quarantine_reasons)} duplicates={row.rows_duplicate}")
    assert row.rows_read == 3235
    assert row.rows_read == row.rows_bronze + row.rows_quarantined + row.rows_duplicate
    bronze = tables.read(spark, fresh_cfg, "bronze.charging_sessions")
    s = bronze.where("session_id = '2_39_131_30_2020-12-01 13:58:55.468429'").select(F.date_format("start_ts", "yyyy-MM-dd HH:mm:ss"), "kwh").first()
    assert tuple(s) == ("2020-12-01 13:59:06", 7.877)  # ISO 'Z' timestamps are instants already

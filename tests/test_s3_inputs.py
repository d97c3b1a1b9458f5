"""Inputs from object storage in every format (issue 23, item 6): the real ingest reads CSV (plain
and gzip), Parquet, JSON lines and .xlsx from `s3a://` and lands the same bronze and quarantine rows,
and the same unreadable-file reasons, as from a local folder.

The object store is moto's S3 server in this process (`ThreadedMotoServer` on a free port). The
session-scoped SparkSession reaches it through Hadoop's s3a file system: the test-only jars
(`S3A_TEST_COORDINATES`, `bin/fetch-jars --test`, run by `make test`) are on its class path
(tests/conftest.py) and the bucket's endpoint, path-style access, plain HTTP and fake keys are
per-bucket settings of its Hadoop configuration, removed again after the module.
"""

from __future__ import annotations

import gzip
import os
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import pytest
from chispa import assert_df_equality

from common.bronze.ingest import SourceFile, probe_file
from common.core.config import DatasetSpec, InputsConfig
from common.core.versions import S3A_TEST_COORDINATES, jar_file_name
from common.io import tables
from common.io.schemas import INGESTED_AT, RUN_ID, SOURCE_FILE
from common.io.spark import jvm_of
from deploy.class_archive import s3a_test_jars
from jobs.ingest import LEDGER_TABLE, run_ingest
from tests.conftest import make_config
from tests.robustness_table import TELEMATICS_HEADER

NOW = datetime(2024, 3, 10, 12, 0, tzinfo=timezone.utc)
BUCKET = "evfa-raw"
# Fake credentials moto accepts; nothing here reaches AWS.
ACCESS_KEY = "evfa-test-access-key"  # pragma: allowlist secret
SECRET_KEY = "evfa-test-secret-key"  # pragma: allowlist secret
# Lineage differs by design between the two reads (where the file was, which run).
LINEAGE = (SOURCE_FILE, RUN_ID, INGESTED_AT)
# Each file's rows after its vehicle id; "bad" (month 13, SOC 120) lands in quarantine, compared too.
ROWS = {
    "good": [("2024-03-04 08:00:00", "28.61", "77.20", "10", "100", "50"), ("2024-03-04 08:01:00", "28.62", "77.21", "12", "101", "49.5")],
    "bad": [("2024-13-04 08:02:00", "28.63", "77.22", "11", "102", "120")],
}


def frame(vehicle: str) -> pd.DataFrame:
    """All values as text, as every format hands them to ingest."""
    lines = [(vehicle, *row) for rows in ROWS.values() for row in rows]
    return pd.DataFrame(lines, columns=TELEMATICS_HEADER.split(","))


def write_raw(root: Path) -> list[str]:
    """One folder per format under `root`, named by the format; returns the formats."""
    formats = ["csv", "parquet", "json", "xlsx"]
    for folder in formats:
        (root / folder).mkdir(parents=True)
    frame("s3_csv").to_csv(root / "csv" / "part-1.csv", index=False)
    # gzip is decompressed by Hadoop's codecs, on S3 as locally
    (root / "csv" / "part-2.csv.gz").write_bytes(gzip.compress(frame("s3_gz").to_csv(index=False).encode()))
    frame("s3_pq").to_parquet(root / "parquet" / "part-1.parquet", index=False)
    frame("s3_json").to_json(root / "json" / "part-1.json", orient="records", lines=True)
    frame("s3_xl").to_excel(root / "xlsx" / "part-1.xlsx", index=False)
    # an unreadable workbook next to the good one: the reason must not depend on the store
    (root / "xlsx" / "corrupt.xlsx").write_bytes(os.urandom(2048))
    return formats


def inputs_at(base: str, formats: list[str]) -> InputsConfig:
    return InputsConfig(telematics=[DatasetSpec(name=f"s3_{fmt}", path=f"{base}/{fmt}", format=fmt, source_timezone="UTC") for fmt in formats])


def s3a_settings(endpoint: str) -> dict[str, str]:
    """Per-bucket s3a settings: they apply to this bucket only, so nothing else in the session changes."""
    prefix = f"fs.s3a.bucket.{BUCKET}."
    return {
        prefix + "endpoint": endpoint,
        prefix + "endpoint.region": "us-east-1",
        prefix + "path.style.access": "true",  # moto serves the bucket under the path, not a host name
        prefix + "connection.ssl.enabled": "false",
        prefix + "aws.credentials.provider": "org.apache.hadoop.fs.s3a.SimpleAWSCredentialsProvider",
        prefix + "access.key": ACCESS_KEY,
        prefix + "secret.key": SECRET_KEY,
    }


def require_s3a_jars(spark, cfg) -> None:
    """Fail (not skip): without the jars this test proves nothing, and `make test` fetches them."""
    wanted = [jar_file_name(c) for c in S3A_TEST_COORDINATES]
    on_session = {os.path.basename(j) for j in spark.sparkContext.getConf().get("spark.jars", "").split(",")}
    missing = [j for j in wanted if j not in on_session]
    if missing:
        if set(missing) <= {os.path.basename(j) for j in s3a_test_jars(cfg)}:
            pytest.fail(f"s3a test jars {', '.join(missing)} are in .jars/ but this session started without them: run pytest again")
        pytest.fail(f"s3a test jars {', '.join(missing)} are not in .jars/: run `bin/fetch-jars --test` (make test does), then pytest again")


@pytest.fixture(scope="module")
def s3_bucket(spark, cfg):
    """moto's S3 on a free local port, one bucket, and the session's s3a pointed at it."""
    require_s3a_jars(spark, cfg)
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY)
    client.create_bucket(Bucket=BUCKET)
    jvm = jvm_of(spark)
    hconf = spark.sparkContext._jsc.hadoopConfiguration()
    settings = s3a_settings(endpoint)
    for key, value in settings.items():
        hconf.set(key, value)
    try:
        yield client
    finally:
        # the cached s3a file system holds the endpoint and a connection pool: close it before the server goes
        jvm.org.apache.hadoop.fs.FileSystem.get(jvm.java.net.URI(f"s3a://{BUCKET}/"), hconf).close()
        for key in settings:
            hconf.unset(key)
        server.stop()


def upload(client, root: Path, prefix: str) -> None:
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        client.upload_file(str(path), BUCKET, f"{prefix}/{path.relative_to(root).as_posix()}")


def test_every_format_ingests_the_same_from_s3_as_from_a_local_folder(spark, s3_bucket, tmp_path):
    formats = write_raw(tmp_path / "raw")
    upload(s3_bucket, tmp_path / "raw", "landing")
    local_cfg, s3_cfg = make_config(tmp_path / "local"), make_config(tmp_path / "s3")

    run_ingest(spark, local_cfg, inputs_at(str(tmp_path / "raw"), formats), now=NOW, run_id="local")
    run_ingest(spark, s3_cfg, inputs_at(f"s3a://{BUCKET}/landing", formats), now=NOW, run_id="s3")

    # every dataset read its files from the bucket; the lineage names the object
    bronze_s3 = tables.read(spark, s3_cfg, "bronze.telematics")
    # bounded: one row per raw file read, five of them
    sources = {(r["source_name"], r[SOURCE_FILE]) for r in bronze_s3.select("source_name", SOURCE_FILE).distinct().collect()}
    assert {name for name, _ in sources} == {f"s3_{fmt}" for fmt in formats}
    assert len(sources) == 5 and all(path.startswith(f"s3a://{BUCKET}/landing/") for _, path in sources), sources

    for table in ("bronze.telematics", "quarantine.telematics"):
        local = tables.read(spark, local_cfg, table).drop(*LINEAGE)
        from_s3 = tables.read(spark, s3_cfg, table).drop(*LINEAGE)
        assert local.count() > 0, table
        assert_df_equality(from_s3, local, ignore_row_order=True, ignore_column_order=True, ignore_nullable=True)

    # the same files found, read or set aside with the same reason (corrupt.xlsx: BadZipFile)
    def ledger(cfg):
        # bounded: one row per raw file, six of them
        rows = tables.read(spark, cfg, LEDGER_TABLE).collect()
        return {(r["source_name"], r["path"].rsplit("/", 1)[-1]): (r["size"], r["status"], r["reason"]) for r in rows}

    from_s3 = ledger(s3_cfg)
    assert from_s3 == ledger(local_cfg) and len(from_s3) == 6
    assert from_s3[("s3_xlsx", "corrupt.xlsx")][1:] == ("unreadable", "BadZipFile: File is not a zip file")


def test_a_file_of_another_extension_in_an_xlsx_dataset_is_named_the_same_from_s3(spark, s3_bucket, tmp_path):
    """openpyxl checks a file name's extension, which it cannot see in the bytes it now gets: ingest
    makes that check itself, so the reason stays InvalidFileException, not BadZipFile."""
    path = tmp_path / "old.xls"
    path.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(504))  # an OLE2 (Excel 97) header
    s3_bucket.upload_file(str(path), BUCKET, "other/old.xls")
    spec = DatasetSpec(name="s3_old", path="unused", format="xlsx", source_timezone="UTC")
    reasons = {probe_file(spark, spec, SourceFile(p, 512, 0)) for p in (path.as_uri(), f"s3a://{BUCKET}/other/old.xls")}
    assert reasons == {"InvalidFileException: openpyxl does not support .xls file format, please check you can open it with Excel first. Supported formats are: .xlsx,.xlsm,.xltx,.xltm"}

"""Config loading, validation errors, overrides, redaction; the session builder's settings."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from common.core.config import ConfigError, apply_override, load_config, redact
from common.core.versions import ALL_COORDINATES, DELTA_LOG_STORE_COORDINATES, S3A_TEST_COORDINATES

ROOT = Path(__file__).resolve().parent.parent


def test_defaults_and_env_overlay():
    cfg = load_config("local")
    assert cfg.spark.master == "local[*]"
    assert cfg.storage.path("silver.daily_kpis").endswith("lakehouse/silver/daily_kpis")
    # position traces go to the restricted root, kept in their layer folder
    assert cfg.storage.path("silver.telematics_clean").endswith("lakehouse/restricted/silver/telematics_clean")
    assert cfg.storage.path("bronze.telematics").endswith("lakehouse/restricted/bronze/telematics")
    assert cfg.storage.path("restricted.residences").endswith("lakehouse/restricted/residences")
    test = load_config("test")
    assert test.spark.shuffle_partitions == 2 and test.spark.ui_enabled is False


def test_override_types_are_parsed_and_validated():
    cfg = load_config("local", ["generator.vehicles=100", "spark.extra={spark.sql.ansi.enabled: 'false'}"])
    assert cfg.generator.vehicles == 100
    assert cfg.spark.extra == {"spark.sql.ansi.enabled": "false"}
    with pytest.raises(ConfigError, match=r"generator\.vehicles"):
        load_config("local", ["generator.vehicles=many"])


def test_unknown_key_is_an_error_naming_it():
    with pytest.raises(ConfigError, match=r"generator\.vehicels"):
        load_config("local", ["generator.vehicels=3"])


def test_unknown_env_lists_known_ones():
    with pytest.raises(ConfigError, match="unknown --env 'prod'.*local"):
        load_config("prod")


def test_bad_override_syntax():
    with pytest.raises(ConfigError, match="expected key=value"):
        apply_override({}, "generator.vehicles")


def test_environment_references(monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "https://user:s3cr3t@mlflow.example.internal")
    monkeypatch.setenv("EVFA_LAKEHOUSE_BUCKET", "my-bucket")
    cfg = load_config("emr")
    assert cfg.storage.root == "s3://my-bucket/lakehouse"
    assert cfg.storage.path("gold.hotspots") == "s3://my-bucket/lakehouse/gold/hotspots"
    shown = str(cfg.redacted())
    assert "s3cr3t" not in shown and "user:***@" in shown
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    with pytest.raises(ConfigError, match="MLFLOW_TRACKING_URI"):
        load_config("emr")


def test_redact_secret_keys():
    assert redact({"db_password": "x1234", "nested": {"api_token": "abc"}, "ok": "v"}) == {
        "db_password": "***",
        "nested": {"api_token": "***"},
        "ok": "v",
    }


def test_invalid_timezone_in_dataset_spec():
    with pytest.raises(ConfigError, match="unknown timezone"):
        load_config("local", ["inputs.telematics=[{name: x, path: /tmp/x, source_timezone: Mars/Olympus}]"])


def test_zoneless_timestamps_need_a_source_timezone():
    """A wall-clock pattern without source_timezone is a configuration error naming the key (it
    used to be read as UTC silently); patterns with a zone, and kinds without timestamps, need none."""
    with pytest.raises(ConfigError) as err:
        load_config("local", ["inputs.charging_sessions=[{name: ok, path: /tmp/a, timestamp_formats: [\"yyyy-MM-dd'T'HH:mm:ssXXX\"]}, "
                              "{name: wall, path: /tmp/b, timestamp_formats: ['dd/MM/yyyy HH:mm', epoch_s]}]"])  # fmt: skip
    message = str(err.value)
    print(message)
    assert "inputs.charging_sessions[1].source_timezone is not set" in message and "['dd/MM/yyyy HH:mm']" in message
    assert "charging_sessions[0]" not in message
    cfg = load_config("local", ["inputs.vehicles=[{name: v, path: /tmp/v}]", "inputs.telematics=[{name: t, path: /tmp/t, source_timezone: UTC}]"])
    assert cfg.inputs.telematics[0].source_timezone == "UTC" and cfg.inputs.vehicles[0].source_timezone is None


def test_timestamped_kinds_agree_with_the_schemas():
    from common.core.config import TIMESTAMPED_KINDS
    from common.io.schemas import KINDS

    assert set(TIMESTAMPED_KINDS) == {kind for kind, (_s, _r, _k, ts_cols, _t) in KINDS.items() if ts_cols}


def test_every_shipped_dataset_config_validates():
    from jobs.ingest import load_dataset_files

    files = sorted((ROOT / "conf" / "datasets").glob("*.yaml"))
    assert files
    for path in files:
        inputs = load_dataset_files([str(path)])
        assert not inputs.is_empty(), path


def test_fetch_jars_matches_versions_module():
    script = (ROOT / "bin" / "fetch-jars").read_text()
    listed = re.findall(r'^\s+"([\w.\-]+:[\w.\-]+:[\w.\-]+)"', script, re.M)
    assert sorted(listed) == sorted(ALL_COORDINATES + DELTA_LOG_STORE_COORDINATES + S3A_TEST_COORDINATES)
    # each array as its flag fetches it: the s3a jars with --test only, never for a job's class path
    arrays = {name: re.findall(r'"([^"\s]+:[^"\s]+:[^"\s]+)"', body) for name, body in re.findall(r"^(\w+)=\((.*?)^\)", script, re.M | re.S)}
    assert arrays == {"JARS": list(ALL_COORDINATES), "CLUSTER_JARS": list(DELTA_LOG_STORE_COORDINATES), "TEST_JARS": list(S3A_TEST_COORDINATES)}
    assert not set(S3A_TEST_COORDINATES) & set(ALL_COORDINATES)


def test_session_has_delta_sedona_utc(spark):
    from common.io import spark as spark_mod

    conf = spark.sparkContext.getConf()
    assert spark.conf.get("spark.sql.session.timeZone") == "UTC"
    assert "DeltaSparkSessionExtension" in spark.conf.get("spark.sql.extensions")
    assert conf.get("spark.serializer").endswith("KryoSerializer")
    assert spark.conf.get("spark.sql.adaptive.enabled") == "true"
    assert spark_mod.with_sedona(spark) is spark  # registers on first use, then a no-op
    registered = set(spark_mod._SEDONA_SESSIONS)
    spark_mod.with_sedona(spark)
    assert spark_mod._SEDONA_SESSIONS == registered and len(registered) == 1
    assert spark.sql("SELECT ST_AsText(ST_Point(77.2, 28.6)) AS p").first().p == "POINT (77.2 28.6)"


def test_the_class_archive_is_keyed_on_java_pyspark_and_jars_and_used_only_when_built(cfg, tmp_path, monkeypatch):
    from common.io.spark import DRIVER_JAVA_OPTIONS, class_archive_options, class_archive_path

    jars = [str(tmp_path / "a.jar"), str(tmp_path / "b.jar")]
    path = class_archive_path(str(tmp_path), jars)
    assert path.startswith(str(tmp_path)) and path.endswith(".jsa")
    assert class_archive_path(str(tmp_path), jars) == path
    assert class_archive_path(str(tmp_path), [*jars, str(tmp_path / "c.jar")]) != path  # another jar set
    assert class_archive_path(str(tmp_path), jars[::-1]) != path  # another class path order
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "other-jdk"))
    assert class_archive_path(str(tmp_path), jars) != path  # another Java

    local = cfg.model_copy(deep=True)
    local.spark.jars_dir, local.spark.master = str(tmp_path), "local[2]"
    local.spark.extra = {DRIVER_JAVA_OPTIONS: "-Dx=1"}
    monkeypatch.delenv("JAVA_HOME")
    assert class_archive_options(local, jars) is None  # not built: the driver starts as before
    Path(class_archive_path(str(tmp_path), jars)).write_bytes(b"")
    assert class_archive_options(local, jars) == f"-Dx=1 -XX:SharedArchiveFile={class_archive_path(str(tmp_path), jars)} -Xshare:auto"
    local.spark.extra = {DRIVER_JAVA_OPTIONS: "-Xshare:off"}  # the user's own class-sharing setting wins
    assert class_archive_options(local, jars) is None
    local.spark.extra = {}
    local.spark.master = "yarn"  # spark-submit started the driver already
    assert class_archive_options(local, jars) is None


def test_the_test_driver_runs_on_the_class_archive_when_setup_built_it(spark, cfg):
    """`make test` builds the archive of the test session's jar set (deploy/class_archive.py --test:
    the cached jars and the s3a test jars); this session's JVM then uses it."""
    from common.io.spark import class_archive_options, jvm_of, local_jars
    from deploy.class_archive import s3a_test_jars

    expected = class_archive_options(cfg, local_jars(cfg.spark, cfg.storage.resolve) + s3a_test_jars(cfg))
    args = list(jvm_of(spark).java.lang.management.ManagementFactory.getRuntimeMXBean().getInputArguments())
    used = [a for a in args if a.startswith("-XX:SharedArchiveFile=")]
    assert used == ([o for o in expected.split() if o.startswith("-XX:SharedArchiveFile=")] if expected else []), args


def test_cli_help_lists_defaults(capsys):
    from jobs.pipeline import main

    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "--start-date" in out and "(default: local)" in out


def test_cli_config_error_is_clear(capsys):
    from common.io.cli import parse

    with pytest.raises(SystemExit) as exc:
        parse("clean", ["--conf", "generator.vehicles=-1"])
    assert exc.value.code == 2
    assert "generator.vehicles" in capsys.readouterr().err

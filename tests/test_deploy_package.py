"""Packaging and submit rendering for EMR Serverless / Glue / EMR on EC2, checked offline.

Builds the artifacts into a temporary folder with the *light* environment profile (same
interpreter, layout and relocation as `make package`, but only the config's dependencies:
about 20 s instead of minutes), renders the submit commands for the pipeline against fake
terraform outputs and checks that every path and package they reference exists in the build.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import tarfile
import time
import types
import zipfile
from pathlib import Path

import pytest

from common.core.config import ConfigError, load_config
from common.core.versions import DELTA_COORDINATES, DELTA_LOG_STORE_CLASS, DELTA_LOG_STORE_COORDINATES, SEDONA_COORDINATES, jar_file_name
from common.io import cluster_entry as deploy_runtime
from common.io.spark import spark_conf
from deploy.package import (
    PLATFORM_PROVIDED,
    build,
    build_code_zip,
    discover_jobs,
    glue_requirements,
    runtime_requirements,
    sha256_file,
    source_digest,
)
from deploy.submit import (
    EMR_DELTA_JARS,
    SubmitError,
    check_references,
    cluster_config,
    config_environment,
    main,
    render_emr_ec2,
    render_emr_serverless,
    render_glue,
)

ROOT = Path(__file__).resolve().parent.parent
ENVIRON = {"MLFLOW_TRACKING_URI": "https://mlflow.internal.example.com"}


def fake_outputs(jobs: list[str]) -> dict:
    return {
        "region": "eu-west-1",
        "lakehouse_bucket": "evfa-lakehouse-123456789012-eu-west-1",
        "artifacts_bucket": "evfa-artifacts-123456789012-eu-west-1",
        "logs_bucket": "evfa-logs-123456789012-eu-west-1",
        "delta_log_table_name": "evfa-delta-log",
        "kms_key_arn": "arn:aws:kms:eu-west-1:123456789012:key/00000000-0000-0000-0000-000000000000",
        "execution_role_arn": "arn:aws:iam::123456789012:role/evfa-job-execution",
        "emr_serverless_application_id": "00fabcdefgh12345",
        "emr_release_label": "emr-7.13.0",
        "emr_serverless_log_group": "/evfa/emr-serverless",
        "glue_log_group": "/evfa/glue",
        "glue_version": "5.1",
        "glue_job_names": {j: f"evfa-{j}" for j in jobs},
        "emr_cluster_id": "j-ABCDEF123456",
    }


def jobs_to_render(manifest: dict) -> list[str]:
    """The pipeline when it exists (jobs appear during development), else every entry point."""
    return ["pipeline"] if "pipeline" in manifest["jobs"] else manifest["jobs"]


def cluster_env(outputs: dict) -> dict:
    """The environment config_environment() derives from the terraform outputs."""
    return {
        "EVFA_LAKEHOUSE_BUCKET": outputs["lakehouse_bucket"],
        "EVFA_ARTIFACTS_BUCKET": outputs["artifacts_bucket"],
        "EVFA_DELTA_LOG_TABLE": outputs["delta_log_table_name"],
        "EVFA_AWS_REGION": outputs["region"],
        **ENVIRON,
    }


@pytest.fixture(scope="module")
def jars_dir(tmp_path_factory) -> Path:
    """.jars plus a stand-in for the DynamoDB LogStore jar: `bin/fetch-jars --cluster` needs Maven
    Central, these offline tests check where the jar goes, not its bytecode."""
    folder = tmp_path_factory.mktemp("jars")
    for jar in (ROOT / ".jars").glob("*.jar"):
        (folder / jar.name).symlink_to(jar.resolve())
    stub = folder / jar_file_name(DELTA_LOG_STORE_COORDINATES[0])
    if not stub.exists():
        with zipfile.ZipFile(stub, "w") as zf:
            zf.writestr("META-INF/MANIFEST.MF", "Manifest-Version: 1.0\n")
    return folder


@pytest.fixture(scope="module")
def built(tmp_path_factory, jars_dir):
    out = tmp_path_factory.mktemp("dist")
    started = time.time()
    manifest = build(out, profile="light", jars_dir=jars_dir)
    env = manifest["artifacts"]["env_archive"]
    print(
        f"\nlight package: {time.time() - started:.1f}s (steps {manifest['build_seconds']}, env {env['timings']}); "
        f"env archive {env['bytes'] / 1e6:.1f} MB, python {env['python']}, newest glibc {env['portability']['max_glibc']}"
        f" (portable to AL2023: {env['portability']['portable']})"
    )
    return out, manifest


# --------------------------------------------------------------------------------------------
# Artifacts
# --------------------------------------------------------------------------------------------
def test_every_job_gets_an_entry_script(built):
    out, manifest = built
    # other jobs may appear while the suite runs; none may be missed or invented
    assert manifest["jobs"] and set(manifest["jobs"]) <= set(discover_jobs())
    assert "__init__" not in manifest["jobs"]
    for job, entry in manifest["artifacts"]["entrypoints"].items():
        source = (out / entry["path"]).read_text()
        compile(source, entry["path"], "exec")
        assert f'run("{job}")' in source
        assert entry["key"] == f"entrypoints/{job}.py"
    assert json.loads((out / "entrypoints.auto.tfvars.json").read_text()) == {"job_names": manifest["jobs"]}


def test_code_zip_carries_code_and_conf_and_is_deterministic(built, tmp_path):
    out, manifest = built
    path = out / manifest["artifacts"]["code_zip"]["path"]
    names = zipfile.ZipFile(path).namelist()
    for required in ("common/__init__.py", "common/core/config.py", "common/io/cluster_entry.py", "conf/base.yaml", "conf/emr.yaml", "conf/glue.yaml"):
        assert required in names
    assert all(f"jobs/{j}.py" in names for j in manifest["jobs"])
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    if source_digest() == manifest["source_sha256"]:  # else someone edited the tree meanwhile
        again = build_code_zip(tmp_path)
        assert sha256_file(again) == sha256_file(path)


def test_pyspark_and_delta_jars_are_never_shipped(built):
    out, manifest = built
    art = manifest["artifacts"]
    shipped_jars = sorted(Path(j["path"]).name for j in art["jars"])
    assert shipped_jars == sorted(jar_file_name(c) for c in SEDONA_COORDINATES)
    assert not any(jar_file_name(c) in shipped_jars for c in DELTA_COORDINATES)
    # the only Delta jar shipped is the DynamoDB LogStore (Glue lacks it; EMR's own copy is used there)
    assert [p.name for p in out.rglob("*delta*.jar")] == [jar_file_name(DELTA_LOG_STORE_COORDINATES[0])]
    assert not list(out.rglob("pyspark*"))

    delta_zip = zipfile.ZipFile(out / art["delta_python"]["path"]).namelist()
    assert "delta/tables.py" in delta_zip and all(n.startswith("delta/") and n.endswith(".py") for n in delta_zip)

    for pins in (runtime_requirements("full"), glue_requirements(), art["env_archive"]["requirements"]):
        names = {p.split("==")[0] for p in pins}
        assert not names & PLATFORM_PROVIDED, names & PLATFORM_PROVIDED
    full = {p.split("==")[0] for p in runtime_requirements("full")}
    assert {"mlflow-skinny", "sagemaker-mlflow", "apache-sedona", "xgboost-cpu", "boto3", "pyyaml", "pydantic"} <= full
    glue = {line.split("==")[0] for line in (out / art["glue_requirements"]["path"]).read_text().splitlines() if not line.startswith("#")}
    assert not glue & {"pyspark", "py4j", "delta-spark", "boto3", "botocore"} and {"mlflow-skinny", "sagemaker-mlflow", "apache-sedona"} <= glue
    # the client only: none of the full MLflow's server stack goes to a cluster
    server_stack = {"mlflow", "flask", "gunicorn", "sqlalchemy", "alembic", "graphene", "docker", "huey"}
    assert not (full | glue) & server_stack, (full | glue) & server_stack

    with tarfile.open(out / art["env_archive"]["path"]) as tar:
        members = tar.getnames()
    assert "bin/python" in members and "pyvenv.cfg" not in members
    assert not [m for m in members if "/pyspark/" in m or m.startswith("lib/python3.11/site-packages/delta/")]


def test_env_archive_wheels_are_built_for_amazon_linux_2023(built):
    """Every wheel in the archive runs on AL2023: pure Python, or CPython 3.11 for manylinux with
    glibc <= 2.34 on the archive's architecture (read from the WHEEL files inside the archive)."""
    out, manifest = built
    env = manifest["artifacts"]["env_archive"]
    arch = env["arch"]
    tags = {}
    with tarfile.open(out / env["path"]) as tar:
        for member in tar.getmembers():
            if re.fullmatch(r"lib/python3\.11/site-packages/[^/]+\.dist-info/WHEEL", member.name):
                text = tar.extractfile(member).read().decode()
                tags[member.name.split("/")[3]] = [line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("Tag:")]
    assert len(tags) == len(env["requirements"]), (sorted(tags), env["requirements"])
    binary = {d: t for d, t in tags.items() if not all(tag.endswith("-none-any") for tag in t)}
    assert binary, "the light profile must hold a compiled wheel (pydantic-core, pyyaml) for this check to mean anything"
    for dist, dist_tags in tags.items():
        ok = []
        for tag in dist_tags:
            py, abi, plats = tag.split("-")  # a compressed tag set joins platforms with '.'
            glibcs = [re.fullmatch(rf"manylinux_2_(\d+)_{arch}|manylinux2014_{arch}", p) for p in plats.split(".")]
            on_al2023 = any(m and int(m.group(1) or 17) <= 34 for m in glibcs)
            pure = abi == "none" and plats == "any"
            # CPython 3.11's ABI, the stable ABI, or Python-only code with a bundled native library (xgboost)
            compiled = on_al2023 and ((py.startswith("cp3") and abi in {"cp311", "abi3"}) or (py == "py3" and abi == "none"))
            ok.append(bool(pure or compiled) and (abi != "cp311" or py == "cp311"))
        assert any(ok), (dist, dist_tags)
    assert set(env["platform_tags"]) == {t for ts in tags.values() for t in ts}


def test_wheel_install_targets_al2023_on_both_architectures(tmp_path):
    from deploy.package import TARGET_ARCHES, build_env_archive, host_arch, platform_tags, wheel_install_command

    for arch in TARGET_ARCHES:
        tags = platform_tags(arch)
        assert tags[0] == f"manylinux_2_34_{arch}" and f"manylinux2014_{arch}" in tags and not any("2_35" in t for t in tags)
        cmd = wheel_install_command(tmp_path, tmp_path / "r.txt", arch)
        given = [cmd[i + 1] for i, word in enumerate(cmd) if word == "--platform"]
        assert given == tags and cmd[cmd.index("--python-version") + 1] == "3.11" and "--only-binary=:all:" in cmd
    other = next(a for a in TARGET_ARCHES if a != host_arch())
    with pytest.raises(RuntimeError, match=f"built on an {other} host"):
        build_env_archive(tmp_path, [], "light", arch=other)


def test_env_archive_runs_the_config_loader_from_the_code_zip_when_relocated(built, tmp_path):
    """What EMR does: unpack the archive as ./environment somewhere, put the code zip on the
    path, start the job bootstrap. Only the light profile's packages are there, which is all
    the config loader needs."""
    out, manifest = built
    art = manifest["artifacts"]
    env_dir = tmp_path / "container_0001" / "environment"
    env_dir.mkdir(parents=True)
    subprocess.run(["tar", "-xzf", str(out / art["env_archive"]["path"]), "-C", str(env_dir)], check=True)
    code = (
        "from common.io import cluster_entry as deploy_runtime\n"
        "conf = deploy_runtime.ensure_conf_dir()\n"
        "from common.core.config import load_config, CONF_DIR\n"
        "cfg = load_config('emr')\n"
        "import sys, json\n"
        "print(json.dumps({'conf': str(CONF_DIR), 'root': cfg.storage.root, 'table': cfg.storage.path('gold.kpis'),"
        " 'mlflow': cfg.mlflow.tracking_uri, 'prefix': sys.prefix}))\n"
    )
    env = {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": f"{out / art['code_zip']['path']}:{out / art['delta_python']['path']}",
        "EVFA_LAKEHOUSE_BUCKET": "lake-bucket",
        "EVFA_ARTIFACTS_BUCKET": "art-bucket",
        **ENVIRON,
    }
    res = subprocess.run([str(env_dir / "bin" / "python"), "-c", code], capture_output=True, text=True, env=env, cwd=env_dir.parent)
    assert res.returncode == 0, res.stderr
    info = json.loads(res.stdout.strip().splitlines()[-1])
    assert info["prefix"] == str(env_dir)
    assert info["root"] == "s3://lake-bucket/lakehouse" and info["table"] == "s3://lake-bucket/lakehouse/gold/kpis"
    assert info["mlflow"] == ENVIRON["MLFLOW_TRACKING_URI"] and "evfa-conf-" in info["conf"]


# --------------------------------------------------------------------------------------------
# Rendered commands
# --------------------------------------------------------------------------------------------
def _params(ssp: str) -> tuple[dict[str, str], dict[str, list[str]]]:
    words = ssp.split(" ")
    conf, lists = {}, {}
    for flag, value in zip(words[::2], words[1::2]):
        if flag == "--conf":
            key, _, val = value.partition("=")
            conf[key] = val
        else:
            lists[flag] = value.split(",")
    return conf, lists


def test_emr_serverless_command_references_only_built_artifacts(built):
    out, manifest = built
    outputs = fake_outputs(manifest["jobs"])
    art, bucket = manifest["artifacts"], outputs["artifacts_bucket"]
    for job in jobs_to_render(manifest):
        rendered = render_emr_serverless(manifest, outputs, job, ["--conf", "generator.vehicles=100"], ENVIRON, allow_nonportable_env=True)
        assert check_references(rendered, manifest, outputs, out) == []
        argv = rendered.argv
        assert argv[:3] == ["aws", "emr-serverless", "start-job-run"]
        driver = json.loads(argv[argv.index("--job-driver") + 1])["sparkSubmit"]
        assert driver["entryPoint"] == f"s3://{bucket}/entrypoints/{job}.py"
        assert driver["entryPointArguments"] == ["--env", "emr", "--conf", "generator.vehicles=100"]
        conf, lists = _params(driver["sparkSubmitParameters"])

        # every Spark setting of the cluster config travels with --conf, unchanged
        cfg = cluster_config("emr", cluster_env(outputs), ["generator.vehicles=100"])
        for key, value in spark_conf(cfg).items():
            assert conf[key] == value or key == "spark.app.name", key
        assert conf["spark.archives"] == f"s3://{bucket}/{art['env_archive']['key']}#environment"
        assert conf["spark.emr-serverless.driverEnv.PYSPARK_PYTHON"] == "./environment/bin/python"
        assert conf["spark.executorEnv.PYSPARK_PYTHON"] == "./environment/bin/python"
        assert conf["spark.emr-serverless.driverEnv.EVFA_LAKEHOUSE_BUCKET"] == outputs["lakehouse_bucket"]
        assert conf["spark.emr-serverless.driverEnv.MLFLOW_TRACKING_URI"] == ENVIRON["MLFLOW_TRACKING_URI"]
        assert lists["--py-files"] == [f"s3://{bucket}/{art['code_zip']['key']}", f"s3://{bucket}/{art['delta_python']['key']}"]
        assert lists["--jars"][: len(EMR_DELTA_JARS)] == list(EMR_DELTA_JARS)  # Delta from EMR itself, not shipped
        assert lists["--jars"][len(EMR_DELTA_JARS) :] == [f"s3://{bucket}/{j['key']}" for j in art["jars"]]

        # every s3:// object of the artifacts bucket in the command is a built file
        for uri in rendered.artifact_uris:
            key = uri.split("#")[0][len(f"s3://{bucket}/") :]
            local = next(a for a in [*art["entrypoints"].values(), art["env_archive"], art["code_zip"], art["delta_python"], *art["jars"]] if a["key"] == key)
            assert (out / local["path"]).stat().st_size == local["bytes"]
        overrides = json.loads(argv[argv.index("--configuration-overrides") + 1])["monitoringConfiguration"]
        assert overrides["cloudWatchLoggingConfiguration"]["logGroupName"] == outputs["emr_serverless_log_group"]
        assert overrides["s3MonitoringConfiguration"]["logUri"].startswith(f"s3://{outputs['logs_bucket']}/")
        print(f"\nEMR Serverless ({job}): {len(rendered.shell())} chars, {len(conf)} --conf, {len(rendered.artifact_uris)} artifacts")


def test_emr_serverless_packages_mode_passes_sedona_coordinates_only(built):
    out, manifest = built
    outputs = fake_outputs(manifest["jobs"])
    job = jobs_to_render(manifest)[0]
    rendered = render_emr_serverless(manifest, outputs, job, [], ENVIRON, use_packages=True, allow_nonportable_env=True)
    assert check_references(rendered, manifest, outputs, out) == []
    _, lists = _params(json.loads(rendered.argv[rendered.argv.index("--job-driver") + 1])["sparkSubmit"]["sparkSubmitParameters"])
    assert lists["--packages"] == list(SEDONA_COORDINATES)
    assert lists["--jars"] == list(EMR_DELTA_JARS)


def test_glue_command_references_only_built_artifacts(built):
    out, manifest = built
    outputs = fake_outputs(manifest["jobs"])
    art, bucket = manifest["artifacts"], outputs["artifacts_bucket"]
    for job in jobs_to_render(manifest):
        rendered = render_glue(manifest, outputs, job, ["--conf", "generator.days=3"], ENVIRON)
        assert check_references(rendered, manifest, outputs, out) == []
        argv = rendered.argv
        assert argv[:3] == ["aws", "glue", "start-job-run"] and argv[argv.index("--job-name") + 1] == f"evfa-{job}"
        args = json.loads(argv[argv.index("--arguments") + 1])
        assert shlex.split(args["--job-args"]) == ["--env", "glue", "--conf", "generator.days=3"]
        assert args["--extra-py-files"].split(",") == [f"s3://{bucket}/{art['code_zip']['key']}", f"s3://{bucket}/{art['delta_python']['key']}"]
        shipped = [*art["jars"], art["delta_log_store_jar"]]  # Glue has no DynamoDB LogStore of its own
        assert args["--extra-jars"].split(",") == [f"s3://{bucket}/{j['key']}" for j in shipped]
        assert args["--additional-python-modules"] == f"s3://{bucket}/{art['glue_requirements']['key']}"
        assert args["--python-modules-installer-option"] == "-r"
        env = deploy_runtime.parse_env_assignments(args["--evfa-env"])
        assert env == cluster_env(outputs)
        conf = dict(item.split("=", 1) for item in args["--conf"].split(" --conf "))
        with_env = {**env}
        cfg = cluster_config("glue", with_env, ["generator.days=3"])
        for key, value in spark_conf(cfg).items():
            assert conf[key] == value or key == "spark.app.name", key
        assert "spark.archives" not in conf  # Glue brings its own Python 3.11
        # the bootstrap on Glue turns these arguments back into the job's argv
        glue_argv = ["--JOB_ID", "j_1", "--JOB_RUN_ID", "jr_1", "--TempDir", "s3://x/tmp/"]
        for key, value in args.items():
            glue_argv += [key, value]
        job_args, env_vars = deploy_runtime.job_argv(glue_argv)
        assert job_args == ["--env", "glue", "--conf", "generator.days=3"] and env_vars == env


def test_emr_on_ec2_step_references_only_built_artifacts(built):
    out, manifest = built
    outputs = fake_outputs(manifest["jobs"])
    job = jobs_to_render(manifest)[0]
    rendered = render_emr_ec2(manifest, outputs, job, [], ENVIRON, allow_nonportable_env=True)
    assert check_references(rendered, manifest, outputs, out) == []
    step = json.loads(rendered.argv[rendered.argv.index("--steps") + 1])[0]
    assert step["Jar"] == "command-runner.jar" and step["Args"][:3] == ["spark-submit", "--deploy-mode", "cluster"]
    assert "spark.yarn.appMasterEnv.PYSPARK_PYTHON=./environment/bin/python" in step["Args"]


@pytest.mark.parametrize("target", ["emr-serverless", "glue", "emr-ec2"])
def test_s3_commits_go_through_the_dynamodb_log_store(built, target):
    """On S3 every cluster run commits through Delta's S3DynamoDBLogStore, on the table terraform
    created (its name comes from the outputs), with the jar on the classpath: EMR's own copy,
    Glue's shipped with --extra-jars. Without it two drivers can both commit one table version."""
    out, manifest = built
    outputs = fake_outputs(manifest["jobs"])
    job = jobs_to_render(manifest)[0]
    renderer = {"emr-serverless": render_emr_serverless, "glue": render_glue, "emr-ec2": render_emr_ec2}[target]
    kwargs = {} if target == "glue" else {"allow_nonportable_env": True}
    rendered = renderer(manifest, outputs, job, [], ENVIRON, **kwargs)
    assert check_references(rendered, manifest, outputs, out) == []
    conf = rendered.spark_conf
    assert conf["spark.delta.logStore.s3.impl"] == conf["spark.delta.logStore.s3a.impl"] == DELTA_LOG_STORE_CLASS
    assert conf["spark.io.delta.storage.S3DynamoDBLogStore.ddb.tableName"] == outputs["delta_log_table_name"]
    assert conf["spark.io.delta.storage.S3DynamoDBLogStore.ddb.region"] == outputs["region"]
    text = rendered.shell()
    if target == "glue":
        assert f"s3://{outputs['artifacts_bucket']}/{manifest['artifacts']['delta_log_store_jar']['key']}" in text
        without = json.loads(json.dumps(manifest))
        without["artifacts"]["delta_log_store_jar"] = None
        with pytest.raises(SubmitError, match="fetch-jars --cluster"):
            render_glue(without, outputs, job, [], ENVIRON)
    else:
        assert "/usr/share/aws/delta/lib/delta-storage-s3-dynamodb.jar" in text


def test_reference_check_catches_missing_and_foreign_artifacts(built, tmp_path):
    out, manifest = built
    outputs = fake_outputs(manifest["jobs"])
    job = jobs_to_render(manifest)[0]
    rendered = render_glue(manifest, outputs, job, [], ENVIRON)
    empty = tmp_path / "empty-dist"
    empty.mkdir()
    problems = check_references(rendered, manifest, outputs, empty)
    assert len(problems) == len(rendered.artifact_uris) and all("missing" in p for p in problems)
    rendered.argv.append(f"s3://{outputs['artifacts_bucket']}/jars/delta-spark_2.12-3.3.2.jar")
    rendered.packages.append("io.delta:delta-spark_2.12:3.3.2")
    problems = check_references(rendered, manifest, outputs, out)
    assert any("not an artifact" in p for p in problems) and any("Delta is provided" in p for p in problems)


def test_submit_guards(built):
    out, manifest = built
    outputs = fake_outputs(manifest["jobs"])
    job = jobs_to_render(manifest)[0]
    with pytest.raises(SubmitError, match="MLFLOW_TRACKING_URI"):
        render_glue(manifest, outputs, job, [], {})
    with pytest.raises(SubmitError, match="credentials"):
        render_glue(manifest, outputs, job, [], {"MLFLOW_TRACKING_URI": "https://user:secret@mlflow.example.com"})
    for local in ("sqlite:///mlflow.db", "SQLITE:///m.db", "FILE:///x", "./mlruns", "mlruns", "postgresql://db/mlflow", "s3://bucket/mlflow"):
        with pytest.raises(SubmitError, match="not a tracking server the cluster can use"):
            config_environment(outputs, {"MLFLOW_TRACKING_URI": local})
    for remote in ("https://mlflow.example.com", "HTTP://mlflow:5000", "databricks", "databricks-uc", "databricks://profile"):
        assert config_environment(outputs, {"MLFLOW_TRACKING_URI": remote})["MLFLOW_TRACKING_URI"] == remote
    graviton = json.loads(json.dumps(manifest))
    graviton["artifacts"]["env_archive"]["arch"] = "aarch64"
    with pytest.raises(SubmitError, match="built for aarch64, the compute runs x86_64"):
        render_emr_serverless(graviton, outputs, job, [], ENVIRON, allow_nonportable_env=True)
    # terraform's SageMaker tracking server when no URI is given; an explicit one wins
    server = "arn:aws:sagemaker:eu-west-1:123456789012:mlflow-tracking-server/evfa-mlflow"
    assert config_environment({**outputs, "mlflow_tracking_uri": server}, {})["MLFLOW_TRACKING_URI"] == server
    assert config_environment({**outputs, "mlflow_tracking_uri": server}, ENVIRON)["MLFLOW_TRACKING_URI"] == ENVIRON["MLFLOW_TRACKING_URI"]
    with pytest.raises(SubmitError, match="no entry point"):
        render_emr_serverless(manifest, outputs, "no_such_job", [], ENVIRON, allow_nonportable_env=True)
    with pytest.raises(SubmitError, match="terraform outputs missing"):
        render_emr_serverless(manifest, {**outputs, "emr_serverless_application_id": None}, job, [], ENVIRON, allow_nonportable_env=True)
    nonportable = json.loads(json.dumps(manifest))
    nonportable["artifacts"]["env_archive"]["portability"]["portable"] = False
    with pytest.raises(SubmitError, match="glibc"):
        render_emr_serverless(nonportable, outputs, job, [], ENVIRON)


def test_dry_run_prints_uploads_and_command(built, tmp_path, capsys, monkeypatch):
    out, manifest = built
    outputs_file = tmp_path / "terraform-outputs.json"
    outputs_file.write_text(json.dumps({k: {"value": v, "type": "string", "sensitive": False} for k, v in fake_outputs(manifest["jobs"]).items()}))
    job = jobs_to_render(manifest)[0]
    monkeypatch.setenv("MLFLOW_TRACKING_URI", ENVIRON["MLFLOW_TRACKING_URI"])
    rc = main(["emr-serverless", "--job", job, "--dist", str(out), "--outputs", str(outputs_file), "--dry-run",
               "--allow-nonportable-env", "--allow-stale", "--args", "--conf generator.vehicles=50"])  # fmt: skip
    printed = capsys.readouterr().out
    assert rc == 0, printed
    assert printed.count("aws s3 cp ") == 6  # entry script, env archive, code zip, delta zip, 2 Sedona jars (EMR has the LogStore jar)
    assert "aws emr-serverless start-job-run" in printed and "generator.vehicles=50" in printed


# --------------------------------------------------------------------------------------------
# Cluster configs: S3 locations, remote MLflow, no local paths
# --------------------------------------------------------------------------------------------
def _leaves(obj, path=""):
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _leaves(v, f"{path}.{k}" if path else str(k))
    elif isinstance(obj, list | tuple):
        for i, v in enumerate(obj):
            yield from _leaves(v, f"{path}[{i}]")
    else:
        yield path, obj


def _is_timezone(value: str) -> bool:
    from zoneinfo import ZoneInfo

    try:
        ZoneInfo(value)
        return True
    except Exception:  # noqa: BLE001 - anything that is not a zone name
        return False


@pytest.mark.parametrize("env_name", ["emr", "glue"])
def test_cluster_conf_has_no_local_paths(env_name):
    env = {"EVFA_LAKEHOUSE_BUCKET": "lake-bucket", "EVFA_ARTIFACTS_BUCKET": "art-bucket", "EVFA_DELTA_LOG_TABLE": "t",
           "EVFA_AWS_REGION": "eu-west-1", **ENVIRON}  # fmt: skip
    cfg = cluster_config(env_name, env)
    assert cfg.spark.master is None and cfg.spark.jars_dir is None and cfg.spark.driver_memory is None
    assert cfg.mlflow.tracking_uri == ENVIRON["MLFLOW_TRACKING_URI"]
    assert cfg.mlflow.artifact_location == "s3://art-bucket/mlflow"
    assert cfg.storage.root.startswith("s3://lake-bucket/") and cfg.storage.restricted_root.startswith("s3://lake-bucket/")
    for table in ("bronze.telematics", "silver.telematics_clean", "gold.kpis", "restricted.residences", "truth.vehicles"):
        assert cfg.storage.path(table).startswith("s3://lake-bucket/"), table
    leaks = []
    for key, value in _leaves(cfg.model_dump(mode="json")):
        if not isinstance(value, str) or "/" not in value or " " in value or _is_timezone(value):
            continue
        scheme = value.split("://", 1)[0] if "://" in value else None
        if scheme is not None:
            if scheme not in ("s3", "https", "http", "databricks"):
                leaks.append(f"{key}={value}")
        elif value.startswith(("/", "~", ".")) or not value.startswith("conf/"):
            leaks.append(f"{key}={value}")  # relative paths are only allowed into the shipped conf/
    assert leaks == [], f"local paths in conf/{env_name}.yaml (+ base.yaml): {leaks}"
    text = (ROOT / "conf" / f"{env_name}.yaml").read_text()
    assert "sqlite" not in text and "/work" not in text and ".jars" not in text


def test_glue_conf_requires_bucket_variables(monkeypatch):
    names = ("EVFA_LAKEHOUSE_BUCKET", "EVFA_ARTIFACTS_BUCKET", "EVFA_DELTA_LOG_TABLE", "EVFA_AWS_REGION", "MLFLOW_TRACKING_URI")
    for key in names:
        monkeypatch.delenv(key, raising=False)
    with pytest.raises(ConfigError, match="|".join(names)):
        load_config("glue")


# --------------------------------------------------------------------------------------------
# Cluster-side bootstrap
# --------------------------------------------------------------------------------------------
def test_runtime_maps_glue_arguments_and_calls_the_job(monkeypatch):
    calls = []
    fake = types.ModuleType("jobs._deploy_fake")
    fake.main = lambda argv=None: calls.append(argv) or None
    monkeypatch.setitem(sys.modules, "jobs._deploy_fake", fake)
    monkeypatch.setenv("EVFA_CONF_DIR", str(ROOT / "conf"))
    monkeypatch.setenv("EVFA_TEST_VAR", "0")  # registers the variable for restoration at teardown
    argv = ["--JOB_ID", "j_1", "--job-bookmark-option", "job-bookmark-disable", "--job-args", "--env glue --conf 'a.b=x y'",
            "--evfa-env", "EVFA_TEST_VAR=1"]  # fmt: skip
    assert deploy_runtime.run("_deploy_fake", argv) == 0
    assert calls == [["--env", "glue", "--conf", "a.b=x y"]] and os.environ["EVFA_TEST_VAR"] == "1"
    # EMR passes the job's arguments as they are
    assert deploy_runtime.run("_deploy_fake", ["--env", "emr"]) == 0 and calls[-1] == ["--env", "emr"]
    with pytest.raises(ValueError):
        deploy_runtime.parse_env_assignments("NOT AN ASSIGNMENT")


def test_runtime_extracts_conf_from_the_code_zip(built, monkeypatch):
    out, manifest = built
    monkeypatch.setenv("EVFA_CONF_DIR", "")  # unset for ensure_conf_dir, restored at teardown
    monkeypatch.setattr(sys, "path", [str(out / manifest["artifacts"]["code_zip"]["path"]), *sys.path])
    conf_dir = deploy_runtime.ensure_conf_dir()
    assert (conf_dir / "base.yaml").is_file() and (conf_dir / "glue.yaml").is_file()
    assert os.environ["EVFA_CONF_DIR"] == str(conf_dir)


def test_prune_test_suites_keeps_testing_helpers(tmp_path):
    from deploy.package import prune_test_suites

    site = tmp_path / "site-packages"
    for rel in ("pandas/tests/frame/test_x.py", "scipy/linalg/tests/data.npz", "numpy/testing/__init__.py", "pandas/_testing/__init__.py", "pandas/core/frame.py", "tests/__init__.py"):
        (site / rel).parent.mkdir(parents=True, exist_ok=True)
        (site / rel).write_bytes(b"x" * 10)
    assert prune_test_suites(site) == 20
    left = sorted(str(p.relative_to(site)) for p in site.rglob("*.py"))
    # a top-level 'tests' is somebody's package, not a bundled suite: kept
    assert left == ["numpy/testing/__init__.py", "pandas/_testing/__init__.py", "pandas/core/frame.py", "tests/__init__.py"]

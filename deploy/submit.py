"""Upload the packaged artifacts and start a job on EMR Serverless, Glue 5 or EMR on EC2.

    make submit-emr  JOB=pipeline ARGS="--conf generator.vehicles=500"
    make submit-glue JOB=pipeline
    .venv/bin/python -m deploy.submit emr-serverless --job pipeline --dry-run

Inputs: dist/manifest.json (from `make package`), the terraform outputs of terraform/example
(`terraform output -json`, saved to dist/terraform-outputs.json or read live) and the config
of the target environment (conf/emr.yaml or conf/glue.yaml): the Spark settings passed with
--conf are exactly `common.io.spark.spark_conf(cfg)`, the ones the local SparkSession uses, plus
what the platform needs (Python environment, code, jars, config environment variables).

Reads no table and writes none; it runs `aws s3 cp` and `aws emr-serverless|glue|emr ...`.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from common.core.config import Config, load_config
from common.core.versions import DELTA_LOG_STORE_CLASS
from common.io.spark import spark_conf
from deploy.package import DIST_DIR, PROJECT_ROOT, source_digest

TERRAFORM_DIR = PROJECT_ROOT / "terraform" / "example"
TF_OUTPUTS_FILE = DIST_DIR / "terraform-outputs.json"

# Terraform outputs each target reads (a test checks terraform/example/outputs.tf declares them).
REQUIRED_TF_OUTPUTS: dict[str, tuple[str, ...]] = {
    "emr-serverless": (
        "region",
        "lakehouse_bucket",
        "artifacts_bucket",
        "delta_log_table_name",
        "logs_bucket",
        "kms_key_arn",
        "execution_role_arn",
        "emr_serverless_application_id",
        "emr_serverless_log_group",
    ),
    "glue": ("region", "lakehouse_bucket", "artifacts_bucket", "delta_log_table_name", "glue_job_names", "glue_log_group"),
    "emr-ec2": ("region", "lakehouse_bucket", "artifacts_bucket", "delta_log_table_name", "emr_cluster_id"),
}
CONF_ENV = {"emr-serverless": "emr", "glue": "glue", "emr-ec2": "emr"}

# Delta 3.3.2 as shipped by EMR 7.x, with its DynamoDB LogStore for S3: referenced on the cluster,
# never uploaded.
EMR_DELTA_JARS = (
    "/usr/share/aws/delta/lib/delta-spark.jar",
    "/usr/share/aws/delta/lib/delta-storage.jar",
    "/usr/share/aws/delta/lib/delta-storage-s3-dynamodb.jar",
)
# The one Delta jar the package may ship: the DynamoDB LogStore, which Glue does not provide.
DELTA_LOG_STORE_JAR_PREFIX = "delta-storage-s3-dynamodb-"
ENV_PYTHON = "./environment/bin/python"
# Logs-bucket prefix of EMR Serverless monitoring logs (terraform execution_role: logs_writable_prefixes).
EMR_SERVERLESS_LOG_PREFIX = "emr-serverless/"
_USERINFO = re.compile(r"://[^/@]+@")
_S3_URI = re.compile(r"s3://[A-Za-z0-9.\-]+/[^\s,\"'#]*")


class SubmitError(RuntimeError):
    """A problem the user can fix before anything is submitted; the message says how."""


# --------------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------------
def load_tf_outputs(path: Path | None = TF_OUTPUTS_FILE, tf_dir: Path = TERRAFORM_DIR) -> dict:
    """`terraform output -json` as {name: value}, from a saved file or the live state."""
    if path is not None and path.exists():
        raw = json.loads(path.read_text())
    else:
        if shutil.which("terraform") is None:
            raise SubmitError(f"no {path} and no terraform on PATH: save `terraform output -json` to {path}")
        res = subprocess.run(["terraform", f"-chdir={tf_dir}", "output", "-json"], capture_output=True, text=True)
        if res.returncode != 0:
            raise SubmitError(f"terraform output failed in {tf_dir}: {res.stderr.strip()}")
        raw = json.loads(res.stdout)
    return {k: v["value"] if isinstance(v, dict) and "value" in v else v for k, v in raw.items()}


def require_outputs(outputs: Mapping, target: str) -> None:
    missing = [k for k in REQUIRED_TF_OUTPUTS[target] if outputs.get(k) in (None, "")]
    if missing:
        raise SubmitError(f"terraform outputs missing for {target}: {', '.join(missing)} (terraform apply, then save the outputs)")


def load_manifest(dist: Path = DIST_DIR, allow_stale: bool = False) -> dict:
    path = dist / "manifest.json"
    if not path.exists():
        raise SubmitError(f"{path} not found: run `make package` first")
    manifest = json.loads(path.read_text())
    if not allow_stale and manifest.get("source_sha256") != source_digest():
        raise SubmitError("common/, jobs/ or conf/ changed since `make package`: run it again (or pass --allow-stale)")
    return manifest


# Tracking URIs a cluster job can log to with mlflow-skinny (+ sagemaker-mlflow): servers only.
_REMOTE_TRACKING = re.compile(r"^(https?://|databricks(-uc)?(://|$)|arn:aws[a-z-]*:sagemaker:)", re.IGNORECASE)


def _remote_tracking(uri: str) -> bool:
    return bool(_REMOTE_TRACKING.match(uri))


def config_environment(outputs: Mapping, environ: Mapping[str, str]) -> dict[str, str]:
    """Environment variables conf/emr.yaml and conf/glue.yaml expand on the driver."""
    # An explicit MLFLOW_TRACKING_URI wins; else terraform's SageMaker tracking server (its ARN).
    uri = environ.get("MLFLOW_TRACKING_URI") or str(outputs.get("mlflow_tracking_uri") or "")
    if not uri:
        raise SubmitError("no MLflow tracking server: set MLFLOW_TRACKING_URI to the one the jobs log to, or apply terraform with enable_mlflow_tracking_server = true")
    if not _remote_tracking(uri):
        raise SubmitError(
            f"MLFLOW_TRACKING_URI={uri!r} is not a tracking server the cluster can use: http(s)://..., databricks, or a SageMaker tracking server ARN "
            "(a sqlite/file store lives and dies with one container, and a database URI needs SQLAlchemy, which the cluster's mlflow-skinny leaves out)"
        )
    if _USERINFO.search(uri):
        raise SubmitError("MLFLOW_TRACKING_URI carries credentials; they would be stored with the job run. "
                          "Use a server that authenticates the job's IAM role or a network boundary instead.")  # fmt: skip
    env = {
        "EVFA_LAKEHOUSE_BUCKET": str(outputs["lakehouse_bucket"]),
        "EVFA_ARTIFACTS_BUCKET": str(outputs["artifacts_bucket"]),
        "EVFA_DELTA_LOG_TABLE": str(outputs["delta_log_table_name"]),
        "EVFA_AWS_REGION": str(outputs["region"]),
        "MLFLOW_TRACKING_URI": uri,
    }
    for key, value in env.items():
        if any(c.isspace() for c in value) or "," in value:
            raise SubmitError(f"{key}={value!r}: spaces and commas cannot be passed through spark-submit/Glue arguments")
    return env


@contextmanager
def patched_environ(values: Mapping[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, old in saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old


def split_job_args(job_args: Sequence[str], default_env: str) -> tuple[str, list[str], list[str]]:
    """(conf env, --conf overrides, remaining args) from the job's CLI arguments."""
    env, overrides, rest = default_env, [], []
    it = iter(job_args)
    for arg in it:
        if arg == "--env":
            env = next(it, default_env)
        elif arg.startswith("--env="):
            env = arg.split("=", 1)[1]
        elif arg == "--conf":
            overrides.append(next(it, ""))
        elif arg.startswith("--conf="):
            overrides.append(arg.split("=", 1)[1])
        else:
            rest.append(arg)
    return env, overrides, rest


def cluster_config(env_name: str, env_vars: Mapping[str, str], overrides: Sequence[str] = ()) -> Config:
    with patched_environ(env_vars):
        return load_config(env_name, list(overrides))


def _no_space(key: str, value: str) -> str:
    if any(c.isspace() for c in f"{key}{value}"):
        raise SubmitError(f"spark setting {key}={value!r} contains whitespace; spark-submit parameters cannot carry it")
    return f"{key}={value}"


# --------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------
@dataclass
class Rendered:
    target: str
    job: str
    argv: list[str]
    spark_conf: dict[str, str]
    artifact_uris: list[str] = field(default_factory=list)  # s3 objects that must be uploaded
    platform_paths: list[str] = field(default_factory=list)  # files the platform provides (Delta jars)
    packages: list[str] = field(default_factory=list)  # Maven coordinates resolved at start-up
    followup: list[str] = field(default_factory=list)  # commands to watch the run

    def shell(self) -> str:
        return shlex.join(self.argv)


def _s3(bucket: str, key: str) -> str:
    return f"s3://{bucket}/{key}"


def uses_dynamodb_log_store(conf: Mapping[str, str]) -> bool:
    """Whether the Spark settings route Delta commits on S3 through the DynamoDB LogStore."""
    return conf.get("spark.delta.logStore.s3.impl") == DELTA_LOG_STORE_CLASS


def _glue_log_store_jars(art: dict, conf: Mapping[str, str], bucket: str) -> list[str]:
    """The LogStore jar Glue needs when the conf uses it (EMR provides it, Glue does not)."""
    if not uses_dynamodb_log_store(conf):
        return []
    jar = art.get("delta_log_store_jar")
    if not jar:
        raise SubmitError(
            "the Glue conf uses Delta's DynamoDB LogStore but the package has no delta-storage-s3-dynamodb jar: run `bin/fetch-jars --cluster` (needs Maven Central) and `make package` again"
        )
    return [_s3(bucket, jar["key"])]


def _common(manifest: dict, outputs: Mapping, job: str) -> tuple[dict, str]:
    art = manifest["artifacts"]
    if job not in art["entrypoints"]:
        raise SubmitError(f"no entry point for job {job!r}; packaged: {', '.join(sorted(art['entrypoints']))}")
    return art, str(outputs["artifacts_bucket"])


# EMR Serverless applications of terraform/modules/emr_serverless run on x86_64.
EMR_SERVERLESS_ARCH = "x86_64"


def _env_archive(art: dict, allow_nonportable: bool, arch: str = EMR_SERVERLESS_ARCH) -> dict:
    env = art.get("env_archive")
    if not env:
        raise SubmitError("the package has no environment archive: run `make package` without --skip-env")
    if env.get("arch", "x86_64") != arch:
        raise SubmitError(f"the environment archive is built for {env.get('arch')}, the compute runs {arch}: build it on an {arch} host (docs/DEPLOY.md)")
    if env["portability"]["portable"] is False and not allow_nonportable:
        raise SubmitError(
            "the environment archive needs glibc "
            f"{env['portability']['max_glibc']} but EMR 7 runs Amazon Linux 2023 (glibc {env['portability']['target_glibc']}); "
            "build it on a matching host (docs/DEPLOY.md) or pass --allow-nonportable-env"
        )
    return env


def render_emr_serverless(
    manifest: dict,
    outputs: Mapping,
    job: str,
    job_args: Sequence[str] = (),
    environ: Mapping[str, str] = os.environ,
    use_packages: bool = False,
    allow_nonportable_env: bool = False,
    run_name: str | None = None,
) -> Rendered:
    """`aws emr-serverless start-job-run` for jobs/<job>.py."""
    require_outputs(outputs, "emr-serverless")
    art, bucket = _common(manifest, outputs, job)
    env_art = _env_archive(art, allow_nonportable_env)
    env_vars = config_environment(outputs, environ)
    conf_env, overrides, rest = split_job_args(job_args, CONF_ENV["emr-serverless"])
    cfg = cluster_config(conf_env, env_vars, overrides)

    conf = dict(spark_conf(cfg))
    conf["spark.app.name"] = f"{cfg.spark.app_name}-{job}"
    env_uri = _s3(bucket, env_art["key"])
    conf["spark.archives"] = f"{env_uri}#environment"
    conf["spark.emr-serverless.driverEnv.PYSPARK_DRIVER_PYTHON"] = ENV_PYTHON
    conf["spark.emr-serverless.driverEnv.PYSPARK_PYTHON"] = ENV_PYTHON
    conf["spark.executorEnv.PYSPARK_PYTHON"] = ENV_PYTHON
    for key, value in env_vars.items():
        conf[f"spark.emr-serverless.driverEnv.{key}"] = value

    py_files = [_s3(bucket, art["code_zip"]["key"]), _s3(bucket, art["delta_python"]["key"])]
    sedona_jars = [_s3(bucket, j["key"]) for j in art["jars"]]
    jars = list(EMR_DELTA_JARS) + ([] if use_packages else sedona_jars)
    packages = list(manifest["coordinates"]["sedona"]) if use_packages else []

    params: list[str] = []
    for key, value in conf.items():
        params += ["--conf", _no_space(key, value)]
    params += ["--py-files", ",".join(py_files), "--jars", ",".join(jars)]
    if packages:
        params += ["--packages", ",".join(packages)]
    entry = _s3(bucket, art["entrypoints"][job]["key"])
    job_driver = {
        "sparkSubmit": {
            "entryPoint": entry,
            "entryPointArguments": ["--env", conf_env, *sum((["--conf", o] for o in overrides), []), *rest],
            "sparkSubmitParameters": " ".join(params),
        }
    }
    kms = str(outputs["kms_key_arn"])
    overrides_json = {
        "monitoringConfiguration": {
            "s3MonitoringConfiguration": {"logUri": _s3(str(outputs["logs_bucket"]), EMR_SERVERLESS_LOG_PREFIX), "encryptionKeyArn": kms},
            "cloudWatchLoggingConfiguration": {
                "enabled": True,
                "logGroupName": str(outputs["emr_serverless_log_group"]),
                "logStreamNamePrefix": job,
                "encryptionKeyArn": kms,
            },
        }
    }
    name = run_name or f"evfa-{job}-{time.strftime('%Y%m%d-%H%M%S')}"
    app = str(outputs["emr_serverless_application_id"])
    argv = [
        "aws", "emr-serverless", "start-job-run",
        "--region", str(outputs["region"]),
        "--application-id", app,
        "--execution-role-arn", str(outputs["execution_role_arn"]),
        "--name", name,
        "--job-driver", json.dumps(job_driver),
        "--configuration-overrides", json.dumps(overrides_json),
        "--tags", f"project=ev-fleet-analytics,job={job},release={manifest['release']}",
    ]  # fmt: skip
    region = str(outputs["region"])
    return Rendered(
        target="emr-serverless",
        job=job,
        argv=argv,
        spark_conf=conf,
        artifact_uris=[entry, env_uri, *py_files, *([] if use_packages else sedona_jars)],
        platform_paths=list(EMR_DELTA_JARS),
        packages=packages,
        followup=[
            f"aws emr-serverless get-job-run --region {region} --application-id {app} --job-run-id <jobRunId>",
            f"aws logs tail {outputs['emr_serverless_log_group']} --region {region} --log-stream-name-prefix {job} --follow",
            f"aws s3 cp s3://{outputs['logs_bucket']}/{EMR_SERVERLESS_LOG_PREFIX}applications/{app}/jobs/<jobRunId>/SPARK_DRIVER/stdout.gz - | gunzip",
            f"aws emr-serverless get-dashboard-for-job-run --region {region} --application-id {app} --job-run-id <jobRunId>",
        ],
    )


def render_glue(
    manifest: dict,
    outputs: Mapping,
    job: str,
    job_args: Sequence[str] = (),
    environ: Mapping[str, str] = os.environ,
) -> Rendered:
    """`aws glue start-job-run` for the Glue job terraform created for jobs/<job>.py."""
    require_outputs(outputs, "glue")
    art, bucket = _common(manifest, outputs, job)
    glue_jobs = outputs["glue_job_names"] or {}
    if job not in glue_jobs:
        raise SubmitError(f"terraform created no Glue job for {job!r} ({sorted(glue_jobs)}): add it to job_names and apply")
    env_vars = config_environment(outputs, environ)
    conf_env, overrides, rest = split_job_args(job_args, CONF_ENV["glue"])
    cfg = cluster_config(conf_env, env_vars, overrides)
    conf = dict(spark_conf(cfg))
    conf["spark.app.name"] = f"{cfg.spark.app_name}-{job}"

    py_files = [_s3(bucket, art["code_zip"]["key"]), _s3(bucket, art["delta_python"]["key"])]
    jars = [_s3(bucket, j["key"]) for j in art["jars"]] + _glue_log_store_jars(art, conf, bucket)
    requirements = _s3(bucket, art["glue_requirements"]["key"])
    job_argv = ["--env", conf_env, *sum((["--conf", o] for o in overrides), []), *rest]
    arguments = {
        "--job-args": shlex.join(job_argv),
        "--evfa-env": ",".join(f"{k}={v}" for k, v in env_vars.items()),
        "--extra-py-files": ",".join(py_files),
        "--extra-jars": ",".join(jars),
        "--additional-python-modules": requirements,
        "--python-modules-installer-option": "-r",
        # Glue takes Spark settings as one --conf value chained with further " --conf ".
        "--conf": " --conf ".join(_no_space(k, v) for k, v in conf.items()),
    }
    region = str(outputs["region"])
    argv = [
        "aws", "glue", "start-job-run",
        "--region", region,
        "--job-name", str(glue_jobs[job]),
        "--arguments", json.dumps(arguments),
    ]  # fmt: skip
    entry = _s3(bucket, art["entrypoints"][job]["key"])  # the Glue job's script (terraform)
    return Rendered(
        target="glue",
        job=job,
        argv=argv,
        spark_conf=conf,
        artifact_uris=[entry, *py_files, *jars, requirements],
        followup=[
            f"aws glue get-job-run --region {region} --job-name {glue_jobs[job]} --run-id <JobRunId>",
            f"aws logs tail {outputs['glue_log_group']} --region {region} --log-stream-name-prefix <JobRunId> --follow",
        ],
    )


def render_emr_ec2(
    manifest: dict,
    outputs: Mapping,
    job: str,
    job_args: Sequence[str] = (),
    environ: Mapping[str, str] = os.environ,
    allow_nonportable_env: bool = False,
) -> Rendered:
    """`aws emr add-steps` (spark-submit in cluster mode on YARN) for the optional cluster."""
    require_outputs(outputs, "emr-ec2")
    art, bucket = _common(manifest, outputs, job)
    env_art = _env_archive(art, allow_nonportable_env)
    env_vars = config_environment(outputs, environ)
    conf_env, overrides, rest = split_job_args(job_args, CONF_ENV["emr-ec2"])
    cfg = cluster_config(conf_env, env_vars, overrides)
    conf = dict(spark_conf(cfg))
    conf["spark.app.name"] = f"{cfg.spark.app_name}-{job}"
    env_uri = _s3(bucket, env_art["key"])
    conf["spark.archives"] = f"{env_uri}#environment"
    conf["spark.yarn.appMasterEnv.PYSPARK_PYTHON"] = ENV_PYTHON
    conf["spark.executorEnv.PYSPARK_PYTHON"] = ENV_PYTHON
    for key, value in env_vars.items():
        conf[f"spark.yarn.appMasterEnv.{key}"] = value
    py_files = [_s3(bucket, art["code_zip"]["key"]), _s3(bucket, art["delta_python"]["key"])]
    sedona_jars = [_s3(bucket, j["key"]) for j in art["jars"]]
    entry = _s3(bucket, art["entrypoints"][job]["key"])
    args = ["spark-submit", "--deploy-mode", "cluster"]
    for key, value in conf.items():
        args += ["--conf", _no_space(key, value)]
    args += ["--py-files", ",".join(py_files), "--jars", ",".join([*EMR_DELTA_JARS, *sedona_jars]), entry]
    args += ["--env", conf_env, *sum((["--conf", o] for o in overrides), []), *rest]
    step = {"Type": "CUSTOM_JAR", "Name": f"evfa-{job}", "ActionOnFailure": "CONTINUE", "Jar": "command-runner.jar", "Args": args}
    region = str(outputs["region"])
    cluster = str(outputs["emr_cluster_id"])
    argv = ["aws", "emr", "add-steps", "--region", region, "--cluster-id", cluster, "--steps", json.dumps([step])]
    return Rendered(
        target="emr-ec2",
        job=job,
        argv=argv,
        spark_conf=conf,
        artifact_uris=[entry, env_uri, *py_files, *sedona_jars],
        platform_paths=list(EMR_DELTA_JARS),
        followup=[f"aws emr describe-step --region {region} --cluster-id {cluster} --step-id <StepId>"],
    )


RENDERERS = {"emr-serverless": render_emr_serverless, "glue": render_glue, "emr-ec2": render_emr_ec2}


# --------------------------------------------------------------------------------------------
# Consistency between a rendered command and the built artifacts
# --------------------------------------------------------------------------------------------
def artifact_index(manifest: dict) -> dict[str, dict]:
    """S3 key -> manifest entry for every uploadable artifact."""
    art = manifest["artifacts"]
    entries = [art["wheel"], art["code_zip"], art["delta_python"], art["glue_requirements"], *art["jars"],
               *art["entrypoints"].values()]  # fmt: skip
    if art.get("env_archive"):
        entries.append(art["env_archive"])
    if art.get("delta_log_store_jar"):
        entries.append(art["delta_log_store_jar"])
    return {e["key"]: e for e in entries}


def check_references(rendered: Rendered, manifest: dict, outputs: Mapping, dist: Path) -> list[str]:
    """Problems with the artifacts a command references: every s3:// URI of the artifacts bucket
    in the command must be a manifest entry whose file exists in `dist` with the recorded size;
    Maven coordinates must be the Sedona ones; no Delta artifact may be shipped except the
    DynamoDB LogStore jar (Glue does not provide it)."""
    problems = []
    index = artifact_index(manifest)
    prefix = f"s3://{outputs['artifacts_bucket']}/"
    uris = set(_S3_URI.findall(rendered.shell())) | set(rendered.artifact_uris)
    for uri in sorted(uris):
        if not uri.startswith(prefix):
            continue  # log destinations etc. in other buckets
        entry = index.get(uri[len(prefix) :])
        if entry is None:
            problems.append(f"{uri}: not an artifact of release {manifest['release']}")
            continue
        path = dist / entry["path"]
        if not path.is_file():
            problems.append(f"{uri}: {path} missing")
        elif path.stat().st_size != entry["bytes"]:
            problems.append(f"{uri}: {path} changed since packaging")
        if "delta" in path.name.lower() and path.suffix == ".jar" and not path.name.startswith(DELTA_LOG_STORE_JAR_PREFIX):
            problems.append(f"{uri}: Delta jars are provided by the platform and must not be shipped")
    for uri in rendered.artifact_uris:
        if uri not in uris:
            problems.append(f"{uri}: declared but not in the command")
    for coordinate in rendered.packages:
        if coordinate not in manifest["coordinates"]["sedona"]:
            problems.append(f"--packages {coordinate}: not a Sedona coordinate of common.core.versions")
        if coordinate.startswith("io.delta:"):
            problems.append(f"--packages {coordinate}: Delta is provided by the platform")
    return problems


# --------------------------------------------------------------------------------------------
# Upload and submit
# --------------------------------------------------------------------------------------------
def _aws(args: list[str], region: str, capture: bool = True) -> subprocess.CompletedProcess:
    if shutil.which("aws") is None:
        raise SubmitError("the AWS CLI is not on PATH")
    return subprocess.run(["aws", *args, "--region", region], capture_output=capture, text=True)


def upload(manifest: dict, outputs: Mapping, dist: Path, keys: Sequence[str], dry_run: bool = False) -> list[list[str]]:
    """`aws s3 cp` the artifacts behind `keys`, skipping objects already there with the same SHA-256."""
    bucket, region = str(outputs["artifacts_bucket"]), str(outputs["region"])
    index = artifact_index(manifest)
    commands = []
    for key in keys:
        entry = index[key]
        if not dry_run:
            head = _aws(["s3api", "head-object", "--bucket", bucket, "--key", key], region)
            if head.returncode == 0 and json.loads(head.stdout).get("Metadata", {}).get("sha256") == entry["sha256"]:
                continue
        cmd = ["s3", "cp", str(dist / entry["path"]), f"s3://{bucket}/{key}", "--metadata", f"sha256={entry['sha256']}",
               "--only-show-errors"]  # fmt: skip
        commands.append(["aws", *cmd, "--region", region])
        if not dry_run:
            res = _aws(cmd, region, capture=False)
            if res.returncode != 0:
                raise SubmitError(f"upload of {key} failed")
    return commands


_TERMINAL = {"SUCCESS", "FAILED", "CANCELLED", "SUCCEEDED", "STOPPED", "ERROR", "TIMEOUT", "COMPLETED"}


def wait(rendered: Rendered, outputs: Mapping, run_id: str, poll_s: int = 30) -> str:
    region = str(outputs["region"])
    while True:
        if rendered.target == "emr-serverless":
            res = _aws(["emr-serverless", "get-job-run", "--application-id", str(outputs["emr_serverless_application_id"]),
                        "--job-run-id", run_id], region)  # fmt: skip
            state = json.loads(res.stdout)["jobRun"]["state"]
        elif rendered.target == "glue":
            res = _aws(["glue", "get-job-run", "--job-name", str(outputs["glue_job_names"][rendered.job]), "--run-id", run_id], region)
            state = json.loads(res.stdout)["JobRun"]["JobRunState"]
        else:
            res = _aws(["emr", "describe-step", "--cluster-id", str(outputs["emr_cluster_id"]), "--step-id", run_id], region)
            state = json.loads(res.stdout)["Step"]["Status"]["State"]
        print(f"{time.strftime('%H:%M:%S')} {rendered.target} {run_id}: {state}", flush=True)
        if state in _TERMINAL:
            return state
        time.sleep(poll_s)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bin/submit", description=__doc__.splitlines()[0])
    parser.add_argument("target", choices=sorted(RENDERERS))
    parser.add_argument("--job", default="pipeline", help="entry point: jobs/<job>.py")
    parser.add_argument("--args", default="", help='the job\'s own arguments as one shell string, e.g. "--conf generator.vehicles=500"')
    parser.add_argument("--dist", type=Path, default=DIST_DIR)
    parser.add_argument("--outputs", type=Path, default=TF_OUTPUTS_FILE, help="saved `terraform output -json` (default: read live)")
    parser.add_argument("--dry-run", action="store_true", help="print the upload and submit commands only")
    parser.add_argument("--no-upload", action="store_true", help="artifacts are already in S3")
    parser.add_argument("--packages", action="store_true", help="EMR Serverless: resolve Sedona with --packages (needs internet egress)")
    parser.add_argument("--allow-stale", action="store_true", help="submit although sources changed since `make package`")
    parser.add_argument("--allow-nonportable-env", action="store_true", help="submit an environment archive built against a newer glibc")
    parser.add_argument("--wait", action="store_true", help="poll until the run ends; exit 1 unless it succeeded")
    args = parser.parse_args(argv)
    try:
        manifest = load_manifest(args.dist, args.allow_stale)
        outputs = load_tf_outputs(args.outputs)
        job_args = shlex.split(args.args)
        kwargs: dict = {}
        if args.target == "emr-serverless":
            kwargs = {"use_packages": args.packages, "allow_nonportable_env": args.allow_nonportable_env}
        elif args.target == "emr-ec2":
            kwargs = {"allow_nonportable_env": args.allow_nonportable_env}
        rendered = RENDERERS[args.target](manifest, outputs, args.job, job_args, **kwargs)
        problems = check_references(rendered, manifest, outputs, args.dist)
        if problems:
            raise SubmitError("the command does not match the built artifacts:\n  " + "\n  ".join(problems))
        prefix = f"s3://{outputs['artifacts_bucket']}/"
        keys = [u[len(prefix) :] for u in rendered.artifact_uris]
        if not args.no_upload:
            for cmd in upload(manifest, outputs, args.dist, keys, dry_run=args.dry_run):
                print(shlex.join(cmd))
        print(rendered.shell())
        if args.dry_run:
            return 0
        res = subprocess.run(rendered.argv, capture_output=True, text=True)
        if res.returncode != 0:
            raise SubmitError(f"{args.target} submission failed: {res.stderr.strip()}")
        reply = json.loads(res.stdout or "{}")
        run_id = reply.get("jobRunId") or reply.get("JobRunId") or (reply.get("StepIds") or [None])[0]
        print(json.dumps(reply, indent=2))
        for line in rendered.followup:
            print("  " + line.replace("<jobRunId>", str(run_id)).replace("<JobRunId>", str(run_id)).replace("<StepId>", str(run_id)))
        if args.wait and run_id:
            return 0 if wait(rendered, outputs, run_id) in ("SUCCESS", "SUCCEEDED", "COMPLETED") else 1
        return 0
    except SubmitError as exc:
        print(f"bin/submit: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

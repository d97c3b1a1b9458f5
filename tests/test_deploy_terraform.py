"""Offline structure checks of terraform/ (python-hcl2): what docs/DEPLOY.md and the submit
tooling rely on. No provider, no AWS account, no network."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

import hcl2
import pytest

from deploy.package import ENTRYPOINT_PREFIX
from deploy.submit import EMR_SERVERLESS_LOG_PREFIX, REQUIRED_TF_OUTPUTS

TF_ROOT = Path(__file__).resolve().parent.parent / "terraform"
EXAMPLE = TF_ROOT / "example"
MODULE_DIRS = sorted(p for p in (TF_ROOT / "modules").iterdir() if p.is_dir())
ALL_DIRS = [EXAMPLE, *MODULE_DIRS]
_VAR_REF = re.compile(r"\bvar\.([A-Za-z_][A-Za-z0-9_]*)")
_MODULE_REF = re.compile(r"\bmodule\.([A-Za-z_][A-Za-z0-9_]*)(?:\[[^\]]*\])?\.([A-Za-z_][A-Za-z0-9_]*)")


@cache
def parsed(directory: Path) -> dict[str, list]:
    """All top-level blocks of the .tf files of one module, merged by block type."""
    merged: dict[str, list] = {}
    for path in sorted(directory.glob("*.tf")):
        with open(path) as fh:
            for kind, blocks in hcl2.load(fh).items():
                merged.setdefault(kind, []).extend(blocks)
    return merged


def named(directory: Path, kind: str) -> dict[str, dict]:
    return {name: body for block in parsed(directory).get(kind, []) for name, body in block.items()}


def resources(directory: Path, rtype: str, kind: str = "resource") -> dict[str, dict]:
    return {name: body for block in parsed(directory).get(kind, []) for t, items in block.items() if t == rtype for name, body in items.items()}


def source_text(directory: Path) -> str:
    return "\n".join(p.read_text() for p in sorted(directory.glob("*.tf")))


def unwrap(value: str) -> str:
    return value[2:-1] if isinstance(value, str) and value.startswith("${") and value.endswith("}") else value


def test_every_tf_file_parses():
    files = sorted(TF_ROOT.rglob("*.tf"))
    assert len(files) >= 20, files
    for path in files:
        with open(path) as fh:
            assert hcl2.load(fh) is not None, path
    print(f"parsed {len(files)} .tf files in {len(ALL_DIRS)} modules")


@pytest.mark.parametrize("directory", ALL_DIRS, ids=lambda p: p.name)
def test_variables_used_exist_and_declared_are_used(directory):
    declared = set(named(directory, "variable"))
    used = set(_VAR_REF.findall(source_text(directory)))
    assert used - declared == set(), f"{directory.name}: var.* used but not declared"
    assert declared - used == set(), f"{directory.name}: variables declared but never used"


@pytest.mark.parametrize("directory", ALL_DIRS, ids=lambda p: p.name)
def test_variables_and_outputs_are_documented(directory):
    for name, body in named(directory, "variable").items():
        assert body.get("description", "").strip(), f"{directory.name}: variable {name} has no description"
        assert "type" in body, f"{directory.name}: variable {name} has no type"
    for name, body in named(directory, "output").items():
        assert body.get("description", "").strip(), f"{directory.name}: output {name} has no description"
    assert (directory / "versions.tf").exists(), f"{directory.name}: no versions.tf pinning the aws provider"


def test_key_variables_are_validated():
    root = named(EXAMPLE, "variable")
    for name in ("region", "name_prefix", "environment", "emr_release_label", "glue_version", "log_retention_days", "job_names"):
        assert root[name].get("validation"), f"root variable {name} has no validation"
    validated = sum(bool(body.get("validation")) for d in ALL_DIRS for body in named(d, "variable").values())
    total = sum(len(named(d, "variable")) for d in ALL_DIRS)
    print(f"{validated}/{total} variables carry validation blocks")
    assert validated / total > 0.5


def test_module_calls_match_module_interfaces():
    calls = named(EXAMPLE, "module")
    assert {"storage", "log_groups", "execution_role", "emr_serverless", "glue_jobs", "emr_cluster"} <= set(calls)
    for name, call in calls.items():
        module_dir = (EXAMPLE / call["source"]).resolve()
        assert module_dir.is_dir(), f"module {name}: source {call['source']} missing"
        variables = named(module_dir, "variable")
        passed = set(call) - {"source", "count", "for_each", "providers", "depends_on"}
        assert passed - set(variables) == set(), f"module {name} passes unknown arguments"
        required = {v for v, body in variables.items() if "default" not in body}
        assert required - passed == set(), f"module {name} misses required arguments"
    # every module.<name>.<output> the root reads is an output of that module
    for mod, out in _MODULE_REF.findall(source_text(EXAMPLE)):
        module_dir = (EXAMPLE / calls[mod]["source"]).resolve()
        assert out in named(module_dir, "output"), f"module.{mod}.{out} is not an output of {module_dir.name}"


def test_outputs_consumed_by_submit_tooling_exist():
    outputs = set(named(EXAMPLE, "output"))
    consumed = set().union(*REQUIRED_TF_OUTPUTS.values())
    assert consumed - outputs == set(), "outputs read by deploy/submit.py are missing from terraform/example/outputs.tf"


def test_example_tfvars_only_set_root_variables():
    root = set(named(EXAMPLE, "variable"))
    with open(EXAMPLE / "example.tfvars") as fh:
        tfvars = hcl2.load(fh)
    assert set(tfvars) - root == set()
    assert {"region", "name_prefix"} <= set(tfvars)
    # `make package` writes dist/entrypoints.auto.tfvars.json with this variable
    assert "job_names" in root


def test_buckets_are_encrypted_versioned_private_and_logs_expire():
    storage = TF_ROOT / "modules" / "storage"
    buckets = resources(storage, "aws_s3_bucket")
    assert set(buckets) == {"lakehouse", "artifacts", "logs"}
    locals_ = {k: v for block in parsed(storage)["locals"] for k, v in block.items()}
    assert "aws_s3_bucket.logs" in str(locals_["buckets"]) and "aws_s3_bucket.lakehouse" in str(locals_["buckets"])

    pab = resources(storage, "aws_s3_bucket_public_access_block")["this"]
    assert unwrap(pab["for_each"]) == "local.buckets"
    assert all(pab[k] is True for k in ("block_public_acls", "block_public_policy", "ignore_public_acls", "restrict_public_buckets"))

    versioning = resources(storage, "aws_s3_bucket_versioning")["this"]
    assert unwrap(versioning["for_each"]) == "local.buckets"
    assert versioning["versioning_configuration"][0]["status"] == "Enabled"

    sse = resources(storage, "aws_s3_bucket_server_side_encryption_configuration")
    kms_rule = sse["kms"]["rule"][0]["apply_server_side_encryption_by_default"][0]
    assert kms_rule["sse_algorithm"] == "aws:kms" and "aws_kms_key.this" in kms_rule["kms_master_key_id"]
    assert sse["logs"]["rule"][0]["apply_server_side_encryption_by_default"][0]["sse_algorithm"] == "AES256"
    assert resources(storage, "aws_kms_key")["this"]["enable_key_rotation"] is True

    lifecycle = resources(storage, "aws_s3_bucket_lifecycle_configuration")
    assert set(lifecycle) == {"lakehouse", "artifacts", "logs"}
    logs_rule = lifecycle["logs"]["rule"][0]
    assert "var.log_expiration_days" in logs_rule["expiration"][0]["days"]

    policy = resources(storage, "aws_iam_policy_document", kind="data")["tls_only"]
    deny = policy["statement"][0]
    assert deny["effect"] == "Deny" and deny["condition"][0]["variable"] == "aws:SecureTransport"


def test_execution_role_data_access_is_scoped():
    module = TF_ROOT / "modules" / "execution_role"
    doc = resources(module, "aws_iam_policy_document", kind="data")["data_access"]
    data_actions = ("s3:", "kms:", "dynamodb:", "logs:PutLogEvents", "logs:CreateLogStream")
    for statement in doc["statement"]:
        res = statement["resources"]
        res_text = res if isinstance(res, str) else " ".join(res)
        touches_data = any(a.startswith(data_actions) for a in statement["actions"])
        if touches_data:
            assert '"*"' not in res_text and res != ["*"], f"{statement['sid']}: '*' resource for data access"
            for item in res if isinstance(res, list) else [res]:
                assert item.startswith("${var.") or item.startswith("${[for") or item.startswith("${flatten("), (statement["sid"], item)
        if res == ["*"]:
            assert statement["sid"] == "GlueMetrics" and statement["actions"] == ["cloudwatch:PutMetricData"]
            assert statement["condition"][0]["variable"] == "cloudwatch:namespace"
    trust = resources(module, "aws_iam_policy_document", kind="data")["assume"]["statement"][0]
    assert trust["condition"][0]["variable"] == "aws:SourceAccount"


def test_glue_catalog_grants_name_the_project_databases_only():
    """The tables-by-name grants (dynamic statements, not seen by the loop above): Glue actions on
    the catalog, the project's databases and their tables, and `default` (created when missing)."""
    doc = resources(TF_ROOT / "modules" / "execution_role", "aws_iam_policy_document", kind="data")["data_access"]
    dynamic = {d["statement"]["content"][0]["sid"]: d["statement"]["content"][0] for d in doc["dynamic"]}
    tables = dynamic["GlueCatalogProjectDatabases"]
    assert all(a.startswith("glue:") for a in tables["actions"]) and "glue:CreateDatabase" not in tables["actions"]
    text = str(tables["resources"])
    assert ":database/${d}" in text and ":table/${d}/*" in text and ":database/default" in text and '"*"' not in text
    default = dynamic["GlueCatalogDefaultDatabase"]
    assert default["actions"] == ["glue:CreateDatabase"] and str(default["resources"]).count(":database/") == 1
    databases = resources(TF_ROOT / "modules" / "glue_catalog", "aws_glue_catalog_database")["layer"]
    assert "var.layers" in str(databases["for_each"]) and "${var.database_prefix}${each.key}" == databases["name"]


def test_delta_log_store_table_and_grants():
    """The DynamoDB table of Delta's S3DynamoDBLogStore (the key schema the LogStore uses), on
    demand, TTL on expireTime, PITR, KMS-encrypted; the execution role may use its items only;
    the submit tooling gets its name from an output and the cluster confs point Delta at it."""
    module = TF_ROOT / "modules" / "delta_log_store"
    table = resources(module, "aws_dynamodb_table")["this"]
    assert (table["hash_key"], table["range_key"], table["billing_mode"]) == ("tablePath", "fileName", "PAY_PER_REQUEST")
    assert {(a["name"], a["type"]) for a in table["attribute"]} == {("tablePath", "S"), ("fileName", "S")}
    assert table["ttl"][0] == {"attribute_name": "expireTime", "enabled": True}
    assert table["point_in_time_recovery"][0]["enabled"] is True
    sse = table["server_side_encryption"][0]
    assert sse["enabled"] is True and "var.kms_key_arn" in sse["kms_key_arn"]

    role = TF_ROOT / "modules" / "execution_role"
    statements = {st["sid"]: st for st in resources(role, "aws_iam_policy_document", kind="data")["data_access"]["statement"]}
    grant = statements["DeltaLogStoreTable"]
    assert set(grant["actions"]) == {"dynamodb:DescribeTable", "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:Query"}
    assert grant["resources"] == ["${var.delta_log_table_arn}"]
    assert not [st for sid, st in statements.items() if sid != "DeltaLogStoreTable" and any(a.startswith("dynamodb:") for a in st["actions"])]

    calls = named(EXAMPLE, "module")
    assert calls["execution_role"]["delta_log_table_arn"] == "${module.delta_log_store.table_arn}"
    assert "module.delta_log_store.table_name" in named(EXAMPLE, "output")["delta_log_table_name"]["value"]
    assert all("delta_log_table_name" in outputs for outputs in REQUIRED_TF_OUTPUTS.values())
    for conf in ("emr.yaml", "glue.yaml"):
        text = (TF_ROOT.parent / "conf" / conf).read_text()
        assert "spark.delta.logStore.s3.impl: io.delta.storage.S3DynamoDBLogStore" in text
        assert "S3DynamoDBLogStore.ddb.tableName: ${EVFA_DELTA_LOG_TABLE" in text


def test_prefixes_agree_with_conf_and_submit_tooling():
    module = TF_ROOT / "modules" / "execution_role"
    variables = named(module, "variable")
    artifacts_writable = variables["artifacts_writable_prefixes"]["default"]
    logs_writable = variables["logs_writable_prefixes"]["default"]
    assert "mlflow/" in artifacts_writable  # conf/emr.yaml, conf/glue.yaml: s3://<artifacts>/mlflow
    assert "glue/tmp/" in artifacts_writable  # glue_jobs --TempDir
    assert EMR_SERVERLESS_LOG_PREFIX in logs_writable and "glue/" in logs_writable
    for conf in ("emr.yaml", "glue.yaml"):
        text = (TF_ROOT.parent / "conf" / conf).read_text()
        assert "${EVFA_ARTIFACTS_BUCKET" in text and "}/mlflow" in text

    glue = TF_ROOT / "modules" / "glue_jobs"
    assert named(glue, "variable")["entrypoint_prefix"]["default"] == ENTRYPOINT_PREFIX
    job = resources(glue, "aws_glue_job")["this"]
    assert "var.entrypoint_prefix" in job["command"][0]["script_location"]
    assert job["command"][0]["name"] == "glueetl"
    assert unwrap(job["for_each"]) == "toset(var.job_names)"
    assert '"--datalake-formats": "delta"' in job["default_arguments"] or "--datalake-formats" in str(job["default_arguments"])
    assert unwrap(job["security_configuration"]).startswith("aws_glue_security_configuration.this")


def test_platform_versions_and_logging():
    emr = TF_ROOT / "modules" / "emr_serverless"
    app = resources(emr, "aws_emrserverless_application")["this"]
    assert app["type"] == "spark" and app["architecture"] == "X86_64"
    default_release = named(EXAMPLE, "variable")["emr_release_label"]["default"]
    assert re.fullmatch(r"emr-7\.\d+\.\d+", default_release)
    assert re.fullmatch(r"5\.\d+", named(EXAMPLE, "variable")["glue_version"]["default"])

    groups = resources(TF_ROOT / "modules" / "log_groups", "aws_cloudwatch_log_group")["this"]
    assert "var.retention_days" in groups["retention_in_days"] and "var.kms_key_arn" in groups["kms_key_id"]
    suffixes = named(TF_ROOT / "modules" / "log_groups", "variable")["log_groups"]["default"]
    assert {"emr_serverless", "glue"} <= set(suffixes)

    cluster = resources(TF_ROOT / "modules" / "emr_cluster", "aws_emr_cluster")["this"]
    assert cluster["applications"] == ["Spark"] and "security_configuration" in cluster
    assert named(EXAMPLE, "module")["emr_cluster"]["count"] == "${var.enable_emr_cluster ? 1 : 0}"


def test_analyst_policy_denies_the_restricted_prefix_conf_writes_personal_data_to():
    """Analysts read storage.root's prefix; storage.restricted_root (residences and every position
    trace, common.core.config.POSITION_TRACES) is denied explicitly, and the prefixes are the ones the
    cloud configs write to."""
    import yaml

    module = TF_ROOT / "modules" / "storage"
    variables = named(module, "variable")
    analyst, restricted = variables["analyst_prefix"]["default"], variables["restricted_prefix"]["default"]
    statements = {s["sid"]: s for s in resources(module, "aws_iam_policy_document", kind="data")["analyst_read"]["statement"]}
    deny = statements["DenyRestrictedPersonalData"]
    assert deny["effect"] == "Deny" and "var.restricted_prefix" in str(deny["resources"])
    assert "var.analyst_prefix" in str(statements["ReadLakehouseTables"]["resources"])
    assert not any(s.get("effect", "Allow") == "Allow" and "restricted" in str(s["resources"]) for s in statements.values())
    for conf in ("emr.yaml", "glue.yaml"):
        storage = yaml.safe_load((TF_ROOT.parent / "conf" / conf).read_text())["storage"]
        assert storage["root"].split("}/", 1)[1] + "/" == analyst, conf
        assert storage["restricted_root"].split("}/", 1)[1] + "/" == restricted, conf


def test_mlflow_tracking_server_is_private_to_the_project():
    """The SageMaker MLflow server: the job role may call it (and no other server), the server's own
    role reaches only the artifact store prefix the jobs' conf logs to, and it runs MLflow 3."""
    from deploy.submit import cluster_config

    doc = resources(TF_ROOT / "modules" / "execution_role", "aws_iam_policy_document", kind="data")["data_access"]
    dynamic = {d["statement"]["content"][0]["sid"]: d["statement"]["content"][0] for d in doc["dynamic"]}
    grant = dynamic["MlflowTrackingServer"]
    assert grant["actions"] == ["sagemaker-mlflow:*"] and unwrap(grant["resources"]) == "var.mlflow_server_arns"
    module = TF_ROOT / "modules" / "mlflow_tracking"
    server = resources(module, "aws_sagemaker_mlflow_tracking_server")["this"]
    assert server["artifact_store_uri"] == "s3://${var.artifacts_bucket}/${var.artifact_prefix}"
    assert server["automatic_model_registration"] is False  # the champion gate registers, nothing else
    store = resources(module, "aws_iam_policy_document", kind="data")["artifacts"]
    objects = next(s for s in store["statement"] if s["sid"] == "ArtifactStoreObjects")
    assert objects["resources"] == ["${var.artifacts_bucket_arn}/${var.artifact_prefix}*"]
    assert all(r != "*" for s in store["statement"] for r in s["resources"])
    variables = named(module, "variable")
    prefix = variables["artifact_prefix"]["default"]
    version = variables["mlflow_version"]["default"]
    assert re.fullmatch(r"3(\.\d+)+", version)
    for env in ("emr", "glue"):
        environ = {"EVFA_LAKEHOUSE_BUCKET": "l", "EVFA_ARTIFACTS_BUCKET": "a", "EVFA_DELTA_LOG_TABLE": "t", "EVFA_AWS_REGION": "eu-west-1", "MLFLOW_TRACKING_URI": "https://m"}
        location = cluster_config(env, environ).mlflow.artifact_location
        assert location.rstrip("/") + "/" == f"s3://a/{prefix}", (env, location)
    calls = named(EXAMPLE, "module")
    assert unwrap(calls["mlflow_tracking"]["count"]) == "var.enable_mlflow_tracking_server ? 1 : 0"
    assert "module.mlflow_tracking" in str(calls["execution_role"]["mlflow_server_arns"])
    assert "mlflow_tracking_uri" in named(EXAMPLE, "output")

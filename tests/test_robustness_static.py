"""Static robustness checks (no Spark): bounded driver collects, no credentials in the repository,
redacted config in job logs. Cases `no_unbounded_collect`, `no_credentials_in_repo` and
`redacted_config_in_logs` of docs/ROBUSTNESS.md."""

from __future__ import annotations

import ast
import io
import json
import logging
import shutil
import subprocess
import sys
import tokenize
from pathlib import Path

import pytest

from common.io.cli import parse

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SCANNED = sorted([*PROJECT_ROOT.glob("jobs/*.py"), *PROJECT_ROOT.glob("common/**/*.py"), *PROJECT_ROOT.glob("deploy/*.py")])
DRIVER_CALLS = ("collect", "toPandas")
# Methods whose result has a size independent of the data: a global aggregate or a cap.
BOUNDING_METHODS = {"limit", "first", "head", "take", "tail"}
BOUNDED_COMMENT = "# bounded:"


# --------------------------------------------------------------------------------------------
# No collect()/toPandas() of unbounded data on the driver
# --------------------------------------------------------------------------------------------
def _chain(node: ast.AST) -> list[ast.Call]:
    """Method calls a call's receiver is built from, outermost first (df.a().b().collect() -> b, a)."""
    calls = []
    while isinstance(node, (ast.Call, ast.Attribute, ast.Subscript)):
        if isinstance(node, ast.Call):
            calls.append(node)
            node = node.func
        else:
            node = node.value
    return calls


def _method(call: ast.Call) -> str | None:
    return call.func.attr if isinstance(call.func, ast.Attribute) else None


def is_obviously_bounded(call: ast.Call) -> bool:
    """`.limit(n)` anywhere in the receiver chain, or an aggregate without grouping keys
    (`df.agg(...)`, `df.groupBy().agg(...)`, `df.select(F.max(...))` is not recognised: comment it)."""
    receiver_calls = _chain(call.func.value)
    names = [_method(c) for c in receiver_calls]
    if BOUNDING_METHODS & set(names):
        return True
    if names and names[0] in ("agg", "sum", "count", "min", "max", "avg", "mean"):
        # a global aggregate: df.agg(...) without groupBy, or groupBy() without keys
        group = next((c for c in receiver_calls if _method(c) in ("groupBy", "groupby", "rollup", "cube")), None)
        if group is None:
            return names[0] == "agg"
        return not group.args and not group.keywords
    return False


def unbounded_driver_calls(path: Path, root: Path = PROJECT_ROOT) -> list[str]:
    source = path.read_text()
    comments: dict[int, str] = {}
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            comments[tok.start[0]] = tok.string
    tree = ast.parse(source)
    # statement span of every line, so a comment anywhere in the statement (or just above it) counts
    spans: list[tuple[int, int]] = [(n.lineno, n.end_lineno or n.lineno) for n in ast.walk(tree) if isinstance(n, ast.stmt)]
    found = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in DRIVER_CALLS):
            continue
        if node.args or node.keywords or (isinstance(node.func.value, ast.Name) and node.func.value.id == "gc"):
            continue  # not DataFrame.collect()/toPandas()
        if is_obviously_bounded(node):
            continue
        # innermost statement holding the call
        start, end = min(((s, e) for s, e in spans if s <= node.lineno <= e), key=lambda se: se[1] - se[0])
        lines = range(start - 1, max(end, node.end_lineno or node.lineno) + 1)
        note = next((comments[i] for i in lines if i in comments and BOUNDED_COMMENT in comments[i]), None)
        if note and note.split(BOUNDED_COMMENT, 1)[1].strip():
            continue
        text = source.splitlines()[node.lineno - 1].strip()
        found.append(f"{path.relative_to(root)}:{node.lineno}: {text}")
    return found


def test_driver_collects_are_bounded():
    """Every DataFrame.collect()/toPandas() in jobs/ and common/ is on a bounded result: after
    `.limit()`, on a global aggregate, or with `# bounded: <reason>` on the statement."""
    offenders = [hit for path in SCANNED for hit in unbounded_driver_calls(path)]
    assert not offenders, "collect()/toPandas() without an obvious bound (add .limit(), aggregate first, or justify with '# bounded: <reason>' on the statement):\n  " + "\n  ".join(offenders)


def test_bounded_check_itself(tmp_path):
    """The scanner flags what it should and accepts the bounded forms."""
    sample = tmp_path / "sample.py"
    sample.write_text(
        "rows = df.collect()\n"
        "pdf = df.where('x').toPandas()\n"
        "per_key = df.groupBy('k').agg(F.sum('x')).collect()\n"
        "ok1 = df.limit(10).toPandas()\n"
        "ok2 = df.agg(F.max('x')).collect()\n"
        "ok3 = df.groupBy().sum('x').collect()\n"
        "ok4 = summary(df).collect()  # bounded: one row per rule\n"
        "# bounded: the fleet's vehicle list (one row per vehicle)\n"
        "ok5 = [r[0] for r in df.select('v').distinct().collect()]\n"
        "gc.collect()\n"
        "bad = df.collect()  # bounded:\n"
    )
    hits = unbounded_driver_calls(sample, root=tmp_path)
    assert [h.split(":")[1] for h in hits] == ["1", "2", "3", "11"]


# --------------------------------------------------------------------------------------------
# No credentials in the repository
# --------------------------------------------------------------------------------------------
BASELINE = PROJECT_ROOT / ".secrets.baseline"


def _secrets(report: dict) -> set[tuple[str, str, str]]:
    return {(f, s["type"], s["hashed_secret"]) for f, found in report.get("results", {}).items() for s in found}


def test_no_secrets_in_tracked_files():
    """detect-secrets over `git ls-files`; findings must be in .secrets.baseline (audited exceptions:
    fake credentials that tests feed to the redaction and submit-guard code)."""
    tool = Path(sys.executable).with_name("detect-secrets")
    if not tool.exists():
        tool = shutil.which("detect-secrets")
    assert tool, "detect-secrets is not installed: pip install --require-hashes -r requirements.lock"
    if not (PROJECT_ROOT / ".git").exists():
        pytest.skip("not a git checkout: detect-secrets scans `git ls-files`")
    # the baseline holds the audited findings' hashes: it is not scanned itself
    cmd = [str(tool), "scan", "--exclude-files", r"^\.secrets\.baseline$"]
    out = subprocess.run(cmd, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=600, check=True)
    found = _secrets(json.loads(out.stdout))
    allowed = _secrets(json.loads(BASELINE.read_text()))
    new = sorted(found - allowed)
    print(f"detect-secrets: {len(found)} finding(s), {len(found & allowed)} audited in .secrets.baseline")
    assert not new, "possible credentials in tracked files (move them to the environment / IAM, or audit them into .secrets.baseline):\n" + "\n".join(f"  {f}: {t}" for f, t, _h in new)


# --------------------------------------------------------------------------------------------
# Jobs log the redacted config
# --------------------------------------------------------------------------------------------
def test_jobs_log_the_redacted_config(caplog, monkeypatch):
    monkeypatch.setenv("EVFA_TEST_DB_PASSWORD", "pw-s3cr3t-123")
    monkeypatch.setenv("EVFA_TEST_TOKEN", "tok-s3cr3t-456")
    caplog.set_level(logging.INFO, logger="ev_fleet")
    # The password part is a ${VAR} reference to the fake value set above, resolved at config load.
    password_ref = "${" + "EVFA_TEST_DB_PASSWORD" + "}"
    tracking_uri = "postgresql://evfa:" + password_ref + "@db.internal:5432/mlflow"
    cfg, _args = parse(
        "clean",
        [
            "--env",
            "test",
            "--conf",
            f"mlflow.tracking_uri={tracking_uri}",
            "--conf",
            "spark.extra={spark.hadoop.fs.s3a.session.token: '${EVFA_TEST_TOKEN}'}",
        ],
    )
    assert "pw-s3cr3t-123" in cfg.mlflow.tracking_uri  # the job itself still gets the real value
    logged = caplog.text
    assert "config (env test, secrets redacted)" in logged
    assert "pw-s3cr3t-123" not in logged and "tok-s3cr3t-456" not in logged
    assert "evfa:***@db.internal" in logged and '"spark.hadoop.fs.s3a.session.token": "***"' in logged


def test_every_job_goes_through_bootstrap():
    """Every job entry point parses its config through common.io.cli (which logs it redacted)."""
    missing = []
    for path in sorted(PROJECT_ROOT.glob("jobs/*.py")):
        tree = ast.parse(path.read_text())
        mains = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "main"]
        if not mains:
            continue
        calls = {n.func.id for n in ast.walk(mains[0]) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
        if not calls & {"bootstrap", "parse"}:
            missing.append(path.name)
    assert not missing, f"jobs whose main() does not use common.io.cli.bootstrap/parse: {missing}"

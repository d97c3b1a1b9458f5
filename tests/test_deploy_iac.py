"""Static checks of terraform/ that run offline in CI: checkov (security) and HCL formatting.

checkov lives in .venv-checkov (its pins conflict with MLflow's) and the formatter
(@cdktf/hcl-tools: hclwrite.Format, what `terraform fmt` applies) in .tools/hclfmt; both are
installed by Makefile targets from PyPI / npm when missing, so these tests really run them.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TF_ROOT = ROOT / "terraform"
_SKIP = re.compile(r"#\s*checkov:skip=([A-Z0-9_]+):(.*)")


def make(target: str, timeout: int = 900) -> None:
    res = subprocess.run(["make", "-s", target], cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    assert res.returncode == 0, f"make {target} failed:\n{res.stdout[-2000:]}\n{res.stderr[-2000:]}"


@pytest.fixture(scope="module")
def checkov_report() -> dict:
    make(".venv-checkov/.installed")
    res = subprocess.run(
        [str(ROOT / ".venv-checkov" / "bin" / "checkov"), "-d", str(TF_ROOT), "--framework", "terraform",
         "--skip-download", "-o", "json"],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert res.stdout.strip(), f"checkov printed nothing (exit {res.returncode}):\n{res.stderr[-3000:]}"
    report = json.loads(res.stdout)
    return report[0] if isinstance(report, list) else report


def test_checkov_has_no_failed_checks(checkov_report):
    summary = checkov_report["summary"]
    print(f"checkov {summary['checkov_version']}: passed={summary['passed']} failed={summary['failed']} "
          f"skipped={summary['skipped']} resources={summary['resource_count']}")  # fmt: skip
    failed = [f"{c['check_id']} {c['resource']} ({c['file_path']})" for c in checkov_report["results"].get("failed_checks", [])]
    assert failed == [], "checkov failures:\n" + "\n".join(failed)
    assert summary["parsing_errors"] == 0
    assert summary["passed"] > 100 and summary["resource_count"] > 30  # it really scanned the modules


def test_every_checkov_suppression_is_justified():
    skips = []
    for path in sorted(TF_ROOT.rglob("*.tf")):
        for line in path.read_text().splitlines():
            if "checkov:skip" in line:
                m = _SKIP.search(line)
                assert m, f"{path}: malformed suppression {line.strip()!r}"
                assert len(m.group(2).strip()) >= 30, f"{path}: {m.group(1)} suppressed without a real justification"
                skips.append(m.group(1))
    print(f"{len(skips)} justified suppressions: {sorted(set(skips))}")
    # each suppression must still be needed: checkov lists it as skipped, not silently passing
    assert skips


def test_suppressions_are_reported_by_checkov(checkov_report):
    skipped = checkov_report["results"].get("skipped_checks", [])
    declared = sum(p.read_text().count("checkov:skip=") for p in TF_ROOT.rglob("*.tf"))
    assert len(skipped) >= declared, "a checkov:skip comment is not attached to a resource checkov scanned"
    for check in skipped:
        assert len((check.get("check_result") or {}).get("suppress_comment", "")) >= 30, check["check_id"]


def test_terraform_files_are_formatted():
    make(".tools/hclfmt/.installed", timeout=300)
    res = subprocess.run([str(ROOT / "bin" / "tf-fmt"), "terraform"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    print(res.stdout.strip().splitlines()[-1] if res.stdout.strip() else res.stderr)
    assert res.returncode == 0, res.stdout + res.stderr


def test_formatter_detects_bad_formatting(tmp_path):
    make(".tools/hclfmt/.installed", timeout=300)
    (tmp_path / "bad.tf").write_text('resource "aws_s3_bucket" "x" {\nbucket="a"\n  force_destroy = true\n}\n')
    res = subprocess.run([str(ROOT / "bin" / "tf-fmt"), str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert res.returncode == 1 and "needs formatting" in res.stdout


@pytest.mark.skipif(shutil.which("terraform") is None, reason="no terraform binary on this host (the npm formatter above still ran)")
def test_terraform_fmt_agrees_when_available():
    res = subprocess.run(["terraform", "fmt", "-check", "-recursive", str(TF_ROOT)], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr

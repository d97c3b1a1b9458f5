"""docs/ROBUSTNESS.md is generated from tests/robustness_table.py and names only tests that exist."""

from __future__ import annotations

import ast

from tests.robustness_table import DOC, INPUT_CASES, OTHER_CASES, PROJECT_ROOT, render


def test_robustness_doc_is_in_sync():
    assert DOC.exists(), "docs/ROBUSTNESS.md missing: run python -m tests.robustness_table"
    assert DOC.read_text() == render(), "docs/ROBUSTNESS.md is stale: run python -m tests.robustness_table"


def test_every_case_names_an_existing_test():
    missing = []
    for case in OTHER_CASES:
        file, _, name = case.test.partition("::")
        path = PROJECT_ROOT / file
        functions = {n.name for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.FunctionDef)} if path.exists() else set()
        if name not in functions:
            missing.append(f"{case.id}: {case.test}")
        assert case.slow == ("/slow/" in f"/{file}"), f"{case.id}: slow flag does not match the test's folder"
    assert not missing, f"cases naming tests that do not exist: {missing}"


def test_case_ids_are_unique():
    ids = [c.id for c in INPUT_CASES] + [c.id for c in OTHER_CASES]
    assert len(ids) == len(set(ids))

"""The layout holds: import contracts, thin jobs that import only public names, one table catalog
with a stage graph derived from the jobs' declarations, generated docs in sync, one source of
config defaults."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from common.core import catalog
from common.core.config import POSITION_TRACES, load_config
from common.io.stages import Stage, ordered, undeclared_access, writers

ROOT = Path(__file__).resolve().parents[1]
JOB_FILES = sorted(p for p in (ROOT / "jobs").glob("*.py") if p.name != "__init__.py")
MAX_JOB_LINES = 150


def _run(*cmd: str) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_import_contracts_hold():
    """pyproject [tool.importlinter]: layers point down, silver never imports bronze, production
    code never imports the generator, common never imports jobs."""
    out = _run(str(Path(sys.executable).parent / "lint-imports"), "--no-cache")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert "BROKEN" not in out.stdout and "4 kept" in out.stdout, out.stdout[-2000:]


def test_generated_docs_are_current():
    """conf/config.schema.json, docs/CONFIG.md and the table flow of docs/ARCHITECTURE.md."""
    out = _run(sys.executable, "-m", "deploy.gen_docs", "--check")
    assert out.returncode == 0, out.stdout + out.stderr[-2000:]


@pytest.mark.parametrize("path", JOB_FILES, ids=lambda p: p.name)
def test_jobs_are_thin_and_import_only_public_names(path):
    lines = path.read_text().count("\n")
    assert lines <= MAX_JOB_LINES, f"{path.name} has {lines} lines: move logic into common/"
    private = [
        f"{node.module}.{alias.name} (line {node.lineno})"
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("common")
        for alias in node.names
        if alias.name.startswith("_")
    ]
    assert not private, f"{path.name} imports private names: {private}"


def _sedona_sql_calls(tree: ast.AST) -> list[tuple[ast.FunctionDef, int]]:
    """(enclosing function, line) of every F.expr / spark.sql call whose SQL text uses an ST_ function."""
    found = []
    for fn in (n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)):
        for call in (n for n in ast.walk(fn) if isinstance(n, ast.Call)):
            name = call.func.attr if isinstance(call.func, ast.Attribute) else getattr(call.func, "id", "")
            texts = [c.value for a in call.args for c in ast.walk(a) if isinstance(c, ast.Constant) and isinstance(c.value, str)]
            if name in ("expr", "sql", "selectExpr", "where", "filter") and any(re.search(r"\bST_[A-Z]\w*\(", t) for t in texts):
                found.append((fn, call.lineno))
    return found


def test_code_using_sedona_registers_it_first():
    """Sedona is registered on first use (common.io.spark.with_sedona), not with the session: a
    function building an ST_ expression that did not call it would fail with "Undefined function"
    when its job runs alone (in a pipeline an earlier stage may have registered it). A static check
    of SQL text literals given to expr/selectExpr/sql/where/filter; text built elsewhere is not seen."""
    sites, missing = 0, []
    for path in sorted(p for d in ("common", "jobs", "bench", "deploy", "tests") for p in Path(d).rglob("*.py")):
        for fn, line in _sedona_sql_calls(ast.parse(path.read_text())):
            sites += 1
            calls = {getattr(c.func, "id", getattr(c.func, "attr", None)) for c in ast.walk(fn) if isinstance(c, ast.Call)}
            if "with_sedona" not in calls:
                missing.append(f"{path}:{line} ({fn.name})")
    assert sites >= 4, "the scan found no ST_ expression: it no longer sees them"
    assert not missing, f"ST_ functions used without with_sedona() in the same function: {missing}"


def test_every_stage_declares_catalog_tables_and_the_order_follows_them():
    from jobs.pipeline import STAGES

    by_table = writers(STAGES)
    position = {s.name: i for i, s in enumerate(STAGES)}
    for stage in STAGES:
        for table in stage.inputs:
            if table in by_table and by_table[table] != stage.name:
                assert position[by_table[table]] < position[stage.name], f"{stage.name} runs before {by_table[table]}, which writes {table}"
    produced = set(by_table)
    # every table the product computes has exactly one writer; truth is the generator's, audit is bookkeeping
    for name, table in catalog.TABLES.items():
        if table.layer in ("bronze", "silver", "gold", "restricted", "quarantine"):
            assert name in produced, f"{name} is in the catalog but no stage declares it as an output"


def test_stage_graph_orders_by_declared_tables_and_refuses_cycles_and_double_writers():
    a = Stage("a", (), ("bronze.telematics",))
    b = Stage("b", ("bronze.telematics",), ("silver.telematics_clean",))
    c = Stage("c", ("silver.telematics_clean",), ("gold.daily_kpis",))
    assert [s.name for s in ordered([c, b, a])] == ["a", "b", "c"]
    assert [s.name for s in ordered([a, c, b])] == ["a", "b", "c"]
    with pytest.raises(ValueError, match="cycle"):
        ordered([Stage("x", ("gold.daily_kpis",), ("silver.trips",)), Stage("y", ("silver.trips",), ("gold.daily_kpis",))])
    with pytest.raises(ValueError, match="both"):
        writers([a, Stage("d", (), ("bronze.telematics",))])
    with pytest.raises(KeyError, match="not in the table catalog"):
        Stage("e", ("gold.no_such_table",), ())


def test_undeclared_access_names_the_tables_a_stage_did_not_declare():
    stage = Stage("c", ("silver.telematics_clean",), ("gold.daily_kpis",))
    assert undeclared_access(stage, {"read": {"silver.telematics_clean", "gold.daily_kpis", "audit.stage_runs"}, "written": {"gold.daily_kpis"}}) == []
    notes = undeclared_access(stage, {"read": {"bronze.vehicles"}, "written": {"gold.daily_kpis", "silver.trips"}})
    assert notes == ["undeclared input(s) of c: bronze.vehicles", "undeclared output(s) of c: silver.trips"]


def test_position_traces_come_from_the_catalog():
    assert POSITION_TRACES == {n for n, t in catalog.TABLES.items() if t.position_trace}
    assert {"bronze.telematics", "silver.telematics_clean", "silver.trips", "quarantine.telematics"} <= POSITION_TRACES
    assert all(catalog.TABLES[n].personal for n in POSITION_TRACES)


def _leaves(data: dict, prefix: str = ""):
    for key, value in data.items():
        if isinstance(value, dict) and value:
            yield from _leaves(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def test_config_defaults_have_one_source():
    """Defaults live in the typed models: conf/base.yaml repeats none of them."""
    base = yaml.safe_load((ROOT / "conf" / "base.yaml").read_text()) or {}
    defaults = load_config("local", conf_dir=_empty_conf_dir()).model_dump(mode="json")
    repeated = []
    for key, value in _leaves(base):
        node = defaults
        for part in key.split("."):
            node = node.get(part, {}) if isinstance(node, dict) else {}
        if node == value:
            repeated.append(key)
    assert not repeated, f"conf/base.yaml repeats model defaults: {repeated}"


def _empty_conf_dir() -> Path:
    import tempfile

    d = Path(tempfile.mkdtemp())
    (d / "local.yaml").write_text("{}\n")
    return d


def test_an_override_changes_one_key_and_keeps_the_sections_other_defaults():
    """Nested defaults (the tuned xgb parameters) survive a dotted override of one of their keys."""
    from common.core.config import Config

    defaults = Config()
    cfg = load_config("test", ["ml.energy.xgb.n_estimators=300", "ml.soc.xgb.max_depth=4"])
    assert cfg.ml.energy.xgb == defaults.ml.energy.xgb.model_copy(update={"n_estimators": 300})
    assert cfg.ml.soc.xgb == defaults.ml.soc.xgb.model_copy(update={"max_depth": 4})
    assert cfg.ml.soc.xgb.objective == "reg:absoluteerror" and cfg.ml.energy.xgb.learning_rate == 0.05
    assert set(cfg.ml.energy.physics) == set(defaults.ml.energy.physics)

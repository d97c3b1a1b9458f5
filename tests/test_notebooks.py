"""The notebooks in notebooks/ execute top to bottom on the fully processed test fleet.

Each notebook runs in its own Jupyter kernel (nbclient, the venv's ipykernel) with its own
SparkSession, pointed at the test lakehouse and MLflow store through EVFA_ENV / EVFA_CONF --
the same switch a data scientist uses to open them on another lakehouse. A cell that raises fails
the test; so does a table cell that shows an empty frame (a wrong column or table name usually
shows up as an empty result before it shows up as an error)."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

PROJECT_ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((PROJECT_ROOT / "notebooks").glob("*.ipynb"))
CELL_TIMEOUT_S = 600

pytestmark = pytest.mark.timeout(3600)


def _kernel_env(cfg) -> dict[str, str]:
    overrides = [
        f"storage.root={cfg.storage.root}",
        f"storage.restricted_root={cfg.storage.restricted_root}",
        f"mlflow.tracking_uri={cfg.mlflow.tracking_uri}",
        f"mlflow.artifact_location={cfg.mlflow.artifact_location}",
    ]
    env = dict(os.environ)
    env.update(
        EVFA_ENV="test",
        EVFA_CONF=";".join(overrides),
        PYTHONPATH=os.pathsep.join(filter(None, [str(PROJECT_ROOT), env.get("PYTHONPATH")])),
    )
    return env


def test_there_are_notebooks():
    assert len(NOTEBOOKS) >= 3, NOTEBOOKS


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebooks_are_committed_without_outputs(path):
    """nbstripout's rule: no outputs, no execution counts, no per-cell run metadata in git (outputs
    hold data of whoever ran the notebook last, and every run would change the file)."""
    nb = nbformat.read(path, as_version=4)
    dirty = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and (c.get("outputs") or c.get("execution_count") is not None or c.get("metadata", {}).get("execution"))]
    assert not dirty, f"{path.name}: cells {dirty} carry outputs; clear them (jupyter nbconvert --clear-output --inplace {path.name})"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_executes(path, fleet_scored, tmp_path, monkeypatch):
    for key, value in _kernel_env(fleet_scored).items():
        monkeypatch.setenv(key, value)
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=CELL_TIMEOUT_S, kernel_name="python3", resources={"metadata": {"path": str(PROJECT_ROOT)}})
    try:
        client.execute()
    finally:
        nbformat.write(nb, tmp_path / path.name)  # executed copy, for inspection on failure
    code_cells = [c for c in nb.cells if c.cell_type == "code"]
    assert code_cells and all(c.get("execution_count") for c in code_cells)
    empty = []
    for i, cell in enumerate(code_cells):
        for out in cell.get("outputs", []):
            text = out.get("data", {}).get("text/plain", "") if out.get("output_type") == "execute_result" else ""
            if "Empty DataFrame" in text or text.strip() in ("[]", "{}"):
                empty.append((i, cell.source.splitlines()[-1]))
    assert not empty, f"{path.name}: cells showing empty results: {empty} (executed copy: {tmp_path / path.name})"

"""Slow robustness tests (subprocess kills, local-cluster executors, whole-job runs, report privacy).

Collected but deselected by default, so a plain `pytest` stays fast. Run them with

    pytest tests/slow          # just these
    pytest -m slow             # every test marked slow, here or elsewhere
    pytest --include-slow      # everything in one session (make test): the session's fleet
                               # fixtures are built once for both

Each module here sets `pytestmark = pytest.mark.slow`.
"""

from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


def _inside(path: Path) -> bool:
    try:
        path.resolve().relative_to(HERE)
        return True
    except ValueError:
        return False


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    explicit = any(_inside(Path(str(arg).split("::")[0])) for arg in config.args)
    if explicit or config.getoption("include_slow") or "slow" in (config.getoption("markexpr") or ""):
        return
    kept, deselected = [], []
    for item in items:
        (deselected if _inside(Path(str(item.fspath))) else kept).append(item)
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = kept

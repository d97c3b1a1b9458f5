"""Session fixtures of the model tests (imported by tests/test_ml.py).

`fleet_gold`: the generated fleet of conftest.py taken through jobs.kpis (silver.vehicle_minutely,
silver.trips, silver.segments). `ml_cfg`: the same lakehouse and MLflow store with the model
settings the tests use (small, seeded). `trained`: one jobs.train run over it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from common.config import Config
from tests.conftest import FLEET_OVERRIDES, make_config

# Small enough for 2 shared cores; the same code path as EMR (xgboost.spark, 2 barrier tasks).
ML_OVERRIDES = (
    "ml.num_workers=2",
    "ml.seed=11",
    "ml.soc.xgb.n_estimators=200",
    "ml.energy.xgb.n_estimators=300",
)


@pytest.fixture(scope="session")
def fleet_gold(spark, fleet_silver) -> Config:
    """The generated fleet with the KPI tables (jobs.kpis run_kpis over fleet_silver)."""
    from jobs.kpis import run_kpis

    run_kpis(spark, fleet_silver)
    return fleet_silver


@pytest.fixture(scope="session")
def ml_cfg(request, session_root) -> Config:
    """fleet_gold's lakehouse and MLflow store (pytest temp folder) with the tests' model settings.

    EVFA_ML_FLEET_ROOT=<folder> reuses a lakehouse built earlier from the same FLEET_OVERRIDES
    (generate -> ingest -> clean -> kpis take ~30 min on a loaded 2-core box) to iterate on models."""
    prebuilt = os.environ.get("EVFA_ML_FLEET_ROOT")
    if prebuilt:
        return make_config(Path(prebuilt), *FLEET_OVERRIDES, *ML_OVERRIDES)
    request.getfixturevalue("fleet_gold")
    return make_config(session_root / "fleet", *FLEET_OVERRIDES, *ML_OVERRIDES)


@pytest.fixture(scope="session")
def trained(spark, ml_cfg):
    """The first training run of the session: registers v1 of every model (champions)."""
    from jobs.train import run_train

    report = run_train(spark, ml_cfg, run_name="test-train-1")
    return {o.key: o for o in report.outcomes}

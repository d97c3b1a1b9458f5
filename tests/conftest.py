"""One session-scoped SparkSession (local[2], 2 shuffle partitions, UI off) and a per-session
lakehouse under pytest's temporary folder. Everything goes through common.spark.build_session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from common.config import Config, load_config

PROJECT_ROOT = Path(__file__).resolve().parent.parent
REAL_DATA = PROJECT_ROOT.parent / "shared" / "data" / "real"


def real_data(*parts: str) -> Path:
    """Path under ../shared/data/real, or skip the test with a clear reason when absent."""
    path = REAL_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real dataset not available: {path} (the CEO's shared/ folder is not beside the project)")
    return path


def make_config(root: Path, *overrides: str) -> Config:
    return load_config(
        "test",
        [
            f"storage.root={root}/lakehouse",
            f"storage.restricted_root={root}/lakehouse/restricted",
            f"mlflow.tracking_uri=sqlite:///{root}/mlflow/mlflow.db",
            f"mlflow.artifact_location={root}/mlflow/artifacts",
            *overrides,
        ],
    )


@pytest.fixture(scope="session")
def session_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("evfa")


@pytest.fixture(scope="session")
def cfg(session_root) -> Config:
    return make_config(session_root)


@pytest.fixture(scope="session")
def spark(cfg):
    from common.spark import build_session, python_for_workers

    python_for_workers()
    session = build_session(cfg)
    yield session
    session.stop()


@pytest.fixture()
def fresh_cfg(tmp_path) -> Config:
    """A config whose lakehouse is private to one test (for idempotency / rerun tests)."""
    return make_config(tmp_path)


os.environ.setdefault("PYARROW_IGNORE_TIMEZONE", "1")


# ---------------------------------------------------------------------------------------------
# One generated fleet per test session, shared by every accuracy test (generation is the slow
# part). Later stages add fixtures that build on it (ingest -> clean -> insights).
# ---------------------------------------------------------------------------------------------
FLEET_OVERRIDES = (
    "generator.vehicles=24",
    "generator.days=7",
    "generator.seed=7",
    "generator.anomaly_rate=0.006",
)


@pytest.fixture(scope="session")
def fleet_cfg(spark, session_root) -> Config:
    """Config whose lakehouse holds a generated fleet (raw files + truth tables)."""
    from common.generator import generate

    fleet_cfg = make_config(session_root / "fleet", *FLEET_OVERRIDES)
    generate(spark, fleet_cfg)
    return fleet_cfg


@pytest.fixture(scope="session")
def fleet_bronze(spark, fleet_cfg) -> Config:
    """The generated fleet ingested into bronze (jobs.ingest on the generator's default inputs)."""
    from common.generator import default_inputs
    from jobs.ingest import run_ingest

    run_ingest(spark, fleet_cfg, default_inputs(fleet_cfg), generated=True)
    return fleet_cfg


@pytest.fixture(scope="session")
def fleet_silver(spark, fleet_bronze) -> Config:
    """The generated fleet cleaned into silver.telematics_clean (jobs.clean).

    `as_of` is pinned after the simulated period so the future-timestamp rule is reproducible."""
    from datetime import datetime, timezone

    from jobs.clean import run_clean

    run_clean(spark, fleet_bronze, as_of=datetime(2030, 1, 1, tzinfo=timezone.utc))
    return fleet_bronze


@pytest.fixture(scope="session")
def fleet_gold(spark, fleet_silver) -> Config:
    """Every stage after clean run on the fleet through the pipeline runner (kpis ... score)."""
    import argparse

    from jobs.pipeline import run_pipeline

    args = argparse.Namespace(only=None, from_stage="kpis", skip="report", start_date=None, end_date=None, regenerate=False)
    run_pipeline(spark, fleet_silver, args)
    return fleet_silver


@pytest.fixture(scope="session")
def fleet_report(spark, fleet_gold, session_root):
    """The report built on the fully processed fleet, and the marker/chart counts it must show."""
    from pyspark.sql import functions as F

    from common import tables
    from jobs.report import build_report

    cfg = fleet_gold.model_copy(deep=True)
    cfg.report.output_dir = str(session_root / "reports")
    path = build_report(spark, cfg, run_id="fleet")
    hotspots = tables.read(spark, cfg, "gold.hotspots").count()
    dc = tables.read(spark, cfg, "bronze.stations").where(F.coalesce(F.col("dc_fast_count"), F.lit(0)) > 0).count()
    expected = {
        "layers": {"map-hotspots|hotspot": hotspots, "map-hotspots|DC-fast station": dc},
        "charts": ["quality_rules", "fleet_km", "risk_z"],
    }
    return path, expected

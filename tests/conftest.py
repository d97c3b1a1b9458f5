"""One session-scoped SparkSession (local[2], 2 shuffle partitions, UI off) and a per-session
lakehouse under pytest's temporary folder. Everything goes through common.io.spark.build_session."""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

import pytest

from common.core.config import Config, load_config

PROJECT_ROOT = Path(__file__).resolve().parent.parent
REAL_DATA = PROJECT_ROOT.parent / "shared" / "data" / "real"


# CI sets this (.ci/run): a real-data test whose dataset is missing fails there instead of
# skipping, so a green CI always includes the real-data evidence the docs cite.
REQUIRE_REAL_DATA_ENV = "EVFA_REQUIRE_REAL_DATA"


def real_data(*parts: str) -> Path:
    """Path under ../shared/data/real; when absent, skip with a clear reason (or fail under CI)."""
    path = REAL_DATA.joinpath(*parts)
    if not path.exists():
        reason = f"real dataset not available: {path} (the shared/ folder is not beside the project)"
        if os.environ.get(REQUIRE_REAL_DATA_ENV) == "1":
            pytest.fail(f"{reason}; {REQUIRE_REAL_DATA_ENV}=1 requires it")
        pytest.skip(reason)
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


def wait_for_lease_expiry(spark, cfg: Config) -> None:
    """Sleep until the run lease of `cfg`'s lakehouse (left by a killed job) has expired: its
    recorded expiry decides, no timing is asserted."""
    import time
    from datetime import datetime, timezone

    from common.io.lease import LEASE_TABLE, is_free, read_lease

    path = cfg.storage.path(LEASE_TABLE)
    state = read_lease(spark, path)
    while not is_free(state, datetime.now(timezone.utc)):
        time.sleep(max(0.5, (state.expires_at - datetime.now(timezone.utc)).total_seconds()))
        state = read_lease(spark, path)


def pytest_addoption(parser):
    parser.addoption("--include-slow", action="store_true", default=False, help="also run tests/slow in this session (make test does): one build of the shared fleet fixtures")


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items):
    """The accuracy tests go last (a stable sort, after pytest's own fixture ordering): their fleets
    build in background processes meanwhile (tests/accuracy/builds.py)."""
    items.sort(key=lambda item: item.get_closest_marker("accuracy") is not None)


def pytest_collection_finish(session):
    if not session.config.option.collectonly:
        from tests.accuracy import builds

        builds.start(session.config, session.items)


@pytest.fixture(scope="session")
def session_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("evfa")


@pytest.fixture(scope="session")
def cfg(session_root) -> Config:
    return make_config(session_root)


@pytest.fixture(scope="session")
def spark(cfg):
    from common.io.spark import build_session, python_for_workers
    from deploy.class_archive import s3a_test_jars

    python_for_workers()
    # The s3a jars (`bin/fetch-jars --test`, run by make test) for tests/test_s3_inputs.py, which fails
    # naming any that is missing; `make test` also builds this jar set's class archive.
    session = build_session(cfg, extra_jars=s3a_test_jars(cfg))
    yield session
    session.stop()


@pytest.fixture()
def fresh_cfg(tmp_path) -> Config:
    """A config whose lakehouse is private to one test (for idempotency / rerun tests)."""
    return make_config(tmp_path)


os.environ.setdefault("PYARROW_IGNORE_TIMEZONE", "1")


@pytest.fixture(autouse=True)
def _release_run_leases():
    """A job's main() called in-process (common.io.cli.bootstrap) holds its lakehouse's run lease until
    the process exits; give it back after each test so no heartbeat outlives the test."""
    yield
    import sys

    lease = sys.modules.get("common.io.lease")
    if lease is not None:
        lease.release_held_leases()


@contextmanager
def declared_only(stage_name: str):
    """Run a stage's code and fail when it read or wrote a table its job does not declare
    (INPUTS / OUTPUTS): the stage graph and docs/ARCHITECTURE.md cannot drift from the code."""
    from common.io import tables
    from common.io.stages import undeclared_access
    from jobs.pipeline import STAGES

    stage = next(s for s in STAGES if s.name == stage_name)
    with tables.recording() as access:
        yield
    assert not undeclared_access(stage, access), undeclared_access(stage, access)


def assert_declared(reports) -> None:
    """The pipeline notes every undeclared table access; none may occur."""
    notes = [n for r in reports for n in r.notes if n.startswith("undeclared")]
    assert not notes, notes


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
    from jobs.generate import generate

    fleet_cfg = make_config(session_root / "fleet", *FLEET_OVERRIDES)
    with declared_only("generate"):
        generate(spark, fleet_cfg)
    return fleet_cfg


@pytest.fixture(scope="session")
def fleet_bronze(spark, fleet_cfg) -> Config:
    """The generated fleet ingested into bronze (jobs.ingest on the generator's default inputs)."""
    from common.io.landing import default_inputs
    from jobs.ingest import run_ingest

    with declared_only("ingest"):
        run_ingest(spark, fleet_cfg, default_inputs(fleet_cfg), generated=True)
    return fleet_cfg


@pytest.fixture(scope="session")
def fleet_silver(spark, fleet_bronze) -> Config:
    """The generated fleet cleaned into silver.telematics_clean (jobs.clean).

    `as_of` is pinned after the simulated period so the future-timestamp rule is reproducible."""
    from datetime import datetime, timezone

    from jobs.clean import run_clean

    with declared_only("clean"):
        run_clean(spark, fleet_bronze, as_of=datetime(2030, 1, 1, tzinfo=timezone.utc))
    return fleet_bronze


def twizy_config(root: Path, *overrides: str) -> Config:
    """The real RSK Twizy log's config (conf/datasets/twizy.yaml) on a lakehouse under `root`."""
    return load_config(
        "test",
        [f"storage.root={root}/lakehouse", f"storage.restricted_root={root}/restricted", f"report.output_dir={root}/reports", f"export.output_dir={root}/exports",
         f"mlflow.tracking_uri=sqlite:///{root}/mlflow.db", f"mlflow.artifact_location={root}/mlruns", *overrides],
        dataset_files=["conf/datasets/twizy.yaml"],
    )  # fmt: skip


@pytest.fixture(scope="session")
def twizy_lakehouse(spark, tmp_path_factory) -> tuple[Path, Config, dict]:
    """The Twizy log through every pipeline stage but train and score (shared by
    tests/test_twizy_pipeline.py and the Twizy model test of tests/test_ml.py, which trains and
    scores on it): (root, config, stage reports)."""
    import argparse

    from jobs.pipeline import run_pipeline

    real_data("rsk_twizy_ev_trips")
    root = tmp_path_factory.mktemp("twizy")
    cfg = twizy_config(root)
    args = argparse.Namespace(only=None, from_stage=None, skip="train,score", start_date=None, end_date=None, regenerate=False)
    return root, cfg, {r.stage: r for r in run_pipeline(spark, cfg, args)}


def _pipeline_args(only: str):
    import argparse

    return argparse.Namespace(only=only, from_stage=None, skip=None, start_date=None, end_date=None, regenerate=False)


@pytest.fixture(scope="session")
def fleet_gold(spark, fleet_silver) -> Config:
    """KPIs and the fleet-wide stages on the fleet through the pipeline runner (kpis ... fault_analysis)."""
    from jobs.pipeline import run_pipeline

    assert_declared(run_pipeline(spark, fleet_silver, _pipeline_args("kpis,residence,charging,hotspots,risk,stations,reliability,fault_analysis")))
    return fleet_silver


# Small enough for 2 shared cores. The fleet's fits are below ml.local_fit_max_rows, so they run in the
# driver; test_small_fits_run_in_the_driver_as_the_same_booster_xgboost_would_fit covers xgboost.spark.
ML_OVERRIDES = (
    "ml.num_workers=2",
    "ml.seed=11",
    "ml.energy.xgb.n_estimators=300",
)


@pytest.fixture(scope="session")
def ml_cfg(request, session_root) -> Config:
    """fleet_gold's lakehouse and MLflow store with the tests' model settings (small, seeded).

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

    with declared_only("train"):
        report = run_train(spark, ml_cfg, run_name="test-train-1")
    return {o.key: o for o in report.outcomes}


@pytest.fixture(scope="session")
def fleet_scored(spark, fleet_gold, trained) -> Config:
    """fleet_gold with the models trained (`trained`), gold predictions written (jobs.score) and the
    charging plan made from them (jobs.charging_plan)."""
    from jobs.pipeline import run_pipeline

    assert_declared(run_pipeline(spark, fleet_gold, _pipeline_args("score,charging_plan")))
    return fleet_gold


@pytest.fixture(scope="session")
def fleet_report(spark, fleet_scored, session_root):
    """The report built on the fully processed fleet, and the marker/chart counts it must show."""
    from pyspark.sql import functions as F

    from common.io import tables
    from jobs.report import build_report

    cfg = fleet_scored.model_copy(deep=True)
    cfg.report.output_dir = str(session_root / "reports")
    with declared_only("report"):
        path = build_report(spark, cfg, run_id="fleet")
    from common.network.stations import latest_stations
    from common.silver.cleaning import BLOCKING_MASK, FLAGS

    hot = tables.read(spark, cfg, "gold.hotspots").select("hull_wkt").toPandas()
    register = latest_stations(tables.read(spark, cfg, "bronze.stations"))
    dc = register.where(F.coalesce(F.col("dc_fast_count"), F.lit(0)) > 0).count()
    gaps = tables.read(spark, cfg, "gold.expansion_gaps").count()
    fault_hot = tables.read(spark, cfg, "gold.site_reliability").where("is_fault_hotspot").join(register, "station_id").count()
    site_kinds = {r.kind: r["count"] for r in tables.read(spark, cfg, "gold.charging_sites").groupBy("kind").count().collect()}
    layers = {"map-fleet|hotspot": len(hot), "map-fleet|hotspot hull": int(hot.hull_wkt.str.startswith("POLYGON").sum()), "map-fleet|DC-fast station": dc}
    layers |= {f"map-fleet|charging site: {k}": n for k, n in site_kinds.items()}
    if gaps:
        layers["map-fleet|expansion gap (no DC fast nearby)"] = gaps
    if fault_hot:
        layers["map-fleet|fault-hotspot station"] = fault_hot
    # Cell layers: the drivers and flagged rows they count, from the tables with pandas.
    homes = tables.read(spark, cfg, "restricted.residences").where("home_lat IS NOT NULL").count()
    silver = tables.read(spark, cfg, "silver.telematics_clean").select("quality_flags", "lat", "lon").toPandas()
    flags = silver.quality_flags.astype("int64")
    flagged = int((((flags & BLOCKING_MASK) != 0) & ((flags & (FLAGS["invalid_coord"] | FLAGS["zero_coord"])) == 0) & silver.lat.notna() & silver.lon.notna()).sum())
    expected = {
        "layers": layers,
        "cell_sums": {"map-fleet|homes: drivers per H3 cell": homes, "map-fleet|quality issues: flagged rows per H3 cell": flagged},
        "charts": [
            "quality_rules",
            "fleet_km",
            "fleet_utilisation",
            "fleet_soc",
            "risk_z",
            "risk_tiers",
            "station_kpis",
            "rel_uptime_pct",
            "rel_mtbf_hours",
            "rel_mttr_hours",
            "capacity_max_p_wait",
            "capacity_mean_utilisation",
            "fault_drivers_odds",
            "charging_plan_load",
            "model_soc_regressor",
            "model_soc_classifier",
            "model_energy",
            *(f"monitoring_{name}" for name in (cfg.ml.soc.registered_model, cfg.ml.soc.registered_classifier, cfg.ml.energy.registered_model)),
        ],
    }
    return path, expected

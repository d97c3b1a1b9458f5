"""The accuracy fleets: their settings, and their builds in processes of their own.

Each fleet is generated and run through the insight stages by `python -m jobs.pipeline` exactly as
a user runs it (conf/local.yaml, a JVM of its own). The builds share nothing with the test
session, so `tests/conftest.py` starts them in a background thread when the session's tests are
collected (`FleetBuilds`), at a lower CPU priority, and moves the accuracy tests to the end of the
session: the fleets build while the rest of the suite runs, on the CPU it leaves idle, and each
accuracy test waits only for what is not finished yet. Nothing is skipped or cached across
sessions (unless EVFA_ACCURACY_ROOT is set for local iteration).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

import pytest

from common.core.config import Config, load_config

ENV = "local"
PROJECT_ROOT = Path(__file__).resolve().parents[2]
COMMON = (
    "generator.vehicles=100",
    "generator.days=14",
    "generator.at_risk_share=0.16",
    "generator.offline_share=0.05",
    "generator.anomaly_rate=0.004",
)
FLEETS = {
    "delhi_mixed": (
        *COMMON,
        "generator.seed=101",
        "generator.region=delhi_ncr",
        "generator.hotspots=12",
        "generator.device_modes={continuous: 0.5, ignition_only: 0.3, bursty: 0.2}",
        "generator.part_time_share=0.1",
        "generator.early_start_share=0.15",
        "generator.away_night_share=0.1",
        "generator.multipath_rate=0.002",
    ),
    "nairobi_payd": (
        *COMMON,
        "generator.seed=202",
        "generator.region=nairobi",
        "generator.hotspots=12",
        "generator.layout=payd",
        "generator.timestamp_style=utc_z",
        "generator.network=false",
        "generator.device_modes={continuous: 0.25, ignition_only: 0.5, bursty: 0.25}",
        "generator.part_time_share=0.12",
        "generator.early_start_share=0.25",
        "generator.away_night_share=0.15",
        "generator.multipath_rate=0.003",
    ),
    "london_dst": (
        *COMMON,
        "generator.seed=303",
        "generator.region=london",
        "generator.start_date=2024-03-23",
        "generator.hotspots=12",
        "generator.output_format=csv",
        "generator.timestamp_style=local_offset",
        "generator.device_modes={continuous: 0.4, ignition_only: 0.4, bursty: 0.2}",
        "generator.part_time_share=0.08",
        "generator.early_start_share=0.1",
        "generator.away_night_share=0.12",
        "generator.multipath_rate=0.002",
    ),
}
# Fleets whose raw files are read through a shipped dataset mapping, as a user would.
MAPPED = {"nairobi_payd": ("conf/datasets/payd_fleet.yaml", "PAYD_FLEET_DIR")}
STAGES = "ingest,clean,residence,charging,hotspots,risk"
JOB_TIMEOUT_S = 3000
# Background builds yield the CPU to the test session (nice 10: ~1/10 of a core's share when both
# want it), so they use what the session leaves idle and slow the other tests little.
NICE = 10
KEEP_ENV = "EVFA_ACCURACY_ROOT"  # <folder>: keep the fleets there and reuse finished ones


def storage(root: Path) -> tuple[str, ...]:
    return (
        f"storage.root={root}/lakehouse",
        f"storage.restricted_root={root}/lakehouse/restricted",
        f"mlflow.tracking_uri=sqlite:///{root}/mlflow/mlflow.db",
        f"mlflow.artifact_location={root}/mlflow/artifacts",
    )


def config(root: Path, name: str) -> Config:
    files = [MAPPED[name][0]] if name in MAPPED else None
    return load_config(ENV, [*storage(root), *FLEETS[name]], dataset_files=files)


class FleetBuilds:
    """Builds the named fleets one after another in a background thread; `root(name)` waits for one.

    One build at a time: two would compete with each other and with the session for 2 cores."""

    def __init__(self, names: list[str], nice: int = NICE) -> None:
        keep = os.environ.get(KEEP_ENV)
        self._owned = keep is None
        self.base = Path(keep) if keep else Path(tempfile.mkdtemp(prefix="evfa-accuracy-"))
        self._nice = nice
        self._live: set[subprocess.Popen] = set()
        self._lock = threading.Lock()
        self._stopping = False
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="accuracy-fleets")
        self._futures: dict[str, Future[Path]] = {n: self._pool.submit(self._build, n) for n in names}

    def root(self, name: str) -> Path:
        """The fleet's folder once its build has finished (raises the build's failure)."""
        if name not in self._futures:  # not selected at collection time: build it now
            self._futures[name] = self._pool.submit(self._build, name)
        return self._futures[name].result()

    def close(self) -> None:
        """Stop unfinished builds (an interrupted or failed-fast session) and remove the fleets."""
        with self._lock:  # a build starting now sees _stopping, or is in _live and killed here
            self._stopping = True
            for proc in self._live:
                proc.kill()
        for f in self._futures.values():
            f.cancel()
        self._pool.shutdown(wait=True)
        if self._owned:
            shutil.rmtree(self.base, ignore_errors=True)

    def _build(self, name: str) -> Path:
        root = self.base / name
        root.mkdir(parents=True, exist_ok=True)
        done = root / "insights.done"
        if not done.exists():
            if name in MAPPED:  # the pipeline generates only when no input dataset is configured
                self._job(root, name, "jobs.generate")
                self._job(root, name, "jobs.pipeline", "--only", STAGES)
            else:  # one process (JVM) for both, as `make demo` runs them
                self._job(root, name, "jobs.pipeline", "--only", f"generate,{STAGES}")
            done.write_text(datetime.now(timezone.utc).isoformat())
        return root

    def _job(self, root: Path, name: str, module: str, *args: str) -> None:
        """`python -m <module> --env local ...` in a process (and JVM) of its own, as a user runs it:
        the fleets do not accumulate in the test session's driver, and each runs at the laptop
        configuration (conf/local.yaml), not the unit tests' 2 shuffle partitions."""
        confs = [a for c in (*storage(root), *FLEETS[name]) for a in ("--conf", c)]
        cmd = [sys.executable, "-m", module, "--env", ENV, *args, *confs]
        env = {**os.environ, "PYSPARK_PYTHON": sys.executable}
        if name in MAPPED and module == "jobs.pipeline":  # the generator writes the operator's export
            cmd[5:5] = ["--inputs", MAPPED[name][0]]
            env[MAPPED[name][1]] = f"{root}/lakehouse/raw"
        log = root / f"{module.split('.')[-1]}.log"
        with log.open("w") as out:
            with self._lock:
                if self._stopping:
                    raise RuntimeError("accuracy fleet builds stopped")
                proc = subprocess.Popen(["nice", "-n", str(self._nice), *cmd], cwd=PROJECT_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
                self._live.add(proc)
            try:
                code = proc.wait(timeout=JOB_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                code = proc.wait()
            finally:
                with self._lock:
                    self._live.discard(proc)
        if code != 0:
            tail = "".join(log.read_text().splitlines(True)[-40:])
            raise AssertionError(f"{name}: {' '.join(cmd[:6])} exited {code}:\n{tail}")


BUILDS = pytest.StashKey[FleetBuilds]()


def start(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Start the builds of the fleets the collected accuracy tests use (tests/conftest.py)."""
    selected = _fleets(items)
    names = [n for n in FLEETS if n in selected]  # the order the tests use them
    if names and BUILDS not in config.stash:
        config.stash[BUILDS] = FleetBuilds(names)
        config.add_cleanup(config.stash[BUILDS].close)


def _fleets(items: list[pytest.Item]) -> set[str]:
    out = set()
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec is not None and "fleet" in callspec.params and item.get_closest_marker("accuracy"):
            out.add(callspec.params["fleet"])
    return out

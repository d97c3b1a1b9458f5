"""Personal data in outputs (slow): the residence job's logs and the HTML report never show an exact
home coordinate unless `report.show_exact_residences` is set. Case `no_exact_homes_in_outputs` of
docs/ROBUSTNESS.md; the access path of the data is docs/PRIVACY.md.

The residence job runs as a subprocess (its real stdout/stderr, JVM included) on a copy of the
fleet's silver table; the report is built in-process with its logs captured. A home "appears"
when its latitude or longitude is written to 5+ decimals, or both to 4 decimals (rounded or
truncated), anywhere in the text.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from common.io import tables
from tests.conftest import PROJECT_ROOT, make_config

pytestmark = pytest.mark.slow


def renderings(value: float, decimals: int) -> set[str]:
    """How a coordinate can be printed with `decimals` decimals (rounded or truncated)."""
    factor = 10**decimals
    truncated = math.trunc(value * factor) / factor
    return {f"{value:.{decimals}f}", f"{truncated:.{decimals}f}"}


def leaks(text: str, homes: list[tuple[str, float, float]]) -> list[str]:
    found = []
    for vehicle, lat, lon in homes:
        if lat is None or lon is None:
            continue
        fine = [s for d in (5, 6, 7, 8) for s in renderings(lat, d) | renderings(lon, d) if s in text]
        both4 = any(s in text for s in renderings(lat, 4)) and any(s in text for s in renderings(lon, 4))
        if fine or both4:
            found.append(f"{vehicle}: ({lat}, {lon}) {fine or 'lat and lon to 4 decimals'}")
    return found


def test_leak_detector_finds_exact_coordinates():
    homes = [("v1", 28.6139123, 77.2090456)]
    assert leaks("home at 28.61391, 77.20905", homes)
    assert leaks("lat 28.6139 lon 77.2090", homes)
    assert not leaks("area 28.6150, 77.2100 (1 km cell)", homes)


def test_logs_and_report_never_show_exact_homes(spark, fleet_silver, tmp_path, caplog, capsys):
    from jobs.report import build_report
    from jobs.residence import format_summary

    cfg = make_config(tmp_path)
    shutil.copytree(fleet_silver.storage.path("silver.telematics_clean"), cfg.storage.path("silver.telematics_clean"))
    truth = [(r["vehicle_id"], r["home_lat"], r["home_lon"]) for r in tables.read(spark, fleet_silver, "truth.homes").collect()]

    cmd = [
        sys.executable, "-m", "jobs.residence", "--env", "test", "--log-level", "DEBUG",
        "--conf", f"storage.root={tmp_path}/lakehouse",
        "--conf", f"storage.restricted_root={tmp_path}/lakehouse/restricted",
        "--conf", f"mlflow.tracking_uri=sqlite:///{tmp_path}/mlflow/mlflow.db",
    ]  # fmt: skip
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable}
    job = subprocess.run(cmd, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=3600)
    job_output = job.stdout + job.stderr
    assert job.returncode == 0, job_output[-3000:]

    residences = tables.read(spark, cfg, "restricted.residences")
    found = [(r["vehicle_id"], r["home_lat"], r["home_lon"]) for r in residences.collect()]
    assert any(lat is not None for _v, lat, _lon in found), "no home found: nothing to protect in this run"
    homes = truth + found

    caplog.set_level(logging.DEBUG)
    cfg.report.output_dir = str(tmp_path / "reports")
    html_path = build_report(spark, cfg, run_id="privacy")
    html = Path(html_path).read_text(encoding="utf-8")
    report_output = caplog.text + capsys.readouterr().out
    assert "coarsened" in html  # the residence section is there, coarsened

    problems = {"residence job output": leaks(job_output, homes), "report HTML": leaks(html, homes), "report logs": leaks(report_output, homes)}
    print({k: len(v) for k, v in problems.items()}, f"{len(truth)} true homes, {sum(1 for h in found if h[1] is not None)} found")
    assert not any(problems.values()), problems

    # Control: with exact output explicitly enabled, the job's printed summary does show homes, so
    # the detector above would have caught them.
    rows = residences.collect()
    assert leaks(format_summary(rows, cfg.report.residence_cell_m, exact=True), found)

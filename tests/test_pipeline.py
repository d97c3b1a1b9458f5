"""The pipeline runner: stage selection, date-range hand-off, failure reporting; `--help` of every job."""

from __future__ import annotations

import argparse
import importlib
from datetime import date
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from common.core.config import DatasetSpec
from common.io import tables
from common.io.cli import StageReport
from jobs import pipeline
from jobs.pipeline import STAGE_NAMES, StageFailed, run_pipeline, select_stages

JOBS = sorted(p.stem for p in (Path(__file__).resolve().parents[1] / "jobs").glob("*.py") if p.stem != "__init__")


@pytest.mark.parametrize("job", JOBS)
def test_every_job_help_lists_its_options_with_defaults(job, capsys):
    module = importlib.import_module(f"jobs.{job}")
    with pytest.raises(SystemExit) as exc:
        module.main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "--env" in out and "--conf" in out and "(default: local)" in out, out


def test_a_job_runs_alone_under_spark_submit():
    """`spark-submit jobs/<job>.py` (the venv's launcher, as README shows) reaches the job's CLI."""
    import os
    import subprocess
    import sys

    bin_dir = os.path.dirname(sys.executable)
    env = {**os.environ, "PATH": bin_dir + os.pathsep + os.environ.get("PATH", "")}
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run(
        [os.path.join(bin_dir, "spark-submit"), str(root / "jobs" / "clean.py"), "--help"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "--start-date" in out.stdout and "(default: local)" in out.stdout


def _names(stages) -> list[str]:
    return [s.name for s in stages]


def test_select_stages_only_from_skip_in_dependency_order(cfg):
    # maintain (Delta upkeep) runs only with maintain.enabled (conf/emr.yaml, conf/glue.yaml); then
    # catalog (tables by name, which skips itself with catalog.metastore none) ends every run
    assert _names(select_stages(cfg, None, None, None)) == [n for n in STAGE_NAMES if n != "maintain"] and list(STAGE_NAMES[-2:]) == ["maintain", "catalog"]
    upkeep = cfg.model_copy(deep=True)
    upkeep.maintain.enabled = True
    assert _names(select_stages(upkeep, None, "train", None)) == ["train", "score", "charging_plan", "report", "export", "maintain", "catalog"]
    assert _names(select_stages(cfg, "risk,clean", None, None)) == ["clean", "risk"]  # dependency order, not CLI order
    assert _names(select_stages(cfg, None, "train", None)) == ["train", "score", "charging_plan", "report", "export", "catalog"]
    assert _names(select_stages(cfg, None, "kpis", "report,export,charging")) == [
        "kpis",
        "residence",
        "hotspots",
        "risk",
        "stations",
        "reliability",
        "fault_analysis",
        "rollout",
        "train",
        "score",
        "charging_plan",
        "catalog",
    ]
    assert _names(select_stages(cfg, None, "kpis", "report,charging"))[-4:] == ["score", "charging_plan", "export", "catalog"]  # skipping the report keeps the extracts
    assert _names(select_stages(cfg, "kpis", "residence", None)) == []  # --from after the only stage: nothing
    with pytest.raises(SystemExit, match="unknown stage.*kpi.*stages are: generate"):
        select_stages(cfg, "kpi", None, None)


def test_generate_runs_only_without_configured_inputs(cfg):
    with_inputs = cfg.model_copy(deep=True)
    with_inputs.inputs.telematics = [DatasetSpec(source_timezone="UTC", name="fleet", path="raw/telematics/*.csv")]
    assert "generate" in _names(select_stages(cfg, None, None, None))
    assert "generate" not in _names(select_stages(with_inputs, None, None, None))
    assert _names(select_stages(with_inputs, "generate,ingest", None, None)) == ["ingest"]


def _args(**kw) -> argparse.Namespace:
    base = dict(only=None, from_stage=None, skip=None, start_date=None, end_date=None, regenerate=False)
    return argparse.Namespace(**(base | kw))


def test_dates_reach_stages_that_take_them_and_failure_names_stage_and_inputs(spark, cfg, monkeypatch, capsys):
    """kpis gets the date range; hotspots (fleet-wide) does not; a failing stage is named with its
    inputs, the summary of earlier stages is printed, and their tables keep their versions."""
    calls = {}

    def fake_kpis(spark_, cfg_, start_date=None, end_date=None):
        calls["kpis"] = (start_date, end_date)
        tables.write(spark_.range(3).withColumn("local_date", F.lit("2024-03-04")), cfg_, "gold.fleet_daily_kpis")
        return StageReport("kpis", rows_in=3, rows_out=3)

    def fake_hotspots(spark_, cfg_):
        calls["hotspots"] = ()
        raise ValueError("no usable points in silver.telematics_clean")

    monkeypatch.setattr(importlib.import_module("jobs.kpis"), "run_kpis", fake_kpis)
    monkeypatch.setattr(importlib.import_module("jobs.hotspots"), "run_hotspots", fake_hotspots)
    run_cfg = cfg.model_copy(deep=True)
    run_cfg.storage.root = str(Path(cfg.storage.resolve(cfg.storage.root)) / "pipeline_failure")
    run_cfg.storage.restricted_root = None  # <root>/restricted: never the shared fleet's traces
    tables.write(spark.range(1), run_cfg, "silver.telematics_clean")  # the stages' required input exists

    reports = run_pipeline(spark, run_cfg, _args(only="kpis", start_date=date(2024, 3, 4), end_date=date(2024, 3, 5)))
    assert calls["kpis"] == (date(2024, 3, 4), date(2024, 3, 5))
    assert reports[0].tables["gold.fleet_daily_kpis"] == tables.version(spark, run_cfg, "gold.fleet_daily_kpis")
    before = tables.version(spark, run_cfg, "gold.fleet_daily_kpis")

    with pytest.raises(StageFailed) as exc:
        run_pipeline(spark, run_cfg, _args(only="kpis,hotspots", start_date=date(2024, 3, 4)))
    msg = str(exc.value)
    assert "stage 'hotspots' failed" in msg and "silver.telematics_clean" in msg and "no usable points" in msg
    assert "rerun with --from hotspots" in msg
    assert calls["hotspots"] == ()  # called without dates: fleet-wide stages recompute in full
    out = capsys.readouterr().out
    assert "kpis" in out and "gold.fleet_daily_kpis" in out  # the summary of what finished
    assert tables.version(spark, run_cfg, "gold.fleet_daily_kpis") == before + 1  # kpis' own rerun, nothing else
    assert tables.read(spark, run_cfg, "gold.fleet_daily_kpis").count() == 3


def test_where_things_are_follows_the_configured_report_folder(cfg):
    moved = cfg.model_copy(deep=True)
    moved.report.output_dir = "/data/evfa-reports"
    assert "Report:  /data/evfa-reports/latest/index.html" in pipeline.where_things_are(moved)


def test_absent_inputs_skip_stages_with_the_reason_and_the_report_says_why(spark, cfg, tmp_path):
    """A telematics-only lakehouse: network stages are skipped and named, later stages still run, the
    report's sections say why they are empty; an upstream skip is named as the root cause."""
    run_cfg = cfg.model_copy(deep=True)
    run_cfg.storage.root = str(tmp_path / "lakehouse")
    run_cfg.storage.restricted_root = None
    run_cfg.report.output_dir = str(tmp_path / "reports")
    reports = {r.stage: r for r in run_pipeline(spark, run_cfg, _args(only="clean,kpis,stations,reliability,report"))}
    assert reports["clean"].status == "skipped"
    assert reports["clean"].notes == ["no bronze.telematics - configure inputs.telematics to enable"]
    assert reports["kpis"].notes == ["no silver.telematics_clean - run the clean stage first (clean was skipped: no bronze.telematics - configure inputs.telematics to enable)"]
    assert reports["stations"].notes == ["no bronze.stations - configure inputs.stations to enable"]
    assert reports["reliability"].notes == ["no bronze.charger_status or bronze.charging_sessions - configure inputs.charger_status or inputs.charging_sessions to enable"]
    assert reports["report"].status == "ok"
    html = (tmp_path / "reports" / "latest" / "index.html").read_text()
    assert "No data: the stations stage was skipped (no bronze.stations - configure inputs.stations to enable)." in html
    assert "No data: the kpis stage was skipped" in html
    runs = tables.read(spark, run_cfg, "audit.stage_runs").orderBy("position").select("stage", "status").collect()
    assert [(r.stage, r.status) for r in runs] == [("clean", "skipped"), ("kpis", "skipped"), ("stations", "skipped"), ("reliability", "skipped"), ("report", "ok")]


def test_a_job_alone_without_its_input_exits_99_with_the_reason(tmp_path):
    """spark-submit of one job on a lakehouse without its input: a clear line and exit code 99
    (Airflow's skip code), no stack trace."""
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    out = subprocess.run(
        [sys.executable, "-m", "jobs.stations", "--env", "test", "--conf", f"storage.root={tmp_path}/lakehouse",
         "--conf", f"storage.restricted_root={tmp_path}/restricted"],
        cwd=root, env=dict(os.environ), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert out.returncode == 99, out.stderr[-2000:]
    assert "skipped: no bronze.stations - configure inputs.stations to enable" in out.stderr
    assert "Traceback" not in out.stderr

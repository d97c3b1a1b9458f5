"""Scoring skips a model the champion gate refused, with the gate's reason (real MLflow registry)."""

from __future__ import annotations

import pytest

from common import tracking
from common.cli import StageReport, StageSkipped
from jobs.score import available_models


def _version(client, name, tags=None, alias=None, source="file:///nowhere/model"):
    try:
        client.create_registered_model(name)
    except Exception:  # noqa: BLE001 - already registered in this store
        pass
    mv = client.create_model_version(name, source=source, tags=tags or {})
    if alias:
        client.set_registered_model_alias(name, alias, mv.version)
    return mv


def test_model_without_champion_is_skipped_with_the_gate_reason(fresh_cfg):
    cfg = fresh_cfg
    client = tracking.configure(cfg)
    _version(client, cfg.ml.soc.registered_model, alias="champion")
    _version(client, cfg.ml.soc.registered_classifier, alias="champion")
    reason = "does not beat baseline(s): physics test_trip_wape_pct=15.0 vs challenger 18.8 (lower is better)"
    _version(client, cfg.ml.energy.registered_model, tags={"challenger_status": "rejected", "gate_reason": reason})
    report = StageReport("score")
    assert available_models(client, cfg, ("soc", "energy"), report) == ("soc",)
    assert report.notes == [f"skipped energy scoring: evfa_energy_per_km has no @champion: the gate refused v1: {reason}"]


def test_no_model_at_all_skips_the_stage_naming_each(fresh_cfg):
    client = tracking.configure(fresh_cfg)
    with pytest.raises(StageSkipped) as exc:
        available_models(client, fresh_cfg, ("soc", "energy"), StageReport("score"))
    msg = str(exc.value)
    assert "evfa_soc_drop_60m has no registered version" in msg and "evfa_energy_per_km has no registered version" in msg


def test_drop_forecast_scores_without_the_event_classifier(fresh_cfg):
    """The regressor has a champion, the classifier was refused: soc still scores, the reason is noted."""
    cfg = fresh_cfg
    client = tracking.configure(cfg)
    _version(client, cfg.ml.soc.registered_model, alias="champion")
    _version(client, cfg.ml.soc.registered_classifier, tags={"challenger_status": "rejected", "gate_reason": "no positive in the test window"})
    report = StageReport("score")
    assert available_models(client, cfg, ("soc",), report) == ("soc",)
    assert report.notes == [
        "skipped the drop-event probability: evfa_soc_drop_ge10_60m has no @champion: the gate refused v1: no positive in the test window"
    ]

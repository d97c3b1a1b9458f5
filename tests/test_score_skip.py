"""Scoring skips a model the champion gate refused, with the gate's reason, and refuses to load a
champion that is not an XGBoost JSON/UBJ model (a pickled pyfunc runs code when loaded).
Real MLflow tracking store and registry; the models are real, tiny XGBoost / pyfunc models."""

from __future__ import annotations

import pytest

from common.io.cli import StageReport, StageSkipped
from common.ml import tracking
from jobs.score import available_models


def _logged(kind: str = "xgboost") -> str:
    """A real model logged to the configured tracking store; returns its artifact URI."""
    import mlflow
    import numpy as np
    import pandas as pd
    import xgboost as xgb

    with mlflow.start_run():
        if kind == "xgboost":
            x = pd.DataFrame({"x": np.arange(20.0)})
            booster = xgb.train({"max_depth": 1}, xgb.DMatrix(x, label=x.x), num_boost_round=2)
            signature = mlflow.models.infer_signature(x, booster.predict(xgb.DMatrix(x)))
            info = mlflow.xgboost.log_model(booster, name="model", model_format="json", signature=signature)
        else:  # a cloudpickled python model: loading it would run its code

            class Echo(mlflow.pyfunc.PythonModel):
                def predict(self, context, model_input):
                    return model_input.iloc[:, 0]

            info = mlflow.pyfunc.log_model(name="model", python_model=Echo())
    return info.model_uri


def _version(client, name, tags=None, alias=None, kind="xgboost"):
    try:
        client.create_registered_model(name)
    except Exception:  # noqa: BLE001 - already registered in this store
        pass
    mv = client.create_model_version(name, source=_logged(kind), tags=tags or {})
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
    assert report.notes == ["skipped the drop-event probability: evfa_soc_drop_ge10_60m has no @champion: the gate refused v1: no positive in the test window"]


def test_pickled_champion_is_refused_never_loaded(fresh_cfg):
    """A pyfunc champion (cloudpickle) is not scored: the reason names its loader; the XGBoost JSON
    champions of the same store are scored."""
    cfg = fresh_cfg
    client = tracking.configure(cfg)
    _version(client, cfg.ml.soc.registered_model, alias="champion")
    _version(client, cfg.ml.soc.registered_classifier, alias="champion")
    _version(client, cfg.ml.energy.registered_model, alias="champion", kind="pickle")
    report = StageReport("score")
    assert available_models(client, cfg, ("soc", "energy"), report) == ("soc",)
    assert report.notes == [
        "skipped energy scoring: evfa_energy_per_km@champion (v1) refused: its pyfunc loader is 'mlflow.pyfunc.model', not 'mlflow.xgboost' (pickled or custom code is never loaded)"
    ]
    # and the loader itself refuses it, whoever calls it
    from common.ml.champion import NoChampion
    from common.ml.champion import load_champion as champion

    with pytest.raises(NoChampion, match="refused: its pyfunc loader"):
        champion(client, cfg, cfg.ml.energy.registered_model)
    version, _uri, inputs, _tags, _metadata = champion(client, cfg, cfg.ml.soc.registered_model)
    assert (version, inputs) == ("1", ["x"])

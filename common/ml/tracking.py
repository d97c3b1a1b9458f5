"""MLflow helpers: tracking setup, run logging, plots, and the registry's champion gate.

Embedded default (conf/base.yaml `mlflow`): a SQLite tracking/registry store and an artifact
folder under the project's `lakehouse/mlflow/`; `make mlflow-ui` serves both on localhost.
On EMR `mlflow.tracking_uri` comes from `${MLFLOW_TRACKING_URI}` (a remote tracking server) and
`mlflow.artifact_location` is an S3 prefix (conf/emr.yaml).

Registry policy (`promote_if_better`): every training run registers a new model version. The
alias `champion` (ml.champion_alias) moves to it only if, on the same test window, it beats
every baseline and the current champion on the model's primary metric, and every baseline on its
secondary checks (`GateCheck`: the event classifier's PR-AUC and Brier score, which judge a rare
event where ROC-AUC alone does not); otherwise the version is tagged `challenger_status=rejected`
with the reason. Nothing here reads or writes Delta tables.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, TypeGuard

import mlflow
import pandas as pd
from mlflow.tracking import MlflowClient

from common.core.config import PROJECT_ROOT, Config
from common.ml.train import gain_importance

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------
# Setup
# --------------------------------------------------------------------------------------------
def _absolute_uri(uri: str) -> str:
    """sqlite:///relative/path and plain relative folders resolve against the project root.

    MLflow resolves them against the process's working directory, which differs between
    `make`, pytest and spark-submit; the project root keeps one store per checkout."""
    if uri.startswith(("arn:", "databricks")):  # a SageMaker tracking server (sagemaker-mlflow) or Databricks
        return uri
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        rel = uri[len("sqlite:///") :]
        path = Path(rel) if os.path.isabs(rel) else PROJECT_ROOT / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{path}"
    if uri.startswith("sqlite:////"):
        Path(uri[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
        return uri
    if "://" not in uri:
        path = Path(uri) if os.path.isabs(uri) else PROJECT_ROOT / uri
        path.mkdir(parents=True, exist_ok=True)
        return path.as_uri()
    return uri


def tracking_uri(cfg: Config) -> str:
    """``mlflow.tracking_uri``, relative SQLite paths and folders resolved against the project root.

    Parameters
    ----------
    cfg : Config

    Returns
    -------
    str
    """
    return _absolute_uri(cfg.mlflow.tracking_uri)


def registry_uri(cfg: Config) -> str:
    """``mlflow.registry_uri`` resolved like `tracking_uri`, else the tracking URI.

    Parameters
    ----------
    cfg : Config

    Returns
    -------
    str
    """
    return _absolute_uri(cfg.mlflow.registry_uri) if cfg.mlflow.registry_uri else tracking_uri(cfg)


def configure(cfg: Config) -> MlflowClient:
    """Point this process at the configured tracking/registry store, create the experiment with its artifact location.

    Child processes (spark_udf workers, `mlflow models serve`) follow through MLFLOW_TRACKING_URI
    and MLFLOW_REGISTRY_URI; the experiment becomes the active one.

    Parameters
    ----------
    cfg : Config
        The ``mlflow`` section.

    Returns
    -------
    MlflowClient
        A client of the configured stores.
    """
    t_uri, r_uri = tracking_uri(cfg), registry_uri(cfg)
    mlflow.set_tracking_uri(t_uri)
    mlflow.set_registry_uri(r_uri)
    os.environ["MLFLOW_TRACKING_URI"] = t_uri
    os.environ["MLFLOW_REGISTRY_URI"] = r_uri
    client = MlflowClient(tracking_uri=t_uri, registry_uri=r_uri)
    if client.get_experiment_by_name(cfg.mlflow.experiment) is None:
        client.create_experiment(cfg.mlflow.experiment, artifact_location=_absolute_uri(cfg.mlflow.artifact_location))
    mlflow.set_experiment(cfg.mlflow.experiment)
    return client


# --------------------------------------------------------------------------------------------
# Logging helpers
# --------------------------------------------------------------------------------------------
def log_metrics(metrics: Mapping[str, float | None], prefix: str = "") -> None:
    """Log finite metrics; None/NaN (e.g. AUC of a window without events) are skipped with a tag.

    Parameters
    ----------
    metrics : Mapping[str, float or None]
        Metric name -> value.
    prefix : str
        Put before every name.
    """
    clean = {}
    for key, value in metrics.items():
        if value is None or value != value:  # NaN
            mlflow.set_tag(f"metric_missing.{prefix}{key}", "undefined on this window")
            continue
        clean[f"{prefix}{key}"] = float(value)
    if clean:
        mlflow.log_metrics(clean)


def log_table_versions(versions: Mapping[str, int | None], cfg: Config | None = None) -> None:
    """Delta versions of the tables a model was trained on: params (searchable), a JSON artifact and MLflow datasets.

    With `cfg`, each existing table is also logged as an MLflow dataset input (context
    ``training``): a `MetaDataset` whose source is the Delta table's path and version, so the run
    page lists the tables. `mlflow.data.load_delta` is not used because its dataset profile counts
    the rows through a Python RDD pass over the whole table.

    Parameters
    ----------
    versions : Mapping[str, int or None]
        Table name -> Delta version (None is logged as ``none``).
    cfg : Config, optional
        Gives the tables' paths (``storage``).
    """
    from mlflow.data.dataset import Dataset
    from mlflow.data.delta_dataset_source import DeltaDatasetSource
    from mlflow.data.meta_dataset import MetaDataset

    mlflow.log_params({f"table_version.{name}": "none" if v is None else v for name, v in versions.items()})
    mlflow.log_dict(dict(versions), "inputs/delta_table_versions.json")
    if cfg is None:
        return
    # MetaDataset leaves `profile` (abstract in Dataset) unimplemented: Dataset is not an ABC at run
    # time, so it instantiates and its profile is None; mypy only sees the abstract declaration
    datasets: list[Dataset | None] = [
        MetaDataset(DeltaDatasetSource(path=cfg.storage.path(name), delta_table_version=v), name=f"{name}@v{v}", digest=hashlib.sha256(f"{cfg.storage.path(name)}@{v}".encode()).hexdigest()[:8])  # type: ignore[abstract]
        for name, v in versions.items()
        if v is not None
    ]
    if datasets:
        # the version is a tag too: DeltaDatasetSource drops a version of 0 from its JSON (a table written once)
        tags: list[dict[str, str] | None] = [{"delta_table_version": str(v)} for v in versions.values() if v is not None]
        mlflow.log_inputs(datasets, contexts=["training"] * len(datasets), tags_list=tags)


_EVAL_METRIC = re.compile(r"^(?P<group>group_)?(?:baseline_(?P<baseline>.+?)_)?(?P<truth>truth_)?test_(?P<metric>.+)$")


def evaluation_table(metrics: Mapping[str, float]) -> pd.DataFrame:
    """The run's test metrics as a table: evaluation set x predictor x reference x metric.

    Parameters
    ----------
    metrics : Mapping[str, float]
        The metrics logged on a model's run (``test_*``, ``baseline_<name>_test_*``, ``group_*``,
        ``*truth_test_*``); others (validation, training, seconds) are left out.

    Returns
    -------
    pandas.DataFrame
        Columns evaluation_set (``time split`` or ``unseen vehicles``), predictor (``model`` or
        a baseline), reference (``observed`` or ``truth``), metric, value.
    """
    rows = []
    for key, value in metrics.items():
        m = _EVAL_METRIC.match(key)
        if m is None or not _known(value):
            continue
        rows.append(
            {
                "evaluation_set": "unseen vehicles" if m["group"] else "time split",
                "predictor": m["baseline"] or "model",
                "reference": "truth" if m["truth"] else "observed",
                "metric": m["metric"],
                "value": float(value),
            }
        )
    return pd.DataFrame(rows, columns=["evaluation_set", "predictor", "reference", "metric", "value"])


def log_evaluation_table(metrics: Mapping[str, float]) -> None:
    """`evaluation_table` as the run artifact ``evaluation/metrics.json`` (MLflow's table view).

    Parameters
    ----------
    metrics : Mapping[str, float]
        The model's run metrics.
    """
    table = evaluation_table(metrics)
    if len(table):
        mlflow.log_table(table, "evaluation/metrics.json")


def log_figure(fig, artifact_file: str) -> None:
    """Log a matplotlib figure on the active run, then close it.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
    artifact_file : str
        Artifact path, e.g. ``plots/residuals.png``.
    """
    import matplotlib.pyplot as plt

    mlflow.log_figure(fig, artifact_file)
    plt.close(fig)


# Rows behind a plot: enough for a scatter or a calibration curve, small enough for the driver.
PLOT_ROWS = 20_000


def plot_sample(df, columns: list[str], seed: int, rows: int = PLOT_ROWS):
    """A seeded sample of at most ``rows`` rows of ``df[columns]`` as a pandas frame (for plots).

    Parameters
    ----------
    df : DataFrame
    columns : list of str
    seed : int
    rows : int

    Returns
    -------
    pandas.DataFrame
    """
    n = df.count()
    frac = min(1.0, rows / n) if n else 1.0
    return df.select(*columns).sample(fraction=frac, seed=seed).limit(rows).toPandas()


def log_feature_importance(booster, title: str) -> None:
    """Log the booster's total-gain importance per feature: feature_importance.json and a bar chart.

    Parameters
    ----------
    booster : xgboost.Booster
        With feature names.
    title : str
        Chart title.
    """
    imp = gain_importance(booster)
    mlflow.log_dict(imp, "feature_importance.json")
    log_figure(feature_importance_figure(imp, title), "plots/feature_importance.png")


def feature_importance_figure(importance: Mapping[str, float], title: str):
    """Horizontal bar chart of XGBoost 'gain' importance.

    Parameters
    ----------
    importance : Mapping[str, float]
        Feature -> gain (`gain_importance`).
    title : str

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    items = sorted(importance.items(), key=lambda kv: kv[1])
    fig, ax = plt.subplots(figsize=(7, max(3, 0.28 * len(items))))
    ax.barh([k for k, _ in items], [v for _, v in items], color="#3b7dd8")
    ax.set_xlabel("gain")
    ax.set_title(title)
    fig.tight_layout()
    return fig


def residual_figure(y_true, y_pred, title: str, unit: str):
    """Predicted vs actual and residual histogram (sampled test rows).

    Parameters
    ----------
    y_true, y_pred : array-like
        Actual and predicted values, in ``unit``.
    title : str
    unit : str
        Unit named on the axes (e.g. ``kWh/km``, ``SOC points``).

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    y_true = np.asarray(y_true, dtype=float)
    y_pred = np.asarray(y_pred, dtype=float)
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4))
    a1.scatter(y_true, y_pred, s=3, alpha=0.3)
    lo, hi = float(np.nanmin([y_true.min(), y_pred.min()])), float(np.nanmax([y_true.max(), y_pred.max()]))
    a1.plot([lo, hi], [lo, hi], "k--", lw=1)
    a1.set_xlabel(f"actual ({unit})")
    a1.set_ylabel(f"predicted ({unit})")
    a2.hist(y_pred - y_true, bins=60, color="#d8773b")
    a2.set_xlabel(f"residual = predicted - actual ({unit})")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def calibration_figure(y_true, prob, title: str, n_bins: int = 10):
    """Reliability diagram (sklearn.calibration.calibration_curve) with the score histogram.

    Parameters
    ----------
    y_true : array-like
        0/1 labels.
    prob : array-like
        Predicted probabilities (0-1).
    title : str
    n_bins : int
        Quantile bins of the reliability curve.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from sklearn.calibration import calibration_curve

    y_true = np.asarray(y_true, dtype=int)
    prob = np.asarray(prob, dtype=float)
    frac_pos, mean_pred = calibration_curve(y_true, prob, n_bins=n_bins, strategy="quantile")
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4))
    a1.plot([0, 1], [0, 1], "k--", lw=1)
    a1.plot(mean_pred, frac_pos, "o-")
    a1.set_xlabel("mean predicted probability")
    a1.set_ylabel("observed frequency")
    a2.hist(prob, bins=40, color="#3b7dd8")
    a2.set_xlabel("predicted probability")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def xgb_model_signature(example_features, example_output):
    """The MLflow model signature of an example input and the booster's output on it.

    Parameters
    ----------
    example_features : pandas.DataFrame
        Example feature rows (float64).
    example_output : numpy.ndarray
        The booster's predictions on them.

    Returns
    -------
    mlflow.models.ModelSignature
    """
    from mlflow.models import infer_signature

    return infer_signature(example_features, example_output)


# --------------------------------------------------------------------------------------------
# Registry: register every run, move the champion alias only for a better model
# --------------------------------------------------------------------------------------------
def _known(value: float | None) -> TypeGuard[float]:
    """A baseline figure the gate can compare with: not None and not NaN (an AUC of one class)."""
    return value is not None and not math.isnan(value)


class GateCheck(NamedTuple):
    """A secondary metric the challenger must also win against every baseline.

    Attributes
    ----------
    metric : str
        Run-metric name (e.g. ``test_pr_auc``).
    value : float
        The challenger's value on the test window.
    higher_is_better : bool
    baselines : Mapping[str, float]
        Baseline name -> its value on the same rows (None and NaN values are skipped).
    ties_pass : tuple of str
        Baselines an exact tie with passes (the energy model predicts physics itself for vehicles
        without history, so on such unseen vehicles it ties physics by construction).
    """

    metric: str
    value: float
    higher_is_better: bool
    baselines: Mapping[str, float | None]
    ties_pass: tuple[str, ...] = ()


@dataclass
class GateResult:
    """The registry gate's decision on a challenger version.

    Attributes
    ----------
    name : str
        Registered model name.
    version : str
        The challenger's version.
    promoted : bool
        The alias moved to it.
    reason : str
        The decision in words.
    previous_champion : str or None
        The champion version when the gate ran; None without one.
    metric : str
        The gate metric's name.
    value : float
        The challenger's ``metric`` (in the metric's unit).
    champion_value : float or None
        The champion's ``metric`` on the same test window; None without one or when it could not score.
    baseline_values : dict[str, float]
        Baseline name -> its ``metric``.
    checks : tuple of GateCheck
        The secondary checks and their figures.
    """

    name: str
    version: str
    promoted: bool
    reason: str
    previous_champion: str | None
    metric: str
    value: float
    champion_value: float | None
    baseline_values: dict[str, float]
    checks: tuple[GateCheck, ...] = ()

    def as_tags(self) -> dict[str, str]:
        """The decision as model-version tags.

        Returns
        -------
        dict[str, str]
            challenger_status (``champion`` or ``rejected``), gate_reason, gate_metric, gate_value,
            gate_baselines (``name=value, ...``) and, with secondary checks, gate_checks
            (``metric=value [baseline=value, ...]; ...``).
        """
        tags = {
            "challenger_status": "champion" if self.promoted else "rejected",
            "gate_reason": self.reason,
            "gate_metric": self.metric,
            "gate_value": f"{self.value:.6g}",
            "gate_baselines": ", ".join(f"{b}={v:.6g}" for b, v in self.baseline_values.items()),
        }
        if self.checks:
            tags["gate_checks"] = "; ".join(f"{c.metric}={c.value:.6g} [" + ", ".join(f"{b}={v:.6g}" for b, v in c.baselines.items() if _known(v)) + "]" for c in self.checks)
        return tags


def current_champion(client: MlflowClient, name: str, alias: str) -> Any | None:
    """The ModelVersion behind `name@alias`, or None when the model or alias does not exist.

    Parameters
    ----------
    client : MlflowClient
    name : str
        Registered model name.
    alias : str

    Returns
    -------
    mlflow.entities.model_registry.ModelVersion or None
    """
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


# The only model format scoring loads: XGBoost's own JSON/UBJ through the mlflow.xgboost loader.
# A pyfunc model (python_function with cloudpickle, a custom loader_module) runs arbitrary code
# when it is unpickled, so a champion in any other format is refused, never loaded.
SAFE_LOADER = "mlflow.xgboost"
SAFE_XGBOOST_FORMATS = ("json", "ubj")


def unsafe_model_reason(flavors: dict) -> str | None:
    """Why a model with these MLmodel flavors must not be loaded, or None when it is safe to load.

    Parameters
    ----------
    flavors : dict
        The MLmodel ``flavors`` (`mlflow.models.get_model_info`).

    Returns
    -------
    str or None
    """
    pyfunc = flavors.get("python_function") or {}
    loader = pyfunc.get("loader_module")
    if loader != SAFE_LOADER:
        return f"its pyfunc loader is {loader!r}, not {SAFE_LOADER!r} (pickled or custom code is never loaded)"
    fmt = (flavors.get("xgboost") or {}).get("model_format")
    if fmt not in SAFE_XGBOOST_FORMATS:
        return f"its xgboost model format is {fmt!r}, not one of {SAFE_XGBOOST_FORMATS} (pickle is never loaded)"
    return None


def champion_refusal(client: MlflowClient, name: str, alias: str) -> str | None:
    """None when `name@alias` exists and is safe to load; otherwise why it is not scored.

    Parameters
    ----------
    client : MlflowClient
    name : str
        Registered model name.
    alias : str

    Returns
    -------
    str or None
        `why_no_champion`, the refusal (`unsafe_model_reason`), or None.
    """
    import mlflow

    mv = current_champion(client, name, alias)
    if mv is None:
        return why_no_champion(client, name, alias)
    reason = unsafe_model_reason(mlflow.models.get_model_info(f"models:/{name}/{mv.version}").flavors)
    return f"{name}@{alias} (v{mv.version}) refused: {reason}" if reason else None


def why_no_champion(client: MlflowClient, name: str, alias: str) -> str:
    """Why `name@alias` does not exist: no registered version yet, or the gate's reason on the newest one.

    Parameters
    ----------
    client : MlflowClient
    name : str
        Registered model name.
    alias : str

    Returns
    -------
    str
    """
    from mlflow.exceptions import MlflowException

    try:
        versions = list(client.search_model_versions(f"name='{name}'"))
    except MlflowException:
        versions = []
    if not versions:
        return f"{name} has no registered version (the train stage has not produced one)"
    newest = max(versions, key=lambda mv: int(mv.version))
    reason = (newest.tags or {}).get("gate_reason")
    if reason:
        return f"{name} has no @{alias}: the gate refused v{newest.version}: {reason}"
    return f"{name} has no @{alias} (newest version v{newest.version})"


def _better(a: float, b: float, higher_is_better: bool) -> bool:
    return a > b if higher_is_better else a < b


def promote_if_better(
    client: MlflowClient,
    name: str,
    version: str,
    alias: str,
    metric: str,
    value: float,
    higher_is_better: bool,
    baselines: Mapping[str, float],
    champion_value: float | None,
    champion_version: str | None,
    champion_note: str | None = None,
    checks: tuple[GateCheck, ...] = (),
) -> GateResult:
    """Move `alias` to `version` if it beats every baseline and the champion (strictly).

    The champion is compared on the primary ``metric``; each of ``checks`` must also beat every
    baseline (a classifier with a good ROC-AUC but a PR-AUC or Brier score worse than a per-vehicle
    rate lookup is refused).

    The version is tagged with the decision (`GateResult.as_tags`); a retired champion is tagged
    ``challenger_status=retired by v<version>``.

    Parameters
    ----------
    client : MlflowClient
    name : str
        Registered model name.
    version : str
        The challenger.
    alias : str
        The champion alias.
    metric : str
        The gate metric's name.
    value : float
        The challenger's ``metric`` on the test window (in the metric's unit).
    higher_is_better : bool
    baselines : Mapping[str, float]
        Baseline name -> its ``metric`` on the same window (None and NaN values are skipped).
    champion_value : float or None
        The current champion's metric on the *same* test window (the caller scores it); None means
        there is no champion yet, or it could not score the window (then `champion_note` says why,
        and only the baselines gate).
    champion_version : str or None
        The current champion's version.
    champion_note : str or None
        Why ``champion_value`` is None.
    checks : tuple of GateCheck
        Secondary metrics that must beat every baseline too.

    Returns
    -------
    GateResult
    """
    lost = [
        f"{b} {c.metric}={v:.4g} vs challenger {c.value:.4g} ({'higher' if c.higher_is_better else 'lower'} is better)"
        for c in (GateCheck(metric, value, higher_is_better, baselines), *checks)
        for b, v in c.baselines.items()
        if _known(v) and not _better(c.value, v, c.higher_is_better) and not (b in c.ties_pass and c.value == v)
    ]
    direction = "higher" if higher_is_better else "lower"
    if lost:
        reason = "does not beat baseline(s): " + ", ".join(lost)
        promoted = False
    elif champion_value is not None and not _better(value, champion_value, higher_is_better):
        reason = f"does not beat champion v{champion_version}: {metric}={value:.4g} vs champion {champion_value:.4g} on the same test window ({direction} is better)"
        promoted = False
    else:
        promoted = True
        if champion_value is None:
            reason = "beats all baselines; " + (champion_note or "no previous champion")
        else:
            reason = f"beats all baselines and champion v{champion_version} ({metric} {value:.4g} vs {champion_value:.4g})"
    result = GateResult(
        name=name,
        version=str(version),
        promoted=promoted,
        reason=reason,
        previous_champion=champion_version,
        metric=metric,
        value=float(value),
        champion_value=champion_value,
        baseline_values={k: float(v) for k, v in baselines.items() if _known(v)},
        checks=tuple(checks),
    )
    for key, val in result.as_tags().items():
        client.set_model_version_tag(name, str(version), key, val)
    if promoted:
        client.set_registered_model_alias(name, alias, str(version))
        if champion_version is not None:
            client.set_model_version_tag(name, str(champion_version), "challenger_status", f"retired by v{version}")
    log.info("registry %s v%s: %s (%s)", name, version, "PROMOTED to @" + alias if promoted else "rejected", reason)
    return result


def wait_until_ready(client: MlflowClient, name: str, version: str, timeout_s: float = 60) -> None:
    """Wait until a registered model version is READY.

    Parameters
    ----------
    client : MlflowClient
    name : str
        Registered model name.
    version : str
    timeout_s : float
        Longest wait (s).

    Raises
    ------
    TimeoutError
        When the version is not READY after ``timeout_s``.
    """
    import time

    deadline = time.time() + timeout_s
    while time.time() < deadline:
        mv = client.get_model_version(name, version)
        if mv.status == "READY":
            return
        time.sleep(0.5)
    raise TimeoutError(f"model version {name} v{version} not READY after {timeout_s}s")


def scratch_dir() -> str:
    """A temp folder for artifacts that are logged then deleted.

    Returns
    -------
    str
        Path of a new folder (the caller deletes it).
    """
    return tempfile.mkdtemp(prefix="evfa-mlflow-")


# --------------------------------------------------------------------------------------------
# Read side: what the report and notebooks show
# --------------------------------------------------------------------------------------------
def _registered_models(cfg: Config) -> dict[str, str]:
    return {
        "soc_regressor": cfg.ml.soc.registered_model,
        "soc_classifier": cfg.ml.soc.registered_classifier,
        "energy": cfg.ml.energy.registered_model,
    }


def model_metrics_summary(cfg: Config):
    """Long pandas frame: one row per (model, candidate) on the model's gate metric.

    For each registered model: the `champion` version (or the latest version when no version was
    promoted) and the baselines logged in the same run, on the same test window -- the comparison
    the registry gate made. Configures MLflow (`configure`).

    Parameters
    ----------
    cfg : Config
        ``mlflow``, ``ml.champion_alias`` and the registered model names.

    Returns
    -------
    pandas.DataFrame
        Columns: model, registered_name, version, metric (without ``test_``), candidate, value (in the
        metric's unit), higher_is_better, status. Empty when nothing was trained yet.
    """
    import pandas as pd
    from mlflow.exceptions import MlflowException

    client = configure(cfg)
    rows: list[dict[str, Any]] = []
    for key, name in _registered_models(cfg).items():
        mv = current_champion(client, name, cfg.ml.champion_alias)
        if mv is None:
            try:
                versions = client.search_model_versions(f"name='{name}'")
            except MlflowException:
                continue
            if not versions:
                continue
            mv = max(versions, key=lambda v: int(v.version))
        gate_metric = mv.tags.get("gate_metric")
        if not gate_metric or not mv.run_id:
            continue
        run_metrics = client.get_run(mv.run_id).data.metrics
        bare = gate_metric.removeprefix("test_")
        higher = bare in {"roc_auc", "pr_auc", "r2", "f1"}
        status = mv.tags.get("challenger_status", "")
        base = {"model": key, "registered_name": name, "version": str(mv.version), "metric": bare, "higher_is_better": higher, "status": status}
        if gate_metric in run_metrics:
            rows.append(base | {"candidate": f"model v{mv.version}", "value": float(run_metrics[gate_metric])})
        suffix = "_" + gate_metric
        for metric, value in sorted(run_metrics.items()):
            if metric.startswith("baseline_") and metric.endswith(suffix):
                rows.append(base | {"candidate": metric[len("baseline_") : -len(suffix)], "value": float(value)})
    return pd.DataFrame(rows, columns=["model", "registered_name", "version", "metric", "candidate", "value", "higher_is_better", "status"])

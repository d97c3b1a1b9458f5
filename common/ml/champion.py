"""The registered champion models: pinned to a version, checked before loading, run as Spark columns.

Used by training (the current champion is re-scored on the challenger's test window) and by
batch scoring (the gold prediction tables). A champion is loaded only when it is an XGBoost
JSON/UBJ model (`tracking.unsafe_model_reason`); anything else is refused, never unpickled.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from common.core.config import Config, SocModelConfig
from common.ml import tracking
from common.ml.features import ENERGY_TARGET, SEGMENT_KEYS, energy_from_ratio


class NoChampion(RuntimeError):
    """A registered model has no champion that can be loaded: run jobs/train.py first."""


class RefusedChampion(NoChampion):
    """The champion exists but is not an XGBoost JSON/UBJ model, so it is never loaded.

    Parameters
    ----------
    name : str
        Registered model name.
    alias : str
        The champion alias.
    version : str
        The refused version.
    reason : str
        Why it is refused (`tracking.unsafe_model_reason`).
    """

    def __init__(self, name: str, alias: str, version: str, reason: str) -> None:
        super().__init__(f"{name}@{alias} (v{version}) refused: {reason}")
        self.version = version
        self.reason = reason


class Champion(NamedTuple):
    """A champion pinned to its version (one job run never mixes versions).

    Attributes
    ----------
    version : str
    uri : str
        ``models:/<name>/<version>``.
    inputs : list of str
        The signature's input column names, in order.
    tags : dict[str, str]
        The version's registry tags (e.g. decision_threshold).
    metadata : dict or None
        The logged model's metadata (task, features, the monitoring reference profile).
    """

    version: str
    uri: str
    inputs: list[str]
    tags: dict[str, str]
    metadata: dict[str, Any] | None = None


def pinned_champion(name: str, alias: str, model_version: Any) -> Champion:
    """The champion behind a registry `ModelVersion`, checked to be safe to load.

    Parameters
    ----------
    name : str
        Registered model name.
    alias : str
        The champion alias (only named in the refusal message).
    model_version : mlflow.entities.model_registry.ModelVersion
        The version the alias points to (`tracking.current_champion`).

    Returns
    -------
    Champion

    Raises
    ------
    RefusedChampion
        When the logged model is not an XGBoost JSON/UBJ model.
    """
    import mlflow

    uri = f"models:/{name}/{model_version.version}"
    info = mlflow.models.get_model_info(uri)
    reason = tracking.unsafe_model_reason(info.flavors)
    if reason:
        raise RefusedChampion(name, alias, model_version.version, reason)
    return Champion(str(model_version.version), uri, info.signature.inputs.input_names(), dict(model_version.tags or {}), dict(info.metadata or {}))


def load_champion(client, cfg: Config, name: str) -> Champion:
    """`name@ml.champion_alias`, pinned to the version the alias points to now.

    Parameters
    ----------
    client : mlflow.tracking.MlflowClient
    cfg : Config
        Gives the alias (`ml.champion_alias`).
    name : str
        Registered model name.

    Returns
    -------
    Champion
        Unpacks as ``(version, uri, inputs, tags, metadata)``.

    Raises
    ------
    NoChampion
        When the alias does not exist, or (`RefusedChampion`) points to a model that is never loaded.
    """
    alias = cfg.ml.champion_alias
    mv = tracking.current_champion(client, name, alias)
    if mv is None:
        raise NoChampion(f"registered model {name!r} has no @{alias} version: run `python -m jobs.train` first")
    return pinned_champion(name, alias, mv)


def champion_column(spark: SparkSession, champion: Champion) -> Column:
    """The champion as a Spark column (`mlflow.pyfunc.spark_udf`) over its signature's input columns.

    Parameters
    ----------
    spark : SparkSession
    champion : Champion
        Its inputs must be columns of the frame the column is used on; they are cast to double.

    Returns
    -------
    Column
        The model's output as a double (a regression value, or P(class 1) of a classifier).
    """
    import mlflow

    udf = mlflow.pyfunc.spark_udf(spark, champion.uri, result_type="double", env_manager="local")
    return udf(F.struct(*[F.col(c).cast("double").alias(c) for c in champion.inputs]))


def champion_prediction(spark: SparkSession, champion: Champion) -> Column:
    """The champion's prediction in its label's unit.

    An energy version fitted on the ratio to the energy base (metadata ``target`` =
    `ENERGY_TARGET`) is turned into kWh/km (`energy_from_ratio`, with the version's fallback
    base); every other version's output is its prediction as it is.

    Parameters
    ----------
    spark : SparkSession
    champion : Champion
        Its inputs, and for an energy ratio version physics_kwh_per_km, vehicle_physics_ratio and
        physics_x_ratio_kwh_per_km, must be columns of the frame the column is used on.

    Returns
    -------
    Column
    """
    out = champion_column(spark, champion)
    meta = champion.metadata or {}
    if meta.get("target") == ENERGY_TARGET:
        return energy_from_ratio(out, float(meta["energy_base_fleet_kwh_per_km"]))
    return out


def soc_prediction_rows(spark: SparkSession, features: DataFrame, soc: SocModelConfig, regressor: Champion, classifier: Champion | None) -> DataFrame:
    """Rows of gold.predictions_soc_minutely: the SOC drop forecast per vehicle-minute.

    Parameters
    ----------
    spark : SparkSession
    features : DataFrame
        `build_soc_features` rows (vehicle_id, minute_ts, local_date, soc_pct, charging, features).
    soc : SocModelConfig
        Horizon (min), drop threshold (SOC percent points) and registered model names.
    regressor : Champion
        Champion of `soc.registered_model`: the drop over the horizon (percent points).
    classifier : Champion or None
        Champion of `soc.registered_classifier`: P(drop >= threshold). None when the gate refused
        it: the drop forecast is still written and the event columns stay null.

    Returns
    -------
    DataFrame
        One row per input row; SOC values in percent points, the alert at the classifier's
        `decision_threshold` version tag (0.5 without one).
    """
    drop = champion_column(spark, regressor)
    if classifier is not None:
        clf_version: str | None = classifier.version
        threshold: float | None = float(classifier.tags.get("decision_threshold", 0.5))
        prob = champion_column(spark, classifier)
    else:
        clf_version, threshold, prob = None, None, F.lit(None).cast("double")
    return (
        features.withColumn("pred_soc_drop_pct", drop)
        .withColumn("prob_drop_event", prob)
        .select(
            "vehicle_id",
            "minute_ts",
            "local_date",
            "soc_pct",
            F.col("charging").alias("is_charging"),
            F.lit(soc.horizon_min).alias("horizon_min"),
            "pred_soc_drop_pct",
            F.greatest(F.col("soc_pct") - F.col("pred_soc_drop_pct"), F.lit(0.0)).alias("pred_soc_at_horizon_pct"),
            F.lit(float(soc.drop_threshold_pct)).alias("drop_threshold_pct"),
            "prob_drop_event",
            (F.col("prob_drop_event") >= F.lit(threshold)).alias("drop_alert"),
            F.lit(threshold).cast("double").alias("decision_threshold"),
            F.lit(soc.registered_model).alias("soc_model_name"),
            F.lit(regressor.version).alias("soc_model_version"),
            F.lit(soc.registered_classifier if clf_version else None).cast("string").alias("event_model_name"),
            F.lit(clf_version).cast("string").alias("event_model_version"),
            F.current_timestamp().alias("scored_at"),
        )
    )


def energy_prediction_rows(spark: SparkSession, features: DataFrame, name: str, model: Champion) -> DataFrame:
    """Rows of gold.predictions_energy: the energy forecast per segment.

    Parameters
    ----------
    spark : SparkSession
    features : DataFrame
        `build_energy_features` rows (one per segment of silver.segments).
    name : str
        Registered name of the energy model (written on every row).
    model : Champion
        Its champion: kWh/km of a segment.

    Returns
    -------
    DataFrame
        pred_kwh_per_km (kWh/km), pred_energy_kwh (kWh), physics_kwh_per_km and
        observed_kwh_per_km (kWh/km, observed only when the segment has an SOC label).
    """
    return features.withColumn("pred_kwh_per_km", champion_prediction(spark, model)).select(
        *SEGMENT_KEYS,
        "distance_km",
        "pred_kwh_per_km",
        (F.col("pred_kwh_per_km") * F.col("distance_km")).alias("pred_energy_kwh"),
        "physics_kwh_per_km",
        F.col("kwh_per_km").alias("observed_kwh_per_km"),
        F.lit(name).alias("model_name"),
        F.lit(model.version).alias("model_version"),
        F.current_timestamp().alias("scored_at"),
    )

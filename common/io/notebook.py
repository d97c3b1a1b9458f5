"""Notebook bootstrap: the same config loader and SparkSession builder as the jobs.

from common.io.notebook import start
cfg, spark = start()          # EVFA_ENV (default local) and EVFA_CONF ("k=v;k=v") from the environment
spark.sql("select * from gold.driver_risk")   # tables by name (catalog.metastore)
"""

from __future__ import annotations

import os

from common.core.config import Config, load_config


def start(env: str | None = None, overrides: list[str] | None = None) -> tuple[Config, object]:
    """Load the config and build the SparkSession, as a job's bootstrap does (no run lease).

    Parameters
    ----------
    env : str, optional
        Config environment; default EVFA_ENV, else ``local``.
    overrides : list of str, optional
        ``key=value`` overrides, applied after those of EVFA_CONF (``k=v;k=v``).

    Returns
    -------
    cfg : Config
    spark : SparkSession
    """
    from common.io.spark import build_session, python_for_workers, with_sedona

    env = env or os.environ.get("EVFA_ENV", "local")
    extra = [o for o in os.environ.get("EVFA_CONF", "").split(";") if o.strip()]
    cfg = load_config(env, [*extra, *(overrides or [])])
    python_for_workers()
    if cfg.catalog.metastore != "local":
        return cfg, with_sedona(build_session(cfg))  # analysts write ST_ SQL by hand
    # The local Derby metastore admits one Spark process at a time, and a notebook left open must
    # not block the pipeline: the notebook names the tables in its session's own catalog instead.
    from common.core.catalog import TABLES
    from common.io.metastore import register_tables

    spark = with_sedona(build_session(cfg.model_copy(update={"catalog": cfg.catalog.model_copy(update={"metastore": "none"})})))
    register_tables(spark, cfg, tuple(t for t in TABLES if t != "raw.files"))
    return cfg, spark

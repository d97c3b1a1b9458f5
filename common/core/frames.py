"""Frames computed once for several readers (`materialise`) and freed again (`release`).

Why not plain ``persist()``: a persisted frame keeps its whole lineage in every plan built on it,
and Spark re-plans those plans at each shuffle under adaptive execution and prints them for the
SQL listener; measured on a 756 k-row fleet, the charging stage spent ~45 of its ~100 s there
(docs/BENCHMARKS.md, "Plans cut at materialised frames").
"""

from __future__ import annotations

from pyspark import StorageLevel
from pyspark.sql import DataFrame


def single_jvm(master: str) -> bool:
    """Whether a Spark master runs every task in the driver's JVM (``local`` or ``local[n]``).

    Parameters
    ----------
    master : str
        The session's master URL (``spark.sparkContext.master``).

    Returns
    -------
    bool
        True for ``local``/``local[...]``; False for ``local-cluster``, YARN, Kubernetes, standalone.
    """
    return master == "local" or master.startswith("local[")


def materialise(df: DataFrame) -> DataFrame:
    """Compute `df` once for several readers, and keep later plans small.

    With one JVM the rows are kept as a local checkpoint: the frame's plan becomes a scan of the
    stored rows, so every query built on it is planned (and re-planned by adaptive execution at
    each shuffle) without the whole lineage. A lost block cannot happen without losing the driver
    too. On a cluster an executor can be lost, so the frame is persisted with its lineage kept
    (lost blocks recompute), at the cost of the longer plans. Free it with `release`.

    Parameters
    ----------
    df : DataFrame

    Returns
    -------
    DataFrame
        The same rows, computed (one pass over `df`).
    """
    if single_jvm(df.sparkSession.sparkContext.master or ""):
        return df.localCheckpoint(eager=True)
    kept = df.persist(StorageLevel.MEMORY_AND_DISK)
    kept.count()
    return kept


def release(df: DataFrame) -> None:
    """Free the rows `materialise` kept (its stored checkpoint blocks, or the persisted frame).

    Parameters
    ----------
    df : DataFrame
        A frame returned by `materialise`.
    """
    if df.is_cached:
        df.unpersist()
        return
    plan = df._jdf.queryExecution().logical()
    if plan.nodeName() == "LogicalRDD":  # a local checkpoint: its RDD holds the blocks
        plan.rdd().unpersist(False)

"""Bounds on what one grouped pandas UDF call may load (pure transforms).

`groupBy(...).applyInPandas` hands a Python worker the *whole* group as one pandas DataFrame
(`spark.sql.execution.arrow.maxRecordsPerBatch` splits the transfer, not the group), so one
oversized vehicle or cell could exhaust a worker's memory. Stages cap their groups before the
UDF with `cap_rows_per_group` (a config key per stage, documented there); a job can list the
groups above a cap with `capped_groups`. Caps are in transforms, so they trigger no Spark job.
"""

from __future__ import annotations

from collections.abc import Sequence

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F


def cap_rows_per_group(
    df: DataFrame,
    keys: Sequence[str],
    max_rows: int,
    priority: Sequence[Column] | None = None,
    seed: int = 42,
) -> DataFrame:
    """At most `max_rows` rows per group of `keys`.

    Without `priority` the kept rows are a seeded pseudo-random sample (xxhash64 of the seed and
    the row's values: deterministic across runs and partitionings). With `priority` (sort
    columns, e.g. `F.desc("n_points")`) the first `max_rows` in that order are kept, hash order
    breaking ties. Groups at or under the cap pass through unchanged. The ranking is a Spark
    window (sorted, spillable JVM work), so the cap itself never loads a group into Python.

    Parameters
    ----------
    df : DataFrame
        Any frame with the `keys` columns.
    keys : sequence of str
        Grouping columns (e.g. ``vehicle_id``).
    max_rows : int
        Rows kept per group, at least 1.
    priority : sequence of Column, optional
        Sort order of the rows to keep first.
    seed : int
        Seed of the hash that samples (or breaks ties).

    Returns
    -------
    DataFrame
        The rows of `df` kept, same columns.

    Raises
    ------
    ValueError
        `max_rows` is below 1.
    """
    if max_rows < 1:
        raise ValueError(f"max_rows must be >= 1, got {max_rows}")
    tie = F.xxhash64(F.lit(seed), *[F.col(f"`{c}`") for c in df.columns])
    order = [*(priority or []), tie]
    rank = F.row_number().over(Window.partitionBy(*keys).orderBy(*order))
    return df.withColumn("__cap_rank", rank).where(F.col("__cap_rank") <= max_rows).drop("__cap_rank")


def capped_groups(df: DataFrame, keys: Sequence[str], max_rows: int, show: int = 20) -> list[tuple]:
    """Groups above the cap as (key values..., rows), largest first (at most `show` of them).

    Parameters
    ----------
    df : DataFrame
        Any frame with the `keys` columns.
    keys : sequence of str
        Grouping columns.
    max_rows : int
        The cap.
    show : int
        Most groups returned.

    Returns
    -------
    list of tuple
        One tuple per group over the cap: its key values, then its row count.
    """
    counts = df.groupBy(*keys).count().where(F.col("count") > max_rows).orderBy(F.desc("count")).limit(show)
    return [tuple(r) for r in counts.collect()]  # bounded: .limit(show) above

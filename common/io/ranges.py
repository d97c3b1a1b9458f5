"""Incremental IO: the date range of a partial run, reading a range and replacing exactly its partitions.

Every stage that accepts ``--start-date`` / ``--end-date`` (clean, kpis, score) goes through
these helpers, so a range run and a full run write the same rows for the days they share.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from common.core.config import Config
from common.io import tables


@dataclass(frozen=True)
class DateRange:
    """Inclusive date range of a partial run; a missing bound is open, no bounds is a full run.

    Attributes
    ----------
    start, end : datetime.date or None
        First and last day (inclusive) of the run, in the calendar of the column it is applied to.

    Raises
    ------
    ValueError
        `start` is after `end`.
    """

    start: date | None = None
    end: date | None = None

    def __post_init__(self) -> None:
        if self.start and self.end and self.start > self.end:
            raise ValueError(f"--start-date {self.start} is after --end-date {self.end}")

    @property
    def is_full(self) -> bool:
        """Whether the range has no bounds (a full run).

        Returns
        -------
        bool
        """
        return self.start is None and self.end is None

    def contains(self, column: str = "local_date") -> Column:
        """Spark predicate: ``column`` within the range (always true for a full run).

        Parameters
        ----------
        column : str
            A date column (``local_date`` is the vehicle's local day, ``date`` the UTC day).

        Returns
        -------
        Column
            Boolean.
        """
        cond = F.lit(True)
        if self.start:
            cond = cond & (F.col(column) >= F.lit(self.start))
        if self.end:
            cond = cond & (F.col(column) <= F.lit(self.end))
        return cond

    def sql(self, column: str = "local_date") -> str | None:
        """The same predicate as Delta ``replaceWhere`` SQL; None for a full run.

        Parameters
        ----------
        column : str
            The partition column.

        Returns
        -------
        str or None
            E.g. ``local_date >= '2024-03-04' AND local_date <= '2024-03-10'``.
        """
        parts = []
        if self.start:
            parts.append(f"{column} >= '{self.start.isoformat()}'")
        if self.end:
            parts.append(f"{column} <= '{self.end.isoformat()}'")
        return " AND ".join(parts) or None

    def widened(self, days: int) -> DateRange:
        """The range with ``days`` more on each bounded side (context a computation needs).

        Parameters
        ----------
        days : int
            Days added before `start` and after `end`.

        Returns
        -------
        DateRange
            Open sides stay open.
        """
        return DateRange(
            self.start - timedelta(days=days) if self.start else None,
            self.end + timedelta(days=days) if self.end else None,
        )


def read_range(spark: SparkSession, cfg: Config, table: str, rng: DateRange, column: str = "local_date") -> DataFrame:
    """Rows of ``table`` whose ``column`` lies in ``rng`` (all rows for a full run).

    Parameters
    ----------
    spark : SparkSession
    cfg : Config
    table : str
        Catalog name, e.g. ``silver.vehicle_minutely``.
    rng : DateRange
    column : str
        The date column the range applies to.

    Returns
    -------
    DataFrame
        The table's rows and columns, filtered.

    Raises
    ------
    common.io.tables.TableNotFound
        The table does not exist.
    """
    df = tables.read(spark, cfg, table)
    return df if rng.is_full else df.where(rng.contains(column))


def write_range(
    df: DataFrame,
    cfg: Config,
    table: str,
    rng: DateRange,
    column: str = "local_date",
    comment: str | None = None,
) -> tables.WriteResult:
    """Write ``df`` partitioned by ``column``, replacing the range's partitions.

    A full run (or a table that does not exist yet) overwrites the table; a range run replaces
    exactly the range's partitions (Delta ``replaceWhere``), rows of ``df`` outside the range are
    dropped, other partitions stay.

    Parameters
    ----------
    df : DataFrame
        Rows with a `column` date column.
    cfg : Config
    table : str
        Catalog name of the target table.
    rng : DateRange
    column : str
        Partition column the range applies to.
    comment : str, optional
        Table comment; default the catalog's description.

    Returns
    -------
    common.io.tables.WriteResult
    """
    where = rng.sql(column)
    if where is None or not tables.exists(df.sparkSession, cfg, table):
        return tables.write(df, cfg, table, mode="overwrite", partition_by=[column], comment=comment)
    return tables.write(df.where(rng.contains(column)), cfg, table, mode="overwrite", partition_by=[column], replace_where=where, comment=comment)

"""Calendar helpers shared by the generator and the stages (pure, no Spark)."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np


def day_midnights_utc(start_date: str, days: int, timezone: str) -> np.ndarray:
    """Local midnights of a period of days, as UTC epoch seconds (DST-aware).

    Parameters
    ----------
    start_date : str
        First local day, ISO format (YYYY-MM-DD).
    days : int
        Number of days in the period.
    timezone : str
        IANA time zone of the local days (e.g. Asia/Kolkata).

    Returns
    -------
    numpy.ndarray
        ``days + 1`` floats, seconds since the epoch (UTC): the midnight starting each day, then
        the midnight after the last day (the end of the period).
    """
    tz = ZoneInfo(timezone)
    d0 = date.fromisoformat(start_date)
    return np.array([datetime.combine(d0 + timedelta(days=i), datetime.min.time(), tz).timestamp() for i in range(days + 1)])

"""Close frames shared by the market/triple_barrier.py tests."""

import datetime

import numpy as np
import polars as pl

START = datetime.datetime(2024, 3, 1, 14, 30, tzinfo=datetime.UTC)
MINUTE = datetime.timedelta(minutes=1)


def frame_from(closes: list[float], gaps_minutes: list[int] | None = None) -> pl.DataFrame:
    """A one-symbol close frame; bar i starts sum(gaps[:i]) minutes after START (1-minute bars by default)."""
    gaps = gaps_minutes if gaps_minutes is not None else [1] * len(closes)
    offsets = np.concatenate([[0], np.cumsum(gaps[: len(closes) - 1])]).astype(int)
    ts = [START + int(offset) * MINUTE for offset in offsets]
    return pl.DataFrame(
        {"ts": pl.Series(ts, dtype=pl.Datetime("ns", "UTC")), "close": pl.Series(closes, dtype=pl.Float64)}
    )

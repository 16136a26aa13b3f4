"""Bars and fakes shared by tests in several folders."""

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta

import numpy as np
import polars as pl

from market.calendar import sessions, trading_days
from market.loading import CANONICAL_COLUMNS


def clean_bars(
    *,
    session_count: int = 8,
    symbols: Sequence[str] = ("MSFT", "NVDA"),
    bar_minutes: int = 1,
    start: date = date(2024, 3, 4),
    seed: int = 0,
) -> pl.DataFrame:
    """Canonical, clean bars: every regular-session bar of ``session_count`` trading days from ``start``.

    Test helper shared by the market and validation tests (a random walk with consistent OHLC, float volume).
    """
    days = trading_days(start, start + timedelta(days=3 * session_count + 14))[:session_count]
    bounds = sessions(days)
    starts = [
        np.arange(
            np.datetime64(open_.replace(tzinfo=None), "ns"),
            np.datetime64(close.replace(tzinfo=None), "ns"),
            np.timedelta64(bar_minutes, "m"),
        )
        for open_, close in bounds.select("open", "close").iter_rows()
    ]
    ts = pl.Series("ts", np.concatenate(starts)).dt.replace_time_zone("UTC")
    rng = np.random.default_rng(seed)
    frames = []
    for number, symbol in enumerate(symbols):
        size = ts.len()
        close = 100.0 * (number + 1) * np.exp(np.cumsum(rng.normal(0.0, 1e-3, size)))
        open_ = np.concatenate([[close[0]], close[:-1]])
        high = np.maximum(open_, close) * (1 + np.abs(rng.normal(0.0, 2e-4, size)))
        low = np.minimum(open_, close) * (1 - np.abs(rng.normal(0.0, 2e-4, size)))
        frames.append(
            pl.DataFrame(
                {
                    "ts": ts,
                    "symbol": [symbol] * size,
                    "open": open_,
                    "high": high,
                    "low": low,
                    "close": close,
                    "volume": rng.uniform(1e3, 1e4, size),
                }
            )
        )
    return pl.concat(frames).select(CANONICAL_COLUMNS)


@dataclass
class RecordedPush:
    method: str
    path: str
    body: str


@dataclass
class RecordingGateway:
    address: str
    pushes: list[RecordedPush] = field(default_factory=list)


LENIENT_GATE = {
    "min_total_return_pct": -100.0,
    "max_drawdown_pct": 100.0,
    "min_trades_per_day": 0.0,
    "max_trades_per_day": 10_000.0,
    "min_sharpe": -1_000.0,
    "min_win_rate": 0.0,
    "min_ratio_episodes": 1,
    "paired_baselines": [],
}
"""Gate criteria a tiny candidate can pass, so the champion path (promotion, warm start, comparison) runs."""

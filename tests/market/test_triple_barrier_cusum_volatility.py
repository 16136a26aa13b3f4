"""Tests for market/triple_barrier.py's CUSUM event sampling and volatility targets vs the AFML snippets."""

from typing import Any

import numpy as np
import pandas as pd
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from market.triple_barrier import cusum_filter, daily_volatility, ewm_volatility
from tests.market.support import frame_from

# ------------------------------------------------------------------------------------------------------------
# CUSUM filter
# ------------------------------------------------------------------------------------------------------------


def reference_cusum(closes: list[float], thresholds: list[float]) -> list[int]:
    """AFML snippet 2.4 on log prices, one bar at a time."""
    log_close = np.log(np.array(closes, dtype=np.float64))
    events, positive, negative = [], 0.0, 0.0
    for i in range(1, len(closes)):
        change = float(log_close[i]) - float(log_close[i - 1])
        positive, negative = max(0.0, positive + change), min(0.0, negative + change)
        if negative < -thresholds[i]:
            negative = 0.0
            events.append(i)
        elif positive > thresholds[i]:
            positive = 0.0
            events.append(i)
    return events


@settings(max_examples=200, deadline=None)
@given(
    closes=st.lists(st.floats(1.0, 200.0, allow_nan=False), min_size=0, max_size=60),
    scalar=st.floats(0.001, 0.5),
    per_bar=st.booleans(),
    data=st.data(),
)
def test_cusum_equals_reference_loop(
    closes: list[float], scalar: float, per_bar: bool, data: st.DataObject
) -> None:
    if per_bar:
        thresholds = data.draw(
            st.lists(
                st.one_of(st.floats(0.0, 0.5), st.just(float("nan"))),
                min_size=len(closes),
                max_size=len(closes),
            )
        )
        threshold: Any = np.array(thresholds, dtype=np.float64)
    else:
        thresholds = [scalar] * len(closes)
        threshold = scalar
    events = cusum_filter(pl.Series(closes, dtype=pl.Float64), threshold=threshold)
    assert events.to_list() == reference_cusum(closes, thresholds)
    assert events.name == "event_ts"


def test_cusum_hand_checked() -> None:
    frame = frame_from([100.0, 103.0, 106.5, 100.0, 94.0])
    events = cusum_filter(frame, threshold=0.05)
    assert events.to_list() == frame["ts"].gather([2, 3, 4]).to_list()
    assert events.dtype == pl.Datetime("ns", "UTC")


def test_cusum_rejects_bad_threshold() -> None:
    with pytest.raises(ValueError, match="positive"):
        cusum_filter(pl.Series([1.0, 2.0]), threshold=0.0)
    with pytest.raises(ValueError, match="bar"):
        cusum_filter(pl.Series([1.0, 2.0]), threshold=np.array([0.1]))
    with pytest.raises(ValueError, match="negative"):
        cusum_filter(pl.Series([1.0, 2.0]), threshold=np.array([0.1, -0.1]))


# ------------------------------------------------------------------------------------------------------------
# Volatility
# ------------------------------------------------------------------------------------------------------------


def book_daily_volatility(close: pd.Series, span: int) -> pd.Series:
    """AFML snippet 3.1, verbatim apart from names."""
    prior = close.index.searchsorted(close.index - pd.Timedelta(days=1))
    prior = prior[prior > 0]
    prior = pd.Series(close.index[prior - 1], index=close.index[close.shape[0] - prior.shape[0] :])
    returns = close.loc[prior.index] / close.loc[prior.values].values - 1
    return returns.ewm(span=span).std()


def test_daily_volatility_drop_rule_hand_checked() -> None:
    day = 24 * 60
    # bars at day0 10:00, day0 12:00, day1 10:00, day1 11:00, day1 12:30 (minutes after START)
    frame = frame_from([100.0, 110.0, 105.0, 120.0, 99.0], gaps_minutes=[120, day - 120, 60, 90])
    out = daily_volatility(frame, span=10)
    # day1 10:00 has a bar exactly 24 h earlier but none strictly earlier than that: dropped (book rule).
    assert out["ts"].to_list() == frame["ts"].gather([3, 4]).to_list()
    returns = pd.Series([120.0 / 100.0 - 1, 99.0 / 110.0 - 1])
    expected = returns.ewm(span=10).std()
    assert out["volatility"][0] is None
    assert out["volatility"][1] == pytest.approx(expected.iloc[1], rel=1e-12)


@settings(max_examples=50, deadline=None)
@given(
    gaps=st.lists(st.integers(1, 600), min_size=2, max_size=80),
    seed=st.integers(0, 2**16),
    span=st.integers(1, 30),
)
def test_daily_volatility_matches_book_snippet(gaps: list[int], seed: int, span: int) -> None:
    closes = (100 * np.exp(np.cumsum(np.random.default_rng(seed).normal(0, 0.01, len(gaps))))).tolist()
    frame = frame_from(closes, gaps_minutes=gaps)
    # The book's code runs on a naive index (its `.values` lookups drop time zones).
    naive_ts = frame["ts"].dt.replace_time_zone(None)
    series = pd.Series(closes, index=pd.DatetimeIndex(naive_ts.to_list()))
    expected = book_daily_volatility(series, span)
    out = daily_volatility(frame, span=span)
    assert out["ts"].dt.replace_time_zone(None).to_list() == list(expected.index)
    np.testing.assert_allclose(
        out["volatility"].fill_null(np.nan).to_numpy(), expected.to_numpy(), rtol=1e-9, atol=1e-15
    )


def test_ewm_volatility_matches_pandas() -> None:
    closes = 100 * np.exp(np.cumsum(np.random.default_rng(1).normal(0, 0.01, 300)))
    frame = frame_from(closes.tolist())
    out = ewm_volatility(frame, span=50)
    expected = pd.Series(closes).pct_change().ewm(span=50).std().iloc[1:]
    assert out["ts"].to_list() == frame["ts"].to_list()[1:]
    np.testing.assert_allclose(
        out["volatility"].fill_null(np.nan).to_numpy(), expected.to_numpy(), rtol=1e-12
    )
    assert out["volatility"][0] is None


def test_volatility_argument_checks() -> None:
    with pytest.raises(ValueError, match="span"):
        ewm_volatility(pl.Series([1.0, 2.0]), span=0)
    with pytest.raises(ValueError, match="timestamps"):
        daily_volatility(pl.Series([1.0, 2.0]))

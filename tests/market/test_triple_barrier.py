"""Tests for market/triple_barrier.py's labels: barriers vs a per-event loop, hand-checked cases, refusals."""

import contextlib
import datetime
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from market.triple_barrier import BARRIER_NAMES, LABEL_COLUMNS, ewm_volatility, triple_barrier
from tests.market.support import MINUTE, START, frame_from

# ------------------------------------------------------------------------------------------------------------
# Reference: the book's per-event loop, written plainly
# ------------------------------------------------------------------------------------------------------------


def reference_triple_barrier(
    ticks: list[int],
    closes: list[float],
    *,
    event_positions: list[int],
    targets: list[float],
    profit_take_mult: float,
    stop_loss_mult: float,
    horizon: int | datetime.timedelta | None,
    min_return: float,
    sides: list[float] | None,
    label_vertical_by_sign: bool,
    min_return_threshold: float,
) -> list[dict[str, Any]]:
    n_bars = len(closes)
    rows = []
    for k, start in enumerate(event_positions):
        target = targets[k]
        if not target > min_return:
            continue
        side = 1.0 if sides is None else float(sides[k])
        if horizon is None:
            vertical = None
        elif isinstance(horizon, int):
            vertical = start + horizon if start + horizon < n_bars else None
        else:
            limit = ticks[start] + int(horizon / datetime.timedelta(microseconds=1)) * 1000
            vertical = next((j for j in range(start, n_bars) if ticks[j] >= limit), None)
        end = vertical if vertical is not None else n_bars - 1
        upper = profit_take_mult * target if profit_take_mult > 0 else None
        lower = -stop_loss_mult * target if stop_loss_mult > 0 else None
        t1, barrier = None, "none"
        for j in range(start, end + 1):
            ret = (closes[j] / closes[start] - 1.0) * side
            if upper is not None and ret > upper:
                t1, barrier = j, "profit_take"
                break
            if lower is not None and ret < lower:
                t1, barrier = j, "stop_loss"
                break
        if t1 is None and vertical is not None:
            t1, barrier = vertical, "vertical"
        ret_at_t1 = None if t1 is None else (closes[t1] / closes[start] - 1.0) * side
        label = {"profit_take": 1, "stop_loss": -1}.get(barrier, 0)
        if (
            label_vertical_by_sign
            and barrier == "vertical"
            and ret_at_t1 is not None
            and abs(ret_at_t1) >= min_return_threshold
        ):
            label = (ret_at_t1 > 0) - (ret_at_t1 < 0)
        rows.append(
            {
                "event": ticks[start],
                "t1": None if t1 is None else ticks[t1],
                "barrier": barrier,
                "ret": ret_at_t1,
                "target": target,
                "label": label,
                "meta_label": None if sides is None else int(label == 1),
                "side": None if sides is None else int(side),
            }
        )
    return rows


def as_rows(out: pl.DataFrame) -> list[dict[str, Any]]:
    ticks = out.with_columns(pl.col("event_ts", "t1").to_physical())
    return [
        {
            "event": row["event_ts"],
            "t1": row["t1"],
            "barrier": row["barrier"],
            "ret": row["ret"],
            "target": row["target"],
            "label": row["label"],
            "meta_label": row["meta_label"],
            "side": row["side"],
        }
        for row in ticks.iter_rows(named=True)
    ]


# Prices whose ratios are exact binary fractions, so returns hit barriers exactly (ties test strictness).
DYADIC_PRICES = [48.0, 56.0, 60.0, 64.0, 72.0, 80.0, 96.0]
DYADIC_TARGETS = [0.0625, 0.125, 0.25, 0.5]


@st.composite
def labeling_cases(draw: st.DrawFn) -> dict[str, Any]:
    n_bars = draw(st.integers(1, 30))
    if draw(st.booleans()):
        closes = draw(st.lists(st.sampled_from(DYADIC_PRICES), min_size=n_bars, max_size=n_bars))
    elif draw(st.booleans()):
        closes = [100.0] * n_bars  # flat path
    else:
        closes = draw(
            st.lists(
                st.floats(1.0, 200.0, allow_nan=False, allow_infinity=False), min_size=n_bars, max_size=n_bars
            )
        )
    gaps = draw(st.lists(st.integers(1, 4), min_size=n_bars, max_size=n_bars))
    every_bar = draw(st.booleans())
    event_positions = (
        list(range(n_bars))
        if every_bar
        else sorted(draw(st.sets(st.integers(0, n_bars - 1), max_size=n_bars)))
    )
    target_values = st.one_of(st.sampled_from(DYADIC_TARGETS), st.floats(0.0, 0.6, allow_nan=False))
    if draw(st.booleans()):
        target: Any = draw(target_values)
        targets = [float(target)] * len(event_positions)
    else:
        targets = draw(st.lists(target_values, min_size=len(event_positions), max_size=len(event_positions)))
        target = np.array(targets, dtype=np.float64)
    horizon_kind = draw(st.sampled_from(["bars", "several", "delta", "none"]))
    horizons: list[Any]
    if horizon_kind == "bars":
        vertical: Any = draw(st.integers(1, 12))
        horizons = [vertical]
    elif horizon_kind == "several":
        horizons = draw(st.lists(st.integers(1, 12), min_size=1, max_size=3, unique=True))
        vertical = tuple(horizons)
    elif horizon_kind == "delta":
        vertical = datetime.timedelta(minutes=draw(st.integers(1, 20)))
        horizons = [vertical]
    else:
        vertical = None
        horizons = [None]
    sides = (
        draw(st.lists(st.sampled_from([-1, 1]), min_size=len(event_positions), max_size=len(event_positions)))
        if draw(st.booleans())
        else None
    )
    multipliers = st.one_of(st.sampled_from([0.0, 0.5, 1.0, 2.0]), st.floats(0.0, 3.0, allow_nan=False))
    return {
        "closes": closes,
        "gaps": gaps,
        "events": None if every_bar else event_positions,
        "event_positions": event_positions,
        "target": target,
        "targets": targets,
        "vertical": vertical,
        "horizons": horizons,
        "sides": sides,
        "profit_take_mult": draw(multipliers),
        "stop_loss_mult": draw(multipliers),
        "min_return": draw(st.sampled_from([0.0, 0.0625, 0.1])),
        "label_vertical_by_sign": draw(st.booleans()),
        "min_return_threshold": draw(st.sampled_from([0.0, 0.001, 0.125])),
    }


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=labeling_cases())
def test_fast_path_equals_reference_loop(case: dict[str, Any]) -> None:
    frame = frame_from(case["closes"], case["gaps"])
    ticks = frame["ts"].to_physical().to_list()
    events = None if case["events"] is None else frame["ts"].gather(case["events"])
    with pytest.warns(UserWarning) if _all_disabled(case) else _warnings_as_errors():
        out = triple_barrier(
            frame,
            events=events,
            target=case["target"],
            profit_take_mult=case["profit_take_mult"],
            stop_loss_mult=case["stop_loss_mult"],
            vertical_barrier=case["vertical"],
            min_return=case["min_return"],
            side=None if case["sides"] is None else np.array(case["sides"]),
            label_vertical_by_sign=case["label_vertical_by_sign"],
            min_return_threshold=case["min_return_threshold"],
        )
    assert out.columns == list(LABEL_COLUMNS)
    expected: list[dict[str, Any]] = []
    for horizon in case["horizons"]:
        expected += reference_triple_barrier(
            ticks,
            case["closes"],
            event_positions=case["event_positions"],
            targets=case["targets"],
            profit_take_mult=case["profit_take_mult"],
            stop_loss_mult=case["stop_loss_mult"],
            horizon=horizon,
            min_return=case["min_return"],
            sides=case["sides"],
            label_vertical_by_sign=case["label_vertical_by_sign"],
            min_return_threshold=case["min_return_threshold"],
        )
    assert as_rows(out) == expected
    rows_per_horizon = len(expected) // len(case["horizons"])
    expected_horizons = [h if isinstance(h, int) else None for h in case["horizons"]]
    assert out["horizon"].to_list() == [h for h in expected_horizons for _ in range(rows_per_horizon)]
    assert set(out["label"].to_list()) <= {-1, 0, 1}
    assert set(out["barrier"].to_list()) <= set(BARRIER_NAMES)
    # t1 is null exactly when no barrier was reached, and never precedes the event.
    assert (out["t1"].is_null() == (out["barrier"] == "none")).all()
    assert (
        out.filter(pl.col("t1").is_not_null()).select(pl.col("t1") >= pl.col("event_ts")).to_series()
    ).all()


def _all_disabled(case: dict[str, Any]) -> bool:
    return case["profit_take_mult"] == 0 and case["stop_loss_mult"] == 0 and case["vertical"] is None


@contextlib.contextmanager
def _warnings_as_errors() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


# ------------------------------------------------------------------------------------------------------------
# Hand-checked examples
# ------------------------------------------------------------------------------------------------------------


def test_hand_checked_touches_and_end_of_data() -> None:
    close = pl.Series([100.0, 125.0, 75.0, 100.0, 150.0])
    out = triple_barrier(close, target=0.2, vertical_barrier=2)
    assert out["event_ts"].to_list() == [0, 1, 2, 3, 4]
    assert out["t1"].to_list() == [1, 2, 3, 4, None]
    assert out["barrier"].to_list() == ["profit_take", "stop_loss", "profit_take", "profit_take", "none"]
    assert out["label"].to_list() == [1, -1, 1, 1, 0]
    assert out["ret"].to_list()[:2] == [0.25, -0.4]
    assert out["ret"][4] is None
    assert out["horizon"].to_list() == [2] * 5
    assert out["side"].null_count() == 5 and out["meta_label"].null_count() == 5


def test_touch_is_strict_at_exact_barrier_value() -> None:
    close = pl.Series([64.0, 72.0, 56.0, 64.0])  # returns from 64: +0.125, -0.125, 0 exactly
    exact = triple_barrier(close, events=[0], target=0.125, vertical_barrier=3)
    assert exact["barrier"].to_list() == ["vertical"]
    assert exact["t1"].to_list() == [3]
    assert exact["label"].to_list() == [0]
    below = triple_barrier(close, events=[0], target=0.124, vertical_barrier=3)
    assert below["barrier"].to_list() == ["profit_take"] and below["t1"].to_list() == [1]


def test_touch_on_the_vertical_bar_counts_as_touch() -> None:
    close = pl.Series([100.0, 101.0, 120.0])
    out = triple_barrier(close, events=[0], target=0.1, vertical_barrier=2)
    assert out["barrier"].to_list() == ["profit_take"] and out["t1"].to_list() == [2]


def test_side_flips_barriers_and_sets_meta_label() -> None:
    close = pl.Series([100.0, 90.0, 80.0])
    short = triple_barrier(close, events=[0], target=0.05, vertical_barrier=2, side=np.array([-1]))
    assert short["barrier"].to_list() == ["profit_take"]
    assert short["ret"].to_list() == pytest.approx([0.1])
    assert short["label"].to_list() == [1] and short["meta_label"].to_list() == [1]
    assert short["side"].to_list() == [-1]
    long = triple_barrier(close, events=[0], target=0.05, vertical_barrier=2, side=np.array([1]))
    assert long["barrier"].to_list() == ["stop_loss"]
    assert long["label"].to_list() == [-1] and long["meta_label"].to_list() == [0]


def test_meta_label_is_zero_at_vertical_exit_unless_labelled_by_sign() -> None:
    close = pl.Series([100.0, 101.0, 102.0])
    plain = triple_barrier(close, events=[0], target=0.5, vertical_barrier=2, side=np.array([1]))
    assert plain["barrier"].to_list() == ["vertical"] and plain["meta_label"].to_list() == [0]
    by_sign = triple_barrier(
        close, events=[0], target=0.5, vertical_barrier=2, side=np.array([1]), label_vertical_by_sign=True
    )
    assert by_sign["label"].to_list() == [1] and by_sign["meta_label"].to_list() == [1]


def test_disabled_barriers() -> None:
    close = pl.Series([100.0, 200.0, 50.0])
    no_profit_take = triple_barrier(close, events=[0], target=0.1, profit_take_mult=0.0, vertical_barrier=2)
    assert no_profit_take["barrier"].to_list() == ["stop_loss"] and no_profit_take["t1"].to_list() == [2]
    no_stop_loss = triple_barrier(close, events=[0], target=0.1, stop_loss_mult=0.0, vertical_barrier=2)
    assert no_stop_loss["barrier"].to_list() == ["profit_take"] and no_stop_loss["t1"].to_list() == [1]
    with pytest.warns(UserWarning, match="every barrier is disabled"):
        nothing = triple_barrier(
            close, target=0.1, profit_take_mult=0.0, stop_loss_mult=0.0, vertical_barrier=None
        )
    assert nothing["barrier"].to_list() == ["none"] * 3 and nothing["t1"].null_count() == 3


def test_label_vertical_by_sign_respects_threshold() -> None:
    close = pl.Series([100.0, 100.05, 100.5, 99.0])
    out = triple_barrier(
        close,
        events=[0],
        target=0.5,
        vertical_barrier=(1, 2, 3),
        label_vertical_by_sign=True,
        min_return_threshold=0.001,
    )
    assert out["barrier"].to_list() == ["vertical"] * 3
    assert out["horizon"].to_list() == [1, 2, 3]
    assert out["label"].to_list() == [0, 1, -1]  # +0.0005 is under the threshold


def test_time_delta_vertical_barrier_on_irregular_bars() -> None:
    frame = frame_from([100.0] * 5, gaps_minutes=[1, 2, 4, 1])  # bars at 0, 1, 3, 7, 8 minutes
    out = triple_barrier(frame, target=0.01, vertical_barrier=datetime.timedelta(minutes=2))
    start = frame["ts"][0]
    minutes = [None if t is None else int((t - start) / MINUTE) for t in out["t1"].to_list()]
    assert minutes == [3, 3, 7, None, None]  # first bar at or after event + 2 min; none past the data
    assert out["barrier"].to_list() == ["vertical", "vertical", "vertical", "none", "none"]
    assert out["horizon"].null_count() == 5


def test_min_return_and_missing_targets_drop_events() -> None:
    close = pl.Series([100.0, 101.0, 102.0, 103.0])
    out = triple_barrier(
        close, target=np.array([0.0, 0.01, np.nan, 0.02]), min_return=0.01, vertical_barrier=1
    )
    assert out["event_ts"].to_list() == [3]
    assert out["target"].to_list() == [0.02]


def test_target_frame_is_joined_on_event_timestamp() -> None:
    frame = frame_from([100.0, 101.0, 102.0, 103.0, 104.0])
    target = pl.DataFrame({"ts": frame["ts"].gather([4, 1, 2]), "volatility": [0.4, 0.1, None]})
    out = triple_barrier(frame, target=target, vertical_barrier=1)
    assert out["event_ts"].to_list() == frame["ts"].gather([1, 4]).to_list()
    assert out["target"].to_list() == [0.1, 0.4]


def test_pandas_input_matches_polars_input() -> None:
    rng = np.random.default_rng(3)
    closes = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, 200)))
    frame = frame_from(closes.tolist())
    series = pd.Series(closes, index=pd.DatetimeIndex(frame["ts"].to_list()))
    volatility = ewm_volatility(frame, span=20)
    from_polars = triple_barrier(frame, target=volatility, vertical_barrier=(5, 10))
    from_pandas = triple_barrier(
        series, target=volatility.to_pandas().set_index("ts")["volatility"], vertical_barrier=(5, 10)
    )
    assert from_polars.equals(from_pandas)
    assert from_polars.height == 2 * 198  # two bars lack a volatility (no return, then a single return)


def test_empty_events_give_empty_frame_with_schema() -> None:
    frame = frame_from([100.0, 101.0])
    out = triple_barrier(frame, events=frame["ts"].clear(), target=0.1, vertical_barrier=(1, 2))
    assert out.height == 0 and out.columns == list(LABEL_COLUMNS)
    assert out.schema["event_ts"] == pl.Datetime("ns", "UTC") and out.schema["label"] == pl.Int8


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"profit_take_mult": -1.0}, "profit_take_mult"),
        ({"stop_loss_mult": float("nan")}, "stop_loss_mult"),
        ({"min_return": -0.1}, "min_return"),
        ({"vertical_barrier": 0}, "horizon"),
        ({"vertical_barrier": []}, "empty"),
        ({"vertical_barrier": (5, 5)}, "unique"),
        ({"vertical_barrier": datetime.timedelta(0)}, "positive"),
        ({"target": np.array([0.1, 0.2])}, "one value per event"),
        ({"target": float("inf")}, "infinite"),
        ({"side": np.array([1, 0, 1, 1])}, "side"),
        ({"events": [START + 10 * MINUTE]}, "not bars"),
        ({"events": [START + MINUTE, START]}, "strictly increasing"),
    ],
)
def test_invalid_arguments_raise(kwargs: dict[str, Any], match: str) -> None:
    frame = frame_from([100.0, 101.0, 102.0, 103.0])
    arguments: dict[str, Any] = {"target": 0.1, "vertical_barrier": 2} | kwargs
    with pytest.raises(ValueError, match=match):
        triple_barrier(frame, **arguments)


@pytest.mark.parametrize(
    ("close", "match"),
    [
        (frame_from([100.0, 101.0, 102.0]).reverse(), "unsorted"),
        (frame_from([100.0, 101.0], gaps_minutes=[0]), "duplicated"),
        (frame_from([100.0, 0.0]), "positive"),
        (frame_from([100.0, 101.0]).with_columns(pl.Series("close", [1.0, None])), "null"),
        (frame_from([100.0, 101.0]).with_columns(symbol=pl.Series(["A", "B"])), "symbols"),
        (frame_from([100.0, 101.0]).drop("close"), "close"),
        (pd.Series([1.0, 2.0]), "DatetimeIndex"),
    ],
)
def test_invalid_close_raises(close: Any, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        triple_barrier(close, target=0.1, vertical_barrier=1)


@pytest.mark.parametrize(
    "kwargs",
    [{"vertical_barrier": True}, {"vertical_barrier": "10"}, {"profit_take_mult": "1"}, {"target": True}],
)
def test_wrong_argument_types_raise_type_error(kwargs: dict[str, Any]) -> None:
    frame = frame_from([100.0, 101.0, 102.0])
    with pytest.raises(TypeError):
        triple_barrier(frame, **({"target": 0.1, "vertical_barrier": 2} | kwargs))


def test_close_of_unsupported_type_raises_type_error() -> None:
    with pytest.raises(TypeError, match="close must be"):
        triple_barrier([100.0, 101.0], target=0.1)  # type: ignore[arg-type]


def test_time_delta_needs_timestamps() -> None:
    with pytest.raises(ValueError, match="timestamps"):
        triple_barrier(pl.Series([1.0, 2.0]), target=0.1, vertical_barrier=datetime.timedelta(minutes=1))


def test_naive_events_against_aware_close_raise() -> None:
    frame = frame_from([100.0, 101.0])
    with pytest.raises(ValueError, match="time zone"):
        triple_barrier(frame, events=[datetime.datetime(2024, 3, 1, 14, 30)], target=0.1, vertical_barrier=1)

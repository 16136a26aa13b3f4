from datetime import UTC, date, datetime, timedelta

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from core.errors import DataQualityError
from market.normalize import NormalizedBars, normalize_bars, session_volume_ratios, unaligned_key
from market.synthetic import SyntheticMarketConfig, generate_market
from tests.support import clean_bars

BASE_KEYS = {
    "converted_to_utc",
    "other_symbols_dropped",
    "unsorted_rows",
    "exact_duplicates_dropped",
    "non_trading_day_dropped",
    "outside_session_dropped",
    "partial_final_session_dropped",
    "low_volume_sessions_dropped",
}


@pytest.fixture(scope="module")
def bars() -> pl.DataFrame:
    return clean_bars(session_count=3)


def shifted(frame: pl.DataFrame, delta: timedelta) -> pl.DataFrame:
    """``frame`` with every timestamp moved by ``delta`` (keeping nanosecond precision)."""
    return frame.with_columns((pl.col("ts") + delta).cast(pl.Datetime("ns", "UTC")))


def nonzero(result: NormalizedBars) -> dict[str, int]:
    return {key: count for key, count in result.repairs.items() if count}


def test_clean_bars_need_no_repair(bars: pl.DataFrame) -> None:
    result = normalize_bars(bars, symbols=["NVDA", "MSFT"])
    assert_frame_equal(result.bars, bars)
    assert result.bar_minutes == 1
    assert set(result.repairs) == BASE_KEYS | {unaligned_key("NVDA"), unaligned_key("MSFT")}
    assert nonzero(result) == {}


def test_timezone_conversion_is_counted(bars: pl.DataFrame) -> None:
    local = bars.with_columns(pl.col("ts").dt.convert_time_zone("America/New_York"))
    result = normalize_bars(local)
    assert_frame_equal(result.bars, bars)
    assert nonzero(result) == {"converted_to_utc": bars.height}


def test_unrequested_symbols_are_dropped_and_counted(bars: pl.DataFrame) -> None:
    extra = clean_bars(session_count=3, symbols=("AAPL",))
    result = normalize_bars(pl.concat([bars, extra]), symbols=["MSFT", "NVDA"])
    assert_frame_equal(result.bars, bars)
    assert nonzero(result) == {"other_symbols_dropped": extra.height}


def test_unsorted_rows_are_sorted_and_counted(bars: pl.DataFrame) -> None:
    # Symbols in reverse order are not a repair; within NVDA, three rows moved to the end are.
    nvda = bars.filter(pl.col("symbol") == "NVDA")
    shuffled = pl.concat([nvda.slice(3), nvda.head(3), bars.filter(pl.col("symbol") == "MSFT")])
    result = normalize_bars(shuffled)
    assert_frame_equal(result.bars, bars)
    assert nonzero(result) == {"unsorted_rows": 3}


def test_exact_duplicates_are_dropped_and_counted(bars: pl.DataFrame) -> None:
    doubled = pl.concat([bars, bars.slice(100, 7), bars.slice(100, 2)])
    result = normalize_bars(doubled)
    assert_frame_equal(result.bars, bars)
    assert nonzero(result) == {"exact_duplicates_dropped": 9, "unsorted_rows": 9}


def test_conflicting_duplicates_fail_with_count_and_examples(bars: pl.DataFrame) -> None:
    conflicting = bars.slice(10, 2).with_columns(pl.col("close") * 1.01)
    with pytest.raises(DataQualityError) as raised:
        normalize_bars(pl.concat([bars, conflicting]))
    message = str(raised.value)
    assert "4 conflicting rows" in message and "2 bar(s)" in message
    assert "MSFT 2024-03-04 14:40:00+00:00" in message
    assert len(raised.value.failures) == 4


def test_extended_hours_and_weekend_bars_are_dropped_and_counted(bars: pl.DataFrame) -> None:
    monday = bars.filter(pl.col("ts").dt.date() == date(2024, 3, 4))
    pre_market = shifted(
        monday.filter(pl.col("ts").dt.hour() == 14).head(20), timedelta(hours=-1)
    )  # 08:30 NY
    after_hours = shifted(monday.tail(5), timedelta(hours=2))  # 17:55 NY
    saturday = shifted(monday.head(11), timedelta(days=5))
    result = normalize_bars(pl.concat([bars, pre_market, after_hours, saturday]))
    assert_frame_equal(result.bars, bars)
    assert result.repairs["outside_session_dropped"] == 25
    assert result.repairs["non_trading_day_dropped"] == 11


def test_bar_ending_after_the_close_is_outside_the_session() -> None:
    five = clean_bars(session_count=1, bar_minutes=5, symbols=("NVDA",))
    last_start = five["ts"].max()
    late = shifted(five.tail(1), timedelta(minutes=3))  # 15:58 start ends 16:03
    result = normalize_bars(pl.concat([five, late]), bar_minutes=5)
    assert result.repairs["outside_session_dropped"] == 1
    assert result.bars["ts"].max() == last_start


def test_half_day_respected() -> None:
    # 2024-11-29 closes at 13:00 New York: a full-length day of bars loses its last 180 minutes.
    days = clean_bars(session_count=3, start=date(2024, 11, 26))
    early = date(2024, 11, 29)
    full_day = shifted(days.filter(pl.col("ts").dt.date() == date(2024, 11, 27)), timedelta(days=2))
    padded = pl.concat([days.filter(pl.col("ts").dt.date() != early), full_day])
    result = normalize_bars(padded)
    assert result.repairs["outside_session_dropped"] == 2 * 180
    kept = result.bars.filter(pl.col("ts").dt.date() == early)
    assert kept.height == 2 * 210
    assert kept["ts"].max() == datetime(2024, 11, 29, 17, 59, tzinfo=UTC)


def test_alignment_drops_unmatched_bars_per_symbol(bars: pl.DataFrame) -> None:
    gappy = bars.filter(
        ~((pl.col("symbol") == "NVDA") & pl.int_range(pl.len()).over("symbol").is_in([5, 6, 7]))
        & ~((pl.col("symbol") == "MSFT") & (pl.int_range(pl.len()).over("symbol") == 400))
    )
    result = normalize_bars(gappy, symbols=["NVDA", "MSFT"])
    assert nonzero(result) == {unaligned_key("MSFT"): 3, unaligned_key("NVDA"): 1}
    per_symbol = result.bars.group_by("symbol").len()
    assert per_symbol["len"].to_list() == [bars.height // 2 - 4] * 2
    wide = result.bars.pivot(on="symbol", index="ts", values="close")
    assert wide.null_count().sum_horizontal().item() == 0


def test_single_symbol_needs_no_alignment(bars: pl.DataFrame) -> None:
    nvda = bars.filter(pl.col("symbol") == "NVDA")
    result = normalize_bars(nvda.slice(10), symbols=["NVDA"])
    assert nonzero(result) == {}
    assert set(result.repairs) == BASE_KEYS | {unaligned_key("NVDA")}


def test_missing_symbol_fails_naming_it(bars: pl.DataFrame) -> None:
    with pytest.raises(DataQualityError, match=r"no bars at all for symbol\(s\) \['AAPL'\]"):
        normalize_bars(bars, symbols=["NVDA", "AAPL"])


def test_empty_inputs_fail(bars: pl.DataFrame) -> None:
    with pytest.raises(DataQualityError, match="no bars in the input"):
        normalize_bars(bars.head(0))
    night = shifted(bars.head(50), timedelta(hours=10))
    with pytest.raises(
        DataQualityError, match=r"no bars left after normalization.*outside_session_dropped=50"
    ):
        normalize_bars(night, bar_minutes=1)


def test_naive_timestamps_and_missing_columns_fail(bars: pl.DataFrame) -> None:
    with pytest.raises(DataQualityError, match="no time zone"):
        normalize_bars(bars.with_columns(pl.col("ts").dt.replace_time_zone(None)))
    with pytest.raises(DataQualityError, match=r"lacks column\(s\) \['volume'\]"):
        normalize_bars(bars.drop("volume"))


def test_repair_lines_are_readable(bars: pl.DataFrame) -> None:
    result = normalize_bars(pl.concat([bars, bars.head(2)]).filter(pl.int_range(pl.len()) != 5))
    lines = result.repair_lines()
    assert "exact duplicate rows dropped: 2" in lines
    assert "MSFT bars without a matching bar of every other symbol dropped: 0" in lines
    assert "NVDA bars without a matching bar of every other symbol dropped: 1" in lines
    assert len(lines) == len(result.repairs)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    permutation_seed=st.integers(0, 2**32 - 1),
    duplicates=st.lists(st.integers(0, 779), max_size=20),
    dropped=st.lists(st.integers(0, 779), max_size=5, unique=True),
)
def test_repairs_account_for_every_row(
    permutation_seed: int, duplicates: list[int], dropped: list[int]
) -> None:
    small = clean_bars(session_count=1)
    clean = small.filter(~pl.int_range(pl.len()).is_in(dropped))
    messy = pl.concat([clean, clean[[index % clean.height for index in duplicates]]]).sample(
        fraction=1.0, shuffle=True, seed=permutation_seed
    )
    result = normalize_bars(messy)
    counted_drops = sum(
        count for key, count in result.repairs.items() if key not in {"unsorted_rows", "converted_to_utc"}
    )
    assert result.bars.height + counted_drops == messy.height
    assert result.repairs["exact_duplicates_dropped"] == len(duplicates)
    assert result.bars.select(pl.struct("symbol", "ts").is_unique().all()).item()
    assert_frame_equal(result.bars, result.bars.sort("symbol", "ts"))
    remaining = small[sorted(set(range(small.height)) - set(dropped))]
    assert_frame_equal(result.bars, remaining.filter(pl.len().over("ts") == 2))


def test_a_partial_final_session_is_dropped_as_a_counted_repair() -> None:
    """An export taken at 14:00 New York ends mid-session: that session goes, the rest stays."""
    bars = generate_market(SyntheticMarketConfig(sessions=6), seed=2).bars
    cut = bars.filter(pl.col("ts") < bars["ts"].max() - timedelta(hours=2))
    kept = normalize_bars(cut, symbols=["NVDA", "MSFT"], drop_partial_final_session=True)
    last_session_rows = cut.height - bars.height + 2 * 390
    assert kept.repairs["partial_final_session_dropped"] == last_session_rows
    assert kept.bars.height == bars.height - 2 * 390
    untouched = normalize_bars(bars, symbols=["NVDA", "MSFT"], drop_partial_final_session=True)
    assert untouched.repairs["partial_final_session_dropped"] == 0
    off = normalize_bars(cut, symbols=["NVDA", "MSFT"])
    assert off.repairs["partial_final_session_dropped"] == 0 and off.bars.height == cut.height


def test_a_feed_change_session_of_tiny_volume_is_found_and_can_be_dropped() -> None:
    bars = generate_market(SyntheticMarketConfig(sessions=30), seed=1).bars
    day = pl.col("ts").dt.convert_time_zone("America/New_York").dt.date()
    days = bars.select(day.unique().sort()).to_series()
    feed_change = bars.with_columns(
        pl.when(day == days[20]).then(pl.col("volume") * 0.03).otherwise(pl.col("volume")).alias("volume")
    )
    ratios = session_volume_ratios(feed_change)
    low = ratios.filter(pl.col("volume_ratio") < 0.1)
    assert low["session"].to_list() == [days[20]] * 2
    assert ratios.filter(pl.col("volume_ratio") >= 0.1)["volume_ratio"].min() > 0.5
    dropped = normalize_bars(feed_change, symbols=["NVDA", "MSFT"], drop_low_volume_below=0.1)
    assert dropped.repairs["low_volume_sessions_dropped"] == 2 * 390
    assert dropped.dropped_sessions == (days[20],)
    # causal: the ratio of a session reads only earlier sessions
    earlier = session_volume_ratios(feed_change.filter(day <= days[20]))
    assert (
        earlier.filter(pl.col("session") == days[20])["volume_ratio"].to_list()
        == low["volume_ratio"].to_list()
    )

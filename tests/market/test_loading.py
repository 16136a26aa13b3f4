import gzip
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal
from pydantic import ValidationError

from core.errors import DataLoadError, DataQualityError
from market.loading import CANONICAL_COLUMNS, ExportSpec, infer_bar_minutes, load_export
from tests.support import clean_bars

NEW_YORK = "America/New_York"




def local_text(ts: pl.Expr, *, fmt: str = "%Y-%m-%d %H:%M:%S") -> pl.Expr:
    return ts.dt.convert_time_zone(NEW_YORK).dt.strftime(fmt)


def write_per_symbol_csv(bars: pl.DataFrame, directory: Path) -> dict[str, Path]:
    """One CSV per symbol, naive New York timestamps, vendor-style capitalised columns."""
    paths: dict[str, Path] = {}
    for (symbol,), group in bars.group_by(["symbol"], maintain_order=True):
        path = directory / f"{symbol}.csv"
        group.select(
            local_text(pl.col("ts")).alias("Timestamp"),
            pl.col("open").alias("Open"),
            pl.col("high").alias("High"),
            pl.col("low").alias("Low"),
            pl.col("close").alias("Close"),
            pl.col("volume").alias("Volume"),
        ).write_csv(path)
        paths[str(symbol)] = path
    return paths


@pytest.fixture(scope="module")
def bars() -> pl.DataFrame:
    return clean_bars(session_count=3)


def test_per_symbol_csv_naive_new_york_round_trips(bars: pl.DataFrame, tmp_path: Path) -> None:
    loaded = load_export(write_per_symbol_csv(bars, tmp_path))
    assert loaded.schema == pl.Schema(
        {
            "ts": pl.Datetime("ns", "UTC"),
            "symbol": pl.String,
            "open": pl.Float64,
            "high": pl.Float64,
            "low": pl.Float64,
            "close": pl.Float64,
            "volume": pl.Float64,
        }
    )
    assert_frame_equal(loaded, bars)


def test_long_parquet_with_tz_aware_timestamps_and_ticker_column(bars: pl.DataFrame, tmp_path: Path) -> None:
    path = tmp_path / "all.parquet"
    bars.with_columns(pl.col("ts").dt.convert_time_zone("Europe/Berlin")).rename(
        {"symbol": "Ticker"}
    ).write_parquet(path)
    loaded = load_export({"*": path})
    assert_frame_equal(loaded, bars)


def test_long_csv_with_explicit_column_mapping(bars: pl.DataFrame, tmp_path: Path) -> None:
    path = tmp_path / "export.csv"
    bars.select(
        local_text(pl.col("ts"), fmt="%Y-%m-%dT%H:%M").alias("Bar Time"),
        pl.col("symbol").alias("Instrument"),
        pl.col("open").alias("O"),
        pl.col("high").alias("H"),
        pl.col("low").alias("L"),
        pl.col("close").alias("Last"),
        pl.col("volume").alias("Qty"),
    ).write_csv(path)
    spec = ExportSpec(
        columns={"ts": "Bar Time", "open": "O", "high": "H", "low": "L", "close": "last", "volume": "Qty"},
        symbol_column="Instrument",
    )
    loaded = load_export({"*": path}, spec=spec)
    assert_frame_equal(loaded, bars)


def test_string_offsets_across_daylight_saving_and_z_suffix(tmp_path: Path) -> None:
    # 2024-03-08 is EST (-05:00), 2024-03-11 EDT (-04:00): both are 09:30 New York, the session open.
    offsets = tmp_path / "NVDA.csv"
    offsets.write_text(
        "time,open,high,low,close,volume\n"
        "2024-03-08 09:30:00-05:00,1,2,0.5,1.5,10\n"
        "2024-03-11 09:30:00-04:00,1,2,0.5,1.5,10.5\n"
    )
    zulu = tmp_path / "MSFT.csv"
    zulu.write_text("datetime,open,high,low,close,volume\n2024-03-08T14:30:00Z,1,2,0.5,1.5,10\n")
    loaded = load_export({"NVDA": offsets, "MSFT": zulu})
    assert loaded["ts"].to_list() == [
        datetime(2024, 3, 8, 14, 30, tzinfo=UTC),
        datetime(2024, 3, 11, 13, 30, tzinfo=UTC),
        datetime(2024, 3, 8, 14, 30, tzinfo=UTC),
    ]
    assert loaded["symbol"].to_list() == ["NVDA", "NVDA", "MSFT"]
    assert loaded["volume"].to_list() == [10.0, 10.5, 10.0]


@pytest.mark.parametrize(
    ("scale", "suffix"), [(1, "csv"), (1_000, "csv"), (1_000, "parquet"), (10**9, "parquet")]
)
def test_epoch_integers_seconds_milliseconds_nanoseconds(
    bars: pl.DataFrame, tmp_path: Path, scale: int, suffix: str
) -> None:
    epoch = (pl.col("ts").dt.epoch("s") * scale).alias("timestamp")
    frame = bars.select(epoch, *CANONICAL_COLUMNS[1:])
    path = tmp_path / f"all.{suffix}"
    if suffix == "csv":
        frame.write_csv(path)
    else:
        frame.write_parquet(path)
    assert_frame_equal(load_export({"*": path}), bars)


def test_gzipped_csv(tmp_path: Path) -> None:
    path = tmp_path / "NVDA.csv.gz"
    path.write_bytes(gzip.compress(b"ts,open,high,low,close,volume\n2024-03-04 09:30:00,1,2,0.5,1.5,7\n"))
    loaded = load_export({"NVDA": path})
    assert loaded.row(0) == (datetime(2024, 3, 4, 14, 30, tzinfo=UTC), "NVDA", 1.0, 2.0, 0.5, 1.5, 7.0)


def test_bar_end_labels_shift_back_by_inferred_five_minutes(tmp_path: Path) -> None:
    five = clean_bars(session_count=2, bar_minutes=5, symbols=("NVDA",))
    path = tmp_path / "NVDA.parquet"
    five.drop("symbol").with_columns(
        (pl.col("ts") + pl.duration(minutes=5, time_unit="ns"))
        .dt.convert_time_zone(NEW_YORK)
        .dt.replace_time_zone(None)
    ).write_parquet(path)
    loaded = load_export({"NVDA": path}, spec=ExportSpec(bar_label="end"))
    assert_frame_equal(loaded, five)
    assert infer_bar_minutes(loaded) == 5


def test_bar_end_labels_with_stated_bar_size(tmp_path: Path) -> None:
    path = tmp_path / "NVDA.csv"
    path.write_text("ts,open,high,low,close,volume\n2024-03-04 09:45:00,1,1,1,1,1\n")
    loaded = load_export({"NVDA": path}, spec=ExportSpec(bar_label="end", bar_minutes=15))
    assert loaded["ts"].to_list() == [datetime(2024, 3, 4, 14, 30, tzinfo=UTC)]


def test_bar_end_labels_without_inferable_size_fail(tmp_path: Path) -> None:
    path = tmp_path / "NVDA.csv"
    path.write_text("ts,open,high,low,close,volume\n2024-03-04 09:45:00,1,1,1,1,1\n")
    with pytest.raises(DataLoadError, match="bar_minutes"):
        load_export({"NVDA": path}, spec=ExportSpec(bar_label="end"))


def test_numeric_text_with_spaces_and_empty_cells(tmp_path: Path) -> None:
    path = tmp_path / "NVDA.csv"
    path.write_text('ts,open,high,low,close,volume\n2024-03-04 09:30:00," 1.5 ",2,1,1.25,\n')
    loaded = load_export({"NVDA": path})
    assert loaded.row(0)[2:] == (1.5, 2.0, 1.0, 1.25, None)


def test_infer_bar_minutes_uses_most_common_within_day_spacing() -> None:
    frame = clean_bars(session_count=2, bar_minutes=5, symbols=("NVDA",))
    gappy = frame.filter(pl.int_range(pl.len()) % 7 != 3)  # missing bars make 10-minute gaps
    assert infer_bar_minutes(gappy) == 5
    # Overnight gaps never count, however many sessions there are.
    first_bars = frame.group_by(pl.col("ts").dt.date().alias("day"), maintain_order=True).first().drop("day")
    assert first_bars.height == 2
    with pytest.raises(DataQualityError, match="no symbol has two bars"):
        infer_bar_minutes(first_bars)


def test_infer_bar_minutes_ties_go_to_smaller_and_sub_minute_fails() -> None:
    start = datetime(2024, 3, 4, 14, 30, tzinfo=UTC)
    ticks = [start, start + timedelta(minutes=1), start + timedelta(minutes=3)]
    tied = pl.DataFrame({"ts": ticks, "symbol": ["A"] * 3})
    assert infer_bar_minutes(tied) == 1
    seconds = pl.DataFrame({"ts": [start + timedelta(seconds=30 * i) for i in range(4)], "symbol": ["A"] * 4})
    with pytest.raises(DataQualityError, match="whole number of minutes"):
        infer_bar_minutes(seconds)


def test_missing_file_and_unknown_extension(tmp_path: Path) -> None:
    with pytest.raises(DataLoadError, match="not found") as missing:
        load_export({"NVDA": tmp_path / "nope.csv"})
    assert "nope.csv" in str(missing.value)
    other = tmp_path / "bars.xlsx"
    other.write_text("x")
    with pytest.raises(DataLoadError, match=r"unknown export format.*bars\.xlsx"):
        load_export({"NVDA": other})


def test_empty_and_header_only_files(tmp_path: Path) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(DataLoadError, match=r"empty.*empty\.csv"):
        load_export({"NVDA": empty})
    header = tmp_path / "header.csv"
    header.write_text("ts,open,high,low,close,volume\n")
    with pytest.raises(DataLoadError, match=r"no data rows.*header\.csv"):
        load_export({"NVDA": header})


def test_unreadable_parquet(tmp_path: Path) -> None:
    path = tmp_path / "broken.parquet"
    path.write_bytes(b"not a parquet file")
    with pytest.raises(DataLoadError, match=r"cannot read.*broken\.parquet"):
        load_export({"NVDA": path})


def test_missing_column_lists_what_the_file_has(tmp_path: Path) -> None:
    path = tmp_path / "NVDA.csv"
    path.write_text("ts,open,high,low,last,volume\n2024-03-04 09:30:00,1,1,1,1,1\n")
    with pytest.raises(DataLoadError) as raised:
        load_export({"NVDA": path})
    message = str(raised.value)
    assert "close" in message and "NVDA.csv" in message and "'last'" in message


def test_long_file_needs_a_symbol_column(tmp_path: Path) -> None:
    path = tmp_path / "all.csv"
    path.write_text("ts,open,high,low,close,volume\n2024-03-04 09:30:00,1,1,1,1,1\n")
    with pytest.raises(DataLoadError, match="symbol"):
        load_export({"*": path})


def test_long_file_given_as_one_symbol_fails(bars: pl.DataFrame, tmp_path: Path) -> None:
    path = tmp_path / "all.parquet"
    bars.write_parquet(path)
    with pytest.raises(DataLoadError, match=r"also holds \['NVDA'\]"):
        load_export({"MSFT": path})


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("yesterday", "unrecognised timestamp format"),
        ("03/04/2024 09:30", "unrecognised timestamp format"),
        ("2024-13-45 09:30:00", "unparseable"),
        ("", "empty timestamp"),
    ],
)
def test_bad_timestamps_name_file_column_and_row(tmp_path: Path, value: str, fragment: str) -> None:
    path = tmp_path / "NVDA.csv"
    path.write_text(f"ts,open,high,low,close,volume\n2024-03-04 09:30:00,1,1,1,1,1\n{value},1,1,1,1,1\n")
    with pytest.raises(DataLoadError, match=fragment) as raised:
        load_export({"NVDA": path})
    assert "'ts'" in str(raised.value) and "NVDA.csv" in str(raised.value) and "row 2" in str(raised.value)


def test_stated_timestamp_format(tmp_path: Path) -> None:
    path = tmp_path / "NVDA.csv"
    path.write_text("ts,open,high,low,close,volume\n03/04/2024 09:30,1,1,1,1,1\n")
    loaded = load_export({"NVDA": path}, spec=ExportSpec(timestamp_format="%m/%d/%Y %H:%M"))
    assert loaded["ts"].to_list() == [datetime(2024, 3, 4, 14, 30, tzinfo=UTC)]


def test_mixed_offset_and_naive_timestamps_fail(tmp_path: Path) -> None:
    path = tmp_path / "NVDA.csv"
    path.write_text(
        "ts,open,high,low,close,volume\n2024-03-04 09:30:00-05:00,1,1,1,1,1\n2024-03-04 09:31:00,1,1,1,1,1\n"
    )
    with pytest.raises(DataLoadError, match="with and without UTC offsets"):
        load_export({"NVDA": path})


def test_time_in_daylight_saving_gap_fails(tmp_path: Path) -> None:
    path = tmp_path / "NVDA.csv"
    path.write_text("ts,open,high,low,close,volume\n2024-03-10 02:30:00,1,1,1,1,1\n")
    with pytest.raises(DataLoadError, match="do not exist in America/New_York"):
        load_export({"NVDA": path})


def test_non_numeric_price_names_column_file_and_row(tmp_path: Path) -> None:
    path = tmp_path / "NVDA.csv"
    path.write_text(
        "ts,open,high,low,close,volume\n2024-03-04 09:30:00,1,1,1,1,1\n2024-03-04 09:31:00,1,1,1,n/a,1\n"
    )
    with pytest.raises(DataLoadError) as raised:
        load_export({"NVDA": path})
    message = str(raised.value)
    assert "'close'" in message and "NVDA.csv" in message and "data row 2" in message and "'n/a'" in message


def test_export_spec_validation() -> None:
    with pytest.raises(ValidationError, match="unknown time zone"):
        ExportSpec(timezone="Mars/Olympus")
    with pytest.raises(ValidationError, match="canonical names"):
        ExportSpec(columns={"price": "Close"})
    with pytest.raises(ValidationError, match="contradicts"):
        ExportSpec(columns={"symbol": "a"}, symbol_column="b")
    with pytest.raises(ValidationError):
        ExportSpec(bar_minutes=0)
    with pytest.raises(ValidationError):
        ExportSpec(unknown_field=1)  # type: ignore[call-arg]
    spec = ExportSpec()
    with pytest.raises(ValidationError):
        spec.timezone = "UTC"  # type: ignore[misc]


def test_empty_paths_fail() -> None:
    with pytest.raises(DataLoadError, match="no export files"):
        load_export({})

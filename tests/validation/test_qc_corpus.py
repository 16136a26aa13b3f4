"""Corrupted exports taken through load -> normalize -> QC.

Every case must end in a project error whose message names the problem, or in counted repairs (or both,
when a repair leaves data that QC then rejects): never another exception type, never a silent pass.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import polars as pl
import pytest

from core.errors import DataLoadError, DataQualityError, PipelineError
from market.loading import ExportSpec, load_export
from market.normalize import NormalizedBars, normalize_bars, unaligned_key
from tests.support import clean_bars
from validation.qc import raise_for_qc, run_qc

SYMBOLS = ("MSFT", "NVDA")
SESSIONS = 6  # 2024-03-04 .. 2024-03-11: five EST sessions, one EDT session (DST starts 2024-03-10)
BARS_PER_SESSION = 390
Paths = dict[str, Path]


@dataclass(frozen=True)
class Case:
    """A corrupted export and the outcome it must produce."""

    write: Callable[[Path, pl.DataFrame], Paths]
    error: type[PipelineError] | None = None
    message: tuple[str, ...] = ()
    repairs: dict[str, int] = field(default_factory=dict)
    spec: ExportSpec = field(default_factory=ExportSpec)


def vendor_text(bars: pl.DataFrame) -> pl.DataFrame:
    """Canonical bars of one symbol as an all-text vendor table (naive New York timestamps)."""
    return bars.select(
        pl.col("ts")
        .dt.convert_time_zone("America/New_York")
        .dt.strftime("%Y-%m-%d %H:%M:%S")
        .alias("Timestamp"),
        *(
            pl.col(name).cast(pl.String).alias(name.capitalize())
            for name in ("open", "high", "low", "close", "volume")
        ),
    )


def set_text(table: pl.DataFrame, column: str, rows: list[int], text: str) -> pl.DataFrame:
    hit = pl.int_range(pl.len()).is_in(rows)
    return table.with_columns(pl.when(hit).then(pl.lit(text)).otherwise(pl.col(column)).alias(column))


def write_files(directory: Path, tables: dict[str, pl.DataFrame]) -> Paths:
    paths: Paths = {}
    for symbol, table in tables.items():
        path = directory / f"{symbol}.csv"
        table.write_csv(path)
        paths[symbol] = path
    return paths


def symbol_bars(bars: pl.DataFrame, symbol: str) -> pl.DataFrame:
    return bars.filter(pl.col("symbol") == symbol)


def changed(
    symbol: str, change: Callable[[pl.DataFrame], pl.DataFrame], *, text: bool = True
) -> Callable[[Path, pl.DataFrame], Paths]:
    """A writer of clean per-symbol files where ``symbol``'s table (vendor text, or canonical bars when
    ``text`` is False) goes through ``change`` first."""

    def write(directory: Path, clean: pl.DataFrame) -> Paths:
        tables = {}
        for name in SYMBOLS:
            frame = symbol_bars(clean, name)
            if name != symbol:
                tables[name] = vendor_text(frame)
            elif text:
                tables[name] = change(vendor_text(frame))
            else:
                tables[name] = vendor_text(change(frame))
        return write_files(directory, tables)

    return write


def shifted(frame: pl.DataFrame, delta: timedelta) -> pl.DataFrame:
    return frame.with_columns((pl.col("ts") + delta).cast(pl.Datetime("ns", "UTC")))


def on_day(frame: pl.DataFrame, day: date) -> pl.Expr:
    return pl.col("ts").dt.convert_time_zone("America/New_York").dt.date() == day


# --- corruptions ------------------------------------------------------------------------------------------


def empty_file(directory: Path, clean: pl.DataFrame) -> Paths:
    paths = write_files(directory, {"MSFT": vendor_text(symbol_bars(clean, "MSFT"))})
    paths["NVDA"] = directory / "NVDA.csv"
    paths["NVDA"].write_text("")
    return paths


def header_only(directory: Path, clean: pl.DataFrame) -> Paths:
    return write_files(directory, {"MSFT": vendor_text(symbol_bars(clean, "MSFT")).head(0)}) | write_files(
        directory, {"NVDA": vendor_text(symbol_bars(clean, "NVDA"))}
    )


def unknown_extension(directory: Path, clean: pl.DataFrame) -> Paths:
    paths = write_files(directory, {name: vendor_text(symbol_bars(clean, name)) for name in SYMBOLS})
    renamed = paths["NVDA"].with_suffix(".xls")
    paths["NVDA"].rename(renamed)
    return paths | {"NVDA": renamed}


def high_below_low(frame: pl.DataFrame) -> pl.DataFrame:
    hit = pl.int_range(pl.len()) == 700
    return frame.with_columns(
        pl.when(hit).then(pl.col("low")).otherwise(pl.col("high")).alias("high"),
        pl.when(hit).then(pl.col("high")).otherwise(pl.col("low")).alias("low"),
    )


def conflicting_duplicate(frame: pl.DataFrame) -> pl.DataFrame:
    return pl.concat([frame, frame.slice(900, 1).with_columns(pl.col("close") * 1.001)])


def first_session_last(frame: pl.DataFrame) -> pl.DataFrame:
    return pl.concat([frame.slice(BARS_PER_SESSION), frame.head(BARS_PER_SESSION)])


def utc_written_as_local(directory: Path, clean: pl.DataFrame) -> Paths:
    """The vendor wrote UTC wall-clock times; the spec (default) says New York."""
    tables = {
        name: vendor_text(symbol_bars(clean, name)).with_columns(
            symbol_bars(clean, name)["ts"].dt.strftime("%Y-%m-%d %H:%M:%S").alias("Timestamp")
        )
        for name in SYMBOLS
    }
    return write_files(directory, tables)


def drop_session(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.filter(~on_day(frame, date(2024, 3, 6)))


def five_minute_tail(frame: pl.DataFrame) -> pl.DataFrame:
    """The last two sessions arrive as 5-minute bars (every fifth 1-minute bar kept)."""
    late = on_day(frame, date(2024, 3, 8)) | on_day(frame, date(2024, 3, 11))
    return frame.filter(~late | (pl.int_range(pl.len()) % 5 == 0))


def spikes(frame: pl.DataFrame) -> pl.DataFrame:
    rows = [1_000 + 101 * k for k in range(12)]
    hit = pl.int_range(pl.len()).is_in(rows)
    spiked = frame.with_columns(
        pl.when(hit).then(pl.col("close") * 1.05).otherwise(pl.col("close")).alias("close")
    )
    return spiked.with_columns(pl.max_horizontal("high", "close").alias("high"))


def extended_hours(directory: Path, clean: pl.DataFrame) -> Paths:
    """Pre-market (04:00-09:29) and after-hours (16:00-19:59) bars on 2024-03-05, for both symbols."""
    tables = {}
    for name in SYMBOLS:
        frame = symbol_bars(clean, name)
        day = frame.filter(on_day(frame, date(2024, 3, 5)))
        pre = shifted(day, timedelta(minutes=-330)).head(330)  # 04:00 .. 09:29
        post = shifted(day, timedelta(minutes=390)).head(240)
        tables[name] = vendor_text(pl.concat([pre, frame, post]).sort("ts"))
    return write_files(directory, tables)


def stale(frame: pl.DataFrame) -> pl.DataFrame:
    rows = list(range(1_500, 1_545))
    hit = pl.int_range(pl.len()).is_in(rows)
    flat = pl.lit(frame["close"][1_500])
    return frame.with_columns(
        pl.when(hit).then(flat).otherwise(pl.col(name)).alias(name)
        for name in ("open", "high", "low", "close")
    )


def weekend_copy(frame: pl.DataFrame) -> pl.DataFrame:
    friday = frame.filter(on_day(frame, date(2024, 3, 8)))
    return pl.concat([frame, shifted(friday, timedelta(days=1))]).sort("ts")


def taken_before_the_close(directory: Path, clean: pl.DataFrame) -> Paths:
    """Both files exported at 13:00 New York on the last day: its session ends after 210 of 390 bars."""
    cut = clean.filter(pl.col("ts") < clean["ts"].max() - timedelta(minutes=179))
    return write_files(directory, {name: vendor_text(symbol_bars(cut, name)) for name in SYMBOLS})


def feed_change(frame: pl.DataFrame) -> pl.DataFrame:
    """The vendor's feed changed before the last session: prices fine, volume at 3% of normal."""
    return frame.with_columns(
        pl.when(on_day(frame, date(2024, 3, 11))).then(pl.col("volume") * 0.03).otherwise(pl.col("volume"))
    )


def long_file_missing_symbol(directory: Path, clean: pl.DataFrame) -> Paths:
    path = directory / "all.csv"
    symbol_bars(clean, "NVDA").with_columns(pl.col("ts").dt.epoch("ms")).write_csv(path)
    return {"*": path}


CASES: dict[str, Case] = {
    "empty file": Case(empty_file, DataLoadError, ("export file is empty", "NVDA.csv")),
    "header-only file": Case(header_only, DataLoadError, ("no data rows", "MSFT.csv")),
    "unknown extension": Case(unknown_extension, DataLoadError, ("unknown export format", "NVDA.xls")),
    "missing column": Case(
        changed("NVDA", lambda table: table.drop("Volume")),
        DataLoadError,
        ("missing required column", "volume", "NVDA.csv", "'Close'"),
    ),
    "unparseable timestamp": Case(
        changed("NVDA", lambda table: set_text(table, "Timestamp", [42], "2024-03-04 25:99:00")),
        DataLoadError,
        ("unparseable timestamp", "'Timestamp'", "NVDA.csv", "data row 43"),
    ),
    "non-numeric price": Case(
        changed("MSFT", lambda table: set_text(table, "Close", [7], "#N/A")),
        DataLoadError,
        ("'Close'", "MSFT.csv", "non-numeric", "data row 8", "'#N/A'"),
    ),
    "NaN price": Case(
        changed("NVDA", lambda table: set_text(table, "Close", [500], "NaN")),
        DataQualityError,
        ("bar QC failed", "not_null[close]", "finite_values", "NVDA 2024-03-05 16:20:00+00:00"),
    ),
    "infinite price": Case(
        changed("NVDA", lambda table: set_text(table, "High", [500], "inf")),
        DataQualityError,
        ("finite_values", "high=inf"),
    ),
    "zero and negative prices": Case(
        changed("MSFT", lambda table: set_text(set_text(table, "Close", [10], "0"), "Low", [20], "-3.5")),
        DataQualityError,
        ("positive[close]", "positive[low]", "low=-3.5"),
    ),
    "high below low": Case(
        changed("NVDA", high_below_low, text=False),
        DataQualityError,
        ("high_ge_open", "high_ge_close", "high >= close"),
    ),
    "conflicting duplicate timestamps": Case(
        changed("MSFT", conflicting_duplicate, text=False),
        DataQualityError,
        ("2 conflicting rows", "1 bar(s)", "MSFT 2024-03-06 16:30:00+00:00"),
    ),
    "exact duplicate rows": Case(
        changed("MSFT", lambda table: pl.concat([table, table.slice(400, 25)])),
        repairs={"exact_duplicates_dropped": 25, "unsorted_rows": 25},
    ),
    "unsorted rows": Case(changed("NVDA", first_session_last), repairs={"unsorted_rows": BARS_PER_SESSION}),
    "timestamps in the wrong time zone": Case(
        utc_written_as_local,
        DataQualityError,
        ("session_completeness",),
        # Read as New York time, UTC 14:30-20:59 (EST) keeps 14:30-15:59 and loses 300 bars a session;
        # UTC 13:30-19:59 (EDT, 2024-03-11) keeps 13:30-15:59 and loses 240.
        repairs={"outside_session_dropped": 2 * (5 * 300 + 240)},
    ),
    "missing session for one ticker": Case(
        changed("MSFT", drop_session, text=False),
        DataQualityError,
        ("no_missing_sessions",),
        repairs={unaligned_key("NVDA"): BARS_PER_SESSION},
    ),
    "mixed bar sizes": Case(
        changed("NVDA", five_minute_tail, text=False),
        DataQualityError,
        ("session_completeness", "_session_completeness=0.2)"),
        # the last (5-minute) session ends at 15:56 on a 1-minute grid, so it also goes as a partial session
        repairs={
            unaligned_key("MSFT"): 2 * (BARS_PER_SESSION - BARS_PER_SESSION // 5),
            "partial_final_session_dropped": 2 * (BARS_PER_SESSION // 5),
        },
    ),
    "extreme outliers": Case(
        changed("NVDA", spikes, text=False), DataQualityError, ("outlier_returns", "|robust z| > 12")
    ),
    "extended-hours rows": Case(extended_hours, repairs={"outside_session_dropped": 2 * (330 + 240)}),
    "weekend rows": Case(changed("MSFT", weekend_copy, text=False), repairs={"non_trading_day_dropped": 390}),
    "stale closes": Case(
        changed("NVDA", stale, text=False), DataQualityError, ("no_stale_closes", "_stale_run=45")
    ),
    "long file without one symbol": Case(
        long_file_missing_symbol, DataQualityError, ("no bars at all for symbol(s) ['MSFT']",)
    ),
    "export taken before the close": Case(
        taken_before_the_close, repairs={"partial_final_session_dropped": 2 * 210}
    ),
    "feed change cuts a session's volume": Case(
        changed("NVDA", feed_change, text=False),
        DataQualityError,
        ("session_volume", "2024-03-11", "_volume_ratio=0.03"),
    ),
}


@pytest.fixture(scope="module")
def clean() -> pl.DataFrame:
    return clean_bars(session_count=SESSIONS, symbols=SYMBOLS)


def run_pipeline(paths: Paths, *, spec: ExportSpec, trace: dict[str, object]) -> NormalizedBars:
    """load -> normalize -> QC with the night's default repairs, recording them before QC can refuse the data."""
    bars = load_export(paths, spec=spec)
    normalized = normalize_bars(bars, symbols=SYMBOLS, drop_partial_final_session=True)
    trace["repairs"] = normalized.repairs
    report = run_qc(normalized.bars, bar_minutes=normalized.bar_minutes)
    raise_for_qc(report)
    return normalized


def nonzero(repairs: dict[str, int]) -> dict[str, int]:
    return {key: count for key, count in repairs.items() if count}


def test_corpus_is_large_enough() -> None:
    assert len(CASES) >= 14
    for name, case in CASES.items():
        assert case.error is not None or case.repairs, f"{name} would pass silently"


def test_clean_export_passes(tmp_path: Path, clean: pl.DataFrame) -> None:
    paths = write_files(tmp_path, {name: vendor_text(symbol_bars(clean, name)) for name in SYMBOLS})
    trace: dict[str, object] = {}
    result = run_pipeline(paths, spec=ExportSpec(), trace=trace)
    assert result.bars.equals(clean) and result.bars.schema == clean.schema
    assert nonzero(result.repairs) == {}


@pytest.mark.parametrize("name", list(CASES))
def test_corrupted_export(tmp_path: Path, clean: pl.DataFrame, name: str) -> None:
    case = CASES[name]
    paths = case.write(tmp_path, clean)
    trace: dict[str, object] = {}
    if case.error is None:
        result = run_pipeline(paths, spec=case.spec, trace=trace)
        assert nonzero(result.repairs) == case.repairs
        return
    with pytest.raises(case.error) as raised:
        run_pipeline(paths, spec=case.spec, trace=trace)
    message = str(raised.value)
    for fragment in case.message:
        assert fragment in message, f"{fragment!r} not in: {message}"
    if case.repairs:
        assert isinstance(trace.get("repairs"), dict)
        assert nonzero(trace["repairs"]) == case.repairs  # type: ignore[arg-type]
    if isinstance(raised.value, DataQualityError) and "bar QC failed" in message:
        assert raised.value.failures and all(line in message for line in raised.value.failures)

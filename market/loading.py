"""Read CSV/Parquet bar exports into the canonical long bar frame.

The loader maps an export's columns to the canonical names, parses its timestamps into UTC bar starts and
its prices into floats, and nothing else: order, duplicates and extended-hours rows stay as they are in the
file so that :func:`market.normalize.normalize_bars` can count every repair it makes.
"""

import re
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import polars as pl
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from core.errors import DataLoadError, DataQualityError
from market.calendar import EXCHANGE_TZ

__all__ = [
    "CANONICAL_COLUMNS",
    "LONG_FILE_KEY",
    "ExportSpec",
    "infer_bar_minutes",
    "load_export",
]

CANONICAL_COLUMNS: tuple[str, ...] = ("ts", "symbol", "open", "high", "low", "close", "volume")
"""Columns of the canonical bar frame, in order."""

LONG_FILE_KEY = "*"
"""``load_export`` paths key for one long file holding every symbol (symbols from its symbol column)."""

_PRICE_COLUMNS: tuple[str, ...] = ("open", "high", "low", "close", "volume")
_DEFAULT_ALIASES: dict[str, tuple[str, ...]] = {
    "ts": ("ts", "timestamp", "time", "date", "datetime"),
    "symbol": ("symbol", "ticker"),
    "open": ("open",),
    "high": ("high",),
    "low": ("low",),
    "close": ("close",),
    "volume": ("volume",),
}
_CSV_SUFFIXES = (".csv", ".csv.gz")
_PARQUET_SUFFIXES = (".parquet", ".pq")
_ISO_TIMESTAMP = re.compile(
    r"^\d{4}-\d{2}-\d{2}(?:[ T]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?(?P<offset>Z|[+-]\d{2}:?\d{2})?$"
)
_EPOCH_INTEGER = re.compile(r"^-?\d+$")
# Magnitude bounds separating epoch seconds, milliseconds, microseconds and nanoseconds (years 1973..5138).
_EPOCH_UNIT_BOUNDS: tuple[tuple[float, int], ...] = ((1e11, 10**9), (1e14, 10**6), (1e17, 10**3))


class ExportSpec(BaseModel):
    """How to read one market-data export (the same spec applies to every file of a load)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    timezone: str = Field(
        default="America/New_York",
        description="IANA time zone of naive timestamps (unused for UTC offsets and epoch integers).",
    )
    bar_label: Literal["start", "end"] = Field(
        default="start",
        description="Whether a bar's timestamp marks its start or its end; end labels shift back one bar.",
    )
    bar_minutes: int | None = Field(
        default=None,
        ge=1,
        description="Bar size in minutes; None infers it as the most common within-session spacing.",
    )
    columns: dict[str, str] = Field(
        default_factory=dict,
        description=(
            "Canonical column name -> column name in the file, e.g. {'ts': 'Date', 'close': 'Close'}. "
            "Unmapped columns are found by case-insensitive defaults (timestamp/time/date/datetime, "
            "open/high/low/close/volume, symbol/ticker)."
        ),
    )
    symbol_column: str | None = Field(
        default=None,
        description="Symbol column of one long file (paths {'*': file}); defaults to symbol/ticker.",
    )
    timestamp_format: str | None = Field(
        default=None,
        description=(
            "strftime format of string timestamps (e.g. '%m/%d/%Y %H:%M'); None accepts ISO 8601 text "
            "(with or without an offset or 'Z') and epoch integers, and refuses ambiguous forms."
        ),
    )

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as error:
            message = f"unknown time zone {value!r} (expected an IANA name such as 'America/New_York')"
            raise ValueError(message) from error
        return value

    @field_validator("columns")
    @classmethod
    def _canonical_keys(cls, value: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(value) - set(CANONICAL_COLUMNS))
        if unknown:
            message = f"columns keys must be canonical names {list(CANONICAL_COLUMNS)}; got {unknown}"
            raise ValueError(message)
        return value

    @model_validator(mode="after")
    def _one_symbol_column(self) -> "ExportSpec":
        mapped = self.columns.get("symbol")
        if self.symbol_column is not None and mapped is not None and mapped != self.symbol_column:
            message = (
                f"symbol_column={self.symbol_column!r} contradicts columns['symbol']={mapped!r}; "
                "give one of them"
            )
            raise ValueError(message)
        return self


def load_export(paths: Mapping[str, str | Path], *, spec: ExportSpec = ExportSpec()) -> pl.DataFrame:
    """Read bar exports into one canonical long frame (not yet normalized).

    ``paths`` maps a symbol to its file; ``{"*": path}`` reads one long file whose symbol column names the
    symbols. Returns columns ``ts`` (Datetime ns UTC, bar start), ``symbol``, ``open``, ``high``, ``low``,
    ``close``, ``volume`` (Float64), rows in file order (files in the order of ``paths``); duplicates,
    unsorted rows and extended-hours bars are kept for normalization to count.

    Raises :class:`DataLoadError` naming the file (and column, with an example row) for a missing, empty,
    unreadable or unknown-format file, a missing column, unparseable timestamps or non-numeric prices.
    """
    if not paths:
        message = "no export files given (paths is empty)"
        raise DataLoadError(message)
    frames = [_load_file(symbol, Path(path), spec=spec) for symbol, path in paths.items()]
    bars = pl.concat(frames, how="vertical")
    if spec.bar_label == "end":
        bar_minutes = spec.bar_minutes
        if bar_minutes is None:
            try:
                bar_minutes = infer_bar_minutes(bars)
            except DataQualityError as error:
                files = ", ".join(str(path) for path in paths.values())
                message = f"cannot shift bar-end labels to bar starts in {files}: {error}; state bar_minutes"
                raise DataLoadError(message) from error
        bars = bars.with_columns(
            (pl.col("ts") - pl.duration(minutes=bar_minutes, time_unit="ns")).cast(pl.Datetime("ns", "UTC"))
        )
    return bars


def infer_bar_minutes(bars: pl.DataFrame) -> int:
    """Bar size in minutes: the most common positive spacing between bars of one symbol on one exchange day.

    Ties go to the smaller spacing. Raises :class:`DataQualityError` when no symbol has two bars on the same
    day, or when the spacing is not a whole number of minutes.
    """
    missing = [name for name in ("ts", "symbol") if name not in bars.columns]
    if missing:
        message = f"cannot infer the bar size: missing column(s) {missing}"
        raise DataQualityError(message)
    exchange_day = pl.col("ts").dt.convert_time_zone(str(EXCHANGE_TZ)).dt.date()
    spacings = (
        bars.lazy()
        .select("symbol", "ts")
        .drop_nulls()
        .unique()
        .with_columns(exchange_day.alias("_day"))
        .sort("symbol", "ts")
        .with_columns(pl.col("ts").diff().over("symbol", "_day").dt.total_seconds().alias("_spacing_seconds"))
        .filter(pl.col("_spacing_seconds") > 0)
        .group_by("_spacing_seconds")
        .len()
        .sort(["len", "_spacing_seconds"], descending=[True, False])
        .collect()
    )
    if spacings.height == 0:
        message = "cannot infer the bar size: no symbol has two bars on the same exchange day"
        raise DataQualityError(message)
    seconds = int(spacings["_spacing_seconds"][0])
    if seconds % 60:
        message = (
            f"bar size of {seconds} s is not a whole number of minutes (sub-minute bars are not supported)"
        )
        raise DataQualityError(message)
    return seconds // 60


def _load_file(symbol: str, path: Path, *, spec: ExportSpec) -> pl.DataFrame:
    raw = _read_raw(path)
    columns = _resolve_columns(raw, path=path, symbol=symbol, spec=spec)
    timestamps = _parse_timestamps(raw[columns["ts"]], spec=spec, path=path, column=columns["ts"])
    if symbol == LONG_FILE_KEY:
        symbols = _symbol_values(raw[columns["symbol"]], path=path, column=columns["symbol"])
    else:
        if "symbol" in columns:
            _check_single_symbol(raw[columns["symbol"]], symbol=symbol, path=path, column=columns["symbol"])
        symbols = pl.Series("symbol", [symbol] * raw.height, dtype=pl.String)
    prices = [
        _parse_numbers(raw[columns[name]], path=path, column=columns[name]).alias(name)
        for name in _PRICE_COLUMNS
    ]
    return pl.DataFrame([timestamps.alias("ts"), symbols.alias("symbol"), *prices])


def _read_raw(path: Path) -> pl.DataFrame:
    name = path.name.lower()
    if not name.endswith(_CSV_SUFFIXES + _PARQUET_SUFFIXES):
        message = (
            f"unknown export format for {path}: expected one of "
            f"{', '.join(_CSV_SUFFIXES + _PARQUET_SUFFIXES)}"
        )
        raise DataLoadError(message)
    if not path.is_file():
        message = f"export file not found: {path}"
        raise DataLoadError(message)
    try:
        if name.endswith(_CSV_SUFFIXES):
            # Every CSV column as text: the parsers below decide the types and can name the offending value.
            raw = pl.read_csv(path, infer_schema=False)
        else:
            raw = pl.read_parquet(path)
    except pl.exceptions.NoDataError as error:
        message = f"export file is empty: {path}"
        raise DataLoadError(message) from error
    except (pl.exceptions.PolarsError, OSError) as error:
        message = f"cannot read export file {path}: {error}"
        raise DataLoadError(message) from error
    if raw.height == 0:
        message = f"export file has no data rows: {path} (columns: {raw.columns})"
        raise DataLoadError(message)
    return raw


def _resolve_columns(raw: pl.DataFrame, *, path: Path, symbol: str, spec: ExportSpec) -> dict[str, str]:
    """Canonical name -> column in ``raw``; the symbol entry only when the file has one."""
    by_lower: dict[str, str] = {}
    for column in raw.columns:
        by_lower.setdefault(column.strip().lower(), column)
    requested = dict(spec.columns)
    if spec.symbol_column is not None:
        requested["symbol"] = spec.symbol_column
    resolved: dict[str, str] = {}
    missing: list[str] = []
    for canonical, aliases in _DEFAULT_ALIASES.items():
        if canonical in requested:
            wanted = requested[canonical]
            found = wanted if wanted in raw.columns else by_lower.get(wanted.strip().lower())
            if found is None:
                missing.append(f"{canonical} (mapped to {wanted!r})")
                continue
            resolved[canonical] = found
            continue
        for alias in aliases:
            if alias in by_lower:
                resolved[canonical] = by_lower[alias]
                break
        else:
            if canonical != "symbol":
                missing.append(f"{canonical} (looked for {' / '.join(aliases)})")
    if symbol == LONG_FILE_KEY and "symbol" not in resolved and "symbol" not in requested:
        missing.append("symbol (looked for symbol / ticker; a long file {'*': path} needs one)")
    if missing:
        message = (
            f"{path}: missing required column(s): {'; '.join(missing)}. "
            f"Columns in the file: {raw.columns}. Map them with ExportSpec(columns={{...}})."
        )
        raise DataLoadError(message)
    return resolved


def _example(raw: pl.Series, bad: pl.Series) -> str:
    """First offending value with its 1-based data row number."""
    row = int(bad.arg_true()[0])
    return f"data row {row + 1}: {raw[row]!r}"


def _parse_timestamps(raw: pl.Series, *, spec: ExportSpec, path: Path, column: str) -> pl.Series:
    """Timestamps as Datetime(ns, UTC), however the file wrote them."""
    dtype = raw.dtype
    where = f"timestamp column {column!r} of {path}"
    if raw.null_count():
        bad = raw.is_null()
        message = (
            f"{where}: {int(bad.sum())} empty timestamp(s), first at data row {int(bad.arg_true()[0]) + 1}"
        )
        raise DataLoadError(message)
    if isinstance(dtype, pl.Datetime):
        if dtype.time_zone is None:
            return _localize(raw.cast(pl.Datetime("ns")), spec=spec, where=where)
        return raw.dt.convert_time_zone("UTC").cast(pl.Datetime("ns", "UTC"))
    if dtype == pl.Date:
        return _localize(raw.cast(pl.Datetime("ns")), spec=spec, where=where)
    if dtype.is_integer():
        return _from_epoch(raw.cast(pl.Int64), where=where)
    if dtype.is_float():
        if not raw.is_finite().all():
            message = f"{where}: non-finite epoch value ({_example(raw, ~raw.is_finite())})"
            raise DataLoadError(message)
        return _from_epoch(raw, where=where)
    if dtype != pl.String:
        message = f"{where}: unsupported timestamp type {dtype}"
        raise DataLoadError(message)
    text = raw.str.strip_chars()
    if spec.timestamp_format is None and text.str.contains(_EPOCH_INTEGER.pattern).all():
        return _from_epoch(text.cast(pl.Int64), where=where)
    if spec.timestamp_format is not None:
        has_offset = "%z" in spec.timestamp_format or "%Z" in spec.timestamp_format
        parsed = text.str.to_datetime(format=spec.timestamp_format, strict=False, time_unit="ns")
    else:
        not_iso = ~text.str.contains(_ISO_TIMESTAMP.pattern)
        if not_iso.any():
            message = (
                f"{where}: unrecognised timestamp format ({_example(raw, not_iso)}); expected ISO 8601 "
                "('2024-03-01 09:30:00', optionally with an offset or 'Z') or epoch integers, "
                "or state ExportSpec(timestamp_format=...)"
            )
            raise DataLoadError(message)
        with_offset = text.str.contains(r"(?:Z|[+-]\d{2}:?\d{2})$")
        if with_offset.any() and not with_offset.all():
            mixed = with_offset if not bool(with_offset[0]) else ~with_offset
            message = f"{where}: mixes timestamps with and without UTC offsets ({_example(raw, mixed)})"
            raise DataLoadError(message)
        has_offset = bool(with_offset[0])
        parsed = text.str.replace(r"Z$", "+00:00").str.to_datetime(strict=False, time_unit="ns")
    failed = parsed.is_null()
    if failed.any():
        message = f"{where}: {int(failed.sum())} unparseable timestamp(s) ({_example(raw, failed)})"
        raise DataLoadError(message)
    parsed_dtype = parsed.dtype
    if isinstance(parsed_dtype, pl.Datetime) and parsed_dtype.time_zone is not None:
        return parsed.dt.convert_time_zone("UTC").cast(pl.Datetime("ns", "UTC"))
    if has_offset:
        message = f"{where}: timestamps carry offsets but parsed without a time zone; check timestamp_format"
        raise DataLoadError(message)
    return _localize(parsed.cast(pl.Datetime("ns")), spec=spec, where=where)


def _localize(naive: pl.Series, *, spec: ExportSpec, where: str) -> pl.Series:
    """Naive wall-clock times in ``spec.timezone`` -> UTC; times skipped by a DST change are an error."""
    # Repeated fall-back hours (01:00-02:00 local) take the earlier offset; they lie outside any session.
    localized = naive.dt.replace_time_zone(spec.timezone, ambiguous="earliest", non_existent="null")
    skipped = localized.is_null()
    if skipped.any():
        row = int(skipped.arg_true()[0])
        value: datetime | None = naive[row]
        message = (
            f"{where}: {int(skipped.sum())} timestamp(s) do not exist in {spec.timezone} "
            "(daylight-saving gap), "
            f"e.g. data row {row + 1}: {value}; is the stated time zone right?"
        )
        raise DataLoadError(message)
    return localized.dt.convert_time_zone("UTC").cast(pl.Datetime("ns", "UTC"))


def _from_epoch(values: pl.Series, *, where: str) -> pl.Series:
    """Epoch seconds/milliseconds/microseconds/nanoseconds (unit from magnitude) -> Datetime(ns, UTC)."""
    largest = values.abs().max()
    if largest is None:
        message = f"{where}: no epoch values"
        raise DataLoadError(message)
    nanoseconds_per_unit = 1
    for bound, factor in _EPOCH_UNIT_BOUNDS:
        if float(largest) < bound:  # type: ignore[arg-type]
            nanoseconds_per_unit = factor
            break
    nanoseconds = (
        (values.cast(pl.Float64) * nanoseconds_per_unit).round()
        if values.dtype.is_float()
        else (values.cast(pl.Int64) * nanoseconds_per_unit)
    )
    return nanoseconds.cast(pl.Int64).cast(pl.Datetime("ns")).dt.replace_time_zone("UTC")


def _parse_numbers(raw: pl.Series, *, path: Path, column: str) -> pl.Series:
    """Prices/volume as Float64; numeric text is accepted, other text is an error naming an example row."""
    dtype = raw.dtype
    if dtype.is_numeric():
        return raw.cast(pl.Float64)
    if dtype != pl.String:
        message = f"column {column!r} of {path} has type {dtype}; expected numbers"
        raise DataLoadError(message)
    text = raw.str.strip_chars()
    numbers = text.cast(pl.Float64, strict=False)
    # Empty cells are missing values (QC rejects them); anything else must parse as a number.
    bad = numbers.is_null() & text.is_not_null() & (text != "")
    if bad.any():
        message = f"column {column!r} of {path}: {int(bad.sum())} non-numeric value(s) ({_example(raw, bad)})"
        raise DataLoadError(message)
    return numbers


def _symbol_values(raw: pl.Series, *, path: Path, column: str) -> pl.Series:
    symbols = raw.cast(pl.String).str.strip_chars()
    empty = symbols.is_null() | (symbols == "")
    if empty.any():
        message = (
            f"symbol column {column!r} of {path}: {int(empty.sum())} empty symbol(s) ({_example(raw, empty)})"
        )
        raise DataLoadError(message)
    return symbols


def _check_single_symbol(raw: pl.Series, *, symbol: str, path: Path, column: str) -> None:
    """A per-symbol file whose symbol column names other symbols was probably a long file given by mistake."""
    others = sorted(set(raw.cast(pl.String).str.strip_chars().drop_nulls().unique().to_list()) - {symbol})
    if others:
        message = (
            f"{path} was given as the file for {symbol!r} but its column {column!r} also holds {others[:5]}; "
            f"pass {{{LONG_FILE_KEY!r}: path}} to read a long file with several symbols"
        )
        raise DataLoadError(message)

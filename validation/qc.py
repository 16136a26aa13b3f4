"""Bar-quality checks: a versioned Great Expectations suite and the one adapter that feeds it.

Great Expectations has no polars backend, so the adapter computes every per-row quantity the suite needs in
polars (columns prefixed ``_``: grid position, session completeness, robust return z-score, stale-run length,
...), converts the frame to pandas once, and lets GX validate plain columns. The suite itself lives in code
(:func:`build_suite`); :func:`export_suite` writes it as JSON (``validation/suites/stairways_bars.json``).
Great Expectations is imported on first use, not when this module is imported.
"""

import functools
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numba
import numpy as np
import polars as pl
from pydantic import BaseModel, ConfigDict, Field

from market.calendar import EXCHANGE_TZ, SESSION_MINUTES, sessions, trading_days
from market.normalize import session_volume_ratios
from stairways.errors import DataQualityError

if TYPE_CHECKING:
    import great_expectations as gx
    from great_expectations.core.batch_definition import BatchDefinition

__all__ = [
    "DEFAULT_SUITE_PATH",
    "SUITE_NAME",
    "SUITE_VERSION",
    "QCReport",
    "QCThresholds",
    "build_suite",
    "export_suite",
    "raise_for_qc",
    "required_history_sessions",
    "run_qc",
]

SUITE_NAME = "stairways_bars"
SUITE_VERSION = "1.1.0"
DEFAULT_SUITE_PATH = Path(__file__).parent / "suites" / f"{SUITE_NAME}.json"

_PRICE_COLUMNS: tuple[str, ...] = ("open", "high", "low", "close")
_NUMERIC_COLUMNS: tuple[str, ...] = (*_PRICE_COLUMNS, "volume")
_REQUIRED_COLUMNS: tuple[str, ...] = ("ts", "symbol", *_NUMERIC_COLUMNS)
# GX pandas type names: tz-aware datetimes report pandas.Timestamp; strings become StringDtype (type str).
_COLUMN_TYPES: dict[str, str] = {
    "ts": "Timestamp",
    "symbol": "str",
    **dict.fromkeys(_NUMERIC_COLUMNS, "float64"),
}
_MAD_TO_SIGMA = 1.4826  # MAD of a normal distribution times this is its standard deviation
_EXAMPLES_PER_FAILURE = 3
# Source columns shown next to a derived column in failure examples.
_EXAMPLE_CONTEXT: dict[str, tuple[str, ...]] = {
    "_finite": _NUMERIC_COLUMNS,
    "_robust_z": ("close",),
    "_stale_run": ("close",),
    "_volume_ratio": ("volume",),
}


class QCThresholds(BaseModel):
    """Tolerances of the bar-quality suite."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    min_session_completeness: float = Field(
        default=0.95,
        gt=0.0,
        le=1.0,
        description="Minimum share of a session's expected bars (from the calendar) that must be present.",
    )
    outlier_z: float = Field(
        default=12.0,
        gt=0.0,
        description="A 1-bar log return whose robust z-score exceeds this (in absolute value) is an outlier.",
    )
    outlier_window_bars: int = Field(
        default=390,
        ge=10,
        description="Trailing window, in past intraday returns, of the median and MAD behind the z-score.",
    )
    max_outlier_share: float = Field(
        default=0.001,
        ge=0.0,
        lt=1.0,
        description="Largest tolerated share of scored returns that are outliers.",
    )
    max_stale_run_bars: int = Field(
        default=30,
        ge=1,
        description="Longest tolerated run of consecutive bars with an identical close within a session.",
    )
    min_sessions: int = Field(
        default=5,
        ge=1,
        description="Minimum number of sessions per symbol, whatever the windows need.",
    )
    min_session_volume_ratio: float = Field(
        default=0.1,
        ge=0.0,
        lt=1.0,
        description="A session whose total volume is below this share of the median of the symbol's previous "
        "volume_median_sessions sessions is suspect (a vendor feed change); 0 disables the check.",
    )
    volume_median_sessions: int = Field(
        default=20, ge=1, description="Earlier sessions whose median volume a session is compared with."
    )
    low_volume_sessions: Literal["fail", "drop"] = Field(
        default="fail",
        description="`fail`: QC fails and names the sessions; `drop`: they are dropped as a counted repair.",
    )
    drop_partial_final_session: bool = Field(
        default=True,
        description="Drop the last session as a counted repair when it ends before the close (an export "
        "taken during the day) instead of failing session completeness.",
    )


@dataclass(frozen=True)
class QCReport:
    """Outcome of one suite run over one bar frame."""

    passed: bool
    failures: list[str]
    """One line per failed expectation: check, expectation, columns, unexpected count/percent, examples."""
    statistics: dict[str, float]
    """``evaluated``, ``successful``, ``unsuccessful`` expectations and ``success_percent``."""
    result_json: dict[str, Any]
    """The GX validation result (``to_json_dict()``), non-finite floats replaced by None: strict JSON."""
    suite_name: str
    suite_version: str

    def to_markdown(self, repairs: Mapping[str, int] | None = None) -> str:
        """Readable report: verdict, the normalization repairs, one row per expectation, the failures."""
        verdict = "PASSED" if self.passed else "FAILED"
        stats = self.statistics
        lines = [
            f"## Bar QC: {verdict}",
            "",
            f"Suite `{self.suite_name}` v{self.suite_version}: {int(stats['evaluated'])} expectations, "
            f"{int(stats['successful'])} passed, {int(stats['unsuccessful'])} failed "
            f"({stats['success_percent']:.1f}% passed).",
            "",
        ]
        if repairs is not None:
            lines += ["### Repairs", "", "| repair | count |", "|---|---:|"]
            lines += [f"| {_cell(key)} | {count} |" for key, count in repairs.items()]
            lines.append("")
        lines += [
            "### Expectations",
            "",
            "| check | expectation | columns | result | unexpected | unexpected % |",
            "|---|---|---|---|---:|---:|",
        ]
        for result in self.result_json.get("results", []):
            config = result.get("expectation_config", {})
            outcome = result.get("result", {}) or {}
            count = outcome.get("unexpected_count")
            percent = outcome.get("unexpected_percent")
            if count is None and "observed_value" in outcome:
                count_cell, percent_cell = f"observed {outcome['observed_value']}", ""
            else:
                count_cell = "" if count is None else str(count)
                percent_cell = "" if percent is None else f"{percent:.3f}"
            lines.append(
                f"| {_cell(config.get('meta', {}).get('check', ''))} | {_cell(config.get('type', ''))} "
                f"| {_cell(', '.join(_columns_of(config.get('kwargs', {}))))} "
                f"| {'pass' if result.get('success') else '**FAIL**'} "
                f"| {_cell(count_cell)} | {percent_cell} |"
            )
        if self.failures:
            lines += ["", "### Failures", ""]
            lines += [f"- {_cell(line)}" for line in self.failures]
        return "\n".join(lines) + "\n"


def required_history_sessions(
    thresholds: QCThresholds, *, bar_minutes: int, min_history_sessions: int | None = None
) -> int:
    """Sessions per symbol the suite requires: the configured minimum, the caller's windows, and enough
    sessions to score outlier z-scores (one trailing window of intraday returns, plus a session)."""
    returns_per_session = max(SESSION_MINUTES // bar_minutes - 1, 1)
    for_outlier_window = math.ceil(thresholds.outlier_window_bars / returns_per_session) + 1
    return max(thresholds.min_sessions, for_outlier_window, min_history_sessions or 0)


def build_suite(
    thresholds: QCThresholds = QCThresholds(),
    *,
    bar_minutes: int = 1,
    min_history_sessions: int | None = None,
) -> "gx.ExpectationSuite":
    """The versioned bar-quality expectation suite (name ``SUITE_NAME``, meta version ``SUITE_VERSION``).

    Expectations on the canonical columns (existence, type, no nulls, prices > 0 and finite, OHLC
    consistency, volume >= 0, unique bars) and on the adapter's derived columns (increasing timestamps,
    inside the regular session, on the bar grid, session completeness, no missing sessions, outlier share,
    stale runs, history length). ``min_history_sessions`` raises the required sessions per symbol.
    """
    if bar_minutes < 1:
        message = f"bar_minutes must be >= 1, got {bar_minutes}"
        raise ValueError(message)
    gx = _gx()
    _batch_definition()  # GX binds suites to the active data context: make sure ours exists
    expect = gx.expectations
    history = required_history_sessions(
        thresholds, bar_minutes=bar_minutes, min_history_sessions=min_history_sessions
    )
    specs: list[tuple[str, str, Any]] = [
        ("table_not_empty", "at least one bar", expect.ExpectTableRowCountToBeBetween(min_value=1)),
    ]
    specs += [
        (f"column_exists[{name}]", f"column {name} exists", expect.ExpectColumnToExist(column=name))
        for name in _REQUIRED_COLUMNS
    ]
    specs += [
        (
            f"column_type[{name}]",
            f"column {name} has type {type_name}",
            expect.ExpectColumnValuesToBeOfType(column=name, type_=type_name),
        )
        for name, type_name in _COLUMN_TYPES.items()
    ]
    specs += [
        (
            f"not_null[{name}]",
            f"no missing {name} (null or NaN)",
            expect.ExpectColumnValuesToNotBeNull(column=name),
        )
        for name in _REQUIRED_COLUMNS
    ]
    specs += [
        (
            f"positive[{name}]",
            f"{name} > 0",
            expect.ExpectColumnValuesToBeBetween(column=name, min_value=0, strict_min=True),
        )
        for name in _PRICE_COLUMNS
    ]
    specs += [
        (
            "volume_non_negative",
            "volume >= 0",
            expect.ExpectColumnValuesToBeBetween(column="volume", min_value=0),
        ),
        (
            "finite_values",
            "open, high, low, close and volume are finite",
            expect.ExpectColumnValuesToBeInSet(column="_finite", value_set=[True]),
        ),
    ]
    for upper, lower in (("high", "open"), ("high", "close"), ("open", "low"), ("close", "low")):
        specs.append(
            (
                f"{upper}_ge_{lower}",
                f"{upper} >= {lower}",
                expect.ExpectColumnPairValuesAToBeGreaterThanB(column_A=upper, column_B=lower, or_equal=True),
            )
        )
    specs += [
        (
            "unique_bars",
            "one row per symbol and timestamp",
            expect.ExpectCompoundColumnsToBeUnique(column_list=["symbol", "ts"]),
        ),
        (
            "increasing_timestamps",
            "timestamps strictly increase within each symbol, in row order",
            expect.ExpectColumnValuesToBeInSet(column="_increasing", value_set=[True]),
        ),
        (
            "in_regular_session",
            "bars start at or after the session open and end by the close, on trading days",
            expect.ExpectColumnValuesToBeInSet(column="_in_session", value_set=[True]),
        ),
        (
            "on_bar_grid",
            f"minutes since the session open are a multiple of the bar size ({bar_minutes})",
            expect.ExpectColumnValuesToBeInSet(column="_on_grid", value_set=[True]),
        ),
        (
            "session_completeness",
            f"each session holds at least {thresholds.min_session_completeness:.0%} of its expected bars",
            expect.ExpectColumnValuesToBeBetween(
                column="_session_completeness", min_value=thresholds.min_session_completeness, max_value=1.0
            ),
        ),
        (
            "no_missing_sessions",
            "no trading day is missing between a symbol's sessions or at either end of the span",
            expect.ExpectColumnValuesToBeBetween(column="_sessions_skipped", min_value=0, max_value=0),
        ),
        (
            "outlier_returns",
            f"at most {thresholds.max_outlier_share:.3%} of 1-bar log returns have |robust z| > "
            f"{thresholds.outlier_z:g} (trailing {thresholds.outlier_window_bars}-return median/MAD)",
            expect.ExpectColumnValuesToBeBetween(
                column="_robust_z",
                min_value=-thresholds.outlier_z,
                max_value=thresholds.outlier_z,
                mostly=1.0 - thresholds.max_outlier_share,
            ),
        ),
        (
            "no_stale_closes",
            f"no run of more than {thresholds.max_stale_run_bars} identical consecutive closes in a session",
            expect.ExpectColumnValuesToBeBetween(
                column="_stale_run", min_value=1, max_value=thresholds.max_stale_run_bars
            ),
        ),
        (
            "session_volume",
            f"no session's volume is below {thresholds.min_session_volume_ratio:.0%} of the median of the symbol's "
            f"previous {thresholds.volume_median_sessions} sessions (a feed change)",
            expect.ExpectColumnValuesToBeBetween(
                column="_volume_ratio", min_value=thresholds.min_session_volume_ratio
            ),
        ),
        (
            "enough_history",
            f"at least {history} sessions per symbol",
            expect.ExpectColumnValuesToBeBetween(column="_history_sessions", min_value=history),
        ),
    ]
    suite = gx.ExpectationSuite(
        name=SUITE_NAME,
        meta={
            "version": SUITE_VERSION,
            "bar_minutes": bar_minutes,
            "required_history_sessions": history,
            "thresholds": thresholds.model_dump(),
        },
    )
    for check, description, expectation in specs:
        expectation.meta = {"check": check}
        expectation.description = description
        suite.add_expectation(expectation)
    return suite


def export_suite(
    path: str | Path = DEFAULT_SUITE_PATH,
    *,
    thresholds: QCThresholds = QCThresholds(),
    bar_minutes: int = 1,
    min_history_sessions: int | None = None,
) -> Path:
    """Write the suite as indented JSON (stable across GX versions: the GX version stamp is left out)."""
    suite = build_suite(thresholds, bar_minutes=bar_minutes, min_history_sessions=min_history_sessions)
    document: dict[str, Any] = dict(suite.to_json_dict())
    meta = dict(document.get("meta") or {})
    meta.pop("great_expectations_version", None)
    document["meta"] = meta
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return target


def run_qc(
    bars: pl.DataFrame,
    *,
    thresholds: QCThresholds = QCThresholds(),
    bar_minutes: int,
    min_history_sessions: int | None = None,
    dropped_sessions: Sequence[date] = (),
) -> QCReport:
    """Validate a canonical bar frame against the suite; bad data never raises (see :func:`raise_for_qc`).

    ``dropped_sessions``: sessions normalization dropped on purpose (counted repairs); they do not count as
    missing sessions.
    """
    if bar_minutes < 1:
        message = f"bar_minutes must be >= 1, got {bar_minutes}"
        raise ValueError(message)
    suite = build_suite(thresholds, bar_minutes=bar_minutes, min_history_sessions=min_history_sessions)
    frame = _with_derived_columns(
        bars,
        bar_minutes=bar_minutes,
        window=thresholds.outlier_window_bars,
        volume_window=thresholds.volume_median_sessions,
        dropped_sessions=dropped_sessions,
    )
    pandas_frame = frame.to_pandas()
    if "symbol" in frame.columns and frame.schema["symbol"] == pl.String:
        pandas_frame["symbol"] = pandas_frame["symbol"].astype("string")
    batch = _batch_definition().get_batch(batch_parameters={"dataframe": pandas_frame})
    result = batch.validate(suite, result_format={"result_format": "SUMMARY", "partial_unexpected_count": 20})
    result_json = _strict_json(result.to_json_dict())
    order = {(item.meta or {}).get("check"): index for index, item in enumerate(suite.expectations)}
    result_json["results"] = sorted(
        result_json["results"], key=lambda item: order.get(item["expectation_config"]["meta"].get("check"), 0)
    )
    failures = [
        _failure_line(item, frame) for item in result_json["results"] if not item.get("success", False)
    ]
    raw = result_json.get("statistics", {})
    statistics = {
        "evaluated": float(raw.get("evaluated_expectations") or 0),
        "successful": float(raw.get("successful_expectations") or 0),
        "unsuccessful": float(raw.get("unsuccessful_expectations") or 0),
        "success_percent": float(raw.get("success_percent") or 0.0),
    }
    return QCReport(
        passed=bool(result.success) and not failures,
        failures=failures,
        statistics=statistics,
        result_json=result_json,
        suite_name=SUITE_NAME,
        suite_version=SUITE_VERSION,
    )


def raise_for_qc(report: QCReport) -> None:
    """Raise :class:`DataQualityError` naming every failed expectation when the report did not pass."""
    if report.passed:
        return
    evaluated = int(report.statistics["evaluated"])
    header = (
        f"bar QC failed: {len(report.failures)} of {evaluated} expectations of suite "
        f"{report.suite_name} v{report.suite_version} failed"
    )
    message = "\n  - ".join([header + ":", *report.failures])
    raise DataQualityError(message, failures=report.failures)


@functools.cache
def _gx() -> Any:
    """The great_expectations module, imported on first use (the import takes seconds)."""
    import great_expectations

    return great_expectations


@functools.cache
def _batch_definition() -> "BatchDefinition":
    """One quiet in-memory GX context (no progress bars, no analytics) with a whole-dataframe batch."""
    gx = _gx()
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(),
        progress_bars=ProgressBarsConfig(globally=False, metric_calculations=False),
        analytics_enabled=False,
    )
    context = gx.get_context(project_config=config, mode="ephemeral")
    source = context.data_sources.add_pandas(name="stairways_bars")
    asset = source.add_dataframe_asset(name="bars")
    return asset.add_batch_definition_whole_dataframe(name="whole_frame")


def _with_derived_columns(
    bars: pl.DataFrame,
    *,
    bar_minutes: int,
    window: int,
    volume_window: int = 20,
    dropped_sessions: Sequence[date] = (),
) -> pl.DataFrame:
    """Add the per-row columns the suite checks; a column whose inputs are missing or mistyped is left out,
    so its expectation fails as not evaluable rather than passing."""
    schema = bars.schema
    ts_dtype = schema.get("ts")
    has_ts = isinstance(ts_dtype, pl.Datetime) and ts_dtype.time_zone is not None
    has_symbol = "symbol" in schema
    numeric = all(name in schema and schema[name].is_numeric() for name in _NUMERIC_COLUMNS)
    has_close = "close" in schema and schema["close"].is_numeric()
    frame = bars
    if numeric:
        frame = frame.with_columns(
            pl.all_horizontal(pl.col(name).cast(pl.Float64).is_finite() for name in _NUMERIC_COLUMNS).alias(
                "_finite"
            )
        )
    if not (has_ts and has_symbol):
        return frame
    utc = pl.col("ts").dt.convert_time_zone("UTC")
    frame = frame.with_columns(
        pl.coalesce((utc > utc.shift(1)).over("symbol"), pl.lit(True)).alias("_increasing"),
        utc.dt.convert_time_zone(str(EXCHANGE_TZ)).dt.date().alias("_day"),
    )
    frame = frame.sort("symbol", "ts", nulls_last=True, maintain_order=True)
    frame = _add_session_columns(frame, bar_minutes=bar_minutes, dropped_sessions=dropped_sessions)
    if "volume" in schema and schema["volume"].is_numeric():
        ratios = session_volume_ratios(frame.drop_nulls("ts"), window=volume_window).select(
            "symbol", pl.col("session").alias("_day"), pl.col("volume_ratio").alias("_volume_ratio")
        )
        frame = frame.join(ratios, on=["symbol", "_day"], how="left", maintain_order="left")
    if has_close:
        frame = _add_stale_runs(frame)
        frame = _add_robust_z(frame, window=window)
    return frame.drop("_day")


def _add_session_columns(
    frame: pl.DataFrame, *, bar_minutes: int, dropped_sessions: Sequence[date] = ()
) -> pl.DataFrame:
    days = frame["_day"].drop_nulls()
    calendar_days = trading_days(days.min(), days.max()) if days.len() else []  # type: ignore[arg-type]
    # Sessions dropped on purpose by a counted repair are not missing sessions.
    calendar_days = [day for day in calendar_days if day not in set(dropped_sessions)]
    calendar = (
        sessions(calendar_days)
        .with_row_index("_session_index")
        .select(
            pl.col("session").alias("_day"),
            pl.col("_session_index").cast(pl.Int64),
            pl.col("open").alias("_open"),
            pl.col("close").alias("_close"),
            (pl.col("minutes") // bar_minutes).alias("_expected_bars"),
        )
    )
    bar = pl.duration(minutes=bar_minutes, time_unit="ns")
    since_open = (pl.col("ts") - pl.col("_open")).dt.total_seconds()
    frame = frame.join(calendar, on="_day", how="left", maintain_order="left").with_columns(
        (
            pl.col("_open").is_not_null()
            & (pl.col("ts") >= pl.col("_open"))
            & (pl.col("ts") + bar <= pl.col("_close"))
        )
        .fill_null(False)
        .alias("_in_session"),
        (since_open % (60 * bar_minutes) == 0).alias("_on_grid"),
    )
    counted = pl.col("_in_session") & pl.col("_on_grid").fill_null(False)
    present = pl.col("ts").filter(counted).n_unique().over("symbol", "_day")
    frame = frame.with_columns((present / pl.col("_expected_bars")).alias("_session_completeness"))
    # Missing sessions: trading days skipped between a symbol's sessions and at either end of the span.
    first_index, last_index = 0, max(len(calendar_days) - 1, 0)
    symbol_sessions = (
        frame.filter(pl.col("_session_index").is_not_null())
        .select("symbol", "_session_index")
        .unique()
        .sort("symbol", "_session_index")
        .with_columns(
            (
                pl.col("_session_index")
                - pl.col("_session_index").shift(1).over("symbol").fill_null(first_index - 1)
                - 1
                + pl.when(pl.col("_session_index") == pl.col("_session_index").max().over("symbol"))
                .then(last_index - pl.col("_session_index"))
                .otherwise(0)
            ).alias("_sessions_skipped"),
            pl.len().over("symbol").alias("_history_sessions"),
        )
    )
    frame = frame.join(symbol_sessions, on=["symbol", "_session_index"], how="left", maintain_order="left")
    history = pl.col("_history_sessions").max().over("symbol").fill_null(0)
    return frame.with_columns(history.alias("_history_sessions")).drop(
        "_session_index", "_open", "_close", "_expected_bars"
    )


def _add_stale_runs(frame: pl.DataFrame) -> pl.DataFrame:
    """Length of the run of identical consecutive closes (within symbol and session) each row belongs to."""
    changed = pl.col("close").ne_missing(pl.col("close").shift(1)).over("symbol", "_day").fill_null(True)
    frame = frame.with_columns(changed.cast(pl.Int64).cum_sum().over("symbol", "_day").alias("_run_id"))
    return frame.with_columns(pl.len().over("symbol", "_day", "_run_id").alias("_stale_run")).drop("_run_id")


def _add_robust_z(frame: pl.DataFrame, *, window: int) -> pl.DataFrame:
    """Robust z-score of each 1-bar intraday log return against the previous ``window`` returns of its symbol.

    z_t = (r_t - median(W_t)) / (1.4826 * median(|W_t - median(W_t)|)), W_t the ``window`` returns before t
    (first bars of sessions have no return: overnight gaps are not scored). Undefined (null) during the
    first window, where the trailing MAD is zero, and for non-positive or non-finite prices.
    """
    log_close = pl.when(pl.col("close") > 0).then(pl.col("close").cast(pl.Float64).log())
    returns = (
        frame.with_row_index("_row")
        .select("_row", "symbol", (log_close - log_close.shift(1)).over("symbol", "_day").alias("_return"))
        .filter(pl.col("_return").is_finite())
    )
    rows: list[np.ndarray] = []
    scores: list[np.ndarray] = []
    for (_,), group in returns.group_by(["symbol"], maintain_order=True):
        values = group["_return"].to_numpy()
        rows.append(group["_row"].to_numpy())
        scores.append(_trailing_robust_z(values, window=window))
    if rows:
        z_frame = pl.DataFrame(
            {"_row": np.concatenate(rows), "_robust_z": np.concatenate(scores)},
            schema={"_row": pl.UInt32, "_robust_z": pl.Float64},
        ).with_columns(pl.col("_robust_z").fill_nan(None))
    else:
        z_frame = pl.DataFrame(schema={"_row": pl.UInt32, "_robust_z": pl.Float64})
    return (
        frame.with_row_index("_row").join(z_frame, on="_row", how="left", maintain_order="left").drop("_row")
    )


def _trailing_robust_z(values: np.ndarray, *, window: int) -> np.ndarray:
    """Exact trailing median/MAD z-scores of ``values`` (NaN where undefined)."""
    return _trailing_robust_z_kernel(np.ascontiguousarray(values, dtype=np.float64), window, _MAD_TO_SIGMA)


@numba.njit(cache=True)
def _median_of_sorted(sorted_values: np.ndarray) -> float:
    size = sorted_values.size
    middle = size // 2
    if size % 2:
        return sorted_values[middle]
    return 0.5 * (sorted_values[middle - 1] + sorted_values[middle])


@numba.njit(cache=True)
def _median_distance(sorted_values: np.ndarray, center: float) -> float:
    """Median of |x - center| over a sorted window, merging outward from ``center`` (no second sort)."""
    size = sorted_values.size
    right = np.searchsorted(sorted_values, center)
    left = right - 1
    wanted = size // 2  # 0-based rank of the upper middle distance
    previous = 0.0
    current = 0.0
    for _ in range(wanted + 1):
        take_left = right >= size or (
            left >= 0 and center - sorted_values[left] <= sorted_values[right] - center
        )
        previous = current
        if take_left:
            current = center - sorted_values[left]
            left -= 1
        else:
            current = sorted_values[right] - center
            right += 1
    if size % 2:
        return current
    return 0.5 * (previous + current)


@numba.njit(cache=True)
def _trailing_robust_z_kernel(values: np.ndarray, window: int, mad_to_sigma: float) -> np.ndarray:
    """z_t from the ``window`` values before t; the window stays sorted as it slides (O(window) a step)."""
    size = values.size
    scores = np.full(size, np.nan)
    if size <= window:
        return scores
    sorted_window = np.sort(values[:window])
    for index in range(window, size):
        center = _median_of_sorted(sorted_window)
        scale = mad_to_sigma * _median_distance(sorted_window, center)
        if scale > 0.0:
            scores[index] = (values[index] - center) / scale
        if index + 1 == size:
            break
        # Slide: drop values[index - window], insert values[index], keeping the window sorted.
        position = np.searchsorted(sorted_window, values[index - window])
        incoming = values[index]
        insert_at = np.searchsorted(sorted_window, incoming)
        if insert_at > position:
            insert_at -= 1
            for shift in range(position, insert_at):
                sorted_window[shift] = sorted_window[shift + 1]
        else:
            for shift in range(position, insert_at, -1):
                sorted_window[shift] = sorted_window[shift - 1]
        sorted_window[insert_at] = incoming
    return scores


def _columns_of(kwargs: Mapping[str, Any]) -> list[str]:
    if "column" in kwargs:
        return [str(kwargs["column"])]
    if "column_A" in kwargs:
        return [str(kwargs["column_A"]), str(kwargs["column_B"])]
    return [str(name) for name in kwargs.get("column_list", [])]


def _failure_line(item: Mapping[str, Any], frame: pl.DataFrame) -> str:
    config = item["expectation_config"]
    kwargs = config.get("kwargs", {})
    columns = _columns_of(kwargs)
    check = config.get("meta", {}).get("check", config["type"])
    head = f"{check}: {config.get('description') or ''} [{config['type']}({', '.join(columns)})]"
    error = _exception_message(item.get("exception_info") or {})
    if error is not None:
        missing = [name for name in columns if name not in frame.columns]
        reason = f"column(s) {missing} missing or not computable" if missing else error
        return f"{head}: could not be evaluated: {reason}"
    outcome = item.get("result") or {}
    if "unexpected_count" not in outcome:
        return f"{head}: observed {outcome.get('observed_value')!r}"
    count = outcome.get("unexpected_count")
    percent = outcome.get("unexpected_percent") or 0.0
    # GX ignores missing values in most column checks; the percentage is of the rows it evaluated.
    evaluated = (outcome.get("element_count") or 0) - (outcome.get("missing_count") or 0)
    line = f"{head}: {count} of {evaluated} evaluated rows unexpected ({percent:.3f}%)"
    indices = list(outcome.get("partial_unexpected_index_list") or [])[:_EXAMPLES_PER_FAILURE]
    if indices:
        line += "; e.g. " + "; ".join(_example_row(frame, int(index), columns) for index in indices)
    return line


def _example_row(frame: pl.DataFrame, index: int, columns: list[str]) -> str:
    if index >= frame.height:
        return f"row {index}"
    row = frame.row(index, named=True)
    shown: list[str] = []
    for name in columns:
        for context in (*_EXAMPLE_CONTEXT.get(name, ()), name):
            if context in row and context not in ("symbol", "ts") and context not in shown:
                shown.append(context)
    values = ", ".join(f"{name}={_format_value(row[name])}" for name in shown)
    return (
        f"{row.get('symbol')} {row.get('ts')} ({values})"
        if values
        else f"{row.get('symbol')} {row.get('ts')}"
    )


def _format_value(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _exception_message(info: Mapping[str, Any]) -> str | None:
    """The first raised exception's message in a GX ``exception_info`` (flat or keyed by metric)."""
    if "raised_exception" in info:
        return str(info.get("exception_message")) if info.get("raised_exception") else None
    for value in info.values():
        if isinstance(value, Mapping) and value.get("raised_exception"):
            return str(value.get("exception_message"))
    return None


def _strict_json(value: Any) -> Any:
    """Replace non-finite floats (NaN, inf) with None so the result is strict JSON."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _strict_json(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_strict_json(item) for item in value]
    return value


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")

"""The versioned bar-quality Great Expectations suite, built in code, and the GX context it is bound to.

:func:`build_suite` lists every expectation: on the canonical columns, and on the per-row columns that
:mod:`validation.qc_derived_columns` computes (prefixed ``_``). :func:`export_suite` writes the suite as JSON
(``validation/suites/stairways_bars.json``). Great Expectations is imported on first use, not when this
module is imported (the import takes seconds).
"""

import functools
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from market.calendar import SESSION_MINUTES
from validation.qc_thresholds import QCThresholds

if TYPE_CHECKING:
    import great_expectations as gx
    from great_expectations.core.batch_definition import BatchDefinition

__all__ = [
    "DEFAULT_SUITE_PATH",
    "NUMERIC_COLUMNS",
    "PRICE_COLUMNS",
    "REQUIRED_COLUMNS",
    "SUITE_NAME",
    "SUITE_VERSION",
    "batch_definition",
    "build_suite",
    "export_suite",
    "required_history_sessions",
]

SUITE_NAME = "stairways_bars"
SUITE_VERSION = "1.1.0"
DEFAULT_SUITE_PATH = Path(__file__).parent / "suites" / f"{SUITE_NAME}.json"

PRICE_COLUMNS: tuple[str, ...] = ("open", "high", "low", "close")
NUMERIC_COLUMNS: tuple[str, ...] = (*PRICE_COLUMNS, "volume")
REQUIRED_COLUMNS: tuple[str, ...] = ("ts", "symbol", *NUMERIC_COLUMNS)
# GX pandas type names: tz-aware datetimes report pandas.Timestamp; strings become StringDtype (type str).
_COLUMN_TYPES: dict[str, str] = {
    "ts": "Timestamp",
    "symbol": "str",
    **dict.fromkeys(NUMERIC_COLUMNS, "float64"),
}


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
    batch_definition()  # GX binds suites to the active data context: make sure ours exists
    expect = gx.expectations
    history = required_history_sessions(
        thresholds, bar_minutes=bar_minutes, min_history_sessions=min_history_sessions
    )
    specs: list[tuple[str, str, Any]] = [
        ("table_not_empty", "at least one bar", expect.ExpectTableRowCountToBeBetween(min_value=1)),
    ]
    specs += [
        (f"column_exists[{name}]", f"column {name} exists", expect.ExpectColumnToExist(column=name))
        for name in REQUIRED_COLUMNS
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
        for name in REQUIRED_COLUMNS
    ]
    specs += [
        (
            f"positive[{name}]",
            f"{name} > 0",
            expect.ExpectColumnValuesToBeBetween(column=name, min_value=0, strict_min=True),
        )
        for name in PRICE_COLUMNS
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


@functools.cache
def _gx() -> Any:
    """The great_expectations module, imported on first use (the import takes seconds)."""
    import great_expectations

    return great_expectations


@functools.cache
def batch_definition() -> "BatchDefinition":
    """One quiet in-memory GX context (no progress bars, no analytics) with a whole-dataframe batch.

    Cached: one context per process; :func:`build_suite` binds its suites to it, and
    :func:`validation.qc.run_qc` validates each bar frame as a batch of it.
    """
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

import json
import subprocess
import sys
from collections.abc import Callable
from datetime import date, timedelta

import polars as pl
import pytest

from core.errors import DataQualityError
from tests.support import clean_bars
from tests.validation.support import REPO_ROOT
from validation.qc import raise_for_qc, run_qc
from validation.qc_report import QCReport
from validation.qc_suite import SUITE_NAME, SUITE_VERSION
from validation.qc_thresholds import QCThresholds

Corruption = Callable[[pl.DataFrame], pl.DataFrame]


@pytest.fixture(scope="module")
def bars() -> pl.DataFrame:
    return clean_bars(session_count=8)


@pytest.fixture(scope="module")
def clean_report(bars: pl.DataFrame) -> QCReport:
    return run_qc(bars, bar_minutes=1)


def failed_checks(report: QCReport) -> set[str]:
    return {
        item["expectation_config"]["meta"]["check"]
        for item in report.result_json["results"]
        if not item["success"]
    }


def set_value(frame: pl.DataFrame, column: str, rows: list[int], value: pl.Expr | float) -> pl.DataFrame:
    hit = pl.int_range(pl.len()).is_in(rows)
    target = frame.schema[column]
    return frame.with_columns(pl.when(hit).then(value).otherwise(pl.col(column)).cast(target).alias(column))


def shift_ts(frame: pl.DataFrame, delta: timedelta) -> pl.DataFrame:
    return frame.with_columns((pl.col("ts") + delta).cast(pl.Datetime("ns", "UTC")))


def test_clean_bars_pass(clean_report: QCReport) -> None:
    assert clean_report.passed, clean_report.failures
    assert clean_report.failures == []
    assert clean_report.statistics == {
        "evaluated": 42.0,
        "successful": 42.0,
        "unsuccessful": 0.0,
        "success_percent": 100.0,
    }
    assert (clean_report.suite_name, clean_report.suite_version) == (SUITE_NAME, SUITE_VERSION)
    raise_for_qc(clean_report)  # no exception


def test_result_json_is_strict_json(clean_report: QCReport) -> None:
    text = json.dumps(clean_report.result_json, allow_nan=False)
    assert json.loads(text)["success"] is True
    assert [item["expectation_config"]["meta"]["check"] for item in clean_report.result_json["results"]][
        :2
    ] == [
        "table_not_empty",
        "column_exists[ts]",
    ]


def test_clean_half_day_and_five_minute_bars_pass() -> None:
    half_day = clean_bars(session_count=6, start=date(2024, 11, 25))
    assert run_qc(half_day, bar_minutes=1).passed
    five = clean_bars(session_count=6, bar_minutes=5)
    thresholds = QCThresholds(outlier_window_bars=60)
    assert run_qc(five, bar_minutes=5, thresholds=thresholds).passed
    # The same bars read as 1-minute bars are four-fifths missing.
    assert "session_completeness" in failed_checks(run_qc(five, bar_minutes=1, thresholds=thresholds))


def _spikes(frame: pl.DataFrame) -> pl.DataFrame:
    rows = [1_000 + 97 * k for k in range(10)]
    spiked = set_value(frame, "close", rows, pl.col("close") * 1.05)
    return spiked.with_columns(pl.max_horizontal("high", "close").alias("high"))


def _stale(frame: pl.DataFrame) -> pl.DataFrame:
    rows = list(range(1_200, 1_240))
    flat = pl.lit(frame["close"][1_200])
    for column in ("open", "high", "low", "close"):
        frame = set_value(frame, column, rows, flat)
    return frame


CORRUPTIONS: dict[str, tuple[Corruption, set[str]]] = {
    "empty frame": (lambda frame: frame.head(0), {"table_not_empty"}),
    "null close": (
        lambda frame: set_value(frame, "close", [50], None),
        {"not_null[close]", "high_ge_close", "close_ge_low"},
    ),  # type: ignore[arg-type]
    "NaN close": (
        lambda frame: set_value(frame, "close", [50], float("nan")),
        {"not_null[close]", "finite_values", "high_ge_close", "close_ge_low"},
    ),
    "zero close": (lambda frame: set_value(frame, "close", [50], 0.0), {"positive[close]", "close_ge_low"}),
    "negative low": (lambda frame: set_value(frame, "low", [50], -1.0), {"positive[low]"}),
    "negative volume": (lambda frame: set_value(frame, "volume", [50], -1.0), {"volume_non_negative"}),
    "infinite volume": (lambda frame: set_value(frame, "volume", [50], float("inf")), {"finite_values"}),
    "open above high": (
        lambda frame: set_value(frame, "open", [50], pl.col("high") * 1.001),
        {"high_ge_open"},
    ),
    "close above high": (
        lambda frame: set_value(frame, "close", [50], pl.col("high") * 1.001),
        {"high_ge_close"},
    ),
    "open below low": (lambda frame: set_value(frame, "open", [50], pl.col("low") * 0.999), {"open_ge_low"}),
    "close below low": (
        lambda frame: set_value(frame, "close", [50], pl.col("low") * 0.999),
        {"close_ge_low"},
    ),
    "duplicate bar": (
        lambda frame: pl.concat([frame.head(11), frame.slice(10)]),
        {"unique_bars", "increasing_timestamps"},
    ),
    "swapped rows": (
        lambda frame: pl.concat([frame.head(10), frame.slice(11, 1), frame.slice(10, 1), frame.slice(12)]),
        {"increasing_timestamps"},
    ),
    "pre-market bar": (
        lambda frame: pl.concat([shift_ts(frame.head(1), timedelta(minutes=-30)), frame]),
        {"in_regular_session"},
    ),
    "off-grid bar": (
        lambda frame: pl.concat(
            [frame.head(10), shift_ts(frame.slice(10, 1), timedelta(seconds=30)), frame.slice(11)]
        ),
        {"on_bar_grid"},
    ),
    "incomplete session": (
        lambda frame: frame.filter(~pl.int_range(pl.len()).is_between(100, 129)),
        {"session_completeness"},
    ),
    "missing session": (
        lambda frame: frame.filter(pl.col("ts").dt.date() != date(2024, 3, 7)),
        {"no_missing_sessions"},
    ),
    "outlier returns": (_spikes, {"outlier_returns"}),
    "stale closes": (_stale, {"no_stale_closes"}),
    "short history": (
        lambda frame: frame.filter(pl.col("ts").dt.date() <= date(2024, 3, 6)),
        {"enough_history"},
    ),
}


@pytest.mark.parametrize("name", list(CORRUPTIONS))
def test_each_value_expectation_fails_alone(bars: pl.DataFrame, name: str) -> None:
    corrupt, expected = CORRUPTIONS[name]
    report = run_qc(corrupt(bars), bar_minutes=1)
    assert not report.passed
    assert failed_checks(report) == expected
    assert len(report.failures) == len(expected)
    for check in expected:
        assert any(line.startswith(f"{check}:") for line in report.failures), report.failures


@pytest.mark.parametrize(
    ("corrupt", "expected"),
    [
        (
            lambda frame: frame.drop("volume"),
            {"column_exists[volume]", "column_type[volume]", "not_null[volume]"},
        ),
        (lambda frame: frame.with_columns(pl.col("close").cast(pl.String)), {"column_type[close]"}),
        (lambda frame: frame.with_columns(pl.col("volume").cast(pl.Int64)), {"column_type[volume]"}),
        (lambda frame: frame.with_columns(pl.col("ts").dt.replace_time_zone(None)), {"column_type[ts]"}),
        (lambda frame: frame.with_columns(pl.col("symbol").cast(pl.Categorical)), {"column_type[symbol]"}),
        (lambda frame: set_value(frame, "symbol", [3], None), {"not_null[symbol]"}),
    ],
)
def test_schema_expectations_fail(bars: pl.DataFrame, corrupt: Corruption, expected: set[str]) -> None:
    report = run_qc(corrupt(bars), bar_minutes=1)
    assert not report.passed
    assert expected <= failed_checks(report)


def test_missing_column_reported_as_not_evaluable(bars: pl.DataFrame) -> None:
    report = run_qc(bars.drop("volume"), bar_minutes=1)
    line = next(line for line in report.failures if line.startswith("volume_non_negative:"))
    assert "could not be evaluated" in line and "volume" in line
    assert "finite_values" in failed_checks(
        report
    )  # its derived column cannot be computed: fails, not passes


def test_failure_lines_name_count_and_examples(bars: pl.DataFrame) -> None:
    report = run_qc(set_value(bars, "close", [50, 60, 70, 80], 0.0), bar_minutes=1)
    line = next(line for line in report.failures if line.startswith("positive[close]:"))
    assert "expect_column_values_to_be_between(close)" in line
    assert "4 of 6240 evaluated rows unexpected (0.064%)" in line
    assert line.count("close=0)") == 3  # three examples
    assert "MSFT 2024-03-04 15:20:00+00:00 (close=0)" in line


def test_raise_for_qc_names_every_failure(bars: pl.DataFrame) -> None:
    report = run_qc(set_value(bars, "volume", [5], -1.0).head(2_000), bar_minutes=1)
    with pytest.raises(DataQualityError) as raised:
        raise_for_qc(report)
    assert raised.value.failures == report.failures
    for line in report.failures:
        assert line in str(raised.value)
    assert {"volume_non_negative", "session_completeness"} <= failed_checks(report)


def test_thresholds_are_configurable(bars: pl.DataFrame) -> None:
    spiked = _spikes(bars)
    assert run_qc(spiked, bar_minutes=1, thresholds=QCThresholds(max_outlier_share=0.01)).passed
    assert run_qc(_stale(bars), bar_minutes=1, thresholds=QCThresholds(max_stale_run_bars=40)).passed
    short = run_qc(bars, bar_minutes=1, min_history_sessions=9)
    assert failed_checks(short) == {"enough_history"}
    gappy = bars.filter(~pl.int_range(pl.len()).is_between(100, 129))
    assert run_qc(gappy, bar_minutes=1, thresholds=QCThresholds(min_session_completeness=0.9)).passed


def test_markdown_report(bars: pl.DataFrame, clean_report: QCReport) -> None:
    text = clean_report.to_markdown({"exact_duplicates_dropped": 3})
    assert text.startswith("## Bar QC: PASSED")
    assert "| exact_duplicates_dropped | 3 |" in text
    assert text.count("| pass |") == 42
    failed = run_qc(set_value(bars, "volume", [5], -1.0), bar_minutes=1).to_markdown()
    assert failed.startswith("## Bar QC: FAILED")
    assert "| volume_non_negative | expect_column_values_to_be_between | volume | **FAIL** | 1 |" in failed
    assert "### Failures" in failed and "### Repairs" not in failed


def test_qc_is_quiet(bars: pl.DataFrame, capfd: pytest.CaptureFixture[str]) -> None:
    run_qc(bars.head(500), bar_minutes=1)
    captured = capfd.readouterr()
    assert captured.out == "" and captured.err == ""


def test_import_does_not_load_great_expectations() -> None:
    code = "import sys, validation.qc; print('great_expectations' in sys.modules)"
    completed = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True, timeout=120
    )
    assert completed.stdout.strip() == "False"

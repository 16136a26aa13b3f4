"""The outcome of one bar-quality run: :class:`QCReport`, built from a GX validation result, and its
markdown rendering.

:func:`report_from_validation` turns the GX result into strict JSON, orders it as the suite lists its
expectations, and writes one readable line per failed expectation, with example rows taken from the frame
that was validated (source columns shown beside the derived column that failed).
"""

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import polars as pl

from validation.qc_suite import NUMERIC_COLUMNS, SUITE_NAME, SUITE_VERSION

if TYPE_CHECKING:
    import great_expectations as gx
    from great_expectations.core.expectation_validation_result import ExpectationSuiteValidationResult

__all__ = ["QCReport", "report_from_validation"]

_EXAMPLES_PER_FAILURE = 3
# Source columns shown next to a derived column in failure examples.
_EXAMPLE_CONTEXT: dict[str, tuple[str, ...]] = {
    "_finite": NUMERIC_COLUMNS,
    "_robust_z": ("close",),
    "_stale_run": ("close",),
    "_volume_ratio": ("volume",),
}


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

def report_from_validation(
    result: "ExpectationSuiteValidationResult", *, suite: "gx.ExpectationSuite", frame: pl.DataFrame
) -> QCReport:
    """The report of ``suite`` validated on ``frame`` (the adapter's frame, derived columns included).

    Results follow the suite's expectation order; the report passes only when GX says so and no expectation
    failed.
    """
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

"""Bar-quality control: run the versioned Great Expectations suite on a canonical bar frame, and stop the
night when it fails.

:func:`run_qc` builds the suite (:mod:`validation.qc_suite`, tolerances in
:mod:`validation.qc_thresholds`), adds the per-row columns it checks (:mod:`validation.qc_derived_columns`),
converts the frame to pandas once (GX has no polars backend), validates it, and returns a
:class:`~validation.qc_report.QCReport`; :func:`raise_for_qc` turns a failed report into
:class:`~core.errors.DataQualityError`. Great Expectations is imported on first use, not when this module is
imported.
"""

from collections.abc import Sequence
from datetime import date

import polars as pl

from core.errors import DataQualityError
from validation.qc_derived_columns import with_derived_columns
from validation.qc_report import QCReport, report_from_validation
from validation.qc_suite import batch_definition, build_suite
from validation.qc_thresholds import QCThresholds

__all__ = ["raise_for_qc", "run_qc"]


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
    frame = with_derived_columns(
        bars,
        bar_minutes=bar_minutes,
        window=thresholds.outlier_window_bars,
        volume_window=thresholds.volume_median_sessions,
        dropped_sessions=dropped_sessions,
    )
    pandas_frame = frame.to_pandas()
    if "symbol" in frame.columns and frame.schema["symbol"] == pl.String:
        pandas_frame["symbol"] = pandas_frame["symbol"].astype("string")
    batch = batch_definition().get_batch(batch_parameters={"dataframe": pandas_frame})
    result = batch.validate(suite, result_format={"result_format": "SUMMARY", "partial_unexpected_count": 20})
    return report_from_validation(result, suite=suite, frame=frame)


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

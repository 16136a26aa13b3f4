"""Thin Prefect adapters for data QC: run the expectation suite (cached), then record and enforce the verdict."""

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact

from market.normalize import NormalizedBars
from stairways import pipeline, tracking
from stairways.config import RetrainConfig
from tasks.caching import CACHE_EXPIRATION, input_digest_key
from tasks.retrying import IO_RETRIES
from validation.qc import raise_for_qc
from validation.qc_report import QCReport

__all__ = ["enforce_quality", "record_quality", "run_quality_checks"]


@task(
    name="run-quality-checks",
    cache_key_fn=input_digest_key,
    cache_expiration=CACHE_EXPIRATION,
    persist_result=True,
)
def run_quality_checks(prepared: NormalizedBars, config: RetrainConfig) -> QCReport:
    """Validate normalized bars against the versioned Great Expectations suite."""
    return pipeline.quality_check(prepared, config)


@task(name="record-quality", **IO_RETRIES)
def record_quality(handle: tracking.RunHandle, report: QCReport, prepared: NormalizedBars) -> None:
    """Log the GX result and the readable report (MLflow and a Prefect artifact), pass or fail."""
    markdown = report.to_markdown(prepared.repairs)
    tracking.log_json(handle, report.result_json, "qc/gx_result.json")
    tracking.log_text(handle, markdown, "qc/report.md")
    tracking.log_metrics(handle, {f"qc.{key}": value for key, value in report.statistics.items()})
    tracking.set_tags(
        handle, {"qc.verdict": "pass" if report.passed else "fail", "qc.suite_version": report.suite_version}
    )
    create_markdown_artifact(key="qc-report", markdown=markdown, description="Data QC verdict and repairs")


@task(name="enforce-quality")
def enforce_quality(report: QCReport) -> None:
    """Stop the flow with ``DataQualityError`` naming every failed expectation (never retried)."""
    logger = get_run_logger()
    for failure in report.failures:
        logger.error("QC failed: %s", failure)
    raise_for_qc(report)
    logger.info("QC passed: %s", report.statistics)

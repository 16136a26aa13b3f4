"""Prefect task: the night report (one self-contained HTML page), logged to MLflow and linked from Prefect."""

from typing import Any

from prefect import get_run_logger, task
from prefect.artifacts import create_link_artifact, create_markdown_artifact

from stairways import assessment, registry, tracking
from stairways.drift import DriftCheck
from stairways.night_history import since_previous_night
from stairways.night_promotion import Promotion
from stairways.night_report import NightReport, render_night_report
from tasks.registry import night_links
from tasks.tracking import flow_run_ui_url
from training.outcome import TrainingOutcome
from validation.gate_decision import GateDecision
from validation.qc_report import QCReport

__all__ = ["REPORT_ARTIFACT", "publish_night_report"]

REPORT_ARTIFACT = "report/night.html"


def _promotion_text(promotion: Promotion, registered: registry.RegisteredCandidate) -> str:
    if promotion.promoted:
        return f"version {registered.version} is champion (the replay from the registry matched)"
    champion = "none" if promotion.champion is None else f"version {promotion.champion}"
    detail = "" if promotion.state == "rejected" else f": {promotion.reason}"
    return f"version {registered.version} registered ({promotion.state}); champion unchanged ({champion}){detail}"


@task(name="publish-night-report")
def publish_night_report(
    handle: tracking.RunHandle,
    *,
    symbols: tuple[str, str],
    dataset: dict[str, Any],
    quality: QCReport,
    label_summary: dict[str, Any],
    windows: dict[str, Any],
    training: TrainingOutcome,
    decision: GateDecision,
    result: assessment.Assessment,
    registered: registry.RegisteredCandidate,
    promotion: Promotion,
    drift: DriftCheck,
) -> str | None:
    """Render the report, log it as :data:`REPORT_ARTIFACT` and point a Prefect artifact at it; returns where.

    The report informs and decides nothing: it runs after the registry, so a failure here is logged and the
    night still completes (None).
    """
    try:
        links = night_links(handle, registered)
        prefect_url = flow_run_ui_url()
        if prefect_url:
            links["Prefect flow run"] = prefect_url
        client = handle.client()
        run = client.get_run(handle.run_id)
        previous, changes = since_previous_night(client, run)
        lineage = {
            key: run.data.tags[key]
            for key in ("git_sha", "config_hash", "seed", "data.digest", "prefect.flow_run_id")
            if key in run.data.tags
        }
        if previous is not None:
            lineage["previous night (MLflow run)"] = previous
        report = NightReport(
            run_id=handle.run_id,
            links=links,
            symbols=symbols,
            dataset=dataset,
            qc=quality.statistics,
            labels=label_summary,
            windows=windows,
            cycles=training.cycles,
            best_cycle=training.best_cycle,
            training_stop=training.reason,
            decision=decision,
            assessment=result,
            promotion=_promotion_text(promotion, registered),
            lineage=lineage,
            drift=drift.rows,
            drift_note=drift.note,
            changes=changes,
        )
        tracking.log_text(handle, render_night_report(report), REPORT_ARTIFACT)
        base = tracking.run_url(handle.tracking_uri, handle.experiment_id, handle.run_id)
        where = (
            f"{base}/artifacts/{REPORT_ARTIFACT}"
            if base.startswith(("http://", "https://"))
            else (f"{base}/{REPORT_ARTIFACT}")
        )
        if where.startswith(("http://", "https://")):
            create_link_artifact(key="night-report", link=where, link_text="Night report (MLflow)")
        create_markdown_artifact(
            key="night-report-summary",
            markdown=(
                f"**{'Gate passed' if decision.passed else 'Gate rejected'}**: {decision.reason}\n\n"
                f"Registry: {report.promotion}\n\nNight report: [{REPORT_ARTIFACT}]({where})\n"
            ),
            description="The night's verdict and its report",
        )
        get_run_logger().info("night report: %s", where)
        return where
    except Exception as error:  # noqa: BLE001 - the night's decisions are made; the report must not undo them
        get_run_logger().warning("night report not written: %s: %s", type(error).__name__, error)
        return None

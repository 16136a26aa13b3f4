"""Thin Prefect adapters for the registry: register every candidate, report, replay-check, then promote."""

import json
from pathlib import Path

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact

from core.errors import ReplayMismatch
from core.spec import AgentSpec
from stairways import assessment, registry, tracking
from stairways.config import RetrainConfig
from stairways.night_promotion import Promotion, promote_night
from stairways.replay import replay_in_subprocess, save_episodes
from tasks.retrying import IO_RETRIES
from tasks.training import work_directory
from training.checkpoints import META_FILE
from validation.gate_decision import GateDecision
from validation.gate_report import gate_report
from validation.scenarios import Scenario

__all__ = ["night_links", "promote_and_replay", "publish_gate_report", "register_version"]


@task(name="register-candidate", **IO_RETRIES)
def register_version(
    handle: tracking.RunHandle,
    checkpoint: Path,
    decision: GateDecision,
    data_digest: str,
    config: RetrainConfig,
    *,
    champion_version: str | None = None,
    result: assessment.Assessment | None = None,
) -> registry.RegisteredCandidate:
    """Every candidate becomes a model version with a few searchable gate tags, its gate record
    (``gate/criteria.json``: every criterion with its sample size) and an integrity manifest."""
    names = AgentSpec.from_meta(json.loads((checkpoint / META_FILE).read_text())).observation_names
    registered = registry.register_candidate(
        tracking_uri=handle.tracking_uri,
        model_name=config.registry.model_name,
        run_id=handle.run_id,
        checkpoint=checkpoint,
        decision=decision,
        data_digest=data_digest,
        observation_names=names,
        champion_version=champion_version,
        scenario_episodes=None
        if result is None
        else {key: figures["episodes"] for key, figures in result.candidate.items() if "episodes" in figures},
    )
    tracking.set_tags(
        handle, {"registry.version": registered.version, "registry.model": registered.model_name}
    )
    get_run_logger().info("registered %s version %s", registered.model_name, registered.version)
    return registered


def night_links(handle: tracking.RunHandle, registered: registry.RegisteredCandidate) -> dict[str, str]:
    """Where a user finds the night: its MLflow run and its model version (UI pages with a tracking server)."""
    base = handle.tracking_uri.rstrip("/")
    run = tracking.run_url(handle.tracking_uri, handle.experiment_id, handle.run_id)
    if base.startswith(("http://", "https://")):
        return {
            "MLflow run": run,
            "model version": f"{base}/#/models/{registered.model_name}/versions/{registered.version}",
        }
    return {"MLflow run": run, "model version": registered.model_uri}


@task(name="publish-gate-report", **IO_RETRIES)
def publish_gate_report(
    handle: tracking.RunHandle,
    decision: GateDecision,
    result: assessment.Assessment,
    registered: registry.RegisteredCandidate,
    windows: dict[str, str | int],
) -> str:
    """The gate table (scenario x criterion; candidate vs champion vs baselines) as Prefect and MLflow artifact."""
    markdown = gate_report(
        decision,
        candidate=result.candidate,
        champion=result.champion,
        baselines=result.baselines,
        links=night_links(handle, registered),
        windows=windows,
    )
    markdown += f"\n\nChampion comparison: {result.champion_note}.\n"
    tracking.log_text(handle, markdown, "gate/report.md")
    create_markdown_artifact(key="gate-report", markdown=markdown, description="Promotion gate report")
    return markdown


@task(name="promote-and-replay")
def promote_and_replay(
    handle: tracking.RunHandle,
    registered: registry.RegisteredCandidate,
    decision: GateDecision,
    result: assessment.Assessment,
    scenarios: dict[str, Scenario],
    config: RetrainConfig,
    expected_champion: str | None,
) -> Promotion:
    """Replay the version from the registry in a fresh process; only on a match move the aliases (locked).

    The policy is :func:`stairways.night_promotion.promote_night`; ``expected_champion`` is the champion this
    night compared against.
    """
    logger = get_run_logger()
    episodes_file = save_episodes(
        scenarios[assessment.REPLAY_SCENARIO].episodes, work_directory() / "replay" / "episodes.npz"
    )
    try:
        outcome = promote_night(
            tracking_uri=handle.tracking_uri,
            model_name=config.registry.model_name,
            version=registered.version,
            gate_passed=decision.passed,
            gate_reason=decision.reason,
            expected_pnl=result.replay_pnl,
            episodes_file=episodes_file,
            env_config=config.training.env,
            expected_champion=expected_champion,
            lock=config.registry.promotion_lock,
            run_replay=replay_in_subprocess,
        )
    except ReplayMismatch:
        tracking.set_tags(handle, {"registry.promotion": "replay failed"})
        raise
    # Every outcome names the champion after the night, so a night's record never reads as "no champion".
    after = {"registry.champion": outcome.champion or "none"}
    if outcome.state == "rejected":
        tracking.set_tags(handle, {"registry.promotion": "rejected", **after})
        logger.info("champion unchanged (%s): %s", outcome.champion, outcome.reason)
        return outcome
    tracking.log_json(
        handle, {"expected": result.replay_pnl, "replayed": list(outcome.replayed)}, "gate/replay.json"
    )
    if not outcome.promoted:
        tracking.set_tags(handle, {"registry.promotion": "superseded", **after})
        logger.warning("champion unchanged (%s): %s", outcome.champion, outcome.reason)
        return outcome
    tracking.set_tags(handle, {"registry.promotion": "promoted", "registry.champion": registered.version})
    logger.info(
        "version %s is champion (previous: %s); the replay from the registry matched before any alias moved",
        registered.version,
        expected_champion,
    )
    return outcome

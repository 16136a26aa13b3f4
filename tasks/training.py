"""Thin Prefect adapters for the training stage: windows to arrays, warm start, one task per cycle."""

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import polars as pl
from prefect import get_run_logger, task
from prefect.runtime import flow_run

from controllers.trajectory import plot_trajectory
from core.errors import IntegrityError, RegistryError
from envs.market_arrays import MarketArrays
from market.normalize import NormalizedBars
from market.signal import SignalResult
from stairways import pipeline, promotion, tracking
from stairways.config import RetrainConfig
from stairways.monitoring import push_metrics, resolve_pushgateway
from stairways.registry import WarmStart, champion_checkpoint, current_champion
from tasks.caching import CACHE_EXPIRATION, input_digest_key
from tasks.retrying import COMPUTE_RETRIES, IO_RETRIES
from training.cycles import run_cycle
from training.outcome import CycleResult, TrainingOutcome
from training.ppo import TrainingConfig
from validation.windows import WindowPlan

__all__ = [
    "assemble_training_data",
    "find_warm_start",
    "record_controller",
    "record_cycle",
    "scratch_space",
    "train_cycle",
    "work_directory",
]

STATE_ENV = "STAIRWAYS_STATE_DIR"
"""The state folder (``make serve`` sets it to its own): scratch files go under ``<state>/runs``."""
WORK_ROOT = Path(".stairways") / "runs"
"""Scratch root when no state folder is set, relative to the working directory."""


def work_root() -> Path:
    """``$STAIRWAYS_STATE_DIR/runs``, else :data:`WORK_ROOT`."""
    state = os.environ.get(STATE_ENV)
    return Path(state).expanduser() / "runs" if state else WORK_ROOT


def work_directory() -> Path:
    """Where this flow run keeps its checkpoints: stable across retries of the same flow run."""
    return (work_root() / str(flow_run.get_id() or "local")).resolve()


@contextmanager
def scratch_space() -> Iterator[Path]:
    """This flow run's work directory: removed after a good night, kept (its path in the error) otherwise.

    Everything worth keeping is in MLflow by then; a failed night keeps its checkpoints for inspection and
    for a retry of the same flow run, which resumes from them.
    """
    directory = work_directory()
    try:
        yield directory
    except BaseException as error:
        if directory.exists():
            note = f"this run's scratch files are kept at {directory}"
            error.add_note(note)
            get_run_logger().warning(note)
        raise
    shutil.rmtree(directory, ignore_errors=True)


@task(
    name="assemble-training-data",
    cache_key_fn=input_digest_key,
    cache_expiration=CACHE_EXPIRATION,
    persist_result=True,
)
def assemble_training_data(
    prepared: NormalizedBars,
    features: pl.DataFrame,
    signal: SignalResult,
    plan: WindowPlan,
    config: RetrainConfig,
) -> pipeline.TrainingData:
    """Observation arrays of the training, selection and test windows (purge gaps left out)."""
    return pipeline.training_data(prepared, features, signal, plan, config)


@task(name="find-warm-start", **IO_RETRIES)
def find_warm_start(config: RetrainConfig) -> WarmStart:
    """The registry champion's checkpoint, when there is one, after repairing interrupted promotions."""
    uri = tracking.resolve_tracking_uri(config.tracking.tracking_uri)
    logger = get_run_logger()
    try:
        for repair in promotion.recover(uri, config.registry.model_name, lock=config.registry.promotion_lock):
            logger.warning("registry repaired: %s", repair)
    except RegistryError as error:
        logger.warning("interrupted promotions not checked: %s", error)
    try:
        warm = champion_checkpoint(
            tracking_uri=uri,
            model_name=config.registry.model_name,
            destination=work_directory() / "champion",
        )
    except IntegrityError as error:
        # An unverifiable champion is never loaded: train fresh, and the gate treats it as incomparable.
        version = current_champion(tracking_uri=uri, model_name=config.registry.model_name)
        warm = WarmStart(None, f"failed verification: {error}", version)
        logger.warning("champion not used: %s", warm.reason)
        return warm
    logger.info("warm start: %s", warm.reason)
    return warm


@task(name="train-cycle", cache_key_fn=input_digest_key, persist_result=True, **COMPUTE_RETRIES)
def train_cycle(
    cycle: int,
    *,
    train: MarketArrays,
    selection: MarketArrays,
    config: TrainingConfig,
    seed: int,
    output_dir: Path,
    previous: Path | None,
    baseline: Path | None,
) -> CycleResult:
    """One PPO cycle (:func:`training.cycles.run_cycle`) from ``previous``, scored on the selection window;
    the test window is not an input. The flow hands this task to :func:`training.cycles.run_cycles`.

    A retry redoes only this cycle. Completed cycles are cached per run.
    """
    result = run_cycle(
        cycle,
        train=train,
        selection=selection,
        config=config,
        seed=seed,
        output_dir=output_dir,
        previous=previous,
        baseline=baseline,
    )
    get_run_logger().info(
        "cycle %d: score %.4f, divergence %.3f%s (%s)",
        cycle,
        result.evaluation["score"],
        result.divergence,
        ", rolled back" if result.rolled_back else "",
        result.warm_start_reason,
    )
    return result


_CURVE_COLUMNS = (
    "greedy_trades_per_day",
    "sampled_trades_per_day",
    "target_trades_per_day",
    "setpoint_trades_per_day",
    "greedy_idle_rate",
    "greedy_hold_action_rate",
    "hold_bonus",
    "ticket_cost",
    "slow_adjustment",
    "target_scale",
    "regime_score",
)


def _step_series(result: CycleResult) -> list[tuple[str, list[float], list[int]]]:
    """``(metric name, values, env steps)`` of the controller's rollouts and PPO's updates in this cycle."""
    series = []
    for frame, prefix, step_column, columns in (
        (result.trajectory, "controller.", "steps", _CURVE_COLUMNS),
        (
            result.learning_curve,
            "ppo.",
            "step",
            tuple(c for c in result.learning_curve.columns if c != "step"),
        ),
    ):
        if frame.height == 0:
            continue
        steps = frame[step_column].cast(int).to_list()
        for column in columns:
            values = frame[column].cast(float).to_list()
            kept = [(value, step) for value, step in zip(values, steps, strict=True) if value is not None]
            if kept:
                series.append((prefix + column, [value for value, _ in kept], [step for _, step in kept]))
    return series


@task(name="record-cycle", **IO_RETRIES)
def record_cycle(parent: tracking.RunHandle, result: CycleResult, config: RetrainConfig) -> str:
    """A nested MLflow run per cycle: metrics, evaluation, checkpoint and controller trajectory (PNG)."""
    child = tracking.start_child_run(
        parent,
        run_name=f"cycle-{result.cycle}",
        tags={
            "cycle": str(result.cycle),
            "rolled_back": str(result.rolled_back),
            "start": result.warm_start_reason,
        },
    )
    tracking.log_metrics(child, result.metrics | {f"eval.{k}": v for k, v in result.evaluation.items()})
    tracking.log_metrics(child, {"divergence": result.divergence, "rolled_back": float(result.rolled_back)})
    prefix = f"cycles/{result.cycle}"
    # The checkpoint once, in the cycle's own run (the kept one is also bundled in the registered version).
    for path in sorted(result.checkpoint.iterdir()):
        tracking.log_file(child, path, "checkpoint")
    # Curves, not single points: every rollout's controller figures and every PPO update at its env step.
    series = _step_series(result)
    tracking.log_metric_series(child, series)
    tracking.log_metric_series(parent, series)
    tracking.log_frame(parent, result.trajectory, f"{prefix}/controller_trajectory.parquet")
    tracking.log_json(
        parent, {"metrics": result.metrics, "evaluation": result.evaluation}, f"{prefix}/metrics.json"
    )
    tracking.log_metrics(
        parent,
        {"cycle.score": result.evaluation["score"], "cycle.divergence": result.divergence},
        step=result.cycle,
    )
    tracking.end_run(child, status="FINISHED")
    trajectory = result.trajectory
    push_metrics(
        resolve_pushgateway(config.monitoring.pushgateway),
        job="stairways_training",
        metrics={
            "cycle": result.cycle,
            "steps": result.metrics["num_timesteps"],
            "reward": result.metrics["episode_reward_mean"],
            "hold_rate": result.metrics["hold_rate"],
            "greedy_trades_per_day": result.evaluation["trades_per_day"],
            "controller_health": result.metrics.get("controller_health.score", float("nan")),
            "regime_score": float(trajectory["regime_score"].mean()) if trajectory.height else 0.0,
            "evaluation_score": result.evaluation["score"],
            "divergence": result.divergence,
        },
        labels={"model": config.registry.model_name},
    )
    return child.run_id


@task(name="record-controller", **IO_RETRIES)
def record_controller(handle: tracking.RunHandle, training: TrainingOutcome, config: RetrainConfig) -> None:
    """One picture of the reward controller over the night's cycles, ``cycles/controller.png`` (one point per
    rollout; drawn once a night, not per cycle: the figure costs about a second)."""
    frames = [cycle.trajectory for cycle in training.cycles if cycle.trajectory.height]
    if not frames:
        return
    trajectory = pl.concat(frames, how="diagonal_relaxed")
    with tempfile.TemporaryDirectory() as folder:
        title = f"Reward controller, cycles 1-{len(training.cycles)} (one point per rollout)"
        png = plot_trajectory(
            trajectory, Path(folder) / "controller.png", title=title, config=config.training.controller
        )
        tracking.log_file(handle, png, "cycles")

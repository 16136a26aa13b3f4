"""Training cycles: warm start, PPO cycles with checkpoints, divergence rollback, evaluation, early stop.

A run is ``config.cycles`` cycles of ``config.steps_per_cycle`` env steps on the training window, each
followed by a deterministic evaluation on the selection window. The rules:

* **Windows.** ``train`` and ``selection`` are separate :class:`~envs.market_arrays.MarketArrays`; every
  train timestamp must precede every selection timestamp and both must have the same symbols and feature
  list (:func:`check_windows`, ``ValueError`` otherwise). Training never reads ``selection``; the selection
  window scores cycles, stops training early and picks the best cycle. The test window that judges the
  candidate is never passed here, so nothing in this module can read it.
* **Start of cycle 1.** ``previous`` is the warm-start candidate (the champion's checkpoint directory, or
  None). It is used when :func:`check_warm_start` accepts it (files present and matching their SHA-256 in
  ``meta.json``, same observation size, action count and feature list) and its network architecture equals
  ``config.ppo.net_arch``; its weights, Adam state, normalization statistics and controller state are loaded
  (a controller state that does not fit ``config.controller`` is left out and the reason says so). Otherwise
  cycle 1 starts fresh. A fresh start is kickstarted (``config.imitation``, :mod:`training.imitation`):
  the policy first clones the signal rule on the training window, when the observation has the ``signal``
  feature and the rule trades at least ``min_teacher_trades_per_session`` (else the rollouts are discarded
  and the envs and model rebuilt, as if there were no kickstart); the reason says which and how well.
  Either way the starting weights are saved as the checkpoint ``output_dir/baseline`` (cycle index 0): the
  divergence baseline, and the checkpoint kept if cycle 1 is rolled back.
* **Later cycles** continue ``previous`` (the last kept checkpoint) with ``reset_num_timesteps=False``; an
  unusable ``previous`` raises ``ValueError``. Each cycle builds fresh envs (episodes restart at random
  sessions); PPO hyperparameters always come from ``config``.
* **Checkpoint** ``output_dir/cycle-N`` in the format of :mod:`training.checkpoints`.
* **Divergence.** After training, ``||w - w0|| / ||w0||`` over all policy and value weights, ``w0`` the
  baseline. Above ``config.max_divergence`` the cycle is **rolled back**: its weights, normalization and
  controller state are discarded, the previous checkpoint is kept (``CycleResult.checkpoint``) and
  ``output_dir/cycle-N-rollback.json`` records the ratio. :func:`run_cycles` then **stops**: the divergence is
  measured from the fixed baseline, so training on from the same weights would drift past the limit again.
* **Evaluation** (:func:`evaluate_checkpoint`) of the kept checkpoint; its ``score`` is the mean per-session
  return in percent. **Early stop** (:func:`should_stop`): after a cycle whose score improves on the best
  earlier score by less than ``config.min_improvement`` (relative). The best cycle is the one with the
  highest score among those not rolled back, preferring cycles whose greedy trades per day on the selection
  window lie in ``config.selection_trades_band`` (:func:`best_cycle`).
* **Reward controller** (:mod:`controllers.reward`): after every rollout the greedy policy trades a few
  training sessions (:class:`training.evaluation.GreedyProbe`) and the controller retunes the hold bonus and
  ticket cost from its trades per day; after the cycle's evaluation, the greedy trades per day on the
  selection window rescale the controller's setpoint (the outer loop) and the checkpoint is rewritten with
  that state, so the next cycle, and the next night's warm start, continue from it.
* **Determinism and resume.** Every cycle seeds itself from ``(seed, cycle)`` and reads all state from the
  checkpoint directories it is given, so the same config, seed and inputs give the same metrics and weights
  on CPU (except the timing metrics in :data:`TIMING_METRICS`), and calling :func:`run_cycle` again with the
  same ``previous`` checkpoint redoes exactly that cycle (replacing its directory).
"""

import json
import shutil
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import polars as pl
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.vec_env import VecNormalize

from controllers.health import controller_health
from controllers.reward import AdaptiveRewardController
from core.seeding import derive_seed
from core.spec import HOLD_ACTION
from envs.market_arrays import MarketArrays
from envs.policies import SignalRulePolicy
from training.checkpoints import (
    checkpoint_mismatch,
    checkpoint_parameters,
    config_problem,
    load_checkpoint,
    read_meta,
    restore_state,
    write_checkpoint,
)
from training.evaluation import GreedyProbe, behaviour_of, evaluate_policy, evaluate_sessions
from training.imitation import clone, teacher_rollouts
from training.monitor import TrainingMonitor
from training.outcome import CycleResult, TrainingOutcome, best_cycle, continue_training
from training.ppo import (
    TrainingConfig,
    decisions_per_session,
    make_training_env,
    new_model,
    parameter_divergence,
    policy_parameters,
    progress_bar_available,
    torch_threads,
)

__all__ = [
    "BASELINE_DIRECTORY",
    "CycleRunner",
    "check_windows",
    "cycle_directory",
    "evaluate_checkpoint",
    "run_cycle",
    "run_cycles",
]

BASELINE_DIRECTORY = "baseline"


class CycleRunner(Protocol):
    """Runs one cycle with :func:`run_cycle`'s arguments (the flow's task, or :func:`run_cycle` itself)."""

    def __call__(
        self,
        cycle: int,
        *,
        train: MarketArrays,
        selection: MarketArrays,
        config: TrainingConfig,
        seed: int,
        output_dir: Path,
        previous: Path | None,
        baseline: Path | None,
    ) -> CycleResult: ...


# --------------------------------------------------------------------------------------------------------
# Inputs


def check_windows(train: MarketArrays, selection: MarketArrays) -> None:
    """Raise ``ValueError`` unless every train bar precedes every selection bar with the same features."""
    last_train = train.timestamps.max()
    first_selection = selection.timestamps.min()
    if not last_train < first_selection:
        msg = (
            f"the training window must end before the selection window starts: last train bar "
            f"{last_train}, first selection bar {first_selection}"
        )
        raise ValueError(msg)
    if train.symbols != selection.symbols:
        msg = f"train symbols {train.symbols} differ from selection symbols {selection.symbols}"
        raise ValueError(msg)
    if train.feature_names != selection.feature_names:
        msg = (
            f"train and selection feature lists differ: {list(train.feature_names)} vs "
            f"{list(selection.feature_names)}"
        )
        raise ValueError(msg)


def cycle_directory(output_dir: Path, cycle: int) -> Path:
    """Where cycle ``cycle``'s checkpoint is written: ``output_dir/cycle-<cycle>``."""
    return Path(output_dir) / f"cycle-{cycle}"


def _cycle_seed(seed: int, cycle: int) -> int:
    return derive_seed(seed, f"training-cycle-{cycle}") % 2**31


# --------------------------------------------------------------------------------------------------------
# Evaluation


def evaluate_checkpoint(
    directory: Path, market: MarketArrays, *, config: TrainingConfig, sessions: int | None = None
) -> dict[str, float]:
    """Load ``directory`` and :func:`evaluate_policy` it on ``market`` (``sessions``: eval_sessions)."""
    policy = load_checkpoint(directory, market=market)
    chosen = config.eval_sessions if sessions is None else sessions
    with torch_threads(config.ppo.torch_threads):
        return evaluate_policy(policy, market, config=config, sessions=chosen)


# --------------------------------------------------------------------------------------------------------
# Cycles


def _starting_point(
    cycle: int, previous: Path | None, *, config: TrainingConfig, train: MarketArrays
) -> tuple[str, Path | None, dict[str, Any] | None]:
    """The reason string, the checkpoint to start from (None: fresh) and its meta."""
    problem = checkpoint_mismatch(previous, train.spec)
    meta = None
    if problem is None and previous is not None:
        meta, problem = read_meta(Path(previous))
        if meta is not None:
            problem = config_problem(meta, config)
    if cycle == 1:
        if problem is None and previous is not None:
            return f"warm start from {previous}", Path(previous), meta
        return f"fresh start: {problem}", None, None
    if problem is not None or previous is None or meta is None:
        msg = f"cycle {cycle} cannot continue from {previous}: {problem}"
        raise ValueError(msg)
    return f"continued from cycle {meta.get('cycle')}", Path(previous), meta


def _fresh(
    train: MarketArrays, *, config: TrainingConfig, seed: int
) -> tuple[AdaptiveRewardController, VecNormalize, PPO]:
    """A new controller, training envs and PPO model, all seeded by ``seed``."""
    torch.manual_seed(seed)
    controller = AdaptiveRewardController(config.controller)
    env = make_training_env(train, config=config, seed=seed, controller=controller)
    return controller, env, new_model(env, settings=config.ppo, seed=seed)


def _kickstart(
    model: PPO, env: VecNormalize, *, train: MarketArrays, config: TrainingConfig, seed: int
) -> tuple[str, dict[str, float] | None]:
    """Clone the signal rule into a fresh model when configured and worth it.

    Returns the note and the imitation metrics; metrics None when the teacher's rollouts were run but it
    hardly trades, so the caller must rebuild the envs and the model (their statistics saw the rollouts).
    """
    if not config.imitation.enabled:
        return "no kickstart (training.imitation.enabled is false)", {}
    try:
        teacher = SignalRulePolicy.from_feature_names(train.feature_names)
    except ValueError as error:
        return f"no kickstart ({error})", {}
    raw, actions = teacher_rollouts(env, teacher, config.imitation.steps)
    trading = float(np.mean(actions != HOLD_ACTION)) * decisions_per_session(train)
    if trading < config.imitation.min_teacher_trades_per_session:
        note = (
            f"no kickstart (the signal rule trades on {trading:.2f} steps per session here, fewer than "
            f"training.imitation.min_teacher_trades_per_session = "
            f"{config.imitation.min_teacher_trades_per_session:g})"
        )
        return note, None
    result = clone(model, env, raw, actions, config=config.imitation, seed=seed, hold_action=HOLD_ACTION)
    note = (
        f"kickstarted from the signal rule ({trading:.1f} trading steps per session): {result.accuracy:.1%} "
        f"of {result.samples:,} teacher steps imitated"
    )
    return note, result.as_metrics()


def run_cycle(
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
    """Train cycle ``cycle`` from ``previous``, checkpoint or roll back, evaluate; see the module docstring.

    ``previous``: for cycle 1 the warm-start candidate (or None), later the last kept checkpoint.
    ``baseline``: None for cycle 1 (which writes ``output_dir/baseline``), later that directory. All files
    are written under ``output_dir``. Raises ``ValueError`` for overlapping windows, a bad cycle number or
    missing/unusable ``previous`` or ``baseline`` for cycles after the first.
    """
    if isinstance(cycle, bool) or not isinstance(cycle, int) or cycle < 1:
        msg = f"cycle must be an int >= 1, got {cycle!r}"
        raise ValueError(msg)
    check_windows(train, selection)
    if cycle == 1 and baseline is not None:
        msg = f"cycle 1 writes its own baseline; got baseline={baseline}"
        raise ValueError(msg)
    if cycle > 1 and (previous is None or baseline is None):
        msg = f"cycle {cycle} needs the previous checkpoint and the baseline, got {previous} and {baseline}"
        raise ValueError(msg)
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    cycle_seed = _cycle_seed(seed, cycle)
    progress_bar = config.progress_bar
    if progress_bar and not progress_bar_available():
        warnings.warn("tqdm or rich is not installed: training without a progress bar", stacklevel=2)
        progress_bar = False

    with torch_threads(config.ppo.torch_threads):
        reason, source, source_meta = _starting_point(cycle, previous, config=config, train=train)
        controller, env, model = _fresh(train, config=config, seed=cycle_seed)
        if source is not None and source_meta is not None:
            note = restore_state(
                source,
                model=model,
                env=env,
                controller=controller,
                meta=source_meta,
                strict_controller=cycle > 1,
            )
            if note is not None:
                reason = f"{reason}; {note}"
        imitation: dict[str, float] | None = {}
        if cycle == 1 and source is None:
            note, imitation = _kickstart(model, env, train=train, config=config, seed=cycle_seed)
            reason = f"{reason}; {note}"
            if imitation is None:
                env.close()
                controller, env, model = _fresh(train, config=config, seed=cycle_seed)
        if cycle == 1:
            baseline_directory = write_checkpoint(
                output_dir / BASELINE_DIRECTORY,
                model=model,
                env=env,
                controller=controller,
                config=config,
                seed=seed,
                cycle=0,
                market=train,
            )
            baseline_parameters = policy_parameters(model)
        else:
            baseline_directory = Path(baseline)  # type: ignore[arg-type]
            baseline_parameters = checkpoint_parameters(baseline_directory)

        probe = GreedyProbe(
            train, env_config=config.env, sessions_per_probe=config.controller.probe_sessions
        )
        monitor = TrainingMonitor(
            controller,
            probe=probe,
            decisions_per_session=decisions_per_session(train),
            shaping=config.controller.enabled,
        )
        steps_before = model.num_timesteps
        with warnings.catch_warnings():
            # SB3 silences tqdm's "rich is experimental" warning at import; pytest's filters bring it back.
            warnings.filterwarnings("ignore", message="rich is experimental")
            started = time.perf_counter()
            model.learn(
                total_timesteps=config.steps_per_cycle,
                callback=monitor,
                log_interval=1,
                reset_num_timesteps=False,
                progress_bar=progress_bar,
            )
            wall_seconds = time.perf_counter() - started
        trained_steps = model.num_timesteps - steps_before

        checkpoint: dict[str, Any] = {
            "model": model,
            "env": env,
            "controller": controller,
            "config": config,
            "seed": seed,
            "cycle": cycle,
            "market": train,
        }
        divergence = parameter_divergence(policy_parameters(model), baseline_parameters)
        rolled_back = divergence > config.max_divergence
        directory = cycle_directory(output_dir, cycle)
        rollback_record = output_dir / f"cycle-{cycle}-rollback.json"
        if rolled_back:
            kept = Path(previous) if cycle > 1 else baseline_directory  # type: ignore[arg-type]
            shutil.rmtree(directory, ignore_errors=True)
            record = {
                "cycle": cycle,
                "divergence": divergence,
                "max_divergence": config.max_divergence,
                "kept_checkpoint": str(kept),
                "num_timesteps_discarded": int(model.num_timesteps),
            }
            rollback_record.write_text(json.dumps(record, indent=2) + "\n")
        else:
            rollback_record.unlink(missing_ok=True)
            kept = write_checkpoint(directory, **checkpoint)
        metrics = monitor.metrics(decisions_per_session=decisions_per_session(train))
        metrics |= {
            "timesteps": float(trained_steps),
            "num_timesteps": float(model.num_timesteps),
            "wall_seconds": wall_seconds,
            "steps_per_second": trained_steps / wall_seconds,
            "divergence": divergence,
            "decisions_per_session": decisions_per_session(train),
        } | (imitation or {})
        policy = load_checkpoint(kept, market=selection)
        evaluation, session_returns = evaluate_sessions(
            policy, selection, config=config, sessions=config.eval_sessions
        )
        if not rolled_back and config.controller.enabled:
            # The outer loop: the greedy behaviour on the selection window moves the controller's target
            # offset for the next cycle (and night); the checkpoint is rewritten with the adjusted state.
            controller.adjust_target(behaviour_of(evaluation), regime_score=evaluation["regime_score_mean"])
            kept = write_checkpoint(directory, **checkpoint)
        metrics["controller_target_scale_next"] = float(controller.target_scale)
        trajectory = monitor.trajectory.to_frame()
        if trajectory.height:
            health = controller_health(
                trajectory,
                config.controller,
                decisions_per_session=decisions_per_session(train),
                selection=evaluation,
            )
            metrics |= health.as_metrics()
        env.close()
    return CycleResult(
        cycle=cycle,
        checkpoint=kept,
        metrics=metrics,
        evaluation=evaluation,
        divergence=divergence,
        rolled_back=rolled_back,
        warm_start_reason=reason,
        trajectory=trajectory,
        learning_curve=pl.DataFrame(monitor.learning_curve),
        selection_returns=tuple(float(value) for value in session_returns),
    )


def run_cycles(
    *,
    train: MarketArrays,
    selection: MarketArrays,
    config: TrainingConfig,
    seed: int,
    output_dir: Path,
    warm_start: Path | None = None,
    on_cycle: Callable[[CycleResult], None] | None = None,
    run_one: CycleRunner | None = None,
) -> TrainingOutcome:
    """Run up to ``config.cycles`` cycles, stopping early, and pick the best one: the one cycle loop.

    Each cycle is ``run_one`` (default :func:`run_cycle`; the nightly flow passes its retryable, cached
    Prefect task, which calls :func:`run_cycle`), called with :func:`run_cycle`'s arguments. Stops when
    :func:`continue_training` says so. ``on_cycle`` is called with each result as soon as it exists.
    """
    check_windows(train, selection)
    output_dir = Path(output_dir)
    results: list[CycleResult] = []
    previous = warm_start
    baseline: Path | None = None
    reason = ""
    runner = run_cycle if run_one is None else run_one
    for cycle in range(1, config.cycles + 1):
        result = runner(
            cycle,
            train=train,
            selection=selection,
            config=config,
            seed=seed,
            output_dir=output_dir,
            previous=previous,
            baseline=baseline,
        )
        results.append(result)
        if on_cycle is not None:
            on_cycle(result)
        baseline = output_dir / BASELINE_DIRECTORY
        if not result.rolled_back:
            previous = result.checkpoint
        go_on, reason = continue_training(results, config)
        if not go_on:
            break
    best = best_cycle(results, trades_band=config.selection_trades_band)
    return TrainingOutcome(
        cycles=results,
        best_cycle=best.cycle if best is not None else 0,
        best_checkpoint=best.checkpoint if best is not None else output_dir / BASELINE_DIRECTORY,
        stopped_early=len(results) < config.cycles,
        reason=reason,
    )

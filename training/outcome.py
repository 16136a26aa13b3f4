"""What training cycles produce, and the rules that read it: early stop, the best cycle, the night's health.

:class:`CycleResult` is one cycle's outcome (:func:`training.cycles.run_cycle`), :class:`TrainingOutcome`
the loop's (:func:`training.cycles.run_cycles`). The rules are pure functions of the results:
:func:`continue_training` (the one stopping rule of the cycle loop, built on :func:`should_stop`),
:func:`best_cycle` (the candidate, picked on the selection window) and :func:`night_health` (the reward
controller's health over the night).
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from controllers.health import ControllerHealth, controller_health
from training.ppo import TrainingConfig

__all__ = [
    "SCORE_FLOOR",
    "TIMING_METRICS",
    "CycleResult",
    "TrainingOutcome",
    "best_cycle",
    "continue_training",
    "night_health",
    "should_stop",
]

TIMING_METRICS: frozenset[str] = frozenset({"steps_per_second", "wall_seconds", "probe_seconds"})
"""The only cycle metrics that vary between identical runs (they measure wall time)."""
SCORE_FLOOR = 0.01
"""Smallest score scale (percentage points) in :func:`should_stop`'s relative improvement."""


@dataclass(frozen=True)
class CycleResult:
    """One training cycle's outcome (see the module docstring for the rules)."""

    cycle: int
    checkpoint: Path
    """Directory of this cycle's kept checkpoint (the previous one if rolled back)."""
    metrics: dict[str, float]
    evaluation: dict[str, float]
    divergence: float
    rolled_back: bool
    warm_start_reason: str
    """Cycle 1: ``"warm start from <dir>"`` or ``"fresh start: <why>"``; later ``"continued from cycle N"``"""
    trajectory: pl.DataFrame
    """Controller snapshots, one per rollout (:meth:`ControllerTrajectory.to_frame`)."""
    selection_returns: tuple[float, ...] = ()
    """Return (a fraction) of each selection-window session the kept checkpoint traded, in time order: the
    trial's returns that the deflated Sharpe ratio counts among the candidates compared."""
    learning_curve: pl.DataFrame = field(default_factory=pl.DataFrame)
    """PPO's update statistics, one row per update with its ``step`` (entropy, losses, KL, clip fraction)."""


@dataclass(frozen=True)
class TrainingOutcome:
    """The cycles run by :func:`run_cycles` and the one to keep.

    ``best_cycle`` is 0 (with ``best_checkpoint`` the baseline) when no cycle was kept, i.e. cycle 1 was
    rolled back. ``stopped_early`` is True when fewer than ``config.cycles`` cycles ran.
    """

    cycles: list[CycleResult]
    best_cycle: int
    best_checkpoint: Path
    stopped_early: bool
    reason: str


def should_stop(
    history: Sequence[float], *, min_improvement: float, score_floor: float = SCORE_FLOOR
) -> bool:
    """Whether the latest score improves on the best earlier one by less than ``min_improvement``.

    ``improvement = (latest - best_earlier) / max(|best_earlier|, score_floor)``: dividing by the magnitude
    makes the sign right for negative scores (-2 -> -1 is +50%), and the floor (percentage points of
    return, default 0.01) keeps a best score at or near zero from turning tiny changes into huge relative
    ones. Fewer than two scores never stop; a non-finite latest score stops; non-finite earlier scores are
    ignored (with none finite, training goes on).
    """
    if len(history) < 2:
        return False
    latest = float(history[-1])
    if not math.isfinite(latest):
        return True
    earlier = [float(value) for value in history[:-1] if math.isfinite(float(value))]
    if not earlier:
        return False
    best = max(earlier)
    improvement = (latest - best) / max(abs(best), score_floor)
    return improvement < min_improvement


def night_health(results: Sequence[CycleResult], config: TrainingConfig) -> ControllerHealth | None:
    """The reward controller's health over all of a night's cycles, judged on the best cycle's selection
    behaviour (None when no rollout was recorded)."""
    frames = [result.trajectory for result in results if result.trajectory.height]
    if not frames:
        return None
    best = best_cycle(results, trades_band=config.selection_trades_band)
    return controller_health(
        pl.concat(frames),
        config.controller,
        decisions_per_session=results[0].metrics["decisions_per_session"],
        selection=None if best is None else best.evaluation,
    )


def best_cycle(
    results: Sequence[CycleResult], *, trades_band: tuple[float, float] | None = None
) -> CycleResult | None:
    """The kept cycle with the highest score (the earliest on ties; non-finite scores rank last).

    With ``trades_band`` (``TrainingConfig.selection_trades_band``), only cycles whose greedy trades per day on
    the selection window lie inside it compete, unless none does: a cycle that trades outside the gate's band
    would fail the gate whatever its score.
    """
    kept = [result for result in results if not result.rolled_back]
    if trades_band is not None:
        low, high = trades_band
        inside = [result for result in kept if low <= result.evaluation.get("trades_per_day", math.nan) <= high]
        kept = inside or kept
    best: CycleResult | None = None
    best_score = -math.inf
    for result in kept:
        score = result.evaluation["score"]
        rank = score if math.isfinite(score) else -math.inf
        if best is None or rank > best_score:
            best, best_score = result, rank
    return best


def continue_training(results: Sequence[CycleResult], config: TrainingConfig) -> tuple[bool, str]:
    """Whether another cycle should run after ``results``, and why: the one stopping rule of every cycle loop.

    Stop after a rolled-back cycle (the divergence is measured from the fixed baseline, so training on from the
    same weights would drift past the limit again), when the budget of ``config.cycles`` is spent, or when
    :func:`should_stop` says the latest score improved too little, unless no cycle so far trades inside
    ``config.selection_trades_band`` on the selection window: such a night's candidate would fail the gate's
    trades-per-day band, so the controller's outer loop gets the rest of the budget to bring it inside.
    """
    latest = results[-1]
    if latest.rolled_back:
        return False, (
            f"cycle {latest.cycle} rolled back: divergence {latest.divergence:.4f} > {config.max_divergence}; "
            "training stops (continuing from the same weights would drift past the limit again)"
        )
    if len(results) >= config.cycles:
        return False, f"ran all {config.cycles} cycles"
    scores = [result.evaluation["score"] for result in results if not result.rolled_back]
    if should_stop(scores, min_improvement=config.min_improvement):
        band = config.selection_trades_band
        if band is not None and not any(
            band[0] <= result.evaluation.get("trades_per_day", math.nan) <= band[1] for result in results
        ):
            return True, (
                f"cycle {latest.cycle} improved the evaluation score by less than {config.min_improvement:.0%}, "
                f"but no cycle trades inside {list(band)} a day on the selection window yet: training goes on"
            )
        return False, (
            f"cycle {latest.cycle} improved the evaluation score by less than {config.min_improvement:.0%} "
            f"(scores {[round(score, 6) for score in scores]})"
        )
    return True, f"cycle {latest.cycle} improved the evaluation score"

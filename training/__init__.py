"""PPO training cycles for the trading agent: warm start, checkpoints, divergence rollback, early stop.

Prefect-free: the flow's tasks call :func:`run_cycle` once per cycle; :func:`run_cycles` is the plain loop.
"""

from training.checkpoints import LoadedPolicy, check_warm_start, load_checkpoint
from training.cycles import (
    BASELINE_DIRECTORY,
    check_windows,
    cycle_directory,
    evaluate_checkpoint,
    run_cycle,
    run_cycles,
)
from training.evaluation import GreedyProbe, LivePolicy, evaluate_policy
from training.outcome import (
    TIMING_METRICS,
    CycleResult,
    TrainingOutcome,
    continue_training,
    night_health,
    should_stop,
)
from training.ppo import PPOSettings, TrainingConfig, make_training_env, parameter_divergence

__all__ = [
    "BASELINE_DIRECTORY",
    "CycleResult",
    "GreedyProbe",
    "LivePolicy",
    "LoadedPolicy",
    "PPOSettings",
    "TIMING_METRICS",
    "TrainingConfig",
    "TrainingOutcome",
    "check_warm_start",
    "check_windows",
    "continue_training",
    "cycle_directory",
    "evaluate_checkpoint",
    "evaluate_policy",
    "load_checkpoint",
    "make_training_env",
    "night_health",
    "parameter_divergence",
    "run_cycle",
    "run_cycles",
    "should_stop",
]

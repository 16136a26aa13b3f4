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
* **Checkpoint** ``output_dir/cycle-N``: ``model.zip`` (SB3), ``vecnormalize.npz`` (normalization
  statistics), ``controller.json`` (controller state) and ``meta.json`` (features, observation shape, action
  count, cycle, num_timesteps, config and its hash, seed, train window, library versions and ``files_sha256``
  of the other three files). SB3 zips contain pickles: :func:`load_checkpoint` verifies the hashes, then reads
  only the zip's torch tensors (``weights_only``), never its pickled data. A directory is written under a
  temporary name and renamed into place, so a crash never leaves a half-written ``cycle-N``.
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

import hashlib
import json
import math
import shutil
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import gymnasium
import numpy as np
import polars as pl
import torch
from gymnasium import spaces
from pydantic import ValidationError
from stable_baselines3 import PPO
from stable_baselines3.common.save_util import load_from_zip_file
from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

from controllers.health import ControllerHealth, controller_health
from controllers.reward import AdaptiveRewardController
from envs.market_arrays import MarketArrays
from envs.trading import ACTION_MEANINGS
from stairways.digest import model_digest
from stairways.seeding import derive_seed
from training.evaluation import GreedyProbe, behaviour_of, evaluate_policy, evaluate_sessions
from training.imitation import clone, teacher_rollouts
from training.ppo import (
    HOLD_ACTION,
    NORMALIZE_REWARD,
    TrainingConfig,
    TrainingMonitor,
    decisions_per_session,
    make_training_env,
    new_model,
    parameter_divergence,
    policy_parameters,
    progress_bar_available,
    restore_normalization,
    save_normalization,
    torch_threads,
)
from validation.metrics import SignalRulePolicy

__all__ = [
    "BASELINE_DIRECTORY",
    "CONTROLLER_FILE",
    "META_FILE",
    "MODEL_FILE",
    "NORMALIZATION_FILE",
    "SCORE_FLOOR",
    "TIMING_METRICS",
    "CycleResult",
    "LoadedPolicy",
    "TrainingOutcome",
    "best_cycle",
    "check_warm_start",
    "check_windows",
    "continue_training",
    "cycle_directory",
    "evaluate_checkpoint",
    "evaluate_policy",
    "evaluate_sessions",
    "load_checkpoint",
    "night_health",
    "run_cycle",
    "run_cycles",
    "should_stop",
]

MODEL_FILE = "model.zip"
NORMALIZATION_FILE = "vecnormalize.npz"
CONTROLLER_FILE = "controller.json"
META_FILE = "meta.json"
BASELINE_DIRECTORY = "baseline"
CHECKPOINT_FORMAT = 1
ACTION_COUNT = len(ACTION_MEANINGS)
TIMING_METRICS: frozenset[str] = frozenset({"steps_per_second", "wall_seconds", "probe_seconds"})
"""The only cycle metrics that vary between identical runs (they measure wall time)."""
SCORE_FLOOR = 0.01
"""Smallest score scale (percentage points) in :func:`should_stop`'s relative improvement."""
_HASHED_FILES = (MODEL_FILE, NORMALIZATION_FILE, CONTROLLER_FILE)


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
# Checkpoints


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _read_meta(directory: Path) -> tuple[dict[str, Any] | None, str | None]:
    """The checkpoint's meta.json and None, or None and the reason it is unusable (files and hashes)."""
    if not directory.is_dir():
        return None, f"checkpoint directory {directory} does not exist"
    meta_path = directory / META_FILE
    try:
        meta = json.loads(meta_path.read_text())
    except FileNotFoundError:
        return None, f"{meta_path} is missing"
    except (OSError, ValueError) as error:
        return None, f"{meta_path} is unreadable: {error}"
    if not isinstance(meta, dict):
        return None, f"{meta_path} does not hold a JSON object"
    required = (
        "format_version",
        "feature_names",
        "observation_shape",
        "action_count",
        "config",
        "files_sha256",
    )
    missing = [key for key in required if key not in meta]
    if missing:
        return None, f"{meta_path} lacks {missing}"
    if meta["format_version"] != CHECKPOINT_FORMAT:
        return None, f"checkpoint format {meta['format_version']!r} (expected {CHECKPOINT_FORMAT})"
    hashes = meta["files_sha256"]
    for name in _HASHED_FILES:
        path = directory / name
        if not path.is_file():
            return None, f"{path} is missing"
        if not isinstance(hashes, dict) or hashes.get(name) != _sha256(path):
            return None, f"{path} does not match its SHA-256 in {META_FILE}"
    return meta, None


def check_warm_start(
    checkpoint: Path | None, *, observation_size: int, action_count: int, feature_names: Sequence[str]
) -> str | None:
    """None when ``checkpoint`` can seed training on these spaces, else the reason it cannot.

    Checks that the directory exists with all four files, that the files match the SHA-256 recorded in
    ``meta.json``, and that its observation size, action count and feature list (names and order) equal the
    given ones.
    """
    if checkpoint is None:
        return "no warm-start checkpoint given"
    meta, problem = _read_meta(Path(checkpoint))
    if meta is None:
        return problem
    saved_shape = list(meta["observation_shape"])
    if saved_shape != [observation_size]:
        return f"observation shape {saved_shape} differs from [{observation_size}]"
    if meta["action_count"] != action_count:
        return f"action count {meta['action_count']} differs from {action_count}"
    saved_features = list(meta["feature_names"])
    wanted = list(feature_names)
    if saved_features != wanted:
        only_saved = [name for name in saved_features if name not in wanted]
        only_wanted = [name for name in wanted if name not in saved_features]
        if only_saved or only_wanted:
            detail = f"only in checkpoint {only_saved[:5]}, only in data {only_wanted[:5]}"
        else:
            detail = "same names in a different order"
        return f"feature list differs ({detail})"
    return None


def read_training_config(meta: Mapping[str, Any]) -> TrainingConfig:
    """The training config saved in a checkpoint's meta (settings of an earlier controller design dropped)."""
    return TrainingConfig.model_validate(meta["config"], context={"checkpoint": True})


def _config_problem(meta: Mapping[str, Any], config: TrainingConfig) -> str | None:
    """Why the checkpoint's network cannot take ``config``'s PPO settings (None when it can)."""
    try:
        saved = read_training_config(meta)
    except ValidationError as error:
        return f"its training config is not readable with this version: {error.error_count()} errors"
    if saved.ppo.net_arch != config.ppo.net_arch:
        return f"network architecture {list(saved.ppo.net_arch)} differs from {list(config.ppo.net_arch)}"
    return None


def _replace_directory(partial: Path, directory: Path) -> None:
    if directory.exists():
        stale = directory.with_name(f".{directory.name}.stale")
        shutil.rmtree(stale, ignore_errors=True)
        directory.rename(stale)
        partial.rename(directory)
        shutil.rmtree(stale)
    else:
        partial.rename(directory)


def _versions() -> dict[str, str]:
    versions = {}
    for distribution in ("stable-baselines3", "torch", "gymnasium", "numpy"):
        try:
            versions[distribution] = metadata.version(distribution)
        except metadata.PackageNotFoundError:
            versions[distribution] = "unknown"
    return versions


def _write_checkpoint(
    directory: Path,
    *,
    model: PPO,
    env: VecNormalize,
    controller: AdaptiveRewardController,
    config: TrainingConfig,
    seed: int,
    cycle: int,
    market: MarketArrays,
) -> Path:
    """Write the four checkpoint files under a temporary name, then rename the directory into place."""
    partial = directory.with_name(f".{directory.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    model.save(partial / MODEL_FILE)
    save_normalization(env, partial / NORMALIZATION_FILE)
    (partial / CONTROLLER_FILE).write_text(json.dumps(controller.state_dict(), indent=2) + "\n")
    meta = {
        "format_version": CHECKPOINT_FORMAT,
        "cycle": cycle,
        "num_timesteps": int(model.num_timesteps),
        "feature_names": list(market.feature_names),
        "symbols": list(market.symbols),
        "observation_shape": [int(market.features.shape[1]) + 2],
        "action_count": ACTION_COUNT,
        "normalize_reward": NORMALIZE_REWARD,
        "seed": seed,
        "config_hash": model_digest(config),
        "config": config.model_dump(mode="json"),
        "train_window": {
            "first_bar": str(market.timestamps.min()),
            "last_bar": str(market.timestamps.max()),
            "bars": market.bars,
        },
        "versions": _versions(),
        "files_sha256": {name: _sha256(partial / name) for name in _HASHED_FILES},
    }
    (partial / META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    _replace_directory(partial, directory)
    return directory


def _checkpoint_parameters(directory: Path) -> dict[str, torch.Tensor]:
    """The policy state dict stored in a verified checkpoint's zip (torch tensors only, no pickled data)."""
    meta, problem = _read_meta(directory)
    if meta is None:
        msg = f"cannot read checkpoint {directory}: {problem}"
        raise ValueError(msg)
    _, parameters, _ = load_from_zip_file(directory / MODEL_FILE, device="cpu", load_data=False)
    if parameters is None or "policy" not in parameters:
        msg = f"{directory / MODEL_FILE} holds no policy parameters"
        raise ValueError(msg)
    return dict(parameters["policy"])


class _SpacesOnlyEnv(gymnasium.Env[np.ndarray, np.int64]):
    """An env with the trading env's spaces that is never stepped for real (it lets SB3 build a model)."""

    def __init__(self, observation_size: int) -> None:
        bound = np.full(observation_size, np.finfo(np.float32).max, dtype=np.float32)
        bound[-2:] = 1.0
        self.observation_space = spaces.Box(low=-bound, high=bound, dtype=np.float32)
        self.action_space = spaces.Discrete(ACTION_COUNT)
        self._observation = np.zeros(observation_size, dtype=np.float32)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        return self._observation.copy(), {}

    def step(self, action: np.int64) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        return self._observation.copy(), 0.0, False, True, {}


@dataclass(frozen=True)
class LoadedPolicy:
    """A checkpoint loaded for inference: the model, its normalization (frozen), controller state and meta."""

    directory: Path
    model: PPO
    normalization: VecNormalize
    controller_state: dict[str, float | int]
    meta: dict[str, Any]
    config: TrainingConfig

    def predict(self, observations: np.ndarray) -> np.ndarray:
        """Deterministic actions (int64, shape ``(n,)``) for a batch of raw observations ``(n, size)``."""
        batch = np.asarray(observations, dtype=np.float32)
        if batch.ndim != 2 or batch.shape[1] != self.meta["observation_shape"][0]:
            msg = f"observations must have shape (n, {self.meta['observation_shape'][0]}), got {batch.shape}"
            raise ValueError(msg)
        normalized = self.normalization.normalize_obs(batch)
        actions, _ = self.model.policy.predict(normalized, deterministic=True)  # type: ignore[arg-type]
        return np.asarray(actions, dtype=np.int64).reshape(-1)

    def controller(self) -> AdaptiveRewardController | None:
        """A new controller with the checkpoint's controller config and state (None: trained without one)."""
        if not self.config.controller.enabled:
            return None
        controller = AdaptiveRewardController(self.config.controller)
        controller.load_state_dict(self.controller_state)
        return controller


def load_checkpoint(directory: Path, *, market: MarketArrays | None = None) -> LoadedPolicy:
    """Load a checkpoint written by the cycles for inference; ``ValueError`` if it is unusable.

    The files are verified against ``files_sha256`` first; the model is rebuilt from the saved training
    config and the zip's tensors (its pickled part is not read). With ``market``, its feature list must equal
    the checkpoint's.
    """
    directory = Path(directory)
    meta, problem = _read_meta(directory)
    if meta is None:
        msg = f"cannot load checkpoint {directory}: {problem}"
        raise ValueError(msg)
    if market is not None:
        problem = check_warm_start(
            directory,
            observation_size=market.features.shape[1] + 2,
            action_count=ACTION_COUNT,
            feature_names=market.feature_names,
        )
        if problem is not None:
            msg = f"checkpoint {directory} does not fit the market: {problem}"
            raise ValueError(msg)
    try:
        config = read_training_config(meta)
    except ValidationError as error:
        msg = f"checkpoint {directory} has a training config this version cannot read"
        raise ValueError(msg) from error
    observation_size = int(meta["observation_shape"][0])

    def build() -> _SpacesOnlyEnv:
        return _SpacesOnlyEnv(observation_size)

    normalization = VecNormalize(
        DummyVecEnv([build] * config.ppo.n_envs), training=False, norm_obs=True, norm_reward=False
    )
    restore_normalization(normalization, directory / NORMALIZATION_FILE)
    model = new_model(normalization, settings=config.ppo, seed=None)
    model.set_parameters(str(directory / MODEL_FILE), exact_match=True, device="cpu")
    model.num_timesteps = int(meta["num_timesteps"])
    controller_state = json.loads((directory / CONTROLLER_FILE).read_text())
    return LoadedPolicy(
        directory=directory,
        model=model,
        normalization=normalization,
        controller_state=controller_state,
        meta=meta,
        config=config,
    )


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


def _restore_state(
    directory: Path,
    *,
    model: PPO,
    env: VecNormalize,
    controller: AdaptiveRewardController,
    meta: Mapping[str, Any],
    strict_controller: bool,
) -> str | None:
    """Load weights, optimizer, normalization and controller state; a note if the controller was skipped."""
    model.set_parameters(str(directory / MODEL_FILE), exact_match=True, device="cpu")
    model.num_timesteps = int(meta["num_timesteps"])
    restore_normalization(env, directory / NORMALIZATION_FILE)
    try:
        controller.load_state_dict(json.loads((directory / CONTROLLER_FILE).read_text()))
    except ValueError as error:
        if strict_controller:
            msg = f"cannot restore the controller state of {directory}: {error}"
            raise ValueError(msg) from error
        controller.reset()
        return f"controller state not restored ({error})"
    return None


def _starting_point(
    cycle: int, previous: Path | None, *, config: TrainingConfig, train: MarketArrays
) -> tuple[str, Path | None, dict[str, Any] | None]:
    """The reason string, the checkpoint to start from (None: fresh) and its meta."""
    problem = check_warm_start(
        previous,
        observation_size=train.features.shape[1] + 2,
        action_count=ACTION_COUNT,
        feature_names=train.feature_names,
    )
    meta = None
    if problem is None and previous is not None:
        meta, problem = _read_meta(Path(previous))
        if meta is not None:
            problem = _config_problem(meta, config)
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
            note = _restore_state(
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
            baseline_directory = _write_checkpoint(
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
            baseline_parameters = _checkpoint_parameters(baseline_directory)

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
            kept = _write_checkpoint(directory, **checkpoint)
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
            kept = _write_checkpoint(directory, **checkpoint)
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


def run_cycles(
    *,
    train: MarketArrays,
    selection: MarketArrays,
    config: TrainingConfig,
    seed: int,
    output_dir: Path,
    warm_start: Path | None = None,
    on_cycle: Callable[[CycleResult], None] | None = None,
) -> TrainingOutcome:
    """Run up to ``config.cycles`` cycles with :func:`run_cycle`, stopping early, and pick the best one.

    Stops when :func:`continue_training` says so. ``on_cycle`` is called with each result as soon as it exists.
    """
    check_windows(train, selection)
    output_dir = Path(output_dir)
    results: list[CycleResult] = []
    previous = warm_start
    baseline: Path | None = None
    reason = ""
    for cycle in range(1, config.cycles + 1):
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

"""The checkpoint format of the training cycles: its files, writing, verifying and loading for inference.

A checkpoint is a directory (``output_dir/cycle-N``, or ``baseline`` for the starting weights) of four files:
``model.zip`` (SB3), ``vecnormalize.npz`` (normalization statistics), ``controller.json`` (reward controller
state) and ``meta.json`` (the agent spec: features, observation shape, action count; cycle, num_timesteps,
config and its hash, seed, train window, library versions and ``files_sha256`` of the other three files).
SB3 zips contain pickles: :func:`load_checkpoint` verifies the hashes, then reads only the zip's torch
tensors (``weights_only``), never its pickled data. :func:`write_checkpoint` writes the directory under a
temporary name and renames it into place, so a crash never leaves a half-written checkpoint.

:class:`LoadedPolicy` is a checkpoint loaded for inference; the registry, the replay check, the assessment
and serving all load policies through :func:`load_checkpoint`.
"""

import json
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import gymnasium
import numpy as np
import torch
from pydantic import ValidationError
from stable_baselines3 import PPO
from stable_baselines3.common.save_util import load_from_zip_file
from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

from controllers.reward import AdaptiveRewardController
from core.digest import file_digest, model_digest
from core.spec import AgentSpec, layout_mismatch
from envs.market_arrays import MarketArrays
from training.normalization import restore_normalization, save_normalization
from training.ppo import NORMALIZE_REWARD, TrainingConfig, new_model

__all__ = [
    "CHECKPOINT_FILES",
    "CHECKPOINT_FORMAT",
    "CONTROLLER_FILE",
    "HASHED_FILES",
    "META_FILE",
    "MODEL_FILE",
    "NORMALIZATION_FILE",
    "LoadedPolicy",
    "check_warm_start",
    "checkpoint_mismatch",
    "checkpoint_parameters",
    "config_problem",
    "load_checkpoint",
    "read_meta",
    "read_training_config",
    "restore_state",
    "write_checkpoint",
]

MODEL_FILE = "model.zip"
NORMALIZATION_FILE = "vecnormalize.npz"
CONTROLLER_FILE = "controller.json"
META_FILE = "meta.json"
CHECKPOINT_FORMAT = 1
HASHED_FILES: tuple[str, ...] = (MODEL_FILE, NORMALIZATION_FILE, CONTROLLER_FILE)
"""The files ``meta.json`` records a SHA-256 for."""
CHECKPOINT_FILES: tuple[str, ...] = (*HASHED_FILES, META_FILE)
"""Every file of a checkpoint directory."""


def read_meta(directory: Path) -> tuple[dict[str, Any] | None, str | None]:
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
    for name in HASHED_FILES:
        path = directory / name
        if not path.is_file():
            return None, f"{path} is missing"
        if not isinstance(hashes, dict) or hashes.get(name) != file_digest(path):
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
    meta, problem = read_meta(Path(checkpoint))
    if meta is None:
        return problem
    return layout_mismatch(
        meta, observation_size=observation_size, action_count=action_count, feature_names=feature_names
    )


def checkpoint_mismatch(checkpoint: Path | None, spec: AgentSpec) -> str | None:
    """:func:`check_warm_start` against an agent spec (a market's :attr:`~envs.market_arrays.MarketArrays.spec`)."""
    return check_warm_start(
        checkpoint,
        observation_size=spec.observation_size,
        action_count=spec.action_count,
        feature_names=spec.feature_names,
    )


def read_training_config(meta: Mapping[str, Any]) -> TrainingConfig:
    """The training config saved in a checkpoint's meta (settings of an earlier controller design dropped)."""
    return TrainingConfig.model_validate(meta["config"], context={"checkpoint": True})


def config_problem(meta: Mapping[str, Any], config: TrainingConfig) -> str | None:
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


def _library_versions() -> dict[str, str]:
    versions = {}
    for distribution in ("stable-baselines3", "torch", "gymnasium", "numpy"):
        try:
            versions[distribution] = metadata.version(distribution)
        except metadata.PackageNotFoundError:
            versions[distribution] = "unknown"
    return versions


def write_checkpoint(
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
        **market.spec.as_meta(),
        "symbols": list(market.symbols),
        "normalize_reward": NORMALIZE_REWARD,
        "seed": seed,
        "config_hash": model_digest(config),
        "config": config.model_dump(mode="json"),
        "train_window": {
            "first_bar": str(market.timestamps.min()),
            "last_bar": str(market.timestamps.max()),
            "bars": market.bars,
        },
        "versions": _library_versions(),
        "files_sha256": {name: file_digest(partial / name) for name in HASHED_FILES},
    }
    (partial / META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    _replace_directory(partial, directory)
    return directory


def checkpoint_parameters(directory: Path) -> dict[str, torch.Tensor]:
    """The policy state dict stored in a verified checkpoint's zip (torch tensors only, no pickled data)."""
    meta, problem = read_meta(directory)
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

    def __init__(self, spec: AgentSpec) -> None:
        self.observation_space = spec.observation_space()
        self.action_space = spec.action_space()
        self._observation = np.zeros(spec.observation_size, dtype=np.float32)

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
    meta, problem = read_meta(directory)
    if meta is None:
        msg = f"cannot load checkpoint {directory}: {problem}"
        raise ValueError(msg)
    if market is not None:
        problem = checkpoint_mismatch(directory, market.spec)
        if problem is not None:
            msg = f"checkpoint {directory} does not fit the market: {problem}"
            raise ValueError(msg)
    try:
        config = read_training_config(meta)
    except ValidationError as error:
        msg = f"checkpoint {directory} has a training config this version cannot read"
        raise ValueError(msg) from error
    spec = AgentSpec.from_meta(meta)

    def build() -> _SpacesOnlyEnv:
        return _SpacesOnlyEnv(spec)

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


def restore_state(
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

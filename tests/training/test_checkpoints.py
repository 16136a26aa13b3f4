"""Tests for training/checkpoints.py: the checkpoint files, meta and hashes, warm-start checks, loading."""

import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pytest

from core.digest import model_digest
from envs.market_arrays import MarketArrays
from market.feature_config import feature_names
from tests.training.support import SEED, synthetic_windows
from tests.training.support import TINY_CYCLES as TINY
from training.checkpoints import (
    CONTROLLER_FILE,
    META_FILE,
    MODEL_FILE,
    NORMALIZATION_FILE,
    check_warm_start,
    load_checkpoint,
)
from training.cycles import BASELINE_DIRECTORY, cycle_directory, run_cycle
from training.outcome import TrainingOutcome
from training.ppo import TrainingConfig

# ------------------------------------------------------------------------------------- files and meta


def test_checkpoint_meta_describes_the_checkpoint(
    tiny_run: tuple[TrainingOutcome, Path], windows: tuple[MarketArrays, MarketArrays]
) -> None:
    outcome, output = tiny_run
    train, _ = windows
    meta = json.loads((cycle_directory(output, 2) / META_FILE).read_text())
    assert meta["cycle"] == 2
    assert meta["num_timesteps"] == 1024
    assert meta["feature_names"] == list(train.feature_names)
    assert meta["observation_shape"] == [train.features.shape[1] + 2]
    assert meta["action_count"] == 9
    assert meta["config_hash"] == model_digest(TINY)
    assert TrainingConfig.model_validate(meta["config"]) == TINY
    assert meta["seed"] == SEED
    for name in (MODEL_FILE, NORMALIZATION_FILE, CONTROLLER_FILE):
        digest = hashlib.sha256((cycle_directory(output, 2) / name).read_bytes()).hexdigest()
        assert meta["files_sha256"][name] == digest
    controller = json.loads((cycle_directory(output, 2) / CONTROLLER_FILE).read_text())
    assert controller["hold_bonus"] == outcome.cycles[1].metrics["controller_hold_bonus"]
    baseline = json.loads((output / BASELINE_DIRECTORY / META_FILE).read_text())
    assert baseline["cycle"] == 0
    assert baseline["num_timesteps"] == 0


def test_loaded_policy_predicts_actions(
    tiny_run: tuple[TrainingOutcome, Path], windows: tuple[MarketArrays, MarketArrays]
) -> None:
    _, output = tiny_run
    _, validation = windows
    policy = load_checkpoint(cycle_directory(output, 2), market=validation)
    assert not policy.normalization.training
    observations = np.zeros((5, validation.features.shape[1] + 2), dtype=np.float32)
    observations[:, :-2] = validation.features[:5]
    actions = policy.predict(observations)
    assert actions.dtype == np.int64
    assert actions.shape == (5,)
    assert ((actions >= 0) & (actions < 9)).all()
    np.testing.assert_array_equal(actions, policy.predict(observations))
    with pytest.raises(ValueError, match="shape"):
        policy.predict(observations[:, :-1])
    assert policy.controller().state_dict() == policy.controller_state


def test_load_checkpoint_refuses_tampered_or_mismatched_files(
    tiny_run: tuple[TrainingOutcome, Path], tmp_path: Path
) -> None:
    _, output = tiny_run
    copy = tmp_path / "copy"
    copy.mkdir()
    for path in cycle_directory(output, 1).iterdir():
        (copy / path.name).write_bytes(path.read_bytes())
    load_checkpoint(copy)
    with (copy / MODEL_FILE).open("ab") as handle:
        handle.write(b"\0")
    with pytest.raises(ValueError, match="SHA-256"):
        load_checkpoint(copy)
    other_train, _ = synthetic_windows(columns=feature_names()[:-1])
    with pytest.raises(ValueError, match="does not fit the market"):
        load_checkpoint(cycle_directory(output, 1), market=other_train)


# ------------------------------------------------------------------------------------------- warm start


def test_incompatible_checkpoints_give_a_fresh_start_with_the_reason(
    tiny_run: tuple[TrainingOutcome, Path], tmp_path: Path
) -> None:
    _, output = tiny_run
    champion = cycle_directory(output, 2)
    columns = feature_names()
    fewer_train, fewer_validation = synthetic_windows(columns=columns[:-1])
    reordered_train, _ = synthetic_windows(columns=[*columns[1:], columns[0]])

    def reason(train: MarketArrays) -> str | None:
        return check_warm_start(
            champion,
            observation_size=train.features.shape[1] + 2,
            action_count=9,
            feature_names=train.feature_names,
        )

    assert "observation shape" in (reason(fewer_train) or "")
    assert "same names in a different order" in (reason(reordered_train) or "")
    assert "action count" in (
        check_warm_start(
            champion,
            observation_size=reordered_train.features.shape[1] + 2,
            action_count=3,
            feature_names=reordered_train.feature_names,
        )
        or ""
    )
    assert "does not exist" in (
        check_warm_start(tmp_path / "missing", observation_size=1, action_count=9, feature_names=[]) or ""
    )
    assert check_warm_start(None, observation_size=1, action_count=9, feature_names=[]) is not None
    result = run_cycle(
        1,
        train=fewer_train,
        selection=fewer_validation,
        config=TINY,
        seed=SEED,
        output_dir=tmp_path / "fresh",
        previous=champion,
        baseline=None,
    )
    assert result.warm_start_reason.startswith("fresh start: observation shape")
    assert result.metrics["num_timesteps"] == 512.0


# ------------------------------------------------------------------------------------------- controller


def test_a_checkpoint_without_controller_gives_no_controller(tmp_path: Path) -> None:
    train, validation = synthetic_windows(columns=feature_names()[:4])
    config = TINY.model_copy(
        update={"cycles": 1, "steps_per_cycle": 128, "controller": TINY.controller.model_copy(update={"enabled": False})}
    )
    result = run_cycle(
        1, train=train, selection=validation, config=config, seed=SEED, output_dir=tmp_path, previous=None, baseline=None
    )
    policy = load_checkpoint(result.checkpoint)
    assert policy.controller() is None
    assert math.isnan(result.metrics["controller_hold_bonus"])  # no shaping: nothing to report
    assert result.metrics["controller_target_scale_next"] == 1.0  # and no outer loop


def test_a_checkpoint_of_the_first_controller_design_still_loads(tmp_path: Path, tiny_run: tuple[TrainingOutcome, Path]) -> None:
    outcome, _ = tiny_run
    legacy = tmp_path / "legacy"
    legacy.mkdir()
    for path in outcome.cycles[0].checkpoint.iterdir():
        (legacy / path.name).write_bytes(path.read_bytes())
    meta = json.loads((legacy / META_FILE).read_text())
    controller = meta["config"]["controller"]
    for key in ("target_trades_per_day", "trades_per_day_bounds", "regime_sensitivity", "probe_sessions"):
        controller.pop(key)
    controller |= {"target_hold_rate": 0.55, "target_bounds": [0.4, 0.75], "hold_rate_span": 200}
    state = {
        "version": 1, "steps": 512, "episodes": 3, "interval_steps": 12, "interval_error_sum": 0.3,
        "hold_rate": 0.2, "slow_adjustment": -0.5, "target_hold_rate": 0.55, "regime_score": 0.1,
        "hold_bonus": 0.015, "ticket_cost": 0.8,
    }
    (legacy / CONTROLLER_FILE).write_text(json.dumps(state))
    meta["files_sha256"][CONTROLLER_FILE] = hashlib.sha256((legacy / CONTROLLER_FILE).read_bytes()).hexdigest()
    (legacy / META_FILE).write_text(json.dumps(meta))
    policy = load_checkpoint(legacy)
    restored = policy.controller()
    assert restored is not None and restored.slow_adjustment == -0.5

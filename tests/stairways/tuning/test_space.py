"""The search space: validated up front, and every trial an ordinary config that `stairways run --config` reads."""

from pathlib import Path

import optuna
import pytest
import yaml

from core.errors import ConfigError
from stairways.config import DEFAULT_OBSERVATION_FEATURES, RetrainConfig, load_config
from stairways.tuning.space import (
    DEFAULT_SPACE,
    FEATURE_SETS,
    Categorical,
    FloatRange,
    IntRange,
    SearchSpace,
    config_for,
    suggest,
    trial_overrides,
)


def test_the_default_space_covers_ppo_controller_and_feature_sets_and_fits_the_default_config() -> None:
    paths = set(DEFAULT_SPACE.parameters)
    for name in (
        "learning_rate",
        "n_steps",
        "batch_size",
        "n_epochs",
        "gamma",
        "gae_lambda",
        "clip_range",
        "ent_coef",
    ):
        assert f"training.ppo.{name}" in paths
    assert "training.ppo.net_width" in paths
    for name in (
        "bonus_gain",
        "cost_gain",
        "base_hold_bonus",
        "base_ticket_cost",
        "target_trades_per_day",
        "regime_sensitivity",
        "slow_clamp",
    ):
        assert f"training.controller.{name}" in paths
    assert {f"features.{name}" for name in FEATURE_SETS} <= paths
    DEFAULT_SPACE.check(RetrainConfig())  # every range end validates


def test_a_path_that_does_not_exist_or_a_range_the_config_refuses_fails_at_once_naming_it() -> None:
    with pytest.raises(ConfigError, match=r"training\.ppo\.gama"):
        SearchSpace(parameters={"training.ppo.gama": FloatRange(low=0.9, high=0.99)}).check(RetrainConfig())
    with pytest.raises(ConfigError, match=r"training\.ppo\.gamma=1\.5"):
        SearchSpace(parameters={"training.ppo.gamma": FloatRange(low=0.9, high=1.5)}).check(RetrainConfig())
    with pytest.raises(ValueError, match="below high"):
        FloatRange(low=1.0, high=1.0)
    with pytest.raises(ValueError, match="log"):
        IntRange(low=0, high=8, log=True)


def test_a_trial_becomes_a_config_width_feature_switches_and_batch_clamp_applied() -> None:
    base = RetrainConfig()
    flat = {
        "training.ppo.net_width": 32,
        "training.ppo.n_steps": 16,
        "training.ppo.batch_size": 512,
        "features.time": False,
        "features.oscillators": False,
        "training.controller.bonus_gain": 2.0,
    }
    config = config_for(base, flat)
    assert config.training.ppo.net_arch == (32, 32)
    assert config.training.ppo.batch_size == base.training.ppo.n_envs * 16  # lowered to the rollout
    assert not config.features.time and not config.features.oscillators
    expected = [name for name in DEFAULT_OBSERVATION_FEATURES if name not in ("session_minute_sin", "rsi_14")]
    assert list(config.observation_features) == expected
    assert config.training.controller.bonus_gain == 2.0
    assert config.seed == base.seed and config.window == base.window


def test_a_trials_overrides_written_as_yaml_run_as_the_same_config(tmp_path: Path) -> None:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    trial = study.ask()
    base = RetrainConfig()
    flat = suggest(trial, DEFAULT_SPACE)
    assert list(flat) == list(DEFAULT_SPACE.parameters)
    path = tmp_path / "trial.yaml"
    path.write_text(yaml.safe_dump(trial_overrides(base, flat)))
    assert load_config(path) == config_for(base, flat)


def test_categorical_choices_are_offered_as_declared() -> None:
    space = SearchSpace(parameters={"training.ppo.n_epochs": Categorical(choices=(2, 3))})
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen = {suggest(study.ask(), space)["training.ppo.n_epochs"] for _ in range(20)}
    assert seen == {2, 3}

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

from controllers.reward import AdaptiveRewardController
from core.spec import HOLD_ACTION
from envs.trading import DualTickerTradingEnv
from envs.trading_config import TradingEnvConfig
from tests.training.support import TINY, random_market
from training.ppo import (
    PPOSettings,
    TrainingConfig,
    decisions_per_session,
    make_training_env,
    new_model,
    parameter_divergence,
    policy_parameters,
    progress_bar_available,
    torch_threads,
)
from training.ppo import _FreshInfoVecEnv as FreshInfoVecEnv

# ---------------------------------------------------------------------------------------------- settings


def test_defaults_match_the_issue() -> None:
    config = TrainingConfig()
    assert (config.cycles, config.steps_per_cycle, config.min_improvement, config.max_divergence) == (
        4,
        12_000,
        0.05,
        0.15,
    )
    assert config.eval_sessions is None
    assert config.progress_bar is True
    ppo = config.ppo
    assert (ppo.n_envs, ppo.n_steps, ppo.batch_size, ppo.n_epochs) == (8, 256, 256, 4)
    assert ppo.net_arch == (64, 64)
    assert ppo.torch_threads == 1


def test_settings_are_frozen_and_strict() -> None:
    with pytest.raises(ValidationError):
        PPOSettings(unknown=1)  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        TrainingConfig().cycles = 2  # type: ignore[misc]
    with pytest.raises(ValidationError, match="exceeds the rollout size"):
        PPOSettings(n_envs=2, n_steps=16, batch_size=64)
    with pytest.raises(ValidationError, match="net_arch"):
        PPOSettings(net_arch=(64, 0))


def test_every_field_is_described() -> None:
    for model in (PPOSettings, TrainingConfig):
        for name, field in model.model_fields.items():
            assert field.description, f"{model.__name__}.{name} has no description"


def test_config_round_trips_through_json() -> None:
    config = TrainingConfig(eval_sessions=3, ppo=PPOSettings(net_arch=(32, 16)))
    assert TrainingConfig.model_validate(config.model_dump(mode="json")) == config


# ------------------------------------------------------------------------------------------- divergence


def test_parameter_divergence_on_hand_tensors() -> None:
    exact = torch.float64
    baseline = {
        "weight": torch.tensor([[3.0, 0.0], [0.0, 4.0]], dtype=exact),
        "bias": torch.zeros(2, dtype=exact),
    }
    current = {
        "weight": torch.tensor([[3.0, 0.0], [0.0, 4.0]], dtype=exact),
        "bias": torch.tensor([0.3, -0.4], dtype=exact),
    }
    # ||current - baseline|| = 0.5, ||baseline|| = 5
    assert parameter_divergence(current, baseline) == pytest.approx(0.1, rel=1e-12)
    assert parameter_divergence(baseline, baseline) == 0.0
    moved = {"weight": torch.zeros(2, 2, dtype=exact), "bias": torch.zeros(2, dtype=exact)}
    assert parameter_divergence(moved, baseline) == pytest.approx(1.0)


def test_parameter_divergence_ignores_integer_buffers() -> None:
    baseline = {"weight": torch.ones(4), "steps": torch.tensor(3)}
    current = {"weight": torch.ones(4) * 1.5, "steps": torch.tensor(7)}
    assert parameter_divergence(current, baseline) == pytest.approx(0.5)


@settings(max_examples=30, deadline=None)
@given(
    scale=st.floats(-3.0, 3.0, allow_nan=False),
    seed=st.integers(0, 2**16),
)
def test_parameter_divergence_of_a_scaled_copy_is_the_scale(scale: float, seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    baseline = {"a": torch.randn(5, 3, generator=generator), "b": torch.randn(7, generator=generator)}
    current = {name: tensor * (1.0 + scale) for name, tensor in baseline.items()}
    assert parameter_divergence(current, baseline) == pytest.approx(abs(scale), rel=1e-5, abs=1e-6)


def test_parameter_divergence_rejects_mismatches() -> None:
    baseline = {"a": torch.ones(3)}
    with pytest.raises(ValueError, match="only in current"):
        parameter_divergence({"a": torch.ones(3), "b": torch.ones(1)}, baseline)
    with pytest.raises(ValueError, match="shape"):
        parameter_divergence({"a": torch.ones(4)}, baseline)
    with pytest.raises(ValueError, match="zero L2 norm"):
        parameter_divergence({"a": torch.ones(3)}, {"a": torch.zeros(3)})


# ---------------------------------------------------------------------------------------- training env


def test_training_env_shares_one_controller_and_seeds_each_rank() -> None:
    market = random_market(6, 20, seed=1)
    controller = AdaptiveRewardController(TINY.controller)
    env = make_training_env(market, config=TINY, seed=11, controller=controller)
    assert isinstance(env, VecNormalize)
    assert env.num_envs == TINY.ppo.n_envs
    assert env.norm_obs
    envs = env.unwrapped.envs  # type: ignore[attr-defined]
    assert all(inner.controller is controller for inner in envs)
    env.reset()
    first = [inner.bar for inner in envs]
    again = make_training_env(market, config=TINY, seed=11, controller=AdaptiveRewardController())
    again.reset()
    assert [inner.bar for inner in again.unwrapped.envs] == first  # type: ignore[attr-defined]
    # rank r is seeded seed + r: the same as a lone env reset with that seed
    for rank, inner in enumerate(envs):
        lone = DualTickerTradingEnv(market, config=TINY.env)
        lone.reset(seed=11 + rank)
        assert lone.bar == inner.bar
    # the envs only read the shared controller's outputs: stepping them changes nothing in it
    state = controller.state_dict()
    env.step_async(np.full(TINY.ppo.n_envs, HOLD_ACTION))
    env.step_wait()
    assert controller.state_dict() == state
    disabled = TINY.model_copy(update={"controller": TINY.controller.model_copy(update={"enabled": False})})
    unshaped = make_training_env(market, config=disabled, seed=11, controller=controller)
    assert all(inner.controller is None for inner in unshaped.unwrapped.envs)  # type: ignore[attr-defined]


def test_fresh_info_vec_env_steps_like_dummy_vec_env() -> None:
    market = random_market(4, 12, seed=2)
    actions = np.random.default_rng(3).integers(0, 9, (100, 3))

    def build(vector_class: type[DummyVecEnv]) -> DummyVecEnv:
        def make() -> DualTickerTradingEnv:
            return DualTickerTradingEnv(market, config=TradingEnvConfig())

        vector = vector_class([make] * 3)
        vector.seed(5)
        return vector

    reference, lean = build(DummyVecEnv), build(FreshInfoVecEnv)
    np.testing.assert_array_equal(reference.reset(), lean.reset())
    dones = 0
    for row in actions:
        expected, got = reference.step(row), lean.step(row)
        for expected_part, got_part in zip(expected[:3], got[:3], strict=True):
            np.testing.assert_array_equal(expected_part, got_part)
        for expected_info, got_info in zip(expected[3], got[3], strict=True):
            assert expected_info.keys() == got_info.keys()
            for key, value in expected_info.items():
                np.testing.assert_array_equal(value, got_info[key])
        dones += int(expected[2].sum())
    assert dones > 0


# ------------------------------------------------------------------------------------------------ misc


def test_torch_threads_restores_the_previous_count() -> None:
    before = torch.get_num_threads()
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


def test_progress_bar_dependencies_import() -> None:
    assert progress_bar_available()


def test_decisions_per_session_counts_usable_sessions() -> None:
    market = random_market(3, 10, seed=1)
    assert decisions_per_session(market) == 9.0


def test_new_model_is_seeded() -> None:
    market = random_market(4, 12, seed=3)
    first = new_model(
        make_training_env(market, config=TINY, seed=1, controller=AdaptiveRewardController()),
        settings=TINY.ppo,
        seed=21,
    )
    second = new_model(
        make_training_env(market, config=TINY, seed=1, controller=AdaptiveRewardController()),
        settings=TINY.ppo,
        seed=21,
    )
    one, two = policy_parameters(first), policy_parameters(second)
    assert all(torch.equal(one[name], two[name]) for name in one)
    assert not math.isclose(
        parameter_divergence(
            policy_parameters(
                new_model(
                    make_training_env(market, config=TINY, seed=1, controller=AdaptiveRewardController()),
                    settings=TINY.ppo,
                    seed=22,
                )
            ),
            one,
        ),
        0.0,
    )

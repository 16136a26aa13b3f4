"""Tests for training/normalization.py: block-wise observation and reward normalization, save and restore."""

from pathlib import Path

import numpy as np
import pytest
from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

from training.normalization import BlockVecNormalize, restore_normalization, save_normalization


def _observations(count: int, size: int, *, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(count, size)) * np.linspace(0.5, 20.0, size) + 3.0).astype(np.float32)


class _ReplayVecEnv(DummyVecEnv):
    """Replays prepared observations, rewards and dones (for comparing normalizers)."""

    def __init__(self, observations: np.ndarray, rewards: np.ndarray, dones: np.ndarray) -> None:
        from gymnasium import spaces

        from core.spec import AgentSpec
        from training.checkpoints import _SpacesOnlyEnv

        size = observations.shape[-1]
        spec = AgentSpec(("feature",) * (size - 2))
        super().__init__([lambda: _SpacesOnlyEnv(spec)] * observations.shape[1])
        self.observation_space = spaces.Box(-np.inf, np.inf, (size,), np.float32)
        self._data = (observations, rewards, dones)
        self._cursor = 0

    def reset(self) -> np.ndarray:
        self._cursor = 0
        return self._data[0][0].copy()

    def step_wait(self):  # type: ignore[no-untyped-def]
        self._cursor += 1
        observations, rewards, dones = (part[self._cursor].copy() for part in self._data)
        return observations, rewards, dones, [{} for _ in range(len(dones))]


def test_block_normalization_equals_per_step_statistics_after_whole_blocks() -> None:
    envs, size, blocks, block = 3, 5, 4, 8
    steps = blocks * block
    observations = _observations((steps + 1) * envs, size, seed=4).reshape(steps + 1, envs, size)
    rewards = np.random.default_rng(5).normal(0.0, 0.01, (steps + 1, envs)).astype(np.float32)
    dones = np.random.default_rng(6).random((steps + 1, envs)) < 0.05
    reference = VecNormalize(_ReplayVecEnv(observations, rewards, dones), gamma=0.9)
    blocked = BlockVecNormalize(_ReplayVecEnv(observations, rewards, dones), block_steps=block, gamma=0.9)
    reference.reset()
    blocked.reset()
    for step in range(steps):
        reference.step(np.zeros(envs, dtype=np.int64))
        _, normalized_rewards, _, _ = blocked.step(np.zeros(envs, dtype=np.int64))
        assert normalized_rewards.dtype == np.float32
        if (step + 1) % block == 0:
            np.testing.assert_allclose(blocked.obs_rms.mean, reference.obs_rms.mean, rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(blocked.obs_rms.var, reference.obs_rms.var, rtol=1e-5)
            assert blocked.obs_rms.count == pytest.approx(reference.obs_rms.count)
            assert blocked.ret_rms.var == pytest.approx(reference.ret_rms.var, rel=1e-6)
            assert blocked.ret_rms.mean == pytest.approx(reference.ret_rms.mean, rel=1e-6, abs=1e-12)
    probe = _observations(4, size, seed=7)
    np.testing.assert_allclose(
        blocked.normalize_obs(probe), reference.normalize_obs(probe), rtol=1e-4, atol=1e-5
    )


def test_block_normalization_flushes_a_partial_block_and_round_trips(tmp_path: Path) -> None:
    envs, size, steps = 2, 4, 5
    observations = _observations((steps + 1) * envs, size, seed=8).reshape(steps + 1, envs, size)
    rewards = np.ones((steps + 1, envs), dtype=np.float32)
    dones = np.zeros((steps + 1, envs), dtype=bool)
    blocked = BlockVecNormalize(_ReplayVecEnv(observations, rewards, dones), block_steps=16)
    blocked.reset()
    count_after_reset = blocked.obs_rms.count
    for _ in range(steps):
        blocked.step(np.zeros(envs, dtype=np.int64))
    assert blocked.obs_rms.count == count_after_reset  # nothing merged yet
    path = save_normalization(blocked, tmp_path / "normalization.npz")
    assert blocked.obs_rms.count == pytest.approx(count_after_reset + steps * envs)
    restored = BlockVecNormalize(_ReplayVecEnv(observations, rewards, dones), block_steps=16)
    restore_normalization(restored, path)
    np.testing.assert_array_equal(restored.obs_rms.mean, blocked.obs_rms.mean)
    np.testing.assert_array_equal(restored.obs_rms.var, blocked.obs_rms.var)
    assert restored.ret_rms.var == blocked.ret_rms.var
    probe = _observations(3, size, seed=9)
    np.testing.assert_array_equal(restored.normalize_obs(probe), blocked.normalize_obs(probe))
    wrong = BlockVecNormalize(
        _ReplayVecEnv(np.zeros((2, 1, size + 1), np.float32), np.zeros((2, 1)), np.zeros((2, 1), bool))
    )
    with pytest.raises(ValueError, match="observation shape"):
        restore_normalization(wrong, path)

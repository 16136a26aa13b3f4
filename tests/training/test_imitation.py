"""Kickstart: a fresh agent clones the signal rule before PPO; warm starts and signal-free markets do not."""

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from controllers.reward import AdaptiveRewardController
from core.spec import HOLD_ACTION
from envs.market_arrays import MarketArrays, market_arrays
from envs.policies import SignalRulePolicy
from market.features import build_features
from market.synthetic import SyntheticMarketConfig, generate_market
from training.checkpoints import load_checkpoint
from training.cycles import BASELINE_DIRECTORY, run_cycle
from training.imitation import ImitationConfig, clone, teacher_rollouts
from training.outcome import CycleResult
from training.ppo import PPOSettings, TrainingConfig, make_training_env, new_model

SEED = 3
COLUMNS = ["log_return_1", "volatility_20", "signal"]
CONFIG = TrainingConfig(
    cycles=1,
    steps_per_cycle=256,
    progress_bar=False,
    ppo=PPOSettings(n_envs=2, n_steps=64, batch_size=64),
    imitation=ImitationConfig(steps=2_000, epochs=30),
)


def _signal_windows(scale: float = 150.0) -> tuple[MarketArrays, MarketArrays]:
    """Bars every 5 minutes with a smooth 'signal' feature (a scaled 20-bar return; often strong at 150)."""
    bars = generate_market(SyntheticMarketConfig(sessions=10), seed=4).bars
    bars = bars.filter(pl.col("ts").dt.minute() % 5 == 0)
    features = build_features(bars).with_columns(
        (pl.col("log_return_20") * scale).clip(-1.0, 1.0).alias("signal")
    )
    market = market_arrays(bars, features, feature_columns=COLUMNS)
    cut = int(np.flatnonzero(market.session_index >= market.session_index[-1] - 1)[0])
    return market.rows(0, cut), market.rows(cut, None)


def _first_cycle(
    windows: tuple[MarketArrays, MarketArrays],
    config: TrainingConfig,
    output_dir: Path,
    *,
    previous: Path | None = None,
) -> CycleResult:
    train, validation = windows
    return run_cycle(
        1,
        train=train,
        selection=validation,
        config=config,
        seed=SEED,
        output_dir=output_dir,
        previous=previous,
        baseline=None,
    )


@pytest.fixture(scope="module")
def windows() -> tuple[MarketArrays, MarketArrays]:
    return _signal_windows()


def test_kickstart_clones_the_rule_from_raw_observations(windows: tuple[MarketArrays, MarketArrays]) -> None:
    train, _ = windows
    teacher = SignalRulePolicy.from_feature_names(train.feature_names)
    seen: list[np.ndarray] = []

    class Recording:
        def predict(self, observations: np.ndarray) -> np.ndarray:
            seen.append(observations)
            return teacher.predict(observations)

    env = make_training_env(
        train, config=CONFIG, seed=SEED, controller=AdaptiveRewardController(CONFIG.controller)
    )
    model = new_model(env, settings=CONFIG.ppo, seed=SEED)
    raw, actions = teacher_rollouts(env, Recording(), CONFIG.imitation.steps)
    np.testing.assert_array_equal(raw, np.concatenate(seen))
    result = clone(model, env, raw, actions, config=CONFIG.imitation, seed=SEED, hold_action=HOLD_ACTION)
    # The teacher sees raw observations: positions in units on the ladder, the signal in [-1, 1].
    assert set(np.unique(raw[:, -2:])) <= {-1.0, 0.0, 1.0}
    assert np.abs(raw[:, list(teacher.signal_columns)]).max() <= 1.0
    assert result.samples == raw.shape[0] == 2_000
    assert 0.0 < result.teacher_trade_share < 1.0
    # Far better than always predicting the teacher's most common action (hold/hold).
    assert result.accuracy > max(0.8, 1.0 - result.teacher_trade_share + 0.15)
    # The policy's greedy action on the teacher's (normalized) states is the teacher's action.
    actions, _ = model.predict(env.normalize_obs(raw), deterministic=True)
    assert np.mean(actions == teacher.predict(raw)) == pytest.approx(result.accuracy)
    env.close()


def test_fresh_cycle_one_starts_from_the_cloned_rule(
    windows: tuple[MarketArrays, MarketArrays], tmp_path: Path
) -> None:
    train, validation = windows
    result = _first_cycle((train, validation), CONFIG, tmp_path)
    assert "kickstarted from the signal rule" in result.warm_start_reason
    assert result.metrics["imitation_accuracy"] > 0.8
    assert result.metrics["imitation_samples"] == 2_000.0
    # The baseline (the divergence reference, cycle 0) is the cloned policy: it trades like the rule.
    baseline = load_checkpoint(tmp_path / BASELINE_DIRECTORY, market=train)
    teacher = SignalRulePolicy.from_feature_names(train.feature_names)
    observations = np.column_stack([train.features, np.zeros((train.features.shape[0], 2), np.float32)])
    agreement = np.mean(baseline.predict(observations) == teacher.predict(observations))
    assert agreement > 0.8

    again = _first_cycle((train, validation), CONFIG, tmp_path / "again")
    assert again.metrics["imitation_accuracy"] == result.metrics["imitation_accuracy"]
    assert again.evaluation == result.evaluation

    # A warm start continues its checkpoint and never imitates.
    warm = _first_cycle((train, validation), CONFIG, tmp_path / "warm", previous=result.checkpoint)
    assert warm.warm_start_reason.startswith("warm start from")
    assert "imitation_accuracy" not in warm.metrics


def test_kickstart_can_be_switched_off(windows: tuple[MarketArrays, MarketArrays], tmp_path: Path) -> None:
    train, validation = windows
    config = CONFIG.model_copy(update={"imitation": ImitationConfig(enabled=False)})
    result = _first_cycle((train, validation), config, tmp_path)
    assert result.warm_start_reason.endswith("no kickstart (training.imitation.enabled is false)")
    assert "imitation_accuracy" not in result.metrics


def test_a_teacher_that_hardly_trades_is_not_cloned(tmp_path: Path) -> None:
    # A weak signal never crosses the rule's entry threshold: cloning it would teach the agent to hold.
    train, validation = _signal_windows(scale=1.0)
    runs = {}
    for name, imitation in (("weak", CONFIG.imitation), ("off", ImitationConfig(enabled=False))):
        config = CONFIG.model_copy(update={"imitation": imitation})
        runs[name] = _first_cycle((train, validation), config, tmp_path / name)
    assert (
        "no kickstart (the signal rule trades on 0.00 steps per session here"
        in runs["weak"].warm_start_reason
    )
    assert "imitation_accuracy" not in runs["weak"].metrics
    # The rollouts are discarded: the run is the one without a kickstart.
    assert runs["weak"].evaluation == runs["off"].evaluation
    weak = load_checkpoint(tmp_path / "weak" / BASELINE_DIRECTORY).model.policy.state_dict()
    off = load_checkpoint(tmp_path / "off" / BASELINE_DIRECTORY).model.policy.state_dict()
    assert all(np.array_equal(weak[name].numpy(), off[name].numpy()) for name in weak)

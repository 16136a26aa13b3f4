"""Tests for training/cycles.py: the cycle loop (training, warm start, determinism, windows, rollback).

Kept whole past 500 lines: it is the one test module of training/cycles.py, and its sections share the
session's tiny run and the weight and metric comparison helpers.
"""

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

import training.cycles as cycles_module
import training.outcome as outcome_module
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
from training.cycles import (
    BASELINE_DIRECTORY,
    check_windows,
    cycle_directory,
    evaluate_checkpoint,
    run_cycle,
    run_cycles,
)
from training.outcome import TIMING_METRICS, CycleResult, TrainingOutcome
from training.ppo import TrainingConfig, parameter_divergence

METRIC_KEYS = {
    "episodes",
    "episode_reward_mean",
    "episode_length_mean",
    "episode_return_pct_mean",
    "hold_rate",
    "trades_per_day",
    "agent_orders_mean",
    "cost_ticket_mean",
    "cost_spread_fee_mean",
    "cost_impact_mean",
    "cost_total_mean",
    "probe_seconds",
    "greedy_trades_per_day",
    "greedy_idle_rate",
    "greedy_hold_action_rate",
    "sampled_trades_per_day",
    "controller_hold_bonus",
    "controller_ticket_cost",
    "controller_target_trades_per_day",
    "controller_setpoint_trades_per_day",
    "controller_target_scale",
    "controller_target_scale_next",
    "controller_slow_adjustment",
    "decisions_per_session",
    *(
        f"controller_health.{name}"
        for name in (
            "rollouts",
            "trades_error",
            "idle_error",
            "selection_trades_error",
            "saturation_share",
            "bonus_drift",
            "cost_drift",
            "oscillation",
            "target_follows_regime",
            "behaviour_follows_target",
            "score",
        )
    ),
    "entropy",
    "explained_variance",
    "approx_kl",
    "clip_fraction",
    "value_loss",
    "policy_gradient_loss",
    "updates",
    "timesteps",
    "num_timesteps",
    "wall_seconds",
    "steps_per_second",
    "divergence",
}
EVALUATION_KEYS = {
    "sessions",
    "steps",
    "mean_reward",
    "mean_return_pct",
    "total_return_pct",
    "hold_rate",
    "idle_rate",
    "trades_per_day",
    "regime_score_mean",
    "cost_total_mean",
    "score",
}
# Undefined on a tiny run (too few rollouts for a correlation, or no episode finished within one rollout).
MAY_BE_NAN = {
    "sampled_trades_per_day",
    "controller_health.target_follows_regime",
    "controller_health.behaviour_follows_target",
}


def test_each_cycle_keeps_its_selection_session_returns(tiny_run: tuple[TrainingOutcome, Path]) -> None:
    """The per-session returns behind the score: what the deflated Sharpe ratio counts as one trial."""
    outcome, _ = tiny_run
    for result in outcome.cycles:
        returns = np.asarray(result.selection_returns)
        assert returns.shape == (int(result.evaluation["sessions"]),)
        assert 100.0 * returns.mean() == pytest.approx(result.evaluation["score"])


def _weights(directory: Path) -> dict[str, torch.Tensor]:
    state = load_checkpoint(directory).model.policy.state_dict()
    return {name: tensor.clone() for name, tensor in state.items()}


def _same_weights(first: dict[str, torch.Tensor], second: dict[str, torch.Tensor]) -> bool:
    return first.keys() == second.keys() and all(torch.equal(first[name], second[name]) for name in first)


def _deterministic(metrics: dict[str, float]) -> dict[str, float]:
    return {key: value for key, value in metrics.items() if key not in TIMING_METRICS}


def _same_floats(first: dict[str, float], second: dict[str, float]) -> bool:
    return first.keys() == second.keys() and all(
        first[key] == second[key] or (math.isnan(first[key]) and math.isnan(second[key])) for key in first
    )


# ------------------------------------------------------------------------------------------------ smoke


def test_tiny_run_trains_checkpoints_and_reports(tiny_run: tuple[TrainingOutcome, Path]) -> None:
    outcome, output = tiny_run
    assert [result.cycle for result in outcome.cycles] == [1, 2]
    assert not outcome.stopped_early
    assert outcome.best_cycle in (1, 2)
    assert outcome.best_checkpoint == cycle_directory(output, outcome.best_cycle)
    best_score = max(result.evaluation["score"] for result in outcome.cycles)
    assert outcome.cycles[outcome.best_cycle - 1].evaluation["score"] == best_score
    first, second = outcome.cycles
    assert first.warm_start_reason == (
        "fresh start: no warm-start checkpoint given; "
        "no kickstart (expected one 'signal' column per ticker in the features, found 0)"
    )
    assert second.warm_start_reason == "continued from cycle 1"
    for result in outcome.cycles:
        assert isinstance(result, CycleResult)
        assert not result.rolled_back
        assert result.checkpoint == cycle_directory(output, result.cycle)
        for name in (MODEL_FILE, NORMALIZATION_FILE, CONTROLLER_FILE, META_FILE):
            assert (result.checkpoint / name).is_file()
        assert set(result.metrics) == METRIC_KEYS
        assert set(result.evaluation) == EVALUATION_KEYS
        for key, value in {**result.metrics, **result.evaluation}.items():
            assert isinstance(value, float), key
            assert math.isfinite(value) or key in MAY_BE_NAN, key
        assert result.metrics["episodes"] > 0
        assert result.metrics["timesteps"] == 512.0
        assert result.metrics["updates"] == 4.0
        assert 0.0 <= result.metrics["hold_rate"] <= 1.0
        assert result.metrics["divergence"] == result.divergence > 0.0
        assert result.evaluation["sessions"] == 3.0
        assert result.trajectory.height == 4  # one row per rollout: 512 steps / (2 envs * 64 steps)
        assert result.trajectory["steps"].is_sorted()
        assert result.learning_curve.height == 4 and result.learning_curve["step"].is_sorted()
    assert second.metrics["num_timesteps"] == 1024.0
    assert second.trajectory["steps"][0] == first.trajectory["steps"][-1] + 128
    assert (output / BASELINE_DIRECTORY / MODEL_FILE).is_file()


def test_evaluate_checkpoint_counts_sessions(
    tiny_run: tuple[TrainingOutcome, Path], windows: tuple[MarketArrays, MarketArrays]
) -> None:
    outcome, output = tiny_run
    _, validation = windows
    everything = evaluate_checkpoint(cycle_directory(output, 2), validation, config=TINY)
    assert everything == outcome.cycles[1].evaluation
    one = evaluate_checkpoint(cycle_directory(output, 2), validation, config=TINY, sessions=1)
    assert one["sessions"] == 1.0
    assert one["steps"] < everything["steps"]
    clamped = evaluate_checkpoint(cycle_directory(output, 2), validation, config=TINY, sessions=50)
    assert clamped == everything


# ------------------------------------------------------------------------------------------ determinism


def test_same_config_and_seed_give_identical_metrics_and_weights(
    tiny_run: tuple[TrainingOutcome, Path],
    windows: tuple[MarketArrays, MarketArrays],
    tmp_path: Path,
) -> None:
    outcome, output = tiny_run
    train, validation = windows
    again = run_cycles(train=train, selection=validation, config=TINY, seed=SEED, output_dir=tmp_path)
    assert len(again.cycles) == len(outcome.cycles)
    for first, second in zip(outcome.cycles, again.cycles, strict=True):
        assert _same_floats(_deterministic(first.metrics), _deterministic(second.metrics))
        assert first.evaluation == second.evaluation
        assert first.divergence == second.divergence
        assert first.trajectory.equals(second.trajectory)
        assert _same_weights(_weights(first.checkpoint), _weights(second.checkpoint))
    other_seed = run_cycle(
        1,
        train=train,
        selection=validation,
        config=TINY,
        seed=SEED + 1,
        output_dir=tmp_path / "other",
        previous=None,
        baseline=None,
    )
    assert not _same_weights(_weights(other_seed.checkpoint), _weights(outcome.cycles[0].checkpoint))


def test_rerunning_a_cycle_from_the_same_checkpoint_redoes_it_exactly(
    windows: tuple[MarketArrays, MarketArrays], tmp_path: Path
) -> None:
    train, validation = windows
    first = run_cycle(
        1,
        train=train,
        selection=validation,
        config=TINY,
        seed=SEED,
        output_dir=tmp_path,
        previous=None,
        baseline=None,
    )
    runs = []
    for _ in range(2):
        result = run_cycle(
            2,
            train=train,
            selection=validation,
            config=TINY,
            seed=SEED,
            output_dir=tmp_path,
            previous=first.checkpoint,
            baseline=tmp_path / BASELINE_DIRECTORY,
        )
        runs.append((result, _weights(result.checkpoint)))
    (one, one_weights), (two, two_weights) = runs
    assert one.checkpoint == two.checkpoint == cycle_directory(tmp_path, 2)
    assert _same_floats(_deterministic(one.metrics), _deterministic(two.metrics))
    assert one.evaluation == two.evaluation
    assert _same_weights(one_weights, two_weights)
    assert sorted(path.name for path in tmp_path.iterdir()) == [BASELINE_DIRECTORY, "cycle-1", "cycle-2"]


# ------------------------------------------------------------------------------------------- warm start


def test_compatible_checkpoint_warm_starts_with_its_weights(
    tiny_run: tuple[TrainingOutcome, Path], windows: tuple[MarketArrays, MarketArrays], tmp_path: Path
) -> None:
    _, output = tiny_run
    train, validation = windows
    champion = cycle_directory(output, 2)
    assert (
        check_warm_start(
            champion,
            observation_size=train.features.shape[1] + 2,
            action_count=9,
            feature_names=train.feature_names,
        )
        is None
    )
    config = TINY.model_copy(update={"progress_bar": True})
    result = run_cycle(
        1,
        train=train,
        selection=validation,
        config=config,
        seed=SEED + 5,
        output_dir=tmp_path,
        previous=champion,
        baseline=None,
    )
    assert result.warm_start_reason == f"warm start from {champion}"
    baseline = tmp_path / BASELINE_DIRECTORY
    assert _same_weights(_weights(baseline), _weights(champion))
    champion_policy, baseline_policy = load_checkpoint(champion), load_checkpoint(baseline)
    assert baseline_policy.controller_state == champion_policy.controller_state
    np.testing.assert_array_equal(
        baseline_policy.normalization.obs_rms.mean, champion_policy.normalization.obs_rms.mean
    )
    assert baseline_policy.meta["num_timesteps"] == champion_policy.meta["num_timesteps"] == 1024
    assert result.metrics["num_timesteps"] == 1024 + 512
    divergence = parameter_divergence(_weights(result.checkpoint), _weights(champion))
    assert divergence == pytest.approx(result.divergence, rel=1e-12)


def test_a_different_network_architecture_starts_fresh(
    tiny_run: tuple[TrainingOutcome, Path], windows: tuple[MarketArrays, MarketArrays], tmp_path: Path
) -> None:
    _, output = tiny_run
    train, validation = windows
    wider = TINY.model_copy(update={"ppo": TINY.ppo.model_copy(update={"net_arch": (32,)})})
    result = run_cycle(
        1,
        train=train,
        selection=validation,
        config=wider,
        seed=SEED,
        output_dir=tmp_path,
        previous=cycle_directory(output, 2),
        baseline=None,
    )
    assert result.warm_start_reason.startswith("fresh start: network architecture [64, 64] differs")


def test_later_cycles_refuse_an_unusable_previous_checkpoint(
    windows: tuple[MarketArrays, MarketArrays], tmp_path: Path
) -> None:
    train, validation = windows

    def attempt(cycle: int, previous: Path | None, baseline: Path | None) -> None:
        run_cycle(
            cycle,
            train=train,
            selection=validation,
            config=TINY,
            seed=SEED,
            output_dir=tmp_path,
            previous=previous,
            baseline=baseline,
        )

    with pytest.raises(ValueError, match="cannot continue"):
        attempt(2, tmp_path / "missing", tmp_path / "baseline")
    with pytest.raises(ValueError, match="needs the previous checkpoint and the baseline"):
        attempt(2, None, None)
    with pytest.raises(ValueError, match="writes its own baseline"):
        attempt(1, None, tmp_path)
    with pytest.raises(ValueError, match="cycle must be"):
        attempt(0, None, None)


# ------------------------------------------------------------------------------------ windows, rollback


def test_overlapping_or_mismatched_windows_raise(
    windows: tuple[MarketArrays, MarketArrays], tmp_path: Path
) -> None:
    train, validation = windows
    check_windows(train, validation)
    with pytest.raises(ValueError, match="must end before the selection window"):
        check_windows(validation, train)
    with pytest.raises(ValueError, match="must end before the selection window"):
        check_windows(train, train)
    fewer_train, fewer_validation = synthetic_windows(columns=feature_names()[:-1])
    with pytest.raises(ValueError, match="feature lists differ"):
        check_windows(train, fewer_validation)
    with pytest.raises(ValueError, match="must end before the selection window"):
        run_cycles(train=train, selection=train, config=TINY, seed=SEED, output_dir=tmp_path / "a")
    with pytest.raises(ValueError, match="must end before the selection window"):
        run_cycle(
            1,
            train=validation,
            selection=train,
            config=TINY,
            seed=SEED,
            output_dir=tmp_path / "b",
            previous=None,
            baseline=None,
        )
    assert not (tmp_path / "a").exists()
    assert not (tmp_path / "b").exists()


def test_a_tiny_divergence_limit_rolls_cycle_one_back_to_the_baseline(
    windows: tuple[MarketArrays, MarketArrays], tmp_path: Path
) -> None:
    train, validation = windows
    strict = TINY.model_copy(update={"max_divergence": 1e-9, "cycles": 3})
    outcome = run_cycles(train=train, selection=validation, config=strict, seed=SEED, output_dir=tmp_path)
    assert len(outcome.cycles) == 1
    result = outcome.cycles[0]
    assert result.rolled_back
    assert result.divergence > 1e-9
    assert result.checkpoint == tmp_path / BASELINE_DIRECTORY
    assert not cycle_directory(tmp_path, 1).exists()
    record = json.loads((tmp_path / "cycle-1-rollback.json").read_text())
    assert record["divergence"] == result.divergence
    assert record["kept_checkpoint"] == str(tmp_path / BASELINE_DIRECTORY)
    assert outcome.stopped_early
    assert outcome.best_cycle == 0
    assert outcome.best_checkpoint == tmp_path / BASELINE_DIRECTORY
    assert "rolled back" in outcome.reason
    assert result.evaluation == evaluate_checkpoint(tmp_path / BASELINE_DIRECTORY, validation, config=strict)


def test_a_rolled_back_later_cycle_keeps_the_previous_checkpoint(
    tiny_run: tuple[TrainingOutcome, Path], windows: tuple[MarketArrays, MarketArrays]
) -> None:
    outcome, output = tiny_run
    train, validation = windows
    previous = cycle_directory(output, 1)
    before = _weights(previous)
    strict = TINY.model_copy(update={"max_divergence": 1e-9})
    # a separate output folder holding a copy of the baseline, so the shared fixture's files stay untouched
    folder = output.parent / "rollback-later"
    folder.mkdir(exist_ok=True)
    result = run_cycle(
        2,
        train=train,
        selection=validation,
        config=strict,
        seed=SEED,
        output_dir=folder,
        previous=previous,
        baseline=output / BASELINE_DIRECTORY,
    )
    assert result.rolled_back
    assert result.checkpoint == previous
    assert result.divergence == pytest.approx(outcome.cycles[1].divergence)
    assert not cycle_directory(folder, 2).exists()
    assert json.loads((folder / "cycle-2-rollback.json").read_text())["kept_checkpoint"] == str(previous)
    assert _same_weights(before, _weights(previous))


# -------------------------------------------------------------------------------------------- early stop


def test_run_cycles_stops_early_on_a_fake_evaluation_sequence(
    windows: tuple[MarketArrays, MarketArrays], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    train, validation = windows
    scores = iter([1.0, 1.2, 1.21, 5.0])

    def fake_evaluation(*args: object, **kwargs: object) -> tuple[dict[str, float], np.ndarray]:
        behaviour = {"sessions": 3.0, "steps": 90.0, "trades_per_day": 18.0, "idle_rate": 0.8, "hold_rate": 0.5}
        return {"score": next(scores), "regime_score_mean": 0.0, **behaviour}, np.zeros(3)

    monkeypatch.setattr(cycles_module, "evaluate_sessions", fake_evaluation)
    seen: list[int] = []
    config = TINY.model_copy(update={"cycles": 4, "steps_per_cycle": 128})
    outcome = run_cycles(
        train=train,
        selection=validation,
        config=config,
        seed=SEED,
        output_dir=tmp_path,
        on_cycle=lambda result: seen.append(result.cycle),
    )
    assert seen == [1, 2, 3]
    assert outcome.stopped_early
    assert outcome.best_cycle == 3
    assert outcome.best_checkpoint == cycle_directory(tmp_path, 3)
    assert "less than 5%" in outcome.reason
    assert [result.evaluation["score"] for result in outcome.cycles] == [1.0, 1.2, 1.21]


# ------------------------------------------------------------------------------------------------- slow


@pytest.mark.slow
def test_full_default_run_on_twenty_sessions(tmp_path: Path) -> None:
    train, validation = synthetic_windows(sessions=20, minute_step=1, validation_sessions=4)
    config = TrainingConfig(progress_bar=False)
    outcome = run_cycles(train=train, selection=validation, config=config, seed=SEED, output_dir=tmp_path)
    assert 1 <= len(outcome.cycles) <= 4
    assert outcome.stopped_early == (len(outcome.cycles) < 4)
    for result in outcome.cycles:
        assert result.metrics["timesteps"] == 12_288.0
        assert result.metrics["episodes"] > 0
        assert all(math.isfinite(value) for key, value in result.metrics.items() if key not in MAY_BE_NAN)
        assert all(math.isfinite(value) for value in result.evaluation.values())
    best = outcome_module.best_cycle(outcome.cycles, trades_band=config.selection_trades_band)
    if best is not None:
        assert outcome.best_checkpoint == best.checkpoint
    load_checkpoint(outcome.best_checkpoint, market=validation)


def test_the_outer_loop_rescales_the_setpoint_and_the_rewritten_checkpoint_verifies(
    tiny_run: tuple[TrainingOutcome, Path],
) -> None:
    outcome, _ = tiny_run
    for result in outcome.cycles:
        policy = load_checkpoint(result.checkpoint)  # verifies every file against its SHA-256
        state = policy.controller_state
        assert state["cycle"] == result.cycle
        assert state["rollouts"] == 4 * result.cycle
        trades = result.evaluation["trades_per_day"]
        scale = result.metrics["controller_target_scale_next"]
        assert state["target_scale"] == scale
        if trades < 10.0:  # below the lowest target: the outer loop steers the rollouts to trade more
            assert scale > result.metrics["controller_target_scale"]
        elif trades > 20.0:
            assert scale < result.metrics["controller_target_scale"]

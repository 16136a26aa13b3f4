import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest

from core.errors import IntegrityError, ReplayMismatch
from envs.market_arrays import MarketArrays
from envs.trading_config import TradingEnvConfig
from stairways.registry import CHAMPION_ALIAS
from stairways.replay import check_replay, load_episodes, replay_in_subprocess, replay_pnl, save_episodes
from tests.stairways.registry_support import (
    TINY,
    Checkpoints,
    Tracking,
    local_path,
    new_tracking,
    promote,
    register,
)
from training.checkpoints import load_checkpoint
from training.evaluation import evaluate_policy

CAPITAL = TINY.env.initial_capital


def sessions(market: MarketArrays) -> list[MarketArrays]:
    """One market per session of ``market``."""
    boundaries = np.flatnonzero(np.diff(market.session_index)) + 1
    parts = np.split(np.arange(market.bars), boundaries)
    return [
        dataclasses.replace(
            market,
            **{
                name: np.ascontiguousarray(getattr(market, name)[rows])
                for name in (
                    "features",
                    "open",
                    "close",
                    "volume",
                    "session_index",
                    "timestamps",
                    "regime_score",
                )
            },
        )
        for rows in parts
    ]


@pytest.fixture(scope="module")
def champion(checkpoints: Checkpoints, tmp_path_factory: pytest.TempPathFactory) -> Tracking:
    root = tmp_path_factory.mktemp("registry")
    tracking = new_tracking(f"sqlite:///{root / 'mlflow.db'}", root)
    candidate = register(tracking, checkpoints)
    promote(
        tracking_uri=tracking.uri, model_name=tracking.model_name, version=candidate.version, reason="test"
    )
    return tracking


@pytest.fixture(scope="module")
def episodes(checkpoints: Checkpoints) -> list[MarketArrays]:
    return sessions(checkpoints.validation)


def champion_uri(tracking: Tracking) -> str:
    return f"models:/{tracking.model_name}@{CHAMPION_ALIAS}"


# ----------------------------------------------------------------------------------------------- files


def test_episodes_round_trip_through_a_pickle_free_file(episodes: list[MarketArrays], tmp_path: Path) -> None:
    path = save_episodes(episodes, tmp_path / "nested" / "episodes.npz")
    loaded = load_episodes(path)  # np.load(allow_pickle=False) inside: an object array would raise
    assert len(loaded) == len(episodes) == 3
    for original, again in zip(episodes, loaded, strict=True):
        assert again.feature_names == original.feature_names
        assert again.symbols == original.symbols
        for field in ("features", "open", "close", "volume", "session_index", "timestamps", "regime_score"):
            np.testing.assert_array_equal(getattr(again, field), getattr(original, field))
            assert getattr(again, field).dtype == getattr(original, field).dtype


def test_load_episodes_rejects_other_files(tmp_path: Path) -> None:
    np.savez(tmp_path / "other.npz", numbers=np.arange(3))
    with pytest.raises(ValueError, match="not a readable episode file"):
        load_episodes(tmp_path / "other.npz")
    np.savez(tmp_path / "future.npz", format_version=np.asarray(99), count=np.asarray(0))
    with pytest.raises(ValueError, match="format 99"):
        load_episodes(tmp_path / "future.npz")


# ---------------------------------------------------------------------------------------------- replay


def test_replayed_pnl_agrees_with_the_checkpoint_evaluation(
    champion: Tracking, checkpoints: Checkpoints, episodes: list[MarketArrays]
) -> None:
    pnl = replay_pnl(champion_uri(champion), episodes, env_config=TINY.env, tracking_uri=champion.uri)
    assert len(pnl) == 3
    assert all(math.isfinite(value) for value in pnl)
    assert any(value != 0.0 for value in pnl)  # the policy trades: costs alone make a nonzero PnL
    policy = load_checkpoint(checkpoints.trained)
    evaluation = evaluate_policy(policy, checkpoints.validation, config=TINY)
    assert evaluation["sessions"] == 3.0
    assert 100.0 * float(np.mean(pnl)) / CAPITAL == pytest.approx(evaluation["mean_return_pct"], rel=1e-9)
    reversed_order = replay_pnl(
        champion_uri(champion), episodes[::-1], env_config=TINY.env, tracking_uri=champion.uri
    )
    assert reversed_order == pnl[::-1]


def test_replay_refuses_multi_session_episodes(champion: Tracking, checkpoints: Checkpoints) -> None:
    with pytest.raises(ValueError, match="spans 3 sessions"):
        replay_pnl(
            champion_uri(champion), [checkpoints.validation], env_config=TINY.env, tracking_uri=champion.uri
        )


def test_a_fresh_process_replays_the_same_pnl(
    champion: Tracking, episodes: list[MarketArrays], tmp_path: Path
) -> None:
    in_process = replay_pnl(champion_uri(champion), episodes, env_config=TINY.env, tracking_uri=champion.uri)
    file = save_episodes(episodes, tmp_path / "episodes.npz")
    fresh = replay_in_subprocess(champion_uri(champion), file, env_config=TINY.env, tracking_uri=champion.uri)
    assert fresh == in_process
    check_replay(in_process, fresh, capital=CAPITAL)
    costly = TINY.env.model_copy(
        update={"execution": TINY.env.execution.model_copy(update={"ticket_cost": 50.0})}
    )
    with pytest.raises(ReplayMismatch, match="did not reproduce the logged PnL"):
        check_replay(
            in_process,
            replay_pnl(champion_uri(champion), episodes, env_config=costly, tracking_uri=champion.uri),
            capital=CAPITAL,
        )


@pytest.mark.slow  # two fresh processes, each imports torch, SB3 and MLflow
def test_the_fresh_process_reports_failures_as_project_errors(
    checkpoints: Checkpoints, episodes: list[MarketArrays], tmp_path: Path
) -> None:
    tracking = new_tracking(f"sqlite:///{tmp_path / 'mlflow.db'}", tmp_path)
    candidate = register(tracking, checkpoints)
    promote(
        tracking_uri=tracking.uri, model_name=tracking.model_name, version=candidate.version, reason="test"
    )
    file = save_episodes(episodes, tmp_path / "episodes.npz")
    with pytest.raises(ReplayMismatch, match="has no alias 'nonexistent'"):
        replay_in_subprocess(
            f"models:/{tracking.model_name}@nonexistent", file, env_config=TINY.env, tracking_uri=tracking.uri
        )
    stored = local_path(candidate.checkpoint_uri) / "vecnormalize.npz"
    stored.write_bytes(stored.read_bytes()[::-1])
    with pytest.raises(IntegrityError, match="vecnormalize.npz"):
        replay_in_subprocess(champion_uri(tracking), file, env_config=TINY.env, tracking_uri=tracking.uri)


# ----------------------------------------------------------------------------------------- check_replay


def test_check_replay_tolerance_is_relative_with_an_absolute_floor() -> None:
    capital = 100_000.0  # floor: 1e-6 of capital = 0.10 dollars
    check_replay([1000.0, -500.0, 0.0], [1000.99, -500.49, 0.09], capital=capital)
    with pytest.raises(ReplayMismatch, match="episode 0: logged 1000.000000, replayed 1001.010000"):
        check_replay([1000.0, -500.0, 0.0], [1001.01, -500.0, 0.0], capital=capital)
    with pytest.raises(ReplayMismatch, match="episode 1"):
        check_replay([1000.0, -500.0, 0.0], [1000.0, -500.51, 0.0], capital=capital)
    with pytest.raises(ReplayMismatch, match="episode 2: .* allowed 0.1\\)"):
        check_replay([1000.0, -500.0, 0.0], [1000.0, -500.0, 0.11], capital=capital)
    check_replay([0.0], [0.5], capital=capital, capital_tolerance=1e-5)
    check_replay([1000.0], [1000.0], capital=capital, tolerance=0.0)
    with pytest.raises(ReplayMismatch, match="1 of 1"):
        check_replay([1000.0], [1000.2], capital=capital, tolerance=0.0)


def test_check_replay_counts_and_non_finite_values() -> None:
    with pytest.raises(ReplayMismatch, match="replayed 1 episodes, but 2"):
        check_replay([1.0, 2.0], [1.0], capital=1000.0)
    with pytest.raises(ReplayMismatch, match="episode 0"):
        check_replay([1.0], [math.nan], capital=1000.0)
    with pytest.raises(ReplayMismatch, match="episode 0"):
        check_replay([math.inf], [math.inf], capital=1000.0)
    with pytest.raises(ValueError, match="capital must be > 0"):
        check_replay([1.0], [1.0], capital=0.0)


def test_replay_needs_episodes(champion: Tracking) -> None:
    with pytest.raises(ValueError, match="no episodes"):
        replay_pnl(champion_uri(champion), [], env_config=TradingEnvConfig(), tracking_uri=champion.uri)

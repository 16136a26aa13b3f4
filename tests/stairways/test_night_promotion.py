"""stairways/night_promotion.py: the night's safety policy, gate -> replay from the registry -> locked move."""

from pathlib import Path

import pytest

from core.errors import ReplayMismatch
from envs.trading_config import TradingEnvConfig
from stairways.night_promotion import promote_night
from stairways.promotion import promote_verified
from tests.stairways.registry_support import NAME, add_versions, aliases, state

ENV = TradingEnvConfig()
LOGGED = [120.0, -35.5]


class FakeReplay:
    """Stands for the fresh-process replay: returns fixed PnL and records what it was asked."""

    def __init__(self, pnl: list[float]) -> None:
        self.pnl = pnl
        self.calls: list[tuple[str, Path]] = []

    def __call__(
        self, model_uri: str, episodes_file: Path, *, env_config: TradingEnvConfig, tracking_uri: str
    ) -> list[float]:
        self.calls.append((model_uri, episodes_file))
        return list(self.pnl)


def night(store: str, version: str, replay: FakeReplay, *, passed: bool = True, expected: str | None = None):  # type: ignore[no-untyped-def]
    return promote_night(
        tracking_uri=store,
        model_name=NAME,
        version=version,
        gate_passed=passed,
        gate_reason="beat the champion",
        expected_pnl=LOGGED,
        episodes_file=Path("episodes.npz"),
        env_config=ENV,
        expected_champion=expected,
        lock=None,
        run_replay=replay,
    )


def test_a_rejected_candidate_is_never_replayed_and_moves_nothing(store: str) -> None:
    add_versions(store, 1, verdict="failed")
    replay = FakeReplay(LOGGED)
    outcome = night(store, "1", replay, passed=False)
    assert replay.calls == []
    assert (outcome.promoted, outcome.state, outcome.champion) == (False, "rejected", None)
    assert outcome.reason == "gate rejected version 1: beat the champion"
    assert aliases(store) == {"champion": None, "previous-champion": None}


def test_a_matching_replay_of_the_version_promotes_it(store: str) -> None:
    add_versions(store, 1)
    replay = FakeReplay([value * 1.0004 for value in LOGGED])  # inside the 0.1% tolerance
    outcome = night(store, "1", replay)
    assert replay.calls == [(f"models:/{NAME}/1", Path("episodes.npz"))]
    assert (outcome.promoted, outcome.state, outcome.champion) == (True, "promoted", "1")
    assert outcome.replayed == tuple(replay.pnl)
    assert aliases(store) == {"champion": "1", "previous-champion": None}


def test_a_replay_that_differs_raises_before_any_alias_moves(store: str) -> None:
    add_versions(store, 1)
    with pytest.raises(ReplayMismatch, match="did not reproduce the logged PnL in 1 of 2"):
        night(store, "1", FakeReplay([120.0, -20.0]))
    assert aliases(store) == {"champion": None, "previous-champion": None}
    assert state(store, "1") == "replay_failed"


def test_a_champion_moved_since_the_comparison_supersedes_the_night(store: str) -> None:
    add_versions(store, 2)
    promote_verified(
        tracking_uri=store,
        model_name=NAME,
        version="1",
        expected_champion=None,
        reason="earlier night",
        replay=lambda uri: ([0.0], None),
    )
    outcome = night(store, "2", FakeReplay(LOGGED), expected=None)
    assert (outcome.promoted, outcome.state, outcome.champion) == (False, "superseded", "1")
    assert "the champion moved" in outcome.reason
    assert aliases(store) == {"champion": "1", "previous-champion": None}

"""What a night does to the registry after the gate: the safety policy, Prefect-free.

A candidate whose gate failed never moves an alias. A passing one is first replayed from the registry *as a
version* in a fresh process (``run_replay``, :func:`stairways.replay.replay_in_subprocess` in production),
which must reproduce the test-window PnL the assessment logged (:func:`stairways.replay.check_replay`);
only then does :func:`stairways.promotion.promote_verified` move the aliases, under the promotion lock and
only if the champion is still the one this night compared against. A mismatch raises
:class:`~core.errors.ReplayMismatch` before any alias moved: there is nothing to revert.

The Prefect task (``tasks/registry.py``) only saves the replay episodes, calls :func:`promote_night` and
records the outcome.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

from core.errors import ReplayMismatch
from envs.trading_config import TradingEnvConfig
from stairways import promotion, registry
from stairways.replay import check_replay

__all__ = ["Promotion", "ReplayRunner", "promote_night"]


class ReplayRunner(Protocol):
    """Replays ``model_uri`` on the saved episodes in a fresh process and returns each episode's PnL."""

    def __call__(
        self, model_uri: str, episodes_file: Path, *, env_config: TradingEnvConfig, tracking_uri: str
    ) -> list[float]: ...


@dataclass(frozen=True)
class Promotion:
    """What the night did to the registry, and why."""

    promoted: bool
    champion: str | None
    """The champion version after the night (None: there is none)."""
    reason: str
    state: Literal["rejected", "superseded", "promoted"]
    """``rejected``: the gate failed, nothing was replayed; ``superseded``: the replay matched but the champion
    had moved since this night compared against it; ``promoted``: the version is champion."""
    replayed: tuple[float, ...] = ()
    """The replayed PnL per episode (empty when nothing was replayed)."""


def promote_night(
    *,
    tracking_uri: str,
    model_name: str,
    version: str,
    gate_passed: bool,
    gate_reason: str,
    expected_pnl: Sequence[float],
    episodes_file: Path,
    env_config: TradingEnvConfig,
    expected_champion: str | None,
    lock: str | None,
    run_replay: ReplayRunner,
) -> Promotion:
    """Replay ``version`` from the registry and make it champion only on a match (see the module docstring).

    Raises ``ReplayMismatch`` when the replay does not reproduce ``expected_pnl`` (no alias moved) and
    ``RegistryError`` when the version or the lock cannot be had.
    """
    if not gate_passed:
        champion = registry.current_champion(tracking_uri=tracking_uri, model_name=model_name)
        return Promotion(False, champion, f"gate rejected version {version}: {gate_reason}", "rejected")

    def replay(model_uri: str) -> tuple[list[float], str | None]:
        replayed = run_replay(model_uri, episodes_file, env_config=env_config, tracking_uri=tracking_uri)
        try:
            check_replay(expected_pnl, replayed, capital=env_config.initial_capital)
        except ReplayMismatch as error:
            return replayed, str(error)
        return replayed, None

    outcome = promotion.promote_verified(
        tracking_uri=tracking_uri,
        model_name=model_name,
        version=version,
        expected_champion=expected_champion,
        reason=gate_reason,
        replay=replay,
        lock=lock,
    )
    if not outcome.promoted:
        return Promotion(False, outcome.champion, outcome.reason, "superseded", outcome.replayed)
    return Promotion(True, outcome.champion, gate_reason, "promoted", outcome.replayed)

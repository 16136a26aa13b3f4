"""Markets and settings shared by the training tests (and the registry tests that train a tiny agent)."""

import numpy as np
import polars as pl

from envs.market_arrays import MarketArrays, market_arrays
from market.feature_config import feature_names
from market.features import build_features
from market.synthetic import SyntheticMarketConfig, generate_market
from training.ppo import PPOSettings, TrainingConfig

__all__ = ["SEED", "START", "TINY", "TINY_CYCLES", "random_market", "synthetic_windows"]

START = np.datetime64("2024-01-02T14:30", "ns")


def random_market(sessions: int, bars_per_session: int, *, seed: int, features: int = 3) -> MarketArrays:
    rng = np.random.default_rng(seed)
    bars = sessions * bars_per_session
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 1e-3, (bars, 2)), axis=0))
    open_ = close * np.exp(rng.normal(0.0, 5e-4, (bars, 2)))
    session_index = np.repeat(np.arange(sessions, dtype=np.int64), bars_per_session)
    offsets = np.tile(np.arange(bars_per_session), sessions) * np.timedelta64(60, "s")
    return MarketArrays(
        features=(rng.normal(size=(bars, 2 * features)) * np.linspace(0.1, 50.0, 2 * features)).astype(
            np.float32
        ),
        feature_names=tuple(
            f"{symbol}:feature_{index}" for symbol in ("A", "B") for index in range(features)
        ),
        open=open_,
        close=close,
        volume=rng.lognormal(11.0, 0.5, (bars, 2)),
        session_index=session_index,
        timestamps=START + session_index * np.timedelta64(1, "D") + offsets,
        regime_score=np.clip(rng.normal(0.0, 0.5, bars), -1.0, 1.0).astype(np.float32),
        symbols=("A", "B"),
    )


TINY = TrainingConfig(
    cycles=1,
    steps_per_cycle=256,
    progress_bar=False,
    ppo=PPOSettings(n_envs=2, n_steps=32, batch_size=32),
)

SEED = 7
TINY_CYCLES = TrainingConfig(
    cycles=2,
    steps_per_cycle=512,
    progress_bar=False,
    ppo=PPOSettings(n_envs=2, n_steps=64, batch_size=64),
    selection_trades_band=None,  # the band's rules have their own tests (tests/training/test_outcome.py)
)
"""The cycle tests' run: two cycles of 512 steps (the ``tiny_run`` fixture of ``conftest.py``)."""


def synthetic_windows(
    *,
    sessions: int = 12,
    minute_step: int = 10,
    columns: list[str] | None = None,
    validation_sessions: int = 3,
) -> tuple[MarketArrays, MarketArrays]:
    """Synthetic one-minute bars sampled every ``minute_step`` minutes (short sessions keep tests fast)."""
    bars = generate_market(SyntheticMarketConfig(sessions=sessions), seed=1).bars
    if minute_step > 1:
        bars = bars.filter(pl.col("ts").dt.minute() % minute_step == 0)
    market = market_arrays(bars, build_features(bars), feature_columns=columns or feature_names())
    last = int(market.session_index[-1])
    cut = int(np.flatnonzero(market.session_index > last - validation_sessions)[0])
    return market.rows(0, cut), market.rows(cut, None)

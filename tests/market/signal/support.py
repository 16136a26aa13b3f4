"""Constants and helpers shared by the market/signal/ tests: synthetic markets, windows, signal runs."""

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Literal

import numpy as np
import polars as pl

from market.feature_config import feature_names
from market.features import build_features
from market.labeling import label_bars
from market.signal import SignalConfig, SignalResult, SymbolTrainingPlan, causal_signal, training_plan
from market.synthetic import SyntheticMarketConfig, generate_market

PRIMARY_HORIZON = 20
FEATURES = feature_names()
SYMBOLS = ("MSFT", "NVDA")
# The 24 martingale sessions run 2025-01-02 .. 2025-02-06. Sessions 0, 5, 10, 15, 20 start on 01-02 (first
# feature bar 15:29 after the warm-up), 01-10, 01-17, 01-27 and 02-03. The selection window starts at a
# session open that is no session refit, the test window between two bars (it takes effect at 17:04).
SELECTION_START = datetime(2025, 1, 22, 14, 30, tzinfo=UTC)
TEST_START = datetime(2025, 1, 30, 17, 3, 30, tzinfo=UTC)
WINDOWS = {"selection": SELECTION_START, "test": TEST_START}
EXPECTED_BLOCK_STARTS = [
    datetime(2025, 1, 2, 15, 29, tzinfo=UTC),
    datetime(2025, 1, 10, 14, 30, tzinfo=UTC),
    datetime(2025, 1, 17, 14, 30, tzinfo=UTC),
    SELECTION_START,
    datetime(2025, 1, 27, 14, 30, tzinfo=UTC),
    datetime(2025, 1, 30, 17, 4, tzinfo=UTC),
    datetime(2025, 2, 3, 14, 30, tzinfo=UTC),
]


def synthetic_bars(
    mode: Literal["martingale", "planted"], *, sessions: int, strength: float = 0.1, seed: int = 0
) -> pl.DataFrame:
    config = SyntheticMarketConfig(sessions=sessions, mode=mode, planted_strength=strength)
    return generate_market(config, seed=seed).bars


def synthetic_market(
    mode: Literal["martingale", "planted"], *, sessions: int, strength: float = 0.1, seed: int = 0
) -> tuple[pl.DataFrame, pl.DataFrame]:
    bars = synthetic_bars(mode, sessions=sessions, strength=strength, seed=seed)
    return build_features(bars), label_bars(bars)


def run_signal(
    features: pl.DataFrame,
    labels: pl.DataFrame,
    *,
    window_starts: Mapping[str, datetime] = WINDOWS,
    seed: int = 5,
    config: SignalConfig = SignalConfig(),
    feature_columns: Sequence[str] = FEATURES,
    primary_horizon: int = PRIMARY_HORIZON,
) -> SignalResult:
    return causal_signal(
        features,
        labels,
        feature_columns=feature_columns,
        config=config,
        primary_horizon=primary_horizon,
        window_starts=window_starts,
        seed=seed,
    )


def run_plan(
    features: pl.DataFrame, labels: pl.DataFrame, *, config: SignalConfig = SignalConfig()
) -> dict[str, SymbolTrainingPlan]:
    return training_plan(
        features,
        labels,
        feature_columns=FEATURES,
        config=config,
        primary_horizon=PRIMARY_HORIZON,
        window_starts=WINDOWS,
    )


def ns_ticks(values: pl.Series | Sequence[datetime]) -> np.ndarray:
    series = values if isinstance(values, pl.Series) else pl.Series(list(values))
    return series.dt.convert_time_zone("UTC").dt.cast_time_unit("ns").to_physical().to_numpy()


def symbol_samples(features: pl.DataFrame, labels: pl.DataFrame, symbol: str) -> pl.DataFrame:
    """One symbol's samples, derived independently: feature bars with a resolved primary label."""
    primary = labels.filter((pl.col("symbol") == symbol) & (pl.col("horizon") == PRIMARY_HORIZON))
    return (
        features.filter(pl.col("symbol") == symbol)
        .select("ts")
        .join(primary.select(pl.col("event_ts").alias("ts"), "t1", "label"), on="ts", how="inner")
        .filter(pl.col("t1").is_not_null())
        .sort("ts")
    )

"""The feature switchboard: which feature sets the two-ticker agent sees, their windows, names and warm-up.

:class:`FeatureConfig` toggles the sets of :data:`FEATURE_SETS` (for ablation) and sets their window lengths;
:func:`feature_names` lists the feature columns :func:`market.features.build_features` returns for it, in
their stable order, and :func:`warmup_bars` the leading bars per symbol it drops. What each feature is, and
how it is computed, is described in :mod:`market.feature_expressions`.

Warm-up: every feature is null until its windows are full. Rolling windows of ``n`` bars are full at the
``n``-th bar; Wilder averages (``ewm_mean(alpha=1/n, adjust=False)``, seeded by the first value rather
than by the mean of the first ``n`` values as in Wilder's book; the seed's weight decays as
``(1 - 1/n)^k``) are reported from their ``n``-th value; ADX averages DX from DX's first defined bar,
so it needs ``2n - 1`` bars; %D needs ``k + d - 1`` bars. :func:`warmup_bars` is the largest of these
counts minus one over the enabled features.
"""

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "FEATURE_SETS",
    "FeatureConfig",
    "feature_names",
    "warmup_bars",
]

FEATURE_SETS: tuple[str, ...] = ("price", "volatility", "trend", "oscillators", "cross_asset", "time")

_PositiveWindow = Annotated[int, Field(gt=0)]
_StdWindow = Annotated[int, Field(ge=2)]


class FeatureConfig(BaseModel):
    """Which feature sets to compute and their window lengths (in bars)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    price: bool = Field(default=True, description="Gap-free log returns, momentum and close z-scores.")
    volatility: bool = Field(
        default=True, description="Rolling volatility, ATR and Bollinger width/position."
    )
    trend: bool = Field(default=True, description="ADX, normalized regression slope and trend persistence.")
    oscillators: bool = Field(default=True, description="RSI and stochastic %K/%D, scaled to [0, 1].")
    cross_asset: bool = Field(
        default=True,
        description="Return correlation, spread z-score and return divergence vs the other symbol.",
    )
    time: bool = Field(default=True, description="Minute of the session (New York time) as sine and cosine.")

    return_windows: tuple[_PositiveWindow, ...] = Field(
        default=(1, 5, 20), description="Bars summed into each gap-free log return feature."
    )
    momentum_window: _PositiveWindow = Field(default=10, description="Bars of the momentum (rate of change).")
    zscore_windows: tuple[_StdWindow, ...] = Field(
        default=(5, 20), description="Bars of each rolling z-score of the close."
    )
    volatility_window: _StdWindow = Field(default=20, description="Bars of the rolling std of 1-bar returns.")
    atr_window: _PositiveWindow = Field(default=14, description="Wilder smoothing length of the true range.")
    bollinger_window: _StdWindow = Field(default=20, description="Bars of the Bollinger middle band and std.")
    bollinger_std: float = Field(default=2.0, gt=0, description="Band half-width in population stds.")
    adx_window: _PositiveWindow = Field(
        default=14, description="Wilder smoothing length of DM and of DX (ADX)."
    )
    slope_window: _StdWindow = Field(default=20, description="Bars of log price in the rolling OLS slope.")
    persistence_window: _PositiveWindow = Field(default=20, description="Bars counted for trend persistence.")
    rsi_window: _PositiveWindow = Field(
        default=14, description="Wilder smoothing length of gains and losses."
    )
    stochastic_window: _PositiveWindow = Field(
        default=14, description="Bars of the stochastic high-low range."
    )
    stochastic_smoothing: _PositiveWindow = Field(default=3, description="Bars of %K averaged into %D.")
    correlation_window: _StdWindow = Field(default=30, description="Bars of the rolling return correlation.")
    spread_window: _StdWindow = Field(default=60, description="Bars of the rolling log-spread z-score.")
    divergence_window: _PositiveWindow = Field(default=5, description="Bars of the returns compared.")
    session_minutes: _PositiveWindow = Field(
        default=390, description="Length of the circle the session minute is mapped onto."
    )

    @field_validator("return_windows", "zscore_windows")
    @classmethod
    def _distinct_windows(cls, windows: tuple[int, ...]) -> tuple[int, ...]:
        if not windows:
            message = "give at least one window"
            raise ValueError(message)
        if len(set(windows)) != len(windows):
            message = f"windows must be distinct, got {windows}"
            raise ValueError(message)
        return windows

    @model_validator(mode="after")
    def _some_set_enabled(self) -> "FeatureConfig":
        if not any(getattr(self, name) for name in FEATURE_SETS):
            message = f"all feature sets are disabled; enable at least one of {', '.join(FEATURE_SETS)}"
            raise ValueError(message)
        return self


def _enabled_features(config: FeatureConfig) -> list[tuple[str, int]]:
    """(name, warm-up bars) of every enabled feature, in output order."""
    features: list[tuple[str, int]] = []
    if config.price:
        features += [(f"log_return_{n}", n - 1) for n in config.return_windows]
        features.append((f"momentum_{config.momentum_window}", config.momentum_window - 1))
        features += [(f"close_zscore_{n}", n - 1) for n in config.zscore_windows]
    if config.volatility:
        features += [
            (f"volatility_{config.volatility_window}", config.volatility_window - 1),
            (f"atr_{config.atr_window}", config.atr_window - 1),
            (f"bollinger_width_{config.bollinger_window}", config.bollinger_window - 1),
            (f"bollinger_position_{config.bollinger_window}", config.bollinger_window - 1),
        ]
    if config.trend:
        features += [
            (f"adx_{config.adx_window}", 2 * config.adx_window - 2),
            (f"regression_slope_{config.slope_window}", config.slope_window - 1),
            (f"trend_persistence_{config.persistence_window}", config.persistence_window - 1),
        ]
    if config.oscillators:
        k, d = config.stochastic_window, config.stochastic_smoothing
        features += [
            (f"rsi_{config.rsi_window}", config.rsi_window - 1),
            (f"stochastic_k_{k}", k - 1),
            (f"stochastic_d_{d}", k + d - 2),
        ]
    if config.cross_asset:
        features += [
            (f"return_correlation_{config.correlation_window}", config.correlation_window - 1),
            (f"spread_zscore_{config.spread_window}", config.spread_window - 1),
            (f"return_divergence_{config.divergence_window}", config.divergence_window - 1),
        ]
    if config.time:
        features += [("session_minute_sin", 0), ("session_minute_cos", 0)]
    return features


def feature_names(config: FeatureConfig = FeatureConfig()) -> list[str]:
    """Names of the feature columns ``build_features`` returns for ``config``, in their (stable) order."""
    return [name for name, _ in _enabled_features(config)]


def warmup_bars(config: FeatureConfig = FeatureConfig()) -> int:
    """Leading bars per symbol that ``build_features`` drops: some enabled feature is undefined there."""
    return max(warmup for _, warmup in _enabled_features(config))

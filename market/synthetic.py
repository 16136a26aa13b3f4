"""Synthetic two-ticker minute-bar market: the pipeline's embedded default data source.

The generator draws 1-minute bars of the NYSE regular session (09:30 to 16:00 New York time, 13:00 on
early-close days, no bars on holidays or weekends) for two tickers, deterministically from one seed. The
process:

* **Regimes.** Each session has one named regime from :data:`REGIMES`, drawn by a Markov chain over
  sessions: with probability ``regime_persistence`` the next session keeps the regime, otherwise it moves to
  one of the three others with equal probability (mean run length ``1 / (1 - regime_persistence)``
  sessions). A regime sets the annualized volatility, the cross-asset correlation of the minute shocks and a
  volume multiplier (:class:`RegimeProfile`). In the ``trending`` regime (mode ``regimes`` only) both
  tickers drift by ``trend_daily_drift`` log return per full session, in a direction drawn once per run of
  trending sessions, so the trend persists across the day and across consecutive trending days.
* **Volatility clustering.** Each ticker's volatility is multiplied by ``exp(h_t - v**2)``, where ``h_t`` is
  a per-bar AR(1) log-volatility with coefficient ``volatility_persistence`` and stationary standard
  deviation ``v = volatility_of_volatility`` (so the multiplier has mean square 1). The two tickers'
  log-volatility shocks are correlated (a common market factor). The process runs across sessions without
  resetting.
* **Intraday shape.** Volatility and volume are U-shaped over the session: high after the open, lowest at
  midday, rising into the close (functions of minutes since the open and minutes to the close, so a 13:00
  half day has the same open and close shape).
* **Jumps.** Each bar of each ticker independently jumps with probability ``jump_probability``; a jump adds
  a zero-mean normal log return with standard deviation ``jump_scale`` times that bar's volatility.
* **Overnight gaps.** The first open of a session is the previous close times ``exp(g)``, ``g`` zero-mean
  normal with standard deviation ``overnight_gap_volatility_ratio`` times the session's daily volatility,
  correlated across tickers like the minute shocks.
* **Bars.** Close-to-close log returns are the sum of the drift, the correlated shock and the jump. Within a
  session a bar opens at the previous close plus a normal deviation of a tenth of the bar volatility; high
  and low extend beyond the open/close by half-normal excursions; volume is whole shares, U-shaped, scaled by
  the regime and by the bar's volatility and absolute shock.

Modes (:attr:`SyntheticMarketConfig.mode`):

* ``regimes`` (default): everything above.
* ``martingale``: the same process with no predictable component at all: no trend drift, every log return
  (minute and overnight) has conditional mean zero given the whole past of both tickers, so returns are a
  martingale difference sequence with zero autocorrelation at every lag. Volatility still clusters and
  regimes still switch (that predicts magnitude, never sign).
* ``planted``: the ``martingale`` process plus exactly one known predictable component on the first ticker
  ``symbols[0]`` (on each ticker with ``planted_symbols="both"``). With ``H = planted_horizon_bars`` and ``s
  = planted_strength``: split each session's bars into consecutive blocks of ``H`` bars starting at the open
  (a trailing partial block is left alone). Let ``B_k`` be the log return of block ``k``: ``log(close of its
  last bar / close of the last bar of block k-1)``, and for block 0 ``log(close of its last bar / the
  session's first open)``. For every block ``k >= 1`` each of its bars gets an added log-return drift ``s *
  B_{k-1} / H``, so ``B_k = s * B_{k-1} + E_k`` with ``E_k`` the block's martingale return, independent of
  everything before it. Hence ``E[B_k | past] = s * B_{k-1}`` exactly, and the correlation of predictor
  ``B_{k-1}`` with target ``B_k`` over many pairs is ``s`` up to sampling error and the slight variance
  difference between neighbouring blocks. :func:`block_return_pairs` extracts these pairs from any bar
  frame. Nothing is planted across sessions. With ``planted_symbols="first"`` (default) ``symbols[1]`` stays
  a martingale; because its shocks are correlated with ``symbols[0]``'s, its own past block return predicts
  ``symbols[0]``'s next block return with a correlation of about ``s`` times the regime correlation. With
  ``planted_symbols="both"`` each symbol gets the same construction from its own block returns,
  independently.

The three modes share the random streams, so one seed gives the same regime sequence in every mode.
Components draw from independent generators spawned from ``np.random.SeedSequence(seed)``.

This module stays whole although it is over 500 lines, because it is one concept, the generator: its
parameters (:class:`SyntheticMarketConfig`), the process that turns them into bars and the inverse of its
planted mode (:func:`block_return_pairs`) are one specification, described once above, and change together.
"""

import math
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Literal

import numpy as np
import polars as pl
from pydantic import BaseModel, ConfigDict, Field, field_validator

from market.calendar import EXCHANGE_TZ, SESSION_MINUTES, sessions, trading_days

__all__ = [
    "REGIMES",
    "RegimeProfile",
    "SyntheticMarket",
    "SyntheticMarketConfig",
    "block_return_pairs",
    "generate_market",
]

REGIMES: tuple[str, ...] = ("calm", "volatile", "trending", "correlation_breakdown")

_TRADING_DAYS_PER_YEAR = 252
_NANOSECONDS_PER_MINUTE = 60_000_000_000
# Share of the log-volatility shock that is common to both tickers.
_VOLATILITY_COMOVEMENT = 0.5
# Open of a bar relative to the previous close, in units of the bar's volatility.
_OPEN_NOISE = 0.1
# Scale of the high/low excursion beyond max/min(open, close), in units of the bar's volatility.
_RANGE_EXCURSION = 0.5
# Standard deviation of the log-normal volume noise.
_VOLUME_NOISE = 0.35
_BAR_FRAME_SCHEMA = pl.Schema(
    {
        "ts": pl.Datetime("ns", "UTC"),
        "symbol": pl.Utf8(),
        "open": pl.Float64(),
        "high": pl.Float64(),
        "low": pl.Float64(),
        "close": pl.Float64(),
        "volume": pl.Float64(),
    }
)


class RegimeProfile(BaseModel):
    """Market parameters that hold for every session of one regime."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    annualized_volatility: float = Field(
        gt=0.0,
        le=3.0,
        description="Annualized volatility of minute returns at average intraday and clustering level "
        "(before per-symbol scaling and jumps), e.g. 0.25 for 25%.",
    )
    correlation: float = Field(
        ge=-0.99, le=0.99, description="Correlation of the two tickers' minute shocks and overnight gaps."
    )
    volume_multiplier: float = Field(
        gt=0.0, description="Multiplier on both tickers' base volume during sessions of this regime."
    )


def _default_profile(volatility: float, correlation: float, volume: float) -> RegimeProfile:
    return RegimeProfile(annualized_volatility=volatility, correlation=correlation, volume_multiplier=volume)


class SyntheticMarketConfig(BaseModel):
    """Parameters of the synthetic market; with a seed they determine every bar."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    symbols: tuple[str, str] = Field(
        default=("NVDA", "MSFT"), description="The two ticker symbols; the first carries the planted signal."
    )
    start: date = Field(
        default=date(2025, 1, 2),
        description="First calendar day considered; sessions are the NYSE trading days from this day on.",
    )
    sessions: int = Field(default=60, ge=1, le=20_000, description="Number of trading sessions to generate.")
    mode: Literal["regimes", "martingale", "planted"] = Field(
        default="regimes",
        description="'regimes': full process with trend drift; 'martingale': no predictable component; "
        "'planted': martingale plus the block-return signal described in the module docstring.",
    )
    planted_horizon_bars: int = Field(
        default=10,
        ge=1,
        le=SESSION_MINUTES // 2,
        description="Block length H in bars of the planted signal: the past H-bar block return of symbols[0] "
        "predicts its next H-bar block return (mode 'planted' only).",
    )
    planted_symbols: Literal["first", "both"] = Field(
        default="first",
        description="Which symbols carry the planted block-return signal (mode 'planted' only): 'first' "
        "plants it on symbols[0] alone, 'both' on each symbol independently (each predicted by its own "
        "previous block).",
    )
    planted_strength: float = Field(
        default=0.1,
        ge=-0.9,
        le=0.9,
        description="Planted coefficient s: next block return = s * previous block return + independent "
        "martingale return, so their correlation is about s (mode 'planted' only).",
    )
    start_prices: tuple[float, float] = Field(
        default=(120.0, 420.0), description="Open price of each symbol at the first session."
    )
    symbol_volatility_scale: tuple[float, float] = Field(
        default=(1.1, 0.85), description="Per-symbol multiplier on every regime's volatility."
    )
    base_volume: tuple[float, float] = Field(
        default=(350_000.0, 45_000.0),
        description="Average shares per minute of each symbol at regime multiplier 1 (over a full session).",
    )
    regime_persistence: float = Field(
        default=0.9,
        ge=0.0,
        le=1.0,
        description="Probability that a session keeps the previous session's regime (1.0 keeps the first).",
    )
    initial_regime: Literal["calm", "volatile", "trending", "correlation_breakdown"] | None = Field(
        default=None, description="Regime of the first session; None draws it uniformly."
    )
    calm: RegimeProfile = Field(
        default=_default_profile(0.22, 0.7, 0.8), description="Parameters of the 'calm' regime."
    )
    volatile: RegimeProfile = Field(
        default=_default_profile(0.50, 0.5, 1.6), description="Parameters of the 'volatile' regime."
    )
    trending: RegimeProfile = Field(
        default=_default_profile(0.30, 0.7, 1.2), description="Parameters of the 'trending' regime."
    )
    correlation_breakdown: RegimeProfile = Field(
        default=_default_profile(0.40, -0.1, 1.2),
        description="Parameters of the 'correlation_breakdown' regime.",
    )
    trend_daily_drift: float = Field(
        default=0.012,
        ge=0.0,
        le=0.2,
        description="Absolute log-return drift per full session in the 'trending' regime (mode 'regimes'); "
        "the sign is drawn once per run of trending sessions and shared by both symbols.",
    )
    volatility_persistence: float = Field(
        default=0.985, ge=0.0, lt=1.0, description="Per-bar AR(1) coefficient of the log-volatility."
    )
    volatility_of_volatility: float = Field(
        default=0.35, ge=0.0, le=1.5, description="Stationary standard deviation of the log-volatility."
    )
    jump_probability: float = Field(
        default=0.0005, ge=0.0, le=0.1, description="Probability that a bar of a symbol contains a jump."
    )
    jump_scale: float = Field(
        default=8.0, ge=0.0, description="Standard deviation of a jump's log return, in bar volatilities."
    )
    overnight_gap_volatility_ratio: float = Field(
        default=0.35,
        ge=0.0,
        le=3.0,
        description="Standard deviation of the overnight log gap as a fraction of the session's daily "
        "volatility.",
    )

    @field_validator("symbols")
    @classmethod
    def _distinct_symbols(cls, symbols: tuple[str, str]) -> tuple[str, str]:
        if any(not symbol.strip() for symbol in symbols):
            message = f"symbols must be non-empty strings, got {symbols!r}"
            raise ValueError(message)
        if symbols[0] == symbols[1]:
            message = f"symbols must be two different tickers, got {symbols!r}"
            raise ValueError(message)
        return symbols

    @field_validator("start_prices", "symbol_volatility_scale", "base_volume")
    @classmethod
    def _positive_pair(cls, values: tuple[float, float]) -> tuple[float, float]:
        if not all(math.isfinite(value) and value > 0.0 for value in values):
            message = f"values must be finite and positive, got {values!r}"
            raise ValueError(message)
        return values

    def profiles(self) -> tuple[RegimeProfile, ...]:
        """Regime profiles in the order of :data:`REGIMES`."""
        return (self.calm, self.volatile, self.trending, self.correlation_breakdown)


@dataclass(frozen=True)
class SyntheticMarket:
    """Generated bars plus the true regime of every session."""

    bars: pl.DataFrame
    """Canonical long bar frame (``ts`` bar start UTC, ``symbol``, OHLC, ``volume``), sorted by symbol, ts."""
    regimes: pl.DataFrame
    """One row per session: ``session`` (Date), ``regime`` (Utf8, one of :data:`REGIMES`)."""


def _session_days(start: date, count: int) -> list[date]:
    span = int(count * 1.5) + 14
    days = trading_days(start, start + timedelta(days=span))
    while len(days) < count:
        span *= 2
        days = trading_days(start, start + timedelta(days=span))
    return days[:count]


def _regime_path(config: SyntheticMarketConfig, session_count: int, rng: np.random.Generator) -> np.ndarray:
    """Markov chain over sessions: stay with the persistence probability, else move uniformly to another."""
    if config.initial_regime is None:
        first = int(rng.integers(len(REGIMES)))
    else:
        first = REGIMES.index(config.initial_regime)
    stay = rng.random(session_count - 1) < config.regime_persistence
    moves = 1 + rng.integers(0, len(REGIMES) - 1, size=session_count - 1)
    offsets = np.concatenate(([0], np.where(stay, 0, moves)))
    return (first + np.cumsum(offsets)) % len(REGIMES)


def _trend_drift(
    config: SyntheticMarketConfig, regime_index: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Per-session drift (log return per full session): signed per run of trending sessions."""
    run_id = np.concatenate(([0], np.cumsum(regime_index[1:] != regime_index[:-1])))
    signs = rng.choice(np.array([-1.0, 1.0]), size=int(run_id[-1]) + 1)
    if config.mode != "regimes":
        return np.zeros(regime_index.shape[0])
    trending = regime_index == REGIMES.index("trending")
    return np.where(trending, signs[run_id] * config.trend_daily_drift, 0.0)


def _ar1(innovations: np.ndarray, coefficient: float, initial: np.ndarray) -> np.ndarray:
    """AR(1) ``h_t = c * h_{t-1} + e_t`` along the last axis, in blocks solved by scaled cumulative sums."""
    rows, length = innovations.shape
    if coefficient == 0.0:
        return innovations.copy()
    # Block length keeps c**-block within 1e12 so the scaled cumulative sum stays accurate.
    block = max(1, min(512, int(27.6 / -math.log(coefficient)))) if coefficient < 1.0 else 512
    blocks = -(-length // block)
    padded = np.zeros((rows, blocks * block))
    padded[:, :length] = innovations
    shaped = padded.reshape(rows, blocks, block)
    exponents = np.arange(block, dtype=np.float64)
    growth = coefficient**exponents
    within = np.cumsum(shaped / growth, axis=2) * growth
    decay = coefficient ** (exponents + 1.0)
    carry = np.empty((rows, blocks))
    previous = initial.astype(np.float64)
    block_decay = coefficient**block
    for index in range(blocks):
        carry[:, index] = previous
        previous = block_decay * previous + within[:, index, -1]
    values = within + carry[:, :, None] * decay[None, None, :]
    return values.reshape(rows, blocks * block)[:, :length]


def _intraday_volatility_shape(minute: np.ndarray, minutes: np.ndarray) -> np.ndarray:
    """U-shaped volatility multiplier with mean square 1 over a full session."""

    def raw(since_open: np.ndarray, to_close: np.ndarray) -> np.ndarray:
        return 0.75 + 0.9 * np.exp(-since_open / 30.0) + 0.45 * np.exp(-to_close / 30.0)

    grid = np.arange(SESSION_MINUTES, dtype=np.float64)
    norm = math.sqrt(float(np.mean(raw(grid, SESSION_MINUTES - 1 - grid) ** 2)))
    return raw(minute, minutes - 1 - minute) / norm


def _intraday_volume_shape(minute: np.ndarray, minutes: np.ndarray) -> np.ndarray:
    """U-shaped volume multiplier with mean 1 over a full session (heavier close for the auction)."""

    def raw(since_open: np.ndarray, to_close: np.ndarray) -> np.ndarray:
        return 0.55 + 1.6 * np.exp(-since_open / 25.0) + 1.5 * np.exp(-to_close / 20.0)

    grid = np.arange(SESSION_MINUTES, dtype=np.float64)
    norm = float(np.mean(raw(grid, SESSION_MINUTES - 1 - grid)))
    return raw(minute, minutes - 1 - minute) / norm


def _planted_drift(
    returns: np.ndarray,
    *,
    session_index: np.ndarray,
    minute: np.ndarray,
    minutes: np.ndarray,
    horizon: int,
    strength: float,
) -> np.ndarray:
    """Per-bar drift making each block return ``strength`` times the previous block's plus its own."""
    session_count = minutes.shape[0]
    grid = np.zeros((session_count, SESSION_MINUTES))
    grid[session_index, minute] = returns
    block_count = SESSION_MINUTES // horizon
    block_sums = grid[:, : block_count * horizon].reshape(session_count, block_count, horizon).sum(axis=2)
    complete = np.arange(block_count)[None, :] < (minutes // horizon)[:, None]
    planted_block = np.zeros((session_count, block_count))
    realized = block_sums[:, 0].copy()
    for block in range(1, block_count):
        planted_block[:, block] = np.where(complete[:, block], strength * realized, 0.0)
        realized = block_sums[:, block] + planted_block[:, block]
    per_bar = np.zeros((session_count, SESSION_MINUTES))
    per_bar[:, : block_count * horizon] = np.repeat(planted_block / horizon, horizon, axis=1)
    return per_bar[session_index, minute]


def generate_market(config: SyntheticMarketConfig, *, seed: int) -> SyntheticMarket:
    """Generate the bars and the true per-session regimes of a synthetic two-ticker market.

    Same ``config`` and ``seed`` give identical frames. The process, the modes and exactly what the
    ``planted`` mode plants are described in the module docstring.

    Raises:
        ValueError: ``seed`` is negative.
    """
    if seed < 0:
        message = f"seed must be a non-negative integer, got {seed}"
        raise ValueError(message)
    (
        regime_rng,
        trend_rng,
        shock_rng,
        volatility_rng,
        jump_rng,
        gap_rng,
        bar_rng,
        volume_rng,
    ) = (np.random.default_rng(child) for child in np.random.SeedSequence(seed).spawn(8))

    days = _session_days(config.start, config.sessions)
    session_frame = sessions(days)
    minutes = session_frame["minutes"].to_numpy().astype(np.int64)
    open_ns = session_frame["open"].dt.epoch("ns").to_numpy().astype(np.int64)
    session_count = len(days)
    bar_count = int(minutes.sum())
    session_index = np.repeat(np.arange(session_count), minutes)
    session_first_bar = np.concatenate(([0], np.cumsum(minutes)[:-1]))
    minute = np.arange(bar_count) - session_first_bar[session_index]
    minute_float = minute.astype(np.float64)
    session_minutes = minutes[session_index].astype(np.float64)
    first_bar = minute == 0

    regime_index = _regime_path(config, session_count, regime_rng)
    session_drift = _trend_drift(config, regime_index, trend_rng)
    profiles = config.profiles()
    regime_volatility = np.array([profile.annualized_volatility for profile in profiles])[regime_index]
    regime_correlation = np.array([profile.correlation for profile in profiles])[regime_index]
    regime_volume = np.array([profile.volume_multiplier for profile in profiles])[regime_index]
    symbol_scale = np.asarray(config.symbol_volatility_scale)[:, None]

    # Per-bar volatility: regime level x symbol scale x intraday U x clustering multiplier.
    bar_volatility_level = regime_volatility[session_index] / math.sqrt(
        _TRADING_DAYS_PER_YEAR * SESSION_MINUTES
    )
    intraday = _intraday_volatility_shape(minute_float, session_minutes)
    persistence = config.volatility_persistence
    log_volatility_std = config.volatility_of_volatility
    innovation_std = log_volatility_std * math.sqrt(1.0 - persistence**2)
    common = volatility_rng.standard_normal(bar_count)
    own = volatility_rng.standard_normal((2, bar_count))
    innovations = innovation_std * (
        math.sqrt(_VOLATILITY_COMOVEMENT) * common + math.sqrt(1.0 - _VOLATILITY_COMOVEMENT) * own
    )
    log_volatility = _ar1(innovations, persistence, log_volatility_std * volatility_rng.standard_normal(2))
    clustering = np.exp(log_volatility - log_volatility_std**2)
    volatility = symbol_scale * (bar_volatility_level * intraday)[None, :] * clustering

    # Correlated minute shocks, jumps and drift.
    correlation = regime_correlation[session_index]
    first_shock = shock_rng.standard_normal(bar_count)
    second_shock = correlation * first_shock + np.sqrt(1.0 - correlation**2) * shock_rng.standard_normal(
        bar_count
    )
    shocks = np.stack((first_shock, second_shock))
    jumps = (jump_rng.random((2, bar_count)) < config.jump_probability) * (
        config.jump_scale * jump_rng.standard_normal((2, bar_count))
    )
    drift = (session_drift / SESSION_MINUTES)[session_index]
    returns = drift[None, :] + volatility * (shocks + jumps)
    if config.mode == "planted":
        for row in (0, 1) if config.planted_symbols == "both" else (0,):
            returns[row] += _planted_drift(
                returns[row],
                session_index=session_index,
                minute=minute,
                minutes=minutes,
                horizon=config.planted_horizon_bars,
                strength=config.planted_strength,
            )

    # Overnight gaps: zero before the first session, otherwise correlated like the minute shocks.
    gap_first = gap_rng.standard_normal(session_count)
    gap_second = regime_correlation * gap_first + np.sqrt(
        1.0 - regime_correlation**2
    ) * gap_rng.standard_normal(session_count)
    daily_volatility = regime_volatility / math.sqrt(_TRADING_DAYS_PER_YEAR)
    gaps = config.overnight_gap_volatility_ratio * symbol_scale * daily_volatility[None, :]
    gaps = gaps * np.stack((gap_first, gap_second))
    gaps[:, 0] = 0.0
    bar_gap = np.zeros((2, bar_count))
    bar_gap[:, first_bar] = gaps

    log_start = np.log(np.asarray(config.start_prices))[:, None]
    log_close = log_start + np.cumsum(returns + bar_gap, axis=1)
    previous_close = np.concatenate((log_start, log_close[:, :-1]), axis=1)
    open_noise = _OPEN_NOISE * volatility * bar_rng.standard_normal((2, bar_count))
    log_open = previous_close + np.where(first_bar[None, :], bar_gap, open_noise)
    upper = np.maximum(log_open, log_close) + _RANGE_EXCURSION * volatility * np.abs(
        bar_rng.standard_normal((2, bar_count))
    )
    lower = np.minimum(log_open, log_close) - _RANGE_EXCURSION * volatility * np.abs(
        bar_rng.standard_normal((2, bar_count))
    )

    volume_level = (
        np.asarray(config.base_volume)[:, None]
        * (regime_volume[session_index] * _intraday_volume_shape(minute_float, session_minutes))[None, :]
        * clustering**0.8
        * (0.7 + 0.3 * np.abs(shocks + jumps))
        * np.exp(_VOLUME_NOISE * volume_rng.standard_normal((2, bar_count)) - 0.5 * _VOLUME_NOISE**2)
    )
    volume = np.maximum(np.round(volume_level), 1.0)

    ts = np.repeat(open_ns, minutes) + minute.astype(np.int64) * _NANOSECONDS_PER_MINUTE
    order = sorted(range(2), key=lambda position: config.symbols[position])
    bars = pl.DataFrame(
        {
            "ts": np.concatenate([ts, ts]),
            "symbol": pl.Series([config.symbols[position] for position in order], dtype=pl.Utf8).gather(
                np.repeat(np.arange(2), bar_count)
            ),
            "open": np.exp(log_open[order]).ravel(),
            "high": np.exp(upper[order]).ravel(),
            "low": np.exp(lower[order]).ravel(),
            "close": np.exp(log_close[order]).ravel(),
            "volume": volume[order].ravel(),
        }
    ).with_columns(pl.col("ts").cast(pl.Datetime("ns")).dt.replace_time_zone("UTC"))
    bars = bars.cast(_BAR_FRAME_SCHEMA)
    regimes = pl.DataFrame(
        {"session": days, "regime": [REGIMES[index] for index in regime_index]},
        schema={"session": pl.Date, "regime": pl.Utf8},
    )
    return SyntheticMarket(bars=bars, regimes=regimes)


def block_return_pairs(bars: pl.DataFrame, *, symbol: str, horizon_bars: int) -> pl.DataFrame:
    """Consecutive ``horizon_bars``-bar block log returns of one symbol, as (predictor, target) pairs.

    Blocks are aligned to each session's first bar (New York date of ``ts``) exactly as the ``planted``
    mode plants them; a trailing partial block is dropped and no pair crosses a session. Block 0's return is
    measured from the session's first open, later blocks from the previous block's last close. Assumes
    complete sessions (no missing minutes). Columns: ``session`` (Date), ``block`` (Int64, index of the
    predictor block), ``ts`` (start of the predictor block's last bar, the decision bar), ``predictor``,
    ``target`` (Float64).

    Raises:
        ValueError: ``horizon_bars`` is not positive or ``symbol`` has no bars.
    """
    if horizon_bars < 1:
        message = f"horizon_bars must be positive, got {horizon_bars}"
        raise ValueError(message)
    frame = bars.filter(pl.col("symbol") == symbol).sort("ts")
    if frame.height == 0:
        message = f"no bars for symbol {symbol!r}"
        raise ValueError(message)
    session = pl.col("ts").dt.convert_time_zone(EXCHANGE_TZ.key).dt.date()
    frame = frame.with_columns(session.alias("session")).with_columns(
        pl.int_range(pl.len(), dtype=pl.Int64).over("session").alias("minute"),
        pl.len().over("session").cast(pl.Int64).alias("session_bars"),
        pl.col("open").first().over("session").alias("session_open"),
    )
    ends = frame.filter(
        (pl.col("minute") % horizon_bars == horizon_bars - 1)
        & (pl.col("minute") // horizon_bars < pl.col("session_bars") // horizon_bars)
    ).with_columns((pl.col("minute") // horizon_bars).alias("block"))
    block_return = (
        pl.col("close").log()
        - pl.col("close").shift(1).over("session").fill_null(pl.col("session_open")).log()
    )
    return (
        ends.with_columns(block_return.alias("predictor"))
        .with_columns(pl.col("predictor").shift(-1).over("session").alias("target"))
        .filter(pl.col("target").is_not_null())
        .select("session", "block", "ts", "predictor", "target")
    )

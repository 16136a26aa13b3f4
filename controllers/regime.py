"""Market regime score in [-1, 1] for the two tickers: volatility regime, return divergence, momentum.

Sign convention: **a positive score means a turbulent or incoherent market, where the agent should hold more**
(volatility above its recent history, the two tickers' returns diverging more than usual); **a negative score
means a calm, orderly trend, where the agent should trade more** (volatility below its recent history, strong
momentum). The reward controller moves its target hold rate by ``regime_sensitivity * score``.

Per bar ``t`` (decision-bar closes ``c[t, k]`` of ticker ``k``; log returns
``r[t, k] = log c[t, k] - log c[t-1, k]``):

* ``sigma[t, k] = sqrt(mean(r[t-V+1 .. t, k] ** 2))``: the current volatility, the RMS of the last
  ``V = volatility_bars`` returns.
* ``z[t, k] = (log c[t, k] - log c[t-M, k]) / (sigma[t, k] * sqrt(M))``: the momentum over
  ``M = momentum_bars`` bars as a t-statistic (about standard normal for a driftless random walk).
* Three raw quantities: ``volatility = log sigma[t, k]`` (per ticker),
  ``momentum = (|z[t, 0]| + |z[t, 1]|) / 2`` (trend strength in either direction) and
  ``divergence = |z[t, 0] - z[t, 1]| / sqrt(2)`` (how far the two tickers' normalized moves disagree).
* Each raw quantity is standardized against a bounded history: the mean and standard deviation of its values
  over all bars of the last ``H = history_sessions`` *completed* sessions before the bar's session (the bar's
  own session is excluded, so no value from later in the session can leak in). The volatility z-score is the
  average of the two tickers' z-scores.
* ``score = tanh(volatility_weight * vol_z + divergence_weight * div_z - momentum_weight * mom_z)``.

Warm-up: a component contributes 0 until its windows are full (``V`` returns, ``M`` bars) and at least
``min_history_sessions`` completed sessions (with a non-zero spread) are in its history; so without
``bootstrap_close`` the score is exactly 0 for the first ``min_history_sessions`` sessions. Bars given as
``bootstrap_close`` precede ``close`` and fill the windows and the history, so the score is meaningful from
the first bar.

Every quantity at bar ``t`` is computed from prefix sums and per-session sums of bars at or before ``t``, so
changing later bars leaves earlier scores bit-for-bit unchanged. :class:`RegimeDetector` computes the same
score online, one bar at a time (equal to :func:`regime_scores` up to floating-point rounding).
"""

import math
from collections import deque
from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["RegimeDetector", "RegimeDetectorConfig", "regime_scores"]

_SQRT2 = math.sqrt(2.0)


class RegimeDetectorConfig(BaseModel):
    """Windows and weights of the market regime score."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    momentum_bars: int = Field(30, ge=1, description="Bars M of the momentum (log-price change) window.")
    volatility_bars: int = Field(
        30, ge=2, description="Bars V of the current-volatility window (RMS of the last V log returns)."
    )
    history_sessions: int = Field(
        30,
        ge=1,
        description="Completed sessions H whose bars form the history each quantity is z-scored against.",
    )
    min_history_sessions: int = Field(
        3, ge=1, description="Completed sessions needed in the history before a component counts (warm-up)."
    )
    volatility_weight: float = Field(
        0.5, ge=0.0, description="Weight of the volatility z-score (high volatility raises the score)."
    )
    divergence_weight: float = Field(
        0.3, ge=0.0, description="Weight of the return-divergence z-score (divergence raises the score)."
    )
    momentum_weight: float = Field(
        0.3, ge=0.0, description="Weight of the momentum-strength z-score (strong momentum lowers the score)."
    )

    @model_validator(mode="after")
    def _consistent(self) -> "RegimeDetectorConfig":
        if self.min_history_sessions > self.history_sessions:
            msg = (
                f"min_history_sessions ({self.min_history_sessions}) must not exceed "
                f"history_sessions ({self.history_sessions})"
            )
            raise ValueError(msg)
        if self.volatility_weight + self.divergence_weight + self.momentum_weight <= 0.0:
            msg = "at least one of volatility_weight, divergence_weight, momentum_weight must be positive"
            raise ValueError(msg)
        return self


def _check_close(close: np.ndarray, name: str) -> np.ndarray:
    array = np.asarray(close, dtype=np.float64)
    if array.ndim != 2 or array.shape[1] != 2:
        msg = f"{name} must have shape (bars, 2) for the two tickers, got {array.shape}"
        raise ValueError(msg)
    if array.size and not (np.isfinite(array).all() and (array > 0.0).all()):
        msg = f"{name} must hold finite, positive prices"
        raise ValueError(msg)
    return array


def _check_sessions(session_index: np.ndarray, bars: int, name: str) -> np.ndarray:
    array = np.asarray(session_index)
    if array.shape != (bars,):
        msg = f"{name} must have shape ({bars},) to match the closes, got {array.shape}"
        raise ValueError(msg)
    if bars and not np.issubdtype(array.dtype, np.integer):
        msg = f"{name} must be an integer array, got dtype {array.dtype}"
        raise ValueError(msg)
    if bars > 1 and (np.diff(array) < 0).any():
        msg = f"{name} must be non-decreasing (bars in time order)"
        raise ValueError(msg)
    return array


def _bootstrap_sessions(bootstrap_bars: int, session_index: np.ndarray) -> np.ndarray:
    """Session labels for unlabelled bootstrap bars: chunks of the modal session length of ``close``."""
    if session_index.size:
        _, counts = np.unique(session_index, return_counts=True)
        values, frequency = np.unique(counts, return_counts=True)
        length = int(values[np.argmax(frequency)])
    else:
        length = max(bootstrap_bars, 1)
    # Align the chunks to end at the boundary with ``close``, so the last bootstrap session is a whole one.
    positions = np.arange(bootstrap_bars) - bootstrap_bars
    return positions // length


def _history_zscore(values: np.ndarray, session_start: np.ndarray, session_of_bar: np.ndarray,
                    *, history_sessions: int, min_history_sessions: int) -> np.ndarray:
    """Z-score of each bar's value against the bars of the previous ``history_sessions`` completed sessions.

    ``values`` may hold NaN (undefined during warm-up): those bars are left out of the history and get z = 0.
    """
    finite = np.isfinite(values)
    clean = np.where(finite, values, 0.0)
    # Per-session count, sum and sum of squares of the defined values (each session only sees its own bars).
    count = np.add.reduceat(finite.astype(np.float64), session_start)
    total = np.add.reduceat(clean, session_start)
    squares = np.add.reduceat(clean * clean, session_start)
    # Sessions with at least one defined value count towards min_history_sessions.
    present = (count > 0).astype(np.float64)

    def window(per_session: np.ndarray) -> np.ndarray:
        # Sum over sessions s-H .. s-1 for each session s, from an exclusive prefix sum.
        prefix = np.concatenate(([0.0], np.cumsum(per_session)))
        sessions = per_session.size
        upper = np.arange(sessions)
        lower = np.maximum(upper - history_sessions, 0)
        return prefix[upper] - prefix[lower]

    history_count = window(count)
    history_total = window(total)
    history_squares = window(squares)
    history_present = window(present)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = history_total / history_count
        variance = history_squares / history_count - mean * mean
        spread = np.sqrt(np.maximum(variance, 0.0))
        usable = (history_present >= min_history_sessions) & (history_count >= 2) & (spread > 1e-12 * (
            1.0 + np.abs(mean)))
        bar_mean = mean[session_of_bar]
        bar_spread = spread[session_of_bar]
        z = (values - bar_mean) / bar_spread
    return np.where(finite & usable[session_of_bar], z, 0.0)


def _raw_quantities(log_close: np.ndarray, *, momentum_bars: int, volatility_bars: int) -> tuple[
        np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-bar log volatility of each ticker, momentum strength and divergence (NaN during warm-up)."""
    bars = log_close.shape[0]
    returns = np.zeros_like(log_close)
    if bars > 1:
        returns[1:] = log_close[1:] - log_close[:-1]
    prefix = np.zeros((bars + 1, 2))
    np.cumsum(returns * returns, axis=0, out=prefix[1:])
    volatility = np.full((bars, 2), np.nan)
    if bars > volatility_bars:
        # Bars t >= V have V returns r[t-V+1 .. t] (r[0] does not exist).
        window_sum = prefix[volatility_bars + 1:] - prefix[1:bars - volatility_bars + 1]
        volatility[volatility_bars:] = np.sqrt(np.maximum(window_sum, 0.0) / volatility_bars)
    change = np.full((bars, 2), np.nan)
    if bars > momentum_bars:
        change[momentum_bars:] = log_close[momentum_bars:] - log_close[:-momentum_bars]
    with np.errstate(divide="ignore", invalid="ignore"):
        momentum_z = change / (volatility * math.sqrt(momentum_bars))
        momentum_z[~(volatility > 0.0)] = np.nan
        log_volatility = np.log(volatility)
    log_volatility[~(volatility > 0.0)] = np.nan
    strength = 0.5 * (np.abs(momentum_z[:, 0]) + np.abs(momentum_z[:, 1]))
    divergence = np.abs(momentum_z[:, 0] - momentum_z[:, 1]) / _SQRT2
    return log_volatility[:, 0], log_volatility[:, 1], strength, divergence


def regime_scores(
    close: np.ndarray,
    *,
    session_index: np.ndarray,
    config: RegimeDetectorConfig = RegimeDetectorConfig(),
    bootstrap_close: np.ndarray | None = None,
    bootstrap_session_index: np.ndarray | None = None,
) -> np.ndarray:
    """Regime score in [-1, 1] per bar (float32, shape ``(T,)``), from data at or before each bar only.

    ``close``: float64 ``(T, 2)`` decision-bar closes of the two tickers; ``session_index``: ``(T,)`` integer
    session number per bar, non-decreasing. ``bootstrap_close``: ``(B, 2)`` bars immediately preceding
    ``close`` that warm up the windows and the session history; their sessions come from
    ``bootstrap_session_index`` or, when that is omitted, from splitting them into whole sessions of the most
    common session length in ``close`` (counted back from the boundary). A bootstrap session never merges with
    a session of ``close``. See the module docstring for the formula and the warm-up rule.
    """
    close = _check_close(close, "close")
    bars = close.shape[0]
    session_index = _check_sessions(session_index, bars, "session_index")
    if bootstrap_close is not None:
        bootstrap = _check_close(bootstrap_close, "bootstrap_close")
        if bootstrap_session_index is None:
            bootstrap_sessions = _bootstrap_sessions(bootstrap.shape[0], session_index)
        else:
            bootstrap_sessions = _check_sessions(
                bootstrap_session_index, bootstrap.shape[0], "bootstrap_session_index"
            )
    else:
        if bootstrap_session_index is not None:
            msg = "bootstrap_session_index was given without bootstrap_close"
            raise ValueError(msg)
        bootstrap = np.empty((0, 2))
        bootstrap_sessions = np.empty(0, dtype=np.int64)
    if bars == 0:
        return np.empty(0, dtype=np.float32)
    skip = bootstrap.shape[0]
    all_close = np.concatenate((bootstrap, close)) if skip else close
    # Session boundaries: wherever the label changes, plus the junction between bootstrap and close.
    new_session = np.ones(all_close.shape[0], dtype=bool)
    if skip > 1:
        new_session[1:skip] = bootstrap_sessions[1:] != bootstrap_sessions[:-1]
    if bars > 1:
        new_session[skip + 1:] = session_index[1:] != session_index[:-1]
    session_start = np.flatnonzero(new_session)
    session_of_bar = np.cumsum(new_session) - 1

    log_volatility_0, log_volatility_1, strength, divergence = _raw_quantities(
        np.log(all_close), momentum_bars=config.momentum_bars, volatility_bars=config.volatility_bars
    )
    history = {
        "history_sessions": config.history_sessions,
        "min_history_sessions": config.min_history_sessions,
    }
    volatility_z = 0.5 * (
        _history_zscore(log_volatility_0, session_start, session_of_bar, **history)
        + _history_zscore(log_volatility_1, session_start, session_of_bar, **history)
    )
    raw = config.volatility_weight * volatility_z
    if config.divergence_weight:
        divergence_z = _history_zscore(divergence, session_start, session_of_bar, **history)
        raw += config.divergence_weight * divergence_z
    if config.momentum_weight:
        raw -= config.momentum_weight * _history_zscore(strength, session_start, session_of_bar, **history)
    score = np.tanh(raw[skip:]).astype(np.float32)
    return np.clip(score, -1.0, 1.0, out=score)


class _SessionHistory:
    """Online ``_history_zscore``: per-session count, sum and sum of squares of the last H sessions."""

    __slots__ = ("_completed", "_count", "_total", "_squares", "_min_sessions")

    def __init__(self, *, history_sessions: int, min_history_sessions: int) -> None:
        self._completed: deque[tuple[float, float, float]] = deque(maxlen=history_sessions)
        self._min_sessions = min_history_sessions
        self._count = 0.0
        self._total = 0.0
        self._squares = 0.0

    def close_session(self) -> None:
        self._completed.append((self._count, self._total, self._squares))
        self._count = self._total = self._squares = 0.0

    def zscore(self, value: float) -> float:
        """Z-score ``value`` against the completed sessions, then add it to the current session."""
        if not math.isfinite(value):
            return 0.0
        z = 0.0
        present = sum(1 for count, _, _ in self._completed if count > 0)
        count = sum(entry[0] for entry in self._completed)
        if present >= self._min_sessions and count >= 2:
            mean = sum(entry[1] for entry in self._completed) / count
            variance = sum(entry[2] for entry in self._completed) / count - mean * mean
            spread = math.sqrt(max(variance, 0.0))
            if spread > 1e-12 * (1.0 + abs(mean)):
                z = (value - mean) / spread
        self._count += 1.0
        self._total += value
        self._squares += value * value
        return z


class RegimeDetector:
    """Online regime score for live use: feed bars one at a time, get the same score as :func:`regime_scores`.

    Cost is O(volatility_bars + history_sessions) Python operations per bar: meant for live bars, not for
    training (precompute training scores with :func:`regime_scores`).
    """

    def __init__(self, config: RegimeDetectorConfig = RegimeDetectorConfig()) -> None:
        self.config = config
        self._log_close: deque[tuple[float, float]] = deque(maxlen=config.momentum_bars + 1)
        self._squared_returns: deque[tuple[float, float]] = deque(maxlen=config.volatility_bars)
        self._session: int | None = None
        self._bars = 0
        history = {
            "history_sessions": config.history_sessions,
            "min_history_sessions": config.min_history_sessions,
        }
        self._volatility = (_SessionHistory(**history), _SessionHistory(**history))
        self._strength = _SessionHistory(**history)
        self._divergence = _SessionHistory(**history)
        self.score = 0.0

    def update(self, close: Sequence[float], *, session: int) -> float:
        """Add one bar (closes of the two tickers, its session number) and return the score at that bar."""
        if len(close) != 2:
            msg = f"close must hold the two tickers' closes, got {len(close)} values"
            raise ValueError(msg)
        first, second = float(close[0]), float(close[1])
        if not (math.isfinite(first) and math.isfinite(second) and first > 0.0 and second > 0.0):
            msg = f"closes must be finite and positive, got {close}"
            raise ValueError(msg)
        if self._session is not None and session < self._session:
            msg = f"session went backwards: {session} after {self._session}"
            raise ValueError(msg)
        if self._session is not None and session != self._session:
            for history in (*self._volatility, self._strength, self._divergence):
                history.close_session()
        self._session = session
        log_close = (math.log(first), math.log(second))
        if self._log_close:
            previous = self._log_close[-1]
            self._squared_returns.append(
                ((log_close[0] - previous[0]) ** 2, (log_close[1] - previous[1]) ** 2)
            )
        self._log_close.append(log_close)
        self._bars += 1
        config = self.config
        volatility = (math.nan, math.nan)
        if self._bars > config.volatility_bars:
            volatility = tuple(
                math.sqrt(sum(pair[k] for pair in self._squared_returns) / config.volatility_bars)
                for k in (0, 1)
            )
        log_volatility = tuple(math.log(v) if v > 0.0 else math.nan for v in volatility)
        momentum = (math.nan, math.nan)
        if self._bars > config.momentum_bars:
            oldest = self._log_close[0]
            momentum = tuple(
                (log_close[k] - oldest[k]) / (volatility[k] * math.sqrt(config.momentum_bars))
                if volatility[k] > 0.0 else math.nan
                for k in (0, 1)
            )
        strength = 0.5 * (abs(momentum[0]) + abs(momentum[1]))
        divergence = abs(momentum[0] - momentum[1]) / _SQRT2
        raw = config.volatility_weight * 0.5 * (
            self._volatility[0].zscore(log_volatility[0]) + self._volatility[1].zscore(log_volatility[1])
        )
        raw += config.divergence_weight * self._divergence.zscore(divergence)
        raw -= config.momentum_weight * self._strength.zscore(strength)
        self.score = max(-1.0, min(1.0, math.tanh(raw)))
        return self.score

"""Evaluation metrics per episode and per scenario, and the equity-curve plot.

All figures come from :class:`envs.evaluation.EpisodeRecord` (equity after every step, positions in
units and shares, bar prices, the env's cost totals). Definitions, with ``r`` the per-bar simple returns of
equity (``equity[k] / equity[k-1] - 1``, one per step, costs included) and ``A = 252 * bars_per_session``
the number of bars in a trading year:

* ``total_return_pct``: ``100 * (equity[-1] / equity[0] - 1)``.
* ``max_drawdown_pct``: ``100 * max_k (1 - equity[k] / max(equity[:k+1]))``, a positive number; 0 when
  equity never falls below an earlier peak.
* ``sharpe``: ``mean(r) / std(r, ddof=1) * sqrt(A)``: per-bar returns annualized by the square root of
  the bars per year (the risk-free rate is taken as 0 intraday). 0 with fewer than two returns or zero
  variance (a standard deviation below 1e-12, float rounding of a constant return).
* ``sortino``: ``mean(r) / sqrt(mean(min(r, 0) ** 2)) * sqrt(A)`` (downside deviation against a target of
  0, over all bars); 0 when no bar lost (downside deviation below 1e-12).
* ``calmar``: ``mean(r) * A / (max_drawdown_pct / 100)``: arithmetic annualized return over the maximum
  drawdown (compounding one session to a year is meaningless); 0 without drawdown.
* ``var_95_pct`` / ``expected_shortfall_95_pct``: historical 95% value at risk and expected shortfall of
  the per-bar returns in percent, as losses (positive = a loss): ``VaR = -q`` with ``q`` the 5% quantile of
  ``r`` (linear interpolation), ``ES = -mean(r[r <= q])``. Negative when even the worst 5% of bars gain.
* ``trades_per_day``: the agent's filled orders (the env's count; flattening orders excluded) per session.
* ``hold_rate``: share of steps whose action holds both tickers.
* ``turnover``: traded notional over the initial capital, per session. A step's traded notional is
  ``|shares after - shares before|`` per ticker at the bar's open (agent orders fill there), and at the
  close on the episode's last step (the session-end or drawdown flatten). Agent orders followed by a
  flatten within the same bar, and risk-stop flattens mid-session, are priced at the open: an
  approximation that leaves the env's costs exact (they come from the env).
* **Round trips** per ticker, from the per-step positions: a trip opens at the step where the position
  leaves 0 and closes at the step where it returns to 0 (a sign change closes one trip and opens the next;
  the step ladder of the env never produces one). Trades opened and flattened within the same bar are not
  visible per step and are not counted. ``round_trips`` counts closed trips, ``win_rate`` is the share of
  them with positive net PnL (0 when there are none: check ``round_trips``), ``average_holding_bars`` the
  mean number of steps from opening to closing step.
* **Trip PnL, net of costs.** Each step's equity change is split between the tickers: ticker ``i`` gets the
  price move of the shares it held, ``a * (open - previous close) + h * (close - open)`` with ``a`` the
  shares before the step and ``h`` the shares after it (before it on the last step, whose flatten happens
  at the close); the rest of the step's equity change (costs, and fills not at these prices) goes to the
  tickers that traded in the step in proportion to their traded notional (to the tickers holding a
  position if none traded, else equally). The tickers' shares therefore add up exactly to the equity
  change. A trip's net PnL is the sum of its ticker's shares over its steps, opening to closing step.
* ``episode_length`` (steps), ``early_termination`` (1 when the drawdown limit ended the episode), the
  cost components ``cost_ticket``, ``cost_spread_fee``, ``cost_impact``, ``cost_total`` (dollars per
  episode, from the env), ``reward`` (the env's reward sum, shaping included), ``agent_orders``.

:func:`aggregate_metrics` averages the per-episode figures over the episodes, except: ``total_return_pct``
and ``max_drawdown_pct`` are those of the scenario's episodes traded back to back (their per-bar returns
compounded in order: the scenario's return and the worst fall of that equity path, what the gate's return and
drawdown criteria read), with the per-episode means kept as ``mean_episode_return_pct`` and
``mean_episode_drawdown_pct``; ``sharpe``,
``sortino``, ``var_95_pct`` and ``expected_shortfall_95_pct`` are computed on all episodes' per-bar returns
concatenated; ``calmar`` is the concatenated returns' annualized mean over the mean episode drawdown;
``win_rate`` and ``average_holding_bars`` pool all round trips; ``round_trips`` is their total;
``early_termination_rate`` is the share of episodes stopped early; ``max_drawdown_pct_worst`` and
``total_return_pct_median`` are added; ``episodes`` counts them. With no episodes every figure but
``episodes`` (0) is NaN.

The baseline policies (flat, buy-and-hold, the signal rule) live in :mod:`envs.policies`.
"""

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from core.spec import HOLD_ACTION
from envs.evaluation import COST_COMPONENTS, EpisodeRecord

__all__ = [
    "AGGREGATE_KEYS",
    "EPISODE_KEYS",
    "TRADING_DAYS_PER_YEAR",
    "RoundTrip",
    "aggregate_metrics",
    "episode_metrics",
    "plot_equity_curves",
    "round_trips",
    "ticker_pnl",
]

TRADING_DAYS_PER_YEAR: Final = 252
_TAIL: Final = 0.05
# Per-bar return dispersion below this is float rounding (equity ~1e5 carries ~1e-11 relative noise).
_ZERO_DISPERSION: Final = 1e-12

EPISODE_KEYS: Final[tuple[str, ...]] = (
    "total_return_pct",
    "max_drawdown_pct",
    "trades_per_day",
    "sharpe",
    "sortino",
    "calmar",
    "win_rate",
    "round_trips",
    "hold_rate",
    "average_holding_bars",
    "turnover",
    "var_95_pct",
    "expected_shortfall_95_pct",
    "episode_length",
    "early_termination",
    *(f"cost_{name}" for name in COST_COMPONENTS),
    "reward",
    "agent_orders",
)
AGGREGATE_KEYS: Final[tuple[str, ...]] = (
    "episodes",
    *(key if key != "early_termination" else "early_termination_rate" for key in EPISODE_KEYS),
    "max_drawdown_pct_worst",
    "total_return_pct_median",
    "mean_episode_return_pct",
    "mean_episode_drawdown_pct",
)


# ------------------------------------------------------------------------------------------------------------
# Return statistics
# ------------------------------------------------------------------------------------------------------------


def _clean(value: float) -> float:
    """A plain float without a negative zero."""
    return float(value) + 0.0


def _annualization(bars_per_session: float) -> float:
    if not (math.isfinite(bars_per_session) and bars_per_session > 0.0):
        message = f"bars_per_session must be a positive number, got {bars_per_session}"
        raise ValueError(message)
    return TRADING_DAYS_PER_YEAR * float(bars_per_session)


def _sharpe(returns: np.ndarray, bars_per_year: float) -> float:
    if returns.shape[0] < 2:
        return 0.0
    spread = float(np.std(returns, ddof=1))
    if spread <= _ZERO_DISPERSION:
        return 0.0
    return _clean(float(np.mean(returns)) / spread * math.sqrt(bars_per_year))


def _sortino(returns: np.ndarray, bars_per_year: float) -> float:
    if returns.shape[0] == 0:
        return 0.0
    downside = math.sqrt(float(np.mean(np.minimum(returns, 0.0) ** 2)))
    if downside <= _ZERO_DISPERSION:
        return 0.0
    return _clean(float(np.mean(returns)) / downside * math.sqrt(bars_per_year))


def _max_drawdown(equity: np.ndarray) -> float:
    """Largest fall below the running peak, as a fraction (>= 0)."""
    if equity.shape[0] == 0:
        return 0.0
    peaks = np.maximum.accumulate(equity)
    return _clean(max(0.0, float(np.max(1.0 - equity / peaks))))


def _calmar(returns: np.ndarray, drawdown: float, bars_per_year: float) -> float:
    if drawdown <= 0.0 or returns.shape[0] == 0:
        return 0.0
    return _clean(float(np.mean(returns)) * bars_per_year / drawdown)


def _tail_risk(returns: np.ndarray) -> tuple[float, float]:
    """Historical VaR and expected shortfall at 95% as positive losses (fractions)."""
    if returns.shape[0] == 0:
        return 0.0, 0.0
    quantile = float(np.quantile(returns, _TAIL))
    tail = returns[returns <= quantile]
    return _clean(-quantile), _clean(-float(np.mean(tail)))


# ------------------------------------------------------------------------------------------------------------
# Ticker PnL and round trips
# ------------------------------------------------------------------------------------------------------------


def _traded_notional(record: EpisodeRecord) -> np.ndarray:
    """``(L, 2)`` traded notional per step and ticker (see the module docstring for the prices)."""
    traded = np.abs(np.diff(record.shares, axis=0))
    prices = record.open[1:].copy()
    if record.length:
        prices[-1] = record.close[-1]
    return traded * prices


def ticker_pnl(record: EpisodeRecord) -> np.ndarray:
    """``(L, 2)`` net PnL of each step split between the two tickers (dollars; rows sum to the equity change).

    See the module docstring: each ticker's price move on its shares, plus the step's remainder (costs and
    fills at other prices) shared by traded notional.
    """
    length = record.length
    if length == 0:
        return np.zeros((0, 2))
    before = record.shares[:-1]
    after = record.shares[1:]
    held = after.copy()
    held[-1] = before[-1]
    opens = record.open[1:]
    closes = record.close[1:]
    previous = record.close[:-1]
    gross = before * (opens - previous) + held * (closes - opens)
    remainder = np.diff(record.equity) - gross.sum(axis=1)
    weights = _traded_notional(record)
    holding = (before != 0.0).astype(np.float64)
    totals = weights.sum(axis=1)
    no_trade = totals <= 0.0
    weights[no_trade] = holding[no_trade]
    totals = weights.sum(axis=1)
    nobody = totals <= 0.0
    weights[nobody] = 1.0
    totals[nobody] = 2.0
    return gross + remainder[:, None] * (weights / totals[:, None])


@dataclass(frozen=True)
class RoundTrip:
    """One closed position of one ticker: opened at step ``opened``, closed at step ``closed`` (1-based)."""

    ticker: int
    opened: int
    closed: int
    side: int
    """+1 long, -1 short."""
    pnl: float
    """Net PnL in dollars, costs included (see the module docstring)."""

    @property
    def holding_bars(self) -> int:
        """Steps from the opening step to the closing step."""
        return self.closed - self.opened


def round_trips(record: EpisodeRecord) -> list[RoundTrip]:
    """Closed round trips of both tickers, in order of closing step (see the module docstring)."""
    pnl = ticker_pnl(record)
    cumulative = np.concatenate((np.zeros((1, 2)), np.cumsum(pnl, axis=0)))
    positions = record.positions
    trips = []
    for ticker in range(2):
        side = np.sign(positions[:, ticker]).astype(np.int64)
        opened: int | None = None
        for step in range(1, record.length + 1):
            was, now = side[step - 1], side[step]
            if was == now:
                continue
            if was != 0 and opened is not None:
                amount = float(cumulative[step, ticker] - cumulative[opened - 1, ticker])
                trips.append(RoundTrip(ticker, opened, step, int(was), amount))
                opened = None
            if now != 0:
                # A trip opened by a sign change starts on the next step (its step went to the closing trip).
                opened = step if was == 0 else step + 1
    return sorted(trips, key=lambda trip: (trip.closed, trip.ticker))


# ------------------------------------------------------------------------------------------------------------
# Metrics
# ------------------------------------------------------------------------------------------------------------


def episode_metrics(record: EpisodeRecord, *, bars_per_session: float) -> dict[str, float]:
    """The metrics of one episode (:data:`EPISODE_KEYS`; definitions in the module docstring).

    ``bars_per_session`` is the number of bars in a full session (390 for one-minute bars): it annualizes
    Sharpe, Sortino and Calmar.
    """
    bars_per_year = _annualization(bars_per_session)
    returns = record.returns
    drawdown = _max_drawdown(record.equity)
    value_at_risk, shortfall = _tail_risk(returns)
    trips = round_trips(record)
    sessions = max(1, record.sessions)
    metrics = {
        "total_return_pct": _clean(100.0 * record.total_return),
        "max_drawdown_pct": 100.0 * drawdown,
        "trades_per_day": record.agent_orders / sessions,
        "sharpe": _sharpe(returns, bars_per_year),
        "sortino": _sortino(returns, bars_per_year),
        "calmar": _calmar(returns, drawdown, bars_per_year),
        "win_rate": sum(trip.pnl > 0.0 for trip in trips) / len(trips) if trips else 0.0,
        "round_trips": float(len(trips)),
        "hold_rate": float(np.mean(record.actions == HOLD_ACTION)) if record.length else 0.0,
        "average_holding_bars": float(np.mean([trip.holding_bars for trip in trips])) if trips else 0.0,
        "turnover": float(_traded_notional(record).sum()) / record.initial_capital / sessions,
        "var_95_pct": 100.0 * value_at_risk,
        "expected_shortfall_95_pct": 100.0 * shortfall,
        "episode_length": float(record.length),
        "early_termination": 1.0 if record.terminated_early else 0.0,
        **{f"cost_{name}": float(record.costs[name]) for name in COST_COMPONENTS},
        "reward": float(record.reward),
        "agent_orders": float(record.agent_orders),
    }
    return {key: float(metrics[key]) for key in EPISODE_KEYS}


def aggregate_metrics(records: Sequence[EpisodeRecord], *, bars_per_session: float) -> dict[str, float]:
    """Scenario-level metrics over ``records`` (:data:`AGGREGATE_KEYS`; rules in the module docstring)."""
    bars_per_year = _annualization(bars_per_session)
    if not records:
        return {key: (0.0 if key == "episodes" else math.nan) for key in AGGREGATE_KEYS}
    per_episode = [episode_metrics(record, bars_per_session=bars_per_session) for record in records]

    def mean(key: str) -> float:
        return float(np.mean([row[key] for row in per_episode]))

    result = {key: mean(key) for key in EPISODE_KEYS if key != "early_termination"}
    returns = np.concatenate([record.returns for record in records])
    trips = [trip for record in records for trip in round_trips(record)]
    value_at_risk, shortfall = _tail_risk(returns)
    mean_drawdown = result["max_drawdown_pct"] / 100.0
    back_to_back = np.concatenate(([1.0], np.cumprod(1.0 + returns)))
    result |= {
        "mean_episode_return_pct": result["total_return_pct"],
        "mean_episode_drawdown_pct": result["max_drawdown_pct"],
        "total_return_pct": 100.0 * (float(back_to_back[-1]) - 1.0),
        "max_drawdown_pct": 100.0 * _max_drawdown(back_to_back),
        "episodes": float(len(records)),
        "sharpe": _sharpe(returns, bars_per_year),
        "sortino": _sortino(returns, bars_per_year),
        "calmar": _calmar(returns, mean_drawdown, bars_per_year),
        "var_95_pct": 100.0 * value_at_risk,
        "expected_shortfall_95_pct": 100.0 * shortfall,
        "win_rate": sum(trip.pnl > 0.0 for trip in trips) / len(trips) if trips else 0.0,
        "round_trips": float(len(trips)),
        "average_holding_bars": float(np.mean([trip.holding_bars for trip in trips])) if trips else 0.0,
        "early_termination_rate": mean("early_termination"),
        "max_drawdown_pct_worst": max(row["max_drawdown_pct"] for row in per_episode),
        "total_return_pct_median": float(np.median([row["total_return_pct"] for row in per_episode])),
    }
    return {key: float(result[key]) for key in AGGREGATE_KEYS}


# ------------------------------------------------------------------------------------------------------------
# Plot
# ------------------------------------------------------------------------------------------------------------


def _equity_paths(records: Sequence[EpisodeRecord]) -> np.ndarray:
    """Equity normalized to 1 at the start, padded with each episode's last value to the longest one."""
    longest = max(record.equity.shape[0] for record in records)
    paths = np.empty((len(records), longest))
    for row, record in enumerate(records):
        normalized = record.equity / record.equity[0]
        paths[row, : normalized.shape[0]] = normalized
        paths[row, normalized.shape[0] :] = normalized[-1]
    return paths


def plot_equity_curves(curves: Mapping[str, Sequence[EpisodeRecord]], path: Path, *, title: str) -> Path:
    """Mean equity path (normalized to 1) per policy over its episodes, with the 10-90% band; a PNG.

    Episodes that end early keep their last equity. A policy without episodes is listed in the legend as
    such. Uses an Agg canvas on a standalone Figure (no pyplot state). Returns ``path``.
    """
    figure = Figure(figsize=(9, 5), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots()
    for name, records in curves.items():
        if not records:
            axes.plot([], [], label=f"{name} (no episodes)")
            continue
        paths = _equity_paths(records)
        steps = np.arange(paths.shape[1])
        label = f"{name} ({len(records)} episodes)"
        (line,) = axes.plot(steps, paths.mean(axis=0), linewidth=1.4, label=label)
        low, high = np.quantile(paths, [0.1, 0.9], axis=0)
        axes.fill_between(steps, low, high, color=line.get_color(), alpha=0.15, linewidth=0)
    axes.axhline(1.0, color="black", linewidth=0.6, linestyle=":")
    axes.set_xlabel("bar of the session")
    axes.set_ylabel("equity / initial equity (mean, 10-90% band)")
    axes.set_title(title)
    axes.legend(fontsize=8, loc="best")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png", dpi=90)
    return path

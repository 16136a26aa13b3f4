"""The dual-ticker intraday trading env: a ``gymnasium.Env`` over precomputed :class:`MarketArrays`.

Everything the step needs is converted in ``__init__`` into Python lists of floats (prices, volumes, regime
scores) and one float32 observation matrix, so ``step()`` is plain float arithmetic: no DataFrame, no I/O,
no numpy call except two scalar writes of the positions into the observation row, and no array allocation
except one block copy when a multi-session episode enters its next session. See
:class:`DualTickerTradingEnv` for the rules.
"""

from typing import Any, SupportsFloat

import gymnasium
import numpy as np
from gymnasium import spaces
from pydantic import BaseModel, ConfigDict, Field

from controllers.reward import AdaptiveRewardController
from envs.execution import BASIS_POINT, ExecutionConfig, impact_cost, proportional_cost
from envs.market_arrays import MarketArrays, require_finite_features

__all__ = [
    "ACTION_MEANINGS",
    "DualTickerTradingEnv",
    "RiskConfig",
    "TradingEnvConfig",
    "decode_action",
]

_FROZEN = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

# Per-ticker action codes: 0 = sell, 1 = hold, 2 = buy; the env action is 3 * code_0 + code_1.
_CODE_NAMES = ("sell", "hold", "buy")
ACTION_MEANINGS: tuple[str, ...] = tuple(
    f"{first}/{second}" for first in _CODE_NAMES for second in _CODE_NAMES
)

# action -> (ticker 0 step, ticker 1 step, both held); steps are -1 (sell), 0 (hold), +1 (buy).
# A dict (not a list) so that a negative or out-of-range action raises instead of wrapping around.
_DECODE: dict[int, tuple[int, int, bool]] = {
    3 * first + second: (first - 1, second - 1, first == 1 and second == 1)
    for first in range(3)
    for second in range(3)
}
_NO_ORDER = _DECODE[4]


def decode_action(action: int) -> tuple[int, int]:
    """Per-ticker steps of an action: ``-1`` sell, ``0`` hold, ``+1`` buy (action = 3 * s0 + s1 + 4)."""
    try:
        first, second, _ = _DECODE[action]
    except (KeyError, TypeError):
        msg = f"action must be an integer in [0, 8], got {action!r}"
        raise ValueError(msg) from None
    return first, second


class RiskConfig(BaseModel):
    """Risk limits enforced inside the env."""

    model_config = _FROZEN

    daily_loss_limit: float = Field(
        0.02,
        gt=0.0,
        lt=1.0,
        description=(
            "When equity at a bar's close falls this share below the session's starting equity, both "
            "positions "
            "are flattened at that close and the agent's orders are ignored until the next session."
        ),
    )
    max_consecutive_losses: int = Field(
        5,
        ge=1,
        description=(
            "After this many losing trades in a row within a session (a trade ends when its position returns "
            "to flat; its result includes its costs), flatten and ignore orders until the next session."
        ),
    )
    max_drawdown: float = Field(
        0.10,
        gt=0.0,
        lt=1.0,
        description="The episode terminates when equity at a close falls this share below its episode peak.",
    )


class TradingEnvConfig(BaseModel):
    """Account, episode, reward and cost settings of :class:`DualTickerTradingEnv`."""

    model_config = _FROZEN

    initial_capital: float = Field(
        100_000.0, gt=0.0, description="Cash at the start of every episode, dollars."
    )
    notional_per_unit: float = Field(
        10_000.0,
        gt=0.0,
        description="Dollar size of one position unit per ticker (positions are -1, 0, +1 units).",
    )
    max_position_share: float = Field(
        0.25,
        gt=0.0,
        le=1.0,
        description="A unit is at most this share of current equity (last close's mark) when it is opened.",
    )
    sessions_per_episode: int = Field(
        1, ge=1, description="Consecutive sessions per episode; the first is drawn at random on reset."
    )
    reward_scale: float = Field(
        100.0,
        gt=0.0,
        description="Reward = reward_scale * PnL / initial_capital (100: PnL in percent of capital).",
    )
    ticket_shaping_scale: float = Field(
        0.01,
        ge=0.0,
        description=(
            "Reward units charged per agent order per unit of the controller's ticket_cost. With the "
            "controller's base ticket cost 0.50 this is 0.005 per order, so trading both tickers costs about "
            "what holding both earns (base hold bonus 0.01)."
        ),
    )
    execution: ExecutionConfig = Field(default_factory=ExecutionConfig, description="Fills and costs.")
    risk: RiskConfig = Field(default_factory=RiskConfig, description="Risk limits.")


_DEFAULT_CONFIG = TradingEnvConfig()


class DualTickerTradingEnv(gymnasium.Env[np.ndarray, np.int64]):
    """Two tickers traded together on one bar clock; one decision per bar; intraday (flat overnight).

    **Actions** ``Discrete(9)``: ``action = 3 * code_0 + code_1`` with per-ticker code 0 = sell, 1 = hold,
    2 = buy (:data:`ACTION_MEANINGS`; ``4`` holds both). Step semantics: *buy* moves a ticker's position one
    level up the ladder short (-1) -> flat (0) -> long (+1), *sell* one level down, *hold* keeps it; buying at
    +1 or selling at -1 sends nothing. (Target semantics, where sell means "be short", would leave no way to
    go flat during a session.) A unit is ``min(notional_per_unit, max_position_share * equity)`` dollars, in
    fractional shares at the fill price. A partial fill (participation cap) leaves a fractional position
    ``units`` in (-1, 1); the next buy or sell moves on from there (up to the next level, or to flat).

    **Observation** ``Box(float32, (2 * F + 2,))``: the market features of both tickers at the decision bar
    (``market.feature_names``), then the two positions in units. Its values come from bar ``t`` and earlier
    only; features are unbounded, positions lie in [-1, 1]. Every call returns an array that no other
    returned observation shares and that the env never writes again: the session's rows are copied into a
    fresh block when the session starts, and each step returns (and fills in the positions of) the next row
    of that block.

    **Timing** An action decided on bar ``t``'s close fills at the open of bar ``t + latency_bars``. Each
    step advances one bar: orders due at the new bar's open fill, then everything is marked at its close.
    The decision bars of a session are all its bars but the last; at the last bar's close both positions are
    flattened (with costs), orders still pending are cancelled, and the next observation is the first bar of
    the next session. Sessions with a single bar are skipped.

    **Costs** (:mod:`envs.execution`): ticket, spread and fees, square-root impact against the fill bar's
    volume, participation cap with the remainder cancelled. Flattening orders fill at the close, uncapped.
    Per-episode totals are in :meth:`cost_breakdown` and in the final step's ``info``.

    **Reward** of a step::

        reward = reward_scale * (equity_now - equity_before) / initial_capital          # net PnL, after costs
                 + controller.hold_bonus                       if the step is idle (agent_orders == 0)
                 - controller.ticket_cost * ticket_shaping_scale * agent_orders

    ``equity`` is cash plus positions marked at the bar's close; ``agent_orders`` counts the agent's orders
    that filled in this step (flattening orders are not counted). A step is **idle** when none filled: a
    ``hold``, but also a ``buy`` while long, a ``sell`` while short, or any order while trading is blocked by
    a risk stop. With a controller, the env reads its ``hold_bonus`` and ``ticket_cost`` every step; the
    controller changes them between rollouts (:mod:`controllers.reward`) and the env never updates it. Without one,
    the reward is the PnL term alone. With ``latency_bars > 1`` the orders that fill in a step were decided
    ``latency_bars - 1`` steps earlier.
    A non-finite reward raises ``FloatingPointError`` naming the bar.

    **Risk** (:class:`RiskConfig`), checked at each close in this order: the maximum drawdown (against the
    episode's peak close-to-close equity) flattens and terminates the episode; the daily loss limit (against
    the session's starting equity) and the consecutive-loss limit flatten both positions at that close and
    ignore the agent's orders (and cancel pending ones) until the next session. A trade ends when its
    position returns to flat; its result counts every cost of its orders. The loss streak restarts every
    session.

    **Episodes** ``sessions_per_episode`` consecutive (usable) sessions starting at a session drawn with
    ``self.np_random`` (or ``options={"start_session": k}``, an index into :attr:`session_starts`).
    ``truncated`` is True on the step taken at the last decision bar of the last session; ``terminated`` is
    True only on the maximum drawdown. Call ``reset()`` after either.

    ``info`` is a fresh dict per step (wrappers such as SB3's Monitor write into it): ``equity`` every step;
    on the final step also the episode's cost breakdown, order counts and risk-stop counts.
    """

    def __init__(
        self,
        market: MarketArrays,
        *,
        config: TradingEnvConfig = _DEFAULT_CONFIG,
        controller: AdaptiveRewardController | None = None,
    ) -> None:
        require_finite_features(market)
        self.market = market
        self.config = config
        self.controller = controller
        execution = config.execution
        risk = config.risk

        sessions = market.session_index
        boundaries = np.flatnonzero(np.diff(sessions)) + 1
        firsts = np.concatenate(([0], boundaries))
        lasts = np.concatenate((boundaries - 1, [market.bars - 1]))
        usable = lasts > firsts
        self._session_firsts: list[int] = [int(index) for index in firsts[usable]]
        self._session_lasts: list[int] = [int(index) for index in lasts[usable]]
        if len(self._session_firsts) < config.sessions_per_episode:
            msg = (
                f"the market has {len(self._session_firsts)} sessions with at least two bars, fewer than "
                f"sessions_per_episode={config.sessions_per_episode}"
            )
            raise ValueError(msg)

        feature_count = market.features.shape[1]
        matrix = np.zeros((market.bars, feature_count + 2), dtype=np.float32)
        matrix[:, :feature_count] = market.features
        self._matrix = matrix
        self._position_column = feature_count
        # Observation rows of the current session: views of a fresh copy made when the session starts, so
        # every returned observation owns memory no other returned observation shares (see the class doc).
        self._session_rows: list[np.ndarray] = []
        self._session_first = 0
        # Features are unbounded: the largest float32 stands in for infinity, which Gymnasium's checker flags.
        bound = np.full(feature_count + 2, np.finfo(np.float32).max, dtype=np.float32)
        bound[feature_count:] = 1.0
        self.observation_space = spaces.Box(low=-bound, high=bound, dtype=np.float32)
        self.action_space = spaces.Discrete(9)

        self._open0: list[float] = market.open[:, 0].tolist()
        self._open1: list[float] = market.open[:, 1].tolist()
        self._close0: list[float] = market.close[:, 0].tolist()
        self._close1: list[float] = market.close[:, 1].tolist()
        self._closes: list[tuple[float, float]] = list(zip(self._close0, self._close1, strict=True))
        self._volume0: list[float] = market.volume[:, 0].tolist()
        self._volume1: list[float] = market.volume[:, 1].tolist()

        self._capital = float(config.initial_capital)
        self._reward_factor = float(config.reward_scale) / self._capital
        self._unit_notional = float(config.notional_per_unit)
        self._unit_share = float(config.max_position_share)
        self._ticket_shaping = float(config.ticket_shaping_scale)
        self._ticket = float(execution.ticket_cost)
        self._spread_bps = float(execution.spread_bps)
        self._fee_bps = float(execution.fee_bps)
        self._proportional_rate = (self._spread_bps + self._fee_bps) * BASIS_POINT
        self._impact = float(execution.impact_coefficient)
        self._participation = float(execution.participation_cap)
        self._latency = int(execution.latency_bars)
        self._daily_keep = 1.0 - float(risk.daily_loss_limit)
        self._drawdown_keep = 1.0 - float(risk.max_drawdown)
        self._max_losses = int(risk.max_consecutive_losses)
        # Orders decided but not yet due; None when latency is one bar (an order fills in its own step).
        self._ring: list[tuple[int, int, bool]] | None = (
            None if self._latency == 1 else [_NO_ORDER] * self._latency
        )
        self._ring_slot = 0

        self._t: int | None = None
        self._last = 0
        self._session_cursor = 0
        self._final_session = 0
        self._cash = self._capital
        self._equity = self._capital
        self._peak = self._capital
        self._drawdown_floor = self._capital * self._drawdown_keep
        self._daily_floor = self._capital * self._daily_keep
        self._blocked = False
        self._losses = 0
        self._shares0 = 0.0
        self._shares1 = 0.0
        self._units0 = 0.0
        self._units1 = 0.0
        self._trade_cash0 = 0.0
        self._trade_cash1 = 0.0
        self._reset_episode_totals()

    # ----------------------------------------------------------------------------------------------------
    # Public read-only state

    @property
    def session_starts(self) -> list[int]:
        """First bar index of each usable session (at least two bars), in time order."""
        return list(self._session_firsts)

    @property
    def bar(self) -> int | None:
        """Current decision bar index (None before the first reset and after an episode ended)."""
        return self._t

    @property
    def equity(self) -> float:
        """Cash plus positions marked at the last close, dollars."""
        return self._equity

    @property
    def positions(self) -> tuple[float, float]:
        """Positions of the two tickers in units (in [-1, 1])."""
        return self._units0, self._units1

    @property
    def shares(self) -> tuple[float, float]:
        """Positions of the two tickers in (fractional) shares."""
        return self._shares0, self._shares1

    @property
    def agent_orders(self) -> int:
        """The agent's orders filled so far in this episode (flattening orders not counted)."""
        return self._agent_orders

    def cost_breakdown(self) -> dict[str, float]:
        """This episode's costs so far in dollars: ``ticket``, ``spread_fee``, ``impact`` and ``total``."""
        ticket = self._ticket * (self._agent_orders + self._flatten_orders)
        return {
            "ticket": ticket,
            "spread_fee": self._cost_spread_fee,
            "impact": self._cost_impact,
            "total": ticket + self._cost_spread_fee + self._cost_impact,
        }

    # ----------------------------------------------------------------------------------------------------
    # Episode control

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start an episode, flat with full cash, at a seeded random session or options["start_session"]."""
        super().reset(seed=seed)
        last_start = len(self._session_firsts) - self.config.sessions_per_episode
        if options is not None and "start_session" in options:
            start = options["start_session"]
            if (
                isinstance(start, bool)
                or not isinstance(start, int | np.integer)
                or not 0 <= start <= last_start
            ):
                msg = f"options['start_session'] must be an int in [0, {last_start}], got {start!r}"
                raise ValueError(msg)
            start = int(start)
        else:
            start = int(self.np_random.integers(0, last_start + 1))
        self._final_session = start + self.config.sessions_per_episode - 1
        self._cash = self._capital
        self._equity = self._capital
        self._peak = self._capital
        self._drawdown_floor = self._capital * self._drawdown_keep
        self._shares0 = self._shares1 = 0.0
        self._units0 = self._units1 = 0.0
        self._trade_cash0 = self._trade_cash1 = 0.0
        self._reset_episode_totals()
        t = self._start_session(start)
        info = {"equity": self._equity, "session": int(self.market.session_index[t]), "bar": t}
        return self._session_rows[0], info

    def _reset_episode_totals(self) -> None:
        self._cost_spread_fee = 0.0
        self._cost_impact = 0.0
        self._agent_orders = 0
        self._flatten_orders = 0
        self._partial_fills = 0
        self._daily_loss_stops = 0
        self._loss_streak_stops = 0

    def _start_session(self, cursor: int) -> int:
        """Enter usable session ``cursor`` (flat, orders cleared, limits re-based); return its first bar."""
        self._session_cursor = cursor
        first = self._session_firsts[cursor]
        self._t = first
        self._last = self._session_lasts[cursor]
        self._session_first = first
        self._session_rows = list(self._matrix[first : self._last + 1].copy())
        self._daily_floor = self._equity * self._daily_keep
        self._blocked = False
        self._losses = 0
        if self._ring is not None:
            self._ring[:] = [_NO_ORDER] * self._latency
            self._ring_slot = 0
        return first

    # ----------------------------------------------------------------------------------------------------
    # Slow paths: flattening at the close (session end, risk stops)

    def _close_at(self, shares: float, price: float, volume: float, trade_cash: float) -> None:
        """Close a position of ``shares`` at ``price``, uncapped; book costs and the closed trade's result."""
        quantity = -shares
        proportional = proportional_cost(quantity * price, spread_bps=self._spread_bps, fee_bps=self._fee_bps)
        impact = impact_cost(quantity, price, volume, impact_coefficient=self._impact)
        cost = self._ticket + proportional + impact
        self._cash -= quantity * price + cost
        self._cost_spread_fee += proportional
        self._cost_impact += impact
        self._flatten_orders += 1
        if trade_cash - quantity * price - cost < 0.0:
            self._losses += 1
        else:
            self._losses = 0

    def _flatten(self, t: int) -> float:
        """Close both positions at bar ``t``'s close; return the new equity (all cash)."""
        if self._shares0 != 0.0:
            self._close_at(self._shares0, self._close0[t], self._volume0[t], self._trade_cash0)
            self._shares0 = 0.0
        if self._shares1 != 0.0:
            self._close_at(self._shares1, self._close1[t], self._volume1[t], self._trade_cash1)
            self._shares1 = 0.0
        self._units0 = self._units1 = 0.0
        self._trade_cash0 = self._trade_cash1 = 0.0
        if self._ring is not None:
            self._ring[:] = [_NO_ORDER] * self._latency
        return self._cash

    def _episode_info(self, info: dict[str, Any], *, drawdown_stop: bool) -> None:
        info["episode_return"] = self._equity / self._capital - 1.0
        costs = self.cost_breakdown()
        info["cost_ticket"] = costs["ticket"]
        info["cost_spread_fee"] = costs["spread_fee"]
        info["cost_impact"] = costs["impact"]
        info["cost_total"] = costs["total"]
        info["agent_orders"] = self._agent_orders
        info["flatten_orders"] = self._flatten_orders
        info["partial_fills"] = self._partial_fills
        info["daily_loss_stops"] = self._daily_loss_stops
        info["loss_streak_stops"] = self._loss_streak_stops
        info["drawdown_stop"] = drawdown_stop

    def _bad_reward(self, t: int, pnl: float, reward: float) -> FloatingPointError:
        controller = self.controller
        shaping = (
            f"hold_bonus={controller.hold_bonus}, ticket_cost={controller.ticket_cost}"
            if controller is not None
            else "no controller"
        )
        msg = (
            f"reward is not finite at bar {t} ({self.market.timestamps[t]} UTC): reward={reward}, "
            f"pnl={pnl}, {shaping}"
        )
        return FloatingPointError(msg)

    # ----------------------------------------------------------------------------------------------------
    # The hot path

    def step(self, action: int | np.int64) -> tuple[np.ndarray, SupportsFloat, bool, bool, dict[str, Any]]:
        """Advance one bar: fill due orders at its open, mark at its close, apply the risk limits."""
        try:
            decided = self._t
            t = decided + 1  # type: ignore[operator]
        except TypeError:
            msg = "step() called without a running episode: call reset() (also after terminated or truncated)"
            raise RuntimeError(msg) from None
        try:
            decoded = _DECODE[action]  # type: ignore[index]  # numpy integers hash like ints
        except (KeyError, TypeError):
            msg = f"action must be an integer in [0, 8], got {action!r}"
            raise ValueError(msg) from None
        ring = self._ring
        if ring is None:
            due = decoded
        else:
            slot = self._ring_slot
            ring[slot] = decoded
            slot += 1
            if slot == self._latency:
                slot = 0
            self._ring_slot = slot
            due = ring[slot]
        self._t = t
        equity_before = self._equity
        cash = self._cash
        shares0 = self._shares0
        shares1 = self._shares1
        orders = 0
        proportional_paid = 0.0
        impact_paid = 0.0
        closed_trade = False
        if due is not _NO_ORDER and not self._blocked:
            # Ticker 0 and ticker 1 run the same inlined code (mirrors envs.execution; tests compare both).
            direction = due[0]
            if direction:
                units = self._units0
                if direction > 0:
                    target = 0.0 if units < 0.0 else 1.0
                else:
                    target = 0.0 if units > 0.0 else -1.0
                if target != units:
                    price = self._open0[t]
                    if target == 0.0:
                        wanted = -shares0
                    else:
                        unit = self._unit_share * equity_before
                        if unit > self._unit_notional:
                            unit = self._unit_notional
                        wanted = (target - units) * unit / price
                    volume = self._volume0[t]
                    limit = self._participation * volume
                    if wanted > limit:
                        filled = limit
                    elif wanted < -limit:
                        filled = -limit
                    else:
                        filled = wanted
                    if filled != 0.0:
                        size = filled if filled > 0.0 else -filled
                        notional = size * price
                        proportional = self._proportional_rate * notional
                        impact = self._impact * (size / volume) ** 0.5 * notional
                        cost = self._ticket + proportional + impact
                        flow = filled * price + cost
                        cash -= flow
                        shares0 += filled
                        proportional_paid += proportional
                        impact_paid += impact
                        orders += 1
                        if filled == wanted:
                            self._units0 = target
                        else:
                            self._units0 = units + filled / wanted * (target - units)
                            self._partial_fills += 1
                        if self._units0 == 0.0:
                            shares0 = 0.0
                            if self._trade_cash0 - flow < 0.0:
                                self._losses += 1
                                closed_trade = True
                            else:
                                self._losses = 0
                            self._trade_cash0 = 0.0
                        else:
                            self._trade_cash0 -= flow
            direction = due[1]
            if direction:
                units = self._units1
                if direction > 0:
                    target = 0.0 if units < 0.0 else 1.0
                else:
                    target = 0.0 if units > 0.0 else -1.0
                if target != units:
                    price = self._open1[t]
                    if target == 0.0:
                        wanted = -shares1
                    else:
                        unit = self._unit_share * equity_before
                        if unit > self._unit_notional:
                            unit = self._unit_notional
                        wanted = (target - units) * unit / price
                    volume = self._volume1[t]
                    limit = self._participation * volume
                    if wanted > limit:
                        filled = limit
                    elif wanted < -limit:
                        filled = -limit
                    else:
                        filled = wanted
                    if filled != 0.0:
                        size = filled if filled > 0.0 else -filled
                        notional = size * price
                        proportional = self._proportional_rate * notional
                        impact = self._impact * (size / volume) ** 0.5 * notional
                        cost = self._ticket + proportional + impact
                        flow = filled * price + cost
                        cash -= flow
                        shares1 += filled
                        proportional_paid += proportional
                        impact_paid += impact
                        orders += 1
                        if filled == wanted:
                            self._units1 = target
                        else:
                            self._units1 = units + filled / wanted * (target - units)
                            self._partial_fills += 1
                        if self._units1 == 0.0:
                            shares1 = 0.0
                            if self._trade_cash1 - flow < 0.0:
                                self._losses += 1
                                closed_trade = True
                            else:
                                self._losses = 0
                            self._trade_cash1 = 0.0
                        else:
                            self._trade_cash1 -= flow
            if orders:
                self._cash = cash
                self._shares0 = shares0
                self._shares1 = shares1
                self._agent_orders += orders
                self._cost_spread_fee += proportional_paid
                self._cost_impact += impact_paid
        close0, close1 = self._closes[t]
        equity = cash + shares0 * close0 + shares1 * close1
        terminated = False
        if equity > self._peak:
            self._peak = equity
            self._drawdown_floor = equity * self._drawdown_keep
        elif equity < self._drawdown_floor:
            equity = self._flatten(t)
            terminated = True
        if not (terminated or self._blocked):
            if equity < self._daily_floor:
                equity = self._flatten(t)
                self._blocked = True
                self._daily_loss_stops += 1
            elif closed_trade and self._losses >= self._max_losses:
                equity = self._flatten(t)
                self._blocked = True
                self._loss_streak_stops += 1
        truncated = False
        if t == self._last:
            equity = self._flatten(t)
            if self._session_cursor == self._final_session:
                truncated = True
            else:
                self._equity = equity
                t = self._start_session(self._session_cursor + 1)
        self._equity = equity
        pnl = equity - equity_before
        reward = pnl * self._reward_factor
        shaper = self.controller
        if shaper is not None:
            if orders:
                reward -= shaper.ticket_cost * self._ticket_shaping * orders
            else:
                reward += shaper.hold_bonus
        if reward - reward != 0.0:
            raise self._bad_reward(decided + 1, pnl, reward)  # type: ignore[operator]
        observation = self._session_rows[t - self._session_first]
        units = self._units0
        if units != 0.0:
            observation[self._position_column] = units
        units = self._units1
        if units != 0.0:
            observation[self._position_column + 1] = units
        info = {"equity": equity}
        if terminated or truncated:
            self._episode_info(info, drawdown_stop=terminated)
            self._t = None
        return observation, reward, terminated, truncated, info

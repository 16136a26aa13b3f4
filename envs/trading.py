"""The dual-ticker intraday trading env: a ``gymnasium.Env`` over precomputed :class:`MarketArrays`.

Everything the step needs is converted in ``__init__`` into Python lists of floats (prices, volumes, regime
scores) and one float32 observation matrix, so ``step()`` is plain float arithmetic: no DataFrame, no I/O,
no numpy call except two scalar writes of the positions into the observation row, and no array allocation
except one block copy when a multi-session episode enters its next session. See
:class:`DualTickerTradingEnv` for the rules.

The module is one class (about 480 of its lines) and is kept whole on purpose: ``step()`` and the helpers it
calls on every bar (fills, delays, risk stops) share the env's private state, and splitting them into mixins
or other modules would either spread one rule set over several files or add a lookup per bar on the
hottest path of training (``benchmarks/bench_env.py``). Its settings live in :mod:`envs.trading_config`, its
spaces come from :class:`core.spec.AgentSpec`.
"""

from typing import Any, SupportsFloat

import gymnasium
import numpy as np

from controllers.reward import AdaptiveRewardController
from core.spec import ACTION_MEANINGS, HOLD_ACTION
from envs.execution import BASIS_POINT, impact_cost, proportional_cost
from envs.market_arrays import MarketArrays, require_finite_features
from envs.trading_config import TradingEnvConfig

__all__ = [
    "ACTION_MEANINGS",
    "DualTickerTradingEnv",
    "decode_action",
]

# action -> (ticker 0 step, ticker 1 step); steps are -1.0 (sell), 0.0 (hold), +1.0 (buy). Floats, because
# the order path compares them with float positions (a float-int comparison is several times slower).
# A dict (not a list) so that a negative or out-of-range action raises instead of wrapping around.
_Order = tuple[float, float]
_DECODE: dict[int, _Order] = {
    3 * first + second: (float(first - 1), float(second - 1)) for first in range(3) for second in range(3)
}
_NO_ORDER = _DECODE[HOLD_ACTION]  # compared by identity: the one order that sends nothing
_NO_EPISODE = "step() called without a running episode: call reset() (also after terminated or truncated)"


def _invalid_action(action: object) -> ValueError:
    return ValueError(f"action must be an integer in [0, 8], got {action!r}")


def decode_action(action: int) -> tuple[int, int]:
    """Per-ticker steps of an action: ``-1`` sell, ``0`` hold, ``+1`` buy (action = 3 * s0 + s1 + 4)."""
    try:
        first, second = _DECODE[action]
    except (KeyError, TypeError):
        raise _invalid_action(action) from None
    return int(first), int(second)


class _Leg:
    """One ticker's bar series (as Python floats) and its position: the env's per-ticker state.

    Both tickers run the same order code over one of these, so that code is written once. Slots, because
    the hot path reads and writes these fields on every order and slot access is the cheapest attribute.
    """

    __slots__ = (
        "close",
        "fill_impact",
        "fill_proportional",
        "limit",
        "open",
        "shares",
        "trade_cash",
        "units",
        "volume",
    )

    def __init__(self, market: MarketArrays, ticker: int, participation_cap: float) -> None:
        self.open: list[float] = market.open[:, ticker].tolist()
        self.close: list[float] = market.close[:, ticker].tolist()
        self.volume: list[float] = market.volume[:, ticker].tolist()
        # Most shares an order may fill at each bar: the participation cap, multiplied once, not per order.
        self.limit = [participation_cap * volume for volume in self.volume]
        self.units = 0.0  # position in units, in [-1, 1]
        self.shares = 0.0  # position in (fractional) shares
        self.trade_cash = 0.0  # net cash of the open trade so far (costs included); its result at the close
        # Spread-and-fee and impact costs of this leg's latest fill, which step() reads right after it.
        self.fill_proportional = 0.0
        self.fill_impact = 0.0

    def clear(self) -> None:
        """Flat with no open trade (the caller has booked the closing order, if any)."""
        self.units = 0.0
        self.shares = 0.0
        self.trade_cash = 0.0


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

    **Risk** (:class:`~envs.trading_config.RiskConfig`), checked at each close in this order: the maximum
    drawdown (against the
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

        # Not ``self.spec``: gymnasium.Env reserves that name for its registration EnvSpec.
        self.agent_spec = market.spec
        feature_count = self.agent_spec.feature_count
        matrix = np.zeros((market.bars, self.agent_spec.observation_size), dtype=np.float32)
        matrix[:, :feature_count] = market.features
        self._matrix = matrix
        self._position_column = self.agent_spec.position_columns[0]
        # Observation rows of the current session: views of a fresh copy made when the session starts, so
        # every returned observation owns memory no other returned observation shares (see the class doc).
        self._session_rows: list[np.ndarray] = []
        self._session_first = 0
        self.observation_space = self.agent_spec.observation_space()
        self.action_space = self.agent_spec.action_space()

        participation_cap = float(execution.participation_cap)
        self._legs = (_Leg(market, 0, participation_cap), _Leg(market, 1, participation_cap))
        # Both closes of a bar in one lookup: marking to market reads them every step.
        leg0, leg1 = self._legs
        self._closes: list[tuple[float, float]] = list(zip(leg0.close, leg1.close, strict=True))

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
        self._latency = int(execution.latency_bars)
        self._daily_keep = 1.0 - float(risk.daily_loss_limit)
        self._drawdown_keep = 1.0 - float(risk.max_drawdown)
        self._max_losses = int(risk.max_consecutive_losses)
        # Orders decided but not yet due; None when latency is one bar (an order fills in its own step).
        self._ring: list[_Order] | None = (
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
        leg0, leg1 = self._legs
        return leg0.units, leg1.units

    @property
    def shares(self) -> tuple[float, float]:
        """Positions of the two tickers in (fractional) shares."""
        leg0, leg1 = self._legs
        return leg0.shares, leg1.shares

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
        for leg in self._legs:
            leg.clear()
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

    def _close_leg(self, leg: _Leg, t: int) -> None:
        """Close a ticker's position at bar ``t``'s close, uncapped; book its costs and the trade's result."""
        quantity = -leg.shares
        price = leg.close[t]
        volume = leg.volume[t]
        proportional = proportional_cost(quantity * price, spread_bps=self._spread_bps, fee_bps=self._fee_bps)
        impact = impact_cost(quantity, price, volume, impact_coefficient=self._impact)
        cost = self._ticket + proportional + impact
        self._cash -= quantity * price + cost
        self._cost_spread_fee += proportional
        self._cost_impact += impact
        self._flatten_orders += 1
        if leg.trade_cash - quantity * price - cost < 0.0:
            self._losses += 1
        else:
            self._losses = 0

    def _flatten(self, t: int) -> float:
        """Close both positions at bar ``t``'s close; return the new equity (all cash)."""
        for leg in self._legs:
            if leg.shares != 0.0:
                self._close_leg(leg, t)
            leg.clear()
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
    #
    # step() reads as its stages: fill, mark to market, risk limits, session end, reward, observation. The
    # per-ticker order code is one helper (_fill_leg) run for each ticker, and the rare paths (latency ring,
    # risk stops, flattening, episode summary) are helpers too. The rest stays inline on locals: at a few
    # microseconds a step, one more Python call per step costs about 5% (benchmarks/bench_env.py).

    def step(self, action: int | np.int64) -> tuple[np.ndarray, SupportsFloat, bool, bool, dict[str, Any]]:
        """Advance one bar: fill due orders at its open, mark at its close, apply the risk limits."""
        try:
            t = self._t + 1  # type: ignore[operator]
        except TypeError:
            raise RuntimeError(_NO_EPISODE) from None
        try:
            due = _DECODE[action]  # type: ignore[index]  # numpy integers hash like ints
        except (KeyError, TypeError):
            raise _invalid_action(action) from None
        if self._ring is not None:
            due = self._delay(due)
        self._t = t
        equity_before = self._equity
        leg0, leg1 = self._legs

        # Fill the orders due at this bar's open, ticker by ticker; a risk stop ignores them until the next
        # session. A step towards the ladder's end the ticker already holds (units == step) sends nothing:
        # tested here, as a third of random orders are such, and a call costs more than the test.
        orders = 0
        if due is not _NO_ORDER and not self._blocked:
            step0, step1 = due
            proportional = impact = 0.0
            if step0 and leg0.units != step0 and self._fill_leg(leg0, step0, t, equity_before):
                orders = 1
                proportional = leg0.fill_proportional
                impact = leg0.fill_impact
            if step1 and leg1.units != step1 and self._fill_leg(leg1, step1, t, equity_before):
                orders += 1
                proportional += leg1.fill_proportional
                impact += leg1.fill_impact
            if orders:
                # The step's costs go into the episode totals in one addition, as they always have: adding
                # each fill's separately would round differently and change cost_breakdown() in the last bits.
                self._agent_orders += orders
                self._cost_spread_fee += proportional
                self._cost_impact += impact

        # Mark to market at the close, then the risk limits in the documented order. The streak needs no
        # "a trade closed" flag: trading unblocked at the step's start means the streak was below its limit.
        close0, close1 = self._closes[t]
        equity = self._cash + leg0.shares * close0 + leg1.shares * close1
        terminated = False
        if equity > self._peak:
            self._peak = equity
            self._drawdown_floor = equity * self._drawdown_keep
        elif equity < self._drawdown_floor:
            equity = self._flatten(t)
            terminated = True
        if not (terminated or self._blocked):
            if equity < self._daily_floor or self._losses >= self._max_losses:
                equity = self._stop_session(t, equity)

        # The session's last bar: flatten, then end the episode or go on at the next session's first bar.
        row = t
        truncated = False
        if t == self._last:
            equity = self._flatten(t)
            truncated = self._session_cursor == self._final_session
            if not truncated:
                self._equity = equity  # the next session's daily floor is based on it
                row = self._start_session(self._session_cursor + 1)
        self._equity = equity

        # Reward: net PnL, plus the controller's shaping (read every step: it changes between rollouts).
        pnl = equity - equity_before
        reward = pnl * self._reward_factor
        shaper = self.controller
        if shaper is not None:
            if orders:
                reward -= shaper.ticket_cost * self._ticket_shaping * orders
            else:
                reward += shaper.hold_bonus
        if reward - reward != 0.0:  # inf or nan, without a function call
            raise self._bad_reward(t, pnl, reward)

        # The next decision bar's row, a fresh copy whose position cells are zero: only held ones are written.
        observation = self._session_rows[row - self._session_first]
        column = self._position_column
        units = leg0.units
        if units != 0.0:
            observation[column] = units
        units = leg1.units
        if units != 0.0:
            observation[column + 1] = units
        info = {"equity": equity}
        if terminated or truncated:
            self._episode_info(info, drawdown_stop=terminated)
            self._t = None
        return observation, reward, terminated, truncated, info

    def _delay(self, decided: _Order) -> _Order:
        """Queue the order just decided; return the one decided ``latency_bars - 1`` steps ago, now due."""
        ring: list[_Order] = self._ring  # type: ignore[assignment]  # only called with a ring
        slot = self._ring_slot
        ring[slot] = decided
        slot += 1
        if slot == self._latency:
            slot = 0
        self._ring_slot = slot
        return ring[slot]

    def _fill_leg(self, leg: _Leg, direction: float, t: int, equity_before: float) -> bool:
        """Fill one ticker's order (``direction`` +1.0 buy, -1.0 sell) at bar ``t``'s open; False if none did.

        Only called for an order that moves the position (``leg.units != direction``). Books the cash, the
        position, a partial fill and, when the position returns to flat, the trade's result in the loss
        streak; leaves the fill's costs in ``leg.fill_proportional`` and ``leg.fill_impact`` for ``step()``
        to add to the episode totals. The cost formulas are :mod:`envs.execution`'s, inlined (a call per
        formula would cost more than the maths); the tests compare the two.
        """
        units = leg.units
        if direction > 0.0:
            target = 0.0 if units < 0.0 else 1.0
        else:
            target = 0.0 if units > 0.0 else -1.0
        price = leg.open[t]
        if target == 0.0:
            wanted = -leg.shares
        else:
            unit = self._unit_share * equity_before
            if unit > self._unit_notional:
                unit = self._unit_notional
            wanted = (target - units) * unit / price
        limit = leg.limit[t]
        if wanted > limit:
            filled = limit
        elif wanted < -limit:
            filled = -limit
        else:
            filled = wanted
        if filled == 0.0:
            return False

        size = filled if filled > 0.0 else -filled
        notional = size * price
        proportional = self._proportional_rate * notional
        impact = self._impact * (size / leg.volume[t]) ** 0.5 * notional
        cost = self._ticket + proportional + impact
        flow = filled * price + cost
        self._cash -= flow
        leg.fill_proportional = proportional
        leg.fill_impact = impact
        if filled == wanted:
            units = target
        else:
            units += filled / wanted * (target - units)
            self._partial_fills += 1
        leg.units = units
        if units != 0.0:
            leg.shares += filled
            leg.trade_cash -= flow
            return True
        # Back to flat: the trade is over, and its result (costs included) extends or ends the loss streak.
        if leg.trade_cash - flow < 0.0:
            self._losses += 1
        else:
            self._losses = 0
        leg.shares = 0.0
        leg.trade_cash = 0.0
        return True

    def _stop_session(self, t: int, equity: float) -> float:
        """Daily-loss or loss-streak stop: flatten at bar ``t``'s close; ignore orders until the next session.

        ``step()`` calls this only when trading was not blocked at the step's start, so the streak was below
        its limit then: reaching it now means a losing trade closed in this step, which is RiskConfig's rule.
        """
        if equity < self._daily_floor:
            self._daily_loss_stops += 1
        else:
            self._loss_streak_stops += 1
        self._blocked = True
        return self._flatten(t)

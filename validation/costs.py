"""Transaction-cost analysis (TCA) of evaluated episodes: what trading cost, per order and per traded dollar.

Read from :class:`~envs.evaluation.EpisodeRecord` rows and the episode's bar volumes, nothing re-simulated:

- **Orders**: a ticker's share count changing on a step. The step ``k`` change (row ``k`` minus row ``k - 1``)
  of an agent order fills at bar ``k``'s open; the last step of an episode also flattens at its close, so its
  change is counted as a flattening order (an agent order on that same step is folded into it, and one that
  the flatten reverses nets to nothing). Approximation: a mid-session risk stop (daily loss, loss streak)
  also flattens at a bar's close; that change is counted here like an agent order, priced at the open.
- **Cost per order** by component (ticket, spread and fees, impact, total): the env's cost totals divided by the
  orders that paid them (agent and flattening orders), and per traded dollar in basis points.
- **Participation**: filled shares over the bar's volume, per agent order (a zero-volume bar counts as 1).
- **Partial-fill share**: orders the participation cap cut short, over agent orders.
- **Slippage against the decision price**: the agent decides on bar ``k - 1``'s close and fills at bar ``k``'s
  open; ``sign(order) * (open_k / close_(k-1) - 1)`` in basis points, positive when the move went against the
  order. Spread, fees and impact come on top of it (they are the cost components above).
"""

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from envs.evaluation import COST_COMPONENTS, EpisodeRecord

__all__ = ["TransactionCosts", "transaction_costs"]


@dataclass(frozen=True)
class TransactionCosts:
    """The cost breakdown of a set of episodes (see the module docstring); NaN where nothing traded."""

    episodes: int
    agent_orders: int
    flatten_orders: int
    traded_notional: float
    """Dollars traded, agent and flattening orders together."""
    cost_dollars: Mapping[str, float]
    cost_per_order: Mapping[str, float]
    cost_bps: Mapping[str, float]
    participation_mean: float
    participation_p95: float
    participation_max: float
    partial_fill_share: float
    slippage_bps_mean: float
    slippage_bps_median: float
    slippage_bps_p95: float

    def as_dict(self) -> dict[str, object]:
        """A JSON-ready view (NaN as None)."""

        def clean(value: object) -> object:
            if isinstance(value, float) and not np.isfinite(value):
                return None
            if isinstance(value, Mapping):
                return {key: clean(item) for key, item in value.items()}
            return value

        return {key: clean(value) for key, value in asdict(self).items()}


def _quantile(values: np.ndarray, q: float) -> float:
    return float(np.quantile(values, q)) if values.size else float("nan")


def transaction_costs(records: Sequence[EpisodeRecord], volumes: Sequence[np.ndarray]) -> TransactionCosts:
    """The TCA of ``records``; ``volumes[i]`` holds episode ``i``'s bar volumes, ``(bars, 2)`` from its first bar.

    Raises ``ValueError`` when the two do not pair up (count, or fewer volume rows than the episode's bars).
    """
    if len(records) != len(volumes):
        message = f"{len(records)} episodes but {len(volumes)} volume arrays"
        raise ValueError(message)
    participation: list[np.ndarray] = []
    slippage: list[np.ndarray] = []
    notional = 0.0
    agent_orders = flatten_orders = partial = 0
    dollars = dict.fromkeys(COST_COMPONENTS, 0.0)
    for index, (record, volume) in enumerate(zip(records, volumes, strict=True)):
        rows = record.length + 1
        if volume.shape[0] < rows:
            message = f"episode {index} ({record.session}) has {rows} bars but {volume.shape[0]} volume rows"
            raise ValueError(message)
        change = np.diff(record.shares, axis=0)  # (L, 2): step k is row k - 1 here
        if change.shape[0] == 0:
            continue
        agent = change[:-1]
        filled = agent != 0.0
        fill_price = record.open[1:-1]
        decision_price = record.close[:-2]
        notional += float(np.abs(agent * fill_price).sum())
        notional += float(np.abs(change[-1] * record.close[-1]).sum())
        bar_volume = volume[1 : rows - 1]
        with np.errstate(divide="ignore", invalid="ignore"):
            share = np.where(bar_volume > 0.0, np.abs(agent) / bar_volume, 1.0)
        participation.append(np.minimum(share[filled], 1.0))
        moved = np.sign(agent) * (fill_price / decision_price - 1.0) * 1e4
        slippage.append(moved[filled])
        agent_orders += record.agent_orders
        flatten_orders += record.flatten_orders
        partial += record.partial_fills
        for name in COST_COMPONENTS:
            dollars[name] += record.costs[name]
    all_participation = np.concatenate(participation) if participation else np.empty(0)
    all_slippage = np.concatenate(slippage) if slippage else np.empty(0)
    orders = agent_orders + flatten_orders
    nan = float("nan")
    return TransactionCosts(
        episodes=len(records),
        agent_orders=agent_orders,
        flatten_orders=flatten_orders,
        traded_notional=notional,
        cost_dollars=dollars,
        cost_per_order={name: value / orders if orders else nan for name, value in dollars.items()},
        cost_bps={name: 1e4 * value / notional if notional else nan for name, value in dollars.items()},
        participation_mean=float(all_participation.mean()) if all_participation.size else nan,
        participation_p95=_quantile(all_participation, 0.95),
        participation_max=float(all_participation.max()) if all_participation.size else nan,
        partial_fill_share=partial / agent_orders if agent_orders else nan,
        slippage_bps_mean=float(all_slippage.mean()) if all_slippage.size else nan,
        slippage_bps_median=_quantile(all_slippage, 0.5),
        slippage_bps_p95=_quantile(all_slippage, 0.95),
    )

"""The PPO callback of a training cycle: its metrics, learning curve and the reward controller's control step."""

import time

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback

from controllers.reward import AdaptiveRewardController
from controllers.trajectory import ControllerTrajectory
from core.spec import HOLD_ACTION
from training.evaluation import GreedyProbe, LivePolicy

__all__ = ["TrainingMonitor"]

_UPDATE_KEYS = {
    "entropy": "train/entropy_loss",
    "explained_variance": "train/explained_variance",
    "approx_kl": "train/approx_kl",
    "clip_fraction": "train/clip_fraction",
    "value_loss": "train/value_loss",
    "policy_gradient_loss": "train/policy_gradient_loss",
}


_COST_KEYS = ("cost_ticket", "cost_spread_fee", "cost_impact", "cost_total")


class TrainingMonitor(BaseCallback):
    """Collects a cycle's metrics while PPO learns and runs the reward controller's control step per rollout.

    Per vector step it takes the finished episodes' totals from ``info`` (VecMonitor's raw episode reward
    and length; the env's return, costs and order count). After each rollout is collected (before PPO's
    update) it replays the greedy policy over the rollout's bars (:func:`training.behaviour.greedy_replay`),
    counts the sampled actions' orders the same way, and hands both to the controller
    (:meth:`~controllers.reward.AdaptiveRewardController.observe`), whose new hold bonus and ticket cost shape
    the next rollout; the snapshot goes into :attr:`trajectory`. With the controller switched off
    (``controller.enabled`` false: the envs have none) the measurement is still taken and recorded, and
    nothing is fed back. It also reads SB3's ``train/*`` values after each PPO update (the update runs after
    the rollout's log dump, so they are still in the logger at the next rollout start or at training end)
    into :attr:`learning_curve`, one row per update with its step.
    """

    def __init__(
        self, controller: AdaptiveRewardController, *, probe: GreedyProbe, decisions_per_session: float, shaping: bool = True
    ) -> None:
        super().__init__(verbose=0)
        self.controller = controller
        self.probe = probe
        self.shaping = shaping
        self.decisions = decisions_per_session
        self.trajectory = ControllerTrajectory()
        self._rollout_episodes = 0
        self.probe_seconds = 0.0
        self.steps = 0
        self.holds = 0
        self.episode_rewards: list[float] = []
        self.episode_lengths: list[int] = []
        self.episode_returns: list[float] = []
        self.episode_orders: list[int] = []
        self.episode_costs: dict[str, list[float]] = {key: [] for key in _COST_KEYS}
        self.update_values: dict[str, list[float]] = {key: [] for key in _UPDATE_KEYS}
        self.learning_curve: list[dict[str, float]] = []
        self._updates_read = 0

    def _on_training_start(self) -> None:
        self._updates_read = self.model._n_updates

    def _on_rollout_start(self) -> None:
        self._read_update()

    def _on_training_end(self) -> None:
        self._read_update()

    def _read_update(self) -> None:
        updates = self.model._n_updates
        if updates == self._updates_read:
            return
        self._updates_read = updates
        values = self.model.logger.name_to_value
        row = {"step": float(self.model.num_timesteps)}
        for name, key in _UPDATE_KEYS.items():
            if key in values:
                value = float(values[key])
                value = -value if name == "entropy" else value
                self.update_values[name].append(value)
                row[name] = value
        self.learning_curve.append(row)

    def _on_rollout_end(self) -> None:
        # Once per rollout (nothing of this runs per env step): the buffer holds exactly this rollout.
        actions = self.model.rollout_buffer.actions
        holds = int(np.count_nonzero(actions == HOLD_ACTION))
        self.steps += int(actions.size)
        self.holds += holds
        finished = self.episode_lengths[self._rollout_episodes :]
        orders = self.episode_orders[self._rollout_episodes :]
        self._rollout_episodes = len(self.episode_lengths)
        sampled = sum(orders) / sum(finished) * self.decisions if finished else float("nan")
        policy = LivePolicy(self.model, self.training_env)  # type: ignore[arg-type]
        started = time.perf_counter()
        greedy, regime_score = self.probe.measure(policy)
        self.probe_seconds += time.perf_counter() - started
        snapshot = self.controller.observe(
            greedy,
            regime_score=regime_score,
            steps=int(self.model.num_timesteps),
            sampled_trades_per_day=sampled,
            sampled_hold_action_rate=holds / actions.size,
        )
        self.trajectory.append(snapshot)

    def _on_step(self) -> bool:
        for info in self.locals["infos"]:
            if "episode" not in info:
                continue
            episode = info["episode"]
            self.episode_rewards.append(float(episode["r"]))
            self.episode_lengths.append(int(episode["l"]))
            self.episode_returns.append(float(info["episode_return"]))
            self.episode_orders.append(int(info["agent_orders"]))
            for key in _COST_KEYS:
                self.episode_costs[key].append(float(info[key]))
        return True

    def metrics(self, *, decisions_per_session: float) -> dict[str, float]:
        """The cycle's metrics as a flat dict of floats; episode values are NaN when no episode finished.

        ``trades_per_day``: agent orders per step over the finished episodes, times the mean decision steps
        of a session (a rate per full session, also for episodes cut short by a risk stop). Update values are
        means over the cycle's PPO updates (``entropy`` is the policy entropy, minus SB3's entropy loss).
        """
        nan = float("nan")
        episodes = len(self.episode_rewards)
        steps_in_episodes = sum(self.episode_lengths)
        controller = self.controller
        metrics: dict[str, float] = {
            "episodes": float(episodes),
            "episode_reward_mean": float(np.mean(self.episode_rewards)) if episodes else nan,
            "episode_length_mean": float(np.mean(self.episode_lengths)) if episodes else nan,
            "episode_return_pct_mean": 100.0 * float(np.mean(self.episode_returns)) if episodes else nan,
            "hold_rate": self.holds / self.steps if self.steps else nan,
            "trades_per_day": (
                sum(self.episode_orders) / steps_in_episodes * decisions_per_session
                if steps_in_episodes
                else nan
            ),
            "agent_orders_mean": float(np.mean(self.episode_orders)) if episodes else nan,
        }
        for key in _COST_KEYS:
            metrics[f"{key}_mean"] = float(np.mean(self.episode_costs[key])) if episodes else nan
        frame = self.trajectory.to_frame()
        last = frame.row(-1, named=True) if frame.height else {}

        def latest(name: str) -> float:
            value = last.get(name)
            return nan if value is None else float(value)

        metrics |= {
            "probe_seconds": self.probe_seconds,
            "greedy_trades_per_day": latest("greedy_trades_per_day"),
            "greedy_idle_rate": latest("greedy_idle_rate"),
            "greedy_hold_action_rate": latest("greedy_hold_action_rate"),
            "sampled_trades_per_day": latest("sampled_trades_per_day"),
            "controller_hold_bonus": float(controller.hold_bonus) if self.shaping else nan,
            "controller_ticket_cost": float(controller.ticket_cost) if self.shaping else nan,
            "controller_target_trades_per_day": float(controller.target_trades_per_day),
            "controller_setpoint_trades_per_day": float(controller.setpoint_trades_per_day),
            "controller_target_scale": float(controller.target_scale),
            "controller_slow_adjustment": float(controller.slow_adjustment),
        }
        for name, values in self.update_values.items():
            metrics[name] = float(np.mean(values)) if values else nan
        metrics["updates"] = float(len(self.update_values["approx_kl"]))
        return metrics

"""Kickstart: a fresh agent first imitates the out-of-fold signal rule, then PPO refines it.

Why: a fresh PPO agent starts from random weights, and the divergence limit keeps every cycle within
``max_divergence`` (relative L2) of the weights the run started from. From random weights that ball holds
little more than noise, and four 12K-step cycles mostly learn to churn: many short round trips whose costs
lose money. Behaviour cloning ("kickstarting") starts the agent at a sensible policy instead: the same
:class:`validation.metrics.SignalRulePolicy` the gate reports as a baseline. The cloned weights become
the run's baseline (cycle 0), so the divergence limit then bounds how far PPO moves the agent away from
the rule, and the gate still compares the result with the rule.

Procedure (:func:`teacher_rollouts`, then :func:`clone`), on the training window only:

1. **Teacher rollouts.** The teacher acts in the training envs (the same ``VecNormalize``-wrapped vector
   PPO will train in) for ``steps`` env steps, on the raw observations; the observation and return
   statistics and the reward controller absorb these steps exactly as they would PPO's.
2. **Check.** A teacher that hardly trades (fewer than ``min_teacher_trades_per_session`` trading steps
   per session, e.g. a weak signal that never crosses the rule's entry threshold) has nothing to teach but
   holding, the collapse the reward controller exists to prevent: the caller then discards the rollouts and
   starts from random weights (:func:`training.cycles.run_cycle` rebuilds the envs and the model).
3. **Cloning.** The raw observations are normalized with the resulting statistics and the policy network
   is fitted to the teacher's actions by cross-entropy (``epochs`` passes, minibatches of ``batch_size`` in a
   seeded shuffle, Adam at ``learning_rate``; a separate optimizer, so PPO's Adam state starts fresh). The
   value head is left to PPO.

Deterministic on CPU for a given seed: the envs are seeded by the caller and the shuffle by ``seed``.
"""

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field
from stable_baselines3 import PPO
from stable_baselines3.common.vec_env import VecNormalize

__all__ = ["ImitationConfig", "ImitationResult", "Teacher", "clone", "teacher_rollouts"]


class ImitationConfig(BaseModel):
    """Behaviour cloning of the signal rule before a fresh agent's first PPO cycle."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    enabled: bool = Field(
        True,
        description="Kickstart fresh agents from the signal rule (needs the 'signal' observation feature; "
        "warm starts from a champion never imitate).",
    )
    steps: int = Field(16_000, ge=1, description="Env steps of teacher rollouts (over all training envs).")
    min_teacher_trades_per_session: float = Field(
        2.0,
        ge=0.0,
        description="Clone only a teacher that trades: below this many trading steps per session in its "
        "rollouts (a signal that rarely crosses the entry threshold) the agent starts from random weights.",
    )
    epochs: int = Field(30, ge=1, description="Passes over the teacher's steps.")
    batch_size: int = Field(256, ge=1, description="Minibatch size of the cloning updates.")
    learning_rate: float = Field(1e-3, gt=0.0, description="Adam learning rate of the cloning updates.")


class Teacher(Protocol):
    """A policy over raw observations: ``predict(observations (n, size)) -> actions (n,)``."""

    def predict(self, observations: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class ImitationResult:
    """What the cloning reached on the teacher's own steps."""

    samples: int
    accuracy: float
    """Share of teacher steps where the policy's most likely action is the teacher's action."""
    loss: float
    """Mean cross-entropy of the last epoch."""
    teacher_trade_share: float
    """Share of teacher steps whose action is not hold/hold."""

    def as_metrics(self) -> dict[str, float]:
        """The figures as ``imitation_*`` metrics."""
        return {
            "imitation_samples": float(self.samples),
            "imitation_accuracy": self.accuracy,
            "imitation_loss": self.loss,
            "imitation_teacher_trade_share": self.teacher_trade_share,
        }


def teacher_rollouts(env: VecNormalize, teacher: Teacher, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Raw observations and teacher actions of ``steps`` env steps (rounded up to whole vector steps)."""
    env.reset()
    observations, actions = [], []
    for _ in range(-(-steps // env.num_envs)):
        raw = np.array(env.get_original_obs(), dtype=np.float32)
        chosen = np.asarray(teacher.predict(raw), dtype=np.int64)
        observations.append(raw)
        actions.append(chosen)
        env.step(chosen)
    flush = getattr(env, "flush", None)
    if callable(flush):
        flush()
    return np.concatenate(observations), np.concatenate(actions)


def clone(
    model: PPO,
    env: VecNormalize,
    raw: np.ndarray,
    actions: np.ndarray,
    *,
    config: ImitationConfig,
    seed: int,
    hold_action: int,
) -> ImitationResult:
    """Fit ``model``'s policy to the teacher's ``actions`` on its raw observations (see the module doc)."""
    inputs = torch.as_tensor(np.asarray(env.normalize_obs(raw), dtype=np.float32))
    targets = torch.as_tensor(actions)
    policy = model.policy
    optimizer = torch.optim.Adam(policy.parameters(), lr=config.learning_rate)
    generator = torch.Generator().manual_seed(seed)
    count = targets.shape[0]
    loss_sum = 0.0
    policy.set_training_mode(True)
    for _ in range(config.epochs):
        order = torch.randperm(count, generator=generator)
        loss_sum = 0.0
        for start in range(0, count, config.batch_size):
            batch = order[start : start + config.batch_size]
            loss = -policy.get_distribution(inputs[batch]).log_prob(targets[batch]).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            loss_sum += float(loss.detach()) * batch.shape[0]
    policy.set_training_mode(False)
    with torch.no_grad():
        predicted = policy.get_distribution(inputs).distribution.probs.argmax(dim=1)
    return ImitationResult(
        samples=count,
        accuracy=float((predicted == targets).float().mean()),
        loss=loss_sum / count,
        teacher_trade_share=float(np.mean(actions != hold_action)),
    )

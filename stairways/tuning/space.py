"""The tuning search space: one typed, validated declaration of what a study may change.

A :class:`SearchSpace` maps dotted :class:`~stairways.config.RetrainConfig` paths (``training.ppo.gamma``)
to a parameter: a float or int range (optionally log-scaled) or a list of choices. :func:`suggest` asks an
Optuna trial for every parameter; :func:`trial_overrides` turns the flat values into the nested override
mapping :func:`~stairways.config.load_config` takes, so a trial is an ordinary config: its YAML runs with
``stairways run --config``. :meth:`SearchSpace.check` applies the space's bounds to a base config before a
study starts, so a path that does not exist or a range the config refuses fails at once, naming the path.

``features.<set>`` booleans switch feature sets; the agent then observes the base config's observation
features that the enabled sets still build (the signal always). Network width is ``training.ppo.net_arch``,
two hidden layers of the suggested width.
"""

from collections.abc import Mapping
from typing import Annotated, Any, Literal

import optuna
from pydantic import BaseModel, ConfigDict, Field, model_validator

from core.errors import ConfigError
from market.feature_config import feature_names
from stairways.config import SIGNAL_FEATURE, RetrainConfig, load_config, merge_overrides

__all__ = [
    "DEFAULT_SPACE",
    "FEATURE_SETS",
    "Categorical",
    "FloatRange",
    "IntRange",
    "SearchSpace",
    "config_for",
    "suggest",
    "trial_overrides",
]

_FROZEN = ConfigDict(frozen=True, extra="forbid")
FEATURE_SETS: tuple[str, ...] = ("price", "volatility", "trend", "oscillators", "cross_asset", "time")
_NET_WIDTH = "training.ppo.net_width"


class FloatRange(BaseModel):
    """A float in ``[low, high]`` (log-uniform when ``log``)."""

    model_config = _FROZEN
    kind: Literal["float"] = "float"
    low: float
    high: float
    log: bool = False

    @model_validator(mode="after")
    def _ordered(self) -> "FloatRange":
        if not self.low < self.high:
            msg = f"low {self.low} must be below high {self.high}"
            raise ValueError(msg)
        if self.log and self.low <= 0.0:
            msg = f"a log range needs low > 0, got {self.low}"
            raise ValueError(msg)
        return self


class IntRange(BaseModel):
    """An integer in ``[low, high]`` in steps of ``step`` (log-uniform when ``log``)."""

    model_config = _FROZEN
    kind: Literal["int"] = "int"
    low: int
    high: int
    step: int = Field(1, ge=1)
    log: bool = False

    @model_validator(mode="after")
    def _ordered(self) -> "IntRange":
        if not self.low < self.high:
            msg = f"low {self.low} must be below high {self.high}"
            raise ValueError(msg)
        if self.log and (self.low < 1 or self.step != 1):
            msg = "a log integer range needs low >= 1 and step 1"
            raise ValueError(msg)
        return self


class Categorical(BaseModel):
    """One of ``choices`` (numbers, strings or booleans)."""

    model_config = _FROZEN
    kind: Literal["categorical"] = "categorical"
    choices: tuple[float | int | str | bool, ...] = Field(min_length=1)


Parameter = Annotated[FloatRange | IntRange | Categorical, Field(discriminator="kind")]


class SearchSpace(BaseModel):
    """Dotted config path -> parameter. ``training.ppo.net_width`` sets both hidden layers' width."""

    model_config = _FROZEN
    parameters: dict[str, Parameter] = Field(min_length=1)

    def check(self, base: RetrainConfig) -> None:
        """Raise ``ConfigError`` unless every path exists and both ends of every range give a valid config."""
        for path, parameter in self.parameters.items():
            if isinstance(parameter, Categorical):
                values = list(parameter.choices)
            else:
                values = [parameter.low, parameter.high]
            for value in values:
                try:
                    config_for(base, {path: value})
                except ConfigError as error:
                    msg = f"search space parameter {path}={value!r}: {error}"
                    raise ConfigError(msg) from None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form, for the study's log."""
        return {path: parameter.model_dump() for path, parameter in self.parameters.items()}


def _space(**parameters: FloatRange | IntRange | Categorical) -> SearchSpace:
    return SearchSpace(parameters={path.replace("__", "."): value for path, value in parameters.items()})


DEFAULT_SPACE = _space(
    training__ppo__learning_rate=FloatRange(low=1e-4, high=1e-3, log=True),
    training__ppo__n_steps=Categorical(choices=(128, 256, 512)),
    training__ppo__batch_size=Categorical(choices=(128, 256, 512)),
    training__ppo__n_epochs=IntRange(low=2, high=8),
    training__ppo__gamma=FloatRange(low=0.95, high=0.999),
    training__ppo__gae_lambda=FloatRange(low=0.8, high=0.99),
    training__ppo__clip_range=FloatRange(low=0.1, high=0.3),
    training__ppo__ent_coef=FloatRange(low=1e-4, high=0.05, log=True),
    training__ppo__net_width=Categorical(choices=(32, 64, 128)),
    training__controller__bonus_gain=FloatRange(low=0.25, high=4.0, log=True),
    training__controller__cost_gain=FloatRange(low=0.25, high=4.0, log=True),
    training__controller__base_hold_bonus=FloatRange(low=0.002, high=0.05, log=True),
    training__controller__base_ticket_cost=FloatRange(low=0.25, high=2.0, log=True),
    training__controller__target_trades_per_day=FloatRange(low=10.0, high=20.0),
    training__controller__regime_sensitivity=FloatRange(low=0.0, high=12.0),
    training__controller__slow_clamp=FloatRange(low=0.2, high=2.0),
    **{f"features__{name}": Categorical(choices=(True, False)) for name in FEATURE_SETS},
)
"""The issue's space: PPO, the reward controller and the feature sets (see the module docstring)."""


def suggest(trial: optuna.Trial, space: SearchSpace) -> dict[str, Any]:
    """Ask ``trial`` for every parameter of ``space``; flat ``{path: value}`` in the space's order."""
    values: dict[str, Any] = {}
    for path, parameter in space.parameters.items():
        if isinstance(parameter, FloatRange):
            values[path] = trial.suggest_float(path, parameter.low, parameter.high, log=parameter.log)
        elif isinstance(parameter, IntRange):
            values[path] = trial.suggest_int(
                path, parameter.low, parameter.high, step=parameter.step, log=parameter.log
            )
        else:
            values[path] = trial.suggest_categorical(path, list(parameter.choices))
    return values


def _nest(flat: Mapping[str, Any]) -> dict[str, Any]:
    nested: dict[str, Any] = {}
    for path, value in flat.items():
        node = nested
        *parents, leaf = path.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return nested


def trial_overrides(base: RetrainConfig, flat: Mapping[str, Any]) -> dict[str, Any]:
    """The nested overrides (YAML-ready) that turn ``base`` into the trial's config.

    ``training.ppo.net_width`` becomes ``net_arch: [w, w]``; feature-set switches also set
    ``observation_features`` to the base's features that stay built (and the signal), in the base's order;
    a batch size above the rollout is lowered to the rollout size.
    """
    values = dict(flat)
    width = values.pop(_NET_WIDTH, None)
    if width is not None:
        values["training.ppo.net_arch"] = [int(width), int(width)]
    switches = {
        path.split(".", 1)[1]: bool(value) for path, value in values.items() if path.startswith("features.")
    }
    if switches:
        features = base.features.model_copy(update=switches)
        built = {*feature_names(features), SIGNAL_FEATURE}
        values["observation_features"] = [name for name in base.observation_features if name in built]
    ppo = base.training.ppo
    n_envs = int(values.get("training.ppo.n_envs", ppo.n_envs))
    rollout = n_envs * int(values.get("training.ppo.n_steps", ppo.n_steps))
    if int(values.get("training.ppo.batch_size", ppo.batch_size)) > rollout:
        values["training.ppo.batch_size"] = rollout
    return _nest(values)


def config_for(base: RetrainConfig, flat: Mapping[str, Any]) -> RetrainConfig:
    """``base`` with the trial's values applied; ``ConfigError`` naming the field when they do not fit."""
    overrides = trial_overrides(base, flat)
    return load_config(overrides=merge_overrides(base.model_dump(mode="json"), overrides))

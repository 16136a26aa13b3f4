"""Settings of a tuning study (``stairways tune --config``): budget, folds, sampler, pruner, storage, thresholds."""

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from core.errors import ConfigError, describe_validation_error
from stairways.config import read_overrides
from stairways.tuning.space import DEFAULT_SPACE, SearchSpace

__all__ = ["STORAGE_ENV", "TuneConfig", "default_storage", "load_tune_config", "resolve_storage"]

STORAGE_ENV = "STAIRWAYS_TUNE_STORAGE"

_FROZEN = ConfigDict(frozen=True, extra="forbid")


class TuneConfig(BaseModel):
    """One Optuna study over the nightly recipe's settings (see :mod:`stairways.tuning`)."""

    model_config = _FROZEN

    study_name: str = Field(
        "stairways-tune", min_length=1, description="Optuna study (resumed when it exists)."
    )
    storage: str | None = Field(
        None,
        description="Optuna RDB storage URL (e.g. postgresql://...); `STAIRWAYS_TUNE_STORAGE` overrides it; "
        "default: SQLite `optuna.db` beside the MLflow store (see default_storage).",
    )
    trials: int = Field(20, ge=1, description="Finished trials (complete or pruned) the study runs to.")
    seed: int = Field(
        0, ge=0, description="Sampler seed: with one worker the same seed gives the same trials."
    )
    sampler: Literal["tpe", "random"] = Field("tpe", description="Optuna sampler.")
    startup_trials: int = Field(5, ge=0, description="TPE's random trials before it models the space.")
    pruner: Literal["median", "successive_halving", "none"] = Field(
        "median", description="Stops hopeless trials from the scores reported after each training cycle."
    )
    pruner_warmup_steps: int = Field(
        1, ge=0, description="Reports (training cycles) a trial makes before the median pruner may stop it."
    )
    folds: int = Field(3, ge=1, description="Walk-forward folds before the test window.")
    fold_sessions: int = Field(5, ge=2, description="Judged sessions per fold.")
    fold_selection_sessions: int = Field(5, ge=1, description="Selection sessions per fold (pick the cycle).")
    cycles: int | None = Field(
        2, ge=1, description="Training cycles per fold (the trial budget); None: the base config's."
    )
    steps_per_cycle: int | None = Field(
        6_000, ge=1, description="Env steps per training cycle in a trial; None: the base config's."
    )
    max_pbo: float = Field(
        0.5, ge=0.0, le=1.0, description="Recommend a config only when the study's PBO is at most this."
    )
    min_deflated_sharpe: float = Field(
        0.9,
        ge=0.0,
        le=1.0,
        description="... and the best trial's deflated Sharpe probability is at least this.",
    )
    pbo_partitions: int = Field(
        6, ge=2, description="CSCV partitions S of the trials x sessions matrix (even)."
    )
    space: SearchSpace = Field(default=DEFAULT_SPACE, description="What the study may change.")
    ablation_seeds: tuple[int, ...] = Field(
        (7, 8), min_length=1, description="Seeds of `stairways ablate`: every grid point runs once per seed."
    )
    experiment_name: str = Field(
        "stairways-tuning", min_length=1, description="MLflow experiment of studies."
    )

    @field_validator("pbo_partitions")
    @classmethod
    def _even(cls, value: int) -> int:
        if value % 2:
            msg = f"pbo_partitions must be even (CSCV splits the partitions in halves), got {value}"
            raise ValueError(msg)
        return value


def resolve_storage(configured: str | None, tracking_uri: str) -> str:
    """``STAIRWAYS_TUNE_STORAGE`` wins, then the configured URL, then :func:`default_storage`."""
    return os.environ.get(STORAGE_ENV) or configured or default_storage(tracking_uri)


def default_storage(tracking_uri: str) -> str:
    """SQLite ``optuna.db`` in the folder of a SQLite MLflow store (the working directory otherwise)."""
    if tracking_uri.startswith("sqlite:///"):
        folder = Path(tracking_uri.removeprefix("sqlite:///")).expanduser().resolve().parent
    else:
        folder = Path.cwd()
    return f"sqlite:///{folder / 'optuna.db'}"


def load_tune_config(path: Path | None = None, *, overrides: dict[str, Any] | None = None) -> TuneConfig:
    """Read a YAML study config (``ConfigError`` naming the file and field when it is unusable)."""
    values = {} if path is None else read_overrides(path, what="tuning config")
    values = {**values, **{key: value for key, value in (overrides or {}).items() if value is not None}}
    try:
        return TuneConfig.model_validate(values)
    except ValidationError as error:
        where = f"tuning config {path}" if path is not None else "tuning config"
        msg = f"invalid {where}: {describe_validation_error(error)}"
        raise ConfigError(msg) from error

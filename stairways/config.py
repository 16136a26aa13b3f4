"""The nightly retrain flow's single parameter: one frozen pydantic model with documented defaults.

Prefect validates it and renders it as a form in its UI; ``stairways run --config FILE`` reads overrides by
field name from YAML. No annotations are postponed in this module: Prefect reads the field types at runtime.
"""

from pathlib import Path
from types import UnionType
from typing import Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from controllers.regime import RegimeDetectorConfig
from core.errors import ConfigError, describe_validation_error
from market.feature_config import FeatureConfig, feature_names
from market.labeling import LabelConfig
from market.loading import ExportSpec
from market.signal import SignalConfig
from market.synthetic import SyntheticMarketConfig
from training.ppo import TrainingConfig
from validation.drift import DriftThresholds
from validation.gate_criteria import GateCriteria
from validation.qc_thresholds import QCThresholds
from validation.scenarios import ScenarioConfig
from validation.windows import WindowConfig

__all__ = [
    "DEFAULT_OBSERVATION_FEATURES",
    "SIGNAL_FEATURE",
    "DataConfig",
    "MonitoringConfig",
    "RegistryConfig",
    "RetrainConfig",
    "TrackingConfig",
    "TuningUse",
    "load_config",
    "merge_overrides",
    "read_overrides",
]

SIGNAL_FEATURE = "signal"
# Twelve market features per ticker (the out-of-fold signal among them) + two positions = 26 observations.
DEFAULT_OBSERVATION_FEATURES: tuple[str, ...] = (
    "log_return_1",
    "log_return_5",
    "log_return_20",
    "close_zscore_20",
    "volatility_20",
    "bollinger_position_20",
    "adx_14",
    "rsi_14",
    "return_correlation_30",
    "spread_zscore_60",
    "session_minute_sin",
    SIGNAL_FEATURE,
)

_FROZEN = ConfigDict(frozen=True, extra="forbid")


class DataConfig(BaseModel):
    """Where the bars come from: the synthetic market (default) or files exported from a data vendor."""

    model_config = _FROZEN

    source: Literal["synthetic", "export"] = Field(
        "synthetic", description="`synthetic`: the built-in generator; `export`: the files in `export_paths`."
    )
    synthetic: SyntheticMarketConfig = Field(
        default_factory=SyntheticMarketConfig, description="Generator settings when source is `synthetic`."
    )
    export_paths: dict[str, str] = Field(
        default_factory=dict,
        description="Symbol -> CSV/Parquet file when source is `export`; `{'*': path}` for one long file.",
    )
    export: ExportSpec = Field(
        default_factory=ExportSpec, description="How to read the export: column names, time zone, bar labels."
    )

    @model_validator(mode="after")
    def _paths_match_source(self) -> "DataConfig":
        if self.source == "export" and not self.export_paths:
            msg = "data.source is 'export' but data.export_paths is empty: give SYMBOL=PATH for each ticker"
            raise ValueError(msg)
        return self


class TrackingConfig(BaseModel):
    """MLflow tracking settings."""

    model_config = _FROZEN

    experiment_name: str = Field("stairways-nightly-retrain", description="MLflow experiment of the runs.")
    tracking_uri: str | None = Field(
        None,
        description="MLflow tracking URI; `MLFLOW_TRACKING_URI` overrides it; default SQLite `mlflow.db` here.",
    )
    max_night_hours: float = Field(
        12.0,
        gt=0.0,
        description="A run of another host still RUNNING after this long is taken as abandoned (a night's "
        "own host checks whether the run's process is alive instead).",
    )


class RegistryConfig(BaseModel):
    """MLflow model registry settings."""

    model_config = _FROZEN

    model_name: str = Field("stairways-agent", min_length=1, description="Registered model of the agents.")
    promotion_lock: str | None = Field(
        None,
        description="Lock that serializes alias moves: a file path or a postgresql:// URL; "
        "`STAIRWAYS_PROMOTION_LOCK` overrides; None: derived from a SQLite, file or PostgreSQL store "
        "(a tracking server needs one set).",
    )


class MonitoringConfig(BaseModel):
    """Prometheus push gateway for batched training and validation metrics (never per step)."""

    model_config = _FROZEN

    pushgateway: str | None = Field(
        None,
        description="host:port or URL of a push gateway; `STAIRWAYS_PUSHGATEWAY` overrides; None: no pushes.",
    )


class TuningUse(BaseModel):
    """Whether a night trains with the latest config a tuning study recommended (off by default)."""

    model_config = _FROZEN

    use_recommended: bool = Field(
        False,
        description="Apply the recommendation of `study_name` (refused when the study recommends nothing); "
        "the night records the study and trial, and the gate counts the study's trials as candidates.",
    )
    study_name: str = Field("stairways-tune", min_length=1, description="Optuna study to read.")
    storage: str | None = Field(
        None,
        description="Optuna storage URL; `STAIRWAYS_TUNE_STORAGE` overrides it; default: SQLite `optuna.db` "
        "beside the MLflow store.",
    )


class RetrainConfig(BaseModel):
    """Everything one nightly retrain run depends on. Same config and seed, same result on CPU."""

    model_config = _FROZEN

    seed: int = Field(7, ge=0, description="Master seed; every component derives its own seed from it.")
    symbols: tuple[str, str] = Field(
        ("NVDA", "MSFT"), description="The two tickers traded together (also the synthetic market's tickers)."
    )
    data: DataConfig = Field(default_factory=DataConfig, description="Market data source.")
    qc: QCThresholds = Field(default_factory=QCThresholds, description="Data-quality thresholds.")
    features: FeatureConfig = Field(default_factory=FeatureConfig, description="Feature sets switched on.")
    labels: LabelConfig = Field(default_factory=LabelConfig, description="Triple-barrier labeling.")
    signal: SignalConfig = Field(default_factory=SignalConfig, description="Out-of-fold signal model.")
    window: WindowConfig = Field(default_factory=WindowConfig, description="Held-out validation window.")
    observation_features: tuple[str, ...] = Field(
        DEFAULT_OBSERVATION_FEATURES,
        min_length=1,
        description="Features per ticker the agent observes (built features or `signal`); the two positions "
        "are appended.",
    )
    regime: RegimeDetectorConfig = Field(
        default_factory=RegimeDetectorConfig, description="Market regime detector feeding the controller."
    )
    training: TrainingConfig = Field(default_factory=TrainingConfig, description="PPO training cycles.")
    scenarios: ScenarioConfig = Field(
        default_factory=ScenarioConfig, description="Held-out regime slices and synthetic stress scenarios."
    )
    gate: GateCriteria = Field(default_factory=GateCriteria, description="Promotion gate criteria.")
    registry: RegistryConfig = Field(default_factory=RegistryConfig, description="MLflow model registry.")
    monitoring: MonitoringConfig = Field(
        default_factory=MonitoringConfig, description="Metrics push gateway."
    )
    tracking: TrackingConfig = Field(default_factory=TrackingConfig, description="MLflow settings.")
    tuning: TuningUse = Field(default_factory=TuningUse, description="Use a tuning study's recommendation.")
    drift: DriftThresholds = Field(
        default_factory=DriftThresholds, description="When tonight's data counts as drifted from the champion's."
    )

    @model_validator(mode="before")
    @classmethod
    def _synthetic_symbols_follow(cls, values: Any) -> Any:
        """Name the synthetic tickers after ``symbols`` unless the synthetic section names them itself."""
        if not isinstance(values, dict) or "symbols" not in values:
            return values
        data = dict(values.get("data") or {})
        synthetic = data.get("synthetic")
        if isinstance(synthetic, BaseModel):
            synthetic = synthetic.model_dump()
        synthetic = dict(synthetic or {})
        synthetic.setdefault("symbols", tuple(values["symbols"]))
        data["synthetic"] = synthetic
        return {**values, "data": data}

    @model_validator(mode="after")
    def _consistent(self) -> "RetrainConfig":
        if self.symbols[0] == self.symbols[1]:
            msg = f"symbols must name two different tickers, got {self.symbols}"
            raise ValueError(msg)
        if tuple(self.data.synthetic.symbols) != tuple(self.symbols):
            msg = (
                f"data.synthetic.symbols {tuple(self.data.synthetic.symbols)} differ from symbols "
                f"{tuple(self.symbols)}"
            )
            raise ValueError(msg)
        available = {*feature_names(self.features), SIGNAL_FEATURE}
        missing = [name for name in self.observation_features if name not in available]
        if missing:
            msg = f"observation_features {missing} are not built by the enabled feature sets"
            raise ValueError(msg)
        if len(set(self.observation_features)) != len(self.observation_features):
            msg = f"observation_features repeats a name: {list(self.observation_features)}"
            raise ValueError(msg)
        controller = self.training.controller
        gate_band = (self.gate.min_trades_per_day, self.gate.max_trades_per_day)
        low, high = controller.trades_per_day_bounds
        if controller.enabled and not (gate_band[0] <= low and high <= gate_band[1]):
            msg = (
                f"training.controller.trades_per_day_bounds ({low:g}, {high:g}) must lie inside the gate's "
                f"trades-per-day band [{gate_band[0]:g}, {gate_band[1]:g}] (gate.min_trades_per_day, "
                "gate.max_trades_per_day): the controller would steer the agent to a rate the gate refuses"
            )
            raise ValueError(msg)
        if self.data.source == "export":
            named = set(self.data.export_paths) - {"*"}
            unknown = named - set(self.symbols)
            if unknown:
                msg = f"data.export_paths names {sorted(unknown)}, which are not in symbols {self.symbols}"
                raise ValueError(msg)
        return self


def read_overrides(path: Path, *, what: str = "config file") -> dict[str, Any]:
    """The mapping of field names in the YAML file ``path``; ``ConfigError`` naming ``what`` and why not."""
    try:
        loaded = yaml.safe_load(Path(path).read_text())
    except FileNotFoundError as error:
        msg = f"{what} not found: {path}"
        raise ConfigError(msg) from error
    except IsADirectoryError as error:
        msg = f"{what} {path} is a directory; give a YAML file of overrides"
        raise ConfigError(msg) from error
    except UnicodeDecodeError as error:
        msg = f"{what} {path} is not text (not UTF-8 at byte {error.start}); give a YAML file"
        raise ConfigError(msg) from error
    except OSError as error:
        msg = f"{what} {path} cannot be read: {error.strerror or error}"
        raise ConfigError(msg) from error
    except yaml.YAMLError as error:
        msg = f"{what} {path} is not valid YAML: {error}"
        raise ConfigError(msg) from error
    if loaded is not None and not isinstance(loaded, dict):
        msg = f"{what} {path} must hold a mapping of field names, got {type(loaded).__name__}"
        raise ConfigError(msg)
    return loaded or {}


def load_config(path: Path | None = None, *, overrides: dict[str, Any] | None = None) -> RetrainConfig:
    """Read a YAML file of overrides by field name (nested sections as mappings) and validate it.

    Raises ``ConfigError`` naming the file and every invalid field.
    """
    values = {} if path is None else read_overrides(path)
    values = merge_overrides(values, overrides or {})
    where = f"config file {path}" if path is not None else "config"
    booleans = _booleans_for_numbers(values, RetrainConfig)
    if booleans:
        msg = f"invalid {where}: " + "; ".join(
            f"{name}: a number is expected, got {value}" for name, value in booleans
        )
        raise ConfigError(msg)
    try:
        return RetrainConfig.model_validate(values)
    except ValidationError as error:
        msg = f"invalid {where}: {describe_validation_error(error)}"
        raise ConfigError(msg) from error


def _numeric(annotation: Any) -> bool:
    """Whether a field's type is int or float (possibly optional), where pydantic would take True as 1."""
    if annotation in (int, float):
        return True
    arguments = [item for item in get_args(annotation) if item is not type(None)]
    return (
        get_origin(annotation) in (Union, UnionType)
        and bool(arguments)
        and all(item in (int, float) for item in arguments)
    )


def _booleans_for_numbers(values: Any, model: type[BaseModel], prefix: str = "") -> list[tuple[str, Any]]:
    """Every YAML true/false given where the field is a number (``seed: true`` is not seed 1)."""
    if not isinstance(values, dict):
        return []
    found = []
    for name, value in values.items():
        field = model.model_fields.get(name)
        if field is None:
            continue
        annotation = field.annotation
        if isinstance(value, bool) and _numeric(annotation):
            found.append((f"{prefix}{name}", value))
        elif isinstance(annotation, type) and issubclass(annotation, BaseModel):
            found += _booleans_for_numbers(value, annotation, f"{prefix}{name}.")
    return found


def merge_overrides(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``update`` applied field by field (nested sections merged, other values replaced)."""
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_overrides(merged[key], value)
        else:
            merged[key] = value
    return merged

"""Controllers: the adaptive reward controller (dual lane) and its health, the market regime detector.

Prefect-free."""

from controllers.health import ControllerHealth, HealthWeights, controller_health
from controllers.regime import RegimeDetector, RegimeDetectorConfig, regime_scores
from controllers.reward import (
    AdaptiveRewardController,
    BehaviourMeasurement,
    ControllerSnapshot,
    ControllerTrajectory,
    RewardControllerConfig,
    plot_trajectory,
    regime_target,
)

__all__ = [
    "AdaptiveRewardController",
    "BehaviourMeasurement",
    "ControllerHealth",
    "ControllerSnapshot",
    "ControllerTrajectory",
    "HealthWeights",
    "RegimeDetector",
    "RegimeDetectorConfig",
    "RewardControllerConfig",
    "controller_health",
    "plot_trajectory",
    "regime_scores",
    "regime_target",
]

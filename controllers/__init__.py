"""Controllers: the adaptive reward controller (dual lane) and its health, the market regime detector.

Prefect-free."""

from controllers.behaviour import BehaviourMeasurement
from controllers.health import ControllerHealth, HealthWeights, controller_health
from controllers.regime import RegimeDetector, RegimeDetectorConfig, regime_scores
from controllers.reward import AdaptiveRewardController
from controllers.reward_config import RewardControllerConfig, regime_target
from controllers.trajectory import ControllerSnapshot, ControllerTrajectory, plot_trajectory

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

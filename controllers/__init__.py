"""Controllers: the adaptive reward controller (dual lane) and the market regime detector. Prefect-free."""

from controllers.regime import RegimeDetector, RegimeDetectorConfig, regime_scores
from controllers.reward import (
    AdaptiveRewardController,
    ControllerSnapshot,
    ControllerTrajectory,
    RewardControllerConfig,
    plot_trajectory,
)

__all__ = [
    "AdaptiveRewardController",
    "ControllerSnapshot",
    "ControllerTrajectory",
    "RegimeDetector",
    "RegimeDetectorConfig",
    "RewardControllerConfig",
    "plot_trajectory",
    "regime_scores",
]

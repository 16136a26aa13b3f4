"""Causal signal for the RL agent: a small classifier of the triple-barrier label, fitted walk-forward.

A classifier (torch; multinomial logistic regression, or a one-hidden-layer MLP) learns the primary-horizon
triple-barrier label (-1/0/+1) from the bar features. Its probability for each bar becomes one more
observation feature for the agent: ``signal = P(+1) - P(-1)`` in [-1, 1]. The rule that governs everything
here: a bar's signal comes only from a model fitted on samples whose labels ended strictly before the
model's refit time, which is at or before the bar. With features that read past prices only and labels
that read the price path up to ``t1`` (as :func:`market.features.build_features` and
:func:`market.labeling.label_bars` do), changing any price after a time ``t`` therefore changes no signal at
or before ``t``: every row's signal is what a live system would have had then.

One module per concept; each one's docstring states its part of the design:

- :mod:`market.signal.config`: :class:`SignalConfig`, the classifier and refit settings.
- :mod:`market.signal.inputs`: checks of the feature and label frames; timestamps as int64 nanoseconds.
- :mod:`market.signal.plan`: samples, refit times, blocks, warm-up and windows (:func:`training_plan`).
- :mod:`market.signal.fitting`: building and fitting one torch classifier, seeds and determinism.
- :mod:`market.signal.model`: the forward model for new bars as numpy arrays (:class:`SignalModel`).
- :mod:`market.signal.scoring`: out-of-sample scores, calibration and the meta filter's classification.
- :mod:`market.signal.walk_forward`: :func:`causal_signal`, one model per symbol and block, the meta filter.
- :mod:`market.signal.plots`: :func:`plot_calibration`, the reliability diagram.
"""

from market.signal.config import SignalConfig
from market.signal.model import SignalModel, SymbolSignalModel
from market.signal.plan import TRAIN_WINDOW, SymbolTrainingPlan, training_plan
from market.signal.plots import plot_calibration
from market.signal.walk_forward import SIGNAL_COLUMNS, SignalResult, causal_signal

__all__ = [
    "SIGNAL_COLUMNS",
    "TRAIN_WINDOW",
    "SignalConfig",
    "SignalModel",
    "SignalResult",
    "SymbolSignalModel",
    "SymbolTrainingPlan",
    "causal_signal",
    "plot_calibration",
    "training_plan",
]

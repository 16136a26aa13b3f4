"""The walk-forward signal: one fit per block and symbol, the signal frame, its scores and the meta filter.

- **One model per symbol.** The two symbols have different volatility and (in the planted synthetic market)
  different predictability, and a per-symbol model never has to learn the symbol as a feature. The refit
  times (:mod:`market.signal.plan`) are the same for every symbol.
- **Scores** (:mod:`market.signal.scoring`) are pooled per block, per symbol, per window and overall.
- **Meta-labels** (AFML 3.6, report only; they change no signal): on the walk-forward samples, the primary
  side is the sign of the signal (signal 0 skipped) and the meta-label is 1 when the label equals the side
  (the profit-take barrier in that direction was touched first), else 0. The meta filter is walk-forward
  too: the filter of a block is a logistic model on the features plus ``|signal|``, trained on the signed
  walk-forward samples of earlier blocks whose ``t1`` is before the block's start (at least
  ``min_train_samples`` of them, both meta-labels present; else the block's samples are not meta-scored),
  and it predicts the block's signed samples at threshold 0.5. Every ``|signal|`` it reads came from a
  model that trained only on labels ending before that sample, so the old second-order leakage of stacking
  out-of-fold predictions does not arise.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import numpy as np
import polars as pl

from core.errors import ConfigError
from market.signal.config import SignalConfig
from market.signal.fitting import (
    derived_seed,
    fit_classifier,
    numpy_weights,
    smoothed_prior,
    torch_probabilities,
)
from market.signal.inputs import iso_time
from market.signal.model import CLASSES, SignalModel, SymbolSignalModel
from market.signal.plan import NO_WINDOWS, TRAIN_WINDOW, SymbolData, SymbolTrainingPlan, prepare
from market.signal.scoring import (
    Scored,
    calibration_report,
    classification_report,
    prediction_scores,
    sample_report,
)

__all__ = ["SIGNAL_COLUMNS", "SignalResult", "causal_signal"]

SIGNAL_COLUMNS: Final[tuple[str, ...]] = ("ts", "symbol", "signal", "source", "block", "window")
# Seed streams of derived_seed: the primary classifier and the meta filter of the same block differ.
_PRIMARY_STREAM: Final = 0
_META_STREAM: Final = 1
_META_THRESHOLD: Final = 0.5


@dataclass(frozen=True)
class SignalResult:
    """Outcome of :func:`causal_signal`."""

    signal: pl.DataFrame
    """Every feature bar: ``ts``, ``symbol``, ``signal`` (Float64 in [-1, 1]; exactly 0.0 on warm-up rows),
    ``source`` (``"warmup"`` or ``"walk_forward"``), ``block`` (Int64, 0-based, warm-up blocks counted),
    ``window`` (``"train"`` or a ``window_starts`` name); sorted by symbol, ts."""
    cv_scores: dict[str, Any]
    """Walk-forward scores (log loss, accuracy, balanced accuracy) of the model and of the class-prior
    baseline over every walk-forward sample: flat at the top level (``log_loss``, ``accuracy``,
    ``balanced_accuracy``, ``baseline_log_loss``, ...) for metric logging and under ``mean`` (``model``,
    ``baseline``). ``symbols[symbol]``: ``n_samples`` (every resolved sample), ``blocks`` (per block: index,
    start, window, source, n_train, n_test, model and baseline scores, None for warm-up blocks) and
    ``out_of_sample`` (pooled over the symbol's walk-forward samples: n, model, baseline, the signal's
    correlation with the label, its directional accuracy, the sign of the signal vs a non-zero label, and
    that comparison's support). ``windows[name]``: the same pooled figures per window over all symbols.
    Scores over no sample are None."""
    calibration: dict[str, Any]
    """Per symbol and ``pooled``: reliability bins for P(+1) (``up``) and P(-1) (``down``) with mean
    predicted probability, observed frequency and count, their Brier scores, the baseline's Brier scores and
    the multiclass Brier score; over walk-forward samples."""
    meta_report: dict[str, Any]
    """Per symbol and ``pooled``: walk-forward precision, recall, F1 of the meta-label filter at
    ``threshold``, the base rate (share of meta-label 1), support (meta-scored samples) and predicted
    positives (None where undefined, e.g. precision with no predicted positive); a symbol's ``skipped`` gives
    the reason when no block of it had a meta filter. The pooled figures also sit at the top level."""
    forward_model: SignalModel
    """The last block's model of every symbol as numpy arrays: it predicts new bars
    (:meth:`SignalModel.predict`) as the last block's torch model predicted its rows."""


@dataclass(frozen=True)
class _SymbolOutcome:
    probabilities: np.ndarray
    """(bars, 3) class probabilities; NaN on warm-up rows."""
    signal: np.ndarray
    """(bars,) ``P(+1) - P(-1)`` clipped to [-1, 1]; exactly 0.0 on warm-up rows."""
    sample_baseline: np.ndarray
    """(samples, 3) the class prior of the sample's block's training labels; NaN on warm-up samples."""
    forward: SymbolSignalModel


def _require_forward_model(plan: SymbolTrainingPlan, *, config: SignalConfig) -> None:
    """Raise ``ConfigError`` when the last block is a warm-up block: new bars would have no model."""
    last = plan.block_start.shape[0] - 1
    if plan.block_has_model[last]:
        return
    train = plan.block_train[last]
    start = iso_time(plan.block_start[last])
    if train.shape[0] < config.min_train_samples:
        message = (
            f"symbol {plan.symbol}: the last block (from {start}) has {train.shape[0]} sample(s) whose "
            f"labels ended before it, fewer than min_train_samples={config.min_train_samples}, so there is "
            "no forward model for new bars: use more labelled history or lower min_train_samples"
        )
    else:
        label = int(np.unique(plan.sample_label[train])[0])
        message = (
            f"symbol {plan.symbol}: every training sample of the last block (from {start}) has label "
            f"{label}; the forward model needs at least two label classes"
        )
    raise ConfigError(message)


def _fit_symbol(data: SymbolData, *, config: SignalConfig, seed: int) -> _SymbolOutcome:
    """One fit per block with a model, predicting the block's bars; the last block's is the forward model."""
    plan = data.plan
    _require_forward_model(plan, config=config)
    n_classes = len(CLASSES)
    sample_y = plan.sample_label.astype(np.int64) + 1
    probabilities = np.full((plan.bar_ts.shape[0], n_classes), np.nan)
    sample_baseline = np.full((plan.sample_bars.shape[0], n_classes), np.nan)
    last = plan.block_start.shape[0] - 1
    forward = None
    for block in range(last + 1):
        bars = plan.block_bars[block]
        # A block without bars (possible only for a symbol missing some timestamps) predicts nothing; the
        # last block is fitted regardless: its model serves new bars.
        if not plan.block_has_model[block] or (bars.shape[0] == 0 and block != last):
            continue
        train = plan.block_train[block]
        model, mean, std = fit_classifier(
            data.features[plan.sample_bars[train]],
            sample_y[train],
            n_classes=n_classes,
            kind=config.model,
            config=config,
            seed=derived_seed(seed, plan.symbol, _PRIMARY_STREAM, block),
        )
        if bars.shape[0]:
            probabilities[bars] = torch_probabilities(model, mean, std, data.features[bars])
        sample_baseline[plan.block_test[block]] = smoothed_prior(sample_y[train], n_classes)
        if block == last:
            forward = numpy_weights(model, mean, std)
    if forward is None:
        message = f"symbol {plan.symbol}: the last block was not fitted"
        raise RuntimeError(message)
    walk_forward = plan.block_has_model[plan.bar_block]
    signal = np.zeros(plan.bar_ts.shape[0])
    signal[walk_forward] = np.clip(
        probabilities[walk_forward, 2] - probabilities[walk_forward, 0], -1.0, 1.0
    )
    return _SymbolOutcome(probabilities, signal, sample_baseline, forward)


def _meta_filter(
    data: SymbolData, outcome: _SymbolOutcome, *, config: SignalConfig, seed: int
) -> tuple[np.ndarray, np.ndarray, str | None]:
    """Walk-forward meta-label predictions (bool at the threshold) and meta-labels; a reason when skipped."""
    plan = data.plan
    sample_block = plan.bar_block[plan.sample_bars]
    signal = outcome.signal[plan.sample_bars]
    side = np.sign(signal).astype(np.int64)
    signed = np.flatnonzero(plan.block_has_model[sample_block] & (side != 0))
    actual = plan.sample_label[signed].astype(np.int64) == side[signed]
    inputs = np.column_stack([data.features[plan.sample_bars[signed]], np.abs(signal[signed])])
    signed_block = sample_block[signed]
    signed_t1 = plan.sample_t1[signed]
    predicted_parts: list[np.ndarray] = []
    actual_parts: list[np.ndarray] = []
    for block in np.unique(signed_block):
        # Labels ending before the block's start: samples of earlier blocks only (event_ts <= t1).
        train = np.flatnonzero(signed_t1 < plan.block_start[block])
        if train.shape[0] < config.min_train_samples or np.unique(actual[train]).shape[0] < 2:
            continue
        test = np.flatnonzero(signed_block == block)
        fitted = fit_classifier(
            inputs[train],
            actual[train].astype(np.int64),
            n_classes=2,
            kind="logistic",
            config=config,
            seed=derived_seed(seed, plan.symbol, _META_STREAM, int(block)),
        )
        meta_probability = torch_probabilities(*fitted, inputs[test])[:, 1]
        predicted_parts.append(meta_probability >= _META_THRESHOLD)
        actual_parts.append(actual[test])
    if not predicted_parts:
        reason = (
            f"no block has min_train_samples={config.min_train_samples} signed walk-forward samples of both "
            "meta-labels whose labels ended before it"
        )
        return np.zeros(0, dtype=bool), np.zeros(0, dtype=bool), reason
    return np.concatenate(predicted_parts), np.concatenate(actual_parts), None


def _scored_samples(plan: SymbolTrainingPlan, outcome: _SymbolOutcome) -> tuple[Scored, np.ndarray]:
    """The symbol's walk-forward samples to score, and the block of each."""
    sample_block = plan.bar_block[plan.sample_bars]
    walk_forward = plan.block_has_model[sample_block]
    bars = plan.sample_bars[walk_forward]
    scored = Scored(
        outcome.probabilities[bars],
        outcome.sample_baseline[walk_forward],
        plan.sample_label[walk_forward].astype(np.int64) + 1,
        outcome.signal[bars],
        plan.sample_label[walk_forward],
    )
    return scored, sample_block[walk_forward]


def _block_scores(plan: SymbolTrainingPlan, outcome: _SymbolOutcome) -> list[dict[str, Any]]:
    sample_y = plan.sample_label.astype(np.int64) + 1
    rows = []
    for block, start in enumerate(plan.block_start):
        test = plan.block_test[block]
        fitted = bool(plan.block_has_model[block])
        probabilities = outcome.probabilities[plan.sample_bars[test]]
        rows.append(
            {
                "block": block,
                "start": iso_time(start),
                "window": plan.block_window[block],
                "source": "walk_forward" if fitted else "warmup",
                "n_train": int(plan.block_train[block].shape[0]),
                "n_test": int(test.shape[0]),
                "model": prediction_scores(probabilities, sample_y[test]) if fitted else None,
                "baseline": (
                    prediction_scores(outcome.sample_baseline[test], sample_y[test]) if fitted else None
                ),
            }
        )
    return rows


def _signal_frame(plan: SymbolTrainingPlan, outcome: _SymbolOutcome) -> pl.DataFrame:
    walk_forward = plan.block_has_model[plan.bar_block]
    return pl.DataFrame(
        {
            "ts": pl.Series(plan.bar_ts).cast(pl.Datetime("ns", "UTC")),
            "symbol": pl.Series([plan.symbol] * plan.bar_ts.shape[0], dtype=pl.Utf8),
            "signal": pl.Series(outcome.signal, dtype=pl.Float64),
            "source": pl.Series(np.where(walk_forward, "walk_forward", "warmup"), dtype=pl.Utf8),
            "block": pl.Series(plan.bar_block, dtype=pl.Int64),
            "window": pl.Series(np.array(plan.block_window, dtype=object)[plan.bar_block], dtype=pl.Utf8),
        }
    )


def causal_signal(
    features: pl.DataFrame,
    labels: pl.DataFrame,
    *,
    feature_columns: Sequence[str],
    config: SignalConfig = SignalConfig(),
    primary_horizon: int,
    window_starts: Mapping[str, datetime] = NO_WINDOWS,
    seed: int,
) -> SignalResult:
    """Walk-forward signal ``P(+1) - P(-1)`` for every feature bar, with scores, calibration and meta-labels.

    Every bar's signal comes from the model of its block, fitted only on samples whose labels ended before
    the block's refit time (see :mod:`market.signal.plan`); warm-up rows get 0.0.

    Args:
        features: long feature frame (``ts``, ``symbol``, feature columns), e.g. from
            :func:`market.features.build_features`.
        labels: the frame :func:`market.labeling.label_bars` returns (``symbol``, ``event_ts``, ``horizon``,
            ``t1``, ``label`` are used).
        feature_columns: the feature columns the classifier reads.
        config: classifier and walk-forward settings.
        primary_horizon: the label horizon learned.
        window_starts: named window starts (timezone-aware), e.g. ``{"selection": t, "test": u}``; each one
            is a refit time and names the rows from it to the next start (``"train"`` before the first).
        seed: seeds every model (see :mod:`market.signal.fitting`).

    Returns:
        :class:`SignalResult`; :func:`training_plan` gives which model predicts which bar.

    Raises:
        ConfigError: missing feature columns, no labels at ``primary_horizon``, a last block without a model
            (fewer than ``min_train_samples`` samples whose labels ended before it, or one label class).
        ValueError: empty features, features and labels without common timestamps, non-finite features,
            duplicated keys, a naive window start or one outside the feature bars, a window named
            ``"train"``, two windows starting at the same bar.
        TypeError: a window start that is not a datetime.
    """
    prepared = prepare(
        features,
        labels,
        feature_columns=feature_columns,
        config=config,
        primary_horizon=primary_horizon,
        window_starts=window_starts,
    )
    for data in prepared.values():
        _require_forward_model(data.plan, config=config)
    outcomes = {symbol: _fit_symbol(data, config=config, seed=seed) for symbol, data in prepared.items()}

    frames = []
    cv_symbols: dict[str, Any] = {}
    calibration: dict[str, Any] = {}
    meta_report: dict[str, Any] = {}
    scored_parts: list[Scored] = []
    window_parts: list[np.ndarray] = []
    meta_predicted_parts, meta_actual_parts = [], []
    for symbol, data in prepared.items():
        plan, outcome = data.plan, outcomes[symbol]
        frames.append(_signal_frame(plan, outcome))
        scored, sample_block = _scored_samples(plan, outcome)
        cv_symbols[symbol] = {
            "n_samples": int(plan.sample_bars.shape[0]),
            "blocks": _block_scores(plan, outcome),
            "out_of_sample": sample_report(scored),
        }
        calibration[symbol] = calibration_report(scored, bins=config.calibration_bins)
        scored_parts.append(scored)
        window_parts.append(np.array(plan.block_window, dtype=object)[sample_block])
        meta_predicted, meta_actual, meta_skipped = _meta_filter(data, outcome, config=config, seed=seed)
        meta_report[symbol] = {
            **classification_report(meta_predicted, meta_actual, threshold=_META_THRESHOLD),
            "skipped": meta_skipped,
        }
        meta_predicted_parts.append(meta_predicted)
        meta_actual_parts.append(meta_actual)

    pooled = Scored.concatenate(scored_parts)
    sample_window = np.concatenate(window_parts)
    named = sorted(window_starts.items(), key=lambda item: item[1])
    window_names = [TRAIN_WINDOW, *(name for name, _ in named)]
    windows = {name: sample_report(pooled.subset(sample_window == name)) for name in window_names}
    calibration["pooled"] = calibration_report(pooled, bins=config.calibration_bins)
    pooled_meta = classification_report(
        np.concatenate(meta_predicted_parts),
        np.concatenate(meta_actual_parts),
        threshold=_META_THRESHOLD,
    )
    meta_report = {**pooled_meta, **meta_report, "pooled": pooled_meta}
    model_scores = prediction_scores(pooled.probabilities, pooled.y)
    baseline_scores = prediction_scores(pooled.baseline, pooled.y)
    cv_scores: dict[str, Any] = {
        **model_scores,
        **{f"baseline_{key}": value for key, value in baseline_scores.items()},
        "symbols": cv_symbols,
        "windows": windows,
        "mean": {"model": model_scores, "baseline": baseline_scores},
    }
    forward_model = SignalModel(
        feature_columns=tuple(feature_columns),
        kind=config.model,
        symbols={symbol: outcome.forward for symbol, outcome in outcomes.items()},
    )
    signal_frame = pl.concat(frames, how="vertical").sort("symbol", "ts")
    return SignalResult(signal_frame, cv_scores, calibration, meta_report, forward_model)

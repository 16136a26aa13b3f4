"""Probability of backtest overfitting (PBO) by combinatorially symmetric cross-validation; its Sharpe metric.

:func:`pbo` (Bailey, Borwein, López de Prado and Zhu, "The Probability of Backtest Overfitting", 2014)
asks how often the candidate that is best in sample ranks in the bottom half out of sample, over every way
of splitting a ``T x N`` performance matrix into two halves of contiguous partitions. Its default metric,
:func:`sharpe_ratio`, is the per-period Sharpe ratio the rest of the pipeline reports (``mean / std`` with
``ddof=1``, never annualized). The leakage-proof splitters are in :mod:`validation.splits`.
"""

import itertools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import polars as pl

__all__ = [
    "PBOResult",
    "pbo",
    "sharpe_ratio",
]


def _check_int(value: int, *, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        message = f"{name} must be an integer >= {minimum}, got {value!r}"
        raise ValueError(message)
    return int(value)


def sharpe_ratio(returns: np.ndarray) -> np.ndarray:
    """Per-column Sharpe ratio ``mean / std`` (ddof=1, not annualized); 0 for an all-constant zero column.

    A constant non-zero column has an infinite ratio with the sign of its mean.
    """
    mean = returns.mean(axis=0)
    std = returns.std(axis=0, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = mean / std
    return _flat_as_signed_infinity(ratio, mean, std)


def _flat_as_signed_infinity(ratio: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """Where ``std == 0``: +inf/-inf by the sign of the mean, 0 for a zero mean."""
    flat = std == 0
    ratio[flat] = np.where(mean[flat] > 0, np.inf, np.where(mean[flat] < 0, -np.inf, 0.0))
    return ratio


@dataclass(frozen=True)
class PBOResult:
    """Outcome of :func:`pbo` (CSCV); arrays hold one entry per combination, in combinations order."""

    pbo: float
    """Probability of backtest overfitting: share of combinations with logit <= 0."""
    logits: np.ndarray
    """``log(w / (1 - w))`` of the in-sample best candidate's relative out-of-sample rank ``w``."""
    relative_ranks: np.ndarray
    """``w = rank / (n_candidates + 1)`` (average rank for ties; 1 is the worst)."""
    selected: np.ndarray
    """Index of the in-sample best candidate (first on ties)."""
    in_sample: np.ndarray
    """Metric of the selected candidate in sample."""
    out_of_sample: np.ndarray
    """Metric of the selected candidate out of sample."""
    degradation_slope: float
    """OLS slope of ``out_of_sample`` on ``in_sample`` (NaN when ``in_sample`` is constant)."""
    degradation_intercept: float
    """OLS intercept of the same regression (NaN when ``in_sample`` is constant)."""
    probability_of_loss: float
    """Share of combinations whose selected candidate has an out-of-sample metric below 0."""
    n_partitions: int
    """Number of row partitions S."""
    n_combinations: int
    """``C(S, S/2)``."""
    rows_dropped: int
    """Leading rows dropped so that the S partitions have equal size."""


def pbo(
    performance: np.ndarray | pl.DataFrame | pd.DataFrame,
    *,
    n_partitions: int = 16,
    metric: Callable[[np.ndarray], np.ndarray] = sharpe_ratio,
) -> PBOResult:
    """Probability of backtest overfitting by combinatorially symmetric cross-validation (Bailey et al. 2014).

    ``performance`` is a ``T x N`` matrix (rows: time-ordered periods, e.g. returns; columns: candidate
    configurations). The rows are split into ``S = n_partitions`` contiguous partitions of equal size (the
    leading ``T mod S`` rows are dropped); for each of the ``C(S, S/2)`` ways to pick half of them as the
    in-sample set (the rest is out of sample, row order kept), the candidate with the best in-sample
    ``metric`` is selected and its out-of-sample relative rank ``w`` gives the logit ``log(w / (1 - w))``. PBO
    is the share of logits ``<= 0``.

    Args:
        performance: ``T x N`` finite values, ``N >= 2``.
        n_partitions: even number S >= 2.
        metric: maps a ``rows x N`` block to ``N`` finite-or-infinite scores (higher is better); default
            :func:`sharpe_ratio`.

    Raises:
        ValueError: odd or too small S, too few rows (each half needs at least 2), fewer than 2 candidates,
            non-finite values, or a metric returning NaN or the wrong shape.
    """
    if isinstance(performance, pl.DataFrame | pd.DataFrame):
        performance = performance.to_numpy()
    matrix = np.asarray(performance, dtype=np.float64)
    if matrix.ndim != 2:
        message = f"performance must be a 2-D (periods x candidates) array, got {matrix.ndim} dimension(s)"
        raise ValueError(message)
    n_rows, n_candidates = matrix.shape
    if n_candidates < 2:
        message = f"performance needs at least 2 candidate columns, got {n_candidates}"
        raise ValueError(message)
    if not np.isfinite(matrix).all():
        message = f"performance has {int((~np.isfinite(matrix)).sum())} non-finite value(s)"
        raise ValueError(message)
    n_partitions = _check_int(n_partitions, name="n_partitions", minimum=2)
    if n_partitions % 2:
        message = f"n_partitions must be even, got {n_partitions}"
        raise ValueError(message)
    rows_per_partition = n_rows // n_partitions
    if rows_per_partition * (n_partitions // 2) < 2:
        message = (
            f"{n_rows} row(s) are too few for {n_partitions} partitions: each half sample needs at least "
            "2 rows"
        )
        raise ValueError(message)
    rows_dropped = n_rows - rows_per_partition * n_partitions
    partitions = matrix[rows_dropped:].reshape(n_partitions, rows_per_partition, n_candidates)

    combinations = list(itertools.combinations(range(n_partitions), n_partitions // 2))
    in_sample_masks = np.zeros((len(combinations), n_partitions), dtype=bool)
    for index, in_sample_parts in enumerate(combinations):
        in_sample_masks[index, list(in_sample_parts)] = True
    if metric is sharpe_ratio:
        is_scores, oos_scores = _sharpe_by_combination(partitions, in_sample_masks)
    else:
        is_scores = np.empty((len(combinations), n_candidates))
        oos_scores = np.empty((len(combinations), n_candidates))
        for index, mask in enumerate(in_sample_masks):
            is_scores[index] = _scores(metric, partitions[mask].reshape(-1, n_candidates), n_candidates)
            oos_scores[index] = _scores(metric, partitions[~mask].reshape(-1, n_candidates), n_candidates)

    rows = np.arange(len(combinations))
    selected = np.argmax(is_scores, axis=1)
    in_sample = is_scores[rows, selected]
    out_of_sample = oos_scores[rows, selected]
    below = np.sum(oos_scores < out_of_sample[:, None], axis=1)
    tied = np.sum(oos_scores == out_of_sample[:, None], axis=1)
    relative_ranks = (below + (tied + 1) / 2.0) / (n_candidates + 1)
    logits = np.log(relative_ranks / (1.0 - relative_ranks))

    finite = np.isfinite(in_sample) & np.isfinite(out_of_sample)
    slope = intercept = float("nan")
    if finite.sum() >= 2 and np.ptp(in_sample[finite]) > 0:
        slope, intercept = (float(value) for value in np.polyfit(in_sample[finite], out_of_sample[finite], 1))
    return PBOResult(
        pbo=float(np.mean(logits <= 0)),
        logits=logits,
        relative_ranks=relative_ranks,
        selected=selected,
        in_sample=in_sample,
        out_of_sample=out_of_sample,
        degradation_slope=slope,
        degradation_intercept=intercept,
        probability_of_loss=float(np.mean(out_of_sample < 0)),
        n_partitions=n_partitions,
        n_combinations=len(combinations),
        rows_dropped=rows_dropped,
    )


def _sharpe_by_combination(
    partitions: np.ndarray, in_sample_masks: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`sharpe_ratio` of every in-sample and out-of-sample half at once, from per-partition moments.

    Values are centred on each column's overall mean first, so the one-pass variance stays accurate; results
    match calling :func:`sharpe_ratio` on each half up to rounding.
    """
    n_partitions, rows_per_partition, _ = partitions.shape
    centre = partitions.reshape(-1, partitions.shape[2]).mean(axis=0)
    centred = partitions - centre
    sums = centred.sum(axis=1)
    squares = (centred * centred).sum(axis=1)
    half_rows = rows_per_partition * (n_partitions // 2)

    def half(mask: np.ndarray) -> np.ndarray:
        weights = mask.astype(np.float64)
        total = weights @ sums
        total_squares = weights @ squares
        mean = total / half_rows + centre
        variance = np.maximum(total_squares - total * total / half_rows, 0.0) / (half_rows - 1)
        std = np.sqrt(variance)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = mean / std
        return _flat_as_signed_infinity(ratio, mean, std)

    return half(in_sample_masks), half(~in_sample_masks)


def _scores(metric: Callable[[np.ndarray], np.ndarray], block: np.ndarray, n_candidates: int) -> np.ndarray:
    scores = np.asarray(metric(block), dtype=np.float64)
    if scores.shape != (n_candidates,):
        message = f"metric must return one score per candidate, shape ({n_candidates},), got {scores.shape}"
        raise ValueError(message)
    if np.isnan(scores).any():
        message = "metric returned NaN for at least one candidate"
        raise ValueError(message)
    return scores

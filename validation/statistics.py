"""Statistical checks for the promotion gate: a paired block bootstrap and the probabilistic/deflated Sharpe.

Two questions the gate asks of per-session (or per-period) returns, each answered by a pure, deterministic
function:

- Is the candidate really better than another policy on the same sessions? :func:`paired_bootstrap_difference`
  resamples the per-session differences ``candidate - other`` with a circular block bootstrap and returns a
  percentile interval for their mean.
- Is a Sharpe ratio real after non-normal returns and after picking the best of many trials?
  :func:`probabilistic_sharpe_ratio` (PSR, Bailey & López de Prado, "The Sharpe Ratio Efficient Frontier",
  2012) is the probability that the true Sharpe ratio exceeds a benchmark; :func:`deflated_sharpe_ratio`
  (DSR, "The Deflated Sharpe Ratio", 2014) is the PSR against :func:`expected_maximum_sharpe`, the Sharpe
  ratio the best of ``n_trials`` skill-less trials would show by luck.

Sharpe conventions (shared with :func:`validation.pbo.sharpe_ratio`):

- Sharpe ratios are per period, ``mean / std`` with ``ddof=1``, never annualized. The paper's standard-error
  formula is asymptotic, so ``ddof`` changes the result only at order ``1/T``; ``ddof=1`` keeps ``sharpe``
  equal to the figure the rest of the pipeline reports for the same returns, and to the trial Sharpe ratios
  whose spread feeds :func:`sharpe_variance`, so the observed ratio and its benchmark are measured alike.
- Skewness and kurtosis are the paper's population moments ``E[(r - mean)^k] / sigma^k`` with ``ddof=0``
  (``scipy.stats.skew`` and ``scipy.stats.kurtosis(fisher=False)`` with ``bias=True``); kurtosis is not
  excess kurtosis, a normal sample has about 3.
- ``trial_sharpe_variance`` is in the same per-period units: divide the variance of annualized trial Sharpe
  ratios by the square of the annualization factor first.
"""

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from statistics import NormalDist
from typing import TypeAlias

import numpy as np

__all__ = [
    "DeflatedSharpe",
    "DifferenceInterval",
    "deflated_sharpe_ratio",
    "expected_maximum_sharpe",
    "paired_bootstrap_difference",
    "probabilistic_sharpe_ratio",
    "sharpe_variance",
]

ReturnsInput: TypeAlias = Sequence[float] | np.ndarray

EULER_MASCHERONI = 0.5772156649015329
# Floor for the PSR variance term. Pearson's inequality (kurtosis >= 1 + skewness^2) makes the term a
# non-negative quadratic in SR that touches zero only for a two-valued sample at SR = 2 / skewness; rounding
# can push it to or below zero there, and the floor turns the PSR into the limiting step in SR - SR*.
_MIN_PSR_VARIANCE_TERM = 1e-12
_STANDARD_NORMAL = NormalDist()


# ------------------------------------------------------------------------------------------------------------
# Input checks
# ------------------------------------------------------------------------------------------------------------


def _check_int(value: int, *, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        message = f"{name} must be an integer >= {minimum}, got {value!r}"
        raise ValueError(message)
    return int(value)


def _check_finite_number(value: float, *, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        message = f"{name} must be a number, got {type(value).__name__}"
        raise ValueError(message)
    if not math.isfinite(value):
        message = f"{name} must be finite, got {value}"
        raise ValueError(message)
    return float(value)


def _series(values: ReturnsInput, *, name: str, minimum: int) -> np.ndarray:
    """``values`` as a finite 1-D float64 array of at least ``minimum`` entries (a copy, never a view)."""
    try:
        array = np.array(values, dtype=np.float64)
    except (TypeError, ValueError) as e:
        message = f"{name} must be a sequence of numbers"
        raise ValueError(message) from e
    if array.ndim != 1:
        message = f"{name} must be 1-D, got {array.ndim} dimension(s)"
        raise ValueError(message)
    if array.shape[0] < minimum:
        message = f"{name} needs at least {minimum} value(s), got {array.shape[0]}"
        raise ValueError(message)
    non_finite = np.flatnonzero(~np.isfinite(array))
    if non_finite.size:
        message = f"{name} has {non_finite.size} non-finite value(s) (first at position {int(non_finite[0])})"
        raise ValueError(message)
    return array


def _normal_cdf(z: float) -> float:
    # erfc keeps relative accuracy in the lower tail, where 0.5 * (1 + erf) (NormalDist.cdf) cancels.
    return 0.5 * math.erfc(-z / math.sqrt(2.0))


# ------------------------------------------------------------------------------------------------------------
# Paired block bootstrap
# ------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DifferenceInterval:
    """Outcome of :func:`paired_bootstrap_difference`."""

    estimate: float
    """Mean of ``candidate - other`` over the paired sessions."""
    lower: float
    """Lower bound of the two-sided percentile interval at ``confidence``."""
    upper: float
    """Upper bound of the same interval."""
    confidence: float
    """Two-sided coverage the interval aims for, in (0, 1)."""
    sessions: int
    """Number of paired sessions."""
    block_sessions: int
    """Consecutive sessions per bootstrap block (1: the plain bootstrap by session)."""
    resamples: int
    """Number of bootstrap resamples."""

    def to_dict(self) -> dict[str, float | int]:
        """The fields as a flat dict of plain floats and ints."""
        return asdict(self)


def paired_bootstrap_difference(
    candidate: ReturnsInput,
    other: ReturnsInput,
    *,
    confidence: float = 0.9,
    resamples: int = 2000,
    block_sessions: int = 1,
    seed: int,
) -> DifferenceInterval:
    """Block-bootstrap percentile interval for the mean per-session return difference ``candidate - other``.

    ``candidate[i]`` and ``other[i]`` are the two policies' returns on the same session ``i``, sessions in
    time order. The difference series is resampled with a circular block bootstrap (Politis & Romano 1992):
    each resample concatenates ``ceil(sessions / block_sessions)`` blocks of ``block_sessions`` consecutive
    sessions, each starting at a uniformly drawn session and wrapping from the last session to the first,
    cut to ``sessions`` values. Blocks keep the serial dependence inside them, so choose ``block_sessions``
    around the span over which session differences stay correlated; ``block_sessions=1`` is the plain iid
    bootstrap by session. Wrapping gives every session the same weight, so the resample means are centred on
    ``estimate``. The interval spans the ``(1 - confidence) / 2`` and ``(1 + confidence) / 2`` quantiles
    (linear interpolation) of the ``resamples`` resample means.

    Randomness comes only from ``np.random.default_rng(seed)``: the same inputs and seed give the same
    interval. Memory grows as ``resamples * sessions``. Identical inputs give ``[0, 0]``.

    Args:
        candidate: per-session returns of the candidate, finite.
        other: per-session returns of the policy it is compared with, on the same sessions.
        confidence: two-sided coverage in (0, 1).
        resamples: number of bootstrap resamples, >= 1.
        block_sessions: block length in sessions, from 1 to ``sessions``.
        seed: seed of the random generator.

    Raises:
        ValueError: lengths differ, fewer than 2 sessions, non-finite values, ``confidence`` outside (0, 1),
            ``block_sessions`` outside ``[1, sessions]``, or ``resamples < 1``.
    """
    candidate_returns = _series(candidate, name="candidate", minimum=0)
    other_returns = _series(other, name="other", minimum=0)
    if candidate_returns.shape[0] != other_returns.shape[0]:
        message = (
            f"candidate has {candidate_returns.shape[0]} session(s) but other has {other_returns.shape[0]}; "
            "the returns must be paired session by session"
        )
        raise ValueError(message)
    sessions = int(candidate_returns.shape[0])
    if sessions < 2:
        message = f"the bootstrap needs at least 2 paired sessions, got {sessions}"
        raise ValueError(message)
    confidence = _check_finite_number(confidence, name="confidence")
    if not 0.0 < confidence < 1.0:
        message = f"confidence must be in (0, 1), got {confidence}"
        raise ValueError(message)
    resamples = _check_int(resamples, name="resamples", minimum=1)
    block_sessions = _check_int(block_sessions, name="block_sessions", minimum=1)
    if block_sessions > sessions:
        message = f"block_sessions ({block_sessions}) must not exceed the number of sessions ({sessions})"
        raise ValueError(message)

    differences = candidate_returns - other_returns
    blocks = -(-sessions // block_sessions)
    rng = np.random.default_rng(seed)
    starts = rng.integers(0, sessions, size=(resamples, blocks))
    offsets = np.arange(block_sessions)
    positions = (starts[:, :, None] + offsets).reshape(resamples, blocks * block_sessions)[:, :sessions]
    means = differences[positions % sessions].mean(axis=1)
    alpha = 1.0 - confidence
    lower, upper = np.quantile(means, [alpha / 2.0, 1.0 - alpha / 2.0])
    return DifferenceInterval(
        estimate=float(differences.mean()),
        lower=float(lower),
        upper=float(upper),
        confidence=confidence,
        sessions=sessions,
        block_sessions=block_sessions,
        resamples=resamples,
    )


# ------------------------------------------------------------------------------------------------------------
# Probabilistic and deflated Sharpe ratio
# ------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Moments:
    """Per-period Sharpe ratio (ddof=1) and population skewness/kurtosis of a return series."""

    sharpe: float
    skewness: float
    kurtosis: float
    observations: int


def _moments(returns: ReturnsInput) -> _Moments:
    """Sample statistics the PSR needs; see the module docstring for the conventions.

    When all returns are equal the Sharpe ratio is +inf, -inf or 0 by the sign of the return, and skewness
    and kurtosis are undefined (NaN); they drop out of the PSR there (see :func:`_psr`).
    """
    values = _series(returns, name="returns", minimum=3)
    observations = int(values.shape[0])
    if np.ptp(values) == 0.0:
        level = float(values[0])
        sharpe = math.inf if level > 0.0 else -math.inf if level < 0.0 else 0.0
        return _Moments(sharpe, math.nan, math.nan, observations)
    mean = float(values.mean())
    deviations = values - mean
    standardized = deviations / math.sqrt(float(np.mean(deviations**2)))
    skewness = float(np.mean(standardized**3))
    kurtosis = float(np.mean(standardized**4))
    sharpe = mean / float(np.std(values, ddof=1))
    return _Moments(sharpe + 0.0, skewness, kurtosis, observations)


def _psr(moments: _Moments, benchmark_sharpe: float) -> float:
    """``Phi((SR - SR*) sqrt(T - 1) / sqrt(1 - skew SR + (kurt - 1) / 4 SR^2))`` with the documented rules."""
    sharpe = moments.sharpe
    if math.isinf(sharpe):
        return 1.0 if sharpe > 0.0 else 0.0
    if sharpe == 0.0:
        # The moments only enter multiplied by SR: constant zero returns keep a well-defined PSR.
        variance_term = 1.0
    else:
        variance_term = 1.0 - moments.skewness * sharpe + (moments.kurtosis - 1.0) / 4.0 * sharpe**2
    variance_term = max(variance_term, _MIN_PSR_VARIANCE_TERM)
    z = (sharpe - benchmark_sharpe) * math.sqrt(moments.observations - 1) / math.sqrt(variance_term)
    return _normal_cdf(z)


def probabilistic_sharpe_ratio(returns: ReturnsInput, *, benchmark_sharpe: float = 0.0) -> float:
    """Probability that the true per-period Sharpe ratio of ``returns`` exceeds ``benchmark_sharpe`` (PSR).

    ``PSR = Phi((SR - SR*) * sqrt(T - 1) / sqrt(1 - skew * SR + (kurtosis - 1) / 4 * SR^2))`` (Bailey & López
    de Prado 2012), with ``SR`` the per-period ``mean / std`` (ddof=1), ``skew`` and ``kurtosis`` the
    population moments (kurtosis not excess) and ``T`` the number of returns. Returns are assumed iid; serial
    correlation makes the PSR over-confident.

    Rules for degenerate samples:

    - All returns equal (zero standard deviation): ``SR`` is +inf, -inf or 0 by the sign of the return. An
      infinite ``SR`` gives 1.0 or 0.0; a zero one leaves the variance term at 1 (skewness and kurtosis
      enter only through ``SR``), so the PSR is ``Phi(-SR* sqrt(T - 1))``, 0.5 against a zero benchmark.
    - The variance term under the square root is floored at ``1e-12``. By Pearson's inequality it is never
      negative for sample moments and reaches zero only for a two-valued sample at ``SR = 2 / skew``; the
      floor absorbs rounding there, so the PSR is about 1.0, 0.0 or exactly 0.5 by the sign of
      ``SR - SR*`` instead of NaN.

    Args:
        returns: per-period (not annualized) returns, finite, at least 3.
        benchmark_sharpe: the per-period Sharpe ratio ``SR*`` to beat, finite.

    Raises:
        ValueError: fewer than 3 returns, non-finite returns, or a non-finite benchmark.
    """
    benchmark_sharpe = _check_finite_number(benchmark_sharpe, name="benchmark_sharpe")
    return _psr(_moments(returns), benchmark_sharpe)


def _check_variance(value: float) -> float:
    variance = _check_finite_number(value, name="trial_sharpe_variance")
    if variance < 0.0:
        message = f"trial_sharpe_variance must be >= 0, got {variance}"
        raise ValueError(message)
    return variance


def expected_maximum_sharpe(n_trials: int, trial_sharpe_variance: float) -> float:
    """Expected maximum Sharpe ratio of ``n_trials`` skill-less trials, the DSR benchmark ``SR0``.

    ``SR0 = sqrt(V) * ((1 - gamma) * Phi^-1(1 - 1/N) + gamma * Phi^-1(1 - 1/(N e)))`` (Bailey & López de
    Prado 2014; gamma is the Euler-Mascheroni constant): the extreme-value approximation of the
    expected maximum of ``N`` iid normal Sharpe estimates with true Sharpe ratio 0 and variance ``V``. It
    rises with ``N`` and is 0.0 for a single trial (nothing was selected) or for ``V = 0``. Correlated trials
    count for fewer: pass the effective number of independent trials.

    Args:
        n_trials: number of independent trials the tested one was selected from, >= 1.
        trial_sharpe_variance: variance ``V`` of the trials' per-period Sharpe ratios, finite and >= 0
            (see :func:`sharpe_variance`).

    Raises:
        ValueError: ``n_trials < 1``, or a negative or non-finite variance.
    """
    n_trials = _check_int(n_trials, name="n_trials", minimum=1)
    variance = _check_variance(trial_sharpe_variance)
    if n_trials == 1 or variance == 0.0:
        return 0.0
    quantile = _STANDARD_NORMAL.inv_cdf(1.0 - 1.0 / n_trials)
    quantile_e = _STANDARD_NORMAL.inv_cdf(1.0 - 1.0 / (n_trials * math.e))
    return math.sqrt(variance) * ((1.0 - EULER_MASCHERONI) * quantile + EULER_MASCHERONI * quantile_e)


@dataclass(frozen=True)
class DeflatedSharpe:
    """Outcome of :func:`deflated_sharpe_ratio`; Sharpe ratios are per period, not annualized."""

    sharpe: float
    """Observed ``mean / std`` (ddof=1); +inf, -inf or 0 by the mean's sign when all returns are equal."""
    benchmark_sharpe: float
    """``SR0``: the expected maximum Sharpe ratio of the trials by luck (:func:`expected_maximum_sharpe`)."""
    probability: float
    """DSR: the PSR of the returns against ``benchmark_sharpe``."""
    observations: int
    """Number of returns ``T``."""
    skewness: float
    """Population skewness of the returns (NaN when all returns are equal)."""
    kurtosis: float
    """Population kurtosis, not excess (normal: 3; NaN when all returns are equal)."""
    n_trials: int
    """Number of trials the returns were selected from."""
    trial_sharpe_variance: float
    """Variance of the trials' per-period Sharpe ratios."""

    def to_dict(self) -> dict[str, float | int]:
        """The fields as a flat dict of plain floats and ints (NaN and infinities kept)."""
        return asdict(self)


def deflated_sharpe_ratio(
    returns: ReturnsInput, *, n_trials: int, trial_sharpe_variance: float
) -> DeflatedSharpe:
    """Deflated Sharpe ratio (Bailey & López de Prado 2014): the PSR against a best-of-``n_trials`` benchmark.

    ``probability = PSR(returns, SR0)`` with
    ``SR0 = expected_maximum_sharpe(n_trials, trial_sharpe_variance)``: the probability that the true Sharpe
    ratio beats what the best of ``n_trials`` skill-less trials would show by luck. It equals
    ``probabilistic_sharpe_ratio(returns)`` for one trial (or zero variance) and falls as
    ``n_trials`` grows. The degenerate-sample rules are those of :func:`probabilistic_sharpe_ratio`.

    Args:
        returns: per-period (not annualized) returns of the selected trial, finite, at least 3.
        n_trials: number of independent trials it was selected from, >= 1.
        trial_sharpe_variance: variance of the trials' per-period Sharpe ratios, finite and >= 0.

    Raises:
        ValueError: fewer than 3 or non-finite returns, ``n_trials < 1``, or a negative or non-finite
            variance.
    """
    benchmark_sharpe = expected_maximum_sharpe(n_trials, trial_sharpe_variance)
    moments = _moments(returns)
    return DeflatedSharpe(
        sharpe=moments.sharpe,
        benchmark_sharpe=benchmark_sharpe,
        probability=_psr(moments, benchmark_sharpe),
        observations=moments.observations,
        skewness=moments.skewness,
        kurtosis=moments.kurtosis,
        n_trials=int(n_trials),
        trial_sharpe_variance=float(trial_sharpe_variance),
    )


def sharpe_variance(trial_sharpes: Sequence[float] | np.ndarray) -> float:
    """Sample variance (ddof=1) of the trials' per-period Sharpe ratios; 0.0 for one trial or equal ones.

    Raises:
        ValueError: no trials, or a non-finite Sharpe ratio (e.g. from a constant return series).
    """
    sharpes = _series(trial_sharpes, name="trial_sharpes", minimum=1)
    # Equal values would otherwise leave rounding residue such as 1e-33 from the mean.
    if np.ptp(sharpes) == 0.0:
        return 0.0
    return float(np.var(sharpes, ddof=1))

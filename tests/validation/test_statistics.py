"""Tests for validation/statistics.py: paired block bootstrap, PSR, expected maximum Sharpe and DSR.

Kept whole at about 500 lines: it is the one test module of validation/statistics.py, and its PSR, DSR and
bootstrap sections share the skewed-returns sample they all test on.
"""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from validation.pbo import sharpe_ratio
from validation.statistics import (
    DeflatedSharpe,
    DifferenceInterval,
    _Moments,
    _psr,
    deflated_sharpe_ratio,
    expected_maximum_sharpe,
    paired_bootstrap_difference,
    probabilistic_sharpe_ratio,
    sharpe_variance,
)


def skewed_returns(seed: int, n: int = 250) -> np.ndarray:
    """Fat-tailed, negatively skewed per-period returns with a small drift (fixed for a given seed)."""
    rng = np.random.default_rng(seed)
    return 0.0008 + 0.006 * rng.standard_t(5, size=n) - 0.01 * (rng.exponential(size=n) - 1.0)


def reference_psr(returns: np.ndarray, benchmark: float) -> float:
    """PSR from scipy's population moments and normal CDF, independently of the module."""
    sharpe = returns.mean() / returns.std(ddof=1)
    skewness = stats.skew(returns, bias=True)
    kurtosis = stats.kurtosis(returns, fisher=False, bias=True)
    spread = math.sqrt(1.0 - skewness * sharpe + (kurtosis - 1.0) / 4.0 * sharpe**2)
    return float(stats.norm.cdf((sharpe - benchmark) * math.sqrt(returns.size - 1) / spread))


def reference_sr0(n_trials: int, variance: float) -> float:
    gamma = np.euler_gamma
    return math.sqrt(variance) * (
        (1.0 - gamma) * stats.norm.ppf(1.0 - 1.0 / n_trials)
        + gamma * stats.norm.ppf(1.0 - 1.0 / (n_trials * math.e))
    )


def ar1(seed: int, n: int, phi: float) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal(n)
    series = np.empty(n)
    series[0] = noise[0]
    for i in range(1, n):
        series[i] = phi * series[i - 1] + noise[i]
    return series


# ------------------------------------------------------------------------------------------------------------
# Probabilistic Sharpe ratio
# ------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("benchmark", [0.0, 0.05, -0.02])
def test_psr_matches_scipy_reference(seed: int, benchmark: float) -> None:
    returns = skewed_returns(seed)
    assert stats.skew(returns) < -0.5
    assert stats.kurtosis(returns, fisher=False) > 4.0
    assert probabilistic_sharpe_ratio(returns, benchmark_sharpe=benchmark) == pytest.approx(
        reference_psr(returns, benchmark), rel=1e-10, abs=1e-14
    )


def test_psr_on_a_short_hand_written_array() -> None:
    returns = np.array([0.02, -0.01, 0.015, 0.03, -0.025, 0.01, 0.005])
    assert probabilistic_sharpe_ratio(returns) == pytest.approx(reference_psr(returns, 0.0), rel=1e-12)
    assert probabilistic_sharpe_ratio(list(returns)) == probabilistic_sharpe_ratio(returns)


def test_psr_accepts_a_sequence_and_does_not_mutate_the_input() -> None:
    returns = skewed_returns(3, n=40)
    before = returns.copy()
    probabilistic_sharpe_ratio(returns, benchmark_sharpe=0.01)
    np.testing.assert_array_equal(returns, before)


def test_psr_rises_with_the_sharpe_ratio_and_falls_with_the_benchmark() -> None:
    returns = skewed_returns(4)
    assert probabilistic_sharpe_ratio(returns + 0.001) > probabilistic_sharpe_ratio(returns)
    assert probabilistic_sharpe_ratio(returns, benchmark_sharpe=0.1) < probabilistic_sharpe_ratio(returns)


def test_paper_numeric_example_dsr() -> None:
    # Bailey & López de Prado (2014), numerical example: N = 100 trials whose annualized Sharpe ratios have
    # variance 1/2; the selected one has an annualized SR of 2.5 over T = 1250 daily returns (250 a year),
    # skewness -3, kurtosis 10. SR0 = sqrt(1/2) * (...) = 1.7894 annualized, 1.7894 / sqrt(250) = 0.1132
    # daily; SR = 2.5 / sqrt(250) = 0.1581 daily; DSR = Phi(1.2839) = 0.9004, as the paper reports.
    # The paper gives moments, not returns, so the PSR is checked through the module's moments-level core.
    sr0_daily = expected_maximum_sharpe(100, 0.5 / 250)
    assert expected_maximum_sharpe(100, 0.5) == pytest.approx(1.7894, abs=5e-4)
    assert sr0_daily == pytest.approx(expected_maximum_sharpe(100, 0.5) / math.sqrt(250), rel=1e-12)
    assert sr0_daily == pytest.approx(0.11317, abs=5e-5)
    dsr = _psr(_Moments(2.5 / math.sqrt(250), -3.0, 10.0, 1250), sr0_daily)
    assert dsr == pytest.approx(0.9004, abs=5e-5)


@pytest.mark.parametrize(
    ("level", "sharpe", "probability"),
    [(0.01, math.inf, 1.0), (-0.01, -math.inf, 0.0), (0.0, 0.0, 0.5)],
)
def test_zero_dispersion_rule(level: float, sharpe: float, probability: float) -> None:
    returns = [level] * 6
    assert probabilistic_sharpe_ratio(returns) == probability
    result = deflated_sharpe_ratio(returns, n_trials=1, trial_sharpe_variance=0.0)
    assert result.sharpe == sharpe
    assert result.probability == probability
    assert math.isnan(result.skewness)
    assert math.isnan(result.kurtosis)


def test_zero_dispersion_beats_any_finite_benchmark_by_its_sign() -> None:
    assert probabilistic_sharpe_ratio([0.1] * 10, benchmark_sharpe=50.0) == 1.0
    assert probabilistic_sharpe_ratio([-0.1] * 10, benchmark_sharpe=-50.0) == 0.0


def test_zero_returns_against_a_benchmark_use_a_unit_variance_term() -> None:
    expected = float(stats.norm.cdf(-0.1 * math.sqrt(9)))
    assert probabilistic_sharpe_ratio([0.0] * 10, benchmark_sharpe=0.1) == pytest.approx(expected, rel=1e-12)


def two_point_sample_with_vanishing_variance_term() -> np.ndarray:
    """1 high and 9 low returns with SR (ddof=1) = 2 / skewness, where Pearson's bound makes the term ~0."""
    high, n = 1, 10
    p = high / n
    skewness = (1.0 - 2.0 * p) / math.sqrt(p * (1.0 - p))
    std = math.sqrt(p * (1.0 - p)) * math.sqrt(n / (n - 1))
    low = 2.0 / skewness * std - p
    return np.array([low + 1.0] * high + [low] * (n - high))


def test_vanishing_psr_variance_term_gives_a_step_not_nan() -> None:
    returns = two_point_sample_with_vanishing_variance_term()
    sharpe = returns.mean() / returns.std(ddof=1)
    skewness = stats.skew(returns)
    kurtosis = stats.kurtosis(returns, fisher=False)
    assert abs(1.0 - skewness * sharpe + (kurtosis - 1.0) / 4.0 * sharpe**2) < 1e-9
    assert probabilistic_sharpe_ratio(returns) == pytest.approx(1.0)
    assert probabilistic_sharpe_ratio(returns, benchmark_sharpe=1.0) == pytest.approx(0.0)
    assert probabilistic_sharpe_ratio(returns, benchmark_sharpe=float(sharpe)) == 0.5


def test_negative_psr_variance_term_is_floored() -> None:
    # Moments violating Pearson's inequality (no sample has them) make the term 1 - 5 + 0.5 = -3.5.
    assert _psr(_Moments(1.0, 5.0, 3.0, 20), 0.0) == 1.0
    assert _psr(_Moments(1.0, 5.0, 3.0, 20), 2.0) == 0.0


@pytest.mark.parametrize(
    ("returns", "benchmark", "match"),
    [
        ([0.01, 0.02], 0.0, "at least 3"),
        ([], 0.0, "at least 3"),
        ([0.01, math.nan, 0.02], 0.0, "non-finite"),
        ([0.01, math.inf, 0.02], 0.0, "non-finite"),
        ([[0.01, 0.02, 0.03]], 0.0, "1-D"),
        (["a", "b", "c"], 0.0, "sequence of numbers"),
        ([0.01, 0.02, 0.03], math.nan, "benchmark_sharpe must be finite"),
        ([0.01, 0.02, 0.03], math.inf, "benchmark_sharpe must be finite"),
    ],
)
def test_psr_rejects_bad_input(returns: list[float], benchmark: float, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        probabilistic_sharpe_ratio(returns, benchmark_sharpe=benchmark)


# ------------------------------------------------------------------------------------------------------------
# Expected maximum Sharpe ratio and sharpe_variance
# ------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("n_trials", [2, 3, 10, 100, 1000])
@pytest.mark.parametrize("variance", [1e-4, 0.02, 0.5])
def test_expected_maximum_sharpe_matches_scipy_reference(n_trials: int, variance: float) -> None:
    assert expected_maximum_sharpe(n_trials, variance) == pytest.approx(
        reference_sr0(n_trials, variance), rel=1e-12
    )


def test_expected_maximum_sharpe_is_zero_for_one_trial_or_no_spread() -> None:
    assert expected_maximum_sharpe(1, 0.3) == 0.0
    assert expected_maximum_sharpe(50, 0.0) == 0.0


def test_expected_maximum_sharpe_grows_with_trials() -> None:
    values = [expected_maximum_sharpe(n, 0.01) for n in (1, 2, 5, 10, 100, 1000, 10**6)]
    assert all(a < b for a, b in zip(values, values[1:], strict=False))


@pytest.mark.parametrize(("n_trials", "tolerance"), [(10, 0.05), (100, 0.03)])
def test_expected_maximum_sharpe_approximates_monte_carlo(n_trials: int, tolerance: float) -> None:
    variance = 0.04
    rng = np.random.default_rng(20140101 + n_trials)
    maxima = (math.sqrt(variance) * rng.standard_normal((20_000, n_trials))).max(axis=1)
    assert expected_maximum_sharpe(n_trials, variance) == pytest.approx(maxima.mean(), rel=tolerance)


def test_expected_maximum_sharpe_approximates_the_best_of_skill_less_backtests() -> None:
    # The workflow it serves: N zero-drift strategies backtested over T periods, V from their Sharpe spread.
    n_trials, periods, repetitions = 10, 64, 3000
    returns = np.random.default_rng(7).standard_normal((repetitions, n_trials, periods))
    sharpes = returns.mean(axis=2) / returns.std(axis=2, ddof=1)
    variance = float(np.mean([sharpe_variance(trial) for trial in sharpes]))
    assert expected_maximum_sharpe(n_trials, variance) == pytest.approx(sharpes.max(axis=1).mean(), rel=0.05)


@pytest.mark.parametrize(
    ("n_trials", "variance", "match"),
    [
        (0, 0.1, "n_trials must be an integer >= 1"),
        (-3, 0.1, "n_trials must be an integer >= 1"),
        (2.0, 0.1, "n_trials must be an integer >= 1"),
        (True, 0.1, "n_trials must be an integer >= 1"),
        (10, -0.1, "trial_sharpe_variance must be >= 0"),
        (10, math.nan, "trial_sharpe_variance must be finite"),
        (10, math.inf, "trial_sharpe_variance must be finite"),
    ],
)
def test_expected_maximum_sharpe_rejects_bad_input(n_trials: int, variance: float, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        expected_maximum_sharpe(n_trials, variance)


def test_sharpe_variance_is_the_sample_variance() -> None:
    trial_sharpes = [0.05, -0.02, 0.11, 0.0, 0.07]
    assert sharpe_variance(trial_sharpes) == pytest.approx(float(np.var(trial_sharpes, ddof=1)), rel=1e-14)
    assert sharpe_variance(np.array([0.3])) == 0.0
    assert sharpe_variance([0.2, 0.2, 0.2]) == 0.0


@pytest.mark.parametrize(("trial_sharpes", "match"), [([], "at least 1"), ([0.1, math.inf], "non-finite")])
def test_sharpe_variance_rejects_bad_input(trial_sharpes: list[float], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        sharpe_variance(trial_sharpes)


# ------------------------------------------------------------------------------------------------------------
# Deflated Sharpe ratio
# ------------------------------------------------------------------------------------------------------------


def test_dsr_fields_match_independent_statistics() -> None:
    returns = skewed_returns(11)
    result = deflated_sharpe_ratio(returns, n_trials=25, trial_sharpe_variance=0.003)
    assert isinstance(result, DeflatedSharpe)
    sr0 = reference_sr0(25, 0.003)
    assert result.sharpe == pytest.approx(float(sharpe_ratio(returns[:, None])[0]), rel=1e-12)
    assert result.benchmark_sharpe == pytest.approx(sr0, rel=1e-12)
    assert result.probability == pytest.approx(reference_psr(returns, sr0), rel=1e-10)
    assert result.skewness == pytest.approx(stats.skew(returns), rel=1e-10)
    assert result.kurtosis == pytest.approx(stats.kurtosis(returns, fisher=False), rel=1e-10)
    assert (result.observations, result.n_trials, result.trial_sharpe_variance) == (250, 25, 0.003)


def test_dsr_to_dict_is_flat_plain_numbers() -> None:
    result = deflated_sharpe_ratio(skewed_returns(12), n_trials=5, trial_sharpe_variance=0.01)
    payload = result.to_dict()
    assert set(payload) == {
        "sharpe",
        "benchmark_sharpe",
        "probability",
        "observations",
        "skewness",
        "kurtosis",
        "n_trials",
        "trial_sharpe_variance",
    }
    assert type(payload["observations"]) is int
    assert type(payload["n_trials"]) is int
    assert all(type(payload[key]) is float for key in payload if key not in {"observations", "n_trials"})


@pytest.mark.parametrize("seed", [20, 21, 22])
def test_dsr_equals_psr_for_one_trial_and_is_lower_for_more(seed: int) -> None:
    returns = skewed_returns(seed)
    psr = probabilistic_sharpe_ratio(returns)
    assert deflated_sharpe_ratio(returns, n_trials=1, trial_sharpe_variance=0.01).probability == psr
    assert deflated_sharpe_ratio(returns, n_trials=40, trial_sharpe_variance=0.0).probability == psr
    for n_trials in (2, 10, 100):
        deflated = deflated_sharpe_ratio(returns, n_trials=n_trials, trial_sharpe_variance=0.001)
        assert deflated.probability < psr


def test_more_trials_lower_the_dsr() -> None:
    returns = skewed_returns(30, n=500) + 0.002
    probabilities = [
        deflated_sharpe_ratio(returns, n_trials=n, trial_sharpe_variance=0.002).probability
        for n in (1, 2, 5, 10, 100, 1000)
    ]
    assert all(a > b for a, b in zip(probabilities, probabilities[1:], strict=False))


def test_dsr_rejects_bad_input() -> None:
    returns = skewed_returns(31)
    with pytest.raises(ValueError, match="n_trials"):
        deflated_sharpe_ratio(returns, n_trials=0, trial_sharpe_variance=0.01)
    with pytest.raises(ValueError, match="trial_sharpe_variance"):
        deflated_sharpe_ratio(returns, n_trials=3, trial_sharpe_variance=-1e-6)
    with pytest.raises(ValueError, match="at least 3"):
        deflated_sharpe_ratio(returns[:2], n_trials=3, trial_sharpe_variance=0.01)


# ------------------------------------------------------------------------------------------------------------
# Paired block bootstrap
# ------------------------------------------------------------------------------------------------------------


def reference_bootstrap_means(
    differences: np.ndarray, *, resamples: int, block_sessions: int, seed: int
) -> np.ndarray:
    """The circular block bootstrap one resample and one block at a time, with the same random draws."""
    sessions = differences.size
    blocks = math.ceil(sessions / block_sessions)
    starts = np.random.default_rng(seed).integers(0, sessions, size=(resamples, blocks))
    means = []
    for resample in range(resamples):
        values: list[float] = []
        for start in starts[resample]:
            values.extend(differences[(start + offset) % sessions] for offset in range(block_sessions))
        means.append(np.mean(values[:sessions]))
    return np.array(means)


@settings(max_examples=40, deadline=None)
@given(
    differences=st.lists(st.floats(-1.0, 1.0), min_size=2, max_size=30),
    block_fraction=st.floats(0.0, 1.0),
    resamples=st.integers(1, 40),
    seed=st.integers(0, 2**32 - 1),
    confidence=st.floats(0.05, 0.99),
)
def test_bootstrap_equals_reference_loop(
    differences: list[float], block_fraction: float, resamples: int, seed: int, confidence: float
) -> None:
    values = np.array(differences)
    block_sessions = max(1, round(block_fraction * values.size))
    result = paired_bootstrap_difference(
        values,
        np.zeros(values.size),
        confidence=confidence,
        resamples=resamples,
        block_sessions=block_sessions,
        seed=seed,
    )
    means = reference_bootstrap_means(values, resamples=resamples, block_sessions=block_sessions, seed=seed)
    alpha = 1.0 - confidence
    np.testing.assert_allclose(
        [result.lower, result.upper], np.quantile(means, [alpha / 2, 1 - alpha / 2]), rtol=1e-12, atol=1e-15
    )
    slack = 1e-12
    assert values.min() - slack <= result.lower <= result.upper <= values.max() + slack


def test_bootstrap_is_deterministic_given_the_seed() -> None:
    candidate = skewed_returns(40, n=80)
    other = skewed_returns(41, n=80)
    first = paired_bootstrap_difference(candidate, other, block_sessions=4, seed=123)
    assert paired_bootstrap_difference(list(candidate), list(other), block_sessions=4, seed=123) == first
    assert paired_bootstrap_difference(candidate, other, block_sessions=4, seed=124) != first


def test_bootstrap_does_not_mutate_inputs() -> None:
    candidate = skewed_returns(42, n=30)
    other = skewed_returns(43, n=30)
    before = (candidate.copy(), other.copy())
    paired_bootstrap_difference(candidate, other, seed=0)
    np.testing.assert_array_equal(candidate, before[0])
    np.testing.assert_array_equal(other, before[1])


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("block_sessions", [1, 3, 10])
def test_bootstrap_interval_contains_the_estimate(seed: int, block_sessions: int) -> None:
    candidate = skewed_returns(seed, n=60)
    other = skewed_returns(seed + 100, n=60)
    result = paired_bootstrap_difference(candidate, other, block_sessions=block_sessions, seed=seed)
    assert result.estimate == pytest.approx(float(np.mean(candidate - other)), rel=1e-12)
    assert result.lower < result.estimate < result.upper


def test_bootstrap_record_and_to_dict() -> None:
    result = paired_bootstrap_difference(
        [0.01, 0.02, -0.01, 0.0],
        [0.0, 0.01, 0.0, 0.0],
        confidence=0.8,
        resamples=50,
        block_sessions=2,
        seed=1,
    )
    assert isinstance(result, DifferenceInterval)
    assert (result.confidence, result.sessions, result.block_sessions, result.resamples) == (0.8, 4, 2, 50)
    payload = result.to_dict()
    assert payload == {
        "estimate": result.estimate,
        "lower": result.lower,
        "upper": result.upper,
        "confidence": 0.8,
        "sessions": 4,
        "block_sessions": 2,
        "resamples": 50,
    }
    assert [type(payload[key]) for key in ("sessions", "block_sessions", "resamples")] == [int, int, int]


def test_identical_inputs_give_a_zero_interval() -> None:
    returns = skewed_returns(50, n=40)
    result = paired_bootstrap_difference(returns, returns.copy(), block_sessions=5, seed=9)
    assert (result.estimate, result.lower, result.upper) == (0.0, 0.0, 0.0)


def test_constant_difference_gives_a_degenerate_interval() -> None:
    other = skewed_returns(51, n=40)
    result = paired_bootstrap_difference(other + 0.01, other, seed=9)
    assert result.lower == pytest.approx(0.01, abs=1e-12)
    assert result.upper == pytest.approx(0.01, abs=1e-12)


def test_clearly_better_candidate_has_a_positive_lower_bound() -> None:
    rng = np.random.default_rng(60)
    other = rng.normal(0.0, 1.0, size=60)
    candidate = other + 0.5 + rng.normal(0.0, 1.0, size=60)
    result = paired_bootstrap_difference(candidate, other, confidence=0.95, seed=60)
    assert result.lower > 0.0


def test_equal_policies_are_not_separated() -> None:
    rng = np.random.default_rng(61)
    other = rng.normal(0.0, 1.0, size=60)
    candidate = other + rng.normal(0.0, 1.0, size=60)
    result = paired_bootstrap_difference(candidate, other, confidence=0.95, seed=61)
    assert result.lower < 0.0 < result.upper


def test_null_coverage_is_roughly_the_confidence() -> None:
    repetitions, sessions = 200, 50
    covered = 0
    for repetition in range(repetitions):
        differences = np.random.default_rng(1000 + repetition).standard_normal(sessions)
        result = paired_bootstrap_difference(differences, np.zeros(sessions), resamples=500, seed=repetition)
        covered += result.lower <= 0.0 <= result.upper
    # Nominal 0.9; the percentile interval under-covers a little at 50 sessions; 3 standard errors ~ 0.06.
    assert 0.8 <= covered / repetitions <= 0.97


def test_blocks_widen_the_interval_for_autocorrelated_differences() -> None:
    differences = ar1(70, 300, phi=0.9)
    zeros = np.zeros(differences.size)
    iid = paired_bootstrap_difference(differences, zeros, seed=70)
    blocked = paired_bootstrap_difference(differences, zeros, block_sessions=25, seed=70)
    assert blocked.upper - blocked.lower > 2.0 * (iid.upper - iid.lower)


def test_blocks_barely_change_the_interval_for_independent_differences() -> None:
    differences = np.random.default_rng(71).standard_normal(300)
    zeros = np.zeros(differences.size)
    iid = paired_bootstrap_difference(differences, zeros, seed=71)
    blocked = paired_bootstrap_difference(differences, zeros, block_sessions=25, seed=71)
    assert blocked.upper - blocked.lower == pytest.approx(iid.upper - iid.lower, rel=0.3)


def test_one_block_of_all_sessions_only_rotates_them() -> None:
    differences = skewed_returns(72, n=12)
    result = paired_bootstrap_difference(differences, np.zeros(12), block_sessions=12, resamples=30, seed=72)
    assert result.lower == pytest.approx(result.estimate, rel=1e-12)
    assert result.upper == pytest.approx(result.estimate, rel=1e-12)


@pytest.mark.parametrize(
    ("candidate", "other", "options", "match"),
    [
        ([0.1, 0.2, 0.3], [0.1, 0.2], {}, "paired"),
        ([0.1], [0.2], {}, "at least 2 paired sessions"),
        ([], [], {}, "at least 2 paired sessions"),
        ([0.1, math.nan], [0.2, 0.1], {}, "candidate has 1 non-finite"),
        ([0.1, 0.2], [0.2, -math.inf], {}, "other has 1 non-finite"),
        ([[0.1, 0.2]], [[0.2, 0.1]], {}, "1-D"),
        ([0.1, 0.2], [0.2, 0.1], {"confidence": 0.0}, "confidence must be in"),
        ([0.1, 0.2], [0.2, 0.1], {"confidence": 1.0}, "confidence must be in"),
        ([0.1, 0.2], [0.2, 0.1], {"confidence": 90.0}, "confidence must be in"),
        ([0.1, 0.2], [0.2, 0.1], {"confidence": math.nan}, "confidence must be finite"),
        ([0.1, 0.2], [0.2, 0.1], {"block_sessions": 0}, "block_sessions must be an integer >= 1"),
        ([0.1, 0.2], [0.2, 0.1], {"block_sessions": 1.5}, "block_sessions must be an integer >= 1"),
        ([0.1, 0.2], [0.2, 0.1], {"block_sessions": 3}, "must not exceed the number of sessions"),
        ([0.1, 0.2], [0.2, 0.1], {"resamples": 0}, "resamples must be an integer >= 1"),
    ],
)
def test_bootstrap_rejects_bad_input(
    candidate: list[float], other: list[float], options: dict[str, float], match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        paired_bootstrap_difference(candidate, other, seed=0, **options)  # type: ignore[arg-type]

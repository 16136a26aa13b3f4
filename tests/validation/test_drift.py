"""PSI and KS drift figures against hand-computed cases."""

import math

import numpy as np
import pytest

from validation.drift import DriftThresholds, drift_markdown, drift_table, population_stability_index


def test_psi_is_zero_for_the_same_sample_and_matches_the_formula_by_hand() -> None:
    reference = np.arange(100, dtype=float)  # deciles at 10, 20, ..., 90: ten bins of 10
    assert population_stability_index(reference, reference) == pytest.approx(0.0)
    # Tonight: half the rows in the lowest bin, the other half spread over the nine others (50/9 each).
    current = np.concatenate(
        [np.full(50, 1.0), np.repeat(np.arange(15.0, 100.0, 10.0), [6, 6, 6, 6, 6, 5, 5, 5, 5])]
    )
    shares = np.array([50, 6, 6, 6, 6, 6, 5, 5, 5, 5]) / 100
    expected = float(np.sum((shares - 0.1) * np.log(shares / 0.1)))
    assert population_stability_index(reference, current) == pytest.approx(expected)


def test_an_empty_bin_counts_as_a_tiny_share_not_infinity() -> None:
    reference = np.arange(100, dtype=float)
    current = np.full(100, 1000.0)  # everything above the reference: nine empty bins
    psi = population_stability_index(reference, current)
    assert math.isfinite(psi)
    assert psi == pytest.approx((1 - 0.1) * math.log(1 / 0.1) + 9 * (1e-6 - 0.1) * math.log(1e-6 / 0.1))


def test_the_table_flags_a_shifted_column_and_not_a_stable_one() -> None:
    rng = np.random.default_rng(0)
    reference = {
        "stable": rng.normal(size=4000),
        "shifted": rng.normal(size=4000),
        "gone": rng.normal(size=10),
    }
    current = {"stable": rng.normal(size=4000), "shifted": rng.normal(loc=1.0, size=4000)}
    rows = {row.column: row for row in drift_table(reference, current, DriftThresholds())}
    assert set(rows) == {"stable", "shifted"}
    assert not rows["stable"].drifted and rows["stable"].psi < 0.05 and rows["stable"].ks_pvalue > 0.001
    assert rows["shifted"].drifted and rows["shifted"].psi > 0.25 and rows["shifted"].ks_pvalue < 1e-10
    text = drift_markdown(list(rows.values()), reference="the champion's training window")
    assert text.index("| shifted |") < text.index("| stable |")

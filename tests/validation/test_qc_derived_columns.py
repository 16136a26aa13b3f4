import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from validation.qc_derived_columns import _trailing_robust_z


def _reference_robust_z(values: np.ndarray, window: int) -> np.ndarray:
    scores = np.full(values.shape, np.nan)
    for index in range(window, values.size):
        past = values[index - window : index]
        center = np.median(past)
        scale = 1.4826 * np.median(np.abs(past - center))
        if scale > 0:
            scores[index] = (values[index] - center) / scale
    return scores


@settings(max_examples=40, deadline=None)
@given(
    values=st.lists(st.integers(-20, 20), min_size=0, max_size=120),
    window=st.integers(2, 25),
)
def test_robust_z_matches_reference_loop(values: list[int], window: int) -> None:
    series = np.asarray(values, dtype=np.float64) / 10.0  # coarse values: many ties and zero MADs
    np.testing.assert_allclose(
        _trailing_robust_z(series, window=window), _reference_robust_z(series, window), rtol=1e-12, atol=1e-12
    )


def test_robust_z_uses_past_bars_only() -> None:
    values = np.random.default_rng(3).normal(size=500)
    changed = values.copy()
    changed[300:] *= 50.0
    before, after = _trailing_robust_z(values, window=50), _trailing_robust_z(changed, window=50)
    np.testing.assert_array_equal(before[:300], after[:300])
    assert np.isnan(before[:50]).all() and np.isfinite(before[50:]).all()

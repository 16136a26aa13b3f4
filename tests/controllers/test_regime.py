import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controllers.regime import RegimeDetector, RegimeDetectorConfig, regime_scores

BARS_PER_SESSION = 78


def random_walk(
    sessions: int, *, seed: int, volatility: np.ndarray | float = 0.001, drift: np.ndarray | float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """Closes (bars, 2) of two independent log random walks and their session index."""
    bars = sessions * BARS_PER_SESSION
    rng = np.random.default_rng(seed)
    scale = np.broadcast_to(np.asarray(volatility, dtype=np.float64), (bars,))[:, None]
    returns = rng.normal(0.0, 1.0, (bars, 2)) * scale + drift
    close = 100.0 * np.exp(np.cumsum(returns, axis=0))
    return close, np.repeat(np.arange(sessions), BARS_PER_SESSION)


def per_bar(values: float | tuple[float, float], sessions: int, segment: slice) -> np.ndarray:
    array = np.zeros((sessions * BARS_PER_SESSION, 2))
    array[segment] = values
    return array


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), sessions=st.integers(1, 12), volatility=st.floats(1e-5, 0.05))
def test_scores_are_finite_float32_in_range(seed: int, sessions: int, volatility: float) -> None:
    close, session_index = random_walk(sessions, seed=seed, volatility=volatility)
    config = RegimeDetectorConfig(
        momentum_bars=10, volatility_bars=10, history_sessions=4, min_history_sessions=1
    )
    scores = regime_scores(close, session_index=session_index, config=config)
    assert scores.dtype == np.float32
    assert scores.shape == (close.shape[0],)
    assert np.isfinite(scores).all()
    assert (np.abs(scores) <= 1.0).all()


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), cut=st.integers(0, 12 * BARS_PER_SESSION - 2))
def test_no_look_ahead(seed: int, cut: int) -> None:
    close, session_index = random_walk(12, seed=seed)
    config = RegimeDetectorConfig(history_sessions=5, min_history_sessions=2)
    scores = regime_scores(close, session_index=session_index, config=config)
    changed = close.copy()
    changed[cut + 1 :] *= np.random.default_rng(seed + 1).uniform(0.5, 2.0, changed[cut + 1 :].shape)
    changed_scores = regime_scores(changed, session_index=session_index, config=config)
    np.testing.assert_array_equal(changed_scores[: cut + 1], scores[: cut + 1])
    # The last session, past the warm-up, changes for every cut: the scores there must move.
    assert not np.array_equal(changed_scores[cut + 1 :], scores[cut + 1 :])


def test_warm_up_without_bootstrap_is_exactly_zero() -> None:
    close, session_index = random_walk(8, seed=3)
    scores = regime_scores(close, session_index=session_index)
    warm_up = 3 * BARS_PER_SESSION  # min_history_sessions completed sessions
    assert (scores[:warm_up] == 0.0).all()
    assert (scores[warm_up:] != 0.0).mean() > 0.99


def test_bootstrap_changes_early_scores_and_not_late_ones() -> None:
    past, past_sessions = random_walk(35, seed=11)
    close, session_index = random_walk(40, seed=12)
    close = close * (past[-1] / close[0])  # continue the past path
    plain = regime_scores(close, session_index=session_index + 35)
    booted = regime_scores(
        close, session_index=session_index + 35, bootstrap_close=past, bootstrap_session_index=past_sessions
    )
    early = slice(0, 3 * BARS_PER_SESSION)
    assert (plain[early] == 0.0).all()
    assert (booted[early] != 0.0).mean() > 0.99
    # Past the windows and the 30-session history, the bootstrap bars no longer enter any quantity.
    late = slice(31 * BARS_PER_SESSION, None)
    np.testing.assert_allclose(booted[late], plain[late], atol=1e-5)
    assert not np.allclose(booted[: 30 * BARS_PER_SESSION], plain[: 30 * BARS_PER_SESSION], atol=1e-3)


def test_bootstrap_sessions_are_inferred_from_the_session_length() -> None:
    past, past_sessions = random_walk(6, seed=21)
    close, session_index = random_walk(4, seed=22)
    inferred = regime_scores(close, session_index=session_index, bootstrap_close=past)
    explicit = regime_scores(
        close, session_index=session_index, bootstrap_close=past, bootstrap_session_index=past_sessions
    )
    np.testing.assert_array_equal(inferred, explicit)


def test_high_volatility_raises_the_score() -> None:
    sessions = 45
    volatility = np.full(sessions * BARS_PER_SESSION, 0.001)
    stressed = slice(40 * BARS_PER_SESSION, 42 * BARS_PER_SESSION)
    volatility[stressed] = 0.003
    close, session_index = random_walk(sessions, seed=5, volatility=volatility)
    scores = regime_scores(close, session_index=session_index)
    calm = scores[5 * BARS_PER_SESSION : 40 * BARS_PER_SESSION]
    # Once the 30-bar window sits inside the stressed sessions.
    assert scores[40 * BARS_PER_SESSION + 30 : 42 * BARS_PER_SESSION].mean() > 0.7
    assert abs(calm.mean()) < 0.1


def test_strong_common_trend_lowers_the_score() -> None:
    sessions = 45
    trend = slice(40 * BARS_PER_SESSION, 42 * BARS_PER_SESSION)
    close, session_index = random_walk(sessions, seed=6, drift=per_bar(0.0005, sessions, trend))
    scores = regime_scores(close, session_index=session_index)
    assert scores[40 * BARS_PER_SESSION + 30 : 42 * BARS_PER_SESSION].mean() < -0.3


def test_diverging_tickers_raise_the_score() -> None:
    sessions = 45
    apart = slice(40 * BARS_PER_SESSION, 42 * BARS_PER_SESSION)
    config = RegimeDetectorConfig(volatility_weight=0.0, momentum_weight=0.0, divergence_weight=1.0)
    close, session_index = random_walk(sessions, seed=7, drift=per_bar((0.0005, -0.0005), sessions, apart))
    scores = regime_scores(close, session_index=session_index, config=config)
    assert scores[40 * BARS_PER_SESSION + 30 : 42 * BARS_PER_SESSION].mean() > 0.5


def test_online_detector_matches_the_vectorized_scores() -> None:
    close, session_index = random_walk(7, seed=8)
    config = RegimeDetectorConfig(history_sessions=4, min_history_sessions=2)
    expected = regime_scores(close, session_index=session_index, config=config)
    detector = RegimeDetector(config)
    online = np.array(
        [detector.update(row, session=int(s)) for row, s in zip(close, session_index, strict=True)]
    )
    np.testing.assert_allclose(online, expected, atol=1e-5)
    assert detector.score == online[-1]


def test_empty_and_one_bar_inputs() -> None:
    empty = regime_scores(np.empty((0, 2)), session_index=np.empty(0, dtype=np.int64))
    assert empty.shape == (0,) and empty.dtype == np.float32
    one = regime_scores(np.array([[10.0, 20.0]]), session_index=np.array([0]))
    np.testing.assert_array_equal(one, np.zeros(1, dtype=np.float32))


@pytest.mark.parametrize(
    ("close", "session_index", "fragment"),
    [
        (np.ones((5, 3)), np.zeros(5, dtype=int), "shape \\(bars, 2\\)"),
        (np.ones((5, 2)), np.zeros(4, dtype=int), "shape \\(5,\\)"),
        (np.array([[1.0, 1.0], [0.0, 1.0]]), np.zeros(2, dtype=int), "finite, positive"),
        (np.array([[1.0, 1.0], [np.nan, 1.0]]), np.zeros(2, dtype=int), "finite, positive"),
        (np.ones((3, 2)), np.array([0, 2, 1]), "non-decreasing"),
        (np.ones((3, 2)), np.array([0.0, 1.0, 2.0]), "integer"),
    ],
)
def test_bad_inputs_are_rejected(close: np.ndarray, session_index: np.ndarray, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        regime_scores(close, session_index=session_index)


def test_bootstrap_session_index_needs_bootstrap_close() -> None:
    with pytest.raises(ValueError, match="without bootstrap_close"):
        regime_scores(
            np.ones((3, 2)), session_index=np.zeros(3, dtype=int), bootstrap_session_index=np.zeros(1)
        )


def test_online_detector_rejects_bad_bars() -> None:
    detector = RegimeDetector()
    detector.update((10.0, 20.0), session=3)
    with pytest.raises(ValueError, match="backwards"):
        detector.update((10.0, 20.0), session=2)
    with pytest.raises(ValueError, match="positive"):
        detector.update((-1.0, 20.0), session=3)


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"momentum_bars": 0}, "momentum_bars"),
        ({"volatility_bars": 1}, "volatility_bars"),
        ({"min_history_sessions": 31}, "must not exceed"),
        ({"volatility_weight": 0.0, "divergence_weight": 0.0, "momentum_weight": 0.0}, "must be positive"),
        ({"momentum_weight": -0.1}, "momentum_weight"),
        ({"weights": 1}, "weights"),
    ],
)
def test_bad_config_raises(overrides: dict[str, object], fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        RegimeDetectorConfig.model_validate(overrides)

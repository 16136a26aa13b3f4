"""Tests for validation/scenarios.py: held-out regime slices and synthetic stress scenarios."""

import math
from datetime import date

import numpy as np
import pydantic
import pytest

from controllers.regime import RegimeDetectorConfig
from core.errors import ConfigError
from envs.market_arrays import MarketArrays
from market.feature_config import FeatureConfig, feature_names
from market.signal import SignalModel, SymbolSignalModel
from market.synthetic import SyntheticMarketConfig
from stairways.config import DEFAULT_OBSERVATION_FEATURES, SIGNAL_FEATURE
from validation.scenarios import (
    SCENARIO_NAMES,
    SIGNAL_COLUMN,
    Scenario,
    ScenarioConfig,
    classify_sessions,
    held_out_scenarios,
    session_markets,
    stress_scenarios,
)

BARS = 40
SYMBOLS = ("NVDA", "MSFT")


def _session_returns(kind: str, rng: np.random.Generator) -> np.ndarray:
    """``(BARS - 1, 2)`` intraday log returns of a session of the given kind."""
    signs = np.where(np.arange(BARS - 1) % 2 == 0, 1.0, -1.0)
    if kind == "normal":  # volatility 0.001, both tickers move together, no trend
        return 0.001 * np.column_stack([signs, signs])
    if kind == "calm":  # half the volatility
        return 0.0005 * np.column_stack([signs, signs])
    if kind == "volatile":  # three times the volatility, perfectly correlated
        return 0.003 * np.column_stack([signs, signs])
    if kind == "breakdown":  # normal volatility, the tickers mostly move against each other
        return 0.001 * np.column_stack([signs, -signs]) + 0.0003 * rng.standard_normal((BARS - 1, 2))
    if kind == "trend":  # steady drift up in both tickers, common noise: correlated, normal volatility
        noise = 0.0002 * rng.standard_normal(BARS - 1)
        return 0.001 + np.column_stack([noise, noise]) + 0.00002 * rng.standard_normal((BARS - 1, 2))
    message = f"unknown session kind {kind}"
    raise ValueError(message)


def _market(kinds: list[str], *, first_day: int = 2, seed: int = 0) -> MarketArrays:
    """One session of ``BARS`` one-minute bars per kind, on consecutive January 2024 trading days."""
    rng = np.random.default_rng(seed)
    closes, stamps, sessions = [], [], []
    level = np.array([100.0, 200.0])
    days = [day for day in range(first_day, 32) if date(2024, 1, day).weekday() < 5 and day != 15]
    for index, kind in enumerate(kinds):
        returns = _session_returns(kind, rng)
        path = level * np.exp(np.concatenate([np.zeros((1, 2)), np.cumsum(returns, axis=0)]))
        closes.append(path)
        level = path[-1]
        start = np.datetime64(f"2024-01-{days[index]:02d}T14:30", "ns")
        stamps.append(start + np.arange(BARS) * np.timedelta64(1, "m"))
        sessions.append(np.full(BARS, index, dtype=np.int64))
    close = np.concatenate(closes)
    rows = close.shape[0]
    return MarketArrays(
        features=np.zeros((rows, 2), dtype=np.float32),
        feature_names=("NVDA:x", "MSFT:x"),
        open=close.copy(),
        close=close,
        volume=np.full((rows, 2), 1_000.0),
        session_index=np.concatenate(sessions),
        timestamps=np.concatenate(stamps),
        regime_score=np.zeros(rows, dtype=np.float32),
        symbols=SYMBOLS,
    )


DATES = ["2024-01-09", "2024-01-10", "2024-01-11", "2024-01-12", "2024-01-16"]
BOOTSTRAP = _market(["normal"] * 5, first_day=2)
VALIDATION_KINDS = ["calm", "volatile", "breakdown", "trend", "normal"]
VALIDATION = _market(VALIDATION_KINDS, first_day=9)


def test_session_measures_and_predicates_follow_the_definitions() -> None:
    table = classify_sessions(VALIDATION, bootstrap=BOOTSTRAP, config=ScenarioConfig())
    assert table.height == len(VALIDATION_KINDS)
    assert table["session"].to_list() == DATES
    assert table["reference_volatility"].to_list() == pytest.approx([0.001] * 5)
    ratio = table["volatility_ratio"].to_list()
    assert ratio[0] == pytest.approx(0.5)
    assert ratio[1] == pytest.approx(3.0)
    assert ratio[2] == pytest.approx(1.0, abs=0.1)
    correlation = table["return_correlation"].to_list()
    assert correlation[0] == pytest.approx(1.0)
    assert correlation[2] < -0.5
    assert correlation[3] > 0.9
    trend = table["trend_z"].to_list()
    assert trend[3] > 5.0  # 39 returns of 0.001 with little noise: a t-statistic near sqrt(39)
    assert abs(trend[4]) < 0.2  # alternating returns: ~0
    expected = {
        "low_volatility": [True, False, False, False, False],
        "high_volatility": [False, True, False, False, False],
        "correlation_breakdown": [False, False, True, False, False],
        "trending": [False, False, False, True, False],
        "mixed": [True] * 5,
    }
    for name, flags in expected.items():
        assert table[name].to_list() == flags, name


def test_held_out_scenarios_hold_the_matching_sessions_as_episodes() -> None:
    scenarios = held_out_scenarios(VALIDATION, bootstrap=BOOTSTRAP, config=ScenarioConfig())
    assert tuple(scenarios) == SCENARIO_NAMES
    assert scenarios["high_volatility"].sessions == ("2024-01-10",)
    assert scenarios["low_volatility"].sessions == ("2024-01-09",)
    assert scenarios["trending"].sessions == ("2024-01-12",)
    assert scenarios["correlation_breakdown"].sessions == ("2024-01-11",)
    mixed = scenarios["mixed"]
    assert len(mixed.episodes) == 5 and mixed.kind == "held_out"
    for episode in mixed.episodes:
        assert episode.bars == BARS
        assert np.unique(episode.session_index).shape == (1,)
    volatile = scenarios["high_volatility"].episodes[0]
    np.testing.assert_array_equal(volatile.close, VALIDATION.close[BARS : 2 * BARS])


def test_thresholds_move_sessions_between_slices() -> None:
    strict = ScenarioConfig(high_volatility_ratio=4.0, breakdown_correlation=-0.99, trend_threshold=50.0)
    scenarios = held_out_scenarios(VALIDATION, bootstrap=BOOTSTRAP, config=strict)
    assert scenarios["high_volatility"].empty
    assert scenarios["correlation_breakdown"].empty
    assert scenarios["trending"].empty
    assert not scenarios["mixed"].empty
    loose = ScenarioConfig(low_volatility_ratio=0.99)
    assert held_out_scenarios(VALIDATION, bootstrap=BOOTSTRAP, config=loose)["low_volatility"].sessions == (
        "2024-01-09",
    )


def test_an_empty_slice_is_reported_not_an_error() -> None:
    calm_only = _market(["normal", "normal", "normal"], first_day=9)
    scenarios = held_out_scenarios(calm_only, bootstrap=BOOTSTRAP, config=ScenarioConfig())
    for name in ("high_volatility", "low_volatility", "trending", "correlation_breakdown"):
        assert scenarios[name].empty
        assert scenarios[name].episodes == () and scenarios[name].sessions == ()
    assert len(scenarios["mixed"].episodes) == 3


def test_without_bootstrap_the_window_itself_is_the_reference() -> None:
    table = classify_sessions(VALIDATION, bootstrap=None, config=ScenarioConfig())
    volatility = table["realized_volatility"].to_numpy()
    assert table["reference_volatility"][0] == pytest.approx(float(np.median(volatility)))


def test_a_session_with_one_return_has_no_correlation() -> None:
    two_bars = _market(["normal"])
    short = MarketArrays(
        features=two_bars.features[:2].copy(),
        feature_names=two_bars.feature_names,
        open=two_bars.open[:2].copy(),
        close=two_bars.close[:2].copy(),
        volume=two_bars.volume[:2].copy(),
        session_index=two_bars.session_index[:2].copy(),
        timestamps=two_bars.timestamps[:2].copy(),
        regime_score=two_bars.regime_score[:2].copy(),
        symbols=SYMBOLS,
    )
    table = classify_sessions(short, bootstrap=BOOTSTRAP, config=ScenarioConfig())
    assert math.isnan(table["return_correlation"][0])
    assert not table["correlation_breakdown"][0]


def test_session_markets_split_by_session_and_skip_one_bar_sessions() -> None:
    parts = session_markets(VALIDATION)
    assert [day for day, _ in parts] == DATES
    assert sum(part.bars for _, part in parts) == VALIDATION.bars


def test_scenario_refuses_mismatched_labels() -> None:
    with pytest.raises(ValueError, match="1 episodes but 0 session labels"):
        Scenario(name="mixed", kind="held_out", episodes=(VALIDATION,), sessions=())


# ------------------------------------------------------------------------------------------------------------
# Stress scenarios
# ------------------------------------------------------------------------------------------------------------

FEATURES = feature_names()


def _signal_model() -> SignalModel:
    """A hand-made logistic model: P(+1) - P(-1) grows with the 5-bar return (a momentum rule)."""
    width = len(FEATURES)
    weights = np.zeros((3, width))
    column = FEATURES.index("log_return_5")
    weights[0, column], weights[2, column] = -1.0, 1.0
    weights[0, 0], weights[2, 0] = -0.3, 0.3
    symbol = SymbolSignalModel(
        mean=np.zeros(width), std=np.ones(width), weights=(weights,), biases=(np.zeros(3),)
    )
    return SignalModel(
        feature_columns=tuple(FEATURES), kind="logistic", symbols={"NVDA": symbol, "MSFT": symbol}
    )


SMALL = ScenarioConfig(stress_episodes=3, stress_block_sessions=2, warmup_sessions=1)


def _stress(config: ScenarioConfig = SMALL, **overrides: object) -> dict[str, Scenario]:
    arguments: dict[str, object] = {
        "synthetic": SyntheticMarketConfig(),
        "features": FeatureConfig(),
        "observation_features": DEFAULT_OBSERVATION_FEATURES,
        "signal_model": _signal_model(),
        "regime": RegimeDetectorConfig(),
        "config": config,
        "symbols": SYMBOLS,
    }
    arguments.update(overrides)
    return stress_scenarios(**arguments)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def stress() -> dict[str, Scenario]:
    return _stress()


def test_stress_scenarios_have_the_configured_episode_counts(stress: dict[str, Scenario]) -> None:
    assert tuple(stress) == SCENARIO_NAMES
    for scenario in stress.values():
        assert scenario.kind == "stress"
        assert len(scenario.episodes) == len(scenario.sessions) == SMALL.stress_episodes
        assert list(scenario.sessions) == sorted(set(scenario.sessions))  # one date per episode, increasing
        for episode in scenario.episodes:
            assert episode.bars in (390, 210)  # full sessions (one-minute bars), or an early close
            assert np.unique(episode.session_index).shape == (1,)
            assert episode.symbols == SYMBOLS
            assert episode.features.shape[1] == 2 * len(DEFAULT_OBSERVATION_FEATURES)


def test_stress_scenarios_are_deterministic_by_seed(stress: dict[str, Scenario]) -> None:
    again = _stress()
    other = _stress(SMALL.model_copy(update={"stress_seed": 1}))
    for name in SCENARIO_NAMES:
        for first, second in zip(stress[name].episodes, again[name].episodes, strict=True):
            np.testing.assert_array_equal(first.close, second.close)
            np.testing.assert_array_equal(first.features, second.features)
            np.testing.assert_array_equal(first.regime_score, second.regime_score)
        assert not np.array_equal(stress[name].episodes[0].close, other[name].episodes[0].close)


def test_blocks_follow_each_other_after_their_warm_up(stress: dict[str, Scenario]) -> None:
    # Episodes 0-1 are block 0 and episode 2 block 1, generated after its own warm-up session: one trading
    # day (block 1's warm-up) lies between the last episode of block 0 and the first of block 1.
    high = stress["high_volatility"]
    first, second, third = (date.fromisoformat(day) for day in high.sessions)
    assert SyntheticMarketConfig().start < first < second < third
    assert (third - second).days >= 2
    assert not np.array_equal(high.episodes[0].close, stress["low_volatility"].episodes[0].close)


def test_forced_regimes_show_in_the_stress_markets(stress: dict[str, Scenario]) -> None:
    def volatility(scenario: Scenario) -> float:
        return float(np.mean([np.std(np.diff(np.log(part.close), axis=0)) for part in scenario.episodes]))

    def correlation(scenario: Scenario) -> float:
        values = []
        for part in scenario.episodes:
            returns = np.diff(np.log(part.close), axis=0)
            values.append(np.corrcoef(returns.T)[0, 1])
        return float(np.mean(values))

    assert volatility(stress["high_volatility"]) > 1.7 * volatility(stress["low_volatility"])
    assert correlation(stress["correlation_breakdown"]) < 0.2 < correlation(stress["low_volatility"])


def test_the_signal_column_is_the_forward_models_prediction(stress: dict[str, Scenario]) -> None:
    episode = stress["mixed"].episodes[0]
    signal = episode.features[:, episode.feature_names.index(f"NVDA:{SIGNAL_COLUMN}")]
    momentum = episode.features[:, episode.feature_names.index("NVDA:log_return_5")]
    first = episode.features[:, episode.feature_names.index(f"NVDA:{FEATURES[0]}")]
    # The hand-made model: logits (-z, 0, z) with z = momentum + 0.3 * first feature.
    z = momentum.astype(np.float64) + 0.3 * first.astype(np.float64)
    expected = (np.exp(z) - np.exp(-z)) / (np.exp(z) + 1.0 + np.exp(-z))
    np.testing.assert_allclose(signal, expected, atol=1e-6)
    assert np.std(signal) > 0.0
    assert SIGNAL_COLUMN == SIGNAL_FEATURE


def test_stress_bars_are_aggregated_to_the_data_bar_size() -> None:
    config = ScenarioConfig(stress_episodes=1, stress_block_sessions=1, warmup_sessions=2, bar_minutes=5)
    scenarios = _stress(config)
    episode = scenarios["trending"].episodes[0]
    assert episode.bars == 78
    spacing = np.diff(episode.timestamps).astype("timedelta64[m]").astype(int)
    assert set(spacing.tolist()) == {5}
    with pytest.raises(pydantic.ValidationError, match="must divide 30"):
        ScenarioConfig(bar_minutes=7)


def test_a_warm_up_shorter_than_the_features_is_a_config_error() -> None:
    long_windows = FeatureConfig(spread_window=300)
    with pytest.raises(ConfigError, match="feature warm-up"):
        _stress(SMALL, features=long_windows)


def test_symbols_the_signal_model_does_not_know_are_refused() -> None:
    with pytest.raises(ValueError, match="no weights for symbol"):
        _stress(SMALL.model_copy(update={"stress_episodes": 1}), symbols=("AAPL", "MSFT"))

"""Evaluation scenarios across market regimes: held-out regime slices and synthetic stress markets.

Every scenario is a named tuple of episodes, one :class:`~envs.market_arrays.MarketArrays` per session
(the evaluation steps each as a one-session episode). The five names are :data:`SCENARIO_NAMES`; a
scenario of either kind may be empty (a slice no held-out session falls into): it is returned with no
episodes, never dropped and never an error.

**Held-out slices** (:func:`held_out_scenarios`) cut the held-out validation window (never trained on,
behind the purge gap) by the regime *detected* for each session, from that session's own bars, measured at
its end (:func:`classify_sessions`):

* ``realized_volatility``: the root mean square of the session's intraday close-to-close log returns,
  averaged over the two tickers (overnight gaps are left out). ``volatility_ratio`` divides it by a
  reference: the median realized volatility of the ``bootstrap`` sessions (the training window, i.e. the
  past of the validation window). Without ``bootstrap`` the reference is the median over the validation
  sessions themselves, which reads later sessions of the window: acceptable only because a slice merely
  groups evaluation episodes and never feeds a decision inside an episode. Pass the training window.
* ``trend_z``: the session's intraday log return divided by ``realized volatility * sqrt(returns)``
  per ticker (a t-statistic, about standard normal for a driftless random walk), averaged over the two
  tickers with sign, so it is large only when both move the same way.
* ``return_correlation``: the Pearson correlation of the two tickers' intraday returns in the session
  (NaN with fewer than two returns or a constant price).

The predicates (thresholds in :class:`ScenarioConfig`) are ``high_volatility``: ``volatility_ratio >=
high_volatility_ratio``; ``low_volatility``: ``volatility_ratio <= low_volatility_ratio``; ``trending``:
``|trend_z| >= trend_threshold``; ``correlation_breakdown``: ``return_correlation <=
breakdown_correlation``; ``mixed``: every session. Slices overlap (a session can be volatile and
trending); they are predicates, not a partition. Nothing decided inside an episode reads them. Detection is
imperfect by nature: on the default synthetic market (seed 3, 300 sessions, true regimes known, the
reference being their median) the volatility predicates caught 87% of volatile and 92% of calm sessions with
no volatile session called calm or the reverse; the correlation predicate caught every correlation-breakdown
session and 2% of volatile ones (no calm or trending one); a single session's trend t-statistic is weak
evidence (the drift of 1.2% a day sits under about 2% daily volatility): ``|trend_z| >= 1.5`` flagged 18%
of trending sessions against 3-10% of the others.

**Stress scenarios** (:func:`stress_scenarios`) come from the synthetic generator
(:func:`market.synthetic.generate_market`) with fixed seeds (per scenario and block, derived from
``stress_seed``), ``stress_episodes`` sessions each. The regime is forced (``initial_regime`` and
``regime_persistence = 1``): ``high_volatility`` -> ``volatile``, ``low_volatility`` -> ``calm``,
``trending`` -> ``trending``, ``correlation_breakdown`` -> ``correlation_breakdown``; ``mixed`` keeps the
configured regime switching. The generator's ``mode`` is ``ScenarioConfig.synthetic_mode`` (the caller sets
it to the market's mode; in ``martingale`` and ``planted`` mode ``trending`` has no drift, only its
volatility and correlation). The sessions are generated in independent blocks of ``stress_block_sessions``
sessions, each preceded by ``warmup_sessions`` sessions in the same regime that warm up the features and the
regime detector and are not evaluated; independent blocks matter for ``trending``, whose drift direction is
drawn once per run of trending sessions (one direction per block rather than one for all episodes).
Blocks follow each other in calendar order, so every episode has its own date. Each block's bars (1-minute
bars, aggregated to ``bar_minutes``) go through the same steps as the real data: features with the same
:class:`~market.feature_config.FeatureConfig`, the production signal from the forward model
(:meth:`market.signal.SignalModel.predict`) as the ``signal`` column, the same observation feature list,
and regime scores from the same detector over the whole block (warm-up included as history).
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Final, Literal

import numpy as np
import polars as pl
from pydantic import BaseModel, ConfigDict, Field, model_validator

from controllers.regime import RegimeDetectorConfig, regime_scores
from core.errors import ConfigError
from core.seeding import derive_seed
from envs.market_arrays import MarketArrays, market_arrays
from market.calendar import EXCHANGE_TZ
from market.feature_config import FeatureConfig, warmup_bars
from market.features import build_features
from market.signal import SignalModel
from market.synthetic import SyntheticMarketConfig, generate_market

__all__ = [
    "SCENARIO_NAMES",
    "SIGNAL_COLUMN",
    "Scenario",
    "ScenarioConfig",
    "classify_sessions",
    "held_out_scenarios",
    "session_markets",
    "stress_scenarios",
]

SCENARIO_NAMES: Final[tuple[str, ...]] = (
    "high_volatility",
    "low_volatility",
    "trending",
    "correlation_breakdown",
    "mixed",
)
SIGNAL_COLUMN: Final = "signal"
"""Observation feature filled by the signal model (``stairways.config.SIGNAL_FEATURE``)."""

_STRESS_REGIMES: Final[dict[str, Literal["calm", "volatile", "trending", "correlation_breakdown"] | None]] = {
    "high_volatility": "volatile",
    "low_volatility": "calm",
    "trending": "trending",
    "correlation_breakdown": "correlation_breakdown",
    "mixed": None,
}
_BAR_SIZES: Final = (1, 2, 3, 5, 6, 10, 15, 30)
_FROZEN = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


class ScenarioConfig(BaseModel):
    """How the held-out window is sliced by regime and how the synthetic stress scenarios are generated."""

    model_config = _FROZEN

    stress_episodes: int = Field(
        100, ge=1, description="Sessions (one-session episodes) per stress scenario."
    )
    stress_seed: int = Field(
        20_240_601, ge=0, description="Seed of the stress markets; each scenario and block derives its own."
    )
    warmup_sessions: int = Field(
        3,
        ge=1,
        description="Sessions generated before each stress block to warm up the features and the regime "
        "detector; not evaluated.",
    )
    stress_block_sessions: int = Field(
        10,
        ge=1,
        description="Evaluated sessions per independently generated stress market (a trending block has one "
        "drift direction).",
    )
    synthetic_mode: Literal["regimes", "martingale", "planted"] = Field(
        "regimes",
        description="Generator mode of the stress markets; the caller sets it to the market's mode.",
    )
    bar_minutes: int = Field(
        1,
        ge=1,
        description="Bar size of the data the agent trades; the generator's 1-minute bars are aggregated to "
        "it (it must divide 30 so bars align with the 09:30 open).",
    )
    high_volatility_ratio: float = Field(
        1.25,
        gt=1.0,
        description="A held-out session is high_volatility when its realized volatility is at least this "
        "multiple of the reference (median of the bootstrap sessions).",
    )
    low_volatility_ratio: float = Field(
        0.8,
        gt=0.0,
        lt=1.0,
        description="A held-out session is low_volatility when its realized volatility is at most this "
        "multiple of the reference.",
    )
    trend_threshold: float = Field(
        1.5,
        gt=0.0,
        description="A held-out session is trending when the |t-statistic| of its intraday return (both "
        "tickers averaged with sign) is at least this.",
    )
    breakdown_correlation: float = Field(
        0.3,
        ge=-1.0,
        le=1.0,
        description="A held-out session is a correlation_breakdown when its intraday return correlation "
        "between the two tickers is at most this.",
    )

    @model_validator(mode="after")
    def _consistent(self) -> "ScenarioConfig":
        if self.bar_minutes not in _BAR_SIZES:
            message = f"bar_minutes must divide 30 (one of {_BAR_SIZES}), got {self.bar_minutes}"
            raise ValueError(message)
        return self


@dataclass(frozen=True)
class Scenario:
    """One named scenario: one-session episodes and the New York date of each (ISO ``YYYY-MM-DD``)."""

    name: str
    kind: Literal["held_out", "stress"]
    episodes: tuple[MarketArrays, ...]
    sessions: tuple[str, ...]
    description: str = ""
    """How the episodes were chosen or generated (for reports)."""

    def __post_init__(self) -> None:
        if len(self.episodes) != len(self.sessions):
            message = (
                f"scenario {self.name}: {len(self.episodes)} episodes but {len(self.sessions)} session labels"
            )
            raise ValueError(message)

    @property
    def empty(self) -> bool:
        """True when no session fell into the scenario."""
        return not self.episodes


# ------------------------------------------------------------------------------------------------------------
# Sessions
# ------------------------------------------------------------------------------------------------------------


def _dates(market: MarketArrays, rows: Sequence[int]) -> list[str]:
    stamps = pl.Series(market.timestamps[list(rows)]).dt.replace_time_zone("UTC")
    return [str(day) for day in stamps.dt.convert_time_zone(EXCHANGE_TZ.key).dt.date().to_list()]


def session_markets(market: MarketArrays) -> list[tuple[str, MarketArrays]]:
    """One ``(New York date, market)`` per session with at least two bars, in time order (copies)."""
    bounds = market.session_bounds()
    dates = _dates(market, [first for first, _ in bounds])
    return [(day, market.rows(first, end)) for day, (first, end) in zip(dates, bounds, strict=True)]


# ------------------------------------------------------------------------------------------------------------
# Held-out slices
# ------------------------------------------------------------------------------------------------------------


def _session_measures(close: np.ndarray) -> tuple[float, float, float]:
    """Realized volatility, signed trend t-statistic and return correlation of one session's closes."""
    returns = np.diff(np.log(close), axis=0)
    root_mean_square = np.sqrt(np.mean(returns * returns, axis=0))
    volatility = float(np.mean(root_mean_square))
    with np.errstate(divide="ignore", invalid="ignore"):
        z = returns.sum(axis=0) / (root_mean_square * math.sqrt(returns.shape[0]))
    trend = float(np.mean(np.where(root_mean_square > 0.0, z, 0.0)))
    correlation = math.nan
    if returns.shape[0] >= 2 and np.all(returns.std(axis=0) > 0.0):
        correlation = float(np.corrcoef(returns[:, 0], returns[:, 1])[0, 1])
    return volatility, trend, correlation


def _realized_volatilities(market: MarketArrays) -> np.ndarray:
    return np.array(
        [_session_measures(market.close[first:end])[0] for first, end in market.session_bounds()],
        dtype=np.float64,
    )


def classify_sessions(
    validation: MarketArrays, *, bootstrap: MarketArrays | None, config: ScenarioConfig
) -> pl.DataFrame:
    """One row per usable validation session: its measures and the slice predicates (module docstring).

    Columns: ``session`` (ISO date), ``first_bar``, ``bars``, ``realized_volatility``,
    ``reference_volatility``, ``volatility_ratio``, ``trend_z``, ``return_correlation`` (Float64, NaN when
    undefined), then one Boolean column per name in :data:`SCENARIO_NAMES`. A session's measures use only its
    own bars; the reference uses ``bootstrap`` (see the module docstring for the fallback without it).
    """
    bounds = validation.session_bounds()
    measures = [_session_measures(validation.close[first:end]) for first, end in bounds]
    volatility = np.array([row[0] for row in measures], dtype=np.float64)
    trend = np.array([row[1] for row in measures], dtype=np.float64)
    correlation = np.array([row[2] for row in measures], dtype=np.float64)
    reference_sessions = _realized_volatilities(bootstrap) if bootstrap is not None else volatility
    reference_sessions = reference_sessions[reference_sessions > 0.0]
    reference = float(np.median(reference_sessions)) if reference_sessions.size else math.nan
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = volatility / reference if reference > 0.0 else np.full_like(volatility, math.nan)
    finite_ratio = np.isfinite(ratio)
    return pl.DataFrame(
        {
            "session": pl.Series(_dates(validation, [first for first, _ in bounds]), dtype=pl.Utf8),
            "first_bar": pl.Series([first for first, _ in bounds], dtype=pl.Int64),
            "bars": pl.Series([end - first for first, end in bounds], dtype=pl.Int64),
            "realized_volatility": pl.Series(volatility, dtype=pl.Float64, nan_to_null=False),
            "reference_volatility": pl.Series([reference] * len(bounds), dtype=pl.Float64),
            "volatility_ratio": pl.Series(ratio, dtype=pl.Float64),
            "trend_z": pl.Series(trend, dtype=pl.Float64),
            "return_correlation": pl.Series(correlation, dtype=pl.Float64),
            "high_volatility": pl.Series(finite_ratio & (ratio >= config.high_volatility_ratio)),
            "low_volatility": pl.Series(finite_ratio & (ratio <= config.low_volatility_ratio)),
            "trending": pl.Series(np.abs(trend) >= config.trend_threshold),
            "correlation_breakdown": pl.Series(
                np.isfinite(correlation) & (correlation <= config.breakdown_correlation)
            ),
            "mixed": pl.Series([True] * len(bounds), dtype=pl.Boolean),
        },
        schema_overrides={
            name: pl.Boolean
            for name in ("high_volatility", "low_volatility", "trending", "correlation_breakdown")
        },
    )


def _held_out_description(name: str, config: ScenarioConfig) -> str:
    predicates = {
        "high_volatility": f"realized volatility >= {config.high_volatility_ratio} x reference",
        "low_volatility": f"realized volatility <= {config.low_volatility_ratio} x reference",
        "trending": f"|intraday return t-statistic| >= {config.trend_threshold}",
        "correlation_breakdown": f"intraday return correlation <= {config.breakdown_correlation}",
        "mixed": "every held-out session",
    }
    return f"held-out sessions where {predicates[name]}"


def held_out_scenarios(
    validation: MarketArrays, *, bootstrap: MarketArrays | None, config: ScenarioConfig
) -> dict[str, Scenario]:
    """The validation window's sessions sliced by detected regime, one scenario per :data:`SCENARIO_NAMES`.

    ``bootstrap`` is the training window (the past of ``validation``): it sets the reference volatility.
    Each episode is one session of ``validation`` (features, prices and regime scores as given). Empty
    slices are returned with no episodes.
    """
    table = classify_sessions(validation, bootstrap=bootstrap, config=config)
    bounds = validation.session_bounds()
    markets = [validation.rows(first, end) for first, end in bounds]
    dates = table.get_column("session").to_list()
    scenarios: dict[str, Scenario] = {}
    for name in SCENARIO_NAMES:
        chosen = np.flatnonzero(table.get_column(name).to_numpy()).tolist()
        scenarios[name] = Scenario(
            name=name,
            kind="held_out",
            episodes=tuple(markets[index] for index in chosen),
            sessions=tuple(dates[index] for index in chosen),
            description=_held_out_description(name, config),
        )
    return scenarios


# ------------------------------------------------------------------------------------------------------------
# Stress scenarios
# ------------------------------------------------------------------------------------------------------------


def _aggregate(bars: pl.DataFrame, bar_minutes: int) -> pl.DataFrame:
    """``bar_minutes``-minute OHLCV bars from 1-minute bars (bins aligned to the 09:30 open)."""
    if bar_minutes == 1:
        return bars
    return (
        bars.sort("symbol", "ts")
        .with_columns(pl.col("ts").dt.truncate(f"{bar_minutes}m"))
        .group_by("symbol", "ts", maintain_order=True)
        .agg(
            pl.col("open").first(),
            pl.col("high").max(),
            pl.col("low").min(),
            pl.col("close").last(),
            pl.col("volume").sum(),
        )
        .sort("symbol", "ts")
    )


def _stress_block(
    generator: SyntheticMarketConfig,
    *,
    seed: int,
    features: FeatureConfig,
    observation_features: Sequence[str],
    signal_model: SignalModel,
    regime: RegimeDetectorConfig,
    config: ScenarioConfig,
    symbols: tuple[str, str],
    evaluated: int,
) -> tuple[list[tuple[str, MarketArrays]], date]:
    """Generate one block; return its evaluated sessions and the date of its last session."""
    market = generate_market(generator, seed=seed)
    days = market.regimes.get_column("session").to_list()
    bars = _aggregate(market.bars, config.bar_minutes)
    frame = build_features(bars, config=features)
    if SIGNAL_COLUMN in observation_features:
        signal = signal_model.predict(frame).select("ts", "symbol", pl.col("signal").alias(SIGNAL_COLUMN))
        frame = frame.join(signal, on=["ts", "symbol"], how="inner")
    arrays = market_arrays(bars, frame, feature_columns=observation_features, symbols=symbols)
    arrays = arrays.with_regime_score(
        regime_scores(arrays.close, session_index=arrays.session_index, config=regime)
    )
    wanted = {str(day) for day in days[-evaluated:]}
    sessions = [(day, part) for day, part in session_markets(arrays) if day in wanted]
    bars_per_day = (
        bars.filter(pl.col("symbol") == symbols[0])
        .group_by(pl.col("ts").dt.convert_time_zone(EXCHANGE_TZ.key).dt.date().cast(pl.Utf8).alias("day"))
        .len()
    )
    expected = dict(zip(bars_per_day["day"].to_list(), bars_per_day["len"].to_list(), strict=True))
    short = [day for day, part in sessions if part.bars != expected.get(day)]
    if len(sessions) != evaluated or short:
        message = (
            f"stress block (seed {seed}): {len(sessions)} of {evaluated} evaluated sessions are complete "
            f"(incomplete: {short[:3]}); raise warmup_sessions above the feature warm-up of "
            f"{warmup_bars(features)} bars"
        )
        raise ConfigError(message)
    return sessions, days[-1]


def stress_scenarios(
    *,
    synthetic: SyntheticMarketConfig,
    features: FeatureConfig,
    observation_features: Sequence[str],
    signal_model: SignalModel,
    regime: RegimeDetectorConfig,
    config: ScenarioConfig,
    symbols: tuple[str, str],
) -> dict[str, Scenario]:
    """Synthetic stress scenarios, one per :data:`SCENARIO_NAMES`, ``config.stress_episodes`` sessions each.

    ``synthetic`` supplies the regime profiles and the market's other parameters (its ``mode``, ``sessions``,
    ``initial_regime`` and ``symbols`` are replaced; see the module docstring). ``observation_features``
    is the agent's per-ticker feature list; ``signal`` in it is filled by ``signal_model``. Same inputs,
    same episodes (seeds derive from ``config.stress_seed``). Raises ``ConfigError`` when the warm-up is too
    short for the features and ``ValueError`` for symbols the signal model does not know.
    """
    if len(symbols) != 2 or symbols[0] == symbols[1]:
        message = f"symbols must name two different tickers, got {symbols}"
        raise ValueError(message)
    minimum_session = 210 // config.bar_minutes  # the shortest (13:00 early-close) session
    if warmup_bars(features) >= config.warmup_sessions * minimum_session:
        message = (
            f"warmup_sessions={config.warmup_sessions} ({config.warmup_sessions * minimum_session} bars at "
            f"least) does not cover the feature warm-up of {warmup_bars(features)} bars"
        )
        raise ConfigError(message)
    base = synthetic.model_dump()
    scenarios: dict[str, Scenario] = {}
    for name in SCENARIO_NAMES:
        forced = _STRESS_REGIMES[name]
        episodes: list[MarketArrays] = []
        dates: list[str] = []
        start = synthetic.start
        block = 0
        while len(episodes) < config.stress_episodes:
            evaluated = min(config.stress_block_sessions, config.stress_episodes - len(episodes))
            generator = SyntheticMarketConfig.model_validate(
                {
                    **base,
                    "symbols": tuple(symbols),
                    "mode": config.synthetic_mode,
                    "start": start,
                    "sessions": config.warmup_sessions + evaluated,
                    "initial_regime": forced,
                    "regime_persistence": 1.0 if forced is not None else synthetic.regime_persistence,
                }
            )
            sessions, last_day = _stress_block(
                generator,
                seed=derive_seed(config.stress_seed, f"stress:{name}:block:{block}"),
                features=features,
                observation_features=observation_features,
                signal_model=signal_model,
                regime=regime,
                config=config,
                symbols=symbols,
                evaluated=evaluated,
            )
            dates.extend(day for day, _ in sessions)
            episodes.extend(part for _, part in sessions)
            start = last_day + timedelta(days=1)
            block += 1
        regime_text = (
            f"regime forced to {forced}" if forced is not None else "regimes switching as configured"
        )
        scenarios[name] = Scenario(
            name=name,
            kind="stress",
            episodes=tuple(episodes),
            sessions=tuple(dates),
            description=(
                f"synthetic {config.synthetic_mode} market, {regime_text}, {len(episodes)} sessions in "
                f"blocks of {config.stress_block_sessions} after {config.warmup_sessions} warm-up sessions, "
                f"seed {config.stress_seed}"
            ),
        )
    return scenarios

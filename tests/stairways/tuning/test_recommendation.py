"""A night that opts in trains with the study's recommendation, records where it came from, and the gate
counts the study's trials among the candidates it deflates the Sharpe ratio by."""

from pathlib import Path
from typing import Any

import optuna
import pytest

from core.errors import ConfigError
from stairways import assessment
from stairways.config import RetrainConfig
from stairways.tuning.config import STORAGE_ENV, TuneConfig, resolve_storage
from stairways.tuning.overfitting import analyse_study
from stairways.tuning.recommendation import apply_recommendation, store_recommendation
from tests.stairways.tuning.overfitting_cases import DOMINANT, FLIPPING
from tests.stairways.tuning.support import study_of

TUNE = TuneConfig(pbo_partitions=2)


def _night(tmp_path: Path, study: str = "tuned") -> RetrainConfig:
    return RetrainConfig.model_validate(
        {
            "tuning": {
                "use_recommended": True,
                "study_name": study,
                "storage": f"sqlite:///{tmp_path / 'optuna.db'}",
            },
        }
    )


def _stored(tmp_path: Path, columns: list[list[float]], name: str = "tuned") -> None:
    stored = optuna.create_study(study_name=name, storage=f"sqlite:///{tmp_path / 'optuna.db'}")
    store_recommendation(stored, analyse_study(study_of(columns, name=name), TUNE))


def test_the_switch_is_off_by_default() -> None:
    assert RetrainConfig().tuning.use_recommended is False


def test_a_recommended_config_is_applied_with_its_provenance(tmp_path: Path) -> None:
    _stored(tmp_path, DOMINANT)
    night = _night(tmp_path)
    tuned, provenance = apply_recommendation(night)
    assert tuned.training.ppo.gamma == 0.9
    assert tuned.tuning == night.tuning and tuned.seed == night.seed
    assert provenance["study"] == "tuned" and provenance["trial"] == 0 and provenance["trials"] == 2
    assert len(provenance["trial_sharpes"]) == 2
    assert provenance["pbo"] == 0.0


def test_a_study_that_recommends_nothing_stops_the_night_saying_why(tmp_path: Path) -> None:
    _stored(tmp_path, FLIPPING)
    with pytest.raises(ConfigError, match=r"recommends no config \(PBO 1\.00 > max_pbo"):
        apply_recommendation(_night(tmp_path))


def test_a_missing_study_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"no study 'absent'.*stairways tune"):
        apply_recommendation(_night(tmp_path, study="absent"))


def test_the_gate_counts_the_studys_trials_among_the_candidates(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}

    def capture(candidate: Any, champion: Any, criteria: Any, evidence: Any, **_: Any) -> str:
        seen["evidence"] = evidence
        return "decision"

    monkeypatch.setattr(assessment, "decide", capture)
    result = assessment.Assessment(
        candidate={},
        champion=None,
        champion_note="",
        champion_problem=None,
        baselines={},
        session_returns={"candidate": [0.01, 0.0, -0.01]},
        replay_pnl=[],
        equity_plots={},
    )
    tonight = [[0.01, 0.02, 0.0], [0.0, -0.01, 0.01]]
    assessment.judge(result, RetrainConfig(), trials=tonight, prior_trials=20, prior_sharpes=(0.3, -0.1, 0.2))
    evidence = seen["evidence"]
    assert evidence.candidates_compared == 22
    assert len(evidence.trial_sharpes) == 5 and evidence.trial_sharpes[-3:] == (0.3, -0.1, 0.2)
    assessment.judge(result, RetrainConfig(), trials=tonight)
    assert seen["evidence"].candidates_compared == 2


def test_the_default_storage_sits_beside_a_sqlite_mlflow_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(STORAGE_ENV, raising=False)
    assert (
        resolve_storage(None, f"sqlite:///{tmp_path / 'mlflow.db'}") == f"sqlite:///{tmp_path / 'optuna.db'}"
    )
    assert resolve_storage("postgresql://db/optuna", "sqlite:///x.db") == "postgresql://db/optuna"
    monkeypatch.setenv(STORAGE_ENV, "postgresql://elsewhere/optuna")
    assert resolve_storage("postgresql://db/optuna", "sqlite:///x.db") == "postgresql://elsewhere/optuna"

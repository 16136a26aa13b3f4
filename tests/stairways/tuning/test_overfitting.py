"""PBO and the deflated Sharpe ratio of a study, against hand-computed small cases, and the recommendation rule."""

import math
from statistics import NormalDist

import numpy as np
import pytest
import yaml

from stairways.tuning.config import TuneConfig
from stairways.tuning.overfitting import analyse_study, recommendation_yaml, returns_matrix
from tests.stairways.tuning.overfitting_cases import DOMINANT, FLIPPING
from tests.stairways.tuning.support import study_of

TUNE = TuneConfig(pbo_partitions=2, max_pbo=0.5, min_deflated_sharpe=0.9)
EULER = 0.5772156649015329


def _sharpe(values: list[float]) -> float:
    array = np.asarray(values)
    return float(array.mean() / array.std(ddof=1))


def test_pbo_is_one_when_the_in_sample_winner_always_loses_out_of_sample() -> None:
    # Two partitions: in sample {first half} picks trial 0 (Sharpe 2.12 vs 0.71), which is last out of sample;
    # in sample {second half} picks trial 1, last in the first half. Both logits are log(1/2) < 0: PBO = 2/2.
    analysis = analyse_study(study_of(FLIPPING), TUNE)
    assert analysis.pbo is not None
    assert analysis.pbo["pbo"] == 1.0
    assert analysis.pbo["combinations"] == 2 and analysis.pbo["sessions"] == 4 and analysis.pbo["trials"] == 2
    assert not analysis.recommended
    assert any("PBO 1.00 > max_pbo 0.50" in reason for reason in analysis.reasons)
    assert recommendation_yaml(analysis) is None


def test_deflated_sharpe_matches_the_formula_by_hand() -> None:
    study = study_of(DOMINANT, pruned=1)
    analysis = analyse_study(study, TUNE)
    best = np.asarray(DOMINANT[0])
    trials = 3  # two complete, one pruned: every trial tried counts
    variance = float(np.var([_sharpe(column) for column in DOMINANT], ddof=1))
    normal = NormalDist()
    sr0 = math.sqrt(variance) * (
        (1 - EULER) * normal.inv_cdf(1 - 1 / trials) + EULER * normal.inv_cdf(1 - 1 / (trials * math.e))
    )
    sr = _sharpe(DOMINANT[0])
    centred = best - best.mean()
    skew = float(np.mean(centred**3) / np.mean(centred**2) ** 1.5)
    kurt = float(np.mean(centred**4) / np.mean(centred**2) ** 2)
    psr = normal.cdf(
        (sr - sr0) * math.sqrt(best.size - 1) / math.sqrt(1 - skew * sr + (kurt - 1) / 4 * sr**2)
    )
    dsr = analysis.deflated_sharpe
    assert dsr is not None
    assert dsr["n_trials"] == trials
    assert dsr["benchmark_sharpe"] == pytest.approx(sr0, rel=1e-9)
    assert dsr["sharpe"] == pytest.approx(sr, rel=1e-9)
    assert dsr["probability"] == pytest.approx(psr, rel=1e-9)


def test_a_dominant_trial_with_a_high_deflated_sharpe_is_recommended_as_yaml() -> None:
    analysis = analyse_study(study_of(DOMINANT), TUNE)
    assert analysis.pbo is not None and analysis.pbo["pbo"] == 0.0
    assert analysis.deflated_sharpe is not None and analysis.deflated_sharpe["probability"] >= 0.9
    assert analysis.recommended and analysis.reasons == ()
    assert analysis.best_trial == 0
    text = recommendation_yaml(analysis)
    assert text is not None and text.startswith("# Recommended by study 'hand-made', trial 0 of 2")
    assert yaml.safe_load(text) == {"training": {"ppo": {"gamma": 0.9}}}
    recommendation = analysis.recommendation()
    assert recommendation is not None and recommendation["trials"] == 2
    assert len(recommendation["trial_sharpes"]) == 2


def test_a_low_deflated_sharpe_refuses_even_with_a_low_pbo() -> None:
    strict = TUNE.model_copy(update={"min_deflated_sharpe": 0.999999})
    analysis = analyse_study(study_of([[0.01, -0.005, 0.012, -0.004], [0.0, -0.006, 0.001, -0.005]]), strict)
    assert analysis.pbo is not None and analysis.pbo["pbo"] <= 0.5
    assert not analysis.recommended
    assert any("deflated Sharpe" in reason and "luck" in reason for reason in analysis.reasons)


def test_on_a_martingale_like_study_nothing_is_recommended() -> None:
    """Forty trials of pure noise (no skill anywhere): the best one is picked by luck, and refused."""
    rng = np.random.default_rng(11)
    columns = rng.normal(0.0, 0.01, size=(40, 24)).tolist()
    analysis = analyse_study(study_of(columns), TUNE.model_copy(update={"pbo_partitions": 6}))
    assert not analysis.recommended
    assert analysis.deflated_sharpe is not None and analysis.deflated_sharpe["probability"] < 0.9


def test_one_complete_trial_cannot_be_judged_and_is_not_recommended() -> None:
    analysis = analyse_study(study_of(DOMINANT[:1]), TUNE)
    assert not analysis.recommended
    assert analysis.reasons[0] == "1 complete trial(s): PBO needs at least 2"


def test_trials_judged_on_different_sessions_are_refused() -> None:
    study = study_of([[0.01, 0.02, 0.0], [0.01, 0.0, 0.01, 0.02]])
    with pytest.raises(ValueError, match="different numbers of sessions"):
        returns_matrix(study.trials)

"""core/spec.py: the one observation/action spec the env, checkpoints, registry and serving share."""

import numpy as np
import pytest

from core.spec import ACTION_COUNT, ACTION_MEANINGS, HOLD_ACTION, AgentSpec, action_columns, layout_mismatch

FEATURES = ("NVDA:log_return_1", "MSFT:log_return_1", "NVDA:signal", "MSFT:signal")


def test_actions_are_three_codes_per_ticker_and_four_holds_both() -> None:
    assert ACTION_COUNT == 9
    assert ACTION_MEANINGS[HOLD_ACTION] == "hold/hold" and HOLD_ACTION == 4
    assert ACTION_MEANINGS[0] == "sell/sell" and ACTION_MEANINGS[8] == "buy/buy"
    assert AgentSpec(FEATURES).decode(5) == ("hold", "buy")
    with pytest.raises(ValueError, match="0..8"):
        AgentSpec(FEATURES).decode(9)


def test_the_spaces_are_the_features_then_two_bounded_positions() -> None:
    spec = AgentSpec(FEATURES)
    space = spec.observation_space()
    assert spec.observation_size == len(FEATURES) + 2 == space.shape[0]
    assert space.dtype == np.float32
    assert np.all(space.high[-2:] == 1.0) and np.all(space.low[-2:] == -1.0)
    assert np.all(space.high[:-2] == np.finfo(np.float32).max)
    assert spec.action_space().n == ACTION_COUNT
    assert spec.position_columns == (4, 5)
    assert spec.observation_names == (*FEATURES, "position:0", "position:1")


def test_a_checkpoint_meta_round_trips_and_says_what_differs() -> None:
    spec = AgentSpec(FEATURES)
    meta = spec.as_meta()
    assert AgentSpec.from_meta(meta) == spec
    assert spec.mismatch(meta) is None
    assert "observation shape" in (AgentSpec(FEATURES[:-1]).mismatch(meta) or "")
    reordered = AgentSpec((FEATURES[1], FEATURES[0], *FEATURES[2:]))
    assert "same names in a different order" in (reordered.mismatch(meta) or "")
    renamed = AgentSpec((*FEATURES[:-1], "MSFT:volatility_20"))
    assert "only in checkpoint ['MSFT:signal'], only in data ['MSFT:volatility_20']" in (
        renamed.mismatch(meta) or ""
    )
    assert "action count 9 differs from 3" in (
        layout_mismatch(meta, observation_size=6, action_count=3, feature_names=FEATURES) or ""
    )


def test_actions_are_named_by_meaning_and_by_ticker() -> None:
    columns = action_columns(np.array([4, 2, 6, 0]), ["NVDA", "MSFT"])
    assert columns["action"] == [4, 2, 6, 0]
    assert columns["meaning"] == ["hold/hold", "sell/buy", "buy/sell", "sell/sell"]
    assert columns["NVDA"] == ["hold", "sell", "buy", "sell"]
    assert columns["MSFT"] == ["hold", "buy", "sell", "sell"]
    with pytest.raises(ValueError, match=r"0\.\.8"):
        action_columns([9], ["NVDA", "MSFT"])
    with pytest.raises(ValueError, match="2 symbols"):
        action_columns([1], ["NVDA"])

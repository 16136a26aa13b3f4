import pytest
from pydantic import ValidationError

from tests.validation.support import CRITERIA
from validation.gate_criteria import CRITERION_METRICS, GateCriteria, default_scenario_criteria, scenario_key


def test_default_scenario_criteria() -> None:
    table = default_scenario_criteria()
    assert len(table) == 10
    assert table["held_out/mixed"] == table["stress/mixed"] == tuple(CRITERION_METRICS)
    for kind in ("held_out", "stress"):
        for name in ("high_volatility", "low_volatility", "trending", "correlation_breakdown"):
            assert table[scenario_key(kind, name)] == ("max_drawdown", "trades_per_day")
    assert CRITERIA.required_scenarios == ("held_out/mixed", "stress/mixed")


def test_criteria_configuration_is_validated() -> None:
    with pytest.raises(ValidationError, match="unknown criteria \\['profit'\\]"):
        GateCriteria(scenario_criteria={"held_out/mixed": ("profit",)}, required_scenarios=())
    with pytest.raises(ValidationError, match="must look like"):
        GateCriteria(scenario_criteria={"mixed": ("sharpe",)}, required_scenarios=())
    with pytest.raises(ValidationError, match="exceeds max_trades_per_day"):
        GateCriteria(min_trades_per_day=30.0)
    with pytest.raises(ValidationError, match="required scenario 'stress/mixed' has no entry"):
        GateCriteria(scenario_criteria={"held_out/mixed": ("sharpe",)})
    with pytest.raises(ValidationError, match="lists a criterion twice"):
        GateCriteria(scenario_criteria={"held_out/mixed": ("sharpe", "sharpe")}, required_scenarios=())
    with pytest.raises(ValidationError):
        GateCriteria(champion_margin=-0.1)
    with pytest.raises(ValidationError, match="frozen"):
        CRITERIA.min_sharpe = 0.0  # type: ignore[misc]
    assert GateCriteria.model_validate(CRITERIA.model_dump(mode="json")) == CRITERIA

from pathlib import Path

import pytest

from core.errors import ConfigError
from stairways.config import RetrainConfig, load_config


def test_defaults_are_consistent_and_frozen() -> None:
    config = RetrainConfig()
    assert config.symbols == ("NVDA", "MSFT")
    assert tuple(config.data.synthetic.symbols) == config.symbols
    with pytest.raises(ValueError, match="frozen"):
        config.seed = 3  # type: ignore[misc]


def test_symbols_name_the_synthetic_tickers() -> None:
    config = RetrainConfig.model_validate({"symbols": ["AAPL", "AMZN"]})
    assert tuple(config.data.synthetic.symbols) == ("AAPL", "AMZN")


def test_yaml_overrides_by_field_name(tmp_path: Path) -> None:
    path = tmp_path / "night.yaml"
    path.write_text("seed: 11\ndata:\n  synthetic:\n    sessions: 9\nqc:\n  max_stale_run_bars: 12\n")
    config = load_config(path)
    assert config.seed == 11
    assert config.data.synthetic.sessions == 9
    assert config.qc.max_stale_run_bars == 12
    assert config.features == RetrainConfig().features


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("seed: -1\n", "seed"),
        ("sede: 3\n", "sede"),
        ("symbols: [NVDA, NVDA]\n", "two different tickers"),
        ("data:\n  source: export\n", "export_paths"),
        ("- 1\n- 2\n", "mapping"),
        ("seed: [unclosed\n", "not valid YAML"),
        ("data:\n  source: export\n  export_paths: {AAPL: a.csv}\n", "AAPL"),
        ("gate:\n  max_trades_per_day: 15\n", "must lie inside the gate's trades-per-day band"),
        ("training:\n  controller:\n    target_hold_rate: 0.55\n", "earlier design"),
    ],
)
def test_bad_config_names_what_is_wrong(tmp_path: Path, text: str, fragment: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=fragment):
        load_config(path)


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "absent.yaml")


def test_config_is_a_prefect_flow_parameter_schema() -> None:
    from prefect.utilities.callables import parameter_schema

    from flows.retrain import nightly_retrain

    schema = parameter_schema(nightly_retrain.fn)
    assert list(schema.properties) == ["config"]
    definitions = schema.definitions
    assert "RetrainConfig" in definitions
    assert "seed" in definitions["RetrainConfig"]["properties"]


def test_shipped_configs_are_valid() -> None:
    folder = Path(__file__).resolve().parents[2] / "configs"
    paths = sorted(folder.glob("*.yaml"))
    assert paths
    for path in paths:
        assert isinstance(load_config(path), RetrainConfig)

"""Tuning settings: one clear error naming the file and field, never a traceback."""

from pathlib import Path

import pytest

from core.errors import ConfigError
from stairways.tuning.config import load_tune_config


def test_a_tuning_config_file_overrides_by_field_name_and_the_cli_wins(tmp_path: Path) -> None:
    path = tmp_path / "tune.yaml"
    path.write_text("trials: 12\nfolds: 4\npruner: successive_halving\n")
    config = load_tune_config(path, overrides={"trials": 3, "seed": None})
    assert (config.trials, config.folds, config.pruner, config.seed) == (3, 4, "successive_halving", 0)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("trials: 0\n", r"invalid tuning config .*trials"),
        ("pbo_partitions: 5\n", r"pbo_partitions must be even"),
        ("sampler: grid\n", r"sampler"),
        ("trails: 8\n", r"trails"),
        ("- trials\n", r"must hold a mapping of field names, got list"),
        ("trials: [\n", r"is not valid YAML"),
    ],
)
def test_bad_tuning_settings_are_one_line_naming_the_field(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "tune.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_tune_config(path)


def test_a_missing_tuning_config_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"tuning config not found: .*absent\.yaml"):
        load_tune_config(tmp_path / "absent.yaml")

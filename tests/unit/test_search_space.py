"""tune.space is checked before the first trial: every mistake names `tune.space.<key>` and the fix."""

from __future__ import annotations

import optuna
import pytest

from pipeline.config.load import load_config
from pipeline.errors import ConfigError
from pipeline.tuning.search_space import check_space, decode, suggest


def space(entries: str) -> list[str]:
    return [f"tune.space={{{entries}}}"]


def error(entries: str, *more: str) -> str:
    config = load_config([], [*space(entries), *more])
    with pytest.raises(ConfigError) as err:
        check_space(config)
    text = str(err.value)
    assert "Fix:" in text and "\n" not in text, text
    return text


def test_a_good_space_passes_and_samples_config_values():
    config = load_config(
        [],
        space(
            "train.lr: {loguniform: [0.0001, 0.01]}, train.model.dropout: {uniform: [0.0, 0.5]}, "
            "train.epochs: {int: [2, 6]}, train.model.hidden: {choice: [[64], [128, 64]]}"
        ),
    )
    check_space(config)
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=1))
    trial = study.ask()
    values = suggest(trial, config.tune.space)
    assert 1e-4 <= values["train.lr"] <= 1e-2 and 2 <= values["train.epochs"] <= 6
    assert values["train.model.hidden"] in ([64], [128, 64])  # a list, as the config wants it
    assert decode(trial.params, config.tune.space) == values


def test_empty_space():
    assert "tune.space is empty" in error("")


def test_unknown_key():
    text = error("train.learning_rate: {loguniform: [0.0001, 0.01]}")
    assert "tune.space.train.learning_rate" in text and "unknown key" in text


def test_keys_outside_training_or_the_slot_count():
    assert "only training settings can be tuned" in error("features.numeric: {choice: [[]]}")
    assert "only training settings can be tuned" in error("train.num_proc: {int: [1, 4]}")


@pytest.mark.parametrize(
    "entry, expected",
    [
        ("train.lr: {loguniform: [0.01, 0.001]}", "loguniform range [0.01, 0.001] is empty"),
        ("train.epochs: {int: [3, 3]}", "int range [3, 3] is empty"),
        ("train.weight_decay: {loguniform: [0.0, 0.1]}", "loguniform needs low > 0"),
        ("train.model.activation: {choice: []}", "choice is empty"),
    ],
)
def test_empty_or_impossible_ranges(entry, expected):
    assert expected in error(entry)


def test_values_the_config_would_reject():
    text = error("train.model.dropout: {uniform: [0.0, 1.5]}")
    assert "tune.space.train.model.dropout = 1.5 is not accepted" in text and "less than 1" in text
    text = error("train.model.activation: {choice: [relu, swish]}")
    assert "tune.space.train.model.activation = 'swish' is not accepted" in text


def test_a_distribution_needs_exactly_one_kind():
    with pytest.raises(ConfigError, match="set exactly one of loguniform, uniform, int, choice"):
        load_config([], space("train.lr: {loguniform: [0.0001, 0.01], uniform: [0.0, 1.0]}"))

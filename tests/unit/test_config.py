"""Config merge order, overrides, env interpolation and the wording of errors."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from pipeline.config.load import load_config
from pipeline.errors import ConfigError
from tests.helpers import ROOT


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_base_defaults_load():
    config = load_config()
    assert config.spark.master == "local[2]"
    assert config.train.backend == "horovod"


def test_overlays_merge_in_order_and_set_wins(tmp_path):
    a = write(tmp_path, "a.yaml", "train: {epochs: 3, lr: 0.5}\nspark: {master: 'local[1]'}\n")
    b = write(tmp_path, "b.yaml", "train: {epochs: 4}\n")
    config = load_config([a, b], ["train.batch_size=64"])
    assert config.train.epochs == 4  # later overlay wins
    assert config.train.lr == 0.5  # untouched keys survive a deep merge
    assert config.spark.master == "local[1]"
    assert config.train.batch_size == 64
    config = load_config([a, b], ["train.epochs=9"])
    assert config.train.epochs == 9


def test_config_is_frozen():
    config = load_config()
    with pytest.raises(ValidationError, match="frozen"):
        config.train.epochs = 5


def test_unknown_key_names_key_and_file(tmp_path):
    bad = write(tmp_path, "bad.yaml", "train: {epochz: 3}\n")
    with pytest.raises(ConfigError) as err:
        load_config([bad])
    message = str(err.value)
    assert "train.epochz" in message and str(bad) in message and "unknown key" in message


def test_wrong_type_names_value_and_origin():
    with pytest.raises(ConfigError) as err:
        load_config([], ["train.num_proc=two"])
    assert "train.num_proc" in str(err.value) and "'two'" in str(err.value)
    assert "--set train.num_proc=two" in str(err.value)


def test_bad_literal_lists_choices():
    with pytest.raises(ConfigError, match="'linear', 'mlp', 'cnn', 'text_cnn' or 'custom'"):
        load_config([], ["train.model.type=transformer"])


def test_inconsistent_monitor_for_task(tmp_path):
    overlay = write(tmp_path, "r.yaml", "features: {label: {column: y, task: regression}}\ntrain: {monitor: val_auc}\n")
    with pytest.raises(ConfigError, match="train.monitor='val_auc' is not a metric of a regression task"):
        load_config([overlay])
    assert load_config([write(tmp_path, "d.yaml", "features: {label: {column: y, task: regression}}\n")])  # default


def test_embedded_mlflow_store_follows_work_dir(tmp_path):
    moved = load_config([], [f"work_dir={tmp_path}/elsewhere"])
    assert moved.tracking.uri == f"sqlite:///{tmp_path}/elsewhere/mlflow.db"
    assert moved.tracking.artifact_root == f"{tmp_path}/elsewhere/mlartifacts"
    explicit = load_config([], [f"work_dir={tmp_path}", "tracking.uri=http://mlflow:5000"])
    assert explicit.tracking.uri == "http://mlflow:5000"  # set explicitly: kept
    assert load_config().tracking.uri == "sqlite:///work/mlflow.db"  # the default work_dir


def test_decision_threshold_and_positive_label_are_checked(tmp_path):
    with pytest.raises(ConfigError, match=r"train.decision_threshold=1.5 is not a probability"):
        load_config([], ["train.decision_threshold=1.5"])
    overlay = write(tmp_path, "p.yaml", "features: {label: {column: y, task: regression, positive: 'Yes'}}\n")
    with pytest.raises(ConfigError, match="features.label.positive='Yes' is set but features.label.task=regression"):
        load_config([overlay])


def test_split_requires_key_when_sources_declared(tmp_path):
    overlay = write(
        tmp_path,
        "s.yaml",
        "data: {sources: [{name: t, format: csv, path: x.csv, schema: {a: int}}]}\nsplit: {method: hash}\n",
    )
    with pytest.raises(ConfigError, match="split.key"):
        load_config([overlay])


def test_env_interpolation(tmp_path, monkeypatch):
    overlay = write(tmp_path, "t.yaml", "tracking: {uri: '${TRACK_URI}', experiment: '${EXP:-fallback}'}\n")
    monkeypatch.setenv("TRACK_URI", "http://127.0.0.1:5999")
    config = load_config([overlay])
    assert config.tracking.uri == "http://127.0.0.1:5999"
    assert config.tracking.experiment == "fallback"
    monkeypatch.delenv("TRACK_URI")
    with pytest.raises(ConfigError, match=r"\$\{TRACK_URI\} is not set"):
        load_config([overlay])


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config([tmp_path / "nope.yaml"])
    bad = write(tmp_path, "bad.yaml", "train: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config([bad])


def test_malformed_set():
    with pytest.raises(ConfigError, match="key.path=value"):
        load_config([], ["train.epochs"])


def test_demo_config_is_valid():
    config = load_config([ROOT / "conf/flights.yaml", ROOT / "conf/local.yaml"])
    assert config.split.method == "time"
    assert config.features.label.column == "late"
    assert config.train.nics == ["lo"]

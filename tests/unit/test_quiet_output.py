"""Quiet output for schedulers: no MLflow progress bars when stderr is no terminal (inherited by the workers)."""

from __future__ import annotations

import os

from pipeline.cli import main


def test_cli_turns_progress_bars_off_when_not_on_a_terminal(monkeypatch, tmp_path):
    monkeypatch.delenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", raising=False)
    assert main(["config", "--set", f"work_dir={tmp_path}"]) == 0  # pytest's stderr is no terminal
    assert os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] == "false"

    monkeypatch.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "true")  # a user's own choice stays
    assert main(["config", "--set", f"work_dir={tmp_path}"]) == 0
    assert os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] == "true"

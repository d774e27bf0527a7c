"""The fault-injection seam and the scoped environment change: read in one place, restored afterwards."""

from __future__ import annotations

import os

from pipeline import faults
from pipeline.environment import scoped_env


def test_train_step_fault_is_read_from_the_one_variable(monkeypatch):
    monkeypatch.delenv(faults.ENV, raising=False)
    assert faults.train_step_fault() is None
    monkeypatch.setenv(faults.ENV, "train_step:1,5,0")
    assert faults.train_step_fault() == (1, 5, 0)
    monkeypatch.setenv(faults.ENV, "score_before_swap")
    assert faults.train_step_fault() is None


def test_scoped_env_restores_set_and_unset_variables(monkeypatch):
    monkeypatch.setenv("SPARKTRAIN_TEST_KEPT", "before")
    monkeypatch.delenv("SPARKTRAIN_TEST_NEW", raising=False)
    with scoped_env({"SPARKTRAIN_TEST_KEPT": "inside", "SPARKTRAIN_TEST_NEW": "inside"}):
        assert os.environ["SPARKTRAIN_TEST_KEPT"] == os.environ["SPARKTRAIN_TEST_NEW"] == "inside"
    assert os.environ["SPARKTRAIN_TEST_KEPT"] == "before"
    assert "SPARKTRAIN_TEST_NEW" not in os.environ

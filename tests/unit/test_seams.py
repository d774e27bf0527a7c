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


def test_hold_at_checkpoint_waits_for_its_release_once_per_epoch(monkeypatch, tmp_path):
    import threading

    monkeypatch.setenv(faults.ENV, "hold_at_checkpoint:50")
    monkeypatch.setenv(faults.HOLD_DIR_ENV, str(tmp_path))
    faults.hold_after_checkpoint(0, 100)  # another step: no hold, returns at once
    assert not (tmp_path / "held-0").exists()
    holder = threading.Thread(target=faults.hold_after_checkpoint, args=(0, 50))
    holder.start()
    holder.join(timeout=2)
    assert holder.is_alive() and (tmp_path / "held-0").exists()  # held until released
    (tmp_path / "release-0").touch()
    holder.join(timeout=10)
    assert not holder.is_alive()
    (tmp_path / "release-0").unlink()
    faults.hold_after_checkpoint(0, 50)  # the same epoch again (a relaunch): no second hold

"""Fixtures of the Spark tests."""

from __future__ import annotations

import logging

import pytest


@pytest.fixture
def cli_session(spark, monkeypatch):
    """The CLI builds a local[1] session and stops it; here it gets the suite's session and leaves it running."""
    import pipeline.data.session

    masters = []

    def build_spark(cfg):
        masters.append(cfg.master)
        return spark

    monkeypatch.setattr(pipeline.data.session, "build_spark", build_spark)
    monkeypatch.setattr(spark, "stop", lambda: None)
    levels = {name: logging.getLogger(name).level for name in ("pipeline", "py4j")}
    yield masters
    for name, level in levels.items():  # main() sets these for a real command line
        logging.getLogger(name).setLevel(level)

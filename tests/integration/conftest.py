"""Fixtures of the integration tests that share real servers across files."""

from __future__ import annotations

import pytest

from tests.cluster import start_cluster


@pytest.fixture(scope="session")
def standalone_cluster(tmp_path_factory):
    """PostgreSQL, an authenticated mlflow server, a Spark master and 2 workers on 127.0.0.1, started once per
    session and stopped after; the dict and its keys are described in tests/cluster.py."""
    with start_cluster(tmp_path_factory.mktemp("cluster")) as cluster:
        yield cluster

"""Fixtures of the integration tests that share real servers across files."""

from __future__ import annotations

import pytest

from tests.cluster import cluster_env, start_cluster, submit


@pytest.fixture(scope="session")
def standalone_cluster(tmp_path_factory):
    """PostgreSQL, an authenticated mlflow server, a Spark master and 2 workers on 127.0.0.1, started once per
    session and stopped after; the dict and its keys are described in tests/cluster.py."""
    with start_cluster(tmp_path_factory.mktemp("cluster")) as cluster:
        yield cluster


@pytest.fixture(scope="session")
def cluster_prepared(standalone_cluster, flights_raw, tmp_path_factory):
    """The flights subsample prepared once on the cluster through spark-submit, for every cluster test; the dict
    holds the cluster, its work dir and the job environment (tests/cluster.py cluster_env)."""
    work = tmp_path_factory.mktemp("cluster-work")
    env = cluster_env(standalone_cluster, work, flights_raw)  # as docker-compose.yml sets it, with the job's login
    submit(standalone_cluster, "prepare.py", "--set", "train.nics=[lo]", env=env)
    return {"cluster": standalone_cluster, "work": work, "env": env}

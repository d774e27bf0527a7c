"""The cluster's tracking server as docker-compose.yml runs it: MLflow's basic-auth app over a PostgreSQL backend
store. Requests without the right credentials are refused, and a job without them fails before any work, saying
which variable to set; no training here (the end-to-end run is test_standalone_cluster.py).
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import uuid
from contextlib import closing
from pathlib import Path

import psycopg2
import pytest
import requests

from pipeline.config.schema import PipelineConfig, TrackingConfig
from pipeline.errors import TrackingError
from pipeline.layout import Layout
from pipeline.tracking import runs
from pipeline.tracking.server import PROBE, check_server
from tests.cluster import cluster_env
from tests.helpers import ROOT
from tests.services import get_json

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_server_refuses_requests_without_valid_credentials(standalone_cluster):
    uri, user = standalone_cluster["tracking_uri"], standalone_cluster["username"]
    assert requests.get(f"{uri}/health", timeout=10).status_code == 200  # open: why the pipeline probes PROBE
    anonymous = requests.get(f"{uri}{PROBE}", params={"max_results": 1}, timeout=10)
    assert anonymous.status_code == 401 and anonymous.headers["WWW-Authenticate"].startswith("Basic")
    wrong = requests.get(f"{uri}{PROBE}", params={"max_results": 1}, auth=(user, "not-the-password"), timeout=10)
    assert wrong.status_code == 401
    right = requests.get(f"{uri}{PROBE}", params={"max_results": 1}, auth=(user, standalone_cluster["password"]))
    assert right.status_code == 200 and "experiments" in right.json()


def test_wrong_password_fails_the_job_before_any_work(standalone_cluster, flights_raw, tmp_path):
    work = tmp_path / "work"
    env = {**cluster_env(standalone_cluster, work, flights_raw), "MLFLOW_TRACKING_PASSWORD": "not-the-password"}
    experiment = f"auth-check-{uuid.uuid4().hex[:8]}"
    command = [sys.executable, "-m", "pipeline", "prepare", "--conf", str(ROOT / "conf/flights.yaml")]
    command += ["--conf", str(ROOT / "conf/cluster.yaml"), "--set", f"tracking.experiment={experiment}"]
    apps_before = _spark_apps(standalone_cluster)
    out = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)

    assert out.returncode == 2, out.stdout[-2000:] + out.stderr[-2000:]
    error = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    uri, user = standalone_cluster["tracking_uri"], standalone_cluster["username"]
    assert len(error) == 1 and f"MLflow tracking server {uri} refused the credentials of user '{user}'" in error[0]
    assert "HTTP 401" in error[0] and "Fix: set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD" in error[0]
    assert "not-the-password" not in out.stdout + out.stderr
    # nothing was done: no Spark application ever registered, no prepared data, not even the experiment
    assert _spark_apps(standalone_cluster) == apps_before
    assert not Path(Layout.from_config(PipelineConfig(work_dir=str(work))).prepared.root).exists()
    admin = (standalone_cluster["admin_username"], standalone_cluster["admin_password"])
    found = requests.get(
        f"{uri}/api/2.0/mlflow/experiments/get-by-name", params={"experiment_name": experiment}, auth=admin, timeout=10
    )
    assert found.status_code == 404, found.text


def _spark_apps(cluster: dict) -> list[str]:
    """Ids of every application the Spark master has seen, running or finished."""
    state = get_json(f"{cluster['master_ui']}/json/")
    return sorted(app["id"] for app in state["activeapps"] + state["completedapps"])


BOTH = ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")


@pytest.mark.parametrize(
    ("unset", "message"),
    [(BOTH, " and ".join(BOTH) + " are not set"), (BOTH[1:], "MLFLOW_TRACKING_PASSWORD is not set")],
)
def test_missing_credentials_are_named(standalone_cluster, monkeypatch, unset, message):
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", standalone_cluster["username"])
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", standalone_cluster["password"])
    for name in (*unset, "MLFLOW_TRACKING_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    config = TrackingConfig(uri=standalone_cluster["tracking_uri"])
    with pytest.raises(TrackingError, match=f"requires credentials \\(HTTP 401\\) but {message}. Fix: set"):
        runs.configure(config, standalone_cluster["master"])


def test_job_credentials_pass_the_check(standalone_cluster, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", standalone_cluster["username"])
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", standalone_cluster["password"])
    check_server(standalone_cluster["tracking_uri"])  # configure() would also move this process's tracking URI


def test_runs_are_stored_in_postgresql_and_users_in_the_auth_store(standalone_cluster):
    server = standalone_cluster["services"]["mlflow"]
    command = Path(f"/proc/{server.pid}/cmdline").read_bytes().split(b"\0")
    assert b"--app-name" in command and b"basic-auth" in command
    store = command[command.index(b"--backend-store-uri") + 1].decode()
    assert store.startswith("postgresql+psycopg2://") and store.endswith("/mlflow")
    dsn = standalone_cluster["backend_store_dsn"]
    with closing(psycopg2.connect(dsn)) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT name FROM experiments WHERE experiment_id = 0")
        assert cursor.fetchall() == [("Default",)]  # MLflow created its schema there
    with closing(sqlite3.connect(standalone_cluster["auth_store"])) as connection:  # docker/mlflow_auth.ini's store
        users = connection.execute("SELECT username, is_admin FROM users ORDER BY username").fetchall()
    assert users == [(standalone_cluster["admin_username"], 1), (standalone_cluster["username"], 0)]

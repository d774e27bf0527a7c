"""conf/cluster.yaml, docker-compose.yml and .env.example describe the same cluster (no Docker engine here)."""

from __future__ import annotations

import re

import yaml

from pipeline.config.load import load_config
from tests.helpers import ROOT

COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]


def test_compose_has_the_documented_services():
    assert {"spark-master", "spark-worker", "postgres", "mlflow", "pipeline"} <= set(SERVICES)
    assert SERVICES["pipeline"]["build"]["dockerfile"] == "docker/Dockerfile"
    assert "postgresql+psycopg2://" in SERVICES["mlflow"]["command"]  # backend store on PostgreSQL
    assert "--serve-artifacts" in SERVICES["mlflow"]["command"]
    assert SERVICES["mlflow"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert "--host 127.0.0.1" not in SERVICES["spark-master"]["command"]


def test_cluster_config_matches_compose(monkeypatch):
    environment = SERVICES["pipeline"]["environment"]
    for name, value in environment.items():  # the job container's environment, as compose sets it
        monkeypatch.setenv(name, value)
    config = load_config([ROOT / "conf/flights.yaml", ROOT / "conf/cluster.yaml"])
    assert config.spark.master == "spark://spark-master:7077"
    assert "--host spark-master --port 7077" in SERVICES["spark-master"]["command"]
    assert config.tracking.uri == "http://mlflow:5000" and "--port 5000" in SERVICES["mlflow"]["command"]
    assert config.tracking.artifact_root == "mlflow-artifacts:/"
    worker = SERVICES["spark-worker"]
    cores = int(worker["command"].split("--cores ")[1].split()[0])
    assert config.train.num_proc <= cores * worker["deploy"]["replicas"]  # the slot check passes by default
    memory_gb = int(worker["command"].split("--memory ")[1].split()[0].rstrip("g"))
    assert int(config.spark.extra["spark.executor.memory"].rstrip("g")) <= memory_gb  # an executor fits a worker
    assert config.work_dir == environment["SPARKTRAIN_WORK_DIR"]
    for name in ("spark-master", "spark-worker", "pipeline"):  # one shared path on every Spark node
        assert "shared:/shared" in SERVICES[name]["volumes"] and config.work_dir.startswith("/shared/")


def test_ports_stay_on_loopback_and_credentials_come_from_env_file():
    for service in SERVICES.values():
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), port
    text = (ROOT / "docker-compose.yml").read_text()
    referenced = set(re.findall(r"\$\{([A-Z_]+)", text))
    example = (ROOT / ".env.example").read_text()
    documented = set(re.findall(r"^#? ?([A-Z_]+)=", example, flags=re.MULTILINE))
    assert referenced <= documented, f"variables missing from .env.example: {referenced - documented}"
    assert {"POSTGRES_USER", "POSTGRES_PASSWORD"} <= referenced
    assert "change-me" not in text  # the compose file holds no password, only references
    ignored = (ROOT / ".gitignore").read_text().splitlines()
    assert ".env" in ignored

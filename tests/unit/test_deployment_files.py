"""conf/cluster.yaml, docker-compose.yml and .env.example describe the same cluster (no Docker engine here)."""

from __future__ import annotations

import configparser
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


def _reference(value: str) -> bool:
    """A compose value that is only a ${VAR...} reference, filled from .env."""
    return re.fullmatch(r"\$\{[A-Z_]+(:[?-][^}]*)?\}", value) is not None


def test_tracking_server_requires_a_login_and_the_files_hold_no_password():
    mlflow = SERVICES["mlflow"]
    assert "--app-name basic-auth" in mlflow["command"]
    # the only credentials in the command are references: ${POSTGRES_USER}:${POSTGRES_PASSWORD}@
    assert re.search(r"postgresql\+psycopg2://\$\{POSTGRES_USER\}:\$\{POSTGRES_PASSWORD\}@", mlflow["command"])
    assert not re.search(r"password|secret", mlflow["command"].replace("POSTGRES_PASSWORD", ""), flags=re.IGNORECASE)
    environment = mlflow["environment"]
    for name in ("MLFLOW_AUTH_ADMIN_PASSWORD", "MLFLOW_FLASK_SERVER_SECRET_KEY"):
        assert _reference(environment[name]) and ":?" in environment[name], (name, environment[name])
    ini_path = environment["MLFLOW_AUTH_CONFIG_PATH"]
    mounted = [v.split(":")[0] for v in mlflow["volumes"] if v.split(":")[1:2] == [ini_path]]
    assert mounted == ["./docker/mlflow_auth.ini"]
    ini = configparser.ConfigParser()
    ini.read(ROOT / "docker" / "mlflow_auth.ini")
    assert ini["mlflow"]["authorization_function"] == "mlflow.server.auth:authenticate_request_basic_auth"
    assert ini["mlflow"]["default_permission"] in {"READ", "NO_PERMISSIONS"}
    assert "admin_password" not in ini["mlflow"]  # it comes from MLFLOW_AUTH_ADMIN_PASSWORD
    store = ini["mlflow"]["database_uri"]  # a file on a volume, so users outlive the container
    assert any(store.startswith(f"sqlite:///{v.split(':')[1]}/") for v in mlflow["volumes"] if ":" in v)


def test_jobs_get_their_login_from_env_file_and_the_image_has_the_server_packages():
    environment = SERVICES["pipeline"]["environment"]
    for name in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        assert _reference(environment[name]) and ":?" in environment[name], (name, environment[name])
    server = re.search(r"^server = \[(.*)\]", (ROOT / "pyproject.toml").read_text(), flags=re.MULTILINE).group(1)
    assert '"psycopg2-binary' in server and '"mlflow[auth]' in server  # PostgreSQL driver, basic-auth's Flask-WTF
    assert ".[server]" in (ROOT / "docker" / "Dockerfile").read_text()

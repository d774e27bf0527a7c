"""The cluster of docker-compose.yml on 127.0.0.1, for integration tests (test process side): PostgreSQL, an
`mlflow server` on it behind MLflow's basic-auth app, a Spark standalone master and 2 one-core workers; plus
submitting a job to it the way a user or scheduler does.

`start_cluster` yields a dict (the `standalone_cluster` session fixture of tests/integration/conftest.py):
master (spark:// URL), master_ui (the master's web UI), tracking_uri, base (temp folder), username / password
(a non-admin user the jobs run as), admin_username / admin_password, backend_store_dsn (libpq string of
MLflow's PostgreSQL database), auth_store (the SQLite file of users) and services: name -> Service ("postgres",
"mlflow", "master", "worker1", "worker2"), each of which can be stop()ped, kill()ed and restart()ed.
Passwords are generated per session.
"""

from __future__ import annotations

import configparser
import contextlib
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import requests

from tests.helpers import ROOT, free_port
from tests.services import Postgres, Service, get_json, http_ok, wait_for

CREDENTIAL_VARS = ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN")
ADMIN_USER, JOB_USER = "admin", "sparktrain"
REGISTERED = "Successfully registered with master"  # a Spark Worker's log line once the master accepted it

AUTH_INI = ROOT / "docker" / "mlflow_auth.ini"  # the basic-auth settings docker-compose.yml runs with
GPU_DISCOVERY = ROOT / "scripts" / "gpu_discovery.sh"


def spark_home() -> Path:
    import pyspark

    return Path(pyspark.__file__).parent


def _daemon_env() -> dict:
    """The servers' environment: this one without MLflow credentials (the jobs bring their own)."""
    env = {k: v for k, v in os.environ.items() if k not in CREDENTIAL_VARS}
    return {**env, "SPARK_LOCAL_IP": "127.0.0.1", "PYSPARK_PYTHON": sys.executable}


def start_mlflow(base: Path, postgres: Postgres, services: dict[str, Service]) -> tuple[str, str]:
    """`mlflow server --app-name basic-auth` as docker-compose.yml runs it, as services["mlflow"]: runs and models in
    PostgreSQL database `mlflow`, users in a SQLite file (docker/mlflow_auth.ini with this folder's path), the
    admin bootstrapped from MLFLOW_AUTH_ADMIN_USERNAME / _PASSWORD. Returns its URL and the admin password."""
    postgres.create_database("mlflow")
    auth = configparser.ConfigParser()
    auth.read(AUTH_INI)
    auth["mlflow"]["database_uri"] = f"sqlite:///{base}/basic_auth.db"
    with open(base / "basic_auth.ini", "w") as ini:
        auth.write(ini)
    admin_password = secrets.token_urlsafe(18)
    env = {
        **_daemon_env(),
        "MLFLOW_AUTH_CONFIG_PATH": str(base / "basic_auth.ini"),
        "MLFLOW_AUTH_ADMIN_USERNAME": ADMIN_USER,
        "MLFLOW_AUTH_ADMIN_PASSWORD": admin_password,
        # basic-auth's CSRF protection needs a static key (shared by all of the server's workers)
        "MLFLOW_FLASK_SERVER_SECRET_KEY": secrets.token_hex(16),
        # MLflow 3 starts eight job-runner processes (GenAI jobs: none used here) with every server: ~20 s of CPU
        # per start on these 2 cores, and their memory, for nothing.
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
    }
    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "mlflow", "server", "--app-name", "basic-auth", "--host", "127.0.0.1"]
    command += ["--port", str(port), "--workers", "1", "--backend-store-uri", postgres.sqlalchemy_uri("mlflow")]
    command += ["--artifacts-destination", str(base / "mlartifacts")]
    # The first start creates MLflow's tables in PostgreSQL (dozens of migrations): minutes on 2 busy cores.
    ready = lambda _: http_ok(f"{uri}/health")  # noqa: E731 - /health answers without credentials
    services["mlflow"] = Service("mlflow", command, env=env, folder=base, ready=ready, timeout_s=300)
    services["mlflow"].start()
    return uri, admin_password


def create_user(tracking_uri: str, admin: tuple[str, str], username: str) -> str:
    """A new non-admin user through MLflow's auth REST API, as an admin creates one; returns its password."""
    password = secrets.token_urlsafe(18)
    response = requests.post(
        f"{tracking_uri}/api/2.0/mlflow/users/create",
        json={"username": username, "password": password},
        auth=admin,
        timeout=30,
    )
    response.raise_for_status()
    return password


def _simulated_gpu(address: str) -> dict:
    """A worker's environment that advertises one GPU, `address`, through scripts/gpu_discovery.sh. Spark does not
    check it against hardware; only applications that ask for GPUs (spark.executor.resource.gpu.amount) use it."""
    options = f"-Dspark.worker.resource.gpu.amount=1 -Dspark.worker.resource.gpu.discoveryScript={GPU_DISCOVERY}"
    return {"SPARK_WORKER_OPTS": options, "SPARKTRAIN_GPU_ADDRESSES": address}


def start_spark(base: Path, services: dict[str, Service]) -> tuple[str, str]:
    """A master and 2 one-core workers from the pyspark distribution, as services["master"], ["worker1"] and
    ["worker2"]; returns the master's URL and its UI's URL. Each worker advertises one simulated GPU (worker1 GPU
    0, worker2 GPU 1). A restarted worker comes back on a new port and registers with the master again."""
    spark_class = str(spark_home() / "bin" / "spark-class")
    env = _daemon_env()
    master_port, ui_port = free_port(), free_port()
    master_url, master_ui = f"spark://127.0.0.1:{master_port}", f"http://127.0.0.1:{ui_port}"
    services["master"] = Service(
        "master",
        [spark_class, "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1"]
        + ["--port", str(master_port), "--webui-port", str(ui_port)],
        env=env,
        folder=base,
        ready=lambda _: http_ok(f"{master_ui}/json/"),
    )
    services["master"].start()
    for i in (1, 2):
        (base / f"worker{i}").mkdir(exist_ok=True)
        services[f"worker{i}"] = Service(
            f"worker{i}",
            [spark_class, "org.apache.spark.deploy.worker.Worker", master_url, "--host", "127.0.0.1"]
            + ["--cores", "1", "--memory", "2g", "--webui-port", str(free_port())]
            + ["--work-dir", str(base / f"worker{i}")],
            env={**env, **_simulated_gpu(str(i - 1))},
            folder=base,
            ready=lambda service: REGISTERED in service.log_since_start(),
        )
        services[f"worker{i}"].start()
    return master_url, master_ui


@contextlib.contextmanager
def start_cluster(base: Path) -> Iterator[dict]:
    """Start everything (see the module docstring for what is yielded); stop it all and remove PostgreSQL's data
    after, also when a start fails."""
    postgres = Postgres(base)
    services: dict[str, Service] = {}
    try:
        services["postgres"] = postgres.service
        postgres.service.start()
        tracking_uri, admin_password = start_mlflow(base, postgres, services)
        password = create_user(tracking_uri, (ADMIN_USER, admin_password), JOB_USER)
        master_url, master_ui = start_spark(base, services)
        alive = lambda: get_json(f"{master_ui}/json/")["aliveworkers"] == 2  # noqa: E731
        wait_for("2 Spark workers alive", alive, 90, list(services.values()))
        yield {
            "master": master_url,
            "master_ui": master_ui,
            "tracking_uri": tracking_uri,
            "base": base,
            "username": JOB_USER,
            "password": password,
            "admin_username": ADMIN_USER,
            "admin_password": admin_password,
            "backend_store_dsn": postgres.dsn("mlflow"),
            "auth_store": base / "basic_auth.db",
            "services": services,
        }
    finally:
        for service in reversed(services.values()):
            service.stop()
        postgres.remove()


def alive_workers(cluster: dict) -> int:
    """How many workers the master counts as alive (a killed worker drops out when its connection closes)."""
    return get_json(f"{cluster['master_ui']}/json/")["aliveworkers"]


def wait_for_workers(cluster: dict, count: int, timeout_s: float = 90) -> None:
    services = [s for name, s in cluster["services"].items() if name.startswith(("master", "worker")) and s.running()]
    wait_for(f"{count} Spark workers alive", lambda: alive_workers(cluster) == count, timeout_s, services)


def cluster_env(cluster: dict, work_dir: Path, raw_dir: Path) -> dict:
    """A job's environment: the variables conf/cluster.yaml reads, as docker-compose.yml sets them, and the job
    user's MLflow credentials."""
    return {
        **{k: v for k, v in os.environ.items() if k not in CREDENTIAL_VARS},
        "SPARK_LOCAL_IP": "127.0.0.1",
        "PYSPARK_PYTHON": sys.executable,
        "PYSPARK_DRIVER_PYTHON": sys.executable,
        "SPARK_MASTER_URL": cluster["master"],
        "MLFLOW_TRACKING_URI": cluster["tracking_uri"],
        "SPARKTRAIN_WORK_DIR": str(work_dir),
        "RAW_DIR": str(raw_dir),
        "MLFLOW_TRACKING_USERNAME": cluster["username"],
        "MLFLOW_TRACKING_PASSWORD": cluster["password"],
    }


def submit(
    cluster: dict, job: str, *args: str, env: dict, check: bool = True, timeout_s: float = 600
) -> subprocess.CompletedProcess:
    """`spark-submit jobs/<job> --conf conf/flights.yaml --conf conf/cluster.yaml <args>` to the cluster's master;
    with `check`, a non-zero exit fails the test with the output's tail."""
    command = [str(spark_home() / "bin" / "spark-submit"), "--master", cluster["master"], str(ROOT / "jobs" / job)]
    command += ["--conf", str(ROOT / "conf/flights.yaml"), "--conf", str(ROOT / "conf/cluster.yaml"), *args]
    out = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout_s, check=False)
    if check:
        assert out.returncode == 0, f"{job} exited {out.returncode}:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return out

"""conf/cluster.yaml and docker-compose.yml describe the same cluster (no Docker engine here to run it)."""

from __future__ import annotations

import yaml

from pipeline.config import load_config
from tests.conftest import ROOT


def test_cluster_config_matches_compose_services(monkeypatch):
    for name in ("SPARK_MASTER_URL", "MLFLOW_TRACKING_URI", "SPARKTRAIN_WORK_DIR"):
        monkeypatch.delenv(name, raising=False)
    config = load_config([ROOT / "conf/flights.yaml", ROOT / "conf/cluster.yaml"])
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert config.spark.master == "spark://spark-master:7077"
    assert "--port 7077" in services["spark-master"]["command"]
    assert config.tracking.uri == "http://mlflow:5000" and "--port 5000" in services["mlflow"]["command"]
    workers = [s for s in services if s.startswith("spark-worker")]
    cores = sum(int(services[w]["command"].split("--cores ")[1].split()[0]) for w in workers)
    assert config.train.num_proc <= cores  # the slot check would pass on this cluster
    assert config.work_dir.startswith("/shared") and "shared:/shared" in services["spark-master"]["volumes"]
    for service in services.values():  # published ports stay on loopback
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:")

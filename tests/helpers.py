"""Helpers shared by tests (imported explicitly; conftest.py holds only fixtures)."""

from __future__ import annotations

import socket
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.config.schema import PipelineConfig
from pipeline.layout import Layout

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def flights_cli_args(*overrides: str) -> list[str]:
    """Command-line arguments for the demo config with `--set` overrides, for tests that run the CLI."""
    args = ["--conf", str(ROOT / "conf/flights.yaml"), "--conf", str(ROOT / "conf/local.yaml")]
    for item in overrides:
        args += ["--set", item]
    return args


def write_features(folder, sizes: list[int], row_group: int = 1_000_000, names=("a", "b", "c")) -> int:
    """One file per size; row i of the whole dataset has a = i, so rows can be traced.

    `names` are the two float columns and the categorical column (index 0..6), e.g. a feature spec's names.
    """
    folder.mkdir(parents=True, exist_ok=True)
    a, b, c = names
    start = 0
    for k, n in enumerate(sizes):
        ids = np.arange(start, start + n)
        table = pa.table(
            {
                a: ids.astype(np.float32),
                b: (ids * 2).astype(np.float32),
                c: (ids % 7).astype(np.int32),
                "label": (ids % 2).astype(np.float32),
            }
        )
        pq.write_table(table, folder / f"part-{k}.parquet", row_group_size=row_group)
        start += n
    return start


def run_prepare(spark, config: PipelineConfig):
    """Prepare's Spark work (no MLflow run) into the config's own layout, as the CLI lays it out."""
    from pipeline.data.preparation import prepare_data

    return prepare_data(spark, config, Layout.from_config(config))


def run_train(spark, config: PipelineConfig, **options):
    """The tracked train stage with the config's own layout."""
    from pipeline.stages import train

    return train.run(spark, config, Layout.from_config(config), **options)


def run_score(
    spark, config: PipelineConfig, date: str | None, model_version: str | None = None, batch_id: str | None = None
):
    """The tracked score stage with the config's own layout."""
    from pipeline.stages import score

    return score.run(spark, config, Layout.from_config(config), date, model_version, batch_id)


def serve_and_predict(model_uri: str, rows, tracking_uri: str, env_extra: dict | None = None):
    """Start `mlflow models serve` for the model (a separate process), post `rows`, return the predictions frame.

    The server's environment is this one's (plus `env_extra`); its working directory is a fresh temporary one.
    """
    import json
    import os
    import subprocess
    import sys
    import tempfile
    import time

    import pandas as pd
    import pytest
    import requests

    port = free_port()
    venv_bin = str(Path(sys.executable).parent)  # `mlflow models serve` execs uvicorn from PATH
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": tracking_uri,
        "PATH": f"{venv_bin}:{os.environ.get('PATH', '')}",
        **(env_extra or {}),
    }
    command = [f"{venv_bin}/mlflow", "models", "serve", "-m", model_uri, "--env-manager", "local"]
    with tempfile.TemporaryDirectory(prefix="serve-") as cwd:
        server = subprocess.Popen(
            [*command, "-h", "127.0.0.1", "-p", str(port)],
            env=env,
            cwd=cwd,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                assert server.poll() is None, "mlflow models serve exited before it answered /ping"
                try:
                    if requests.get(f"http://127.0.0.1:{port}/ping", timeout=2).ok:
                        break
                except requests.ConnectionError:
                    time.sleep(1)
            else:
                pytest.fail("mlflow models serve did not come up within 120 s")
            payload = {"dataframe_split": json.loads(rows.to_json(orient="split", date_format="iso", index=False))}
            response = requests.post(f"http://127.0.0.1:{port}/invocations", json=payload, timeout=60)
            assert response.status_code == 200, response.text[:500]
            return pd.DataFrame(response.json()["predictions"])
        finally:
            server.terminate()
            server.wait(timeout=30)


def assert_same_weights(path_a: str, path_b: str) -> None:
    """Two saved state_dicts are bit-identical (exact resume)."""
    import torch

    from pipeline.worker.checkpoint import load_weights

    weights_a, weights_b = load_weights(path_a), load_weights(path_b)  # paths or storage URIs (s3://...)
    assert weights_a.keys() == weights_b.keys()
    for key in weights_a:
        assert torch.equal(weights_a[key], weights_b[key]), key


def udf_predictions(spark, model_uri: str, rows, key: str, columns: list[str]):
    """Binary predictions of the registered model through mlflow's spark_udf on 3 partitions, in `rows`' order."""
    import mlflow
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    result_type = T.StructType(
        [
            T.StructField("probability", T.DoubleType()),
            T.StructField("prediction", T.LongType()),
            T.StructField("probability_of", T.StringType()),
        ]
    )
    udf = mlflow.pyfunc.spark_udf(spark, model_uri, result_type=result_type, env_manager="local")
    frame = spark.createDataFrame(rows[[key, *columns]]).repartition(3)
    scored = frame.select(key, udf(F.struct(*[F.col(c) for c in columns])).alias("p"))
    by_udf = scored.select(key, "p.probability", "p.prediction").toPandas().set_index(key)
    return by_udf.loc[rows[key]]


def churn_frame(rows: int, seed: int = 4):
    """A churn table as pandas: id, tenure, charges, plan and a Yes/No `churned` that depends on all three (the
    small-table benchmark and the first-run test)."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    tenure = rng.exponential(24, rows)
    charges = rng.normal(70, 20, rows)
    plan = rng.choice(["basic", "plus", "pro"], rows)
    logit = -1.0 - 0.06 * tenure + 0.03 * (charges - 70) + np.where(plan == "basic", 1.0, 0.0)
    left = rng.random(rows) < 1 / (1 + np.exp(-logit))
    frame = pd.DataFrame({"id": range(rows), "tenure": tenure.round(2), "charges": charges.round(2), "plan": plan})
    return frame.assign(churned=np.where(left, "Yes", "No"))


def wide_churn_frame(rows: int):
    """churn_frame widened to 35 columns as exports are: ids, a date, a free-text note, noise numbers and codes, and
    three rows whose label is neither Yes nor No (the wide first-run test and the small-table benchmark)."""
    import pandas as pd

    rng = np.random.default_rng(5)
    frame = churn_frame(rows)
    label = frame.pop("churned")
    frame.insert(1, "customer_uuid", [f"c-{rng.integers(1 << 40):x}-{i}" for i in range(rows)])
    frame["signed_up"] = pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 365, rows), unit="D")
    frame["note"] = [f"customer wrote about {rng.choice(['billing', 'speed', 'support'])} " * 4 for _ in range(rows)]
    for i in range(20):
        frame[f"metric_{i}"] = rng.normal(size=rows).round(3)
    for i in range(7):
        frame[f"code_{i}"] = rng.choice(list("abcdef"), rows)
    frame["churned"] = label
    frame.loc[[5, 50, 500], "churned"] = "maybe"
    return frame

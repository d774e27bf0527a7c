"""Regression and multiclass tasks end to end: prepare -> 2-worker Horovod training -> registered pyfunc."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pipeline.config.load import load_config
from pipeline.tracking import registry, runs
from tests.helpers import run_prepare, run_train

pytestmark = pytest.mark.integration


def synthetic_csv(path, rows: int = 4000) -> None:
    rng = np.random.default_rng(5)
    x = rng.normal(size=rows)
    group = rng.choice(["red", "green", "blue"], size=rows)
    shift = {"red": -2.0, "green": 0.0, "blue": 2.0}
    y = 3 * x + np.array([shift[g] for g in group]) + rng.normal(scale=0.1, size=rows)
    kind = np.where(y < -1, "low", np.where(y < 1, "mid", "high"))
    lines = ["id,x,grp,y,kind"] + [f"{i},{x[i]:.5f},{group[i]},{y[i]:.5f},{kind[i]}" for i in range(rows)]
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize(
    ("task", "label", "monitor", "metric"),
    [("regression", "y", "val_rmse", "test_rmse"), ("multiclass", "kind", "val_accuracy", "test_accuracy")],
)
def test_task_trains_registers_and_predicts(spark, tmp_path, task, label, monitor, metric):
    csv = tmp_path / "data.csv"
    synthetic_csv(csv)
    overlay = tmp_path / "task.yaml"
    overlay.write_text(
        json.dumps(
            {
                "work_dir": str(tmp_path / "work"),
                "data": {
                    "sources": [
                        {
                            "name": "t",
                            "format": "csv",
                            "path": str(csv),
                            "schema": {"id": "bigint", "x": "double", "grp": "string", "y": "double", "kind": "string"},
                        }
                    ],
                    "key_columns": ["id"],
                },
                "features": {
                    "numeric": [{"name": "x"}],
                    "categorical": [{"name": "grp"}],
                    "label": {"column": label, "task": task},
                },
                "split": {"method": "hash", "key": "id", "val_fraction": 0.2, "test_fraction": 0.2},
                "spark": {"shuffle_partitions": 4},
                "train": {
                    "epochs": 4,
                    "batch_size": 64,
                    "lr": 0.01,
                    "monitor": monitor,
                    "num_proc": 2,
                    "nics": ["lo"],
                    "model": {"hidden": [32], "dropout": 0.0},
                },
                "tracking": {
                    "uri": f"sqlite:///{tmp_path}/mlflow.db",
                    "artifact_root": str(tmp_path / "artifacts"),
                    "model_name": f"synthetic-{task}",
                },
            }
        )
    )
    config = load_config([overlay])
    prepared = run_prepare(spark, config)
    outcome = run_train(spark, config)
    test = outcome.result.test_metrics
    if task == "regression":
        assert test["test_rmse"] < 1.0  # label std is ~3.6: the model learned the relation
    else:
        assert prepared.spec.label.classes == ("high", "low", "mid")
        assert test["test_accuracy"] > 0.8  # three classes: chance is ~1/3
    assert outcome.model.version == "1"
    runs.configure(config.tracking, config.spark.master)
    rows = spark.read.parquet(f"{prepared.output_dir}/clean").limit(50).toPandas()
    predictions = registry.load_pyfunc(outcome.model.uri).predict(rows[prepared.spec.input_columns])
    if task == "regression":
        assert list(predictions.columns) == ["prediction"]
        assert np.abs(predictions["prediction"].to_numpy() - rows["y"].to_numpy()).mean() < 1.0
    else:
        assert list(predictions.columns) == ["probability", "prediction"]
        assert (predictions["prediction"] == rows["kind"]).mean() > 0.8
    plots = {a.path for a in mlflow_client().list_artifacts(outcome.run_id, "plots")}
    expected = {
        "regression": {"plots/residuals.png", "plots/predicted_vs_actual.png"},
        "multiclass": {"plots/confusion_matrix.png"},
    }[task]
    assert expected <= plots
    promotion = mlflow_promotion(outcome.run_id)
    assert promotion["metric"] == metric and promotion["promoted"] is True


def mlflow_promotion(run_id: str) -> dict:
    import mlflow

    return mlflow.artifacts.load_dict(f"runs:/{run_id}/registry/promotion.json")


def mlflow_client():
    import mlflow

    return mlflow.tracking.MlflowClient()

"""Images and text through every stage: the digits PNG folder and movie-review snippets are prepared, trained on
2 workers (the built-in cnn with Horovod, text_cnn with DDP), registered, and scored by spark_udf, the score stage
and REST, each giving the registered model's in-process predictions."""

from __future__ import annotations

import base64
import os
import shutil

import mlflow
import numpy as np
import pandas as pd
import pytest

from pipeline import faults
from pipeline.config.load import load_config
from pipeline.data.demo import write_digits_images, write_reviews
from pipeline.data.split import SPLIT
from pipeline.errors import TrainingError
from pipeline.layout import Layout
from pipeline.tracking import registry, runs
from tests.helpers import ROOT, assert_same_weights, run_prepare, run_score, run_train, serve_and_predict

pytestmark = pytest.mark.integration


def demo_config(conf: str, work_dir, raw_dir, *more: str):
    """A demo's own config file, reading raw data from `raw_dir` (its ${RAW_DIR}) and writing under `work_dir`."""
    before = os.environ.get("RAW_DIR")
    os.environ["RAW_DIR"] = str(raw_dir)
    try:
        store = [f"tracking.uri=sqlite:///{work_dir}/mlflow.db", f"tracking.artifact_root={work_dir}/mlartifacts"]
        return load_config([ROOT / "conf" / conf, ROOT / "conf/local.yaml"], [f"work_dir={work_dir}", *store, *more])
    finally:
        if before is None:
            del os.environ["RAW_DIR"]
        else:
            os.environ["RAW_DIR"] = before


@pytest.fixture(scope="module")
def trained_digits(spark, tmp_path_factory):
    raw = tmp_path_factory.mktemp("digits-raw")
    write_digits_images(raw / "digits")
    config = demo_config("digits.yaml", tmp_path_factory.mktemp("digits-work"), raw, "train.epochs=8")
    prepared = run_prepare(spark, config)
    return config, prepared, run_train(spark, config), raw


def udf_scores(spark, model_uri: str, rows: pd.DataFrame, input_columns: list[str], result_type: str):
    """The registered model through mlflow's spark_udf on 3 partitions, in `rows`' order."""
    from pyspark.sql import functions as F

    udf = mlflow.pyfunc.spark_udf(spark, model_uri, result_type=result_type, env_manager="local")
    frame = spark.createDataFrame(rows[["key", *input_columns]]).repartition(3)
    scored = frame.select("key", udf(F.struct(*[F.col(c) for c in input_columns])).alias("p")).select("key", "p.*")
    return scored.toPandas().set_index("key").loc[rows["key"]].reset_index(drop=True)


def test_cnn_learns_digits_on_two_horovod_workers(trained_digits):
    config, prepared, outcome, _ = trained_digits
    assert prepared.report.counts.input_rows == 1797 and prepared.report.counts.reconciled
    result = outcome.result
    assert result.world_size == 2 and result.epochs_run >= 1
    assert result.test_metrics["test_accuracy"] >= 0.9  # 10 balanced classes: chance is 0.1
    runs.configure(config.tracking, config.spark.master)
    run = mlflow.tracking.MlflowClient().get_run(outcome.run_id)
    assert run.data.params["resolved.train.model.factory"] == "pipeline.model.cnn:cnn"


def test_registered_cnn_scores_bytes_paths_spark_udf_and_rest_alike(spark, trained_digits):
    config, prepared, outcome, _ = trained_digits
    runs.configure(config.tracking, config.spark.master)
    clean = spark.read.parquet(Layout.from_config(config).prepared.clean_dir)
    rows = clean.where(f"{SPLIT} = 'test'").orderBy("path").limit(40).toPandas()
    rows["key"] = rows["path"]
    model = registry.load_pyfunc(outcome.model.uri)
    in_process = model.predict(rows[["content"]])
    assert (in_process["prediction"] == rows["folder"]).mean() >= 0.9
    by_path = model.predict(pd.DataFrame({"content": rows["path"]}))  # a path instead of the bytes
    pd.testing.assert_frame_equal(by_path, in_process)

    by_udf = udf_scores(spark, outcome.model.uri, rows, ["content"], "probability double, prediction string")
    assert list(by_udf["prediction"]) == list(in_process["prediction"])
    np.testing.assert_allclose(by_udf["probability"], in_process["probability"], atol=1e-6)

    encoded = pd.DataFrame({"content": [base64.b64encode(b).decode() for b in rows["content"][:5]]})
    served = serve_and_predict(outcome.model.uri, encoded, config.tracking.uri)  # base64 image bytes over REST
    assert list(served["prediction"]) == list(in_process["prediction"][:5])
    np.testing.assert_allclose(served["probability"], in_process["probability"][:5], atol=1e-6)


@pytest.mark.slow  # the same resume as test_training.py, with augmentation: make test-all
def test_killed_rank_then_rerun_resumes_exactly_with_augmentation(spark, trained_digits, tmp_path, monkeypatch):
    """Flips and crops are drawn from (seed, epoch, rank) and batch norm is synced: a resumed run is bit-identical."""
    config, *_ = trained_digits

    def resume_config(store: str):
        return config.model_copy(
            update={
                "train": config.train.model_copy(
                    update={"epochs": 3, "augment": config.train.augment.model_copy(update={"flip": True})}
                ),
                "tracking": config.tracking.model_copy(
                    update={"uri": f"sqlite:///{tmp_path}/{store}.db", "artifact_root": f"{tmp_path}/{store}-art"}
                ),
            }
        )

    uninterrupted = run_train(spark, resume_config("straight"), register=False)
    monkeypatch.setenv(faults.ENV, "train_step:1,3,1")  # rank 1 hard-exits at epoch 1, step 3
    with pytest.raises(TrainingError, match="fault injection"):
        run_train(spark, resume_config("killed"), register=False)
    monkeypatch.delenv(faults.ENV)
    resumed = run_train(spark, resume_config("killed"), register=False)
    assert resumed.result.resumed_from_epoch == 1
    assert_same_weights(uninterrupted.result.best_model_path, resumed.result.best_model_path)
    assert resumed.result.test_metrics == uninterrupted.result.test_metrics


def test_scoring_a_folder_quarantines_undecodable_images(spark, trained_digits, tmp_path):
    config, _, outcome, raw = trained_digits
    new = tmp_path / "new"
    for digit in ("3", "7"):
        shutil.copytree(raw / "digits" / digit, new / digit)
    (new / "3" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    scoring = config.model_copy(
        update={"score": config.score.model_copy(update={"input_sources": {"digits": str(new)}})}
    )
    result = run_score(spark, scoring, None, batch_id="new-images")
    files = len(list((new / "3").glob("*.png"))) + len(list((new / "7").glob("*.png")))
    assert (result.rows_scored, result.rows_quarantined) == (files - 1, 1)
    predictions = pd.read_parquet(result.output_path)
    truth = predictions["path"].str.rsplit("/", n=2).str[-2]
    assert (predictions["prediction"] == truth).mean() >= 0.9
    quarantined = spark.read.parquet(Layout.from_config(config).score_quarantine.partition("batch=new-images"))
    (bad,) = quarantined.collect()
    assert (
        bad["_record"].endswith("broken.png") and bad["_reason"] == "image: not an image file (format not recognised)"
    )
    # Monitored by what the profile measures of images: the same 8x8 grey scans, so size and mode did not move.
    drift = spark.read.parquet(Layout.from_config(config).monitoring_drift.partition("batch=new-images")).toPandas()
    psi = drift.set_index("feature")["psi"]
    assert psi["content.width"] == psi["content.height"] == psi["content.channels"] == 0.0
    assert "content.brightness" in psi.index


@pytest.fixture(scope="module")
def trained_reviews(spark, tmp_path_factory):
    raw = tmp_path_factory.mktemp("reviews-raw")
    write_reviews(raw / "reviews", limit=3000)
    config = demo_config(
        "reviews.yaml",
        tmp_path_factory.mktemp("reviews-work"),
        raw,
        "train.backend=torch_distributor",
        "train.epochs=3",
        "features.texts=[{name: text, top_k: 5000, max_len: 48}]",
        "train.model.token_embedding_dim=32",
        "train.model.filters=32",
    )
    prepared = run_prepare(spark, config)
    return config, prepared, run_train(spark, config)


def test_text_cnn_learns_reviews_with_ddp_and_scores_alike(spark, trained_reviews):
    config, prepared, outcome = trained_reviews
    assert prepared.report.counts.input_rows == 3000 and prepared.spec.texts[0].max_len == 48
    assert outcome.result.world_size == 2
    assert outcome.result.test_metrics["test_auc"] >= 0.6  # a random guess gives 0.5
    runs.configure(config.tracking, config.spark.master)
    clean = spark.read.parquet(Layout.from_config(config).prepared.clean_dir)
    rows = clean.where(f"{SPLIT} = 'test'").orderBy("review_id").limit(60).toPandas()
    rows["key"] = rows["review_id"]
    in_process = registry.load_pyfunc(outcome.model.uri).predict(rows[["text"]])
    result_type = "probability double, prediction string, probability_of string"  # in the label's terms
    by_udf = udf_scores(spark, outcome.model.uri, rows, ["text"], result_type)
    np.testing.assert_allclose(by_udf["probability"], in_process["probability"], atol=1e-6)
    assert list(by_udf["prediction"]) == list(in_process["prediction"])
    assert set(by_udf["prediction"]) <= {"fresh", "rotten"} and set(in_process["probability_of"]) == {"fresh"}


def test_array_features_train_an_mlp_and_score_alike(spark, tmp_path):
    """Precomputed vectors (array<double> in Parquet) next to a numeric column: mlp learns a linear rule of both."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(3)
    vectors = rng.normal(size=(3000, 8))
    extra = rng.normal(size=3000)
    label = (vectors @ np.linspace(-1, 1, 8) + 0.5 * extra > 0).astype(int)
    raw = tmp_path / "raw"
    raw.mkdir()
    table = {"id": [f"r{i}" for i in range(3000)], "vec": list(vectors), "extra": extra, "y": label}
    pq.write_table(pa.table(table), raw / "part.parquet")
    work = tmp_path / "work"
    config = load_config(
        [ROOT / "conf/local.yaml"],
        [
            f"work_dir={work}",
            f"data.sources=[{{name: v, primary: true, format: parquet, path: '{raw}', "
            "schema: {id: string, vec: 'array<float>', extra: double, y: int}}]",
            "data.key_columns=[id]",
            "features={arrays: [{name: vec, length: 8}], numeric: [{name: extra}], label: {column: y, task: binary}}",
            "split={method: hash, key: id, val_fraction: 0.15, test_fraction: 0.15}",
            "prepare.output_files=2",
            "train={epochs: 3, batch_size: 64, num_proc: 2, nics: [lo], model: {hidden: [32]}}",
            "tracking.model_name=vectors",
        ],
    )
    run_prepare(spark, config)
    outcome = run_train(spark, config)
    assert outcome.result.test_metrics["test_auc"] >= 0.9  # a linear rule of the inputs
    clean = spark.read.parquet(Layout.from_config(config).prepared.clean_dir)
    rows = clean.where(f"{SPLIT} = 'test'").orderBy("id").limit(50).toPandas()
    rows["key"] = rows["id"]
    runs.configure(config.tracking, config.spark.master)
    in_process = registry.load_pyfunc(outcome.model.uri).predict(rows[["vec", "extra"]])
    by_udf = udf_scores(spark, outcome.model.uri, rows, ["vec", "extra"], "probability double, prediction long")
    np.testing.assert_allclose(by_udf["probability"], in_process["probability"], atol=1e-6)

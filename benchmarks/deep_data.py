"""Images and text: demo quality against simple references, and image decoding in prepare against plain Pillow.

1. digits (conf/digits.yaml, the `make demo-images` chain: prepare -> cnn on 2 Horovod workers -> register ->
   score): the pipeline's test accuracy, next to scikit-learn's LogisticRegression on the raw pixels of the SAME
   train/test split (read from the features Parquet), and the published simple-CNN figure for this data.
2. reviews (conf/reviews.yaml, `make demo-text`): text_cnn's test AUC and accuracy, next to LogisticRegression on
   bag-of-words counts (our tokenizer) of the same split.
3. prepare's image source: decoded images/s per core (Spark local[2], every file read and fully decoded once,
   as prepare does) ÷ a plain Pillow loop over the same files in one process. Generated 64x64 RGB JPEGs (the
   digits are too small to time), written once to data/bench/images/.

Each pipeline run is its own process with its own work folder and MLflow store. Writes
benchmarks/results/deep_data.json.

    .venv/bin/python benchmarks/deep_data.py [--skip-demos] [--images 4000] [--smoke]
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from harness import ROOT, bench_parser, results_dir, run_pipeline, scratch_dir, write_result

sys.path.insert(0, str(ROOT))
# --smoke: two epochs, the least that beats the constant baseline (scoring needs a champion); quality means nothing
SMOKE_TRAINING = ["train.epochs=2"]

# Erik Linder-Norén, ML-From-Scratch, README "Convolutional Neural Network": Conv16-Conv32-Dense256 on
# sklearn's load_digits, random 60/40 split: 709 / 718 test images.
PUBLISHED_CNN_ACCURACY = 0.9875
PUBLISHED_CNN_SOURCE = "https://github.com/eriklindernoren/ML-From-Scratch (README, CNN on load_digits, 60/40 split)"


def run_demo(conf: str, raw: Path, work: Path, smoke: bool) -> dict:
    """The whole chain (`python -m pipeline run`; its own process, in this one for a smoke run); the train run's test
    metrics and seconds."""
    import mlflow

    store = work / "mlflow"
    command = ["run", "--conf", f"conf/{conf}", "--conf", "conf/local.yaml"]
    settings = [f"work_dir={work}", f"tracking.uri=sqlite:///{store}.db", f"tracking.artifact_root={store}-art"]
    for item in settings + (SMOKE_TRAINING if smoke else []):
        command += ["--set", item]
    command += ["--batch-id", "bench"]
    started = time.perf_counter()
    run_pipeline(command, {"RAW_DIR": str(raw)}, in_process=smoke)
    seconds = time.perf_counter() - started
    mlflow.set_tracking_uri(f"sqlite:///{store}.db")
    runs = mlflow.search_runs(search_all_experiments=True, filter_string="tags.`pipeline.stage` = 'train'")
    metrics = mlflow.get_run(runs["run_id"].iloc[0]).data.metrics
    return {"test": {k: v for k, v in metrics.items() if k.startswith("test_")}, "seconds": round(seconds, 1)}


def split_frames(work: Path):
    import pandas as pd

    features = work / "prepared" / "features"
    return {split: pd.read_parquet(features / split) for split in ("train", "test")}


def digits_reference(work: Path) -> dict:
    """LogisticRegression on raw pixels / 255, trained on the pipeline's train split, scored on its test split."""
    from sklearn.linear_model import LogisticRegression

    frames = split_frames(work)
    x = {s: np.stack([np.frombuffer(b, np.uint8) for b in f["img__content"]]) / 255.0 for s, f in frames.items()}
    model = LogisticRegression(max_iter=5000).fit(x["train"], frames["train"]["label"])
    accuracy = float((model.predict(x["test"]) == frames["test"]["label"]).mean())
    return {"logistic_regression_raw_pixels": round(accuracy, 4), "test_rows": len(frames["test"])}


def reviews_reference(work: Path) -> dict:
    """LogisticRegression on bag-of-words counts (the pipeline's tokenizer) of the same clean train/test rows."""
    import pandas as pd
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    from pipeline.model.text import tokenize

    clean = pd.read_parquet(work / "prepared" / "clean")
    train, test = clean[clean["_split"] == "train"], clean[clean["_split"] == "test"]
    vectorizer = CountVectorizer(analyzer=lambda text: tokenize(pd.Series([text]), "word", True)[0])
    x_train, x_test = vectorizer.fit_transform(train["text"]), vectorizer.transform(test["text"])
    y_train, y_test = (train["label"] == "fresh").astype(int), (test["label"] == "fresh").astype(int)
    model = LogisticRegression(max_iter=5000).fit(x_train, y_train)
    probability = model.predict_proba(x_test)[:, 1]
    return {
        "logistic_regression_bow_auc": round(float(roc_auc_score(y_test, probability)), 4),
        "logistic_regression_bow_accuracy": round(float(((probability >= 0.5) == y_test).mean()), 4),
        "test_rows": len(test),
    }


def generated_jpegs(folder: Path, count: int) -> list[Path]:
    """Smooth colour gradients plus noise, 64x64 RGB JPEG (quality 90): about the size of small photos."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    files = sorted(folder.glob("*.jpg"))
    if len(files) >= count:
        return files[:count]
    rng = np.random.default_rng(0)
    grid = np.linspace(0, 1, 64)
    for i in range(len(files), count):
        base = np.stack([np.add.outer(grid * rng.random(), grid * rng.random()) for _ in range(3)], axis=-1)
        pixels = np.clip(base * 120 + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
        Image.fromarray(pixels, "RGB").save(folder / f"img{i:05d}.jpg", quality=90)
    return sorted(folder.glob("*.jpg"))[:count]


def pillow_loop(files: list[Path]) -> float:
    """Images/s of one process reading and fully decoding each file (what a hand-written loop does)."""
    from PIL import Image

    started = time.perf_counter()
    for path in files:
        with Image.open(path) as image:
            image.load()
    return len(files) / (time.perf_counter() - started)


def image_source_rate(folder: Path, count: int) -> tuple[float, int]:
    """Images/s through the image source on local[2] (listing, reading, decoding every file once)."""
    from pipeline.config.schema import SourceConfig, SparkConfig
    from pipeline.data.session import build_spark
    from pipeline.data.sources import load_source

    spark = build_spark(SparkConfig(master="local[2]"))
    try:
        source = SourceConfig(name="bench", format="image", path=str(folder), options={"pathGlobFilter": "*.jpg"})
        load_source(spark, source, 4096).tagged.count()  # warm-up: JVM, Python workers, file cache
        started = time.perf_counter()
        loaded = load_source(spark, source, 4096)
        rows = loaded.tagged.count()
        seconds = time.perf_counter() - started
        loaded.tagged.unpersist()
    finally:
        spark.stop()
    assert rows == count, f"the image source read {rows} of {count} files"
    return rows / seconds, 2


def main(argv: list[str] | None = None) -> None:
    parser = bench_parser(__doc__.splitlines()[0])
    parser.add_argument("--skip-demos", action="store_true", help="only the image-decoding measurement")
    parser.add_argument("--images", type=int, default=4000, help="generated JPEGs for the decoding measurement")
    args = parser.parse_args(argv)
    if args.smoke:
        args.images = 40
    from pipeline.data.demo import write_digits_images, write_reviews

    results: dict = {}
    if not args.skip_demos:
        with tempfile.TemporaryDirectory(prefix="bench-deep-") as tmp:
            raw = Path(tmp) / "raw"
            write_digits_images(raw / "digits")
            write_reviews(raw / "reviews")
            digits = run_demo("digits.yaml", raw, Path(tmp) / "digits", args.smoke)
            digits |= digits_reference(Path(tmp) / "digits")
            digits |= {"published_simple_cnn": PUBLISHED_CNN_ACCURACY, "published_source": PUBLISHED_CNN_SOURCE}
            reviews = run_demo("reviews.yaml", raw, Path(tmp) / "reviews", args.smoke)
            reviews |= reviews_reference(Path(tmp) / "reviews")
        results |= {"digits": digits, "reviews": reviews}
        print(json.dumps({"digits": digits, "reviews": reviews}, indent=2))

    files = generated_jpegs(scratch_dir(args, ROOT / "data" / "bench") / "images", args.images)
    pillow = pillow_loop(files)
    spark_rate, cores = image_source_rate(files[0].parent, len(files))
    results["image_decoding"] = {
        "files": len(files),
        "pillow_loop_images_per_s": round(pillow),
        "image_source_images_per_s": round(spark_rate),
        "image_source_cores": cores,
        "per_core_ratio": round(spark_rate / cores / pillow, 3),
    }
    print(json.dumps(results["image_decoding"], indent=2))
    kept = results_dir(args) / "deep_data.json"  # --skip-demos keeps the demos' last figures
    previous = json.loads(kept.read_text()) if kept.exists() else {}
    write_result(args, "deep_data", previous | results)


if __name__ == "__main__":
    main()

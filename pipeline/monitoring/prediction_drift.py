"""The predictions' own drift: what the model outputs on a score batch against what it output on the test split.

Binary: the probability in ten equal bins; multiclass: the predicted class (a class the test split never got is
a bucket of its own); regression: the prediction in z-score buckets of the test predictions' mean and std (the
input profile's edges). The train stage writes the reference (driver, from the test predictions it already
computes) as an artifact of the version's training run; a score run counts its batch in one Spark aggregation
over the predictions it wrote and compares with the same PSI as the inputs (pipeline/monitoring/drift.py).
"""

from __future__ import annotations

import logging

import numpy as np

from pipeline.data.input_profile import Z_EDGES
from pipeline.monitoring.drift import population_stability

log = logging.getLogger(__name__)
ARTIFACT = "monitoring/prediction_reference.json"
BINS = 10


def reference_from(task: str, predictions) -> dict:
    """The test split's prediction counts (pandas frame of the pyfunc's outputs)."""
    if task == "binary":
        bins = np.clip(np.floor(predictions["probability"].to_numpy() * BINS), 0, BINS - 1).astype(int)
        return {"kind": "probability", "counts": _counted(bins)}
    if task == "multiclass":
        return {"kind": "class", "counts": _counted(predictions["prediction"].astype(str).to_numpy())}
    values = predictions["prediction"].to_numpy(dtype="float64")
    mean, std = float(values.mean()), float(values.std()) or 1.0
    buckets = np.searchsorted(np.array(Z_EDGES), (values - mean) / std, side="right")
    return {"kind": "z", "mean": mean, "std": std, "counts": _counted(buckets)}


def _counted(values) -> dict[str, int]:
    keys, counts = np.unique(values, return_counts=True)
    return {str(k): int(n) for k, n in zip(keys, counts, strict=True)}


def batch_counts(predictions, reference: dict, by: str | None = None) -> dict:
    """{group: {bucket: rows}} of a predictions frame (Spark), one aggregation; group None without `by`."""
    from pyspark.sql import functions as F

    kind = reference["kind"]
    if kind == "probability":
        bucket = F.least(F.floor(F.col("probability") * BINS), F.lit(BINS - 1)).cast("int")
    elif kind == "class":
        bucket = F.col("prediction").cast("string")
    else:
        z = (F.col("prediction").cast("double") - F.lit(reference["mean"])) / F.lit(reference["std"])
        bucket = sum((z >= F.lit(edge)).cast("int") for edge in Z_EDGES)
    group = (F.col(by) if by else F.lit(None)).alias("_g")
    rows = predictions.groupBy(group, bucket.cast("string").alias("_b")).count().collect()
    out: dict = {}
    for row in rows:
        out.setdefault(row["_g"], {})[row["_b"]] = row["count"]
    return out


def prediction_psi(reference: dict, counts: dict[str, int]) -> float:
    return population_stability(counts, reference["counts"])


def load_reference(train_run_id: str) -> dict | None:
    """The version's reference from its training run; None for a version trained before predictions were
    profiled (its scoring then measures the inputs only)."""
    from pipeline.tracking import runs

    try:
        return runs.load_dict(train_run_id, ARTIFACT)
    except Exception as exc:  # noqa: BLE001 - MLflow raises several kinds for a missing artifact
        log.info("no prediction reference in training run %s (%s): prediction drift not measured", train_run_id, exc)
        return None

"""A binary model's performance estimated before the outcomes arrive, from its own probabilities (the idea of
NannyML's confidence-based performance estimation, CBPE): if the probabilities are calibrated, a row predicted
with probability p is a positive with chance p, so the expected confusion matrix at every threshold, and with it
the ROC curve, AUC and accuracy, follow from the probabilities alone. Wrong where calibration breaks (a shift in
how inputs relate to outcomes, not just in the inputs), so `evaluate` reports it beside the realised metric to
show how far to trust it.

Runs on the driver: one Spark aggregation of a predictions frame into BINS probability bins (sum of p, rows,
rows predicted positive), then numpy on at most BINS rows.
"""

from __future__ import annotations

import numpy as np

BINS = 1000


def estimate(predictions) -> dict[str, float]:
    """{"estimated_auc", "estimated_accuracy"} of a binary predictions frame (Spark; columns probability,
    prediction and probability_of, the positive class's name: 1, or the label's own value such as "yes"); {} when
    it has no rows."""
    from pyspark.sql import functions as F

    p = F.col("probability")
    predicted = F.col("prediction").cast("string")
    named = F.col("probability_of") if "probability_of" in predictions.columns else F.lit("1")
    # A spec without stored classes predicts 0/1 even where the positive class has a name (pipeline/model/predictor)
    positive = ((predicted == named) | (predicted == F.lit("1"))).cast("double")
    rows = (
        predictions.groupBy(F.least(F.floor(p * BINS), F.lit(BINS - 1)).cast("int").alias("bin"))
        .agg(F.sum(p).alias("p"), F.count(F.lit(1)).alias("n"), F.sum(positive * p + (1 - positive) * (1 - p)))
        .collect()
    )
    if not rows:
        return {}
    bins = np.array([r["bin"] for r in rows])
    expected_positives = np.array([r["p"] for r in rows], dtype="float64")
    counts = np.array([r["n"] for r in rows], dtype="float64")
    expected_correct = float(sum(r[3] for r in rows))
    return {
        "estimated_auc": expected_auc(bins, expected_positives, counts),
        "estimated_accuracy": expected_correct / counts.sum(),
    }


def expected_auc(bins, expected_positives, counts) -> float:
    """AUC of the expected ROC curve: thresholds from the highest bin down, each bin's rows split into expected
    positives (sum of p) and negatives (rows - sum of p); ties within a bin count half, as in the trapezoid rule."""
    order = np.argsort(-np.asarray(bins))
    positives = np.asarray(expected_positives, dtype="float64")[order]
    negatives = np.asarray(counts, dtype="float64")[order] - positives
    if positives.sum() <= 0 or negatives.sum() <= 0:
        return float("nan")
    tpr = np.concatenate([[0.0], np.cumsum(positives) / positives.sum()])
    fpr = np.concatenate([[0.0], np.cumsum(negatives) / negatives.sum()])
    return float(np.sum((fpr[1:] - fpr[:-1]) * (tpr[1:] + tpr[:-1]) / 2))

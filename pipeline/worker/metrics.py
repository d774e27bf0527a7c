"""Allreduce-friendly metrics (training ranks): each rank sums into one flat tensor, one allreduce, then finalize.

AUC comes from per-class score histograms (sums are exact to merge across ranks); with 4096 bins its error
versus the exact rank AUC is below 1e-3 (tests/unit/test_models_metrics.py).
"""

from __future__ import annotations

import numpy as np
import torch

from pipeline.model.losses import loss_fn, predict
from pipeline.model.spec import LabelSpec

AUC_BINS = 4096


class MetricSums:
    """Accumulates per-rank sums for a task; `as_tensor` is what gets allreduced.

    The loss is on the network's target (a standardised regression label); regression errors are converted to
    the label's own units first, through `label` (the spec's LabelSpec), so RMSE/MAE read in those units.
    """

    def __init__(self, task: str, label: LabelSpec | None = None):
        self.task = task
        self.label = label
        self.loss = 0.0
        self.count = 0.0
        self.correct = 0.0
        self.abs_err = 0.0
        self.sq_err = 0.0
        self.hist = np.zeros((2, AUC_BINS), dtype=np.float64)

    def update(self, logits: torch.Tensor, y: torch.Tensor) -> None:
        with torch.no_grad():
            if self.task == "multiclass":
                keep = y >= 0
                logits, y = logits[keep], y[keep]
            n = float(len(y))
            if n == 0:
                return
            self.loss += float(loss_fn(self.task, logits, y)) * n
            self.count += n
            pred = predict(self.task, logits)
            if self.task == "binary":
                self.correct += float(((pred >= 0.5).float() == y).sum())
                bins = torch.clamp((pred * AUC_BINS).long(), 0, AUC_BINS - 1).cpu().numpy()
                positive = (y > 0.5).cpu().numpy()
                self.hist[1] += np.bincount(bins[positive], minlength=AUC_BINS)
                self.hist[0] += np.bincount(bins[~positive], minlength=AUC_BINS)
            elif self.task == "multiclass":
                self.correct += float((pred.argmax(dim=1) == y).sum())
            else:
                if self.label is not None:
                    pred, y = self.label.to_original(pred), self.label.to_original(y)
                err = pred - y
                self.abs_err += float(err.abs().sum())
                self.sq_err += float((err * err).sum())

    def as_tensor(self) -> torch.Tensor:
        head = torch.tensor([self.loss, self.count, self.correct, self.abs_err, self.sq_err], dtype=torch.float64)
        return torch.cat([head, torch.from_numpy(self.hist.reshape(-1))])

    def restore(self, tensor: torch.Tensor) -> None:
        """Continue from sums that as_tensor returned (a mid-epoch checkpoint): the round trip is exact."""
        values = tensor.double().numpy()
        self.loss, self.count, self.correct, self.abs_err, self.sq_err = (float(v) for v in values[:5])
        self.hist = values[5:].reshape(2, AUC_BINS).copy()

    @staticmethod
    def finalize(task: str, reduced: torch.Tensor, prefix: str) -> dict[str, float]:
        values = reduced.double().numpy()
        loss, count, correct, abs_err, sq_err = (float(v) for v in values[:5])
        count = max(count, 1.0)
        out = {f"{prefix}_loss": loss / count}
        if task == "binary":
            hist = values[5:].reshape(2, AUC_BINS)
            out[f"{prefix}_auc"] = auc_from_histograms(hist[0], hist[1])
            out[f"{prefix}_accuracy"] = correct / count
        elif task == "multiclass":
            out[f"{prefix}_accuracy"] = correct / count
        else:
            out[f"{prefix}_rmse"] = float(np.sqrt(sq_err / count))
            out[f"{prefix}_mae"] = abs_err / count
        return out


def auc_from_histograms(negatives: np.ndarray, positives: np.ndarray) -> float:
    """P(score_pos > score_neg) + 0.5 P(tie), with scores bucketed; NaN when a class is absent."""
    n_pos, n_neg = positives.sum(), negatives.sum()
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    neg_below = np.cumsum(negatives) - negatives
    wins = (positives * neg_below).sum() + 0.5 * (positives * negatives).sum()
    return float(wins / (n_pos * n_neg))


def higher_is_better(metric: str) -> bool:
    return metric.endswith(("_auc", "_accuracy"))

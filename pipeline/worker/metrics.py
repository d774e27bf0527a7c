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
_HEAD = ("loss", "count", "correct", "abs_err", "sq_err")


class MetricSums:
    """Accumulates per-rank sums for a task on the rank's device; `as_tensor` is what gets allreduced.

    The sums stay on the device and nothing in `update` reads a value back to the host, so a CUDA rank does not
    wait for the GPU at every step: the one device-to-host copy is `as_tensor`, once per epoch.
    The loss is on the network's target (a standardised regression label); regression errors are converted to
    the label's own units first, through `label` (the spec's LabelSpec), so RMSE/MAE read in those units.
    """

    def __init__(self, task: str, label: LabelSpec | None = None, device: torch.device | None = None):
        self.task = task
        self.label = label
        device = device or torch.device("cpu")
        self.head = torch.zeros(len(_HEAD), dtype=torch.float64, device=device)
        self.hist = torch.zeros((2, AUC_BINS), dtype=torch.float64, device=device)  # negatives, positives

    def update(self, logits: torch.Tensor, y: torch.Tensor) -> None:
        with torch.no_grad():
            if self.task == "multiclass":
                valid = y >= 0  # -1: a row without a class; masked arithmetically (indexing would sync)
                n = valid.sum().double()
                loss = torch.where(n > 0, loss_fn(self.task, logits, y).double() * n, 0.0)
                correct = ((logits.argmax(dim=1) == y) & valid).sum()
                self._add(loss=loss, count=n, correct=correct)
                return
            n = float(y.shape[0])
            if n == 0:
                return
            loss = loss_fn(self.task, logits, y).double() * n
            pred = predict(self.task, logits)
            if self.task == "binary":
                positive = y > 0.5
                correct = ((pred >= 0.5) == positive).sum()
                bins = torch.clamp((pred * AUC_BINS).long(), 0, AUC_BINS - 1) + AUC_BINS * positive.long()
                self.hist += torch.bincount(bins, minlength=2 * AUC_BINS).view(2, AUC_BINS)
                self._add(loss=loss, count=n, correct=correct)
            else:
                if self.label is not None:
                    pred, y = self.label.to_original(pred), self.label.to_original(y)
                err = (pred - y).double()
                self._add(loss=loss, count=n, abs_err=err.abs().sum(), sq_err=(err * err).sum())

    def _add(self, **values) -> None:
        """Add to the head sums by name, in place on the device: device scalars and Python numbers alike, with no
        host-to-device copy (a Python number goes into the kernel as an argument)."""
        for name, value in values.items():
            self.head[_HEAD.index(name)] += value

    def as_tensor(self) -> torch.Tensor:
        """The sums as one flat float64 CPU tensor (the epoch's only device-to-host copy)."""
        return torch.cat([self.head, self.hist.reshape(-1)]).cpu()

    def restore(self, tensor: torch.Tensor) -> None:
        """Continue from sums that as_tensor returned (a mid-epoch checkpoint): the round trip is exact."""
        values = tensor.double().to(self.head.device)
        self.head = values[: len(_HEAD)].clone()
        self.hist = values[len(_HEAD) :].reshape(2, AUC_BINS).clone()

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

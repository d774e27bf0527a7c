"""Training and evaluation figures for the MLflow run (driver side).

Figures are built as matplotlib `Figure` objects, not through pyplot: no global backend to switch (drivers and
CI have no display) and no figure registry to close.
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator


def learning_curves(history: list[dict], monitor: str):
    """Loss per epoch (train vs val) and the monitored metric."""
    epochs = [h["epoch"] + 1 for h in history]
    fig = Figure(figsize=(10, 4))
    axes = fig.subplots(1, 2)
    axes[0].plot(epochs, [h["train_loss"] for h in history], marker="o", label="train")
    axes[0].plot(epochs, [h["val_loss"] for h in history], marker="o", label="val")
    axes[0].set(title="loss", xlabel="epoch")
    axes[0].legend()
    metric = monitor.removeprefix("val_")
    if f"train_{metric}" in history[0]:
        axes[1].plot(epochs, [h[f"train_{metric}"] for h in history], marker="o", label="train")
    axes[1].plot(epochs, [h[monitor] for h in history], marker="o", label="val")
    axes[1].set(title=metric, xlabel="epoch")
    axes[1].legend()
    for ax in axes:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.tight_layout()
    return fig


def classification_figures(y_true: np.ndarray, scores: np.ndarray) -> dict[str, object]:
    """ROC, precision-recall and confusion matrix (threshold 0.5) for a binary task."""
    from sklearn.metrics import auc, confusion_matrix, precision_recall_curve, roc_curve

    figures = {}
    fpr, tpr, _ = roc_curve(y_true, scores)
    fig = Figure(figsize=(5, 5))
    ax = fig.subplots()
    ax.plot(fpr, tpr, label=f"AUC {auc(fpr, tpr):.3f}")
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey")
    ax.set(title="ROC (test)", xlabel="false positive rate", ylabel="true positive rate")
    ax.legend()
    figures["roc_curve.png"] = fig

    precision, recall, _ = precision_recall_curve(y_true, scores)
    fig = Figure(figsize=(5, 5))
    ax = fig.subplots()
    ax.plot(recall, precision)
    ax.axhline(y_true.mean(), linestyle="--", color="grey", label=f"base rate {y_true.mean():.3f}")
    ax.set(title="precision-recall (test)", xlabel="recall", ylabel="precision")
    ax.legend()
    figures["pr_curve.png"] = fig

    matrix = confusion_matrix(y_true.astype(int), (scores >= 0.5).astype(int), labels=[0, 1])
    fig = Figure(figsize=(4, 4))
    ax = fig.subplots()
    ax.imshow(matrix, cmap="Blues")
    for (i, j), value in np.ndenumerate(matrix):
        ax.text(j, i, str(value), ha="center", va="center")
    ax.set(title="confusion matrix (test, t=0.5)", xlabel="predicted", ylabel="actual", xticks=[0, 1], yticks=[0, 1])
    figures["confusion_matrix.png"] = fig
    return figures


def multiclass_figures(actual: np.ndarray, predicted: np.ndarray, classes: list[str]) -> dict[str, object]:
    """Confusion matrix over the training classes (unseen test classes are left out)."""
    from sklearn.metrics import confusion_matrix

    matrix = confusion_matrix(actual, predicted, labels=classes)
    size = max(4, 0.6 * len(classes) + 2)
    fig = Figure(figsize=(size, size))
    ax = fig.subplots()
    ax.imshow(matrix, cmap="Blues")
    if len(classes) <= 20:
        for (i, j), value in np.ndenumerate(matrix):
            ax.text(j, i, str(value), ha="center", va="center", fontsize=8)
    ticks = list(range(len(classes)))
    ax.set(title="confusion matrix (test)", xlabel="predicted", ylabel="actual", xticks=ticks, yticks=ticks)
    ax.set_xticklabels(classes, rotation=45, ha="right")
    ax.set_yticklabels(classes)
    fig.tight_layout()
    return {"confusion_matrix.png": fig}


def regression_figures(y_true: np.ndarray, predictions: np.ndarray) -> dict[str, object]:
    residuals = predictions - y_true
    fig = Figure(figsize=(5, 4))
    ax = fig.subplots()
    ax.hist(residuals, bins=50)
    ax.set(title="residuals (test)", xlabel="prediction - actual")
    figures = {"residuals.png": fig}
    fig = Figure(figsize=(5, 5))
    ax = fig.subplots()
    ax.scatter(y_true, predictions, s=2, alpha=0.3)
    low, high = float(np.min(y_true)), float(np.max(y_true))
    ax.plot([low, high], [low, high], color="grey", linestyle="--")
    ax.set(title="predicted vs actual (test)", xlabel="actual", ylabel="predicted")
    figures["predicted_vs_actual.png"] = fig
    return figures


def study_figures(study) -> dict:
    """Optuna's own matplotlib plots of a study: optimisation history, parameter importance, parallel coordinates.

    A plot that needs more finished trials than the study has (importance needs two complete trials) is left out
    with a log line instead of failing the tune run.
    """
    import logging
    import warnings

    from optuna.visualization import matplotlib as optuna_plots

    figures = {}
    for name, make in (
        ("optimization_history.png", optuna_plots.plot_optimization_history),
        ("param_importances.png", optuna_plots.plot_param_importances),
        ("parallel_coordinate.png", optuna_plots.plot_parallel_coordinate),
    ):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # Optuna marks its matplotlib plots experimental
                axes = make(study)
        except (ValueError, RuntimeError, ZeroDivisionError) as exc:
            logging.getLogger(__name__).info("tune plot %s left out: %s", name, exc)
            continue
        axes = axes.flat[0] if hasattr(axes, "flat") else axes
        figures[name] = axes.get_figure()
    return figures

"""What the CLI prints after a run: the pipeline summary and how to open the MLflow UI on its runs (driver)."""

from __future__ import annotations

import logging

log = logging.getLogger("pipeline")


def pipeline_summary(config, outcome) -> None:
    prepared, trained, scored = outcome.prepared, outcome.trained, outcome.scored
    counts = prepared.report.counts
    test = " ".join(f"{k}={v:.4f}" for k, v in trained.result.test_metrics.items())
    log.info("---- pipeline finished ----")
    log.info(
        "prepare: %d rows -> %d clean, %d quarantined (%s)",
        counts.input_rows,
        counts.clean_rows,
        counts.quarantined_rows,
        prepared.output_dir,
    )
    log.info(
        "train:   %d epochs, best epoch %d (%s %.4f), test %s",
        trained.result.epochs_run,
        trained.result.best_epoch + 1,
        trained.monitor,
        trained.result.best_metric,
        test,
    )
    if trained.promotion.candidate_interval:
        low, high = trained.promotion.candidate_interval
        log.info("         %s 95%% interval %.4f to %.4f (a small test split)", trained.promotion.metric, low, high)
    if trained.result.ended_on_its_best_epoch:
        log.info("         the best epoch was the last one allowed: still improving? raise train.epochs")
    promotion = trained.promotion
    aliases = "@candidate @champion" if promotion.promoted else "@candidate"
    log.info("model:   %s version %s %s (%s)", trained.model.name, trained.model.version, aliases, promotion.reason)
    if promotion.baseline_metric is not None:
        verdict = "beats" if promotion.beats_baseline else "does NOT beat"
        log.info("         %s the constant baseline: %s %.4f", verdict, promotion.metric, promotion.baseline_metric)
    log.info(
        "score:   %d rows scored + %d quarantined, by %s version %s -> %s",
        scored.rows_scored,
        scored.rows_quarantined,
        scored.model.name,
        scored.model.version,
        scored.output_path,
    )
    if scored.drift_summary:
        log.info("         %s", scored.drift_summary)
    ui_hint(config)


def ui_hint(config) -> None:
    """How to open the MLflow UI on this experiment's runs table: the Makefile target for the demo's store, else
    the exact command, then the direct link."""
    from pathlib import Path

    from pipeline.tracking.runs import resolve_uri, runs_table_url

    uri = config.tracking.uri
    if uri.startswith(("http://", "https://")):
        log.info("MLflow UI: %s", runs_table_url(config.tracking, uri))
        return
    if Path("Makefile").exists() and resolve_uri(uri) == resolve_uri("sqlite:///work/mlflow.db"):
        log.info("MLflow UI: make mlflow-ui, then open %s", runs_table_url(config.tracking))
    else:
        log.info("MLflow UI: mlflow ui --backend-store-uri %s --host 127.0.0.1 --port 5000", resolve_uri(uri))
        log.info("then open %s", runs_table_url(config.tracking))

"""The train stage on the driver: start or resume the MLflow run, build the worker plan, launch, record results."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from pipeline import tracking
from pipeline.config_schema import PipelineConfig
from pipeline.errors import DataError, TrainingError
from pipeline.launch import check_slots, launch
from pipeline.prepare import prepared_dir
from pipeline.registry import RegisteredModel
from pipeline.spec import FeatureSpec
from pipeline.training import TrainPlan, plan_threads

log = logging.getLogger(__name__)
FAULT_ENV = "SPARKTRAIN_FAULT_EXIT_AT"  # "epoch,step,rank": test hook that hard-kills one worker


@dataclass(frozen=True)
class TrainResult:
    run_id: str
    result: dict
    spec: FeatureSpec
    checkpoint_dir: str
    model: RegisteredModel
    promotion: dict  # registry/promotion.json: whether this version became @champion, and why


def load_prepared_spec(config: PipelineConfig) -> FeatureSpec:
    path = Path(prepared_dir(config)) / "feature_spec.json"
    if not path.exists():
        raise DataError(
            f"no prepared data at {prepared_dir(config)} (missing feature_spec.json). "
            "Fix: run 'python -m pipeline prepare' with the same --conf first"
        )
    return FeatureSpec.load(path)


def build_plan(
    config: PipelineConfig, spec: FeatureSpec, checkpoint_dir: str, uri: str | None, run_id: str | None
) -> TrainPlan:
    """Resolve config into plain values for the workers."""
    if spec.label is None:
        raise DataError("the feature spec has no label. Fix: set features.label and re-run prepare")
    train = config.train
    fault = os.environ.get(FAULT_ENV)
    return TrainPlan(
        features_dir=str(Path(prepared_dir(config)) / "features"),
        checkpoint_dir=checkpoint_dir,
        numeric_columns=spec.numeric_columns,
        categorical_columns=spec.categorical_columns,
        cardinalities=spec.cardinalities,
        task=spec.label.task,
        out_dim=spec.num_classes,
        model=train.model.model_dump(),
        epochs=train.epochs,
        batch_size=train.batch_size,
        lr=train.lr,
        scale_lr_by_workers=train.scale_lr_by_workers,
        warmup_epochs=train.warmup_epochs,
        weight_decay=train.weight_decay,
        grad_clip=train.grad_clip,
        backward_passes_per_step=train.backward_passes_per_step,
        fp16_allreduce=train.fp16_allreduce,
        patience=train.patience,
        monitor=train.monitor,
        threads=plan_threads(train.threads_per_worker, train.num_proc),
        shuffle_buffer_rows=train.shuffle_buffer_rows,
        max_steps_per_epoch=train.max_steps_per_epoch,
        seed=train.seed,
        tracking_uri=uri,
        run_id=run_id,
        fault_exit_at=tuple(int(x) for x in fault.split(",")) if fault else None,
    )


def run_train(spark, config: PipelineConfig, fresh: bool = False, force_promote: bool = False) -> TrainResult:
    """Train with config.train.backend; re-running after a failure resumes the same MLflow run.

    Raises:
        DataError: prepare has not run. TrainingError: slots or worker failure. TrackingError: MLflow.
    """
    spec = load_prepared_spec(config)
    check_slots(spark, config.train.num_proc)  # before any MLflow run exists
    uri = tracking.configure(config.tracking, config.spark.master)
    experiment_id = tracking.ensure_experiment(config.tracking)
    resume_id = None if fresh else tracking.find_resumable_run(experiment_id, "train", tracking.config_hash(config))
    run = tracking.start_run(experiment_id, "train", config, run_id=resume_id)
    run_id = run.info.run_id
    checkpoint_dir = config.path("checkpoints", run_id)
    if resume_id:
        log.info("re-opening unfinished train run %s (checkpoints in %s)", run_id, checkpoint_dir)
    else:
        tracking.log_file(str(Path(prepared_dir(config)) / "feature_spec.json"), "data")
        tracking.log_file(str(Path(prepared_dir(config)) / "quality_report.json"), "data")
    plan = build_plan(config, spec, checkpoint_dir, uri, run_id)
    log.info(
        "training %s with %d %s workers, %d threads each, batch %d/worker",
        config.train.model.type,
        config.train.num_proc,
        config.train.backend,
        plan.threads,
        plan.batch_size,
    )
    try:
        result = launch(
            spark,
            plan,
            config.train.backend,
            config.train.num_proc,
            config.train.start_timeout_s,
            config.train.nics,
            config.train.horovod_cycle_time_ms,
        )
    except TrainingError:
        tracking.end_run("FAILED")  # status tag stays "running": the next run of this command resumes it
        raise
    final = {
        f"best_{config.train.monitor}": result["best_metric"],
        "best_epoch": result["best_epoch"],
        **result["test_metrics"],
    }
    tracking.log_metrics(final)
    tracking.log_dict(result, "training/result.json")  # includes "workers": where each rank ran
    workers = result["workers"]
    where = "; ".join(f"rank {w['rank']} {w['host']} executor {w['executor_id']}" for w in workers)
    log.info("ranks ran on: %s", where)
    tracking.set_tags({"train.executors": ",".join(sorted({str(w["executor_id"]) for w in workers}))})
    model, promotion = _register_and_evaluate(spark, config, spec, result, force_promote)
    tracking.mark_finished(run_id)
    tracking.end_run()
    return TrainResult(run_id, result, spec, checkpoint_dir, model, promotion)


def _test_rows(spark, config: PipelineConfig, spec: FeatureSpec, limit: int = 200_000):
    """Clean test-split rows (model inputs + label) as pandas, for the input example and the plots."""
    from pyspark.sql import functions as F

    from pipeline.features import SPLIT

    clean = spark.read.parquet(str(Path(prepared_dir(config)) / "clean"))
    rows = clean.where(F.col(SPLIT) == "test").select(*spec.input_columns, spec.label.column)
    return rows.limit(limit).toPandas()


def _register_and_evaluate(spark, config: PipelineConfig, spec: FeatureSpec, result: dict, force: bool):
    """Register the best weights as a pyfunc, plot its test behaviour, and decide on promotion."""
    from pipeline import plots, registry
    from pipeline.metrics import higher_is_better

    test = _test_rows(spark, config, spec)
    inputs = test[spec.input_columns]
    model = registry.log_and_register(
        spec, config.train.model.model_dump(), result["best_model_path"], config.tracking.model_name, inputs.head(5)
    )
    predictions = registry.load_pyfunc(model.uri).predict(inputs)  # the registered artifact, end to end
    figures = {"learning_curves.png": plots.learning_curves(result["history"], config.train.monitor)}
    if spec.label.task == "binary":
        y_true = test[spec.label.column].to_numpy(dtype="float64")
        figures |= plots.classification_figures(y_true, predictions["probability"].to_numpy())
    elif spec.label.task == "regression":
        y_true = test[spec.label.column].to_numpy(dtype="float64")
        figures |= plots.regression_figures(y_true, predictions["prediction"].to_numpy())
    else:
        actual = test[spec.label.column].astype("string").to_numpy()
        figures |= plots.multiclass_figures(actual, predictions["prediction"].to_numpy(), list(spec.label.classes))
    for name, figure in figures.items():
        tracking.log_figure(figure, f"plots/{name}")
        plots.close(figure)
    metric = config.tracking.promote_metric or "test_" + config.train.monitor.removeprefix("val_")
    decision = registry.promote(model, metric, higher_is_better(metric), force)
    tracking.log_dict(decision, "registry/promotion.json")
    tracking.set_tags(
        {
            "registry.model": model.name,
            "registry.version": model.version,
            "registry.promoted": str(decision["promoted"]),
        }
    )
    return model, decision

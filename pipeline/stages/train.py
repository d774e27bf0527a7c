"""The train stage on the driver: check slots, open (or resume) the run, launch the ranks, register, promote."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path

from pipeline.config.schema import PipelineConfig
from pipeline.errors import DataError
from pipeline.layout import Layout
from pipeline.model.spec import FeatureSpec
from pipeline.stages import plots, registry, tracking
from pipeline.stages.epoch_logger import MlflowEpochLogger
from pipeline.stages.launch import check_slots, launch
from pipeline.stages.plan import build_plan
from pipeline.stages.registry import Promotion, RegisteredModel
from pipeline.stages.tracked import tracked_stage
from pipeline.worker.metrics import higher_is_better
from pipeline.worker.plan import RankResult

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainResult:
    run_id: str
    result: RankResult
    spec: FeatureSpec
    model: RegisteredModel
    promotion: Promotion


def load_prepared_spec(layout: Layout) -> FeatureSpec:
    path = Path(layout.prepared.spec_file)
    if not path.exists():
        raise DataError(
            f"no prepared data at {layout.prepared.root} (missing {path.name}). "
            "Fix: run 'python -m pipeline prepare' with the same --conf first"
        )
    return FeatureSpec.load(path)


def run(spark, config: PipelineConfig, layout: Layout, fresh: bool = False, force_promote: bool = False) -> TrainResult:
    """Train with config.train.backend; re-running after a failure resumes the same MLflow run.

    Raises:
        DataError: prepare has not run. TrainingError: slots or worker failure. TrackingError: MLflow.
    """
    spec = load_prepared_spec(layout)
    check_slots(spark, config.train.num_proc)  # before any MLflow run exists
    with tracked_stage(config, "train", resume=not fresh) as stage:
        if stage.resumed:
            where = layout.checkpoints(stage.run_id)
            log.info("re-opening unfinished train run %s (checkpoints in %s)", stage.run_id, where)
        else:
            tracking.log_file(layout.prepared.spec_file, "data")
            tracking.log_file(layout.prepared.report_file, "data")
        plan = build_plan(config, spec, layout, stage.run_id)
        log.info(
            "training %s with %d %s workers, %d threads each, batch %d/worker",
            config.train.model.type,
            config.train.num_proc,
            config.train.backend,
            plan.threads_per_worker,
            plan.batch_size,
        )
        result = launch(spark, plan, config.train, MlflowEpochLogger(stage.tracking_uri, stage.run_id))
        tracking.log_metrics(
            {
                f"best_{config.train.monitor}": result.best_metric,
                "best_epoch": result.best_epoch,
                **result.test_metrics,
            }
        )
        tracking.log_dict(asdict(result), "training/result.json")  # includes "workers": where each rank ran
        where = "; ".join(f"rank {w['rank']} {w['host']} executor {w['executor_id']}" for w in result.workers)
        log.info("ranks ran on: %s", where)
        tracking.set_tags({"train.executors": ",".join(sorted({str(w["executor_id"]) for w in result.workers}))})
        model, promotion = _register_and_evaluate(spark, config, layout, spec, result, force_promote)
    return TrainResult(stage.run_id, result, spec, model, promotion)


def _test_rows(spark, layout: Layout, spec: FeatureSpec, limit: int = 200_000):
    """Clean test-split rows (model inputs + label) as pandas, for the input example and the plots."""
    from pyspark.sql import functions as F

    from pipeline.data.split import SPLIT

    clean = spark.read.parquet(layout.prepared.clean_dir)
    rows = clean.where(F.col(SPLIT) == "test").select(*spec.input_columns, spec.label.column)
    return rows.limit(limit).toPandas()


def _register_and_evaluate(
    spark, config: PipelineConfig, layout: Layout, spec: FeatureSpec, result: RankResult, force: bool
) -> tuple[RegisteredModel, Promotion]:
    """Register the best weights as a pyfunc, plot its test behaviour, and decide on promotion."""
    test = _test_rows(spark, layout, spec)
    inputs = test[spec.input_columns]
    model = registry.log_and_register(
        spec, config.train.model.model_dump(), result.best_model_path, config.tracking.model_name, inputs.head(5)
    )
    predictions = registry.load_pyfunc(model.uri).predict(inputs)  # the registered artifact, end to end
    figures = {"learning_curves.png": plots.learning_curves(result.history, config.train.monitor)}
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
    metric = config.tracking.promote_metric or "test_" + config.train.monitor.removeprefix("val_")
    decision = registry.promote(model, metric, higher_is_better(metric), force)
    tracking.log_dict(asdict(decision), "registry/promotion.json")
    tracking.set_tags(
        {
            "registry.model": model.name,
            "registry.version": model.version,
            "registry.promoted": str(decision.promoted),
        }
    )
    return model, decision

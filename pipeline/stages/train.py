"""The train stage on the driver: check slots, open (or resume) the run, launch the ranks, register, promote."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

from pipeline.config.schema import PipelineConfig
from pipeline.errors import DataError
from pipeline.evaluation import plots
from pipeline.evaluation.baseline import constant_baseline
from pipeline.evaluation.bootstrap import Interval, metric_interval
from pipeline.evaluation.threshold import choose_threshold
from pipeline.launch.gpu_resources import check_gpu_backend, resolve_gpu_use
from pipeline.launch.launchers import check_backend_session
from pipeline.launch.model_check import ModelCheck
from pipeline.launch.planning import draft_plan
from pipeline.launch.recovery import launch_with_restarts
from pipeline.launch.slots import check_slots
from pipeline.layout import Layout
from pipeline.model.spec import FeatureSpec
from pipeline.monitoring import prediction_drift
from pipeline.storage import files
from pipeline.tracking import datasets, registry, runs
from pipeline.tracking.challenger import Promoter
from pipeline.tracking.metric_backfill import send_missing_epoch_metrics
from pipeline.tracking.registry import Promotion, RegisteredModel
from pipeline.tracking.tracked import tracked_stage
from pipeline.worker.epoch_logger import MlflowEpochLogger
from pipeline.worker.metrics import higher_is_better
from pipeline.worker.plan import EpochCallback, EpochCallbacks, RankResult, TrainPlan

log = logging.getLogger(__name__)


RESULT_ARTIFACT = "training/result.json"


@dataclass(frozen=True)
class TrainResult:
    run_id: str
    result: RankResult
    spec: FeatureSpec
    model: RegisteredModel | None  # None when registration was left to the caller (a tuning trial)
    promotion: Promotion | None
    monitor: str  # the validation metric that picked the best epoch (train.monitor, or the task's default)
    max_epochs: int  # train.epochs as resolved (early stopping or a pruner may end sooner)


def load_prepared_spec(layout: Layout) -> FeatureSpec:
    uri = layout.prepared.spec_file
    if not files.exists(uri):
        raise DataError(
            f"no prepared data at {layout.prepared.root} (missing {uri.rsplit('/', 1)[-1]}). "
            "Fix: run 'python -m pipeline prepare' with the same --conf first"
        )
    return FeatureSpec.from_json(files.read_bytes(uri).decode("utf-8"))


def run(
    spark,
    config: PipelineConfig,
    layout: Layout,
    fresh: bool = False,
    force_promote: bool = False,
    register: bool = True,
    on_epoch: EpochCallback | None = None,
    parent_run_id: str | None = None,
    tags: dict[str, str] | None = None,
    promoter: Promoter | None = None,
) -> TrainResult:
    """Train with config.train.backend; re-running after a failure resumes the same MLflow run.

    Args:
        register: register and promote the best weights (a tuning trial leaves that to the study).
        on_epoch: called in rank 0 after each epoch besides the MLflow logger (a trial's pruner).
        parent_run_id: the run this one nests under when no run is active in this thread (parallel trials).
        tags: set on the run first thing (a tuning trial's study and number, to find it even when it fails).
        promoter: decides on @champion instead of comparing logged test metrics (retrain's compare window).

    Raises:
        DataError: prepare has not run. ConfigError: a batch too large for the data, a broken model.
        TrainingError: slots or worker failure. TrackingError: MLflow.
    """
    check_backend_session(spark, config.train)  # these checks run before any MLflow run exists
    spec = load_prepared_spec(layout)
    check_slots(spark, config.train.num_proc)
    check_gpu_backend(spark, config.train, resolve_gpu_use(spark, config.train)[0])
    draft = draft_plan(config, spec, layout)  # a broken model or batch size fails here, in seconds
    with tracked_stage(config, "train", resume=not fresh, parent_run_id=parent_run_id) as stage:
        if tags:
            runs.set_tags(tags)
        plan = draft.for_run(stage.run_id)
        if stage.resumed:
            where = layout.checkpoints(stage.run_id)
            log.info("re-opening unfinished train run %s (checkpoints in %s)", stage.run_id, where)
        else:  # a re-opened run has these already (MLflow params cannot change)
            _log_inputs_and_plan(spark, config, layout, plan, draft.check)
        result = _launch(spark, config, plan, stage, on_epoch)
        _log_result(plan, result)
        model, promotion = None, None
        if register:
            model, promotion = register_and_evaluate(spark, config, layout, plan, result, force_promote, promoter)
    return TrainResult(stage.run_id, result, spec, model, promotion, plan.monitor, plan.epochs)


def _log_inputs_and_plan(spark, config: PipelineConfig, layout: Layout, plan: TrainPlan, check: ModelCheck) -> None:
    """A new run's record of what it trains on and with: spec, quality report, datasets, resolved settings."""
    runs.log_file(layout.prepared.spec_file, "data")
    runs.log_file(layout.prepared.report_file, "data")
    used = datasets.raw_sources(spark, config, datasets.source_rows(layout)) + datasets.prepared(spark, layout)
    datasets.log_inputs(used)
    runs.log_params({f"resolved.train.{k}": getattr(plan, k) for k in ("batch_size", "epochs", "monitor")})
    runs.log_params({"resolved.train.model.factory": plan.model["factory"], "model.parameters": check.parameters})
    runs.log_metrics({"model_check_seconds": check.seconds})


def _launch(spark, config: PipelineConfig, plan: TrainPlan, stage, on_epoch: EpochCallback | None) -> RankResult:
    """Run the ranks (restarting after lost ones) with rank 0 logging each epoch, then send what it could not."""
    log.info(
        "training %s with %d %s workers, %d threads each, batch %d/worker",
        config.train.model.type,
        config.train.num_proc,
        config.train.backend,
        plan.threads_per_worker,
        plan.batch_size,
    )
    logger = MlflowEpochLogger(stage.tracking_uri, stage.run_id, config.tracking.outage_limit_s)
    callbacks = EpochCallbacks((logger, on_epoch)) if on_epoch is not None else logger
    result, failures = launch_with_restarts(spark, plan, config.train, callbacks)
    send_missing_epoch_metrics(stage.tracking_uri, stage.run_id, result.history, config.tracking.outage_limit_s)
    if failures:
        log.info("training finished after %d restart(s): %s", len(failures), "; ".join(f.summary() for f in failures))
    return result


def _log_result(plan: TrainPlan, result: RankResult) -> None:
    """The best epoch, test metrics, the whole rank result and where each rank ran."""
    best = {f"best_{plan.monitor}": result.best_metric, "best_epoch": result.best_epoch}
    runs.log_metrics({**best, **result.test_metrics})
    runs.log_dict(asdict(result), RESULT_ARTIFACT)  # includes "workers": where each rank ran
    log.info("ranks ran on: %s", "; ".join(_placement(w) for w in result.workers))
    runs.set_tags({"train.executors": ",".join(sorted({str(w["executor_id"]) for w in result.workers}))})
    if result.ended_on_its_best_epoch:
        runs.set_tags({"train.still_improving": "true"})
        log.warning(
            "the best epoch is the last of the %d allowed: the model may still be improving. Fix: raise "
            "train.epochs (when null it allows about 2,000 optimizer steps)",
            plan.epochs,
        )


def _placement(worker: dict) -> str:
    """One rank's line: host, executor, device, and the GPU Spark assigned to its task (when any)."""
    gpus = worker.get("spark_gpus") or []
    assigned = f" (Spark task GPU {','.join(gpus)})" if gpus else ""
    return f"rank {worker['rank']} {worker['host']} executor {worker['executor_id']} {worker.get('device')}{assigned}"


def load_result(run_id: str) -> RankResult:
    """A finished train run's RankResult, from the artifact `run` logged (a study's best trial, registered later)."""
    return RankResult(**runs.load_dict(run_id, RESULT_ARTIFACT))


def clean_split_rows(spark, layout: Layout, spec: FeatureSpec, split: str, limit: int = 200_000):
    """Clean rows of one split (model inputs + label) as pandas: input example, plots, threshold choice."""
    from pyspark.sql import functions as F

    from pipeline.data.split import SPLIT

    clean = spark.read.parquet(layout.prepared.clean_dir)
    rows = clean.where(F.col(SPLIT) == split).select(*spec.input_columns, spec.label.column)
    return rows.limit(limit).toPandas()


def register_and_evaluate(
    spark, config: PipelineConfig, layout: Layout, plan: TrainPlan, result: RankResult, force: bool, promoter=None
) -> tuple[RegisteredModel, Promotion]:
    """Register the best weights as a pyfunc in the active run, plot its test behaviour, decide on promotion."""
    spec = plan.spec
    model_config = dict(plan.model)
    if spec.label.task == "binary":
        threshold = config.train.decision_threshold
        if threshold == "max_f1":
            validation = clean_split_rows(spark, layout, spec, "val")
            threshold = choose_threshold(spec, plan.model, result.best_model_path, validation)
        model_config["decision_threshold"] = float(threshold)
        runs.log_metrics({"decision_threshold": float(threshold)})
    test = clean_split_rows(spark, layout, spec, "test")
    inputs = test[spec.input_columns]
    profile = layout.prepared.profile_file  # absent when prepared before monitoring: scoring then says so
    model = registry.log_and_register(
        spec,
        model_config,
        result.best_model_path,
        config.tracking.model_name,
        inputs.head(5),
        plan.model_code,
        profile if files.exists(profile) else None,
    )
    predictions = registry.load_pyfunc(model.uri).predict(inputs)  # the registered artifact, end to end
    runs.log_dict(prediction_drift.reference_from(spec.label.task, predictions), prediction_drift.ARTIFACT)
    truth, predicted = _test_outcomes(spec, test, predictions, model_config)
    figures = {"learning_curves.png": plots.learning_curves(result.history, plan.monitor)}
    figures |= _test_figures(spec, truth, predicted)
    for name, figure in figures.items():
        runs.log_figure(figure, f"plots/{name}")
    metric = config.tracking.promote_metric or "test_" + plan.monitor.removeprefix("val_")
    baseline = constant_baseline(spark, layout, spec.label, metric)
    if baseline is not None:
        runs.log_metrics({f"baseline_{metric}": baseline})
    interval = _small_test_interval(metric, truth, predicted)
    if promoter is None or force:
        decision = registry.promote(model, metric, higher_is_better(metric), force, baseline, interval)
    else:
        decision = promoter(model, metric, baseline, test, predictions)
    _record_decision(spark, config, layout, plan, result, model, decision)
    return model, decision


def _record_decision(spark, config: PipelineConfig, layout: Layout, plan: TrainPlan, result, model, decision) -> None:
    """The promotion's record: promotion.json in the run, the version's description and tags, the run's tags."""
    runs.log_dict(asdict(decision), "registry/promotion.json")
    registry.describe_version(
        model,
        _version_description(config, plan, result, decision),
        {
            **{f"metric.{k}": f"{v:.6f}" for k, v in result.test_metrics.items()},
            **{f"data.{k}": v for k, v in datasets.digests(datasets.prepared(spark, layout)).items()},
            "git.commit": runs.git_commit(),
            "model.factory": plan.model["factory"],
            "promotion.promoted": str(decision.promoted),
            "promotion.reason": decision.reason[:500],
        },
    )
    runs.set_tags(
        {
            "registry.model": model.name,
            "registry.version": model.version,
            "registry.promoted": str(decision.promoted),
            "registry.beats_baseline": str(decision.beats_baseline),
        }
    )


def _test_outcomes(spec: FeatureSpec, test, predictions, model_config: dict) -> tuple[dict, dict]:
    """Truth and predictions of the test split as numpy, keyed by what metrics and plots compare."""
    label = spec.label
    if label.task == "binary":
        probability = predictions["probability"].to_numpy()
        y_true = label.binary_targets(test[label.column])
        decided = (probability >= model_config.get("decision_threshold", 0.5)).astype("float64")
        return {"y": y_true}, {"probability": probability, "decided": decided}
    if label.task == "regression":
        return {"y": test[label.column].to_numpy(dtype="float64")}, {"value": predictions["prediction"].to_numpy()}
    actual = test[label.column].astype("string").to_numpy()
    return {"class": actual}, {"class": predictions["prediction"].to_numpy()}


def _test_figures(spec: FeatureSpec, truth: dict, predicted: dict) -> dict:
    if spec.label.task == "binary":
        return plots.classification_figures(truth["y"], predicted["probability"])
    if spec.label.task == "regression":
        return plots.regression_figures(truth["y"], predicted["value"])
    return plots.multiclass_figures(truth["class"], predicted["class"], list(spec.label.classes))


def _small_test_interval(metric: str, truth: dict, predicted: dict) -> Interval | None:
    """The bootstrap interval of the promotion metric on a small test split, logged beside it (else None)."""
    name = metric.removeprefix("test_")
    pairs = {
        "auc": ("y", "probability"),
        "accuracy": ("y", "decided") if "decided" in predicted else ("class", "class"),
        "rmse": ("y", "value"),
        "mae": ("y", "value"),
    }
    if name not in pairs:
        return None
    interval = metric_interval(metric, truth[pairs[name][0]], predicted[pairs[name][1]])
    if interval is not None:
        runs.log_metrics({f"{metric}_ci_low": interval.low, f"{metric}_ci_high": interval.high})
        log.info(
            "%s: 95%% bootstrap interval %.4f to %.4f on %d test rows",
            metric,
            interval.low,
            interval.high,
            interval.rows,
        )
    return interval


def _version_description(config: PipelineConfig, plan: TrainPlan, result: RankResult, decision: Promotion) -> str:
    """The registered version's description: what it is, how good, why it was (not) promoted."""
    tests = ", ".join(f"{k} {v:.4f}" for k, v in result.test_metrics.items())
    return (
        f"{plan.model['type']} model ({plan.model['factory']}) predicting {plan.spec.label.column} "
        f"({plan.task}), trained with {config.train.backend} on {result.world_size} workers; best epoch "
        f"{result.best_epoch + 1} by {plan.monitor}. Test: {tests}. Promotion: {decision.reason}."
    )

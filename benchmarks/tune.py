"""Tuning on the flights demo: the 12-trial study of conf/flights_tune.yaml, pruned vs the same trials unpruned.

Needs the demo's prepared data (`make demo`). Runs `python -m pipeline tune` twice, each in its own process and
with its own MLflow store and Optuna storage under a temporary folder:
1. the study as configured (median pruner);
2. the same trial values, queued in a second study with `tune.pruner=none`.
Epochs run and wall time come from each study's `tune` run. HistGradientBoosting on the same feature columns
(train split -> test split) is the tabular reference. Writes benchmarks/results/tune.json.

    .venv/bin/python benchmarks/tune.py [--work-dir work] [--store DIR] [--smoke]
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from harness import ROOT, bench_parser, run_pipeline, write_result

CONFS = ["conf/flights.yaml", "conf/local.yaml", "conf/flights_tune.yaml"]
# --smoke: the fewest trials that still let the second one be pruned, 2 steps per epoch
SMOKE_SETTINGS = ["tune.trials=2", "tune.pruner_startup_trials=1", "train.epochs=2", "train.max_steps_per_epoch=2"]


def run_study(store: Path, common: list[str], study: str, *overrides: str, in_process: bool = False) -> dict:
    """One `tune` command (its own process unless `in_process`); returns its tune run's metrics and the trials."""
    import mlflow

    command = ["tune"]
    for conf in CONFS:
        command += ["--conf", conf]
    settings = [
        f"tracking.uri=sqlite:///{store}/mlflow.db",
        f"tracking.artifact_root={store}/artifacts",
        f"tracking.model_name=bench-{study}",
        f"tune.storage=sqlite:///{store}/optuna.db",
        f"tune.study_name={study}",
        *common,
        *overrides,
    ]
    for item in settings:
        command += ["--set", item]
    run_pipeline(command, {"PYTHONUNBUFFERED": "1"}, in_process=in_process)  # a finished study: a no-op
    mlflow.set_tracking_uri(f"sqlite:///{store}/mlflow.db")
    runs = mlflow.search_runs(
        experiment_names=["flights-delay"],
        filter_string=f"tags.`tune.study` = '{study}' and tags.`pipeline.stage` = 'tune'",
    )
    run_id = runs["run_id"].iloc[0]
    metrics = mlflow.get_run(run_id).data.metrics
    trials = mlflow.artifacts.load_dict(f"runs:/{run_id}/tune/trials.json")["trials"]
    return {"metrics": metrics, "trials": trials}


def default_training(store: Path, common: list[str], in_process: bool = False) -> dict:
    """The untuned default (conf/flights.yaml as `make demo` trains it), in the same run: its test AUC."""
    import mlflow

    def finished():
        mlflow.set_tracking_uri(f"sqlite:///{store}/mlflow.db")
        where = "tags.`pipeline.stage` = 'train' and tags.`registry.model` = 'bench-default'"
        return mlflow.search_runs(experiment_names=["flights-delay"], filter_string=where)

    if (store / "mlflow.db").exists() and len(finished()):  # --store of an earlier run: reuse it
        return {"test_auc": float(finished()["metrics.test_auc"].iloc[0])}
    command = ["train", "--conf", CONFS[0], "--conf", CONFS[1]]
    for item in (f"tracking.uri=sqlite:///{store}/mlflow.db", f"tracking.artifact_root={store}/artifacts"):
        command += ["--set", item]
    for item in ("tracking.model_name=bench-default", *common):
        command += ["--set", item]
    run_pipeline(command, in_process=in_process)
    return {"test_auc": float(finished()["metrics.test_auc"].iloc[0])}


def queue_same_trials(store: Path, source: str, target: str) -> None:
    import optuna

    storage = f"sqlite:///{store}/optuna.db"
    if target in optuna.get_all_study_names(storage):
        return  # queued by an earlier run of this script (--store)
    trials = optuna.load_study(study_name=source, storage=storage).trials
    copy = optuna.create_study(study_name=target, storage=storage, direction="maximize")
    for trial in trials:
        copy.enqueue_trial(trial.params)


def gradient_boosting_reference(work_dir: Path) -> dict:
    """HistGradientBoosting on the prepared feature columns: test AUC.

    Vocabulary indices are categories where scikit-learn allows it (at most 255 values); a larger vocabulary
    (tailnum, 1,002 indices) enters as its index number.
    """
    import pandas as pd
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score

    from pipeline.config.schema import PipelineConfig
    from pipeline.layout import Layout
    from pipeline.model.spec import FeatureSpec

    prepared = Layout.from_config(PipelineConfig(work_dir=str(work_dir))).prepared
    spec = FeatureSpec.load(prepared.spec_file)
    columns = spec.numeric_columns + spec.categorical_columns
    train = pd.read_parquet(prepared.features("train"), columns=[*columns, "label"])
    test = pd.read_parquet(prepared.features("test"), columns=[*columns, "label"])
    cardinality = dict(zip(spec.categorical_columns, spec.cardinalities, strict=True))
    categorical = [cardinality.get(c, 256) <= 255 for c in columns]
    model = HistGradientBoostingClassifier(categorical_features=categorical, random_state=0)
    model.fit(train[columns], train["label"])
    return {"test_auc": float(roc_auc_score(test["label"], model.predict_proba(test[columns])[:, 1]))}


def main(argv: list[str] | None = None) -> None:
    parser = bench_parser(__doc__.splitlines()[0])
    parser.add_argument("--store", help="reuse this folder's stores (finished studies are not rerun)")
    parser.add_argument("--work-dir", default=str(ROOT / "work"), help="work_dir of the prepared demo (make demo)")
    args = parser.parse_args(argv)
    work_dir = Path(args.work_dir).resolve()
    if not (work_dir / "prepared" / "feature_spec.json").exists():
        raise SystemExit(f"no prepared demo data in {work_dir}/prepared: run `make demo` first")
    store = Path(args.store) if args.store else Path(tempfile.mkdtemp(prefix="tune-bench-"))
    common = [f"work_dir={work_dir}", *(SMOKE_SETTINGS if args.smoke else [])]
    default = default_training(store, common, in_process=args.smoke)
    pruned = run_study(store, common, "pruned", in_process=args.smoke)
    queue_same_trials(store, "pruned", "unpruned")
    unpruned = run_study(store, common, "unpruned", "tune.pruner=none", in_process=args.smoke)
    reference = gradient_boosting_reference(work_dir)
    result = {
        "default_mlp": default,
        "hist_gradient_boosting": reference,
        "pruned": pruned,
        "unpruned_same_trials": unpruned,
        "epochs_pruned_vs_unpruned": pruned["metrics"]["epochs_run"] / unpruned["metrics"]["epochs_run"],
        "seconds_pruned_vs_unpruned": pruned["metrics"]["tune_seconds"] / unpruned["metrics"]["tune_seconds"],
    }
    write_result(args, "tune", result)
    print(
        json.dumps(
            {
                "default_test_auc": default["test_auc"],
                "best_test_auc_pruned": pruned["metrics"].get("test_auc"),
                "best_test_auc_unpruned": unpruned["metrics"].get("test_auc"),
                "hgb_test_auc": reference["test_auc"],
                "epochs_pruned_vs_unpruned": result["epochs_pruned_vs_unpruned"],
                "seconds_pruned_vs_unpruned": result["seconds_pruned_vs_unpruned"],
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()

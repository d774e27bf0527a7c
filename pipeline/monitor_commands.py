"""The CLI's scheduled-monitoring commands: score ranges (backfills), `evaluate`, `retrain` and `report`, each
with the exit codes a scheduler branches on (docs/operating.md, Monitoring). Driver side; the stages do the work."""

from __future__ import annotations

import argparse
import sys

from pipeline import setup_commands
from pipeline.errors import BACKFILL_EXIT_CODE, DRIFT_EXIT_CODE, ScoringError
from pipeline.stage_session import with_spark


def backfill(args: argparse.Namespace, config) -> int:
    """`score --from D1 --to D2`: the per-date table on stdout; exit 0, DRIFT_EXIT_CODE when every failed date
    failed for drift, BACKFILL_EXIT_CODE when any other failed (the rest are published either way)."""
    from pipeline.stages import backfill as backfill_stage

    result = with_spark(
        config,
        lambda spark, layout: backfill_stage.run(
            spark, config, layout, args.first, args.last, args.model_version, args.force
        ),
    )
    sys.stdout.write(result.table() + "\n")
    if not result.failed:
        return 0
    return DRIFT_EXIT_CODE if all(d.note.startswith("drifted") for d in result.failed) else BACKFILL_EXIT_CODE


def cmd_evaluate(args: argparse.Namespace) -> int:
    from pipeline.stages import evaluate

    config = setup_commands.load_args(args)
    if not is_range(args):
        with_spark(config, lambda spark, layout: evaluate.run(spark, config, layout, args.date, args.batch_id))
        return 0
    dates = with_spark(config, lambda spark, layout: evaluate.run_range(spark, config, layout, args.first, args.last))
    sys.stdout.write("".join(f"{d.line()}\n" for d in dates))
    return BACKFILL_EXIT_CODE if any(d.outcome is None for d in dates) else 0


def cmd_retrain(args: argparse.Namespace) -> int:
    """The one-line summary on stdout; exit 0 whether the challenger won, lost or was not needed."""
    from pipeline.stages import retrain

    config = setup_commands.load_args(args)
    result = with_spark(config, lambda spark, layout: retrain.run(spark, config, layout, args.date, args.now))
    sys.stdout.write(result.summary() + "\n")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    """The table by period on stdout; the chart and table files are named in the log."""
    from pipeline.stages import monitor_report

    config = setup_commands.load_args(args)
    report = with_spark(
        config, lambda spark, layout: monitor_report.run(spark, config, layout, args.first, args.last, args.by)
    )
    sys.stdout.write(report.text() + "\n")
    return 0


def is_range(args: argparse.Namespace) -> bool:
    """--from and --to (and neither --date nor --batch-id) select a range of dates; neither, one partition."""
    if args.first is None and args.last is None:
        return False
    if args.first is None or args.last is None or args.date is not None or args.batch_id is not None:
        raise ScoringError("a range takes both --from and --to, and neither --date nor --batch-id")
    return True


def add_range_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--from", dest="first", metavar="D1", default=None, help="or every date from D1 ...")
    parser.add_argument("--to", dest="last", metavar="D2", default=None, help="... to D2 (included), in one job")


def add_commands(sub, add_config_args) -> None:
    """`evaluate`, `retrain` and `report` (score's range arguments are added with score)."""
    p = sub.add_parser("evaluate", help="realised metrics of a scored date once its outcomes arrived")
    add_config_args(p)
    p.add_argument("--date", default=None, help="YYYY-MM-DD: the scored date whose predictions are measured")
    p.add_argument("--batch-id", default=None, help="or the scored batch=ID partition")
    add_range_args(p)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("retrain", help="train a challenger on a rolling window; promote it if it beats @champion")
    add_config_args(p)
    p.add_argument("--date", required=True, help="YYYY-MM-DD: the last labelled date (ends the compare window)")
    p.add_argument("--now", action="store_true", help="retrain whatever retrain.when says")
    p.set_defaults(func=cmd_retrain)

    p = sub.add_parser("report", help="drift and realised metrics by week or month over scored, evaluated dates")
    add_config_args(p)
    p.add_argument("--from", dest="first", metavar="D1", required=True, help="first date")
    p.add_argument("--to", dest="last", metavar="D2", required=True, help="last date (included)")
    p.add_argument("--by", choices=["week", "month"], default="week", help="period (default: week)")
    p.set_defaults(func=cmd_report)

"""The commands that help write a config (driver side, no stage runs): config, check, infer-schema, demo-data."""

from __future__ import annotations

import argparse
import logging
import sys

log = logging.getLogger("pipeline")


def load_args(args: argparse.Namespace):
    """The merged config of --conf overlays and --set overrides."""
    from pipeline.config.load import load_config

    return load_config(args.conf, args.overrides)


def cmd_config(args: argparse.Namespace) -> int:
    from pipeline.config.load import dump_yaml

    if args.reference:
        from pipeline.config.reference import reference_markdown

        sys.stdout.write(reference_markdown())
        return 0
    config = load_args(args)
    if args.show:
        sys.stdout.write(dump_yaml(config))
    else:
        log.info("config is valid (settings only: `python -m pipeline check` also checks files and columns)")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from pipeline.config.schema import SparkConfig
    from pipeline.data.column_check import check_columns, table_columns
    from pipeline.data.session import build_spark
    from pipeline.data.sources import check_source_files
    from pipeline.storage.folders import Storage

    config = load_args(args)
    # A local session whatever spark.master says: the check reads headers on the driver and runs no job.
    spark = build_spark(SparkConfig(master="local[1]", app_name="sparktrain-check"))
    try:
        files = {source.name: check_source_files(Storage(), source) for source in config.data.sources}
        columns = table_columns(spark, config.data)
        check_columns(columns, config)
    finally:
        spark.stop()
    found = ", ".join(f"{name}: {n} file(s)" for name, n in files.items())
    log.info("config, files and columns are valid (%s; the table has %d columns)", found, len(columns))
    return 0


def cmd_infer_schema(args: argparse.Namespace) -> int:
    from pipeline.config.schema import SparkConfig
    from pipeline.data.schema_inference import infer_source, source_yaml
    from pipeline.data.session import build_spark
    from pipeline.errors import ConfigError

    options = {}
    for item in args.option:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--option {item!r} is not key=value. Fix: write it as e.g. --option nullValue=NA")
        options[key] = value
    spark = build_spark(SparkConfig(master="local[1]", app_name="sparktrain-infer-schema"))
    try:
        source = infer_source(spark, args.path, args.format, args.name, options, args.sample_rows)
        if args.features:
            from pipeline.data.feature_draft import draft_config
            from pipeline.data.schema_inference import read_sample

            sample = read_sample(spark, source, args.sample_rows)
            sys.stdout.write(draft_config(source, sample, args.features, args.task))
            return 0
    finally:
        spark.stop()
    # A YAML comment, so the whole output can be pasted; numeric-looking ids are the usual thing to fix.
    sys.stdout.write(
        "# inferred by Spark: review the types (ids and codes that look numeric), then paste under data.sources\n"
        + source_yaml(source)
    )
    return 0


def cmd_demo_data(args: argparse.Namespace) -> int:
    from pipeline.data.demo import write_demo_data, write_digits_images, write_reviews

    if args.dataset == "digits":
        write_digits_images(args.out or "data/raw/digits")
    elif args.dataset == "reviews":
        write_reviews(args.out or "data/raw/reviews")
    else:
        write_demo_data(args.out or "data/raw")
    return 0

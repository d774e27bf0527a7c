"""Backfill cost: one `score --from D1 --to D2` job over N dates ÷ one single-date score run, same session, one run.

The fixed costs of a score job (model load, reading and joining the sources, the JVM's warm-up) are paid once
by a backfill instead of once per date, so the goal is a ratio well under N. Uses the prepared flights demo
(`--work-dir`, from `make demo` or `python -m pipeline prepare`) for its feature spec and reference profile, and
the raw demo data (RAW_DIR, default data/raw) as the scoring input; registers an MLP with that spec as @champion
in a throwaway MLflow store (weights do not change speed). Monitoring stays on, as in production.

    python benchmarks/backfill.py [--work-dir work] [--from 2013-10-01] [--to 2013-12-31] [--smoke]
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

from harness import ROOT, bench_parser, write_result


def register_champion(spec, prepared, store: Path, name: str, experiment_id: str):
    """An untrained MLP with the prepared spec and profile, registered and made @champion."""
    import mlflow
    import pandas as pd
    import torch
    from mlflow.tracking import MlflowClient

    from pipeline.model.factory import build_network
    from pipeline.model.inputs import model_inputs
    from pipeline.tracking import promotion_race, registry

    params = {"hidden": [64, 64], "activation": "relu", "dropout": 0.1, "norm": "layer", "embedding_dim": None}
    model_config = {"type": "mlp", "factory": "pipeline.model.networks:mlp", "params": params}
    torch.save(build_network(model_config, model_inputs(spec)).state_dict(), store / "weights.pt")
    example = pd.read_parquet(prepared.clean_dir, columns=spec.input_columns).head(5)
    with mlflow.start_run(experiment_id=experiment_id):
        model = registry.log_and_register(
            spec, model_config, str(store / "weights.pt"), name, example, profile_path=prepared.profile_file
        )
    promotion_race.set_alias(MlflowClient(), name, "champion", model.version)
    return model


def main(argv: list[str] | None = None) -> None:
    parser = bench_parser(__doc__.splitlines()[0])
    parser.add_argument("--work-dir", default=str(ROOT / "work"), help="work_dir of the prepared flights demo")
    parser.add_argument("--from", dest="first", default="2013-10-01")
    parser.add_argument("--to", dest="last", default="2013-12-31")
    args = parser.parse_args(argv)
    if args.smoke:
        args.first, args.last = "2013-12-30", "2013-12-31"
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)

    from pipeline.config.load import load_config
    from pipeline.data.session import build_spark
    from pipeline.layout import Layout
    from pipeline.model.spec import FeatureSpec
    from pipeline.stages import backfill, score
    from pipeline.tracking import runs

    prepared = Layout.from_config(load_config([], [f"work_dir={args.work_dir}"])).prepared
    if not Path(prepared.profile_file).exists():
        raise SystemExit(f"no prepared demo with a reference profile in {prepared.root}: run `make demo` first")
    store = Path(tempfile.mkdtemp(prefix="backfill-bench-"))
    settings = [f"work_dir={store / 'work'}", f"tracking.uri=sqlite:///{store}/mlflow.db"]
    settings += [f"tracking.artifact_root={store}/artifacts", "tracking.model_name=bench-backfill"]
    config = load_config([ROOT / "conf/flights.yaml", ROOT / "conf/local.yaml"], settings)
    runs.configure(config.tracking, config.spark.master)
    spec = FeatureSpec.load(prepared.spec_file)
    register_champion(spec, prepared, store, "bench-backfill", runs.ensure_experiment(config.tracking))
    spark = build_spark(config.spark)
    layout = Layout.from_config(config)

    if not args.smoke:  # warm-up: JVM, Python workers, the model's cached artifacts
        score.run(spark, config, layout, args.last)
    started = time.perf_counter()
    one = score.run(spark, config, layout, args.first)
    one_day = time.perf_counter() - started
    started = time.perf_counter()
    result = backfill.run(spark, config, layout, args.first, args.last, force=True)
    many = time.perf_counter() - started
    spark.stop()

    dates = len(result.dates)
    measured = {
        "dates": dates,
        "range": f"{args.first}..{args.last}",
        "rows_scored": sum(d.rows for d in result.dates),
        "one_date_rows": one.rows_scored,
        "one_date_seconds": round(one_day, 2),
        "backfill_seconds": round(many, 2),
        "backfill_vs_one_date": round(many / one_day, 2),
        "failed_dates": [d.date for d in result.failed],
        "command": "python benchmarks/backfill.py" + (" --smoke" if args.smoke else ""),
    }
    write_result(args, "backfill", measured)
    print(json.dumps(measured, indent=2))


if __name__ == "__main__":
    main()

"""Scoring throughput: spark_udf on local[2] vs in-process pyfunc predict (1 torch thread), same rows, one run.

Uses the prepared demo data (work/prepared, from `make demo`) and the feature spec it fitted; registers an
MLP pyfunc with those features in a throwaway MLflow store (weights do not change speed). Rows: the clean
flights rows repeated to --rows. The UDF result is forced with Spark's `noop` sink, so writing is not timed.

    python benchmarks/score.py [--rows 1000000] [--batches 10000,100000,200000] [--work-dir work] [--smoke]
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

from harness import ROOT, bench_parser, write_result


def main(argv: list[str] | None = None) -> None:
    parser = bench_parser(__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--batches", default="10000,100000,200000")
    parser.add_argument("--work-dir", default=str(ROOT / "work"), help="work_dir of a prepared run (make demo)")
    args = parser.parse_args(argv)
    if args.smoke:
        args.rows, args.batches = 2_000, "500,1000"
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)

    import mlflow
    import torch
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    from pipeline.config.schema import PipelineConfig, SparkConfig
    from pipeline.data.session import build_spark
    from pipeline.data.split import SPLIT
    from pipeline.layout import Layout
    from pipeline.model.factory import build_network
    from pipeline.model.inputs import model_inputs
    from pipeline.model.spec import FeatureSpec
    from pipeline.tracking import registry

    prepared = Layout.from_config(PipelineConfig(work_dir=args.work_dir)).prepared
    if not Path(prepared.spec_file).exists():
        raise SystemExit(f"no prepared data in {prepared.root}: run `make demo` (or python -m pipeline prepare) first")
    spec = FeatureSpec.load(prepared.spec_file)
    params = {"hidden": [256, 256], "activation": "relu", "dropout": 0.1, "norm": "layer", "embedding_dim": None}
    model_cfg = {"type": "mlp", "factory": "pipeline.model.networks:mlp", "params": params}
    store = Path(tempfile.mkdtemp(prefix="score-bench-"))
    mlflow.set_tracking_uri(f"sqlite:///{store}/mlflow.db")
    experiment = mlflow.create_experiment("bench", artifact_location=(store / "art").as_uri())
    net = build_network(model_cfg, model_inputs(spec))
    torch.save(net.state_dict(), store / "weights.pt")

    # toPandas of the 1M-row reference table goes through the driver heap (1 GiB by default).
    spark = build_spark(SparkConfig(master="local[2]", shuffle_partitions=2, extra={"spark.driver.memory": "4g"}))
    clean = spark.read.parquet(prepared.clean_dir).where(F.col(SPLIT) != "holdout").select(*spec.input_columns)
    base = clean.count()
    copies = max(1, -(-args.rows // base))
    rows = clean.crossJoin(spark.range(copies).withColumnRenamed("id", "_copy")).limit(args.rows).drop("_copy")
    rows = rows.repartition(2).cache()
    n = rows.count()
    pandas_rows = rows.toPandas()

    with mlflow.start_run(experiment_id=experiment):
        model = registry.log_and_register(
            spec, model_cfg, str(store / "weights.pt"), "bench-model", pandas_rows.head(5)
        )
    pyfunc = registry.load_pyfunc(model.uri)  # sets torch to 1 thread, like each spark_udf worker
    pyfunc.predict(pandas_rows.head(1000))
    started = time.perf_counter()
    pyfunc.predict(pandas_rows)
    in_process = n / (time.perf_counter() - started)
    print(f"in-process pyfunc.predict, 1 thread: {in_process:,.0f} rows/s ({n:,} rows)", flush=True)

    result_type = T.StructType(
        [T.StructField("probability", T.DoubleType()), T.StructField("prediction", T.LongType())]
    )
    udf_rates = {}
    for batch in [int(b) for b in args.batches.split(",")]:
        spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", str(batch))
        udf = mlflow.pyfunc.spark_udf(spark, model.uri, result_type=result_type, env_manager="local")
        scored = rows.select(udf(F.struct(*[F.col(c) for c in spec.input_columns])).alias("p"))
        scored.limit(10).write.format("noop").mode("overwrite").save()  # warm: workers load the model
        started = time.perf_counter()
        scored.write.format("noop").mode("overwrite").save()
        udf_rates[batch] = n / (time.perf_counter() - started)
        print(
            f"spark_udf local[2], arrow batch {batch:>7,}: {udf_rates[batch]:,.0f} rows/s "
            f"(ratio {udf_rates[batch] / in_process:.2f})",
            flush=True,
        )
    best = max(udf_rates, key=udf_rates.get)
    monitoring = monitoring_overhead(spark, model.uri, spec, rows, best, result_type, repeats=1 if args.smoke else 3)
    spark.stop()
    summary = {
        "rows": n,
        "in_process_rows_per_s": in_process,
        "spark_udf_rows_per_s_by_arrow_batch": udf_rates,
        "ratio_by_arrow_batch": {b: round(r / in_process, 3) for b, r in udf_rates.items()},
        "best_arrow_batch": best,
        "ratio": round(udf_rates[best] / in_process, 3),
        "target": 1.5,
        "monitoring": monitoring,
        "cpu_count": os.cpu_count(),
    }
    write_result(args, "score", summary)
    print(json.dumps({"ratio": summary["ratio"], "best_arrow_batch": best, "monitoring": monitoring}))


def monitoring_overhead(spark, model_uri: str, spec, rows, batch: int, result_type, repeats: int) -> dict:
    """A score run's drift step (a profile of the cached batch, sampled to monitor.sample_rows, as the score stage
    runs it: pipeline/data/input_profile.py) against
    its scoring pass over the same cached rows, interleaved; overhead = (score + profile) / score. Goal <= 1.15."""
    import mlflow.pyfunc
    from pyspark.sql import functions as F

    from pipeline.config.monitoring import MonitorConfig
    from pipeline.data.input_profile import profile_rows

    spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", str(batch))
    udf = mlflow.pyfunc.spark_udf(spark, model_uri, result_type=result_type, env_manager="local")
    scored = rows.select(udf(F.struct(*[F.col(c) for c in spec.input_columns])).alias("p"))
    profile_rows(rows, spec, MonitorConfig().sample_rows)  # warm: code generation of the profile's plan
    seconds: dict[str, list[float]] = {"score": [], "profile": []}
    for _ in range(repeats):
        started = time.perf_counter()
        scored.write.format("noop").mode("overwrite").save()
        seconds["score"].append(time.perf_counter() - started)
        started = time.perf_counter()
        profile_rows(rows, spec, MonitorConfig().sample_rows)
        seconds["profile"].append(time.perf_counter() - started)
    best = {k: min(v) for k, v in seconds.items()}
    overhead = (best["score"] + best["profile"]) / best["score"]
    print(f"monitoring: score {best['score']:.1f}s + profile {best['profile']:.1f}s -> x{overhead:.3f}", flush=True)
    return {"seconds": seconds, "overhead": round(overhead, 3), "goal": 1.15}


if __name__ == "__main__":
    main()

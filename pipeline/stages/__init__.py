"""Driver orchestration: each stage is `run(spark, config, layout) -> typed result` under one tracked MLflow run.

MLflow (runs, registry, plots) and the launch of training ranks live here; the Spark work is in pipeline.data,
the per-rank training in pipeline.worker.
"""

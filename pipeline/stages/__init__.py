"""The stages, and nothing else: prepare, train, score, tune, and their composition (chain.py: `pipeline run`).

Each stage runs on the driver as `run(spark, config, layout) -> typed result` inside one tracked MLflow run
(pipeline/tracking/tracked.py) and composes the other folders: Spark work from pipeline.data, the MLflow layer from
pipeline.tracking, the training launch from pipeline.launch, evaluation and tuning helpers. Nothing imports a stage
but the CLI and the chain.
"""

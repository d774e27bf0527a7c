"""Watching scheduled scoring: the reference profile a model carries (fitted on train at prepare time) and the
drift of each score batch against it, written to the monitoring table, the score run and the summary.

Runs on the driver; the profiles are one Spark aggregation each, on the executors.
"""

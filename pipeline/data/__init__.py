"""Spark-side work: the session, sources, cleaning, split, feature fitting/transform, storage, prepare and scoring.

Code here runs on the Spark driver and, through DataFrame operations and UDFs, on the executors.
"""

"""Analyse the user's Spark SQL (data.query, cleaning rules) on the driver and report mistakes in one line.

pyspark logs every analysis error that carries a query context (a JSON record with the whole Java stack) before
the exception reaches us; for these expected mistakes the one-line PipelineError says everything, so those two
loggers are silenced while the user's SQL is analysed, and only then. `--debug` still shows the traceback.
"""

from __future__ import annotations

import contextlib
from collections import defaultdict
from collections.abc import Iterator

from pipeline.errors import DataError

_QUERY_CONTEXT_LOGGERS = ("SQLQueryContextLogger", "DataFrameQueryContextLogger")


@contextlib.contextmanager
def quiet_analysis_errors() -> Iterator[None]:
    """Silence pyspark's query-context error logging for the body only."""
    from pyspark.logger import PySparkLogger

    loggers = [PySparkLogger.getLogger(name) for name in _QUERY_CONTEXT_LOGGERS]  # pyspark's own logger class
    before = [logger.disabled for logger in loggers]
    for logger in loggers:
        logger.disabled = True
    try:
        yield
    finally:
        for logger, was in zip(loggers, before, strict=True):
            logger.disabled = was


def first_line(exc: Exception, limit: int = 500) -> str:
    lines = str(exc).strip().splitlines()
    return (lines[0] if lines else type(exc).__name__)[:limit]


def run_query(spark, query: str, views: list[str]):
    """spark.sql(data.query), analysed now; a mistake or duplicate output column names is a DataError."""
    from pyspark.errors import AnalysisException, ParseException

    try:
        with quiet_analysis_errors():
            table = spark.sql(query)
    except (AnalysisException, ParseException) as exc:
        raise DataError(f"data.query failed: {first_line(exc)}. Fix: correct the SQL (views: {views})") from None
    check_unique_columns(table.columns)
    return table


def check_unique_columns(columns: list[str]) -> None:
    """Spark SQL names are case-insensitive: `Attrition` next to `attrition` is one name used twice."""
    groups: dict[str, list[str]] = defaultdict(list)
    for column in columns:
        groups[column.lower()].append(column)
    duplicated = [names for names in groups.values() if len(names) > 1]
    if duplicated:
        raise DataError(
            f"data.query returns duplicate column names {duplicated} (Spark SQL compares names case-"
            "insensitively). Fix: alias one of each pair (e.g. `AS attrition_flag`) or drop it from the SELECT"
        )


def analyse_rule(df, when: str):
    """The rule's condition as a Column, analysed against `df` now (a bad column fails here, not mid-job)."""
    from pyspark.sql import functions as F

    try:
        with quiet_analysis_errors():
            condition = F.expr(when)
            df.select(condition)
    except Exception as exc:  # parse and analysis errors of several pyspark classes; the message is what matters
        raise DataError(
            f"cleaning rule when={when!r} is invalid: {first_line(exc, 300)}. Fix: correct the SQL"
        ) from None
    return condition

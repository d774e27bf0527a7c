"""Prepare's row accounting and quality report: every primary input row ends in clean/ or quarantine/ once.

Runs on the driver: it collects small aggregates (row counts, top reasons) from the executors' cached rows and
assembles quality_report.json; pipeline/data/preparation.py calls it between its phases.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass

from pipeline.data.sources import REASON
from pipeline.errors import DataError
from pipeline.model.spec import FeatureSpec


@dataclass(frozen=True)
class RowCounts:
    """Every primary input row ends in clean/ or quarantine/ exactly once (`reconciled`)."""

    input_rows: int
    clean_rows: int
    quarantined_rows: int
    quarantined_at_read: int
    quarantined_at_clean: int
    sources: dict[str, dict[str, int]]  # per source: read, valid, quarantined
    uses_query: bool
    reconciled: bool


@dataclass(frozen=True)
class QualityReport:
    """Written as quality_report.json next to the features and logged with the prepare run."""

    counts: RowCounts
    split_rows: dict[str, int]
    quarantine_reasons: list[dict]
    null_rate: dict[str, float]
    train_label_mean: float | None
    feature_columns: dict[str, list[str]]
    raw_input_passes: float | None  # bytes read from files / raw input size (local masters only)
    phase_seconds: dict[str, float]
    seconds: float

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)


def input_passes(after: int | None, before: int | None, input_bytes: int) -> float | None:
    """Driver: how many times the run read its raw input (file bytes read / input size), or None when unknown."""
    if after is None or before is None:
        return None  # executors in other JVMs: their file counters are not visible here
    return round((after - before) / max(input_bytes, 1), 2)


def source_counts(loaded) -> dict[str, dict[str, int]]:
    """Per source: rows read, valid and quarantined at read (one small aggregate per cached source)."""
    from pyspark.sql import functions as F

    out = {}
    for item in loaded:
        rows = item.tagged.groupBy(F.col(REASON).isNull().alias("ok")).count().collect()
        by_status = {bool(r["ok"]): r["count"] for r in rows}
        out[item.name] = {
            "read": sum(by_status.values()),
            "valid": by_status.get(True, 0),
            "quarantined": by_status.get(False, 0),
        }
    return out


def table_counts(tagged) -> dict[str, int]:
    """Rows of the cleaned table that are clean / quarantined (one small aggregate over the cached table)."""
    from pyspark.sql import functions as F

    return {
        ("clean" if r["ok"] else "quarantined"): r["count"]
        for r in tagged.groupBy(F.col(REASON).isNull().alias("ok")).count().collect()
    }


def reconcile(primary: str, read_counts: dict, table_counts: dict, has_query: bool) -> RowCounts:
    """Every primary input row must end in clean/ or quarantine/ exactly once."""
    table_rows = table_counts.get("clean", 0) + table_counts.get("quarantined", 0)
    valid_primary = read_counts[primary]["valid"]
    if table_rows != valid_primary:
        raise DataError(
            f"data.query returned {table_rows} rows from {valid_primary} readable rows of primary source "
            f"{primary!r}: a join fanned out or a WHERE dropped rows, so rows could not be accounted for. "
            "Fix: join only tables that are unique on the join key (deduplicate them in a CTE) and move "
            "filters into cleaning.rules so dropped rows are quarantined with a reason"
        )
    if table_rows == 0:
        raise DataError(f"source {primary!r} has no readable rows. Fix: check the input files and schema")
    quarantined = read_counts[primary]["quarantined"] + table_counts.get("quarantined", 0)
    input_rows, clean_rows = read_counts[primary]["read"], table_counts.get("clean", 0)
    counts = RowCounts(
        input_rows=input_rows,
        clean_rows=clean_rows,
        quarantined_rows=quarantined,
        quarantined_at_read=read_counts[primary]["quarantined"],
        quarantined_at_clean=table_counts.get("quarantined", 0),
        sources=read_counts,
        uses_query=has_query,
        reconciled=input_rows == clean_rows + quarantined,
    )
    if not counts.reconciled:  # unreachable by construction; a guard against future edits
        raise DataError(f"row counts do not reconcile: {counts}")
    return counts


def reason_counts(quarantine, limit: int = 50) -> list[dict]:
    """Most frequent quarantine reasons, from the cached rows (no re-read of written files)."""
    rows = (
        quarantine.groupBy("_source", "_stage", REASON).count().orderBy("count", ascending=False).limit(limit).collect()
    )
    return [{"source": r["_source"], "stage": r["_stage"], "reason": r[REASON], "rows": r["count"]} for r in rows]


def quality_report(
    counts: RowCounts,
    spec: FeatureSpec,
    stats: dict,
    reasons: list[dict],
    passes: float | None,
    phases: dict[str, float],
    started: float,
) -> QualityReport:
    """Driver: assemble the report from values already computed; `started` times the whole run up to now."""
    return QualityReport(
        counts=counts,
        split_rows=stats["split_rows"],
        quarantine_reasons=reasons,
        null_rate=stats["null_rate"],
        train_label_mean=stats["train_label_mean"],
        feature_columns={
            "numeric": spec.numeric_columns,
            "categorical": spec.categorical_columns,
            "images": [i.column for i in spec.images],
            "texts": [t.column for t in spec.texts],
            "arrays": [a.column for a in spec.arrays],
        },
        raw_input_passes=passes,
        phase_seconds={k: round(v, 2) for k, v in phases.items()},
        seconds=round(time.perf_counter() - started, 2),
    )

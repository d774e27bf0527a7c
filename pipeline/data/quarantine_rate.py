"""A quarantine rate that is not a success: rows lost to problems nobody declared fail the stage above a limit.

Runs on the driver after prepare or score has tagged its rows (one small aggregate over the cached quarantine).
"Unexpected" rows are those the reader could not take (malformed lines, failed casts, invalid UTF-8, strings over
the limit, undecodable images) and label values outside the classes: damage the user did not ask for. Rows that
the user's own settings quarantine (cleaning rules, label_rules, ranges, required, allowed, dedup_on, an image
source's accept_modes) are counted in the report but not limited: they are a decision. Above
`data.max_quarantine_fraction` the stage fails with one line naming the top reasons; above zero it logs the same
line as a WARNING. Nothing is lost either way: the rows stay in quarantine with their reasons.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from pipeline.data.sources import REASON
from pipeline.errors import DataError

log = logging.getLogger(__name__)

MALFORMED = "malformed line"
LABEL_OUTSIDE = r"(^|; )label '.*' not in \["  # the reason pipeline/data/label_domain.py writes
CSV_HINT = (
    "malformed lines usually mean the CSV reader options do not fit the file: check data.sources[].options "
    "sep, quote, escape and multiLine (quoted fields with line breaks need multiLine: 'true')"
)


@dataclass(frozen=True)
class QuarantineRate:
    input_rows: int
    unexpected_rows: int
    top_reasons: list[tuple[str, int]]  # (reason, rows) among the unexpected, most frequent first

    @property
    def fraction(self) -> float:
        return self.unexpected_rows / max(self.input_rows, 1)

    def summary(self, stage: str) -> str:
        reasons = "; ".join(f"{reason!r}: {rows}" for reason, rows in self.top_reasons)
        line = (
            f"{stage}: {self.unexpected_rows} of {self.input_rows} rows ({self.fraction:.2%}) quarantined for "
            f"problems no cleaning setting declared; top reasons: {reasons}"
        )
        if self.top_reasons and self.top_reasons[0][0].startswith(MALFORMED):
            line += f". {CSV_HINT}"
        return line


def unexpected_quarantine(quarantine, input_rows: int, top: int = 3) -> QuarantineRate:
    """Count the unexpected rows of a quarantine frame (quarantine layout: _stage, _reason) and their top reasons."""
    from pyspark.sql import functions as F

    declared_at_read = F.col(REASON).contains("accept_modes")  # image modes the source's settings refuse
    unexpected = ((F.col("_stage") == "read") & ~declared_at_read) | F.col(REASON).rlike(LABEL_OUTSIDE)
    # A failed cast quotes its value: group "x: cannot cast '12a' to int" and "... '7b' ..." as one reason.
    kind = F.regexp_replace(REASON, r"cannot (cast|read) '.*?' ", "cannot $1 '…' ").alias(REASON)
    rows = quarantine.where(unexpected).groupBy(kind).count().orderBy(F.col("count").desc(), REASON).collect()
    counts = [(r[REASON], r["count"]) for r in rows]
    return QuarantineRate(input_rows, sum(n for _, n in counts), counts[:top])


def check_quarantine_rate(rate: QuarantineRate, limit: float, stage: str, where: str) -> None:
    """Fail above `limit` (naming where the rows are kept), warn when any row was unexpected, else nothing."""
    if rate.unexpected_rows == 0:
        return
    if rate.fraction > limit:
        raise DataError(
            f"{rate.summary(stage)}. That is above data.max_quarantine_fraction={limit}; the rows and their reasons "
            f"are in {where}. Fix: correct the input or the source settings, or raise data.max_quarantine_fraction "
            "if this share is expected"
        )
    log.warning("%s (within data.max_quarantine_fraction=%s)", rate.summary(stage), limit)

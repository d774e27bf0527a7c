"""A score batch's drift against the model's reference profile: the population stability index (PSI) per feature,
the features over the warning and failure levels, and what the run says about it.

PSI = sum over buckets of (batch share - reference share) * ln(batch share / reference share). Chosen over
Jensen-Shannon because tabular model monitoring states its levels in PSI (0.1 moderate, 0.25 significant shift:
`monitor.warn_psi`, `monitor.fail_psi`), so a user's existing alert levels carry over; it is symmetric in the two
distributions like JS but unbounded, so a bucket that empties or appears (a new category, a null surge) shows as
a large number rather than a value squeezed near 1. Shares are floored at EPSILON so an empty bucket counts as
rare, not impossible. Runs on the driver over the two profiles' counts.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

from pipeline.config.monitoring import MonitorConfig
from pipeline.data.input_profile import MISSING, Profile

log = logging.getLogger(__name__)
EPSILON = 1e-4


@dataclass(frozen=True)
class FeatureDrift:
    feature: str
    kind: str
    psi: float
    missing_share: float  # batch share of nulls (numeric: missing or not finite)
    reference_missing_share: float
    unseen_share: float | None  # categorical: batch share outside the vocabulary; None for numeric
    reference_unseen_share: float | None


@dataclass(frozen=True)
class DriftReport:
    rows: int
    reference_rows: int
    features: tuple[FeatureDrift, ...]
    new_columns: tuple[str, ...]  # columns of the batch's clean table that train's did not have
    missing_columns: tuple[str, ...]  # and the other way round (the model's own inputs are checked before)
    warn_psi: float
    fail_psi: float | None  # None: the run never fails on drift
    prediction_psi: float | None = None  # the predictions' own drift (prediction_drift.py); warns, never fails

    @property
    def max_psi(self) -> float:
        return max((f.psi for f in self.features), default=0.0)

    def over(self, level: float) -> list[FeatureDrift]:
        return sorted((f for f in self.features if f.psi >= level), key=lambda f: -f.psi)

    @property
    def drifted_share(self) -> float:
        return len(self.over(self.warn_psi)) / len(self.features) if self.features else 0.0

    @property
    def failed(self) -> bool:
        return self.fail_psi is not None and bool(self.over(self.fail_psi))

    def summary(self) -> str:
        """One line for the log and the CLI summary."""
        top = ", ".join(f"{f.feature} {f.psi:.3f}" for f in self.over(self.warn_psi)[:5]) or "none"
        level = "FAIL" if self.failed else "warn" if self.over(self.warn_psi) else "ok"
        text = (
            f"drift {level}: {len(self.over(self.warn_psi))} of {len(self.features)} features at PSI >= "
            f"{self.warn_psi:g} ({top}); max PSI {self.max_psi:.3f} over {self.rows} rows"
        )
        text += f"; predictions PSI {self.prediction_psi:.3f}" if self.prediction_psi is not None else ""
        text += f"; new columns {list(self.new_columns)}" if self.new_columns else ""
        return text + (f"; columns gone {list(self.missing_columns)}" if self.missing_columns else "")

    def metrics(self) -> dict[str, float]:
        """For the score run: the headline numbers and each feature's PSI."""
        out = {"drift_max_psi": self.max_psi, "drift_share": self.drifted_share}
        out |= {"prediction_psi": self.prediction_psi} if self.prediction_psi is not None else {}
        return out | {f"psi.{f.feature}": f.psi for f in self.features}


def population_stability(batch: dict, reference: dict) -> float:
    """PSI of two {bucket: rows} counts (module docstring)."""
    batch_rows, reference_rows = sum(batch.values()), sum(reference.values())
    psi = 0.0
    for bucket in set(batch) | set(reference):
        p = batch.get(bucket, 0) / batch_rows if batch_rows else 0.0
        q = reference.get(bucket, 0) / reference_rows if reference_rows else 0.0
        psi += (p - q) * math.log(max(p, EPSILON) / max(q, EPSILON))
    return psi


def compare(reference: Profile, batch: Profile, config: MonitorConfig) -> DriftReport:
    """PSI of every feature of the reference profile, in the reference's order; the table's column changes."""
    drifts = []
    for name, ref in reference.features.items():
        counts = batch.features.get(name)
        psi = population_stability(counts.counts if counts else {}, ref.counts)
        missing = MISSING if ref.kind == "numeric" else 0
        unseen = ref.kind == "categorical"
        drifts.append(
            FeatureDrift(
                feature=name,
                kind=ref.kind,
                psi=round(psi, 6),
                missing_share=counts.share(missing) if counts else 0.0,
                reference_missing_share=ref.share(missing),
                unseen_share=(counts.share(1) if counts else 0.0) if unseen else None,
                reference_unseen_share=ref.share(1) if unseen else None,
            )
        )
    new = tuple(c for c in batch.columns if c not in reference.columns)
    gone = tuple(c for c in reference.columns if c not in batch.columns)
    return DriftReport(batch.rows, reference.rows, tuple(drifts), new, gone, config.warn_psi, config.fail_psi)


def log_report(report: DriftReport) -> None:
    """INFO below the warning level, WARNING above it (the failure itself is raised by the score run)."""
    if report.over(report.warn_psi):
        log.warning("%s. Inspect the monitoring table and the score run's drift chart", report.summary())
    else:
        log.info("%s", report.summary())

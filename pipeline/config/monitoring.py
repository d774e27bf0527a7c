"""The `monitor` section: how a score run compares its batch with the model's reference profile (drift levels and
what a failure does). Part of the config schema (pipeline/config/schema.py assembles the sections)."""

from __future__ import annotations

from pydantic import Field, model_validator

from pipeline.config.frozen import Frozen
from pipeline.config.source_entry import SourceConfig


class OutcomesConfig(Frozen):
    """Where the real outcomes of scored rows arrive, later than the rows (`python -m pipeline evaluate`)."""

    source: SourceConfig
    """The outcomes table (csv, json or parquet, with a schema), e.g. tomorrow's export of arrivals; read once per
    evaluate run and matched to the stored predictions by data.key_columns; may contain {date}."""
    label: str | None = None
    """Its column holding the outcome, in the label's own terms; null: features.label.column."""


class MonitorConfig(Frozen):
    enabled: bool = True
    """Profile every score batch and compare it with the reference profile the model carries; written to
    monitoring/drift/ under work_dir and to the score run (docs/operating.md, Monitoring)."""
    sample_rows: int = Field(100_000, ge=1000)
    """Profile at most about this many rows of a batch (and of train, for the reference): a seeded sample above
    it. PSI over a dozen buckets is stable long before that; the profile is a pass of its own over the batch."""
    warn_psi: float = Field(0.1, gt=0)
    """A feature whose population stability index (PSI) reaches this has drifted: a WARNING naming it. 0.1 is the
    usual 'moderate shift' level."""
    fail_psi: float | None = Field(None, gt=0)
    """A feature at or above this fails the score run with exit code 3 after everything is written (0.25 is the
    usual 'significant shift' level). Null: never fail. Off by default: a daily batch of day-level features
    (weather, calendar) differs from a year of training rows every day (flights: PSI 1.5-15 per day)."""
    hold_predictions: bool = False
    """At the failure level, keep this batch's predictions unpublished (the monitoring rows are written either
    way); false: publish them and fail the run, so a scheduler can alert and still use them."""
    outcomes: OutcomesConfig | None = None
    """The outcomes that arrive later, for realised metrics per scored date; null: `evaluate` is unavailable."""

    @model_validator(mode="after")
    def _ordered(self) -> MonitorConfig:
        if self.fail_psi is not None and self.fail_psi < self.warn_psi:
            raise ValueError(
                f"monitor.fail_psi={self.fail_psi} is below monitor.warn_psi={self.warn_psi}. "
                "Fix: set fail_psi at or above warn_psi"
            )
        return self

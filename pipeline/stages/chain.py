"""The whole chain, prepare -> train (+ register/promote) -> score, as child runs of one 'pipeline' run."""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.config.schema import PipelineConfig
from pipeline.data.preparation import PrepareResult
from pipeline.data.score_selection import select_rows
from pipeline.data.scoring import ScoreResult
from pipeline.layout import Layout
from pipeline.stages import prepare, score, train
from pipeline.stages.train import TrainResult
from pipeline.tracking import runs
from pipeline.tracking.tracked import tracked_stage


@dataclass(frozen=True)
class PipelineResult:
    prepared: PrepareResult
    trained: TrainResult
    scored: ScoreResult


def run_pipeline(
    spark,
    config: PipelineConfig,
    layout: Layout,
    score_date: str | None,
    force_promote: bool = False,
    batch_id: str | None = None,
) -> PipelineResult:
    """Each stage's run nests under this one, so the MLflow UI groups one execution.

    The score step's row selection is checked first: a date the data cannot select fails in seconds, not
    after prepare and training.
    """
    select_rows(config, score_date, batch_id)
    with tracked_stage(config, "pipeline"):
        prepared = prepare.run(spark, config, layout)
        trained = train.run(spark, config, layout, force_promote=force_promote)
        scored = score.run(spark, config, layout, score_date, batch_id=batch_id)
        runs.log_metrics({**trained.result.test_metrics, "rows_scored": scored.rows_scored})
        runs.set_tags({"registry.model": trained.model.name, "registry.version": trained.model.version})
    return PipelineResult(prepared, trained, scored)

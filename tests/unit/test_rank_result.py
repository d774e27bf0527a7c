"""RankResult's verdict on the epoch budget: a run whose last allowed epoch was its best may still be improving."""

from __future__ import annotations

from dataclasses import replace

from pipeline.worker.plan import RankResult

DONE = RankResult(
    history=[],
    best_epoch=32,
    best_metric=0.7,
    test_metrics={},
    resumed_from_epoch=None,
    epochs_run=33,
    stopped_early=False,
    best_model_path="best.pt",
    world_size=2,
    steps_per_epoch=60,
    workers=[],
)


def test_best_epoch_on_the_last_allowed_one_is_flagged():
    assert DONE.ended_on_its_best_epoch
    assert not replace(DONE, best_epoch=20).ended_on_its_best_epoch  # it had stopped improving
    assert not replace(DONE, stopped_early=True).ended_on_its_best_epoch
    assert not replace(DONE, stopped_by_callback=True).ended_on_its_best_epoch  # a pruned trial

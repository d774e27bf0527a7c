"""`score --from D1 --to D2`: many dates in one job, one partition and one set of drift rows per date, published
dates skipped unless forced, a date that fails isolated from the rest, and a backfill killed between two dates
finishing only what is missing when run again; then `evaluate --from D1 --to D2` over the same dates."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from pipeline import faults
from pipeline.config.monitoring import OutcomesConfig
from pipeline.config.source_entry import SourceConfig
from pipeline.errors import BACKFILL_EXIT_CODE
from pipeline.layout import Layout
from pipeline.stages import backfill, evaluate
from tests.helpers import flights_cli_args, run_score

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _own_work_dir(config, work: Path):
    """The trained model's config with every output (predictions, quarantine, drift rows) under `work`."""
    return config.model_copy(update={"work_dir": str(work)})


def _cli_score(config, flights_raw, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    settings = flights_cli_args(
        f"work_dir={config.work_dir}",
        f"tracking.uri={config.tracking.uri}",
        f"tracking.artifact_root={config.tracking.artifact_root}",
    )
    environment = {**os.environ, "RAW_DIR": str(flights_raw), **(env or {})}
    command = [sys.executable, "-m", "pipeline", "score", *settings, *args]
    return subprocess.run(command, env=environment, capture_output=True, text=True, timeout=600, check=False)


def _published(output: Path) -> list[str]:
    return sorted(p.name for p in output.iterdir() if not p.name.startswith((".", "_"))) if output.exists() else []


def test_a_killed_backfill_rerun_scores_only_the_missing_dates_as_single_date_runs_do(
    trained_flights, spark, flights_raw, tmp_path
):
    config = _own_work_dir(trained_flights[0], tmp_path / "work")
    layout = Layout.from_config(config)
    predictions = Path(layout.predictions.root)

    killed = _cli_score(
        config, flights_raw, "--from", "2013-12-24", "--to", "2013-12-28", env={faults.ENV: "backfill_after:2"}
    )
    assert killed.returncode == faults.SCORE_EXIT_CODE, killed.stderr[-3000:]
    assert _published(predictions) == ["date=2013-12-24", "date=2013-12-25"]  # whole dates only, no staging seen

    resumed = backfill.run(spark, config, layout, "2013-12-24", "2013-12-28")
    statuses = {d.date: d.status for d in resumed.dates}
    assert statuses == {
        "2013-12-24": "skipped",
        "2013-12-25": "skipped",
        "2013-12-26": "scored",
        "2013-12-27": "scored",
        "2013-12-28": "scored",
    }
    assert all(d.rows > 100 and d.max_psi is not None for d in resumed.dates if d.status == "scored")
    assert _published(predictions) == [f"date=2013-12-{day}" for day in range(24, 29)]
    assert not [p for p in predictions.iterdir() if p.name.startswith(".staging")]  # the killed run's staging went
    assert _published(Path(layout.monitoring_drift.root)) == [f"date=2013-12-{day}" for day in range(24, 29)]

    # A date of the backfill holds what a single-date run of that date writes.
    single = config.model_copy(update={"score": config.score.model_copy(update={"output_dir": str(tmp_path / "one")})})
    one = run_score(spark, single, "2013-12-27")
    by_range = pd.read_parquet(predictions / "date=2013-12-27").drop(columns="scored_at").sort_values("flight_id")
    by_date = pd.read_parquet(one.output_path).drop(columns="scored_at").sort_values("flight_id")
    pd.testing.assert_frame_equal(by_range.reset_index(drop=True), by_date.reset_index(drop=True))

    forced = backfill.run(spark, config, layout, "2013-12-27", "2013-12-28", force=True)
    assert [(d.status, d.rows) for d in forced.dates] == [(d.status, d.rows) for d in resumed.dates[3:]]

    # The outcomes arrive: `evaluate --from/--to` measures each scored date as `evaluate --date` does, and a date
    # that was never scored fails alone.
    clean = spark.read.parquet(Layout.from_config(trained_flights[0]).prepared.clean_dir)
    arrived = clean.where("flight_date between '2013-12-24' and '2013-12-28'").select("flight_id", "late")
    arrived.toPandas().to_csv(tmp_path / "outcomes.csv", index=False)
    source = SourceConfig(
        name="arrivals",
        format="csv",
        path=str(tmp_path / "outcomes.csv"),
        schema={"flight_id": "string", "late": "int"},
    )
    labelled = config.model_copy(
        update={"monitor": config.monitor.model_copy(update={"outcomes": OutcomesConfig(source=source)})}
    )
    evaluated = evaluate.run_range(spark, labelled, layout, "2013-12-23", "2013-12-28")
    assert [e.date for e in evaluated if e.outcome is None] == ["2013-12-23"]
    assert "no predictions in" in evaluated[0].error
    # A few scored flights were quarantined by prepare (no outcome: cancelled), so not all find one.
    assert all(e.outcome.coverage > 0.9 and 0 < e.outcome.metrics["realised_auc"] < 1 for e in evaluated[1:])
    # The range reads the outcomes once (cached), so Spark sums in another order: equal to the last bits or so.
    single = evaluate.run(spark, labelled, layout, "2013-12-26").metrics
    assert evaluated[3].outcome.metrics == pytest.approx(single, rel=1e-12, abs=1e-12)


def test_a_date_without_rows_fails_alone_and_the_exit_code_says_so(trained_flights, flights_raw, tmp_path):
    config = _own_work_dir(trained_flights[0], tmp_path / "work")
    out = _cli_score(config, flights_raw, "--from", "2013-12-31", "--to", "2014-01-01")
    assert out.returncode == BACKFILL_EXIT_CODE, out.stderr[-3000:]
    lines = {line.split()[0]: line for line in out.stdout.splitlines()[1:]}
    assert " scored " in lines["2013-12-31"] and " failed " in lines["2014-01-01"]
    assert "no input rows for 2014-01-01" in lines["2014-01-01"]
    assert _published(Path(Layout.from_config(config).predictions.root)) == ["date=2013-12-31"]

"""What a user sees in `make mlflow-ui`, checked in a real headless browser (Debian's chromium) over a real server.

The set-up installs chromium when it is missing (scripts/install_test_browser.sh); the test is skipped, saying
why, only where that fails. The UI is a JavaScript app: chromium renders it and dumps the resulting DOM.
"""

from __future__ import annotations

import html
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pytest
import requests

from pipeline.tracking import runs
from tests.helpers import ROOT, free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--virtual-time-budget=20000",
]


@pytest.fixture(scope="module")
def chromium() -> str:
    if shutil.which("chromium") is None:
        installed = subprocess.run(
            ["bash", str(ROOT / "scripts" / "install_test_browser.sh")], capture_output=True, text=True, timeout=900
        )
        if installed.returncode != 0 or shutil.which("chromium") is None:
            pytest.skip(f"chromium could not be installed here: {installed.stderr.strip()[-300:]}")
    return shutil.which("chromium")


@pytest.fixture(scope="module")
def ui_server(trained_flights_session):
    """`mlflow ui` over the trained run's store, as `make mlflow-ui` starts it."""
    config, _ = trained_flights_session
    port = free_port()
    store = runs.resolve_uri(config.tracking.uri)
    command = [str(Path(sys.executable).parent / "mlflow"), "ui", "--backend-store-uri", store]
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"}
    server = subprocess.Popen(
        [*command, "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert server.poll() is None, "mlflow ui exited"
            try:
                if requests.get(f"{base}/health", timeout=5).ok:
                    break
            except requests.RequestException:  # not listening yet, or still starting its workers
                pass
            assert time.monotonic() < deadline, "mlflow ui did not answer within 120 s"
            time.sleep(1)
        yield base
    finally:
        server.terminate()
        server.wait(timeout=30)


def rendered(chromium: str, url: str, tmp_path) -> str:
    """The page's visible text after chromium ran its JavaScript (scripts, styles and tags removed)."""
    profile = tmp_path / f"profile-{time.monotonic_ns()}"
    out = subprocess.run(
        [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--dump-dom", url],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    text = re.sub(r"<script.*?</script>|<style.*?</style>", " ", out.stdout, flags=re.DOTALL)
    return " ".join(re.sub(r"<[^>]+>", " ", html.unescape(text)).split())


def test_train_run_page_shows_metrics_plots_datasets_and_the_model(chromium, ui_server, trained_flights, tmp_path):
    config, outcome = trained_flights
    runs.configure(config.tracking, config.spark.master)
    experiment = mlflow.get_experiment_by_name(config.tracking.experiment).experiment_id
    run_page = f"{ui_server}/#/experiments/{experiment}/runs/{outcome.run_id}"

    overview = rendered(chromium, run_page, tmp_path)
    run = mlflow.tracking.MlflowClient().get_run(outcome.run_id)
    assert f"test_auc {run.data.metrics['test_auc']}" in overview  # the metrics table, with the value
    # the datasets the run used: the first with its digest, then a count of the others
    used = run.inputs.dataset_inputs
    assert [d.dataset.name for d in used][-3:] == ["features.train", "features.val", "features.test"]
    assert f"Datasets {used[0].dataset.name} ({used[0].dataset.digest}) source +{len(used) - 1}" in overview
    assert f"Registered models {outcome.model.name} v{outcome.model.version}" in overview

    artifacts = rendered(chromium, f"{run_page}/artifacts/plots/roc_curve.png", tmp_path)
    assert "learning_curves.png" in artifacts and "roc_curve.png" in artifacts

    model_page = rendered(chromium, f"{ui_server}/#/models/{outcome.model.name}", tmp_path)
    assert "champion" in model_page and "candidate" in model_page


def test_the_printed_link_opens_the_experiment_on_its_training_runs(chromium, ui_server, trained_flights, tmp_path):
    config, _ = trained_flights
    runs.configure(config.tracking, config.spark.master)
    experiment = mlflow.get_experiment_by_name(config.tracking.experiment)
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    runs_table = rendered(chromium, runs.runs_table_url(config.tracking, ui_server), tmp_path)
    assert re.search(r"\b\d+ matching runs?\b", runs_table), runs_table[:1500]  # the runs table
    assert "features.train (" in runs_table  # its Datasets column: the lineage of each run
    assert "Token Usage" not in runs_table  # not the GenAI overview a plain experiment link opens on

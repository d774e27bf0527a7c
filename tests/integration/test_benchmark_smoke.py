"""Every benchmark script runs at tiny sizes (`--smoke`), so a change that breaks one fails CI instead of rotting
until the next measurement. No figure of a smoke run is asserted: only that each script completes through the
pipeline's own constructors and writes the result file the report reads (benchmarks/harness.py).

All scripts run in ONE process (benchmarks/smoke.py), one after another, sharing its Python imports and its JVM;
each still has its own test here, which fails with that script's own error."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.helpers import ROOT

pytestmark = [pytest.mark.integration, pytest.mark.slow]

sys.path.insert(0, str(ROOT / "benchmarks"))
from smoke import SCRIPTS, STATUS_FILE  # noqa: E402 - benchmarks/ is no package: its scripts import `harness`


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory, prepared_flights, flights_raw):
    """benchmarks/smoke.py over every script, once; the scripts that score the demo read the suite's prepared
    flights sample. Yields the results folder, the per-script status and the run's output."""
    results = tmp_path_factory.mktemp("bench-smoke")
    config, _ = prepared_flights
    measured = {p: p.stat().st_mtime_ns for p in (ROOT / "benchmarks" / "results").iterdir()}
    command = [sys.executable, "benchmarks/smoke.py", "--results", str(results), "--work-dir", config.work_dir]
    environment = {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1", "PYSPARK_PYTHON": sys.executable}
    environment["RAW_DIR"] = str(flights_raw)
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, env=environment, check=False, timeout=2400)
    status_file = results / STATUS_FILE
    status = json.loads(status_file.read_text()) if status_file.exists() else {}
    after = {p: p.stat().st_mtime_ns for p in (ROOT / "benchmarks" / "results").iterdir()}
    return {"results": results, "status": status, "output": done.stderr[-6000:], "untouched": after == measured}


@pytest.mark.parametrize("script", list(SCRIPTS))
def test_benchmark_runs_in_smoke_mode(script, smoke_run):
    status = smoke_run["status"].get(script)
    assert status is not None, f"benchmarks/smoke.py never reached {script}:\n{smoke_run['output']}"
    assert status["ok"], f"benchmarks/{script}.py --smoke failed:\n{status.get('error')}"
    result = json.loads((smoke_run["results"] / f"{script}.json").read_text())  # each writes its own name's file
    assert result, f"{script}.json is empty"
    if script == "gpu":  # on CPU the rank side must still resume bit for bit (fp16 runs in fp32 there)
        resumes = json.loads((smoke_run["results"] / "gpu.json").read_text())["exact_resume"]
        assert resumes and all(r["bit_identical"] and r["resumed_from_step"] == 2 for r in resumes.values()), resumes
    assert smoke_run["untouched"], "a smoke run wrote into benchmarks/results/, over measured figures"


def test_report_collects_the_smoke_results(smoke_run, monkeypatch):
    import importlib.util

    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))  # as when run as a script: benchmarks/harness.py
    spec = importlib.util.spec_from_file_location("bench_report", ROOT / "benchmarks" / "report.py")
    report = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(report)
    results = smoke_run["results"]
    present = {p.stem for p in results.glob("*.json")} & set(report.RESULTS)
    assert present, f"no smoke result to collect:\n{smoke_run['output']}"
    readme = (ROOT / "benchmarks" / "README.md").read_text()
    report.main(["--smoke", "--results", str(results)])
    summary = json.loads((results / "summary.json").read_text())
    assert set(summary["results"]) == present and summary["table"]
    with pytest.raises(SystemExit, match="would put a smoke run's figures"):
        report.main(["--smoke", "--results", str(results), "--readme"])
    assert (ROOT / "benchmarks" / "README.md").read_text() == readme

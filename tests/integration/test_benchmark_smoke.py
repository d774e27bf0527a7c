"""Every benchmark script runs at tiny sizes (`--smoke`), so a change that breaks one fails CI instead of rotting
until the next measurement. No figure of a smoke run is asserted: only that each script completes through the
pipeline's own constructors and writes the result file the report reads (benchmarks/harness.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.helpers import ROOT

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# script -> (result files it writes, whether it needs the prepared flights sample)
SCRIPTS = {
    "csv_multiline": (["csv_multiline"], False),
    "prepare": (["prepare"], False),
    "train": (["train"], False),
    "loader": (["loader"], False),
    "small_table": (["small_table"], False),
    "score": (["score"], True),
    "backfill": (["backfill"], True),
    "parquet_encoding": (["parquet_encoding"], True),
    "tune": (["tune"], True),
    "deep_data": (["deep_data"], False),
    "gpu": (["gpu"], False),
    "storage": (["storage"], False),
    "scale": (["scale"], False),
    "peers": (["peers"], False),
}


@pytest.fixture(scope="module")
def smoke_results(tmp_path_factory):
    return tmp_path_factory.mktemp("bench-smoke")


def run_benchmark(script: str, results, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    command = [sys.executable, f"benchmarks/{script}.py", "--smoke", "--results", str(results), *args]
    environment = {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1", "PYSPARK_PYTHON": sys.executable, **(env or {})}
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, env=environment, check=False, timeout=900)


@pytest.mark.parametrize("script", list(SCRIPTS))
def test_benchmark_runs_in_smoke_mode(script, smoke_results, request):
    files, needs_flights = SCRIPTS[script]
    args, env = [], {}
    if needs_flights:  # these read a prepared demo: the suite's prepared flights sample
        config, _ = request.getfixturevalue("prepared_flights")
        args, env = ["--work-dir", config.work_dir], {"RAW_DIR": str(request.getfixturevalue("flights_raw"))}
    measured = {p: p.stat().st_mtime_ns for p in (ROOT / "benchmarks" / "results").iterdir()}
    done = run_benchmark(script, smoke_results, *args, env=env)
    assert done.returncode == 0, f"benchmarks/{script}.py --smoke failed:\n{done.stderr[-4000:]}"
    for name in files:
        result = json.loads((smoke_results / f"{name}.json").read_text())
        assert result, f"{name}.json is empty"
    if script == "gpu":  # on CPU the rank side must still resume bit for bit (fp16 runs in fp32 there)
        resumes = json.loads((smoke_results / "gpu.json").read_text())["exact_resume"]
        assert resumes and all(r["bit_identical"] and r["resumed_from_step"] == 2 for r in resumes.values()), resumes
    after = {p: p.stat().st_mtime_ns for p in (ROOT / "benchmarks" / "results").iterdir()}
    assert after == measured, "a smoke run wrote into benchmarks/results/, over measured figures"


def test_report_collects_the_smoke_results(smoke_results, monkeypatch):
    import importlib.util

    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))  # as when run as a script: benchmarks/harness.py
    spec = importlib.util.spec_from_file_location("bench_report", ROOT / "benchmarks" / "report.py")
    report = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(report)
    present = {p.stem for p in smoke_results.glob("*.json")} & set(report.RESULTS)
    if not present:
        pytest.skip("runs after the smoke runs of this module (none ran)")
    done = run_benchmark("report", smoke_results)
    assert done.returncode == 0, done.stderr[-4000:]
    summary = json.loads((smoke_results / "summary.json").read_text())
    assert set(summary["results"]) == present and summary["table"]
    refused = run_benchmark("report", smoke_results, "--readme")
    assert refused.returncode != 0 and "would put a smoke run's figures" in refused.stderr

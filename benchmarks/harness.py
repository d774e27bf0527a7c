"""What every benchmark script shares: its command line, where its results go, and a smoke mode.

`--smoke` runs a script at tiny sizes (seconds to a minute) through the same code paths and constructors as a
real run, and writes its JSON under `--results` (a fresh temporary folder unless given), never over the measured
figures in benchmarks/results/. `make test-all` runs every script that way (tests/benchmarks/), so a change that
breaks a benchmark fails CI; no figure of a smoke run means anything and none is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # a benchmark's log is read, not watched


def bench_parser(doc: str | None) -> argparse.ArgumentParser:
    """The script's parser with --smoke and --results already on it."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, results to a temporary folder")
    parser.add_argument("--results", help="folder for the result JSON (default: benchmarks/results)")
    return parser


def results_dir(args: argparse.Namespace) -> Path:
    """benchmarks/results for a real run; --results, else a temporary folder, for a smoke run."""
    if args.results:
        folder = Path(args.results)
    elif args.smoke:
        folder = Path(tempfile.mkdtemp(prefix="bench-smoke-"))
    else:
        folder = RESULTS
    folder.mkdir(parents=True, exist_ok=True)
    args.results = str(folder)  # one folder for the whole run, however often this is asked
    return folder


def write_result(args: argparse.Namespace, name: str, result: dict) -> Path:
    path = results_dir(args) / f"{name}.json"
    path.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return path


def scratch_dir(args: argparse.Namespace, default: Path) -> Path:
    """Where generated input data lives: data/bench/ for real runs (kept, reused), the results folder's data/ in
    smoke runs (so a smoke run never mixes tiny files into the real benchmark data)."""
    folder = results_dir(args) / "data" if args.smoke else default
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def run_pipeline(argv: list[str], env: dict[str, str] | None = None, *, in_process: bool = False) -> None:
    """`python -m pipeline ARGV` from the checkout's root. A measured run gives the command its own process, as a user
    runs it; a smoke run (`in_process=True`) calls the same `main` here: benchmarks/smoke.py runs every script in one
    process, and a Python start plus a JVM start per command would cost more than the tiny command itself."""
    if not in_process:
        subprocess.run(
            [sys.executable, "-m", "pipeline", *argv], cwd=ROOT, check=True, env={**os.environ, **(env or {})}
        )
        return
    from pipeline.cli import main
    from pipeline.environment import scoped_env

    before = os.getcwd()
    os.chdir(ROOT)
    try:
        with scoped_env(env or {}):
            code = main(list(argv))
    finally:
        os.chdir(before)
    if code != 0:
        raise SystemExit(f"python -m pipeline {' '.join(argv)} exited with {code}")

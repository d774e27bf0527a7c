"""Every benchmark script's smoke run (`--smoke`) in ONE process, one after another: what CI runs so that no
benchmark rots (tests/integration/test_benchmark_smoke.py), without paying a Python start, the imports of torch,
pyspark and MLflow and a JVM start for each script. The Spark scripts build their sessions as they always do;
in one process they share pyspark's JVM gateway (a script's `spark.stop()` ends its SparkContext, not the JVM).

Each script's outcome (ok, seconds, the error's last lines) goes to `smoke_status.json` in --results after every
script, so a caller sees which script failed and why. Environment variables and torch's thread count are restored
after each script: one script's settings (an S3 endpoint, one thread per process) must not leak into the next.

    python benchmarks/smoke.py --results DIR [--work-dir WORK] [--only score,tune]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import os
import sys
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
# script -> whether it reads a prepared flights demo (--work-dir); the order keeps the quick ones first
SCRIPTS = {
    "csv_multiline": False,
    "storage": False,
    "gpu": False,
    "prepare": False,
    "small_table": False,
    "train": False,
    "loader": False,
    "score": True,
    "backfill": True,
    "parquet_encoding": True,
    "tune": True,
    "deep_data": False,
    "scale": False,
    "peers": False,
}
STATUS_FILE = "smoke_status.json"
log = logging.getLogger("benchmarks.smoke")


def load_script(name: str):
    """benchmarks/NAME.py as a module of its own name space (`bench_NAME`: no clash with installed packages)."""
    spec = importlib.util.spec_from_file_location(f"bench_{name}", HERE / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_script(name: str, argv: list[str]) -> dict:
    """One script's main(argv), its environment and torch threads restored afterwards; never raises."""
    environment, threads = dict(os.environ), _torch_threads()
    started = time.monotonic()
    try:
        load_script(name).main(argv)
        outcome = {"ok": True}
    except SystemExit as stop:  # scripts say "run make demo first" and the like this way
        outcome = {"ok": stop.code in (None, 0), "error": f"SystemExit: {stop.code}"}
    except Exception:  # noqa: BLE001 - one script's failure is reported, the others still run
        outcome = {"ok": False, "error": traceback.format_exc()[-6000:]}
    finally:
        os.environ.clear()
        os.environ.update(environment)
        if threads is not None:
            import torch

            torch.set_num_threads(threads)
    return {**outcome, "seconds": round(time.monotonic() - started, 1)}


def _torch_threads() -> int | None:
    try:
        import torch
    except ImportError:  # the accelerator machine's image has torch; a bare one may not
        return None
    return torch.get_num_threads()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", required=True, help="folder for every script's result JSON and the status")
    parser.add_argument("--work-dir", help="work_dir of a prepared flights demo, for the scripts that score it")
    parser.add_argument("--only", help="comma-separated script names (default: all)")
    args = parser.parse_args(argv)
    names = args.only.split(",") if args.only else list(SCRIPTS)
    unknown = sorted(set(names) - set(SCRIPTS))
    if unknown:
        raise SystemExit(f"--only: no benchmark script {unknown}; the scripts are {', '.join(SCRIPTS)}")
    results = Path(args.results)
    results.mkdir(parents=True, exist_ok=True)
    sys.path.insert(0, str(HERE))  # the scripts import `harness` as when run from benchmarks/
    status: dict[str, dict] = {}
    for name in names:
        script_args = ["--smoke", "--results", str(results)]
        if SCRIPTS[name]:
            if not args.work_dir:
                raise SystemExit(f"benchmarks/{name}.py scores a prepared demo: give --work-dir (make demo's work)")
            script_args += ["--work-dir", args.work_dir]
        log.info("smoke run of benchmarks/%s.py", name)
        status[name] = run_script(name, script_args)
        outcome = "ok" if status[name]["ok"] else "FAILED"
        log.info("benchmarks/%s.py: %s in %.1f s", name, outcome, status[name]["seconds"])
        (results / STATUS_FILE).write_text(json.dumps(status, indent=2) + "\n", encoding="utf-8")
    return 0 if all(s["ok"] for s in status.values()) else 1


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    sys.exit(main())

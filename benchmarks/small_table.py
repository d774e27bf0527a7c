"""Where the time of a small table goes: `python -m pipeline run` on a 1,500-row CSV, stage by stage.

A user's first table is often small; then fixed costs, not rows, decide how long the chain takes. This runs the
chain as a user does (a fresh process, the CLI, conf/local.yaml: local[2], 2 Horovod workers, SQLite MLflow
store) on a generated churn table (1,500 rows, 5 columns, a Yes/No label) and splits the wall time with the
timestamps MLflow recorded: the start of each nested run, the end of each, and each epoch's metric. `--wide` uses
the 35-column table of the first-run test instead (22 numbers, 8 codes, a free-text note, an id, a date).

    python benchmarks/small_table.py [--rows 1500] [--repeat 2] [--repo PATH]

`--repo` runs another checkout's pipeline (its own conf/local.yaml) with this script's python: the before/after
figures of benchmarks/README.md come from one machine that way.

Phases: `startup` (process start -> the pipeline run exists: imports, config, Spark session), `prepare`,
`train_launch` (train run start -> first epoch's metric: plan, slot check, Horovod start, epoch 1), `epochs`
(first -> last epoch metric), `train_finish` (registration, test plots, promotion), `score`, `shutdown` (the
score run's end -> process exit). Results: benchmarks/results/small_table.json. Goal: under 45 s on 2 cores.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness import ROOT, bench_parser, run_pipeline, write_result

GOAL_S = 45.0


def churn_table(path: Path, rows: int, wide: bool) -> dict:
    """Write the table (the first-run test's, narrow or 35 columns wide) and return its config."""
    sys.path.insert(0, str(ROOT))
    from tests.helpers import churn_frame, wide_churn_frame

    frame = wide_churn_frame(rows) if wide else churn_frame(rows)
    frame.to_csv(path, index=False)
    kinds = {"int64": "bigint", "float64": "double"}
    schema = {c: kinds.get(str(t), "timestamp" if "datetime" in str(t) else "string") for c, t in frame.dtypes.items()}
    numeric = [c for c, t in schema.items() if t == "double"]
    categorical = [c for c in frame.columns if c == "plan" or c.startswith("code_")]
    features = {
        "numeric": [{"name": c} for c in numeric],
        "categorical": [{"name": c} for c in categorical],
        "label": {"column": "churned", "task": "binary", "positive": "Yes"},
    }
    if wide:
        features["texts"] = [{"name": "note"}]
    source = {"name": "churn", "format": "csv", "path": str(path), "schema": schema}
    return {
        "data": {"sources": [source], "key_columns": ["id"]},
        "features": features,
        "split": {"method": "hash", "key": "id"},
        "tracking": {"model_name": "churn"},
    }


def run_once(folder: Path, rows: int, repo: Path, wide: bool, smoke: bool = False) -> dict:
    """The chain as a new user runs it, in its own process; a smoke run of this checkout calls it in this one."""
    csv, work = folder / "churn.csv", folder / "work"
    config = churn_table(csv, rows, wide)
    conf = folder / "churn.yaml"
    conf.write_text(json.dumps({"work_dir": str(work), **config}))
    chain = ["run", "--conf", str(conf), "--conf", str(repo / "conf/local.yaml")]
    started = time.time()
    if smoke and repo.resolve() == ROOT:
        run_pipeline(chain, in_process=True)
    else:
        done = subprocess.run([sys.executable, "-m", "pipeline", *chain], cwd=repo, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"the chain failed:\n{done.stderr[-3000:]}")
    ended = time.time()
    return {"total_s": round(ended - started, 1), **phases(work, started, ended)}


def phases(work: Path, started: float, ended: float) -> dict:
    """Phase durations from the MLflow store the chain wrote (run start/end times, epoch metric timestamps)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{work}/mlflow.db")
    experiment = client.search_experiments()[0]
    runs = {r.data.tags.get("pipeline.stage"): r for r in client.search_runs([experiment.experiment_id])}
    times = {stage: (r.info.start_time / 1000, r.info.end_time / 1000) for stage, r in runs.items()}
    epochs = sorted(m.timestamp / 1000 for m in client.get_metric_history(runs["train"].info.run_id, "val_auc"))
    return {
        "startup_s": times["pipeline"][0] - started,
        "prepare_s": times["prepare"][1] - times["prepare"][0],
        "train_launch_s": epochs[0] - times["train"][0],
        "epochs_s": epochs[-1] - epochs[0],
        "epochs": len(epochs),
        "train_finish_s": times["train"][1] - epochs[-1],
        "score_s": times["score"][1] - times["score"][0],
        "between_stages_s": (times["train"][0] - times["prepare"][1]) + (times["score"][0] - times["train"][1]),
        "shutdown_s": ended - times["score"][1],
    }


def main(argv: list[str] | None = None) -> None:
    parser = bench_parser(__doc__)
    parser.add_argument("--rows", type=int, default=1_500)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--name", help="result file name (default: small_table, small_table_wide with --wide)")
    parser.add_argument("--repo", default=str(ROOT), help="checkout whose pipeline runs (default: this one)")
    parser.add_argument("--wide", action="store_true", help="35 columns (ids, a date, a text, 22 numbers, 8 codes)")
    args = parser.parse_args(argv)
    if args.smoke:
        args.rows, args.repeat = 400, 1
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    measured = []
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory() as folder:
            measured.append(
                {
                    k: round(v, 1) if isinstance(v, float) else v
                    for k, v in run_once(Path(folder), args.rows, Path(args.repo), args.wide, args.smoke).items()
                }
            )
        print(json.dumps(measured[-1]))
    best = min(measured, key=lambda m: m["total_s"])
    result = {
        "rows": args.rows,
        "wide": args.wide,
        "repo": args.repo,
        "runs": measured,
        "best_total_s": best["total_s"],
        "goal_s": GOAL_S,
    }
    write_result(args, args.name or ("small_table_wide" if args.wide else "small_table"), result)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

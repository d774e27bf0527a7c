"""Cost curves: each stage's seconds per million rows and each process kind's peak memory, as the data grows.

For each size (default 1M, 4M, 16M and 32M rows of benchmarks/prepare.py's flights-like CSV, with its dirt), one
child process runs, through the pipeline's own code, one after the other on local[2]:
  * prepare: pipeline.data.preparation.prepare_data (read, clean, quarantine, split, fit, write Parquet);
  * train: one epoch of the MLP 256x256, batch 4096, on 2 Horovod workers over the prepared features
    (plan from pipeline/launch/planning.py, pipeline.launch.launchers.launch), measured by the ranks' own
    samples/s of that epoch (start-up of the ranks excluded; it is constant);
  * score: mlflow.pyfunc.spark_udf of a registered MLP with the prepared spec over every clean row.
Peak memory per process kind: driver (the child's Python), JVM (driver and executor in local mode), training
rank, and Spark's Python workers during scoring (the pyfunc workers), read from /proc VmHWM by a sampling thread.
Goals (issue): seconds per million rows flat within about 15% from the smallest size to the largest, and rank
and pyfunc-worker memory independent of the size. Results: results/scale.json and results/scale.png.

    python benchmarks/scale.py [--sizes 1,4,16,32] [--smoke]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from harness import ROOT, bench_parser, results_dir, scratch_dir, write_result
from prepare import bench_config, generate

KINDS = ("jvm", "rank", "python_worker")
STAGE_ROWS = {"prepare": "rows", "train_epoch": "train_rows", "score": "clean_rows"}  # what each stage's cost is per


class PeakMemory:
    """Samples the processes under this one twice a second (the JVM, Spark's Python workers, the training ranks:
    all descendants in local mode) and keeps the largest VmHWM per kind; other processes on the machine are not
    counted."""

    def __init__(self) -> None:
        self.peaks: dict[str, float] = dict.fromkeys(KINDS, 0.0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *_) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            for pid in _descendants(os.getpid()):
                try:
                    kind = _kind(Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace"))
                    if kind is None:
                        continue
                    self.peaks[kind] = max(self.peaks[kind], _peak_mb(pid))
                except OSError:
                    continue  # the process ended between the listing and the read


def _descendants(root: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = set(), [root]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def _kind(cmdline: str) -> str | None:
    if "org.apache.spark.deploy.SparkSubmit" in cmdline:
        return "jvm"
    if "horovod" in cmdline or "torch.distributed" in cmdline or "rank_entry" in cmdline:
        return "rank"
    if "pyspark.daemon" in cmdline or "pyspark.worker" in cmdline:
        return "python_worker"
    return None


def _peak_mb(pid: int | str = "self") -> float:
    """A process's peak RSS so far (VmHWM, MB): the sampler's reading of each descendant, and this process's own
    after each stage (to tell which stage raised the driver's)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def measure(csv: Path, work: Path, rows: int, batch: int) -> dict:
    """One size, in this (child) process: prepare, one training epoch, one scoring pass."""
    import mlflow
    import numpy as np
    import torch
    from pyspark.sql import functions as F

    from pipeline.config.load import load_config
    from pipeline.config.schema import TrainConfig
    from pipeline.data.preparation import prepare_data
    from pipeline.data.session import build_spark
    from pipeline.launch.launchers import launch
    from pipeline.launch.planning import build_plan
    from pipeline.layout import Layout
    from pipeline.model.factory import build_network
    from pipeline.model.inputs import model_inputs
    from pipeline.tracking import registry

    config = load_config(bench_config(csv, work, "local[2]"))
    layout = Layout.from_config(config)
    spark = build_spark(config.spark)
    out: dict = {"rows": rows}
    with PeakMemory() as memory:
        started = time.perf_counter()
        prepared = prepare_data(spark, config, layout)
        out["prepare_s"] = time.perf_counter() - started
        out["clean_rows"] = prepared.report.counts.clean_rows
        out["train_rows"] = prepared.report.split_rows["train"]
    out["peak_mb_prepare"] = dict(memory.peaks)
    out["driver_peak_mb_after"] = {"prepare": _peak_mb()}

    model = {"type": "mlp", "hidden": [256, 256], "dropout": 0.0, "norm": "none"}
    train = TrainConfig(
        epochs=1, batch_size=batch, num_proc=2, nics=["lo"], horovod_cycle_time_ms=5, threads_per_worker=1,
        warmup_epochs=0.0, monitor="val_loss", seed=0, model=model,
    )  # fmt: skip
    trained = config.model_copy(update={"train": train})
    with PeakMemory() as memory:
        result = launch(spark, build_plan(trained, prepared.spec, layout, run_id="scale"), train)
    epoch = result.history[0]
    out["train_samples_per_s"] = epoch["train_samples_per_s"]
    out["train_epoch_s"] = out["train_rows"] / epoch["train_samples_per_s"]
    out["peak_mb_train"] = dict(memory.peaks)
    out["driver_peak_mb_after"]["train"] = _peak_mb()

    store = Path(tempfile.mkdtemp(prefix="scale-store-"))
    mlflow.set_tracking_uri(f"sqlite:///{store}/mlflow.db")
    experiment = mlflow.create_experiment("scale", artifact_location=(store / "art").as_uri())
    model_config = {"type": "mlp", "factory": "pipeline.model.networks:mlp", "params": {**model, "activation": "relu"}}
    torch.save(build_network(model_config, model_inputs(prepared.spec)).state_dict(), store / "weights.pt")
    clean = spark.read.parquet(layout.prepared.clean_dir).select(*prepared.spec.input_columns)
    with mlflow.start_run(experiment_id=experiment):
        registered = registry.log_and_register(
            prepared.spec, model_config, str(store / "weights.pt"), "scale", clean.limit(5).toPandas()
        )
    udf = mlflow.pyfunc.spark_udf(spark, registered.uri, result_type="probability double", env_manager="local")
    scored = clean.select(udf(F.struct(*[F.col(c) for c in prepared.spec.input_columns])).alias("p"))
    scored.limit(10).write.format("noop").mode("overwrite").save()  # the workers load the model once
    with PeakMemory() as memory:
        started = time.perf_counter()
        scored.write.format("noop").mode("overwrite").save()
        out["score_s"] = time.perf_counter() - started
    out["peak_mb_score"] = dict(memory.peaks)
    out["driver_peak_mb_after"]["score"] = _peak_mb()
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss over fork + exec, so a parent that generated the CSV inflated it
    out["peak_mb_driver"] = out["driver_peak_mb_after"]["score"]
    spark.stop()
    for stage, count in STAGE_ROWS.items():
        out[f"{stage}_s_per_million"] = float(np.round(out[f"{stage}_s"] / (out[count] / 1e6), 3))
    return out


def chart(sizes: list[dict], path: Path) -> None:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(10, 4))
    cost, memory = figure.subplots(1, 2)
    millions = [s["rows"] / 1e6 for s in sizes]
    marginal = summarise(sizes)["marginal_cost"]
    for stage in STAGE_ROWS:
        name = stage.replace("_", " ")
        line = cost.plot(millions, [s[f"{stage}_s_per_million"] for s in sizes], "-o", label=name)[0]
        ends = [m["to_rows"] / 1e6 for m in marginal[stage]]
        slopes = [m["s_per_million"] for m in marginal[stage]]
        cost.plot(ends, slopes, "--x", color=line.get_color(), label=f"{name}, marginal")
    cost.set(xscale="log", xlabel="rows (millions)", ylabel="seconds per million rows", title="cost per row")
    cost.legend()
    peaks = {
        "driver": [s["peak_mb_driver"] or float("nan") for s in sizes],  # None: not measured (the size's note)
        "JVM": [max(s[f"peak_mb_{p}"]["jvm"] for p in ("prepare", "train", "score")) for s in sizes],
        "rank": [s["peak_mb_train"]["rank"] for s in sizes],
        "pyfunc worker": [s["peak_mb_score"]["python_worker"] for s in sizes],
    }
    for name, values in peaks.items():
        memory.plot(millions, values, "-o", label=name)
    memory.set(xscale="log", xlabel="rows (millions)", ylabel="peak RSS (MB)", title="peak memory per process")
    memory.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def summarise(sizes: list[dict]) -> dict:
    """The sizes measured so far and, per stage, the largest over the smallest seconds per million rows; and the
    marginal cost between neighbouring sizes (extra seconds / extra millions of rows), which separates a stage's
    fixed start-up cost (session, model load, schema, writer commit) from a cost per row that grows with the data."""
    flatness, marginal = {}, {}
    for stage, count in STAGE_ROWS.items():
        per_million = [s[f"{stage}_s_per_million"] for s in sizes]
        flatness[stage] = round(max(per_million) / min(per_million), 3)
        marginal[stage] = [
            {
                "from_rows": a["rows"],
                "to_rows": b["rows"],
                "s_per_million": round((b[f"{stage}_s"] - a[f"{stage}_s"]) / ((b[count] - a[count]) / 1e6), 3),
            }
            for a, b in itertools.pairwise(sizes)
        ]
    return {
        "sizes": sizes,
        "per_row_cost_max_over_min": flatness,
        "marginal_cost": marginal,
        "goal": 1.15,
        "cpu_count": os.cpu_count(),
    }


def _earlier_sizes(args: argparse.Namespace, measuring: list[int]) -> list[dict]:
    """The sizes of an earlier run's results/scale.json that this run does not measure again (--merge): a long
    curve can be measured in parts, each part one process on an otherwise idle machine."""
    earlier = results_dir(args) / "scale.json"
    if not earlier.exists():
        return []
    return [size for size in json.loads(earlier.read_text())["sizes"] if size["rows"] not in measuring]


def main(argv: list[str] | None = None) -> None:
    parser = bench_parser(__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1,4,16,32", help="millions of rows, comma-separated")
    parser.add_argument("--data", default=str(ROOT / "data" / "bench"))
    parser.add_argument("--merge", action="store_true", help="keep the sizes already in results/scale.json")
    parser.add_argument("--child", nargs=4, metavar=("CSV", "WORK", "ROWS", "BATCH"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    if args.child:
        csv, work, rows, batch = args.child
        print(json.dumps(measure(Path(csv), Path(work), int(rows), int(batch))))
        return
    rows_list = [5_000] if args.smoke else [int(float(s) * 1_000_000) for s in args.sizes.split(",")]
    data = scratch_dir(args, Path(args.data))
    env = {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1", "PYSPARK_PYTHON": sys.executable, "OMP_NUM_THREADS": "1"}
    sizes = _earlier_sizes(args, rows_list) if args.merge else []
    for rows in rows_list:
        csv = data / f"flights_{rows}.csv"
        if not csv.exists():
            generate(csv, rows)
        with tempfile.TemporaryDirectory(prefix="scale-work-") as work:
            batch = 256 if args.smoke else 4096
            command = [sys.executable, __file__, "--child", str(csv), work, str(rows), str(batch)]
            done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise SystemExit(f"size {rows:,} failed:\n{done.stderr[-4000:]}")
        sizes.append(json.loads(done.stdout.strip().splitlines()[-1]))
        sizes.sort(key=lambda size: size["rows"])
        print(json.dumps({k: v for k, v in sizes[-1].items() if "per_million" in k} | {"rows": rows}), flush=True)
        write_result(args, "scale", summarise(sizes))  # after every size: a long run stopped early keeps its points
        chart(sizes, results_dir(args) / "scale.png")
    print(json.dumps(summarise(sizes)["per_row_cost_max_over_min"]))


if __name__ == "__main__":
    main()

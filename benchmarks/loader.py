"""Loader throughput: our ShardedParquetLoader vs 1-worker training and vs Ray Data, tabular and images; peak RSS.

Every measurement runs in its own child process (so a peak RSS is that contender's alone), on the same Parquet
files and with the same batch size, after the parent has read the files once (warm page cache):

  * ours: ShardedParquetLoader, one rank, shuffle on, shuffle buffer 200k rows; a few warm-up batches, then
    whole timed epochs (train_epoch: full batches only), at least one and at least 2 s. rows/s = rows / seconds.
  * training: rows/s of forward + backward + AdamW step on one worker over batches taken from our loader, torch
    threads 2 (tabular: also 1, the setting of benchmarks/train.py): the built-in `mlp` (hidden [256, 256]) on the
    tabular data, the built-in `cnn` (channels [32, 64], hidden [256], dropout 0.1) on images, normalised by
    `to_model_view` inside the step as the training loop does. ours ÷ training: target >= 20, i.e. the loader
    costs at most ~5 % of a training step's time.
  * ray: `ray.data.read_parquet` + `iter_torch_batches(batch_size, local_shuffle_buffer_size=<our buffer>,
    drop_last=True)` on `ray.init(num_cpus=2)`, with a collate_fn that hands over what our loader hands over:
    the 40 float columns stacked into a float32 [B, 40] tensor; image bytes (a binary column arrives as an object
    array of bytes) turned into uint8 [B, C, H, W] with np.frombuffer + np.stack, as a user would write it. Same
    warm-up and timed epochs; ray.init is not timed. Peak RSS: the driver's own (ru_maxrss) and the sampled
    peak (every 0.2 s) of the sum over the driver and all its descendant processes (raylet, GCS, workers), as RSS
    and as PSS (RSS counts shared object-store pages once per process that maps them; PSS splits them).

Data: tabular = N rows x 40 float32 + float32 label, written by benchmarks/train.py's generator into
data/bench/features_big_N/train (reused when present; N = 10,000,000 is train.py's own loader file); images =
random uint8 pixels in a binary column `img__x` (C*H*W bytes, channel first, as prepare writes) plus an int64
label in 0..9, 4 files of one row group each (what prepare writes for so few rows): 60k rows of 1x28x28 and 20k
rows of 3x64x64. `--baseline REV` also measures pipeline/worker/loader.py as of git revision REV (before/after).

    .venv/bin/python benchmarks/loader.py [--rows 4000000] [--repeats 1] [--baseline REV] [--no-ray] [--smoke]

Writes benchmarks/results/loader.json and prints a markdown table. With --repeats R every child runs R times,
interleaved, and each figure is the median (this machine is shared, so single runs move by tens of percent).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from itertools import islice
from pathlib import Path

import numpy as np
from harness import ROOT, bench_parser, scratch_dir, write_result

NUMERIC = [f"num__f{i}" for i in range(40)]
TABULAR_BATCH, IMAGE_BATCH = 4096, 256
BUFFER_ROWS = 200_000  # our shuffle buffer = Ray's local_shuffle_buffer_size (the training default)
WARMUP_BATCHES = 5
MIN_SECONDS = 2.0  # loaders: whole epochs until this has passed (small image sets: several); training: steps
IMAGES = {"images_28x28x1": ((1, 28, 28), 60_000), "images_64x64x3": ((3, 64, 64), 20_000)}
MLP = {
    "factory": "pipeline.model.networks:mlp",
    "params": {"hidden": [256, 256], "activation": "relu", "dropout": 0.0, "norm": "none", "embedding_dim": None},
}
CNN = {
    "factory": "pipeline.model.cnn:cnn",
    "params": {"channels": [32, 64], "hidden": [256], "dropout": 0.1, "embedding_dim": None},
}
TARGET = 20


# ---- data -------------------------------------------------------------------------------------------------------


def tabular_data(data: Path, rows: int) -> Path:
    """train.py's synthetic features (40 float32 columns + label), written once per row count."""
    folder = data / f"features_big_{rows}" / "train"
    if not folder.exists():
        spec = importlib.util.spec_from_file_location("bench_train", ROOT / "benchmarks" / "train.py")
        train = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(train)
        print(f"writing {rows:,} tabular rows to {folder}", flush=True)
        train.write_features(folder, rows, seed=3)
    return folder


def image_data(data: Path, name: str, shape: tuple[int, ...], rows: int, files: int = 4) -> Path:
    """Random pixels as prepare lays them out: binary `img__x` (C*H*W bytes) + int64 `label`, one row group a file."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = data / f"{name}_{rows}"
    if folder.exists():
        return folder
    print(f"writing {rows:,} images {'x'.join(map(str, shape))} to {folder}", flush=True)
    partial = folder.with_name(folder.name + ".partial")  # renamed when complete, so a broken run is not reused
    partial.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    size = int(np.prod(shape))
    for part, chunk in enumerate(np.array_split(np.arange(rows), files)):
        n = len(chunk)
        offsets = pa.py_buffer(np.arange(0, (n + 1) * size, size, dtype=np.int32))
        pixels = pa.py_buffer(rng.integers(0, 256, size=n * size, dtype=np.uint8))
        column = pa.BinaryArray.from_buffers(pa.binary(), n, [None, offsets, pixels])
        table = pa.table({"img__x": column, "label": rng.integers(0, 10, size=n)})
        # Dictionary for the label only: Spark's writer also falls back to plain for unique pixel blobs.
        pq.write_table(table, partial / f"part-{part:04d}.parquet", row_group_size=n, use_dictionary=["label"])
    partial.rename(folder)
    return folder


def warm_cache(folder: Path) -> None:
    for path in sorted(folder.glob("*.parquet")):
        with open(path, "rb") as f:
            while f.read(1 << 23):
                pass


def datasets(args) -> dict[str, dict]:
    data = scratch_dir(args, Path(args.data))
    out = {
        "tabular": {
            "path": str(tabular_data(data, args.rows)),
            "kind": "numeric",
            "shape": [40],
            "batch": TABULAR_BATCH,
            "task": "binary",
        }
    }
    for name, (shape, rows) in IMAGES.items():
        path = image_data(data, name, shape, min(rows, 2_000) if args.smoke else rows)
        out[name] = {"path": str(path), "kind": "image", "shape": list(shape), "batch": IMAGE_BATCH}
        out[name]["task"] = "multiclass"
    return out


# ---- child side: what one process measures --------------------------------------------------------------------


def model_inputs_for(dataset: dict):
    """TensorInputs as model_inputs builds them from a feature spec (images: uint8 stored, per-channel mean/std)."""
    from pipeline.model.inputs import IMAGE, ModelInputs, TensorInput
    from pipeline.model.inputs import NUMERIC as NUMERIC_TENSOR

    shape = tuple(dataset["shape"])
    if dataset["kind"] == "numeric":
        tensor = TensorInput(NUMERIC_TENSOR, shape, "float32", tuple(NUMERIC))
        return [tensor], ModelInputs({tensor.name: tensor}, "binary", 1)
    channels = shape[0]  # uniform random bytes: mean 0.5, std 1/sqrt(12) of pixel / 255
    tensor = TensorInput(
        "x",
        shape,
        "float32",
        ("img__x",),
        kind=IMAGE,
        stored_dtype="uint8",
        mean=(0.5,) * channels,
        std=(0.289,) * channels,
    )
    return [tensor], ModelInputs({tensor.name: tensor}, "multiclass", 10, tuple(str(i) for i in range(10)))


def make_loader(dataset: dict, loader_source: str | None):
    import torch

    if loader_source:  # an older loader.py, for before/after
        spec = importlib.util.spec_from_file_location("baseline_loader", loader_source)
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
        cls = module.ShardedParquetLoader
    else:
        from pipeline.worker.loader import ShardedParquetLoader as cls
    tensors, _ = model_inputs_for(dataset)
    label_dtype = torch.int64 if dataset["task"] == "multiclass" else torch.float32
    return cls(
        dataset["path"],
        tensors,
        "label",
        dataset["batch"],
        0,
        1,
        shuffle=True,
        seed=1,
        buffer_rows=BUFFER_ROWS,
        label_dtype=label_dtype,
    )


class PeakMemory:
    """Samples RSS and PSS summed over this process and its descendants; ru_maxrss is this process's exact peak."""

    def __init__(self, interval_s: float = 0.2):
        import psutil

        self._psutil, self._interval = psutil, interval_s
        self.rss = self.pss = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self._sample()

    def _sample(self) -> None:
        me = self._psutil.Process()
        rss = pss = 0
        for proc in [me, *me.children(recursive=True)]:
            try:
                info = proc.memory_full_info()
            except (self._psutil.NoSuchProcess, self._psutil.AccessDenied):
                continue
            rss, pss = rss + info.rss, pss + getattr(info, "pss", info.rss)
        self.rss, self.pss = max(self.rss, rss), max(self.pss, pss)

    def result(self) -> dict:
        return {
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            "peak_rss_with_children_mb": round(self.rss / 2**20),
            "peak_pss_with_children_mb": round(self.pss / 2**20),
        }


def cpu_seconds() -> dict[int, float]:
    """User + system CPU seconds so far of this process and each descendant (Ray's raylet and workers), by pid."""
    import psutil

    me = psutil.Process()
    out = {}
    for proc in [me, *me.children(recursive=True)]:
        try:
            times = proc.cpu_times()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        out[proc.pid] = times.user + times.system
    return out


def timed_epochs(epoch) -> dict:
    """Rows/s of whole passes `epoch(1)`, `epoch(2)`, ... until MIN_SECONDS have passed, after a warm-up on
    `epoch(0)` (a few batches, then closed).

    Also the CPU seconds the passes took over the whole process tree: on this shared machine, rows per CPU-second
    moves much less between runs than rows per wall second.
    """
    first = iter(epoch(0))
    for _ in islice(first, WARMUP_BATCHES):
        pass
    first.close()
    cpu_before, started, rows, passes = cpu_seconds(), time.perf_counter(), 0, 0
    while passes == 0 or time.perf_counter() - started < MIN_SECONDS:
        passes += 1
        for _, y in epoch(passes):
            rows += len(y)
    seconds = time.perf_counter() - started
    cpu = sum(total - cpu_before.get(pid, 0.0) for pid, total in cpu_seconds().items())
    return {
        "rows": rows // passes,
        "epochs": passes,
        "seconds": round(seconds, 3),
        "rows_per_s": round(rows / seconds),
        "cpu_s": round(cpu, 3),
        "rows_per_cpu_s": round(rows / cpu),
    }


def measure_ours(spec: dict) -> dict:
    with PeakMemory() as memory:
        loader = make_loader(spec["dataset"], spec.get("loader_source"))
        out = timed_epochs(loader.train_epoch)
    return {**out, **memory.result()}


def ray_collate(dataset: dict):
    """Numpy batch -> (features, label) tensors shaped like our loader's."""
    import torch

    shape = tuple(dataset["shape"])
    if dataset["kind"] == "numeric":
        return lambda b: (torch.from_numpy(np.stack([b[c] for c in NUMERIC], axis=1)), torch.from_numpy(b["label"]))

    def images(b):
        pixels = np.stack([np.frombuffer(v, dtype=np.uint8) for v in b["img__x"]]).reshape(-1, *shape)
        return torch.from_numpy(pixels), torch.from_numpy(b["label"])

    return images


def measure_ray(spec: dict) -> dict:
    import logging

    import ray

    dataset = spec["dataset"]
    with PeakMemory() as memory:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
        ray.data.DataContext.get_current().enable_progress_bars = False
        ds = ray.data.read_parquet(dataset["path"])

        def epoch(seed: int):
            return ds.iter_torch_batches(
                batch_size=dataset["batch"],
                local_shuffle_buffer_size=BUFFER_ROWS,
                local_shuffle_seed=seed,
                drop_last=True,
                collate_fn=ray_collate(dataset),
            )

        out = timed_epochs(epoch)
        ray.shutdown()
    return {**out, **memory.result(), "ray_version": ray.__version__}


def training_step(model, optimizer, batch, y, inputs) -> None:
    from pipeline.model.inputs import to_model_view
    from pipeline.model.losses import loss_fn

    loss = loss_fn(inputs.task, model(to_model_view(batch, inputs)), y)
    loss.backward()
    optimizer.step()
    optimizer.zero_grad()


def rows_per_s_training(model_spec: dict, inputs, batches: list, seconds: float) -> tuple[float, float]:
    """Rows per wall second and per CPU second of at least `seconds` and 2 steps of training over `batches`
    (cycled), after 1 warm-up step."""
    import torch

    from pipeline.model.factory import build_network

    torch.manual_seed(0)
    model = build_network(model_spec, inputs)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    for batch, y in batches[:1]:
        training_step(model, optimizer, batch, y, inputs)
    started, cpu, rows, step = time.perf_counter(), time.process_time(), 0, 0
    while step < 2 or time.perf_counter() - started < seconds:
        batch, y = batches[step % len(batches)]
        training_step(model, optimizer, batch, y, inputs)
        rows, step = rows + len(y), step + 1
    return rows / (time.perf_counter() - started), rows / (time.process_time() - cpu)


def measure_training(spec: dict) -> dict:
    import torch

    dataset = spec["dataset"]
    _, inputs = model_inputs_for(dataset)
    batches = list(islice(make_loader(dataset, None).train_epoch(0), 8))
    model_spec = MLP if dataset["kind"] == "numeric" else CNN
    out = {}
    for threads in spec["threads"]:
        torch.set_num_threads(threads)
        wall, cpu = rows_per_s_training(model_spec, inputs, batches, seconds=MIN_SECONDS)
        out[f"threads_{threads}_rows_per_s"], out[f"threads_{threads}_rows_per_cpu_s"] = round(wall), round(cpu)
    return out


def child(spec: dict) -> dict:
    kinds = {"ours": measure_ours, "ray": measure_ray, "training": measure_training}
    return kinds[spec["kind"]](spec)


# ---- parent side -------------------------------------------------------------------------------------------------


def run_child(spec: dict) -> dict:
    proc = subprocess.run(
        [sys.executable, __file__, "--child", json.dumps(spec)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    if proc.returncode != 0:
        raise SystemExit(f"child {spec['kind']} on {spec['dataset']['path']} failed:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def median_of(runs: list[dict]) -> dict:
    """Per numeric key, the median over repeats (other keys from the first run); `all` keeps every run's rows/s."""
    out = dict(runs[0])
    for key, value in runs[0].items():
        if isinstance(value, (int, float)):
            middle = statistics.median(r[key] for r in runs)
            out[key] = round(middle) if isinstance(value, int) else round(middle, 3)
    rates = [r.get("rows_per_s") for r in runs if "rows_per_s" in r]
    if len(rates) > 1:
        out["all_rows_per_s"] = rates
    return out


def baseline_source(revision: str) -> str:
    """pipeline/worker/loader.py as of `revision`, in a temporary file."""
    source = subprocess.run(
        ["git", "show", f"{revision}:pipeline/worker/loader.py"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    path = Path(tempfile.mkdtemp(prefix="loader-baseline-")) / "loader.py"
    path.write_text(source)
    return str(path)


def contenders(dataset: dict, args, baseline: str | None) -> dict[str, dict]:
    specs = {"ours": {"kind": "ours"}}
    if baseline:
        specs["baseline"] = {"kind": "ours", "loader_source": baseline}
    specs["training"] = {"kind": "training", "threads": [2, 1] if dataset["kind"] == "numeric" else [2]}
    if not args.no_ray:
        specs["ray"] = {"kind": "ray"}
    return {name: {**spec, "dataset": dataset} for name, spec in specs.items()}


def measure(name: str, dataset: dict, args, baseline: str | None) -> dict:
    warm_cache(Path(dataset["path"]))
    runs: dict[str, list] = {}
    for _ in range(args.repeats):  # interleaved, so a busy spell on the shared machine hits every contender
        for contender, spec in contenders(dataset, args, baseline).items():
            runs.setdefault(contender, []).append(run_child(spec))
            print(f"  {name:16s} {contender:9s} {json.dumps(runs[contender][-1])}", flush=True)
    result = {contender: median_of(r) for contender, r in runs.items()}
    return {**result, **ratios(result)}


def ratios(result: dict) -> dict:
    ours = result["ours"]["rows_per_s"]
    training = result["training"]
    out = {"ours_vs_training": round(ours / training["threads_2_rows_per_s"], 1)}
    out["ours_vs_training_per_cpu_s"] = round(
        result["ours"]["rows_per_cpu_s"] / training["threads_2_rows_per_cpu_s"], 1
    )
    if "threads_1_rows_per_s" in training:
        out["ours_vs_training_1_thread"] = round(ours / training["threads_1_rows_per_s"], 1)
    for other in ("ray", "baseline"):
        if other in result:
            out[f"ours_vs_{other}"] = round(ours / result[other]["rows_per_s"], 2)
            out[f"ours_vs_{other}_per_cpu_s"] = round(
                result["ours"]["rows_per_cpu_s"] / result[other]["rows_per_cpu_s"], 2
            )
    return out


def _cells(values: list) -> str:
    return (
        "| "
        + " | ".join(f"{v:,}" if isinstance(v, int) else f"{v:g}" if isinstance(v, float) else v for v in values)
        + " |"
    )


def _ray_memory(ray: dict) -> str:
    return f"{ray['peak_rss_mb']:,} / {ray['peak_rss_with_children_mb']:,} ({ray['peak_pss_with_children_mb']:,})"


def markdown(results: dict) -> str:
    """One row per data set; ratios per wall second and per CPU second (summed over the process tree)."""
    header = [
        "data (rows/epoch, batch)",
        "ours rows/s",
        "training rows/s (2 threads)",
        "ours ÷ training (≥ 20), wall / CPU",
        "Ray Data rows/s",
        "ours ÷ Ray, wall / CPU",
        "peak RSS MB: ours",
        "peak RSS MB: Ray driver / with workers (PSS)",
    ]
    lines = [_cells(header), _cells(["---"] * len(header))]
    for name, r in results["datasets"].items():
        ours, training, ray = r["ours"], r["training"], r.get("ray")
        row = [
            f"{name} ({ours['rows']:,}, {results['datasets_setup'][name]['batch']})",
            round(ours["rows_per_s"]),
            round(training["threads_2_rows_per_s"]),
            f"{r['ours_vs_training']:g} / {r['ours_vs_training_per_cpu_s']:g}",
            round(ray["rows_per_s"]) if ray else "–",
            f"{r['ours_vs_ray']:g} / {r['ours_vs_ray_per_cpu_s']:g}" if ray else "–",
            round(ours["peak_rss_mb"]),
            _ray_memory(ray) if ray else "–",
        ]
        lines.append(_cells(row))
    if any("baseline" in r for r in results["datasets"].values()):
        lines += ["", f"Before/after (`--baseline {results['setup']['baseline']}`):", ""]
        lines += [_cells(["data", "before rows/s", "after rows/s", "after ÷ before, wall / CPU"]), _cells(["---"] * 4)]
        for name, r in results["datasets"].items():
            before, after = round(r["baseline"]["rows_per_s"]), round(r["ours"]["rows_per_s"])
            lines.append(
                _cells([name, before, after, f"{r['ours_vs_baseline']:g} / {r['ours_vs_baseline_per_cpu_s']:g}"])
            )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = bench_parser(__doc__)
    parser.add_argument("--rows", type=int, default=4_000_000, help="tabular rows (default: ~1 min in all here)")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--baseline", help="git revision whose pipeline/worker/loader.py is measured as well")
    parser.add_argument("--no-ray", action="store_true")
    parser.add_argument("--data", default=str(ROOT / "data" / "bench"))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return
    if args.smoke:  # tiny data; Ray only where the bench extra is installed
        args.rows, args.no_ray = 50_000, args.no_ray or importlib.util.find_spec("ray") is None

    started, load_before = time.perf_counter(), os.getloadavg()
    setup = datasets(args)
    baseline = baseline_source(args.baseline) if args.baseline else None
    measured = {name: measure(name, dataset, args, baseline) for name, dataset in setup.items()}
    results = {
        "datasets": measured,
        "datasets_setup": setup,
        "target_ours_vs_training": TARGET,
        "setup": {
            "shuffle_buffer_rows": BUFFER_ROWS,
            "repeats": args.repeats,
            "baseline": args.baseline,
            "cpu_count": os.cpu_count(),
            "load_average_before": [round(x, 2) for x in load_before],
            "load_average_after": [round(x, 2) for x in os.getloadavg()],
            "seconds": round(time.perf_counter() - started),
        },
    }
    write_result(args, "loader", results)
    print(markdown(results), end="")


if __name__ == "__main__":
    main()

"""Training throughput: pipeline vs bare torch, 2-worker scaling (Horovod variants, DDP), loader headroom, RSS.

All on synthetic feature Parquet with the shape of the architecture's reference model (40 float inputs, MLP
40-256-256-1, batch 4096, 1 torch thread per process), measured side by side in one run:

  * pipeline_vs_bare: per-worker training samples/s through our loader + loop (Horovod, 1 worker)
    / a bare single-process torch loop over in-memory tensors. Target >= 0.85.
  * scaling efficiency = samples/s(2 workers) / (2 x samples/s(1 worker)) per backend/tuning. Target >= 0.80.
  * loader_vs_training: loader-only samples/s (shuffling on) / 1-worker training samples/s. Target >= 20.
  * loader peak RSS streaming a 10M-row epoch. Target <= 1 GiB.

    python benchmarks/train.py [--rows 2000000] [--big-rows 10000000] [--smoke]
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from harness import ROOT, bench_parser, scratch_dir, write_result

NUMERIC = [f"num__f{i}" for i in range(40)]
MODEL = {"type": "mlp", "hidden": [256, 256], "dropout": 0.0, "norm": "none"}  # train.model, as a config has it
BATCH = 4096


def write_features(folder: Path, rows: int, seed: int = 0, row_group_rows: int = 131_072) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    weights = np.random.default_rng(1234).normal(size=40).astype(np.float32)  # one labelling rule for all splits
    chunk, part = 1_048_576, 0
    for start in range(0, rows, chunk * 2):
        with pq.ParquetWriter(
            folder / f"part-{part:04d}.parquet",
            pa.schema([(c, pa.float32()) for c in NUMERIC] + [("label", pa.float32())]),
        ) as writer:
            for sub in range(start, min(rows, start + chunk * 2), chunk):
                n = min(chunk, rows - sub)
                x = rng.normal(size=(n, 40)).astype(np.float32)
                y = ((x @ weights + rng.normal(size=n)) > 0).astype(np.float32)
                arrays = [pa.array(x[:, j]) for j in range(40)] + [pa.array(y)]
                table = pa.Table.from_arrays(arrays, names=NUMERIC + ["label"])
                writer.write_table(table, row_group_size=row_group_rows)
        part += 1


def bare_torch(steps: int = 100) -> float:
    """Samples/s of a plain loop over in-memory tensors: the ceiling for one process."""
    import torch

    from pipeline.config.model import ModelConfig
    from pipeline.launch.planning import resolved_model
    from pipeline.model.factory import build_network
    from pipeline.model.inputs import NUMERIC as NUMERIC_TENSOR
    from pipeline.model.inputs import ModelInputs, TensorInput
    from pipeline.model.losses import loss_fn

    torch.set_num_threads(1)
    torch.manual_seed(0)
    inputs = ModelInputs({NUMERIC_TENSOR: TensorInput(NUMERIC_TENSOR, (40,), "float32", tuple(NUMERIC))}, "binary", 1)
    model = build_network(resolved_model(ModelConfig(**MODEL)), inputs)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x = torch.randn(BATCH * 16, 40)
    y = (x[:, 0] > 0).float()
    for _ in range(10):
        _step(model, optimizer, {NUMERIC_TENSOR: x[:BATCH]}, y[:BATCH], loss_fn)
    started = time.perf_counter()
    for i in range(steps):
        j = (i % 16) * BATCH
        _step(model, optimizer, {NUMERIC_TENSOR: x[j : j + BATCH]}, y[j : j + BATCH], loss_fn)
    return steps * BATCH / (time.perf_counter() - started)


def _step(model, optimizer, batch, y, loss_fn):
    loss = loss_fn("binary", model(batch), y)
    loss.backward()
    optimizer.step()
    optimizer.zero_grad()


def loader_only(path: Path) -> dict:
    """One shuffled epoch of the loader alone; peak RSS of this process."""
    from pipeline.model.inputs import NUMERIC as NUMERIC_TENSOR
    from pipeline.model.inputs import TensorInput
    from pipeline.worker.loader import ShardedParquetLoader

    tensors = [TensorInput(NUMERIC_TENSOR, (40,), "float32", tuple(NUMERIC))]
    loader = ShardedParquetLoader(str(path), tensors, "label", BATCH, 0, 1, shuffle=True, seed=1)
    started = time.perf_counter()
    rows = sum(len(y) for _, y in loader.train_epoch(0))
    seconds = time.perf_counter() - started
    return {
        "rows": rows,
        "samples_per_s": rows / seconds,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def bench_train(smoke: bool):
    """The training settings every variant starts from: 4 epochs of 60 steps (2 of 5 in smoke runs), 1 thread."""
    from pipeline.config.schema import TrainConfig

    return TrainConfig(
        epochs=2 if smoke else 4,
        batch_size=256 if smoke else BATCH,
        warmup_epochs=0.0,
        patience=5,
        monitor="val_loss",
        threads_per_worker=1,
        max_steps_per_epoch=5 if smoke else 60,
        seed=0,
        model=MODEL,
    )


def flat_feature_setup(features: Path, work: Path, train):
    """The pipeline config, feature spec and layout for the generated 40-float feature Parquet at `features`
    (linked where the layout expects prepared features), as prepare would have left them."""
    from pipeline.config.schema import PipelineConfig
    from pipeline.layout import Layout
    from pipeline.model.spec import FeatureSpec, LabelSpec, NumericStats

    config = PipelineConfig(work_dir=str(work), train=train)
    layout = Layout.from_config(config)
    Path(layout.prepared.features_dir).parent.mkdir(parents=True)
    Path(layout.prepared.features_dir).symlink_to(features)  # the generated data, where the layout expects it
    names = [c.removeprefix("num__") for c in NUMERIC]
    spec = FeatureSpec(
        input_schema={**{n: "double" for n in names}, "label": "int"},
        numeric=tuple(NumericStats(n, 0.0, 0.0, 1.0, missing_indicator=False) for n in names),
        label=LabelSpec("label", "binary"),
    )
    assert spec.numeric_columns == NUMERIC
    return config, spec, layout


def launch_variant(spark, setup, backend: str, procs: int, changes: dict, env: dict, run_id: str) -> float:
    """Train once through the pipeline's plan constructor and launcher (pipeline/launch/planning.py) with one
    backend/worker count/tuning; the median training samples/s of the warm epochs (all but the first)."""
    from pipeline.launch.launchers import launch
    from pipeline.launch.planning import build_plan

    config, spec, layout = setup
    cycle_time = env.get("HOROVOD_CYCLE_TIME")
    settings = {"backend": backend, "num_proc": procs, "nics": ["lo"], "horovod_cycle_time_ms": cycle_time}
    launcher = config.train.model_copy(update={**settings, **changes})
    plan = build_plan(config.model_copy(update={"train": launcher}), spec, layout, run_id=run_id)
    result = launch(spark, plan, launcher)
    return float(np.median([h["train_samples_per_s"] for h in result.history[1:]]))


def training_runs(features: Path, work: Path, smoke: bool) -> dict:
    """Each variant through the pipeline's own plan constructor and launcher, in one Spark session."""
    from pipeline.config.schema import SparkConfig
    from pipeline.data.session import build_spark

    setup = flat_feature_setup(features, work, bench_train(smoke))
    spark = build_spark(SparkConfig(master="local[2]"))
    variants = [
        ("horovod", 1, {}, {}),
        ("horovod", 2, {}, {}),
        ("horovod", 2, {"grouped_allreduce": True}, {}),  # one grouped allreduce per step
        ("horovod", 2, {"fp16_allreduce": True}, {}),
        ("horovod", 2, {"backward_passes_per_step": 2}, {}),
        ("horovod", 2, {}, {"HOROVOD_CYCLE_TIME": 5}),  # what conf/local.yaml sets (Horovod's default: 1 ms)
        ("torch_distributor", 1, {}, {}),
        ("torch_distributor", 2, {}, {}),
    ]
    if smoke:  # every setting once, in one 2-worker Horovod launch: the same code paths in 4 launches, not 8
        changes = {"grouped_allreduce": True, "fp16_allreduce": True, "backward_passes_per_step": 2}
        every = ("horovod", 2, changes, {"HOROVOD_CYCLE_TIME": 5})
        variants = [variants[0], every, *variants[-2:]]
    out = {}
    for i, (backend, procs, changes, env) in enumerate(variants):
        name = f"{backend}_{procs}" + "".join(f"_{k}={v}" for k, v in {**changes, **env}.items())
        sps = launch_variant(spark, setup, backend, procs, changes, env, run_id=f"ckpt-{i}")
        out[name] = {"samples_per_s": sps, "per_worker_samples_per_s": sps / procs}
        print(f"{name:70s} {sps:>10,.0f} samples/s", flush=True)
    spark.stop()
    return out


def horovod_sweep(features: Path, work: Path, rounds: int, smoke: bool) -> dict:
    """Horovod's 2-worker scaling by allreduce grouping x background cycle, rounds interleaved (with the 1-worker
    baseline in each round), so a noisy spell on this shared machine hits every variant alike."""
    from pipeline.config.schema import SparkConfig
    from pipeline.data.session import build_spark

    setup = flat_feature_setup(features, work, bench_train(smoke))
    spark = build_spark(SparkConfig(master="local[2]"))
    variants = {"horovod_1": (1, None, {})}
    for grouped in (False, True):
        for cycle in (1, 5):
            variants[f"horovod_2_grouped={grouped}_cycle={cycle}ms"] = (2, grouped, {"HOROVOD_CYCLE_TIME": cycle})
    runs: dict[str, list[float]] = {name: [] for name in variants}
    for round_ in range(rounds):
        for name, (procs, grouped, env) in variants.items():
            changes = {} if grouped is None else {"grouped_allreduce": grouped}
            runs[name].append(launch_variant(spark, setup, "horovod", procs, changes, env, f"sweep-{round_}-{name}"))
            print(f"round {round_ + 1}: {name:40s} {runs[name][-1]:>10,.0f} samples/s", flush=True)
    spark.stop()
    efficiency = {
        name: [round(two / (2 * one), 3) for two, one in zip(values, runs["horovod_1"], strict=True)]
        for name, values in runs.items()
        if name != "horovod_1"
    }
    return {
        "samples_per_s": runs,
        "scaling_efficiency_by_round": efficiency,
        "scaling_efficiency_median": {name: float(np.median(values)) for name, values in efficiency.items()},
    }


def main(argv: list[str] | None = None) -> None:
    parser = bench_parser(__doc__)
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--big-rows", type=int, default=10_000_000)
    parser.add_argument("--data", default=str(ROOT / "data" / "bench"))
    parser.add_argument("--child", choices=["loader"])
    parser.add_argument("--sweep-rounds", type=int, help="only the Horovod grouping x cycle sweep, this many rounds")
    parser.add_argument("--path")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    if args.child == "loader":
        print(json.dumps(loader_only(Path(args.path))))
        return

    if args.smoke:
        args.rows, args.big_rows = 20_000, 50_000
    data = scratch_dir(args, Path(args.data))
    evaluation_rows, group = (2_000, 4_096) if args.smoke else (20_000, 131_072)
    features = data / f"features_{args.rows}"
    big = data / f"features_big_{args.big_rows}" / "train"
    if not (features / "train").exists():
        write_features(features / "train", args.rows, row_group_rows=group)
        write_features(features / "val", evaluation_rows, seed=1, row_group_rows=group)
        write_features(features / "test", evaluation_rows, seed=2, row_group_rows=group)
    if args.sweep_rounds:
        import tempfile

        result = horovod_sweep(features, Path(tempfile.mkdtemp(prefix="sweep-")), args.sweep_rounds, args.smoke)
        write_result(args, "horovod_sweep", result)
        print(json.dumps(result["scaling_efficiency_median"], indent=1))
        return
    if not big.exists():
        write_features(big, args.big_rows, seed=3, row_group_rows=group)
    bare = bare_torch(steps=5 if args.smoke else 100)
    print(f"bare torch loop: {bare:,.0f} samples/s", flush=True)
    import shutil
    import tempfile

    work = Path(tempfile.mkdtemp(prefix="train-bench-"))  # fresh: old checkpoints would be resumed, not trained
    runs = training_runs(features, work, args.smoke)
    shutil.rmtree(work, ignore_errors=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    loader = json.loads(
        subprocess.run(
            [sys.executable, __file__, "--child", "loader", "--path", str(big)],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.splitlines()[-1]
    )
    print(
        f"loader alone ({loader['rows']:,} rows): {loader['samples_per_s']:,.0f} samples/s, "
        f"peak RSS {loader['peak_rss_mb']:.0f} MB",
        flush=True,
    )
    one = runs["horovod_1"]["samples_per_s"]
    efficiency = {
        name: round(
            r["samples_per_s"]
            / (2 * (one if name.startswith("horovod") else runs["torch_distributor_1"]["samples_per_s"])),
            3,
        )
        for name, r in runs.items()
        if "_2" in name
    }
    summary = {
        "bare_torch_samples_per_s": bare,
        "runs": runs,
        "pipeline_vs_bare": round(one / bare, 3),
        "scaling_efficiency_2_workers": efficiency,
        "loader": loader,
        "loader_vs_training": round(loader["samples_per_s"] / one, 1),
        "targets": {
            "pipeline_vs_bare": 0.85,
            "scaling_efficiency": 0.80,
            "loader_vs_training": 20,
            "loader_peak_rss_mb": 1024,
        },
        "setup": {
            "model": "MLP 40-256-256-1",
            "batch_per_worker": BATCH,
            "threads_per_worker": 1,
            "cpu_count": os.cpu_count(),
        },
    }
    write_result(args, "train", summary)
    print(
        json.dumps(
            {k: summary[k] for k in ("pipeline_vs_bare", "scaling_efficiency_2_workers", "loader_vs_training")},
            indent=1,
        )
    )


if __name__ == "__main__":
    main()

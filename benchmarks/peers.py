"""Training throughput, ours vs Ray Train, in one run: 1 and 2 workers, the same Parquet, MLP, batch and threads.

On benchmarks/train.py's synthetic feature Parquet (40 float inputs and a label, 1M rows by default), interleaved
in rounds (`--rounds`, each round every contender once, in a rotating order, so a noisy minute hits all alike):
  * ours, Horovod and DDP (TorchDistributor): the pipeline's own plan and launcher on Spark local[2], streaming
    the Parquet through pipeline.worker.loader (shuffle buffer 200,000 rows, the default);
  * Ray Train: `TorchTrainer` whose workers stream the same Parquet with Ray Data's
    `get_dataset_shard("train").iter_torch_batches(batch_size, local_shuffle_buffer_size=200_000, drop_last=True)`
    and a collate_fn that stacks the 40 columns into one float32 tensor (what our loader hands over), the model
    wrapped by `ray.train.torch.prepare_model` (DDP, gloo). Ray is started once with `num_cpus` = 2 + workers:
    Ray Data's read tasks need logical CPUs of their own beside the training workers (with only 2 they never
    schedule); the machine has the same 2 physical cores either way. Spark and Ray both stay up through the run,
    each idle while the other trains.
Every contender: MLP 40-256-256-1 built by the pipeline's model factory, AdamW, batch 4096 per worker, 1 torch
thread per process, full epochs over the same rows, samples/s of the training steps of epochs 2.. (the first is
warm-up), median over rounds. Goal (issue): ours >= 2x Ray Train at 2 workers. Results: results/peers.json.

    python benchmarks/peers.py [--rows 1000000] [--epochs 3] [--rounds 2] [--smoke]
"""

from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from harness import ROOT, bench_parser, scratch_dir, write_result
from train import BATCH, MODEL, NUMERIC, flat_feature_setup, launch_variant, write_features

BUFFER_ROWS = 200_000  # our loader's default shuffle buffer (train.shuffle_buffer_rows), given to Ray as well
OURS = (("horovod", 1), ("horovod", 2), ("torch_distributor", 1), ("torch_distributor", 2))


def ray_train_loop(config: dict) -> None:
    """Runs in each Ray Train worker: full epochs over its shard of the Parquet, samples/s of each epoch's steps."""
    import ray.train
    import ray.train.torch
    import torch

    sys.path.insert(0, config["root"])
    from pipeline.config.model import ModelConfig
    from pipeline.launch.planning import resolved_model
    from pipeline.model.factory import build_network
    from pipeline.model.inputs import NUMERIC as NUMERIC_TENSOR
    from pipeline.model.inputs import ModelInputs, TensorInput
    from pipeline.model.losses import loss_fn

    torch.set_num_threads(1)
    torch.manual_seed(0)
    inputs = ModelInputs({NUMERIC_TENSOR: TensorInput(NUMERIC_TENSOR, (40,), "float32", tuple(NUMERIC))}, "binary", 1)
    model = ray.train.torch.prepare_model(build_network(resolved_model(ModelConfig(**MODEL)), inputs))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    shard = ray.train.get_dataset_shard("train")
    world = ray.train.get_context().get_world_size()

    def collate(batch: dict) -> tuple:
        features = np.column_stack([batch[c] for c in NUMERIC]).astype(np.float32, copy=False)
        return torch.from_numpy(features), torch.from_numpy(batch["label"].astype(np.float32, copy=False))

    for _ in range(config["epochs"]):
        steps, started = 0, time.perf_counter()
        batches = shard.iter_torch_batches(
            batch_size=config["batch"], local_shuffle_buffer_size=BUFFER_ROWS, drop_last=True, collate_fn=collate
        )
        for x, y in batches:
            loss = loss_fn("binary", model({NUMERIC_TENSOR: x}), y)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            steps += 1
        seconds = time.perf_counter() - started
        if ray.train.get_context().get_world_rank() == 0:  # synchronous steps: rank 0's pace is every rank's
            with open(config["out"], "a", encoding="utf-8") as out:
                out.write(f"{steps * config['batch'] * world / seconds}\n")


def measure_ray(features: Path, workers: int, epochs: int, batch: int, storage: Path) -> float:
    """One Ray Train fit on `workers` workers; the median samples/s of its epochs after the first."""
    import ray
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    dataset = ray.data.read_parquet(str(features / "train"))
    out = storage / f"epochs-{workers}-{time.time_ns()}.txt"  # the ranks' figures, read here (not via Ray)
    storage.mkdir(parents=True, exist_ok=True)
    trainer = TorchTrainer(
        ray_train_loop,
        train_loop_config={"epochs": epochs, "batch": batch, "root": str(ROOT), "out": str(out)},
        scaling_config=ScalingConfig(num_workers=workers, use_gpu=False, resources_per_worker={"CPU": 1}),
        run_config=RunConfig(storage_path=str(storage), name=f"peers-{workers}-{time.time_ns()}"),
        datasets={"train": dataset},
    )
    trainer.fit()
    per_epoch = [float(line) for line in out.read_text().split()]
    return float(np.median(per_epoch[1:]))


def start_ray(workers: int) -> None:
    import ray

    env = {"OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "benchmarks")])}
    ray.init(
        num_cpus=2 + workers,
        include_dashboard=False,
        log_to_driver=False,
        logging_level=logging.WARNING,
        runtime_env={"env_vars": env},
    )
    ray.data.DataContext.get_current().enable_progress_bars = False


def run_rounds(features: Path, work: Path, args) -> dict[str, list[float]]:
    """Every contender once per round, ours in one Spark session and Ray in one Ray instance, started up front."""
    import ray

    from pipeline.config.schema import SparkConfig, TrainConfig
    from pipeline.data.session import build_spark

    batch = 256 if args.smoke else BATCH
    train = TrainConfig(
        epochs=args.epochs, batch_size=batch, warmup_epochs=0.0, patience=args.epochs, monitor="val_loss",
        threads_per_worker=1, seed=0, model=MODEL,
    )  # fmt: skip
    setup = flat_feature_setup(features, work, train)
    spark = build_spark(SparkConfig(master="local[2]"))
    start_ray(2)
    contenders = [*(f"{backend}_{n}" for backend, n in OURS), "ray_train_1", "ray_train_2"]
    samples: dict[str, list[float]] = {name: [] for name in contenders}
    try:
        for round_ in range(args.rounds):
            shift = round_ % len(contenders)
            for name in contenders[shift:] + contenders[:shift]:
                backend, procs = name.rsplit("_", 1)
                if backend == "ray_train":
                    sps = measure_ray(features, int(procs), args.epochs, batch, work / "ray")
                else:
                    run_id = f"peers-{name}-{round_}"
                    sps = launch_variant(spark, setup, backend, int(procs), {}, {}, run_id=run_id)
                samples[name].append(sps)
                print(f"round {round_ + 1}: {name:22s} {sps:>10,.0f} samples/s", flush=True)
    finally:
        ray.shutdown()
        spark.stop()
    return samples


def summarise(samples: dict[str, list[float]], args) -> dict:
    median = {name: float(np.median(values)) for name, values in samples.items()}
    import ray

    return {
        "samples_per_s": median,
        "rounds": samples,
        "ours_vs_ray_train_2_workers": {
            backend: round(median[f"{backend}_2"] / median["ray_train_2"], 2) for backend, _ in OURS[::2]
        },
        "ours_vs_ray_train_1_worker": {
            backend: round(median[f"{backend}_1"] / median["ray_train_1"], 2) for backend, _ in OURS[::2]
        },
        "scaling_efficiency_2_workers": {
            name: round(median[f"{name}_2"] / (2 * median[f"{name}_1"]), 3)
            for name in ("horovod", "torch_distributor", "ray_train")
        },
        "goal_ours_vs_ray_train_2_workers": 2.0,
        "setup": {
            "rows": args.rows,
            "epochs": args.epochs,
            "model": "MLP 40-256-256-1",
            "batch_per_worker": 256 if args.smoke else BATCH,
            "shuffle_buffer_rows": BUFFER_ROWS,
            "threads_per_worker": 1,
            "cpu_count": os.cpu_count(),
            "ray_version": ray.__version__,
        },
    }


def main(argv: list[str] | None = None) -> None:
    parser = bench_parser(__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--data", default=str(ROOT / "data" / "bench"))
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    if args.smoke:
        args.rows, args.epochs, args.rounds = 20_000, 2, 1
    features = scratch_dir(args, Path(args.data)) / f"peers_features_{args.rows}"
    if not (features / "train").exists():
        group = 4_096 if args.smoke else 131_072
        write_features(features / "train", args.rows, row_group_rows=group)
        for seed, split in ((1, "val"), (2, "test")):
            write_features(features / split, 2_000 if args.smoke else 20_000, seed=seed, row_group_rows=group)
    with tempfile.TemporaryDirectory(prefix="peers-") as work:
        summary = summarise(run_rounds(features, Path(work), args), args)
    write_result(args, "peers", summary)
    print(json.dumps({k: v for k, v in summary.items() if k.startswith(("ours", "scaling"))}, indent=1))


if __name__ == "__main__":
    main()

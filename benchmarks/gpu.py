"""The one-shot GPU check: the pipeline's rank side (pipeline/worker, pipeline/model) on CUDA, without Spark.

Made for an accelerator machine that has Python, CUDA torch, numpy, pandas and pyarrow but no Java, pyspark,
MLflow or Horovod: it writes its own synthetic feature Parquet (a flights-like table and 28x28 digit-like images),
builds each TrainPlan directly (the constructor fails loudly when a field is added, and the smoke test in
`make test-all` runs this script on CPU), and trains one torch DDP rank per run (one GPU = one NCCL rank) through
the pipeline's own `run_rank`. It reports, in one JSON:

  * runs: fp32, bf16 and fp16 training of the tabular MLP and the image CNN: test metrics, train samples/s,
    and the device each rank chose with the device rule;
  * loop_vs_bare: the pipeline's train samples/s / a bare torch loop over GPU-resident tensors, same network,
    batch and precision (goal >= 0.7 tabular, >= 0.9 CNN);
  * precision_gap: bf16 and fp16 test metrics minus fp32's (stated tolerance: TOLERANCE);
  * exact_resume: a run killed mid-epoch (the fault seam, in a child process) and resumed ends with the
    uninterrupted run's weights bit for bit (fp32 and fp16, whose GradScaler state is in the checkpoint).

    python benchmarks/gpu.py [--smoke] [--results DIR]     # about 2-3 minutes on one GPU; --smoke: CPU, seconds
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from harness import ROOT, bench_parser, write_result

sys.path.insert(0, str(ROOT))

TOLERANCE = {"test_auc": 0.01, "test_accuracy": 0.02}  # bf16/fp16 vs fp32, absolute
CLASSES = 10
NUMERIC, CATEGORIES = 24, (("carrier", 12), ("origin", 40))
SIZES = {
    "full": {"tabular": 200_000, "image": 30_000, "eval": 10_000},
    "smoke": {"tabular": 1_500, "image": 300, "eval": 200},
}
MODELS = {
    "tabular": {
        "factory": "mlp",
        "params": {"hidden": [256, 256], "activation": "relu", "dropout": 0.0, "norm": "none", "embedding_dim": None},
    },
    "image": {
        "factory": "cnn",
        "params": {"channels": [32, 64], "hidden": [128], "dropout": 0.0, "embedding_dim": None},
    },
}


def tabular_spec():
    from pipeline.model.spec import CategoricalVocab, FeatureSpec, LabelSpec, NumericStats

    numeric = tuple(NumericStats(f"x{i}", 0.0, 0.0, 1.0, missing_indicator=False) for i in range(NUMERIC))
    categorical = tuple(CategoricalVocab(name, tuple(f"v{j}" for j in range(size))) for name, size in CATEGORIES)
    schema = {**{n.name: "double" for n in numeric}, **{c.name: "string" for c in categorical}, "label": "int"}
    return FeatureSpec(
        input_schema=schema, numeric=numeric, categorical=categorical, label=LabelSpec("label", "binary")
    )


def image_spec():
    from pipeline.model.spec import FeatureSpec, LabelSpec
    from pipeline.model.tensor_specs import ImageSpec

    label = LabelSpec("label", "multiclass", classes=tuple(str(i) for i in range(CLASSES)))
    image = ImageSpec("digit", "L", 28, 28, (0.3,), (0.3,))
    return FeatureSpec(input_schema={"digit": "binary", "label": "int"}, images=(image,), label=label)


def write_tabular(folder: Path, spec, rows: int, seed: int) -> None:
    """Numeric inputs and two categorical indices (2.. as the model sees them) with a learnable binary label."""
    rng, rule = np.random.default_rng(seed), np.random.default_rng(99)
    weights = rule.normal(size=NUMERIC).astype(np.float32)
    effects = [rule.normal(size=size + 2) for _, size in CATEGORIES]
    x = rng.normal(size=(rows, NUMERIC)).astype(np.float32)
    cats = [rng.integers(2, size + 2, rows).astype(np.int32) for _, size in CATEGORIES]
    score = x @ weights * 0.3 + sum(effect[c] for effect, c in zip(effects, cats, strict=True))
    label = (score + rng.normal(size=rows) > 0).astype(np.float32)
    columns = {name: x[:, i] for i, name in enumerate(spec.numeric_columns)}
    columns.update(dict(zip(spec.categorical_columns, cats, strict=True)))
    _write(folder, pa.table({**columns, "label": label}))


def write_images(folder: Path, spec, rows: int, seed: int) -> None:
    """uint8 28x28 images: one fixed template per class, scaled and noised; the label is the class."""
    rng = np.random.default_rng(seed)
    templates = np.random.default_rng(98).random((CLASSES, 28 * 28))
    label = rng.integers(0, CLASSES, rows)
    pixels = templates[label] * rng.uniform(0.4, 0.9, (rows, 1)) + rng.normal(0, 0.25, (rows, 28 * 28))
    data = np.clip(pixels * 255, 0, 255).astype(np.uint8)
    column = pa.array([row.tobytes() for row in data], pa.binary())
    _write(folder, pa.table({spec.images[0].column: column, "label": label.astype(np.int64)}))


def _write(folder: Path, table: pa.Table) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, folder / "part-0.parquet", row_group_size=max(1, len(table) // 4))


def make_data(work: Path, smoke: bool) -> dict:
    """Both datasets' train/val/test features where a Layout under `work/<kind>` expects them; their specs."""
    sizes = SIZES["smoke" if smoke else "full"]
    specs = {"tabular": tabular_spec(), "image": image_spec()}
    writers = {"tabular": write_tabular, "image": write_images}
    for kind, spec in specs.items():
        prepared = _layout(work / kind).prepared
        for seed, split in enumerate(("train", "val", "test")):
            rows = sizes[kind] if split == "train" else sizes["eval"]
            writers[kind](Path(prepared.features(split)), spec, rows, seed)
    return specs


def _layout(work: Path):
    from pipeline.layout import DatedOutput, Layout

    return Layout(str(work), DatedOutput(f"{work}/predictions"), DatedOutput(f"{work}/score_quarantine"))


def make_plan(work: Path, kind: str, spec, precision: str, run_id: str, smoke: bool, use_gpu: bool, **changes):
    """A TrainPlan with every field spelled out (this machine has no pydantic config to derive it from)."""
    from pipeline.model.factory import BUILTIN_FACTORIES
    from pipeline.worker.plan import TrainPlan

    model = MODELS[kind]
    fields = {
        "layout": _layout(work / kind),
        "run_id": run_id,
        "spec": spec,
        "model": {"type": model["factory"], "factory": BUILTIN_FACTORIES[model["factory"]], "params": model["params"]},
        "epochs": 2 if smoke else 3,
        "batch_size": 64 if smoke else 1024 if kind == "tabular" else 256,
        "lr": 1e-3,
        "scale_lr_by_workers": False,
        "warmup_epochs": 0.0,
        "weight_decay": 0.0,
        "grad_clip": None,
        "backward_passes_per_step": 1,
        "fp16_allreduce": False,
        "grouped_allreduce": False,
        "patience": 100,
        "monitor": "val_loss",
        "threads_per_worker": 2 if smoke else 4,
        "shuffle_buffer_rows": 200_000,
        "max_steps_per_epoch": None,
        "seed": 7,
        "loss": None,
        "augment": {"flip": False, "crop_padding": 0},
        "precision": precision,
        "checkpoint_every_steps": None,
        "deterministic": True,
        "use_gpu": use_gpu,
    }
    return TrainPlan(**{**fields, **changes})


def run_one_rank(plan):
    """The pipeline's rank function as torch DDP with one process (NCCL on a GPU, Gloo on CPU)."""
    from pipeline.worker.backends import DDPBackend
    from pipeline.worker.rank_entry import run_rank

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(_free_port()), RANK="0", WORLD_SIZE="1")
    os.environ.update(LOCAL_RANK="0", LOCAL_WORLD_SIZE="1")
    return run_rank(plan, DDPBackend)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bare_loop(plan, steps: int) -> float:
    """Samples/s of a plain loop over GPU-resident (normalised) tensors: same network, batch, optimizer, precision."""
    import torch

    from pipeline.model.factory import build_network
    from pipeline.model.inputs import model_inputs, to_model_view
    from pipeline.model.losses import label_dtype, loss_fn
    from pipeline.worker.loader import ShardedParquetLoader
    from pipeline.worker.precision import Precision

    device = torch.device("cuda:0" if plan.use_gpu else "cpu")
    inputs = model_inputs(plan.spec)
    loader = ShardedParquetLoader(
        plan.layout.prepared.features("train"),
        list(inputs.tensors.values()),
        "label",
        plan.batch_size,
        0,
        1,
        shuffle=False,
        label_dtype=label_dtype(plan.task),
    )
    batches = [
        (to_model_view({k: v.to(device) for k, v in b.items()}, inputs), y.to(device)) for b, y in loader.eval_batches()
    ]
    batches = [(b, y) for b, y in batches if len(y) == plan.batch_size]
    torch.manual_seed(0)
    model = build_network(plan.model, inputs).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=plan.lr)
    precision = Precision(plan.precision, device, log_it=False)

    def step(i: int) -> None:
        batch, y = batches[i % len(batches)]
        with precision.autocast():
            loss = loss_fn(plan.task, model(batch), y)
        precision.backward(loss)
        if precision.scaler is not None:
            precision.scaler.step(optimizer)
            precision.scaler.update()
        else:
            optimizer.step()
        optimizer.zero_grad()

    for i in range(10):
        step(i)
    _sync(device)
    started = time.perf_counter()
    for i in range(steps):
        step(i)
    _sync(device)
    return steps * plan.batch_size / (time.perf_counter() - started)


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def training_runs(work: Path, specs: dict, smoke: bool, use_gpu: bool) -> dict:
    """fp32 / bf16 / fp16 for both networks: metrics, pipeline vs bare samples/s, and the device chosen."""
    out = {}
    for kind, spec in specs.items():
        for precision in ("fp32", "bf16", "fp16"):
            plan = make_plan(work, kind, spec, precision, f"{kind}-{precision}", smoke, use_gpu)
            result = run_one_rank(plan)
            warm = [h["train_samples_per_s"] for h in result.history[1:]]
            pipeline_sps = float(np.median(warm))
            bare_sps = bare_loop(plan, steps=5 if smoke else 200)
            out[f"{kind}_{precision}"] = {
                "test_metrics": result.test_metrics,
                "pipeline_samples_per_s": pipeline_sps,
                "bare_samples_per_s": bare_sps,
                "loop_vs_bare": pipeline_sps / bare_sps,
                "device": result.workers[0]["device"],
                "device_reason": result.workers[0]["device_reason"],
            }
            print(
                f"{kind:8s} {precision}: {result.test_metrics} pipeline/bare {pipeline_sps / bare_sps:.2f}", flush=True
            )
    return out


def precision_gaps(runs: dict) -> dict:
    """bf16 / fp16 test metrics minus fp32's, and whether each is within TOLERANCE."""
    gaps = {}
    for kind in MODELS:
        base = runs[f"{kind}_fp32"]["test_metrics"]
        for precision in ("bf16", "fp16"):
            other = runs[f"{kind}_{precision}"]["test_metrics"]
            for metric, tolerance in TOLERANCE.items():
                if metric in base:
                    gap = other[metric] - base[metric]
                    gaps[f"{kind}_{precision}_{metric}"] = {"gap": gap, "within": abs(gap) <= tolerance}
    return gaps


def exact_resume(work: Path, specs: dict, smoke: bool, use_gpu: bool) -> dict:
    """Uninterrupted vs killed at epoch 1 step 3 (a child process, the pipeline's fault seam) and resumed from the
    checkpoint at step 2: the final weights must be equal bit for bit."""
    import torch

    from pipeline import faults

    out = {}
    for kind, precision in (("tabular", "fp32"), ("tabular", "fp16"), ("image", "fp16")):
        name = f"{kind}_{precision}"
        changes = {"epochs": 2, "checkpoint_every_steps": 2, "max_steps_per_epoch": 6}
        whole = make_plan(work, kind, specs[kind], precision, f"whole-{name}", smoke, use_gpu, **changes)
        resumed = make_plan(work, kind, specs[kind], precision, f"resumed-{name}", smoke, use_gpu, **changes)
        run_one_rank(whole)
        child = [sys.executable, __file__, "--child", kind, precision, str(work)] + (["--smoke"] if smoke else [])
        env = {**os.environ, faults.ENV: "train_step:1,3,0"}
        killed = subprocess.run(child, env=env, capture_output=True, text=True, check=False)
        if killed.returncode != faults.TRAIN_STEP_EXIT_CODE:
            raise RuntimeError(
                f"the interrupted run exited {killed.returncode}:\n{killed.stdout[-2000:]}{killed.stderr[-2000:]}"
            )
        result = run_one_rank(resumed)
        weights = [torch.load(Path(p.checkpoint_dir) / "last.pt", weights_only=True)["model"] for p in (whole, resumed)]
        equal = all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
        out[name] = {"bit_identical": equal, "resumed_from_step": result.resumed_from_step}
        print(
            f"exact resume {name}: {'bit-identical' if equal else 'DIFFERENT'} "
            f"(resumed at step {result.resumed_from_step})",
            flush=True,
        )
    return out


def main(argv: list[str] | None = None) -> None:
    parser = bench_parser(__doc__)
    parser.add_argument("--child", nargs=3, metavar=("KIND", "PRECISION", "WORK"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    import torch

    use_gpu = torch.cuda.is_available() and not args.smoke
    if args.child:
        kind, precision, work = args.child
        specs = {"tabular": tabular_spec(), "image": image_spec()}
        changes = {"epochs": 2, "checkpoint_every_steps": 2, "max_steps_per_epoch": 6}
        run_one_rank(
            make_plan(
                Path(work), kind, specs[kind], precision, f"resumed-{kind}_{precision}", args.smoke, use_gpu, **changes
            )
        )
        return
    started = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="gpu-check-"))
    specs = make_data(work, args.smoke)
    device = torch.cuda.get_device_name(0) if use_gpu else "cpu"
    print(f"device: {device}; torch {torch.__version__}, CUDA {torch.version.cuda}", flush=True)
    runs = training_runs(work, specs, args.smoke, use_gpu)
    result = {
        "device": device,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "runs": runs,
        "precision_gap": precision_gaps(runs),
        "exact_resume": exact_resume(work, specs, args.smoke, use_gpu),
        "goals": {"loop_vs_bare_tabular": 0.7, "loop_vs_bare_image": 0.9, "tolerance": TOLERANCE},
        "seconds": time.perf_counter() - started,
    }
    path = write_result(args, "gpu", result)
    print(f"wrote {path} in {result['seconds']:.0f} s", flush=True)


if __name__ == "__main__":
    main()

"""Driver side of GPU training: whether the ranks use GPUs (train.device against Spark's resource settings, never
what the driver process itself sees), and the checks that turn a would-be hang into a one-line error.

Runs on the driver at launch (pipeline/launch/launchers.py). Why not `torch.cuda.is_available()` on the driver: on
a cluster the driver often has no GPU while the executors do (the ranks would silently train on CPU), and on a
local master TorchDistributor's GPU mode needs the driver's GPUs declared to Spark, not merely present.
"""

from __future__ import annotations

import logging

from pipeline.config.schema import TrainConfig
from pipeline.data.session import conf_value, is_local_master
from pipeline.errors import ConfigError
from pipeline.launch.slots import TASK_GPUS

log = logging.getLogger(__name__)
DRIVER_GPUS = "spark.driver.resource.gpu.amount"
_DISCOVERY = "spark.driver.resource.gpu.discoveryScript"


def _amount(spark, key: str) -> float:
    return float(conf_value(spark, key, "0") or 0)


def resolve_gpu_use(spark, train: TrainConfig) -> tuple[bool, str]:
    """Whether the ranks train on GPUs, and why (logged, and the reason a user reads when it is not what they
    expected). auto: GPUs where Spark hands them out (task GPUs on a cluster, the driver's on a local master)."""
    if train.device != "auto":
        return train.device == "gpu", f"train.device={train.device}"
    key = DRIVER_GPUS if is_local_master(spark) else TASK_GPUS
    amount = _amount(spark, key)
    if amount > 0:
        return True, f"train.device=auto and {key}={amount:g}"
    return False, f"train.device=auto and {key} is not set"


def check_gpu_backend(spark, train: TrainConfig, use_gpu: bool) -> None:
    """Refuse, before any rank starts, a GPU run that cannot work with the configured backend.

    Raises:
        ConfigError: Horovod built without NCCL (its background loop would throw on the first CUDA tensor and every
            rank would wait forever), or TorchDistributor without the GPU resources pyspark requires.
    """
    if not use_gpu:
        return
    if train.backend == "horovod":
        _require_nccl_horovod()
    elif is_local_master(spark):
        declared = _amount(spark, DRIVER_GPUS)
        if declared < train.num_proc:
            raise ConfigError(
                f"train.backend=torch_distributor on GPUs with a local master needs the driver's GPUs declared to "
                f"Spark: {DRIVER_GPUS}={declared:g} for train.num_proc={train.num_proc} (pyspark gives each "
                f"process one of them). Fix: set spark.extra {DRIVER_GPUS}: '{train.num_proc}' and {_DISCOVERY} "
                "(a script printing the GPU ids), or train.device=cpu"
            )
    elif _amount(spark, TASK_GPUS) <= 0:
        raise ConfigError(
            f"train.backend=torch_distributor on GPUs needs {TASK_GPUS} (pyspark assigns each task its GPUs from "
            f"it). Fix: set spark.extra {TASK_GPUS}: '1' and spark.executor.resource.gpu.amount (with a discovery "
            "script), or train.device=cpu"
        )


def _require_nccl_horovod() -> None:
    """The driver's Horovod (the same build the ranks import, on a local master or a cluster from one image)."""
    import horovod.torch as hvd

    if not hvd.nccl_built():
        raise ConfigError(
            "train.device resolves to GPU but this Horovod was built without NCCL (horovodrun --check-build shows "
            "no [X] NCCL), so its first CUDA allreduce would fail inside Horovod's background loop and every rank "
            "would wait forever. Fix: rebuild it where nvcc and CUDA torch are present (rm -rf .venv; make "
            "setup), or set train.backend=torch_distributor (NCCL comes with torch), or train.device=cpu"
        )


def check_parallel_gpu_trials(spark, train: TrainConfig, parallel: int) -> None:
    """Parallel tuning trials on GPUs of a local master: TorchDistributor picks each trial's GPUs from the driver's
    with a seed taken from the training function's hash, the same for every trial, and sets CUDA_VISIBLE_DEVICES
    process-wide, so concurrent trials would share GPUs and race on that variable. Refused."""
    use_gpu, why = resolve_gpu_use(spark, train)
    if parallel > 1 and use_gpu and is_local_master(spark):
        raise ConfigError(
            f"tune.parallel={parallel} with GPU training on a local master ({why}): concurrent trials would pick "
            "the same GPUs. Fix: tune.parallel=1, or a cluster master where Spark assigns each task its own GPU"
        )

"""The rank device rule and the GPU slot arithmetic over simulated resources: device counts, CUDA_VISIBLE_DEVICES
lists and the GPU addresses Spark hands a task (pipeline/worker/device.py, pipeline/launch/slots.py)."""

from __future__ import annotations

import pytest

from pipeline.launch.slots import Executors, slot_count
from pipeline.worker.device import DeviceError, choose_device


def test_cpu_unless_the_driver_resolved_gpu_use_even_where_cuda_is_present():
    choice = choose_device(False, 1, ["1"], None, device_count=4)
    assert choice.device == "cpu" and choice.spark_gpus == ("1",)


def test_the_gpu_spark_assigned_to_the_task_wins_over_the_local_rank():
    # Two containers that each see all 4 GPUs: local rank 0 in both, but Spark gave them GPUs 2 and 3.
    assert choose_device(True, 0, ["2"], None, 4).device == "cuda:2"
    assert choose_device(True, 0, ["3"], None, 4).device == "cuda:3"


def test_an_assigned_address_is_its_position_in_cuda_visible_devices():
    choice = choose_device(True, 0, ["5"], "4,5", 2)
    assert choice.device == "cuda:1" and "Spark assigned GPU 5" in choice.reason


def test_without_task_resources_the_local_rank_indexes_the_visible_devices():
    # TorchDistributor narrows CUDA_VISIBLE_DEVICES to the task's GPUs; its ranks go by LOCAL_RANK.
    assert choose_device(True, 1, [], "6,7", 2).device == "cuda:1"
    assert choose_device(True, 0, [], None, 1).device == "cuda:0"


def test_never_an_ordinal_past_the_visible_devices():
    # local[2] with one GPU: rank 1 would hit CUDA's "invalid device ordinal" deep inside training.
    with pytest.raises(DeviceError) as err:
        choose_device(True, 1, [], None, 1)
    message = str(err.value)
    assert "GPU ordinal 1 (local rank 1)" in message and "only 1 CUDA device(s)" in message
    assert "spark.task.resource.gpu.amount=1" in message and "train.device=cpu" in message


def test_an_assigned_gpu_hidden_by_cuda_visible_devices_is_named():
    with pytest.raises(DeviceError, match=r"Spark assigned GPU 3 .* CUDA_VISIBLE_DEVICES=0,1 hides it"):
        choose_device(True, 0, ["3"], "0,1", 2)


def test_a_non_numeric_address_is_refused_with_the_fix():
    with pytest.raises(DeviceError, match="'GPU-9f3a', which is not a CUDA ordinal.* discovery script"):
        choose_device(True, 0, ["GPU-9f3a"], None, 2)


def test_gpu_asked_for_on_a_rank_without_cuda_is_an_error_naming_the_setting():
    with pytest.raises(DeviceError) as err:
        choose_device(True, 0, ["0"], None, 0)
    assert "sees no CUDA device (Spark assigned GPU 0" in str(err.value) and "train.device=cpu" in str(err.value)


def test_slots_count_cores_only_when_tasks_ask_for_no_gpus():
    slots, why = slot_count(Executors(2, 4, 1, "2 executors"), task_cpus=1, task_gpus=0)
    assert slots == 8 and "gpu" not in why


def test_gpus_limit_the_slots_and_the_message_says_so():
    # One GPU per executor and per task: one task per executor, whatever the cores.
    slots, why = slot_count(Executors(2, 4, 1, "2 executors"), task_cpus=1, task_gpus=1)
    assert slots == 2
    assert "spark.task.resource.gpu.amount=1" in why and "GPUs allow 1 task(s) per executor, cores 4" in why


def test_fractional_task_gpus_share_a_gpu():
    assert slot_count(Executors(3, 4, 1, "3 executors"), task_cpus=1, task_gpus=0.25)[0] == 12
    assert slot_count(Executors(3, 4, 2, "3 executors"), task_cpus=2, task_gpus=0.5)[0] == 6  # cores bind


def test_executors_without_gpus_give_no_slot_to_gpu_tasks():
    assert slot_count(Executors(2, 4, 0, "2 executors"), task_cpus=1, task_gpus=1)[0] == 0


def test_batches_pass_through_unchanged_on_cpu():
    """device_batches copies one step ahead on a CUDA side stream (run by benchmarks/gpu.py); on CPU it is the
    identity, in order, including a stream that ends early."""
    import torch

    from pipeline.worker.device import device_batches

    pairs = [({"numeric": torch.full((2, 3), float(i))}, torch.tensor([i, i])) for i in range(4)]
    out = list(device_batches(iter(pairs), torch.device("cpu")))
    assert [id(b) for b, _ in out] == [id(b) for b, _ in pairs]
    assert list(device_batches(iter([]), torch.device("cpu"))) == []

"""train.precision on a rank: applied on CUDA only; CPU ranks train in fp32 and say so."""

from __future__ import annotations

import logging

import pytest
import torch

from pipeline.worker.precision import Precision


@pytest.mark.parametrize("setting", ["bf16", "fp16"])
def test_cpu_ranks_stay_fp32_and_say_so(setting, caplog):
    with caplog.at_level(logging.INFO, logger="pipeline.worker.precision"):
        precision = Precision(setting, torch.device("cpu"), log_it=True)
    assert not precision.active and precision.scaler is None
    assert f"train.precision={setting} applies on GPU only" in caplog.text
    layer = torch.nn.Linear(4, 2)
    with precision.autocast():
        out = layer(torch.randn(3, 4))
    assert out.dtype == torch.float32
    loss = out.sum()
    precision.backward(loss)
    assert layer.weight.grad is not None and layer.weight.grad.dtype == torch.float32


def test_fp32_is_silent(caplog):
    with caplog.at_level(logging.INFO, logger="pipeline.worker.precision"):
        precision = Precision("fp32", torch.device("cpu"), log_it=True)
    assert not precision.active and caplog.text == ""


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_bf16_autocast_on_cuda():
    precision = Precision("bf16", torch.device("cuda"), log_it=False)
    with precision.autocast():
        out = torch.nn.Linear(4, 2).cuda()(torch.randn(3, 4, device="cuda"))
    assert precision.active and out.dtype == torch.bfloat16

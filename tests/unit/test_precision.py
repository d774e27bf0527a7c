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


def test_the_gradient_scaler_state_survives_a_checkpoint_file(tmp_path):
    """fp16's loss scale and growth tracker go into the checkpoint (loaded weights_only) and come back, so a
    resumed run skips the same overflowing steps as an uninterrupted one. (GradScaler on CPU here: the state
    is the same plain dict on CUDA.)"""
    from pipeline.worker.checkpoint import (
        checkpoint_state,
        load_checkpoint,
        new_best,
        resume_point,
        save_checkpoint,
    )

    scaler = torch.amp.GradScaler("cpu", init_scale=1024.0, growth_interval=3)
    layer = torch.nn.Linear(2, 1)
    optimizer = torch.optim.SGD(layer.parameters(), lr=0.1)
    for value in (1.0, float("inf"), 1.0):  # one overflow halves the scale and resets the tracker
        optimizer.zero_grad()
        scaler.scale(layer(torch.full((1, 2), value)).sum()).backward()
        scaler.step(optimizer)
        scaler.update()
    saved = scaler.state_dict()
    assert saved["scale"] == 512.0 and saved["_growth_tracker"] == 1
    save_checkpoint(str(tmp_path), checkpoint_state({}, {}, 0, new_best(), [], scaler_state=saved))
    point = resume_point(load_checkpoint(str(tmp_path)), rank=0, size=1)
    resumed = torch.amp.GradScaler("cpu")
    resumed.load_state_dict(point.scaler_state)
    assert resumed.get_scale() == 512.0 and resumed.state_dict()["_growth_tracker"] == 1


def test_fp32_runs_write_no_scaler_into_checkpoints():
    from pipeline.worker.checkpoint import checkpoint_state, new_best, resume_point

    precision = Precision("fp16", torch.device("cpu"), log_it=False)  # inactive on CPU: no scaler
    state = checkpoint_state({}, {}, 0, new_best(), [], precision.scaler_state())
    assert "scaler" not in state and resume_point(state, 0, 1).scaler_state is None

"""train.precision on the rank: torch.autocast for the forward pass, and a GradScaler for fp16 (CUDA only).

Runs inside the training ranks. On CPU the setting is not applied: on this project's CPU machines bf16 autocast
was not measured to help, so CPU ranks train in fp32 and say so once. Weights, optimizer state and checkpoints
stay fp32 in every mode, so resume and the registered model are unaffected.
"""

from __future__ import annotations

import contextlib
import logging

import torch

log = logging.getLogger("pipeline.worker.precision")
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


class Precision:
    """`autocast()` for the forward and loss; `backward(loss)` scales for fp16; `scaler` goes to backend.step."""

    def __init__(self, precision: str, device: torch.device, log_it: bool, scaler_state: dict | None = None):
        """`scaler_state`: the checkpoint's GradScaler state (fp16), so a resumed run continues with the same loss
        scale and skips the same steps as an uninterrupted one."""
        self.active = precision in DTYPES and device.type == "cuda"
        self.dtype = DTYPES.get(precision)
        self.device_type = device.type
        self.scaler = torch.amp.GradScaler("cuda") if self.active and precision == "fp16" else None
        if self.scaler is not None and scaler_state:
            self.scaler.load_state_dict(scaler_state)
        if log_it and precision in DTYPES and not self.active:
            log.info("train.precision=%s applies on GPU only: training in fp32 on %s", precision, device.type)

    def scaler_state(self) -> dict | None:
        """What a checkpoint keeps of fp16's GradScaler (None without one)."""
        return self.scaler.state_dict() if self.scaler is not None else None

    def autocast(self):
        if not self.active:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device_type, dtype=self.dtype)

    def backward(self, loss: torch.Tensor) -> None:
        (self.scaler.scale(loss) if self.scaler is not None else loss).backward()

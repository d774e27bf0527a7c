"""Train-time image augmentation on the device: random horizontal flips and padded random crops, per sample.

Runs in the training ranks only, on the batch after it reached the device and was normalised; never at
validation, test or scoring. The random draws come from a generator seeded with (seed, epoch, rank), so a resumed
run repeats them exactly. Written with plain torch ops (a few vectorised masks), so it needs no torchvision.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from pipeline.model.inputs import IMAGE, Batch, ModelInputs


class Augmenter:
    """flip: mirror left-right with probability 1/2; crop_padding p: zero-pad p pixels, crop back at a random offset."""

    def __init__(self, inputs: ModelInputs, flip: bool, crop_padding: int, seed: int, device: torch.device):
        self.names = [t.name for t in inputs.of_kind(IMAGE)]
        self.flip = flip
        self.crop_padding = crop_padding
        self.seed = seed
        self.generator = torch.Generator(device=device)

    @property
    def active(self) -> bool:
        return bool(self.names) and (self.flip or self.crop_padding > 0)

    def start_epoch(self, epoch: int, rank: int) -> None:
        self.generator.manual_seed(self.seed * 1_000_003 + epoch * 1_009 + rank + 17)

    def __call__(self, batch: Batch) -> Batch:
        if not self.active:
            return batch
        out = dict(batch)
        for name in self.names:
            x = batch[name]
            if self.flip:
                flip = torch.rand(x.shape[0], generator=self.generator, device=x.device) < 0.5
                x = torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)
            if self.crop_padding > 0:
                x = self._crop(x)
            out[name] = x
        return out

    def _crop(self, x: torch.Tensor) -> torch.Tensor:
        """One gather per batch: each sample's window of the padded image at its own offset."""
        p = self.crop_padding
        rows, _, height, width = x.shape
        padded = F.pad(x, (p, p, p, p))
        dy = torch.randint(0, 2 * p + 1, (rows,), generator=self.generator, device=x.device)
        dx = torch.randint(0, 2 * p + 1, (rows,), generator=self.generator, device=x.device)
        ys = (dy.view(-1, 1) + torch.arange(height, device=x.device)).view(rows, 1, height, 1)
        xs = (dx.view(-1, 1) + torch.arange(width, device=x.device)).view(rows, 1, 1, width)
        channels = padded.shape[1]
        index_rows = ys.expand(rows, channels, height, padded.shape[3])
        picked_rows = padded.gather(2, index_rows)  # [B, C, H, W + 2p]
        return picked_rows.gather(3, xs.expand(rows, channels, height, width))

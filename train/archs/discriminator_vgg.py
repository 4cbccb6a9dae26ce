"""SRGAN's VGG-style discriminator: strided convs with BatchNorm, then a dense head: one logit per image.

Parameter names follow BasicSR's ``VGGStyleDiscriminator`` (``conv0_0``, ``conv0_1``, ``bn0_1``, ``conv1_0``,
``bn1_0``, …, ``linear1``, ``linear2``), so its 128- and 256-input checkpoints load unchanged.
"""

from __future__ import annotations

import torch
from torch import nn


def _num_stages(input_size: int) -> int:
    """Stride-2 stages until the map is at most 4×4, at least 5 (128 → 5 stages, 256 → 6, as BasicSR)."""
    stages = 5
    while input_size / 2**stages > 4:
        stages += 1
    return stages


class VGGStyleDiscriminator(nn.Module):
    """Stage i: conv3×3 (stride 1) then conv4×4 (stride 2), each + BN + LeakyReLU(0.2), channels
    num_feat·2^i capped at num_feat·8; then linear → 100 → LeakyReLU → linear → 1 raw logit.

    The dense head fixes the input size: square crops of ``input_size``, a multiple of 2^stages.
    """

    def __init__(self, num_in_ch: int = 3, num_feat: int = 64, input_size: int = 128) -> None:
        super().__init__()
        stages = _num_stages(input_size)
        if input_size % 2**stages:
            raise ValueError(f"input_size must be a multiple of {2**stages} (got {input_size})")
        self.input_size = input_size
        self.num_stages = stages
        self.conv0_0 = nn.Conv2d(num_in_ch, num_feat, 3, 1, 1, bias=True)  # no BN on the first conv
        self.conv0_1 = nn.Conv2d(num_feat, num_feat, 4, 2, 1, bias=False)
        self.bn0_1 = nn.BatchNorm2d(num_feat)
        ch = num_feat
        for i in range(1, stages):
            out = num_feat * min(2**i, 8)
            # Bias-free convs: the following BatchNorm has its own shift.
            setattr(self, f"conv{i}_0", nn.Conv2d(ch, out, 3, 1, 1, bias=False))
            setattr(self, f"bn{i}_0", nn.BatchNorm2d(out))
            setattr(self, f"conv{i}_1", nn.Conv2d(out, out, 4, 2, 1, bias=False))
            setattr(self, f"bn{i}_1", nn.BatchNorm2d(out))
            ch = out
        side = input_size // 2**stages
        self.linear1 = nn.Linear(ch * side * side, 100)
        self.linear2 = nn.Linear(100, 1)
        self.lrelu = nn.LeakyReLU(0.2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2:] != (self.input_size, self.input_size):
            raise ValueError(
                f"VGGStyleDiscriminator was built for {self.input_size}×{self.input_size} inputs, "
                f"got {x.shape[-2]}×{x.shape[-1]}; crop patches to input_size or use a fully convolutional "
                "discriminator (PatchGAN, U-Net)"
            )
        feat = self.lrelu(self.conv0_0(x))
        feat = self.lrelu(self.bn0_1(self.conv0_1(feat)))
        for i in range(1, self.num_stages):
            feat = self.lrelu(getattr(self, f"bn{i}_0")(getattr(self, f"conv{i}_0")(feat)))
            feat = self.lrelu(getattr(self, f"bn{i}_1")(getattr(self, f"conv{i}_1")(feat)))
        feat = self.lrelu(self.linear1(feat.flatten(1)))
        return self.linear2(feat)

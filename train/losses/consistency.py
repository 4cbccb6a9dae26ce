"""Clean-input consistency: pull the output on damaged LR toward what a frozen teacher draws from the clean LR.

The benchmark's artefact gain is the size of ``G(damaged) - G(clean)``. The pixel and perceptual losses only
reach it through the HR, whose detail the damage has destroyed, so the model keeps redrawing codec blocks and
noise as texture. This term targets the difference itself: the teacher (the run's starting weights, frozen)
upscales the clean LR of the same patch — antialiased bicubic ÷scale of the HR, quantised to 8 bits like the
benchmark's — and G is pulled, by L1, toward that output from whatever LR the store holds.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from upscaler.resize import bicubic_downscale


def clean_lr(hr: torch.Tensor, scale: int) -> torch.Tensor:
    """The clean LR of an (N,C,H,W) HR batch in [0, 1]: antialiased bicubic ÷scale, on the 8-bit grid."""
    return (bicubic_downscale(hr.float(), scale) * 255).round() / 255


class CleanConsistencyLoss(nn.Module):
    """``L1(output, teacher(clean_lr(hr)))``, the teacher a frozen copy of the generator given at construction."""

    def __init__(self, teacher: nn.Module, scale: int) -> None:
        super().__init__()
        self.teacher = copy.deepcopy(teacher).eval().requires_grad_(False)
        self.scale = scale

    def forward(self, output: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            target = self.teacher(clean_lr(hr, self.scale)).clamp_(0, 1)
        return (output.float() - target.float()).abs().mean()

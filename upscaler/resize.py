"""The one bicubic resize used everywhere: ``--outscale`` after the model, LR synthesis, and the baseline."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def bicubic_resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize an (N,C,H,W) float tensor to ``size`` = (H, W) with antialiased bicubic (MATLAB ``imresize``-like)."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    # antialias only matters when shrinking; it keeps LR synthesis close to MATLAB's imresize.
    return F.interpolate(x, size=size, mode="bicubic", align_corners=False, antialias=True)


def bicubic_downscale(x: torch.Tensor, scale: int) -> torch.Tensor:
    """The standard SR degradation: HR → LR by antialiased bicubic at 1/scale (sizes must divide)."""
    h, w = x.shape[-2:]
    if h % scale or w % scale:
        raise ValueError(f"size {w}x{h} is not a multiple of the scale {scale}")
    return bicubic_resize(x, (h // scale, w // scale)).clamp_(0, 1)

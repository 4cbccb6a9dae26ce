"""Pixel-shuffle grid penalty: the period-``scale`` pattern a GAN-trained sub-pixel generator paints over flat areas.

A ×s pixel-shuffle output is s² interleaved sub-images; when the adversarial and deep-VGG terms reward "more
high frequency", the cheapest way to add it is to offset those sub-images against each other, a checkerboard
of period s. Neither TV nor the pixel loss sees it at a weight that leaves texture alone (both punish all
detail alike). This term measures exactly that pattern in the output: the mean of each sub-pixel phase over
small windows of cells, minus the mean over phases, is the local periodic component; its mean square is the
loss. Texture that does not repeat with period s mostly averages out over a window.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def local_periodic(x: torch.Tensor, period: int, window: int = 4) -> torch.Tensor:
    """(N, C, period², windows): each sub-pixel phase's mean over windows of ``window``² cells, minus the mean over
    phases — the local period-``period`` pattern of ``x`` (N, C, H, W)."""
    if x.dim() != 4:
        raise ValueError(f"expected an (N, C, H, W) tensor, got shape {tuple(x.shape)}")
    if period < 2:
        raise ValueError(f"period must be at least 2, got {period}")
    n, c, h, w = x.shape
    rows, cols = h // period, w // period
    if rows == 0 or cols == 0:
        raise ValueError(f"a {h}x{w} image holds no {period}x{period} cell")
    cells = x.float()[..., : rows * period, : cols * period].reshape(n, c, rows, period, cols, period)
    phases = cells.permute(0, 1, 3, 5, 2, 4).reshape(n, c * period * period, rows, cols)
    k = min(window, rows, cols)
    local = F.avg_pool2d(phases, k, stride=k).reshape(n, c, period * period, -1)
    return local - local.mean(dim=2, keepdim=True)


def grid_loss(sr: torch.Tensor, period: int, window: int = 4) -> torch.Tensor:
    """Mean square of the output's own local period-``period`` pattern (natural images have next to none, so no
    ground truth is needed and the gradient opposes the generator's grid alone)."""
    return local_periodic(sr, period, window).pow(2).mean()

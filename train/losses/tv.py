"""Total-variation regularisers (smoothness priors against pixelated artefacts) on (N, C, H, W) batches."""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn


def _diffs(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Vertical (next row − row) and horizontal (next column − column) neighbour differences."""
    if x.dim() != 4:
        raise ValueError(f"expected an (N, C, H, W) tensor, got shape {tuple(x.shape)}")
    return x[:, :, 1:, :] - x[:, :, :-1, :], x[:, :, :, 1:] - x[:, :, :, :-1]


def tv_squared(x: torch.Tensor) -> torch.Tensor:
    """2·(Σ dh² / (C·(H−1)·W) + Σ dw² / (C·H·(W−1))) / N — each direction a mean over one image's diffs."""
    dh, dw = _diffs(x)
    n = x.shape[0]
    count_h = dh[0].numel()
    count_w = dw[0].numel()
    return 2 * (dh.pow(2).sum() / count_h + dw.pow(2).sum() / count_w) / n


def tv_beta(x: torch.Tensor, beta: float = 2.5) -> torch.Tensor:
    """Σ_{i,j} (dw[i,j]² + dh[i,j]²)^(β/2) over pixels having both a right and a lower neighbour.

    Summed over channels and pixels of each image, averaged over the batch.
    """
    dh, dw = _diffs(x)
    # Pixel (i, j) with i < H−1, j < W−1: dh[i, j] = x[i+1, j] − x[i, j], dw[i, j] = x[i, j+1] − x[i, j].
    sq = dh[:, :, :, :-1].pow(2) + dw[:, :, :-1, :].pow(2)
    return sq.pow(beta / 2).sum() / x.shape[0]


def tv_l1(x: torch.Tensor) -> torch.Tensor:
    """Anisotropic L1 TV: mean |dh| + mean |dw|."""
    dh, dw = _diffs(x)
    return dh.abs().mean() + dw.abs().mean()


class TVLoss(nn.Module):
    """Module form of :func:`tv_squared`, :func:`tv_beta` or :func:`tv_l1`."""

    def __init__(self, kind: Literal["squared", "beta", "l1"] = "squared", beta: float = 2.5) -> None:
        super().__init__()
        if kind not in ("squared", "beta", "l1"):
            raise ValueError(f"unknown TV kind {kind!r} (squared, beta, l1)")
        self.kind = kind
        self.beta = beta

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "squared":
            return tv_squared(x)
        if self.kind == "beta":
            return tv_beta(x, self.beta)
        return tv_l1(x)

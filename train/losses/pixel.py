"""Pixel losses: L1, MSE and Charbonnier (a smooth L1 that is differentiable at zero)."""

from __future__ import annotations

import torch
from torch import nn


class CharbonnierLoss(nn.Module):
    def __init__(self, eps: float = 1e-3) -> None:
        super().__init__()
        self.eps = eps

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return torch.sqrt((pred - target) ** 2 + self.eps**2).mean()


def pixel_loss(kind: str) -> nn.Module:
    if kind == "l1":
        return nn.L1Loss()
    if kind in ("mse", "l2"):
        return nn.MSELoss()
    if kind == "charbonnier":
        return CharbonnierLoss()
    raise ValueError(f"unknown pixel loss {kind!r} (l1, mse, charbonnier)")

"""Exponential moving average of the generator's weights: the copy that is validated and exported."""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from upscaler.archs import unwrap_module


class EMA:
    """``ema = d·ema + (1 − d)·model`` after every optimiser step, with d = min(decay, (1 + n) / (10 + n)).

    The warm-up term (n = updates so far) lets the average follow the model closely at first: with a flat 0.999
    the exported weights of a short run (or of the first thousand steps) would still be mostly the random
    initialisation. Buffers (e.g. BatchNorm statistics) are copied, not averaged.
    """

    def __init__(self, model: nn.Module, decay: float = 0.999) -> None:
        if not 0 <= decay < 1:
            raise ValueError(f"EMA decay must be in [0, 1), got {decay}")
        self.decay = decay
        self.num_updates = 0
        self.module = copy.deepcopy(unwrap_module(model)).eval().requires_grad_(False)

    def current_decay(self) -> float:
        return min(self.decay, (1 + self.num_updates) / (10 + self.num_updates))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        source = unwrap_module(model)
        d = self.current_decay()
        self.num_updates += 1
        ema_params = list(self.module.parameters())
        params = [p.detach() for p in source.parameters()]
        torch._foreach_lerp_(ema_params, params, 1.0 - d)  # one fused kernel per dtype/device, not one per tensor
        for ema_buf, buf in zip(self.module.buffers(), source.buffers(), strict=True):
            ema_buf.copy_(buf)

    def state_dict(self) -> dict[str, Any]:
        return {"module": self.module.state_dict(), "num_updates": self.num_updates}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.module.load_state_dict(state["module"])
        self.num_updates = int(state["num_updates"])

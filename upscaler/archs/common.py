"""Helpers shared by the architecture modules: state-dict inspection and BasicSR-style initialisation."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import torch
from torch import nn

StateDict = Mapping[str, torch.Tensor]


class ArchParamsError(ValueError):
    """The keys look like an architecture we know, but its hyper-parameters cannot be read from the shapes."""


def has_keys(state: StateDict, *keys: str) -> bool:
    return all(k in state for k in keys)


def seq_len(state: StateDict, prefix: str) -> int:
    """Length of a Sequential/ModuleList stored under ``prefix`` (highest ``prefix.N.`` index + 1)."""
    head = prefix + "."
    indices = [
        int(idx) for k in state if k.startswith(head) and (idx := k[len(head) :].split(".", 1)[0]).isdigit()
    ]
    return max(indices) + 1 if indices else 0


def shape(state: StateDict, key: str) -> tuple[int, ...]:
    if key not in state:
        raise ArchParamsError(f"missing tensor {key}")
    return tuple(state[key].shape)


def split_shuffle_channels(channels: int, in_ch: int) -> tuple[int, int]:
    """(scale, out_ch) such that ``out_ch * scale**2 == channels`` for a PixelShuffle-fed conv.

    Both are unknowns, so prefer out_ch == in_ch, then the usual image channel counts.
    """
    for out_ch in (in_ch, 3, 1, 4):
        if out_ch > 0 and channels % out_ch == 0:
            scale = math.isqrt(channels // out_ch)
            if scale * scale * out_ch == channels:
                return scale, out_ch
    raise ArchParamsError(f"cannot split {channels} upsampler channels into scale² × image channels")


@torch.no_grad()
def scaled_kaiming_init_(modules: Iterable[nn.Module], scale: float = 0.1) -> None:
    """Kaiming init shrunk by ``scale`` (BasicSR's default_init_weights): residual branches start near
    identity, which deep residual SR networks need to train stably from scratch."""
    for module in modules:
        for m in module.modules():
            # Meta tensors (networks built only to receive loaded weights) have nothing to initialise.
            if isinstance(m, nn.Conv2d) and not m.weight.is_meta:
                nn.init.kaiming_normal_(m.weight)
                m.weight.mul_(scale)
                if m.bias is not None:
                    m.bias.zero_()

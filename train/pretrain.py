"""Stage 1 (ESRGAN's PSNR-oriented pre-training): the shared loop with ``stage = "psnr"``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from .builders import build_generator
from .config import TrainConfig
from .loop import train

__all__ = ["build_generator", "pretrain"]


def pretrain(cfg: TrainConfig, log: Callable[[str], None] = print) -> Path:
    """Train with the pixel loss only and return the path of the exported ``.safetensors``."""
    result = train(replace(cfg, stage="psnr", perceptual_weight=0.0, adversarial_weight=0.0), log=log)
    assert result.weights is not None  # a single process is rank 0
    return result.weights

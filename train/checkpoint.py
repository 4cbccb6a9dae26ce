"""Training checkpoints (written atomically) and the exported ``.safetensors`` the CLI loads."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)  # a crash mid-write never leaves a truncated checkpoint under the real name


def load_checkpoint(path: Path) -> dict[str, Any]:
    return torch.load(path, map_location="cpu", weights_only=True)


def export_weights(model: nn.Module, path: Path, config: dict[str, Any]) -> None:
    """Write the generator as ``.safetensors`` with arch/scale/params metadata and the training config."""
    from upscaler.model_loading import save_model

    save_model(model, path, extra_metadata={"config": json.dumps(config), "trained_with": "upscaler train"})

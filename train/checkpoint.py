"""Training checkpoints (written atomically, loaded without unpickling code), RNG states, exported weights."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

CHECKPOINT_NAME = "checkpoint.pt"
_REQUIRED_KEYS = ("step", "rng", "generator")


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        torch.save(state, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)  # a crash mid-write never leaves a truncated checkpoint under the real name


def load_checkpoint(path: Path) -> dict[str, Any]:
    """The state ``save_checkpoint`` wrote; a one-line UpscalerError for a file that is unreadable, truncated,
    not a checkpoint, or that would import code to load (refused, never retried with unsafe unpickling)."""
    from upscaler.errors import UpscalerError
    from upscaler.models.loading import classify_load_failure, torch_load_weights

    try:
        state = torch_load_weights(path)
    except OSError as exc:
        raise UpscalerError(f"{path}: cannot read the checkpoint ({exc.strerror or exc})") from None
    except Exception as exc:
        kind, found = classify_load_failure(path, exc)
        if kind == "code":
            raise UpscalerError(f"{path}: checkpoint refused: it contains pickled code or objects that are not "
                                f"training state ({found}), which could run arbitrary code; delete it or "
                                "train into a new --out") from None
        raise UpscalerError(f"{path}: unreadable checkpoint (corrupt, truncated, or not written by "
                            "upscale train); refused: delete it or train into a new --out") from None
    missing = [key for key in _REQUIRED_KEYS if not isinstance(state, dict) or key not in state]
    if missing:
        raise UpscalerError(f"{path}: not a checkpoint of upscale train (no {', '.join(missing)}); "
                            "delete it or train into a new --out")
    return state


def rng_state() -> dict[str, Any]:
    """Every global RNG a step may draw from, in types ``torch.load(weights_only=True)`` accepts."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss],
        "python": random.getstate(),
    }


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))


def export_weights(model: nn.Module, path: Path, config: dict[str, Any], **extra: str) -> None:
    """Write the generator as ``.safetensors`` with arch/scale/params metadata and the training config (JSON),
    which ``upscaler.load_model`` (so ``upscale video --model``) reads directly."""
    from upscaler.models.loading import save_model

    metadata = {"config": json.dumps(config), "trained_with": "upscaler train", **extra}
    save_model(model, path, extra_metadata=metadata)

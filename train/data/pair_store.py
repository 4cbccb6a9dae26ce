"""Pre-generated (LR, HR) training patches: made once by ``python -m train.make_pairs``, read by training runs.

The clip degradation (H.264 over whole clips, second-order blur/noise/JPEG) costs far more CPU than a training
step of the compact model, so it runs once, ahead of training, into shards outside the repo: each shard is an
uncompressed ``.npz`` of ``lr`` (N,p/s,p/s,3) and ``hr`` (N,p,p,3) uint8 arrays plus a ``meta`` JSON string
(scale, patch size, and what degradation each patch got). Shards are written under a temporary name and renamed,
so an interrupted generation resumes by skipping the shards that exist.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from .datasets import _to_chw, dihedral, random_crop

SHARD_GLOB = "shard-*.npz"


def shard_name(index: int) -> str:
    return f"shard-{index:05d}.npz"


def write_shard(path: Path, lr: np.ndarray, hr: np.ndarray, meta: dict[str, Any]) -> None:
    """Write one shard atomically (a crash leaves no shard under the final name)."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        np.savez(f, lr=lr, hr=hr, meta=np.array(json.dumps(meta)))
    os.replace(tmp, path)


def read_meta(path: Path) -> dict[str, Any]:
    with np.load(path) as z:
        return json.loads(str(z["meta"]))


class PatchStoreDataset(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """Every patch of the shards in ``dirs``, held in memory, with a random flip/rotation (and a random aligned
    crop when ``patch_size`` is below the stored size), seeded by (seed, index) like the other datasets."""

    def __init__(self, dirs: list[Path], patch_size: int, scale: int, *, seed: int = 0,
                 patches_per_image: int = 1) -> None:
        shards = sorted(p for d in dirs for p in Path(d).glob(SHARD_GLOB))
        if not shards:
            raise ValueError(f"no patch shards ({SHARD_GLOB}) in {', '.join(map(str, dirs))}; "
                             "make them with python -m train.make_pairs")
        lrs, hrs = [], []
        for path in shards:
            with np.load(path) as z:
                meta = json.loads(str(z["meta"]))
                if meta["scale"] != scale:
                    raise ValueError(f"{path}: patches are x{meta['scale']}, the run is x{scale}")
                if meta["patch_size"] < patch_size:
                    raise ValueError(f"{path}: stored patches are {meta['patch_size']} px, "
                                     f"smaller than patch_size {patch_size}")
                lrs.append(z["lr"])
                hrs.append(z["hr"])
        self.lr = np.concatenate(lrs)
        self.hr = np.concatenate(hrs)
        self.patch_size = patch_size
        self.scale = scale
        self.seed = seed
        self.patches_per_image = patches_per_image  # kept for build_dataset's epoch sizing
        self.shards = len(shards)

    @property
    def sources(self) -> np.ndarray:
        return self.lr

    def __len__(self) -> int:
        return len(self.lr) * self.patches_per_image

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        rng = np.random.default_rng([self.seed, int(index)])
        i = int(index) % len(self.lr)
        lr, hr = self.lr[i], self.hr[i]
        s, lp = self.scale, self.patch_size // self.scale
        if lr.shape[0] > lp:
            y, x = random_crop(lr, lp, rng)
            lr = lr[y : y + lp, x : x + lp]
            hr = hr[y * s : (y + lp) * s, x * s : (x + lp) * s]
        k, flip = int(rng.integers(4)), bool(rng.integers(2))
        return _to_chw(dihedral(lr, k, flip)), _to_chw(dihedral(hr, k, flip))

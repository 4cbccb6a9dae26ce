"""Paired HR/LR patches from folders of HR images, LR made on the fly by bicubic downscaling."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch

from upscaler.resize import bicubic_downscale

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"}


def list_images(dirs: list[Path]) -> list[Path]:
    files = sorted(p for d in dirs for p in Path(d).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ValueError(f"no training images found in {', '.join(map(str, dirs))}")
    return files


def load_rgb(path: Path) -> np.ndarray:
    """uint8 (H,W,3) RGB; grayscale images are replicated to three channels."""
    img = cv2.imdecode(np.fromfile(path, dtype=np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        raise ValueError(f"{path}: cannot decode image")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


class PairedPatches:
    """Draws random (LR, HR) patch batches; images are kept decoded in memory (the sets here are small)."""

    def __init__(self, dirs: list[Path], patch_size: int, scale: int, seed: int = 0) -> None:
        self.images = [load_rgb(p) for p in list_images(dirs)]
        self.images = [im for im in self.images if min(im.shape[:2]) >= patch_size]
        if not self.images:
            raise ValueError(f"no training image is at least {patch_size}px on its short side")
        self.patch_size = patch_size
        self.scale = scale
        self.rng = np.random.default_rng(seed)

    def batch(self, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        p = self.patch_size
        crops = []
        for _ in range(batch_size):
            im = self.images[self.rng.integers(len(self.images))]
            y = self.rng.integers(im.shape[0] - p + 1)
            x = self.rng.integers(im.shape[1] - p + 1)
            crop = im[y : y + p, x : x + p]
            # Random dihedral augmentation: flips and 90° rotations.
            crop = np.rot90(crop, k=int(self.rng.integers(4)))
            if self.rng.integers(2):
                crop = crop[:, ::-1]
            crops.append(np.ascontiguousarray(crop))
        hr = torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float().div_(255)
        lr = bicubic_downscale(hr, self.scale)
        # The LR a model sees at inference is quantised to 8 bits; train on the same.
        lr = (lr * 255).round_().div_(255)
        return lr, hr

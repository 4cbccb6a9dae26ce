"""Listing and decoding the image files a training run reads."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

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

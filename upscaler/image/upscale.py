"""Upscale one still image, alpha and gray included, around an RGB-only network function."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import cv2
import numpy as np

from ..fileio import check_output_path, output_lock
from .io import Image, image_format, read_image, to_gray, write_image

# (N, H, W, 3) RGB uint8/uint16 -> (N, H', W', 3) of the same dtype; the engine tiles inside it.
RgbFn = Callable[[np.ndarray], np.ndarray]
AlphaMode = Literal["model", "bicubic"]


@dataclass(frozen=True)
class ImageResult:
    src: Path
    dst: Path
    in_size: tuple[int, int]  # (width, height), upright
    out_size: tuple[int, int]
    seconds: float
    notes: list[str] = dataclasses.field(default_factory=list)  # what the output format could not hold


def upscale_image_array(image: Image, rgb_fn: RgbFn, *, alpha_mode: AlphaMode = "model") -> Image:
    """Run ``rgb_fn`` on the colour and upscale the alpha alongside it; metadata is kept.

    Gray images go through the network as RGB and come back as BT.601 luma, repeated on the three
    channels so that ``rgb`` stays (H, W, 3). Alpha with ``alpha_mode="model"`` goes through the
    network as a gray image (sharp edges, as Real-ESRGAN does); ``"bicubic"`` is cheaper and cannot
    invent halos. A fully opaque alpha skips both and stays fully opaque.
    """
    rgb = _run(rgb_fn, image.rgb)
    if image.gray:
        rgb = cv2.cvtColor(to_gray(rgb), cv2.COLOR_GRAY2RGB)
    alpha = None if image.alpha is None else _upscale_alpha(image.alpha, rgb.shape[:2], rgb_fn, alpha_mode)
    return dataclasses.replace(image, rgb=rgb, alpha=alpha)


def upscale_image_file(
    src: Path | str,
    dst: Path | str,
    rgb_fn: RgbFn,
    *,
    overwrite: bool = False,
    quality: int | None = None,
    alpha_mode: AlphaMode = "model",
) -> ImageResult:
    """Read ``src``, upscale it, write ``dst`` atomically (format from its extension)."""
    src, dst = Path(src), Path(dst)
    check_output_path(src, dst, overwrite)
    image_format(dst)  # fail on a bad extension before spending minutes on the network
    start = time.perf_counter()
    # Locked before the work, not just around the write: a second run on the same output stops at once.
    with output_lock(dst, overwrite=overwrite):
        image = read_image(src)
        out = upscale_image_array(image, rgb_fn, alpha_mode=alpha_mode)
        notes = write_image(dst, out, quality=quality)
    return ImageResult(
        src=src,
        dst=dst,
        in_size=(image.width, image.height),
        out_size=(out.width, out.height),
        seconds=time.perf_counter() - start,
        notes=notes,
    )


def _run(rgb_fn: RgbFn, rgb: np.ndarray) -> np.ndarray:
    out = rgb_fn(rgb[None])
    if not isinstance(out, np.ndarray) or out.ndim != 4 or out.shape[0] != 1 or out.shape[3] != 3:
        raise ValueError(f"rgb_fn must return (1, H, W, 3), got {getattr(out, 'shape', type(out))}")
    if out.dtype != rgb.dtype:
        raise ValueError(f"rgb_fn must keep the dtype {rgb.dtype}, got {out.dtype}")
    return out[0]


def _upscale_alpha(alpha: np.ndarray, size_hw: tuple[int, int], rgb_fn: RgbFn, mode: AlphaMode) -> np.ndarray:
    full = np.iinfo(alpha.dtype).max
    if np.all(alpha == full):
        return np.full(size_hw, full, dtype=alpha.dtype)
    if mode == "bicubic":
        return cv2.resize(alpha, (size_hw[1], size_hw[0]), interpolation=cv2.INTER_CUBIC)
    if mode != "model":
        raise ValueError(f"alpha_mode must be 'model' or 'bicubic', got {mode!r}")
    out = to_gray(_run(rgb_fn, cv2.cvtColor(alpha, cv2.COLOR_GRAY2RGB)))
    if out.shape != tuple(size_hw):
        raise ValueError(f"rgb_fn gave alpha {out.shape} but colour {size_hw}")
    return out

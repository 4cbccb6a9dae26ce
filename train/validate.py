"""Validation on a bench folder: PSNR-Y and SSIM of the model and of bicubic on bicubic-downscaled HR images,
plus a side-by-side PNG (LR nearest-upscaled | bicubic | output | HR) of crops from the first images."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from upscaler.metrics import grid_score, psnr_y, ssim
from upscaler.resize import bicubic_downscale, bicubic_resize

from .data.images import list_images, load_rgb


@dataclass(frozen=True)
class ValResult:
    psnr_y: float
    ssim: float
    bicubic_psnr_y: float
    bicubic_ssim: float
    grid: float  # mean ``grid_score`` of the outputs (pixel-shuffle checkerboard; ~10 for an L1 x4 model)

    def __str__(self) -> str:
        return (f"val PSNR-Y {self.psnr_y:.2f} dB SSIM {self.ssim:.4f} "
                f"(bicubic {self.bicubic_psnr_y:.2f} dB {self.bicubic_ssim:.4f})")


def load_bench(folder: Path, scale: int) -> list[torch.Tensor]:
    """(1,3,H,W) HR images in [0,1], cropped to multiples of ``scale``."""
    images = []
    for path in list_images([folder]):
        hr = torch.from_numpy(load_rgb(path)).permute(2, 0, 1)[None].float() / 255
        h, w = hr.shape[-2:]
        images.append(hr[..., : h - h % scale, : w - w % scale])
    return images


def make_lr(hr: torch.Tensor, scale: int) -> torch.Tensor:
    """The bench LR: bicubic ÷scale, quantised to 8 bits as a saved image would be."""
    return (bicubic_downscale(hr, scale) * 255).round() / 255


@torch.no_grad()
def validate(
    model: nn.Module, folder: Path, scale: int, grid_path: Path | None = None, grid_images: int = 2
) -> ValResult:
    """Mean metrics over the folder (border of ``scale`` px cropped); writes the crop grid to ``grid_path``."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    rows: list[np.ndarray] = []
    scores: list[tuple[float, float, float, float, float]] = []
    for i, hr in enumerate(load_bench(folder, scale)):
        lr = make_lr(hr, scale)
        sr = model(lr.to(device)).float().cpu().clamp(0, 1)
        bicubic = bicubic_resize(lr, hr.shape[-2:]).clamp(0, 1)
        scores.append((psnr_y(sr, hr, scale), ssim(sr, hr, scale),
                       psnr_y(bicubic, hr, scale), ssim(bicubic, hr, scale), grid_score(sr, scale)))
        if grid_path is not None and i < grid_images:
            rows.append(_grid_row(lr, bicubic, sr, hr, scale))
    model.train(was_training)
    if not scores:
        raise ValueError(f"{folder}: no bench images")
    if rows:
        write_grid(grid_path, rows)
    means = np.mean(np.array(scores), axis=0)
    return ValResult(*(float(m) for m in means))


def _grid_row(lr: torch.Tensor, bicubic: torch.Tensor, sr: torch.Tensor, hr: torch.Tensor, scale: int) -> np.ndarray:
    """A centred crop (at most 64 LR pixels a side) of each panel, side by side, as uint8 RGB."""
    h, w = hr.shape[-2:]
    side = min(h, w, 64 * scale) // scale * scale
    top, left = (h - side) // 2 // scale * scale, (w - side) // 2 // scale * scale
    lr_crop = lr[..., top // scale : (top + side) // scale, left // scale : (left + side) // scale]
    panels = [F.interpolate(lr_crop, scale_factor=scale, mode="nearest")]
    panels += [x[..., top : top + side, left : left + side] for x in (bicubic, sr, hr)]
    row = torch.cat(panels, dim=-1)[0].permute(1, 2, 0).numpy()
    return (np.clip(row, 0, 1) * 255 + 0.5).astype(np.uint8)


def write_grid(path: Path, rows: list[np.ndarray]) -> None:
    width = max(r.shape[1] for r in rows)
    padded = [np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0))) for r in rows]
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), cv2.cvtColor(np.concatenate(padded, axis=0), cv2.COLOR_RGB2BGR)):
        raise OSError(f"{path}: cannot write the validation grid")

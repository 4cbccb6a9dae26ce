"""Image-quality metrics as SR papers report them: PSNR on the Y channel with a ``scale``-pixel border cropped."""

from __future__ import annotations

import math

import torch


def rgb_to_y(x: torch.Tensor) -> torch.Tensor:
    """ITU-R BT.601 luma in [16/255, 235/255] from RGB in [0, 1], the convention of MATLAB's rgb2ycbcr."""
    r, g, b = x[:, 0], x[:, 1], x[:, 2]
    return (16.0 + 65.481 * r + 128.553 * g + 24.966 * b).unsqueeze(1) / 255.0


def psnr_y(sr: torch.Tensor, hr: torch.Tensor, crop_border: int = 0) -> float:
    """PSNR in dB between two (1,3,H,W) images in [0,1], on Y, both quantised to 8 bits first like saved PNGs."""
    sr = (sr.clamp(0, 1) * 255).round() / 255
    hr = (hr.clamp(0, 1) * 255).round() / 255
    if crop_border:
        sr = sr[..., crop_border:-crop_border, crop_border:-crop_border]
        hr = hr[..., crop_border:-crop_border, crop_border:-crop_border]
    mse = torch.mean((rgb_to_y(sr.double()) - rgb_to_y(hr.double())) ** 2).item()
    return float("inf") if mse == 0 else 10 * math.log10(1.0 / mse)

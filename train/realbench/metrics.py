"""Per-frame and per-source metrics of the real-footage benchmark, on uint8 RGB arrays.

PSNR-Y, SSIM-Y and the grid score are ``upscaler.metrics``' definitions (the README's bench table): the grid
score is that function, PSNR-Y and SSIM-Y are numpy/cv2 ports of ``psnr_y`` and ``ssim`` for 8-bit frames
(equal to 1e-9, ``tests/test_realbench.py``), because the torch float64 11x11 convolution takes ~6 s per 720p
frame on a 2-core CPU and the separable cv2 one ~0.05 s. The rest are defined here: sharpness (detail
relative to the ground truth) and artefact gain (how much of the LR's damage a model passes on, relative to
bicubic).
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import torch

from upscaler.metrics import grid_score

from .flicker import luma


def to_tensor(frame: np.ndarray) -> torch.Tensor:
    """uint8 (H,W,3) → (1,3,H,W) float in [0,1]."""
    return torch.from_numpy(np.ascontiguousarray(frame)).permute(2, 0, 1)[None].float() / 255


def _crop(x: np.ndarray, border: int) -> np.ndarray:
    return x[..., border:-border, border:-border] if border else x


def y64(frame: np.ndarray) -> np.ndarray:
    """MATLAB rgb2ycbcr luma of uint8 RGB in [0,1] units, float64 (``upscaler.metrics.rgb_to_y``)."""
    x = frame.astype(np.float64) / 255.0
    return (16.0 + 65.481 * x[..., 0] + 128.553 * x[..., 1] + 24.966 * x[..., 2]) / 255.0


def psnr_y_u8(out: np.ndarray, hr: np.ndarray, border: int = 0) -> float:
    """``upscaler.metrics.psnr_y`` of two uint8 RGB frames (already 8-bit, so its quantisation is a no-op)."""
    mse = float(np.mean((_crop(y64(out), border) - _crop(y64(hr), border)) ** 2))
    return float("inf") if mse == 0 else 10 * math.log10(1.0 / mse)


_G = cv2.getGaussianKernel(11, 1.5, cv2.CV_64F)  # equals upscaler.metrics' normalised 1-D window
_C1, _C2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2


def ssim_u8(out: np.ndarray, hr: np.ndarray, border: int = 0) -> float:
    """``upscaler.metrics.ssim`` of two uint8 RGB frames: Y in 0-255, 11x11 Gaussian (σ 1.5), the map over
    the valid positions only. The window is separable, so two 11-tap passes replace the 121-tap one."""
    x, y = (_crop(y64(a), border) * 255 for a in (out, hr))
    if min(x.shape) < 11:
        raise ValueError(f"SSIM needs images of at least 11x11 after the border crop, got {x.shape}")

    def blur(t: np.ndarray) -> np.ndarray:
        # Any border mode, then keep only the positions whose window lies inside: conv2d's "valid".
        return cv2.sepFilter2D(t, cv2.CV_64F, _G, _G, borderType=cv2.BORDER_REFLECT_101)[5:-5, 5:-5]

    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x**2
    var_y = blur(y * y) - mu_y**2
    cov = blur(x * y) - mu_x * mu_y
    ssim_map = ((2 * mu_x * mu_y + _C1) * (2 * cov + _C2)) / ((mu_x**2 + mu_y**2 + _C1) * (var_x + var_y + _C2))
    return float(ssim_map.mean())


def frame_metrics(out: np.ndarray, hr: np.ndarray, scale: int) -> dict[str, float]:
    """PSNR-Y, SSIM-Y (``scale`` px border cropped) and mean |Laplacian| of the output's Y."""
    return {"psnr_y": psnr_y_u8(out, hr, scale), "ssim_y": ssim_u8(out, hr, scale),
            "laplacian": laplacian(out, scale)}


def grid(out: np.ndarray, scale: int) -> float:
    """``upscaler.metrics.grid_score`` (period = scale) of a uint8 RGB frame."""
    return grid_score(to_tensor(out), scale)


def laplacian(frame: np.ndarray, border: int = 0) -> float:
    """Mean |Laplacian| of the luma in [0,1] units (3x3 kernel): how much fine detail a frame holds."""
    y = luma(frame).astype(np.float64) / 255.0
    return float(np.abs(_crop(cv2.Laplacian(y, cv2.CV_64F), border)).mean())


def sharpness(outs: list[np.ndarray], hrs: list[np.ndarray], border: int = 0) -> float:
    """Mean |Laplacian| of the outputs' Y over the HR frames': 1.0 is as detailed as the truth (more can be
    noise or ringing); bicubic scores about 0.3-0.5 at x4."""
    return float(np.mean([laplacian(o, border) for o in outs]) / np.mean([laplacian(h, border) for h in hrs]))


def damage_energy(damaged: list[np.ndarray], clean: list[np.ndarray], border: int = 0) -> float:
    """Mean square (Y, code values²) of the change an LR condition made to a row's outputs."""
    diffs = [_crop(luma(d) - luma(c), border).astype(np.float64) for d, c in zip(damaged, clean, strict=True)]
    return float(np.mean([np.mean(x**2) for x in diffs]))


def gain_from_energy(model_energy: float, bicubic_energy: float) -> float:
    return float(np.sqrt(model_energy / bicubic_energy)) if bicubic_energy > 0 else float("nan")


def artefact_gain(damaged: list[np.ndarray], clean: list[np.ndarray], bicubic_damaged: list[np.ndarray],
                  bicubic_clean: list[np.ndarray], border: int = 0) -> float:
    """RMS of (output on the damaged LR − output on the clean LR) over the same RMS for bicubic. 1 passes the
    damage on as bicubic does, > 1 amplifies it (e.g. sharpened blocking or noise), < 1 cleans it up."""
    return gain_from_energy(damage_energy(damaged, clean, border),
                            damage_energy(bicubic_damaged, bicubic_clean, border))

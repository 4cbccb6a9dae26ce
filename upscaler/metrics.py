"""Image-quality metrics as SR papers report them: PSNR and SSIM on the Y channel with a border cropped."""

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


def _gaussian_window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    g /= g.sum()
    return torch.outer(g, g)[None, None]


def ssim(sr: torch.Tensor, hr: torch.Tensor, crop_border: int = 0) -> float:
    """SSIM (Wang et al. 2004) on Y as SR papers report it: both images quantised to 8 bits, Y in 0–255 units,
    an 11×11 Gaussian window (σ 1.5), K1 0.01, K2 0.03, the map averaged over the "valid" positions only (no
    padding) after cropping ``crop_border`` pixels. Inputs are (N,3,H,W) in [0,1]; the mean over the batch."""
    sr = (sr.clamp(0, 1) * 255).round() / 255
    hr = (hr.clamp(0, 1) * 255).round() / 255
    if crop_border:
        sr = sr[..., crop_border:-crop_border, crop_border:-crop_border]
        hr = hr[..., crop_border:-crop_border, crop_border:-crop_border]
    x, y = rgb_to_y(sr.double()) * 255, rgb_to_y(hr.double()) * 255
    window = _gaussian_window().to(x.device)
    if min(x.shape[-2:]) < window.shape[-1]:
        raise ValueError(f"SSIM needs images of at least 11×11 after the border crop, got {tuple(x.shape[-2:])}")

    def blur(t: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.conv2d(t, window)

    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x**2
    var_y = blur(y * y) - mu_y**2
    cov = blur(x * y) - mu_x * mu_y
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return float(ssim_map.mean())


def grid_score(x: torch.Tensor, period: int) -> float:
    """How strongly a (1,3,H,W) image repeats with ``period`` pixels: the pixel-shuffle checkerboard a GAN-trained
    x``period`` network can grow. The median, over the (period² − 1) non-zero harmonics of 1/period, of each
    harmonic's luma power spectrum peak over the median power of the ring around it (Chebyshev distance 2-3).
    About 1-3 for natural photos; an L1-trained x4 model scores ~10 on Set14, a visible grid 50 and up."""
    y = rgb_to_y(x.double().clamp(0, 1))[0, 0]
    h, w = (s - s % (4 * period) for s in y.shape)
    y = y[:h, :w] - y[:h, :w].mean()
    power = torch.fft.fft2(y).abs() ** 2
    ring = [(a, b) for a in range(-3, 4) for b in range(-3, 4) if max(abs(a), abs(b)) >= 2]
    ratios = []
    for i in range(period):
        for j in range(period):
            if i == j == 0:
                continue
            ci, cj = i * h // period, j * w // period
            around = torch.stack([power[(ci + a) % h, (cj + b) % w] for a, b in ring])
            ratios.append(float(power[ci, cj] / around.median().clamp_min(1e-20)))
    return float(torch.tensor(ratios).median())

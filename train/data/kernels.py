"""Blur kernels for synthetic degradations: Gaussian family, plateau and sinc (circular low-pass).

Every kernel is a float32 (size, size) array, size odd, normalised to sum to 1. The shapes follow the
Real-ESRGAN paper's kernel zoo; the random sampler draws them with its default probabilities.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

KERNEL_SIZES = tuple(range(7, 22, 2))  # 7, 9, ..., 21


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    if size < 1 or size % 2 == 0:
        raise ValueError(f"kernel size must be odd and positive, got {size}")
    r = np.arange(size, dtype=np.float64) - size // 2
    return np.meshgrid(r, r, indexing="xy")  # x varies along columns, y along rows


def _mahalanobis_sq(size: int, sigma_x: float, sigma_y: float, theta: float) -> np.ndarray:
    """x^T Σ^-1 x on the kernel grid, Σ = R(θ) diag(σx², σy²) R(θ)^T."""
    if sigma_x <= 0 or sigma_y <= 0:
        raise ValueError(f"sigmas must be positive, got {sigma_x}, {sigma_y}")
    x, y = _grid(size)
    c, s = math.cos(theta), math.sin(theta)
    # Coordinates in the kernel's own (rotated) frame, where the covariance is diagonal.
    u = c * x + s * y
    v = -s * x + c * y
    return (u / sigma_x) ** 2 + (v / sigma_y) ** 2


def _normalise(k: np.ndarray) -> np.ndarray:
    return (k / k.sum()).astype(np.float32)


def gaussian(size: int, sigma_x: float, sigma_y: float | None = None, theta: float = 0.0) -> np.ndarray:
    """Gaussian kernel; isotropic when ``sigma_y`` is None (or equal to ``sigma_x``)."""
    sigma_y = sigma_x if sigma_y is None else sigma_y
    return _normalise(np.exp(-0.5 * _mahalanobis_sq(size, sigma_x, sigma_y, theta)))


def generalized_gaussian(
    size: int, sigma_x: float, sigma_y: float | None = None, theta: float = 0.0, beta: float = 1.0
) -> np.ndarray:
    """exp(-½ (x^T Σ^-1 x)^β): β < 1 gives heavier tails than a Gaussian, β > 1 a flatter top."""
    sigma_y = sigma_x if sigma_y is None else sigma_y
    return _normalise(np.exp(-0.5 * _mahalanobis_sq(size, sigma_x, sigma_y, theta) ** beta))


def plateau(
    size: int, sigma_x: float, sigma_y: float | None = None, theta: float = 0.0, beta: float = 1.0
) -> np.ndarray:
    """1 / (1 + (x^T Σ^-1 x)^β): a flat top with slowly decaying (Cauchy-like) tails."""
    sigma_y = sigma_x if sigma_y is None else sigma_y
    return _normalise(1.0 / (1.0 + _mahalanobis_sq(size, sigma_x, sigma_y, theta) ** beta))


def _bessel_j1(x: np.ndarray) -> np.ndarray:
    """J1(x) = (1/π) ∫_0^π cos(τ - x sin τ) dτ; the integrand is smooth and periodic, so a plain
    trapezoid rule converges exponentially (numpy has no Bessel J, and scipy is not a dependency)."""
    tau = np.linspace(0.0, np.pi, 257)
    vals = np.cos(tau[:, None] - np.multiply.outer(np.sin(tau), x.ravel()))
    return np.trapezoid(vals, tau, axis=0).reshape(x.shape) / np.pi


def sinc(size: int, cutoff: float) -> np.ndarray:
    """Ideal circular low-pass filter with angular cutoff ``cutoff`` (radians/pixel, ≤ π), truncated to
    ``size``: the 2-D "jinc" ωc·J1(ωc·r)/(2πr). Its ringing mimics over-sharpening and ringing artefacts."""
    if not 0 < cutoff <= math.pi:
        raise ValueError(f"cutoff must be in (0, π], got {cutoff}")
    x, y = _grid(size)
    r = np.hypot(x, y)
    safe = np.where(r == 0, 1.0, r)
    k = np.where(r == 0, cutoff**2 / (4 * math.pi), cutoff * _bessel_j1(cutoff * safe) / (2 * math.pi * safe))
    return _normalise(k)


def identity(size: int = 1) -> np.ndarray:
    """The no-op kernel (a centred unit impulse)."""
    k = np.zeros((size, size), np.float32)
    k[size // 2, size // 2] = 1.0
    return k


@dataclass(frozen=True)
class KernelSampler:
    """Random blur kernels for one degradation round (defaults: Real-ESRGAN's first round).

    ``kind_probs`` weights (iso, aniso, generalised iso, generalised aniso, plateau iso, plateau aniso).
    """

    sigma_range: tuple[float, float] = (0.2, 3.0)
    beta_gaussian_range: tuple[float, float] = (0.5, 4.0)
    beta_plateau_range: tuple[float, float] = (1.0, 2.0)
    kind_probs: tuple[float, float, float, float, float, float] = (0.45, 0.25, 0.12, 0.03, 0.12, 0.03)
    sinc_prob: float = 0.1
    sizes: tuple[int, ...] = KERNEL_SIZES

    def __call__(self, rng: np.random.Generator) -> np.ndarray:
        size = int(rng.choice(self.sizes))
        if rng.random() < self.sinc_prob:
            # Small kernels cannot represent low cutoffs without severe truncation.
            low = math.pi / 3 if size < 13 else math.pi / 5
            return sinc(size, rng.uniform(low, math.pi))
        probs = np.asarray(self.kind_probs, np.float64)
        kind = int(rng.choice(len(probs), p=probs / probs.sum()))
        shape, anisotropic = divmod(kind, 2)
        sx = rng.uniform(*self.sigma_range)
        sy, theta = sx, 0.0
        if anisotropic:
            sy, theta = rng.uniform(*self.sigma_range), rng.uniform(-math.pi, math.pi)
        if shape == 0:
            return gaussian(size, sx, sy, theta)
        beta_range = self.beta_gaussian_range if shape == 1 else self.beta_plateau_range
        # Half the draws below 1 and half above, so sharp-peaked and flat-topped shapes are equally likely.
        beta = rng.uniform(beta_range[0], 1.0) if rng.random() < 0.5 else rng.uniform(1.0, beta_range[1])
        make = generalized_gaussian if shape == 1 else plateau
        return make(size, sx, sy, theta, beta)


def random_sinc(rng: np.random.Generator, sizes: tuple[int, ...] = KERNEL_SIZES) -> np.ndarray:
    """A sinc kernel for the final filtering step (cutoff in [π/3, π])."""
    return sinc(int(rng.choice(sizes)), rng.uniform(math.pi / 3, math.pi))

"""NIQE (Mittal, Soundararajan & Bovik 2013): how far an image's local statistics are from those of pristine
natural images; lower is more natural. No reference image is needed, which is what real footage lacks.

A numpy/cv2 port of the official MATLAB ``computequality`` (96x96 blocks, no overlap, two scales, MATLAB's
antialiased bicubic ``imresize`` by 0.5), with the official pristine model (``niqe_params.py``), on the MATLAB
``rgb2ycbcr`` luma rounded to integers as BasicSR does. BasicSR publishes MATLAB R2021a's value for its
``tests/data/baboon.png`` (Set14's baboon): 5.72957338. This port gives 5.72996 on
``shared/images/bench/Set14/baboon.png`` (|diff| 3.9e-4, tested to 1e-3 in ``tests/test_realbench.py``).
BasicSR's own code on that file gives 5.72956, but 5.72995 when its float32 image is made float64: the gap is
the precision of the local variance (E[x²] - mu² cancels in float32) in one near-flat block, where the AGGD
fit then lands on a neighbouring entry of its 0.001-step table. This port keeps float64 throughout.
"""

from __future__ import annotations

import math
from functools import lru_cache

import cv2
import numpy as np

from .niqe_params import COV, MU

BLOCK = 96  # the official block size, the one the pristine model was fitted with


def _gamma(x: np.ndarray) -> np.ndarray:
    return np.vectorize(math.gamma, otypes=[np.float64])(x)


@lru_cache(maxsize=1)
def _aggd_table() -> tuple[np.ndarray, np.ndarray]:
    # The MATLAB release's lookup grid (0.2:0.001:10) of the generalised Gaussian's moment ratio.
    gam = np.arange(0.2, 10.001, 0.001)
    r_gam = _gamma(2 / gam) ** 2 / (_gamma(1 / gam) * _gamma(3 / gam))
    return gam, r_gam


def _aggd(block: np.ndarray) -> tuple[float, float, float]:
    """Asymmetric generalised Gaussian fit (alpha, left sigma, right sigma) by moment matching."""
    x = block.ravel()
    gam, r_gam = _aggd_table()
    with np.errstate(invalid="ignore", divide="ignore"):
        left = np.sqrt(np.mean(x[x < 0] ** 2)) if np.any(x < 0) else np.nan
        right = np.sqrt(np.mean(x[x > 0] ** 2)) if np.any(x > 0) else np.nan
        gammahat = left / right
        rhat = np.mean(np.abs(x)) ** 2 / np.mean(x**2)
        rhatnorm = rhat * (gammahat**3 + 1) * (gammahat + 1) / (gammahat**2 + 1) ** 2
    if not np.isfinite(rhatnorm):
        return np.nan, np.nan, np.nan  # a flat block: NaN features, dropped like MATLAB's nanmean/nancov do
    # r_gam rises monotonically, so the nearest entry (np.argmin of the squared gap) is one of two neighbours.
    i = int(np.clip(np.searchsorted(r_gam, rhatnorm), 1, len(r_gam) - 1))
    alpha = float(gam[i - 1] if (r_gam[i - 1] - rhatnorm) ** 2 <= (r_gam[i] - rhatnorm) ** 2 else gam[i])
    ratio = math.sqrt(math.gamma(1 / alpha) / math.gamma(3 / alpha))
    return alpha, float(left) * ratio, float(right) * ratio


def _block_features(block: np.ndarray) -> list[float]:
    alpha, bl, br = _aggd(block)
    feat = [alpha, (bl + br) / 2]
    # Products of neighbours (horizontal, vertical, both diagonals), circularly shifted like MATLAB's circshift.
    for shift in ((0, 1), (1, 0), (1, 1), (1, -1)):
        alpha, bl, br = _aggd(block * np.roll(block, shift, axis=(0, 1)))
        mean = (br - bl) * math.gamma(2 / alpha) / math.gamma(1 / alpha) if np.isfinite(alpha) else np.nan
        feat += [alpha, mean, bl, br]
    return feat


def _cubic(x: np.ndarray) -> np.ndarray:
    a = np.abs(x)
    return ((1.5 * a**3 - 2.5 * a**2 + 1) * (a <= 1)
            + (-0.5 * a**3 + 2.5 * a**2 - 4 * a + 2) * ((a > 1) & (a <= 2)))


def _imresize_matrix(n: int, scale: float) -> np.ndarray:
    """The (out, in) weights of MATLAB's ``imresize(..., scale)`` along one axis: bicubic, antialiased when
    shrinking, symmetric border extension."""
    out = math.ceil(n * scale)
    width = 4 / scale if scale < 1 else 4
    u = np.arange(1, out + 1) / scale + 0.5 * (1 - 1 / scale)
    left = np.floor(u - width / 2)
    idx = left[:, None] + np.arange(math.ceil(width) + 2)[None, :]
    w = _cubic((u[:, None] - idx) * scale) * scale if scale < 1 else _cubic(u[:, None] - idx)
    w /= w.sum(axis=1, keepdims=True)
    j = idx.astype(int) - 1  # 0-based
    j = np.where(j < 0, -j - 1, j)
    j = np.where(j >= n, 2 * n - 1 - j, j)
    m = np.zeros((out, n))
    np.add.at(m, (np.repeat(np.arange(out), idx.shape[1]), j.ravel()), w.ravel())
    return m


def imresize_half(img: np.ndarray) -> np.ndarray:
    """MATLAB ``imresize(img, 0.5)`` (bicubic, antialiased) of a 2-D float array."""
    h, w = img.shape
    return _imresize_matrix(h, 0.5) @ img @ _imresize_matrix(w, 0.5).T


def _gaussian_window() -> np.ndarray:
    # MATLAB fspecial('gaussian', 7, 7/6), normalised.
    x = np.arange(-3, 4, dtype=np.float64)
    g = np.exp(-(x**2) / (2 * (7 / 6) ** 2))
    k = np.outer(g, g)
    return k / k.sum()


def niqe_gray(img: np.ndarray) -> float:
    """NIQE of a 2-D luma image in 0-255 units (float). It must hold at least two 96x96 blocks."""
    img = np.asarray(img, dtype=np.float64)
    h, w = img.shape
    nh, nw = h // BLOCK, w // BLOCK
    if nh * nw < 2:
        raise ValueError(f"NIQE needs at least two {BLOCK}x{BLOCK} blocks, got a {w}x{h} image")
    img = img[: nh * BLOCK, : nw * BLOCK]
    window = _gaussian_window()
    feats = []
    for scale in (1, 2):
        # imfilter(..., 'replicate'); the window is symmetric, so correlation is convolution.
        mu = cv2.filter2D(img, -1, window, borderType=cv2.BORDER_REPLICATE)
        sigma = np.sqrt(np.abs(cv2.filter2D(img * img, -1, window, borderType=cv2.BORDER_REPLICATE) - mu * mu))
        mscn = (img - mu) / (sigma + 1)
        b = BLOCK // scale
        feats.append(np.array([_block_features(mscn[i * b : (i + 1) * b, j * b : (j + 1) * b])
                               for i in range(nh) for j in range(nw)]))
        if scale == 1:
            img = imresize_half(img)
    dist = np.concatenate(feats, axis=1)
    mu_dist = np.nanmean(dist, axis=0)
    cov_dist = np.cov(dist[~np.isnan(dist).any(axis=1)], rowvar=False)
    d = np.asarray(MU) - mu_dist
    cov = (np.asarray(COV).reshape(36, 36) + cov_dist) / 2
    return float(np.sqrt(d @ np.linalg.pinv(cov) @ d))


def luma_255(rgb: np.ndarray) -> np.ndarray:
    """MATLAB ``rgb2ycbcr`` luma of uint8 RGB (H,W,3), rounded to integers as MATLAB's uint8 output is."""
    x = rgb.astype(np.float64)
    return np.round(16.0 + (65.481 * x[..., 0] + 128.553 * x[..., 1] + 24.966 * x[..., 2]) / 255.0)


def niqe(rgb: np.ndarray, crop_border: int = 0) -> float:
    """NIQE of a uint8 RGB image (H,W,3) on its luma, ``crop_border`` pixels cut from each side first."""
    y = luma_255(rgb)
    if crop_border:
        y = y[crop_border:-crop_border, crop_border:-crop_border]
    return niqe_gray(y)

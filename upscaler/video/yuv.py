"""Y'CbCr <-> RGB on the model's device, in torch: the colour conversion of the video pipeline's GPU path.

Frames arrive as flat planar arrays (``YuvLayout``) and leave the same way, so the host only copies bytes and
the PCIe bus carries 4:2:0 (half the bytes of RGB). The maths is BT.601/709/2020's: Y' = Kr R + Kg G + Kb B,
Cb = (B - Y') / (2 (1 - Kb)), Cr = (R - Y') / (2 (1 - Kr)), quantised to limited (16-235, 16-240 at 8 bits)
or full range. Chroma siting follows MPEG-2/H.264's default for 4:2:0 and 4:2:2 ("left"): a chroma sample
sits on even luma columns and, vertically, halfway between two luma rows. Upsampling interpolates linearly
between the sites (what a good player does); downsampling filters [1 2 1]/4 across and [1 1]/2 down, the
matching averages, so a round trip through both keeps flat areas and edges where they were.
"""

from __future__ import annotations

import torch

from ..device.samples import to_float, to_samples
from .yuv_layout import YuvLayout


def _scale(layout: YuvLayout) -> tuple[float, float, float, float]:
    """(luma offset, luma span, chroma zero, chroma span) in stored code values."""
    peak = float((1 << layout.bits) - 1)
    if layout.full_range:
        spans = (0.0, peak, float(1 << (layout.bits - 1)), peak)
    else:
        unit = float(1 << (layout.bits - 8))  # limited range is defined at 8 bits and scaled up
        spans = (16.0 * unit, 219.0 * unit, 128.0 * unit, 224.0 * unit)
    up = float(1 << layout.shift)
    return tuple(v * up for v in spans)  # type: ignore[return-value]


def _upsample_cosited(c: torch.Tensor, length: int) -> torch.Tensor:
    """Along the last axis, samples on even positions: even outputs copy, odd ones average their neighbours."""
    nxt = torch.cat([c[..., 1:], c[..., -1:]], dim=-1)
    return torch.stack([c, (c + nxt) * 0.5], dim=-1).flatten(-2)[..., :length]


def _upsample_centred(c: torch.Tensor, length: int) -> torch.Tensor:
    """Along the second-to-last axis, samples halfway between output rows: 3/4 + 1/4 of the two nearest."""
    prev = torch.cat([c[..., :1, :], c[..., :-1, :]], dim=-2)
    nxt = torch.cat([c[..., 1:, :], c[..., -1:, :]], dim=-2)
    return torch.stack([0.75 * c + 0.25 * prev, 0.75 * c + 0.25 * nxt], dim=-2).flatten(-3, -2)[..., :length, :]


def _downsample_cosited(x: torch.Tensor) -> torch.Tensor:
    """Along the last axis (even length): [1 2 1]/4 centred on each even sample, the edge repeated."""
    prev = torch.cat([x[..., :1], x[..., 1:-1:2]], dim=-1)
    return 0.25 * prev + 0.5 * x[..., 0::2] + 0.25 * x[..., 1::2]


def _downsample_centred(x: torch.Tensor) -> torch.Tensor:
    """Along the second-to-last axis (even length): the mean of each pair of rows."""
    return 0.5 * (x[..., 0::2, :] + x[..., 1::2, :])


def yuv_to_rgb(flat: torch.Tensor, layout: YuvLayout) -> torch.Tensor:
    """(N, length) integer samples -> (N, 3, H, W) float32 RGB in [0, 1], on the same device."""
    y, u, v = (to_float(p) for p in layout.planes(flat))
    sx, sy = layout.chroma_shift
    if sy:
        u, v = _upsample_centred(u, layout.height), _upsample_centred(v, layout.height)
    if sx:
        u, v = _upsample_cosited(u, layout.width), _upsample_cosited(v, layout.width)
    y_off, y_span, c_zero, c_span = _scale(layout)
    luma = (y - y_off) / y_span
    cb = (u - c_zero) / c_span
    cr = (v - c_zero) / c_span
    kr, kb = layout.kr_kb
    kg = 1.0 - kr - kb
    r = luma + 2 * (1 - kr) * cr
    b = luma + 2 * (1 - kb) * cb
    g = (luma - kr * r - kb * b) / kg
    return torch.stack([r, g, b], dim=1).clamp_(0, 1)


def rgb_to_yuv(rgb: torch.Tensor, layout: YuvLayout) -> torch.Tensor:
    """(N, 3, H, W) float RGB in [0, 1] -> (N, length) integer samples (uint8, or uint16 stored as int16).

    H and W must be the layout's, and even along each subsampled axis (``YuvLayout.even_size``).
    """
    n, _, h, w = rgb.shape
    if (w, h) != (layout.width, layout.height) or layout.even_size(w, h) != (w, h):
        raise ValueError(f"RGB of {w}x{h} does not fit a {layout.width}x{layout.height} {layout.pix_fmt} frame")
    rgb = rgb.float()
    r, g, b = rgb[:, 0], rgb[:, 1], rgb[:, 2]
    kr, kb = layout.kr_kb
    luma = kr * r + (1 - kr - kb) * g + kb * b
    cb = (b - luma) / (2 * (1 - kb))
    cr = (r - luma) / (2 * (1 - kr))
    sx, sy = layout.chroma_shift
    if sx:
        cb, cr = _downsample_cosited(cb), _downsample_cosited(cr)
    if sy:
        cb, cr = _downsample_centred(cb), _downsample_centred(cr)
    y_off, y_span, c_zero, c_span = _scale(layout)
    top = float(((1 << layout.bits) - 1) << layout.shift)
    planes = [luma * y_span + y_off, cb * c_span + c_zero, cr * c_span + c_zero]
    # P010-style formats keep the unused low bits zero.
    step = float(1 << layout.shift)
    coded = [(p / step).round_().mul_(step).clamp_(0, top).reshape(n, -1) for p in planes]
    return to_samples(torch.cat(coded, dim=1), layout.dtype.itemsize)

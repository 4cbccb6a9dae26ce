"""Tile-and-overlap inference whose stitched result matches running the network on the whole frame.

The frame is cut into a grid of core regions. Each tile is run on its core plus ``overlap`` pixels of
context on every side, so the network sees the neighbourhood it would see untiled. Neighbouring tiles
are blended with complementary linear ramps across a band of ``overlap`` pixels centred on their shared
edge, so every output pixel's weights sum to 1 and each tile still keeps ``overlap / 2`` pixels of
context beyond the last pixel it contributes to. With ``overlap / 2`` at least the receptive field
radius the result equals the untiled one; with a smaller margin the ramp hides what differs.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

Runner = Callable[[torch.Tensor], torch.Tensor]

_MAX_BATCHED_TILES = 8


def split_axis(length: int, tile: int) -> list[int]:
    """Boundaries of ``ceil(length / tile)`` near-equal core regions (equal sizes batch and cache better)."""
    n = max(1, math.ceil(length / tile))
    return [round(i * length / n) for i in range(n + 1)]


def _ramp(out_len: int, scale: int, bounds: list[int], i: int, half: float, device: torch.device) -> torch.Tensor:
    """Weights along one axis, in output pixels, for core ``i`` of the boundaries ``bounds``."""
    # Made on the output's device: no host-to-device copy per tile.
    centres = (torch.arange(out_len, dtype=torch.float32, device=device) + 0.5) / scale  # input-pixel coordinates
    w = torch.ones(out_len, device=device)
    if i > 0 and half > 0:  # rising across the band around the lower boundary
        w = w * ((centres - (bounds[i] - half)) / (2 * half)).clamp(0, 1)
    if i < len(bounds) - 2 and half > 0:  # falling across the band around the upper boundary
        w = w * (((bounds[i + 1] + half) - centres) / (2 * half)).clamp(0, 1)
    return w


def upscale_tiled(run: Runner, x: torch.Tensor, scale: int, tile: int, overlap: int, *,
                  batch_tiles: bool = False) -> torch.Tensor:
    """Upscale an (N,C,H,W) tensor by ``scale`` in tiles of about ``tile`` input pixels a side.

    ``run`` maps an (N,C,h,w) tile to (N,C',h*scale,w*scale). ``tile <= 0`` or a frame smaller than a
    tile runs in one piece. ``batch_tiles`` runs the windows of equal shape (all inner ones, since the
    cores are near-equal) in one call, which fills a GPU far better than one small tile at a time.
    """
    n, _, h, w = x.shape
    if tile <= 0 or (h <= tile and w <= tile):
        return run(x)
    ys, xs = split_axis(h, tile), split_axis(w, tile)
    # The ramps of a core's two edges must not cross, or weights add up past 1 (bright bands).
    overlap = min(overlap, *(b - a for bounds in (ys, xs) for a, b in zip(bounds, bounds[1:], strict=False)))
    half = overlap / 2
    windows = []  # (iy, ix, y0, y1, x0, x1): the core plus the context margin, clipped to the frame
    for iy in range(len(ys) - 1):
        y0, y1 = max(0, ys[iy] - overlap), min(h, ys[iy + 1] + overlap)
        for ix in range(len(xs) - 1):
            windows.append((iy, ix, y0, y1, max(0, xs[ix] - overlap), min(w, xs[ix + 1] + overlap)))
    groups: list[list[tuple[int, int, int, int, int, int]]] = []
    if batch_tiles:
        by_shape: dict[tuple[int, int], list[tuple[int, int, int, int, int, int]]] = {}
        for win in windows:
            by_shape.setdefault((win[3] - win[2], win[5] - win[4]), []).append(win)
        # Chunks of a bounded count, so halving the tile after an out-of-memory error still shrinks each call.
        step = _MAX_BATCHED_TILES
        groups = [g[i : i + step] for g in by_shape.values() for i in range(0, len(g), step)]
    else:
        groups = [[win] for win in windows]
    out: torch.Tensor | None = None
    for group in groups:
        crops = [x[:, :, y0:y1, x0:x1] for _, _, y0, y1, x0, x1 in group]
        inp = torch.cat(crops) if len(crops) > 1 else crops[0]
        results = run(inp).split(n)
        for (iy, ix, y0, y1, x0, x1), result in zip(group, results, strict=True):
            if out is None:
                out = torch.zeros((n, result.shape[1], h * scale, w * scale), dtype=torch.float32,
                                  device=result.device)
            wy = _ramp(h * scale, scale, ys, iy, half, result.device)[y0 * scale : y1 * scale]
            wx = _ramp(w * scale, scale, xs, ix, half, result.device)[x0 * scale : x1 * scale]
            weight = wy[:, None] * wx[None, :]
            out[:, :, y0 * scale : y1 * scale, x0 * scale : x1 * scale] += result.float() * weight
    assert out is not None
    return out

"""PyAV frames <-> flat planar Y'CbCr arrays (``YuvLayout``): byte copies only, no colour maths.

This is the host side of the device colour path: the decoder thread packs each decoded frame's planes into
one row of a batch, the encoder thread unpacks rows into frames for the encoder. Planar formats of 8 to 16
bits (yuv420p, yuv422p10le, yuv444p...) and the semi-planar NV12 / P010 / P016 (what NVENC likes) are
handled; anything else (RGB, alpha, 4:1:1, big-endian, palettes) stays on the swscale RGB path, where
``read_alpha``/``write_alpha`` move the alpha plane exactly (swscale rounds it).
"""

from __future__ import annotations

import av
import numpy as np

from .yuv_layout import KR_KB, YuvLayout

# Semi-planar formats: (significant bits, shift up within 16); their second plane interleaves Cb and Cr.
_SEMI_PLANAR = {"nv12": (8, 0), "p010le": (10, 6), "p012le": (12, 4), "p016le": (16, 0)}


def layout_for(pix_fmt: str, width: int, height: int, matrix: int, full_range: bool) -> YuvLayout | None:
    """The flat layout of a frame in ``pix_fmt``, or None when the device path does not handle that format."""
    if matrix not in KR_KB or width < 1 or height < 1:
        return None
    try:
        fmt = av.VideoFormat(pix_fmt)
    except (ValueError, av.error.FFmpegError):
        return None
    if fmt.is_rgb or fmt.is_big_endian or fmt.has_palette or fmt.is_bayer or not fmt.is_planar:
        return None
    comps = fmt.components
    shift = (_log2_ratio(fmt.chroma_width(4)), _log2_ratio(fmt.chroma_height(4)))
    if len(comps) != 3 or any(c.is_alpha for c in comps) or None in shift or max(shift) > 1:  # type: ignore[operator]
        return None
    if pix_fmt in _SEMI_PLANAR:
        bits, up = _SEMI_PLANAR[pix_fmt]
    elif [c.plane for c in comps] == [0, 1, 2] and len({c.bits for c in comps}) == 1 and comps[0].bits <= 16:
        bits, up = comps[0].bits, 0
    else:
        return None
    return YuvLayout(pix_fmt, width, height, (shift[0], shift[1]), bits, matrix, full_range, up)  # type: ignore[arg-type]


def _log2_ratio(chroma_of_4: int) -> int | None:
    return {4: 0, 2: 1, 1: 2}.get(chroma_of_4)


def _plane_view(plane: av.video.plane.VideoPlane, dtype: np.dtype, samples: int) -> np.ndarray:
    """A (height, samples) view of a plane's pixels, without its row padding (writable)."""
    rows = np.frombuffer(plane, dtype=dtype).reshape(plane.height, -1)
    return rows[:, :samples]


def pack(frame: av.VideoFrame, layout: YuvLayout, out: np.ndarray) -> None:
    """Copy a frame (in ``layout``'s pixel format and size) into the flat row ``out``."""
    cw = layout.chroma_size[0]
    dtype = layout.dtype
    planes = frame.planes
    y, u, v = layout.planes(out)
    y[:] = _plane_view(planes[0], dtype, layout.width)
    if layout.pix_fmt in _SEMI_PLANAR:
        both = _plane_view(planes[1], dtype, 2 * cw)
        u[:] = both[:, 0::2]
        v[:] = both[:, 1::2]
    else:
        u[:] = _plane_view(planes[1], dtype, cw)
        v[:] = _plane_view(planes[2], dtype, cw)


def unpack(row: np.ndarray, layout: YuvLayout) -> av.VideoFrame:
    """A new frame holding the flat row ``row`` (``layout.length`` samples of ``layout.dtype``)."""
    frame = av.VideoFrame(layout.width, layout.height, layout.pix_fmt)
    cw = layout.chroma_size[0]
    dtype = layout.dtype
    planes = frame.planes
    y, u, v = layout.planes(row)
    _plane_view(planes[0], dtype, layout.width)[:] = y
    if layout.pix_fmt in _SEMI_PLANAR:
        both = _plane_view(planes[1], dtype, 2 * cw)
        both[:, 0::2] = u
        both[:, 1::2] = v
    else:
        _plane_view(planes[1], dtype, cw)[:] = u
        _plane_view(planes[2], dtype, cw)[:] = v
    return frame


def _alpha_plane(frame: av.VideoFrame) -> tuple[np.ndarray, int] | None:
    """A writable (height, width) view of the frame's own alpha plane and its bits; None for packed or
    alpha-less formats."""
    fmt = frame.format
    comp = next((c for c in fmt.components if c.is_alpha), None)
    if comp is None or not fmt.is_planar or fmt.is_big_endian:
        return None
    plane = frame.planes[comp.plane]
    return _plane_view(plane, np.dtype(np.uint16 if comp.bits > 8 else np.uint8), plane.width), comp.bits


def _rescale(values: np.ndarray, peak_in: int, peak_out: int, dtype: np.dtype) -> np.ndarray:
    if peak_in == peak_out:
        return values.astype(dtype, copy=False)
    return ((values.astype(np.uint64) * peak_out + peak_in // 2) // peak_in).astype(dtype)


def read_alpha(frame: av.VideoFrame, dtype: np.dtype) -> np.ndarray | None:
    """The frame's alpha plane at full ``dtype`` scale (uint8 0-255, uint16 0-65535), or None when it has no
    planar alpha. swscale widens 10/12-bit alpha by a shift, so opaque 12-bit alpha would read 65520."""
    found = _alpha_plane(frame)
    if found is None:
        return None
    view, bits = found
    return _rescale(view, (1 << bits) - 1, int(np.iinfo(dtype).max), np.dtype(dtype))


def write_alpha(frame: av.VideoFrame, alpha: np.ndarray) -> None:
    """Put ``alpha`` (the frame's size, uint8 or uint16 at full scale) into the frame's alpha plane at its bits.
    swscale's RGBA -> YUVA puts alpha 128-255 one code too high (FFmpeg 7); packed formats (rgba, argb), a
    byte shuffle in swscale, are left alone."""
    found = _alpha_plane(frame)
    if found is not None:
        view, bits = found
        view[:] = _rescale(alpha, int(np.iinfo(alpha.dtype).max), (1 << bits) - 1, view.dtype)

"""How one video frame's Y'CbCr samples lie in a flat array, and what their numbers mean.

The video pipeline can hand frames to the model as they came out of the decoder (planar Y'CbCr) instead of
as RGB, so that the colour conversion runs on the model's device (``upscaler/video/yuv.py``) rather than in swscale
on the CPU, and a host <-> GPU copy moves 1.5 bytes a pixel (4:2:0) instead of 3. A frame is one flat array:
the Y plane, then Cb, then Cr, each row-major with no padding; semi-planar formats (NV12, P010) are
de-interleaved into the same shape by ``upscaler/video/planes.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TypeVar

import numpy as np

# numpy arrays and torch tensors alike: the layout slices either the same way.
Samples = TypeVar("Samples")

# AVCOL_SPC_* (FFmpeg ABI) -> (Kr, Kb) of the Y'CbCr matrix. BT.2020 constant-luminance is treated as the
# non-constant one, as swscale does.
KR_KB: dict[int, tuple[float, float]] = {
    1: (0.2126, 0.0722),  # BT.709
    4: (0.30, 0.11),  # FCC
    5: (0.299, 0.114),  # BT.470BG (PAL BT.601)
    6: (0.299, 0.114),  # SMPTE 170M (NTSC BT.601)
    7: (0.212, 0.087),  # SMPTE 240M
    9: (0.2627, 0.0593),  # BT.2020 NCL
    10: (0.2627, 0.0593),  # BT.2020 CL
}


@dataclass(frozen=True)
class YuvLayout:
    """One frame of planar Y'CbCr: its FFmpeg pixel format, size, chroma subsampling, bits and colour meaning.

    ``chroma_shift`` is (log2 horizontal, log2 vertical) subsampling: (1, 1) for 4:2:0, (1, 0) for 4:2:2,
    (0, 0) for 4:4:4. ``bits`` significant bits per sample, stored ``shift`` bits up (P010 keeps 10 bits in
    the top of 16). ``matrix`` is the AVCOL_SPC_* tag, ``full_range`` whether codes span 0..2^bits-1
    (JPEG) rather than 16..235 scaled (MPEG).
    """

    pix_fmt: str
    width: int
    height: int
    chroma_shift: tuple[int, int]
    bits: int
    matrix: int
    full_range: bool
    shift: int = 0

    def __post_init__(self) -> None:
        if self.matrix not in KR_KB:
            raise ValueError(f"no Y'CbCr matrix known for AVCOL_SPC {self.matrix}")
        if any(s not in (0, 1) for s in self.chroma_shift):
            raise ValueError(f"chroma subsampling {self.chroma_shift} is not supported (4:2:0, 4:2:2, 4:4:4)")

    @property
    def chroma_size(self) -> tuple[int, int]:
        """(width, height) of each chroma plane; odd luma sizes round up, as in FFmpeg."""
        sx, sy = self.chroma_shift
        return -(-self.width >> sx), -(-self.height >> sy)

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(np.uint8 if self.bits + self.shift <= 8 else np.uint16)

    @property
    def length(self) -> int:
        """Samples per frame."""
        cw, ch = self.chroma_size
        return self.width * self.height + 2 * cw * ch

    @property
    def luma_length(self) -> int:
        return self.width * self.height

    @property
    def kr_kb(self) -> tuple[float, float]:
        return KR_KB[self.matrix]

    def planes(self, flat: Samples) -> tuple[Samples, Samples, Samples]:
        """Y (..., H, W), Cb and Cr (..., h, w) of flat frames (..., length): views of a contiguous array."""
        cw, ch = self.chroma_size
        lead = tuple(flat.shape[:-1])  # type: ignore[attr-defined]
        a, b = self.luma_length, self.luma_length + cw * ch
        return (flat[..., :a].reshape(*lead, self.height, self.width),  # type: ignore[index]
                flat[..., a:b].reshape(*lead, ch, cw),  # type: ignore[index]
                flat[..., b:].reshape(*lead, ch, cw))  # type: ignore[index]

    def resized(self, width: int, height: int) -> YuvLayout:
        return replace(self, width=width, height=height)

    def even_size(self, width: int, height: int) -> tuple[int, int]:
        """The largest size within (width, height) this format can encode: subsampled axes need even sizes."""
        sx, sy = self.chroma_shift
        return width - width % (1 << sx), height - height % (1 << sy)

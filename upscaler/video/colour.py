"""Colour metadata of a video stream, and the YUV<->RGB conversions that must honour it.

Tags are FFmpeg's AVCOL_* integers (what PyAV's ``colorspace``/``color_range``/... attributes hold).
Untagged inputs get the guess players make (BT.709 for HD, BT.601 for SD, limited range), and the
output is always tagged explicitly: an upscaled SD clip is HD-sized, so a player left to guess would
switch to BT.709 and shift every colour.
"""

from __future__ import annotations

from dataclasses import dataclass

import av
from av.video.reformatter import ColorPrimaries, ColorRange, Colorspace, ColorTrc, Interpolation

# AVColorSpace values (FFmpeg ABI); PyAV has no enum for the frame-side matrix tag.
SPC_RGB = 0
SPC_BT709 = 1
SPC_UNSPECIFIED = 2
SPC_RESERVED = 3
SPC_FCC = 4
SPC_BT470BG = 5
SPC_SMPTE170M = 6
SPC_SMPTE240M = 7
SPC_BT2020_NCL = 9
SPC_BT2020_CL = 10

RANGE_UNSPECIFIED = int(ColorRange.UNSPECIFIED)
RANGE_LIMITED = int(ColorRange.MPEG)
RANGE_FULL = int(ColorRange.JPEG)

_UNSET_PRIMARIES = {int(ColorPrimaries.UNSPECIFIED), 0, 3}  # 0 and 3 are "reserved"
_UNSET_TRC = {int(ColorTrc.UNSPECIFIED), 0, 3}

# swscale knows a handful of matrices; anything else (YCgCo, ICtCp...) falls back to the size guess.
_SWS_MATRIX = {
    SPC_BT709: Colorspace.ITU709,
    SPC_FCC: Colorspace.FCC,
    SPC_BT470BG: Colorspace.ITU601,
    SPC_SMPTE170M: Colorspace.ITU601,
    SPC_SMPTE240M: Colorspace.SMPTE240M,
    SPC_BT2020_NCL: Colorspace.BT2020,
    SPC_BT2020_CL: Colorspace.BT2020,
}

# Accurate rounding and full chroma interpolation: the default swscale path is off by 1-2 code values
# and uses nearest-neighbour chroma, which a sharpening model would then amplify.
DECODE_INTERPOLATION = Interpolation.BICUBIC | Interpolation.ACCURATE_RND | Interpolation.FULL_CHR_H_INT
ENCODE_INTERPOLATION = Interpolation.BICUBIC | Interpolation.ACCURATE_RND | Interpolation.FULL_CHR_H_INP


@dataclass(frozen=True)
class ColourTags:
    """AVCOL_* tags of a stream: primaries, transfer, matrix (``colorspace``) and range."""

    primaries: int = int(ColorPrimaries.UNSPECIFIED)
    trc: int = int(ColorTrc.UNSPECIFIED)
    matrix: int = SPC_UNSPECIFIED
    range: int = RANGE_UNSPECIFIED

    @classmethod
    def of(cls, obj: object) -> ColourTags:
        """Read the tags of a codec context or a frame (both name them alike)."""
        return cls(
            primaries=int(getattr(obj, "color_primaries", cls.primaries)),
            trc=int(getattr(obj, "color_trc", cls.trc)),
            matrix=int(getattr(obj, "colorspace", cls.matrix)),
            range=int(getattr(obj, "color_range", cls.range)),
        )

    def overlay(self, other: ColourTags) -> ColourTags:
        """These tags, with any field ``other`` specifies taking precedence."""
        return ColourTags(
            primaries=self.primaries if other.primaries in _UNSET_PRIMARIES else other.primaries,
            trc=self.trc if other.trc in _UNSET_TRC else other.trc,
            matrix=self.matrix if other.matrix in (SPC_UNSPECIFIED, SPC_RESERVED) else other.matrix,
            range=self.range if other.range == RANGE_UNSPECIFIED else other.range,
        )

    def resolved(self, width: int, height: int, pix_fmt: str) -> ColourTags:
        """Fill unspecified fields with what a player would assume for this size and pixel format."""
        fmt = av.VideoFormat(pix_fmt)
        hd = width >= 1280 or height > 576
        if fmt.is_rgb:
            matrix = SPC_RGB
        elif self.matrix in _SWS_MATRIX:
            matrix = self.matrix
        else:
            matrix = SPC_BT709 if hd else (SPC_BT470BG if height == 576 else SPC_SMPTE170M)
        if self.range != RANGE_UNSPECIFIED:
            rng = self.range
        else:
            # yuvj* formats are the old way of saying "full range"; RGB is always full.
            rng = RANGE_FULL if fmt.is_rgb or pix_fmt.startswith("yuvj") else RANGE_LIMITED
        primaries = self.primaries
        if primaries in _UNSET_PRIMARIES:
            primaries = {
                SPC_BT470BG: int(ColorPrimaries.BT470BG),
                SPC_SMPTE170M: int(ColorPrimaries.SMPTE170M),
                SPC_BT2020_NCL: int(ColorPrimaries.BT2020),
                SPC_BT2020_CL: int(ColorPrimaries.BT2020),
            }.get(matrix, int(ColorPrimaries.BT709))
        trc = self.trc
        if trc in _UNSET_TRC:
            trc = int(ColorTrc.SMPTE170M) if matrix in (SPC_BT470BG, SPC_SMPTE170M) else int(ColorTrc.BT709)
        return ColourTags(primaries=primaries, trc=trc, matrix=matrix, range=rng)

    @property
    def sws_matrix(self) -> Colorspace:
        """The swscale matrix for these (resolved) tags; BT.709 stands in for RGB and unknowns."""
        return _SWS_MATRIX.get(self.matrix, Colorspace.ITU709)

    @property
    def sws_range(self) -> ColorRange:
        return ColorRange.JPEG if self.range == RANGE_FULL else ColorRange.MPEG

    def apply_to(self, obj: object) -> None:
        """Write the tags onto an encoder's codec context or a frame."""
        obj.color_primaries = self.primaries  # type: ignore[attr-defined]
        obj.color_trc = self.trc  # type: ignore[attr-defined]
        obj.colorspace = self.matrix  # type: ignore[attr-defined]
        obj.color_range = self.range  # type: ignore[attr-defined]


def bit_depth(pix_fmt: str) -> int:
    """Bits per component of a pixel format (8 for yuv420p, 10 for yuv420p10le...)."""
    fmt = av.VideoFormat(pix_fmt)
    return max((c.bits for c in fmt.components if not c.is_alpha), default=8)

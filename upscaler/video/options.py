"""Encoder choices (codec, quality, preset, pixel format) and the checks that they fit the output file."""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import av.codec

from ..errors import MediaError
from .colour import bit_depth

# Output extension -> FFmpeg muxer. The container follows the extension, nothing else.
CONTAINERS: dict[str, str] = {
    ".mp4": "mp4", ".m4v": "mp4", ".mkv": "matroska", ".mov": "mov", ".webm": "webm",
}

# The encoders we know how to drive, in the order we suggest them.
KNOWN_CODECS = (
    "libx264", "libx265", "libsvtav1", "libvpx-vp9", "ffv1", "prores_ks", "h264_nvenc", "hevc_nvenc",
)

# codec -> (option name, lowest, highest, our default). Defaults are visually transparent for upscaled
# output, where the encoder's own (x264 23, x265 28, SVT-AV1 35) would smear the detail we just made.
_QUALITY: dict[str, tuple[str, int, int, int]] = {
    "libx264": ("crf", 0, 51, 18),
    "libx265": ("crf", 0, 51, 18),
    "libsvtav1": ("crf", 0, 63, 30),
    "libvpx-vp9": ("crf", 0, 63, 30),
    "h264_nvenc": ("cq", 0, 51, 19),
    "hevc_nvenc": ("cq", 0, 51, 21),
}

# codec -> the private option that ffmpeg's "-preset" word maps to.
_PRESET_OPTION = {
    "libx264": "preset",
    "libx265": "preset",
    "libsvtav1": "preset",
    "h264_nvenc": "preset",
    "hevc_nvenc": "preset",
    "libvpx-vp9": "cpu-used",
    "prores_ks": "profile",
}

# Options every run of a codec gets: quiet x265 (it prints to stderr itself), constant-quality VP9
# needs a zero bitrate, FFV1 level 3 is the multithreaded, checksummed archival variant.
_FIXED_OPTIONS: dict[str, dict[str, str]] = {
    "libx265": {"x265-params": "log-level=error"},
    "libvpx-vp9": {"b": "0", "row-mt": "1"},
    "h264_nvenc": {"rc": "vbr", "b": "0"},
    "hevc_nvenc": {"rc": "vbr", "b": "0"},
    "ffv1": {"level": "3"},
}

# Pixel formats in order of preference; the first the encoder accepts wins.
_PREFERRED_8BIT = ("yuv420p", "yuv422p", "yuv444p", "nv12", "yuv420p10le", "yuv422p10le", "yuv444p10le")
_PREFERRED_HIGH = ("yuv420p10le", "p010le", "yuv422p10le", "yuv444p10le", "yuv420p12le", "yuv422p12le",
                   "yuv444p12le", "yuv420p16le", "yuv420p", "yuv422p", "yuv444p", "nv12")


@dataclass
class EncodeOptions:
    """How to encode the upscaled video.

    ``codec``: an FFmpeg encoder name (libx264, libx265, libsvtav1, libvpx-vp9, ffv1, prores_ks,
    h264_nvenc, hevc_nvenc); None or "auto" = NVENC when the model runs on an NVIDIA GPU and the encoder
    opens (h264_nvenc, hevc_nvenc for >8-bit input), else libx264, or libvpx-vp9 for a .webm output
    (WebM takes no H.264). ``crf``: constant-quality level; None picks ours (18 for x264/x265,
    30 for SVT-AV1 and VP9); ignored by ffv1 (lossless) and prores_ks (fixed-rate profiles).
    ``preset``: FFmpeg's word for the codec (x264 "medium", SVT-AV1 "8", prores_ks profile "hq",
    VP9 cpu-used "4"). ``pix_fmt``: None follows the input (8-bit in -> yuv420p, 10-bit in ->
    yuv420p10le, or the encoder's closest).
    """

    codec: str | None = None
    crf: int | None = None
    preset: str | None = None
    pix_fmt: str | None = None


@dataclass(frozen=True)
class EncoderPlan:
    """Checked, concrete encoder settings for one output file."""

    codec: str
    container: str  # muxer name
    pix_fmt: str
    codec_options: dict[str, str] = field(default_factory=dict)
    container_options: dict[str, str] = field(default_factory=dict)
    notes: tuple[str, ...] = ()  # things the user should hear about (e.g. 10-bit input, 8-bit output)


def container_for(dst: Path) -> str:
    """The muxer for an output path, from its extension."""
    muxer = CONTAINERS.get(dst.suffix.lower())
    if muxer is None:
        exts = ", ".join(sorted(CONTAINERS))
        ext = dst.suffix or "(none)"
        raise MediaError(f"{dst}: unsupported output container '{ext}' (use one of {exts})")
    return muxer


def default_codec(muxer: str) -> str:
    """The encoder used when none is asked for: H.264 everywhere it may go, VP9 in WebM."""
    return "libvpx-vp9" if muxer == "webm" else "libx264"


def supported_codecs(muxer: str) -> set[str]:
    """Codec and encoder names the muxer can store (asked of FFmpeg on an in-memory container)."""
    with av.open(io.BytesIO(), mode="w", format=muxer) as probe:
        return set(probe.supported_codecs)


def hardware_codec(muxer: str, src_pix_fmt: str) -> str | None:
    """The NVENC encoder for this output if this PyAV build has it and the container takes it."""
    name = "hevc_nvenc" if bit_depth(src_pix_fmt) > 8 else "h264_nvenc"
    return name if name in av.codecs_available and name in supported_codecs(muxer) else None


def plan_encoder(
    options: EncodeOptions, dst: Path, src_pix_fmt: str, prefer_hardware: bool = False
) -> EncoderPlan:
    """Validate ``options`` against this PyAV build and the output container; choose the pixel format.

    ``prefer_hardware`` (the model runs on CUDA): with no codec asked for, encode on the GPU's NVENC when it
    opens with the real settings, so the CPU encoder does not become the bottleneck of a GPU run; without a
    usable GPU (or with settings NVENC refuses) the software default is planned instead.
    """
    muxer = container_for(dst)
    if options.codec not in (None, "auto"):
        return _plan(options, str(options.codec), dst, muxer, src_pix_fmt)
    hardware = hardware_codec(muxer, src_pix_fmt) if prefer_hardware else None
    if hardware is not None:
        with contextlib.suppress(MediaError):
            return _plan(options, hardware, dst, muxer, src_pix_fmt)
    return _plan(options, default_codec(muxer), dst, muxer, src_pix_fmt)


def _plan(options: EncodeOptions, name: str, dst: Path, muxer: str, src_pix_fmt: str) -> EncoderPlan:
    codec = _video_encoder(name)
    fits = supported_codecs(muxer)
    if codec.name not in fits:
        usable = [c for c in KNOWN_CODECS if c in fits and c in av.codecs_available]
        raise MediaError(
            f"{dst}: {codec.name} video cannot go in a {dst.suffix} file"
            f" (use {', '.join(usable) or 'another container'})"
        )
    formats = [f.name for f in codec.video_formats or ()]
    notes: list[str] = []
    depth = bit_depth(src_pix_fmt)
    if options.pix_fmt is not None:
        if formats and options.pix_fmt not in formats:
            takes = ", ".join(formats)
            raise MediaError(f"{codec.name}: cannot encode pixel format {options.pix_fmt} (it takes {takes})")
        pix_fmt = options.pix_fmt
    else:
        ranking = _PREFERRED_HIGH if depth > 8 else _PREFERRED_8BIT
        fallback = formats[0] if formats else "yuv420p"
        pix_fmt = next((f for f in ranking if not formats or f in formats), fallback)
        if depth > 8 and bit_depth(pix_fmt) == 8:
            notes.append(f"{codec.name} has no {depth}-bit mode here: writing {pix_fmt}")
    codec_options = _codec_options(codec.name, options)
    if options.preset is not None or codec.name.endswith("_nvenc"):
        _try_open(codec.name, pix_fmt, codec_options)
    return EncoderPlan(
        codec=codec.name,
        container=muxer,
        pix_fmt=pix_fmt,
        codec_options=codec_options,
        container_options={"movflags": "+faststart"} if muxer in ("mp4", "mov") else {},
        notes=tuple(notes),
    )


def _try_open(codec: str, pix_fmt: str, codec_options: dict[str, str]) -> None:
    """Open the encoder once on a tiny frame, so a bad preset or an absent GPU fails before any model work."""
    ctx = av.CodecContext.create(codec, "w")
    ctx.width, ctx.height, ctx.pix_fmt = 64, 64, pix_fmt
    ctx.time_base = Fraction(1, 25)
    ctx.options = dict(codec_options)
    try:
        ctx.open()
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        hint = " (no usable NVIDIA GPU?)" if codec.endswith("_nvenc") else ""
        reason = getattr(exc, "strerror", None) or str(exc)
        raise MediaError(f"{codec}: cannot start encoding with options {codec_options} ({reason}){hint}") from None


def _video_encoder(name: str) -> av.codec.Codec:
    if name not in av.codecs_available:
        have = [c for c in KNOWN_CODECS if c in av.codecs_available]
        raise MediaError(f"{name}: encoder not available in this PyAV build (available: {', '.join(have)})")
    try:
        codec = av.codec.Codec(name, "w")
    except (av.error.FFmpegError, ValueError):
        raise MediaError(f"{name}: is a decoder only, not an encoder") from None
    if codec.type != "video":
        raise MediaError(f"{name}: is a {codec.type} encoder, not a video one")
    return codec


def _codec_options(codec: str, options: EncodeOptions) -> dict[str, str]:
    out = dict(_FIXED_OPTIONS.get(codec, {}))
    quality = _QUALITY.get(codec)
    if quality is not None:
        key, lo, hi, default = quality
        crf = default if options.crf is None else options.crf
        if not lo <= crf <= hi:
            raise MediaError(f"{codec}: crf must be between {lo} and {hi} (got {crf})")
        out[key] = str(crf)
    if options.preset is not None:
        out[_PRESET_OPTION.get(codec, "preset")] = str(options.preset)
    return out

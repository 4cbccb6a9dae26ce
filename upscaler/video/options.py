"""Encoder choices (codec, quality, preset, pixel format) and the checks that they fit the output file."""

from __future__ import annotations

import contextlib
import io
import os
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

# The presets each encoder takes, checked before it is opened: x264 and x265 print their own "invalid preset"
# line to stderr on a wrong one, which would break the one-line error. Names: x264/x265's fixed list, NVENC's
# (FFmpeg's nvenc.h: p1-p7 and the older names); numbers: FFmpeg's option ranges (SVT-AV1 -2..13, VP9
# cpu-used -8..8, prores_ks profile -1..5 or its names).
_X26X_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow",
                 "placebo")
_PRESETS: dict[str, tuple[tuple[str, ...], tuple[int, int] | None]] = {
    "libx264": (_X26X_PRESETS, None),
    "libx265": (_X26X_PRESETS, None),
    "libsvtav1": ((), (-2, 13)),
    "libvpx-vp9": ((), (-8, 8)),
    "h264_nvenc": (("p1", "p2", "p3", "p4", "p5", "p6", "p7", "default", "slow", "medium", "fast", "hp", "hq",
                    "bd", "ll", "llhq", "llhp", "lossless", "losslesshp"), None),
    "prores_ks": (("auto", "proxy", "lt", "standard", "hq", "4444", "4444xq"), (-1, 5)),
}
_PRESETS["hevc_nvenc"] = _PRESETS["h264_nvenc"]

# Options every run of a codec gets: quiet x265 (it prints to stderr itself), constant-quality VP9
# needs a zero bitrate, FFV1 level 3 is the multithreaded, checksummed archival variant.
_FIXED_OPTIONS: dict[str, dict[str, str]] = {
    "libx265": {"x265-params": "log-level=error"},
    "libvpx-vp9": {"b": "0", "row-mt": "1"},
    "h264_nvenc": {"rc": "vbr", "b": "0"},
    "hevc_nvenc": {"rc": "vbr", "b": "0"},
    "ffv1": {"level": "3"},
}

# The pixel formats a default may pick (``_pick_format`` ranks them per input); an encoder offering none of
# them gets its first format.
_CANDIDATES = (
    "yuv420p", "yuv422p", "yuv444p", "nv12", "yuv420p10le", "p010le", "yuv422p10le", "yuv444p10le",
    "yuv420p12le", "yuv422p12le", "yuv444p12le", "yuv420p16le", "yuv444p16le",
    "yuva420p", "yuva422p", "yuva444p", "yuva420p10le", "yuva422p10le", "yuva444p10le", "yuva444p12le",
    "rgb24", "rgba", "rgb48be", "rgba64be", "argb",
)
_SEMI_PLANAR = ("nv12", "p010le")

# Encoders that store alpha -> the muxers that keep it (None: any that takes the codec). VP9 codes alpha as a
# second stream that only Matroska/WebM carry (BlockAdditional); ProRes 4444, FFV1, PNG and QuickTime RLE
# hold it in the bitstream itself. (x265's alpha layer is left out: FFmpeg's MP4/MOV muxers drop it.)
_ALPHA_MUXERS: dict[str, tuple[str, ...] | None] = {
    "libvpx-vp9": ("webm", "matroska"), "prores_ks": None, "ffv1": None, "png": None, "qtrle": None,
}
# The ones we suggest, where players expect them (PNG/QTRLE video and FFV1 in MP4 are oddities).
_ALPHA_SUGGESTED = {"libvpx-vp9": ("webm", "matroska"), "prores_ks": ("mov", "matroska"), "ffv1": ("matroska",)}
# libvpx refuses alpha in 4:2:2 and 4:4:4 (avcodec_open2 fails) although it lists yuva422p/yuva444p.
_VP9_ALPHA = "yuva420p"
_CHROMA_NAMES = {(0, 0): "4:4:4", (1, 0): "4:2:2", (1, 1): "4:2:0"}
# Delivery formats (by FFmpeg codec id, so NVENC counts too): RGB input, mostly screen captures headed for
# playback, gets 4:2:0 in them; lossless/intra codecs (FFV1, ProRes, PNG, QTRLE...) keep its full chroma.
_DELIVERY = ("h264", "hevc", "vp8", "vp9", "av1")
# Their profiles that 4:2:2/4:4:4 needs, which few players, browsers and hardware decoders take.
_FULL_CHROMA_PROFILES = {
    ("h264", (0, 0)): "High 4:4:4", ("h264", (1, 0)): "High 4:2:2",
    ("hevc", (0, 0)): "Main 4:4:4", ("hevc", (1, 0)): "Main 4:2:2 10",
    ("vp9", (0, 0)): "VP9 profile 1", ("vp9", (1, 0)): "VP9 profile 1",
    ("av1", (0, 0)): "High", ("av1", (1, 0)): "Professional",
}


@dataclass
class EncodeOptions:
    """How to encode the upscaled video.

    ``codec``: an FFmpeg encoder name (libx264, libx265, libsvtav1, libvpx-vp9, ffv1, prores_ks,
    h264_nvenc, hevc_nvenc); None or "auto" = NVENC when the model runs on an NVIDIA GPU and the encoder
    opens (h264_nvenc, hevc_nvenc for >8-bit input), else libx264, or libvpx-vp9 for a .webm output
    (WebM takes no H.264). ``crf``: constant-quality level; None picks ours (18 for x264/x265,
    30 for SVT-AV1 and VP9); ignored by ffv1 (lossless) and prores_ks (fixed-rate profiles).
    ``preset``: FFmpeg's word for the codec (x264 "medium", SVT-AV1 "8", prores_ks profile "hq",
    VP9 cpu-used "4"). ``pix_fmt``: None follows the input's bit depth, chroma subsampling and alpha
    (yuv420p -> yuv420p, yuv444p -> yuv444p, yuv420p10le -> yuv420p10le, VP9 with alpha -> yuva420p), or the
    encoder's closest; RGB input gets 4:2:0 from H.264/HEVC/VP9/AV1 and 4:4:4 from the others. An input with
    alpha and no codec asked for gets VP9 in .mkv as in .webm, so the alpha is kept.
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
    alpha: bool = False  # the input's alpha is upscaled and encoded


def container_for(dst: Path) -> str:
    """The muxer for an output path, from its extension."""
    muxer = CONTAINERS.get(dst.suffix.lower())
    if muxer is None:
        exts = ", ".join(sorted(CONTAINERS))
        ext = dst.suffix or "(none)"
        raise MediaError(f"{dst}: unsupported output container '{ext}' (use one of {exts})")
    return muxer


def default_codec(muxer: str, alpha: bool = False) -> str:
    """The encoder used when none is asked for: H.264 everywhere it may go, VP9 in WebM (and in Matroska for
    an input with alpha, which VP9 keeps there and H.264 cannot)."""
    return "libvpx-vp9" if muxer == "webm" or (alpha and muxer == "matroska") else "libx264"


def alpha_codecs(muxer: str) -> list[str]:
    """The encoders in this PyAV build that keep alpha in this muxer's files."""
    fits = supported_codecs(muxer)
    return [c for c, muxers in _ALPHA_MUXERS.items()
            if c in av.codecs_available and c in fits and (muxers is None or muxer in muxers)]


def supported_codecs(muxer: str) -> set[str]:
    """Codec and encoder names the muxer can store (asked of FFmpeg on an in-memory container)."""
    with av.open(io.BytesIO(), mode="w", format=muxer) as probe:
        return set(probe.supported_codecs)


def hardware_codec(muxer: str, src_pix_fmt: str) -> str | None:
    """The NVENC encoder for this output if this PyAV build has it and the container takes it."""
    name = "hevc_nvenc" if bit_depth(src_pix_fmt) > 8 else "h264_nvenc"
    return name if name in av.codecs_available and name in supported_codecs(muxer) else None


def plan_encoder(
    options: EncodeOptions, dst: Path, src_pix_fmt: str, prefer_hardware: bool = False, alpha: bool = False
) -> EncoderPlan:
    """Validate ``options`` against this PyAV build and the output container; choose the pixel format.

    ``prefer_hardware`` (the model runs on CUDA): with no codec asked for, encode on the GPU's NVENC when it
    opens with the real settings, so the CPU encoder does not become the bottleneck of a GPU run; without a
    usable GPU (or with settings NVENC refuses) the software default is planned instead.

    ``alpha``: the input has an alpha channel. The plan keeps it (``EncoderPlan.alpha``) where the encoder and
    container can; where they cannot, a note says so and names the encoders that would.
    """
    muxer = container_for(dst)
    if options.codec not in (None, "auto"):
        return _plan(options, str(options.codec), dst, muxer, src_pix_fmt, alpha)
    default = default_codec(muxer, alpha)
    # NVENC has no alpha: where the default keeps it, alpha wins over encoding speed.
    keeps_alpha = alpha and default in alpha_codecs(muxer)
    hardware = hardware_codec(muxer, src_pix_fmt) if prefer_hardware and not keeps_alpha else None
    if hardware is not None:
        with contextlib.suppress(MediaError):
            return _plan(options, hardware, dst, muxer, src_pix_fmt, alpha)
    return _plan(options, default, dst, muxer, src_pix_fmt, alpha)


def _plan(options: EncodeOptions, name: str, dst: Path, muxer: str, src_pix_fmt: str,
          alpha: bool = False) -> EncoderPlan:
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
    holds_alpha = codec.name in alpha_codecs(muxer)
    if options.pix_fmt is not None:
        if formats and options.pix_fmt not in formats:
            takes = ", ".join(formats)
            raise MediaError(f"{codec.name}: cannot encode pixel format {options.pix_fmt} (it takes {takes})")
        pix_fmt = options.pix_fmt
        keep_alpha = alpha and holds_alpha and has_alpha(pix_fmt)
        if alpha and holds_alpha and not keep_alpha:
            notes.append(f"alpha channel dropped: pixel format {pix_fmt} has none")
    else:
        keep_alpha = alpha and holds_alpha
        chroma = _chroma_of(src_pix_fmt)
        if codec.canonical_name in _DELIVERY and av.VideoFormat(src_pix_fmt).is_rgb:
            chroma = (1, 1)
        pix_fmt = _pick_format(codec.name, formats, depth, chroma, keep_alpha)
        if keep_alpha and not has_alpha(pix_fmt):
            keep_alpha = False
            notes.append(f"alpha channel dropped: {codec.name} has no alpha pixel format here")
        notes.extend(_fallback_note(codec.name, pix_fmt, depth, chroma, keep_alpha))
        notes.extend(_playback_note(codec.canonical_name, pix_fmt))
    if alpha and not holds_alpha:
        notes.append(_alpha_dropped(codec.name, dst, muxer))
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
        alpha=keep_alpha,
    )


def has_alpha(pix_fmt: str) -> bool:
    """Whether frames in ``pix_fmt`` carry an alpha plane (yuva420p, rgba, argb...)."""
    return any(c.is_alpha for c in av.VideoFormat(pix_fmt).components)


def _chroma_of(pix_fmt: str) -> tuple[int, int]:
    """The chroma subsampling (log2 horizontal, log2 vertical) an output needs to keep all of the input's
    colour: RGB counts as 4:4:4, gray as 4:2:0 (no colour to keep), 4:1:1 rounds to 4:2:2, 4:4:0 to 4:4:4."""
    fmt = av.VideoFormat(pix_fmt)
    if len([c for c in fmt.components if not c.is_alpha]) < 3:
        return 1, 1
    sub = (_log2(fmt.chroma_width(4)), _log2(fmt.chroma_height(4)))
    sub = (min(sub[0], 1), min(sub[1], 1))
    return (0, 0) if sub == (0, 1) else sub


def _log2(chroma_of_4: int) -> int:
    return {4: 0, 2: 1}.get(chroma_of_4, 2)


def _pick_format(codec: str, formats: list[str], depth: int, chroma: tuple[int, int], alpha: bool) -> str:
    """The encoder's pixel format closest to the input's: alpha where kept, then the bit depth (a >8-bit input
    stays >8-bit), then the chroma subsampling, then Y'CbCr before RGB, the fewest extra bits and chroma
    samples, planar before semi-planar."""
    usable = [f for f in _CANDIDATES if not formats or f in formats]
    if codec == "libvpx-vp9":
        usable = [f for f in usable if not has_alpha(f) or f == _VP9_ALPHA]
    if not usable:
        return formats[0] if formats else "yuv420p"

    def rank(name: str) -> tuple[bool | int, ...]:
        fmt = av.VideoFormat(name)
        sub = _chroma_of(name)
        bits = bit_depth(name)
        return (has_alpha(name) != alpha,
                depth > 8 and bits == 8,
                sub[0] > chroma[0] or sub[1] > chroma[1],
                fmt.is_rgb,
                bits,
                chroma[0] - sub[0] + chroma[1] - sub[1],
                name in _SEMI_PLANAR)

    return min(usable, key=rank)


def _fallback_note(codec: str, pix_fmt: str, depth: int, chroma: tuple[int, int], alpha: bool) -> list[str]:
    """One line when the chosen format keeps less than the input had: fewer bits, coarser chroma or both."""
    sub = _chroma_of(pix_fmt)
    missing = [f"{depth}-bit"] if depth > 8 and bit_depth(pix_fmt) == 8 else []
    if sub[0] > chroma[0] or sub[1] > chroma[1]:
        missing.append(_CHROMA_NAMES.get(chroma, "full-chroma"))
    mode = " ".join([*missing, "mode"] + (["with alpha"] if alpha else []))
    return [f"{codec} has no {mode} here: writing {pix_fmt}"] if missing else []


def _playback_note(codec_id: str, pix_fmt: str) -> list[str]:
    """One line when our default is a delivery codec's 4:2:2/4:4:4 profile, which many players cannot decode.
    Not said for an asked ``--pix-fmt``: that user chose it."""
    profile = _FULL_CHROMA_PROFILES.get((codec_id, _chroma_of(pix_fmt)))
    if profile is None:
        return []
    if codec_id == "vp9" and bit_depth(pix_fmt) > 8:
        profile = "VP9 profile 3"
    return [f"writing {pix_fmt} ({profile}): many players and browsers cannot play it; --pix-fmt yuv420p for those"]


def _alpha_dropped(codec: str, dst: Path, muxer: str) -> str:
    """The one line for an input whose alpha this output cannot keep, naming the encoders that would."""
    here = [c for c in alpha_codecs(muxer) if muxer in _ALPHA_SUGGESTED.get(c, ())]
    fix = (f"--codec {' or '.join(here)} keeps it" if here
           else "libvpx-vp9 in .webm/.mkv or prores_ks in .mov would keep it")
    return f"alpha channel dropped: {codec} in a {dst.suffix} file cannot store it ({fix})"


def _try_open(codec: str, pix_fmt: str, codec_options: dict[str, str]) -> None:
    """Open the encoder once on a tiny frame, so a bad preset or an absent GPU fails before any model work."""
    ctx = av.CodecContext.create(codec, "w")
    ctx.width, ctx.height, ctx.pix_fmt = 64, 64, pix_fmt
    ctx.time_base = Fraction(1, 25)
    ctx.options = dict(codec_options)
    if codec == "libsvtav1":
        os.environ.setdefault("SVT_LOG", "1")  # errors only: SVT-AV1 prints a banner on stderr otherwise
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
        _check_preset(codec, str(options.preset))
        out[_PRESET_OPTION.get(codec, "preset")] = str(options.preset)
    return out


def _check_preset(codec: str, preset: str) -> None:
    names, numbers = _PRESETS.get(codec, ((), None))
    if not names and numbers is None:
        return  # an encoder we hold no list for: opening it (``_try_open``) is the check
    if preset in names:
        return
    if numbers is not None:
        lo, hi = numbers
        try:
            if lo <= int(preset) <= hi:
                return
        except ValueError:
            pass
    takes = [*names, f"{numbers[0]}..{numbers[1]}"] if numbers is not None else list(names)
    raise MediaError(f"{codec}: cannot start encoding: unknown preset {preset!r} (it takes {', '.join(takes)})")

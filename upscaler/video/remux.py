"""Decide what happens to every stream but the upscaled one: copy it, re-encode it (audio), or drop it."""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path

import av
import av.codec
import av.container
import av.stream

# Audio encoders to fall back on when a track cannot be copied, per muxer: what players expect there.
_AUDIO_FALLBACK: dict[str, tuple[str, ...]] = {
    "webm": ("libopus", "libvorbis"),
    "mp4": ("aac", "libopus"),
    "mov": ("aac",),
    "matroska": ("libopus", "aac", "flac"),
}
# Per-channel bitrates transparent for each fallback encoder (lossless ones ignore it).
_AUDIO_BITRATE = {"libopus": 64_000, "libvorbis": 80_000, "aac": 96_000}

# Pairs FFmpeg accepts but few players play: re-encode instead.
_PLAYER_HOSTILE = {("mp4", "vorbis")}

# Stream tags that describe the input's encoding rather than its content; they would be wrong on the output.
_STALE_TAGS = {"ENCODER", "DURATION", "BPS", "NUMBER_OF_FRAMES", "NUMBER_OF_BYTES", "ALPHA_MODE"}


@dataclass(frozen=True)
class StreamPlan:
    copy: frozenset[int] = frozenset()  # input stream indices copied packet for packet
    transcode: dict[int, str] = field(default_factory=dict)  # input audio stream index -> encoder
    warnings: tuple[str, ...] = ()


def plan_streams(container: av.container.InputContainer, video: av.stream.Stream, muxer: str,
                 dst: Path) -> StreamPlan:
    """Copy what the output container accepts; re-encode audio it refuses; drop (and say so) the rest."""
    copy: set[int] = set()
    transcode: dict[int, str] = {}
    warnings: list[str] = []
    for stream in container.streams:
        if stream.index == video.index:
            continue
        what = f"{stream.type} stream #{stream.index} ({_codec(stream)})"
        if _can_copy(stream, muxer):
            copy.add(stream.index)
        elif stream.type == "audio" and (encoder := _audio_encoder(muxer)) is not None:
            transcode[stream.index] = encoder
            warnings.append(f"{dst.name}: {what} cannot be copied into {dst.suffix}; re-encoded as {encoder}")
        else:
            warnings.append(f"{dst.name}: {what} cannot be stored in {dst.suffix}; dropped")
    return StreamPlan(frozenset(copy), transcode, tuple(warnings))


def copy_tags(src: dict[str, str], dst: dict[str, str]) -> None:
    """Carry descriptive tags (language, title, handler...) but not stale encoding statistics."""
    # The mov/mp4 demuxer reports a track's title (its udta "name" box) as "name", and Matroska files remuxed
    # from mp4 keep it as a "NAME" tag; the mp4, mov and Matroska muxers all write the title from "title" only.
    titled = any(key.lower() == "title" for key in src)
    for key, value in src.items():
        if key.upper() in _STALE_TAGS or key.upper().startswith("_STATISTICS"):
            continue
        dst["title" if key.lower() == "name" and not titled else key] = value


def add_transcoded_audio(output: av.container.OutputContainer, template: av.stream.Stream,
                         encoder: str) -> av.stream.Stream:
    """An output audio stream for ``encoder`` matching the template's channels and (if allowed) rate."""
    codec = av.codec.Codec(encoder, "w")
    cc = template.codec_context
    rates = list(codec.audio_rates or ())
    rate = cc.sample_rate
    if rates and rate not in rates:
        higher = [r for r in rates if r >= rate]
        rate = min(higher) if higher else max(rates)
    out = output.add_stream(encoder, rate=rate)
    out.codec_context.layout = cc.layout
    out.codec_context.format = codec.audio_formats[0] if codec.audio_formats else cc.format
    per_channel = _AUDIO_BITRATE.get(encoder)
    if per_channel:
        out.codec_context.bit_rate = per_channel * max(1, cc.layout.nb_channels)
    copy_tags(template.metadata, out.metadata)
    out.disposition = template.disposition
    return out


def _can_copy(stream: av.stream.Stream, muxer: str) -> bool:
    """Ask FFmpeg: write a header for a copy of this stream into an in-memory file of that format."""
    if (muxer, _codec(stream)) in _PLAYER_HOSTILE:
        return False
    try:
        with av.open(io.BytesIO(), mode="w", format=muxer) as probe:
            probe.add_stream_from_template(stream)
            probe.start_encoding()
        return True
    except Exception:  # any refusal (unsupported codec, missing tag, experimental) means "no"
        return False


def _audio_encoder(muxer: str) -> str | None:
    with av.open(io.BytesIO(), mode="w", format=muxer) as probe:
        fits = set(probe.supported_codecs)
    return next(
        (e for e in _AUDIO_FALLBACK.get(muxer, ("aac", "libopus")) if e in av.codecs_available and e in fits),
        None,
    )


def _codec(stream: av.stream.Stream) -> str:
    cc = stream.codec_context
    return cc.name if cc is not None else "unknown codec"

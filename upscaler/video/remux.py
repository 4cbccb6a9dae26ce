"""Decide what happens to every stream but the upscaled one: copy it, re-encode it (audio, text subtitles), or
drop it."""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import av.codec
import av.container
import av.stream
from av.subtitles.subtitle import SubtitleSet

from .probe import is_damage

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

# Text subtitle encoders per muxer, for a text track the container cannot take as it is (mov_text into .mkv,
# SRT into .mp4...): FFmpeg's own defaults there. ASS keeps a mov_text track's styles in Matroska.
_SUBTITLE_FALLBACK = {"mp4": "mov_text", "mov": "mov_text", "matroska": "ass", "webm": "webvtt"}
# Cues are re-timed in milliseconds, the unit subtitle encoders and Matroska work in.
_MS = Fraction(1, 1000)
# For a decoder that gives no ASS header of its own (the encoders need one).
_ASS_HEADER = (b"[Script Info]\nScriptType: v4.00+\n\n[Events]\n"
               b"Format: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text\n")

# Stream tags that describe the input's encoding rather than its content; they would be wrong on the output.
_STALE_TAGS = {"ENCODER", "DURATION", "BPS", "NUMBER_OF_FRAMES", "NUMBER_OF_BYTES", "ALPHA_MODE"}


@dataclass(frozen=True)
class StreamPlan:
    copy: frozenset[int] = frozenset()  # input stream indices copied packet for packet
    transcode: dict[int, str] = field(default_factory=dict)  # input audio stream index -> encoder
    warnings: tuple[str, ...] = ()
    subtitles: dict[int, str] = field(default_factory=dict)  # input text subtitle stream index -> encoder


def plan_streams(container: av.container.InputContainer, video: av.stream.Stream, muxer: str,
                 dst: Path, convert_subtitles: bool = False) -> StreamPlan:
    """Copy what the output container accepts; re-encode audio it refuses (and, with ``convert_subtitles``, text
    subtitles: see SubtitleConverter); drop (and say so) the rest."""
    copy: set[int] = set()
    transcode: dict[int, str] = {}
    subtitles: dict[int, str] = {}
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
        elif convert_subtitles and _is_text(stream) and (encoder := _subtitle_encoder(muxer)) is not None:
            subtitles[stream.index] = encoder
            warnings.append(f"{dst.name}: {what} cannot be copied into {dst.suffix}; converted to {encoder}")
        else:
            warnings.append(f"{dst.name}: {what} cannot be stored in {dst.suffix}; dropped")
    return StreamPlan(frozenset(copy), transcode, tuple(warnings), subtitles)


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


class SubtitleConverter:
    """A text subtitle track re-encoded cue by cue for a container that cannot hold it as it is: FFmpeg's
    decoder turns each cue into an ASS event, the output container's text encoder writes it back."""

    def __init__(self, output: av.container.OutputContainer, template: av.stream.Stream, encoder: str) -> None:
        cc = template.codec_context
        self.decoder = av.CodecContext.create(cc.name, "r")
        if cc.extradata:
            self.decoder.extradata = cc.extradata  # the track's own styles (mov_text, ASS)
        self.decoder.open()
        self.stream = output.add_stream(encoder)
        out = self.stream.codec_context
        out.subtitle_header = self.decoder.subtitle_header or _ASS_HEADER
        out.time_base = _MS
        copy_tags(template.metadata, self.stream.metadata)
        self.stream.disposition = template.disposition

    def convert(self, packet: av.Packet) -> list[av.Packet]:
        """The output packets for one input cue; none for a cue that does not decode (a damaged one)."""
        if packet.pts is None or packet.time_base is None:
            return []
        try:
            cues = self.decoder.decode2(packet)
        except av.error.FFmpegError as exc:
            if not is_damage(exc):
                raise
            return []
        start = round(packet.pts * packet.time_base / _MS)
        length = round((packet.duration or 0) * packet.time_base / _MS) if packet.duration else None
        packets = []
        for rect in cues.rects if cues else ():
            text = getattr(rect, "ass", None)
            if not text:
                continue  # a bitmap cue: text encoders have no use for it
            duration = length if length is not None else max(0, cues.end_display_time - cues.start_display_time)
            out = self.stream.codec_context.encode_subtitle(SubtitleSet.create(text, 0, duration, start))
            out.stream, out.time_base = self.stream, _MS
            out.pts = out.dts = start
            out.duration = duration
            packets.append(out)
        return packets


def _is_text(stream: av.stream.Stream) -> bool:
    cc = stream.codec_context
    return stream.type == "subtitle" and cc is not None and bool(cc.codec.text_sub)


def _subtitle_encoder(muxer: str) -> str | None:
    encoder = _SUBTITLE_FALLBACK.get(muxer)
    if encoder is None or encoder not in av.codecs_available:
        return None
    with av.open(io.BytesIO(), mode="w", format=muxer) as probe:
        return encoder if encoder in probe.supported_codecs else None


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

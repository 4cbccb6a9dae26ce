"""Join a job's segment files into the output: their video packets, remuxed, with every other stream of the
source (copied, or re-encoded where the container needs it), its chapters and tags, all written once."""

from __future__ import annotations

import contextlib
import heapq
import warnings
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import av.container
import av.stream
from av.stream import Disposition

from ..errors import MediaError
from ..fileio import atomic_output
from ..video.decode import _LIBVPX, DamagedStream, _libvpx_decoder, alpha_decoder
from ..video.options import EncoderPlan
from ..video.pipeline import VideoWarning
from ..video.probe import _reason, is_damage, open_input
from ..video.remux import StreamPlan, SubtitleConverter, add_transcoded_audio, copy_tags, plan_streams

# Encoders and decoders of VP8/VP9, whose alpha is a side channel (upscaler/video/decode.py).
_SIDE_ALPHA = set(_LIBVPX.values())
# (seconds, packet) streams merged into one, so the muxer interleaves from a short buffer.
Timed = tuple[float, av.Packet]


def header_mismatch(parts: list[Path]) -> str | None:
    """Why the segments' streams cannot be concatenated packet for packet (codec, size, format or codec
    header differ), or None when they can."""
    first: tuple[object, ...] | None = None
    for part in parts:
        with av.open(str(part)) as seg:
            cc = seg.streams.video[0].codec_context
            facts = (cc.name, cc.width, cc.height, cc.pix_fmt, bytes(cc.extradata or b""))
        if first is None:
            first = facts
        elif facts[:4] != first[:4]:
            return f"{part.name} is {' '.join(map(str, facts[:4]))}, not {' '.join(map(str, first[:4]))}"
        elif facts[4] != first[4]:
            return f"{part.name} has another codec header (extradata) than {parts[0].name}"
    return None


def join_segments(src: Path, parts: list[Path], dst: Path, plan: EncoderPlan, frames: int,
                  starts: list[Fraction], *, strict: bool = False) -> list[float]:
    """Write ``dst`` (temp-then-rename) from the segment files, in order, and ``src``'s other streams; return
    the times (seconds from the file's start) of re-encoded audio packets that were damaged and left out as a
    single run leaves them (silence), or with ``strict`` raise DamagedStream at the first.

    ``frames``: how many the segments were recorded with; any other count is an error, not an output. ``starts``: each
    segment's first frame time in the source (seconds), which its packets are moved to: a muxer may have
    shifted them (MP4 edit lists round to its 1/1000 s movie clock). Segments whose codec headers disagree
    are joined by re-encoding them (with one warning), never silently."""
    mismatch = header_mismatch(parts)
    if mismatch is not None:
        warnings.warn(f"{dst.name}: the segments cannot be joined as they are ({mismatch}): joining them by "
                      "re-encoding", VideoWarning, stacklevel=3)
    source, video_in = open_input(src)
    audio_damage: list[float] = []
    try:
        streams = plan_streams(source, video_in, plan.container, dst, convert_subtitles=True)
        for note in streams.warnings:
            warnings.warn(note, VideoWarning, stacklevel=3)
        with atomic_output(dst) as tmp:
            try:
                output = av.open(str(tmp), mode="w", format=plan.container,
                                 container_options=plan.container_options)
            except (av.error.FFmpegError, OSError) as exc:
                raise MediaError(f"{dst}: cannot create ({_reason(exc)})") from None
            try:
                written = _write(output, source, video_in, parts, starts, streams, plan,
                                 reencode=mismatch is not None, audio_damage=audio_damage, strict=strict)
                output.close()
            except (av.error.FFmpegError, OSError) as exc:
                raise MediaError(f"{dst}: cannot write ({_reason(exc)})") from exc  # the errno says "disk full"
            finally:
                with contextlib.suppress(Exception):  # after a failure: the file is discarded anyway
                    output.close()
            if written != frames:
                raise MediaError(f"{dst}: the segments hold {written} frames, their manifest {frames}")
    finally:
        source.close()
    return audio_damage


def _write(output: av.container.OutputContainer, source: av.container.InputContainer, video_in: av.stream.Stream,
           parts: list[Path], starts: list[Fraction], streams: StreamPlan, plan: EncoderPlan, reencode: bool,
           audio_damage: list[float], strict: bool) -> int:
    """The streams, tags and chapters as the single pipeline's Writer sets them; then every packet."""
    copy_tags({k: v for k, v in source.metadata.items()
               if k not in ("major_brand", "minor_version", "compatible_brands")}, output.metadata)
    with av.open(str(parts[0])) as first:
        video = _video_stream(output, first.streams.video[0], plan, reencode)
    copy_tags({k: v for k, v in video_in.metadata.items() if k.lower() != "alpha_mode"}, video.metadata)
    if plan.alpha and plan.codec in _SIDE_ALPHA:
        # The segments' packets carry VP8/VP9 alpha as side data, but their stream reads as yuv420p: without
        # the tag the muxer does not flag it, and players show the output opaque.
        video.metadata["alpha_mode"] = "1"
    video.disposition = video_in.disposition | Disposition.default
    others: dict[int, av.stream.Stream] = {}
    subtitles: dict[int, SubtitleConverter] = {}
    transcode = streams.transcode
    for stream in source.streams:
        if stream.index in streams.copy:
            others[stream.index] = out = output.add_stream_from_template(stream)
            copy_tags(stream.metadata, out.metadata)
            out.disposition = stream.disposition
        elif stream.index in transcode:
            others[stream.index] = add_transcoded_audio(output, stream, transcode[stream.index])
        elif stream.index in streams.subtitles:
            subtitles[stream.index] = SubtitleConverter(output, stream, streams.subtitles[stream.index])
    chapters = source.chapters()
    if chapters:
        output.set_chapters(chapters)
    output.start_encoding()

    counted = [0]

    def counting(packets: Iterator[Timed]) -> Iterator[Timed]:
        for item in packets:
            counted[0] += 1
            yield item

    packets = _encoded(parts, starts, video, plan) if reencode else _remuxed(parts, starts, video)
    side = _others(source, others, transcode, subtitles, audio_damage, strict)
    for _, packet in heapq.merge(counting(packets), side, key=lambda t: t[0]):
        output.mux(packet)
    for index in transcode:
        for packet in others[index].encode(None):
            output.mux(packet)
    return counted[0]


def _video_stream(output: av.container.OutputContainer, template: av.stream.Stream, plan: EncoderPlan,
                  reencode: bool) -> av.stream.Stream:
    if not reencode:
        video = output.add_stream_from_template(template)
        video.time_base = template.time_base
        return video
    tcc = template.codec_context
    video = output.add_stream(plan.codec, rate=template.average_rate or template.guessed_rate or 25)
    cc = video.codec_context
    # The template's pix_fmt is what FFmpeg's own VP8/VP9 decoder reports: without the alpha it drops.
    cc.width, cc.height, cc.pix_fmt = tcc.width, tcc.height, plan.pix_fmt if plan.alpha else tcc.pix_fmt
    cc.time_base = video.time_base = template.time_base
    cc.color_primaries, cc.color_trc = tcc.color_primaries, tcc.color_trc
    cc.colorspace, cc.color_range = tcc.colorspace, tcc.color_range
    if template.sample_aspect_ratio:
        cc.sample_aspect_ratio = template.sample_aspect_ratio
    cc.options = dict(plan.codec_options)
    return video


def _remuxed(parts: list[Path], starts: list[Fraction], video: av.stream.Stream) -> Iterator[Timed]:
    """Each segment's packets in the output's time base, moved to start at its source time. Every segment
    starts with an IDR frame; only a dts a B-frame encoder put before the previous segment's last one
    (possible with VFR) is moved up, which keeps dts <= pts."""
    tb = video.time_base
    last: int | None = None
    for part, start in zip(parts, starts, strict=True):
        with av.open(str(part)) as seg:
            stream = seg.streams.video[0]
            first = min(p.pts for p in seg.demux(stream) if p.size and p.pts is not None)
            shift = round(start / tb) - _rescale(first, stream.time_base, tb)
        with av.open(str(part)) as seg:
            for packet in _with_dts(seg.demux(seg.streams.video[0]), tb, shift):
                if packet.dts is None or (last is not None and packet.dts <= last):
                    packet.dts = packet.pts if last is None else last + 1
                    if packet.pts is not None and packet.dts > packet.pts:
                        raise MediaError(f"{part.name}: its timestamps overlap the previous segment's")
                last = packet.dts
                packet.stream = video
                yield _seconds(packet), packet


def _with_dts(packets: Iterator[av.Packet], tb: Fraction, shift: int) -> Iterator[av.Packet]:
    """Packets in ``tb``, moved by ``shift``, every one with a dts. Matroska stores none: its demuxer derives
    them from the pts, except for the first B-frame delay's worth, which get the ticks just below the first
    known one (Matroska's muxer needs dts only to be increasing; it does not store them)."""
    waiting: list[av.Packet] = []
    for packet in packets:
        if not packet.size:
            continue
        packet.pts = None if packet.pts is None else _rescale(packet.pts, packet.time_base, tb) + shift
        packet.dts = None if packet.dts is None else _rescale(packet.dts, packet.time_base, tb) + shift
        packet.time_base = tb
        if packet.dts is None:
            waiting.append(packet)
            continue
        for i, early in enumerate(waiting):
            early.dts = packet.dts - (len(waiting) - i)
            yield early
        waiting = []
        yield packet
    for early in waiting:  # no dts at all: a segment too short for the delay
        early.dts = early.pts
        yield early


def _encoded(parts: list[Path], starts: list[Fraction], video: av.stream.Stream,
             plan: EncoderPlan) -> Iterator[Timed]:
    """The segments' frames decoded and encoded again as one stream (headers that differ cannot be joined);
    alpha kept, decoded by libvpx where it is VP8/VP9's side channel."""
    tb = video.time_base
    for part, start in zip(parts, starts, strict=True):
        with av.open(str(part)) as seg:
            stream = seg.streams.video[0]
            decoder = alpha_decoder(stream, part) if plan.alpha else None
            ctx = _libvpx_decoder(stream, part) if decoder in _SIDE_ALPHA else stream.codec_context
            shift: int | None = None
            for packet in seg.demux(stream):
                for frame in ctx.decode(packet):
                    pts = _rescale(frame.pts, stream.time_base, tb)
                    if shift is None:
                        shift = round(start / tb) - pts
                    frame.pts, frame.time_base = pts + shift, tb
                    frame.pict_type = av.video.frame.PictureType.NONE
                    for out in video.encode(frame):
                        yield float((out.dts if out.dts is not None else out.pts) * tb), out
    for packet in video.encode(None):
        yield float((packet.dts if packet.dts is not None else packet.pts) * tb), packet


def _others(source: av.container.InputContainer, others: dict[int, av.stream.Stream], transcode: dict[int, str],
            subtitles: dict[int, SubtitleConverter], audio_damage: list[float], strict: bool) -> Iterator[Timed]:
    """The source's other streams, in file order: packets copied, audio decoded for its new encoder (a damaged
    packet noted in ``audio_damage`` and left out, as video/decode.py's Decoder does), text subtitles converted
    cue by cue."""
    wanted = [s for s in source.streams if s.index in others or s.index in subtitles]
    if not wanted:
        return
    start = (source.start_time or 0) / av.time_base  # damage times count from it, as the Decoder's do
    try:
        for packet in source.demux(wanted):
            converter = subtitles.get(packet.stream.index)
            if converter is not None:
                if packet.size:
                    for converted in converter.convert(packet):
                        yield _seconds(converted), converted
                continue
            out = others[packet.stream.index]
            if packet.stream.index in transcode:
                for frame in _decode_audio(packet, source.name, start, audio_damage, strict):
                    for encoded in out.encode(frame):
                        yield _seconds(encoded), encoded
            elif packet.size and (packet.dts is not None or packet.pts is not None):
                seconds = _seconds(packet)
                packet.stream = out
                yield seconds, packet
    except (av.error.FFmpegError, OSError) as exc:
        # The source's fault, not the output's: never "cannot write" (many av errors are OSErrors).
        raise MediaError(f"{source.name}: corrupt data in its audio or subtitles ({_reason(exc)})") from None


def _decode_audio(packet: av.Packet, name: str, start: float, audio_damage: list[float],
                  strict: bool) -> list[av.AudioFrame]:
    try:
        return packet.decode()
    except av.error.FFmpegError as exc:
        if not is_damage(exc):
            raise
        at = float(packet.pts * packet.time_base) - start if packet.pts is not None and packet.time_base else 0.0
        if strict:
            raise DamagedStream(f"{name}: damaged audio (stream #{packet.stream.index}) near {at:.2f} s "
                                f"({_reason(exc)}); strict mode stops at the first damaged packet") from None
        audio_damage.append(at)
        return []


def _rescale(ts: int, src: Fraction, dst: Fraction) -> int:
    return ts if src == dst else round(ts * src / dst)


def _seconds(packet: av.Packet) -> float:
    ts = packet.dts if packet.dts is not None else packet.pts
    return float(ts * packet.time_base) if ts is not None and packet.time_base else 0.0

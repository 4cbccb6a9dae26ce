"""Demux an input once: video frames become RGB batches, other streams' packets ride along for the muxer."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import av.container
import av.video.stream
import numpy as np
from av.sidedata.sidedata import Type as SideDataType
from av.video.reformatter import ColorRange

from ..errors import MediaError
from .colour import DECODE_INTERPOLATION, RANGE_FULL, ColourTags
from .options import has_alpha
from .planes import layout_for, pack, read_alpha
from .probe import VideoInfo, _reason, is_damage
from .yuv_layout import YuvLayout

# A run of audio/subtitle packets with no video frame in between is sent on in chunks of this size,
# so a long audio tail (or a file whose video ends early) never piles up in memory.
_MAX_SIDE_ITEMS = 256

# Damaged frames closer together than this many nominal frame durations are reported as one time span.
_SPAN_GAP_FRAMES = 2.5
# Spans named in the warning; the rest are counted.
_MAX_SPANS = 4


class DamagedStream(MediaError):
    """Strict decoding met a damaged frame (or audio packet)."""


@dataclass
class Damage:
    """What the decoder could not decode cleanly, as times in seconds from the start of the file."""

    lost: list[float] = field(default_factory=list)  # video frames that failed to decode: not in the output
    concealed: list[float] = field(default_factory=list)  # decoded with errors patched over: kept
    audio: list[float] = field(default_factory=list)  # re-encoded audio packets that failed to decode
    fps: float = 25.0

    @property
    def frames(self) -> list[float]:
        return sorted(self.lost + self.concealed)

    def __bool__(self) -> bool:
        return bool(self.lost or self.concealed or self.audio)

    def describe(self, name: str, decoded: int) -> str:
        """One line: how many frames, when, and what became of them."""
        parts = []
        if self.lost or self.concealed:
            total = decoded + len(self.lost)
            fates = [f"{len(self.lost)} could not be decoded (left out)"] if self.lost else []
            if self.concealed:
                fates.append(f"{len(self.concealed)} decoded with errors (kept)")
            parts.append(f"{len(self.frames)} of {total} frames damaged at {_spans(self.frames, self.fps)}: "
                         + ", ".join(fates))
        if self.audio:
            parts.append(f"{len(self.audio)} audio packets could not be decoded (silence) at "
                         f"{_spans(self.audio, self.fps)}")
        return f"{name}: damaged stream: {'; '.join(parts)} (strict mode makes this an error)"


@dataclass
class SideItem:
    """Something for a non-video output stream: a packet to copy, or a decoded audio frame to re-encode."""

    stream_index: int  # input stream index
    packet: av.Packet | None = None
    frame: av.AudioFrame | None = None


@dataclass
class Batch:
    """Up to ``batch_size`` consecutive video frames and what was demuxed alongside them.

    ``frames`` is RGB (N×H×W×3) or, when ``layout`` is set, the decoder's own planar Y'CbCr, one flat row per
    frame (N×layout.length), for the model's device to convert. ``alpha`` (N×H×W, the dtype of ``frames``)
    is the frames' straight alpha when the output keeps it.
    """

    frames: np.ndarray | None
    pts: list[int] = field(default_factory=list)  # per frame, in the input stream's time base
    side: list[SideItem] = field(default_factory=list)
    # Set on the first batch with frames: what the encoder must tag and how the player must rotate.
    tags: ColourTags | None = None
    display_matrix: list[int] | None = None
    layout: YuvLayout | None = None
    alpha: np.ndarray | None = None


class Decoder:
    """Reads one input container; ``batches()`` is meant to run in its own thread."""

    def __init__(self, path: Path, container: av.container.InputContainer,
                 stream: av.video.stream.VideoStream, info: VideoInfo,
                 copy: set[int], transcode: set[int], planar: bool = False, strict: bool = False,
                 alpha: bool = False) -> None:
        self.path = path
        self.container = container
        self.stream = stream
        self.info = info
        self.copy = copy
        self.transcode = transcode
        self.frames_decoded = 0
        self.discarded = 0  # packets an edit list trims: in the container's frame count, never decoded
        self.display_matrix: list[int] | None = None
        # Deep inputs keep their precision all the way to the model.
        self.dtype = np.uint16 if info.bit_depth > 8 else np.uint8
        # ``alpha``: decode the stream's alpha too (RGBA, split into Batch.alpha), for an output that keeps it.
        self.alpha = alpha and not planar
        if self.alpha:
            self._rgb_format = "rgba64le" if info.bit_depth > 8 else "rgba"
        else:
            self._rgb_format = "rgb48le" if info.bit_depth > 8 else "rgb24"
        self._tags_cache: dict[tuple[int, int, int, int], ColourTags] = {}
        fps = info.fps or 25
        # Fallback spacing for frames without a timestamp: one nominal frame, in time-base units.
        self._step = max(1, round(1 / (fps * info.time_base))) if info.time_base else 1
        self._last_pts: int | None = None
        self._first_tags: ColourTags | None = None
        self._sent_first = False
        self._data_end: float | None = None  # seconds, latest packet end seen in any stream
        # Planar output: frames in the stream's pixel format, size and colour tags (those of the first frame).
        self.planar = planar
        self.layout: YuvLayout | None = None
        stream.codec_context.thread_type = "AUTO"
        self._codec = _libvpx_decoder(stream, path) if self.alpha and stream.codec_context.name in _LIBVPX \
            else stream.codec_context
        # Damaged data: counted and reported, or (strict) an error at the first damaged frame.
        self.strict = strict
        self.damage = Damage(fps=float(fps))
        self._start = (container.start_time or 0) / av.time_base
        # Video packets sent whose frame has not come out yet. With frame threading a decode error surfaces
        # a few packets late, so the frames lost are the pts that never come out, not where errors were raised.
        self._waiting: set[int] = set()
        self._decode_errors: list[float] = []

    def batches(self, batch_size: int) -> Iterator[Batch]:
        """Yield batches until the input ends. Damaged frames are skipped (or kept, when the decoder patched
        them up) and noted in ``damage``; MediaError on a truncated or unreadable file, when no frame decodes,
        and (``strict``) at the first damaged frame."""
        frames: list[np.ndarray] = []
        pts: list[int] = []
        side: list[SideItem] = []
        wanted = [self.stream, *(s for s in self.container.streams if s.index in self.copy | self.transcode)]
        where = "header"
        try:
            for packet in self.container.demux(wanted):
                index = packet.stream.index
                self._note_end(packet)
                if index == self.stream.index:
                    where = f"frame {self.frames_decoded}"
                    if packet.is_corrupt:
                        # A packet cut short by the end of the file (or flagged by the demuxer). With frame
                        # threading the decoder would drop it silently and the output would end early.
                        raise MediaError(f"{self.path}: corrupt stream at {where} (truncated or damaged)")
                    for frame in self._decode_video(packet):
                        frames.append(self._to_planes(frame) if self.planar else self._to_rgb(frame))
                        pts.append(self._timestamp(frame))
                        self.frames_decoded += 1
                        if len(frames) == batch_size:
                            yield self._batch(frames, pts, side)
                            frames, pts, side = [], [], []
                elif index in self.transcode:
                    where = f"audio stream #{index}"
                    side.extend(SideItem(index, frame=f) for f in self._decode_audio(packet))
                elif packet.size and (packet.dts is not None or packet.pts is not None):
                    side.append(SideItem(index, packet=packet))
                if not frames and len(side) >= _MAX_SIDE_ITEMS:
                    yield Batch(None, [], side)
                    side = []
        except (av.error.FFmpegError, OSError) as exc:
            # Many av errors are OSErrors: catch them here, or they would read as "cannot write".
            raise MediaError(f"{self.path}: corrupt stream at {where} ({_reason(exc)})") from None
        if self.frames_decoded == 0:
            raise MediaError(f"{self.path}: no frames decoded")
        self._check_complete()
        self._count_lost()
        if frames or side:
            yield self._batch(frames, pts, side) if frames else Batch(None, [], side)

    def _decode_video(self, packet: av.Packet) -> list[av.VideoFrame]:
        """The packet's frames; a damaged packet gives none (noted, or an error when strict)."""
        # Packets the demuxer marks for discarding (before an edit list's start) never give a frame.
        if packet.pts is not None and packet.size and not packet.is_discard:
            self._waiting.add(packet.pts)
        elif packet.size and packet.is_discard:
            self.discarded += 1
        try:
            frames = self._codec.decode(packet)
        except av.error.FFmpegError as exc:
            if not is_damage(exc):
                raise  # out of memory, a failing decoder: not the data's fault
            at = self._seconds(packet.pts, packet.time_base)
            if self.strict:
                # The error surfaces a few packets late: the earliest frame still out is the nearer guess.
                at = self._seconds(min(self._waiting, default=packet.pts), packet.time_base)
                raise DamagedStream(f"{self.path}: damaged video near {at:.2f} s ({_reason(exc)}); "
                                    "strict mode stops at the first damaged frame") from None
            self._decode_errors.append(at)
            return []
        for frame in frames:
            if frame.pts is not None:
                self._waiting.discard(frame.pts)
            if frame.is_corrupt:
                at = self._seconds(frame.pts, frame.time_base)
                if self.strict:
                    raise DamagedStream(f"{self.path}: damaged video near {at:.2f} s (a frame decoded with "
                                        "errors); strict mode stops at the first damaged frame")
                self.damage.concealed.append(at)
        return frames

    def _decode_audio(self, packet: av.Packet) -> list[av.AudioFrame]:
        try:
            return packet.decode()
        except av.error.FFmpegError as exc:
            if not is_damage(exc):
                raise
            at = self._seconds(packet.pts, packet.time_base)
            if self.strict:
                raise DamagedStream(f"{self.path}: damaged audio (stream #{packet.stream.index}) near {at:.2f} s "
                                    f"({_reason(exc)}); strict mode stops at the first damaged packet") from None
            self.damage.audio.append(at)
            return []

    def _count_lost(self) -> None:
        """After the flush: frames whose packet went in but never came out were lost to decode errors."""
        if not self._decode_errors:
            return  # a pts that never comes out on its own (odd muxing) is no damage
        tb = self.stream.time_base
        lost = [self._seconds(p, tb) for p in sorted(self._waiting)] or self._decode_errors
        self.damage.lost.extend(lost)

    def _seconds(self, pts: int | None, time_base: Fraction | None) -> float:
        if pts is None or time_base is None:
            # No timestamp: place it after the last frame seen.
            last = self._last_pts if self._last_pts is not None else 0
            return float(last * (self.info.time_base or 0)) - self._start
        return float(pts * time_base) - self._start

    def _note_end(self, packet: av.Packet) -> None:
        if packet.pts is not None and packet.time_base is not None:
            end = float((packet.pts + (packet.duration or 0)) * packet.time_base)
            self._data_end = end if self._data_end is None else max(self._data_end, end)

    def _check_complete(self) -> None:
        """A file cut short (an interrupted download) still demuxes cleanly in Matroska: compare the
        data's end with the duration the header announced. On every clip in shared/ the two agree within
        0.04 s; the slack below is 0.25 s or 5 %, whichever is larger."""
        duration = self.container.duration
        if duration is None or self._data_end is None:
            return
        start = (self.container.start_time or 0) / av.time_base
        announced = duration / av.time_base
        got = self._data_end - start
        if got < announced - max(0.25, 0.05 * announced):
            raise MediaError(f"{self.path}: truncated (data ends at {got:.2f} s of {announced:.2f} s)")

    def _batch(self, frames: list[np.ndarray], pts: list[int], side: list[SideItem]) -> Batch:
        stacked = np.stack(frames)
        if self.alpha:
            batch = Batch(np.ascontiguousarray(stacked[..., :3]), pts, side, alpha=stacked[..., 3].copy())
        else:
            batch = Batch(stacked, pts, side, layout=self.layout)
        if not self._sent_first:
            batch.tags, batch.display_matrix = self._first_tags, self.display_matrix
            self._sent_first = True
        return batch

    def _to_rgb(self, frame: av.VideoFrame) -> np.ndarray:
        if self.display_matrix is None:
            self.display_matrix = _display_matrix(frame) or []
        tags = self._tags(frame)
        if self._first_tags is None:
            self._first_tags = tags
        # Scaling to the first frame's size keeps batches stackable if the stream changes resolution.
        rgb = frame.to_ndarray(
            format=self._rgb_format,
            width=self.info.width,
            height=self.info.height,
            src_colorspace=tags.sws_matrix,
            src_color_range=tags.sws_range,
            dst_color_range=ColorRange.JPEG,
            interpolation=DECODE_INTERPOLATION,
        )
        if self.alpha and (frame.width, frame.height) == (self.info.width, self.info.height):
            alpha = read_alpha(frame, rgb.dtype)  # swscale's widening of 10/12-bit alpha is inexact
            if alpha is not None:
                rgb[..., 3] = alpha
        return rgb

    def _to_planes(self, frame: av.VideoFrame) -> np.ndarray:
        tags = self._tags(frame)
        if self.layout is None:
            self.display_matrix = _display_matrix(frame) or []
            self._first_tags = tags
            self.layout = layout_for(self.info.pix_fmt, self.info.width, self.info.height, tags.matrix,
                                     tags.range == RANGE_FULL)
            if self.layout is None:
                raise MediaError(f"{self.path}: {self.info.pix_fmt} frames cannot be converted on the device")
        ref, first = self.layout, self._first_tags
        assert first is not None
        if (frame.format.name, frame.width, frame.height) != (ref.pix_fmt, ref.width, ref.height) or \
                (tags.matrix, tags.range) != (first.matrix, first.range):
            # A mid-stream change of size, format or matrix: swscale brings the frame to the first one's.
            frame = frame.reformat(
                format=ref.pix_fmt, width=ref.width, height=ref.height,
                src_colorspace=tags.sws_matrix, dst_colorspace=first.sws_matrix,
                src_color_range=tags.sws_range, dst_color_range=first.sws_range,
                interpolation=DECODE_INTERPOLATION,
            )
        row = np.empty(ref.length, ref.dtype)
        pack(frame, ref, row)
        return row

    def _tags(self, frame: av.VideoFrame) -> ColourTags:
        key = (frame.colorspace, frame.color_range, frame.color_primaries, frame.color_trc)
        tags = self._tags_cache.get(key)
        if tags is None:
            tags = self.info.colour.overlay(ColourTags.of(frame)).resolved(
                self.info.width, self.info.height, frame.format.name
            )
            self._tags_cache[key] = tags
        return tags

    def _timestamp(self, frame: av.VideoFrame) -> int:
        """The frame's pts; synthesised when missing, nudged when not increasing (encoders refuse that)."""
        pts = frame.pts
        if pts is None:
            pts = 0 if self._last_pts is None else self._last_pts + self._step
        elif self._last_pts is not None and pts <= self._last_pts:
            pts = self._last_pts + 1
        self._last_pts = pts
        return pts


def _spans(times: list[float], fps: float) -> str:
    """"1.00-1.48, 2.40 s": close times as spans, the first few named and the rest counted."""
    gap = _SPAN_GAP_FRAMES / (fps or 25.0)
    spans: list[list[float]] = []
    for t in sorted(times):
        if spans and t - spans[-1][1] <= gap:
            spans[-1][1] = t
        else:
            spans.append([t, t])
    text = ", ".join(f"{a:.2f}" if a == b else f"{a:.2f}-{b:.2f}" for a, b in spans[:_MAX_SPANS])
    more = len(spans) - _MAX_SPANS
    return f"{text} s" + (f" and {more} more spans" if more > 0 else "")


# VP8/VP9 code alpha as a side channel (Matroska BlockAdditional, flagged ALPHA_MODE=1) that only libvpx
# decodes: FFmpeg's native vp8/vp9 decoders ignore it.
_LIBVPX = {"vp8": "libvpx", "vp9": "libvpx-vp9"}


def alpha_decoder(stream: av.video.stream.VideoStream, path: Path) -> str | None:
    """The decoder that gives this stream's alpha (libvpx for VP8/VP9 alpha), or None when it has none.

    Browsers' MediaRecorder flags every VP9 recording ALPHA_MODE=1, alpha or not, so the first packet is looked
    at too (in a separate open of ``path``). Other codecs' alpha pixel formats count only when the first
    frame's alpha is not all opaque.
    """
    cc = stream.codec_context
    if cc is None:
        return None
    if cc.name in _LIBVPX:
        tagged = any(k.lower() == "alpha_mode" and v.strip() == "1" for k, v in stream.metadata.items())
        return _LIBVPX[cc.name] if tagged and _first_packet_has_alpha(path, stream.index) else None
    if cc.pix_fmt and has_alpha(cc.pix_fmt):
        # QTRLE argb screen captures and rgba PNG video mostly carry an alpha that is all opaque: keeping it
        # would cost a warning on .mp4 and slow VP9 in .mkv for nothing.
        return None if _first_frame_opaque(path, stream.index) else cc.name
    return None


def _first_frame_opaque(path: Path, index: int) -> bool:
    """Whether the first decoded frame's alpha is all at its maximum (a fresh open of ``path``)."""
    try:
        with av.open(str(path), metadata_errors="replace") as container:
            for frame in container.decode(container.streams[index]):
                alpha = read_alpha(frame, np.dtype(np.uint16))  # planar: exact at any bit depth
                if alpha is not None:
                    return bool(np.all(alpha == 65535))
                # Packed (argb, rgba64): at its own width, as swscale widens 8-bit 255 to 65532.
                deep = max(c.bits for c in frame.format.components) > 8
                packed = frame.to_ndarray(format="rgba64le" if deep else "rgba")[..., 3]
                return bool(np.all(packed == (65535 if deep else 255)))
    except (av.error.FFmpegError, OSError, ValueError):
        pass  # the decoder reports a damaged file itself; meanwhile the alpha counts as real
    return False


def _first_packet_has_alpha(path: Path, index: int) -> bool:
    try:
        with av.open(str(path), metadata_errors="replace") as container:
            for packet in container.demux(container.streams[index]):
                if packet.size:
                    return packet.has_sidedata("matroska_block_additional")
    except (av.error.FFmpegError, OSError):
        pass  # the decoder reports a damaged file itself
    return False


def _libvpx_decoder(stream: av.video.stream.VideoStream, path: Path) -> av.CodecContext:
    """A libvpx decoder in place of the stream's own, for VP8/VP9 with alpha."""
    name = _LIBVPX[stream.codec_context.name]
    try:
        ctx = av.CodecContext.create(name, "r")
    except (av.error.FFmpegError, ValueError):
        raise MediaError(f"{path}: cannot read its alpha channel: no {name} decoder in this PyAV build") from None
    ctx.extradata = stream.codec_context.extradata
    ctx.thread_count = 0  # libvpx: one thread per core
    return ctx


def _display_matrix(frame: av.VideoFrame) -> list[int] | None:
    """The frame's rotation/flip matrix (9 int32, FFmpeg layout), minus its translation (in input pixels)."""
    for data in frame.side_data or ():
        if data.type == SideDataType.DISPLAYMATRIX:
            raw = bytes(data)
            if len(raw) == 36:
                matrix = list(struct.unpack("=9i", raw))
                matrix[6] = matrix[7] = 0
                return matrix
    return None


"""Open a video file and describe it: size, timing, pixel format, colour tags and the other streams."""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import av.container
import av.stream
import av.video.stream
from av.stream import Disposition

from ..errors import MediaError
from .colour import ColourTags, bit_depth


@dataclass(frozen=True)
class StreamInfo:
    """A non-video stream (or an extra video stream) that goes to the output unchanged."""

    index: int
    type: str
    codec: str
    language: str | None = None
    title: str | None = None
    disposition: Disposition = Disposition(0)  # default, forced, hearing_impaired, comment...


@dataclass(frozen=True)
class VideoInfo:
    """What ``probe_video`` learns about a file's main video stream."""

    path: Path
    index: int  # the stream's index in the container
    container: str
    codec: str
    width: int
    height: int
    frames: int | None  # from the container index, or duration x rate; None when unknown
    fps: Fraction | None  # average rate; a VFR stream has no single rate
    time_base: Fraction
    duration: float | None  # seconds; None when the container does not say
    pix_fmt: str
    bit_depth: int
    colour: ColourTags  # as tagged in the file (may be unspecified)
    sample_aspect_ratio: Fraction | None = None
    rotation: int = 0  # counter-clockwise degrees a player applies (phone clips)
    other_streams: tuple[StreamInfo, ...] = field(default_factory=tuple)

    @property
    def frames_known(self) -> bool:
        return self.frames is not None


# Demuxers that read a single picture: a PNG renamed to .mp4 opens fine but is no video.
_IMAGE_DEMUXERS = ("image2", "image2pipe", "gif_pipe", "apng_pipe")


def open_input(path: Path) -> tuple[av.container.InputContainer, av.video.stream.VideoStream]:
    """Open ``path`` for decoding and pick its main video stream, or raise a one-line MediaError."""
    if not path.exists():
        raise MediaError(f"{path}: no such file")
    if path.is_dir():
        raise MediaError(f"{path}: is a directory, not a file")
    try:
        container = av.open(str(path), mode="r", metadata_errors="replace")
    except av.error.InvalidDataError as exc:
        raise MediaError(f"{path}: not a video, or corrupt ({_reason(exc)})") from None
    except av.error.FFmpegError as exc:
        raise MediaError(f"{path}: cannot open ({_reason(exc)})") from None
    except OSError as exc:
        raise MediaError(f"{path}: cannot read ({exc.strerror or exc})") from None
    try:
        name = container.format.name
        if name in _IMAGE_DEMUXERS or (name.endswith("_pipe") and name != "gif_pipe"):
            raise MediaError(f"{path}: not a video (a still image)")
        streams = [
            s for s in container.streams.video if not s.disposition & Disposition.attached_pic
        ]
        if not streams:
            raise MediaError(f"{path}: not a video (no video stream)")
        stream = max(streams, key=lambda s: (bool(s.disposition & Disposition.default), -s.index))
        if stream.codec_context is None or not stream.codec_context.width:
            why = "corrupt header or unknown codec"
            raise MediaError(f"{path}: video stream #{stream.index} cannot be decoded ({why})")
    except BaseException:
        container.close()
        raise
    return container, stream


def describe(container: av.container.InputContainer, stream: av.video.stream.VideoStream,
             path: Path, rotation: int = 0) -> VideoInfo:
    """Build a VideoInfo from an open input; ``rotation`` comes from the first decoded frame."""
    cc = stream.codec_context
    tb = stream.time_base or Fraction(1, 90000)
    fps = stream.average_rate or stream.guessed_rate or None
    if stream.duration is not None:
        duration: float | None = float(stream.duration * tb)
    elif container.duration is not None:
        duration = container.duration / av.time_base
    else:
        duration = None
    if stream.frames and stream.frames > 0:
        frames: int | None = stream.frames
    elif duration is not None and fps:
        frames = max(1, round(duration * fps))
    else:
        frames = None
    pix_fmt = cc.pix_fmt or "yuv420p"
    others = tuple(
        StreamInfo(index=s.index, type=s.type, codec=_codec_name(s), language=s.language, title=stream_title(s),
                   disposition=s.disposition)
        for s in container.streams
        if s.index != stream.index
    )
    return VideoInfo(
        path=path,
        index=stream.index,
        container=container.format.name,
        codec=cc.name,
        width=cc.width,
        height=cc.height,
        frames=frames,
        fps=Fraction(fps) if fps else None,
        time_base=Fraction(tb),
        duration=duration,
        pix_fmt=pix_fmt,
        bit_depth=bit_depth(pix_fmt),
        colour=ColourTags.of(cc),
        sample_aspect_ratio=stream.sample_aspect_ratio or None,
        rotation=rotation,
        other_streams=others,
    )


def probe_video(path: Path) -> VideoInfo:
    """Describe the main video stream of ``path`` (decodes one frame for the display rotation)."""
    path = Path(path)
    container, stream = open_input(path)
    try:
        return describe(container, stream, path, _first_rotation(container, stream, path))
    finally:
        container.close()


def _first_rotation(container: av.container.InputContainer, stream: av.video.stream.VideoStream,
                    path: Path) -> int:
    """The display rotation of the first frame that decodes: damaged packets before it are passed over
    (the decoder reports them); with none decodable the decoder's "no frames decoded" says so."""
    try:
        for packet in container.demux(stream):
            try:
                frames = packet.decode()
            except av.error.FFmpegError as exc:
                if not is_damage(exc):
                    raise
                continue
            if frames:
                return int(frames[0].rotation)
    except (av.error.FFmpegError, OSError) as exc:
        raise MediaError(f"{path}: corrupt stream at frame 0 ({_reason(exc)})") from None
    return 0


def stream_title(stream: av.stream.Stream) -> str | None:
    """The track's title: Matroska reports it as "title", the mov/mp4 demuxer as "name" (its udta box)."""
    tags = {k.lower(): v for k, v in stream.metadata.items()}
    return tags.get("title") or tags.get("name")


# Decoders report bad data under many codes (INVALIDDATA mostly; AAC also EPERM, others EINVAL or PATCHWELCOME),
# and the demuxer has already moved past the packet: a decoder's error is the data's, bar these.
_NOT_DAMAGE = (av.error.MemoryError, av.error.ExternalError)


def is_damage(exc: BaseException) -> bool:
    """Whether a decoder's error means a damaged packet (pass over it) rather than a failing decoder."""
    return isinstance(exc, av.error.FFmpegError) and not isinstance(exc, _NOT_DAMAGE)


def _codec_name(stream: av.stream.Stream) -> str:
    cc = stream.codec_context
    return cc.name if cc is not None else "none"


def _reason(exc: BaseException) -> str:
    """FFmpeg's own words for an error, without the errno and file name PyAV adds."""
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__

"""Encode upscaled RGB batches and mux them with the copied/re-encoded streams; runs in its own thread."""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import av
import av.container
import av.stream
import numpy as np
from av.stream import Disposition

from ..errors import MediaError
from .colour import ENCODE_INTERPOLATION, RANGE_FULL, SPC_RGB, ColourTags
from .decode import Batch, SideItem
from .options import EncoderPlan
from .planes import unpack, write_alpha
from .probe import VideoInfo, _reason
from .remux import StreamPlan, SubtitleConverter, add_transcoded_audio, copy_tags
from .yuv_layout import YuvLayout


class Writer:
    """Owns the output container. ``open()`` (caller's thread) creates it and every stream; the size
    and colour tags are only known from the first upscaled batch, which starts the encoders."""

    def __init__(self, tmp: Path, dst: Path, plan: EncoderPlan, info: VideoInfo,
                 source: av.container.InputContainer, streams: StreamPlan) -> None:
        self.tmp = tmp
        self.dst = dst
        self.plan = plan
        self.info = info
        self.source = source
        self.streams = streams
        self.output: av.container.OutputContainer | None = None
        self.video: av.stream.Stream | None = None
        self.others: dict[int, av.stream.Stream] = {}  # input index -> output stream
        self.subtitles: dict[int, SubtitleConverter] = {}  # input index -> its re-encoder (text subtitles)
        self.size: tuple[int, int] | None = None  # encoded width, height
        self.cropped = False
        self.frames_written = 0
        self._started = False
        self._tags = ColourTags()
        self._pending: list[SideItem] = []  # side items seen before the first frame

    def open(self) -> None:
        """Create the file and its streams. Done before the threads start: templates read the input's
        stream parameters, which the demuxer thread must not be touching at the same time."""
        try:
            output = av.open(str(self.tmp), mode="w", format=self.plan.container,
                             container_options=self.plan.container_options)
        except av.error.FFmpegError as exc:
            raise MediaError(f"{self.dst}: cannot create ({_reason(exc)})") from None
        self.output = output
        copy_tags({k: v for k, v in self.source.metadata.items()
                   if k not in ("major_brand", "minor_version", "compatible_brands")}, output.metadata)

        video = output.add_stream(self.plan.codec, rate=self.info.fps or Fraction(25))
        cc = video.codec_context
        cc.pix_fmt = self.plan.pix_fmt
        # Keep the input's clock: every frame is written with its own input timestamp (VFR stays VFR).
        cc.time_base = self.info.time_base
        video.time_base = self.info.time_base
        if self.info.sample_aspect_ratio:
            cc.sample_aspect_ratio = self.info.sample_aspect_ratio
        cc.options = dict(self.plan.codec_options)
        # The input's ALPHA_MODE tag describes its alpha, not ours: Matroska flags yuva420p VP9 on its own.
        copy_tags({k: v for k, v in self.source.streams[self.info.index].metadata.items()
                   if k.lower() != "alpha_mode"}, video.metadata)
        # The input's flags (original, comment...) stay; default, as the upscaled stream is the one to play.
        video.disposition = self.source.streams[self.info.index].disposition | Disposition.default
        self.video = video

        for stream in self.source.streams:
            if stream.index in self.streams.copy:
                out = output.add_stream_from_template(stream)
                copy_tags(stream.metadata, out.metadata)
                out.disposition = stream.disposition
                self.others[stream.index] = out
            elif stream.index in self.streams.transcode:
                encoder = self.streams.transcode[stream.index]
                self.others[stream.index] = add_transcoded_audio(output, stream, encoder)
            elif stream.index in self.streams.subtitles:
                self.subtitles[stream.index] = SubtitleConverter(output, stream, self.streams.subtitles[stream.index])

    # -- called from the encoder thread ------------------------------------------------------------

    def write(self, batch: Batch, frames: np.ndarray | None, layout: YuvLayout | None = None) -> None:
        """Mux ``batch``'s side items and encode ``frames``: RGB (N×H×W×3), RGBA (N×H×W×4, straight alpha, for
        an alpha pixel format), or flat planar rows in the output pixel format when ``layout`` is given (the
        model's device did the colour conversion)."""
        if not self._started:
            if frames is None:
                self._pending.extend(batch.side)
                return
            self._start(batch, frames, layout)
            side, self._pending = self._pending + batch.side, []
        else:
            side = batch.side
        assert self.output is not None
        try:
            for item in side:
                self._mux_side(item)
            if frames is not None:
                for image, pts in zip(frames, batch.pts, strict=True):
                    self._encode(image, pts, layout)
        except av.error.FFmpegError as exc:
            where = f"frame {self.frames_written}"
            raise MediaError(f"{self.dst}: encoding failed at {where} ({_reason(exc)})") from None

    def finish(self) -> None:
        """Flush every encoder and write the trailer; only after a complete run."""
        if not self._started or self.output is None:
            raise MediaError(f"{self.info.path}: no frames decoded")
        try:
            for stream in (self.video, *self.others.values()):
                cc = stream.codec_context if stream is not None else None
                if cc is not None and cc.is_encoder:
                    for packet in stream.encode(None):
                        self.output.mux(packet)
            output, self.output = self.output, None
            output.close()
        except av.error.FFmpegError as exc:
            raise MediaError(f"{self.dst}: cannot finish the file ({_reason(exc)})") from None

    def abort(self) -> None:
        """Close whatever is open after a failure; the caller deletes the file."""
        output, self.output = self.output, None
        if output is not None:
            try:
                output.close()
            except Exception:  # noqa: S110 - the file is discarded anyway
                pass

    def _start(self, batch: Batch, frames: np.ndarray, layout: YuvLayout | None) -> None:
        """Size, colour tags and rotation from the first batch; then open the encoders, write the header."""
        assert self.output is not None and self.video is not None
        if layout is not None:
            if layout.pix_fmt != self.plan.pix_fmt:
                raise ValueError(f"planar frames are {layout.pix_fmt}, the encoder takes {self.plan.pix_fmt}")
            enc_w, enc_h = layout.width, layout.height  # cropped to the chroma grid by whoever made them
        else:
            height, width = frames.shape[1:3]
            enc_w, enc_h = encodable_size(width, height, self.plan.pix_fmt)
            if enc_w == 0 or enc_h == 0:
                raise MediaError(f"{self.dst}: frames of {width}x{height} are too small for {self.plan.pix_fmt}")
            self.cropped = (enc_w, enc_h) != (width, height)
        self.size = (enc_w, enc_h)
        tags = batch.tags or self.info.colour.resolved(self.info.width, self.info.height, self.info.pix_fmt)
        if av.VideoFormat(self.plan.pix_fmt).is_rgb:
            tags = ColourTags(tags.primaries, tags.trc, SPC_RGB, RANGE_FULL)
        self._tags = tags

        cc = self.video.codec_context
        cc.width, cc.height = enc_w, enc_h
        tags.apply_to(cc)
        if batch.display_matrix:
            self.video.set_display_matrix(batch.display_matrix)
        if self.plan.codec == "libsvtav1":
            os.environ.setdefault("SVT_LOG", "1")  # SVT-AV1 prints a banner on stderr otherwise
        try:
            self.output.start_encoding()
        except (av.error.FFmpegError, OSError, ValueError) as exc:
            hint = " (no usable NVIDIA GPU?)" if self.plan.codec.endswith("_nvenc") else ""
            raise MediaError(
                f"{self.plan.codec}: cannot start encoding {enc_w}x{enc_h} {self.plan.pix_fmt}"
                f" with options {self.plan.codec_options or '{}'} ({_reason(exc)}){hint}"
            ) from None
        self._started = True

    # -- per item ------------------------------------------------------------------------------------

    def _encode(self, image: np.ndarray, pts: int, layout: YuvLayout | None) -> None:
        assert self.output is not None and self.video is not None and self.size is not None
        tags = self._tags
        if layout is not None:
            frame = unpack(image, layout)
        else:
            frame = self._from_rgb(image)
        tags.apply_to(frame)
        frame.pts = pts
        frame.time_base = self.info.time_base
        for packet in self.video.encode(frame):
            self.output.mux(packet)
        self.frames_written += 1

    def _from_rgb(self, image: np.ndarray) -> av.VideoFrame:
        """swscale's RGB(A) -> the output pixel format, with the output's matrix and range; alpha is copied."""
        assert self.size is not None
        width, height = self.size
        if self.cropped:
            image = image[:height, :width]
        if image.shape[2] == 4:
            rgb = "rgba64le" if image.dtype == np.uint16 else "rgba"
        else:
            rgb = "rgb48le" if image.dtype == np.uint16 else "rgb24"
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format=rgb)
        tags = self._tags
        if tags.matrix == SPC_RGB:
            frame = frame.reformat(format=self.plan.pix_fmt)
        else:
            frame = frame.reformat(
                format=self.plan.pix_fmt,
                src_colorspace=tags.sws_matrix,
                dst_colorspace=tags.sws_matrix,
                src_color_range=av.video.reformatter.ColorRange.JPEG,
                dst_color_range=tags.sws_range,
                interpolation=ENCODE_INTERPOLATION,
            )
        if image.shape[2] == 4:
            write_alpha(frame, image[..., 3])  # swscale's is off by one for alpha 128-255
        return frame

    def _mux_side(self, item: SideItem) -> None:
        assert self.output is not None
        converter = self.subtitles.get(item.stream_index)
        if converter is not None and item.packet is not None:
            self.output.mux(converter.convert(item.packet))
            return
        out = self.others[item.stream_index]
        if item.packet is not None:
            item.packet.stream = out
            self.output.mux(item.packet)
        elif item.frame is not None:
            for packet in out.encode(item.frame):
                self.output.mux(packet)


def encodable_size(width: int, height: int, pix_fmt: str) -> tuple[int, int]:
    """The largest (width, height) within the given one that ``pix_fmt`` can hold: 4:2:0 and 4:2:2 need sizes
    divisible by their chroma subsampling, so the last row/column goes."""
    fmt = av.VideoFormat(pix_fmt)
    sub_w = 1 if fmt.chroma_width(2) == 2 else (2 if fmt.chroma_width(4) == 2 else 4)
    sub_h = 1 if fmt.chroma_height(2) == 2 else (2 if fmt.chroma_height(4) == 2 else 4)
    return width - width % sub_w, height - height % sub_h

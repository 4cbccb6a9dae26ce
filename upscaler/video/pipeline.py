"""upscale_video: decoder thread -> the model in the caller's thread (``steps.py``) -> encoder/muxer thread.

Bounded queues between the three keep memory flat whatever the length, and let decoding, inference and
encoding overlap. The model runs in the calling (main) thread, so Ctrl-C lands there and unwinds all three.
"""

from __future__ import annotations

import queue
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..device.stages import StageTimer, stage
from ..errors import UpscalerWarning
from ..fileio import atomic_output, check_output_path
from .decode import Batch, Decoder, alpha_decoder
from .encode import Writer
from .options import EncodeOptions, plan_encoder
from .probe import VideoInfo, open_input, probe_video
from .remux import StreamPlan, plan_streams
from .steps import FrameFn, FrameSubmit, Pending, PlanarModel, PlanarStep, RgbStep, Step, nothing, planar_handles

# Batches in flight on each side of the model: enough to hide decode/encode jitter, small enough for 4K.
_QUEUE_BATCHES = 2
_POLL_S = 0.1


class VideoWarning(UpscalerWarning):
    """Something about the output the user should know (a dropped or re-encoded stream, a crop...)."""


@dataclass(frozen=True)
class Span:
    """The frames whose pts (in the video stream's time base) fall in [start, end), None = open; decoding
    starts from the keyframe at or before ``seek``. A job's segment (upscaler/jobs): video only."""

    start: int | None = None
    end: int | None = None
    seek: int | None = None

    def holds(self, pts: int) -> bool:
        return (self.start is None or pts >= self.start) and (self.end is None or pts < self.end)


@dataclass(frozen=True)
class VideoResult:
    path: Path
    frames: int  # frames written
    width: int
    height: int
    elapsed: float  # seconds, decode to trailer
    codec: str
    pix_fmt: str
    warnings: tuple[str, ...] = ()
    # Seconds from the start of each damaged input frame: left out (undecodable) or kept (patched up).
    damaged: tuple[float, ...] = ()
    lost: int = 0  # how many of those are left out: frames = the input's frames - lost

    @property
    def fps(self) -> float:
        return self.frames / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def size(self) -> tuple[int, int]:
        return self.width, self.height


def upscale_video(
    src: Path,
    dst: Path,
    frame_fn: FrameFn,
    *,
    options: EncodeOptions | None = None,
    batch_size: int = 4,
    overwrite: bool = False,
    progress: Callable[[int], None] | None = None,
    on_start: Callable[[VideoInfo], None] | None = None,
    timer: StageTimer | None = None,
    sequential: bool = False,
    prefer_hardware: bool = False,
    planar: PlanarModel | None = None,
    frame_submit: FrameSubmit | None = None,
    span: Span | None = None,
    strict: bool = False,
) -> VideoResult:
    """Upscale every frame of ``src`` with ``frame_fn`` and write ``dst``; all other streams go along.

    ``frame_fn`` gets (N, H, W, 3) RGB batches, uint8 for 8-bit input and uint16 (full 0-65535 scale)
    for deeper input, and returns (N, H', W', 3) of either dtype; the output size is taken from the
    first batch and must then stay the same. ``progress(n)`` is called, in this thread, after each
    batch with the number of frames it held; ``on_start(info)`` once before decoding starts
    (``info.frames`` is None when the file does not say, e.g. WebM without a duration).

    Behaviour a video user would ask about:

    - Timestamps: each output frame keeps its input pts and time base, so VFR stays VFR and the
      frame count is the input's. Frames with no pts get one (previous + one nominal frame).
    - Colour: YUV->RGB uses the input's matrix and range (untagged: BT.709 for HD, BT.601 for SD,
      limited range), RGB->YUV the same ones, and the output stream is tagged with them explicitly
      (primaries, transfer, matrix, range), so a player does not re-guess from the new, larger size.
      >8-bit input stays >8-bit where the encoder allows (libx264/x265, SVT-AV1, VP9, FFV1, ProRes), and
      4:4:4 / 4:2:2 keep their chroma subsampling likewise (else one VideoWarning says what is written).
    - Alpha (VP8/VP9 with ALPHA_MODE, ProRes 4444, FFV1, PNG/QTRLE video) goes through ``frame_fn`` as a gray
      image, as images' alpha does, and is encoded where the output can store it (VP9 yuva420p in
      .webm/.mkv, ProRes 4444, FFV1); elsewhere it is dropped with one VideoWarning naming codecs that keep it.
    - Size: with a chroma-subsampled output format (yuv420p...) an odd width/height - possible with a
      fractional outscale - is cropped by one pixel on the right/bottom edge, never padded.
    - Other streams (audio, subtitles, data, attachments) are copied packet for packet. One the
      output container cannot hold is re-encoded if it is audio (Opus for .webm, AAC for .mp4/.mov) or
      text subtitles (mov_text, ASS for .mkv, WebVTT for .webm) and dropped otherwise; each case is
      reported as a VideoWarning and in ``result.warnings``. Container and stream tags (language,
      title...), every stream's flags (default, forced...) and the display rotation are carried over.
    - Errors the user can cause raise a one-line MediaError, and no output file is left behind
      (not even a temporary one), also on Ctrl-C.
    - Damaged data (frames the decoder rejects or flags as patched up): the run goes on without them
      (or with the patched ones) and one VideoWarning names how many and when (``result.damaged``);
      ``strict=True`` makes the first damaged frame a MediaError instead. A truncated file, and one with
      no decodable frame, are always errors.

    ``prefer_hardware`` (the frames come from a GPU model): with no codec chosen, encode with NVENC when it
    opens, else the software default.

    ``planar``: when given, and both the input's and the encoder's pixel formats are planar Y'CbCr it
    handles (yuv420p, yuv422p10le, nv12, p010le...), frames skip swscale: ``planar.submit_planes`` gets the
    decoded planes and gives back the encoder's, doing YUV <-> RGB itself (on the GPU, for ``Upscaler``);
    ``frame_fn`` is then unused. Other formats take the RGB path through ``frame_fn``, or through
    ``frame_submit`` when given: ``frame_fn`` queued, returning a function that waits for and returns the
    frames, so the next batch can be queued before this one is waited for (as on the planar path).

    ``timer`` collects the decode and encode stage times (``upscale bench``). ``sequential=True`` runs the
    plain loop instead - decode a batch, upscale it, encode it, in this thread - as the bench's baseline.

    ``span``: only those frames, and no other stream, go into ``dst`` (one segment of a job, upscaler/jobs).
    """
    src, dst = Path(src), Path(dst)
    options = options or EncodeOptions()
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1 (got {batch_size})")
    check_output_path(src, dst, overwrite)
    info = probe_video(src)
    container, stream = open_input(src)
    try:
        alpha = alpha_decoder(stream, src) is not None
        plan = plan_encoder(options, dst, info.pix_fmt, prefer_hardware, alpha=alpha)
        streams = (plan_streams(container, stream, plan.container, dst, convert_subtitles=True) if span is None
                   else StreamPlan())
        if span is not None and span.seek is not None:
            container.seek(span.seek, stream=stream, backward=True)
        notes = [*plan.notes, *streams.warnings]
        for note in notes:
            warnings.warn(note, VideoWarning, stacklevel=2)
        if on_start is not None:
            on_start(info)
        start = time.perf_counter()
        use_planar = (planar is not None and not plan.alpha and planar_handles(info.pix_fmt)
                      and planar_handles(plan.pix_fmt))
        decoder = Decoder(src, container, stream, info, {*streams.copy, *streams.subtitles}, set(streams.transcode),
                          planar=use_planar, strict=strict, alpha=plan.alpha)
        if span is not None:
            decoder = _SpanDecoder(decoder, span)  # type: ignore[assignment]
        step: Step = (PlanarStep(planar, plan.pix_fmt) if use_planar and planar is not None
                      else RgbStep(frame_fn, frame_submit))
        with atomic_output(dst, overwrite=overwrite) as tmp:  # locked; refuses a name that appeared meanwhile
            writer = Writer(tmp, dst, plan, info, container, streams)
            try:
                writer.open()
                run = _run_sequential if sequential else _run
                run(decoder, writer, step, batch_size, progress, timer)
            finally:
                writer.abort()  # a no-op after a clean finish
        elapsed = time.perf_counter() - start
    finally:
        container.close()

    late = []
    if (writer.cropped or step.cropped) and writer.size is not None:
        width, height = writer.size
        late.append(f"{dst.name}: cropped to {width}x{height}: {plan.pix_fmt} needs even sizes")
    announced, decoded = stream.frames and stream.frames - decoder.discarded, decoder.frames_decoded
    if decoder.damage:
        late.append(decoder.damage.describe(src.name, decoded))  # also why fewer frames came out
    elif announced and decoded != announced and span is None:
        late.append(f"{src.name}: decoded {decoded} frames, the container said {announced}")
    for note in late:
        warnings.warn(note, VideoWarning, stacklevel=2)
    assert writer.size is not None
    return VideoResult(
        path=dst,
        frames=writer.frames_written,
        width=writer.size[0],
        height=writer.size[1],
        elapsed=elapsed,
        codec=plan.codec,
        pix_fmt=plan.pix_fmt,
        warnings=tuple(notes + late),
        damaged=tuple(decoder.damage.frames),
        lost=len(decoder.damage.lost),
    )


class _SpanDecoder:
    """A Decoder whose batches are cut to a span; otherwise the decoder itself. Its frame count and damage
    are the span's: the frames decoded before and after it (to start at a keyframe, to let the last ones out)
    belong to the neighbouring segments, which report them."""

    def __init__(self, decoder: Decoder, span: Span) -> None:
        self.decoder, self.span = decoder, span
        self.frames_decoded = 0
        # The other streams are still demuxed, then dropped: the truncation check needs their ends.
        decoder.copy = {s.index for s in decoder.container.streams} - {decoder.stream.index}
        decoder.transcode = set()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.decoder, name)

    def batches(self, batch_size: int) -> Iterator[Batch]:
        """Stops at the first frame past the span: frames come out in pts order, so none of its can follow."""
        first: Batch | None = None  # carries the colour tags and rotation the encoder starts with
        try:
            for batch in self.decoder.batches(batch_size):
                if batch.frames is None:
                    continue
                first = first or batch
                keep = [i for i, pts in enumerate(batch.pts) if self.span.holds(pts)]
                if keep:
                    self.frames_decoded += len(keep)
                    yield Batch(batch.frames[keep], [batch.pts[i] for i in keep], [], first.tags,
                                first.display_matrix, batch.layout,
                                alpha=None if batch.alpha is None else batch.alpha[keep])
                    first.tags = first.display_matrix = None
                if self.span.end is not None and batch.pts[-1] >= self.span.end:
                    return
        finally:
            self._own_damage()

    def _own_damage(self) -> None:
        decoder, span = self.decoder, self.span
        tb = decoder.stream.time_base
        damage = decoder.damage
        if decoder._decode_errors and not damage.lost:
            # Stopped before the flush that counts them: the span's frames that went in and never came out.
            damage.lost.extend(decoder._seconds(p, tb) for p in sorted(decoder._waiting) if span.holds(p))
        lo = float("-inf") if span.start is None else decoder._seconds(span.start, tb)
        hi = float("inf") if span.end is None else decoder._seconds(span.end, tb)
        damage.lost[:] = [t for t in damage.lost if lo <= t < hi]
        damage.concealed[:] = [t for t in damage.concealed if lo <= t < hi]


class _Stopped(Exception):
    """Raised in a thread told to stop because another one failed or the user interrupted."""


_END = object()


def _timed_batches(decoder: Decoder, batch_size: int, timer: StageTimer | None) -> Iterator[Batch]:
    batches = decoder.batches(batch_size)
    while True:
        with stage(timer, "decode"):
            batch = next(batches, None)
        if batch is None:
            return
        yield batch


def _run_sequential(decoder: Decoder, writer: Writer, step: Step, batch_size: int,
                    progress: Callable[[int], None] | None, timer: StageTimer | None) -> None:
    for batch in _timed_batches(decoder, batch_size, timer):
        out, layout = step.submit(batch)() if batch.frames is not None else (None, None)
        with stage(timer, "encode"):
            writer.write(batch, out, layout)
        if progress is not None and batch.frames is not None:
            progress(len(batch.pts))
    with stage(timer, "encode"):
        writer.finish()


def _run(decoder: Decoder, writer: Writer, step: Step, batch_size: int,
         progress: Callable[[int], None] | None, timer: StageTimer | None) -> None:
    stop = threading.Event()
    errors: list[BaseException] = []
    decoded: queue.Queue[Any] = queue.Queue(maxsize=_QUEUE_BATCHES)
    upscaled: queue.Queue[Any] = queue.Queue(maxsize=_QUEUE_BATCHES)

    def produce() -> None:
        for batch in _timed_batches(decoder, batch_size, timer):
            _put(decoded, batch, stop)
        _put(decoded, _END, stop)

    def consume() -> None:
        while (item := _get(upscaled, stop)) is not _END:
            batch, out, layout = item
            with stage(timer, "encode"):
                writer.write(batch, out, layout)
        with stage(timer, "encode"):
            writer.finish()

    threads = [
        threading.Thread(target=_guard, args=(produce, stop, errors), name="video-decode", daemon=True),
        threading.Thread(target=_guard, args=(consume, stop, errors), name="video-encode", daemon=True),
    ]

    def hand_on(batch: Batch, pending: Pending) -> None:
        _put(upscaled, (batch, *pending()), stop)
        if progress is not None and batch.frames is not None:
            progress(len(batch.pts))

    started: list[threading.Thread] = []
    try:
        # Started inside the try: a Ctrl-C or SIGTERM can land while start() waits for its thread, and a decode
        # thread left running while the caller closes the containers crashes libav (SIGSEGV, seen 11 in 50).
        for thread in threads:
            started.append(thread)
            thread.start()
        # One batch of look-ahead: the next batch is queued on the model before the previous one is waited
        # for, so a GPU has work while this thread waits, packs and hands frames on.
        queued: tuple[Batch, Pending] | None = None
        while (batch := _get(decoded, stop)) is not _END:
            pending = step.submit(batch) if batch.frames is not None else nothing
            if queued is not None:
                hand_on(*queued)
            queued = (batch, pending)
        if queued is not None:
            hand_on(*queued)
        _put(upscaled, _END, stop)
        threads[1].join()
    except _Stopped:
        pass  # a worker failed: its own error is raised below
    finally:
        stop.set()
        for thread in started:
            _join(thread)
    if errors:
        raise errors[0]


def _join(thread: threading.Thread) -> None:
    """Join a thread whose start() was called, even if a signal cut start() short before the thread ran."""
    deadline = time.monotonic() + 1.0
    while True:
        try:
            thread.join()
            return
        except RuntimeError:  # "cannot join thread before it is started": it is about to be
            if time.monotonic() > deadline:
                return
            time.sleep(0.001)


def _guard(fn: Callable[[], None], stop: threading.Event, errors: list[BaseException]) -> None:
    """Run a worker; record its failure and tell everyone to stop."""
    try:
        fn()
    except _Stopped:
        pass
    except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
        errors.append(exc)
        stop.set()


def _put(q: queue.Queue[Any], item: object, stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            q.put(item, timeout=_POLL_S)
            return
        except queue.Full:
            continue
    raise _Stopped


def _get(q: queue.Queue[Any], stop: threading.Event) -> Any:
    while not stop.is_set():
        try:
            return q.get(timeout=_POLL_S)
        except queue.Empty:
            continue
    raise _Stopped

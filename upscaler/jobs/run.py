"""The job driver: plan segments, upscale the ones not yet done (each with the ordinary pipeline, into the job
folder), then join them into the output and remove the folder."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import shutil
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from ..errors import MediaError
from ..fileio import check_output_path, output_lock
from ..video.decode import Damage, alpha_decoder
from ..video.options import EncodeOptions, plan_encoder
from ..video.pipeline import Span, VideoResult, VideoWarning, upscale_video
from ..video.probe import VideoInfo, open_input, probe_video
from ..video.steps import FrameFn
from . import cluster
from .join import join_segments
from .manifest import JobDir, job_dir_for
from .segments import Segment, known_duration, plan_segments, scan_video


def job_key(src: Path, dst: Path, options: EncodeOptions, model: str, segment_seconds: float) -> dict[str, Any]:
    """What a job's segments depend on: a change in any of it makes an existing job folder stale."""
    stat = src.stat()
    return {"source": str(src.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns,
            "options": dataclasses.asdict(options), "model": model, "segment_seconds": segment_seconds,
            "output": dst.suffix.lower()}


def run_job(
    src: Path,
    dst: Path,
    frame_fn: FrameFn,
    *,
    segment_seconds: float,
    model: str = "",
    options: EncodeOptions | None = None,
    overwrite: bool = False,
    progress: Callable[[int], None] | None = None,
    on_start: Callable[[VideoInfo], None] | None = None,
    on_resume: Callable[[int], None] | None = None,
    notice: Callable[[str], None] | None = None,
    prefer_hardware: bool = False,
    workers: int = 1,
    replica: Callable[[], Replica] | None = None,
    timings: dict[str, float] | None = None,
    **pipeline: Any,
) -> VideoResult:
    """``upscale_video`` as a resumable job of segments of about ``segment_seconds``, cut at keyframes.

    ``model`` names the network (it keys the job with the source's size and mtime and the options: if any
    changed, a leftover job folder is stale and started afresh, with a warning). A video too short for two
    segments takes the single pipeline unchanged. ``on_start`` gets the info with the exact frame count;
    ``on_resume(n)`` the frames finished by an earlier run; ``notice`` one-line news (what is resumed). A
    segment that fails is reported and the others still run; the job then raises one MediaError naming the
    failed ones, and keeps the folder so a rerun redoes only those. Other arguments go to ``upscale_video``.

    ``workers`` > 1: the segments run on that many Ray actors (``pip install "upscaler[cluster]"``; a running
    cluster is joined where ``RAY_ADDRESS`` says, else one is started on this machine), each building its model
    once with ``replica()`` (picklable), which returns its frame function and pipeline arguments. The job folder
    must then be on a file system every worker sees. Progress advances a segment at a time.

    ``timings`` (``upscale bench --workers``) gets the wall seconds of the segment phase (``segments``, Ray's
    start and the workers' model loading included), the sum of the segments' own encode seconds
    (``segment_s``) and the join's (``join``).
    """
    src, dst = Path(src), Path(dst)
    options = options or EncodeOptions()
    if workers > 1:
        cluster.require_ray(workers)
        if replica is None:
            raise ValueError("workers > 1 needs a replica() to build each worker's model")
    check_output_path(src, dst, overwrite)
    # The scan demuxes the whole file: not for a video its header says is too short to be worth splitting.
    duration = known_duration(src)
    short = duration is not None and duration < 2 * segment_seconds
    segments = [] if short else plan_segments(scan_video(src), segment_seconds)
    # The output's lock, held for the whole job, also keeps a second run out of its job folder (a run that
    # holds it may be using the folder this one would remove as stale).
    with output_lock(dst, overwrite=overwrite):
        if len(segments) < 2:
            leftover = job_dir_for(dst)
            if leftover.exists():  # its key had other options or another source: this one is too short for it
                warnings.warn(f"{dst.name}: the unfinished job in {leftover} was stale (this run takes one "
                              "pass): removed", VideoWarning, stacklevel=2)
                shutil.rmtree(leftover, ignore_errors=True)
            return upscale_video(src, dst, frame_fn, options=options, overwrite=overwrite, progress=progress,
                                 on_start=on_start, prefer_hardware=prefer_hardware, **pipeline)
        # Segments always decode leniently: strict is applied to the damage each one finds in its own frames
        # (its decoder also sees some of its neighbours', which must not fail it).
        strict = bool(pipeline.pop("strict", False))
        pipeline["prefer_hardware"] = prefer_hardware
        runner: Runner = functools.partial(_local, src, frame_fn, options, progress, pipeline)
        if workers > 1:
            assert replica is not None
            runner = functools.partial(cluster.run_segments, src, workers, replica, options, progress, {})
        return _run(src, dst, segments, options, segment_seconds, model, on_start, on_resume, notice,
                    prefer_hardware, runner, strict, timings if timings is not None else {})


def _run(src: Path, dst: Path, segments: list[Segment], options: EncodeOptions, segment_seconds: float, model: str,
         on_start: Callable[[VideoInfo], None] | None, on_resume: Callable[[int], None] | None,
         notice: Callable[[str], None] | None, prefer_hardware: bool, runner: Runner, strict: bool,
         timings: dict[str, float]) -> VideoResult:
    info = probe_video(src)
    container, stream = open_input(src)
    try:  # planned as each segment's pipeline plans it, alpha included, so the join writes what they encoded
        alpha = alpha_decoder(stream, src) is not None
    finally:
        container.close()
    plan = plan_encoder(options, dst, info.pix_fmt, prefer_hardware, alpha=alpha)
    job, stale = JobDir.open(dst, job_key(src, dst, options, model, segment_seconds))
    if stale is not None:
        warnings.warn(f"{dst.name}: the unfinished job in {job.path} was stale ({stale}): starting afresh",
                      VideoWarning, stacklevel=2)
    total = sum(s.frames for s in segments)
    if on_start is not None:
        on_start(dataclasses.replace(info, frames=total))
    # The job key leaves strict out (a lenient rerun may reuse a strict run's segments): a strict run redoes
    # the finished segments with recorded damage, so that the damage fails them.
    done = [s for s in segments if job.done(s.index, s.frames)
            and not (strict and job.segments[s.index].get("damaged"))]
    if done:
        if on_resume is not None:
            on_resume(sum(s.frames for s in done))
        if notice is not None:
            notice(f"resuming {job.path.name}: {len(done)} of {len(segments)} segments already done")
    start = time.perf_counter()
    failed: list[str] = []
    seen: dict[str, None] = {}  # each segment repeats its pipeline's warnings: say each once
    todo = [(s, job.segment_path(s.index, dst.suffix)) for s in segments if s not in done]
    try:
        timings["segment_s"] = 0.0
        _collect(runner(todo), job, segments, dst, failed, seen, strict, timings)
        timings["segments"] = time.perf_counter() - start
        damage, decoded = _damage(job, segments, info.fps)
        try:
            if failed:
                kept = len(segments) - len(failed)
                raise MediaError(f"{src}: {'; '.join(failed)} ({kept} of {len(segments)} segments done and kept "
                                 f"in {job.path}: run the same command again to retry the failed ones)")
            parts = [job.path / job.segments[s.index]["file"] for s in segments]
            # Fewer than the source's where damaged frames were left out (the damage warning says so).
            total = sum(job.segments[s.index]["frames"] for s in segments)
            joining = time.perf_counter()
            # Re-encoded audio is decoded only here: its damage joins the video's in the one warning.
            damage.audio = join_segments(src, parts, dst, plan, total, [s.first for s in segments], strict=strict)
            timings["join"] = time.perf_counter() - joining
        finally:
            if damage and not strict:
                seen.setdefault(damage.describe(src.name, decoded))
            for message in seen:
                warnings.warn(message, VideoWarning, stacklevel=2)
    except KeyboardInterrupt as exc:
        exc.add_note(f"{len(job.segments)} of {len(segments)} segments are kept in {job.path}: "
                     "the same command resumes")
        raise
    job.remove()
    first = job.segments[segments[0].index]
    return VideoResult(path=dst, frames=total, width=first["width"], height=first["height"],
                       elapsed=time.perf_counter() - start, codec=plan.codec, pix_fmt=plan.pix_fmt,
                       warnings=tuple(seen), damaged=tuple(damage.frames), lost=len(damage.lost))


def _collect(outcomes: Iterator[Outcome], job: JobDir, segments: list[Segment], dst: Path, failed: list[str],
             seen: dict[str, None], strict: bool, timings: dict[str, float]) -> None:
    """Vouch for each segment that came out whole; note the others' errors, and every warning once."""
    for outcome in outcomes:
        segment, path = outcome.segment, outcome.path
        timings["segment_s"] += outcome.seconds
        error = outcome.error
        if strict and outcome.damaged and error is None:
            error = (f"damaged video near {outcome.damaged[0]:.2f} s; strict mode makes a damaged frame an "
                     "error")
        for message in outcome.warnings:
            if _DAMAGE not in message:  # said once for the whole job (_damage), or by the error with strict
                seen.setdefault(message.replace(path.name, dst.name))
        # Frames left out as damaged are the pipeline's to report (a warning, or an error with strict); any
        # other shortfall means the segment's frames were not all found.
        if error is None and outcome.frames != segment.frames and not outcome.damaged:
            error = f"decoded {outcome.frames} of its {segment.frames} frames"
        if error is None:
            job.record(segment.index, path, frames=outcome.frames, source_frames=segment.frames,
                       width=outcome.width, height=outcome.height, damaged=list(outcome.damaged),
                       lost=outcome.lost)
        else:
            with contextlib.suppress(OSError):
                path.unlink()
            job.forget(segment.index)
            failed.append(f"{segment.describe(len(segments))}: {error}")


@dataclass(frozen=True)
class Outcome:
    """What became of one segment: its file's frames and size, its pipeline's warnings, or its error."""

    segment: Segment
    path: Path
    frames: int = 0
    width: int = 0
    height: int = 0
    warnings: tuple[str, ...] = ()
    error: str | None = None
    damaged: tuple[float, ...] = ()  # seconds of its frames the decoder found damaged (left out or patched up)
    lost: int = 0  # how many of those are left out
    seconds: float = 0.0  # its encode's wall time, where it ran


def _damage(job: JobDir, segments: list[Segment], fps: Fraction | None) -> tuple[Damage, int]:
    """The damaged frames of every finished segment (this run's and those resumed), and how many frames they
    decoded, for one warning worded as a single run's (frames counted over the whole video)."""
    entries = [job.segments[s.index] for s in segments if s.index in job.segments]
    frames = sorted(t for e in entries for t in e.get("damaged", ()))
    lost = sum(e.get("lost", 0) for e in entries)
    # describe() needs only how many were left out or kept, and all their times.
    damage = Damage(lost=frames[:lost], concealed=frames[lost:], fps=float(fps or 25))
    return damage, sum(e["frames"] for e in entries)


# How the pipeline's warning about damaged frames reads (upscaler/video/decode.py Damage.describe).
_DAMAGE = ": damaged stream: "
# The frame function and upscale_video arguments a worker's own model gives (``Upscaler``: see engine.py).
Replica = tuple[FrameFn, dict[str, Any]]
Runner = Callable[[list[tuple[Segment, Path]]], Iterator[Outcome]]


def encode_segment(src: Path, path: Path, segment: Segment, frame_fn: FrameFn, options: EncodeOptions,
                   progress: Callable[[int], None] | None, pipeline: dict[str, Any]) -> Outcome:
    """One segment through the ordinary pipeline into ``path``; a MediaError becomes the outcome's error
    (here or in a Ray worker alike)."""
    with contextlib.suppress(OSError):
        path.unlink()  # a damaged or unvouched-for file of an earlier run
    began = time.perf_counter()
    told = [0]  # frames passed to ``progress``: a retry's frames count only past the first attempt's

    def counted() -> Callable[[int], None]:
        seen = [0]

        def tell(n: int) -> None:
            seen[0] += n
            if progress is not None and seen[0] > told[0]:
                progress(seen[0] - told[0])
            told[0] = max(told[0], seen[0])
        return tell

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        def encode(seek: int | None) -> VideoResult:
            return upscale_video(src, path, frame_fn, options=options, progress=counted(), overwrite=True,
                                 span=Span(segment.start, segment.end, seek), **pipeline)

        try:
            try:
                result = encode(segment.seek)
                short = result.frames < segment.frames and not result.damaged
            except MediaError as exc:
                # Only a seek that found none of the segment's frames is retried: any other error (a full
                # disk, a failing encoder) would only come again, after decoding from the start.
                if segment.seek is None or str(exc) != f"{src}: no frames decoded":
                    raise
                short = True
            if short and segment.seek is not None:
                # Frames missing, none damaged: the demuxer's seek landed past the keyframe asked for. Decode
                # from the start instead (slower, but every frame is met; a real error comes again).
                result = encode(None)
        except MediaError as exc:
            return Outcome(segment, path, warnings=tuple(str(w.message) for w in caught), error=str(exc),
                           seconds=time.perf_counter() - began)
    return Outcome(segment, path, result.frames, result.width, result.height, tuple(str(w.message) for w in caught),
                   damaged=result.damaged, lost=result.lost, seconds=time.perf_counter() - began)


def _local(src: Path, frame_fn: FrameFn, options: EncodeOptions, progress: Callable[[int], None] | None,
           pipeline: dict[str, Any], todo: list[tuple[Segment, Path]]) -> Iterator[Outcome]:
    for segment, path in todo:
        yield encode_segment(src, path, segment, frame_fn, options, progress, pipeline)

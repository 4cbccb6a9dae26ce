"""The job driver: plan segments, upscale the ones not yet done (each with the ordinary pipeline, into the job
folder), then join them into the output and remove the folder."""

from __future__ import annotations

import contextlib
import dataclasses
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import MediaError
from ..fileio import check_output_path, output_lock
from ..video.options import EncodeOptions, plan_encoder
from ..video.pipeline import Span, VideoResult, VideoWarning, upscale_video
from ..video.probe import VideoInfo, probe_video
from ..video.steps import FrameFn
from .join import join_segments
from .manifest import JobDir
from .segments import Segment, plan_segments, scan_video


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
    **pipeline: Any,
) -> VideoResult:
    """``upscale_video`` as a resumable job of segments of about ``segment_seconds``, cut at keyframes.

    ``model`` names the network (it keys the job with the source's size and mtime and the options: if any
    changed, a leftover job folder is stale and started afresh, with a warning). A video too short for two
    segments takes the single pipeline unchanged. ``on_start`` gets the info with the exact frame count;
    ``on_resume(n)`` the frames finished by an earlier run; ``notice`` one-line news (what is resumed). A
    segment that fails is reported and the others still run; the job then raises one MediaError naming the
    failed ones, and keeps the folder so a rerun redoes only those. Other arguments go to ``upscale_video``.
    """
    src, dst = Path(src), Path(dst)
    options = options or EncodeOptions()
    check_output_path(src, dst, overwrite)
    segments = plan_segments(scan_video(src), segment_seconds)
    if len(segments) < 2:
        return upscale_video(src, dst, frame_fn, options=options, overwrite=overwrite, progress=progress,
                             on_start=on_start, prefer_hardware=prefer_hardware, **pipeline)
    # The output's lock, held for the whole job, also keeps a second run out of its job folder.
    with output_lock(dst, overwrite=overwrite):
        return _run(src, dst, frame_fn, segments, options, segment_seconds, model, progress, on_start, on_resume,
                    notice, prefer_hardware, pipeline)


def _run(src: Path, dst: Path, frame_fn: FrameFn, segments: list[Segment], options: EncodeOptions,
         segment_seconds: float, model: str, progress: Callable[[int], None] | None,
         on_start: Callable[[VideoInfo], None] | None, on_resume: Callable[[int], None] | None,
         notice: Callable[[str], None] | None, prefer_hardware: bool, pipeline: dict[str, Any]) -> VideoResult:
    info = probe_video(src)
    plan = plan_encoder(options, dst, info.pix_fmt, prefer_hardware)
    job, stale = JobDir.open(dst, job_key(src, dst, options, model, segment_seconds))
    if stale is not None:
        warnings.warn(f"{dst.name}: the unfinished job in {job.path} was stale ({stale}): starting afresh",
                      VideoWarning, stacklevel=2)
    total = sum(s.frames for s in segments)
    if on_start is not None:
        on_start(dataclasses.replace(info, frames=total))
    done = [s for s in segments if job.done(s.index, s.frames)]
    if done:
        if on_resume is not None:
            on_resume(sum(s.frames for s in done))
        if notice is not None:
            notice(f"resuming {job.path.name}: {len(done)} of {len(segments)} segments already done")
    start = time.perf_counter()
    failed: list[str] = []
    seen: dict[str, None] = {}  # each segment repeats its pipeline's warnings: say each once
    for segment in segments:
        if segment in done:
            continue
        path = job.segment_path(segment.index, dst.suffix)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                _run_segment(src, path, job, segment, frame_fn, options, progress, prefer_hardware, pipeline)
            except MediaError as exc:
                job.forget(segment.index)
                failed.append(f"{segment.describe(len(segments))}: {exc}")
        for w in caught:
            seen.setdefault(str(w.message).replace(path.name, dst.name))
    for message in seen:
        warnings.warn(message, VideoWarning, stacklevel=2)
    if failed:
        kept = len(segments) - len(failed)
        raise MediaError(f"{src}: {'; '.join(failed)} ({kept} of {len(segments)} segments done and kept in "
                         f"{job.path}: run the same command again to retry the failed ones)")
    parts = [job.path / job.segments[s.index]["file"] for s in segments]
    join_segments(src, parts, dst, plan, total, [s.first for s in segments])
    job.remove()
    first = job.segments[segments[0].index]
    return VideoResult(path=dst, frames=total, width=first["width"], height=first["height"],
                       elapsed=time.perf_counter() - start, codec=plan.codec, pix_fmt=plan.pix_fmt,
                       warnings=tuple(seen))


def _run_segment(src: Path, path: Path, job: JobDir, segment: Segment, frame_fn: FrameFn, options: EncodeOptions,
                 progress: Callable[[int], None] | None, prefer_hardware: bool, pipeline: dict[str, Any]) -> None:
    with contextlib.suppress(OSError):
        path.unlink()  # a damaged or unvouched-for file of an earlier run
    result = upscale_video(src, path, frame_fn, options=options, progress=progress, prefer_hardware=prefer_hardware,
                           span=Span(segment.start, segment.end, segment.seek), **pipeline)
    if result.frames != segment.frames:
        path.unlink()
        raise MediaError(f"decoded {result.frames} of its {segment.frames} frames")
    job.record(segment.index, path, frames=result.frames, width=result.width, height=result.height)

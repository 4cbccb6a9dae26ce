"""HR training frames from the user's own videos (``--videos DIR``), sampled with PyAV.

Frames are taken at evenly spaced times over each file's whole duration; black or flat frames and
near-duplicates of a frame already kept from the same file are dropped. The result feeds
``HRFolderDataset(frames=...)``, which degrades and crops them like images.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator
from contextlib import suppress
from pathlib import Path

import av
import av.container
import av.video.stream
import cv2
import numpy as np

VIDEO_SUFFIXES = {".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".ts", ".m2ts", ".wmv",
                  ".flv", ".3gp"}
_THUMB_WIDTH = 64  # frame comparisons run on small gray thumbnails: cheap and blind to noise/grain


def list_videos(videos: Path) -> list[Path]:
    """``videos`` itself if it is a file, else the video files under it (recursively, sorted)."""
    videos = Path(videos)
    if videos.is_file():
        return [videos]
    files = sorted(p for p in videos.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES and p.is_file())
    if not files:
        raise ValueError(f"no video files found in {videos}")
    return files


def _span(
    path: Path, container: av.container.InputContainer, stream: av.video.stream.VideoStream
) -> tuple[float, float]:
    """(start, duration) of the video stream in seconds."""
    tb = stream.time_base
    start = float(stream.start_time * tb) if stream.start_time is not None else 0.0
    if stream.duration:
        return start, float(stream.duration * tb)
    if container.duration:
        return start, container.duration / av.time_base
    # No duration in the header (e.g. MediaRecorder WebM): read packet timestamps, which needs no decoding.
    end = start
    with av.open(str(path)) as scan:
        for pkt in scan.demux(scan.streams.video[0]):
            if pkt.pts is not None:
                end = max(end, float((pkt.pts + (pkt.duration or 0)) * tb))
    return start, end - start


def _spread_times(path: Path, container: av.container.InputContainer, max_count: int, min_interval_s: float,
                  offset: float) -> tuple[av.video.stream.VideoStream, float, list[float]]:
    """The first video stream, its start, and up to ``max_count`` times evenly spread over its duration, at least
    ``min_interval_s`` apart, each ``offset`` of a slot into its slot."""
    if not container.streams.video:
        raise ValueError(f"{path}: no video stream")
    stream = container.streams.video[0]
    start, duration = _span(path, container, stream)
    fit = math.floor(duration / min_interval_s) if min_interval_s > 0 else max_count
    n = max(1, min(max_count, fit))
    step = duration / n
    return stream, start, [start + step * (k + offset) for k in range(n)]


def _frames_at(
    container: av.container.InputContainer, stream: av.video.stream.VideoStream, start: float,
    times: list[float], seek_gap_s: float,
) -> Iterator[av.VideoFrame]:
    """The first frame at or after each of the ascending ``times``. Decodes forward through short gaps
    and seeks (to the keyframe before) across long ones, so short clips never seek and long files are not
    decoded in full."""
    decoder = container.decode(stream)
    pos = start
    for t in times:
        if t - pos > seek_gap_s:
            # Files without a seek index may refuse; decoding forward is then the fallback.
            with suppress(av.FFmpegError):
                container.seek(int(t / stream.time_base), stream=stream, backward=True)
                decoder = container.decode(stream)
        # A millisecond of slack: timestamps are rounded to the stream's time base (1/1000 in WebM).
        frame = next((f for f in decoder if f.time is not None and f.time >= t - 1e-3), None)
        if frame is None:
            return
        pos = frame.time
        yield frame


def _thumb(rgb: np.ndarray) -> np.ndarray:
    h, w = rgb.shape[:2]
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    return cv2.resize(gray, (_THUMB_WIDTH, max(1, round(h * _THUMB_WIDTH / w))), interpolation=cv2.INTER_AREA
                      ).astype(np.float32)


def sample_frames_from_video(
    path: Path,
    *,
    max_frames: int = 50,
    min_interval_s: float = 1.0,
    duplicate_threshold: float = 4.0,
    min_std: float = 8.0,
    min_mean: float = 12.0,
    max_side: int | None = None,
    seek_gap_s: float = 5.0,
) -> list[np.ndarray]:
    """Up to ``max_frames`` uint8 (H,W,3) RGB frames from one file, at least ``min_interval_s`` apart.

    Dropped: frames whose gray thumbnail has mean < ``min_mean`` or std < ``min_std`` (0–255 units: black,
    fades, flat cards), and frames whose thumbnail is within ``duplicate_threshold`` mean absolute
    difference of a frame already kept (static shots). ``max_side`` downscales larger frames (area).
    """
    kept: list[np.ndarray] = []
    thumbs: list[np.ndarray] = []
    with av.open(str(path)) as container:
        # Mid-slot times: they avoid fade-in/out at the ends.
        stream, start, times = _spread_times(path, container, max_frames, min_interval_s, offset=0.5)
        for frame in _frames_at(container, stream, start, times, seek_gap_s):
            rgb = frame.to_ndarray(format="rgb24")
            thumb = _thumb(rgb)
            if thumb.mean() < min_mean or thumb.std() < min_std:
                continue
            if any(np.abs(thumb - t).mean() < duplicate_threshold for t in thumbs):
                continue
            if max_side is not None and max(rgb.shape[:2]) > max_side:
                f = max_side / max(rgb.shape[:2])
                rgb = cv2.resize(rgb, (round(rgb.shape[1] * f), round(rgb.shape[0] * f)),
                                 interpolation=cv2.INTER_AREA)
            kept.append(np.ascontiguousarray(rgb))
            thumbs.append(thumb)
    return kept


def sample_video_frames(
    videos_dir: Path,
    *,
    max_frames_per_video: int = 50,
    min_interval_s: float = 1.0,
    duplicate_threshold: float = 4.0,
    min_std: float = 8.0,
    min_mean: float = 12.0,
    max_side: int | None = None,
) -> list[np.ndarray]:
    """Frames from every video under ``videos_dir`` (see ``sample_frames_from_video``). A file PyAV cannot
    read is skipped with a warning rather than ending the run."""
    frames: list[np.ndarray] = []
    for path in list_videos(videos_dir):
        try:
            frames += sample_frames_from_video(
                path, max_frames=max_frames_per_video, min_interval_s=min_interval_s,
                duplicate_threshold=duplicate_threshold, min_std=min_std, min_mean=min_mean,
                max_side=max_side,
            )
        except (av.FFmpegError, ValueError) as exc:
            warnings.warn(f"skipping {path}: {exc}", stacklevel=2)
    return frames


def sample_runs_from_video(
    path: Path,
    *,
    max_runs: int = 50,
    frames: int = 6,
    min_interval_s: float = 1.0,
    min_std: float = 8.0,
    min_mean: float = 12.0,
    seek_gap_s: float = 5.0,
) -> list[np.ndarray]:
    """Up to ``max_runs`` runs of ``frames`` consecutive uint8 RGB frames, (frames,H,W,3) each, starting at evenly
    spaced times at least ``min_interval_s`` apart: what the clip degradation needs, so a codec predicts between
    real consecutive frames. Runs whose middle frame is black or flat are dropped (see ``sample_frames_from_video``)."""
    runs: list[np.ndarray] = []
    with av.open(str(path)) as container:
        stream, start, times = _spread_times(path, container, max_runs, min_interval_s, offset=0.0)
        decoder = container.decode(stream)
        pos = start
        for t in times:
            if t - pos > seek_gap_s:
                with suppress(av.FFmpegError):
                    container.seek(int(t / stream.time_base), stream=stream, backward=True)
                    decoder = container.decode(stream)
            run: list[np.ndarray] = []
            for f in decoder:
                if f.time is None or f.time < t - 1e-3:
                    continue
                run.append(f.to_ndarray(format="rgb24"))
                pos = f.time
                if len(run) == frames:
                    break
            if len(run) < frames:
                break
            thumb = _thumb(run[len(run) // 2])
            if thumb.mean() >= min_mean and thumb.std() >= min_std:
                runs.append(np.stack(run))
    return runs


def sample_video_runs(videos_dir: Path, *, max_runs_per_video: int = 50, frames: int = 6,
                      min_interval_s: float = 1.0) -> list[np.ndarray]:
    """Runs of consecutive frames from every video under ``videos_dir`` (see ``sample_runs_from_video``); a file
    PyAV cannot read is skipped with a warning."""
    runs: list[np.ndarray] = []
    for path in list_videos(videos_dir):
        try:
            runs += sample_runs_from_video(path, max_runs=max_runs_per_video, frames=frames,
                                           min_interval_s=min_interval_s)
        except (av.FFmpegError, ValueError) as exc:
            warnings.warn(f"skipping {path}: {exc}", stacklevel=2)
    return runs

"""Where a video can be cut: its keyframes, found by demuxing packets (nothing is decoded)."""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av

from ..errors import MediaError
from ..video.probe import _reason, open_input


@dataclass(frozen=True)
class Scan:
    """Every video packet's pts (sorted), and the keyframes' pts, in the stream's time base."""

    pts: list[int]
    keyframes: list[int]
    time_base: Fraction
    complete: bool  # every packet had a pts: frame counts per segment are exact


@dataclass(frozen=True)
class Segment:
    """Frames with pts in [start, end) (None = open), decoded from the keyframe at or before ``seek``."""

    index: int
    start: int | None
    end: int | None
    seek: int | None
    frames: int  # expected; exact when the scan was complete
    first: Fraction  # seconds: its first and last frame's pts
    last: Fraction

    def describe(self, count: int) -> str:
        # "to", not "-": an edit list can make the first frame's time negative.
        return f"segment {self.index + 1}/{count} ({float(self.first):.2f} s to {float(self.last):.2f} s)"


def known_duration(path: Path) -> float | None:
    """The video's length in seconds as its header gives it (the stream's, else the container's), or None."""
    container, stream = open_input(path)
    try:
        if stream.duration and stream.time_base:
            return float(stream.duration * stream.time_base)
        return container.duration / av.time_base if container.duration else None
    finally:
        container.close()


def scan_video(path: Path) -> Scan:
    container, stream = open_input(path)
    pts: list[int] = []
    keys: list[int] = []
    complete = True
    try:
        for packet in container.demux(stream):
            if not packet.size:
                continue  # the demuxer's end-of-stream flush
            if packet.pts is None:
                complete = False
                continue
            if packet.is_keyframe:  # a discarded one (trimmed by an edit list) is still a seek target
                keys.append(packet.pts)
            if not packet.is_discard:  # the decoder never outputs a frame trimmed by an edit list
                pts.append(packet.pts)
    except (av.error.FFmpegError, OSError) as exc:
        raise MediaError(f"{path}: cannot read its packets ({_reason(exc)})") from None
    finally:
        container.close()
    return Scan(sorted(pts), sorted(keys), Fraction(stream.time_base or Fraction(1, 90000)), complete)


def plan_segments(scan: Scan, seconds: float) -> list[Segment]:
    """Cut at the first keyframe at least ``seconds`` after the previous cut, unless less than half a segment
    would be left after it. No usable keyframes (or no timestamps) -> one segment."""
    pts, tb = scan.pts, scan.time_base
    if not pts:
        return []
    step = seconds / tb
    cuts: list[int] = []
    if scan.complete and seconds > 0:
        last, end = pts[0], pts[-1]
        for key in scan.keyframes:
            if key - last >= step and end - key >= step / 2:
                cuts.append(key)
                last = key
    bounds: list[int | None] = [None, *cuts, None]
    segments = []
    for i, (start, stop) in enumerate(zip(bounds, bounds[1:], strict=False)):
        lo = 0 if start is None else bisect.bisect_left(pts, start)
        hi = len(pts) if stop is None else bisect.bisect_left(pts, stop)
        # Decode from the keyframe before the cut: frames at the cut may lean on earlier ones (open GOP).
        before = bisect.bisect_left(scan.keyframes, start) if start is not None else 0
        seek = None if start is None else scan.keyframes[max(0, before - 1)]
        segments.append(Segment(i, start, stop, seek, hi - lo, pts[lo] * tb, pts[hi - 1] * tb))
    return segments

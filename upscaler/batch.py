"""Upscale every image and video under a folder into a mirrored folder, resumably.

Outputs are written atomically, so an output under its final name was complete: a rerun skips it
and so resumes where a killed run stopped, after a cheap check that it is still whole (it may have
been truncated or emptied since); a damaged one is done again. Each output is locked while it is
being written, so two batches into the same folder share the work instead of wrecking each other's.
One bad file is recorded and the batch goes on; Ctrl-C stops the batch.
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from rich.console import Console
from rich.table import Table
from rich.text import Text

from .errors import MediaError, UpscalerWarning
from .fileio import OutputBusy, output_lock
from .image.io import IMAGE_EXTENSIONS

VIDEO_EXTENSIONS: frozenset[str] = frozenset(
    {".mp4", ".mkv", ".mov", ".webm", ".avi", ".m4v", ".ts", ".mts", ".m2ts", ".mpg", ".mpeg", ".wmv",
     ".flv", ".3gp", ".ogv"}
)

# Where an input's own container cannot be written (.avi, .ts, .mpg...), its output goes into Matroska,
# which holds every codec and stream those carry. Keep in step with upscaler.video.options.CONTAINERS.
WRITABLE_VIDEO_EXTENSIONS: frozenset[str] = frozenset({".mp4", ".m4v", ".mkv", ".mov", ".webm"})
FALLBACK_VIDEO_EXTENSION = ".mkv"

Kind = Literal["image", "video"]
Status = Literal["done", "skipped", "failed"]
ProcessFn = Callable[[Path, Path], object]

ALREADY_DONE = "already done"
BUSY = "another run is writing it"
# Whole outputs end up to ~7 ms short of their recorded duration (an Opus encoder's end trim); one audio
# frame is ~20 ms.
_STREAMS_END_SLACK = 0.02
_SKIPPED_ROWS_MAX = 20  # beyond this, a resumed batch's skipped files collapse into one row


class BatchWarning(UpscalerWarning):
    """An existing output was found damaged and is being done again."""


@dataclass(frozen=True)
class FileResult:
    src: Path
    dst: Path
    kind: Kind
    status: Status
    seconds: float = 0.0
    note: str = ""  # failure reason, or what the output format could not hold


@dataclass
class BatchReport:
    in_dir: Path
    out_dir: Path
    files: list[FileResult] = field(default_factory=list)

    def count(self, status: Status) -> int:
        return sum(1 for f in self.files if f.status == status)

    @property
    def done_count(self) -> int:
        return self.count("done")

    @property
    def skipped_count(self) -> int:
        return self.count("skipped")

    @property
    def failed_count(self) -> int:
        return self.count("failed")

    @property
    def seconds(self) -> float:
        return sum(f.seconds for f in self.files)


def find_media(in_dir: Path, exclude: Path | None = None) -> list[tuple[Path, Kind]]:
    """Images and videos under ``in_dir`` by extension, sorted; hidden files and folders are left out.

    Hidden names cover our own ``.partial-`` temp and ``.lock`` files, and macOS ``._`` resource forks.
    ``exclude`` (resolved) is a folder not to descend into: the output folder when it sits inside.
    """
    found: list[tuple[Path, Kind]] = []
    for root, dirs, files in os.walk(in_dir):
        keep = (d for d in dirs if not d.startswith("."))
        dirs[:] = sorted(d for d in keep if exclude is None or Path(root, d).resolve() != exclude)
        for name in sorted(files):
            ext = Path(name).suffix.lower()
            if name.startswith("."):
                continue
            if ext in IMAGE_EXTENSIONS:
                found.append((Path(root, name), "image"))
            elif ext in VIDEO_EXTENSIONS:
                found.append((Path(root, name), "video"))
    return found


def run_batch(
    in_dir: Path | str,
    out_dir: Path | str,
    *,
    process_image: ProcessFn,
    process_video: ProcessFn,
    output_name: Callable[[Path], Path],
    overwrite: bool = False,
    on_file: Callable[[int, int, Path], None] | None = None,
    on_result: Callable[[FileResult], None] | None = None,
) -> BatchReport:
    """Process every media file under ``in_dir`` into ``out_dir``, mirroring the folder tree.

    ``output_name(rel_path)`` maps a path relative to ``in_dir`` to the output's name (only its
    ``.name`` is used); a video whose extension names a container we cannot write (.avi, .ts,
    .mpg...) gets ``.mkv`` instead, so it is upscaled rather than failed. ``process_image(src, dst)``
    / ``process_video(src, dst)`` must write ``dst`` atomically and, when ``overwrite`` is set,
    replace an existing one; their return value may carry notes (a ``str``, or an object with
    ``notes``). ``on_file(index, total, src)`` is called before each file, index counting from 1;
    ``on_result`` after each with its outcome.
    """
    in_dir, out_dir = Path(in_dir), Path(out_dir)
    if not in_dir.is_dir():
        raise MediaError(f"{in_dir}: no such folder" if not in_dir.exists() else f"{in_dir}: not a folder")
    if out_dir.exists() and not out_dir.is_dir():
        raise MediaError(f"{out_dir}: exists and is not a folder")
    in_real, out_real = in_dir.resolve(), out_dir.resolve()
    if in_real == out_real:
        raise MediaError(f"{out_dir}: output folder is the input folder (choose another)")

    media = find_media(in_dir, exclude=out_real if out_real.is_relative_to(in_real) else None)
    inputs = {src.resolve() for src, _ in media}
    claimed: dict[Path, Path] = {}  # output -> the input that produced it in this run
    report = BatchReport(in_dir=in_dir, out_dir=out_dir)
    for index, (src, kind) in enumerate(media, start=1):
        if on_file is not None:
            on_file(index, len(media), src)
        result = _process_one(
            src, kind, in_dir, out_dir, output_name, process_image if kind == "image" else process_video,
            overwrite, inputs, claimed,
        )
        report.files.append(result)
        if on_result is not None:
            on_result(result)
    return report


def _process_one(
    src: Path,
    kind: Kind,
    in_dir: Path,
    out_dir: Path,
    output_name: Callable[[Path], Path],
    process: ProcessFn,
    overwrite: bool,
    inputs: set[Path],
    claimed: dict[Path, Path],
) -> FileResult:
    start = time.perf_counter()
    dst = out_dir / src.relative_to(in_dir)  # placeholder until output_name has run
    try:
        rel = src.relative_to(in_dir)
        dst = out_dir / rel.parent / Path(output_name(rel)).name
        if kind == "video" and dst.suffix.lower() not in WRITABLE_VIDEO_EXTENSIONS:
            dst = dst.with_name(dst.stem + FALLBACK_VIDEO_EXTENSION)
        real_dst = dst.resolve()
        if real_dst in inputs:
            raise MediaError(f"{dst}: output would overwrite an input file")
        if real_dst in claimed:
            raise MediaError(f"{dst}: same output name as {claimed[real_dst]}")
        claimed[real_dst] = src
        with output_lock(dst, overwrite=overwrite):  # also clears the temp files a killed run left
            redone = ""
            if dst.is_dir():
                raise MediaError(f"{dst}: is a directory")
            if dst.exists() and not overwrite:
                problem = output_problem(src, dst, kind)
                if problem is None:
                    return FileResult(src, dst, kind, "skipped", note=ALREADY_DONE)
                redone = f"redone: the existing output {problem}"
                warnings.warn(f"{dst}: existing output {problem}; doing it again", BatchWarning, stacklevel=2)
                dst.unlink()
            returned = process(src, dst)
        if not dst.exists():
            raise MediaError(f"{dst}: nothing was written")
        note = "; ".join(n for n in (redone, _notes(returned)) if n)
        return FileResult(src, dst, kind, "done", time.perf_counter() - start, note)
    except OutputBusy:
        # Another batch into the same folder has it in hand: nothing went wrong here, a rerun finds it done.
        return FileResult(src, dst, kind, "skipped", note=BUSY)
    except MediaError as exc:
        return FileResult(src, dst, kind, "failed", time.perf_counter() - start, _one_line(str(exc)))
    except Exception as exc:  # a bug or a library failure on one file must not sink the batch
        reason = _one_line(f"{type(exc).__name__}: {exc}")
        return FileResult(src, dst, kind, "failed", time.perf_counter() - start, reason)


def output_problem(src: Path, dst: Path, kind: Kind) -> str | None:
    """What is wrong with an existing output (``"is empty"``, ``"is truncated ..."``...), or None.

    Cheap, so a resumed batch of thousands stays quick: an image's header and the end its format
    records; a video's first frame and the time of its last one, against the input's (the pipeline
    keeps every timestamp, so a complete output ends where its input does).
    """
    try:
        if dst.stat().st_size == 0:
            return "is empty"
        return _image_problem(dst) if kind == "image" else _video_problem(src, dst)
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})"


def _image_problem(path: Path) -> str | None:
    import struct

    from PIL import Image

    size = path.stat().st_size
    try:
        with warnings.catch_warnings(record=True) as heard:  # PIL's notices must not reach the user
            warnings.simplefilter("always")
            with Image.open(path) as im:  # reads the header only
                fmt, tags = im.format, getattr(im, "tag_v2", {})
    except Image.DecompressionBombError:
        return None  # a huge but well-formed header: nothing more to check cheaply
    except (OSError, SyntaxError, ValueError, struct.error) as exc:
        return f"is not a readable image ({_one_line(str(exc)) or type(exc).__name__})"
    if any("truncated" in str(w.message).lower() for w in heard):  # e.g. a TIFF cut inside its IFD
        return f"is truncated ({size} bytes)"
    with path.open("rb") as f:
        head = f.read(16)
        f.seek(max(0, size - 12))
        tail = f.read()
    if fmt == "PNG":
        whole = tail == b"\0\0\0\0IEND\xaeB`\x82"
    elif fmt == "JPEG":
        whole = tail.endswith(b"\xff\xd9")
    elif fmt == "WEBP":  # RIFF: the header counts the bytes after its first 8
        whole = size >= 8 + struct.unpack("<I", head[4:8])[0]
    elif fmt == "BMP":
        whole = size >= struct.unpack("<I", head[2:6])[0]
    elif fmt == "TIFF":  # strip or tile offsets + byte counts
        offsets, counts = (_ints(tags.get(a) or tags.get(b)) for a, b in ((273, 324), (279, 325)))
        whole = all(o + c <= size for o, c in zip(offsets, counts, strict=False))
    else:
        whole = True
    return None if whole else f"is truncated ({size} bytes; the {fmt} data does not end)"


def _ints(value: object) -> tuple[int, ...]:
    return (value,) if isinstance(value, int) else tuple(value or ())  # type: ignore[arg-type]


def _video_problem(src: Path, dst: Path) -> str | None:
    import av

    try:
        want = _video_end(src)
    except (MediaError, av.error.FFmpegError, OSError):
        return None  # the input cannot be judged, so neither can its output: keep it
    try:
        got = _video_end(dst, decode_first=True)
    except MediaError as exc:
        return _one_line(str(exc)).removeprefix(f"{dst}: ")
    except (av.error.FFmpegError, OSError) as exc:
        return f"cannot be read ({exc.strerror or exc})"
    if got is None or got.corrupt:
        return "is truncated (its last frame is cut off)"
    if want is not None and got.seconds < want.seconds - got.tolerance - want.tolerance:
        return f"is truncated (it ends at {got.seconds:.3f} s, its input at {want.seconds:.3f} s)"
    if got.recorded is not None and got.streams_end < got.recorded - _STREAMS_END_SLACK:
        # Its video is whole but the audio (or another stream) is cut short of what the muxer recorded.
        return f"is truncated (its streams end at {got.streams_end:.3f} s, the file says {got.recorded:.3f} s)"
    return None


@dataclass(frozen=True)
class _End:
    seconds: float  # the latest video timestamp
    tolerance: float  # about one tick of the stream's time base
    corrupt: bool  # the last packet read short: cut off mid-frame
    streams_end: float  # the latest end (timestamp + duration) over all streams
    recorded: float | None  # the duration the container records


def _video_end(path: Path, decode_first: bool = False) -> _End | None:
    """The main video stream's last timestamp, and where all streams end: seek to the last keyframe and
    read, not decode, the packets after it. ``decode_first`` also decodes the first frame (MediaError if it
    does not)."""
    import av

    from .video.probe import open_input

    container, stream = open_input(path)
    with container:
        if decode_first:
            try:
                if next(container.decode(stream), None) is None:
                    raise MediaError(f"{path}: has no frames")
            except av.error.FFmpegError as exc:
                raise MediaError(f"{path}: does not decode ({exc.strerror or exc})") from None
        tb = stream.time_base
        container.seek(2**62, stream=stream, backward=True, any_frame=False)
        last, corrupt, streams_end = None, False, 0.0
        for packet in container.demux():
            if packet.pts is None or packet.time_base is None:
                continue
            corrupt |= packet.is_corrupt
            streams_end = max(streams_end, float((packet.pts + (packet.duration or 0)) * packet.time_base))
            if packet.stream.index == stream.index:
                last = packet.pts if last is None else max(last, packet.pts)
        recorded = container.duration / av.time_base if container.duration else None
    if last is None or tb is None:
        return None
    return _End(float(last * tb), float(tb) + 0.0005, corrupt, streams_end, recorded)


def _notes(returned: object) -> str:
    if isinstance(returned, str):
        return _one_line(returned)
    notes = getattr(returned, "notes", None)
    if isinstance(notes, (list, tuple)):
        return _one_line("; ".join(str(n) for n in notes))
    return ""


def _one_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[0] if lines else ""


def print_summary(report: BatchReport, console: Console) -> None:
    """A table of what happened to each file, then the totals."""
    if not report.files:
        console.print(Text(f"No images or videos found in {report.in_dir}"))
        return
    styles = {"done": "green", "skipped": "dim", "failed": "bold red"}
    done_before = sum(1 for f in report.files if f.status == "skipped" and f.note == ALREADY_DONE)
    collapse = done_before > _SKIPPED_ROWS_MAX  # only "already done" rows: the busy ones stay named
    table = Table(show_header=True, header_style="bold")
    table.add_column("File")
    table.add_column("Status")
    table.add_column("Time", justify="right")
    table.add_column("Note")
    for f in report.files:
        if collapse and f.status == "skipped" and f.note == ALREADY_DONE:
            continue
        name = f.src.relative_to(report.in_dir).as_posix()
        seconds = "" if f.status == "skipped" else f"{f.seconds:.1f} s"
        # Text(), not str: file names and messages may contain [brackets] rich would read as markup.
        table.add_row(Text(name), Text(f.status, style=styles[f.status]), seconds, Text(f.note))
    if collapse:
        rest = Text(f"({done_before} files)")
        table.add_row(rest, Text("skipped", style="dim"), "", ALREADY_DONE)
    console.print(table)
    totals = Text(f"{report.done_count} done, {report.skipped_count} skipped, ")
    totals.append(f"{report.failed_count} failed", style="bold red" if report.failed_count else "")
    totals.append(f" in {report.seconds:.1f} s")
    console.print(totals)

"""``upscale bench``: is the video pipeline as fast as the network alone, and which stage bounds it?

One run measures, for one model, device and input size:

- **bare**: the generator alone on a batch of whole frames already on the device (warm, synchronised), measured
  just before and just after the end-to-end run and averaged;
- **end to end**: ``upscale_video`` on a real clip (decode, tiling, model, stitching, encode, all overlapped),
  with per-stage times and the peak memory;
- **sequential**: the plain loop over the same clip and encoder (decode a frame, upscale it, encode it);
- **PSNR-Y** of the model and of bicubic on the clip's own frames, downscaled by the scale and brought back.
"""

from __future__ import annotations

import functools
import os
import resource
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np
import torch

from .device.memwatch import MemoryWatch, peak_rss_bytes
from .device.stages import STAGES, StageTimer
from .engine import Upscaler
from .errors import UpscalerError
from .metrics import psnr_y
from .resize import bicubic_downscale, bicubic_resize
from .video import EncodeOptions, probe_video, upscale_video
from .video.yuv_layout import YuvLayout

SAMPLE_CLIP = Path(__file__).resolve().parents[1] / "samples" / "bbb_320x180.mp4"

# Which thread of the pipeline does each stage; the busiest thread bounds the throughput.
THREAD_OF_STAGE = {"decode": "decode", "to_tensor": "model", "model": "model", "stitch": "model",
                   "from_tensor": "model", "encode": "encode"}
_PSNR_FRAMES = 4
_MB = 1024 * 1024


@dataclass
class BenchConfig:
    clip: Path = SAMPLE_CLIP
    size: tuple[int, int] | None = None  # (width, height); None keeps the clip's
    frames: int | None = None  # None keeps the clip's count; more than it loops the clip
    encode: EncodeOptions | None = None
    bare_seconds: float = 3.0  # measure the bare model for at least this long
    sequential: bool = True


def run_bench(up: Upscaler, config: BenchConfig) -> dict[str, Any]:
    """Measure everything; returns the report as plain JSON-able data."""
    encode = config.encode or EncodeOptions()
    cuda = up.device.type == "cuda"
    with tempfile.TemporaryDirectory(prefix="upscale-bench-") as tmp:
        clip = config.clip
        if config.size is not None or config.frames is not None:
            clip = prepare_clip(config.clip, Path(tmp) / "input.mp4", config.size, config.frames)
        info = probe_video(clip)
        hr = read_frames(clip, max(up.batch_size, _PSNR_FRAMES))
        width, height = info.width, info.height

        before = bare_model_fps(up, hr[: up.batch_size], config.bare_seconds, info.bit_depth)
        up.upscale_array(hr[: up.batch_size])  # warm the tiled path (and torch.compile's tile shapes)

        # On CUDA, timing synchronises per stage and so removes overlap: time the fps untimed, stages apart.
        up.timer = None if cuda else StageTimer()
        with MemoryWatch(up.device) as mem:
            result = up.upscale_video(clip, Path(tmp) / "e2e.mp4", options=encode, overwrite=True)
        # The bare model again, right after: a shared machine's speed drifts by tens of percent over a minute, and
        # the mean of the two brackets the end-to-end run in time.
        bare = _bracket(before, bare_model_fps(up, hr[: up.batch_size], config.bare_seconds, info.bit_depth))
        if cuda:
            up.timer = StageTimer(sync=lambda: torch.cuda.synchronize(up.device))
            up.upscale_video(clip, Path(tmp) / "e2e_timed.mp4", options=encode, overwrite=True)
        stages, up.timer = up.timer, None

        io_only = _io_only(up, clip, Path(tmp) / "io.mp4", encode)
        sequential = None
        if config.sequential:
            sequential = _sequential(up, clip, Path(tmp) / "sequential.mp4", encode, timed=not cuda)
        quality = psnr_vs_bicubic(up, hr[:_PSNR_FRAMES], info.bit_depth)

    e2e_fps = result.fps
    assert stages is not None
    busy = thread_busy(stages)
    report: dict[str, Any] = {
        "device": describe_device(up.device),
        "torch_threads": torch.get_num_threads(),
        "model": up.describe(),
        "scale": up.scale,
        "precision": str(up.net_for(info.bit_depth)[1]).removeprefix("torch."),
        "tile": up.tile,
        "batch_size": up.batch_size,
        "compile": up.compiled,
        "colour_convert": "device" if up.colour_on_device else "swscale",
        "codec": result.codec,
        "clip": str(config.clip),
        "input": [width, height],
        "output": [result.width, result.height],
        "bare": bare,
        "end_to_end": {"fps": e2e_fps, "seconds": result.elapsed, "frames": result.frames},
        "ratio": e2e_fps / bare["fps"] if bare["fps"] else None,
        "stages": {name: stages.seconds[name] for name in STAGES},
        "threads": {name: {"busy_s": s, "share": s / result.elapsed if result.elapsed else None}
                    for name, s in busy.items()},
        "bound_by": max(busy, key=lambda name: busy[name]),
        "io_only": io_only,
        "sequential": sequential,
        "speedup": e2e_fps / sequential["fps"] if sequential and sequential["fps"] else None,
        "memory": {
            "rss_peak_mb": _mb(peak_rss_bytes()),
            "rss_start_mb": _mb(mem.report.rss_start),
            "rss_growth_mb": _mb(mem.report.rss_growth),
            "gpu_peak_mb": _mb(mem.report.gpu_peak),
        },
        "psnr": quality,
        "cpu_ceiling": None if cuda else cpu_ceiling(usable_cores(), bare["fps"], bare["cpu_s_per_frame"],
                                                     io_only["cpu_s_per_frame"]),
    }
    report["notes"] = _notes(up, busy, result.codec, report["cpu_ceiling"])
    return report


def cpu_ceiling(cores: int, bare_fps: float, model_cpu_s: float, io_cpu_s: float) -> float | None:
    """On the CPU the model, decoder and encoder share the same cores: even with perfect overlap the end-to-end
    run can do at most cores / (model + decode + encode CPU seconds per frame) frames a second. As a share of
    the bare model's speed (1 when the model leaves cores idle, e.g. with fewer torch threads than cores).
    With YUV <-> RGB on the model's thread (``--colour-convert device``) that conversion is in neither figure,
    so the ceiling comes out a little high."""
    per_frame = model_cpu_s + io_cpu_s
    if bare_fps <= 0 or per_frame <= 0:
        return None
    return min(1.0, cores / per_frame / bare_fps)


def usable_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _sequential(up: Upscaler, clip: Path, dst: Path, encode: EncodeOptions, timed: bool) -> dict[str, Any]:
    """The straightforward loop: one frame at a time through decode -> model -> encode, in one thread."""
    batch_size, up.batch_size = up.batch_size, 1
    up.timer = StageTimer() if timed else None
    try:
        result = up.upscale_video(clip, dst, options=encode, overwrite=True, sequential=True)
    finally:
        up.batch_size = batch_size
        timer, up.timer = up.timer, None
    stages = {name: timer.seconds[name] for name in STAGES} if timer is not None else None
    return {"fps": result.fps, "seconds": result.elapsed, "frames": result.frames, "stages": stages}


class _NearestPlanes:
    """A near-free stand-in for the model on the planar path: each plane resized by nearest neighbour on the
    host, samples moved to the output's bit depth."""

    def __init__(self, up: Upscaler) -> None:
        self.output_size = up.output_size

    def submit_planes(self, frames: np.ndarray, src: YuvLayout, dst: YuvLayout) -> Callable[[], np.ndarray]:
        up_bits = (dst.bits + dst.shift) - (src.bits + src.shift)
        out = np.empty((len(frames), dst.length), dst.dtype)
        for row, flat in zip(out, frames, strict=True):
            for plane, target in zip(src.planes(flat), dst.planes(row), strict=True):
                size = target.shape[::-1]
                small = cv2.resize(plane, size, interpolation=cv2.INTER_NEAREST).astype(dst.dtype)
                target[:] = small << up_bits if up_bits >= 0 else small >> -up_bits
        return lambda: out


def _io_only(up: Upscaler, clip: Path, dst: Path, encode: EncodeOptions) -> dict[str, Any]:
    """The same pipeline with a near-free nearest-neighbour "model": what decode + encode alone sustain, and the
    CPU time they take per frame (on a CPU run that time is taken from the model: the ceiling of the ratio)."""
    size = up.output_size(probe_video(clip).width, probe_video(clip).height)

    def nearest(frames: np.ndarray) -> np.ndarray:
        return np.stack([cv2.resize(f, size, interpolation=cv2.INTER_NEAREST) for f in frames])

    cpu = _cpu_seconds()
    result = upscale_video(clip, dst, nearest, options=encode, batch_size=up.batch_size, overwrite=True,
                           prefer_hardware=up.device.type == "cuda",
                           planar=_NearestPlanes(up) if up.colour_on_device else None)
    cpu = _cpu_seconds() - cpu
    return {"fps": result.fps, "seconds": result.elapsed, "cpu_s_per_frame": cpu / max(1, result.frames)}


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)  # every thread of the process, the encoder's own included
    return usage.ru_utime + usage.ru_stime


def thread_busy(timer: StageTimer) -> dict[str, float]:
    busy = {"decode": 0.0, "model": 0.0, "encode": 0.0}
    for name, seconds in timer.seconds.items():
        busy[THREAD_OF_STAGE[name]] += seconds
    return busy


def _bracket(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """The two bare-model measurements as one: mean fps (and CPU time), with both kept."""
    return {**before, "fps": (before["fps"] + after["fps"]) / 2, "fps_before": before["fps"],
            "fps_after": after["fps"], "calls": before["calls"] + after["calls"],
            "seconds": before["seconds"] + after["seconds"],
            "cpu_s_per_frame": (before["cpu_s_per_frame"] + after["cpu_s_per_frame"]) / 2}


@torch.inference_mode()
def bare_model_fps(up: Upscaler, frames: np.ndarray, min_seconds: float, bits: int = 8) -> dict[str, Any]:
    """The generator alone on a batch of the clip's whole frames already on the device: no tiling, no copies,
    no I/O, no conversion; the network and dtype that the end-to-end run gives ``bits``-bit samples."""
    net, dtype = up.net_for(bits)
    x = torch.from_numpy(np.ascontiguousarray(frames)).to(up.device).permute(0, 3, 1, 2).to(dtype) / 255
    x = x.contiguous(memory_format=torch.channels_last)

    def sync() -> None:
        if up.device.type == "cuda":
            torch.cuda.synchronize(up.device)

    for _ in range(3):  # warm-up: allocator and page faults, oneDNN/cuDNN kernel choice, compilation
        net(x)
    sync()
    calls, start, cpu = 0, time.perf_counter(), _cpu_seconds()
    while calls < 3 or time.perf_counter() - start < min_seconds:
        net(x)
        calls += 1
        sync()
    elapsed, cpu = time.perf_counter() - start, _cpu_seconds() - cpu
    return {"fps": calls * len(x) / elapsed, "batch": len(x), "calls": calls, "seconds": elapsed,
            "cpu_s_per_frame": cpu / (calls * len(x))}


@torch.inference_mode()
def psnr_vs_bicubic(up: Upscaler, frames: np.ndarray, bits: int = 8) -> dict[str, Any] | None:
    """PSNR-Y (border of ``scale`` cropped) against the clip's frames taken as ground truth, after an
    antialiased bicubic downscale by the model's scale: the model's output vs plain bicubic upscaling."""
    s = up.scale
    h, w = frames.shape[1] // s * s, frames.shape[2] // s * s
    if up.outscale != s or h < 4 * s or w < 4 * s:
        return None
    hr = torch.from_numpy(np.ascontiguousarray(frames[:, :h, :w])).permute(0, 3, 1, 2).float() / 255
    lr = (bicubic_downscale(hr, s) * 255).round() / 255  # quantised like a real 8-bit input
    sr = up.upscale_tensor(lr, bits=bits).float().cpu()
    bicubic = bicubic_resize(lr, (h, w)).clamp(0, 1)
    model = [psnr_y(sr[i : i + 1], hr[i : i + 1], s) for i in range(len(hr))]
    base = [psnr_y(bicubic[i : i + 1], hr[i : i + 1], s) for i in range(len(hr))]
    return {"model_db": float(np.mean(model)), "bicubic_db": float(np.mean(base)), "frames": len(hr)}


def read_frames(clip: Path, count: int) -> np.ndarray:
    """The first ``count`` frames as RGB uint8 (N,H,W,3)."""
    frames = []
    with av.open(str(clip)) as container:
        for frame in container.decode(video=0):
            frames.append(frame.to_ndarray(format="rgb24"))
            if len(frames) == count:
                break
    return np.stack(frames)


def prepare_clip(src: Path, dst: Path, size: tuple[int, int] | None, frames: int | None,
                 gop: int | None = None) -> Path:
    """A copy of ``src`` at ``size`` with ``frames`` frames (looping the source), near-lossless H.264, 10-bit
    when the source is deeper than 8 bits (the model's precision can depend on it); a keyframe every ``gop``
    frames when given (where a job can cut it)."""
    if not src.exists():
        raise UpscalerError(f"{src}: no such file")
    info = probe_video(src)
    width, height = size or (info.width, info.height)
    if width % 2 or height % 2 or width < 2 or height < 2:
        raise UpscalerError(f"--size {width}x{height}: width and height must be even (yuv420p)")
    wanted = frames if frames is not None else info.frames
    if wanted is not None and wanted < 1:
        raise UpscalerError("--frames must be at least 1")
    fps = info.fps or Fraction(24)
    pix_fmt = "yuv420p10le" if info.bit_depth > 8 else "yuv420p"
    written = 0
    with av.open(str(dst), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        stream.options = {"crf": "8", "preset": "veryfast", **({"g": str(gop)} if gop else {})}
        while wanted is None or written < wanted:
            before = written
            with av.open(str(src)) as inp:
                for frame in inp.decode(video=0):
                    if wanted is not None and written >= wanted:
                        break
                    small = frame.reformat(width=width, height=height, format=pix_fmt, interpolation="AREA")
                    small.pts, small.time_base = written, 1 / fps
                    out.mux(stream.encode(small))
                    written += 1
            if written == before or wanted is None:
                break
        out.mux(stream.encode(None))
    return dst


def run_workers_bench(up: Upscaler, config: BenchConfig, workers: int, segment_seconds: float = 1.0
                      ) -> dict[str, Any]:
    """The same segmented job (upscaler/jobs) with 1 and with ``workers`` Ray workers: end-to-end frames/s,
    per worker, each segment's own speed, what is not segment work (Ray's start, each worker's model load,
    uneven segments), and the join's own cost. The clip is cut or looped to ``config.frames`` (default: four
    segments) with a keyframe every ``segment_seconds``."""
    from .engine import video_replica
    from .jobs import cluster, run_job
    from .jobs.segments import plan_segments, scan_video

    if workers < 2:
        raise UpscalerError("--workers compares 1 worker with N: give N of 2 or more")
    cluster.require_ray(workers)
    if not config.clip.exists():
        raise UpscalerError(f"{config.clip}: no such file")
    fps = probe_video(config.clip).fps or Fraction(24)
    per_segment = max(1, round(segment_seconds * fps))
    encode = config.encode or EncodeOptions()
    with tempfile.TemporaryDirectory(prefix="upscale-bench-") as tmp:
        clip = prepare_clip(config.clip, Path(tmp) / "input.mp4", config.size, config.frames or 4 * per_segment,
                            gop=per_segment)
        info = probe_video(clip)
        segments = len(plan_segments(scan_video(clip), segment_seconds))
        if segments < 2:
            raise UpscalerError(f"{info.frames} frames make one segment of {segment_seconds:g} s: give more "
                                "--frames or a shorter --segment-seconds")
        up.upscale_array(read_frames(clip, up.batch_size))  # warm this process's model, as the actors are not
        runs = []
        for n in (1, workers):
            timings: dict[str, float] = {}
            start = time.perf_counter()
            result = run_job(clip, Path(tmp) / f"out{n}.mp4", up.upscale_array, segment_seconds=segment_seconds,
                             model=up.model_key(), options=encode, batch_size=up.batch_size, workers=n,
                             replica=functools.partial(video_replica, up.spec), timings=timings,
                             prefer_hardware=up.device.type == "cuda",
                             planar=up if up.colour_on_device else None, frame_submit=up.submit_array)
            wall = time.perf_counter() - start
            runs.append({
                "workers": n, "frames": result.frames, "seconds": wall, "fps": result.frames / wall,
                "fps_per_worker": result.frames / wall / n,
                "segment_fps": result.frames / timings["segment_s"] if timings["segment_s"] else None,
                # Segment phase wall time beyond its work shared out evenly: Ray, model loads, the last segment.
                "overhead_s": timings["segments"] - timings["segment_s"] / n,
                "join_s": timings["join"],
            })
    video_s = info.frames / float(fps) if info.frames else 0.0
    for run in runs:
        run["join_s_per_hour"] = run["join_s"] / video_s * 3600 if video_s else None
    report: dict[str, Any] = {
        "device": describe_device(up.device), "cores": usable_cores(), "torch_threads": torch.get_num_threads(),
        "model": up.describe(), "codec": result.codec, "clip": str(config.clip), "input": [info.width, info.height],
        "frames": info.frames, "video_s": video_s, "segments": segments, "segment_seconds": segment_seconds,
        "runs": runs, "scaling": runs[1]["fps"] / runs[0]["fps"] if runs[0]["fps"] else None,
    }
    report["notes"] = _worker_notes(report)
    return report


def _worker_notes(r: dict[str, Any]) -> list[str]:
    one, many = r["runs"]
    n, cores, threads = many["workers"], r["cores"], r["torch_threads"]
    notes = []
    if r["device"].startswith("cpu"):
        speeds = f"segment fps {one['segment_fps'] or 0:.2f} -> {many['segment_fps'] or 0:.2f}"
        # A CPU worker runs torch on its share of the cores (jobs/cluster.py); this process on --threads.
        if (many["segment_fps"] or 0) < (one["segment_fps"] or 0):
            notes.append(f"{n} workers share {cores} CPU cores: each gets a part of what the single run had to "
                         f"itself, so each worker's own speed falls ({speeds})")
        elif threads > max(1, cores // n):
            notes.append(f"each worker was as fast as the single run or faster ({speeds}): a worker runs torch on "
                         f"{max(1, cores // n)} thread(s), this process on {threads}; where other work keeps cores "
                         "busy, more threads than free cores slow torch down (compare --threads 1)")
        else:
            notes.append(f"each worker was as fast as the single run or faster ({speeds}) on as many torch "
                         "threads: the machine's other load changed between the two runs, which run one after "
                         "the other (repeat the bench to see the spread)")
    notes.append(f"{many['overhead_s']:.1f} s of the {n}-worker run is not segment work: Ray's start, each worker "
                 "loading its own model, and the last segment running alone; it is paid once per job, so it "
                 "matters less on long videos")
    notes.append("the join is a remux in this process, after all segments: "
                 f"{many['join_s']:.2f} s here, about {many['join_s_per_hour'] or 0:.0f} s per hour of video")
    return notes


def render_workers(report: dict[str, Any]) -> Any:
    """A rich renderable of ``run_workers_bench``'s report."""
    from rich.console import Group
    from rich.table import Table

    r = report
    table = Table(title=f"upscale bench --workers: {r['model']}; {r['frames']} frames "
                        f"{'x'.join(map(str, r['input']))} ({r['video_s']:.1f} s) in {r['segments']} segments")
    for column in ("workers", "wall s", "fps", "fps / worker", "segment fps", "not segment work s", "join s",
                   "join s / hour"):
        table.add_column(column, justify="right")
    for run in r["runs"]:
        table.add_row(str(run["workers"]), f"{run['seconds']:.2f}", f"{run['fps']:.2f}",
                      f"{run['fps_per_worker']:.2f}", _fmt(run["segment_fps"], "{:.2f}"),
                      f"{run['overhead_s']:.2f}", f"{run['join_s']:.3f}", _fmt(run["join_s_per_hour"], "{:.0f}"))
    lines = [f"{r['device']}, {r['torch_threads']} torch threads here; {r['codec']}; "
             f"{r['runs'][1]['workers']} workers: {_fmt(r['scaling'], '{:.2f}x')} the frames/s of 1"]
    lines += [f"note: {note}" for note in r["notes"]]
    return Group(table, *lines)


def describe_device(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} ({device})"
    return f"cpu ({usable_cores()} cores)"


def _notes(up: Upscaler, busy: dict[str, float], codec: str, ceiling: float | None) -> list[str]:
    notes = []
    if ceiling is not None and ceiling < 0.95:
        notes.append(f"the model shares the CPU's cores with decode + encode: at best the end-to-end run gets "
                     f"{ceiling:.2f} of the bare model's speed (a faster --preset lowers encoding's share)")
    bound = max(busy, key=lambda name: busy[name])
    if bound == "encode":
        hint = " (try --codec h264_nvenc or hevc_nvenc)" if up.device.type == "cuda" and \
            not codec.endswith("_nvenc") else " (try a faster --preset)"
        notes.append(f"encoding ({codec}) bounds the run, not the model{hint}")
    elif bound == "decode":
        notes.append("decoding bounds the run, not the model")
    return notes


def _mb(n: int | None) -> float | None:
    return None if n is None else round(n / _MB, 1)


def render(report: dict[str, Any]) -> Any:
    """A rich renderable of the report for the terminal."""
    from rich.console import Group
    from rich.table import Table

    r = report
    head = Table(show_header=True, title=f"upscale bench: {r['model']}")
    for column in ("device", "input", "output", "bare fps", "end-to-end fps", "ratio", "sequential fps",
                   "speed-up", "bound by"):
        head.add_column(column, justify="right")
    seq = r["sequential"]
    head.add_row(r["device"], "x".join(map(str, r["input"])), "x".join(map(str, r["output"])),
                 f"{r['bare']['fps']:.2f}", f"{r['end_to_end']['fps']:.2f}", _fmt(r["ratio"], "{:.2f}"),
                 _fmt(seq and seq["fps"], "{:.2f}"), _fmt(r["speedup"], "{:.2f}x"), r["bound_by"])

    frames = max(1, r["end_to_end"]["frames"])
    stages = Table(title="stages (end to end; decode, model and encode threads overlap)")
    for column in ("stage", "thread", "total s", "ms / frame", "sequential s"):
        stages.add_column(column, justify="right")
    for name, seconds in r["stages"].items():
        seq_s = seq["stages"][name] if seq and seq["stages"] else None
        stages.add_row(name, THREAD_OF_STAGE[name], f"{seconds:.3f}", f"{1000 * seconds / frames:.1f}",
                       _fmt(seq_s, "{:.3f}"))
    for name, thread in r["threads"].items():
        stages.add_row(f"[bold]{name} thread[/bold]", "", f"{thread['busy_s']:.3f}",
                       f"{1000 * thread['busy_s'] / frames:.1f}", f"busy {_fmt(thread['share'], '{:.0%}')}")

    mem, psnr = r["memory"], r["psnr"]
    lines = [
        f"wall {r['end_to_end']['seconds']:.2f} s for {frames} frames; {r['codec']}, tile {r['tile'] or 'off'}, "
        f"batch {r['batch_size']}, {r['precision']}, {r['torch_threads']} torch threads, "
        f"YUV<->RGB on {'the device' if r['colour_convert'] == 'device' else 'swscale'}"
        f"{', torch.compile' if r['compile'] else ''}",
        f"memory: peak RSS {mem['rss_peak_mb']} MB (grew {mem['rss_growth_mb']} MB during the run)"
        + (f", GPU peak {mem['gpu_peak_mb']} MB" if mem["gpu_peak_mb"] is not None else ""),
    ]
    if psnr:
        lines.append(f"PSNR-Y vs ground truth ({psnr['frames']} frames, downscaled x{r['scale']} and back): "
                     f"model {psnr['model_db']:.2f} dB, bicubic {psnr['bicubic_db']:.2f} dB")
    bare = r["bare"]
    if "fps_before" in bare:
        lines.append(f"bare model: {bare['fps_before']:.2f} fps before the end-to-end run, {bare['fps_after']:.2f} "
                     f"after (batch {bare['batch']})")
    io = r["io_only"]
    lines.append(f"decode + encode alone (nearest-neighbour instead of the model): {io['fps']:.1f} fps, "
                 f"{io['cpu_s_per_frame'] * 1000:.0f} ms CPU/frame; the bare model takes "
                 f"{r['bare']['cpu_s_per_frame'] * 1000:.0f} ms CPU/frame")
    lines += [f"note: {note}" for note in r["notes"]]
    return Group(head, stages, *lines)


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else spec.format(value)

"""Generate the real-footage training patches once: ``python -m train.make_pairs --scale 4 --out DIR``.

Each clip is a short run of consecutive HR frames (a window of a training video, or a still panned and zoomed
by ``pan_clip``), degraded by ``ClipDegradation`` (second-order blur/resize/noise/JPEG, then H.264 over the
whole clip); a few of its predicted (non-first) frames are cut into aligned (LR, HR) patches. HR sources are
downscaled first (``--hr-downscale``, antialiased): it removes the sources' own JPEG blocks and compression
noise, which a model would otherwise learn as detail. Clip ``i`` depends only on (seed, i), so the store is
reproducible, and shards that exist are skipped, so an interrupted run continues where it stopped.

    python -m train.make_pairs --scale 4 --clips 10000 --out ~/data/upscaler-real-x4 --workers 2
"""

from __future__ import annotations

import multiprocessing
import time
from dataclasses import dataclass
from pathlib import Path

import click
import numpy as np
import torch

from .data.clip_degradation import ClipDegradation
from .data.clip_sources import clip_from_run, clip_from_still, downscale, parse_video, read_frames
from .data.images import list_images, load_rgb
from .data.pair_store import shard_name, write_shard
from .realbench.sources import shared_dir

SHARED = shared_dir()
# The training share of the shared data: BSDS500 (no overlap with the Set5/Set14/BSD100 benchmarks) and the first
# half of the anime demo clip (its second half is benchmark data; see train/realbench).
DEFAULT_IMAGES = (SHARED / "images/train/bsds500_train", SHARED / "images/train/bsds500_test")
DEFAULT_VIDEOS = (f"{SHARED / 'clips/onepiece_demo.mp4'}:0:90",)
MAX_WINDOW = 256  # HR clip side cap: bigger windows cost codec time and give no more patches per frame


@dataclass
class Sources:
    stills: list[np.ndarray]
    videos: list[np.ndarray]  # each a run of consecutive frames (T,H,W,3)
    video_share: float


def load_sources(images: list[Path], videos: list[str], hr_downscale: int, video_share: float) -> Sources:
    stills = [downscale(load_rgb(p), hr_downscale) for p in list_images(images)] if images else []
    runs = [np.stack([downscale(f, hr_downscale) for f in frames])
            for frames in (read_frames(*parse_video(v)) for v in videos) if frames]
    if not stills and not runs:
        raise click.UsageError("no HR sources: give --images and/or --video")
    return Sources(stills, runs, video_share if runs else 0.0)


def make_clip(src: Sources, frames: int, scale: int, patch: int, rng: np.random.Generator) -> np.ndarray:
    """One HR clip (frames,H,W,3), H and W multiples of 2 × scale and at least ``patch``."""
    if src.stills and (not src.videos or rng.random() >= src.video_share):
        for _ in range(100):
            clip = clip_from_still(src.stills[int(rng.integers(len(src.stills)))], frames, scale, patch,
                                   MAX_WINDOW, rng)
            if clip is not None:
                return clip
        raise ValueError(f"no training image is big enough for {patch} px patches after downscaling")
    return clip_from_run(src.videos[int(rng.integers(len(src.videos)))], frames, scale, MAX_WINDOW, rng)


@dataclass(frozen=True)
class Job:
    out: Path
    shard: int
    clips_per_shard: int
    seed: int
    scale: int
    patch: int
    frames: int
    keep_frames: int
    patches_per_frame: int
    mix: tuple[float, float, float]  # clean, simple, codec probabilities of ClipDegradation


_SOURCES: Sources | None = None


def _init_worker(src: Sources) -> None:
    global _SOURCES
    _SOURCES = src
    torch.set_num_threads(1)


def run_shard(job: Job) -> int:
    assert _SOURCES is not None
    path = job.out / shard_name(job.shard)
    if path.exists():
        return 0
    clean, simple, codec = job.mix
    degrade = ClipDegradation(scale=job.scale, clean_prob=clean, simple_prob=simple, codec_prob=codec)
    s, lp = job.scale, job.patch // job.scale
    lrs, hrs, records = [], [], []
    for i in range(job.shard * job.clips_per_shard, (job.shard + 1) * job.clips_per_shard):
        rng = np.random.default_rng([job.seed, i])
        hr = make_clip(_SOURCES, job.frames, s, job.patch, rng)
        lr, record = degrade(hr, rng)
        # Never the first frame: it is the codec's intra frame, and most of a video is predicted frames.
        for t in rng.choice(np.arange(1, job.frames), size=job.keep_frames, replace=False):
            for _ in range(job.patches_per_frame):
                y = int(rng.integers(lr.shape[1] - lp + 1))
                x = int(rng.integers(lr.shape[2] - lp + 1))
                lrs.append(lr[t, y : y + lp, x : x + lp])
                hrs.append(hr[t, y * s : (y + lp) * s, x * s : (x + lp) * s])
                records.append({"clip": i, "frame": int(t), **record})
    meta = {"scale": job.scale, "patch_size": job.patch, "seed": job.seed, "mix": list(job.mix), "patches": records}
    write_shard(path, np.stack(lrs), np.stack(hrs), meta)
    return len(lrs)


@click.command()
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Folder for the shards (outside the repo: a store is gigabytes).")
@click.option("--scale", type=click.Choice(["2", "4"]), default="4", show_default=True)
@click.option("--patch-size", type=int, default=None, help="HR patch side (default 128 for x4, 96 for x2).")
@click.option("--clips", type=int, default=10000, show_default=True, help="Clips to degrade.")
@click.option("--images", "image_dirs", multiple=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="HR still folders (default: shared BSDS500 train + test).")
@click.option("--video", "videos", multiple=True, help="FILE[:START:END] training video frames (repeatable; "
              "default: the first half of shared/clips/onepiece_demo.mp4).")
@click.option("--hr-downscale", type=int, default=2, show_default=True, help="Antialiased HR downscale first.")
@click.option("--video-share", type=float, default=0.15, show_default=True, help="Share of clips cut from video.")
@click.option("--frames", type=int, default=8, show_default=True, help="Frames per degraded clip.")
@click.option("--keep-frames", type=int, default=2, show_default=True, help="Frames of each clip cut into patches.")
@click.option("--patches-per-frame", type=int, default=2, show_default=True)
@click.option("--clips-per-shard", type=int, default=250, show_default=True)
@click.option("--clean-prob", type=click.FloatRange(0, 1), default=0.3, show_default=True,
              help="Share of clips only downscaled (no noise, JPEG or codec).")
@click.option("--simple-prob", type=click.FloatRange(0, 1), default=0.4, show_default=True,
              help="Share downscaled with light noise/JPEG; the rest get the second-order pipeline.")
@click.option("--codec-prob", type=click.FloatRange(0, 1), default=0.85, show_default=True,
              help="Chance a non-clean clip is H.264-encoded (CRF 18-38).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--workers", type=int, default=1, show_default=True, help="Processes.")
def main(out: Path, scale: str, patch_size: int | None, clips: int, image_dirs: tuple[Path, ...],
         videos: tuple[str, ...], hr_downscale: int, video_share: float, frames: int, keep_frames: int,
         patches_per_frame: int, clean_prob: float, simple_prob: float, codec_prob: float, clips_per_shard: int,
         seed: int, workers: int) -> None:
    """Degrade short HR clips into a store of (LR, HR) training patches."""
    s = int(scale)
    patch = patch_size or (128 if s == 4 else 96)
    if patch % s:
        raise click.UsageError(f"--patch-size {patch} is not a multiple of the scale {s}")
    if not 1 <= keep_frames < frames:
        raise click.UsageError("--keep-frames must be at least 1 and below --frames (the first frame is skipped)")
    images = list(image_dirs) if image_dirs else [d for d in DEFAULT_IMAGES if d.is_dir()]
    video_specs = list(videos) if videos else [v for v in DEFAULT_VIDEOS if parse_video(v)[0].is_file()]
    src = load_sources(images, video_specs, hr_downscale, video_share)
    out.mkdir(parents=True, exist_ok=True)
    shards = -(-clips // clips_per_shard)
    if clean_prob + simple_prob > 1:
        raise click.UsageError("--clean-prob + --simple-prob must not exceed 1")
    mix = (clean_prob, simple_prob, codec_prob)
    jobs = [Job(out, k, clips_per_shard, seed, s, patch, frames, keep_frames, patches_per_frame, mix)
            for k in range(shards)]
    click.echo(f"{len(src.stills)} stills, {sum(map(len, src.videos))} video frames; {shards} shards of "
               f"{clips_per_shard} clips into {out}")
    t0, done = time.perf_counter(), 0
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(workers, initializer=_init_worker, initargs=(src,)) as pool:
        for n, made in enumerate(pool.imap_unordered(run_shard, jobs), 1):
            done += made
            rate = n / (time.perf_counter() - t0)
            click.echo(f"shard {n}/{shards}: {done} new patches, {(shards - n) / rate / 60:.1f} min left")


if __name__ == "__main__":
    main()

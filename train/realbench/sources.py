"""The real-footage benchmark set and its LR conditions, as plain tables.

Nothing here is trained on: the clip windows are the halves of ``shared/clips`` that no training or fine-tuning
run reads (onepiece's first half is training data, chaplin's first half is kept for the fine-tuning demo), and
Set5/Set14 are benchmark images (training uses BSDS500 only). A still image becomes a 24-frame clip by a slow
sub-pixel pan, so the H.264 conditions see inter-frame prediction as they would on real video.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import cv2
import numpy as np
import torch

from upscaler.resize import bicubic_downscale

from ..data.degradations import add_gaussian_noise, encode_decode_h264, jpeg_compress, to_uint8
from ..data.images import list_images, load_rgb

REPO = Path(__file__).resolve().parents[2]


def shared_dir() -> Path:
    """``$UPSCALER_SHARED``, else ``../shared`` beside the repo (the same rule as tests/conftest.py)."""
    return Path(os.environ.get("UPSCALER_SHARED", REPO.parent / "shared"))


@dataclass(frozen=True)
class ClipSpec:
    file: str  # a name under shared/clips, or a path
    start: int  # first frame (decode order = presentation order for these clips)
    count: int
    note: str = ""


# The held-out windows: HR = the clip's own decoded frames.
CLIPS: tuple[ClipSpec, ...] = (
    ClipSpec("onepiece_demo.mp4", 120, 24, "anime, 640x480; frames 0-119 are training data"),
    ClipSpec("chaplin.mp4", 160, 24, "old B/W film, 640x360; the first half is kept for the fine-tuning demo"),
    ClipSpec("big_buck_bunny_1s.webm", 0, 24, "CG animation, 1280x720"),
    ClipSpec("fire_vfr.mp4", 0, 24, "phone footage, 1280x720, variable frame rate"),
)
IMAGE_SETS: tuple[str, ...] = ("Set5", "Set14")

# --quick: two clips, 8 frames each, a centre crop, and Set5; small enough for a test on 2 CPU cores.
QUICK_CLIPS: tuple[ClipSpec, ...] = (
    ClipSpec("onepiece_demo.mp4", 120, 8, "anime"),
    ClipSpec("fire_vfr.mp4", 0, 8, "phone footage"),
)
QUICK_IMAGE_SETS: tuple[str, ...] = ("Set5",)
QUICK_CROP = 256  # HR pixels a side: 2x2 NIQE blocks after the border crop

PAN_FRAMES = 24
PAN_STEP = (0.5, 0.25)  # HR pixels per frame (x, y): every 4th frame lands on whole pixels
PAN_SCORED = (8, 16)  # whole-pixel frames, so their HR is an exact crop of the image
INTERP_MARGIN = 4  # Lanczos4 reads 4 pixels either side


@dataclass(frozen=True)
class Condition:
    name: str
    kind: str  # "clean", "h264", "jpeg" or "noise"
    level: float  # CRF, JPEG quality, or sigma in 8-bit code values


CONDITIONS: tuple[Condition, ...] = (
    Condition("clean", "clean", 0),
    Condition("h264-crf23", "h264", 23),
    Condition("h264-crf32", "h264", 32),
    Condition("jpeg-q40", "jpeg", 40),
    Condition("noise-5", "noise", 5),
)
H264_PRESET = "medium"


@dataclass
class Source:
    """One benchmark item: HR frames (T,H,W,3) uint8, and which of them are scored."""

    name: str
    group: str  # "clips" or "images"
    hr: np.ndarray
    scored: tuple[int, ...]  # PSNR/SSIM/sharpness/gain on these
    pairs: tuple[tuple[int, int], ...]  # (t-1, t) pairs for flicker
    niqe_frames: tuple[int, ...]  # NIQE and grid score on these (they cost 0.2-0.4 s a 720p frame)

    @property
    def run_frames(self) -> tuple[int, ...]:
        """The frames a model has to upscale (the LR stream itself holds all of ``hr``)."""
        return tuple(sorted({*self.scored, *(t for p in self.pairs for t in p), *self.niqe_frames}))


def crop_to(frames: np.ndarray, multiple: int, size: int | None = None) -> np.ndarray:
    """Centre crop (T,H,W,3) to multiples of ``multiple`` (and to at most ``size`` a side)."""
    h, w = frames.shape[1:3]
    th, tw = (min(h, size), min(w, size)) if size else (h, w)
    th, tw = th - th % multiple, tw - tw % multiple
    top, left = (h - th) // 2, (w - tw) // 2
    return np.ascontiguousarray(frames[:, top : top + th, left : left + tw])


def read_clip(spec: ClipSpec) -> np.ndarray:
    """Frames ``start .. start+count-1`` of a clip as (T,H,W,3) uint8 RGB."""
    path = Path(spec.file) if Path(spec.file).exists() else shared_dir() / "clips" / spec.file
    frames = []
    with av.open(str(path)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i >= spec.start + spec.count:
                break
            if i >= spec.start:
                frames.append(frame.to_ndarray(format="rgb24"))
    if len(frames) != spec.count:
        raise ValueError(f"{path}: has {spec.start + len(frames)} frames, {spec.start + spec.count} needed")
    return np.stack(frames)


def pan(image: np.ndarray, frames: int = PAN_FRAMES, step: tuple[float, float] = PAN_STEP) -> np.ndarray:
    """A still (H,W,3) as a slow pan: frame t shows the image moved by t*step, cropped so no border shows."""
    h, w = image.shape[:2]
    out_w = int(w - 2 * INTERP_MARGIN - (frames - 1) * step[0]) - 1
    out_h = int(h - 2 * INTERP_MARGIN - (frames - 1) * step[1]) - 1
    seq = []
    for t in range(frames):
        m = np.array([[1, 0, INTERP_MARGIN + t * step[0]], [0, 1, INTERP_MARGIN + t * step[1]]], np.float64)
        seq.append(cv2.warpAffine(image, m, (out_w, out_h), flags=cv2.INTER_LANCZOS4 | cv2.WARP_INVERSE_MAP,
                                  borderMode=cv2.BORDER_REFLECT_101))
    return np.stack(seq)


def clip_source(spec: ClipSpec, scale: int, crop: int | None = None) -> Source:
    # Multiples of 2*scale: the LR must have even sides for yuv420p.
    hr = crop_to(read_clip(spec), 2 * scale, crop)
    t = len(hr)
    name = f"{Path(spec.file).stem}[{spec.start}:{spec.start + spec.count}]"
    return Source(name, "clips", hr, tuple(range(t)), tuple((i - 1, i) for i in range(1, t)),
                  tuple(range(min(4, t - 1), t, 8)))


def image_source(path: Path, scale: int) -> Source:
    hr = crop_to(pan(load_rgb(path)), 2 * scale)
    return Source(f"{path.parent.name}/{path.stem}", "images", hr, PAN_SCORED,
                  tuple((t - 1, t) for t in PAN_SCORED), PAN_SCORED)


def iter_sources(scale: int, quick: bool = False, clips: tuple[ClipSpec, ...] | None = None,
                 images: bool = True) -> Iterator[Source]:
    """The suite, one source at a time (a 720p clip is 66 MB of HR frames; no need to hold them all)."""
    for spec in clips if clips is not None else (QUICK_CLIPS if quick else CLIPS):
        yield clip_source(spec, scale, QUICK_CROP if quick else None)
    if images:
        for name in QUICK_IMAGE_SETS if quick else IMAGE_SETS:
            for path in list_images([shared_dir() / "images" / "bench" / name]):
                yield image_source(path, scale)


def make_lr(hr: np.ndarray, scale: int) -> np.ndarray:
    """The clean LR: antialiased bicubic ÷scale of each HR frame, quantised to 8 bits."""
    x = torch.from_numpy(hr).permute(0, 3, 1, 2).float() / 255
    lr = bicubic_downscale(x, scale)
    return (lr * 255).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()


def source_seed(name: str, condition: str) -> int:
    """A fixed seed per source and condition (crc32, not hash(): that changes between runs)."""
    return zlib.crc32(f"{name}|{condition}".encode())


def degrade(lr: np.ndarray, condition: Condition, seed: int) -> np.ndarray:
    """Apply one condition to the whole LR stream (T,h,w,3) uint8 → uint8; deterministic for a seed."""
    if condition.kind == "clean":
        return lr
    if condition.kind == "h264":
        # The whole stream in one encode with libx264's own GOP and B-frame defaults, so P/B frames occur.
        return np.stack(encode_decode_h264(list(lr), int(condition.level), H264_PRESET))
    if condition.kind == "jpeg":
        return np.stack([to_uint8(jpeg_compress(f, int(condition.level))) for f in lr])
    if condition.kind == "noise":
        rng = np.random.default_rng(seed)
        return np.stack([to_uint8(add_gaussian_noise(f.astype(np.float32) / 255, condition.level / 255, False, rng))
                         for f in lr])
    raise ValueError(f"unknown condition kind {condition.kind!r}")


def parse_clip(text: str) -> ClipSpec:
    """``NAME:START:COUNT`` (NAME under shared/clips, or a path)."""
    try:
        name, start, count = text.rsplit(":", 2)
        spec = ClipSpec(name, int(start), int(count), "from --clip")
    except ValueError:
        raise ValueError(f"--clip wants NAME:START:COUNT, got {text!r}") from None
    if spec.start < 0 or spec.count < 2:
        raise ValueError(f"--clip {text!r}: START must be >= 0 and COUNT >= 2")
    return spec

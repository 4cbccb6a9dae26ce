"""Short HR clips to degrade: windows of consecutive video frames, or stills panned into clips, and the dataset
that degrades them on the fly (``ClipPatchDataset``, for ``--videos`` fine-tuning on a user's own footage).

The shipped models are trained from a pre-generated store of the same clips (``python -m train.make_pairs``),
because on a 2-core CPU the degradation costs more than the training step; a user's fine-tuning run is short
and small enough to degrade as it goes.
"""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import torch
from torch.utils.data import Dataset

from upscaler.resize import bicubic_downscale

from .clip_degradation import ClipDegradation, pan_clip
from .datasets import _to_chw, dihedral


def downscale(img: np.ndarray, factor: int) -> np.ndarray:
    """Antialiased bicubic ÷factor (cropped to a multiple of it), uint8 in and out."""
    if factor == 1:
        return img
    h, w = img.shape[0] // factor * factor, img.shape[1] // factor * factor
    x = torch.from_numpy(np.ascontiguousarray(img[:h, :w])).permute(2, 0, 1)[None].float() / 255
    y = bicubic_downscale(x, factor)[0].permute(1, 2, 0).numpy()
    return (np.clip(y, 0, 1) * 255 + 0.5).astype(np.uint8)


def parse_video(spec: str) -> tuple[Path, int, int | None]:
    """``FILE[:START:END]``: frames START (inclusive) to END (exclusive) of FILE."""
    parts = spec.rsplit(":", 2)
    if len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit():
        return Path(parts[0]), int(parts[1]), int(parts[2])
    return Path(spec), 0, None


def read_frames(path: Path, start: int = 0, end: int | None = None) -> list[np.ndarray]:
    """Decoded RGB frames ``start`` to ``end`` (exclusive) of the first video stream, in presentation order."""
    frames = []
    with av.open(str(path)) as c:
        for i, f in enumerate(c.decode(video=0)):
            if end is not None and i >= end:
                break
            if i >= start:
                frames.append(f.to_ndarray(format="rgb24"))
    return frames


def _window(h: int, w: int, margin: int, step: int, cap: int) -> tuple[int, int]:
    return min(cap, (h - margin) // step * step), min(cap, (w - margin) // step * step)


def clip_from_still(img: np.ndarray, frames: int, scale: int, min_side: int, cap: int,
                    rng: np.random.Generator) -> np.ndarray | None:
    """A panned clip of the largest window (sides multiples of 2 × scale, at most ``cap``) the still holds with
    a margin to pan in; None when that is under ``min_side``."""
    h, w = _window(*img.shape[:2], margin=16, step=2 * scale, cap=cap)
    if min(h, w) < min_side:
        return None
    return pan_clip(img, frames, h, w, rng)


def clip_from_run(run: np.ndarray, frames: int, scale: int, cap: int, rng: np.random.Generator) -> np.ndarray:
    """``frames`` consecutive frames of ``run`` (T,H,W,3) from a random start, in a random window (sides multiples
    of 2 × scale, at most ``cap``); a run shorter than ``frames`` holds its last frame."""
    first = int(rng.integers(max(1, len(run) - frames + 1)))
    clip = run[first : first + frames]
    if len(clip) < frames:
        clip = np.concatenate([clip, np.repeat(clip[-1:], frames - len(clip), 0)])
    h, w = _window(*clip.shape[1:3], margin=0, step=2 * scale, cap=cap)
    y = int(rng.integers(clip.shape[1] - h + 1)) // 2 * 2
    x = int(rng.integers(clip.shape[2] - w + 1)) // 2 * 2
    return clip[:, y : y + h, x : x + w]


class ClipPatchDataset(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """(LR, HR) patches degraded on the fly as clips: each sample takes a ``patch_size`` window of a source (a
    still, panned; or a run of consecutive video frames), degrades ``frames`` frames of it together with
    ``ClipDegradation`` (H.264 included), and returns one predicted (non-first) frame, flipped/rotated."""

    def __init__(self, stills: list[np.ndarray], runs: list[np.ndarray], *, patch_size: int, scale: int,
                 degradation: ClipDegradation, frames: int = 6, seed: int = 0, patches_per_image: int = 1) -> None:
        if patch_size % (2 * scale):
            raise ValueError(f"patch_size {patch_size} must be a multiple of 2 x scale ({2 * scale}) for the codec")
        if frames < 2:
            raise ValueError("clips need at least 2 frames (the first, intra-coded one is never used)")
        stills = [s for s in stills if min(s.shape[:2]) >= patch_size + 16]
        runs = [r for r in runs if min(r.shape[1:3]) >= patch_size]
        self.sources: list[tuple[str, np.ndarray]] = [("still", s) for s in stills] + [("run", r) for r in runs]
        if not self.sources:
            raise ValueError(f"no training image or video frame is big enough for {patch_size} px patches")
        self.patch_size = patch_size
        self.scale = scale
        self.degradation = degradation
        self.frames = frames
        self.seed = seed
        self.patches_per_image = patches_per_image

    def __len__(self) -> int:
        return len(self.sources) * self.patches_per_image

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        rng = np.random.default_rng([self.seed, int(index)])
        kind, src = self.sources[int(index) % len(self.sources)]
        p = self.patch_size
        if kind == "still":
            hr = clip_from_still(src, self.frames, self.scale, p, p, rng)
            assert hr is not None  # small stills were dropped in __init__
        else:
            hr = clip_from_run(src, self.frames, self.scale, p, rng)
        lr, _ = self.degradation(hr, rng)
        t = int(rng.integers(1, self.frames))
        k, flip = int(rng.integers(4)), bool(rng.integers(2))
        return _to_chw(dihedral(lr[t], k, flip)), _to_chw(dihedral(hr[t], k, flip))

"""(LR, HR) patch datasets and the loader plumbing around them.

Every sample's randomness (crop, flips, rotation, degradation) comes from a Generator seeded by
(seed, index). The sampler below hands out indices offset by epoch × len(dataset), so each epoch draws new
patches yet any (epoch, position) is reproducible: resuming from a step count replays exactly, with any
number of workers.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from PIL import Image
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from .degradations import Degradation, to_float
from .images import IMAGE_SUFFIXES, list_images, load_rgb


def _image_hw(path: Path) -> tuple[int, int]:
    """(height, width) from the file header, without decoding the pixels."""
    with Image.open(path) as im:
        return im.height, im.width


def random_crop(img: np.ndarray, size: int, rng: np.random.Generator) -> tuple[int, int]:
    """Top-left (y, x) of a random ``size`` × ``size`` crop inside ``img``."""
    return int(rng.integers(img.shape[0] - size + 1)), int(rng.integers(img.shape[1] - size + 1))


def dihedral(img: np.ndarray, k: int, flip: bool) -> np.ndarray:
    """Rotate by k × 90° then optionally mirror: the 8 flips/rotations that keep the pixel grid."""
    img = np.rot90(img, k)
    return np.ascontiguousarray(img[:, ::-1] if flip else img)


def _to_chw(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(to_float(img).transpose(2, 0, 1)))


class _ImageCache:
    """Paths decoded on first use and kept; each DataLoader worker process fills its own copy."""

    def __init__(self, keep: bool) -> None:
        self.keep = keep
        self._images: dict[Path, np.ndarray] = {}

    def get(self, path: Path) -> np.ndarray:
        img = self._images.get(path)
        if img is None:
            img = load_rgb(path)
            if self.keep:
                self._images[path] = img
        return img


class HRFolderDataset(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """HR patches from image folders and/or in-memory frames, LR made on the fly by ``degradation``.

    Yields (lr, hr) float32 CHW tensors in [0,1], lr of size patch_size / scale. The HR patch is cropped
    and flipped/rotated first, then degraded. Sources whose short side is below ``patch_size`` are skipped.
    ``patches_per_image`` sets how many samples one image contributes to an epoch.
    """

    def __init__(
        self,
        dirs: list[Path] | None = None,
        frames: list[np.ndarray] | None = None,
        *,
        patch_size: int,
        scale: int,
        degradation: Degradation,
        seed: int = 0,
        patches_per_image: int = 1,
        cache_images: bool = True,
    ) -> None:
        if patch_size % scale:
            raise ValueError(f"patch_size {patch_size} is not a multiple of scale {scale}")
        sources: list[Path | np.ndarray] = []
        if dirs:
            sources += [p for p in list_images([Path(d) for d in dirs]) if min(_image_hw(p)) >= patch_size]
        for f in frames or []:
            if f.ndim != 3 or f.shape[2] != 3 or f.dtype != np.uint8:
                raise ValueError(f"frames must be uint8 (H,W,3) RGB arrays, got {f.dtype} {f.shape}")
            if min(f.shape[:2]) >= patch_size:
                sources.append(f)
        if not sources:
            raise ValueError(f"no training image or frame is at least {patch_size}px on its short side")
        self.sources = sources
        self.patch_size = patch_size
        self.scale = scale
        self.degradation = degradation
        self.seed = seed
        self.patches_per_image = patches_per_image
        self._cache = _ImageCache(cache_images)

    def __len__(self) -> int:
        return len(self.sources) * self.patches_per_image

    def _image(self, i: int) -> np.ndarray:
        src = self.sources[i]
        return src if isinstance(src, np.ndarray) else self._cache.get(src)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        rng = np.random.default_rng([self.seed, int(index)])
        img = self._image(int(index) % len(self.sources))
        p = self.patch_size
        y, x = random_crop(img, p, rng)
        hr = dihedral(img[y : y + p, x : x + p], int(rng.integers(4)), bool(rng.integers(2)))
        lr = self.degradation(hr, rng)
        if lr.shape != (p // self.scale, p // self.scale, 3):
            raise ValueError(f"degradation returned {lr.shape} for a {p}px patch at scale {self.scale}")
        return _to_chw(lr), _to_chw(hr)


def _by_stem(folder: Path) -> dict[str, Path]:
    files = [p for p in sorted(Path(folder).iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES]
    out: dict[str, Path] = {}
    for p in files:
        if p.stem in out:
            raise ValueError(f"{folder}: two images share the name {p.stem!r} ({out[p.stem].name}, {p.name})")
        out[p.stem] = p
    return out


class PairedFolderDataset(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """Given LR/HR pairs (matched by file stem), random aligned crops with identical flips/rotations.

    Every HR image must be exactly ``scale`` × its LR; a missing partner or a size mismatch is a ValueError
    at construction (sizes are read from the file headers).
    """

    def __init__(
        self,
        lr_dir: Path,
        hr_dir: Path,
        patch_size: int,
        scale: int,
        *,
        seed: int = 0,
        patches_per_image: int = 1,
        cache_images: bool = True,
    ) -> None:
        if patch_size % scale:
            raise ValueError(f"patch_size {patch_size} is not a multiple of scale {scale}")
        lrs, hrs = _by_stem(Path(lr_dir)), _by_stem(Path(hr_dir))
        if not hrs:
            raise ValueError(f"{hr_dir}: no images")
        unmatched = ((hr_dir, lr_dir, hrs.keys() - lrs.keys()), (lr_dir, hr_dir, lrs.keys() - hrs.keys()))
        for have, lack, stems in unmatched:
            if stems:
                raise ValueError(f"{len(stems)} image(s) in {have} have no partner in {lack}: "
                                 f"{sorted(stems)[:5]}")
        self.pairs = [(lrs[s], hrs[s]) for s in sorted(hrs)]
        for lr_path, hr_path in self.pairs:
            (lh, lw), (hh, hw) = _image_hw(lr_path), _image_hw(hr_path)
            if (hh, hw) != (lh * scale, lw * scale):
                raise ValueError(f"{hr_path.name}: HR is {hw}x{hh} but LR {lr_path.name} is {lw}x{lh}; "
                                 f"expected HR = LR x{scale}")
            if min(hh, hw) < patch_size:
                raise ValueError(f"{hr_path.name}: {hw}x{hh} is smaller than patch_size {patch_size}")
        self.patch_size = patch_size
        self.scale = scale
        self.seed = seed
        self.patches_per_image = patches_per_image
        self._cache = _ImageCache(cache_images)

    def __len__(self) -> int:
        return len(self.pairs) * self.patches_per_image

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        rng = np.random.default_rng([self.seed, int(index)])
        lr_path, hr_path = self.pairs[int(index) % len(self.pairs)]
        lr_img, hr_img = self._cache.get(lr_path), self._cache.get(hr_path)
        s, lp = self.scale, self.patch_size // self.scale
        if hr_img.shape[:2] != (lr_img.shape[0] * s, lr_img.shape[1] * s):  # e.g. an EXIF rotation on one
            raise ValueError(f"{hr_path.name} and {lr_path.name} decode to sizes that are not x{s} apart")
        y, x = random_crop(lr_img, lp, rng)
        k, flip = int(rng.integers(4)), bool(rng.integers(2))
        lr = dihedral(lr_img[y : y + lp, x : x + lp], k, flip)
        hr = dihedral(hr_img[y * s : (y + lp) * s, x * s : (x + lp) * s], k, flip)
        return _to_chw(lr), _to_chw(hr)


class EpochSampler(DistributedSampler):
    """DistributedSampler (shuffled, sharded per rank) whose indices carry the epoch: epoch × len + i.

    Datasets above take ``index % n_images`` for the image and the whole index for the rng, so every epoch
    draws fresh patches. ``set_epoch(epoch, skip)`` also drops the first ``skip`` samples of this rank's
    share, which is how a resumed run continues mid-epoch without loading the skipped samples.
    """

    def __init__(self, dataset: Dataset, num_replicas: int, rank: int, seed: int) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed)
        self.skip = 0

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        super().set_epoch(epoch)
        self.skip = skip

    def __iter__(self) -> Iterator[int]:
        offset = self.epoch * len(self.dataset)  # type: ignore[arg-type]
        return (offset + i for i in itertools.islice(super().__iter__(), self.skip, None))

    def __len__(self) -> int:
        return max(0, self.num_samples - self.skip)


def make_loader(
    dataset: Dataset, batch_size: int, num_workers: int, seed: int, distributed: bool = False
) -> DataLoader:
    """A shuffling loader of full batches; with ``distributed`` each rank gets its own shard.

    ``distributed=True`` requires an initialised torch.distributed process group.
    """
    if distributed and not (dist.is_available() and dist.is_initialized()):
        raise RuntimeError("distributed=True but torch.distributed is not initialised")
    replicas, rank = (dist.get_world_size(), dist.get_rank()) if distributed else (1, 0)
    sampler = EpochSampler(dataset, num_replicas=replicas, rank=rank, seed=seed)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=num_workers,
        drop_last=True,  # constant batch shapes; the dropped tail is reshuffled into later epochs
        pin_memory=torch.cuda.is_available(),
        persistent_workers=num_workers > 0,  # keeps each worker's decoded-image cache across epochs
    )


def infinite_batches(loader: DataLoader, start_step: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Batches forever, calling ``set_epoch`` on each pass; ``start_step`` resumes at that batch exactly."""
    sampler = loader.sampler
    if not isinstance(sampler, EpochSampler) or loader.batch_size is None:
        raise TypeError("infinite_batches needs a loader from make_loader")
    per_epoch = sampler.num_samples // loader.batch_size
    if per_epoch == 0:
        raise ValueError(f"{sampler.num_samples} samples per rank is less than one batch of "
                         f"{loader.batch_size}; raise patches_per_image or add data")
    epoch, skip = divmod(start_step, per_epoch)
    while True:
        sampler.set_epoch(epoch, skip * loader.batch_size)
        yield from loader
        epoch, skip = epoch + 1, 0

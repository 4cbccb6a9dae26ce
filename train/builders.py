"""Networks, degradation and dataset of a run, built from its config."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np
from torch import nn
from torch.utils.data import Dataset

from upscaler.archs import by_name
from upscaler.archs.srvgg import SRVGGNetCompact
from upscaler.models.loading import load_model

from .archs import PatchGANDiscriminator, UNetDiscriminatorSN, VGGStyleDiscriminator
from .config import TrainConfig
from .data import (
    BicubicDegradation,
    Chain,
    Degradation,
    HRFolderDataset,
    PairedFolderDataset,
    PatchStoreDataset,
    RealESRGANDegradation,
    VideoCodecDegradation,
    sample_video_frames,
)
from .data.clip_degradation import ClipDegradation
from .data.clip_sources import ClipPatchDataset, downscale
from .data.images import list_images, load_rgb
from .data.video_frames import sample_video_runs

Log = Callable[[str], None]

def generator_params(cfg: TrainConfig) -> dict[str, Any]:
    """Constructor arguments of the configured generator; unset optional sizes keep the class defaults."""
    if cfg.arch == "srvgg":
        return {"num_feat": cfg.num_feat, "num_conv": cfg.num_conv, "upscale": cfg.scale}
    optional = {"num_block": cfg.num_block}
    if cfg.arch == "rrdb":
        optional["num_grow_ch"] = cfg.num_grow_ch
        params = {"scale": cfg.scale, "num_feat": cfg.num_feat}
    else:  # srresnet, msrresnet
        params = {"upscale": cfg.scale, "num_feat": cfg.num_feat}
    return params | {k: v for k, v in optional.items() if v is not None}


def build_generator(cfg: TrainConfig) -> nn.Module:
    arch = by_name(cfg.arch)
    if arch is None:
        raise ValueError(f"unknown arch {cfg.arch!r}")
    try:
        generator = arch.build(generator_params(cfg))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"cannot build {cfg.arch} x{cfg.scale}: {exc}") from None
    if isinstance(generator, SRVGGNetCompact):
        init_srvgg(generator)
    return generator


def init_srvgg(model: SRVGGNetCompact) -> None:
    """He init for the PReLU stack, last conv scaled down.

    PyTorch's default conv init shrinks activations by ~0.6 per layer, so through 16 layers the residual
    branch starts near zero and the first layers get ~1e-10 gradients: training sat at nearest-neighbour
    quality for the first 500+ steps. He init keeps the signal alive; the 0.1 on the last conv starts the
    network close to its nearest-neighbour skip instead of adding noise to it.
    """
    convs = [m for m in model.body if isinstance(m, nn.Conv2d)]
    for conv in convs:
        nn.init.kaiming_normal_(conv.weight, a=0.25, nonlinearity="leaky_relu")
        nn.init.zeros_(conv.bias)
    convs[-1].weight.data.mul_(0.1)


def initial_generator(cfg: TrainConfig, log: Log) -> tuple[TrainConfig, nn.Module]:
    """The generator a run starts from: fine-tuned file (whose arch/params win), pretrained weights, or fresh."""
    if cfg.fine_tune is not None:
        loaded = load_model(cfg.fine_tune)
        arch = by_name(loaded.arch)
        assert arch is not None  # load_model only returns known architectures
        generator = arch.build(loaded.params)
        generator.load_state_dict(loaded.module.state_dict())
        size_keys = ("num_feat", "num_conv", "num_block", "num_grow_ch")
        sizes = {k: loaded.params[k] for k in size_keys if k in loaded.params}
        cfg = replace(cfg, arch=loaded.arch, scale=loaded.scale, **sizes)
        log(f"fine-tuning {loaded.describe()} from {cfg.fine_tune}")
        return cfg, generator
    generator = build_generator(cfg)
    if cfg.pretrained is not None:
        try:
            generator.load_state_dict(load_model(cfg.pretrained).module.state_dict())
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()[-1].strip()
            raise ValueError(f"{cfg.pretrained}: weights do not fit {cfg.arch} x{cfg.scale} "
                             f"{generator_params(cfg)} ({first})") from None
        log(f"initialised from {cfg.pretrained}")
    elif cfg.stage == "gan":
        log("warning: GAN stage without pretrained weights; ESRGAN starts it from the PSNR model")
    return cfg, generator


def build_discriminator(cfg: TrainConfig) -> nn.Module:
    try:
        if cfg.discriminator == "vgg":
            return VGGStyleDiscriminator(num_feat=cfg.d_num_feat, input_size=cfg.patch_size)
        if cfg.discriminator == "patchgan":
            return PatchGANDiscriminator(num_feat=cfg.d_num_feat, n_layers=cfg.d_layers)
        return UNetDiscriminatorSN(num_feat=cfg.d_num_feat)
    except ValueError as exc:
        raise ValueError(f"discriminator {cfg.discriminator} (patch_size {cfg.patch_size}): {exc}") from None


def build_degradation(cfg: TrainConfig) -> Degradation:
    base: Degradation = (BicubicDegradation(cfg.scale) if cfg.degradation == "bicubic"
                         else RealESRGANDegradation(scale=cfg.scale))
    if cfg.video_codec_prob:
        return Chain((base, VideoCodecDegradation(probability=cfg.video_codec_prob)))
    return base


def build_dataset(cfg: TrainConfig, world_size: int, log: Log) -> Dataset:
    if cfg.pairs_dirs:
        store = PatchStoreDataset(cfg.pairs_dirs, cfg.patch_size, cfg.scale, seed=cfg.seed,
                                  patches_per_image=cfg.patches_per_image)
        log(f"{len(store.lr)} stored patch pairs from {store.shards} shards")
        return store
    if cfg.degradation == "realvideo" and cfg.lr_dir is None:
        return _clip_dataset(cfg, world_size, log)
    if cfg.lr_dir is not None and cfg.hr_dir is not None:
        dataset: PairedFolderDataset | HRFolderDataset = PairedFolderDataset(
            cfg.lr_dir, cfg.hr_dir, cfg.patch_size, cfg.scale, seed=cfg.seed, patches_per_image=cfg.patches_per_image)
        sources = len(dataset.pairs)
    else:
        frames = None
        if cfg.videos is not None:
            if not cfg.videos.exists():
                raise ValueError(f"--videos {cfg.videos}: no such file or folder")
            frames = sample_video_frames(cfg.videos, max_frames_per_video=cfg.video_frames_per_video,
                                         min_interval_s=cfg.video_min_interval_s)
            if not frames:
                raise ValueError(f"{cfg.videos}: no usable frames (all unreadable, black or flat)")
            log(f"{len(frames)} training frames from {cfg.videos}")
        dataset = HRFolderDataset(cfg.hr_dirs or None, frames, patch_size=cfg.patch_size, scale=cfg.scale,
                                  degradation=build_degradation(cfg), seed=cfg.seed,
                                  patches_per_image=cfg.patches_per_image)
        sources = len(dataset.sources)
    # An epoch must hold at least one batch per rank (a handful of video frames may not).
    needed = math.ceil(cfg.batch_size * world_size / sources)
    dataset.patches_per_image = max(dataset.patches_per_image, needed)
    return dataset


def _clip_dataset(cfg: TrainConfig, world_size: int, log: Log) -> ClipPatchDataset:
    """Stills panned into clips and runs of consecutive video frames, degraded as clips on the fly."""
    stills = [downscale(load_rgb(p), cfg.hr_downscale) for p in list_images(cfg.hr_dirs)] if cfg.hr_dirs else []
    runs = []
    if cfg.videos is not None:
        if not cfg.videos.exists():
            raise ValueError(f"--videos {cfg.videos}: no such file or folder")
        runs = [np.stack([downscale(f, cfg.hr_downscale) for f in run])
                for run in sample_video_runs(cfg.videos, max_runs_per_video=cfg.video_frames_per_video,
                                             frames=cfg.clip_frames, min_interval_s=cfg.video_min_interval_s)]
        if not runs:
            raise ValueError(f"{cfg.videos}: no usable frames (all unreadable, black or flat)")
        log(f"{len(runs)} runs of {cfg.clip_frames} consecutive frames from {cfg.videos}")
    dataset = ClipPatchDataset(stills, runs, patch_size=cfg.patch_size, scale=cfg.scale,
                               degradation=ClipDegradation(scale=cfg.scale), frames=cfg.clip_frames,
                               seed=cfg.seed, patches_per_image=cfg.patches_per_image)
    dataset.patches_per_image = max(dataset.patches_per_image,
                                    math.ceil(cfg.batch_size * world_size / len(dataset.sources)))
    return dataset

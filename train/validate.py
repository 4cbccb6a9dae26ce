"""Validation on a bench folder: mean PSNR-Y of the model and of bicubic upscaling, on bicubic-downscaled HR."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from upscaler.metrics import psnr_y
from upscaler.resize import bicubic_downscale, bicubic_resize

from .data.paired import list_images, load_rgb


def load_bench(folder: Path, scale: int) -> list[torch.Tensor]:
    images = []
    for path in list_images([folder]):
        hr = torch.from_numpy(load_rgb(path)).permute(2, 0, 1)[None].float() / 255
        h, w = hr.shape[-2:]
        images.append(hr[..., : h - h % scale, : w - w % scale])
    return images


@torch.no_grad()
def validate(model: nn.Module, folder: Path, scale: int) -> tuple[float, float]:
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    ours, base = [], []
    for hr in load_bench(folder, scale):
        lr = (bicubic_downscale(hr, scale) * 255).round() / 255
        sr = model(lr.to(device)).cpu()
        ours.append(psnr_y(sr, hr, crop_border=scale))
        base.append(psnr_y(bicubic_resize(lr, hr.shape[-2:]), hr, crop_border=scale))
    model.train(was_training)
    return sum(ours) / len(ours), sum(base) / len(base)

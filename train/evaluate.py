"""Benchmark a weights file: PSNR-Y (and SSIM-Y) on bench folders against bicubic, as SR papers report them.

    python -m train.evaluate --model weights/srvgg-x4.safetensors --bench ../shared/images/bench/Set5 ...
"""

from __future__ import annotations

from pathlib import Path

import click
import torch
from rich.console import Console
from rich.table import Table

from upscaler import Upscaler
from upscaler.metrics import psnr_y, ssim_y
from upscaler.resize import bicubic_downscale, bicubic_resize

from .validate import load_bench


def evaluate(up: Upscaler, folder: Path) -> dict[str, float]:
    """Mean PSNR-Y / SSIM-Y of the model and of bicubic over the images of ``folder``."""
    scale = up.scale
    sums = {"psnr": 0.0, "ssim": 0.0, "bicubic_psnr": 0.0, "bicubic_ssim": 0.0}
    images = load_bench(folder, scale)
    for hr in images:
        lr = (bicubic_downscale(hr, scale) * 255).round() / 255
        sr = up.upscale_tensor(lr).cpu()
        base = bicubic_resize(lr, hr.shape[-2:])
        sums["psnr"] += psnr_y(sr, hr, crop_border=scale)
        sums["ssim"] += ssim_y(sr, hr, crop_border=scale)
        sums["bicubic_psnr"] += psnr_y(base, hr, crop_border=scale)
        sums["bicubic_ssim"] += ssim_y(base, hr, crop_border=scale)
    return {k: v / len(images) for k, v in sums.items()}


@click.command()
@click.option("--model", required=True, help="Weights file or model name.")
@click.option("--bench", "folders", multiple=True, required=True,
              type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--device", default="auto")
def main(model: str, folders: tuple[Path, ...], device: str) -> None:
    torch.set_grad_enabled(False)
    up = Upscaler(model, device=device, tile=0, precision="fp32")
    table = Table(title=f"{model}: x{up.scale}, PSNR-Y dB / SSIM-Y, border {up.scale} px cropped")
    for column in ("set", "images", "model PSNR", "bicubic PSNR", "model SSIM", "bicubic SSIM"):
        table.add_column(column)
    for folder in folders:
        r = evaluate(up, folder)
        table.add_row(folder.name, str(len(load_bench(folder, up.scale))), f"{r['psnr']:.2f}",
                      f"{r['bicubic_psnr']:.2f}", f"{r['ssim']:.4f}", f"{r['bicubic_ssim']:.4f}")
    Console().print(table)


if __name__ == "__main__":
    main()

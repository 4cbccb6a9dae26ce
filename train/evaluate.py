"""Benchmark a weights file: PSNR-Y and SSIM-Y on bench folders against bicubic, as SR papers report them, and
the mean ``grid_score`` (pixel-shuffle checkerboard strength: natural photos ~2, an L1 x4 model ~10).

    python -m train.evaluate --model weights/srvgg-x4-psnr.safetensors --bench ../shared/images/bench/Set5 ...

The metrics are the training run's validation (``train.validate``), so the README table and the numbers a
run logs are computed the same way.
"""

from __future__ import annotations

from pathlib import Path

import click
import torch
from rich.console import Console
from rich.table import Table

from upscaler import Upscaler

from .data.images import list_images
from .validate import validate


@click.command()
@click.option("--model", required=True, help="Weights file or model name.")
@click.option("--bench", "folders", multiple=True, required=True,
              type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--device", default="auto")
def main(model: str, folders: tuple[Path, ...], device: str) -> None:
    torch.set_grad_enabled(False)
    up = Upscaler(model, device=device, tile=0, precision="fp32")
    table = Table(title=f"{model}: x{up.scale}, PSNR-Y dB / SSIM-Y, border {up.scale} px cropped")
    for column in ("set", "images", "model PSNR", "bicubic PSNR", "model SSIM", "bicubic SSIM", "grid"):
        table.add_column(column)
    for folder in folders:
        r = validate(up.net, folder, up.scale)
        table.add_row(folder.name, str(len(list_images([folder]))), f"{r.psnr_y:.2f}", f"{r.bicubic_psnr_y:.2f}",
                      f"{r.ssim:.4f}", f"{r.bicubic_ssim:.4f}", f"{r.grid:.1f}")
    Console().print(table)


if __name__ == "__main__":
    main()

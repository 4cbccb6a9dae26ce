"""Benchmark weights files.

``--bench FOLDER``: PSNR-Y and SSIM-Y on bench folders against bicubic, as SR papers report them, and the mean
``grid_score`` (pixel-shuffle checkerboard strength: natural photos ~2, an L1 x4 model ~10). The metrics are
the training run's validation (``train.validate``), so the README table and the numbers a run logs agree.

    python -m train.evaluate --model weights/srvgg-x4-psnr.safetensors --bench ../shared/images/bench/Set5 ...

``--suite real``: the real-footage benchmark (``train/realbench``): held-out clips and panned stills, each
under clean, H.264 CRF 23/32, JPEG q40 and noise LR, with PSNR-Y, SSIM-Y, NIQE, sharpness, grid, artefact
gain and flicker, bicubic and every ``--model`` side by side.

    python -m train.evaluate --suite real --model weights/srvgg-x4-gan.safetensors --model my.pth --json out.json
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


def _bench(model: str, folders: tuple[Path, ...], device: str) -> None:
    up = Upscaler(model, device=device, tile=0, precision="fp32")
    table = Table(title=f"{model}: x{up.scale}, PSNR-Y dB / SSIM-Y, border {up.scale} px cropped")
    for column in ("set", "images", "model PSNR", "bicubic PSNR", "model SSIM", "bicubic SSIM", "grid"):
        table.add_column(column)
    for folder in folders:
        r = validate(up.net, folder, up.scale)
        table.add_row(folder.name, str(len(list_images([folder]))), f"{r.psnr_y:.2f}", f"{r.bicubic_psnr_y:.2f}",
                      f"{r.ssim:.4f}", f"{r.bicubic_ssim:.4f}", f"{r.grid:.1f}")
    Console().print(table)


def _real(models: tuple[str, ...], scale: int, quick: bool, clips: tuple[str, ...], images: bool,
          json_path: Path | None, crops: Path | None, markdown: bool, device: str) -> None:
    from .realbench import report
    from .realbench.sources import iter_sources, parse_clip
    from .realbench.suite import run_suite

    try:
        specs = tuple(parse_clip(c) for c in clips) if clips else None
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--clip") from None
    console = Console(stderr=True)
    try:
        result = run_suite(list(models), scale, iter_sources(scale, quick, specs, images), device=device,
                           crops_dir=crops, log=lambda line: console.print(line, style="dim"), quick=quick)
    except (ValueError, FileNotFoundError) as e:
        raise click.ClickException(str(e)) from None
    report.print_tables(result)
    if markdown:
        click.echo(report.markdown(result))
    if json_path is not None:
        report.write_json(result, json_path)


@click.command()
@click.option("--model", "models", multiple=True, help="Weights file or model name (repeat for several).")
@click.option("--bench", "folders", multiple=True,
              type=click.Path(exists=True, file_okay=False, path_type=Path), help="Bench image folder (repeat).")
@click.option("--suite", type=click.Choice(["real"]), help="The real-footage benchmark instead of --bench.")
@click.option("--scale", type=int, default=4, show_default=True, help="Suite scale (models must match).")
@click.option("--quick", is_flag=True, help="Suite: a small subset (two 8-frame clip crops, Set5).")
@click.option("--clip", "clips", multiple=True, metavar="NAME:START:COUNT",
              help="Suite: these clip windows instead of the built-in ones (e.g. chaplin.mp4:160:24).")
@click.option("--images/--no-images", default=True, show_default=True, help="Suite: include the panned stills.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), help="Suite: write results.")
@click.option("--save-crops", "crops", type=click.Path(file_okay=False, path_type=Path),
              help="Suite: write side-by-side crops, one PNG per condition, here.")
@click.option("--markdown", is_flag=True, help="Suite: also print the table as Markdown.")
@click.option("--device", default="auto", show_default=True)
def main(models: tuple[str, ...], folders: tuple[Path, ...], suite: str | None, scale: int, quick: bool,
         clips: tuple[str, ...], images: bool, json_path: Path | None, crops: Path | None, markdown: bool,
         device: str) -> None:
    with torch.no_grad():  # not set_grad_enabled(False): main also runs inside other processes (tests)
        _main(models, folders, suite, scale, quick, clips, images, json_path, crops, markdown, device)


def _main(models: tuple[str, ...], folders: tuple[Path, ...], suite: str | None, scale: int, quick: bool,
          clips: tuple[str, ...], images: bool, json_path: Path | None, crops: Path | None, markdown: bool,
          device: str) -> None:
    if suite == "real":
        if folders:
            raise click.UsageError("--bench and --suite are separate modes")
        _real(models, scale, quick, clips, images, json_path, crops, markdown, device)
        return
    if not folders or not models:
        raise click.UsageError("give --model and --bench FOLDER, or --suite real")
    for model in models:
        _bench(model, folders, device)


if __name__ == "__main__":
    main()

"""``upscale train`` / ``python -m train``: a TOML config plus command-line overrides."""

from __future__ import annotations

from pathlib import Path

import click

from .config import TrainConfig


@click.command("train")
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="TOML file with TrainConfig keys; flags override it.")
@click.option("--hr", "hr_dirs", multiple=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Folder of HR training images (repeatable).")
@click.option("--scale", type=click.Choice(["2", "4"]), default=None, help="Upscale factor.")
@click.option("--num-feat", type=int, default=None)
@click.option("--num-conv", type=int, default=None)
@click.option("--patch-size", type=int, default=None, help="HR crop side in pixels.")
@click.option("--batch-size", type=int, default=None)
@click.option("--steps", type=int, default=None)
@click.option("--lr", type=float, default=None)
@click.option("--seed", type=int, default=None)
@click.option("--val", "val_dir", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="Bench folder (HR images) for PSNR-Y validation.")
@click.option("--val-every", type=int, default=None)
@click.option("--checkpoint-every", type=int, default=None)
@click.option("--fine-tune", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Start from these weights.")
@click.option("--resume", is_flag=True, default=None, help="Continue from OUT/checkpoint.pt.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Run folder (checkpoints, metrics.csv, exported weights).")
def train_command(config_path: Path | None, **flags: object) -> None:
    """Train a generator (stage 1: L1 pixel loss) and export .safetensors the CLI loads."""
    from .pretrain import pretrain

    if flags.get("scale") is not None:
        flags["scale"] = int(flags["scale"])  # type: ignore[arg-type]
    flags["hr_dirs"] = list(flags["hr_dirs"]) or None  # type: ignore[arg-type]
    overrides = {k: v for k, v in flags.items() if v is not None}
    if config_path:
        cfg = TrainConfig.from_toml(config_path, **overrides)
    else:
        cfg = TrainConfig(**overrides)
    if not cfg.hr_dirs:
        raise click.UsageError("no training data: give --hr DIR or hr_dirs in --config")
    pretrain(cfg, log=click.echo)

"""``upscale train`` / ``python -m train`` (also under ``torchrun``): a TOML config plus command-line overrides.

Any config key can be set with ``--set KEY=VALUE`` (VALUE read as TOML: ``--set lr_milestones=[1000,2000]``);
the common ones also have flags. Flags win over ``--set``, which wins over the file.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import click

from .config import ARCHS, DISCRIMINATORS, GAN_LOSSES, STAGES, TrainConfig, parse_override

_DIR = click.Path(exists=True, file_okay=False, path_type=Path)
_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)


def _fail(message: str, code: int = 1) -> None:
    # One line, no traceback, with the same prefix and escaping as every other upscale command.
    from upscaler.errors import error_line

    click.echo(error_line(message), err=True)
    sys.exit(code)


@click.command("train")
@click.option("--config", "config_path", type=_FILE, help="TOML file of TrainConfig keys (see configs/).")
@click.option("--set", "settings", multiple=True, metavar="KEY=VALUE", help="Set any config key (repeatable).")
@click.option("--stage", type=click.Choice(STAGES), default=None,
              help="psnr: pixel loss only; gan: perceptual + adversarial (start it from --pretrained).")
@click.option("--arch", type=click.Choice(ARCHS), default=None)
@click.option("--scale", type=click.Choice(["2", "3", "4"]), default=None, help="Upscale factor.")
@click.option("--num-feat", type=int, default=None)
@click.option("--num-conv", type=int, default=None, help="srvgg body convs.")
@click.option("--num-block", type=int, default=None, help="rrdb / srresnet blocks.")
@click.option("--pretrained", type=_FILE, default=None, help="Initial generator weights (same arch).")
@click.option("--fine-tune", type=_FILE, default=None,
              help="Start from these weights; arch, scale and sizes are read from the file.")
@click.option("--hr", "hr_dirs", multiple=True, type=_DIR, help="Folder of HR training images (repeatable).")
@click.option("--lr-dir", type=_DIR, default=None, help="Paired LR folder (with --hr-dir).")
@click.option("--hr-dir", type=_DIR, default=None, help="Paired HR folder, same file names as --lr-dir.")
@click.option("--videos", type=click.Path(exists=True, path_type=Path), default=None,
              help="Your own footage (a file or folder): sampled frames, Real-ESRGAN + codec degradation.")
@click.option("--pairs", "pairs_dirs", multiple=True, type=_DIR,
              help="Pre-degraded patch store from python -m train.make_pairs (repeatable).")
@click.option("--degradation", type=click.Choice(["bicubic", "realesrgan"]), default=None)
@click.option("--video-codec-prob", type=float, default=None, help="Chance an LR patch is H.264 re-encoded.")
@click.option("--patch-size", type=int, default=None, help="HR crop side in pixels.")
@click.option("--batch-size", type=int, default=None, help="Per process.")
@click.option("--num-workers", type=int, default=None, help="DataLoader worker processes.")
@click.option("--steps", type=int, default=None)
@click.option("--lr", type=float, default=None)
@click.option("--pixel-weight", type=float, default=None)
@click.option("--perceptual-weight", type=float, default=None)
@click.option("--adversarial-weight", type=float, default=None)
@click.option("--tv-weight", type=float, default=None)
@click.option("--gan-loss", type=click.Choice(GAN_LOSSES), default=None)
@click.option("--discriminator", type=click.Choice(DISCRIMINATORS), default=None)
@click.option("--ema-decay", type=float, default=None, help="0 = export the raw generator.")
@click.option("--grad-clip", type=float, default=None, help="Max gradient norm; 0 = off.")
@click.option("--amp", type=click.Choice(["bf16", "fp16", "off"]), default=None,
              help="Autocast: on CUDA; on a CPU bf16 where AMX makes it fast.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default=None)
@click.option("--seed", type=int, default=None)
@click.option("--val", "val_dir", type=_DIR, default=None, help="Bench folder (HR images) for PSNR-Y/SSIM.")
@click.option("--val-every", type=int, default=None)
@click.option("--log-every", type=int, default=None)
@click.option("--checkpoint-every", type=int, default=None)
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Run folder: checkpoint.pt, metrics.csv, config.toml, val/, exported weights.")
@click.option("--resume", is_flag=True, default=None, help="Continue from OUT/checkpoint.pt.")
@click.option("-q", "--quiet", is_flag=True, help="No progress line or log messages.")
def train_command(config_path: Path | None, settings: tuple[str, ...], quiet: bool, **flags: Any) -> None:
    """Train a super-resolution generator (PSNR stage or GAN stage) and export .safetensors that
    `upscale --model` loads. Under torchrun it runs DistributedDataParallel."""
    from upscaler.errors import UpscalerError, interrupt_exit_code, is_out_of_memory, out_of_space

    try:
        cfg = _config(config_path, settings, flags)
        from .loop import train

        train(cfg, log=(lambda _: None) if quiet else click.echo, progress=not quiet)
    except (ValueError, FileNotFoundError, UpscalerError) as exc:  # config, data, weights and checkpoint problems
        if os.environ.get("UPSCALER_DEBUG"):
            raise
        _fail(str(exc))
    except KeyboardInterrupt as exc:  # SIGTERM under `upscale train` arrives as one too (upscaler.cli.run)
        _fail(str(exc) or "interrupted", interrupt_exit_code(exc))
    except (MemoryError, RuntimeError) as exc:
        if not is_out_of_memory(exc) or os.environ.get("UPSCALER_DEBUG"):
            raise
        _fail("out of memory (try a smaller --batch-size or --patch-size)")
    except OSError as exc:  # e.g. the disk filling up under a checkpoint or the exported weights
        if os.environ.get("UPSCALER_DEBUG"):
            raise
        where = f"{exc.filename}: " if exc.filename else ""
        full = " (out of disk space or over a file-size limit)" if out_of_space(exc) else ""
        _fail(f"{where}{exc.strerror or exc}{full}")


def _config(config_path: Path | None, settings: tuple[str, ...], flags: dict[str, Any]) -> TrainConfig:
    overrides = dict(parse_override(s) for s in settings)
    if flags.get("scale") is not None:
        flags["scale"] = int(flags["scale"])
    flags["hr_dirs"] = list(flags["hr_dirs"]) or None
    flags["pairs_dirs"] = list(flags["pairs_dirs"]) or None
    overrides |= {k: v for k, v in flags.items() if v is not None}
    if config_path is None and overrides.get("resume"):
        # ``--resume --out RUN`` alone continues RUN with the config it was started with.
        saved = Path(overrides.get("out_dir", TrainConfig.out_dir)) / "config.toml"
        config_path = saved if saved.is_file() else None
    if config_path is not None:
        return TrainConfig.from_toml(config_path, **overrides)
    return TrainConfig.from_dict({}, source="--set", **overrides)

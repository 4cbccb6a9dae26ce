"""Export the weights a run would ship from its latest checkpoint, while it is still running:

    python -m train.export ../runs/srvgg-x4-real-gan out.safetensors

Long CPU runs outlast a sitting; this turns the newest checkpoint's EMA generator (or the raw one when the run
keeps no EMA) into a ``.safetensors`` the CLI loads, so the best weights so far can be benchmarked and committed.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import click

from .builders import build_generator
from .checkpoint import CHECKPOINT_NAME, export_weights, load_checkpoint
from .config import TrainConfig


def export_checkpoint(run_dir: Path, dst: Path) -> int:
    """Write the checkpoint's shipped generator to ``dst``; return the step it was taken at."""
    state = load_checkpoint(run_dir / CHECKPOINT_NAME)
    config = state["config"]
    cfg = TrainConfig.from_dict(config, source=str(run_dir / CHECKPOINT_NAME))
    generator = build_generator(replace(cfg, fine_tune=None, pretrained=None))
    generator.load_state_dict(state["ema"]["module"] if state["ema"] is not None else state["generator"])
    step = int(state["step"])
    export_weights(generator.eval(), dst, config, stage=str(state["stage"]), steps=str(step))
    return step


@click.command()
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("dst", type=click.Path(dir_okay=False, path_type=Path))
def main(run_dir: Path, dst: Path) -> None:
    """Export RUN_DIR's latest checkpoint as DST (.safetensors)."""
    from upscaler.errors import UpscalerError

    from .cli import _fail

    if not (run_dir / CHECKPOINT_NAME).is_file():
        _fail(f"{run_dir}: no {CHECKPOINT_NAME}")
    try:
        step = export_checkpoint(run_dir, dst)
    except (UpscalerError, ValueError) as exc:  # a damaged or foreign checkpoint, or a config it cannot rebuild
        _fail(str(exc))
    except OSError as exc:
        _fail(f"{exc.filename or dst}: {exc.strerror or exc}")
    click.echo(f"wrote {dst} (step {step})")


if __name__ == "__main__":
    main()

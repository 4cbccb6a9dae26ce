"""The own-footage promise, measured: fine-tune a model on the first half of a shared clip, benchmark both on the
clip's second half (frames the fine-tuning never saw).

    python scripts/finetune_demo.py --model weights/srvgg-x4-real-gan.safetensors --steps 300 --out ../runs/ft-chaplin

It writes OUT/first_half.mp4 (frames 0..SPLIT-1, lossless H.264, what a user's own footage file would be), runs
``python -m train --config configs/finetune-x4-footage.toml --fine-tune MODEL --videos OUT/first_half.mp4``,
then ``python -m train.evaluate --suite real --no-images --clip CLIP:START:24`` on the original and the result.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import av
import click

REPO = Path(__file__).resolve().parents[1]


def cut_first_frames(src: Path, dst: Path, count: int) -> None:
    """Frames 0..count-1 of ``src``'s video, re-encoded losslessly (x264 qp 0), no audio."""
    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        vin = inp.streams.video[0]
        vout = out.add_stream("libx264", rate=vin.average_rate)
        vout.width, vout.height, vout.pix_fmt = vin.codec_context.width, vin.codec_context.height, "yuv420p"
        vout.options = {"qp": "0", "preset": "veryfast"}
        for i, frame in enumerate(inp.decode(vin)):
            if i >= count:
                break
            frame.pts = None
            out.mux(vout.encode(frame.reformat(format="yuv420p")))
        out.mux(vout.encode(None))


@click.command()
@click.option("--model", default="weights/srvgg-x4-real-gan.safetensors", show_default=True)
@click.option("--clip", default="../shared/clips/chaplin.mp4", show_default=True, type=click.Path(exists=True))
@click.option("--split", default=120, show_default=True, help="First frame of the held-out half.")
@click.option("--bench-start", default=160, show_default=True, help="First benchmark frame (24 are scored).")
@click.option("--steps", default=300, show_default=True)
@click.option("--out", default="../runs/finetune-chaplin", show_default=True, type=click.Path(path_type=Path))
def main(model: str, clip: str, split: int, bench_start: int, steps: int, out: Path) -> None:
    if bench_start < split:
        raise click.UsageError("--bench-start must be in the held-out half (>= --split)")
    out.mkdir(parents=True, exist_ok=True)
    footage = out / "first_half.mp4"
    if not footage.exists():
        cut_first_frames(Path(clip), footage, split)
    tuned = out / "srvgg-x4-gan.safetensors"
    if not tuned.exists():
        subprocess.run([sys.executable, "-m", "train", "--config", str(REPO / "configs/finetune-x4-footage.toml"),
                        "--fine-tune", model, "--videos", str(footage), "--steps", str(steps), "--out", str(out),
                        "--resume", "--quiet"], check=True, cwd=REPO)
    subprocess.run([sys.executable, "-m", "train.evaluate", "--suite", "real", "--no-images",
                    "--clip", f"{Path(clip).name}:{bench_start}:24", "--model", model, "--model", str(tuned),
                    "--json", str(out / "bench.json"), "--markdown"], check=True, cwd=REPO)


if __name__ == "__main__":
    main()

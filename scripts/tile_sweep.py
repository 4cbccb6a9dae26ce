"""Frames per second of the engine (tiling + model + stitching, no video I/O) per tile size and torch threads.

    python scripts/tile_sweep.py --sizes 320x180,640x360 --tiles 0,96,128,192,256,320,384 --threads 1,2

Prints a Markdown table; the CPU default tile (``CPU_TILE`` in upscaler/engine.py) comes from it. Settings are
measured in interleaved rounds and the median kept: a shared VM's speed drifts by tens of percent per minute.
"""

from __future__ import annotations

import argparse
import time

import cv2
import numpy as np
import torch

from upscaler import Upscaler
from upscaler.bench import SAMPLE_CLIP, read_frames


def measure(up: Upscaler, frames: np.ndarray, min_seconds: float) -> float:
    up.upscale_array(frames[:1])  # warm-up
    done, start = 0, time.perf_counter()
    while done < 2 or time.perf_counter() - start < min_seconds:
        up.upscale_array(frames[done % len(frames)])
        done += 1
    return done / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="320x180,640x360")
    parser.add_argument("--tiles", default="0,96,128,192,256,320,384")
    parser.add_argument("--threads", default="2")
    parser.add_argument("--overlap", type=int, default=32)
    parser.add_argument("--min-seconds", type=float, default=3.0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    source = read_frames(SAMPLE_CLIP, 4)
    print("| input | tile | torch threads | fps (median) | Mpx/s (input) | fps per round |\n|---|---|---|---|---|---|")
    for size in args.sizes.split(","):
        width, height = (int(v) for v in size.split("x"))
        frames = np.stack([cv2.resize(f, (width, height), interpolation=cv2.INTER_AREA) for f in source])
        for threads in (int(t) for t in args.threads.split(",")):
            torch.set_num_threads(threads)
            tiles = [t for t in (int(t) for t in args.tiles.split(",")) if not t or t < max(width, height) + 64]
            ups = {tile: Upscaler(device=args.device, tile=tile, tile_overlap=args.overlap) for tile in tiles}
            runs: dict[int, list[float]] = {tile: [] for tile in tiles}
            for _ in range(args.rounds):
                for tile in tiles:
                    runs[tile].append(measure(ups[tile], frames, args.min_seconds))
            for tile in tiles:
                fps = float(np.median(runs[tile]))
                mpx = fps * width * height / 1e6
                rounds = ", ".join(f"{r:.2f}" for r in runs[tile])
                print(f"| {size} | {tile or 'whole frame'} | {threads} | {fps:.3f} | {mpx:.3f} | {rounds} |",
                      flush=True)


if __name__ == "__main__":
    main()

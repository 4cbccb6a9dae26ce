"""What artefact gain and flicker filters that know nothing of damage have: the yardstick for the real-footage
benchmark's gain and flicker columns.

Lanczos-4 is a more faithful interpolator than the benchmark's bicubic (same sharpness, higher PSNR): what it gains
over bicubic is reproducing the LR's own detail at fuller amplitude, and the codec removes exactly that detail, so
its gain is above 1 with no damage amplified at all. Bicubic followed by an unsharp mask (Gaussian sigma 1.5 HR px,
several amounts) amplifies whatever the codec left exactly as it amplifies detail. A model that is sharper than
this line at the same gain tells damage from detail; one on or above it is only sharpening. Any ``--model`` joins
the table.

    python scripts/gain_vs_sharpening.py --model compact-x4 --model compact-x4-psnr

Runs on the suite's quick clips (the held-out windows of the benchmark clips, 8 frames each), about a minute for
the sharpeners on 2 cores; ``--images`` adds Set5 as panned stills.
"""

from __future__ import annotations

import argparse

import cv2
import numpy as np

from train.realbench.sources import CONDITIONS, iter_sources
from train.realbench.suite import Row, bicubic_row, run_suite

AMOUNTS = (0.5, 1.0, 2.0, 3.0)
SIGMA = 1.5


def usm_row(scale: int, amount: float, sigma: float = SIGMA) -> Row:
    bicubic = bicubic_row(scale)

    def upscale(lr: np.ndarray) -> np.ndarray:
        up = bicubic.upscale(lr).astype(np.float32)
        out = np.stack([u + amount * (u - cv2.GaussianBlur(u, (0, 0), sigma)) for u in up])
        return np.clip(out + 0.5, 0, 255).astype(np.uint8)

    return Row(f"bicubic + USM {amount:g}", upscale)


def lanczos_row(scale: int) -> Row:
    def upscale(lr: np.ndarray) -> np.ndarray:
        return np.stack([cv2.resize(f, (f.shape[1] * scale, f.shape[0] * scale), interpolation=cv2.INTER_LANCZOS4)
                         for f in lr])

    return Row("Lanczos-4", upscale)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", action="append", default=[], help="weights file or model name (repeatable)")
    parser.add_argument("--scale", type=int, default=4)
    parser.add_argument("--images", action="store_true", help="also Set5 as panned stills")
    args = parser.parse_args()
    extra = [lanczos_row(args.scale), *(usm_row(args.scale, a) for a in AMOUNTS)]
    result = run_suite(args.model, args.scale, iter_sources(args.scale, quick=True, images=args.images),
                       log=lambda _: None, quick=True, extra_rows=extra)
    table = result["metrics"]
    group = "all" if args.images else result["sources"][0]["group"]
    print(f"| condition | row ({group}) | PSNR-Y | sharpness | gain | flicker |")
    print("|---|---|---|---|---|---|")
    for cond in CONDITIONS:
        for row in (r["name"] for r in result["rows"]):
            m = table[row][cond.name][group]
            gain = "" if m["gain"] is None else f"{m['gain']:.2f}"
            flicker = "" if m["flicker"] is None else f"{m['flicker']:+.2f}"
            print(f"| {cond.name} | {row} | {m['psnr_y']:.2f} | {m['sharpness']:.2f} | {gain} | {flicker} |")


if __name__ == "__main__":
    main()

"""Write the README's comparison crop: bicubic | each model | HR, on one bench image, labelled.

    python scripts/compare_crop.py ../shared/images/bench/Set14/baboon.png --box 40,40,96 \
        --model weights/srvgg-x4-psnr.safetensors --model weights/srvgg-x4-gan.safetensors --out docs/compare_x4.jpg

The LR input is the bench's (antialiased bicubic ÷scale, 8-bit), so the crop shows what the table measures.
``--box`` is top,left,side in LR pixels; ``--zoom`` enlarges every panel by nearest-neighbour for viewing.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
import torch

from train.data.images import load_rgb
from train.validate import make_lr
from upscaler.models.loading import load_model
from upscaler.resize import bicubic_resize


def _to_uint8(x: torch.Tensor) -> np.ndarray:
    return (x[0].clamp(0, 1).permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)


def _label(panel: np.ndarray, text: str) -> np.ndarray:
    bar = np.full((28, panel.shape[1], 3), 255, np.uint8)
    cv2.putText(bar, text, (6, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 0, 0), 1, cv2.LINE_AA)
    return np.concatenate([bar, panel], axis=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("image", type=Path)
    parser.add_argument("--model", type=Path, action="append", required=True)
    parser.add_argument("--name", action="append", help="panel label per --model (default: file stem)")
    parser.add_argument("--box", default="0,0,64", help="top,left,side of the crop in LR pixels")
    parser.add_argument("--zoom", type=int, default=1)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    models = [load_model(path) for path in args.model]
    scale = models[0].scale
    if any(m.scale != scale for m in models):
        parser.error("all models must have the same scale")
    names = args.name or [path.stem for path in args.model]
    top, left, side = (int(v) for v in args.box.split(","))

    hr = torch.from_numpy(load_rgb(args.image)).permute(2, 0, 1)[None].float() / 255
    h, w = hr.shape[-2:]
    hr = hr[..., : h - h % scale, : w - w % scale]
    lr = make_lr(hr, scale)
    window = (slice(top * scale, (top + side) * scale), slice(left * scale, (left + side) * scale))

    panels = [("bicubic", bicubic_resize(lr, hr.shape[-2:]))]
    with torch.no_grad():
        panels += [(name, m.module.eval()(lr)) for name, m in zip(names, models, strict=True)]
    panels.append(("HR", hr))
    row = []
    for name, image in panels:
        crop = _to_uint8(image[..., window[0], window[1]])
        crop = cv2.resize(crop, None, fx=args.zoom, fy=args.zoom, interpolation=cv2.INTER_NEAREST)
        row.append(_label(crop, name))
        row.append(np.full((row[-1].shape[0], 4, 3), 255, np.uint8))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(args.out), cv2.cvtColor(np.concatenate(row[:-1], axis=1), cv2.COLOR_RGB2BGR)):
        raise SystemExit(f"{args.out}: cannot write")
    print(args.out)


if __name__ == "__main__":
    main()

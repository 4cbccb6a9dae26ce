"""Cut the README's comparison image out of a ``train.evaluate --suite real --save-crops`` sheet.

    python scripts/readme_crop.py ../runs/crops/h264-crf32.png docs/compare_crf32.jpg --rows 0,1,2 --cols 0,1,2,3,4,6

A sheet is a 22 px label strip, then one 256 px row per source (2 px apart), one 256 px panel per column
(LR nearest, bicubic, each --model in order, HR). The label strip is kept for the chosen columns.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click
import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from train.realbench.crops import HEADER  # noqa: E402

PANEL, GAP = 256, 2


def _ints(text: str) -> list[int]:
    return [int(t) for t in text.split(",") if t]


@click.command()
@click.argument("sheet", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("dst", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--rows", default="0,1,2", show_default=True)
@click.option("--cols", default="0,1,2,3,4,6", show_default=True)
@click.option("--quality", default=88, show_default=True)
def main(sheet: Path, dst: Path, rows: str, cols: str, quality: int) -> None:
    img = cv2.imread(str(sheet))
    columns = [np.s_[:, c * PANEL : (c + 1) * PANEL] for c in _ints(cols)]
    header = np.concatenate([img[:HEADER][c] for c in columns], axis=1)
    lines = []
    for r in _ints(rows):
        top = HEADER + r * (PANEL + GAP)
        line = img[top : top + PANEL]
        lines.append(np.concatenate([line[c] for c in columns], axis=1))
        lines.append(np.full((GAP, header.shape[1], 3), 255, np.uint8))
    dst.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(dst), np.concatenate([header, *lines[:-1]], axis=0), [cv2.IMWRITE_JPEG_QUALITY, quality])
    click.echo(f"wrote {dst}")


if __name__ == "__main__":
    main()

"""``--save-crops``: one PNG per condition, a row per source, the same crop of one frame side by side
(LR nearest | bicubic | each model | HR), so a person can see what the numbers mean."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from .sources import Source

LR_SIDE = 64  # LR pixels a side of each crop
HEADER = 22  # pixels of label strip above each condition's columns


class CropBook:
    def __init__(self, scale: int, max_images: int = 2) -> None:
        self.scale = scale
        self.max_images = max_images
        self.images = 0
        self.rows: dict[str, list[tuple[str, dict[str, np.ndarray]]]] = {}  # condition → [(source, panels)]

    def wants(self, src: Source) -> bool:
        return src.group == "clips" or self.images < self.max_images

    def add(self, source: str, group: str, sink: dict[str, dict[str, np.ndarray]]) -> None:
        """``sink``: condition → {"lr": LR frame, "hr": HR frame, row name: output frame}."""
        if group == "images":
            self.images += 1
        hr = next(iter(sink.values()))["hr"]
        top, left, side = self._window(hr)
        s = self.scale
        for cond, frames in sink.items():
            lr = frames["lr"][top // s : (top + side) // s, left // s : (left + side) // s]
            panels = {"LR (nearest)": cv2.resize(lr, (side, side), interpolation=cv2.INTER_NEAREST)}
            panels |= {k: v[top : top + side, left : left + side] for k, v in frames.items() if k not in ("lr", "hr")}
            panels["HR"] = hr[top : top + side, left : left + side]
            self.rows.setdefault(cond, []).append((source, panels))

    def _window(self, hr: np.ndarray) -> tuple[int, int, int]:
        """The most detailed square (mean |Laplacian| of the HR), on a grid aligned to the LR pixels."""
        s = self.scale
        h, w = hr.shape[:2]
        side = min(LR_SIDE * s, h, w) // s * s
        detail = np.abs(cv2.Laplacian(cv2.cvtColor(hr, cv2.COLOR_RGB2GRAY).astype(np.float32), cv2.CV_32F))
        integral = cv2.integral(detail)
        step = max(s, side // 4 // s * s)
        best = (-1.0, 0, 0)
        for top in range(0, h - side + 1, step):
            for left in range(0, w - side + 1, step):
                total = (integral[top + side, left + side] - integral[top, left + side]
                         - integral[top + side, left] + integral[top, left])
                best = max(best, (float(total), top, left))
        return best[1], best[2], side

    def write(self, folder: Path, rows: list[str]) -> list[Path]:
        folder.mkdir(parents=True, exist_ok=True)
        written = []
        for cond, entries in self.rows.items():
            names = ["LR (nearest)", *rows, "HR"]
            lines = [_label(np.concatenate([panels[n] for n in names], axis=1), source) for source, panels in entries]
            width = max(x.shape[1] for x in lines)
            lines = [np.pad(x, ((0, 2), (0, width - x.shape[1]), (0, 0))) for x in lines]
            side = entries[0][1]["HR"].shape[1]
            header = np.full((HEADER, width, 3), 255, np.uint8)
            for i, name in enumerate(names):
                label = Path(name).stem if name not in ("LR (nearest)", "HR", "bicubic") else name
                cv2.putText(header, label[: side // 7], (i * side + 4, HEADER - 6), cv2.FONT_HERSHEY_SIMPLEX, 0.45,
                            (0, 0, 0), 1, cv2.LINE_AA)
            path = folder / f"{cond}.png"
            image = np.concatenate([header, *lines], axis=0)
            if not cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR)):
                raise OSError(f"{path}: cannot write")
            written.append(path)
        return written


def _label(line: np.ndarray, text: str) -> np.ndarray:
    """The source's name in the bottom-left corner, white on a dark outline so it reads on any picture."""
    line = line.copy()
    org = (4, line.shape[0] - 6)
    cv2.putText(line, text, org, cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(line, text, org, cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
    return line

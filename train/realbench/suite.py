"""Run the real-footage benchmark: every row (bicubic first, then each model) on every source and condition.

Sources are processed one at a time (HR, its LR conditions and its HR optical flow made once, shared by all
rows), so memory stays at one source's frames whatever the suite's length.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from upscaler import Upscaler
from upscaler.resize import bicubic_resize

from .crops import CropBook
from .flicker import flicker, pair_flow, residuals
from .metrics import damage_energy, frame_metrics, gain_from_energy, grid, laplacian
from .niqe import niqe
from .sources import CONDITIONS, Condition, Source, degrade, make_lr, source_seed

METRICS = ("psnr_y", "ssim_y", "niqe", "sharpness", "grid", "gain", "flicker")
GROUPS = ("clips", "images")


@dataclass
class Row:
    """One line of the table: a name and a function from LR frames (N,h,w,3) uint8 to HR frames."""

    name: str
    upscale: Callable[[np.ndarray], np.ndarray]
    seconds: float = 0.0  # spent upscaling
    frames: int = 0


def bicubic_row(scale: int) -> Row:
    def upscale(lr: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(lr).permute(0, 3, 1, 2).float() / 255
        y = bicubic_resize(x, (lr.shape[1] * scale, lr.shape[2] * scale)).clamp(0, 1)
        return (y * 255).round().to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()

    return Row("bicubic", upscale)


def model_row(model: str, scale: int, device: str = "auto") -> Row:
    """Any weights file or model name, loaded the way every benchmark here loads one: whole frames, fp32."""
    up = Upscaler(model, device=device, tile=0, precision="fp32")
    if up.scale != scale:
        raise ValueError(f"{model}: is a x{up.scale} model, the suite runs at x{scale} (pass --scale {up.scale})")
    return Row(model, up.upscale_array)


def _mean(values: Iterable[float | None]) -> float | None:
    vals = [v for v in values if v is not None and np.isfinite(v)]
    return float(np.mean(vals)) if vals else None


def _niqe_or_none(frame: np.ndarray, border: int) -> float | None:
    try:
        return niqe(frame, border)
    except ValueError:  # smaller than two 96x96 blocks
        return None


def evaluate_source(src: Source, rows: list[Row], scale: int, conditions: tuple[Condition, ...] = CONDITIONS,
                    crop_sink: dict | None = None) -> dict[str, dict[str, dict[str, float | None]]]:
    """Metrics of each row under each condition on one source: ``{row: {condition: {metric: value}}}``."""
    if rows[0].name != "bicubic" or conditions[0].kind != "clean":
        raise ValueError("bicubic must be the first row and clean the first condition (gain is relative to them)")
    lr_clean = make_lr(src.hr, scale)
    lrs = {c.name: degrade(lr_clean, c, source_seed(src.name, c.name)) for c in conditions}
    flows = {p: pair_flow(src.hr[p[0]], src.hr[p[1]]) for p in src.pairs}
    hr_res = residuals(src.hr, flows)
    hr_detail = float(np.mean([laplacian(src.hr[t], scale) for t in src.scored]))
    frames = list(src.run_frames)
    crop_frame = src.scored[len(src.scored) // 2]
    bicubic_energy: dict[str, float] = {}
    result: dict[str, dict[str, dict[str, float | None]]] = {}
    for row in rows:
        result[row.name] = {}
        clean: dict[int, np.ndarray] = {}
        for cond in conditions:
            start = time.perf_counter()
            out = dict(zip(frames, row.upscale(np.ascontiguousarray(lrs[cond.name][frames])), strict=True))
            row.seconds += time.perf_counter() - start
            row.frames += len(frames)
            per_frame = [frame_metrics(out[t], src.hr[t], scale) for t in src.scored]
            rec: dict[str, float | None] = {k: _mean(m[k] for m in per_frame) for k in ("psnr_y", "ssim_y")}
            # NIQE and the grid score (~0.4 s and ~0.2 s a 720p frame) on a few frames of each source.
            rec["niqe"] = _mean(_niqe_or_none(out[t], scale) for t in src.niqe_frames)
            rec["grid"] = _mean(grid(out[t], scale) for t in src.niqe_frames)
            rec["sharpness"] = _mean(m["laplacian"] for m in per_frame) / hr_detail
            rec["flicker"] = flicker(out, flows, hr_res) if flows else None
            if cond.kind == "clean":
                clean, rec["gain"] = out, None
            else:
                energy = damage_energy([out[t] for t in src.scored], [clean[t] for t in src.scored], scale)
                if row.name == "bicubic":
                    bicubic_energy[cond.name] = energy
                rec["gain"] = gain_from_energy(energy, bicubic_energy[cond.name])
            # NaN (no trusted flow pixels, no bicubic damage) is not JSON: it becomes a blank cell.
            result[row.name][cond.name] = {k: v if v is None or np.isfinite(v) else None for k, v in rec.items()}
            if crop_sink is not None:
                panel = crop_sink.setdefault(cond.name, {"lr": lrs[cond.name][crop_frame], "hr": src.hr[crop_frame]})
                panel[row.name] = out[crop_frame]
    return result


def aggregate(per_source: dict[str, dict[str, dict[str, dict]]], groups: dict[str, str]
              ) -> dict[str, dict[str, dict[str, dict[str, float | None]]]]:
    """Means per group (over its sources) and "all" (the mean of the group means, so 19 stills do not
    outweigh 4 clips): ``{row: {condition: {"all"|"clips"|"images": {metric: value}}}}``."""
    out: dict = {}
    for row, by_cond in per_source.items():
        out[row] = {}
        for cond, by_src in by_cond.items():
            cell: dict[str, dict[str, float | None]] = {}
            for group in GROUPS:
                names = [s for s in by_src if groups[s] == group]
                if names:
                    cell[group] = {m: _mean(by_src[s][m] for s in names) for m in METRICS}
            cell["all"] = {m: _mean(cell[g][m] for g in GROUPS if g in cell) for m in METRICS}
            out[row][cond] = cell
    return out


def run_suite(models: list[str], scale: int, sources: Iterable[Source], *, device: str = "auto",
              conditions: tuple[Condition, ...] = CONDITIONS, crops_dir: Path | None = None,
              log: Callable[[str], None] = print, quick: bool = False, extra_rows: Sequence[Row] = ()) -> dict:
    """The whole benchmark as one JSON-able dict (see ``report.py`` for the tables). ``extra_rows`` (e.g. other
    filters) are scored between bicubic and the models."""
    start = time.perf_counter()
    rows = [bicubic_row(scale), *extra_rows] + [model_row(m, scale, device) for m in models]
    per_source: dict = {row.name: {c.name: {} for c in conditions} for row in rows}
    listed = []
    book = CropBook(scale) if crops_dir is not None else None
    for src in sources:
        t0 = time.perf_counter()
        sink: dict | None = {} if book is not None and book.wants(src) else None
        with torch.no_grad():  # scoped: the CLI also runs inside other processes (tests)
            result = evaluate_source(src, rows, scale, conditions, sink)
        for row, by_cond in result.items():
            for cond, rec in by_cond.items():
                per_source[row][cond][src.name] = rec
        if book is not None and sink:
            book.add(src.name, src.group, sink)
        listed.append({"name": src.name, "group": src.group, "frames": int(len(src.hr)), "scored": len(src.scored),
                       "hr_size": [int(src.hr.shape[2]), int(src.hr.shape[1])]})
        log(f"{src.name}: {len(src.hr)} frames {src.hr.shape[2]}x{src.hr.shape[1]}, "
            f"{time.perf_counter() - t0:.1f} s")
    if not listed:
        raise ValueError("the suite has no sources (is shared/ there? set UPSCALER_SHARED)")
    if book is not None and crops_dir is not None:
        for path in book.write(crops_dir, [r.name for r in rows]):
            log(f"wrote {path}")
    groups = {s["name"]: s["group"] for s in listed}
    return {
        "suite": "real", "quick": quick, "scale": scale, "device": device,
        "conditions": [c.name for c in conditions],
        "rows": [{"name": r.name, "model_seconds": round(r.seconds, 2), "frames": r.frames} for r in rows],
        "sources": listed,
        "metrics": aggregate(per_source, groups),
        "per_source": per_source,
        "seconds": round(time.perf_counter() - start, 1),
    }

"""Temporal flicker: how much more an upscaled clip changes from frame to frame than the ground truth does.

For each pair (t-1, t), dense optical flow from the HR frames (OpenCV DIS on HR luma) warps frame t-1 onto
frame t; the RMS of what is left (Y, 8-bit code values) is the change that motion does not explain. The same
residual of the HR frames is subtracted, so warping error and real appearance change cancel: 0 means the
output is as stable as the truth, > 0 that it shimmers. Pixels whose flow fails the forward-backward check,
or that land outside the frame, are left out.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

BORDER = 8  # HR pixels at the frame edge, where flow is least reliable


def luma(frames: np.ndarray) -> np.ndarray:
    """BT.601 luma of uint8 RGB (...,H,W,3), in 8-bit code values (16-235), float32."""
    x = frames.astype(np.float32)
    return 16.0 + (65.481 * x[..., 0] + 128.553 * x[..., 1] + 24.966 * x[..., 2]) / 255.0


@dataclass(frozen=True)
class PairFlow:
    """Where each pixel of frame t was in frame t-1 (absolute sampling maps), and which pixels to trust."""

    map_x: np.ndarray
    map_y: np.ndarray
    valid: np.ndarray  # bool (H,W)


def _flow(dis: cv2.DISOpticalFlow, frm: np.ndarray, to: np.ndarray) -> np.ndarray:
    # frm(x) ~ to(x + flow(x))
    return dis.calc(frm, to, None)


def pair_flow(prev: np.ndarray, cur: np.ndarray) -> PairFlow:
    """Flow between two HR RGB frames, with a forward-backward consistency mask (Sundaram et al. 2010)."""
    y_prev = np.clip(luma(prev) + 0.5, 0, 255).astype(np.uint8)
    y_cur = np.clip(luma(cur) + 0.5, 0, 255).astype(np.uint8)
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    back = _flow(dis, y_cur, y_prev)  # cur → prev
    fwd = _flow(dis, y_prev, y_cur)  # prev → cur
    h, w = y_cur.shape
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    map_x, map_y = gx + back[..., 0], gy + back[..., 1]
    fwd_at = cv2.remap(fwd, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    err = np.sum((back + fwd_at) ** 2, axis=-1)
    consistent = err <= 0.01 * (np.sum(back**2, axis=-1) + np.sum(fwd_at**2, axis=-1)) + 0.5
    inside = (map_x >= BORDER) & (map_x <= w - 1 - BORDER) & (map_y >= BORDER) & (map_y <= h - 1 - BORDER)
    valid = consistent & inside
    valid[:BORDER] = valid[-BORDER:] = False
    valid[:, :BORDER] = valid[:, -BORDER:] = False
    return PairFlow(map_x, map_y, valid)


def warp_residual(prev: np.ndarray, cur: np.ndarray, flow: PairFlow) -> float:
    """RMS luma (code values) of ``cur`` minus ``prev`` warped onto it, over the trusted pixels."""
    if not flow.valid.any():
        return float("nan")
    warped = cv2.remap(luma(prev), flow.map_x, flow.map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    diff = (luma(cur) - warped)[flow.valid]
    return float(np.sqrt(np.mean(diff.astype(np.float64) ** 2)))


def residuals(frames: dict[int, np.ndarray] | np.ndarray, flows: dict[tuple[int, int], PairFlow]
              ) -> dict[tuple[int, int], float]:
    """``warp_residual`` of each pair; ``frames`` maps (or indexes) frame number → uint8 RGB (HR size)."""
    return {(a, b): warp_residual(frames[a], frames[b], f) for (a, b), f in flows.items()}


def flicker(out: dict[int, np.ndarray] | np.ndarray, flows: dict[tuple[int, int], PairFlow],
            hr_residuals: dict[tuple[int, int], float]) -> float:
    """Mean over the pairs of (output's warped residual − the HR's): extra frame-to-frame change, code values.

    ``hr_residuals`` is ``residuals(hr, flows)``, computed once per source."""
    out_res = residuals(out, flows)
    values = [out_res[p] - hr_residuals[p] for p in flows if np.isfinite(out_res[p])]
    return float(np.mean(values)) if values else float("nan")

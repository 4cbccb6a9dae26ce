"""What the model thread does with a decoded batch: RGB frames through a frame function, or planar Y'CbCr
frames through a model that converts colour on its own device. Either way a step is queued (``submit``) and
fetched later, so the pipeline can keep one batch of look-ahead."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import numpy as np

from ..errors import MediaError
from ..image.io import to_gray
from .decode import Batch
from .encode import encodable_size
from .planes import layout_for
from .yuv_layout import YuvLayout

FrameFn = Callable[[np.ndarray], np.ndarray]
# ``FrameFn``, queued: returns a function that waits for the frames and returns them.
FrameSubmit = Callable[[np.ndarray], Callable[[], np.ndarray]]


class PlanarModel(Protocol):
    """A model that takes and returns planar Y'CbCr frames and converts colour itself (on its device).

    ``submit_planes`` queues a batch and returns a function that waits for and returns its output frames,
    so the pipeline can queue the next batch before it waits (on a GPU: the device never idles in between).
    """

    def output_size(self, width: int, height: int) -> tuple[int, int]: ...

    def submit_planes(self, frames: np.ndarray, src: YuvLayout, dst: YuvLayout) -> Callable[[], np.ndarray]: ...


# What the model thread hands the encoder: the frames (None for a batch of side items only) and, for planar
# frames, their layout; and a step's queued form of it.
Upscaled = tuple[np.ndarray | None, YuvLayout | None]
Pending = Callable[[], Upscaled]


def nothing() -> Upscaled:
    return None, None


def planar_handles(pix_fmt: str) -> bool:
    """Whether frames in ``pix_fmt`` can go to a PlanarModel as they are (planar or semi-planar Y'CbCr)."""
    return layout_for(pix_fmt, 2, 2, 1, False) is not None


class RgbStep:
    """RGB frames through ``frame_fn`` (or its queued form, ``submit``); the encoder converts them with
    swscale. A batch's alpha goes through ``frame_fn`` too, as the image path upscales it
    (``upscale_image_array``): as a gray image, skipped for a fully opaque frame; the result is RGBA."""

    cropped = False  # the Writer crops RGB frames itself

    def __init__(self, frame_fn: FrameFn, submit: FrameSubmit | None = None) -> None:
        def at_once(frames: np.ndarray) -> Callable[[], np.ndarray]:
            out = frame_fn(frames)
            return lambda: out

        self.frame_submit = submit or at_once
        self.shape: tuple[int, ...] | None = None

    def submit(self, batch: Batch) -> Pending:
        assert batch.frames is not None
        fetch = self.frame_submit(batch.frames)
        alpha, fetch_alpha = batch.alpha, None
        if alpha is not None:
            full = np.iinfo(alpha.dtype).max
            translucent = np.flatnonzero((alpha != full).reshape(len(alpha), -1).any(axis=1))
            if len(translucent):
                gray = np.repeat(alpha[translucent, ..., None], 3, axis=3)  # what cv2's GRAY2RGB gives
                fetch_alpha = self.frame_submit(gray)

        def result() -> Upscaled:
            out = fetch()
            self.shape = _check_output(out, batch, self.shape)
            if alpha is None:
                return out, None
            upscaled = np.full(out.shape[:3], np.iinfo(out.dtype).max, out.dtype)
            if fetch_alpha is not None:
                grays = fetch_alpha()
                if grays.shape != (len(translucent), *out.shape[1:]) or grays.dtype != out.dtype:
                    raise ValueError(f"frame_fn gave alpha {grays.shape} {grays.dtype} for colour "
                                     f"{out.shape} {out.dtype}")
                for i, image in zip(translucent, grays, strict=True):
                    upscaled[i] = to_gray(image)
            return np.concatenate([out, upscaled[..., None]], axis=3), None

        return result


class PlanarStep:
    """Planar frames through the model's own conversion, into the encoder's pixel format; the output keeps
    the input's matrix and range (as the RGB path does) and is cropped to the encoder's chroma grid."""

    def __init__(self, model: PlanarModel, pix_fmt: str) -> None:
        self.model = model
        self.pix_fmt = pix_fmt
        self.dst: YuvLayout | None = None
        self.cropped = False

    def submit(self, batch: Batch) -> Pending:
        src = batch.layout
        assert batch.frames is not None and src is not None
        if self.dst is None:
            width, height = self.model.output_size(src.width, src.height)
            enc_w, enc_h = encodable_size(width, height, self.pix_fmt)
            if enc_w == 0 or enc_h == 0:
                raise MediaError(f"frames of {width}x{height} are too small for {self.pix_fmt}")
            dst = layout_for(self.pix_fmt, enc_w, enc_h, src.matrix, src.full_range)
            assert dst is not None
            self.dst, self.cropped = dst, (enc_w, enc_h) != (width, height)
        dst, count = self.dst, len(batch.pts)
        fetch = self.model.submit_planes(batch.frames, src, dst)

        def result() -> Upscaled:
            out = fetch()
            if out.shape != (count, dst.length) or out.dtype != dst.dtype:
                raise ValueError(f"submit_planes gave {out.shape} {out.dtype} for {count} frames of "
                                 f"{dst.length} {dst.dtype}")
            return out, dst

        return result


Step = RgbStep | PlanarStep


def _check_output(out: object, batch: Batch, shape: tuple[int, ...] | None) -> tuple[int, ...]:
    """frame_fn must return one RGB image per input frame, all the same size."""
    assert batch.frames is not None
    if not isinstance(out, np.ndarray) or out.ndim != 4 or out.shape[-1] != 3:
        got = getattr(out, "shape", type(out).__name__)
        raise ValueError(f"frame_fn must return an (N, H, W, 3) array, got {got}")
    if out.shape[0] != batch.frames.shape[0]:
        raise ValueError(f"frame_fn returned {out.shape[0]} frames for a batch of {batch.frames.shape[0]}")
    if out.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"frame_fn must return uint8 or uint16 frames, got {out.dtype}")
    if shape is not None and out.shape[1:] != shape:
        raise ValueError(f"frame_fn changed the output size from {shape[:2]} to {out.shape[1:3]}")
    return out.shape[1:]

"""In-process video upscaling with PyAV: decode -> RGB batches -> model -> encode; other streams remuxed.

The pipeline loads on first use: the engine imports this package's colour maths (``yuv``, ``yuv_layout``)
without pulling in PyAV's containers and the pipeline.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .options import EncodeOptions
    from .pipeline import VideoResult, VideoWarning, upscale_video
    from .probe import StreamInfo, VideoInfo, probe_video
    from .steps import FrameFn, PlanarModel

_LAZY = {"EncodeOptions": "options", "VideoResult": "pipeline", "VideoWarning": "pipeline",
         "upscale_video": "pipeline", "StreamInfo": "probe", "VideoInfo": "probe", "probe_video": "probe",
         "FrameFn": "steps", "PlanarModel": "steps"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'upscaler.video' has no attribute {name!r}")


__all__ = ["EncodeOptions", "FrameFn", "PlanarModel", "StreamInfo", "VideoInfo", "VideoResult", "VideoWarning",
           "probe_video", "upscale_video"]

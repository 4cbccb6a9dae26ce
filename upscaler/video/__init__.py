"""In-process video upscaling with PyAV: decode -> RGB batches -> model -> encode; other streams remuxed."""

from .options import EncodeOptions
from .pipeline import VideoResult, VideoWarning, upscale_video
from .probe import StreamInfo, VideoInfo, probe_video
from .steps import FrameFn, PlanarModel

__all__ = [
    "EncodeOptions",
    "FrameFn",
    "PlanarModel",
    "StreamInfo",
    "VideoInfo",
    "VideoResult",
    "VideoWarning",
    "probe_video",
    "upscale_video",
]

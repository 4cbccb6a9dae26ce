"""upscaler: sharp 2x/4x video and image upscaling with GAN-trained super-resolution networks.

>>> from upscaler import Upscaler
>>> Upscaler().upscale_video("in.mp4", "in_x4.mp4")
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from .errors import MediaError, ModelLoadError, UpscalerError

if TYPE_CHECKING:
    from .engine import Upscaler
    from .models.loading import LoadedModel, load_model, save_model
    from .video import EncodeOptions

# torch and PyAV load on first use, not on `import upscaler`: the CLI starts fast, and a Ctrl-C during
# that load happens inside the CLI's error handling instead of printing a traceback.
_LAZY = {"Upscaler": "engine", "LoadedModel": "models.loading", "load_model": "models.loading",
         "save_model": "models.loading", "EncodeOptions": "video"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'upscaler' has no attribute {name!r}")


__all__ = ["EncodeOptions", "LoadedModel", "MediaError", "ModelLoadError", "Upscaler", "UpscalerError",
           "load_model", "save_model"]

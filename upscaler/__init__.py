"""upscaler: sharp 2x/4x video and image upscaling with GAN-trained super-resolution networks.

>>> from upscaler import Upscaler
>>> Upscaler().upscale_video("in.mp4", "in_x4.mp4")
"""

from .engine import Upscaler
from .errors import MediaError, ModelLoadError, UpscalerError
from .model_loading import LoadedModel, load_model, save_model
from .video import EncodeOptions

__all__ = ["EncodeOptions", "LoadedModel", "MediaError", "ModelLoadError", "Upscaler", "UpscalerError",
           "load_model", "save_model"]

"""Losses of the training kit: pixel, perceptual (VGG19), total variation, pixel-shuffle grid, adversarial,
clean-input consistency."""

from .adversarial import (
    GAN_KINDS,
    GANLoss,
    HingeGANLoss,
    LSGANLoss,
    RaGANLoss,
    SoftplusGANLoss,
    VanillaGANLoss,
    WGANLoss,
    gan_loss,
    gradient_penalty,
)
from .consistency import CleanConsistencyLoss, clean_lr
from .grid import grid_loss, local_periodic
from .perceptual import (
    ESRGAN_CONV54,
    REAL_ESRGAN_LAYERS,
    SRGAN_VGG22,
    SRGAN_VGG54,
    VGG19_LAYERS,
    PerceptualLoss,
    PerceptualResult,
    default_vgg19_path,
    gram_matrix,
    load_vgg19_features,
)
from .pixel import CharbonnierLoss, pixel_loss
from .tv import TVLoss, tv_beta, tv_l1, tv_squared

__all__ = [
    "ESRGAN_CONV54",
    "GAN_KINDS",
    "REAL_ESRGAN_LAYERS",
    "SRGAN_VGG22",
    "SRGAN_VGG54",
    "VGG19_LAYERS",
    "CharbonnierLoss",
    "CleanConsistencyLoss",
    "GANLoss",
    "HingeGANLoss",
    "LSGANLoss",
    "PerceptualLoss",
    "PerceptualResult",
    "RaGANLoss",
    "SoftplusGANLoss",
    "TVLoss",
    "VanillaGANLoss",
    "WGANLoss",
    "clean_lr",
    "default_vgg19_path",
    "gan_loss",
    "gradient_penalty",
    "gram_matrix",
    "grid_loss",
    "load_vgg19_features",
    "local_periodic",
    "pixel_loss",
    "tv_beta",
    "tv_l1",
    "tv_squared",
]

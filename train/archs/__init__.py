"""Training-only networks: the discriminators of the GAN stage (generators live in ``upscaler.archs``)."""

from .discriminator_patchgan import PatchGANDiscriminator
from .discriminator_unet import UNetDiscriminatorSN
from .discriminator_vgg import VGGStyleDiscriminator

__all__ = ["PatchGANDiscriminator", "UNetDiscriminatorSN", "VGGStyleDiscriminator"]

"""upscaler: sharp 2x/4x video and image upscaling with GAN-trained super-resolution networks."""

"""Models as users name them: loading any supported file (loading), the shipped zoo (zoo), and network
interpolation of two weight sets (blend). The architectures themselves live in ``upscaler.archs``."""

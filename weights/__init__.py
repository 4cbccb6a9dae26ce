"""Shipped model weights (installed as the package ``upscaler.weights``)."""

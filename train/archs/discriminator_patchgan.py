"""PatchGAN discriminator (pix2pix): a fully convolutional net whose output map holds one logit per patch."""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn
from torch.nn.utils import spectral_norm as _spectral_norm


class PatchGANDiscriminator(nn.Module):
    """conv4×4/2 + LReLU, then ``n_layers − 1`` conv4×4/2 + norm + LReLU (channels doubling, capped at
    num_feat·8), one conv4×4/1 + norm + LReLU, and a conv4×4/1 to a (N, 1, h, w) map of raw logits.

    With n_layers=3 each logit sees a 70×70 patch. Any input size of at least 2^n_layers·4 or so works.
    ``norm``: BatchNorm (pix2pix), InstanceNorm, or none; ``spectral_norm`` wraps every conv (usually with
    ``norm="none"``).
    """

    def __init__(
        self,
        num_in_ch: int = 3,
        num_feat: int = 64,
        n_layers: int = 3,
        norm: Literal["batch", "instance", "none"] = "batch",
        spectral_norm: bool = False,
    ) -> None:
        super().__init__()
        if n_layers < 1:
            raise ValueError(f"n_layers must be at least 1 (got {n_layers})")
        if norm not in ("batch", "instance", "none"):
            raise ValueError(f"unknown norm {norm!r} (batch, instance, none)")

        def conv(cin: int, cout: int, stride: int, bias: bool) -> nn.Module:
            layer = nn.Conv2d(cin, cout, 4, stride, 1, bias=bias)
            return _spectral_norm(layer) if spectral_norm else layer

        def normed(ch: int) -> list[nn.Module]:
            if norm == "batch":
                return [nn.BatchNorm2d(ch)]
            if norm == "instance":
                return [nn.InstanceNorm2d(ch)]
            return []

        bias = norm != "batch"  # BatchNorm's shift makes a conv bias redundant
        layers: list[nn.Module] = [conv(num_in_ch, num_feat, 2, True), nn.LeakyReLU(0.2)]
        ch = num_feat
        for i in range(1, n_layers + 1):
            out = num_feat * min(2**i, 8)
            stride = 2 if i < n_layers else 1  # the last hidden conv keeps the resolution
            layers += [conv(ch, out, stride, bias), *normed(out), nn.LeakyReLU(0.2)]
            ch = out
        layers.append(conv(ch, 1, 1, True))
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

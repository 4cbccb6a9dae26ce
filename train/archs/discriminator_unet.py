"""Real-ESRGAN's U-Net discriminator with spectral normalisation: one raw logit per input pixel.

Parameter names follow ``UNetDiscriminatorSN`` (``conv0`` … ``conv9``; spectrally normalised convs carry
``weight_orig``/``weight_u``/``weight_v``), so Real-ESRGAN's ``*_netD.pth`` checkpoints load unchanged.
That is why the classic ``torch.nn.utils.spectral_norm`` hook is used rather than the parametrization API,
whose keys differ. One cost of that hook: after a training-mode forward the module cannot be
``copy.deepcopy``'d (its ``weight`` is then a non-leaf tensor); copy it through ``state_dict`` instead.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import spectral_norm


class UNetDiscriminatorSN(nn.Module):
    """Three stride-2 encoder convs, three decoder convs after bilinear ×2 upsampling with additive skips,
    two extra convs and a 3×3 conv to one channel. Output (N, 1, H, W) for an (N, C, H, W) input.

    Any size from 8×8 works: decoder maps are resized to the matching encoder map, which for even sizes
    is exactly Real-ESRGAN's ×2 upsampling.
    """

    def __init__(self, num_in_ch: int = 3, num_feat: int = 64, skip_connection: bool = True) -> None:
        super().__init__()
        self.skip_connection = skip_connection

        def sn_conv(cin: int, cout: int, kernel: int, stride: int) -> nn.Module:
            return spectral_norm(nn.Conv2d(cin, cout, kernel, stride, 1, bias=False))

        f = num_feat
        self.conv0 = nn.Conv2d(num_in_ch, f, 3, 1, 1)  # first and last convs are not normalised
        self.conv1 = sn_conv(f, f * 2, 4, 2)
        self.conv2 = sn_conv(f * 2, f * 4, 4, 2)
        self.conv3 = sn_conv(f * 4, f * 8, 4, 2)
        self.conv4 = sn_conv(f * 8, f * 4, 3, 1)
        self.conv5 = sn_conv(f * 4, f * 2, 3, 1)
        self.conv6 = sn_conv(f * 2, f, 3, 1)
        self.conv7 = sn_conv(f, f, 3, 1)
        self.conv8 = sn_conv(f, f, 3, 1)
        self.conv9 = nn.Conv2d(f, 1, 3, 1, 1)

    def _up(self, x: torch.Tensor, like: torch.Tensor, conv: nn.Module) -> torch.Tensor:
        x = F.interpolate(x, size=like.shape[-2:], mode="bilinear", align_corners=False)
        x = F.leaky_relu(conv(x), 0.2)
        return x + like if self.skip_connection else x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if min(x.shape[-2:]) < 8:
            raise ValueError(f"UNetDiscriminatorSN needs inputs of at least 8×8, got {tuple(x.shape[-2:])}")
        x0 = F.leaky_relu(self.conv0(x), 0.2)
        x1 = F.leaky_relu(self.conv1(x0), 0.2)
        x2 = F.leaky_relu(self.conv2(x1), 0.2)
        x3 = F.leaky_relu(self.conv3(x2), 0.2)
        x4 = self._up(x3, x2, self.conv4)
        x5 = self._up(x4, x1, self.conv5)
        x6 = self._up(x5, x0, self.conv6)
        out = F.leaky_relu(self.conv7(x6), 0.2)
        out = F.leaky_relu(self.conv8(out), 0.2)
        return self.conv9(out)

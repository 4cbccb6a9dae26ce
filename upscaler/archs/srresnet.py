"""SRResNet, the SRGAN generator, in two variants.

``SRResNet`` is the original design (Ledig et al. 2017): 9×9 head and tail convs, residual blocks of
conv-BN-PReLU-conv-BN, a BN'd trunk conv with a long skip, and conv-PixelShuffle(2)-PReLU stages. Its keys
(our own naming, chosen to be unambiguous): ``conv_first``, ``act_first``,
``body.N.{conv1,bn1,act,conv2,bn2}``, ``conv_body``, ``bn_body``, ``upsample.N.{conv,act}``, ``conv_last``.

``MSRResNet`` is BasicSR's BN-free "modified SRResNet": ``conv_first``, ``body.N.conv1/conv2``, ``upconv1``
(``upconv2`` for ×4), ``conv_hr``, ``conv_last``, plus a bilinear-upsampled copy of the input.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .common import ArchParamsError, StateDict, has_keys, scaled_kaiming_init_, seq_len, shape


class _BNResidualBlock(nn.Module):
    def __init__(self, num_feat: int, prelu_ch: int) -> None:
        super().__init__()
        # Convs followed by BatchNorm carry no bias: BN's shift makes it redundant.
        self.conv1 = nn.Conv2d(num_feat, num_feat, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(num_feat)
        self.act = nn.PReLU(prelu_ch)
        self.conv2 = nn.Conv2d(num_feat, num_feat, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(num_feat)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.bn2(self.conv2(self.act(self.bn1(self.conv1(x)))))


class _UpsampleStage(nn.Module):
    def __init__(self, num_feat: int, factor: int, prelu_ch: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(num_feat, num_feat * factor * factor, 3, 1, 1)
        self.shuffle = nn.PixelShuffle(factor)
        self.act = nn.PReLU(prelu_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.shuffle(self.conv(x)))


def _stage_factors(upscale: int) -> list[int]:
    if upscale == 3:
        return [3]
    if upscale >= 2 and upscale & (upscale - 1) == 0:
        return [2] * int(math.log2(upscale))
    raise ValueError(f"scale must be 3 or a power of two, not {upscale}")


class SRResNet(nn.Module):
    """The SRGAN generator with BatchNorm and PReLU. Output is linear (no tanh), like the BasicSR networks."""

    def __init__(
        self,
        num_in_ch: int = 3,
        num_out_ch: int = 3,
        num_feat: int = 64,
        num_block: int = 16,
        upscale: int = 4,
        prelu_per_channel: bool = False,
    ) -> None:
        super().__init__()
        self.num_in_ch = num_in_ch
        self.num_out_ch = num_out_ch
        self.num_feat = num_feat
        self.num_block = num_block
        self.upscale = upscale
        self.prelu_per_channel = prelu_per_channel
        prelu_ch = num_feat if prelu_per_channel else 1

        self.conv_first = nn.Conv2d(num_in_ch, num_feat, 9, 1, 4)
        self.act_first = nn.PReLU(prelu_ch)
        self.body = nn.Sequential(*(_BNResidualBlock(num_feat, prelu_ch) for _ in range(num_block)))
        self.conv_body = nn.Conv2d(num_feat, num_feat, 3, 1, 1, bias=False)
        self.bn_body = nn.BatchNorm2d(num_feat)
        self.upsample = nn.Sequential(
            *(_UpsampleStage(num_feat, f, prelu_ch) for f in _stage_factors(upscale))
        )
        self.conv_last = nn.Conv2d(num_feat, num_out_ch, 9, 1, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat = self.act_first(self.conv_first(x))
        out = self.bn_body(self.conv_body(self.body(feat))) + feat
        return self.conv_last(self.upsample(out))

    @property
    def scale(self) -> int:
        return self.upscale

    @property
    def hyperparams(self) -> dict[str, Any]:
        return {
            "num_in_ch": self.num_in_ch,
            "num_out_ch": self.num_out_ch,
            "num_feat": self.num_feat,
            "num_block": self.num_block,
            "upscale": self.upscale,
            "prelu_per_channel": self.prelu_per_channel,
        }


class ResidualBlockNoBN(nn.Module):
    def __init__(self, num_feat: int = 64) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv2 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.relu = nn.ReLU(inplace=True)
        scaled_kaiming_init_([self], 0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(self.relu(self.conv1(x)))


class MSRResNet(nn.Module):
    """BasicSR's modified SRResNet: no BatchNorm, LeakyReLU, global bilinear skip. Scale 2, 3 or 4."""

    def __init__(
        self,
        num_in_ch: int = 3,
        num_out_ch: int = 3,
        num_feat: int = 64,
        num_block: int = 16,
        upscale: int = 4,
    ) -> None:
        super().__init__()
        if upscale not in (2, 3, 4):
            raise ValueError(f"MSRResNet supports scale 2, 3 or 4, not {upscale}")
        self.num_in_ch = num_in_ch
        self.num_out_ch = num_out_ch
        self.num_feat = num_feat
        self.num_block = num_block
        self.upscale = upscale

        self.conv_first = nn.Conv2d(num_in_ch, num_feat, 3, 1, 1)
        self.body = nn.Sequential(*(ResidualBlockNoBN(num_feat) for _ in range(num_block)))
        # ×4 is two ×2 stages; ×2 and ×3 a single stage.
        factor = 2 if upscale == 4 else upscale
        self.upconv1 = nn.Conv2d(num_feat, num_feat * factor * factor, 3, 1, 1)
        self.upconv2 = nn.Conv2d(num_feat, num_feat * 4, 3, 1, 1) if upscale == 4 else None
        self.pixel_shuffle = nn.PixelShuffle(factor)
        self.conv_hr = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_last = nn.Conv2d(num_feat, num_out_ch, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(negative_slope=0.1, inplace=True)
        scaled_kaiming_init_([self.conv_first, self.upconv1, self.conv_hr, self.conv_last], 0.1)
        if self.upconv2 is not None:
            scaled_kaiming_init_([self.upconv2], 0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.body(self.lrelu(self.conv_first(x)))
        out = self.lrelu(self.pixel_shuffle(self.upconv1(out)))
        if self.upconv2 is not None:
            out = self.lrelu(self.pixel_shuffle(self.upconv2(out)))
        out = self.conv_last(self.lrelu(self.conv_hr(out)))
        if self.num_in_ch == self.num_out_ch:  # the image skip only exists when the channels line up
            out = out + F.interpolate(x, scale_factor=self.upscale, mode="bilinear", align_corners=False)
        return out

    @property
    def scale(self) -> int:
        return self.upscale

    @property
    def hyperparams(self) -> dict[str, Any]:
        return {
            "num_in_ch": self.num_in_ch,
            "num_out_ch": self.num_out_ch,
            "num_feat": self.num_feat,
            "num_block": self.num_block,
            "upscale": self.upscale,
        }


def detect_srresnet(state: StateDict) -> bool:
    return has_keys(state, "conv_first.weight", "act_first.weight", "body.0.bn1.weight", "bn_body.weight")


def read_srresnet_params(state: StateDict) -> dict[str, Any]:
    num_feat, num_in_ch = shape(state, "conv_first.weight")[:2]
    stages = seq_len(state, "upsample")
    first_factor = math.isqrt(shape(state, "upsample.0.conv.weight")[0] // num_feat)
    if stages == 1 and first_factor in (2, 3):
        upscale = first_factor
    elif stages > 1 and first_factor == 2:
        upscale = 2**stages
    else:
        raise ArchParamsError(f"unexpected upsampler: {stages} stage(s) of ×{first_factor}")
    return {
        "num_in_ch": num_in_ch,
        "num_out_ch": shape(state, "conv_last.weight")[0],
        "num_feat": num_feat,
        "num_block": seq_len(state, "body"),
        "upscale": upscale,
        "prelu_per_channel": shape(state, "act_first.weight")[0] > 1,
    }


def detect_msrresnet(state: StateDict) -> bool:
    return has_keys(
        state,
        "conv_first.weight",
        "body.0.conv1.weight",
        "upconv1.weight",
        "conv_hr.weight",
        "conv_last.weight",
    ) and not any(".bn" in k for k in state)


def read_msrresnet_params(state: StateDict) -> dict[str, Any]:
    num_feat, num_in_ch = shape(state, "conv_first.weight")[:2]
    if "upconv2.weight" in state:
        upscale = 4
    else:
        upscale = math.isqrt(shape(state, "upconv1.weight")[0] // num_feat)
        if upscale not in (2, 3):
            raise ArchParamsError(
                f"upconv1 has {shape(state, 'upconv1.weight')[0]} channels for {num_feat} features"
            )
    return {
        "num_in_ch": num_in_ch,
        "num_out_ch": shape(state, "conv_last.weight")[0],
        "num_feat": num_feat,
        "num_block": seq_len(state, "body"),
        "upscale": upscale,
    }

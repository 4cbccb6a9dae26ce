"""SRVGGNetCompact: Real-ESRGAN's compact VGG-style net (``realesr-general-x4v3``, ``realesr-animevideov3``).

Key layout (BasicSR/Real-ESRGAN): ``body.0`` first conv, ``body.1`` its activation, then pairs of
(conv, activation), the last conv, and a nearest-upsampled copy of the input added to the PixelShuffle output.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .common import ArchParamsError, StateDict, has_keys, seq_len, shape, split_shuffle_channels


class SRVGGNetCompact(nn.Module):
    def __init__(
        self,
        num_in_ch: int = 3,
        num_out_ch: int = 3,
        num_feat: int = 64,
        num_conv: int = 16,
        upscale: int = 4,
        act_type: str = "prelu",
    ) -> None:
        super().__init__()
        self.num_in_ch = num_in_ch
        self.num_out_ch = num_out_ch
        self.num_feat = num_feat
        self.num_conv = num_conv
        self.upscale = upscale
        self.act_type = act_type

        self.body = nn.ModuleList([nn.Conv2d(num_in_ch, num_feat, 3, 1, 1), _activation(act_type, num_feat)])
        for _ in range(num_conv):
            self.body.append(nn.Conv2d(num_feat, num_feat, 3, 1, 1))
            self.body.append(_activation(act_type, num_feat))
        self.body.append(nn.Conv2d(num_feat, num_out_ch * upscale * upscale, 3, 1, 1))
        self.upsampler = nn.PixelShuffle(upscale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x
        for layer in self.body:
            out = layer(out)
        out = self.upsampler(out)
        # The network learns the residual over nearest-neighbour upsampling.
        return out + F.interpolate(x, scale_factor=self.upscale, mode="nearest")

    @property
    def scale(self) -> int:
        return self.upscale

    @property
    def hyperparams(self) -> dict[str, Any]:
        return {
            "num_in_ch": self.num_in_ch,
            "num_out_ch": self.num_out_ch,
            "num_feat": self.num_feat,
            "num_conv": self.num_conv,
            "upscale": self.upscale,
            "act_type": self.act_type,
        }


def detect(state: StateDict) -> bool:
    """``body.N`` convs (4-D weights) and nothing else at the top level."""
    if not has_keys(state, "body.0.weight", "body.0.bias") or len(state["body.0.weight"].shape) != 4:
        return False
    return all(k.startswith("body.") and k.count(".") == 2 for k in state)


def read_params(state: StateDict) -> dict[str, Any]:
    last = seq_len(state, "body") - 1
    num_feat, num_in_ch = shape(state, "body.0.weight")[:2]
    if "body.1.weight" not in state:
        # ReLU and LeakyReLU have no weights, so they cannot be told apart; only our own metadata says which.
        raise ArchParamsError("activation is not PReLU and cannot be told from the weights")
    # body: conv, act, (conv, act) * num_conv, conv
    num_conv = (last - 2) // 2
    if last < 2 or last % 2:
        raise ArchParamsError(f"unexpected body length {last + 1}")
    upscale, num_out_ch = split_shuffle_channels(shape(state, f"body.{last}.weight")[0], num_in_ch)
    return {
        "num_in_ch": num_in_ch,
        "num_out_ch": num_out_ch,
        "num_feat": num_feat,
        "num_conv": num_conv,
        "upscale": upscale,
        "act_type": "prelu",
    }


def _activation(act_type: str, num_feat: int) -> nn.Module:
    if act_type == "prelu":
        return nn.PReLU(num_parameters=num_feat)
    if act_type == "relu":
        return nn.ReLU(inplace=True)
    if act_type == "leakyrelu":
        return nn.LeakyReLU(negative_slope=0.1, inplace=True)
    raise ValueError(f"unknown activation {act_type!r}")

"""RRDBNet: ESRGAN / Real-ESRGAN generator (``RealESRGAN_x4plus``, ``RealESRGAN_x2plus``, ``RRDB_ESRGAN_x4``).

Key layout follows BasicSR: ``conv_first``, ``body.N.rdbK.convJ``, ``conv_body``, ``conv_up1``, ``conv_up2``,
``conv_hr``, ``conv_last``. The network always upsamples ×4; for scale 2 and 1 the input is first
pixel-unshuffled by 2 or 4 (as Real-ESRGAN does), so ``conv_first`` takes 4× or 16× the image channels.
Older ESRGAN files (``model.N`` sequential keys, or ``RRDB_trunk``/``trunk_conv``/``upconvN``/``HRconv``)
are renamed to this layout by :func:`convert_keys`.
"""

from __future__ import annotations

import re
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .common import ArchParamsError, StateDict, has_keys, scaled_kaiming_init_, seq_len, shape

_UNSHUFFLE = {4: 1, 2: 2, 1: 4}  # scale -> pixel-unshuffle factor


class ResidualDenseBlock(nn.Module):
    def __init__(self, num_feat: int = 64, num_grow_ch: int = 32) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(num_feat, num_grow_ch, 3, 1, 1)
        self.conv2 = nn.Conv2d(num_feat + num_grow_ch, num_grow_ch, 3, 1, 1)
        self.conv3 = nn.Conv2d(num_feat + 2 * num_grow_ch, num_grow_ch, 3, 1, 1)
        self.conv4 = nn.Conv2d(num_feat + 3 * num_grow_ch, num_grow_ch, 3, 1, 1)
        self.conv5 = nn.Conv2d(num_feat + 4 * num_grow_ch, num_feat, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(negative_slope=0.2, inplace=True)
        scaled_kaiming_init_([self], 0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = self.lrelu(self.conv1(x))
        x2 = self.lrelu(self.conv2(torch.cat((x, x1), 1)))
        x3 = self.lrelu(self.conv3(torch.cat((x, x1, x2), 1)))
        x4 = self.lrelu(self.conv4(torch.cat((x, x1, x2, x3), 1)))
        x5 = self.conv5(torch.cat((x, x1, x2, x3, x4), 1))
        return x5 * 0.2 + x  # residual scaling keeps the deep stack stable


class RRDB(nn.Module):
    def __init__(self, num_feat: int, num_grow_ch: int = 32) -> None:
        super().__init__()
        self.rdb1 = ResidualDenseBlock(num_feat, num_grow_ch)
        self.rdb2 = ResidualDenseBlock(num_feat, num_grow_ch)
        self.rdb3 = ResidualDenseBlock(num_feat, num_grow_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.rdb3(self.rdb2(self.rdb1(x))) * 0.2 + x


class RRDBNet(nn.Module):
    def __init__(
        self,
        num_in_ch: int = 3,
        num_out_ch: int = 3,
        scale: int = 4,
        num_feat: int = 64,
        num_block: int = 23,
        num_grow_ch: int = 32,
    ) -> None:
        super().__init__()
        if scale not in _UNSHUFFLE:
            raise ValueError(f"RRDBNet supports scale 1, 2 or 4, not {scale}")
        self.num_in_ch = num_in_ch
        self.num_out_ch = num_out_ch
        self.scale = scale
        self.num_feat = num_feat
        self.num_block = num_block
        self.num_grow_ch = num_grow_ch
        self.unshuffle = _UNSHUFFLE[scale]

        self.conv_first = nn.Conv2d(num_in_ch * self.unshuffle**2, num_feat, 3, 1, 1)
        self.body = nn.Sequential(*(RRDB(num_feat, num_grow_ch) for _ in range(num_block)))
        self.conv_body = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_up1 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_up2 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_hr = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_last = nn.Conv2d(num_feat, num_out_ch, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(negative_slope=0.2, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        feat = x
        if self.unshuffle > 1:
            # Pad to a multiple of the unshuffle factor so any size works; the extra rows are cropped below.
            r = self.unshuffle
            pad_h, pad_w = -h % r, -w % r
            if pad_h or pad_w:
                mode = "reflect" if pad_h < h and pad_w < w else "replicate"  # reflect needs pad < size
                feat = F.pad(feat, (0, pad_w, 0, pad_h), mode=mode)
            feat = F.pixel_unshuffle(feat, r)
        feat = self.conv_first(feat)
        feat = feat + self.conv_body(self.body(feat))
        feat = self.lrelu(self.conv_up1(F.interpolate(feat, scale_factor=2, mode="nearest")))
        feat = self.lrelu(self.conv_up2(F.interpolate(feat, scale_factor=2, mode="nearest")))
        out = self.conv_last(self.lrelu(self.conv_hr(feat)))
        return out[..., : h * self.scale, : w * self.scale]

    @property
    def hyperparams(self) -> dict[str, Any]:
        return {
            "num_in_ch": self.num_in_ch,
            "num_out_ch": self.num_out_ch,
            "scale": self.scale,
            "num_feat": self.num_feat,
            "num_block": self.num_block,
            "num_grow_ch": self.num_grow_ch,
        }


def detect(state: StateDict) -> bool:
    return has_keys(
        state, "conv_first.weight", "body.0.rdb1.conv1.weight", "conv_body.weight", "conv_last.weight"
    )


def read_params(state: StateDict) -> dict[str, Any]:
    num_feat, first_in = shape(state, "conv_first.weight")[:2]
    num_out_ch = shape(state, "conv_last.weight")[0]
    ups = sum(1 for k in state if re.fullmatch(r"conv_up\d+\.weight", k))
    if ups != 2:
        raise ArchParamsError(f"{ups} upsampling stages (×{2**ups}); only ×4 (2 stages) is supported")
    # The unshuffle factor is only visible as the ratio of conv_first inputs to image channels.
    if first_in == num_out_ch * 16:
        scale, num_in_ch = 1, first_in // 16
    elif first_in == num_out_ch * 4:
        scale, num_in_ch = 2, first_in // 4
    elif first_in == num_out_ch or first_in in (1, 3, 4):
        scale, num_in_ch = 4, first_in
    else:
        raise ArchParamsError(f"cannot tell the scale from {first_in} input and {num_out_ch} output channels")
    return {
        "num_in_ch": num_in_ch,
        "num_out_ch": num_out_ch,
        "scale": scale,
        "num_feat": num_feat,
        "num_block": seq_len(state, "body"),
        "num_grow_ch": shape(state, "body.0.rdb1.conv1.weight")[0],
    }


def convert_keys(state: StateDict) -> StateDict:
    """Rename the two older ESRGAN layouts to BasicSR names; any other state dict is returned unchanged."""
    if "model.1.sub.0.RDB1.conv1.0.weight" in state and "model.0.weight" in state:
        return _from_sequential(state)
    if "RRDB_trunk.0.RDB1.conv1.weight" in state:
        return _from_esrgan_repo(state)
    return state


def _from_esrgan_repo(state: StateDict) -> StateDict:
    # xinntao/ESRGAN's RRDBNet_arch.py: same modules as BasicSR under older names.
    renames = [
        (r"^RRDB_trunk\.(\d+)\.RDB(\d)\.", r"body.\1.rdb\2."),
        (r"^trunk_conv\.", "conv_body."),
        (r"^upconv(\d+)\.", r"conv_up\1."),
        (r"^HRconv\.", "conv_hr."),
    ]
    out = {}
    for key, value in state.items():
        for pattern, repl in renames:
            key = re.sub(pattern, repl, key)
        out[key] = value
    return out


def _from_sequential(state: StateDict) -> StateDict:
    # The original ESRGAN's flat nn.Sequential: model.0 conv_first; model.1.sub holds the RRDBs and, at the
    # last index, conv_body; then the remaining convs are the upsampling convs, conv_hr and conv_last.
    trunk_len = seq_len(state, "model.1.sub")
    out: dict[str, torch.Tensor] = {}
    tail: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in state.items():
        if m := re.fullmatch(r"model\.0\.(weight|bias)", key):
            out[f"conv_first.{m[1]}"] = value
        elif m := re.fullmatch(r"model\.1\.sub\.(\d+)\.RDB(\d)\.conv(\d)\.0\.(weight|bias)", key):
            out[f"body.{m[1]}.rdb{m[2]}.conv{m[3]}.{m[4]}"] = value
        elif m := re.fullmatch(rf"model\.1\.sub\.{trunk_len - 1}\.(weight|bias)", key):
            out[f"conv_body.{m[1]}"] = value
        elif m := re.fullmatch(r"model\.(\d+)\.(weight|bias)", key):
            tail.setdefault(int(m[1]), {})[m[2]] = value
        else:
            out[key] = value  # unknown: keep it, so a strict load reports it
    convs = sorted(tail)
    names = [f"conv_up{i + 1}" for i in range(len(convs) - 2)] + ["conv_hr", "conv_last"]
    for index, name in zip(convs, names, strict=False):
        for kind, value in tail[index].items():
            out[f"{name}.{kind}"] = value
    return out

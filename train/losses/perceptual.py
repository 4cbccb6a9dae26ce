"""Perceptual (content) and style losses on frozen VGG19 features.

Layers are named as in the papers: ``convB_K`` is the K-th convolution of block B *before* its ReLU,
``reluB_K`` the same after it, ``poolB`` the max-pool closing block B. Feature magnitudes depend on the
weights: the shared Caffe VGG19 gives Caffe-scale features (relu1_2 mean ~90, conv5_4 ~40 mean abs),
torchvision's retrained net much smaller ones, so loss weights tuned for one do not carry over to the other
(``feature_scale`` rescales features before the criterion, e.g. SRGAN's 1/12.75).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Literal, NamedTuple

import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import nn

# Presets (read-only; pass them as ``layer_weights``).
SRGAN_VGG22: Mapping[str, float] = MappingProxyType({"relu2_2": 1.0})
SRGAN_VGG54: Mapping[str, float] = MappingProxyType({"relu5_4": 1.0})
ESRGAN_CONV54: Mapping[str, float] = MappingProxyType({"conv5_4": 1.0})
REAL_ESRGAN_LAYERS: Mapping[str, float] = MappingProxyType(
    {"conv1_2": 0.1, "conv2_2": 0.1, "conv3_4": 1.0, "conv4_4": 1.0, "conv5_4": 1.0}
)

VGG19_FILE = "vgg19_features.safetensors"
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)
_CONVS_PER_BLOCK = (2, 2, 4, 4, 4)


def _layer_plan() -> list[tuple[str, int, int]]:
    """(name, in_ch, out_ch) per index of torchvision's ``vgg19().features``; channels are 0 off convs."""
    plan: list[tuple[str, int, int]] = []
    in_ch = 3
    for block, n_convs in enumerate(_CONVS_PER_BLOCK, start=1):
        out_ch = min(64 * 2 ** (block - 1), 512)
        for k in range(1, n_convs + 1):
            plan.append((f"conv{block}_{k}", in_ch, out_ch))
            plan.append((f"relu{block}_{k}", 0, 0))
            in_ch = out_ch
        plan.append((f"pool{block}", 0, 0))
    return plan


_PLAN = _layer_plan()
VGG19_LAYERS: tuple[str, ...] = tuple(name for name, _, _ in _PLAN)
_LAYER_INDEX = {name: i for i, name in enumerate(VGG19_LAYERS)}


def _build_features(last: int) -> nn.Sequential:
    """Layers 0..last of VGG19's feature stack, same indices (so ``N.weight`` keys) as torchvision's."""
    layers: list[nn.Module] = []
    for name, in_ch, out_ch in _PLAN[: last + 1]:
        if name.startswith("conv"):
            layers.append(nn.Conv2d(in_ch, out_ch, 3, padding=1))
        elif name.startswith("relu"):
            # Not in-place: an in-place ReLU would overwrite a captured pre-activation (convB_K) feature.
            layers.append(nn.ReLU(inplace=False))
        else:
            layers.append(nn.MaxPool2d(2, 2))
    return nn.Sequential(*layers)


def default_vgg19_path() -> Path | None:
    """The offline weights file: $UPSCALER_VGG19, else shared/vgg19 ($UPSCALER_SHARED or next to the repo)."""
    env = os.environ.get("UPSCALER_VGG19")
    if env:
        path = Path(env)
        if not path.is_file():  # an explicit setting must not silently fall back to a download
            raise FileNotFoundError(f"UPSCALER_VGG19 points to a missing file: {path}")
        return path
    candidates = []
    if os.environ.get("UPSCALER_SHARED"):
        candidates.append(Path(os.environ["UPSCALER_SHARED"]) / "vgg19" / VGG19_FILE)
    candidates.append(Path(__file__).resolve().parents[2].parent / "shared" / "vgg19" / VGG19_FILE)
    return next((p for p in candidates if p.is_file()), None)


def load_vgg19_features(last_layer: str = "relu5_4", weights: Path | None = None) -> nn.Sequential:
    """Frozen, eval-mode VGG19 features up to and including ``last_layer``.

    Weights: ``weights`` → ``default_vgg19_path()`` → torchvision's ImageNet download (needs internet).
    """
    if last_layer not in _LAYER_INDEX:
        raise ValueError(f"unknown VGG19 layer {last_layer!r}; known: {', '.join(VGG19_LAYERS)}")
    features = _build_features(_LAYER_INDEX[last_layer])
    if weights is not None and not Path(weights).is_file():
        raise FileNotFoundError(f"VGG19 weights not found: {weights}")
    path = Path(weights) if weights is not None else default_vgg19_path()
    if path is not None:
        # Stored as fp16 with a ``features.`` prefix.
        state = {k.removeprefix("features."): v.float() for k, v in load_file(str(path)).items()}
    else:
        from torchvision.models import VGG19_Weights, vgg19

        state = vgg19(weights=VGG19_Weights.IMAGENET1K_V1).features.state_dict()
    wanted = features.state_dict().keys()
    missing = [k for k in wanted if k not in state]
    if missing:
        raise KeyError(f"VGG19 weights {path} lack {missing[:4]}")
    features.load_state_dict({k: state[k] for k in wanted}, strict=True)
    features.requires_grad_(False)
    return features.eval()


def gram_matrix(features: torch.Tensor) -> torch.Tensor:
    """(N, C, C) Gram matrices normalised by C·H·W, in float32 with autocast off (entries reach ~1e8)."""
    n, c, h, w = features.shape
    with torch.autocast(device_type=features.device.type, enabled=False):
        f = features.float().reshape(n, c, h * w)
        return torch.bmm(f, f.transpose(1, 2)) / (c * h * w)


class PerceptualResult(NamedTuple):
    """The two float32 scalar terms of :class:`PerceptualLoss`; unpacks as ``content, style = loss(sr, hr)``.

    content = Σ_l w_l·crit(s·φ_l(sr), s·φ_l(hr)), s = feature_scale;
    style = style_weight·Σ_l w_l·crit(Gram(s·φ_l(sr)), Gram(s·φ_l(hr))), 0 when style_weight is 0.
    """

    content: torch.Tensor
    style: torch.Tensor

    @property
    def total(self) -> torch.Tensor:
        return self.content + self.style


class PerceptualLoss(nn.Module):
    """Content (+ optional Gram style) loss between VGG19 features of SR and HR images in [0, 1] RGB.

    ``forward(sr, hr)`` returns a :class:`PerceptualResult`. HR features are computed without grad; the VGG
    is frozen and stays in eval mode whatever the parent does. The network runs under the caller's
    autocast; the criterion and Gram terms are computed in float32 (squared Caffe-scale features overflow
    fp16).
    """

    def __init__(
        self,
        layer_weights: Mapping[str, float] = ESRGAN_CONV54,
        criterion: Literal["l1", "l2"] = "l1",
        style_weight: float = 0.0,
        feature_scale: float = 1.0,
        weights: Path | None = None,
    ) -> None:
        super().__init__()
        if not layer_weights:
            raise ValueError("layer_weights is empty")
        unknown = [name for name in layer_weights if name not in _LAYER_INDEX]
        if unknown:
            raise ValueError(f"unknown VGG19 layers {unknown}; known: {', '.join(VGG19_LAYERS)}")
        if criterion not in ("l1", "l2"):
            raise ValueError(f"unknown criterion {criterion!r} (l1, l2)")
        self.layer_weights = dict(layer_weights)
        self.criterion = criterion
        self.style_weight = float(style_weight)
        self.feature_scale = float(feature_scale)
        last = max(self.layer_weights, key=_LAYER_INDEX.__getitem__)
        self.vgg = load_vgg19_features(last, weights)
        self._capture = {_LAYER_INDEX[name]: name for name in self.layer_weights}
        self.register_buffer("mean", torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def train(self, mode: bool = True) -> PerceptualLoss:
        super().train(mode)
        self.vgg.eval()  # a frozen feature extractor: never in training mode
        return self

    def features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """The requested layers' features (unscaled) of a [0, 1] RGB batch."""
        x = ((x.float() - self.mean) / self.std).to(self.vgg[0].weight.dtype)
        out: dict[str, torch.Tensor] = {}
        for i, layer in enumerate(self.vgg):
            x = layer(x)
            if i in self._capture:
                out[self._capture[i]] = x
        return out

    def _distance(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type=a.device.type, enabled=False):
            a, b = a.float(), b.float()
            return F.l1_loss(a, b) if self.criterion == "l1" else F.mse_loss(a, b)

    def forward(self, sr: torch.Tensor, hr: torch.Tensor) -> PerceptualResult:
        sr_feats = self.features(sr)
        with torch.no_grad():
            hr_feats = self.features(hr.detach())
        content = sr.new_zeros((), dtype=torch.float32)
        style = sr.new_zeros((), dtype=torch.float32)
        for name, w in self.layer_weights.items():
            # Scale in float32: under autocast the features are fp16 and a scale > 1 could overflow.
            f_sr = sr_feats[name].float() * self.feature_scale
            f_hr = hr_feats[name].float() * self.feature_scale
            content = content + w * self._distance(f_sr, f_hr)
            if self.style_weight:
                style = style + w * self._distance(gram_matrix(f_sr), gram_matrix(f_hr))
        return PerceptualResult(content, style * self.style_weight)

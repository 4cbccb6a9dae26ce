"""Pixel, TV, adversarial and perceptual losses against values written out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import shared_path
from torch import nn

from train.losses import (
    ESRGAN_CONV54,
    GAN_KINDS,
    REAL_ESRGAN_LAYERS,
    SRGAN_VGG22,
    SRGAN_VGG54,
    CharbonnierLoss,
    PerceptualLoss,
    TVLoss,
    gan_loss,
    gradient_penalty,
    gram_matrix,
    grid_loss,
    pixel_loss,
    tv_beta,
    tv_l1,
    tv_squared,
)
from train.losses.perceptual import VGG19_LAYERS

# ----------------------------------------------------------------------------------------------- pixel


def test_pixel_losses_hand_values() -> None:
    pred = torch.tensor([0.0, 1.0, 2.0, 3.0])
    target = torch.ones(4)  # differences -1, 0, 1, 2
    assert pixel_loss("l1")(pred, target).item() == pytest.approx((1 + 0 + 1 + 2) / 4)
    assert pixel_loss("mse")(pred, target).item() == pytest.approx((1 + 0 + 1 + 4) / 4)
    assert pixel_loss("l2")(pred, target).item() == pytest.approx(1.5)
    eps2 = 1e-3**2
    expected = (2 * math.sqrt(1 + eps2) + math.sqrt(eps2) + math.sqrt(4 + eps2)) / 4
    assert pixel_loss("charbonnier")(pred, target).item() == pytest.approx(expected, rel=1e-6)
    # At zero difference Charbonnier is eps, not 0 (what keeps it differentiable there).
    assert CharbonnierLoss(eps=0.5)(torch.zeros(3), torch.zeros(3)).item() == pytest.approx(0.5)
    with pytest.raises(ValueError, match="unknown pixel loss"):
        pixel_loss("l3")


# -------------------------------------------------------------------------------------------------- TV

# x = [[1, 2, 4],
#      [3, 7, 5]]   (1×1×2×3)
# vertical diffs: 2, 5, 1          → Σ² = 30, count_h = C·(H−1)·W = 3, Σ|·| = 8
# horizontal:     1, 2 | 4, −2     → Σ² = 25, count_w = C·H·(W−1) = 4, Σ|·| = 9
TV_X = torch.tensor([[[[1.0, 2.0, 4.0], [3.0, 7.0, 5.0]]]])


def test_tv_squared_hand_value() -> None:
    assert tv_squared(TV_X).item() == pytest.approx(2 * (30 / 3 + 25 / 4))  # 32.5
    # A zero second channel doubles both counts; a duplicated batch divides by N = 2 and doubles the sums.
    two_ch = torch.cat([TV_X, torch.zeros_like(TV_X)], dim=1)
    assert tv_squared(two_ch).item() == pytest.approx(2 * (30 / 6 + 25 / 8))
    assert tv_squared(TV_X.repeat(2, 1, 1, 1)).item() == pytest.approx(32.5)


def test_tv_beta_hand_value() -> None:
    # Pixels with both neighbours: (0,0): right 1, down 2 → 1+4 = 5; (0,1): right 2, down 5 → 4+25 = 29.
    expected = 5**1.25 + 29**1.25
    assert tv_beta(TV_X).item() == pytest.approx(expected, rel=1e-6)
    assert tv_beta(TV_X, beta=2.0).item() == pytest.approx(5 + 29)
    assert tv_beta(TV_X.repeat(3, 1, 1, 1)).item() == pytest.approx(expected, rel=1e-6)  # batch mean


def test_tv_l1_hand_value_and_module() -> None:
    assert tv_l1(TV_X).item() == pytest.approx(8 / 3 + 9 / 4)
    x = torch.rand(2, 3, 5, 4)
    assert TVLoss("squared")(x) == pytest.approx(tv_squared(x).item())
    assert TVLoss("beta", beta=3.0)(x) == pytest.approx(tv_beta(x, 3.0).item())
    assert TVLoss("l1")(x) == pytest.approx(tv_l1(x).item())
    for kind in ("squared", "beta", "l1"):
        assert TVLoss(kind)(torch.full((1, 3, 4, 4), 0.3)).item() == 0.0
        y = torch.rand(1, 3, 6, 6, requires_grad=True)
        TVLoss(kind)(y).backward()
        assert torch.isfinite(y.grad).all() and y.grad.abs().sum() > 0
    with pytest.raises(ValueError):
        TVLoss("l2")  # type: ignore[arg-type]


# ----------------------------------------------------------------------------------------- adversarial


def _logits(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    # Position-dependent offsets make per-position batch means differ from the global mean.
    offset = torch.linspace(-2, 2, 9).view(1, 1, 3, 3)
    r = torch.randn(4, 1, 3, 3, generator=g) + offset
    f = torch.randn(4, 1, 3, 3, generator=g) - offset
    return r, f


def _log_sigmoid(x: torch.Tensor) -> torch.Tensor:
    return torch.log(torch.sigmoid(x))


def _log_one_minus_sigmoid(x: torch.Tensor) -> torch.Tensor:
    return torch.log(1 - torch.sigmoid(x))


def _expected(kind: str, r: torch.Tensor, f: torch.Tensor, mean_dims: tuple[int, ...] = (0,)):
    """(D loss, G loss) written out from RECIPE.md."""
    if kind == "vanilla":
        return -_log_sigmoid(r).mean() - _log_one_minus_sigmoid(f).mean(), -_log_sigmoid(f).mean()
    if kind == "lsgan":
        return ((r - 1) ** 2).mean() + (f**2).mean(), ((f - 1) ** 2).mean()
    if kind == "wgan":
        return -r.mean() + f.mean(), -f.mean()
    if kind == "hinge":
        return (1 - r).clamp(min=0).mean() + (1 + f).clamp(min=0).mean(), -f.mean()
    if kind == "softplus":
        return torch.log1p(torch.exp(-r)).mean() + torch.log1p(torch.exp(f)).mean(), torch.log1p(
            torch.exp(-f)
        ).mean()
    assert kind == "ragan"
    mean_f = f.mean(dim=mean_dims, keepdim=True)
    mean_r = r.mean(dim=mean_dims, keepdim=True)
    d = -_log_sigmoid(r - mean_f).mean() - _log_one_minus_sigmoid(f - mean_r).mean()
    g = -_log_one_minus_sigmoid(r - mean_f).mean() - _log_sigmoid(f - mean_r).mean()
    return d, g


@pytest.mark.parametrize("kind", GAN_KINDS)
def test_gan_losses_match_formulas(kind: str) -> None:
    r, f = _logits(0)
    loss = gan_loss(kind)  # type: ignore[arg-type]
    d_exp, g_exp = _expected(kind, r.double(), f.double())
    torch.testing.assert_close(loss.d_loss(r, f).double(), d_exp, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(loss.g_loss(r, f).double(), g_exp, rtol=1e-5, atol=1e-6)
    if not loss.relativistic:  # the generator side must not need the real logits
        torch.testing.assert_close(loss.g_loss(None, f), loss.g_loss(r, f))
    # fp16 logits (as from autocast) give float32 losses.
    assert loss.d_loss(r.half(), f.half()).dtype == torch.float32


def test_ragan_mean_is_over_the_batch_axis_only() -> None:
    r, f = _logits(1)
    loss = gan_loss("ragan")
    all_d, all_g = _expected("ragan", r, f, mean_dims=(0, 1, 2, 3))
    d, g = loss.d_loss(r, f), loss.g_loss(r.detach(), f)
    # The test data is such that a mean over all elements gives clearly different values.
    assert abs(d.item() - all_d.item()) > 0.05 and abs(g.item() - all_g.item()) > 0.05
    # Locality: the D loss's gradient w.r.t. the real logits at one position depends on the fakes at that
    # position only, so bumping one fake logit at (1, 1) moves exactly the 4 (batch) gradients at (1, 1).
    def grad_real(fake: torch.Tensor) -> torch.Tensor:
        real = r.clone().requires_grad_(True)
        return torch.autograd.grad(loss.d_loss(real, fake), real)[0]

    bumped = f.clone()
    bumped[2, 0, 1, 1] += 0.5
    changed = (grad_real(f) - grad_real(bumped)).abs() > 1e-7
    assert changed[:, :, 1, 1].all() and changed.sum().item() == 4
    with pytest.raises(ValueError, match="real logits"):
        loss.g_loss(None, f)


def test_gan_loss_unknown_kind() -> None:
    with pytest.raises(ValueError, match="unknown GAN loss"):
        gan_loss("wgan-gp")  # type: ignore[arg-type]


def test_gradient_penalty_on_a_linear_critic() -> None:
    torch.manual_seed(0)
    critic = nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 1, bias=False))
    real, fake = torch.rand(5, 3, 4, 4), torch.rand(5, 3, 4, 4)
    # D(x) = w·x, so ∇ₓD = w everywhere and the penalty is weight·(‖w‖ − 1)².
    w_norm = critic[1].weight.norm().item()
    gp = gradient_penalty(critic, real, fake, weight=7.0)
    assert gp.item() == pytest.approx(7.0 * (w_norm - 1) ** 2, rel=1e-5)
    gp.backward()  # the penalty is differentiable w.r.t. D's parameters
    assert critic[1].weight.grad is not None and critic[1].weight.grad.abs().sum() > 0

    seen: list[torch.Tensor] = []

    def recording(x: torch.Tensor) -> torch.Tensor:
        seen.append(x.detach())
        return x.flatten(1).sum(1, keepdim=True)

    gradient_penalty(recording, real, fake)  # type: ignore[arg-type]
    # x̂ lies on each sample's segment: x̂ − fake = α·(real − fake) with one α ∈ [0, 1] per sample.
    alpha = (seen[0] - fake).flatten(1) / (real - fake).flatten(1)
    assert torch.allclose(alpha, alpha[:, :1].expand_as(alpha), atol=1e-4)
    assert ((alpha >= -1e-6) & (alpha <= 1 + 1e-6)).all()
    assert alpha[:, 0].std() > 0  # per-sample, not one shared α


# ------------------------------------------------------------------------------------------ perceptual


def _vgg_file():
    return shared_path("vgg19", "vgg19_features.safetensors")


@pytest.fixture(scope="module")
def esrgan_l1() -> PerceptualLoss:
    return PerceptualLoss(REAL_ESRGAN_LAYERS, weights=_vgg_file())


@pytest.fixture(scope="module")
def esrgan_l2_style() -> PerceptualLoss:
    return PerceptualLoss(
        REAL_ESRGAN_LAYERS, "l2", style_weight=0.5, feature_scale=1 / 12.75, weights=_vgg_file()
    )


def _manual_features(x: torch.Tensor, names: set[str]) -> dict[str, torch.Tensor]:
    """VGG19 written out with F.conv2d straight from the weights file (independent of the module's build)."""
    from safetensors.torch import load_file

    state = load_file(str(_vgg_file()))
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    h = (x - mean) / std
    out = {}
    for i, name in enumerate(VGG19_LAYERS):
        if name.startswith("conv"):
            weight, bias = state[f"features.{i}.weight"].float(), state[f"features.{i}.bias"].float()
            h = F.conv2d(h, weight, bias, padding=1)
        elif name.startswith("relu"):
            h = F.relu(h)
        else:
            h = F.max_pool2d(h, 2)
        if name in names:
            out[name] = h
        if len(out) == len(names):
            return out
    raise AssertionError("unreachable")


def test_layer_table_matches_torchvision_indices() -> None:
    assert len(VGG19_LAYERS) == 37
    expected = {0: "conv1_1", 2: "conv1_2", 5: "conv2_1", 7: "conv2_2", 10: "conv3_1", 16: "conv3_4",
                19: "conv4_1", 25: "conv4_4", 28: "conv5_1", 34: "conv5_4", 35: "relu5_4", 36: "pool5",
                8: "relu2_2", 4: "pool1", 9: "pool2", 18: "pool3", 27: "pool4"}
    for index, name in expected.items():
        assert VGG19_LAYERS[index] == name
    assert dict(SRGAN_VGG22) == {"relu2_2": 1.0} and dict(SRGAN_VGG54) == {"relu5_4": 1.0}
    assert dict(ESRGAN_CONV54) == {"conv5_4": 1.0}


def test_perceptual_hand_computed(esrgan_l1: PerceptualLoss, esrgan_l2_style: PerceptualLoss) -> None:
    torch.manual_seed(0)
    sr, hr = torch.rand(2, 3, 16, 16), torch.rand(2, 3, 16, 16)
    fs, fh = _manual_features(sr, set(REAL_ESRGAN_LAYERS)), _manual_features(hr, set(REAL_ESRGAN_LAYERS))
    l1 = sum(w * (fs[n] - fh[n]).abs().mean() for n, w in REAL_ESRGAN_LAYERS.items())
    s = 1 / 12.75
    l2 = sum(w * ((s * fs[n] - s * fh[n]) ** 2).mean() for n, w in REAL_ESRGAN_LAYERS.items())

    def gram(t: torch.Tensor) -> torch.Tensor:
        n, c, h, w = t.shape
        return torch.einsum("nchw,ndhw->ncd", t, t) / (c * h * w)

    style = 0.5 * sum(
        w * ((gram(s * fs[n]) - gram(s * fh[n])) ** 2).mean() for n, w in REAL_ESRGAN_LAYERS.items()
    )
    with torch.no_grad():
        content, zero = esrgan_l1(sr, hr)
        result = esrgan_l2_style(sr, hr)
    assert content.item() == pytest.approx(l1.item(), rel=1e-4)
    assert zero.item() == 0.0
    assert result.content.item() == pytest.approx(l2.item(), rel=1e-4)
    assert result.style.item() == pytest.approx(style.item(), rel=1e-4)
    assert result.total.item() == pytest.approx((l2 + style).item(), rel=1e-4)
    torch.testing.assert_close(gram_matrix(fs["conv1_2"]), gram(fs["conv1_2"]), rtol=1e-4, atol=1e-3)


def test_perceptual_zero_positive_and_gradients(esrgan_l2_style: PerceptualLoss) -> None:
    loss = esrgan_l2_style
    torch.manual_seed(1)
    hr = torch.rand(1, 3, 16, 16, requires_grad=True)
    same = loss(hr.detach().clone(), hr)
    assert same.content.item() == 0.0 and same.style.item() == 0.0
    sr = (hr.detach() + 0.05 * torch.randn_like(hr)).clamp(0, 1).requires_grad_(True)
    result = loss(sr, hr)
    assert result.content.item() > 0 and result.style.item() > 0
    result.total.backward()
    assert sr.grad is not None and sr.grad.abs().sum() > 0
    assert hr.grad is None  # targets are computed without grad
    assert all(p.grad is None and not p.requires_grad for p in loss.vgg.parameters())
    assert not [n for n, _ in loss.named_parameters() if _.requires_grad]


def test_perceptual_stays_frozen_in_train_mode(esrgan_l1: PerceptualLoss) -> None:
    parent = nn.ModuleDict({"percep": esrgan_l1})
    parent.train()
    assert esrgan_l1.training and not esrgan_l1.vgg.training
    assert not any(m.training for m in esrgan_l1.vgg.modules())
    parent.eval()
    assert not esrgan_l1.vgg.training
    # Truncated after the deepest requested layer: conv5_4 is features[34], so features[:35].
    assert len(esrgan_l1.vgg) == 35


def test_perceptual_under_autocast(esrgan_l1: PerceptualLoss) -> None:
    torch.manual_seed(2)
    sr = torch.rand(1, 3, 16, 16, requires_grad=True)
    hr = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        ref = esrgan_l1(sr, hr).content
    with torch.autocast("cpu", dtype=torch.bfloat16):
        content, style = esrgan_l1(sr, hr)
    assert content.dtype == torch.float32 and torch.isfinite(content)
    assert content.item() == pytest.approx(ref.item(), rel=0.1)  # bf16 convs: coarse agreement only
    content.backward()
    assert sr.grad is not None and torch.isfinite(sr.grad).all()


def test_perceptual_weights_resolution(monkeypatch: pytest.MonkeyPatch) -> None:
    vgg = _vgg_file()
    monkeypatch.setenv("UPSCALER_VGG19", str(vgg.parent / "missing.safetensors"))
    with pytest.raises(FileNotFoundError, match="UPSCALER_VGG19"):
        PerceptualLoss(SRGAN_VGG22)
    monkeypatch.setenv("UPSCALER_VGG19", str(vgg))
    loss = PerceptualLoss(SRGAN_VGG22)
    assert len(loss.vgg) == 9  # relu2_2 = features[:9]
    with pytest.raises(FileNotFoundError):
        PerceptualLoss(SRGAN_VGG22, weights=vgg.parent / "missing.safetensors")
    with pytest.raises(ValueError, match="unknown VGG19 layers"):
        PerceptualLoss({"conv6_1": 1.0}, weights=vgg)
    with pytest.raises(ValueError, match="criterion"):
        PerceptualLoss(SRGAN_VGG22, "l3", weights=vgg)  # type: ignore[arg-type]


@pytest.mark.slow
def test_vgg19_reference_features_on_baby() -> None:
    """shared/README.md's table: Set5 baby.png, full 512×512, float32."""
    from PIL import Image

    path = shared_path("images", "bench", "Set5", "baby.png")
    img = np.array(Image.open(path).convert("RGB"), dtype=np.float32) / 255
    x = torch.from_numpy(img).permute(2, 0, 1)[None]
    loss = PerceptualLoss({"relu1_2": 1.0, "conv5_4": 1.0, "relu5_4": 1.0}, weights=_vgg_file())
    with torch.no_grad():
        feats = loss.features(x)
    assert feats["relu1_2"].shape == (1, 64, 512, 512)
    assert feats["relu1_2"].mean().item() == pytest.approx(91.51, rel=0.01)
    assert feats["conv5_4"].mean().item() == pytest.approx(-37.95, rel=0.01)
    assert feats["conv5_4"].abs().mean().item() == pytest.approx(39.72, rel=0.01)
    assert feats["relu5_4"].mean().item() == pytest.approx(0.883, rel=0.01)
    assert feats["relu5_4"].max().item() == pytest.approx(135.3, rel=0.01)


# --- pixel-shuffle grid -------------------------------------------------------------------------------------


def test_grid_loss_is_the_mean_square_of_a_pure_period_pattern() -> None:
    torch.manual_seed(0)
    pattern = torch.rand(2, 3, 4, 4) - 0.5  # one period-4 cell per image and channel
    pattern -= pattern.mean(dim=(2, 3), keepdim=True)  # the pattern proper: zero mean over its 16 phases
    x = 0.3 + pattern.repeat(1, 1, 8, 8)  # 32x32 on a flat ground: 8x8 cells of the same pattern
    assert torch.allclose(grid_loss(x, 4), pattern.pow(2).mean(), atol=1e-7)
    assert float(grid_loss(torch.full((1, 3, 32, 32), 0.7), 4)) == 0.0
    # Per-window means: a pattern flipping sign from cell to cell is seen cell by cell, but cancels over 2x2 cells.
    flips = torch.cat([pattern, -pattern], dim=3).repeat(1, 1, 8, 4)
    assert torch.allclose(grid_loss(flips, 4, window=1), pattern.pow(2).mean(), atol=1e-7)
    assert float(grid_loss(flips, 4, window=2)) < 1e-12

"""Discriminators: output shapes, checkpoint key names, gradient flow, and use with every GAN loss."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from train.archs import PatchGANDiscriminator, UNetDiscriminatorSN, VGGStyleDiscriminator
from train.losses import GAN_KINDS, gan_loss, gradient_penalty


def _vgg_keys(stages: int) -> set[str]:
    """BasicSR VGGStyleDiscriminator's state-dict keys."""
    keys = {"conv0_0.weight", "conv0_0.bias", "conv0_1.weight", "linear1.weight", "linear1.bias",
            "linear2.weight", "linear2.bias"}
    bns = ["bn0_1"]
    for i in range(1, stages):
        keys |= {f"conv{i}_0.weight", f"conv{i}_1.weight"}
        bns += [f"bn{i}_0", f"bn{i}_1"]
    bn_keys = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
    for bn in bns:
        keys |= {f"{bn}.{p}" for p in bn_keys}
    return keys


def test_vgg_style_keys_match_basicsr() -> None:
    d128 = VGGStyleDiscriminator()
    assert set(d128.state_dict()) == _vgg_keys(5)
    assert d128.linear1.in_features == 512 * 4 * 4
    assert d128.conv0_1.bias is None and d128.conv4_1.weight.shape == (512, 512, 4, 4)
    d256 = VGGStyleDiscriminator(input_size=256)
    assert set(d256.state_dict()) == _vgg_keys(6) and d256.linear1.in_features == 512 * 4 * 4


def test_vgg_style_shape_and_size_check() -> None:
    d = VGGStyleDiscriminator(num_feat=8, input_size=96)
    assert d(torch.rand(2, 3, 96, 96)).shape == (2, 1)
    with pytest.raises(ValueError, match="96×96"):
        d(torch.rand(2, 3, 128, 128))
    with pytest.raises(ValueError, match="multiple of 32"):
        VGGStyleDiscriminator(input_size=100)


def test_unet_keys_match_real_esrgan() -> None:
    keys = set(UNetDiscriminatorSN().state_dict())
    expected = {"conv0.weight", "conv0.bias", "conv9.weight", "conv9.bias"}
    for i in range(1, 9):
        expected |= {f"conv{i}.weight_orig", f"conv{i}.weight_u", f"conv{i}.weight_v"}
    assert keys == expected


@pytest.mark.parametrize("size", [(96, 80), (64, 64), (45, 37)])
def test_unet_output_matches_input_size(size: tuple[int, int]) -> None:
    d = UNetDiscriminatorSN(num_feat=8)
    assert d(torch.rand(2, 3, *size)).shape == (2, 1, *size)


def test_unet_without_skips() -> None:
    d = UNetDiscriminatorSN(num_feat=8, skip_connection=False)
    assert d(torch.rand(1, 3, 32, 24)).shape == (1, 1, 32, 24)


def test_patchgan_shapes() -> None:
    # 4×4 convs with padding 1: stride 2 halves (floor), stride 1 shrinks by one.
    d = PatchGANDiscriminator(num_feat=8, n_layers=3)
    assert d(torch.rand(2, 3, 96, 80)).shape == (2, 1, 10, 8)  # 96→48→24→12→11→10, 80→40→20→10→9→8
    d2 = PatchGANDiscriminator(num_feat=8, n_layers=2, norm="instance")
    assert d2(torch.rand(1, 3, 64, 50)).shape == (1, 1, 14, 10)  # 64→32→16→15→14, 50→25→12→11→10
    sn = PatchGANDiscriminator(num_feat=8, n_layers=3, norm="none", spectral_norm=True)
    assert sn(torch.rand(1, 3, 96, 80)).shape == (1, 1, 10, 8)
    assert any(name.endswith("weight_orig") for name in sn.state_dict())
    with pytest.raises(ValueError):
        PatchGANDiscriminator(norm="group")  # type: ignore[arg-type]


def _discriminators() -> list:
    cases = [
        ("vgg", VGGStyleDiscriminator(num_feat=8, input_size=64), (64, 64)),
        ("patchgan", PatchGANDiscriminator(num_feat=8, n_layers=3), (48, 40)),
        ("patchgan-sn", PatchGANDiscriminator(num_feat=8, norm="none", spectral_norm=True), (48, 40)),
        ("unet", UNetDiscriminatorSN(num_feat=8), (48, 40)),
    ]
    return [pytest.param(*case, id=case[0]) for case in cases]


@pytest.mark.parametrize("name,disc,size", _discriminators())
def test_gradients_reach_input_and_all_parameters(name: str, disc: nn.Module, size: tuple[int, int]) -> None:
    x = torch.rand(2, 3, *size, requires_grad=True)
    disc(x).square().mean().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    missing = [n for n, p in disc.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing, f"{name}: no gradient for {missing}"


@pytest.mark.parametrize("name,disc,size", _discriminators())
def test_every_gan_loss_trains_each_discriminator(name: str, disc: nn.Module, size: tuple[int, int]) -> None:
    torch.manual_seed(0)
    real = torch.rand(2, 3, *size)
    fake = torch.rand(2, 3, *size, requires_grad=True)  # stands in for G's output
    for kind in GAN_KINDS:
        loss = gan_loss(kind)  # type: ignore[arg-type]
        disc.zero_grad()
        # D step: fake detached, so no gradient reaches G.
        d_loss = loss.d_loss(disc(real), disc(fake.detach()))
        if kind == "wgan":
            d_loss = d_loss + gradient_penalty(disc, real, fake)
        d_loss.backward()
        assert torch.isfinite(d_loss), (name, kind)
        ok = all(p.grad is not None and torch.isfinite(p.grad).all() for p in disc.parameters())
        assert ok, (name, kind)
        assert fake.grad is None
        # G step: D's real logits detached (only relativistic kinds look at them).
        real_logits = disc(real).detach() if loss.relativistic else None
        g_loss = loss.g_loss(real_logits, disc(fake))
        g_loss.backward()
        assert torch.isfinite(g_loss) and fake.grad is not None and fake.grad.abs().sum() > 0, (name, kind)
        fake.grad = None

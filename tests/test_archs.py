"""Architectures: shapes, detection from state dicts, and equivalence with independent references
(spandrel for RRDBNet/SRVGGNetCompact, functional re-implementations for the two SRResNets)."""

from __future__ import annotations

import math
import re

import pytest
import spandrel
import torch
import torch.nn.functional as F
from torch import nn

from upscaler.archs import (
    ARCHITECTURES,
    MSRRESNET,
    RRDB,
    SRRESNET,
    SRVGG,
    MSRResNet,
    RRDBNet,
    SRResNet,
    SRVGGNetCompact,
    by_name,
    detect_architecture,
    params_of,
)
from upscaler.archs.rrdb import convert_keys

# Small networks keep the suite fast; spandrel's ESRGAN hard-codes 32 grow channels, so RRDB uses 32.
CASES = {
    "srvgg-x2": (SRVGG, lambda: SRVGGNetCompact(num_feat=8, num_conv=3, upscale=2)),
    "srvgg-x4": (SRVGG, lambda: SRVGGNetCompact(num_feat=8, num_conv=2, upscale=4)),
    "srvgg-x3-gray": (SRVGG, lambda: SRVGGNetCompact(1, 1, num_feat=8, num_conv=1, upscale=3)),
    # 4 channels ×2 = 16 = 1 channel ×4: the image channels must be preferred when splitting.
    "srvgg-x2-rgba": (SRVGG, lambda: SRVGGNetCompact(4, 4, num_feat=8, num_conv=1, upscale=2)),
    "rrdb-x1": (RRDB, lambda: RRDBNet(scale=1, num_feat=8, num_block=1, num_grow_ch=32)),
    "rrdb-x2": (RRDB, lambda: RRDBNet(scale=2, num_feat=8, num_block=2, num_grow_ch=32)),
    "rrdb-x4": (RRDB, lambda: RRDBNet(scale=4, num_feat=8, num_block=1, num_grow_ch=32)),
    "rrdb-x2-gray": (RRDB, lambda: RRDBNet(1, 1, scale=2, num_feat=8, num_block=1, num_grow_ch=4)),
    "msrresnet-x2": (MSRRESNET, lambda: MSRResNet(num_feat=8, num_block=2, upscale=2)),
    "msrresnet-x3": (MSRRESNET, lambda: MSRResNet(num_feat=8, num_block=1, upscale=3)),
    "msrresnet-x4": (MSRRESNET, lambda: MSRResNet(num_feat=8, num_block=2, upscale=4)),
    "srresnet-x4": (SRRESNET, lambda: SRResNet(num_feat=8, num_block=2, upscale=4)),
    "srresnet-x2-chprelu": (
        SRRESNET,
        lambda: SRResNet(num_feat=8, num_block=1, upscale=2, prelu_per_channel=True),
    ),
    "srresnet-x3": (SRRESNET, lambda: SRResNet(num_feat=8, num_block=1, upscale=3)),
    "srresnet-x8": (SRRESNET, lambda: SRResNet(num_feat=4, num_block=1, upscale=8)),
}


def randomize_(module: nn.Module) -> nn.Module:
    """Give PReLU slopes and BatchNorm statistics non-default values, so loading them is actually tested."""
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.PReLU):
                m.weight.copy_(torch.rand(m.weight.shape, generator=gen) * 0.5)
            elif isinstance(m, nn.BatchNorm2d):
                m.weight.copy_(1 + 0.2 * torch.randn(m.weight.shape, generator=gen))
                m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=gen))
                m.running_mean.copy_(0.1 * torch.randn(m.running_mean.shape, generator=gen))
                m.running_var.copy_(0.5 + torch.rand(m.running_var.shape, generator=gen))
    return module.eval()


def make(case: str) -> nn.Module:
    torch.manual_seed(0)
    return randomize_(CASES[case][1]())


def image(channels: int = 3, h: int = 12, w: int = 12) -> torch.Tensor:
    return torch.rand(1, channels, h, w, generator=torch.Generator().manual_seed(2))


@pytest.mark.parametrize("case", CASES)
def test_output_shape_and_scale(case: str) -> None:
    net = make(case)
    x = image(net.num_in_ch, 8, 12)
    with torch.no_grad():
        y = net(x)
    assert y.shape == (1, net.num_out_ch, 8 * net.scale, 12 * net.scale)
    assert torch.isfinite(y).all()


@pytest.mark.parametrize("case", CASES)
def test_detection_reads_back_the_constructor_arguments(case: str) -> None:
    arch, _ = CASES[case]
    net = make(case)
    found = detect_architecture(net.state_dict())
    assert found is not None and found[0] is arch
    assert arch.read_params(found[1]) == net.hyperparams
    assert params_of(net) == (arch.name, net.hyperparams)
    # Exactly one architecture claims these keys: the registry order must not be what decides.
    assert [a.name for a in ARCHITECTURES if a.detect(a.convert_keys(net.state_dict()))] == [arch.name]


@pytest.mark.parametrize("case", CASES)
def test_rebuilt_from_params_matches(case: str) -> None:
    arch, _ = CASES[case]
    net = make(case)
    rebuilt = arch.build(arch.read_params(net.state_dict()))
    rebuilt.load_state_dict(net.state_dict(), strict=True)
    x = image(net.num_in_ch)
    with torch.no_grad():
        assert torch.equal(rebuilt.eval()(x), net(x))


def test_registry_lookup_and_wrapped_modules() -> None:
    assert [a.name for a in ARCHITECTURES] == ["rrdb", "srvgg", "srresnet", "msrresnet"]
    assert by_name("rrdb") is RRDB and by_name("RRDBNet") is RRDB and by_name("nope") is None
    net = make("srvgg-x2")
    assert params_of(nn.DataParallel(net)) == params_of(net)
    with pytest.raises(ValueError):
        params_of(nn.Conv2d(3, 3, 3))


def test_unknown_keys_are_not_claimed() -> None:
    assert detect_architecture(nn.Sequential(nn.Conv2d(3, 8, 3), nn.Linear(8, 2)).state_dict()) is None
    assert detect_architecture({"conv_first.weight": torch.zeros(8, 3, 3, 3)}) is None


def test_full_size_key_layouts() -> None:
    # Built on the meta device: only names and shapes matter here.
    with torch.device("meta"):
        x4plus = RRDBNet()  # RealESRGAN_x4plus: 23 blocks, 64 features, 32 grow channels
        x2plus = RRDBNet(scale=2)
        general = SRVGGNetCompact(num_feat=64, num_conv=32, upscale=4)  # realesr-general-x4v3
        anime = SRVGGNetCompact(num_feat=64, num_conv=16, upscale=4)  # realesr-animevideov3
    sd = x4plus.state_dict()
    assert len(sd) == 702 and sum(t.numel() for t in sd.values()) == 16_697_987
    assert {"body.22.rdb3.conv5.weight", "conv_body.bias", "conv_up2.weight", "conv_hr.weight"} <= set(sd)
    assert RRDB.read_params(sd) == x4plus.hyperparams
    assert x2plus.state_dict()["conv_first.weight"].shape == (64, 12, 3, 3)
    assert RRDB.read_params(x2plus.state_dict())["scale"] == 2
    assert "body.66.weight" in general.state_dict() and "body.67.weight" not in general.state_dict()
    assert general.state_dict()["body.66.weight"].shape == (48, 64, 3, 3)
    assert SRVGG.read_params(general.state_dict()) == general.hyperparams
    assert SRVGG.read_params(anime.state_dict())["num_conv"] == 16


def _spandrel(sd: dict[str, torch.Tensor]) -> nn.Module:
    return spandrel.ModelLoader().load_from_state_dict(sd).model.eval()


@pytest.mark.parametrize(
    ("case", "size"),
    [
        ("rrdb-x1", (16, 16)),
        ("rrdb-x2", (12, 12)),
        ("rrdb-x4", (10, 10)),
        ("rrdb-x2", (11, 13)),
        ("rrdb-x1", (13, 10)),
    ],
)
def test_rrdb_matches_spandrel(case: str, size: tuple[int, int]) -> None:
    net = make(case)
    x = image(3, *size)  # odd sizes exercise the padding around pixel-unshuffle
    with torch.no_grad():
        torch.testing.assert_close(net(x), _spandrel(net.state_dict())(x), atol=1e-5, rtol=0)


@pytest.mark.parametrize("case", ["srvgg-x2", "srvgg-x4"])
def test_srvgg_matches_spandrel(case: str) -> None:
    net = make(case)
    x = image()
    with torch.no_grad():
        torch.testing.assert_close(net(x), _spandrel(net.state_dict())(x), atol=1e-5, rtol=0)


def test_old_esrgan_keys_convert_to_basicsr_names() -> None:
    net = make("rrdb-x4")
    sd = net.state_dict()
    # spandrel's ESRGAN network is the original flat nn.Sequential, so its state dict has the old keys.
    old = _spandrel(sd).state_dict()
    assert "model.1.sub.0.RDB1.conv1.0.weight" in old and "model.10.weight" in old
    converted = convert_keys(old)
    assert set(converted) == set(sd)
    assert all(torch.equal(converted[k], sd[k]) for k in sd)


def test_esrgan_repo_keys_convert_to_basicsr_names() -> None:
    sd = make("rrdb-x4").state_dict()
    renames = [
        (r"^body\.(\d+)\.rdb", r"RRDB_trunk.\1.RDB"),
        (r"^conv_body\.", "trunk_conv."),
        (r"^conv_up", "upconv"),
        (r"^conv_hr\.", "HRconv."),
    ]
    renamed = {}
    for key, value in sd.items():
        for pattern, repl in renames:
            key = re.sub(pattern, repl, key)
        renamed[key] = value
    assert "RRDB_trunk.0.RDB2.conv3.weight" in renamed and "HRconv.bias" in renamed
    converted = convert_keys(renamed)
    assert set(converted) == set(sd) and all(torch.equal(converted[k], sd[k]) for k in sd)
    assert convert_keys(sd) is sd


def test_rrdb_refuses_other_upsampling_depths() -> None:
    old = _spandrel(make("rrdb-x4").state_dict()).state_dict()
    # Drop one upsampling conv (model.3) and shift the tail: the layout of an old ×2 ESRGAN.
    x2 = {k: v for k, v in old.items() if not k.startswith(("model.3.", "model.6.", "model.8.", "model.10."))}
    x2 |= {"model.3.weight": old["model.6.weight"], "model.3.bias": old["model.6.bias"]}
    x2 |= {"model.5.weight": old["model.8.weight"], "model.5.bias": old["model.8.bias"]}
    x2 |= {"model.7.weight": old["model.10.weight"], "model.7.bias": old["model.10.bias"]}
    converted = convert_keys(x2)
    assert RRDB.detect(converted)
    with pytest.raises(ValueError, match="1 upsampling stage"):
        RRDB.read_params(converted)


def _conv(sd: dict[str, torch.Tensor], x: torch.Tensor, name: str) -> torch.Tensor:
    w = sd[f"{name}.weight"]
    return F.conv2d(x, w, sd.get(f"{name}.bias"), padding=w.shape[-1] // 2)


def _msrresnet_reference(sd: dict[str, torch.Tensor], x: torch.Tensor, upscale: int) -> torch.Tensor:
    """BasicSR's MSRResNet forward pass written out from its description, straight from the tensors."""
    feat = F.leaky_relu(_conv(sd, x, "conv_first"), 0.1)
    for i in range(sum(1 for k in sd if k.endswith(".conv1.weight"))):
        feat = feat + _conv(sd, F.relu(_conv(sd, feat, f"body.{i}.conv1")), f"body.{i}.conv2")
    num_feat = sd["conv_first.weight"].shape[0]
    for name in ("upconv1", "upconv2"):
        if f"{name}.weight" in sd:
            r = math.isqrt(sd[f"{name}.weight"].shape[0] // num_feat)
            feat = F.leaky_relu(F.pixel_shuffle(_conv(sd, feat, name), r), 0.1)
    out = _conv(sd, F.leaky_relu(_conv(sd, feat, "conv_hr"), 0.1), "conv_last")
    return out + F.interpolate(x, scale_factor=upscale, mode="bilinear", align_corners=False)


def _srresnet_reference(sd: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """The SRGAN generator of Ledig et al., in functional form, under our key names."""

    def bn(t: torch.Tensor, name: str) -> torch.Tensor:
        return F.batch_norm(
            t, sd[f"{name}.running_mean"], sd[f"{name}.running_var"], sd[f"{name}.weight"], sd[f"{name}.bias"]
        )

    feat = F.prelu(_conv(sd, x, "conv_first"), sd["act_first.weight"])
    out = feat
    for i in range(sum(1 for k in sd if k.endswith(".bn1.weight"))):
        res = F.prelu(bn(_conv(sd, out, f"body.{i}.conv1"), f"body.{i}.bn1"), sd[f"body.{i}.act.weight"])
        out = out + bn(_conv(sd, res, f"body.{i}.conv2"), f"body.{i}.bn2")
    out = bn(_conv(sd, out, "conv_body"), "bn_body") + feat
    num_feat = sd["conv_first.weight"].shape[0]
    for i in range(sum(1 for k in sd if k.startswith("upsample.") and k.endswith(".conv.weight"))):
        r = math.isqrt(sd[f"upsample.{i}.conv.weight"].shape[0] // num_feat)
        out = F.prelu(
            F.pixel_shuffle(_conv(sd, out, f"upsample.{i}.conv"), r), sd[f"upsample.{i}.act.weight"]
        )
    return _conv(sd, out, "conv_last")


@pytest.mark.parametrize("case", ["msrresnet-x2", "msrresnet-x3", "msrresnet-x4"])
def test_msrresnet_matches_functional_reference(case: str) -> None:
    net = make(case)
    x = image()
    with torch.no_grad():
        torch.testing.assert_close(
            net(x), _msrresnet_reference(net.state_dict(), x, net.scale), atol=1e-5, rtol=0
        )


@pytest.mark.parametrize("case", ["srresnet-x4", "srresnet-x2-chprelu", "srresnet-x3"])
def test_srresnet_matches_functional_reference(case: str) -> None:
    net = make(case)
    x = image()
    with torch.no_grad():
        torch.testing.assert_close(net(x), _srresnet_reference(net.state_dict(), x), atol=1e-5, rtol=0)


def test_srvgg_without_prelu_is_detected_but_needs_metadata() -> None:
    net = SRVGGNetCompact(num_feat=8, num_conv=2, upscale=2, act_type="leakyrelu")
    assert SRVGG.detect(net.state_dict())
    with pytest.raises(ValueError, match="PReLU"):
        SRVGG.read_params(net.state_dict())


def test_fresh_residual_networks_start_near_identity_scale() -> None:
    # BasicSR's 0.1-scaled init: the residual branches start small, so training from scratch is stable.
    net = RRDBNet(num_feat=16, num_block=1, num_grow_ch=8)
    kaiming_std = math.sqrt(2 / (16 * 9))
    assert net.body[0].rdb1.conv1.weight.std().item() < 0.2 * kaiming_std
    assert torch.count_nonzero(net.body[0].rdb1.conv1.bias) == 0

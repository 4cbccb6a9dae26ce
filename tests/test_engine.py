"""The Upscaler on the shipped weights: sizes, dtypes, seamless tiling, and quality above bicubic."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import shared_path

from upscaler import Upscaler, UpscalerError
from upscaler.engine import cpu_bf16_is_fast
from upscaler.image.io import read_image
from upscaler.metrics import grid_score, psnr_y
from upscaler.models.zoo import SHIPPED
from upscaler.resize import bicubic_downscale, bicubic_resize


@pytest.fixture(scope="module")
def up4() -> Upscaler:
    return Upscaler(scale=4, tile=0)


def _hr(name: str, folder: str = "Set5") -> torch.Tensor:
    rgb = read_image(shared_path("images", "bench", folder, f"{name}.png")).rgb
    return torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255


def test_shipped_defaults_on_cpu(up4: Upscaler) -> None:
    assert up4.scale == 4 and up4.loaded.arch == "srvgg"
    # bf16 where oneDNN has AMX for it (about 4x faster), fp32 elsewhere.
    assert up4.device.type == "cpu" and up4.dtype == (torch.bfloat16 if cpu_bf16_is_fast() else torch.float32)
    assert Upscaler(scale=2).scale == 2


def test_automatic_cpu_bf16_leaves_deep_samples_to_fp32(monkeypatch: pytest.MonkeyPatch) -> None:
    # bf16 steps near white are one 8-bit code: 16-bit frames would come out banded, so auto runs them in fp32.
    monkeypatch.setattr("upscaler.engine.cpu_bf16_is_fast", lambda: True)
    auto = Upscaler(scale=4, tile=0, device="cpu")
    fp32 = Upscaler(scale=4, tile=0, device="cpu", precision="fp32")
    assert auto.dtype == torch.bfloat16 and "fp32 for >8-bit" in auto.describe()
    ramp = np.linspace(0, 65535, 40 * 40 * 3).reshape(40, 40, 3).astype(np.uint16)
    assert np.array_equal(auto.upscale_array(ramp), fp32.upscale_array(ramp))
    eight = (ramp >> 8).astype(np.uint8)
    assert not np.array_equal(auto.upscale_array(eight), fp32.upscale_array(eight))  # 8-bit: bf16 did run
    # Asked for explicitly, bf16 is what runs, deep samples too.
    explicit = Upscaler(scale=4, tile=0, device="cpu", precision="bf16")
    assert not np.array_equal(explicit.upscale_array(ramp), fp32.upscale_array(ramp))


def test_cpu_bf16_output_is_fp32_output_to_within_a_code_value() -> None:
    lr = (bicubic_downscale(_hr("baby"), 4) * 255).round().to(torch.uint8)[0].permute(1, 2, 0).numpy()
    outs = {p: Upscaler(scale=4, tile=0, device="cpu", precision=p).upscale_array(lr).astype(np.float64)
            for p in ("fp32", "bf16")}
    mse = np.mean((outs["fp32"] - outs["bf16"]) ** 2)
    assert 0 < mse < 1.0, mse  # bf16 did run (not bit-equal), and stays above 48 dB PSNR from fp32


def test_tiled_equals_untiled_on_shipped_model(up4: Upscaler) -> None:
    # A real image, cut into a 3x3 grid of tiles: seams must not show.
    lr = (bicubic_downscale(_hr("butterfly"), 2) * 255).round().to(torch.uint8)  # 128x128
    frame = lr[0].permute(1, 2, 0).numpy()
    whole = up4.upscale_array(frame).astype(np.int16)
    tiled = Upscaler(scale=4, tile=48, tile_overlap=32).upscale_array(frame).astype(np.int16)
    diff = np.abs(whole - tiled)
    assert whole.shape == (512, 512, 3)
    assert diff.max() <= 2 and diff.mean() <= 0.1, (diff.max(), diff.mean())


def test_tiles_without_overlap_would_show_seams(up4: Upscaler) -> None:
    # The bound above is only meaningful if tiling without context really differs.
    lr = (bicubic_downscale(_hr("butterfly"), 2) * 255).round().to(torch.uint8)
    frame = lr[0].permute(1, 2, 0).numpy()
    whole = up4.upscale_array(frame).astype(np.int16)
    naive = Upscaler(scale=4, tile=48, tile_overlap=0).upscale_array(frame).astype(np.int16)
    assert np.abs(whole - naive).max() > 2


@pytest.mark.parametrize("shape", [(37, 53), (1, 1), (90, 160)])
def test_output_size_is_scale_times_input(up4: Upscaler, shape: tuple[int, int]) -> None:
    frames = np.random.default_rng(0).integers(0, 256, (2, *shape, 3), dtype=np.uint8)
    out = up4.upscale_array(frames)
    assert out.shape == (2, shape[0] * 4, shape[1] * 4, 3) and out.dtype == np.uint8


def test_outscale_resizes_after_the_model() -> None:
    up = Upscaler(scale=4, outscale=3)
    out = up.upscale_array(np.zeros((30, 41, 3), np.uint8))
    assert out.shape == (90, 123, 3)


def test_uint16_stays_uint16_with_full_range(up4: Upscaler) -> None:
    frame = (np.linspace(0, 65535, 24 * 32 * 3).reshape(24, 32, 3)).astype(np.uint16)
    out = up4.upscale_array(frame)
    assert out.dtype == np.uint16 and out.max() > 60000


def test_bad_arguments_are_user_errors() -> None:
    with pytest.raises(UpscalerError):
        Upscaler(scale=4, device="cuda" if not torch.cuda.is_available() else "nonsense")
    with pytest.raises(UpscalerError):
        Upscaler(scale=4, outscale=-1)


def _set5_psnr(up: Upscaler) -> tuple[float, float]:
    ours, base = [], []
    for name in ("baby", "bird", "butterfly", "head", "woman"):
        hr = _hr(name)
        lr = (bicubic_downscale(hr, up.scale) * 255).round() / 255
        ours.append(psnr_y(up.upscale_tensor(lr), hr, crop_border=up.scale))
        base.append(psnr_y(bicubic_resize(lr, hr.shape[-2:]), hr, crop_border=up.scale))
    return float(np.mean(ours)), float(np.mean(base))


@pytest.mark.parametrize("name", [entry.name for entry in SHIPPED])
def test_every_shipped_model_beats_bicubic_on_set5(name: str) -> None:
    # The PSNR models by a wide margin; the GAN ones trade some PSNR for texture but must stay above bicubic. The
    # real-footage x2 L1 model learnt to leave fine detail alone that could be codec damage: +0.8 dB on clean Set5.
    ours, base = _set5_psnr(Upscaler(name, tile=0))
    margin = 0.3 if not name.endswith("-psnr") else 0.6 if name == "compact-x2-psnr" else 1.0
    assert ours > base + margin, (ours, base)


def test_the_default_x4_meets_the_clean_set5_target() -> None:
    # The bound: the default at least bicubic + 1.0 dB on clean Set5. Measured 29.52 against 28.43 at its
    # default strength 0.8; the GAN weights alone (strength 1) reach only 29.37, so this also guards the default.
    ours, base = _set5_psnr(Upscaler(tile=0))
    assert ours > base + 1.0, (ours, base)


def _detail(x: torch.Tensor) -> float:
    """Mean absolute Laplacian of the luma: how much fine texture an image holds."""
    y = (x * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)
    kernel = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]]).view(1, 1, 3, 3)
    return float(F.conv2d(y, kernel).abs().mean())


@pytest.mark.parametrize("scale", [4, 2])
def test_default_gan_model_restores_texture_the_psnr_model_smooths(scale: int) -> None:
    # Baboon fur: the L1 model averages it away; the GAN default must put back clearly more of it (and not
    # invent more than the real image has).
    hr = _hr("baboon", "Set14")
    lr = (bicubic_downscale(hr, scale) * 255).round() / 255
    gan = _detail(Upscaler(scale=scale, tile=0).upscale_tensor(lr))
    psnr = _detail(Upscaler(f"compact-x{scale}-psnr", tile=0).upscale_tensor(lr))
    # x2's real-footage GAN keeps L1 at weight 1 against codec damage and adds less: 1.13x measured (x4: 1.2x+).
    assert (1.15 if scale == 4 else 1.08) * psnr < gan < _detail(hr), (psnr, gan, _detail(hr))


@pytest.mark.parametrize("scale", [4, 2])
def test_default_gan_model_grows_no_pixel_shuffle_grid(scale: int) -> None:
    # A GAN pushed too hard paints a period-`scale` checkerboard over flat areas (our x4 runs at adversarial
    # weight 0.2 scored 50-220 on Set14); the shipped one must stay within 3x the L1 model's score.
    gan, psnr = Upscaler(scale=scale, tile=0), Upscaler(f"compact-x{scale}-psnr", tile=0)
    scores = {"gan": [], "psnr": []}
    for path in sorted(shared_path("images", "bench", "Set14").glob("*.png")):
        hr = torch.from_numpy(read_image(path).rgb).permute(2, 0, 1)[None].float() / 255
        lr = (bicubic_downscale(hr, scale) * 255).round() / 255
        scores["gan"].append(grid_score(gan.upscale_tensor(lr), scale))
        scores["psnr"].append(grid_score(psnr.upscale_tensor(lr), scale))
    assert np.mean(scores["gan"]) < 3 * np.mean(scores["psnr"]), scores


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_fp16_matches_fp32() -> None:
    frame = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    fp16 = Upscaler(scale=4, device="cuda").upscale_array(frame).astype(np.int16)
    fp32 = Upscaler(scale=4, device="cuda", precision="fp32").upscale_array(frame).astype(np.int16)
    assert np.abs(fp16 - fp32).max() <= 3


def test_tile_smaller_than_overlap_keeps_brightness(up4: Upscaler) -> None:
    # The overlap is clamped to the tile: otherwise a core's two ramps cross and weights pass 1.
    lr = (bicubic_downscale(_hr("butterfly"), 4) * 255).round().to(torch.uint8)  # 64x64
    frame = lr[0].permute(1, 2, 0).numpy()
    whole = up4.upscale_array(frame).astype(np.float64)
    small = Upscaler(scale=4, tile=16, tile_overlap=32).upscale_array(frame).astype(np.float64)
    assert abs(small.mean() - whole.mean()) < 0.5 and np.abs(small - whole).mean() < 1.0


def test_half_precision_output_keeps_sixteen_bit_white_and_resizes() -> None:
    # Untiled, the network's own bf16 output would round 1.0 * 65535 up to 65536, which wraps to black.
    up = Upscaler(scale=2, tile=0, device="cpu", precision="bf16", outscale=3)
    white = np.full((1, 6, 8, 3), 65535, np.uint16)
    out = up.upscale_array(white)
    assert out.shape == (1, 18, 24, 3) and out.dtype == np.uint16
    assert out.min() > 60000, out.min()


def test_planes_to_a_shallower_format_of_odd_length() -> None:
    from upscaler.video.planes import layout_for

    up = Upscaler(scale=2, device="cpu", outscale=3)
    src, dst = layout_for("yuv444p10le", 11, 7, 1, False), layout_for("yuv444p", 33, 21, 1, False)
    frames = np.full((2, src.length), 512, np.uint16)
    frames[:, : src.luma_length] = 400
    out = up.upscale_planes(frames, src, dst)
    assert out.shape == (2, dst.length) and dst.length % 2 == 1 and out.dtype == np.uint8
    assert np.abs(out[:, : dst.luma_length].astype(int) - 100).max() <= 1  # 10-bit 400 is 8-bit 100
    assert np.abs(out[:, dst.luma_length :].astype(int) - 128).max() <= 1


def test_no_frames_is_a_user_error(up4: Upscaler) -> None:
    with pytest.raises(UpscalerError, match="no frames"):
        up4.upscale_array(np.zeros((0, 8, 8, 3), np.uint8))

"""--strength / --blend: network interpolation of two models' weights, on the shipped weights and real images."""

from __future__ import annotations

import copy
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from conftest import REPO, shared_path

from upscaler import ModelLoadError, Upscaler, UpscalerError, load_model, save_model
from upscaler.archs import RRDBNet, SRResNet, SRVGGNetCompact
from upscaler.cli import main
from upscaler.image.io import Image, read_image, write_image
from upscaler.models.blend import blend_models, check_compatible
from upscaler.resize import bicubic_downscale

WEIGHTS = REPO / "weights"
GAN, PSNR = WEIGHTS / "srvgg-x4-real-gan.safetensors", WEIGHTS / "srvgg-x4-real-psnr.safetensors"


def _up(model: object = "default", **kw: object) -> Upscaler:
    # fp32 on the CPU, whole frames: the comparisons below are exact.
    return Upscaler(model, device="cpu", precision="fp32", tile=0, **kw)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def synthetic() -> np.ndarray:
    """A 40x40 RGB image with edges, a gradient and noise: needs nothing from shared/."""
    rng = np.random.default_rng(7)
    yy, xx = np.mgrid[:40, :40]
    img = np.stack([xx * 6, yy * 6, ((xx // 8 + yy // 8) % 2) * 200], axis=-1) + rng.normal(0, 12, (40, 40, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def baby_lr() -> np.ndarray:
    """A 48x48 LR crop of Set5's baby (its HR 192x192 crop downscaled x4, bicubic)."""
    rgb = read_image(shared_path("images", "bench", "Set5", "baby.png")).rgb[200:392, 160:352]
    hr = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None].float() / 255
    lr = (bicubic_downscale(hr, 4).clamp(0, 1) * 255).round().to(torch.uint8)
    return lr[0].permute(1, 2, 0).numpy()


def _sharpness(rgb: np.ndarray) -> float:
    """Mean absolute Laplacian of the Y channel (BT.601), in [0,1] units."""
    y = (rgb.astype(np.float64) @ np.array([0.299, 0.587, 0.114])) / 255
    return float(np.abs(cv2.Laplacian(y, cv2.CV_64F)).mean())


def run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args), env=env)
    return result.exit_code, result.stdout, result.stderr


def assert_one_line_error(code: int, stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert code != 0
    assert len(lines) == 1 and lines[0].startswith("upscale: error: "), stderr
    assert "Traceback" not in stderr
    return lines[0]


# -- the blend itself ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("image", ["synthetic", "baby_lr"])
def test_endpoints_reproduce_each_model_bit_exactly(image: str, request: pytest.FixtureRequest) -> None:
    lr = request.getfixturevalue(image)
    gan, psnr = _up(GAN).upscale_array(lr), _up("compact-x4-psnr").upscale_array(lr)
    assert not np.array_equal(gan, psnr)
    # The implied partner (default model) and the explicit pair of files give the same endpoints.
    assert np.array_equal(_up(strength=1).upscale_array(lr), gan)
    assert np.array_equal(_up(strength=0).upscale_array(lr), psnr)
    assert np.array_equal(_up(GAN, blend=PSNR, strength=1).upscale_array(lr), gan)
    assert np.array_equal(_up(GAN, blend=PSNR, strength=0).upscale_array(lr), psnr)
    middle = _up(strength=0.5).upscale_array(lr)
    assert not np.array_equal(middle, gan) and not np.array_equal(middle, psnr)


def test_the_default_runs_at_its_default_strength_and_a_file_as_it_is(synthetic: np.ndarray) -> None:
    # `compact-x4` (and the default) is the GAN model blended 0.8 with its L1 partner unless told otherwise; its
    # file named by path is the GAN model alone, and an explicit strength wins over the default one.
    default = _up().upscale_array(synthetic)
    assert np.array_equal(default, _up(strength=0.8).upscale_array(synthetic))
    assert np.array_equal(_up("compact-x4").upscale_array(synthetic), default)
    gan = _up(GAN).upscale_array(synthetic)
    assert not np.array_equal(gan, default)
    assert np.array_equal(_up("compact-x4", strength=1).upscale_array(synthetic), gan)
    assert "strength 0.8" in _up().describe()
    # The other named models have no default strength: the name means the file.
    assert np.array_equal(_up("compact-x4-clean").upscale_array(synthetic),
                          _up(WEIGHTS / "srvgg-x4-gan.safetensors").upscale_array(synthetic))


def test_a_resumable_job_is_keyed_on_the_strength() -> None:
    # A video job started at one strength must be found stale at another (its segments differ), and the default
    # strength is the same job as that strength given explicitly.
    assert _up().model_key() == _up(strength=0.8).model_key() == _up("compact-x4").model_key()
    keys = {_up(strength=s).model_key() for s in (0.0, 0.5, 0.8, 1.0)}
    assert len(keys) == 4


def test_sharpness_grows_with_strength(baby_lr: np.ndarray) -> None:
    sharp = [_sharpness(_up(strength=s).upscale_array(baby_lr)) for s in (0, 0.25, 0.5, 0.75, 1)]
    assert all(a < b for a, b in zip(sharp, sharp[1:], strict=False)), sharp


def test_weights_at_half_are_the_average_and_inputs_are_untouched() -> None:
    a, b = load_model(GAN), load_model(PSNR)
    before_a = {k: v.clone() for k, v in a.module.state_dict().items()}
    half = blend_models(a, b, 0.5).module.state_dict()
    sa, sb = a.module.state_dict(), b.module.state_dict()
    assert half.keys() == sa.keys()
    for key, value in half.items():
        assert value.dtype == torch.float32
        assert torch.equal(value, (sa[key] + sb[key]) / 2), key
        assert torch.equal(sa[key], before_a[key]), key  # A was copied, not blended in place
    # Strength is A's share: at 0.3 the weights are 0.3 A + 0.7 B, nearer B's.
    low = blend_models(a, b, 0.3).module.state_dict()
    key = "body.0.weight"
    assert torch.allclose(low[key], 0.3 * sa[key] + 0.7 * sb[key], rtol=0, atol=1e-7)
    assert (low[key] - sb[key]).abs().sum() < (low[key] - sa[key]).abs().sum()


def test_blend_happens_in_fp32_before_the_precision_cast() -> None:
    reference = blend_models(load_model(GAN), load_model(PSNR), 0.37).module.state_dict()
    up = Upscaler(strength=0.37, device="cpu", precision="bf16", tile=0)
    for key, value in up.net.state_dict().items():
        assert value.dtype == torch.bfloat16
        assert torch.equal(value, reference[key].to(torch.bfloat16)), key


def test_describe_names_the_blend() -> None:
    assert "compact-x4 blended with compact-x4-psnr at strength 0.5" in _up(strength=0.5).describe()
    assert "compact-x2 blended with compact-x2-psnr at strength 0.25" in _up(scale=2, strength=0.25).describe()
    # A shipped file given by path still finds its partner.
    assert "compact-x2 blended with compact-x2-psnr" in _up(WEIGHTS / "srvgg-x2-real-gan.safetensors",
                                                            strength=0.5).describe()
    assert "blended" not in _up(GAN).describe() and "blended" not in _up("compact-x4-clean").describe()
    assert "compact-x2 blended with compact-x2-psnr at strength 0.8" in _up(scale=2).describe()


def test_non_float_tensors_come_from_a(tmp_path: Path) -> None:
    torch.manual_seed(0)
    nets = [SRResNet(num_feat=8, num_block=1, upscale=2) for _ in range(2)]
    for count, net in zip((3, 11), nets, strict=True):
        net.body[0].bn1.num_batches_tracked.fill_(count)
    save_model(nets[0], tmp_path / "a.safetensors")
    save_model(nets[1], tmp_path / "b.safetensors")
    a, b = load_model(tmp_path / "a.safetensors"), load_model(tmp_path / "b.safetensors")
    for strength in (0, 0.4):
        state = blend_models(a, b, strength).module.state_dict()
        assert state["body.0.bn1.num_batches_tracked"].item() == 3
        assert state["body.0.bn1.num_batches_tracked"].dtype == torch.int64
    assert torch.equal(blend_models(a, b, 0).module.state_dict()["body.0.bn1.running_var"],
                       b.module.state_dict()["body.0.bn1.running_var"])


# -- mismatches ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def odd_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("odd")
    torch.manual_seed(0)
    save_model(RRDBNet(num_feat=8, num_block=1, num_grow_ch=4, scale=4), folder / "rrdb.safetensors")
    save_model(SRVGGNetCompact(num_feat=32, num_conv=16, upscale=4), folder / "narrow.safetensors")
    return {"rrdb": folder / "rrdb.safetensors", "narrow": folder / "narrow.safetensors"}


def test_mismatched_architecture_is_one_line(odd_models: dict[str, Path]) -> None:
    with pytest.raises(ModelLoadError) as err:
        _up(GAN, blend=odd_models["rrdb"], strength=0.5)
    message = str(err.value)
    assert "\n" not in message and "compact-x4" in message and str(odd_models["rrdb"]) in message
    assert "A is srvgg x4, B is rrdb x4" in message
    with pytest.raises(ModelLoadError, match=r"A is srvgg x4 \(num_feat=64\), B is srvgg x4 \(num_feat=32\)"):
        _up(GAN, blend=odd_models["narrow"], strength=0.5)
    # Different scales, and the endpoints are checked too (no shortcut past the check).
    with pytest.raises(ModelLoadError, match="A is srvgg x4, B is srvgg x2"):
        _up(GAN, blend="compact-x2-psnr", strength=1)


def test_mismatched_tensors_are_named_with_their_shapes() -> None:
    a, b = load_model(GAN), load_model(PSNR)
    # Same declared parameters, different tensors: what only hand-made models can do, caught all the same.
    bent = copy.deepcopy(b)
    bent.module.body[2] = torch.nn.Conv2d(64, 32, 3, 1, 1)
    with pytest.raises(ModelLoadError) as err:
        check_compatible(a, bent)
    assert str(err.value) == ("cannot blend A=compact-x4 with B=compact-x4-psnr: "
                              "tensor body.2.weight is [64,64,3,3] in A but [32,64,3,3] in B")
    extra = copy.deepcopy(b)
    extra.module.register_buffer("stray", torch.zeros(1))
    with pytest.raises(ModelLoadError, match=r"the tensors differ \(only in B: stray\)"):
        blend_models(a, extra, 0.5)


def test_strength_is_checked_in_the_api() -> None:
    with pytest.raises(UpscalerError, match="between 0 and 1"):
        _up(strength=1.5)
    with pytest.raises(UpscalerError, match="--blend needs --strength"):
        _up(blend="compact-x4-psnr")
    with pytest.raises(ModelLoadError, match="compact-x4-psnr has no known partner.*--blend FILE"):
        _up("compact-x4-psnr", strength=0.5)


# -- the CLI ------------------------------------------------------------------------------------------------


@pytest.fixture
def small_png(tmp_path: Path, synthetic: np.ndarray) -> Path:
    path = tmp_path / "small.png"
    write_image(path, Image(rgb=synthetic))
    return path


def test_cli_strength_matches_the_api(small_png: Path, synthetic: np.ndarray) -> None:
    out = small_png.with_name("out.png")
    code, _, err = run("image", str(small_png), "-o", str(out), "--strength", "0.25", "--precision", "fp32",
                       "--device", "cpu", "-q")
    assert code == 0, err
    assert np.array_equal(read_image(out).rgb, _up(strength=0.25).upscale_array(synthetic))
    code, _, err = run("image", str(small_png), "-o", str(out), "--overwrite", "-m", str(PSNR), "--blend",
                       str(GAN), "--strength", "0.75", "--precision", "fp32", "--device", "cpu", "-q")
    assert code == 0, err
    assert np.array_equal(read_image(out).rgb, _up(PSNR, blend=GAN, strength=0.75).upscale_array(synthetic))


def test_cli_mismatched_files_fail_in_one_line(small_png: Path, odd_models: dict[str, Path]) -> None:
    code, _, err = run("image", str(small_png), "--blend", str(odd_models["rrdb"]), "--strength", "0.5", "-q")
    line = assert_one_line_error(code, err)
    assert "compact-x4" in line and "rrdb.safetensors" in line and "rrdb x4" in line
    assert not small_png.with_name("small_x4.png").exists()


def test_cli_strength_without_a_partner(small_png: Path) -> None:
    code, _, err = run("image", str(small_png), "-m", "compact-x4-psnr", "--strength", "0.5", "-q")
    line = assert_one_line_error(code, err)
    assert "compact-x4-psnr" in line and "--blend FILE" in line


def test_cli_blend_without_strength(small_png: Path) -> None:
    line = assert_one_line_error(*run("image", str(small_png), "--blend", str(PSNR), "-q")[::2])
    assert "--strength" in line


@pytest.mark.parametrize("command", ["image", "video", "batch"])
def test_cli_strength_out_of_range_is_refused_by_click(small_png: Path, command: str) -> None:
    args = [command, str(small_png)] + ([str(small_png.parent / "out")] if command == "batch" else [])
    code, _, err = run(*args, "--strength", "1.5")
    assert code == 2 and "--strength" in err and "0<=x<=1" in err


def test_models_lists_the_strength_partners() -> None:
    code, out, _ = run("models", env={"COLUMNS": "200"})
    assert code == 0
    # Each shipped GAN model names its PSNR partner; the partners themselves have none.
    assert "--strength partner: compact-x4-psnr" in out and "--strength partner: compact-x2-psnr" in out
    assert "--strength partner: compact-x4-clean-psnr" in out and "--strength partner: compact-x2-clean-psnr" in out
    assert out.count("--strength partner:") == 4 and "--blend FILE" in out
    assert out.count("default strength") == 2 and "compact-x4-psnr, default strength 0.8" in out
    assert "compact-x2-psnr, default strength 0.8" in out

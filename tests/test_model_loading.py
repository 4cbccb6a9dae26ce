"""load_model/save_model: every file layout round-trips to the same outputs, real-world layouts match
spandrel, and every user-caused failure is a one-line ModelLoadError."""

from __future__ import annotations

import json
import os
import pickle
from collections.abc import Callable
from pathlib import Path

import pytest
import spandrel
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from upscaler.archs import MSRResNet, RRDBNet, SRResNet, SRVGGNetCompact
from upscaler.errors import ModelLoadError
from upscaler.models.loading import LoadedModel, load_model, save_model


def randomize_(module: nn.Module) -> nn.Module:
    """Non-default PReLU slopes and BatchNorm statistics, so that loading them is really checked."""
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.PReLU):
                m.weight.copy_(torch.rand(m.weight.shape, generator=gen) * 0.5)
            elif isinstance(m, nn.BatchNorm2d):
                m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=gen))
                m.running_mean.copy_(0.1 * torch.randn(m.running_mean.shape, generator=gen))
                m.running_var.copy_(0.5 + torch.rand(m.running_var.shape, generator=gen))
    return module.eval()


# name -> (factory, expected arch, expected scale)
MODELS: dict[str, tuple[Callable[[], nn.Module], str, int]] = {
    "srvgg-x2": (lambda: SRVGGNetCompact(num_feat=8, num_conv=3, upscale=2), "srvgg", 2),
    "srvgg-x4": (lambda: SRVGGNetCompact(num_feat=8, num_conv=2, upscale=4), "srvgg", 4),
    "rrdb-x1": (lambda: RRDBNet(scale=1, num_feat=8, num_block=1, num_grow_ch=8), "rrdb", 1),
    "rrdb-x2": (lambda: RRDBNet(scale=2, num_feat=8, num_block=2, num_grow_ch=8), "rrdb", 2),
    "rrdb-x4": (lambda: RRDBNet(scale=4, num_feat=8, num_block=1, num_grow_ch=8), "rrdb", 4),
    "msrresnet-x2": (lambda: MSRResNet(num_feat=8, num_block=2, upscale=2), "msrresnet", 2),
    "msrresnet-x4": (lambda: MSRResNet(num_feat=8, num_block=2, upscale=4), "msrresnet", 4),
    "srgan-x4": (lambda: SRResNet(num_feat=8, num_block=2, upscale=4), "srresnet", 4),
}


def _prefixed(sd: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {prefix + k: v for k, v in sd.items()}


# layout -> writer(module, directory) -> path
LAYOUTS: dict[str, Callable[[nn.Module, Path], Path]] = {
    "raw.pth": lambda m, d: _torch_save(m.state_dict(), d / "raw.pth"),
    "params_ema.pth": lambda m, d: _torch_save({"params_ema": m.state_dict()}, d / "ema.pth"),
    "params.pt": lambda m, d: _torch_save({"params": m.state_dict()}, d / "params.pt"),
    "state_dict-module.ckpt": lambda m, d: _torch_save(
        {"state_dict": _prefixed(m.state_dict(), "module."), "epoch": 3}, d / "dp.ckpt"
    ),
    "plain.safetensors": lambda m, d: _save_file(m.state_dict(), d / "plain.safetensors"),
    "save_model.safetensors": lambda m, d: _save_model(m, d / "ours.safetensors"),
}


def _torch_save(obj: object, path: Path) -> Path:
    torch.save(obj, path)
    return path


def _save_file(sd: dict[str, torch.Tensor], path: Path) -> Path:
    save_file({k: v.contiguous() for k, v in sd.items()}, path)
    return path


def _save_model(module: nn.Module, path: Path) -> Path:
    save_model(module, path)
    return path


def _image(h: int = 12, w: int = 12) -> torch.Tensor:
    return torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(2))


def _assert_ready(loaded: LoadedModel) -> None:
    assert not loaded.module.training
    for t in loaded.module.parameters():
        assert t.device.type == "cpu" and t.dtype == torch.float32 and not t.requires_grad


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("model", MODELS)
def test_every_layout_round_trips(model: str, layout: str, tmp_path: Path) -> None:
    factory, arch, scale = MODELS[model]
    torch.manual_seed(0)
    net = randomize_(factory())
    path = LAYOUTS[layout](net, tmp_path)

    loaded = load_model(path)

    assert (loaded.arch, loaded.scale, loaded.in_channels, loaded.out_channels) == (arch, scale, 3, 3)
    assert loaded.params == net.hyperparams and loaded.source == str(path)
    _assert_ready(loaded)
    x = _image()
    with torch.no_grad():
        torch.testing.assert_close(loaded.module(x), net(x), atol=1e-6, rtol=0)


def test_load_from_a_state_dict_does_not_alias_it() -> None:
    net = randomize_(SRVGGNetCompact(num_feat=8, num_conv=2, upscale=2))
    sd = net.state_dict()
    loaded = load_model(sd)
    assert loaded.source == "<state dict>" and loaded.metadata == {}
    with torch.no_grad():
        sd["body.0.weight"].add_(1.0)  # e.g. the training model taking another step
    assert not torch.equal(loaded.module.state_dict()["body.0.weight"], sd["body.0.weight"])


def test_params_ema_is_preferred_over_params(tmp_path: Path) -> None:
    torch.manual_seed(0)
    ema, raw = (
        SRVGGNetCompact(num_feat=8, num_conv=1, upscale=2),
        SRVGGNetCompact(num_feat=8, num_conv=1, upscale=2),
    )
    path = _torch_save({"params": raw.state_dict(), "params_ema": ema.state_dict()}, tmp_path / "both.pth")
    x = _image()
    with torch.no_grad():
        torch.testing.assert_close(load_model(path).module(x), ema.eval()(x), atol=0, rtol=0)


def test_half_precision_weights_load_as_fp32(tmp_path: Path) -> None:
    net = RRDBNet(scale=2, num_feat=8, num_block=1, num_grow_ch=8).half()
    loaded = load_model(_save_file(net.state_dict(), tmp_path / "half.safetensors"))
    _assert_ready(loaded)
    assert torch.equal(loaded.module.conv_first.weight, net.conv_first.weight.float())


def test_batchnorm_counter_may_be_absent() -> None:
    net = randomize_(SRResNet(num_feat=8, num_block=1, upscale=2))
    sd = {k: v for k, v in net.state_dict().items() if not k.endswith("num_batches_tracked")}
    x = _image()
    with torch.no_grad():
        torch.testing.assert_close(load_model(sd).module(x), net(x), atol=1e-6, rtol=0)


def test_save_model_metadata_and_atomic_write(tmp_path: Path) -> None:
    net = SRVGGNetCompact(num_feat=8, num_conv=2, upscale=4)
    path = tmp_path / "out" / "model.safetensors"
    save_model(nn.DataParallel(net), path, extra_metadata={"trained_with": "test", "config": "{}"})

    assert sorted(p.name for p in path.parent.iterdir()) == ["model.safetensors"]  # no temporary left over
    with safe_open(path, "pt") as f:
        meta = f.metadata()
    assert meta["arch"] == "srvgg" and meta["scale"] == "4" and meta["trained_with"] == "test"
    assert json.loads(meta["params"]) == net.hyperparams
    loaded = load_model(path)
    assert loaded.metadata == meta and loaded.params == net.hyperparams


def test_save_model_rejects_bad_arguments(tmp_path: Path) -> None:
    net = SRVGGNetCompact(num_feat=8, num_conv=1, upscale=2)
    with pytest.raises(ValueError, match="reserved"):
        save_model(net, tmp_path / "a.safetensors", extra_metadata={"arch": "x"})
    with pytest.raises(Exception, match=".safetensors"):
        save_model(net, tmp_path / "a.pth")
    with pytest.raises(ValueError):
        save_model(nn.Conv2d(3, 3, 3), tmp_path / "b.safetensors")
    assert list(tmp_path.iterdir()) == []


def test_metadata_covers_what_shapes_cannot_tell(tmp_path: Path) -> None:
    # LeakyReLU has no weights: only save_model's metadata can say which activation the network uses.
    net = SRVGGNetCompact(num_feat=8, num_conv=2, upscale=2, act_type="leakyrelu").eval()
    loaded = load_model(_save_model(net, tmp_path / "leaky.safetensors"))
    assert loaded.params["act_type"] == "leakyrelu"
    x = _image()
    with torch.no_grad():
        torch.testing.assert_close(loaded.module(x), net(x), atol=1e-6, rtol=0)
    with pytest.raises(ModelLoadError, match="looks like srvgg, but activation is not PReLU"):
        load_model(_save_file(net.state_dict(), tmp_path / "bare.safetensors"))


# --- real-world layouts, checked against spandrel ---


def _check_against_spandrel(path: Path, arch: str, scale: int, size: tuple[int, int] = (12, 12)) -> None:
    ours = load_model(path)
    theirs = spandrel.ModelLoader().load_from_file(path)
    assert (ours.arch, ours.scale) == (arch, scale) and theirs.scale == scale
    x = _image(*size)
    with torch.no_grad():
        torch.testing.assert_close(ours.module(x), theirs.model.eval()(x), atol=1e-5, rtol=0)


def test_realesrgan_x4plus_layout(tmp_path: Path) -> None:
    # RealESRGAN_x4plus.pth: {"params_ema": BasicSR RRDBNet} (23 blocks, 64 features there; fewer here)
    torch.manual_seed(0)
    net = RRDBNet(scale=4, num_feat=16, num_block=2, num_grow_ch=32)
    _check_against_spandrel(_torch_save({"params_ema": net.state_dict()}, tmp_path / "x4plus.pth"), "rrdb", 4)


def test_realesrgan_x2plus_layout_with_unshuffle(tmp_path: Path) -> None:
    torch.manual_seed(0)
    net = RRDBNet(scale=2, num_feat=16, num_block=2, num_grow_ch=32)
    path = _torch_save({"params_ema": net.state_dict()}, tmp_path / "x2plus.pth")
    assert load_model(path).params["num_block"] == 2
    _check_against_spandrel(path, "rrdb", 2, size=(11, 14))


def test_old_esrgan_layout(tmp_path: Path) -> None:
    # RRDB_ESRGAN_x4.pth: the original flat nn.Sequential keys (model.0, model.1.sub.N.RDBk.convj.0, ...),
    # produced here by spandrel's own ESRGAN network, which uses that layout.
    torch.manual_seed(0)
    net = RRDBNet(scale=4, num_feat=16, num_block=2, num_grow_ch=32)
    old = spandrel.ModelLoader().load_from_state_dict(net.state_dict()).model.state_dict()
    assert "model.1.sub.2.weight" in old and "trunk_conv.weight" not in old
    path = _torch_save(dict(old), tmp_path / "RRDB_ESRGAN_x4.pth")
    _check_against_spandrel(path, "rrdb", 4)
    assert load_model(path).params == net.hyperparams


@pytest.mark.parametrize(("num_conv", "wrapper"), [(32, "params"), (16, "params")])
def test_realesr_compact_layouts(num_conv: int, wrapper: str, tmp_path: Path) -> None:
    # realesr-general-x4v3.pth (64 feat, 32 conv) and realesr-animevideov3.pth (64 feat, 16 conv), full size.
    torch.manual_seed(0)
    net = randomize_(SRVGGNetCompact(num_feat=64, num_conv=num_conv, upscale=4))
    path = _torch_save({wrapper: net.state_dict()}, tmp_path / "compact.pth")
    _check_against_spandrel(path, "srvgg", 4, size=(8, 8))
    assert load_model(path).params == net.hyperparams


# --- failures ---


def _load_error(source: object) -> str:
    with pytest.raises(ModelLoadError) as info:
        load_model(source)  # type: ignore[arg-type]
    message = str(info.value)
    assert "\n" not in message and message.strip() == message and len(message) < 300
    return message


class _Payload:
    """Unpickling this creates a file: proof that a loader ran code it should not have."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (str(self.marker), "w"))


def test_missing_file_and_directory(tmp_path: Path) -> None:
    assert _load_error(tmp_path / "nope.pth") == f"{tmp_path / 'nope.pth'}: no such file"
    assert "is a directory" in _load_error(tmp_path)


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("notes.pth", b"these are not weights\n", "not a PyTorch weights file"),
        ("empty.pth", b"", "not a PyTorch weights file"),
        ("text.safetensors", b"these are not weights either\n", "not a valid .safetensors file"),
        ("weights.onnx", b"\x08\x07", "unsupported file type '.onnx'"),
    ],
)
def test_files_that_are_not_weights(name: str, content: bytes, expected: str, tmp_path: Path) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    assert expected in _load_error(path)


def test_truncated_files(tmp_path: Path) -> None:
    good = _torch_save(SRVGGNetCompact(num_feat=8, num_conv=1).state_dict(), tmp_path / "good.pth")
    (tmp_path / "cut.pth").write_bytes(good.read_bytes()[:500])
    assert "corrupt or truncated" in _load_error(tmp_path / "cut.pth")
    good = _save_file(SRVGGNetCompact(num_feat=8, num_conv=1).state_dict(), tmp_path / "good.safetensors")
    (tmp_path / "cut.safetensors").write_bytes(good.read_bytes()[:-10])
    assert "not a valid .safetensors file" in _load_error(tmp_path / "cut.safetensors")


def test_pickle_that_needs_code_is_refused_without_running_it(tmp_path: Path) -> None:
    marker = tmp_path / "code-ran"
    path = tmp_path / "evil.pth"
    torch.save({"params": {"body.0.weight": torch.zeros(1)}, "hook": _Payload(marker)}, path)
    message = _load_error(path)
    assert "arbitrary code" in message and "io.open" in message
    assert not marker.exists()
    # torch's legacy (non-zip) format is refused too.
    torch.save({"hook": _Payload(marker)}, tmp_path / "legacy.pth", _use_new_zipfile_serialization=False)
    assert "arbitrary code" in _load_error(tmp_path / "legacy.pth")
    assert not marker.exists()
    # A plain pickle.dump (not torch.save) fails torch's unpickler on an opcode before the global, but it is
    # still a file that would run code, and is called one; nothing in it runs either.
    with open(tmp_path / "plain.pth", "wb") as f:
        pickle.dump(_Payload(marker), f)
    message = _load_error(tmp_path / "plain.pth")
    assert "arbitrary code" in message and "io.open" in message and "not a PyTorch weights file" not in message
    assert not marker.exists()


@pytest.mark.parametrize("content", [bytes(range(256)) * 4, pickle.dumps({"epoch": 3}, protocol=4)])
def test_garbage_is_not_called_code(content: bytes, tmp_path: Path) -> None:
    # Random bytes and plain pickles fail the weights-only unpickler on an opcode, not on a global:
    # calling them "pickled Python objects that would run arbitrary code" sends the user the wrong way.
    (tmp_path / "junk.pth").write_bytes(content)
    message = _load_error(tmp_path / "junk.pth")
    assert "not a PyTorch weights file" in message and "arbitrary code" not in message


def test_torchscript_archive_is_refused(tmp_path: Path) -> None:
    with pytest.warns(Warning):  # torch.jit.script is deprecated in recent torch
        scripted = torch.jit.script(nn.Conv2d(3, 3, 3))
    scripted.save(str(tmp_path / "scripted.pt"))
    assert "TorchScript" in _load_error(tmp_path / "scripted.pt")


def test_unknown_architecture(tmp_path: Path) -> None:
    sd = nn.Sequential(
        nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 8, 3), nn.Flatten(), nn.Linear(8, 2)
    ).state_dict()
    path = _torch_save({"params_ema": sd}, tmp_path / "classifier.pth")
    message = _load_error(path)
    assert message == f"{path}: unknown architecture (keys: 0.weight, 0.bias, 2.weight, …, 6 tensors)"
    assert "unknown architecture" in _load_error(sd)


def test_containers_without_tensors(tmp_path: Path) -> None:
    assert "no tensors found" in _load_error(_torch_save({"epoch": 3, "lr": 0.1}, tmp_path / "meta.pth"))
    assert "not a state dict" in _load_error(_torch_save([torch.zeros(1)], tmp_path / "list.pth"))


def test_weights_that_do_not_fit(tmp_path: Path) -> None:
    sd = SRResNet(num_feat=8, num_block=1, upscale=2).state_dict()
    assert "size mismatch for conv_first.weight" in _load_error(
        sd | {"conv_first.weight": torch.zeros(8, 3, 3, 3)}
    )
    assert "missing body.0.conv2.weight" in _load_error(
        {k: v for k, v in sd.items() if k != "body.0.conv2.weight"}
    )
    assert "but missing tensor conv_last.weight" in _load_error(
        {k: v for k, v in sd.items() if k != "conv_last.weight"}
    )
    assert "unexpected body.0.extra" in _load_error(sd | {"body.0.extra": torch.zeros(1)})


def test_bad_metadata(tmp_path: Path) -> None:
    sd = {
        k: v.contiguous() for k, v in SRVGGNetCompact(num_feat=8, num_conv=1, upscale=2).state_dict().items()
    }
    cases = [
        ({"arch": "mystery", "params": "{}"}, "unknown architecture 'mystery' in file metadata"),
        ({"arch": "srvgg", "params": "{not json"}, "invalid 'params' metadata"),
        ({"arch": "srvgg", "params": '{"num_feat": 8, "bogus": 1}'}, "invalid srvgg parameters"),
        ({"arch": "srvgg", "params": '{"num_feat": 8, "num_conv": 1, "upscale": 4}'}, "size mismatch"),
    ]
    for i, (metadata, expected) in enumerate(cases):
        path = tmp_path / f"m{i}.safetensors"
        save_file(sd, path, metadata=metadata)
        assert expected in _load_error(path)


def test_saved_weights_follow_the_umask_not_0600(tmp_path: Path) -> None:
    umask = os.umask(0o022)
    try:
        save_model(SRVGGNetCompact(num_feat=8, num_conv=1, upscale=2), tmp_path / "w.safetensors")
    finally:
        os.umask(umask)
    assert (tmp_path / "w.safetensors").stat().st_mode & 0o777 == 0o644

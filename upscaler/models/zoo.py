"""Model names the CLI knows: the weights we ship (offline) and well-known files fetched on first use."""

from __future__ import annotations

import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from ..errors import ModelLoadError


@dataclass(frozen=True)
class ModelEntry:
    name: str
    scale: int
    arch: str
    description: str
    file: str | None = None  # shipped: a file in the ``upscaler.weights`` package
    url: str | None = None  # downloadable: fetched once into the cache folder
    # The PSNR-oriented model `--strength` blends this (GAN) one with: strength 0 is the partner, 1 this model.
    blend_partner: str | None = None
    # The strength a bare ``--model NAME`` (or the default) runs at; None = this model's own weights. A file path
    # always means that file's weights as they are.
    default_strength: float | None = None


SHIPPED = (
    ModelEntry("compact-x4", 4, "srvgg", "Compact SRVGG x4, GAN-trained on real-footage damage (H.264, noise, JPEG, "
               "blur): sharp, cleans codec blocks; default",
               file="srvgg-x4-real-gan.safetensors", blend_partner="compact-x4-psnr", default_strength=0.8),
    ModelEntry("compact-x4-psnr", 4, "srvgg", "Compact SRVGG x4, L1-trained on real-footage damage: faithful, "
               "soft, the most robust to heavy compression", file="srvgg-x4-real-psnr.safetensors"),
    ModelEntry("compact-x4-clean", 4, "srvgg", "Compact SRVGG x4, GAN-trained on clean bicubic LR only: for "
               "renders and screenshots (amplifies compression artefacts)", file="srvgg-x4-gan.safetensors",
               blend_partner="compact-x4-clean-psnr"),
    ModelEntry("compact-x4-clean-psnr", 4, "srvgg", "Compact SRVGG x4, L1-trained on clean bicubic LR only: the "
               "highest PSNR on clean input", file="srvgg-x4-psnr.safetensors"),
    ModelEntry("compact-x2", 2, "srvgg", "Compact SRVGG x2, GAN-trained on real-footage damage (H.264, noise, JPEG, "
               "blur): default at --scale 2", file="srvgg-x2-real-gan.safetensors",
               blend_partner="compact-x2-psnr", default_strength=0.8),
    ModelEntry("compact-x2-psnr", 2, "srvgg", "Compact SRVGG x2, L1-trained on real-footage damage: faithful, "
               "damps codec blocks and noise", file="srvgg-x2-real-psnr.safetensors"),
    ModelEntry("compact-x2-clean", 2, "srvgg", "Compact SRVGG x2, GAN-trained on clean bicubic LR only: for "
               "renders and screenshots (amplifies compression artefacts)", file="srvgg-x2-gan.safetensors",
               blend_partner="compact-x2-clean-psnr"),
    ModelEntry("compact-x2-clean-psnr", 2, "srvgg", "Compact SRVGG x2, L1-trained on clean bicubic LR only: the "
               "highest PSNR on clean input", file="srvgg-x2-psnr.safetensors"),
)

_RELEASES = "https://github.com/xinntao/Real-ESRGAN/releases/download"
DOWNLOADABLE = (
    ModelEntry("RealESRGAN_x4plus", 4, "rrdb", "Real-ESRGAN RRDB x4, general photos",
               url=f"{_RELEASES}/v0.1.0/RealESRGAN_x4plus.pth"),
    ModelEntry("RealESRGAN_x2plus", 2, "rrdb", "Real-ESRGAN RRDB x2, general photos",
               url=f"{_RELEASES}/v0.2.1/RealESRGAN_x2plus.pth"),
    ModelEntry("RealESRGAN_x4plus_anime_6B", 4, "rrdb", "Real-ESRGAN RRDB x4 (6 blocks), anime",
               url=f"{_RELEASES}/v0.2.2.4/RealESRGAN_x4plus_anime_6B.pth"),
    ModelEntry("realesr-animevideov3", 4, "srvgg", "Real-ESRGAN compact x4, anime video",
               url=f"{_RELEASES}/v0.2.5.0/realesr-animevideov3.pth"),
    ModelEntry("realesr-general-x4v3", 4, "srvgg", "Real-ESRGAN compact x4, general",
               url=f"{_RELEASES}/v0.2.5.0/realesr-general-x4v3.pth"),
)

DEFAULT_BY_SCALE = {4: "compact-x4", 2: "compact-x2"}


def cache_dir() -> Path:
    base = os.environ.get("UPSCALER_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "upscaler")
    return Path(base)


def find_entry(name: str) -> ModelEntry | None:
    return next((e for e in (*SHIPPED, *DOWNLOADABLE) if e.name == name), None)


def entry_for(model: str | os.PathLike[str] | None, scale: int | None = None) -> ModelEntry | None:
    """The zoo entry a ``--model`` value means: a name, ``None``/"default" (by scale), or the path of a shipped
    or cached file (so ``weights/srvgg-x4-gan.safetensors`` still finds its blend partner)."""
    return named_entry(model, scale) or (None if model is None else entry_for_path(model))


def named_entry(model: str | os.PathLike[str] | None, scale: int | None = None) -> ModelEntry | None:
    """The zoo entry a ``--model`` value names (a name, or ``None``/"default" by scale); None for a file path."""
    if model is None or str(model) == "default":
        return find_entry(DEFAULT_BY_SCALE.get(scale or 4, ""))
    return find_entry(str(model))


def entry_for_path(path: str | os.PathLike[str]) -> ModelEntry | None:
    """The shipped or cached model whose weights are the file at ``path``."""
    try:
        target = Path(path).resolve()
    except (OSError, ValueError):
        return None
    return next((e for e in (*SHIPPED, *DOWNLOADABLE) if _entry_path(e).resolve() == target), None)


def _entry_path(entry: ModelEntry) -> Path:
    # Where the entry's weights are (or would be, once downloaded).
    return shipped_path(entry) if entry.file else cache_dir() / (entry.url or "").rsplit("/", 1)[-1]


def shipped_path(entry: ModelEntry) -> Path:
    assert entry.file is not None
    try:
        return Path(str(resources.files("upscaler.weights").joinpath(entry.file)))
    except ModuleNotFoundError:
        # Running from a source checkout that was not installed: the weights sit at the repo's top.
        return Path(__file__).resolve().parents[2] / "weights" / entry.file


def resolve(model: str | os.PathLike[str] | None, scale: int | None = None) -> Path:
    """A path to weights for a file path, a known model name, or ``None``/"default" (shipped, by scale)."""
    if model is None or str(model) == "default":
        name = DEFAULT_BY_SCALE.get(scale or 4)
        if name is None:
            raise ModelLoadError(f"no shipped model for scale {scale} (shipped: x2, x4; use --outscale)")
        model = name
    entry = find_entry(str(model))
    if entry is None:
        path = Path(model)
        if not path.exists():
            known = ", ".join(e.name for e in (*SHIPPED, *DOWNLOADABLE))
            raise ModelLoadError(f"{model}: no such file or known model name (known: {known})")
        return path
    if entry.file:
        path = shipped_path(entry)
        if not path.exists():
            raise ModelLoadError(f"{entry.name}: shipped weights missing at {path} (broken install?)")
        return path
    return _download(entry)


def _download(entry: ModelEntry) -> Path:
    assert entry.url is not None
    path = _entry_path(entry)
    if path.exists():
        return path
    import torch.hub

    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        # download_url_to_file writes to a temporary file and renames it, so a failed fetch leaves nothing.
        torch.hub.download_url_to_file(entry.url, str(path), progress=True)
    except Exception as exc:  # network errors come in many types; the user needs one line
        raise ModelLoadError(f"{entry.name}: download from {entry.url} failed ({exc})") from exc
    return path

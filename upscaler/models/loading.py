"""Load super-resolution weights from ``.safetensors``/``.pth`` files (or a state dict) into a ready network,
and save our own networks as ``.safetensors`` with the metadata needed to rebuild them.

Pickled files are read with ``weights_only=True`` only: a file needing arbitrary code to unpickle is refused.
"""

from __future__ import annotations

import io
import json
import os
import pickletools
import re
import stat
import warnings
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn

from ..archs import Architecture, ArchParamsError, by_name, detect_architecture, params_of, unwrap_module
from ..errors import ModelLoadError, UpscalerError
from ..fileio import atomic_output

PICKLE_SUFFIXES = (".pth", ".pt", ".ckpt", ".bin")
# Containers that training code wraps state dicts in; the EMA weights are the ones meant for inference.
_WRAPPER_KEYS = ("params_ema", "params", "state_dict", "model_state_dict", "model")
_PREFIXES = ("module.", "_orig_mod.")  # DataParallel, torch.compile
_RESERVED_METADATA = ("arch", "scale", "params")


@dataclass
class LoadedModel:
    module: nn.Module
    arch: str
    scale: int
    in_channels: int
    out_channels: int
    params: dict[str, Any]
    metadata: dict[str, str] = field(default_factory=dict)
    source: str = ""

    def describe(self) -> str:
        """One line for logs, e.g. ``rrdb ×4 (scale=4, num_feat=64, num_block=23, num_grow_ch=32)``."""
        args = ", ".join(f"{k}={v}" for k, v in self.params.items() if k not in ("num_in_ch", "num_out_ch"))
        return f"{self.arch} ×{self.scale} ({args})"


def load_model(source: str | os.PathLike[str] | Mapping[str, Any]) -> LoadedModel:
    """Build the network a weights file (or in-memory state dict) describes: eval mode, frozen, CPU, fp32.

    Raises ModelLoadError (one-line message) when the file is missing or unreadable, needs unsafe unpickling,
    or holds an architecture we do not know.
    """
    if isinstance(source, Mapping):
        name, raw, metadata = "<state dict>", source, {}
    else:
        name = os.fspath(source)
        raw, metadata = _read_file(Path(name), name)
    state = _find_state_dict(raw, name)
    arch, params, state = _identify(state, metadata, name)
    module = _instantiate(arch, params, state, name, copy=isinstance(source, Mapping))
    return LoadedModel(
        module=module,
        arch=arch.name,
        scale=int(module.scale),
        in_channels=int(module.num_in_ch),
        out_channels=int(module.num_out_ch),
        params=dict(module.hyperparams),
        metadata=metadata,
        source=name,
    )


def save_model(
    module: nn.Module, path: str | os.PathLike[str], extra_metadata: dict[str, str] | None = None
) -> None:
    """Write ``module``'s weights to a ``.safetensors`` file with ``arch``, ``scale`` and ``params`` (JSON)
    metadata, so :func:`load_model` rebuilds it without guessing. The file appears atomically."""
    path = Path(path)
    if path.suffix.lower() != ".safetensors":
        raise UpscalerError(f"{path}: weights are saved as .safetensors; use that extension")
    arch, params = params_of(module)
    net = unwrap_module(module)
    metadata = {"arch": arch, "scale": str(net.scale), "params": json.dumps(params, sort_keys=True)}
    for key, value in (extra_metadata or {}).items():
        if key in _RESERVED_METADATA:
            raise ValueError(f"metadata key {key!r} is reserved")
        if not isinstance(value, str):
            raise TypeError(f"metadata {key!r} must be a str, not {type(value).__name__}")
        metadata[key] = value
    state = {k: v.detach().to("cpu").contiguous() for k, v in net.state_dict().items()}
    with atomic_output(path) as tmp:
        mode = stat.S_IMODE(tmp.stat().st_mode)  # the user's umask, as atomic_output created it
        save_file(state, os.fspath(tmp), metadata=metadata)
        os.chmod(tmp, mode)  # save_file leaves a private 0600 file: weights are made to be shared


def _read_file(path: Path, name: str) -> tuple[Mapping[str, Any], dict[str, str]]:
    if not path.exists():
        raise ModelLoadError(f"{name}: no such file")
    if path.is_dir():
        raise ModelLoadError(f"{name}: is a directory, not a weights file")
    suffix = path.suffix.lower()
    try:
        if suffix == ".safetensors":
            return _read_safetensors(path, name)
        if suffix in PICKLE_SUFFIXES:
            return _read_pickle(path, name), {}
    except OSError as exc:
        raise ModelLoadError(f"{name}: cannot read ({exc.strerror or exc})") from exc
    raise ModelLoadError(
        f"{name}: unsupported file type {suffix or '(none)'!r} (expected .safetensors or .pth)"
    )


def _read_safetensors(path: Path, name: str) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    try:
        with safe_open(os.fspath(path), framework="pt", device="cpu") as f:
            return {k: f.get_tensor(k) for k in f.keys()}, dict(f.metadata() or {})
    except SafetensorError as exc:
        raise ModelLoadError(f"{name}: not a valid .safetensors file ({_first_line(exc)})") from exc


def _read_pickle(path: Path, name: str) -> Any:
    try:
        return torch_load_weights(path)
    except OSError:
        raise
    except Exception as exc:
        kind, found = classify_load_failure(path, exc)
        if kind == "torchscript":
            raise ModelLoadError(
                f"{name}: TorchScript archives are not supported; save a state dict"
            ) from exc
        if kind == "code":
            raise ModelLoadError(
                f"{name}: contains pickled code or objects that are not plain weights ({found}: loading it "
                "could run arbitrary code); refused (re-save it as a plain state dict or .safetensors)"
            ) from exc
        raise ModelLoadError(f"{name}: not a PyTorch weights file, or it is corrupt or truncated") from exc


def torch_load_weights(path: Path) -> Any:
    """``torch.load`` that never unpickles code (``weights_only=True``), onto the CPU, without torch's warnings."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TorchScript archives, pickle protocols torch did not write
        return torch.load(path, map_location="cpu", weights_only=True)


def classify_load_failure(path: Path, exc: BaseException) -> tuple[str, str]:
    """Why ``torch_load_weights(path)`` failed: ("torchscript", ""), ("code", the first offending global), or
    ("corrupt", ""). torch's own text names a global only when its unpickler got that far; a pickle of another
    protocol (``pickle.dump`` of an object with ``__reduce__``) fails on an opcode first, so the file's pickles
    are also scanned (parsed, never executed) for imports of anything but tensors' building blocks."""
    text = str(exc)
    if "TorchScript" in text:
        return "torchscript", ""
    if "Weights only load failed" in text:
        found = re.search(r"GLOBAL ([\w.]+)", text)
        if found:
            return "code", found[1]
        unsafe = _unsafe_globals(path)
        if unsafe:
            return "code", unsafe[0]
    return "corrupt", ""


def _unsafe_globals(path: Path, limit: int = 16) -> list[str]:
    """The globals the pickles in ``path`` import that torch's weights-only unpickler does not allow."""
    try:
        allowed = set(torch._weights_only_unpickler._get_allowed_globals())  # private: guarded below
    except Exception:
        allowed = {"collections.OrderedDict", "torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_parameter"}
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                blobs = [archive.read(n) for n in archive.namelist() if n.endswith(".pkl")][:limit]
        else:
            blobs = [path.read_bytes()]
    except (OSError, zipfile.BadZipFile, RuntimeError, ValueError):
        return []
    found: list[str] = []
    for blob in blobs:
        found += [g for g in _pickle_globals(blob, limit) if g not in allowed]
    return found


def _pickle_globals(blob: bytes, limit: int) -> list[str]:
    """``module.name`` of each GLOBAL / STACK_GLOBAL / INST in the pickles laid end to end in ``blob`` (torch's
    legacy format writes several), read with pickletools: opcodes are parsed, nothing is imported or run."""
    stream, names = io.BytesIO(blob), []
    for _ in range(limit):  # pickles one after another; the legacy format's raw tensor bytes end the scan
        strings: list[str] = []  # STACK_GLOBAL's module and name are the last two strings pushed
        memo: dict[Any, str] = {}
        memoized = 0
        last: str | None = None  # the string the previous opcode pushed, if it pushed one
        try:
            for op, arg, _pos in pickletools.genops(stream):
                if op.name in ("GLOBAL", "INST"):
                    names.append(str(arg).replace(" ", "."))
                elif op.name == "STACK_GLOBAL" and len(strings) >= 2:
                    names.append(f"{strings[-2]}.{strings[-1]}")
                if "UNICODE" in op.name and isinstance(arg, str):
                    strings.append(arg)
                    last = arg
                    continue
                if op.name == "MEMOIZE":
                    if last is not None:
                        memo[memoized] = last
                    memoized += 1
                    continue
                if op.name in ("PUT", "BINPUT", "LONG_BINPUT"):
                    if last is not None:
                        memo[arg] = last
                    continue
                if op.name in ("GET", "BINGET", "LONG_BINGET") and arg in memo:
                    strings.append(memo[arg])
                    last = memo[arg]
                    continue
                last = None
        except Exception:  # not (or no longer) a pickle
            break
        if stream.tell() >= len(blob):
            break
    return names


def _find_state_dict(raw: Any, name: str) -> dict[str, torch.Tensor]:
    if not isinstance(raw, Mapping):
        raise ModelLoadError(f"{name}: holds a {type(raw).__name__}, not a state dict")
    for _ in range(4):  # wrappers can nest, e.g. {"model": {"state_dict": ...}}
        inner = next((raw[k] for k in _WRAPPER_KEYS if isinstance(raw.get(k), Mapping) and raw[k]), None)
        if inner is None:
            break
        raw = inner
    state = {str(k): v for k, v in raw.items() if isinstance(v, torch.Tensor)}
    if not state:
        raise ModelLoadError(f"{name}: no tensors found (top-level keys: {_key_list(raw.keys())})")
    for prefix in _PREFIXES:
        if all(k.startswith(prefix) for k in state):
            state = {k[len(prefix) :]: v for k, v in state.items()}
    return state


def _identify(
    state: dict[str, torch.Tensor], metadata: dict[str, str], name: str
) -> tuple[Architecture, dict[str, Any], Mapping[str, torch.Tensor]]:
    if "arch" in metadata and "params" in metadata:
        # Written by save_model: trust it, which also covers what shapes cannot tell (e.g. ReLU vs LeakyReLU).
        arch = by_name(metadata["arch"])
        if arch is None:
            raise ModelLoadError(f"{name}: unknown architecture {metadata['arch']!r} in file metadata")
        try:
            params = json.loads(metadata["params"])
        except json.JSONDecodeError as exc:
            raise ModelLoadError(f"{name}: invalid 'params' metadata ({exc.msg})") from exc
        if not isinstance(params, dict):
            raise ModelLoadError(f"{name}: invalid 'params' metadata (not a JSON object)")
        return arch, params, arch.convert_keys(state)
    found = detect_architecture(state)
    if found is None:
        raise ModelLoadError(f"{name}: unknown architecture (keys: {_key_list(state)}, {len(state)} tensors)")
    arch, converted = found
    try:
        return arch, arch.read_params(converted), converted
    except ArchParamsError as exc:
        raise ModelLoadError(f"{name}: looks like {arch.name}, but {exc}") from exc


def _instantiate(
    arch: Architecture, params: dict[str, Any], state: Mapping[str, torch.Tensor], name: str, copy: bool
) -> nn.Module:
    try:
        # Built on the meta device: allocating and initialising weights that are replaced at once costs
        # seconds for a full-size RRDBNet.
        with torch.device("meta"):
            module = arch.build(params)
    except (TypeError, ValueError) as exc:
        raise ModelLoadError(f"{name}: invalid {arch.name} parameters {params} ({_first_line(exc)})") from exc
    # Copy tensors handed in by the caller, so the loaded network never aliases (say) a model being trained.
    state = {
        k: v.to(torch.float32 if v.is_floating_point() else v.dtype, copy=copy) for k, v in state.items()
    }
    for key, value in module.state_dict().items():
        # BatchNorm's step counter is irrelevant at inference and often absent from exported weights.
        if key.endswith("num_batches_tracked") and key not in state:
            state[key] = torch.zeros_like(value, device="cpu")
    try:
        result = module.load_state_dict(state, strict=False, assign=True)
    except RuntimeError as exc:
        mismatches = [ln.strip() for ln in str(exc).splitlines() if "size mismatch" in ln]
        detail = mismatches[0] if mismatches else _first_line(exc)
        more = f" (+{len(mismatches) - 1} more)" if len(mismatches) > 1 else ""
        raise ModelLoadError(f"{name}: weights do not fit {arch.name}: {detail}{more}") from exc
    parts = []
    if result.missing_keys:
        parts.append(f"missing {_key_list(result.missing_keys)}")
    if result.unexpected_keys:
        parts.append(f"unexpected {_key_list(result.unexpected_keys)}")
    if parts:
        raise ModelLoadError(f"{name}: weights do not fit {arch.name}: " + "; ".join(parts))
    module.eval()
    module.requires_grad_(False)
    return module


def _key_list(keys: Any, limit: int = 3) -> str:
    keys = list(keys)
    shown = ", ".join(str(k) for k in keys[:limit])
    return shown + (", …" if len(keys) > limit else "")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__

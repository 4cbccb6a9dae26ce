"""Network interpolation (ESRGAN's "network interpolation", Real-ESRGAN's ``-dn``): one model whose every float
weight is ``s * A + (1 - s) * B``, e.g. a GAN model A and its PSNR-oriented parent B, for a knob between
texture (s = 1) and fidelity (s = 0).

The blend is done once, at load time, in fp32 and before any precision cast, so running it costs exactly what
one model costs. It only makes sense between two networks of the same shape, usually two stages of one
training run; anything else is refused with one line saying what differs.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path

import torch

from ..errors import ModelLoadError, UpscalerError
from . import zoo
from .loading import LoadedModel, load_model

ModelSource = str | os.PathLike[str] | LoadedModel | None

# Keys of the blended model's ``metadata`` that say what it was made of (``blend_summary``).
_KEYS = ("blend_a", "blend_b", "blend_strength")


def check_compatible(a: LoadedModel, b: LoadedModel) -> None:
    """Raise ModelLoadError (one line naming both files) unless ``a`` and ``b`` have the same architecture,
    hyper-parameters, tensor names, shapes and kinds, i.e. unless their weights can be mixed one for one."""
    where = f"cannot blend A={_name(a)} with B={_name(b)}"
    if a.arch != b.arch or a.scale != b.scale or a.params != b.params:
        what_a, what_b = _differing_params(a, b)
        raise ModelLoadError(f"{where}: A is {what_a}, B is {what_b}")
    # The same parameters build the same tensors, so what follows only catches hand-made LoadedModels; it is
    # what makes the element-wise mix safe whatever the caller passes in.
    sa, sb = a.module.state_dict(), b.module.state_dict()
    only_a, only_b = [k for k in sa if k not in sb], [k for k in sb if k not in sa]
    if only_a or only_b:
        parts = [f"only in {side}: {_keys(keys)}" for side, keys in (("A", only_a), ("B", only_b)) if keys]
        raise ModelLoadError(f"{where}: the tensors differ ({'; '.join(parts)})")
    for key, ta in sa.items():
        tb = sb[key]
        if ta.shape != tb.shape:
            raise ModelLoadError(f"{where}: tensor {key} is {_shape(ta)} in A but {_shape(tb)} in B")
        if ta.is_floating_point() != tb.is_floating_point():
            raise ModelLoadError(f"{where}: tensor {key} is {_dtype(ta)} in A but {_dtype(tb)} in B")


def blend_models(a: LoadedModel, b: LoadedModel, strength: float) -> LoadedModel:
    """A new fp32 model with every floating-point tensor ``strength * A + (1 - strength) * B``; non-float
    tensors (BatchNorm's ``num_batches_tracked``) come from A. Neither input is modified.

    Strength 1 keeps A's weights and 0 copies B's, rather than computing them, so the endpoints are bit-exact."""
    _check_strength(strength)
    check_compatible(a, b)
    module = copy.deepcopy(a.module).float()  # keeps A's exact network (activation, buffers, eval mode)
    if strength != 1:
        theirs = b.module.state_dict()
        with torch.no_grad():
            # state_dict() gives detached views of the copy's own tensors, so they are written in place.
            for key, mine in module.state_dict().items():
                if mine.is_floating_point():
                    other = theirs[key].to(mine.device, torch.float32)
                    mine.copy_(other if strength == 0 else mine * strength + other * (1 - strength))
    metadata = {k: v for k, v in a.metadata.items() if k not in _KEYS}
    metadata.update(blend_a=_name(a, short=True), blend_b=_name(b, short=True), blend_strength=f"{strength:g}")
    return LoadedModel(module=module, arch=a.arch, scale=a.scale, in_channels=a.in_channels,
                       out_channels=a.out_channels, params=dict(a.params), metadata=metadata, source=a.source)


def load_blended(model: ModelSource, *, blend: ModelSource = None, strength: float | None = None,
                 scale: int | None = None) -> LoadedModel:
    """What ``Upscaler(model, blend=, strength=)`` runs: ``model`` alone without a strength (a model name runs at
    its zoo entry's default strength, if it has one); with one, ``model`` blended with ``blend`` or, when that is
    None, with the PSNR partner its zoo entry names."""
    if strength is None:
        if blend is not None:
            raise UpscalerError("--blend needs --strength S (the --model's share, from 0 to 1)")
        named = None if isinstance(model, LoadedModel) else zoo.named_entry(model, scale)
        if named is None or named.default_strength is None:
            return _load(model, scale)
        strength = named.default_strength
    _check_strength(strength)
    if blend is None:
        entry = zoo.entry_for(model.source if isinstance(model, LoadedModel) else model, scale)
        if entry is None or entry.blend_partner is None:
            # A missing or unreadable file says so first; a known name is not downloaded just to fail here.
            name = entry.name if entry is not None else _name(_load(model, scale))
            raise ModelLoadError(f"--strength: {name} has no known partner to blend with; "
                                 "pass --blend FILE to name the model at strength 0")
        blend = entry.blend_partner
    a = _load(model, scale)
    return blend_models(a, _load(blend, scale), strength)


def blend_summary(loaded: LoadedModel) -> str | None:
    """``"compact-x4 blended with compact-x4-psnr at strength 0.5"`` for a blended model, else None."""
    if not all(k in loaded.metadata for k in _KEYS):
        return None
    meta = loaded.metadata
    return f"{meta['blend_a']} blended with {meta['blend_b']} at strength {meta['blend_strength']}"


def _load(model: ModelSource, scale: int | None) -> LoadedModel:
    return model if isinstance(model, LoadedModel) else load_model(zoo.resolve(model, scale))


def _check_strength(strength: float) -> None:
    if not 0 <= strength <= 1:  # also refuses NaN
        raise UpscalerError(f"--strength must be between 0 and 1, got {strength}")


def _differing_params(a: LoadedModel, b: LoadedModel) -> tuple[str, str]:
    """"srvgg x4 (num_conv=16)" and "srvgg x4 (num_conv=32)": the hyper-parameters that differ, or only the
    architectures when those do (their parameters have nothing in common to compare)."""
    head_a, head_b = f"{a.arch} x{a.scale}", f"{b.arch} x{b.scale}"
    if a.arch != b.arch:
        return head_a, head_b
    # The scale is in the head already (SRVGG calls it upscale, RRDB scale).
    keys = [k for k in {**a.params, **b.params} if k not in ("upscale", "scale") and a.params.get(k) != b.params.get(k)]
    if not keys:
        return head_a, head_b

    def args(params: dict) -> str:
        return ", ".join(f"{k}={params.get(k)}" for k in keys)

    return f"{head_a} ({args(a.params)})", f"{head_b} ({args(b.params)})"


def _name(model: LoadedModel, short: bool = False) -> str:
    # compact-x4 for a shipped (or cached) file; otherwise the path as given for errors, its name for describe().
    source = model.source or "<state dict>"
    entry = zoo.entry_for_path(source)
    return entry.name if entry is not None else (Path(source).name if short else source)


def _keys(keys: list[str], limit: int = 3) -> str:
    return ", ".join(keys[:limit]) + (", …" if len(keys) > limit else "")


def _shape(t: torch.Tensor) -> str:
    return "[" + ",".join(str(n) for n in t.shape) + "]"


def _dtype(t: torch.Tensor) -> str:
    return str(t.dtype).removeprefix("torch.")

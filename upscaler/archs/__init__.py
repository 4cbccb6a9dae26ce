"""The network architectures we can build, and how each is recognised from a state dict.

Each arch module defines its network class plus ``detect`` (do these keys belong to it?) and ``read_params``
(its constructor arguments, read from tensor shapes). ``ARCHITECTURES`` below is the one list of them;
detection tries them in order and the first match wins.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

from . import rrdb, srresnet, srvgg
from .common import ArchParamsError, StateDict
from .rrdb import RRDBNet
from .srresnet import MSRResNet, SRResNet
from .srvgg import SRVGGNetCompact


def _unchanged(state: StateDict) -> StateDict:
    return state


@dataclass(frozen=True)
class Architecture:
    name: str
    module_type: type[nn.Module]
    detect: Callable[[StateDict], bool]
    read_params: Callable[[StateDict], dict[str, Any]]
    # Renames other known key layouts of the same network to ours; applied before ``detect``.
    convert_keys: Callable[[StateDict], StateDict] = _unchanged

    def build(self, params: dict[str, Any]) -> nn.Module:
        return self.module_type(**params)


RRDB = Architecture("rrdb", RRDBNet, rrdb.detect, rrdb.read_params, rrdb.convert_keys)
SRVGG = Architecture("srvgg", SRVGGNetCompact, srvgg.detect, srvgg.read_params)
SRRESNET = Architecture("srresnet", SRResNet, srresnet.detect_srresnet, srresnet.read_srresnet_params)
MSRRESNET = Architecture("msrresnet", MSRResNet, srresnet.detect_msrresnet, srresnet.read_msrresnet_params)

ARCHITECTURES: list[Architecture] = [RRDB, SRVGG, SRRESNET, MSRRESNET]


def by_name(name: str) -> Architecture | None:
    """Look up by short name ("rrdb") or network class name ("RRDBNet")."""
    return next((arch for arch in ARCHITECTURES if name in (arch.name, arch.module_type.__name__)), None)


def detect_architecture(state: StateDict) -> tuple[Architecture, StateDict] | None:
    """The first architecture whose keys match, with the state dict renamed to its layout."""
    for arch in ARCHITECTURES:
        converted = arch.convert_keys(state)
        if arch.detect(converted):
            return arch, converted
    return None


def unwrap_module(module: nn.Module) -> nn.Module:
    """The network inside DataParallel/DistributedDataParallel and torch.compile wrappers."""
    while True:
        if isinstance(module, (nn.DataParallel, nn.parallel.DistributedDataParallel)):
            module = module.module
        elif isinstance(getattr(module, "_orig_mod", None), nn.Module):
            module = module._orig_mod
        else:
            return module


def params_of(module: nn.Module) -> tuple[str, dict[str, Any]]:
    """(architecture name, constructor arguments) of one of our networks, to rebuild it after saving."""
    module = unwrap_module(module)
    for arch in ARCHITECTURES:
        if type(module) is arch.module_type:
            return arch.name, dict(module.hyperparams)
    raise ValueError(f"{type(module).__name__} is not one of the known architectures")


__all__ = [
    "ARCHITECTURES",
    "MSRRESNET",
    "RRDB",
    "SRRESNET",
    "SRVGG",
    "ArchParamsError",
    "Architecture",
    "MSRResNet",
    "RRDBNet",
    "SRResNet",
    "SRVGGNetCompact",
    "StateDict",
    "by_name",
    "detect_architecture",
    "params_of",
    "unwrap_module",
]

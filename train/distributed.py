"""torch.distributed plumbing: one process per device under ``torchrun``, a plain single process otherwise."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class DistContext:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the only process that writes checkpoints, logs, metrics, validation and weights."""
        return self.rank == 0


def pick_device(preference: str, local_rank: int = 0) -> torch.device:
    if preference == "cpu" or (preference == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise ValueError("device = 'cuda' but CUDA is not available")
    return torch.device("cuda", local_rank)


def init_distributed(device_preference: str = "auto") -> DistContext:
    """Join the process group described by torchrun's env vars when WORLD_SIZE > 1 (nccl on CUDA, gloo on CPU)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistContext(0, 1, 0, pick_device(device_preference))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = pick_device(device_preference, local_rank)
    if not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", init_method="env://")
    return DistContext(dist.get_rank(), dist.get_world_size(), local_rank, device)


def wrap(module: nn.Module, ctx: DistContext) -> nn.Module:
    """DistributedDataParallel around ``module`` when distributed (gradients averaged over ranks), else itself."""
    if not ctx.distributed:
        return module
    ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(module, device_ids=ids)


def mean_over_ranks(values: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    """The element-wise mean of ``values`` across ranks (for logging)."""
    if ctx.distributed:
        values = values.clone()
        dist.all_reduce(values)
        values /= ctx.world_size
    return values


def any_rank(flag: bool, ctx: DistContext) -> bool:
    """True on every rank if ``flag`` is set on any rank: a stop must happen at the same step everywhere, or the
    ranks still training would wait forever in their next all-reduce."""
    if not ctx.distributed:
        return flag
    t = torch.tensor([int(flag)], device=ctx.device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def barrier(ctx: DistContext) -> None:
    if ctx.distributed:
        dist.barrier()


def shutdown(ctx: DistContext) -> None:
    if ctx.distributed and dist.is_initialized():
        dist.destroy_process_group()

"""The learning-rate schedule of a run, as a pure function of its config."""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass
from typing import Any

from torch.optim.lr_scheduler import LambdaLR

from .config import TrainConfig


@dataclass(frozen=True)
class LRSchedule:
    """Multiplier of the base learning rate at a step: linear warm-up, then step decay or cosine to a floor.

    A pure function of the config: a resumed run takes it from its config, not the checkpoint, so it may
    change ``steps`` (same config, same schedule: the exact replay is unaffected).
    """

    kind: str
    steps: int
    warmup_steps: int = 0
    milestones: tuple[int, ...] = ()
    gamma: float = 0.5
    min_ratio: float = 0.05

    @classmethod
    def from_config(cls, cfg: TrainConfig) -> LRSchedule:
        return cls(cfg.lr_schedule, cfg.steps, cfg.warmup_steps, tuple(cfg.milestones), cfg.lr_gamma,
                   cfg.min_lr_ratio)

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        if self.kind == "step":
            return self.gamma ** bisect.bisect_right(self.milestones, step)
        t = min(1.0, (step - self.warmup_steps) / max(1, self.steps - self.warmup_steps))
        return self.min_ratio + (1 - self.min_ratio) * 0.5 * (1 + math.cos(math.pi * t))


def load_scheduler_position(scheduler: LambdaLR, state: dict[str, Any]) -> None:
    """Restore where a saved LambdaLR stood (its step) but keep this run's schedule and base rates, so a resumed
    run that changed ``lr``, ``d_lr`` or the schedule uses them from its first step (an identical config
    replays exactly: the rate is the same product LambdaLR itself computes)."""
    # LambdaLR copies a state's fields over ours; None lambdas are skipped, a missing base_lrs keeps ours.
    kept = {k: v for k, v in state.items() if k != "base_lrs"}
    scheduler.load_state_dict(kept | {"lr_lambdas": [None] * len(state["lr_lambdas"])})
    lambdas = scheduler.lr_lambdas
    for group, base, factor in zip(scheduler.optimizer.param_groups, scheduler.base_lrs, lambdas, strict=True):
        group["initial_lr"] = base
        group["lr"] = base * factor(scheduler.last_epoch)
    scheduler._last_lr = [group["lr"] for group in scheduler.optimizer.param_groups]

"""The learning-rate schedule of a run, as a pure function of its config."""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass
from typing import Any

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


def without_schedule(state: dict[str, Any]) -> dict[str, Any]:
    # LambdaLR would copy the saved schedule's fields over ours; None entries are skipped.
    return state | {"lr_lambdas": [None] * len(state["lr_lambdas"])}

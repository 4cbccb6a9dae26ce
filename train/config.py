"""Training configuration: one typed dataclass; unknown or mistyped keys fail at load time, not mid-run."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomllib


@dataclass
class TrainConfig:
    # Model
    arch: str = "srvgg"
    scale: int = 4
    num_feat: int = 64
    num_conv: int = 16
    # Data: HR image folders; LR is made on the fly by bicubic downscaling.
    hr_dirs: list[Path] = field(default_factory=list)
    patch_size: int = 128  # HR crop side; must be a multiple of scale
    batch_size: int = 16
    # Optimisation (stage 1: L1 pixel loss, Adam)
    pixel_loss: str = "l1"
    lr: float = 2e-4
    betas: tuple[float, float] = (0.9, 0.99)
    steps: int = 5000
    warmup_steps: int = 100
    min_lr_ratio: float = 0.05  # cosine decay floor, as a fraction of lr
    seed: int = 0
    # Output
    out_dir: Path = Path("runs/srvgg-x4")
    checkpoint_every: int = 500
    val_dir: Path | None = None
    val_every: int = 500
    fine_tune: Path | None = None
    resume: bool = False

    def __post_init__(self) -> None:
        self.hr_dirs = [Path(p) for p in self.hr_dirs]
        self.out_dir = Path(self.out_dir)
        self.val_dir = Path(self.val_dir) if self.val_dir else None
        self.fine_tune = Path(self.fine_tune) if self.fine_tune else None
        self.betas = tuple(self.betas)  # type: ignore[assignment]
        if self.patch_size % self.scale:
            raise ValueError(f"patch_size {self.patch_size} is not a multiple of scale {self.scale}")

    @classmethod
    def from_toml(cls, path: Path, **overrides: Any) -> TrainConfig:
        with open(path, "rb") as f:
            data = tomllib.load(f)
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"{path}: unknown config keys: {', '.join(unknown)}")
        data.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        return {k: (str(v) if isinstance(v, Path) else [str(p) for p in v] if k == "hr_dirs" else v)
                for k, v in out.items()}

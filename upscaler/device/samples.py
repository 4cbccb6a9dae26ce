"""Integer pixel samples <-> float tensors, for 8- and 16-bit data on any device.

16-bit samples cross into torch as int16 (numpy ``view``, no copy): torch's uint16 has few kernels, on CUDA
especially. These two functions undo and redo that reinterpretation.
"""

from __future__ import annotations

import numpy as np
import torch


def as_torch_ready(samples: np.ndarray) -> np.ndarray:
    """The same bytes as an array ``torch.from_numpy`` takes and our kernels handle (uint16 -> int16)."""
    return samples.view(np.int16) if samples.dtype == np.uint16 else samples


def to_float(samples: torch.Tensor) -> torch.Tensor:
    """uint8, or uint16 carried as int16 -> float32 with the unsigned values."""
    if samples.dtype == torch.int16:
        return samples.to(torch.int32).bitwise_and_(0xFFFF).float()
    return samples.float()


def to_samples(values: torch.Tensor, itemsize: int) -> torch.Tensor:
    """Rounded, in-range float values -> uint8 (itemsize 1) or uint16 carried as int16 (itemsize 2)."""
    if itemsize == 1:
        return values.to(torch.uint8)
    wide = values.to(torch.int32)
    return torch.where(wide > 32767, wide - 65536, wide).to(torch.int16)  # the int16 with the same bits

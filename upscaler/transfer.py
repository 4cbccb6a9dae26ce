"""Host <-> CUDA frame copies through reused pinned buffers on a side stream (CUDA only; unused on CPU).

Pageable memory makes every copy synchronous and staged through a driver bounce buffer; pinned memory lets
the DMA engine copy while the SMs compute. Copies go on their own stream and the compute stream waits on an
event, so an upload only orders against the kernels that need it, not against everything queued before.
"""

from __future__ import annotations

import numpy as np
import torch


class HostTransfer:
    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.stream = torch.cuda.Stream(device)
        self._pinned: dict[tuple[tuple[int, ...], torch.dtype, str], torch.Tensor] = {}

    def _buffer(self, shape: tuple[int, ...], dtype: torch.dtype, role: str) -> torch.Tensor:
        key = (shape, dtype, role)
        buf = self._pinned.get(key)
        if buf is None:
            if len(self._pinned) > 8:  # sizes changed (last partial batch, another video): drop the old ones
                self._pinned.clear()
            buf = self._pinned[key] = torch.empty(shape, dtype=dtype, pin_memory=True)
        return buf

    def upload(self, array: np.ndarray) -> torch.Tensor:
        """A device copy of a C-contiguous array, usable on the current stream."""
        src = torch.from_numpy(array)
        staging = self._buffer(tuple(src.shape), src.dtype, "in")
        # The previous upload from this buffer must be done before it is overwritten.
        self.stream.synchronize()
        staging.copy_(src)
        compute = torch.cuda.current_stream(self.device)
        with torch.cuda.stream(self.stream):
            out = staging.to(self.device, non_blocking=True)
        compute.wait_stream(self.stream)
        out.record_stream(compute)  # allocated on the side stream, used on the compute stream
        return out

    def download(self, tensor: torch.Tensor) -> np.ndarray:
        """A host copy (a fresh array: the caller hands it to another thread) of a device tensor."""
        staging = self._buffer(tuple(tensor.shape), tensor.dtype, "out")
        self.stream.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(self.stream):
            staging.copy_(tensor, non_blocking=True)
            tensor.record_stream(self.stream)
        self.stream.synchronize()
        return staging.numpy().copy()

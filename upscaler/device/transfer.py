"""Host <-> CUDA frame copies through reused pinned buffers on side streams (CUDA only; unused on CPU).

Pageable memory makes every copy synchronous and staged through a driver bounce buffer; pinned memory lets
the DMA engines copy while the SMs compute. Uploads and downloads each have their own stream (the GPU has a
copy engine for each direction), and the compute stream waits on an upload only for the kernels that need it.
A download is only queued: ``download_async`` returns at once, so the caller can queue the next batch's work
before it waits, and the GPU never idles while the host packs, queues and hands frames on.
"""

from __future__ import annotations

import weakref

import numpy as np
import torch

# Downloads in flight at once: the batch being fetched and the one queued behind it.
_DOWNLOAD_SLOTS = 2


class PendingDownload:
    """A device -> host copy in flight; ``wait()`` returns its host array (a fresh one, safe to hand on), and
    ``flag`` then holds the boolean that rode along with it, if any."""

    def __init__(self, staging: torch.Tensor, done: torch.cuda.Event, flag: torch.Tensor | None) -> None:
        self._staging: torch.Tensor | None = staging
        self._done = done
        self._flag = flag
        self._array: np.ndarray | None = None
        self.flag: bool | None = None

    def wait(self) -> np.ndarray:
        if self._array is None:
            assert self._staging is not None
            self._done.synchronize()
            self._array = self._staging.numpy().copy()
            self._staging = None  # the pinned buffer may now be reused
            self.flag = None if self._flag is None else bool(self._flag)  # host memory: no GPU sync
        return self._array


class HostTransfer:
    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.up_stream = torch.cuda.Stream(device)
        self.down_stream = torch.cuda.Stream(device)
        self._pinned: dict[tuple[tuple[int, ...], torch.dtype, str], torch.Tensor] = {}
        self._slot = 0
        # Weak: a result its owner dropped unread needs no waiting (later copies into the buffer queue behind it).
        self._in_flight: list[weakref.ref[PendingDownload] | None] = [None] * _DOWNLOAD_SLOTS

    def _buffer(self, shape: tuple[int, ...], dtype: torch.dtype, role: str) -> torch.Tensor:
        key = (shape, dtype, role)
        buf = self._pinned.get(key)
        if buf is None:
            if len(self._pinned) > 4 * (_DOWNLOAD_SLOTS + 1):  # sizes changed (a last partial batch, a new video)
                for ref in self._in_flight:
                    pending = ref() if ref is not None else None
                    if pending is not None:
                        pending.wait()  # before its buffer is dropped
                self._pinned.clear()
            buf = self._pinned[key] = torch.empty(shape, dtype=dtype, pin_memory=True)
        return buf

    def upload(self, array: np.ndarray) -> torch.Tensor:
        """A device copy of a C-contiguous array, usable on the current stream."""
        src = torch.from_numpy(array)
        staging = self._buffer(tuple(src.shape), src.dtype, "in")
        # The previous upload from this buffer must be done before it is overwritten.
        self.up_stream.synchronize()
        staging.copy_(src)
        compute = torch.cuda.current_stream(self.device)
        with torch.cuda.stream(self.up_stream):
            out = staging.to(self.device, non_blocking=True)
        compute.wait_stream(self.up_stream)
        out.record_stream(compute)  # allocated on the side stream, used on the compute stream
        return out

    def download_async(self, tensor: torch.Tensor, flag: torch.Tensor | None = None) -> PendingDownload:
        """Queue a host copy of a device tensor after the work queued so far; ``.wait()`` gives the array.

        ``flag``, a one-element bool tensor on the device, comes along in the same copy queue: reading it on the
        host afterwards costs no synchronisation with the compute stream (``bool()`` of a device tensor would
        wait for everything queued there, the next batch included).
        """
        slot = self._slot
        self._slot = (slot + 1) % _DOWNLOAD_SLOTS
        ref = self._in_flight[slot]
        previous = ref() if ref is not None else None
        if previous is not None:
            previous.wait()  # a caller that queued more than the slots allow: its oldest copy lands first
        staging = self._buffer(tuple(tensor.shape), tensor.dtype, f"out{slot}")
        self.down_stream.wait_stream(torch.cuda.current_stream(self.device))
        flag_host = None
        with torch.cuda.stream(self.down_stream):
            staging.copy_(tensor, non_blocking=True)
            tensor.record_stream(self.down_stream)  # not freed for reuse before the copy has read it
            if flag is not None:
                flag_host = torch.empty((), dtype=torch.bool, pin_memory=True)
                flag_host.copy_(flag, non_blocking=True)
                flag.record_stream(self.down_stream)
            done = torch.cuda.Event()
            done.record(self.down_stream)
        pending = PendingDownload(staging, done, flag_host)
        self._in_flight[slot] = weakref.ref(pending)
        return pending

    def download(self, tensor: torch.Tensor) -> np.ndarray:
        """A host copy (a fresh array: the caller hands it to another thread) of a device tensor."""
        return self.download_async(tensor).wait()

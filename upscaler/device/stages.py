"""Per-stage wall-clock accounting for the video pipeline and the engine, for ``upscale bench``.

Stages: ``decode`` (demux, decode, YUV->RGB), ``to_tensor`` (array -> device float), ``model`` (the network),
``stitch`` (tile cutting and blending), ``from_tensor`` (float -> array on the host), ``encode`` (RGB->YUV,
encode, mux). Code that is timed calls ``stage(timer, name)``; with ``timer=None`` that is a shared no-op
context, so an untimed run pays one ``is None`` test per batch or tile.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager

STAGES = ("decode", "to_tensor", "model", "stitch", "from_tensor", "encode")

_OFF = contextlib.nullcontext()


class StageTimer:
    """Seconds spent per stage, summed over calls; safe to fill from the decode, model and encode threads.

    ``sync`` is called before each reading when set: on CUDA, ``torch.cuda.synchronize`` makes the kernels
    queued in a stage count for that stage, not the next one (so a timed CUDA run overlaps less).
    """

    def __init__(self, sync: Callable[[], None] | None = None) -> None:
        self.seconds: dict[str, float] = dict.fromkeys(STAGES, 0.0)
        self.calls: dict[str, int] = dict.fromkeys(STAGES, 0)
        self._sync = sync
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def measure(self, name: str, exclude: str | None = None) -> Iterator[None]:
        """Time the block into ``name``, less what nested blocks add to ``exclude`` meanwhile (same thread)."""
        if self._sync is not None:
            self._sync()
        inner = self.seconds.get(exclude, 0.0) if exclude else 0.0
        start = time.perf_counter()
        try:
            yield
        finally:
            if self._sync is not None:
                self._sync()
            elapsed = time.perf_counter() - start
            if exclude:
                elapsed -= self.seconds.get(exclude, 0.0) - inner
            self.add(name, elapsed)

    def add(self, name: str, seconds: float) -> None:
        with self._lock:
            self.seconds[name] = self.seconds.get(name, 0.0) + seconds
            self.calls[name] = self.calls.get(name, 0) + 1

    def total(self) -> float:
        return sum(self.seconds.values())


def stage(timer: StageTimer | None, name: str, exclude: str | None = None) -> AbstractContextManager[None]:
    """``with stage(timer, "model"):`` times the block into ``timer``; a no-op when ``timer`` is None."""
    return _OFF if timer is None else timer.measure(name, exclude)

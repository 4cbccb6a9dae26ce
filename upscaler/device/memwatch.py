"""Process memory while a block runs: peak resident set (sampled) and peak CUDA allocation, for ``upscale bench``."""

from __future__ import annotations

import resource
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import torch

_STATM = Path("/proc/self/statm")
_PAGE = resource.getpagesize()


def rss_bytes() -> int | None:
    """Current resident set size (Linux); None where /proc is absent."""
    try:
        return int(_STATM.read_text().split()[1]) * _PAGE
    except (OSError, IndexError, ValueError):
        return None


def peak_rss_bytes() -> int:
    """The process's lifetime peak RSS (ru_maxrss is KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


@dataclass
class MemoryReport:
    rss_start: int | None = None  # bytes, when the block began
    rss_peak: int | None = None  # bytes, highest sample during the block
    gpu_peak: int | None = None  # bytes, torch.cuda.max_memory_allocated during the block (CUDA only)

    @property
    def rss_growth(self) -> int | None:
        return None if self.rss_start is None or self.rss_peak is None else self.rss_peak - self.rss_start


class MemoryWatch:
    """``with MemoryWatch(device) as mem: ...`` then ``mem.report``; samples RSS every ``interval`` seconds."""

    def __init__(self, device: torch.device, interval: float = 0.02) -> None:
        self.device = device
        self.interval = interval
        self.report = MemoryReport()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="memwatch", daemon=True)

    def __enter__(self) -> MemoryWatch:
        self.report.rss_start = self.report.rss_peak = rss_bytes()
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._note(rss_bytes())
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.report.gpu_peak = torch.cuda.max_memory_allocated(self.device)

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self._note(rss_bytes())

    def _note(self, rss: int | None) -> None:
        if rss is not None and (self.report.rss_peak is None or rss > self.report.rss_peak):
            self.report.rss_peak = rss

"""Keep freed heap memory in the process on Linux/glibc, so CPU inference stops paying page faults per layer.

glibc serves big blocks (a 64-channel feature map of a 640x360 frame is 59 MB) with mmap and gives them back
on free, so every layer of every frame faults in and zeroes fresh pages: measured on 2 cores, a third of the
CPU time went to the kernel and the model ran at half speed (compact x4, 640x360: 0.52 -> 0.98 fps with this).
With mmap off and trimming off, freed maps are reused from the heap; the peak stays what one frame needs.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_M_PERTURB = -6
_MMAP_MAX_DEFAULT = 65536
_done = False


def _mallopt() -> Callable[[int, int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
    except (OSError, AttributeError):  # musl and others have no mallopt
        return None


def keep_freed_memory() -> bool:
    """Switch glibc to reuse freed memory (process-wide, once); False where that is not glibc."""
    global _done
    if _done:
        return True
    mallopt = _mallopt()
    if mallopt is None:
        return False
    _done = bool(mallopt(_M_TRIM_THRESHOLD, 1 << 30)) and bool(mallopt(_M_MMAP_MAX, 0))
    return _done


@contextmanager
def deterministic_heap() -> Iterator[None]:
    """Inside, every heap block glibc hands out is filled with one fixed byte (M_PERTURB), all from the heap
    (M_MMAP_MAX 0: mmap'd blocks would come zeroed instead). A no-op off glibc.

    libx264 through PyAV reads some memory it never wrote: the same frames, options and threads=1 gave
    different streams from one call to the next on some content (fire_vfr, Set14 comic, 24x24 noise: 2-4
    variants in 5 calls), and always the same one with the heap filled like this."""
    mallopt = _mallopt()
    if mallopt is None:
        yield
        return
    mallopt(_M_PERTURB, 0x5A)
    mallopt(_M_MMAP_MAX, 0)
    try:
        yield
    finally:
        mallopt(_M_PERTURB, 0)
        if not _done:  # leave keep_freed_memory()'s setting on
            mallopt(_M_MMAP_MAX, _MMAP_MAX_DEFAULT)

"""Errors a user can cause. The CLI prints their message as one line on stderr and exits non-zero."""

from __future__ import annotations

import errno
import os
import shutil
import unicodedata
import warnings
from pathlib import Path

# Every command (``upscale video``, ``upscale train``, ``python -m train``) prints failures with this prefix.
ERROR_PREFIX = "upscale: error: "

# Exit codes for a run stopped from outside: 128 + the signal number, as a shell reports it.
EXIT_INTERRUPTED = 130  # SIGINT (Ctrl-C)
EXIT_TERMINATED = 143  # SIGTERM

# "The disk is full" in its three forms: no space, over quota, over a file-size limit (RLIMIT_FSIZE).
OUT_OF_SPACE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


class UpscalerError(Exception):
    """A failure with a message fit for the user: one line, no traceback."""


class ModelLoadError(UpscalerError):
    """A weights file that is missing, unreadable or of an architecture we do not know."""


class MediaError(UpscalerError):
    """An input that is missing, not an image/video, corrupt, empty, or an output we cannot write."""


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so that the same clean-up runs, but told apart for the exit code."""


class UpscalerWarning(UserWarning):
    """A notice for the user about one run (a stream re-encoded, alpha dropped, damage found). The CLI shows every
    one, not Python's first per call site: a batch's second file deserves its own warning."""


class DiskSpaceWarning(UpscalerWarning):
    """The output may not fit on its disk (an estimate, so a warning and not an error)."""


def printable(text: str) -> str:
    """``text`` with control characters (newline, escape...), line separators and undecodable file-name bytes
    written as escapes, so that a message stays one line and cannot drive the terminal."""
    out = []
    for ch in text:
        category = unicodedata.category(ch)
        if category == "Cs" and 0xDC80 <= ord(ch) <= 0xDCFF:  # a byte os.fsdecode could not decode
            out.append(f"\\x{ord(ch) - 0xDC00:02x}")
        elif category in ("Cc", "Cs", "Zl", "Zp"):
            out.append(ch.encode("unicode_escape", "backslashreplace").decode("ascii"))
        else:
            out.append(ch)
    return "".join(out)


def error_line(message: str) -> str:
    """The one line a failure is reported with."""
    return ERROR_PREFIX + printable(message)


def interrupt_exit_code(exc: BaseException) -> int:
    """143 when SIGTERM is anywhere in the chain of ``exc`` (a handler may re-raise its own interrupt), else 130."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, Terminated):
            return EXIT_TERMINATED
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return EXIT_INTERRUPTED


def out_of_space(exc: BaseException) -> bool:
    """Whether ``exc``, or an error it was raised from, is a write that failed for lack of space."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if getattr(current, "errno", None) in OUT_OF_SPACE_ERRNOS:
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


def is_out_of_memory(exc: BaseException) -> bool:
    """An allocator failure: MemoryError, torch's (CUDA) OutOfMemoryError, or the CPU allocator's RuntimeError."""
    if isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError":
        return True
    return isinstance(exc, RuntimeError) and "can't allocate memory" in str(exc)


def warn_if_short_of_space(dst: str | os.PathLike[str], estimate: int) -> bool:
    """Warn (one line, DiskSpaceWarning) when the disk that will hold ``dst`` has less free space than the
    ``estimate`` of its size, before the work starts: a full disk is otherwise only found out when a write fails,
    possibly after hours. An estimate can be wrong, so this never refuses. True when it warned."""
    folder = Path(os.path.abspath(dst)).parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return False
    if free >= estimate:
        return False
    warnings.warn(f"{dst}: may need about {_size(estimate)} and only {_size(free)} is free on its disk; "
                  "the run stops with an error if it fills up", DiskSpaceWarning, stacklevel=2)
    return True


def _size(n: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:,.0f} {unit}" if unit == "bytes" else f"{n:,.1f} {unit}"
        n /= 1000
    return f"{n:,.1f} TB"

"""Output files are written under a temporary name and renamed when complete, and never over an input."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

from .errors import MediaError


def check_output_path(src: Path, dst: Path, overwrite: bool) -> None:
    """Refuse to write over the input, and over an existing output unless asked to."""
    if not src.exists():
        raise MediaError(f"{src}: no such file")
    if src.is_dir():
        raise MediaError(f"{src}: is a directory, not a file")
    if dst.exists() and os.path.samefile(src, dst):
        raise MediaError(f"{dst}: output would overwrite the input")
    if dst.exists() and not overwrite:
        raise MediaError(f"{dst}: already exists (use --overwrite to replace it)")
    if dst.exists() and dst.is_dir():
        raise MediaError(f"{dst}: is a directory")
    _check_parent(dst)


def _check_parent(dst: Path) -> None:
    """The output's folder exists or can be made: no plain file sits where a folder of the path should be
    (mkdir's own error for that, "File exists", says nothing useful). Checked before any work is done."""
    for parent in Path(dst).absolute().parents:
        if parent.exists():
            if not parent.is_dir():
                raise MediaError(f"{dst}: cannot write ({parent} is a file, not a folder)")
            return


def temporary_path(dst: Path) -> Path:
    """A sibling of ``dst`` with the same extension (muxers and encoders pick the format from it)."""
    return dst.with_name(f".{dst.stem}.partial-{uuid.uuid4().hex[:8]}{dst.suffix}")


@contextlib.contextmanager
def atomic_output(dst: Path) -> Iterator[Path]:
    """Yield a temporary path to write to; rename it onto ``dst`` only if the block completes.

    On any exception (Ctrl-C included) the temporary file is removed, so no half-written file
    ever sits under the final name.
    """
    tmp = temporary_path(dst)
    _check_parent(dst)
    try:
        dst.parent.mkdir(parents=True, exist_ok=True)
        yield tmp
        if not tmp.exists():
            raise MediaError(f"{dst}: nothing was written")
        os.replace(tmp, dst)
    except OSError as exc:
        _remove(tmp)
        raise MediaError(f"{dst}: cannot write ({exc.strerror or exc})") from exc
    except BaseException:
        _remove(tmp)
        raise


def _remove(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink()

"""Output files: written under a hidden temporary name and renamed when complete, never over an input,
and locked, so two runs never write the same output at once.

Each output being written has a hidden lock file beside it (``.NAME.lock``) held with ``flock``. The kernel
drops the lock when its process dies, however it dies (SIGKILL included), so a lock is stale exactly when
nobody holds it, and only the holder of an output's lock removes that output's leftover temporary files.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .errors import MediaError

try:
    import fcntl
except ImportError:  # not POSIX: outputs are still atomic, just not locked
    fcntl = None  # type: ignore[assignment]

_PARTIAL = ".partial-"
_UNIQUE_HEX = 8
_DEFAULT_NAME_MAX = 255


class OutputBusy(MediaError):
    """Another live process holds the lock on this output."""


def check_output_path(src: Path, dst: Path, overwrite: bool) -> None:
    """Refuse to write over the input, and over an existing output unless asked to; and fail before any work
    on what would only stop the write later: an unwritable folder, a name too long, another run writing it."""
    if not src.exists():
        raise MediaError(f"{src}: no such file")
    if src.is_dir():
        raise MediaError(f"{src}: is a directory, not a file")
    folder = _nearest_folder(dst)
    if folder is not None:
        _check_name_length(dst, folder)  # before stat(), which fails on such a name with a raw OSError
    if dst.exists() and os.path.samefile(src, dst):
        raise MediaError(f"{dst}: output would overwrite the input")
    if dst.exists() and not overwrite:
        raise MediaError(f"{dst}: already exists (use --overwrite to replace it)")
    if dst.exists() and dst.is_dir():
        raise MediaError(f"{dst}: is a directory")
    _check_parent(dst)
    _check_not_busy(dst)


def _check_not_busy(dst: Path) -> None:
    """Fail early, before any work, if another process is writing ``dst`` (the lock itself is taken later;
    this only spares the user a start that cannot finish)."""
    if fcntl is None or not dst.parent.is_dir():
        return
    lock = lock_path(dst)
    with _held_guard:
        if os.path.abspath(lock) in _held:
            return  # it is this process
    try:
        fd = os.open(lock, os.O_RDWR)
    except OSError:
        return  # no lock file: nobody is writing it
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise _busy(dst) from None
    except OSError:
        pass
    finally:
        os.close(fd)  # also lets go of the lock, if this got it


def _check_parent(dst: Path) -> None:
    """The output's folder exists or can be made and written to, and its name fits: checked before any
    work is done, so the error names the output instead of surfacing later from an encoder."""
    parent = _nearest_folder(dst)
    if parent is None:
        return
    if not parent.is_dir():
        # mkdir's own error for this, "File exists", says nothing useful.
        raise MediaError(f"{dst}: cannot write ({parent} is a file, not a folder)")
    if not os.access(parent, os.W_OK | os.X_OK):
        why = "read-only file system" if _read_only(parent) else "permission denied"
        raise MediaError(f"{dst}: cannot write ({parent} is not writable: {why})")
    _check_name_length(dst, parent)


def _nearest_folder(dst: Path) -> Path | None:
    """The output's nearest ancestor that exists (a file there is reported by _check_parent)."""
    return next((p for p in Path(dst).absolute().parents if p.exists()), None)


def _read_only(folder: Path) -> bool:
    try:
        return bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def _name_max(folder: Path) -> int:
    """The longest file name, in bytes, the file system holding ``folder`` takes."""
    try:
        return int(os.pathconf(folder, "PC_NAME_MAX"))
    except (OSError, ValueError):
        return _DEFAULT_NAME_MAX


def _check_name_length(dst: Path, folder: Path) -> None:
    limit, length = _name_max(folder), len(os.fsencode(dst.name))
    if length > limit:
        raise MediaError(f"{dst}: file name too long ({length} bytes; this file system takes {limit})")


def _hidden_name(dst: Path, stem: str, tail: str, limit: int) -> str:
    """``.STEM TAIL``, within ``limit`` bytes: a long stem is cut and a hash of the full output name
    added, so the name stays unique to this output."""
    name = f".{stem}{tail}"
    if len(os.fsencode(name)) <= limit:
        return name
    mark = "~" + hashlib.sha1(os.fsencode(dst.name)).hexdigest()[:8]
    while stem and len(os.fsencode(f".{stem}{mark}{tail}")) > limit:
        stem = stem[:-1]  # by characters, so a multi-byte one is never split
    return f".{stem}{mark}{tail}"


def _partial_parts(dst: Path) -> tuple[str, str]:
    """The temporary names of ``dst`` are PREFIX + 8 hex digits + SUFFIX (the output's extension, from
    which muxers and encoders pick the format)."""
    placeholder = _PARTIAL + "0" * _UNIQUE_HEX + dst.suffix
    name = _hidden_name(dst, dst.stem, placeholder, _name_max(dst.parent))
    return name[: -len(placeholder)] + _PARTIAL, dst.suffix


def temporary_path(dst: Path) -> Path:
    """A fresh hidden sibling of ``dst`` with the same extension, within the file system's name limit."""
    prefix, suffix = _partial_parts(dst)
    return dst.with_name(f"{prefix}{uuid.uuid4().hex[:_UNIQUE_HEX]}{suffix}")


def lock_path(dst: Path) -> Path:
    """The hidden lock file of ``dst``, within the file system's name limit."""
    return dst.with_name(_hidden_name(dst, dst.name, ".lock", _name_max(dst.parent)))


def stale_temporaries(dst: Path) -> list[Path]:
    """The temporary files of ``dst`` in its folder (stale only while nobody holds its lock)."""
    if not dst.parent.is_dir():
        return []
    prefix, suffix = _partial_parts(dst)
    pattern = re.compile(re.escape(prefix) + f"[0-9a-f]{{{_UNIQUE_HEX}}}" + re.escape(suffix))
    return sorted(p for p in dst.parent.iterdir() if pattern.fullmatch(p.name))


@dataclass
class _Held:
    fd: int | None
    overwrite: bool
    depth: int = 1


_held: dict[str, _Held] = {}  # lock file -> this process's hold on it
_held_guard = threading.Lock()


@contextlib.contextmanager
def output_lock(dst: Path, *, overwrite: bool = True) -> Iterator[None]:
    """Hold the exclusive lock on writing ``dst`` for the block; raise :class:`OutputBusy` at once if
    another process holds it. Taking it clears the temporary files a dead run left for ``dst``.

    Re-entrant within a process, so a caller can take it before its work and the ``atomic_output``
    inside reuses it; ``overwrite`` is what that inner ``atomic_output`` does by default when the
    final name exists at rename time.
    """
    dst = Path(dst)
    made = _make_parent(dst)
    lock = lock_path(dst)
    key = os.path.abspath(lock)
    with _held_guard:
        held = _held.get(key)
        if held is not None:
            held.depth += 1
    if held is not None:
        try:
            yield
        finally:
            with _held_guard:
                held.depth -= 1
        return

    fd = _acquire(lock, dst)
    with _held_guard:
        _held[key] = _Held(fd, overwrite)
    try:
        for leftover in stale_temporaries(dst):
            _remove(leftover)
        yield
    finally:
        with _held_guard:
            del _held[key]
        if fd is not None:
            _remove(lock)  # while still holding it: see _acquire
            os.close(fd)
        for folder in made:  # a run that wrote nothing leaves no empty folders either
            with contextlib.suppress(OSError):
                folder.rmdir()


def _make_parent(dst: Path) -> list[Path]:
    """Create the output's folder; return the folders made, deepest first."""
    _check_parent(dst)
    made = [p for p in [dst.parent, *dst.parent.parents] if not p.exists()]
    try:
        dst.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise MediaError(f"{dst}: cannot write ({exc.strerror or exc})") from exc
    return made


def _acquire(lock: Path, dst: Path) -> int | None:
    """Open and flock ``lock``; None where the file system cannot lock (the output is then unlocked)."""
    if fcntl is None:
        return None
    for _ in range(100):
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        except FileNotFoundError:  # a failed run just removed the (empty) folder it had made: make it again
            _make_parent(dst)
            continue
        except OSError as exc:
            raise MediaError(f"{dst}: cannot write ({exc.strerror or exc})") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise _busy(dst) from None
        except OSError:  # e.g. ENOLCK on some network file systems
            os.close(fd)
            return None
        # The holder unlinks the lock file before letting go, so a lock won on a file no longer under
        # that name was won on a dead file: try again with the current one.
        try:
            here = os.stat(lock)
            mine = os.fstat(fd)
            if (here.st_dev, here.st_ino) == (mine.st_dev, mine.st_ino):
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)
    raise MediaError(f"{dst}: cannot lock {lock.name} (it keeps being replaced)")


def _busy(dst: Path) -> OutputBusy:
    return OutputBusy(f"{dst}: another upscale run is writing this output (wait for it, or choose another name)")


@contextlib.contextmanager
def atomic_output(dst: Path, *, overwrite: bool | None = None) -> Iterator[Path]:
    """Yield a temporary path to write to (already created, so a folder that cannot be written to
    fails here, naming ``dst``); move it to ``dst`` only if the block completes.

    The output's lock (:func:`output_lock`) is held throughout. With ``overwrite`` false an output
    that appeared meanwhile under the final name is refused, never replaced; ``None`` means as the
    enclosing ``output_lock`` says, or replace when there is none. On any exception (Ctrl-C included)
    the temporary file is removed, so no half-written file ever sits under the final name.
    """
    dst = Path(dst)
    if overwrite is None:
        with _held_guard:
            held = _held.get(os.path.abspath(lock_path(dst))) if dst.parent.is_dir() else None
        overwrite = True if held is None else held.overwrite
    with output_lock(dst, overwrite=overwrite):
        if not overwrite and dst.exists():
            raise MediaError(f"{dst}: already exists (use --overwrite to replace it)")
        tmp = temporary_path(dst)
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except OSError as exc:
            raise MediaError(f"{dst}: cannot write ({exc.strerror or exc})") from exc
        try:
            yield tmp
            if not tmp.exists() or tmp.stat().st_size == 0:
                raise MediaError(f"{dst}: nothing was written")
            _publish(tmp, dst, overwrite)
        except OSError as exc:
            _remove(tmp)
            raise MediaError(f"{dst}: cannot write ({exc.strerror or exc})") from exc
        except BaseException:
            _remove(tmp)
            raise


def _publish(tmp: Path, dst: Path, overwrite: bool) -> None:
    if overwrite:
        os.replace(tmp, dst)
        return
    appeared = MediaError(f"{dst}: appeared while this run was writing it; left as it is (use --overwrite "
                          "to replace it)")
    # A hard link never replaces an existing name: rename-without-replace.
    try:
        os.link(tmp, dst)
    except FileExistsError:
        raise appeared from None
    except OSError:  # no hard links on this file system (FAT, some network ones): check, then rename
        if dst.exists():
            raise appeared from None
        os.replace(tmp, dst)
        return
    _remove(tmp)


def _remove(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink()

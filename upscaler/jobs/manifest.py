"""The job folder beside the output: finished segment files and a JSON manifest vouching for them.

Every write is temp-then-rename (and fsync'd), so a SIGKILL or a power cut leaves either the old manifest or
the new one, never half of one; a segment counts as done only while its file has the recorded size and
checksum.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

from ..errors import MediaError
from ..fileio import _hidden_name, _name_max

_VERSION = 1
_MANIFEST = "manifest.json"


def job_dir_for(dst: Path) -> Path:
    """``.NAME.upscale-job`` beside ``dst``; shortened (with a hash of the name) where that would pass the
    file system's name limit, as the temporary and lock files are."""
    return dst.with_name(_hidden_name(dst, dst.name, ".upscale-job", _name_max(dst.parent)))


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:  # by chunks: hashlib.file_digest is Python 3.11+, and we support 3.10
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class JobDir:
    """``open`` it with the job's key; ``done(i)`` says whether segment i's file can be trusted."""

    def __init__(self, path: Path, key: dict[str, Any]) -> None:
        self.path = path
        self.key = key
        self.segments: dict[int, dict[str, Any]] = {}

    @classmethod
    def open(cls, dst: Path, key: dict[str, Any]) -> tuple[JobDir, str | None]:
        """The job folder for ``dst``, and why an existing one was thrown away (None if it was not)."""
        job = cls(job_dir_for(dst), key)
        stale = None
        if job.path.exists():
            try:
                data = json.loads((job.path / _MANIFEST).read_text())
                if data.get("version") != _VERSION or data.get("key") != key:
                    stale = "it was for another source, model or options"
                else:
                    job.segments = {int(i): entry for i, entry in data["segments"].items()}
            except (OSError, ValueError, KeyError, TypeError, AttributeError):
                stale = "its manifest is missing or unreadable"
            if stale is not None:
                shutil.rmtree(job.path, ignore_errors=True)
        try:
            job.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise MediaError(f"{job.path}: cannot create the job folder ({exc.strerror or exc})") from None
        job._remove_partials()
        if stale is None and not job.segments:
            job._write()
        return job, stale

    def segment_path(self, index: int, suffix: str) -> Path:
        return self.path / f"segment-{index:05d}{suffix}"

    def done(self, index: int, frames: int) -> bool:
        """Whether segment ``index`` (of ``frames`` source frames) has a finished file that is as recorded."""
        entry = self.segments.get(index)
        if entry is None or entry.get("source_frames") != frames:
            return False
        path = self.path / entry["file"]
        try:
            return path.stat().st_size == entry["size"] and sha256(path) == entry["sha256"]
        except OSError:
            return False

    def record(self, index: int, path: Path, **facts: Any) -> None:
        """Vouch for a finished segment file (flushed to disk first, so a power cut cannot undo it)."""
        with path.open("rb") as f:
            os.fsync(f.fileno())
        self.segments[index] = {"file": path.name, "size": path.stat().st_size, "sha256": sha256(path), **facts}
        self._write()

    def forget(self, index: int) -> None:
        if self.segments.pop(index, None) is not None:
            self._write()

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)

    def _write(self) -> None:
        data = {"version": _VERSION, "key": self.key,
                "segments": {str(i): entry for i, entry in sorted(self.segments.items())}}
        tmp = self.path / f".{_MANIFEST}.tmp"
        with tmp.open("w") as f:
            json.dump(data, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path / _MANIFEST)
        with contextlib.suppress(OSError):  # the rename itself survives a power cut once the folder is synced
            fd = os.open(self.path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    def _remove_partials(self) -> None:
        """Temporary files of a run that was killed (atomic_output could not clean up after a SIGKILL)."""
        for leftover in self.path.glob(".*partial-*"):
            with contextlib.suppress(OSError):
                leftover.unlink()

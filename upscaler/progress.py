"""A rich progress bar for frames: count, fps and ETA; silent under ``--quiet``."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text


class FpsColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:5.2f} fps" if speed else "  ... fps", style="progress.data.speed")


class FrameProgress:
    """Callbacks for the video pipeline: ``start(total)``, ``resume(done)`` for a resumed job, then
    ``advance(n)`` per finished batch."""

    def __init__(self, progress: Progress | None, label: str) -> None:
        self._progress = progress
        self._task = progress.add_task(escape(label), total=None) if progress else None

    def start(self, total: int | None) -> None:
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, total=total)

    def resume(self, done: int) -> None:
        """Frames an earlier run finished: counted in the total, but not in this run's fps and ETA."""
        if self._progress is not None and self._task is not None:
            self._progress.reset(self._task, total=self._progress.tasks[self._task].total, completed=done)

    def advance(self, n: int) -> None:
        if self._progress is not None and self._task is not None:
            self._progress.advance(self._task, n)


@contextlib.contextmanager
def frame_progress(label: str, quiet: bool, console: Console | None = None) -> Iterator[FrameProgress]:
    if quiet:
        yield FrameProgress(None, label)
        return
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("frames"),
               FpsColumn(), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn())
    with Progress(*columns, console=console or Console(stderr=True), transient=False) as progress:
        yield FrameProgress(progress, label)

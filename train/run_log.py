"""What a run reports as it goes: the metrics CSV and the live progress line."""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any


class MetricsLog:
    """``metrics.csv``: one row per log interval. A resumed run drops rows past its checkpoint, then appends."""

    def __init__(self, path: Path, columns: list[str], start_step: int) -> None:
        self.path = path
        self.columns = columns
        kept: list[list[str]] = []
        if start_step and path.exists():
            with open(path, newline="") as f:
                rows = list(csv.reader(f))
            if rows and rows[0] == columns:
                kept = [r for r in rows[1:] if r and r[0].isdigit() and int(r[0]) <= start_step]
        with open(path, "w", newline="") as f:
            csv.writer(f).writerows([columns, *kept])

    def write(self, values: dict[str, Any]) -> None:
        with open(self.path, "a", newline="") as f:
            csv.writer(f).writerow([_cell(values.get(c, "")) for c in self.columns])


def _cell(value: Any) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)


class RunProgress:
    """A live rich progress line (step, loss, it/s, ETA) on rank 0 in a terminal; a no-op otherwise (logs
    redirected to a file get the per-interval log lines instead)."""

    def __init__(self, enabled: bool, total: int, start: int) -> None:
        self.bar = None
        if enabled:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

            if not Console().is_terminal:
                return
            columns = (TextColumn("step"), MofNCompleteColumn(), BarColumn(), TextColumn("{task.fields[info]}"))
            self.bar = Progress(*columns)
            self.task = self.bar.add_task("train", total=total, completed=start, info="")

    def __enter__(self) -> RunProgress:
        if self.bar is not None:
            self.bar.start()
        return self

    def update(self, done: int, info: str | None = None) -> None:
        if self.bar is not None:
            fields = {"info": info} if info is not None else {}
            self.bar.update(self.task, completed=done, **fields)

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()


def format_eta(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"

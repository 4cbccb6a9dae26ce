"""``--workers N``: a job's segments on N Ray actors, each with its own model built once (optional: Ray comes
with ``pip install "upscaler[cluster]"``)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import UpscalerError
from ..video.options import EncodeOptions

if TYPE_CHECKING:
    from .run import Outcome, Replica
    from .segments import Segment


def require_ray(workers: int) -> None:
    """One clear line, before any work, when Ray is missing."""
    try:
        import ray  # noqa: F401
    except ImportError:
        raise UpscalerError(f"--workers {workers} needs Ray, which is not installed "
                            "(pip install \"upscaler[cluster]\"), or use --workers 1") from None


class _Worker:
    """A Ray actor: builds its model once, then encodes the segments it is given."""

    def __init__(self, replica: Callable[[], Replica]) -> None:
        self.frame_fn, self.pipeline = replica()

    def encode(self, src: Path, path: Path, segment: Segment, options: EncodeOptions,
               extra: dict[str, Any]) -> Outcome:
        from .run import encode_segment

        return encode_segment(src, path, segment, self.frame_fn, options, None, {**self.pipeline, **extra})


def run_segments(src: Path, workers: int, replica: Callable[[], Replica], options: EncodeOptions,
                 progress: Callable[[int], None] | None, extra: dict[str, Any],
                 todo: list[tuple[Segment, Path]]) -> Iterator[Outcome]:
    """The outcomes of ``todo``, as the workers finish them; each worker gets its next segment as soon as it is
    free. A Ray cluster started here is shut down at the end (Ctrl-C included)."""
    import ray

    if not todo:
        return
    started = not ray.is_initialized()
    if started:
        local = "RAY_ADDRESS" not in os.environ
        ray.init(num_cpus=max(workers, os.cpu_count() or 1) if local else None, include_dashboard=False,
                 log_to_driver=False, configure_logging=False)
    try:
        actor = ray.remote(_Worker)
        pool = [actor.remote(replica) for _ in range(min(workers, len(todo)))]
        queue = list(todo)
        running: dict[Any, Any] = {}  # future -> its actor

        def give(worker: Any) -> None:
            segment, path = queue.pop(0)
            running[worker.encode.remote(src, path, segment, options, extra)] = worker

        for worker in pool:
            if queue:
                give(worker)
        while running:
            ready, _ = ray.wait(list(running), num_returns=1)
            worker = running.pop(ready[0])
            try:
                outcome = ray.get(ready[0])
            except ray.exceptions.RayError as exc:  # the worker itself failed (its model, its process)
                raise UpscalerError(f"a --workers process failed: {str(exc).splitlines()[0]}") from None
            if queue:
                give(worker)
            if progress is not None:
                progress(outcome.frames)
            yield outcome
    finally:
        if started:
            ray.shutdown()

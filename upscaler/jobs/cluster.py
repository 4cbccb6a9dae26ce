"""``--workers N``: a job's segments on N Ray actors, each with its own model built once (optional: Ray comes
with ``pip install "upscaler[cluster]"``)."""

from __future__ import annotations

import functools
import math
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


def actor_resources(workers: int, device: str | None, cuda: bool, gpus: float, cores: float) -> dict[str, float]:
    """What each of ``workers`` Ray actors asks for. Ray hides the GPUs from an actor that asks for none
    (CUDA_VISIBLE_DEVICES=""), so one whose model would run on CUDA (``cuda`` available here and ``device``
    not another) asks for a GPU, or a share of one when there are more workers than GPUs: 1/k for k workers
    a GPU, so that every share fits on some GPU. CPU workers share the cores (their torch threads too)."""
    threads = max(1, int(cores) // workers)
    on_cuda = cuda and gpus >= 1 and (device in (None, "auto") or str(device).startswith("cuda"))
    if not on_cuda:
        return {"num_cpus": threads, "num_gpus": 0}
    per_gpu = math.ceil(workers / int(gpus))
    return {"num_cpus": 1, "num_gpus": 1 if per_gpu == 1 else 1 / per_gpu}


def _on_visible_gpu(replica: Callable[[], Replica]) -> Callable[[], Replica]:
    """``replica`` (engine.video_replica with an Upscaler spec) with "cuda:N" made "cuda": in the actor the
    one GPU Ray gave it is the only one visible, as device 0."""
    if isinstance(replica, functools.partial) and replica.args and isinstance(replica.args[0], dict):
        spec = replica.args[0]
        if str(spec.get("device", "")).startswith("cuda:"):
            return functools.partial(replica.func, {**spec, "device": "cuda"}, *replica.args[1:],
                                     **replica.keywords)
    return replica


def _device(replica: Callable[[], Replica]) -> str | None:
    """The device the spec of an engine.video_replica partial asks for (None: not known, as "auto")."""
    if isinstance(replica, functools.partial) and replica.args and isinstance(replica.args[0], dict):
        device = replica.args[0].get("device")
        return None if device is None else str(device)
    return None


class _Worker:
    """A Ray actor: builds its model once, then encodes the segments it is given."""

    def __init__(self, replica: Callable[[], Replica], threads: int | None = None) -> None:
        if threads is not None:  # this worker's share of the cores, not torch's default of all of them
            import torch

            torch.set_num_threads(threads)
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
        import torch

        count = min(workers, len(todo))
        totals = ray.cluster_resources()
        resources = actor_resources(count, _device(replica), torch.cuda.is_available(),
                                    totals.get("GPU", torch.cuda.device_count()), totals.get("CPU", 1))
        if resources["num_gpus"]:
            replica, threads = _on_visible_gpu(replica), None
        else:
            threads = int(resources["num_cpus"])
        actor = ray.remote(_Worker).options(**resources)
        pool = [actor.remote(replica, threads) for _ in range(count)]
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

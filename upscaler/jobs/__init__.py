"""Long videos as resumable jobs: cut at keyframes into segments, each upscaled by the ordinary pipeline into
its own file in a job folder beside the output, then joined by a remux. A rerun after a crash redoes only the
segments its manifest does not vouch for."""

from __future__ import annotations

from .run import run_job

__all__ = ["run_job"]

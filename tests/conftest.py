"""Shared fixtures. Data comes from ../shared (or $UPSCALER_SHARED); tests that need it skip without it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("UPSCALER_SHARED", REPO.parent / "shared"))


def shared_path(*parts: str) -> Path:
    """A path under shared/, or a skip of the calling test when it is absent."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared data not available: {path}")
    return path


@pytest.fixture
def shared() -> Path:
    return shared_path()


@pytest.fixture
def clips() -> Path:
    """shared/clips: the short real video clips (see shared/README.md), or a skip."""
    return shared_path("clips")


@pytest.fixture
def one_thread() -> Iterator[None]:
    """One torch thread: two intra-op threads on two cores that another process keeps busy thrash badly
    (~40x slower here)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)

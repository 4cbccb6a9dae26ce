"""The memory check for outputs too big to hold: once per output size, up front, at the real sample size."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

import upscaler.engine as engine
from upscaler import Upscaler
from upscaler.errors import UpscalerError

OUTSCALE = 64  # 64x48 -> 4096x3072: ~340 MB to hold on the CPU, above the check's 256 MiB floor


def need(up: Upscaler, itemsize: int) -> int:
    """What ``check_memory`` asks for one CPU frame of 64x48 at OUTSCALE (host samples + 24 B/pixel)."""
    out_w, out_h = up.output_size(64, 48)
    return out_w * out_h * (3 * itemsize + 24)


def test_memory_is_checked_once_per_size_not_per_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    """A long run must not be refused halfway because MemAvailable dipped after the first batch."""
    up = Upscaler(scale=4, device="cpu", outscale=OUTSCALE)
    available = [need(up, 1) + (1 << 20)]
    reads: list[int] = []

    def memory(device: object) -> int:
        reads.append(available[0])
        return available[0]

    monkeypatch.setattr(engine, "_available_memory", memory)
    monkeypatch.setattr(up, "_submit", lambda batch, to_rgb, from_rgb: (lambda: batch))  # no real work
    frames = np.zeros((1, 48, 64, 3), np.uint8)
    up.upscale_array(frames)
    available[0] = need(up, 1) // 2  # another process took memory meanwhile
    for _ in range(3):
        up.upscale_array(frames)
    assert len(reads) == 1
    with pytest.raises(UpscalerError, match="needs about"):  # a new size is still checked
        up.upscale_array(np.zeros((1, 48, 64, 3), np.uint16))


def ten_bit_clip(path: Path, clips: Path) -> Path:
    """Two real frames (chaplin.mp4), 64x48, in 10-bit H.264."""
    with av.open(str(clips / "chaplin.mp4")) as src, av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=25, options={"preset": "ultrafast"})
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p10le"
        for i, frame in enumerate(src.decode(video=0)):
            if i == 2:
                break
            small = frame.reformat(width=64, height=48, format="yuv420p10le")
            small.pts, small.time_base = i, Fraction(1, 25)
            out.mux(stream.encode(small))
        out.mux(stream.encode(None))
    return path


def test_10bit_video_is_refused_up_front_at_two_bytes_a_sample(tmp_path: Path, clips: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Enough memory for 8-bit frames, not for the uint16 ones 10-bit input gives: refused before the run
    starts (no progress bar, no output), not at its first batch."""
    src = ten_bit_clip(tmp_path / "in.mkv", clips)
    up = Upscaler(scale=4, device="cpu", outscale=OUTSCALE, colour_convert="swscale")
    monkeypatch.setattr(engine, "_available_memory", lambda device: (need(up, 1) + need(up, 2)) // 2)
    started: list[object] = []
    with pytest.raises(UpscalerError, match="needs about"):
        up.upscale_video(src, tmp_path / "out.mkv", on_start=started.append)
    assert started == [] and not (tmp_path / "out.mkv").exists()

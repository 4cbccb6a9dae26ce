"""Damaged video data (issue 13 item 2): random bytes over part of a real mp4's frame data.

By default the run finishes without the frames that cannot be decoded and says, in one warning, how many and
when; strict mode (``--strict``) makes the first damaged frame an error with no output. The damage is made in
the test from a shared clip: seeded random bytes over the middle of the ``mdat`` box, the index left intact.
"""

from __future__ import annotations

import re
import shutil
import struct
import threading
import warnings
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from upscaler import cli
from upscaler.archs import SRVGGNetCompact
from upscaler.errors import MediaError
from upscaler.models.loading import save_model
from upscaler.video import EncodeOptions, VideoWarning, upscale_video

FAST = EncodeOptions(codec="libx264", preset="ultrafast")


def shrink(batch: np.ndarray) -> np.ndarray:
    """A frame_fn that stands in for the model and keeps the encoder's work small."""
    return np.ascontiguousarray(batch[:, ::4, ::4])


def mdat_payload(data: bytes) -> tuple[int, int]:
    """(start, end) byte offsets of the top-level mdat box's payload."""
    pos = 0
    while pos + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[pos:pos + 8])
        head = 8
        if size == 1:
            size, head = struct.unpack(">Q", data[pos + 8:pos + 16])[0], 16
        elif size == 0:
            size = len(data) - pos
        if kind == b"mdat":
            return pos + head, pos + size
        pos += size
    raise AssertionError("no mdat box")


def damage(src: Path, dst: Path, lo: float = 0.4, hi: float = 0.6, seed: int = 13) -> tuple[int, int]:
    """Copy ``src`` with seeded random bytes over ``lo``..``hi`` of its frame data; the damaged byte range."""
    data = bytearray(src.read_bytes())
    start, end = mdat_payload(bytes(data))
    a, b = start + int((end - start) * lo), start + int((end - start) * hi)
    data[a:b] = np.random.default_rng(seed).integers(0, 256, b - a, dtype=np.uint8).tobytes()
    dst.write_bytes(bytes(data))
    return a, b


def video_packets(path: Path) -> list[tuple[float, int, int]]:
    """(seconds from the start, byte position, size) of every video packet, by demuxing alone."""
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        start = (c.start_time or 0) / av.time_base
        return [(float(p.pts * p.time_base) - start, p.pos, p.size)
                for p in c.demux(v) if p.size and p.pts is not None]


def frame_times(path: Path) -> list[float]:
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        start = (c.start_time or 0) / av.time_base
        return [float(f.pts * f.time_base) - start for f in c.decode(v)]


@pytest.fixture
def damaged(clips: Path, tmp_path: Path) -> tuple[Path, tuple[int, int]]:
    src = shutil.copy(clips / "realshort.mp4", tmp_path / "realshort.mp4")
    span = damage(Path(src), tmp_path / "damaged.mp4")
    return tmp_path / "damaged.mp4", span


@pytest.fixture
def out_dir(tmp_path: Path) -> Path:
    path = tmp_path / "out"
    path.mkdir()
    return path


def _keys(times: list[float] | tuple[float, ...]) -> set[float]:
    return {round(t, 3) for t in times}


def test_damaged_frames_are_left_out_counted_and_timed(damaged: tuple[Path, tuple[int, int]],
                                                       out_dir: Path) -> None:
    src, (a, b) = damaged
    packets = video_packets(src)
    hit = [t for t, pos, size in packets if pos < b and pos + size > a]  # packets the random bytes cover
    assert len(hit) >= 5
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = upscale_video(src, out_dir / "out.mkv", shrink, options=FAST)
    notes = [str(w.message) for w in caught if issubclass(w.category, VideoWarning)]
    damage_notes = [n for n in notes if "damaged" in n]
    assert len(damage_notes) == 1, notes
    note = damage_notes[0]
    assert "\n" not in note and src.name in note

    # Every input frame is either in the output, at its own time, or reported as left out.
    written = frame_times(out_dir / "out.mkv")
    assert len(written) == result.frames
    missing = _keys(t for t, _, _ in packets) - _keys(written)
    assert _keys(written) <= _keys(t for t, _, _ in packets)
    assert missing and missing <= _keys(result.damaged)
    match = re.search(r"(\d+) of (\d+) frames damaged at ([\d.]+)(?:-([\d.]+))?.*?(\d+) could not be decoded",
                      note)
    assert match, note
    count, total, first, last, left_out = match.groups()
    assert int(count) == len(result.damaged) and int(total) == len(packets) and int(left_out) == len(missing)
    assert result.frames == len(packets) - len(missing) == len(packets) - result.lost
    # The times named are those of the damaged frames, and they begin where the random bytes begin.
    assert float(first) == pytest.approx(min(result.damaged), abs=0.006)
    assert float(last or first) == pytest.approx(max(result.damaged), abs=0.006)
    frame = 1 / 30
    assert min(hit) - 3 * frame <= min(result.damaged) <= min(hit) + 3 * frame
    assert all(t >= min(hit) - 3 * frame for t in result.damaged)


def test_strict_stops_at_the_first_damaged_frame(damaged: tuple[Path, tuple[int, int]], out_dir: Path) -> None:
    src, (a, b) = damaged
    hit = [t for t, pos, size in video_packets(src) if pos < b and pos + size > a]
    with pytest.raises(MediaError, match=r"damaged video .*near ([\d.]+) s.*strict") as err:
        upscale_video(src, out_dir / "out.mkv", shrink, options=FAST, strict=True)
    assert "\n" not in str(err.value)
    near = float(re.search(r"near ([\d.]+) s", str(err.value)).group(1))
    assert abs(near - min(hit)) < 0.2
    assert list(out_dir.iterdir()) == []
    assert not any(t.name.startswith("video-") and t.is_alive() for t in threading.enumerate())


def test_nothing_decodable_is_still_an_error(clips: Path, tmp_path: Path, out_dir: Path) -> None:
    src = tmp_path / "wrecked.mp4"
    damage(clips / "realshort.mp4", src, lo=0.0, hi=1.0)
    with pytest.raises(MediaError, match="no frames decoded"):
        upscale_video(src, out_dir / "out.mkv", shrink, options=FAST)
    assert list(out_dir.iterdir()) == []


@pytest.mark.parametrize("name", ["fire_vfr.mp4", "chaplin.mp4", "no_duration_vp9_opus.webm"])
def test_clean_clips_report_no_damage(name: str, clips: Path, out_dir: Path) -> None:
    """No false alarms: B-frames, edit lists, VFR and VP9's hidden frames are no damage."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = upscale_video(clips / name, out_dir / "out.mkv", lambda f: np.ascontiguousarray(f[:, ::8, ::8]),
                               options=FAST, strict=True)
    assert result.damaged == ()
    assert not [w for w in caught if "damaged" in str(w.message)]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A two-layer x2 SRVGG: the CLI runs end to end without the shipped model's cost."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("model") / "tiny.safetensors"
    save_model(SRVGGNetCompact(num_feat=4, num_conv=1, upscale=2), path)
    return path


def _cli(*args: str) -> tuple[int, str]:
    """The command in-process, its warnings printed as the console script prints them (pytest's own
    warning capture would swallow them)."""
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = cli._show_warning
        result = CliRunner().invoke(cli.main, list(args))
    return result.exit_code, result.stderr


def test_cli_warns_in_one_line_and_strict_fails(damaged: tuple[Path, tuple[int, int]], tiny_model: Path,
                                                one_thread: None, tmp_path: Path) -> None:
    src, _ = damaged
    common = ("-m", str(tiny_model), "-q", "--codec", "libx264", "--preset", "ultrafast")
    strict_out = tmp_path / "strict.mkv"
    code, err = _cli("video", str(src), "-o", str(strict_out), *common, "--strict")
    lines = [line for line in err.splitlines() if line.strip()]
    assert code != 0 and len(lines) == 1 and lines[0].startswith("upscale: error: "), err
    assert "damaged video" in lines[0] and "Traceback" not in err
    assert not strict_out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["damaged.mp4",
                                                                                      "realshort.mp4"]

    out = tmp_path / "out.mkv"
    code, err = _cli("video", str(src), "-o", str(out), *common)
    assert code == 0, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("upscale: warning: "), err
    assert re.search(r"\d+ of 36 frames damaged at [\d.]+", lines[0]), lines[0]
    assert out.exists() and 0 < len(frame_times(out)) < 36


def test_batch_strict_fails_the_damaged_file_only_under_strict(damaged: tuple[Path, tuple[int, int]],
                                                                tiny_model: Path, one_thread: None,
                                                                tmp_path: Path) -> None:
    src, _ = damaged
    in_dir = tmp_path / "in"
    in_dir.mkdir()
    shutil.copy(src, in_dir / "clip.mp4")
    common = ("-m", str(tiny_model), "-q", "--codec", "libx264", "--preset", "ultrafast")
    code, err = _cli("batch", str(in_dir), str(tmp_path / "strict"), *common, "--strict")
    assert code != 0 and "damaged video" in err, err
    assert not list((tmp_path / "strict").rglob("*.mp4"))
    code, err = _cli("batch", str(in_dir), str(tmp_path / "lenient"), *common)
    assert code == 0, err
    assert "damaged stream" in err and 0 < len(frame_times(tmp_path / "lenient" / "clip.mp4")) < 36


def test_damaged_audio_that_is_re_encoded_is_counted(clips: Path, tmp_path: Path, out_dir: Path) -> None:
    """Audio re-encoded for the output (AAC into .webm) is decoded, so its damage is found and reported in
    the same one warning; the video is whole."""
    data = bytearray((clips / "realshort.mp4").read_bytes())
    with av.open(str(clips / "realshort.mp4")) as c:
        audio = [(p.pos, p.size, float(p.pts * p.time_base)) for p in c.demux(c.streams.audio[0]) if p.size]
    rng = np.random.default_rng(1)
    for pos, size, _ in audio[10:20]:
        data[pos:pos + size] = rng.integers(0, 256, size, dtype=np.uint8).tobytes()
    src = tmp_path / "bad_audio.mp4"
    src.write_bytes(bytes(data))
    webm = EncodeOptions(codec="libvpx-vp9")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = upscale_video(src, out_dir / "out.webm", shrink, options=webm)
    notes = [str(w.message) for w in caught if "damaged" in str(w.message)]
    assert len(notes) == 1, notes
    match = re.search(r"(\d+) audio packets could not be decoded \(silence\) at ([\d.]+)", notes[0])
    assert match and int(match.group(1)) == 10, notes[0]
    assert float(match.group(2)) == pytest.approx(audio[10][2], abs=0.03)
    assert result.frames == 36 and result.damaged == ()
    with pytest.raises(MediaError, match=r"damaged audio \(stream #1\) near"):
        upscale_video(src, out_dir / "strict.webm", shrink, options=webm, strict=True)
    assert sorted(p.name for p in out_dir.iterdir()) == ["out.webm"]

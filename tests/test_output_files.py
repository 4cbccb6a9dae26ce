"""Output files: per-output locks between runs, leftovers of killed runs, long names, unwritable folders, and
batch's check of outputs it would skip. Concurrency and SIGKILL run the real CLI as separate processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from conftest import REPO, shared_path

from upscaler.batch import output_problem, run_batch
from upscaler.cli import main
from upscaler.errors import MediaError
from upscaler.fileio import atomic_output, check_output_path, lock_path, output_lock, temporary_path
from upscaler.image.upscale import upscale_image_file
from upscaler.video.pipeline import upscale_video

FRAMES = 12


def tiny_clip(path: Path, frames: int = FRAMES, size: tuple[int, int] = (96, 72)) -> Path:
    """The first frames of a real clip, shrunk: the CLI runs it in about a second."""
    with av.open(str(shared_path("clips", "realshort.mp4"))) as src, av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=30, options={"preset": "ultrafast"})
        stream.width, stream.height, stream.pix_fmt = *size, "yuv420p"
        for i, frame in enumerate(src.decode(video=0)):
            if i == frames:
                break
            small = frame.reformat(width=size[0], height=size[1], format="yuv420p")
            small.pts, small.time_base = i, Fraction(1, 30)
            out.mux(stream.encode(small))
        out.mux(stream.encode(None))
    return path


def frame_count(path: Path) -> int:
    with av.open(str(path)) as c:
        return sum(1 for _ in c.decode(video=0))


def half(batch: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(batch[:, ::2, ::2])


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "upscaler", *args]


ENV = {**os.environ, "OMP_NUM_THREADS": "1"}  # two cores shared with others: one torch thread each


def start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(cli(*args), cwd=REPO, env=ENV, stderr=subprocess.PIPE, text=True)


def finish(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cli(*args), cwd=REPO, env=ENV, capture_output=True, text=True, timeout=180)


def wait_for_temp(proc: subprocess.Popen[str], folder: Path, pattern: str) -> Path:
    """The temp file a running process writes to, once it exists; the process is then stopped (SIGSTOP),
    so it is certainly mid-write while the test does its part."""
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        found = list(folder.glob(pattern))
        if found:
            proc.send_signal(signal.SIGSTOP)
            return found[0]
        time.sleep(0.005)
    proc.kill()
    pytest.fail(f"no temp file appeared before the run ended: {proc.communicate()[1]}")


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("upscale: error: ")]


VIDEO_ARGS = ("--scale", "2", "--preset", "ultrafast", "-q")


def test_second_video_run_on_the_same_output_stops_and_the_first_finishes(tmp_path: Path) -> None:
    src, dst = tiny_clip(tmp_path / "in.mp4"), tmp_path / "out.mp4"
    first = start("video", str(src), "-o", str(dst), *VIDEO_ARGS)
    try:
        temp = wait_for_temp(first, tmp_path, ".out.partial-*.mp4")
        second = finish("video", str(src), "-o", str(dst), *VIDEO_ARGS)
        assert second.returncode != 0 and "Traceback" not in second.stderr
        assert error_lines(second.stderr) == [f"upscale: error: {dst}: another upscale run is writing this output "
                                              "(wait for it, or choose another name)"], second.stderr
        assert temp.exists() and not dst.exists()  # the first run's work is untouched
    finally:
        first.send_signal(signal.SIGCONT)
    _, err = first.communicate(timeout=180)
    assert first.returncode == 0, err
    assert frame_count(dst) == FRAMES
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4", "out.mp4"]  # no lock, no temp left


def test_two_batches_into_one_folder_share_the_work(tmp_path: Path) -> None:
    src_dir, out_dir = tmp_path / "in", tmp_path / "out"
    src_dir.mkdir()
    tiny_clip(src_dir / "a.mp4")
    tiny_clip(src_dir / "b.mp4", frames=6)
    first = start("batch", str(src_dir), str(out_dir), *VIDEO_ARGS)
    try:
        temp = wait_for_temp(first, out_dir, ".a.partial-*.mp4")
        second = finish("batch", str(src_dir), str(out_dir), *VIDEO_ARGS)
        # The second leaves the first's file alone, says so, does the other one, and succeeds: nothing failed.
        assert second.returncode == 0, second.stderr
        assert f"upscale: skipped: {src_dir / 'a.mp4'}: another run is writing it" in second.stderr
        assert "failed" not in second.stderr and "error" not in second.stderr
        assert temp.exists() and frame_count(out_dir / "b.mp4") == 6
    finally:
        first.send_signal(signal.SIGCONT)
    _, err = first.communicate(timeout=180)
    assert first.returncode == 0, err  # before the locks, its temp file was deleted as stale under it
    assert frame_count(out_dir / "a.mp4") == FRAMES
    assert sorted(p.name for p in out_dir.iterdir()) == ["a.mp4", "b.mp4"]


def test_rerun_after_sigkill_clears_the_dead_runs_leftovers(tmp_path: Path) -> None:
    src, dst = tiny_clip(tmp_path / "in.mp4"), tmp_path / "out.mkv"
    killed = start("video", str(src), "-o", str(dst), *VIDEO_ARGS)
    temp = wait_for_temp(killed, tmp_path, ".out.partial-*.mkv")
    killed.kill()  # SIGKILL: no cleanup runs; the kernel drops its lock
    killed.communicate(timeout=30)
    assert temp.exists() and lock_path(dst).exists() and not dst.exists()

    rerun = finish("video", str(src), "-o", str(dst), *VIDEO_ARGS)
    assert rerun.returncode == 0, rerun.stderr
    assert frame_count(dst) == FRAMES
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4", "out.mkv"]


def test_an_output_that_appears_during_the_run_is_not_replaced(tmp_path: Path) -> None:
    src, dst = tiny_clip(tmp_path / "in.mp4"), tmp_path / "out.mkv"

    def meanwhile(batch: np.ndarray) -> np.ndarray:
        if not dst.exists():
            dst.write_bytes(b"someone else's file")  # another program, which takes no lock
        return half(batch)

    with pytest.raises(MediaError, match="appeared while this run was writing it"):
        upscale_video(src, dst, meanwhile)
    assert dst.read_bytes() == b"someone else's file"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4", "out.mkv"]
    upscale_video(src, dst, meanwhile, overwrite=True)  # asked to: replaced
    assert frame_count(dst) == FRAMES


def test_a_second_holder_in_another_process_is_refused(tmp_path: Path) -> None:
    dst = tmp_path / "x.png"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from pathlib import Path; from upscaler.fileio import output_lock\n"
         f"with output_lock(Path({str(dst)!r})):\n    print('held', flush=True); time.sleep(60)"],
        cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        with pytest.raises(MediaError, match="another upscale run is writing"), output_lock(dst):
            pass
        src = tmp_path / "in.png"
        src.write_bytes(b"x")
        with pytest.raises(MediaError, match="another upscale run is writing"):  # caught before any work
            check_output_path(src, dst, overwrite=False)
        assert lock_path(dst).exists()  # the refused one did not remove the holder's lock
    finally:
        holder.kill()
        holder.wait()
    with output_lock(dst), output_lock(dst):  # a dead holder's lock is free; re-entrant in one process
        pass
    assert not lock_path(dst).exists()


def test_longest_legal_names_work_and_temp_names_fit(tmp_path: Path) -> None:
    src = tiny_clip(tmp_path / "in.mp4", frames=3)
    limit = os.pathconf(tmp_path, "PC_NAME_MAX")
    for dst in (tmp_path / ("v" * (limit - 4) + ".mkv"), tmp_path / ("é" * ((limit - 4) // 2) + ".mkv")):
        tmp = temporary_path(dst)
        assert len(os.fsencode(tmp.name)) <= limit and tmp.name.startswith(".") and tmp.suffix == ".mkv"
        assert temporary_path(dst) != tmp and len(os.fsencode(lock_path(dst).name)) <= limit
        stale = temporary_path(dst)
        stale.write_bytes(b"left by a killed run")
        upscale_video(src, dst, half)
        assert frame_count(dst) == 3
        assert not stale.exists()  # the shortened temp names are still found as this output's leftovers
        dst.unlink()
    image = tmp_path / "in.png"
    cv2.imwrite(str(image), np.full((8, 8, 3), 100, np.uint8))
    dst = tmp_path / ("i" * (limit - 4) + ".png")
    upscale_image_file(image, dst, lambda b: np.repeat(np.repeat(b, 2, axis=1), 2, axis=2))
    assert cv2.imread(str(dst)).shape == (16, 16, 3)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["in.mp4", "in.png", dst.name])


def run_cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stderr


def unwritable_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o555)
    if os.access(folder, os.W_OK):  # root writes anywhere; procfs refuses even root
        folder = Path("/proc/sys")
        if not folder.is_dir() or os.access(folder, os.W_OK):
            pytest.skip("no folder this user cannot write to")
    return folder


def test_output_path_errors_name_the_output(tmp_path: Path) -> None:
    src = tiny_clip(tmp_path / "in.mp4", frames=3)
    limit = os.pathconf(tmp_path, "PC_NAME_MAX")
    too_long = tmp_path / ("n" * (limit - 3) + ".mkv")
    code, err = run_cli("video", str(src), "-o", str(too_long), *VIDEO_ARGS)
    assert code != 0 and error_lines(err) == [
        f"upscale: error: {too_long}: file name too long ({limit + 1} bytes; this file system takes {limit})"], err

    folder = unwritable_folder(tmp_path)
    for dst in (folder / "out.mp4", folder / "new" / "out.mp4"):
        code, err = run_cli("video", str(src), "-o", str(dst), *VIDEO_ARGS)
        (line,) = err.strip().splitlines()
        assert code != 0 and line.startswith(f"upscale: error: {dst}: cannot write ("), err
        assert "libx264" not in line


@pytest.fixture
def done_batch(tmp_path: Path) -> tuple[Path, Path]:
    src_dir, out_dir = tmp_path / "in", tmp_path / "out"
    src_dir.mkdir()
    tiny_clip(src_dir / "a.mp4")
    tiny_clip(src_dir / "b.mkv", frames=6)
    cv2.imwrite(str(src_dir / "c.png"), cv2.imread(str(shared_path("images", "bench", "Set5", "bird.png")))[:40, :48])
    cv2.imwrite(str(src_dir / "d.jpg"), np.full((20, 24, 3), 90, np.uint8))
    report = batch(src_dir, out_dir)
    assert report.done_count == 4
    return src_dir, out_dir


def batch(src_dir: Path, out_dir: Path) -> object:
    def image(src: Path, dst: Path) -> object:
        return upscale_image_file(src, dst, lambda b: np.repeat(np.repeat(b, 2, axis=1), 2, axis=2))

    def video(src: Path, dst: Path) -> object:
        return upscale_video(src, dst, half)

    return run_batch(src_dir, out_dir, process_image=image, process_video=video, output_name=lambda p: p)


def test_batch_redoes_outputs_truncated_or_emptied_after_they_were_written(done_batch: tuple[Path, Path]) -> None:
    src_dir, out_dir = done_batch
    whole = {name: (out_dir / name).read_bytes() for name in ("a.mp4", "b.mkv", "c.png", "d.jpg")}
    (out_dir / "a.mp4").write_bytes(whole["a.mp4"][: len(whole["a.mp4"]) * 2 // 3])
    (out_dir / "b.mkv").write_bytes(whole["b.mkv"][: len(whole["b.mkv"]) // 2])
    (out_dir / "c.png").write_bytes(b"")
    with pytest.warns(UserWarning) as heard:
        report = batch(src_dir, out_dir)
    statuses = {f.dst.name: (f.status, f.note) for f in report.files}
    assert statuses["d.jpg"] == ("skipped", "already done")
    assert statuses["c.png"] == ("done", "redone: the existing output is empty")
    for name in ("a.mp4", "b.mkv"):  # how the damage shows depends on where the cut fell
        status, note = statuses[name]
        assert status == "done" and note.startswith("redone: the existing output "), note
        assert "\n" not in note and "Errno" not in note, note
    expected = [f"{out_dir / name}: existing output {statuses[name][1].removeprefix('redone: the existing output ')}"
                "; doing it again" for name in ("a.mp4", "b.mkv", "c.png")]
    assert sorted(str(w.message) for w in heard) == expected
    assert frame_count(out_dir / "a.mp4") == FRAMES and frame_count(out_dir / "b.mkv") == 6
    assert cv2.imread(str(out_dir / "c.png")).shape == (80, 96, 3)
    assert batch(src_dir, out_dir).skipped_count == 4  # whole again: the next rerun skips everything


@pytest.mark.parametrize("clip", ["fire_vfr.mp4", "no_duration_vp9_opus.webm"])
def test_output_check_passes_whole_outputs_of_vfr_and_durationless_input(tmp_path: Path, clip: str) -> None:
    # A false alarm would redo the file on every rerun: check inputs whose timing is awkward.
    src = shared_path("clips", clip)
    dst = tmp_path / "out.mkv"
    upscale_video(src, dst, lambda b: np.ascontiguousarray(b[:, ::4, ::4]))
    assert output_problem(src, dst, "video") is None
    data = dst.read_bytes()
    dst.write_bytes(data[: len(data) * 19 // 20])
    assert output_problem(src, dst, "video").startswith("is truncated (")
    dst.write_bytes(b"\0" * 1000)
    assert output_problem(src, dst, "video") is not None


@pytest.mark.parametrize("ext", [".png", ".jpg", ".webp", ".tif", ".bmp"])
def test_output_check_finds_truncated_images(tmp_path: Path, ext: str) -> None:
    bird = cv2.imread(str(shared_path("images", "bench", "Set5", "bird.png")))[:64, :64]
    path = tmp_path / f"bird{ext}"
    assert cv2.imwrite(str(path), bird)
    assert output_problem(path, path, "image") is None
    data = path.read_bytes()
    for cut in (len(data) // 2, len(data) - 1):
        path.write_bytes(data[:cut])
        assert output_problem(path, path, "image") is not None, cut


def test_atomic_output_keeps_its_promises_without_an_outer_lock(tmp_path: Path) -> None:
    dst = tmp_path / "w.bin"
    dst.write_bytes(b"old")
    with atomic_output(dst) as tmp:  # the default (weights files): replace
        assert tmp.exists() and lock_path(dst).exists()
        tmp.write_bytes(b"new")
    assert dst.read_bytes() == b"new"
    with pytest.raises(MediaError, match="already exists"), atomic_output(dst, overwrite=False):
        pass
    with pytest.raises(MediaError, match="nothing was written"), atomic_output(dst):
        pass
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.bin"] and dst.read_bytes() == b"new"

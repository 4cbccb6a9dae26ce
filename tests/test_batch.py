"""The resumable batch runner over a real folder tree, with fake image/video processing."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from rich.console import Console

from upscaler.batch import BatchReport, find_media, print_summary, run_batch
from upscaler.errors import MediaError
from upscaler.fileio import atomic_output
from upscaler.image.io import read_image
from upscaler.image.upscale import upscale_image_file


def nearest2(batch: np.ndarray) -> np.ndarray:
    return np.repeat(np.repeat(batch, 2, axis=1), 2, axis=2)


def suffixed(rel: Path) -> Path:
    return rel.with_name(f"{rel.stem}_x2{rel.suffix}")


class Calls:
    """Fake process functions that record what they were asked to do."""

    def __init__(self) -> None:
        self.images: list[Path] = []
        self.videos: list[Path] = []

    def image(self, src: Path, dst: Path) -> object:
        self.images.append(src)
        return upscale_image_file(src, dst, nearest2, overwrite=True)

    def video(self, src: Path, dst: Path) -> None:
        self.videos.append(src)
        with atomic_output(dst) as tmp:
            shutil.copyfile(src, tmp)

    def run(self, in_dir: Path, out_dir: Path, **kwargs: object) -> BatchReport:
        options: dict = {"output_name": suffixed, **kwargs}
        return run_batch(in_dir, out_dir, process_image=self.image, process_video=self.video, **options)


def small_png(path: Path, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 255, (12, 16, 3), dtype=np.uint8)
    assert cv2.imwrite(str(path), pixels)
    return path


@pytest.fixture
def tree(tmp_path: Path, shared: Path) -> Path:
    """in/ with real images at three depths, a corrupt one, non-media, hidden and leftover temp files."""
    bench = shared / "images" / "bench"
    if not (bench / "Set14" / "bridge.png").is_file():
        pytest.skip("shared benchmark images not available")
    root = tmp_path / "in"
    (root / "sub" / "deeper").mkdir(parents=True)
    gray = read_image(bench / "Set14" / "bridge.png").rgb[:64, :96, 0]
    cv2.imwrite(str(root / "bridge.png"), gray)
    colour = cv2.imread(str(bench / "Set5" / "bird.png"))[:80, :64]
    cv2.imwrite(str(root / "sub" / "bird.JPG"), colour)
    cv2.imwrite(str(root / "sub" / "deeper" / "bird.webp"), colour)
    (root / "sub" / "broken.png").write_text("not really a png\n")
    (root / "notes.txt").write_text("ignored")
    small_png(root / ".hidden.png")
    small_png(root / "sub" / ".bird.partial-0123abcd.png")  # left by a killed run writing into in/
    clip = shared / "clips" / "realshort.mp4"
    if clip.is_file():
        (root / "clips").mkdir()
        shutil.copyfile(clip, root / "clips" / "realshort.mp4")
    return root


def test_batch_mirrors_tree_reports_failure_and_resumes(tree: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    calls = Calls()
    progress: list[tuple[int, int, str]] = []
    report = calls.run(tree, out, on_file=lambda i, n, p: progress.append((i, n, p.name)))

    has_video = (tree / "clips").is_dir()
    expected = {"bridge_x2.png", "sub/bird_x2.JPG", "sub/deeper/bird_x2.webp"}
    expected |= {"clips/realshort_x2.mp4"} if has_video else set()
    written = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    assert written == expected
    assert read_image(out / "bridge_x2.png").gray
    assert read_image(out / "sub" / "bird_x2.JPG").rgb.shape == (160, 128, 3)
    if has_video:
        copied = (out / "clips" / "realshort_x2.mp4").read_bytes()
        assert copied == (tree / "clips" / "realshort.mp4").read_bytes()

    assert report.failed_count == 1 and report.done_count == len(expected) and report.skipped_count == 0
    (failure,) = [f for f in report.files if f.status == "failed"]
    assert failure.src.name == "broken.png" and "not an image" in failure.note and "\n" not in failure.note
    assert [i for i, _, _ in progress] == list(range(1, len(report.files) + 1))
    assert {n for _, n, _ in progress} == {len(report.files)}
    assert not any(".hidden" in name or "partial" in name for _, _, name in progress)

    console = Console(record=True, width=200)
    print_summary(report, console)
    text = console.export_text()
    assert "sub/broken.png" in text and "failed" in text and "1 failed" in text

    # A leftover temp file of a killed run in out/ is cleared; finished outputs are not redone.
    stale = out / ".bridge_x2.partial-89abcdef.png"
    stale.write_bytes(b"half")
    again = Calls()
    rerun = again.run(tree, out)
    assert again.images == [tree / "sub" / "broken.png"] and again.videos == []
    assert rerun.skipped_count == len(expected) and rerun.failed_count == 1
    assert not stale.exists()


def test_overwrite_redoes_finished_outputs(tmp_path: Path) -> None:
    small_png(tmp_path / "in" / "a.png")
    calls = Calls()
    calls.run(tmp_path / "in", tmp_path / "out")
    again = Calls()
    report = again.run(tmp_path / "in", tmp_path / "out", overwrite=True)
    assert report.done_count == 1 and again.images == [tmp_path / "in" / "a.png"]


def test_output_folder_inside_input_is_not_read(tmp_path: Path) -> None:
    root = tmp_path / "in"
    small_png(root / "a.png")
    small_png(root / "sub" / "b.png", seed=1)
    out = root / "upscaled"
    first = Calls().run(root, out, output_name=lambda rel: rel)
    second = Calls().run(root, out, output_name=lambda rel: rel)
    inputs = [root / "a.png", root / "sub" / "b.png"]
    assert [f.src for f in first.files] == [f.src for f in second.files] == inputs
    assert second.skipped_count == 2
    assert find_media(root, exclude=out.resolve()) == [(p, "image") for p in inputs]


def test_refuses_same_folder_and_missing_input(tmp_path: Path) -> None:
    small_png(tmp_path / "in" / "a.png")
    with pytest.raises(MediaError, match="input folder"):
        Calls().run(tmp_path / "in", tmp_path / "in" / "." / "sub" / "..")
    with pytest.raises(MediaError, match="no such folder"):
        Calls().run(tmp_path / "missing", tmp_path / "out")


def test_any_exception_is_one_file_failure_but_ctrl_c_stops(tmp_path: Path) -> None:
    for name in ("a.png", "b.png", "c.png"):
        small_png(tmp_path / "in" / name)

    def flaky(src: Path, dst: Path) -> None:
        if src.name == "a.png":
            raise RuntimeError("boom\nwith a traceback-ish second line")
        Calls().image(src, dst)

    report = run_batch(tmp_path / "in", tmp_path / "out", process_image=flaky, process_video=flaky,
                       output_name=lambda rel: rel)
    assert [f.status for f in report.files] == ["failed", "done", "done"]
    assert report.files[0].note == "RuntimeError: boom"

    def interrupted(src: Path, dst: Path) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_batch(tmp_path / "in", tmp_path / "out2", process_image=interrupted, process_video=interrupted,
                  output_name=lambda rel: rel)


def test_colliding_output_names_fail_the_second(tmp_path: Path) -> None:
    small_png(tmp_path / "in" / "a.png")
    cv2.imwrite(str(tmp_path / "in" / "a.jpg"), np.zeros((8, 8, 3), np.uint8))
    report = Calls().run(tmp_path / "in", tmp_path / "out", output_name=lambda rel: rel.with_suffix(".png"))
    assert [f.status for f in report.files] == ["done", "failed"]
    assert "same output name" in report.files[1].note


def test_videos_in_containers_we_cannot_write_go_to_mkv(tmp_path: Path) -> None:
    # .avi/.ts/.mpg... are read but cannot be written: keeping the extension failed every such file.
    from upscaler.batch import WRITABLE_VIDEO_EXTENSIONS
    from upscaler.video.options import CONTAINERS

    assert set(CONTAINERS) == WRITABLE_VIDEO_EXTENSIONS
    root = tmp_path / "in"
    (root / "sub").mkdir(parents=True)
    for name in ("a.avi", "sub/b.TS", "c.mov"):
        (root / name).write_bytes(b"video")
    calls = Calls()
    report = calls.run(root, tmp_path / "out")
    assert [f.status for f in report.files] == ["done", "done", "done"]
    assert [f.dst.relative_to(tmp_path / "out").as_posix() for f in report.files] == [
        "a_x2.mkv", "c_x2.mov", "sub/b_x2.mkv"]
    assert (tmp_path / "out" / "sub" / "b_x2.mkv").read_bytes() == b"video"
    assert Calls().run(root, tmp_path / "out").skipped_count == 3  # and a rerun resumes


def test_summary_collapses_many_skipped_rows_and_escapes_markup(tmp_path: Path) -> None:
    for i in range(25):
        small_png(tmp_path / "in" / f"[bold]{i:02d}.png", seed=i)
    Calls().run(tmp_path / "in", tmp_path / "out")
    report = Calls().run(tmp_path / "in", tmp_path / "out")
    console = Console(record=True, width=120)
    print_summary(report, console)
    text = console.export_text()
    assert "(25 files)" in text and "0 done, 25 skipped, 0 failed" in text and "[bold]" not in text

    first = Calls().run(tmp_path / "in", tmp_path / "fresh")
    console = Console(record=True, width=120)
    print_summary(first, console)
    assert "[bold]00.png" in console.export_text()

"""The `upscale` command end to end on real media, and its one-line errors for every user mistake."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest
from click.testing import CliRunner
from conftest import REPO, shared_path

from upscaler.cli import main
from upscaler.image.io import read_image

SAMPLE = REPO / "samples" / "bbb_320x180.mp4"


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def video_facts(path: Path) -> dict:
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        times = [float(f.pts * f.time_base) for f in c.decode(v)]
        audio = [s for s in c.streams if s.type == "audio"]
        audio_end = None
        if audio:
            c.seek(0)
            ends = [float((p.pts + p.duration) * p.time_base) for p in c.demux(audio[0]) if p.pts is not None]
            audio_end = max(ends)
        return {"size": (v.codec_context.width, v.codec_context.height), "times": times, "audio_end": audio_end}


def assert_one_line_error(code: int, stderr: str) -> None:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert code != 0
    assert len(lines) == 1 and lines[0].startswith("upscale: error: "), stderr
    assert "Traceback" not in stderr


def no_files_but(folder: Path, *keep: Path) -> None:
    assert sorted(folder.iterdir()) == sorted(keep)


def test_video_keeps_frames_timestamps_and_audio(tmp_path: Path) -> None:
    src = shared_path("clips", "realshort.mp4")
    dst = tmp_path / "out.mkv"
    code, _, err = run("video", str(src), "-o", str(dst), "--scale", "2", "--quiet", "--preset", "ultrafast")
    assert code == 0, err
    a, b = video_facts(src), video_facts(dst)
    assert b["size"] == (a["size"][0] * 2, a["size"][1] * 2)
    assert len(b["times"]) == len(a["times"]) == 36
    assert np.allclose(b["times"], a["times"], atol=1e-3)
    assert b["audio_end"] == pytest.approx(a["audio_end"], abs=0.03)


def test_readme_command_on_the_bundled_sample(tmp_path: Path) -> None:
    src = tmp_path / SAMPLE.name
    shutil.copy(SAMPLE, src)
    code, _, err = run("video", str(src), "--quiet")
    assert code == 0, err
    out = tmp_path / "bbb_320x180_x4.mp4"
    facts = video_facts(out)
    assert facts["size"] == (1280, 720) and len(facts["times"]) == 24
    assert facts["audio_end"] == pytest.approx(video_facts(SAMPLE)["audio_end"], abs=0.05)


def test_image_and_outscale(tmp_path: Path) -> None:
    src = shared_path("images", "bench", "Set5", "bird.png")
    dst = tmp_path / "bird.webp"
    code, _, err = run("image", str(src), "-o", str(dst), "--outscale", "3", "--quiet")
    assert code == 0, err
    assert read_image(dst).rgb.shape == (864, 864, 3)


def test_batch_continues_past_a_bad_file_and_resumes(tmp_path: Path) -> None:
    src_dir, out_dir = tmp_path / "in", tmp_path / "out"
    (src_dir / "sub").mkdir(parents=True)
    shutil.copy(shared_path("images", "bench", "Set5", "head.png"), src_dir / "sub" / "head.png")
    shutil.copy(shared_path("images", "bench", "Set14", "bridge.png"), src_dir / "bridge.png")
    (src_dir / "broken.png").write_bytes(b"not a png")
    code, _, err = run("batch", str(src_dir), str(out_dir), "--scale", "2")
    assert code == 1 and "1 file(s) failed" in err
    assert read_image(out_dir / "sub" / "head.png").rgb.shape == (560, 560, 3)
    assert read_image(out_dir / "bridge.png").gray
    stamp = (out_dir / "bridge.png").stat().st_mtime_ns
    (src_dir / "broken.png").unlink()
    code, _, err = run("batch", str(src_dir), str(out_dir), "--scale", "2", "--quiet")
    assert code == 0, err
    assert (out_dir / "bridge.png").stat().st_mtime_ns == stamp  # skipped, not redone


def test_models_lists_shipped_and_known() -> None:
    code, out, _ = run("models")
    assert code == 0 and "compact-x4" in out and "RealESRGAN_x4plus" in out


@pytest.fixture
def work(tmp_path: Path) -> Path:
    shutil.copy(SAMPLE, tmp_path / "in.mp4")
    return tmp_path


def test_error_missing_input(work: Path) -> None:
    assert_one_line_error(*run("video", str(work / "nope.mp4"), "-q")[::2])
    no_files_but(work, work / "in.mp4")


def test_error_not_a_video(work: Path) -> None:
    (work / "notes.mp4").write_text("hello")
    code, _, err = run("video", str(work / "notes.mp4"), "-q")
    assert_one_line_error(code, err)
    no_files_but(work, work / "in.mp4", work / "notes.mp4")


def test_error_corrupt_video(work: Path) -> None:
    data = (work / "in.mp4").read_bytes()
    (work / "cut.mp4").write_bytes(data[: len(data) // 2])
    code, _, err = run("video", str(work / "cut.mp4"), "-q")
    assert_one_line_error(code, err)
    no_files_but(work, work / "in.mp4", work / "cut.mp4")


def test_error_output_is_input(work: Path) -> None:
    before = (work / "in.mp4").read_bytes()
    code, _, err = run("video", str(work / "in.mp4"), "-o", str(work / "in.mp4"), "--overwrite", "-q")
    assert_one_line_error(code, err)
    assert (work / "in.mp4").read_bytes() == before


def test_error_existing_output_needs_overwrite(work: Path) -> None:
    (work / "in_x4.mp4").write_bytes(b"keep me")
    code, _, err = run("video", str(work / "in.mp4"), "-q")
    assert_one_line_error(code, err)
    assert "--overwrite" in err and (work / "in_x4.mp4").read_bytes() == b"keep me"


@pytest.mark.parametrize("model", ["no-such-model", "bad.pth"])
def test_error_bad_model(work: Path, model: str) -> None:
    (work / "bad.pth").write_text("garbage")
    code, _, err = run("video", str(work / "in.mp4"), "-m", str(work / model) if model.endswith("pth") else model)
    assert_one_line_error(code, err)
    no_files_but(work, work / "in.mp4", work / "bad.pth")


def test_error_bad_image_extension(work: Path) -> None:
    src = shared_path("images", "bench", "Set5", "bird.png")
    code, _, err = run("image", str(src), "-o", str(work / "bird.xyz"), "-q")
    assert_one_line_error(code, err)
    no_files_but(work, work / "in.mp4")


def test_error_from_the_real_executable_has_no_traceback(tmp_path: Path) -> None:
    (tmp_path / "x.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    proc = subprocess.run([sys.executable, "-m", "upscaler", "image", str(tmp_path / "x.png"), "-q"],
                          capture_output=True, text=True, timeout=120)
    assert_one_line_error(proc.returncode, proc.stderr)
    no_files_but(tmp_path, tmp_path / "x.png")


def test_ctrl_c_leaves_no_output(work: Path) -> None:
    import signal
    import time

    # As a terminal would start it: a shell running the suite in the background (``.ci/run &``) ignores SIGINT,
    # the child inherits that, and Python then installs no Ctrl-C handler at all.
    proc = subprocess.Popen([sys.executable, "-m", "upscaler", "video", str(work / "in.mp4"), "-q"],
                            stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 120
    while not list(work.glob(".in_x4.partial-*")) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert proc.poll() is None, "finished before it could be interrupted"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert_one_line_error(proc.returncode, err)
    no_files_but(work, work / "in.mp4")


def test_webm_output_gets_a_codec_webm_takes(tmp_path: Path) -> None:
    src = shared_path("clips", "realshort.mp4")
    dst = tmp_path / "short.webm"
    code, _, err = run("video", str(src), "-o", str(dst), "--scale", "2", "--preset", "8", "--quiet")
    assert code == 0, err
    with av.open(str(dst)) as c:
        assert c.streams.video[0].codec_context.name == "vp9"
        assert sum(1 for _ in c.decode(video=0)) == 36


def test_usage_errors_are_one_line_too(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "upscaler", "video", str(SAMPLE), "--scale", "3"],
                          capture_output=True, text=True, timeout=60)
    assert_one_line_error(proc.returncode, proc.stderr)
    assert "--scale" in proc.stderr

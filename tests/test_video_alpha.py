"""Alpha in video (issue 13 item 1): decoded (libvpx-vp9 for VP9's side channel), upscaled as the image path
upscales it, encoded where the output can hold it, and one warning where it cannot.

The clips are made here from a shared clip's frames with a synthetic alpha: a horizontal ramp that moves
per frame, one fully transparent and one fully opaque column band, and a last frame fully opaque.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import av
import numpy as np
import pytest

from upscaler.image.io import Image
from upscaler.image.upscale import upscale_image_array
from upscaler.video import EncodeOptions, VideoWarning, upscale_video

W, H, FRAMES = 64, 48, 4


def tint_x2(batch: np.ndarray) -> np.ndarray:
    """A frame_fn that treats the channels differently (x2 nearest, red squared), so an alpha that skipped it,
    or went through it other than as a gray image, differs from the image path's; 0 and full stay put."""
    out = np.repeat(np.repeat(batch, 2, 1), 2, 2)
    peak = np.iinfo(batch.dtype).max
    out[..., 0] = (out[..., 0].astype(np.uint64) ** 2 // peak).astype(batch.dtype)
    return out


def alpha_of(index: int, peak: int) -> np.ndarray:
    if index == FRAMES - 1:
        return np.full((H, W), peak, np.float64)  # opaque: the model must not see it
    ramp = (np.arange(W)[None, :] + 8 * index) % W / (W - 1) * np.ones((H, 1))
    ramp[:, :6], ramp[:, -6:] = 0.0, 1.0
    return ramp * peak


def rgba_frames(clips: Path, deep: bool) -> list[np.ndarray]:
    """FRAMES real frames (big_buck_bunny, shrunk) with the synthetic alpha, RGBA uint8 or uint16."""
    dtype, peak = (np.uint16, 65535) if deep else (np.uint8, 255)
    out = []
    with av.open(str(clips / "big_buck_bunny_1s.webm")) as src:
        for i, frame in enumerate(src.decode(video=0)):
            rgb = frame.to_ndarray(format="rgb48le" if deep else "rgb24", width=W, height=H)
            out.append(np.dstack([rgb, alpha_of(i, peak).round().astype(dtype)]))
            if len(out) == FRAMES:
                return out
    raise AssertionError("clip too short")


def make_alpha_clip(path: Path, clips: Path, codec: str, pix_fmt: str, options: dict[str, str] | None = None,
                    deep: bool = False) -> Path:
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=25)
        stream.width, stream.height, stream.pix_fmt = W, H, pix_fmt
        stream.options = options or {}
        for i, rgba in enumerate(rgba_frames(clips, deep)):
            frame = av.VideoFrame.from_ndarray(rgba, format="rgba64le" if deep else "rgba").reformat(format=pix_fmt)
            frame.pts = i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


def read_rgba(path: Path, deep: bool = False) -> list[np.ndarray]:
    """Every frame as RGBA, alpha included: VP9 through libvpx-vp9 (FFmpeg's own vp9 decoder drops it)."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        ctx = av.CodecContext.create("libvpx-vp9", "r") if stream.codec_context.name == "vp9" \
            else stream.codec_context
        fmt = "rgba64le" if deep else "rgba"
        return [f.to_ndarray(format=fmt) for p in container.demux(stream) for f in ctx.decode(p)]


def image_path_alpha(frames: list[np.ndarray], fn) -> list[np.ndarray]:  # noqa: ANN001
    """What ``upscale_image_array`` makes of each frame's alpha."""
    return [upscale_image_array(Image(rgb=f[..., :3].copy(), alpha=f[..., 3].copy()), fn).alpha for f in frames]


@pytest.fixture
def vp9_alpha(tmp_path: Path, clips: Path) -> Path:
    if "libvpx-vp9" not in av.codecs_available:
        pytest.skip("no libvpx-vp9 in this PyAV build")
    return make_alpha_clip(tmp_path / "alpha.webm", clips, "libvpx-vp9", "yuva420p", {"crf": "10", "b": "0"})


def run(src: Path, dst: Path, fn=tint_x2, options: EncodeOptions | None = None) -> tuple[object, list[str]]:  # noqa: ANN001
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = upscale_video(src, dst, fn, options=options)
    return result, [str(w.message) for w in caught if issubclass(w.category, VideoWarning)]


@pytest.mark.parametrize("ext", [".webm", ".mkv"])
def test_vp9_alpha_is_upscaled_and_kept(vp9_alpha: Path, tmp_path: Path, ext: str) -> None:
    dst = tmp_path / f"out{ext}"
    result, said = run(vp9_alpha, dst)
    assert (result.codec, result.pix_fmt) == ("libvpx-vp9", "yuva420p")
    assert not said
    with av.open(str(dst)) as container:
        assert container.streams.video[0].metadata.get("alpha_mode") == "1"  # what players look for
    got = read_rgba(dst)
    expected = image_path_alpha(read_rgba(vp9_alpha), tint_x2)
    assert len(got) == FRAMES
    for i, (frame, want) in enumerate(zip(got, expected, strict=True)):
        alpha = frame[..., 3].astype(int)
        assert alpha.shape == (2 * H, 2 * W)
        if i == FRAMES - 1:
            assert alpha.min() == 255  # the opaque frame stays opaque
            continue
        assert alpha.min() <= 3 and alpha.max() >= 252  # the transparent and opaque bands survive
        # VP9 is lossy (crf 30 by default): close to the image path's alpha, not equal. Nearest-neighbour
        # or untinted alpha would be up to 19 codes off in the ramp (0.299 (a - a²/255)).
        assert np.abs(alpha - want).mean() < 2.5, i
        assert np.percentile(np.abs(alpha - want), 99) < 12, i


def test_alpha_matches_the_image_path_exactly_in_ffv1(vp9_alpha: Path, tmp_path: Path, one_thread: None) -> None:
    """Lossless output: every alpha sample is what the real model makes of it on the image path."""
    from upscaler import Upscaler

    up = Upscaler(device="cpu", precision="fp32")
    dst = tmp_path / "out.mkv"
    calls: list[int] = []

    def model(batch: np.ndarray) -> np.ndarray:
        calls.append(len(batch))
        return up.upscale_array(batch)

    result, said = run(vp9_alpha, dst, model, EncodeOptions(codec="ffv1"))
    assert (result.pix_fmt, said) == ("yuva420p", [])
    # FRAMES colour frames, and the alpha of all but the opaque last frame.
    assert sum(calls) == FRAMES + FRAMES - 1
    got = [f[..., 3] for f in read_rgba(dst)]
    expected = image_path_alpha(read_rgba(vp9_alpha), up.upscale_array)
    for frame, want in zip(got, expected, strict=True):
        np.testing.assert_array_equal(frame, want)


@pytest.mark.parametrize("ext", [".mp4", ".mov"])
def test_alpha_dropped_says_so_once(vp9_alpha: Path, tmp_path: Path, ext: str) -> None:
    dst = tmp_path / f"out{ext}"
    result, said = run(vp9_alpha, dst, options=EncodeOptions(preset="ultrafast"))
    assert result.codec == "libx264"
    alpha_lines = [s for s in said if "alpha" in s]
    assert len(alpha_lines) == 1
    assert "libx264" in alpha_lines[0] and ("prores_ks" in alpha_lines[0])
    assert all(f[..., 3].min() == 255 for f in read_rgba(dst))


def test_asked_pix_fmt_without_alpha_says_so(vp9_alpha: Path, tmp_path: Path) -> None:
    dst = tmp_path / "out.webm"
    result, said = run(vp9_alpha, dst, options=EncodeOptions(pix_fmt="yuv420p"))
    assert result.pix_fmt == "yuv420p"
    assert said == ["alpha channel dropped: pixel format yuv420p has none"]
    with av.open(str(dst)) as container:
        assert "alpha_mode" not in container.streams.video[0].metadata  # the input's tag is not copied


def alpha_planes(path: Path) -> list[np.ndarray]:
    """Each decoded frame's alpha plane itself, at 16-bit full scale (swscale would widen 12 bits by a shift)."""
    with av.open(str(path)) as container:
        out = []
        for frame in container.decode(video=0):
            comp = next(c for c in frame.format.components if c.is_alpha)
            plane = frame.planes[comp.plane]
            rows = np.frombuffer(plane, np.uint16).reshape(plane.height, -1)[:, : plane.width]
            out.append(rows.astype(np.float64) * 65535 / ((1 << comp.bits) - 1))
        return out


def test_prores_4444_alpha_stays_deep(tmp_path: Path, clips: Path) -> None:
    """ProRes 4444: alpha in the bitstream (decoded as 12 bits), upscaled in 16 bits, written as 4444."""
    src = make_alpha_clip(tmp_path / "alpha.mov", clips, "prores_ks", "yuva444p10le", deep=True)
    dst = tmp_path / "out.mov"
    calls: list[int] = []

    def model(batch: np.ndarray) -> np.ndarray:
        calls.append(len(batch))
        assert batch.dtype == np.uint16
        return tint_x2(batch)

    result, said = run(src, dst, model, EncodeOptions(codec="prores_ks"))
    assert (result.pix_fmt, said) == ("yuva444p10le", [])
    assert sum(calls) == FRAMES + FRAMES - 1  # the opaque frame reads as opaque: its alpha skips the model
    got = alpha_planes(dst)
    src_frames = [np.dstack([np.zeros((H, W, 3), np.uint16), a.round().astype(np.uint16)])
                  for a in alpha_planes(src)]
    expected = image_path_alpha(src_frames, tint_x2)
    for frame, want in zip(got[:-1], expected[:-1], strict=True):
        assert frame.min() < 64 and frame.max() > 65535 - 64
        # ProRes codes 4444 alpha exactly at its bits: within a 10-bit step of the image path's 16-bit alpha.
        assert np.abs(frame - want).max() <= 65535 / 1023
    assert got[-1].min() == 65535


def test_alpha_tag_without_alpha_data_is_no_alpha(vp9_alpha: Path, clips: Path, tmp_path: Path) -> None:
    """Browsers' MediaRecorder tags every VP9 recording ALPHA_MODE=1; only packets with alpha data count."""
    from upscaler.video.decode import alpha_decoder
    from upscaler.video.probe import open_input

    recorded = clips / "no_duration_vp9_opus.webm"
    for path, want in ((recorded, None), (vp9_alpha, "libvpx-vp9")):
        container, stream = open_input(path)
        with container:
            assert stream.metadata.get("alpha_mode") == "1"
            assert alpha_decoder(stream, path) == want


def test_alpha_takes_the_rgb_path_with_device_colour(vp9_alpha: Path, tmp_path: Path, one_thread: None) -> None:
    """With colour conversion on the model's device (the CUDA default), alpha input still keeps its alpha: it
    goes the RGB way, whose frames carry it, not the planar one."""
    from upscaler import Upscaler

    up = Upscaler(device="cpu", precision="fp32", colour_convert="device")
    planar: list[str] = []
    submit = up.submit_planes

    def spy(frames, src, dst):  # noqa: ANN001, ANN202
        planar.append(src.pix_fmt)
        return submit(frames, src, dst)

    up.submit_planes = spy  # type: ignore[method-assign]
    result = up.upscale_video(vp9_alpha, tmp_path / "out.webm")
    assert (result.pix_fmt, planar) == ("yuva420p", [])
    alpha = np.stack([f[..., 3] for f in read_rgba(tmp_path / "out.webm")])
    assert alpha[:-1].min() <= 3 and alpha[:-1].max() >= 252 and alpha[-1].min() == 255


def test_cli_alpha_dropped_is_one_warning_line(vp9_alpha: Path, tmp_path: Path, one_thread: None) -> None:
    from click.testing import CliRunner

    from upscaler.cli import main

    dst = tmp_path / "out.mp4"
    result = CliRunner().invoke(main, ["video", str(vp9_alpha), "-o", str(dst), "-q", "--preset", "ultrafast",
                                   "--device", "cpu"])
    assert result.exit_code == 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if "alpha" in line]
    assert lines == ["upscale: warning: alpha channel dropped: libx264 in a .mp4 file cannot store it "
                     "(libvpx-vp9 in .webm/.mkv or prores_ks in .mov would keep it)"]
    assert "Traceback" not in result.stderr and dst.exists()


def test_vp8_alpha_is_read_too(tmp_path: Path, clips: Path) -> None:
    """VP8 WebM with alpha (older transparent web video): read with libvpx, written as VP9 with alpha."""
    if "libvpx" not in av.codecs_available:
        pytest.skip("no libvpx in this PyAV build")
    src = make_alpha_clip(tmp_path / "vp8.webm", clips, "libvpx", "yuva420p", {"b": "2M", "auto-alt-ref": "0"})
    result, said = run(src, tmp_path / "out.webm")
    assert (result.codec, result.pix_fmt, said) == ("libvpx-vp9", "yuva420p", [])
    alpha = np.stack([f[..., 3] for f in read_rgba(tmp_path / "out.webm")])
    assert alpha[:-1].min() <= 3 and alpha[:-1].max() >= 252 and alpha[-1].min() == 255


def test_444_alpha_on_vp9_says_what_it_writes() -> None:
    """libvpx codes alpha in 4:2:0 only (it lists yuva444p but will not open with it)."""
    from upscaler.video.options import plan_encoder

    plan = plan_encoder(EncodeOptions(), Path("out.webm"), "yuva444p", alpha=True)
    assert (plan.codec, plan.pix_fmt, plan.alpha) == ("libvpx-vp9", "yuva420p", True)
    assert plan.notes == ("libvpx-vp9 has no 4:4:4 mode with alpha here: writing yuva420p",)
    ffv1 = plan_encoder(EncodeOptions(codec="ffv1"), Path("out.mkv"), "yuva444p", alpha=True)
    assert (ffv1.pix_fmt, ffv1.notes) == ("yuva444p", ())


@pytest.mark.parametrize(("codec", "pix_fmt", "ext"), [
    ("qtrle", "argb", ".mov"),  # a QuickTime screen capture
    ("png", "rgba", ".mov"),
    ("ffv1", "yuva444p", ".mkv"),  # planar alpha
])
def test_fully_opaque_alpha_counts_as_none(tmp_path: Path, clips: Path, codec: str, pix_fmt: str, ext: str) -> None:
    """An alpha channel that is all opaque in the first frame is no alpha: no warning on .mp4, and .mkv keeps
    H.264 instead of switching to slow VP9. The same file with a real alpha still keeps it."""
    from upscaler.video.decode import alpha_decoder

    opaque = tmp_path / f"opaque{ext}"
    with av.open(str(opaque), "w") as out:
        stream = out.add_stream(codec, rate=25)
        stream.width, stream.height, stream.pix_fmt = W, H, pix_fmt
        for i, rgba in enumerate(rgba_frames(clips, deep=False)):
            rgba[..., 3] = 255
            frame = av.VideoFrame.from_ndarray(rgba, format="rgba").reformat(format=pix_fmt)
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    see_through = make_alpha_clip(tmp_path / f"alpha{ext}", clips, codec, pix_fmt)
    for path, has in ((opaque, False), (see_through, True)):
        with av.open(str(path)) as container:
            assert (alpha_decoder(container.streams.video[0], path) is not None) is has
    result, said = run(opaque, tmp_path / "out.mp4", options=EncodeOptions(preset="ultrafast"))
    assert result.codec == "libx264" and not [s for s in said if "alpha" in s], said
    result, said = run(opaque, tmp_path / "out.mkv", options=EncodeOptions(preset="ultrafast"))
    assert result.codec == "libx264" and not [s for s in said if "alpha" in s], said


def test_cli_warns_again_on_a_second_run_in_one_process(vp9_alpha: Path, tmp_path: Path, one_thread: None) -> None:
    # Python shows a warning once per call site by default, so an in-process second run (a batch's second file,
    # or this suite's earlier tests) used to lose it.
    from click.testing import CliRunner

    from upscaler.cli import main

    for name in ("a.mp4", "b.mp4"):
        result = CliRunner().invoke(main, ["video", str(vp9_alpha), "-o", str(tmp_path / name), "-q", "--preset",
                                           "ultrafast", "--device", "cpu"])
        assert result.exit_code == 0, result.stderr
        assert sum("alpha channel dropped" in line for line in result.stderr.splitlines()) == 1, result.stderr

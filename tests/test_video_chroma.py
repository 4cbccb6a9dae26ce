"""Chroma subsampling (issue 13 item 9e): the default output keeps the input's (4:4:4 stays 4:4:4, 4:2:2 stays
4:2:2) where the encoder can, as the bit depth does; where it cannot, one warning says what was written."""

from __future__ import annotations

import warnings
from pathlib import Path

import av
import numpy as np
import pytest

from upscaler.video import EncodeOptions, VideoWarning, upscale_video
from upscaler.video.options import plan_encoder

W, H, FRAMES = 64, 48, 3
NOT_PLAYABLE = "many players and browsers cannot play it; --pix-fmt yuv420p for those"
STRIPES = slice(8, 40)  # rows where odd and even columns alternate red and blue: detail only 4:4:4 keeps


def same_size(batch: np.ndarray) -> np.ndarray:
    """A frame_fn that keeps the size, so one-pixel chroma detail stays one pixel wide in the output."""
    return batch.copy()


def make_clip(path: Path, clips: Path, codec: str, pix_fmt: str, options: dict[str, str] | None = None) -> Path:
    """FRAMES real frames (chaplin.mp4, shrunk) with a band of alternating red/blue columns."""
    deep = pix_fmt.endswith(("10le", "12le"))
    peak = 65535 if deep else 255
    with av.open(str(clips / "chaplin.mp4")) as src, av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=25)
        stream.width, stream.height, stream.pix_fmt = W, H, pix_fmt
        stream.options = options or {}
        for i, frame in enumerate(src.decode(video=0)):
            rgb = frame.to_ndarray(format="rgb48le" if deep else "rgb24", width=W, height=H)
            rgb[STRIPES, 0::2] = (peak, 0, 0)
            rgb[STRIPES, 1::2] = (0, 0, peak)
            made = av.VideoFrame.from_ndarray(rgb, format="rgb48le" if deep else "rgb24").reformat(format=pix_fmt)
            made.pts = i
            for packet in stream.encode(made):
                out.mux(packet)
            if i + 1 == FRAMES:
                break
        for packet in stream.encode(None):
            out.mux(packet)
    return path


def run(src: Path, dst: Path, options: EncodeOptions) -> tuple[object, list[str]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = upscale_video(src, dst, same_size, options=options)
    return result, [str(w.message) for w in caught if issubclass(w.category, VideoWarning)]


def stripe_contrast(path: Path) -> float:
    """Mean |red - blue| over the stripe band, as a fraction of full scale: ~1 with the detail, ~0 smeared."""
    with av.open(str(path)) as container:
        frames = [f.to_ndarray(format="rgb24").astype(float) for f in container.decode(video=0)]
    band = np.stack(frames)[:, STRIPES, 4:-4]
    return float(np.abs(band[..., 0] - band[..., 2]).mean() / 255)


def test_444_stays_444_with_libx264(tmp_path: Path, clips: Path) -> None:
    src = make_clip(tmp_path / "in.mp4", clips, "libx264", "yuv444p", {"crf": "10", "preset": "ultrafast"})
    fast = EncodeOptions(preset="ultrafast")
    result, said = run(src, tmp_path / "out.mp4", fast)
    assert (result.codec, result.pix_fmt) == ("libx264", "yuv444p")
    assert said == [f"writing yuv444p (High 4:4:4): {NOT_PLAYABLE}"]
    with av.open(str(tmp_path / "out.mp4")) as container:
        assert container.streams.video[0].codec_context.pix_fmt == "yuv444p"
    # What 4:4:4 is for: one-pixel colour detail. Forced to 4:2:0 the stripes average to purple.
    kept = stripe_contrast(tmp_path / "out.mp4")
    run(src, tmp_path / "420.mp4", EncodeOptions(preset="ultrafast", pix_fmt="yuv420p"))
    smeared = stripe_contrast(tmp_path / "420.mp4")
    assert kept > 0.8 and smeared < 0.35, (kept, smeared)


def test_422_10bit_stays_422_10bit(tmp_path: Path, clips: Path) -> None:
    """ProRes 422 HQ (the usual 4:2:2 10-bit master) into H.264: yuv422p10le, not 4:2:0."""
    src = make_clip(tmp_path / "in.mov", clips, "prores_ks", "yuv422p10le")
    result, said = run(src, tmp_path / "out.mkv", EncodeOptions(preset="ultrafast"))
    assert (result.codec, result.pix_fmt) == ("libx264", "yuv422p10le")
    assert said == [f"writing yuv422p10le (High 4:2:2): {NOT_PLAYABLE}"]
    with av.open(str(tmp_path / "out.mkv")) as container:
        assert container.streams.video[0].codec_context.pix_fmt == "yuv422p10le"


def test_encoder_without_444_falls_back_with_one_warning(tmp_path: Path, clips: Path) -> None:
    if "libsvtav1" not in av.codecs_available:
        pytest.skip("no libsvtav1 in this PyAV build")
    src = make_clip(tmp_path / "in.mkv", clips, "ffv1", "yuv444p")
    result, said = run(src, tmp_path / "out.mkv", EncodeOptions(codec="libsvtav1", preset="12"))
    assert result.pix_fmt == "yuv420p"
    assert said == ["libsvtav1 has no 4:4:4 mode here: writing yuv420p"]


@pytest.mark.parametrize(("codec", "src", "want", "note"), [
    (None, "yuv444p", "yuv444p", f"writing yuv444p (High 4:4:4): {NOT_PLAYABLE}"),
    (None, "yuvj444p", "yuv444p", f"writing yuv444p (High 4:4:4): {NOT_PLAYABLE}"),
    (None, "yuv422p", "yuv422p", f"writing yuv422p (High 4:2:2): {NOT_PLAYABLE}"),
    (None, "yuvj422p", "yuv422p", f"writing yuv422p (High 4:2:2): {NOT_PLAYABLE}"),  # MJPEG webcams
    (None, "yuv444p10le", "yuv444p10le", f"writing yuv444p10le (High 4:4:4): {NOT_PLAYABLE}"),
    # RGB (screen captures, QTRLE/PNG video) into a delivery codec: 4:2:0 for playback; lossless keeps 4:4:4.
    (None, "gbrp", "yuv420p", None),
    (None, "bgr0", "yuv420p", None),
    ("libx265", "rgb24", "yuv420p", None),
    ("libvpx-vp9", "rgb24", "yuv420p", None),
    ("ffv1", "gbrp", "yuv444p", None),
    ("ffv1", "bgr0", "yuv444p", None),
    ("prores_ks", "rgb24", "yuv444p10le", None),
    (None, "gray", "yuv420p", None),  # no colour to keep
    (None, "yuv420p", "yuv420p", None),
    ("libx265", "yuv444p", "yuv444p", f"writing yuv444p (Main 4:4:4): {NOT_PLAYABLE}"),
    ("libvpx-vp9", "yuv422p", "yuv422p", f"writing yuv422p (VP9 profile 1): {NOT_PLAYABLE}"),
    ("ffv1", "yuv422p", "yuv422p", None),  # an archive, not for players
    # 12-bit still becomes x265's 10-bit, as before
    ("libx265", "yuv444p12le", "yuv444p10le", f"writing yuv444p10le (Main 4:4:4): {NOT_PLAYABLE}"),
    ("libsvtav1", "yuv422p10le", "yuv420p10le", "libsvtav1 has no 4:2:2 mode here: writing yuv420p10le"),
    ("libvpx", "yuv444p10le", "yuv420p", "libvpx has no 10-bit 4:4:4 mode here: writing yuv420p"),
])
def test_default_pix_fmt_follows_chroma(codec: str | None, src: str, want: str, note: str | None) -> None:
    dst = Path("out.webm" if codec == "libvpx" else "out.mkv")
    if codec is not None and codec not in av.codecs_available:
        pytest.skip(f"no {codec} in this PyAV build")
    plan = plan_encoder(EncodeOptions(codec=codec), dst, src)
    assert plan.pix_fmt == want
    assert list(plan.notes) == ([note] if note else [])


def test_asked_444_gets_no_playback_note() -> None:
    """The note is about our default; whoever typed --pix-fmt yuv444p chose it."""
    plan = plan_encoder(EncodeOptions(pix_fmt="yuv444p"), Path("out.mp4"), "yuv444p")
    assert (plan.pix_fmt, plan.notes) == ("yuv444p", ())


def test_rgb_screen_capture_plays_as_420_and_archives_as_444(tmp_path: Path, clips: Path) -> None:
    """A QTRLE screen recording (rgb24): .mp4 gets H.264 4:2:0 without a note; FFV1 keeps all its colour."""
    src = make_clip(tmp_path / "capture.mov", clips, "qtrle", "rgb24")
    result, said = run(src, tmp_path / "out.mp4", EncodeOptions(preset="ultrafast"))
    assert (result.codec, result.pix_fmt, said) == ("libx264", "yuv420p", [])
    with av.open(str(tmp_path / "out.mp4")) as container:
        frame = next(container.decode(video=0))
        assert (frame.planes[1].width, frame.planes[1].height) == (W // 2, H // 2)  # 4:2:0
    result, said = run(src, tmp_path / "out.mkv", EncodeOptions(codec="ffv1"))
    assert (result.pix_fmt, said) == ("yuv444p", [])
    assert stripe_contrast(tmp_path / "out.mkv") > 0.8  # the one-pixel colour stripes survive


def test_444_takes_the_device_colour_path(tmp_path: Path, clips: Path, one_thread: None) -> None:
    """The model's own Y'CbCr <-> RGB (the GPU path, here on the CPU) gets and gives 4:4:4 planes too."""
    from upscaler import Upscaler

    up = Upscaler(device="cpu", precision="fp32", colour_convert="device")
    seen = []
    submit = up.submit_planes

    def spy(frames, src, dst):  # noqa: ANN001, ANN202
        seen.append((src.pix_fmt, dst.pix_fmt))
        return submit(frames, src, dst)

    up.submit_planes = spy  # type: ignore[method-assign]
    src = make_clip(tmp_path / "in.mkv", clips, "ffv1", "yuv444p")
    result = up.upscale_video(src, tmp_path / "out.mkv", options=EncodeOptions(preset="ultrafast"))
    assert result.pix_fmt == "yuv444p" and seen and set(seen) == {("yuv444p", "yuv444p")}
    with av.open(str(tmp_path / "out.mkv")) as container:
        frame = next(container.decode(video=0))
        assert frame.format.name == "yuv444p"
        assert (frame.planes[1].width, frame.planes[1].height) == (4 * W, 4 * H)

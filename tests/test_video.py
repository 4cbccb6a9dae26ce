"""The PyAV video pipeline, checked with PyAV's own probing. A trivial frame_fn stands in for the model."""

from __future__ import annotations

import random
import shutil
import threading
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from av.video.reformatter import ColorRange, Colorspace

from upscaler.errors import MediaError
from upscaler.video import EncodeOptions, VideoWarning, probe_video, upscale_video
from upscaler.video.colour import bit_depth

FAST = EncodeOptions(preset="ultrafast")


def x2(batch: np.ndarray) -> np.ndarray:
    return np.repeat(np.repeat(batch, 2, 1), 2, 2)


def quarter(batch: np.ndarray) -> np.ndarray:
    """A frame_fn that shrinks: keeps 720p timestamp tests fast."""
    return np.ascontiguousarray(batch[:, ::4, ::4])


# -- helpers: make tiny clips, read results back -----------------------------------------------------


def make_clip(path: Path, *, codec: str = "ffv1", pix_fmt: str = "yuv420p", frames: int = 5,
              size: tuple[int, int] = (64, 48), tags: tuple[int, int, int, int] | None = None,
              yuv: tuple[int, int, int] | None = None, audio: bool = False, video: bool = True) -> Path:
    """A synthetic clip. ``tags`` = (primaries, trc, matrix, range); ``yuv`` fills every frame flat."""
    width, height = size
    with av.open(str(path), "w") as out:
        stream = None
        if video:
            stream = out.add_stream(codec, rate=25)
            stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
            if tags is not None:
                cc = stream.codec_context
                cc.color_primaries, cc.color_trc, cc.colorspace, cc.color_range = tags
        sound = out.add_stream("aac", rate=48000) if audio else None
        if sound is not None:
            sound.codec_context.layout = "mono"
        dtype = np.uint16 if bit_depth(pix_fmt) > 8 else np.uint8
        for i in range(frames if stream is not None and frames else 0):
            if yuv is not None:
                frame = av.VideoFrame(width, height, pix_fmt)
                for plane, value in zip(frame.planes, yuv, strict=False):
                    plane.update(np.full(plane.buffer_size // dtype().itemsize, value, dtype))
            else:
                ramp = np.linspace(0, 1, width)[None, :] * np.ones((height, 1))
                rgb = np.stack([ramp, np.full_like(ramp, 0.25 + 0.05 * i), 1 - ramp], -1)
                frame = av.VideoFrame.from_ndarray((rgb * 65535).astype(np.uint16), "rgb48le").reformat(
                    format=pix_fmt, dst_colorspace=Colorspace.ITU709, src_color_range=ColorRange.JPEG,
                    dst_color_range=ColorRange.MPEG)
            frame.pts = i
            for packet in stream.encode(frame):
                out.mux(packet)
        if sound is not None:
            t = np.arange(48000 // 2) / 48000
            samples = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None, :]
            chunk = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
            chunk.sample_rate, chunk.pts = 48000, 0
            for packet in sound.encode(chunk):
                out.mux(packet)
            for packet in sound.encode(None):
                out.mux(packet)
        if stream is not None:
            for packet in stream.encode(None):
                out.mux(packet)
    return path


def video_pts(path: Path) -> list[Fraction]:
    with av.open(str(path)) as c:
        return [frame.pts * frame.time_base for frame in c.decode(video=0)]


def audio_span(path: Path) -> tuple[str, float]:
    """(codec, end time in seconds) of the first audio stream, from its decoded frames."""
    with av.open(str(path)) as c:
        name = c.streams.audio[0].codec_context.name
        frames = list(c.decode(audio=0))
        last = frames[-1]
        return name, float(last.pts * last.time_base) + last.samples / last.sample_rate


def tags_of(path: Path) -> tuple[tuple[int, int, int, int], tuple[int, int, int, int]]:
    """(stream tags, first decoded frame tags) as (primaries, trc, matrix, range)."""
    with av.open(str(path)) as c:
        cc = c.streams.video[0].codec_context
        frame = next(c.decode(video=0))
        return ((cc.color_primaries, cc.color_trc, cc.colorspace, cc.color_range),
                (frame.color_primaries, frame.color_trc, frame.colorspace, frame.color_range))


def worst_interleave_lag(path: Path) -> float:
    """How far, in seconds, a packet trails the other streams in file order (0 = perfectly interleaved)."""
    with av.open(str(path)) as c:
        packets = [(p.pos, p.stream.index, float(p.dts * p.time_base))
                   for p in c.demux() if p.dts is not None]
    latest: dict[int, float] = {}
    worst = 0.0
    for _, index, t in sorted(packets):
        others = [v for k, v in latest.items() if k != index]
        worst = max(worst, max(others, default=t) - t)
        latest[index] = max(latest.get(index, t), t)
    return worst


@pytest.fixture
def out_dir(tmp_path: Path) -> Path:
    """An empty folder for outputs, to check that failures leave nothing (not even temp files) behind."""
    path = tmp_path / "out"
    path.mkdir()
    return path


def no_worker_threads() -> bool:
    return not any(t.name.startswith("video-") and t.is_alive() for t in threading.enumerate())


# -- real clips ----------------------------------------------------------------------------------------


def test_probe_video(clips: Path) -> None:
    info = probe_video(clips / "realshort.mp4")
    assert (info.width, info.height, info.frames) == (320, 240, 36)
    assert info.fps == Fraction(45000, 1499)
    assert info.time_base == Fraction(1, 90000)
    assert info.pix_fmt == "yuv420p" and info.bit_depth == 8
    assert info.duration == pytest.approx(1.2, abs=0.01)
    assert [(s.type, s.codec) for s in info.other_streams] == [("audio", "aac")]


def test_realshort_frames_size_audio(clips: Path, out_dir: Path) -> None:
    src, dst = clips / "realshort.mp4", out_dir / "up.mp4"
    seen: list[int] = []
    started = []
    threads = []

    def fn(batch: np.ndarray) -> np.ndarray:
        threads.append(threading.current_thread() is threading.main_thread())
        assert batch.dtype == np.uint8 and batch.shape[1:] == (240, 320, 3)
        return x2(batch)

    result = upscale_video(src, dst, fn, options=FAST, batch_size=4,
                           progress=seen.append, on_start=started.append)
    assert result.frames == 36 and result.size == (640, 480) and result.fps > 0
    assert sum(seen) == 36 and started[0].frames == 36
    assert all(threads), "frame_fn must run in the caller's thread (so Ctrl-C reaches it)"
    with av.open(str(dst)) as c:
        assert [s.type for s in c.streams] == ["video", "audio"]
        v = c.streams.video[0]
        assert (v.codec_context.name, v.width, v.height) == ("h264", 640, 480)
        assert sum(1 for _ in c.decode(video=0)) == 36
    # Audio copied untouched: same codec, same end time to within one AAC packet.
    codec_in, end_in = audio_span(src)
    codec_out, end_out = audio_span(dst)
    assert codec_out == codec_in == "aac"
    assert end_out == pytest.approx(end_in, abs=1024 / 48000)
    assert worst_interleave_lag(dst) < 1.0
    # Untagged SD input: converted as BT.601 limited, and tagged so on the (now 640x480) output.
    stream_tags, frame_tags = tags_of(dst)
    assert stream_tags[2:] == (6, 1) and frame_tags[2:] == (6, 1)
    assert [p.name for p in out_dir.iterdir()] == ["up.mp4"]
    assert no_worker_threads()


def test_vfr_timestamps_kept(clips: Path, out_dir: Path) -> None:
    src, dst = clips / "fire_vfr.mp4", out_dir / "vfr.mp4"
    result = upscale_video(src, dst, quarter, options=FAST)
    assert result.frames == 25 and result.size == (320, 180)
    before, after = video_pts(src), video_pts(dst)
    assert len(after) == len(before) == 25
    assert max(abs(a - b) for a, b in zip(after, before, strict=True)) <= Fraction(1, 90000)
    gaps = {round(float(b - a), 3) for a, b in zip(after, after[1:], strict=False)}
    assert len(gaps) > 1, "variable frame rate must survive"
    with av.open(str(src)) as c:
        rotation = next(c.decode(video=0)).rotation
    with av.open(str(dst)) as c:
        assert next(c.decode(video=0)).rotation == rotation != 0  # phone clip: display matrix carried
    (codec_in, end_in), (codec_out, end_out) = audio_span(src), audio_span(dst)
    assert codec_out == codec_in and end_out == pytest.approx(end_in, abs=1024 / 48000)


def test_no_container_duration(clips: Path, out_dir: Path) -> None:
    src, dst = clips / "no_duration_vp9_opus.webm", out_dir / "nodur.mkv"
    started, seen = [], []
    result = upscale_video(src, dst, quarter, options=FAST, progress=seen.append, on_start=started.append)
    assert started[0].frames is None  # unknown total: the CLI draws a bar without one
    assert result.frames == sum(seen) == 74
    before, after = video_pts(src), video_pts(dst)
    assert after == before
    assert audio_span(dst)[0] == "opus"
    assert audio_span(dst)[1] == pytest.approx(audio_span(src)[1], abs=0.061)


def test_webm_output_reencodes_aac_to_opus(clips: Path, out_dir: Path) -> None:
    codec = next((c for c in ("libvpx-vp9", "libsvtav1") if c in av.codecs_available), None)
    if codec is None:
        pytest.skip("no WebM video encoder in this PyAV build")
    src, dst = clips / "realshort.mp4", out_dir / "up.webm"
    preset = {"libvpx-vp9": "8", "libsvtav1": "12"}[codec]
    with pytest.warns(VideoWarning, match="re-encoded as libopus"):
        result = upscale_video(src, dst, x2, options=EncodeOptions(codec=codec, preset=preset, crf=40))
    assert any("libopus" in w for w in result.warnings)
    assert len(video_pts(dst)) == 36
    codec_out, end_out = audio_span(dst)
    assert codec_out == "opus"
    assert end_out == pytest.approx(audio_span(src)[1], abs=1024 / 48000 + 0.020)  # one packet of each


# -- synthetic clips: bit depth, colour --------------------------------------------------------------------


@pytest.mark.parametrize("codec", ["libx264", "libx265", "ffv1"])
def test_10bit_stays_10bit(codec: str, tmp_path: Path, out_dir: Path) -> None:
    if codec not in av.codecs_available:
        pytest.skip(f"{codec} not in this PyAV build")
    src = make_clip(tmp_path / "ten.mkv", pix_fmt="yuv420p10le", tags=(1, 1, 1, 1))
    seen: list[np.ndarray] = []

    def fn(batch: np.ndarray) -> np.ndarray:
        seen.append(batch[0].copy())
        return x2(batch)

    dst = out_dir / "ten.mkv"
    options = EncodeOptions(codec=codec, preset=None if codec == "ffv1" else "ultrafast")
    result = upscale_video(src, dst, fn, options=options)
    assert seen[0].dtype == np.uint16
    assert result.pix_fmt == "yuv420p10le"
    with av.open(str(dst)) as c:
        assert c.streams.video[0].codec_context.pix_fmt == "yuv420p10le"
        frame = next(c.decode(video=0))
    assert frame.format.name == "yuv420p10le"
    if codec == "ffv1":  # lossless: the round trip through RGB48 must not lose the extra bits
        back = frame.to_ndarray(format="rgb48le", src_colorspace=Colorspace.ITU709,
                                src_color_range=ColorRange.MPEG, dst_color_range=ColorRange.JPEG)
        assert np.abs(back[::2, ::2].astype(int) - seen[0]).max() <= 2 * 64  # two 10-bit codes


def test_colour_tags_survive(tmp_path: Path, out_dir: Path) -> None:
    src = make_clip(tmp_path / "tagged.mkv", tags=(1, 1, 1, 1))  # BT.709 primaries/transfer/matrix, limited
    dst = out_dir / "tagged.mp4"
    upscale_video(src, dst, x2, options=FAST)
    stream_tags, frame_tags = tags_of(dst)
    assert stream_tags == frame_tags == (1, 1, 1, 1)


def _expected_rgb(yuv: tuple[int, int, int], matrix: str, full: bool) -> np.ndarray:
    kr, kb = {"709": (0.2126, 0.0722), "601": (0.299, 0.114)}[matrix]
    y, u, v = yuv
    if full:
        luma, cb, cr = y / 255, (u - 128) / 255, (v - 128) / 255
    else:
        luma, cb, cr = (y - 16) / 219, (u - 128) / 224, (v - 128) / 224
    r, b = luma + 2 * (1 - kr) * cr, luma + 2 * (1 - kb) * cb
    g = (luma - kr * r - kb * b) / (1 - kr - kb)
    return np.clip(np.array([r, g, b]) * 255, 0, 255)


@pytest.mark.parametrize(
    ("matrix_tag", "range_tag", "matrix", "full"),
    [(1, 1, "709", False), (6, 1, "601", False), (1, 2, "709", True), (5, 2, "601", True)],
)
def test_conversion_uses_input_matrix_and_range(matrix_tag: int, range_tag: int, matrix: str, full: bool,
                                                tmp_path: Path, out_dir: Path) -> None:
    yuv = (120, 90, 180)
    src = make_clip(tmp_path / "flat.mkv", yuv=yuv, tags=(2, 2, matrix_tag, range_tag), frames=2)
    means: list[np.ndarray] = []

    def fn(batch: np.ndarray) -> np.ndarray:
        means.append(batch.reshape(-1, 3).mean(0))
        return x2(batch)

    dst = out_dir / "flat.mkv"
    upscale_video(src, dst, fn, options=EncodeOptions(codec="ffv1"))
    assert means[0] == pytest.approx(_expected_rgb(yuv, matrix, full), abs=1.5)
    # ...and back to the same YUV with the same matrix and range (FFV1 is lossless).
    with av.open(str(dst)) as c:
        frame = next(c.decode(video=0))
        assert (frame.colorspace, frame.color_range) == (matrix_tag, range_tag)
        planes = [np.frombuffer(p, np.uint8).mean() for p in frame.planes]
    assert planes == pytest.approx(list(yuv), abs=1.0)


def test_odd_output_size_is_cropped(tmp_path: Path, out_dir: Path) -> None:
    src = make_clip(tmp_path / "small.mkv")

    def fn(batch: np.ndarray) -> np.ndarray:  # like outscale 2.02: 129x97
        return np.zeros((batch.shape[0], 97, 129, 3), np.uint8)

    with pytest.warns(VideoWarning, match="cropped to 128x96"):
        result = upscale_video(src, out_dir / "odd.mp4", fn, options=FAST)
    assert result.size == (128, 96)
    # A format without chroma subsampling takes the odd size as it is.
    lossless = EncodeOptions(codec="ffv1", pix_fmt="yuv444p")
    result = upscale_video(src, out_dir / "odd.mkv", fn, options=lossless)
    assert result.size == (129, 97)


# -- errors: one line, nothing left behind -----------------------------------------------------------------


def _text(tmp: Path) -> Path:
    path = tmp / "notes.mp4"
    path.write_text("this is not a video\n" * 20)
    return path


def _png(tmp: Path) -> Path:
    path = tmp / "picture.png"
    cv2.imwrite(str(path), np.full((16, 16, 3), 128, np.uint8))
    return path.rename(tmp / "picture.mp4")


def _audio_only(tmp: Path) -> Path:
    return make_clip(tmp / "sound.m4a", audio=True, video=False)


def _random(tmp: Path) -> Path:
    path = tmp / "noise.mp4"
    path.write_bytes(random.Random(0).randbytes(40_000))
    return path


def _zero_frames(tmp: Path) -> Path:
    return make_clip(tmp / "empty.mkv", frames=0, audio=True)


def _missing(tmp: Path) -> Path:
    return tmp / "missing.mp4"


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (_missing, "no such file"),
        (_text, "not a video"),
        (_png, "not a video"),
        (_audio_only, "no video stream"),
        (_random, "not a video"),
        (_zero_frames, "no frames decoded"),
    ],
)
def test_bad_inputs(make, message: str, tmp_path: Path, out_dir: Path) -> None:
    src = make(tmp_path)
    with pytest.raises(MediaError, match=message) as err:
        upscale_video(src, out_dir / "out.mp4", x2, options=FAST)
    assert "\n" not in str(err.value) and src.name in str(err.value)
    assert list(out_dir.iterdir()) == []
    assert no_worker_threads()


def _truncate(src: Path, dst: Path, keep: float = 0.5) -> Path:
    data = src.read_bytes()
    dst.write_bytes(data[: int(len(data) * keep)])
    return dst


def _faststart_copy(src: Path, dst: Path) -> Path:
    """Remux with the index first, so that a truncated copy still opens and fails mid-stream."""
    with av.open(str(src)) as inp, av.open(str(dst), "w", options={"movflags": "+faststart"}) as out:
        streams = {s.index: out.add_stream_from_template(s) for s in inp.streams}
        for packet in inp.demux():
            if packet.dts is not None:
                packet.stream = streams[packet.stream.index]
                out.mux(packet)
    return dst


@pytest.mark.parametrize(("name", "keep"), [("realshort.mp4", 0.5), ("faststart.mp4", 0.5),
                                            ("big_buck_bunny_1s.webm", 0.5), ("big_buck_bunny_1s.webm", 0.7)])
def test_truncated_inputs(name: str, keep: float, clips: Path, tmp_path: Path, out_dir: Path) -> None:
    if name == "faststart.mp4":
        full = _faststart_copy(clips / "realshort.mp4", tmp_path / "full.mp4")
    else:
        full = shutil.copy(clips / name, tmp_path / name)
    src = _truncate(Path(full), tmp_path / f"cut-{name}", keep)
    with pytest.raises(MediaError, match="corrupt|truncated") as err:
        upscale_video(src, out_dir / "out.mkv", x2, options=FAST)
    assert "\n" not in str(err.value)
    assert list(out_dir.iterdir()) == []


@pytest.mark.parametrize(
    ("dst_name", "options", "message"),
    [
        ("out.webm", EncodeOptions(codec="prores_ks"), "cannot go in a .webm"),
        ("out.mp4", EncodeOptions(codec="libnope"), "not available"),
        ("out.avi", EncodeOptions(), "unsupported output container"),
        ("out.mp4", EncodeOptions(crf=99), "crf must be between"),
        ("out.mp4", EncodeOptions(pix_fmt="rgb24"), "cannot encode pixel format"),
    ],
)
def test_bad_encoder_choices(dst_name: str, options: EncodeOptions, message: str, tmp_path: Path,
                             out_dir: Path) -> None:
    src = make_clip(tmp_path / "small.mkv")
    with pytest.raises(MediaError, match=message):
        upscale_video(src, out_dir / dst_name, x2, options=options)
    assert list(out_dir.iterdir()) == []


def test_encoder_that_cannot_open(tmp_path: Path, out_dir: Path) -> None:
    if "h264_nvenc" not in av.codecs_available:
        pytest.skip("no h264_nvenc in this PyAV build")
    src = make_clip(tmp_path / "small.mkv")
    try:
        upscale_video(src, out_dir / "out.mp4", x2, options=EncodeOptions(codec="h264_nvenc"))
    except MediaError as err:  # the usual case: no NVIDIA GPU here
        assert "h264_nvenc" in str(err) and "\n" not in str(err)
        assert list(out_dir.iterdir()) == []


def test_auto_codec_prefers_nvenc_only_where_it_opens(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from upscaler.video import options as opts

    if "h264_nvenc" not in av.codecs_available or "hevc_nvenc" not in av.codecs_available:
        pytest.skip("no NVENC encoders in this PyAV build")
    dst = tmp_path / "out.mp4"
    # Without a GPU model the software default stays, whatever is installed.
    assert opts.plan_encoder(EncodeOptions(), dst, "yuv420p").codec == "libx264"
    opened: list[str] = []

    def opens(codec: str, pix_fmt: str, codec_options: dict[str, str]) -> None:
        opened.append(codec)

    def fails(codec: str, pix_fmt: str, codec_options: dict[str, str]) -> None:
        raise MediaError(f"{codec}: cannot start encoding")

    monkeypatch.setattr(opts, "_try_open", opens)
    assert opts.plan_encoder(EncodeOptions(codec="auto"), dst, "yuv420p", prefer_hardware=True).codec == "h264_nvenc"
    ten_bit = opts.plan_encoder(EncodeOptions(), dst, "yuv420p10le", prefer_hardware=True)
    assert (ten_bit.codec, bit_depth(ten_bit.pix_fmt)) == ("hevc_nvenc", 10)
    assert opened == ["h264_nvenc", "hevc_nvenc"]
    # WebM takes no H.264/HEVC: VP9 in software. An explicit codec is never swapped.
    assert opts.plan_encoder(EncodeOptions(), tmp_path / "o.webm", "yuv420p", prefer_hardware=True).codec == \
        "libvpx-vp9"
    assert opts.plan_encoder(EncodeOptions(codec="libx265"), dst, "yuv420p", prefer_hardware=True).codec == "libx265"
    # NVENC built in but no GPU to open it on: back to libx264, no error.
    monkeypatch.setattr(opts, "_try_open", fails)
    assert opts.plan_encoder(EncodeOptions(), dst, "yuv420p", prefer_hardware=True).codec == "libx264"


def test_existing_output_needs_overwrite(tmp_path: Path, out_dir: Path) -> None:
    src = make_clip(tmp_path / "small.mkv")
    dst = out_dir / "out.mp4"
    dst.write_bytes(b"keep me")
    with pytest.raises(MediaError, match="already exists"):
        upscale_video(src, dst, x2, options=FAST)
    assert dst.read_bytes() == b"keep me"
    upscale_video(src, dst, x2, options=FAST, overwrite=True)
    assert len(video_pts(dst)) == 5


# -- failures in the middle: the caller's exception, clean threads, no output -------------------------------


@pytest.mark.parametrize("error", [RuntimeError("model exploded"), KeyboardInterrupt()])
def test_frame_fn_failure_stops_everything(error: BaseException, tmp_path: Path, out_dir: Path) -> None:
    src = make_clip(tmp_path / "long.mkv", frames=24, audio=True)
    calls = []

    def fn(batch: np.ndarray) -> np.ndarray:
        calls.append(len(batch))
        if len(calls) == 3:
            raise error
        return x2(batch)

    with pytest.raises(type(error)):
        upscale_video(src, out_dir / "out.mp4", fn, options=FAST, batch_size=2)
    assert len(calls) == 3
    assert list(out_dir.iterdir()) == []
    assert no_worker_threads()


def test_frame_fn_must_keep_its_size(tmp_path: Path, out_dir: Path) -> None:
    src = make_clip(tmp_path / "small.mkv", frames=4)
    sizes = iter([2, 3])

    def fn(batch: np.ndarray) -> np.ndarray:
        s = next(sizes)
        return np.repeat(np.repeat(batch, s, 1), s, 2)

    with pytest.raises(ValueError, match="changed the output size"):
        upscale_video(src, out_dir / "out.mp4", fn, options=FAST, batch_size=2)
    assert list(out_dir.iterdir()) == []


def test_bad_encoder_preset_fails_before_any_frame_is_upscaled(clips: Path, out_dir: Path) -> None:
    calls = []

    def counting(frames: np.ndarray) -> np.ndarray:
        calls.append(len(frames))
        return x2(frames)

    with pytest.raises(MediaError, match="libx264: cannot start encoding") as err:
        upscale_video(clips / "realshort.mp4", out_dir / "out.mp4", counting, options=EncodeOptions(preset="nosuch"))
    assert "\n" not in str(err.value)
    assert calls == [] and list(out_dir.iterdir()) == []

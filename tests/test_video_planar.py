"""The video pipeline's device colour path: decoded planes in, encoder planes out, YUV <-> RGB in torch.

A stand-in model upscales by repeating pixels, so both paths (planes through torch, RGB through swscale)
see the same picture and their outputs can be compared; the shipped model runs the real path once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from conftest import REPO
from test_video import FAST, audio_span, make_clip, tags_of, video_pts, x2

from upscaler import Upscaler
from upscaler.bench import prepare_clip
from upscaler.video import EncodeOptions, VideoWarning, upscale_video
from upscaler.video.yuv import rgb_to_yuv, yuv_to_rgb
from upscaler.video.yuv_layout import YuvLayout

SAMPLE = REPO / "samples" / "bbb_320x180.mp4"
LOSSLESS = EncodeOptions(codec="ffv1")


class Repeat:
    """A PlanarModel that repeats each pixel ``factor`` times (and may make an odd size, like --outscale)."""

    def __init__(self, factor: int = 2, extra: int = 0) -> None:
        self.factor, self.extra = factor, extra
        self.calls: list[tuple[YuvLayout, YuvLayout]] = []

    def output_size(self, width: int, height: int) -> tuple[int, int]:
        return width * self.factor + self.extra, height * self.factor + self.extra

    def submit_planes(self, frames: np.ndarray, src: YuvLayout, dst: YuvLayout) -> Callable[[], np.ndarray]:
        out = self.upscale_planes(frames, src, dst)
        return lambda: out

    def upscale_planes(self, frames: np.ndarray, src: YuvLayout, dst: YuvLayout) -> np.ndarray:
        self.calls.append((src, dst))
        samples = torch.from_numpy(frames.view(np.int16) if frames.dtype == np.uint16 else frames)
        rgb = yuv_to_rgb(samples, src)
        rgb = rgb.repeat_interleave(self.factor, -1).repeat_interleave(self.factor, -2)
        if self.extra:
            rgb = torch.nn.functional.pad(rgb, (0, self.extra, 0, self.extra), mode="replicate")
        return rgb_to_yuv(rgb[:, :, : dst.height, : dst.width], dst).numpy().view(dst.dtype)


def never(batch: np.ndarray) -> np.ndarray:
    raise AssertionError("the RGB frame_fn must not run on the planar path")


def decoded(path: Path, fmt: str = "rgb24") -> np.ndarray:
    with av.open(str(path)) as c:
        return np.stack([f.to_ndarray(format=fmt) for f in c.decode(video=0)]).astype(np.float64)


def psnr(a: np.ndarray, b: np.ndarray, peak: float = 255.0) -> float:
    return float(10 * np.log10(peak**2 / np.mean((a - b) ** 2)))


def test_planar_path_matches_the_swscale_path_on_a_real_clip(tmp_path: Path) -> None:
    model = Repeat()
    planar = upscale_video(SAMPLE, tmp_path / "planar.mkv", never, options=LOSSLESS, planar=model)
    rgb = upscale_video(SAMPLE, tmp_path / "rgb.mkv", x2, options=LOSSLESS)
    assert planar.frames == rgb.frames == 24 and planar.size == rgb.size == (640, 360)
    src, dst = model.calls[0]
    assert (src.pix_fmt, src.width, src.height, src.matrix, src.full_range) == ("yuv420p", 320, 180, 6, False)
    assert (dst.pix_fmt, dst.width, dst.height, dst.matrix) == ("yuv420p", 640, 360, 6)
    # Same pictures to within the two converters' rounding and chroma filters (FFV1 is lossless).
    a, b = decoded(tmp_path / "planar.mkv"), decoded(tmp_path / "rgb.mkv")
    assert psnr(a, b) > 45, psnr(a, b)  # 48.7 dB; decoding BT.601 as BT.709 gives 40
    assert np.abs((a - b).mean(axis=(0, 1, 2))).max() < 0.3  # no colour cast
    assert video_pts(tmp_path / "planar.mkv") == video_pts(tmp_path / "rgb.mkv")
    assert len(video_pts(tmp_path / "planar.mkv")) == 24
    assert tags_of(tmp_path / "planar.mkv") == tags_of(tmp_path / "rgb.mkv")
    assert audio_span(tmp_path / "planar.mkv") == audio_span(tmp_path / "rgb.mkv")


def test_planar_path_keeps_vfr_timestamps_rotation_and_audio(clips: Path, tmp_path: Path) -> None:
    src, dst = clips / "fire_vfr.mp4", tmp_path / "vfr.mp4"
    result = upscale_video(src, dst, never, options=FAST, planar=Repeat(factor=1))
    assert result.frames == 25 and result.size == (1280, 720)
    before, after = video_pts(src), video_pts(dst)
    assert max(abs(a - b) for a, b in zip(after, before, strict=True)) <= Fraction(1, 90000)
    with av.open(str(src)) as c:
        rotation = next(c.decode(video=0)).rotation
    with av.open(str(dst)) as c:
        assert next(c.decode(video=0)).rotation == rotation != 0
    assert audio_span(dst)[0] == audio_span(src)[0]
    assert tags_of(dst)[0] == (1, 1, 1, 1)  # untagged HD: converted and tagged as BT.709, limited


@pytest.mark.parametrize(("tags", "yuv"), [((1, 1, 1, 1), (120, 90, 180)), ((5, 6, 5, 2), (150, 110, 150))])
def test_flat_colours_come_back_exactly(tags: tuple[int, int, int, int], yuv: tuple[int, int, int],
                                        tmp_path: Path) -> None:
    # BT.709 limited and BT.601 full range, colours inside the RGB gamut: YUV -> RGB -> YUV in float lands
    # on the same codes.
    src = make_clip(tmp_path / "flat.mkv", yuv=yuv, tags=tags, frames=3)
    dst = tmp_path / "out.mkv"
    upscale_video(src, dst, never, options=LOSSLESS, planar=Repeat())
    with av.open(str(dst)) as c:
        frame = next(c.decode(video=0))
        assert (frame.colorspace, frame.color_range) == tags[2:]
        planes = [np.frombuffer(p, np.uint8).reshape(p.height, -1)[:, : p.width] for p in frame.planes]
    assert [np.unique(p).tolist() for p in planes] == [[v] for v in yuv]


def test_ten_bit_stays_ten_bit_on_the_planar_path(tmp_path: Path) -> None:
    src = make_clip(tmp_path / "ten.mkv", pix_fmt="yuv420p10le", tags=(1, 1, 1, 1), size=(64, 48), frames=3)
    model = Repeat()
    planar = upscale_video(src, tmp_path / "planar.mkv", never, options=LOSSLESS, planar=model)
    upscale_video(src, tmp_path / "rgb.mkv", x2, options=LOSSLESS)
    assert planar.pix_fmt == "yuv420p10le" and model.calls[0][0].bits == 10
    a, b = decoded(tmp_path / "planar.mkv", "rgb48le"), decoded(tmp_path / "rgb.mkv", "rgb48le")
    assert psnr(a, b, 65535.0) > 46, psnr(a, b, 65535.0)  # 49.3 dB
    # The extra bits are real: the planar output is not 8-bit codes shifted up.
    with av.open(str(tmp_path / "planar.mkv")) as c:
        luma = np.frombuffer(next(c.decode(video=0)).planes[0], np.uint16)
    assert (luma % 4 != 0).any()


@pytest.mark.parametrize("colour_convert", ["device", "swscale"])
def test_ten_bit_video_runs_in_fp32_under_the_automatic_cpu_bf16(colour_convert: str, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    src = make_clip(tmp_path / "ten.mkv", pix_fmt="yuv420p10le", tags=(1, 1, 1, 1), size=(48, 32), frames=2)
    outs = []
    for precision in ("fp32", "auto"):
        monkeypatch.setattr("upscaler.engine.cpu_bf16_is_fast", lambda: True)
        up = Upscaler(scale=4, device="cpu", precision=precision, colour_convert=colour_convert)  # type: ignore[arg-type]
        assert up.dtype == (torch.float32 if precision == "fp32" else torch.bfloat16)
        up.upscale_video(src, tmp_path / f"{precision}.mkv", options=LOSSLESS)
        outs.append(decoded(tmp_path / f"{precision}.mkv", "rgb48le"))
    assert np.array_equal(*outs)


def test_semi_planar_output_for_nvenc_style_encoders(tmp_path: Path) -> None:
    # NVENC takes NV12 / P010: the planar path writes the interleaved chroma itself (here through libx264).
    options = EncodeOptions(codec="libx264", pix_fmt="nv12", preset="ultrafast", crf=0)
    result = upscale_video(SAMPLE, tmp_path / "nv12.mkv", never, options=options, planar=Repeat())
    upscale_video(SAMPLE, tmp_path / "rgb.mkv", x2, options=LOSSLESS)
    assert result.pix_fmt == "nv12"
    a, b = decoded(tmp_path / "nv12.mkv"), decoded(tmp_path / "rgb.mkv")
    assert psnr(a, b) > 45, psnr(a, b)  # 48.7 dB, as for yuv420p: x264 at crf 0 is lossless


def test_odd_output_is_cropped_to_the_chroma_grid(tmp_path: Path) -> None:
    src = make_clip(tmp_path / "small.mkv")  # 64x48 -> 129x97 -> 128x96
    model = Repeat(extra=1)
    with pytest.warns(VideoWarning, match="cropped to 128x96"):
        result = upscale_video(src, tmp_path / "odd.mp4", never, options=FAST, planar=model)
    assert result.size == (128, 96) and (model.calls[0][1].width, model.calls[0][1].height) == (128, 96)
    # 4:4:4 holds odd sizes: nothing cropped.
    result = upscale_video(src, tmp_path / "odd.mkv", never, options=EncodeOptions(codec="ffv1", pix_fmt="yuv444p"),
                           planar=Repeat(extra=1))
    assert result.size == (129, 97)


def test_formats_the_planar_path_does_not_take_go_through_rgb(tmp_path: Path) -> None:
    src = make_clip(tmp_path / "rgb.mkv", pix_fmt="bgr0")  # an RGB input: swscale's job
    model = Repeat()
    result = upscale_video(src, tmp_path / "out.mkv", x2, options=LOSSLESS, planar=model)
    assert result.frames == 5 and model.calls == []


def test_shipped_model_on_the_device_colour_path(tmp_path: Path) -> None:
    clip = prepare_clip(SAMPLE, tmp_path / "small.mp4", (96, 54), 6)
    results = {}
    for mode in ("device", "swscale"):
        up = Upscaler(scale=2, device="cpu", colour_convert=mode)
        results[mode] = up.upscale_video(clip, tmp_path / f"{mode}.mkv", options=LOSSLESS)
    assert results["device"].size == results["swscale"].size == (192, 108)
    a, b = decoded(tmp_path / "device.mkv"), decoded(tmp_path / "swscale.mkv")
    assert psnr(a, b) > 41, psnr(a, b)  # 44.7 dB: the model sharpens the converters' small differences
    assert np.abs((a - b).mean(axis=(0, 1, 2))).max() < 0.3
    assert not Upscaler(scale=2, device="cpu").colour_on_device  # auto: swscale on the CPU (measured faster)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_planar_path_matches_cpu(tmp_path: Path) -> None:
    # Upload as int16 through pinned buffers, convert, upscale, convert back and download: the same frames as
    # the CPU (fp32), and fp16 within its precision.
    clip = prepare_clip(SAMPLE, tmp_path / "small.mp4", (192, 108), 8)
    runs = {"cpu": Upscaler(scale=4, device="cpu", precision="fp32", colour_convert="device"),
            "cuda32": Upscaler(scale=4, device="cuda", precision="fp32"),
            "cuda16": Upscaler(scale=4, device="cuda")}
    assert runs["cuda16"].colour_on_device and runs["cuda16"].dtype == torch.float16
    for name, up in runs.items():
        result = up.upscale_video(clip, tmp_path / f"{name}.mkv", options=LOSSLESS)
        assert result.frames == 8 and result.size == (768, 432)
    cpu = decoded(tmp_path / "cpu.mkv")
    assert psnr(cpu, decoded(tmp_path / "cuda32.mkv")) > 50
    assert psnr(cpu, decoded(tmp_path / "cuda16.mkv")) > 40
    # Ten-bit frames cross as int16 both ways.
    src = make_clip(tmp_path / "ten.mkv", pix_fmt="yuv420p10le", tags=(1, 1, 1, 1), size=(64, 48), frames=3)
    for name in ("cpu", "cuda32"):
        runs[name].upscale_video(src, tmp_path / f"ten_{name}.mkv", options=LOSSLESS)
    a, b = decoded(tmp_path / "ten_cpu.mkv", "rgb48le"), decoded(tmp_path / "ten_cuda32.mkv", "rgb48le")
    assert psnr(a, b, 65535.0) > 50


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_rgb_path_with_look_ahead_matches_cpu(tmp_path: Path) -> None:
    # The RGB path on CUDA queues batch k+1 before fetching k (two downloads in flight, two pinned slots):
    # 10 frames in batches of 4 must come out as the CPU's, in order, 8- and 10-bit.
    clip = prepare_clip(SAMPLE, tmp_path / "small.mp4", (192, 108), 10)
    ten = make_clip(tmp_path / "ten.mkv", pix_fmt="yuv420p10le", tags=(1, 1, 1, 1), size=(64, 48), frames=6)
    runs = {"cpu": Upscaler(scale=4, device="cpu", precision="fp32"),
            "cuda32": Upscaler(scale=4, device="cuda", precision="fp32", colour_convert="swscale", batch_size=4),
            "cuda16": Upscaler(scale=4, device="cuda", colour_convert="swscale", batch_size=4)}
    for name, up in runs.items():
        assert up.upscale_video(clip, tmp_path / f"{name}.mkv", options=LOSSLESS).frames == 10
        up.upscale_video(ten, tmp_path / f"ten_{name}.mkv", options=LOSSLESS)
    cpu = decoded(tmp_path / "cpu.mkv")
    assert psnr(cpu, decoded(tmp_path / "cuda32.mkv")) > 50
    assert psnr(cpu, decoded(tmp_path / "cuda16.mkv")) > 40
    a, b = decoded(tmp_path / "ten_cpu.mkv", "rgb48le"), decoded(tmp_path / "ten_cuda32.mkv", "rgb48le")
    assert psnr(a, b, 65535.0) > 50


class Recording(Repeat):
    """Repeat, with a log of when each batch is queued and when it is waited for."""

    def __init__(self) -> None:
        super().__init__()
        self.log: list[str] = []

    def submit_planes(self, frames: np.ndarray, src: YuvLayout, dst: YuvLayout) -> Callable[[], np.ndarray]:
        n = sum(entry.startswith("submit") for entry in self.log)
        self.log.append(f"submit {n}")
        out = self.upscale_planes(frames, src, dst)

        def fetch() -> np.ndarray:
            self.log.append(f"fetch {n}")
            return out

        return fetch


def test_next_batch_is_queued_before_the_previous_is_waited_for(tmp_path: Path) -> None:
    model = Recording()
    upscale_video(SAMPLE, tmp_path / "ahead.mkv", never, options=LOSSLESS, planar=model, batch_size=8)
    assert model.log == ["submit 0", "submit 1", "fetch 0", "submit 2", "fetch 1", "fetch 2"]
    # ...and the frames still come out in order: the same file as the one-batch-at-a-time loop.
    upscale_video(SAMPLE, tmp_path / "plain.mkv", never, options=LOSSLESS, planar=Repeat(), batch_size=8,
                  sequential=True)
    assert np.array_equal(decoded(tmp_path / "ahead.mkv"), decoded(tmp_path / "plain.mkv"))
    assert video_pts(tmp_path / "ahead.mkv") == video_pts(tmp_path / "plain.mkv")


def test_rgb_path_queues_ahead_too_when_given_a_frame_submit(tmp_path: Path) -> None:
    log: list[str] = []

    def submit(batch: np.ndarray) -> Callable[[], np.ndarray]:
        n = sum(entry.startswith("submit") for entry in log)
        log.append(f"submit {n}")
        out = x2(batch)

        def fetch() -> np.ndarray:
            log.append(f"fetch {n}")
            return out

        return fetch

    upscale_video(SAMPLE, tmp_path / "ahead.mkv", never, options=LOSSLESS, frame_submit=submit, batch_size=8)
    assert log == ["submit 0", "submit 1", "fetch 0", "submit 2", "fetch 1", "fetch 2"]
    upscale_video(SAMPLE, tmp_path / "plain.mkv", x2, options=LOSSLESS, batch_size=8, sequential=True)
    assert np.array_equal(decoded(tmp_path / "ahead.mkv"), decoded(tmp_path / "plain.mkv"))
    # A bad output is still caught, now when it is fetched.
    with pytest.raises(ValueError, match="frame_fn returned 1 frames"):
        upscale_video(SAMPLE, tmp_path / "bad.mkv", never, options=LOSSLESS,
                      frame_submit=lambda batch: lambda: x2(batch[:1]), batch_size=8)
    assert not (tmp_path / "bad.mkv").exists()


def _raw_h264(path: Path, size: tuple[int, int], frames: int, luma: int) -> bytes:
    with av.open(str(path), "w", format="h264") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = *size, "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "0"}
        for i in range(frames):
            frame = av.VideoFrame(*size, "yuv420p")
            for plane, value in zip(frame.planes, (luma, 100, 150), strict=True):
                plane.update(np.full(plane.buffer_size, value, np.uint8))
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path.read_bytes()


@pytest.mark.parametrize("planar", [True, False])
def test_a_stream_that_changes_size_midway(planar: bool, tmp_path: Path) -> None:
    # An H.264 stream whose second half is 96x72: every frame is brought to the first one's 64x48.
    src = tmp_path / "change.h264"
    src.write_bytes(_raw_h264(tmp_path / "a.h264", (64, 48), 4, 80) + _raw_h264(tmp_path / "b.h264", (96, 72), 4, 160))
    dst = tmp_path / "out.mkv"
    result = upscale_video(src, dst, x2, options=LOSSLESS, planar=Repeat() if planar else None, batch_size=3)
    assert result.frames == 8 and result.size == (128, 96)
    with av.open(str(dst)) as c:
        planes = [[np.frombuffer(p, np.uint8).reshape(p.height, -1)[:, : p.width] for p in f.planes]
                  for f in c.decode(video=0)]
    assert [int(np.median(y)) for y, _, _ in planes] == [80] * 4 + [160] * 4
    assert all(abs(int(np.median(u)) - 100) <= 1 and abs(int(np.median(v)) - 150) <= 1 for _, u, v in planes)


class FailingFetch(Repeat):
    def submit_planes(self, frames: np.ndarray, src: YuvLayout, dst: YuvLayout) -> Callable[[], np.ndarray]:
        self.calls.append((src, dst))
        if len(self.calls) < 3:
            return super().submit_planes(frames, src, dst)

        def fetch() -> np.ndarray:
            raise KeyboardInterrupt

        return fetch


def test_interrupt_while_a_batch_is_queued_leaves_nothing(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(KeyboardInterrupt):
        upscale_video(SAMPLE, out / "x.mkv", never, options=LOSSLESS, planar=FailingFetch(), batch_size=4)
    assert list(out.iterdir()) == []
    assert not any(t.name.startswith("video-") and t.is_alive() for t in threading.enumerate())

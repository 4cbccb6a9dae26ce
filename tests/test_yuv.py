"""Y'CbCr <-> RGB in torch (the device colour path) against textbook values, swscale and PyAV's planes."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
import torch
from av.video.reformatter import ColorRange
from conftest import REPO, shared_path

from upscaler.image.io import read_image
from upscaler.video.colour import DECODE_INTERPOLATION, ENCODE_INTERPOLATION, ColourTags
from upscaler.video.planes import layout_for, pack, unpack
from upscaler.video.yuv import rgb_to_yuv, yuv_to_rgb
from upscaler.video.yuv_layout import YuvLayout

SAMPLE = REPO / "samples" / "bbb_320x180.mp4"
BT601, BT709, BT2020 = 6, 1, 9


def _row(frame: av.VideoFrame, layout: YuvLayout) -> np.ndarray:
    row = np.empty(layout.length, layout.dtype)
    pack(frame, layout, row)
    return row


def _tensor(row: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(row.view(np.int16) if row.dtype == np.uint16 else row)[None]


def _host(flat: torch.Tensor, layout: YuvLayout) -> np.ndarray:
    return flat[0].numpy().view(layout.dtype)


def _rgb(row: np.ndarray, layout: YuvLayout) -> np.ndarray:
    return yuv_to_rgb(_tensor(row), layout)[0].permute(1, 2, 0).numpy()


def _from_rgb(rgb: np.ndarray, layout: YuvLayout) -> np.ndarray:
    return _host(rgb_to_yuv(torch.from_numpy(rgb).permute(2, 0, 1)[None].float(), layout), layout)


def _flat(layout: YuvLayout, y: int, u: int, v: int) -> np.ndarray:
    row = np.empty(layout.length, layout.dtype)
    row[: layout.luma_length] = y
    cw, ch = layout.chroma_size
    row[layout.luma_length : layout.luma_length + cw * ch] = u
    row[layout.luma_length + cw * ch :] = v
    return row


# -- textbook values --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("matrix", "full", "colour", "expected"),
    [
        (BT709, False, (1, 0, 0), (63, 102, 240)),  # BT.709 red, limited range
        (BT709, False, (0, 0, 1), (32, 240, 118)),  # BT.709 blue
        (BT601, False, (1, 0, 0), (81, 90, 240)),  # BT.601 red
        (BT601, False, (1, 1, 1), (235, 128, 128)),  # white
        (BT601, False, (0, 0, 0), (16, 128, 128)),  # black
        (BT601, True, (1, 0, 0), (76, 85, 255)),  # JPEG/JFIF red (Cr 255.5 clipped)
        (BT2020, False, (0, 1, 0), (164, 47, 25)),  # BT.2020 green
    ],
)
def test_rgb_to_yuv_gives_the_standard_codes(matrix: int, full: bool, colour: tuple[int, ...],
                                             expected: tuple[int, int, int]) -> None:
    layout = layout_for("yuv420p", 8, 4, matrix, full)
    assert layout is not None
    rgb = np.broadcast_to(np.array(colour, np.float32), (4, 8, 3)).copy()
    flat = _from_rgb(rgb, layout)
    cw, ch = layout.chroma_size
    y, u, v = flat[:32], flat[32 : 32 + cw * ch], flat[32 + cw * ch :]
    assert (y == expected[0]).all() and (u == expected[1]).all() and (v == expected[2]).all(), (y[0], u[0], v[0])
    # ...and back to the same colour.
    assert _rgb(flat, layout) == pytest.approx(rgb, abs=1.5 / 255)


def test_ten_bit_codes_are_the_eight_bit_ones_times_four_and_p010_sits_in_the_top_bits() -> None:
    rgb = np.broadcast_to(np.array([1, 0, 0], np.float32), (2, 4, 3)).copy()
    ten = _from_rgb(rgb, layout_for("yuv420p10le", 4, 2, BT709, False))
    p010 = _from_rgb(rgb, layout_for("p010le", 4, 2, BT709, False))
    # BT.709 red at 10 bits: Y 250, Cb 409, Cr 960 (the 8-bit 63/102/240 x4, with two more bits of precision).
    assert ten[0] == 250 and ten[8] == 409 and ten[10] == 960
    assert np.array_equal(p010, ten.astype(np.uint16) << 6)
    assert np.array_equal(_rgb(p010, layout_for("p010le", 4, 2, BT709, False)),
                          _rgb(ten, layout_for("yuv420p10le", 4, 2, BT709, False)))


def test_sixteen_bit_codes_above_32767_survive_the_int16_transport() -> None:
    layout = layout_for("yuv444p16le", 4, 2, BT709, True)
    white = np.ones((2, 4, 3), np.float32)
    flat = _from_rgb(white, layout)
    assert flat.dtype == np.uint16 and flat[0] == 65535 and flat[8] == 32768
    assert _rgb(flat, layout) == pytest.approx(white, abs=1e-4)


# -- against swscale on real frames -----------------------------------------------------------------------


def _first_frame(path: Path) -> tuple[av.VideoFrame, ColourTags]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frame = next(container.decode(video=0))
        tags = ColourTags.of(stream.codec_context).overlay(ColourTags.of(frame))
        return frame, tags.resolved(frame.width, frame.height, frame.format.name)


@pytest.mark.parametrize("clip", ["sample", "fire_vfr.mp4", "onepiece_demo.mp4"])
def test_decode_matches_swscale_on_real_frames(clip: str) -> None:
    path = SAMPLE if clip == "sample" else shared_path("clips", clip)
    frame, tags = _first_frame(path)
    layout = layout_for(frame.format.name, frame.width, frame.height, tags.matrix, tags.range == 2)
    assert layout is not None
    mine = _rgb(_row(frame, layout), layout) * 255
    ref = frame.to_ndarray(format="rgb24", src_colorspace=tags.sws_matrix, src_color_range=tags.sws_range,
                           dst_color_range=ColorRange.JPEG, interpolation=DECODE_INTERPOLATION)
    diff = np.abs(mine - ref)
    # swscale rounds to integers (0.25 mean on its own) and interpolates chroma bicubically: both paths
    # agree to a fraction of a code, and to a few codes at the sharpest chroma edges.
    assert diff.mean() < 0.6 and np.percentile(diff, 99) < 3, (diff.mean(), np.percentile(diff, 99))
    assert np.abs((mine - ref).mean(axis=(0, 1))).max() < 0.1  # no colour cast


@pytest.mark.parametrize("pix_fmt", ["yuv420p", "yuv422p", "yuv444p", "yuv420p10le", "nv12", "p010le"])
@pytest.mark.parametrize("full", [False, True])
def test_encode_matches_swscale_on_a_real_image(pix_fmt: str, full: bool) -> None:
    rgb = read_image(shared_path("images", "bench", "Set14", "lenna.png")).rgb[:200, :256]
    layout = layout_for(pix_fmt, 256, 200, BT709, full)
    assert layout is not None
    mine = _from_rgb(rgb.astype(np.float32) / 255, layout).astype(np.int64)
    ref_frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(
        format=pix_fmt, src_colorspace="ITU709", dst_colorspace="ITU709", src_color_range=ColorRange.JPEG,
        dst_color_range=ColorRange.JPEG if full else ColorRange.MPEG, interpolation=ENCODE_INTERPOLATION)
    ref = _row(ref_frame, layout).astype(np.int64)
    code = 1 << (layout.bits - 8 + layout.shift)  # one 8-bit code in this format's units
    luma = np.abs(mine - ref)[: layout.luma_length] / code
    chroma = np.abs(mine - ref)[layout.luma_length :] / code
    assert luma.max() <= 1 and luma.mean() < 0.05, (luma.max(), luma.mean())
    # swscale floors full-range chroma (BT.709 red's Cb, 98.78 exactly, comes out 98): half a code of bias.
    bias = 0.6 if full else 0.0
    if layout.chroma_shift == (0, 0):
        assert chroma.max() <= 1 and chroma.mean() < 0.05 + bias, (chroma.max(), chroma.mean())
    else:
        # swscale averages chroma as if centred between luma columns (its AREA mode matches that exactly);
        # H.264/HEVC's default siting, which we follow, is co-sited: under a code apart on average.
        assert chroma.mean() < 0.7 + bias / 2 and np.percentile(chroma, 99) <= 4, \
            (chroma.mean(), np.percentile(chroma, 99))


def test_round_trip_keeps_a_real_image() -> None:
    rgb = read_image(shared_path("images", "bench", "Set5", "butterfly.png")).rgb.astype(np.float32) / 255
    h, w = rgb.shape[:2]
    for pix_fmt, floor_db in (("yuv444p10le", 50), ("yuv420p", 30)):
        layout = layout_for(pix_fmt, w, h, BT709, False)
        back = _rgb(_from_rgb(rgb, layout), layout)
        psnr = 10 * np.log10(1 / np.mean((back - rgb) ** 2))
        assert psnr > floor_db, (pix_fmt, psnr)


def test_upsampling_keeps_flat_colour_and_chroma_sites() -> None:
    # A flat colour comes back flat, also at odd sizes where the last chroma sample covers one luma pixel.
    layout = layout_for("yuv420p", 7, 5, BT709, False)
    out = _rgb(_flat(layout, 120, 90, 180), layout)
    assert np.ptp(out.reshape(-1, 3), axis=0).max() < 1e-6
    # A single chroma column: co-sited horizontally, so luma column 2 takes it whole, columns 1 and 3 half.
    layout = layout_for("yuv422p", 8, 2, BT709, False)
    row = _flat(layout, 120, 128, 128)
    cr = row[layout.luma_length + 8 :].reshape(2, 4)
    cr[:, 1] = 168
    red = _rgb(row, layout)[0, :, 0]
    red = red - red[0]
    assert red[2] > 0.2 and red[2] == pytest.approx(red.max())
    assert red[1] == pytest.approx(red[2] / 2, rel=1e-4) and red[3] == pytest.approx(red[2] / 2, rel=1e-4)
    assert red[4] == pytest.approx(0, abs=1e-6)
    # Vertically, 4:2:0 chroma sits between two rows: the rows beside it take 3/4, the next ones 1/4.
    layout = layout_for("yuv420p", 2, 8, BT709, False)
    row = _flat(layout, 120, 128, 128)
    row[layout.luma_length + 4 + 1] = 168  # Cr row 1 (between luma rows 2 and 3)
    red = _rgb(row, layout)[:, 0, 0]
    red = red - red[0]
    assert red[2] == pytest.approx(red[3]) and red[2] > 0.1
    assert red[1] == pytest.approx(red[2] / 3, rel=1e-4) and red[4] == pytest.approx(red[2] / 3, rel=1e-4)
    assert red[0] == pytest.approx(0, abs=1e-6) and red[5] == pytest.approx(0, abs=1e-6)


def test_downsampling_filters_around_the_chroma_sites() -> None:
    # One bright-red luma column: co-sited [1 2 1]/4 across, so the chroma sample on that column takes 1/2 of
    # it and its neighbours none; between two rows, [1 1]/2 down.
    layout = layout_for("yuv420p", 8, 2, BT709, True)
    rgb = np.zeros((2, 8, 3), np.float32)
    rgb[:, 4, 0] = 1.0
    flat = _from_rgb(rgb, layout).astype(np.float64)
    cr = flat[layout.luma_length + 4 :] - 128
    assert cr[2] == pytest.approx(0.5 * 255 * 0.5, abs=0.6) and cr[1] == cr[3] == 0 and cr[0] == 0
    rgb[:, 4, 0], rgb[:, 5, 0] = 0.0, 1.0  # an odd column goes half to each neighbouring site
    cr = _from_rgb(rgb, layout).astype(np.float64)[layout.luma_length + 4 :] - 128
    assert cr[2] == cr[3] == pytest.approx(0.25 * 255 * 0.5, abs=0.6)


def test_rgb_to_yuv_refuses_a_size_the_layout_cannot_hold() -> None:
    layout = layout_for("yuv420p", 7, 5, BT709, False)
    with pytest.raises(ValueError, match="does not fit"):
        rgb_to_yuv(torch.zeros(1, 3, 5, 7), layout)


# -- PyAV planes <-> flat rows ----------------------------------------------------------------------------


_PLANAR = ["yuv420p", "yuvj420p", "yuv422p10le", "yuv444p", "yuv444p16le"]


# FFmpeg's semi-planar formats (NV12, P010) take even sizes only.
@pytest.mark.parametrize(("pix_fmt", "size"), [(f, (64, 48)) for f in [*_PLANAR, "nv12", "p010le"]]
                         + [(f, (33, 17)) for f in _PLANAR])
def test_pack_unpack_round_trip(pix_fmt: str, size: tuple[int, int]) -> None:
    width, height = size
    layout = layout_for(pix_fmt, width, height, BT709, False)
    assert layout is not None
    top = (1 << (layout.bits + layout.shift)) - 1
    row = np.random.default_rng(0).integers(0, top + 1, layout.length).astype(layout.dtype)
    if layout.shift:
        row = row >> layout.shift << layout.shift
    frame = unpack(row, layout)
    assert (frame.width, frame.height, frame.format.name) == (width, height, pix_fmt)
    assert np.array_equal(_row(frame, layout), row)
    # NV12 converted by swscale to plain planar (no colour change) holds the same samples in the same order.
    if pix_fmt == "nv12":
        planar = layout_for("yuv420p", width, height, BT709, False)
        assert np.array_equal(_row(frame.reformat(format="yuv420p"), planar), row)


@pytest.mark.parametrize("pix_fmt", ["rgb24", "gbrp", "yuva420p", "yuv411p", "gray", "yuv420p10be", "pal8",
                                     "no-such-format"])
def test_formats_left_to_swscale(pix_fmt: str) -> None:
    assert layout_for(pix_fmt, 64, 48, BT709, False) is None


def test_unknown_matrix_is_left_to_swscale() -> None:
    assert layout_for("yuv420p", 64, 48, 8, False) is None  # YCgCo
    with pytest.raises(ValueError, match="matrix"):
        YuvLayout("yuv420p", 4, 4, (1, 1), 8, 8, False)

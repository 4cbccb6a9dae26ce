"""Reading, upscaling and writing still images in every pixel format, with fake networks."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image as PILImage
from PIL import ImageCms, ImageOps

from upscaler.errors import MediaError
from upscaler.image.io import IMAGE_EXTENSIONS, Image, read_image, write_image
from upscaler.image.upscale import upscale_image_array, upscale_image_file


def bench_image(shared: Path, name: str) -> Path:
    """A benchmark image from shared/ (the ``shared`` fixture skips the test when shared/ is absent)."""
    path = shared / "images" / "bench" / name
    if not path.is_file():
        pytest.skip(f"shared data not available: {path}")
    return path


def nearest2(batch: np.ndarray) -> np.ndarray:
    return np.repeat(np.repeat(batch, 2, axis=1), 2, axis=2)


def cubic4(batch: np.ndarray) -> np.ndarray:
    return np.stack([cv2.resize(f, None, fx=4, fy=4, interpolation=cv2.INTER_CUBIC) for f in batch])


def raw(path: Path) -> np.ndarray:
    """What is in the file, undoctored: channel count and dtype as stored."""
    return cv2.imdecode(np.fromfile(path, np.uint8), cv2.IMREAD_UNCHANGED)


def gradient_rgba(h: int = 24, w: int = 40, dtype: type = np.uint8) -> np.ndarray:
    full = np.iinfo(dtype).max
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, full, (h, w, 3), dtype=dtype, endpoint=True)
    alpha = np.linspace(0, full, w, dtype=np.float64)[None, :].repeat(h, 0)
    alpha[: h // 3] = full  # an opaque band, a ramp below
    return np.dstack([rgb, np.rint(alpha).astype(dtype)])


def save_png(path: Path, rgba_or_rgb: np.ndarray) -> Path:
    channels = rgba_or_rgb.shape[2] if rgba_or_rgb.ndim == 3 else 1
    code = {3: cv2.COLOR_RGB2BGR, 4: cv2.COLOR_RGBA2BGRA}.get(channels)
    pixels = cv2.cvtColor(rgba_or_rgb, code) if code is not None else rgba_or_rgb
    ok, buf = cv2.imencode(path.suffix, pixels)
    assert ok
    buf.tofile(path)
    return path


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".partial-" in p.name)


# ------------------------------------------------------------------------------------ real images


def test_real_color_png_upscaled_x2(tmp_path: Path, shared: Path) -> None:
    src = bench_image(shared, "Set5/baby.png")
    result = upscale_image_file(src, tmp_path / "baby_x2.png", nearest2)
    assert result.in_size == (512, 512) and result.out_size == (1024, 1024) and result.notes == []
    out = read_image(tmp_path / "baby_x2.png")
    assert out.rgb.shape == (1024, 1024, 3) and out.alpha is None and not out.gray
    np.testing.assert_array_equal(out.rgb, nearest2(read_image(src).rgb[None])[0])


def test_real_image_x4_to_jpeg(tmp_path: Path, shared: Path) -> None:
    src = bench_image(shared, "Set5/bird.png")
    image = read_image(src)
    upscale_image_file(src, tmp_path / "bird.jpg", cubic4, quality=90)
    out = read_image(tmp_path / "bird.jpg")
    assert (out.height, out.width) == (4 * image.height, 4 * image.width)
    expected = cubic4(image.rgb[None])[0].astype(np.float64)
    assert cv2.PSNR(out.rgb.astype(np.float64), expected) > 35


def test_real_gray_png_stays_single_channel(tmp_path: Path, shared: Path) -> None:
    src = bench_image(shared, "Set14/bridge.png")
    image = read_image(src)
    assert image.gray and image.rgb.shape[2] == 3
    upscale_image_file(src, tmp_path / "bridge.png", nearest2)
    stored = raw(tmp_path / "bridge.png")
    assert stored.ndim == 2 and stored.shape == (2 * image.height, 2 * image.width)
    np.testing.assert_array_equal(stored, nearest2(raw(src)[None, :, :, None])[0, :, :, 0])


# ------------------------------------------------------------------------------------------ alpha


def test_alpha_through_model_matches_bicubic_resize(tmp_path: Path) -> None:
    rgba = gradient_rgba()
    src = save_png(tmp_path / "in.png", rgba)
    upscale_image_file(src, tmp_path / "out.png", cubic4)
    out = read_image(tmp_path / "out.png")
    assert out.alpha is not None and out.alpha.shape == (96, 160)
    expected = cv2.resize(rgba[:, :, 3], (160, 96), interpolation=cv2.INTER_CUBIC)
    assert np.abs(out.alpha.astype(int) - expected).max() <= 1
    assert raw(tmp_path / "out.png").shape == (96, 160, 4)


def test_alpha_bicubic_mode_is_cv2_resize_and_skips_the_model() -> None:
    rgba = gradient_rgba()
    calls: list[int] = []

    def counting(batch: np.ndarray) -> np.ndarray:
        calls.append(1)
        return cubic4(batch)

    image = Image(rgb=rgba[:, :, :3].copy(), alpha=rgba[:, :, 3].copy())
    out = upscale_image_array(image, counting, alpha_mode="bicubic")
    expected = cv2.resize(rgba[:, :, 3], (160, 96), interpolation=cv2.INTER_CUBIC)
    np.testing.assert_array_equal(out.alpha, expected)
    assert len(calls) == 1


def test_opaque_alpha_stays_opaque_without_a_model_pass() -> None:
    calls: list[int] = []

    def counting(batch: np.ndarray) -> np.ndarray:
        calls.append(1)
        return nearest2(batch)

    rgb = np.zeros((5, 7, 3), np.uint16)
    out = upscale_image_array(Image(rgb=rgb, alpha=np.full((5, 7), 65535, np.uint16)), counting)
    assert out.alpha is not None and out.alpha.shape == (10, 14) and (out.alpha == 65535).all()
    assert len(calls) == 1


def test_gray_with_alpha_keeps_both(tmp_path: Path) -> None:
    gray = np.arange(20 * 30, dtype=np.uint8).reshape(20, 30)
    la = np.dstack([gray, np.tile(np.arange(30, dtype=np.uint8) * 8, (20, 1))])
    PILImage.fromarray(la, "LA").save(tmp_path / "la.png")
    image = read_image(tmp_path / "la.png")
    assert image.gray and image.alpha is not None
    upscale_image_file(tmp_path / "la.png", tmp_path / "out.png", nearest2)
    out = read_image(tmp_path / "out.png")
    np.testing.assert_array_equal(out.alpha, nearest2(la[None, :, :, 1:2])[0, :, :, 0])
    np.testing.assert_array_equal(out.rgb[:, :, 0], nearest2(la[None, :, :, :1])[0, :, :, 0])


@pytest.mark.parametrize("ext", [".jpg", ".bmp"])
def test_alpha_flattened_on_white_where_format_has_none(tmp_path: Path, ext: str) -> None:
    rgba = np.zeros((16, 16, 4), np.uint8)
    rgba[:, :8, 3] = 255  # left half opaque black, right half fully transparent
    src = save_png(tmp_path / "in.png", rgba)
    result = upscale_image_file(src, tmp_path / f"out{ext}", nearest2)
    assert len(result.notes) == 1 and "flattened onto white" in result.notes[0]
    stored = raw(tmp_path / f"out{ext}")
    assert stored.shape == (32, 32, 3)
    assert stored[:, :12].max() <= 8 and stored[:, 20:].min() >= 247


# ------------------------------------------------------------------------------------ bit depths


@pytest.mark.parametrize("ext", [".png", ".tif"])
@pytest.mark.parametrize("with_alpha", [False, True])
def test_16bit_stays_16bit(tmp_path: Path, ext: str, with_alpha: bool) -> None:
    rgba = gradient_rgba(dtype=np.uint16)
    pixels = rgba if with_alpha else rgba[:, :, :3]
    src = save_png(tmp_path / f"in{ext}", pixels)
    image = read_image(src)
    assert image.bit_depth == 16 and image.rgb.dtype == np.uint16
    upscale_image_file(src, tmp_path / f"out{ext}", nearest2)
    out = read_image(tmp_path / f"out{ext}")
    assert out.bit_depth == 16 and out.rgb.max() > 255
    np.testing.assert_array_equal(out.rgb, nearest2(pixels[None, :, :, :3])[0])
    if with_alpha:
        assert out.alpha is not None and out.alpha.dtype == np.uint16
        np.testing.assert_array_equal(out.alpha, nearest2(rgba[None, :, :, 3:].repeat(3, 3))[0, :, :, 0])


def test_rgba_tiff_from_other_tools_is_not_premultiplied(tmp_path: Path) -> None:
    # Pillow, GIMP and Photoshop tag TIFF alpha as unassociated (ExtraSamples = 2); OpenCV's 8-bit TIFF reader
    # premultiplied it, so a 50 %-transparent white came back grey and the upscaled output darker.
    rgba = gradient_rgba()
    PILImage.fromarray(rgba, "RGBA").save(tmp_path / "in.tif")
    with PILImage.open(tmp_path / "in.tif") as im:
        assert im.tag_v2.get(338) == (2,)
    image = read_image(tmp_path / "in.tif")
    np.testing.assert_array_equal(image.rgb, rgba[:, :, :3])
    assert image.alpha is not None
    np.testing.assert_array_equal(image.alpha, rgba[:, :, 3])
    upscale_image_file(tmp_path / "in.tif", tmp_path / "out.png", nearest2)
    np.testing.assert_array_equal(read_image(tmp_path / "out.png").rgb, nearest2(rgba[None, :, :, :3])[0])


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_tiff_alpha_is_tagged_as_alpha(tmp_path: Path, dtype: type, capfd: pytest.CaptureFixture[str]) -> None:
    # OpenCV writes RGBA TIFFs without ExtraSamples: libtiff readers then see an unspecified 4th channel
    # ("Defining non-color channels as ExtraSamples"), not transparency.
    rgba = gradient_rgba(dtype=dtype)
    write_image(tmp_path / "out.tif", Image(rgb=rgba[:, :, :3].copy(), alpha=rgba[:, :, 3].copy()))
    with PILImage.open(tmp_path / "out.tif") as im:
        assert im.tag_v2.get(338) == (2,)  # ExtraSamples: one, unassociated alpha
    capfd.readouterr()
    back = read_image(tmp_path / "out.tif")
    assert "ExtraSamples" not in capfd.readouterr().err
    np.testing.assert_array_equal(back.rgb, rgba[:, :, :3])
    assert back.alpha is not None
    np.testing.assert_array_equal(back.alpha, rgba[:, :, 3])
    if dtype == np.uint8:  # and Pillow (not libtiff's premultiplying RGBA path) reads it as written
        with PILImage.open(tmp_path / "out.tif") as im:
            np.testing.assert_array_equal(np.asarray(im.convert("RGBA")), rgba)


def test_16bit_gray_png(tmp_path: Path) -> None:
    gray = (np.arange(32 * 32, dtype=np.uint32).reshape(32, 32) * 64).astype(np.uint16)
    src = save_png(tmp_path / "g16.png", gray)
    upscale_image_file(src, tmp_path / "out.png", nearest2)
    stored = raw(tmp_path / "out.png")
    assert stored.dtype == np.uint16 and stored.ndim == 2
    np.testing.assert_array_equal(stored, np.repeat(np.repeat(gray, 2, 0), 2, 1))


def test_16bit_to_8bit_format_rounds_to_nearest(tmp_path: Path) -> None:
    rgb = np.array([[[0, 128, 129], [257, 385, 386], [65535, 65407, 65406]]], np.uint16)
    notes = write_image(tmp_path / "out.bmp", Image(rgb=rgb))
    assert any("8-bit" in n for n in notes)
    expected = [[[0, 0, 1], [1, 1, 2], [255, 255, 254]]]  # x / 257 rounded: 65407 is 254.502
    np.testing.assert_array_equal(read_image(tmp_path / "out.bmp").rgb, expected)


def test_float_tiff_becomes_16bit(tmp_path: Path) -> None:
    pixels = np.array([[[0.0, 0.5, 1.0], [2.0, -1.0, 0.25]]], np.float32)  # BGR
    ok, buf = cv2.imencode(".tif", pixels)
    assert ok
    buf.tofile(tmp_path / "f.tif")
    image = read_image(tmp_path / "f.tif")
    assert image.bit_depth == 16
    np.testing.assert_array_equal(image.rgb, [[[65535, 32768, 0], [16384, 0, 65535]]])


# ----------------------------------------------------------------------------- formats, metadata


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_matches_pillow(tmp_path: Path, orientation: int) -> None:
    pixels = np.random.default_rng(orientation).integers(0, 255, (6, 10, 3), dtype=np.uint8)
    exif = PILImage.Exif()
    exif[0x0112] = orientation
    PILImage.fromarray(pixels).save(tmp_path / "o.png", exif=exif.tobytes())
    expected = np.asarray(ImageOps.exif_transpose(PILImage.open(tmp_path / "o.png")))
    np.testing.assert_array_equal(read_image(tmp_path / "o.png").rgb, expected)


def test_jpeg_exif_orientation_6_is_rotated_upright(tmp_path: Path) -> None:
    stored = np.zeros((30, 50, 3), np.uint8)
    stored[:10, :10] = 255  # white block top-left as stored: top-right once rotated 90 degrees clockwise
    exif = PILImage.Exif()
    exif[0x0112] = 6
    PILImage.fromarray(stored).save(tmp_path / "photo.jpg", exif=exif.tobytes(), quality=95)
    image = read_image(tmp_path / "photo.jpg")
    assert image.rgb.shape == (50, 30, 3)
    assert image.rgb[:10, -10:].mean() > 240 and image.rgb[-10:, :10].mean() < 15
    upscale_image_file(tmp_path / "photo.jpg", tmp_path / "big.jpg", nearest2)
    with PILImage.open(tmp_path / "big.jpg") as written:
        assert written.size == (60, 100) and written.getexif().get(0x0112, 1) == 1


def test_webp_round_trip_keeps_alpha(tmp_path: Path) -> None:
    rgba = gradient_rgba()
    src = save_png(tmp_path / "in.png", rgba)
    upscale_image_file(src, tmp_path / "out.webp", nearest2, quality=100)
    out = read_image(tmp_path / "out.webp")
    assert out.rgb.shape == (48, 80, 3) and out.alpha is not None
    assert cv2.PSNR(out.alpha, nearest2(rgba[None, :, :, 3:].repeat(3, 3))[0, :, :, 0]) > 40


def test_bmp_round_trip_is_exact(tmp_path: Path) -> None:
    rgb = gradient_rgba()[:, :, :3]
    src = save_png(tmp_path / "in.bmp", rgb)
    assert read_image(src).source_format == "bmp"
    upscale_image_file(src, tmp_path / "out.bmp", nearest2)
    np.testing.assert_array_equal(read_image(tmp_path / "out.bmp").rgb, nearest2(rgb[None])[0])


@pytest.mark.skipif(not hasattr(cv2, "imencodeWithMetadata"), reason="OpenCV < 5 cannot embed ICC profiles")
@pytest.mark.parametrize("ext", [".png", ".jpg"])
def test_icc_profile_kept(tmp_path: Path, ext: str) -> None:
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    PILImage.fromarray(gradient_rgba()[:, :, :3]).save(tmp_path / "in.png", icc_profile=icc)
    upscale_image_file(tmp_path / "in.png", tmp_path / f"out{ext}", nearest2)
    with PILImage.open(tmp_path / f"out{ext}") as written:
        assert written.info.get("icc_profile") == icc


@pytest.mark.parametrize("ext", [".jpg", ".tif"])
def test_cmyk_reads_as_rgb_without_alpha(tmp_path: Path, ext: str) -> None:
    rgb = np.zeros((8, 8, 3), np.uint8)
    rgb[:, :, 0] = 255
    PILImage.fromarray(rgb).convert("CMYK").save(tmp_path / f"c{ext}")
    image = read_image(tmp_path / f"c{ext}")
    assert image.alpha is None and not image.gray
    assert np.abs(image.rgb.astype(int) - rgb).max() <= 8


def test_palette_png_with_transparency_has_alpha(tmp_path: Path) -> None:
    palette = PILImage.fromarray(gradient_rgba()[:, :, :3]).convert("P")
    palette.save(tmp_path / "p.png", transparency=0)
    image = read_image(tmp_path / "p.png")
    assert image.alpha is not None and image.alpha.min() == 0 and image.alpha.max() == 255


def test_extension_list_covers_writable_formats(tmp_path: Path) -> None:
    rgb = gradient_rgba()[:, :, :3]
    for ext in sorted(IMAGE_EXTENSIONS):
        write_image(tmp_path / f"x{ext.upper()}", Image(rgb=rgb))
        assert read_image(tmp_path / f"x{ext.upper()}").rgb.shape == rgb.shape


# ---------------------------------------------------------------------------------------- errors


def check_one_line_error(exc: pytest.ExceptionInfo[MediaError], *words: str) -> None:
    message = str(exc.value)
    assert "\n" not in message
    for word in words:
        assert word in message


def test_missing_and_directory_inputs(tmp_path: Path) -> None:
    with pytest.raises(MediaError) as exc:
        upscale_image_file(tmp_path / "nope.png", tmp_path / "out.png", nearest2)
    check_one_line_error(exc, "nope.png", "no such file")
    with pytest.raises(MediaError) as exc:
        read_image(tmp_path)
    check_one_line_error(exc, "directory")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"hello, I am text\n", ("not an image",)),
        (b"", ("empty",)),
        ("truncated", ("corrupt or truncated", "PNG")),
    ],
)
def test_undecodable_inputs_leave_no_output(tmp_path: Path, content: bytes | str, words: tuple[str]) -> None:
    src = tmp_path / "x.png"
    if content == "truncated":
        src.write_bytes(save_png(tmp_path / "whole.png", gradient_rgba()).read_bytes()[:300])
        (tmp_path / "whole.png").unlink()
    else:
        src.write_bytes(content)
    with pytest.raises(MediaError) as exc:
        upscale_image_file(src, tmp_path / "out" / "y.png", nearest2)
    check_one_line_error(exc, "x.png", *words)
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["x.png"]


def test_unknown_output_extension_fails_before_work(tmp_path: Path) -> None:
    src = save_png(tmp_path / "in.png", gradient_rgba())
    called: list[int] = []
    with pytest.raises(MediaError) as exc:
        upscale_image_file(src, tmp_path / "out.xyz", lambda b: called.append(1) or nearest2(b))
    check_one_line_error(exc, "out.xyz", "unknown image extension")
    with pytest.raises(MediaError):
        write_image(tmp_path / "noext", read_image(src))
    assert called == [] and sorted(p.name for p in tmp_path.iterdir()) == ["in.png"]


def test_output_not_overwritten_unless_asked(tmp_path: Path) -> None:
    src = save_png(tmp_path / "in.png", gradient_rgba())
    dst = tmp_path / "out.png"
    dst.write_bytes(b"old")
    with pytest.raises(MediaError) as exc:
        upscale_image_file(src, dst, nearest2)
    check_one_line_error(exc, "already exists")
    assert dst.read_bytes() == b"old"
    upscale_image_file(src, dst, nearest2, overwrite=True)
    assert read_image(dst).rgb.shape == (48, 80, 3) and leftovers(tmp_path) == []


def test_failing_network_leaves_no_output(tmp_path: Path) -> None:
    src = save_png(tmp_path / "in.png", gradient_rgba())

    def broken(batch: np.ndarray) -> np.ndarray:
        return nearest2(batch).astype(np.float32)

    with pytest.raises(ValueError, match="dtype"):
        upscale_image_file(src, tmp_path / "out.png", broken)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.png"]


def test_bad_quality_and_unwritable_output(tmp_path: Path) -> None:
    image = Image(rgb=np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(MediaError) as exc:
        write_image(tmp_path / "q.jpg", image, quality=0)
    check_one_line_error(exc, "quality")
    (tmp_path / "blocked").write_text("a file where a folder should be")
    with pytest.raises(MediaError) as exc:
        write_image(tmp_path / "blocked" / "out.png", image)
    check_one_line_error(exc, "cannot write", "is a file, not a folder")
    # Deeper under the file too, and refused before the network runs (not "File exists" at the end).
    src = save_png(tmp_path / "src.png", gradient_rgba())

    def never(batch: np.ndarray) -> np.ndarray:
        raise AssertionError("the network ran although the output cannot be written")

    with pytest.raises(MediaError) as exc:
        upscale_image_file(src, tmp_path / "blocked" / "sub" / "out.png", never)
    check_one_line_error(exc, "cannot write", "blocked is a file, not a folder")
    (tmp_path / "src.png").unlink()
    with pytest.raises(MediaError) as exc:
        write_image(tmp_path / "wide.webp", Image(rgb=np.zeros((1, 16384, 3), np.uint8)))
    check_one_line_error(exc, "16383", "16384x1")
    assert leftovers(tmp_path) == []


def test_concurrent_reads_leave_opencv_log_level_as_it_was(shared: Path, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """Two threads decoding at once: the one that waits must not save the other's silenced OpenCV log level
    as the one to restore (the level is process-wide), and the stderr redirect is held by one at a time."""
    import threading
    import time

    import upscaler.image.io as image_io

    src = tmp_path / "small.png"
    cv2.imwrite(str(src), cv2.imread(str(bench_image(shared, "Set5/bird.png")))[:16, :16])
    real = cv2.imdecode
    first_in, first_go, second_go = threading.Event(), threading.Event(), threading.Event()
    inside: list[bool] = []

    def imdecode(data: np.ndarray, flags: int) -> np.ndarray:
        inside.append(image_io._STDERR_LOCK.locked())
        if threading.current_thread().name == "first":
            first_in.set()
            first_go.wait(10)
        else:
            second_go.wait(10)
        return real(data, flags)

    monkeypatch.setattr(image_io.cv2, "imdecode", imdecode)
    level = cv2.utils.logging.getLogLevel()
    read = [threading.Thread(target=read_image, args=(src,), name=name) for name in ("first", "second")]
    read[0].start()
    assert first_in.wait(10)
    read[1].start()
    time.sleep(0.2)  # the second is now waiting for the first
    assert inside == [True]  # the second is not decoding while the first holds fd 2
    first_go.set()
    read[0].join(10)
    second_go.set()
    read[1].join(10)
    assert inside == [True, True]
    assert cv2.utils.logging.getLogLevel() == level

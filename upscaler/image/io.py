"""Read and write still images in every pixel format we meet: 8/16-bit, gray, alpha, EXIF-rotated.

Decisions, so callers know what to expect:

* Pixels come back upright: the EXIF orientation is applied on read and not written back.
* 32-bit float (or half/double) samples, e.g. from float TIFFs, are taken as 0..1, clipped, and
  converted to 16-bit. Signed or 32-bit integer samples are refused with a one-line ``MediaError``.
* Formats without alpha (JPEG, BMP) get the image flattened onto white, as most viewers show it.
* Formats without 16-bit samples (JPEG, WebP, BMP) get 8-bit, rounded to nearest.
* Gray stays one channel, except gray+alpha (written as RGBA with equal channels: OpenCV cannot
  encode two-channel images) and WebP (which has no gray mode).
* The ICC profile is kept for PNG, JPEG and WebP outputs where OpenCV can embed it (OpenCV >= 5).
"""

from __future__ import annotations

import contextlib
import os
import struct
import sys
import tempfile
import threading
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image as PILImage

from ..errors import MediaError
from ..fileio import atomic_output

# Extensions we read in batches and can write; reading also accepts anything OpenCV decodes.
IMAGE_EXTENSIONS: frozenset[str] = frozenset({".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp"})

_FORMAT_BY_EXT = {
    ".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg", ".webp": "webp",
    ".tif": "tiff", ".tiff": "tiff", ".bmp": "bmp",
}
_CV_EXT = {"png": ".png", "jpeg": ".jpg", "webp": ".webp", "tiff": ".tif", "bmp": ".bmp"}
_HAS_ALPHA = {"png", "webp", "tiff"}
_HAS_16BIT = {"png", "tiff"}
_HAS_ICC = {"png", "jpeg", "webp"}
_MAX_SIDE = {"webp": 16383, "jpeg": 65535}  # format limits; OpenCV's own error for them is cryptic
_GRAY_MODES = {"1", "L", "LA", "La", "I", "F"}  # plus every "I;16*" mode
DEFAULT_QUALITY = 95
_WHITE = {8: 255, 16: 65535}


@dataclass
class Image:
    """A decoded still image. ``rgb`` is always 3 channels (gray sources repeat the gray value)."""

    rgb: np.ndarray  # (H, W, 3) uint8 or uint16, RGB order
    alpha: np.ndarray | None = None  # (H, W), same dtype as rgb
    gray: bool = False  # the source had one colour channel: write it back as gray
    bit_depth: int = 8  # 8 or 16, follows rgb.dtype
    source_format: str = ""  # "png", "jpeg", ... ("" when built in memory)
    icc_profile: bytes | None = None

    def __post_init__(self) -> None:
        if self.rgb.ndim != 3 or self.rgb.shape[2] != 3 or self.rgb.dtype not in (np.uint8, np.uint16):
            raise ValueError(f"rgb must be (H, W, 3) uint8/uint16, got {self.rgb.shape} {self.rgb.dtype}")
        if self.alpha is not None and (
            self.alpha.shape != self.rgb.shape[:2] or self.alpha.dtype != self.rgb.dtype
        ):
            raise ValueError(f"alpha {self.alpha.shape} {self.alpha.dtype} does not match rgb")
        self.bit_depth = 16 if self.rgb.dtype == np.uint16 else 8

    @property
    def width(self) -> int:
        return int(self.rgb.shape[1])

    @property
    def height(self) -> int:
        return int(self.rgb.shape[0])


def image_format(path: Path) -> str:
    """The output format a path's extension asks for ("png", "jpeg", ...); MediaError if unknown."""
    fmt = _FORMAT_BY_EXT.get(Path(path).suffix.lower())
    if fmt is None:
        known = ", ".join(sorted(IMAGE_EXTENSIONS))
        raise MediaError(f"{path}: unknown image extension '{Path(path).suffix}' (use one of {known})")
    return fmt


# Bytes written per raw sample byte, roughly, for the free-space estimate (upscaled pixels compress well).
_SIZE_RATIO = {"png": 0.5, "tiff": 0.7, "bmp": 1.0, "jpeg": 0.15, "webp": 0.1}


def estimated_file_size(path: Path | str, width: int, height: int, channels: int = 3, itemsize: int = 1) -> int:
    """A rough size of an image of that shape written to ``path`` (format from its extension), 0 if unknown."""
    fmt = _FORMAT_BY_EXT.get(Path(path).suffix.lower())
    return int(width * height * channels * itemsize * _SIZE_RATIO[fmt]) if fmt else 0


def to_gray(rgb: np.ndarray) -> np.ndarray:
    """One channel from RGB with ITU-R BT.601 luma weights (what OpenCV and JPEG use), dtype kept."""
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)


# --------------------------------------------------------------------------------------------- read


def read_image(path: Path | str) -> Image:
    """Decode an image file into upright RGB (+ alpha); MediaError with one line on any failure."""
    path = Path(path)
    if not path.exists():
        raise MediaError(f"{path}: no such file")
    if path.is_dir():
        raise MediaError(f"{path}: is a directory, not a file")
    try:
        data = np.fromfile(path, dtype=np.uint8)  # not cv2.imread: it chokes on non-ASCII paths on Windows
    except OSError as exc:
        raise MediaError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    if data.size == 0:
        raise MediaError(f"{path}: empty file")

    with _native_stderr_captured() as complaints:
        try:
            arr = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
        except cv2.error:
            arr = None
    sniffed = _sniff_format(data[:16].tobytes())
    if arr is None or arr.size == 0:
        if sniffed:
            reason = _decoder_reason(complaints)
            raise MediaError(f"{path}: corrupt or truncated {sniffed.upper()} image (cannot decode{reason})")
        raise MediaError(f"{path}: not an image (cannot decode)")

    header = _read_header(path)
    if header.tiff_unassociated_alpha and arr.dtype == np.uint8 and arr.ndim == 3 and arr.shape[2] == 4:
        arr = _tiff_straight_rgba(path, arr)
    arr = _to_supported_depth(arr, path)
    arr = _apply_orientation(arr, header.orientation)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]

    alpha = None
    if arr.ndim == 2:
        rgb, gray = cv2.cvtColor(arr, cv2.COLOR_GRAY2RGB), True
    elif arr.shape[2] == 2:  # gray + alpha, as some TIFF decoders give it
        rgb, alpha, gray = cv2.cvtColor(arr[:, :, 0], cv2.COLOR_GRAY2RGB), arr[:, :, 1].copy(), True
    elif arr.shape[2] == 3:
        rgb, gray = cv2.cvtColor(arr, cv2.COLOR_BGR2RGB), header.gray
    elif arr.shape[2] == 4:
        rgb, alpha, gray = cv2.cvtColor(arr, cv2.COLOR_BGRA2RGB), arr[:, :, 3].copy(), header.gray
    else:
        raise MediaError(f"{path}: {arr.shape[2]}-channel images are not supported")
    if alpha is not None and not header.alpha and np.all(alpha == np.iinfo(alpha.dtype).max):
        alpha = None  # OpenCV's filler (e.g. CMYK TIFF comes out BGRA), not the file's
    return Image(
        rgb=rgb,
        alpha=alpha,
        gray=gray,
        source_format=header.format or sniffed,
        icc_profile=header.icc_profile,
    )


@dataclass
class _Header:
    format: str = ""
    gray: bool = False
    orientation: int = 1
    icc_profile: bytes | None = None
    alpha: bool = True  # unknown counts as "may have alpha"
    tiff_unassociated_alpha: bool = False  # ExtraSamples = 2, what Pillow, GIMP and Photoshop write


def _read_header(path: Path) -> _Header:
    """What OpenCV's decoder does not tell us: source colour mode, EXIF orientation, ICC profile.

    Pillow parses only the header here (it decodes lazily). Anything it cannot parse just means
    defaults: OpenCV has already decoded the pixels.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # DecompressionBombWarning: big inputs are normal for us
            with PILImage.open(path) as im:
                header = _Header(
                    format=(im.format or "").lower(),
                    gray=im.mode in _GRAY_MODES or im.mode.startswith("I;16"),
                    icc_profile=im.info.get("icc_profile") or None,
                    alpha="A" in im.mode or "a" in im.mode or "transparency" in im.info,
                )
                if im.format == "TIFF":
                    extra = im.tag_v2.get(338)
                    header.tiff_unassociated_alpha = 2 in (extra if isinstance(extra, tuple) else (extra,))
                # PNG's getexif() decodes the whole image when there is no eXIf before IDAT: skip it.
                if im.format != "PNG" or "exif" in im.info:
                    header.orientation = int(im.getexif().get(0x0112, 1) or 1)
                return header
    except Exception:
        return _Header()


def _tiff_straight_rgba(path: Path, arr: np.ndarray) -> np.ndarray:
    """OpenCV reads 8-bit TIFFs through libtiff's RGBA interface, which premultiplies unassociated alpha:
    every semi-transparent pixel would come back darkened. Pillow gives the stored, straight values."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with PILImage.open(path) as im:
                if im.mode != "RGBA" or im.size != (arr.shape[1], arr.shape[0]):
                    return arr
                return cv2.cvtColor(np.asarray(im), cv2.COLOR_RGBA2BGRA)
    except Exception:
        return arr  # keep OpenCV's pixels rather than fail a file it could decode


def _to_supported_depth(arr: np.ndarray, path: Path) -> np.ndarray:
    if arr.dtype in (np.uint8, np.uint16):
        return arr
    if arr.dtype.kind == "f":
        # Float files hold 0..1 by convention; out-of-range (HDR) values are clipped.
        scaled = np.clip(np.nan_to_num(arr.astype(np.float32)), 0.0, 1.0) * 65535.0
        return np.rint(scaled).astype(np.uint16)
    raise MediaError(f"{path}: {arr.dtype} samples are not supported (use 8/16-bit or float)")


def _apply_orientation(arr: np.ndarray, orientation: int) -> np.ndarray:
    """Turn stored pixels upright per EXIF tag 0x0112 (1 = as stored, 2-8 = flips and rotations)."""
    ops = {
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1],
        5: lambda a: a.swapaxes(0, 1),
        6: lambda a: np.rot90(a, k=-1),  # 90 degrees clockwise
        7: lambda a: a.swapaxes(0, 1)[::-1, ::-1],
        8: lambda a: np.rot90(a, k=1),
    }
    op = ops.get(orientation)
    return arr if op is None else np.ascontiguousarray(op(arr))


_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"\xff\xd8\xff", "jpeg"),
    (b"II*\x00", "tiff"),
    (b"MM\x00*", "tiff"),
    (b"BM", "bmp"),
    (b"GIF8", "gif"),
)


def _sniff_format(head: bytes) -> str:
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    return next((fmt for magic, fmt in _SIGNATURES if head.startswith(magic)), "")


@contextlib.contextmanager
def _quiet_opencv() -> Iterator[None]:
    """OpenCV logs decoder complaints to stderr; our MediaError already says it in one line."""
    logging = cv2.utils.logging
    previous = logging.getLogLevel()
    logging.setLogLevel(logging.LOG_LEVEL_SILENT)
    try:
        yield
    finally:
        logging.setLogLevel(previous)


_STDERR_LOCK = threading.Lock()
_CAPTURE_LIMIT = 64 * 1024


@contextlib.contextmanager
def _native_stderr_captured() -> Iterator[list[str]]:
    """Collect what C libraries write straight to file descriptor 2 during the block (libpng's "libpng error:
    bad adaptive filter value", libtiff's warnings), with OpenCV's own log silenced: neither reaches the user,
    and our MediaError must stay the only line. The lines are in the yielded list after the block.

    Keep the block to the one OpenCV call. fd 2 and OpenCV's log level belong to the whole process: the lock
    keeps our own captures from interleaving (and one from restoring a level another had silenced), but what
    any other thread writes to stderr meanwhile (a warning, a progress bar, a C library) lands in the sink.
    """
    lines: list[str] = []
    with tempfile.TemporaryFile() as sink:
        with _STDERR_LOCK, _quiet_opencv():
            try:
                sys.stderr.flush()
                saved = os.dup(2)
            except (OSError, ValueError, AttributeError):  # no usable fd 2: nothing to protect
                yield lines
                return
            try:
                os.dup2(sink.fileno(), 2)
                try:
                    yield lines
                finally:
                    os.dup2(saved, 2)
            finally:
                os.close(saved)
        sink.seek(0)  # after the lock: the sink is this call's own
        lines.extend(sink.read(_CAPTURE_LIMIT).decode("utf-8", "replace").splitlines())


def _decoder_reason(complaints: list[str]) -> str:
    """``": bad adaptive filter value"`` from the decoder's captured error lines, or ""."""
    for line in complaints:
        text = line.strip()
        for prefix in ("libpng error:", "libpng warning:", "Corrupt JPEG data:", "Premature end of JPEG file"):
            if text.startswith(prefix):
                detail = text[len(prefix):].strip() if prefix.endswith(":") else text
                return f": {detail}" if detail else ""
    return ""


# -------------------------------------------------------------------------------------------- write


def write_image(path: Path | str, image: Image, quality: int | None = None) -> list[str]:
    """Encode ``image`` in the format the extension names, atomically; replaces an existing file.

    ``quality`` (1-100, default 95) applies to JPEG and WebP. Returns one-line notes on what the
    format could not hold (alpha flattened onto white, 16-bit rounded to 8-bit); empty when lossless.
    """
    path = Path(path)
    fmt = image_format(path)
    if quality is not None and not 1 <= quality <= 100:
        raise MediaError(f"{path}: quality must be between 1 and 100, got {quality}")
    limit = _MAX_SIDE.get(fmt)
    if limit is not None and max(image.width, image.height) > limit:
        raise MediaError(
            f"{path}: {fmt.upper()} allows at most {limit} pixels a side, this image is "
            f"{image.width}x{image.height} (use PNG or TIFF)"
        )
    notes: list[str] = []
    rgb, alpha = image.rgb, image.alpha
    full = _WHITE[image.bit_depth]

    if alpha is not None and fmt not in _HAS_ALPHA:
        if not np.all(alpha == full):
            rgb = _flatten_on_white(rgb, alpha, full)
            notes.append(f"{path}: {fmt.upper()} has no alpha channel; transparency flattened onto white")
        alpha = None
    if rgb.dtype == np.uint16 and fmt not in _HAS_16BIT:
        rgb = _to_8bit(rgb)
        alpha = None if alpha is None else _to_8bit(alpha)
        notes.append(f"{path}: {fmt.upper()} holds 8 bits per channel; 16-bit samples rounded to 8-bit")

    if image.gray and alpha is None:
        pixels = to_gray(rgb)
    elif alpha is not None:
        pixels = np.concatenate([cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), alpha[:, :, None]], axis=2)
    else:
        pixels = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)

    params: list[int] = []
    if fmt == "jpeg":
        params = [cv2.IMWRITE_JPEG_QUALITY, quality or DEFAULT_QUALITY]
    elif fmt == "webp":
        params = [cv2.IMWRITE_WEBP_QUALITY, quality or DEFAULT_QUALITY]
    buf = _encode(path, fmt, pixels, params, _icc_for(image.icc_profile, fmt, pixels))
    if fmt == "tiff" and pixels.ndim == 3 and pixels.shape[2] == 4:
        buf = _tiff_mark_alpha(buf)
    try:
        with atomic_output(path) as tmp:
            tmp.write_bytes(memoryview(buf))
    except OSError as exc:  # atomic_output creates the folder outside its own error handling
        raise MediaError(f"{path}: cannot write ({exc.strerror or exc})") from exc
    return notes


def _encode(path: Path, fmt: str, pixels: np.ndarray, params: list[int], icc: bytes | None) -> np.ndarray:
    ext = _CV_EXT[fmt]
    try:
        with _native_stderr_captured():
            if icc is not None:
                meta = [np.frombuffer(icc, dtype=np.uint8)]
                ok, buf = cv2.imencodeWithMetadata(ext, pixels, [cv2.IMAGE_METADATA_ICCP], meta, params)
            else:
                ok, buf = cv2.imencode(ext, pixels, params)
    except cv2.error as exc:
        reason = str(exc).strip().splitlines()[-1]
        raise MediaError(f"{path}: cannot encode as {fmt.upper()} ({reason})") from exc
    if not ok:
        raise MediaError(f"{path}: cannot encode as {fmt.upper()}")
    return buf


def _tiff_mark_alpha(buf: np.ndarray) -> np.ndarray:
    """Tag a 4-sample TIFF's 4th sample as unassociated alpha: OpenCV writes no ExtraSamples tag, so
    libtiff-based readers (GIMP, ImageMagick...) take it for an unspecified extra channel, not alpha.

    The first IFD is copied to the end of the file with tag 338 added and the header pointed at the copy;
    the pixel data and every offset stay as they are. Anything unexpected leaves the bytes unchanged.
    """
    data = buf.tobytes()
    order = {b"II*\x00": "<", b"MM\x00*": ">"}.get(data[:4])
    if order is None:
        return buf  # BigTIFF, or not a TIFF
    (ifd,) = struct.unpack_from(order + "I", data, 4)
    if ifd < 8 or ifd + 2 > len(data):
        return buf
    (count,) = struct.unpack_from(order + "H", data, ifd)
    end = ifd + 2 + 12 * count
    if end + 4 > len(data):
        return buf
    entries = [data[ifd + 2 + 12 * i : ifd + 14 + 12 * i] for i in range(count)]
    if any(struct.unpack_from(order + "H", e)[0] == 338 for e in entries):
        return buf
    entries.append(struct.pack(order + "HHIH", 338, 3, 1, 2) + b"\x00\x00")  # SHORT 2: unassociated alpha
    entries.sort(key=lambda e: struct.unpack_from(order + "H", e)[0])
    pad = b"\x00" * (len(data) % 2)  # IFDs start on a word boundary
    table = struct.pack(order + "H", count + 1) + b"".join(entries) + data[end : end + 4]
    out = data[:4] + struct.pack(order + "I", len(data) + len(pad)) + data[8:] + pad + table
    return np.frombuffer(out, dtype=np.uint8)


def _icc_for(icc: bytes | None, fmt: str, pixels: np.ndarray) -> bytes | None:
    """The profile to embed, if the format and OpenCV can carry it and its colour space fits."""
    if not icc or len(icc) < 20 or fmt not in _HAS_ICC or not hasattr(cv2, "imencodeWithMetadata"):
        return None
    one_channel = pixels.ndim == 2 and fmt != "webp"  # WebP stores gray as RGB
    wanted = b"GRAY" if one_channel else b"RGB "
    return icc if icc[16:20] == wanted else None


def _flatten_on_white(rgb: np.ndarray, alpha: np.ndarray, full: int) -> np.ndarray:
    a = alpha.astype(np.float32)[:, :, None] / full
    out = rgb.astype(np.float32) * a + full * (1.0 - a)
    return np.rint(out).astype(rgb.dtype)


def _to_8bit(arr: np.ndarray) -> np.ndarray:
    """65535 -> 255 with round-to-nearest (x / 257), not truncation (x >> 8)."""
    return ((arr.astype(np.uint32) + 128) // 257).astype(np.uint8)

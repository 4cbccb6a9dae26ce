"""HR → LR degradations applied per sample (numpy/cv2, so they run inside DataLoader workers).

A degradation maps an (H,W,3) RGB patch, uint8 or float in [0,1], plus a numpy Generator to a float32
(H',W',3) patch in [0,1] quantised to 8-bit levels. All randomness comes from the Generator, so the
same seed gives the same LR. Compose with ``Chain``, e.g.
``Chain((RealESRGANDegradation(scale=4), VideoCodecDegradation(probability=0.3)))``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from typing import Protocol

import av
import cv2
import numpy as np
import torch

from upscaler.device.cpu_memory import deterministic_heap
from upscaler.resize import bicubic_downscale
from upscaler.video.yuv import rgb_to_yuv, yuv_to_rgb
from upscaler.video.yuv_layout import YuvLayout

from .kernels import KernelSampler, random_sinc


class Degradation(Protocol):
    def __call__(self, img: np.ndarray, rng: np.random.Generator) -> np.ndarray: ...


def to_float(img: np.ndarray) -> np.ndarray:
    """float32 in [0,1] from uint8 (scaled) or any float array (cast)."""
    if img.dtype == np.uint8:
        return img.astype(np.float32) / 255.0
    return img.astype(np.float32, copy=False)


def to_uint8(img: np.ndarray) -> np.ndarray:
    if img.dtype == np.uint8:
        return img
    return (np.clip(img, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def quantise(img: np.ndarray) -> np.ndarray:
    """Clip to [0,1] and round to 8-bit levels: the LR a model sees at inference is 8-bit."""
    return np.round(np.clip(img, 0.0, 1.0) * 255.0).astype(np.float32) / 255.0


# --- single steps ---------------------------------------------------------------------------------

RESIZE_MODES = (cv2.INTER_AREA, cv2.INTER_LINEAR, cv2.INTER_CUBIC)


def blur(img: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    # Reflect borders: a patch edge is not an image edge, zero padding would darken it.
    return cv2.filter2D(img, -1, kernel, borderType=cv2.BORDER_REFLECT_101)


def resize(img: np.ndarray, height: int, width: int, mode: int) -> np.ndarray:
    return cv2.resize(img, (max(1, width), max(1, height)), interpolation=mode)


def add_gaussian_noise(img: np.ndarray, sigma: float, gray: bool, rng: np.random.Generator) -> np.ndarray:
    """Additive Gaussian noise, ``sigma`` in [0,1] units; gray noise is the same on all channels."""
    shape = (*img.shape[:2], 1) if gray else img.shape
    return np.clip(img + rng.normal(0.0, sigma, shape).astype(np.float32), 0.0, 1.0)


def add_poisson_noise(img: np.ndarray, scale: float, gray: bool, rng: np.random.Generator) -> np.ndarray:
    """Signal-dependent (shot) noise: Poisson counts at 8-bit levels, the deviation scaled by ``scale``."""
    levels = 255.0
    src = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)[..., None] if gray else img
    noisy = rng.poisson(np.clip(src, 0.0, 1.0) * levels) / levels
    return np.clip(img + ((noisy - src) * scale).astype(np.float32), 0.0, 1.0)


def jpeg_compress(img: np.ndarray, quality: int) -> np.ndarray:
    """Round-trip through an in-memory JPEG at ``quality`` (libjpeg via cv2, 4:2:0 chroma)."""
    # cv2 treats the channels as BGR when converting to YCbCr, so hand it BGR.
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(to_uint8(img), cv2.COLOR_RGB2BGR),
                           [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return to_float(cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB))


# --- degradations ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class BicubicDegradation:
    """The classic SR degradation: antialiased bicubic ÷scale (the same resize validation uses), 8-bit LR."""

    scale: int

    def __call__(self, img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(to_float(img))).permute(2, 0, 1)[None]
        lr = bicubic_downscale(x, self.scale)[0].permute(1, 2, 0).numpy()
        return quantise(lr)


@dataclass(frozen=True)
class DegradationRound:
    """Parameters of one blur → resize → noise → JPEG round (defaults: Real-ESRGAN's first round)."""

    kernel: KernelSampler = field(default_factory=KernelSampler)
    blur_prob: float = 1.0
    resize_probs: tuple[float, float, float] = (0.2, 0.7, 0.1)  # up, down, keep
    resize_range: tuple[float, float] = (0.15, 1.5)
    gaussian_noise_prob: float = 0.5  # otherwise Poisson
    noise_range: tuple[float, float] = (1.0, 30.0)  # Gaussian sigma, 8-bit units
    poisson_scale_range: tuple[float, float] = (0.05, 3.0)
    gray_noise_prob: float = 0.4
    jpeg_range: tuple[int, int] = (30, 95)

    def resize_factor(self, rng: np.random.Generator) -> float:
        direction = rng.choice(3, p=np.asarray(self.resize_probs) / sum(self.resize_probs))
        if direction == 0:
            return rng.uniform(1.0, self.resize_range[1])
        if direction == 1:
            return rng.uniform(self.resize_range[0], 1.0)
        return 1.0

    def noise(self, img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        gaussian = rng.random() < self.gaussian_noise_prob
        gray = rng.random() < self.gray_noise_prob
        if gaussian:
            return add_gaussian_noise(img, rng.uniform(*self.noise_range) / 255.0, gray, rng)
        return add_poisson_noise(img, rng.uniform(*self.poisson_scale_range), gray, rng)

    def jpeg(self, img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return jpeg_compress(img, int(rng.integers(self.jpeg_range[0], self.jpeg_range[1] + 1)))


def _second_round_default() -> DegradationRound:
    return DegradationRound(
        kernel=KernelSampler(sigma_range=(0.2, 1.5)),
        blur_prob=0.8,
        resize_probs=(0.3, 0.4, 0.3),
        resize_range=(0.3, 1.2),
        noise_range=(1.0, 25.0),
        poisson_scale_range=(0.05, 2.5),
    )


@dataclass(frozen=True)
class RealESRGANDegradation:
    """Real-ESRGAN's second-order degradation (Wang et al. 2021), with the paper's defaults.

    Round 1 on the HR patch: blur, random resize, noise, JPEG. Round 2: blur (sometimes), random resize
    relative to the target LR size, noise. Then, in random order: [resize to HR/scale + sinc filter (with
    ``final_sinc_prob``)] and JPEG with round 2's quality range.
    """

    scale: int = 4
    first: DegradationRound = field(default_factory=DegradationRound)
    second: DegradationRound = field(default_factory=_second_round_default)
    final_sinc_prob: float = 0.8

    def __call__(self, img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        hr = to_float(img)
        h, w = hr.shape[:2]
        if h % self.scale or w % self.scale:
            raise ValueError(f"patch {w}x{h} is not a multiple of the scale {self.scale}")
        out_h, out_w = h // self.scale, w // self.scale

        x = blur(hr, self.first.kernel(rng)) if rng.random() < self.first.blur_prob else hr
        f = self.first.resize_factor(rng)
        x = resize(x, int(h * f), int(w * f), int(rng.choice(RESIZE_MODES)))
        x = self.first.jpeg(self.first.noise(x, rng), rng)

        if rng.random() < self.second.blur_prob:
            x = blur(x, self.second.kernel(rng))
        f = self.second.resize_factor(rng)
        x = resize(x, int(out_h * f), int(out_w * f), int(rng.choice(RESIZE_MODES)))
        x = self.second.noise(x, rng)

        # The last resize can come before or after the final JPEG; real pipelines do both.
        sinc_kernel = random_sinc(rng) if rng.random() < self.final_sinc_prob else None
        mode = int(rng.choice(RESIZE_MODES))
        if rng.random() < 0.5:
            x = resize(x, out_h, out_w, mode)
            x = blur(x, sinc_kernel) if sinc_kernel is not None else x
            x = self.second.jpeg(x, rng)
        else:
            x = self.second.jpeg(x, rng)
            x = resize(x, out_h, out_w, mode)
            x = blur(x, sinc_kernel) if sinc_kernel is not None else x
        return quantise(x)


@dataclass(frozen=True)
class VideoCodecDegradation:
    """Re-encode an LR patch with H.264 (libx264, yuv420p) at a random CRF, as real video delivery does.

    An LR → LR step: put it after an HR → LR degradation in a ``Chain``. The patch is encoded inside a
    short sequence of slightly shifted copies so the frame that is kept is a predicted (P/B) frame with
    motion-compensation artefacts, not just an intra frame.
    """

    crf_range: tuple[int, int] = (18, 38)
    preset: str = "veryfast"
    probability: float = 1.0
    frames: int = 3  # sequence length; the kept frame is never the first (intra) one
    max_shift: float = 1.5  # pixels of sub-pixel jitter between frames

    def __post_init__(self) -> None:
        if self.frames < 2:
            raise ValueError("frames must be at least 2 so the kept frame is predicted")

    def __call__(self, img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if rng.random() >= self.probability:
            return to_float(img)
        crf = int(rng.integers(self.crf_range[0], self.crf_range[1] + 1))
        keep = int(rng.integers(1, self.frames))
        src = to_uint8(img)
        h, w = src.shape[:2]
        # yuv420p needs even sizes: reflect-pad one row/column, crop it off after decoding.
        padded = np.pad(src, ((0, h % 2), (0, w % 2), (0, 0)), mode="reflect")
        seq = [padded if i == keep else _shift(padded, rng.uniform(-self.max_shift, self.max_shift, 2))
               for i in range(self.frames)]
        decoded = encode_decode_h264(seq, crf, self.preset)[keep]
        return to_float(decoded[:h, :w])


def _shift(img: np.ndarray, offset: np.ndarray) -> np.ndarray:
    m = np.array([[1.0, 0.0, offset[0]], [0.0, 1.0, offset[1]]], np.float32)
    return cv2.warpAffine(img, m, (img.shape[1], img.shape[0]), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REFLECT_101)


def encode_decode_h264(frames: list[np.ndarray], crf: int, preset: str = "veryfast") -> list[np.ndarray]:
    """Encode uint8 RGB frames (even sizes) with libx264 and decode them back, all in memory.

    Raw codec contexts rather than a container: the elementary stream carries SPS/PPS in-band, so no
    muxing is needed and a round trip of a few small frames takes milliseconds.
    """
    h, w = frames[0].shape[:2]
    enc = av.CodecContext.create("libx264", "w")
    enc.width, enc.height, enc.pix_fmt = w, h, "yuv420p"
    enc.time_base, enc.framerate = Fraction(1, 25), Fraction(25)
    enc.options = {"crf": str(crf), "preset": preset}
    enc.thread_count = 1  # DataLoader workers already use the cores
    dec = av.CodecContext.create("h264", "r")
    dec.thread_count = 1
    packets = []
    with deterministic_heap():  # x264 reads memory it never wrote; see deterministic_heap
        for i, f in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(_rgb_to_yuv420p(f), format="yuv420p")
            vf.pts = i
            packets += enc.encode(vf)
        packets += enc.encode(None)
    out = [d for p in packets for d in dec.decode(p)] + list(dec.decode(None))
    out.sort(key=lambda d: d.pts)
    if len(out) != len(frames):
        raise RuntimeError(f"H.264 round trip returned {len(out)} frames for {len(frames)}")
    return [_yuv420p_to_rgb(d.to_ndarray()) for d in out]


_BT601 = 6  # AVCOL_SPC_SMPTE170M: what swscale assumes for an untagged stream like this one, both ways


def _layout(w: int, h: int) -> YuvLayout:
    return YuvLayout("yuv420p", w, h, (1, 1), 8, _BT601, False)


def _rgb_to_yuv420p(rgb: np.ndarray) -> np.ndarray:
    """uint8 RGB (H,W,3) to yuv420p planes ((3H/2, W) uint8) with upscaler.video.yuv, the inverse of decode."""
    h, w = rgb.shape[:2]
    x = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None].float() / 255
    return rgb_to_yuv(x, _layout(w, h))[0].numpy().reshape(h * 3 // 2, w)


def _yuv420p_to_rgb(planes: np.ndarray) -> np.ndarray:
    """A decoded yuv420p frame ((3H/2, W) uint8) to RGB with upscaler.video.yuv, not swscale: swscale's yuv420p → rgb24
    darkens textured frames by about one code value on average (flat colours come back exact), and its rgb24 →
    yuv420p does not quite invert our decode (blue came back +0.9 on average), so both directions are ours and a
    model does not learn a colour cast the codec did not cause."""
    h, w = planes.shape[0] * 2 // 3, planes.shape[1]
    rgb = yuv_to_rgb(torch.from_numpy(np.ascontiguousarray(planes)).reshape(1, -1), _layout(w, h))[0]
    return (rgb.permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)


@dataclass(frozen=True)
class Chain:
    """Apply degradations in order, e.g. an HR → LR degradation then LR → LR codec artefacts."""

    steps: tuple[Degradation, ...]

    def __call__(self, img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        for step in self.steps:
            img = step(img, rng)
        return to_float(img)

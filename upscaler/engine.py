"""The ``Upscaler``: a loaded network on a device, run in tiles, on tensors, arrays, image files and videos."""

from __future__ import annotations

import copy
import functools
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
import torch

from .device.cpu_memory import keep_freed_memory
from .device.samples import as_torch_ready, to_float, to_samples
from .device.stages import StageTimer, stage
from .device.transfer import HostTransfer, PendingDownload
from .errors import ModelLoadError, UpscalerError, warn_if_short_of_space
from .models.blend import blend_summary, load_blended
from .models.loading import LoadedModel
from .resize import bicubic_resize
from .tiling import upscale_tiled
from .video.yuv import rgb_to_yuv, yuv_to_rgb
from .video.yuv_layout import YuvLayout

if TYPE_CHECKING:
    from .image.upscale import ImageResult
    from .video import EncodeOptions, VideoResult
    from .video.probe import VideoInfo

Precision = Literal["auto", "fp32", "fp16", "bf16"]
Fetch = Callable[[], np.ndarray]
ColourConvert = Literal["auto", "device", "swscale"]

# CPU tile side, from `python scripts/tile_sweep.py` (compact x4, 2 cores, 2 torch threads, overlap 32, freed
# memory kept, see cpu_memory.py), fps. fp32: 320x180 whole frame 4.31, tile 256 3.62; 640x360 whole 1.01, tile
# 640 0.99, 384 0.92, 256 0.78; 1280x720 whole 0.171, tile 640 0.147, 384 0.149. bf16 on AMX (channels_last):
# 640x360 whole 2.95, tile 640 2.88, 384 2.48, 256 1.93; 1280x720 whole 0.63, 640 0.65, 384 0.58, 256 0.54. A
# tile costs what its 32-pixel context recomputes, and the whole frame was fastest or even at every size: tile
# only frames bigger than 1280 a side, which bounds memory (a 64-channel map of a 1280x1280 window is 420 MB).
CPU_TILE = 1280
MIN_TILE = 32


class Upscaler:
    """Upscale images, frames and videos with a super-resolution network.

    >>> up = Upscaler()                       # shipped compact x4 model, CPU or CUDA picked automatically
    >>> up.upscale_video("in.mp4", "in_x4.mp4")
    """

    def __init__(
        self,
        model: str | os.PathLike[str] | LoadedModel | None = "default",
        *,
        blend: str | os.PathLike[str] | LoadedModel | None = None,
        strength: float | None = None,
        scale: int | None = None,
        device: str = "auto",
        precision: Precision = "auto",
        tile: int | None = None,
        tile_overlap: int = 32,
        outscale: float | None = None,
        batch_size: int | None = None,
        compile: bool = False,
        colour_convert: ColourConvert = "auto",
    ) -> None:
        # How to build this Upscaler again in another process (``--workers``: one per Ray actor).
        self.spec = {"model": model, "blend": blend, "strength": strength, "scale": scale, "device": device,
                     "precision": precision, "tile": tile, "tile_overlap": tile_overlap, "outscale": outscale,
                     "batch_size": batch_size, "compile": compile, "colour_convert": colour_convert}
        # With a strength, ``model`` is blended with ``blend`` (or its zoo partner) here, once, in fp32, before
        # the precision cast below: one network, at one network's cost (see blend.py). A model name may carry its
        # own default strength (the shipped default runs at 0.8: higher PSNR everywhere at the same damage gain).
        self.loaded = load_blended(model, blend=blend, strength=strength, scale=scale)
        if scale is not None and model not in (None, "default") and scale != self.loaded.scale:
            raise ModelLoadError(f"{self.loaded.source}: is a x{self.loaded.scale} model, not x{scale} "
                                 "(use --outscale to resize its output)")
        if self.loaded.in_channels != 3 or self.loaded.out_channels != 3:
            raise ModelLoadError(f"{self.loaded.source}: {self.loaded.in_channels}->{self.loaded.out_channels} "
                                 "channel models are not supported (RGB models only)")
        self.device = _pick_device(device)
        if self.device.type == "cpu":
            keep_freed_memory()  # no page faults per layer: up to 2x faster on big frames
        self.dtype = _pick_dtype(precision, self.device)
        self._auto_bf16 = precision == "auto" and self.dtype == torch.bfloat16
        self.scale = self.loaded.scale
        self.outscale = float(outscale) if outscale else float(self.scale)
        if self.outscale <= 0:
            raise UpscalerError(f"outscale must be positive, got {outscale}")
        self.tile_overlap = tile_overlap
        self.tile = self._auto_tile() if tile is None else tile
        self.batch_size = batch_size or (4 if self.device.type == "cuda" else 1)
        # channels_last on the CPU too: oneDNN's fast convolutions want it (fp32 1.0-1.6x, bf16 4x on AMX).
        # The fp32 weights, kept (on the host) before a half-precision cast rounds them: the fp32 fallbacks
        # (overflowing tiles, deep samples under the automatic CPU bf16) must run the real model.
        self._fp32_master = copy.deepcopy(self.loaded.module).float() if self.dtype != torch.float32 else None
        self.net = self.loaded.module.to(self.device, self.dtype).eval().to(memory_format=torch.channels_last)
        if self.device.type == "cuda":
            # Tile shapes repeat frame after frame: let cuDNN pick the fastest convolution per shape once.
            torch.backends.cudnn.benchmark = True
        self._eager = self.net
        self._fp32_net: torch.nn.Module | None = None  # made on the first overflow or >8-bit batch (net_for)
        if compile:
            # Fixed tile sizes make shapes repeat, so each distinct tile shape compiles once.
            self.net = torch.compile(self.net, dynamic=False)
        self.compiled = compile
        if colour_convert not in ("auto", "device", "swscale"):
            raise UpscalerError(f"unknown colour conversion {colour_convert!r} (auto, device, swscale)")
        # Video YUV <-> RGB: in torch on the model's device, or in swscale on the decode/encode threads. On
        # CUDA the device is faster and halves the copies; on the CPU both compete for the same cores, and
        # swscale's runs beside the model on the I/O threads (measured: see the README's Speed section).
        self.colour_on_device = colour_convert == "device" or (colour_convert == "auto"
                                                               and self.device.type == "cuda")
        # Set by `upscale bench` to time the stages; None costs nothing.
        self.timer: StageTimer | None = None
        self._transfer = HostTransfer(self.device) if self.device.type == "cuda" else None
        # (width, height, itemsize) -> the most frames checked to fit: a video checks once, up front, so a dip
        # in available memory cannot refuse a long run halfway.
        self._memory_checked: dict[tuple[int, int, int], int] = {}

    # -- tensors -------------------------------------------------------------------------------------------

    @torch.inference_mode()
    def upscale_tensor(self, x: torch.Tensor, *, bits: int = 8) -> torch.Tensor:
        """(N,3,H,W) float in [0,1] → (N,3,H',W') float32 in [0,1] on the model's device, H' = round(H*outscale).

        ``bits``: the depth of the samples ``x`` came from; deeper than 8 runs in fp32 under the automatic
        CPU bf16 (``net_for``)."""
        return self._upscale(x, bits=bits)[0]

    def _upscale(self, x: torch.Tensor, *, defer_check: bool = False, check_tiles: bool = False,
                 bits: int = 8) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The output and, with ``defer_check`` in fp16/bf16, a device flag "every value finite" for the caller
        to read later (reading it waits for the GPU); otherwise a non-finite batch is redone here. ``bits``: the
        samples' depth, which picks the network (``net_for``)."""
        x = x.to(self.device, non_blocking=True)
        h, w = x.shape[-2:]
        net, dtype = self.net_for(bits)
        finite = None
        while True:
            try:
                out = self._tiled(x, net, dtype, check_tiles)
                if dtype != torch.float32 and not check_tiles:
                    finite = torch.isfinite(out).all()
                    if not defer_check and not finite:
                        # fp16 overflow somewhere (NaN/inf survive the blending): redo this batch checking each
                        # tile. Checking once per batch keeps the fast path free of a GPU sync per tile.
                        out, finite = self._tiled(x, net, dtype, True), None
                break
            except torch.OutOfMemoryError:
                # Retry the frame with smaller tiles rather than fail: free memory varies during a run.
                if self.device.type != "cuda":
                    raise
                torch.cuda.empty_cache()
                current = self.tile if self.tile > 0 else max(h, w)
                if current <= MIN_TILE:
                    raise UpscalerError("out of GPU memory even with the smallest tile") from None
                self.tile = max(MIN_TILE, current // 2)
        out = out.float()  # an untiled half-precision output would round 1.0 * 65535 up to 65536 (bf16)
        target = self.output_size(w, h)[::-1]
        if target != tuple(out.shape[-2:]):
            out = bicubic_resize(out, target)
        return out.clamp_(0, 1), finite

    def net_for(self, bits: int) -> tuple[torch.nn.Module, torch.dtype]:
        """The network and dtype that run samples of ``bits`` bits: ``net``/``dtype``, except that under the
        automatic CPU bf16 samples deeper than 8 bits run in fp32. bf16 keeps 8 significant bits, so its
        output's steps near white are one 8-bit code: 10- and 16-bit frames would come out banded."""
        if bits > 8 and self._auto_bf16:
            return self._fp32(), torch.float32
        return self.net, self.dtype

    def _tiled(self, x: torch.Tensor, net: torch.nn.Module, dtype: torch.dtype, check_tiles: bool) -> torch.Tensor:
        with stage(self.timer, "stitch", exclude="model"):
            return upscale_tiled(functools.partial(self._run_tile, net, dtype, check_tiles), x, self.scale,
                                 self.tile, self.tile_overlap, batch_tiles=self.device.type == "cuda")

    def _run_tile(self, net: torch.nn.Module, dtype: torch.dtype, check: bool, tile: torch.Tensor) -> torch.Tensor:
        with stage(self.timer, "model"):
            inp = tile.to(dtype).contiguous(memory_format=torch.channels_last)
            out = net(inp)
            if check and not torch.isfinite(out).all():
                # fp16 overflow gives inf/NaN (black or white blotches); redo this tile in fp32, on a separate
                # fp32 copy so the running (possibly compiled) fp16 net is never touched.
                out = self._fp32()(tile.float().contiguous(memory_format=torch.channels_last))  # unrounded input
            return out

    def _fp32(self) -> torch.nn.Module:
        if self._fp32_net is None:
            # An fp32 Upscaler's own eager net is already the fp32 model.
            master = self._fp32_master
            self._fp32_net = self._eager if master is None else \
                master.to(self.device, torch.float32).eval().to(memory_format=torch.channels_last)
        return self._fp32_net

    # -- frames: host arrays through the device --------------------------------------------------------------

    def _submit(self, frames: np.ndarray, to_rgb: Callable[[torch.Tensor], torch.Tensor],
                from_rgb: Callable[[torch.Tensor], torch.Tensor]) -> Fetch:
        """Queue ``frames`` (integer samples, first axis frames) through the network, ``self.batch_size`` at a
        time; the returned function waits for the result and returns it, in the same dtype.

        ``to_rgb`` maps the uploaded samples to (N,3,H,W) float RGB on the device, ``from_rgb`` the network's
        output back to integer samples (int16 carrying uint16). On CUDA nothing here waits for the GPU, so the
        caller can prepare and queue the next batch while this one runs; on the CPU the work is done at once.
        """
        if len(frames) == 0:
            raise UpscalerError("no frames to upscale")
        bits = 8 * frames.dtype.itemsize  # 16 for deeper samples: all net_for needs to know
        jobs: list[tuple[np.ndarray, torch.Tensor | None, PendingDownload | np.ndarray]] = []

        def device_rgb(chunk: np.ndarray) -> torch.Tensor:
            # Pinned buffer, non-blocking copy on a side stream; int -> float on the device.
            x = self._transfer.upload(chunk) if self._transfer is not None else torch.from_numpy(chunk)
            return to_rgb(x)

        with torch.inference_mode():
            for i in range(0, len(frames), self.batch_size):
                with stage(self.timer, "to_tensor"):
                    chunk = as_torch_ready(np.ascontiguousarray(frames[i : i + self.batch_size]))
                    rgb = device_rgb(chunk)
                y, finite = self._upscale(rgb, defer_check=True, bits=bits)
                with stage(self.timer, "from_tensor"):
                    out = from_rgb(y)
                    if self._transfer is not None:  # the overflow flag rides with the frames: no sync here
                        jobs.append((chunk, None, self._transfer.download_async(out, finite)))
                    else:
                        jobs.append((chunk, finite, out.numpy()))

        def fetch() -> np.ndarray:
            outs = []
            for chunk, finite, pending in jobs:
                with stage(self.timer, "from_tensor"):
                    if isinstance(pending, PendingDownload):
                        host = pending.wait()
                        ok = pending.flag
                    else:
                        host, ok = pending, None if finite is None else bool(finite)
                    if ok is False:
                        with torch.inference_mode():  # fp16 overflow: redo the batch, checking each tile
                            redo = self._upscale(device_rgb(chunk), check_tiles=True, bits=bits)[0]
                            host = from_rgb(redo).cpu().numpy()
                outs.append(host.view(np.uint16) if host.dtype == np.int16 else host)
            return outs[0] if len(outs) == 1 else np.concatenate(outs)

        return fetch

    def upscale_array(self, frames: np.ndarray) -> np.ndarray:
        """RGB uint8/uint16 frames, (H,W,3) or (N,H,W,3) → upscaled, same dtype and rank."""
        return self.submit_array(frames)()

    def submit_array(self, frames: np.ndarray) -> Fetch:
        """``upscale_array``, queued: returns a function that waits for the frames and returns them."""
        single = frames.ndim == 3
        batch = frames[None] if single else frames
        if batch.ndim != 4 or batch.shape[-1] != 3:
            raise UpscalerError(f"expected RGB frames (N,H,W,3), got shape {frames.shape}")
        peak = _peak(batch.dtype)

        def to_rgb(x: torch.Tensor) -> torch.Tensor:
            return to_float(x).permute(0, 3, 1, 2).div_(peak)

        def from_rgb(y: torch.Tensor) -> torch.Tensor:
            return to_samples(y.mul(peak).round_().permute(0, 2, 3, 1), batch.dtype.itemsize).contiguous()

        self._check_memory_once(len(batch), batch.shape[2], batch.shape[1], batch.dtype.itemsize)
        fetch = self._submit(batch, to_rgb, from_rgb)
        return (lambda: fetch()[0]) if single else fetch

    def submit_planes(self, frames: np.ndarray, src: YuvLayout, dst: YuvLayout) -> Fetch:
        """``upscale_planes``, queued: returns a function that waits for the frames and returns them."""
        width, height = self.output_size(src.width, src.height)
        if dst.even_size(width, height) != (dst.width, dst.height):
            raise UpscalerError(f"{dst.width}x{dst.height} {dst.pix_fmt} is not the x{self.outscale:g} output "
                                f"of {src.width}x{src.height}")
        if frames.ndim != 2 or frames.shape[1] != src.length or frames.dtype != src.dtype:
            raise UpscalerError(f"expected flat {src.pix_fmt} frames (N, {src.length}) of {src.dtype}, "
                                f"got {frames.shape} {frames.dtype}")
        self._check_memory_once(len(frames), src.width, src.height, frames.dtype.itemsize)
        return self._submit(frames, lambda x: yuv_to_rgb(x, src),
                            lambda y: rgb_to_yuv(y[:, :, : dst.height, : dst.width], dst))

    def upscale_planes(self, frames: np.ndarray, src: YuvLayout, dst: YuvLayout) -> np.ndarray:
        """Flat planar Y'CbCr frames (N, src.length) -> (N, dst.length), converted to RGB and back on the device.

        ``dst`` gives the output's pixel format and colour meaning; its size must be ``output_size`` of the
        input, less the odd row/column its chroma subsampling cannot hold (``YuvLayout.even_size``).
        """
        return self.submit_planes(frames, src, dst)()

    def check_memory(self, frames: int, width: int, height: int, itemsize: int = 1) -> None:
        """Refuse, before any work, ``frames`` frames of ``width``x``height`` whose output cannot fit in memory
        (``--outscale 2000`` would otherwise end in the allocator's traceback). Tiles bound the network's own
        memory, but each output frame is whole: the float32 RGB frame the tiles are stitched into and the one
        it is resized or scaled into (24 bytes a pixel, on the model's device), and the samples on the host."""
        out_w, out_h = self.output_size(width, height)
        pixels = out_w * out_h
        chunk = min(frames, self.batch_size)
        on_device = chunk * pixels * 24
        on_host = frames * pixels * 3 * itemsize + (on_device if self.device.type == "cpu" else 0)
        for need, where in ((on_host, "host"), (on_device if self.device.type == "cuda" else 0, "cuda")):
            if need < _MEMORY_CHECK_FROM:
                continue
            have = _available_memory(self.device if where == "cuda" else None)
            if have is not None and need > have:
                what = "GPU memory" if where == "cuda" else "memory"
                raise UpscalerError(
                    f"the output would be {out_w}x{out_h} pixels ({pixels / 1e6:,.0f} MP) a frame: that needs "
                    f"about {_gib(need)} of {what}, and {_gib(have)} is available (use a smaller --outscale"
                    f"{' or --batch-size' if chunk > 1 else ''})")

    def _check_memory_once(self, frames: int, width: int, height: int, itemsize: int) -> None:
        """``check_memory``, skipped for a size already found to fit as many frames or more."""
        key = (width, height, itemsize)
        if self._memory_checked.get(key, 0) < frames:
            self.check_memory(frames, width, height, itemsize)
            self._memory_checked[key] = frames

    def output_size(self, width: int, height: int) -> tuple[int, int]:
        """(width, height) of the output for an input of that size."""
        return round(width * self.outscale), round(height * self.outscale)

    # -- files ---------------------------------------------------------------------------------------------

    def upscale_image(self, src: str | os.PathLike[str], dst: str | os.PathLike[str], *,
                      overwrite: bool = False, quality: int | None = None) -> ImageResult:
        from .image.io import estimated_file_size
        from .image.upscale import upscale_image_file

        warned: list[bool] = []

        def rgb_fn(frames: np.ndarray) -> np.ndarray:
            # The first call comes once the input has been read and checked: the free-space warning is never a
            # second line beside an input error, and still comes before the network runs.
            if not warned:
                self.check_memory(len(frames), frames.shape[2], frames.shape[1], frames.dtype.itemsize)
                out_w, out_h = self.output_size(frames.shape[2], frames.shape[1])
                warned.append(warn_if_short_of_space(
                    dst, estimated_file_size(dst, out_w, out_h, 3, frames.dtype.itemsize)))
            return self.upscale_array(frames)

        return upscale_image_file(Path(src), Path(dst), rgb_fn, overwrite=overwrite, quality=quality)

    def upscale_video(self, src: str | os.PathLike[str], dst: str | os.PathLike[str], *,
                      options: EncodeOptions | None = None, overwrite: bool = False,
                      progress: Callable[[int], None] | None = None,
                      on_start: Callable[..., None] | None = None, sequential: bool = False,
                      strict: bool = False, segment_seconds: float | None = None,
                      on_resume: Callable[[int], None] | None = None,
                      notice: Callable[[str], None] | None = None, workers: int = 1) -> VideoResult:
        """Upscale a video file; ``strict``: a damaged frame is an error, not a warning.

        ``segment_seconds``: run it as a resumable job of segments about that long (``upscaler.jobs``), keyed
        on this model; ``on_resume(n)`` hears of the frames an earlier, interrupted run finished. ``workers``
        > 1: the segments run on that many Ray actors, each with a copy of this model (``spec``)."""
        from .video import EncodeOptions, upscale_video
        from .video.colour import bit_depth

        run: Callable[..., VideoResult] = upscale_video
        job: dict[str, object] = {}
        if segment_seconds:
            from .jobs import run_job

            run = run_job
            job = {"segment_seconds": segment_seconds, "model": self.model_key(), "on_resume": on_resume,
                   "notice": notice, "workers": workers, "replica": functools.partial(video_replica, self.spec)}
        elif workers > 1:
            raise UpscalerError(f"--workers {workers} runs segments: it needs --segment-seconds above 0")
        def started(info: VideoInfo) -> None:
            # Called once the input and the encoder have been checked, before the first frame; a refusal of an
            # output too big for memory comes first, without a warning line beside it.
            # Frames deeper than 8 bits come as uint16: twice the host memory of 8-bit ones.
            itemsize = 2 if bit_depth(info.pix_fmt) > 8 else 1
            self.check_memory(self.batch_size, info.width, info.height, itemsize)
            self._memory_checked[(info.width, info.height, itemsize)] = self.batch_size
            # A job holds its segments and the joined output at once, until the join ends: about twice.
            warn_if_short_of_space(dst, video_size_estimate(Path(src), self.outscale) * (2 if job else 1))
            if on_start is not None:
                on_start(info)

        return run(Path(src), Path(dst), self.upscale_array, options=options or EncodeOptions(),
                   batch_size=self.batch_size, overwrite=overwrite, progress=progress,
                   on_start=started, timer=self.timer, sequential=sequential,
                   prefer_hardware=self.device.type == "cuda",
                   planar=self if self.colour_on_device else None,
                   frame_submit=self.submit_array, strict=strict, **job)

    def model_key(self) -> str:
        """What the output depends on besides the options: the weights (and their file's size and mtime),
        the blend, the output scale and the precision. A resumable job is keyed on it."""
        source = Path(self.loaded.source) if self.loaded.source else None
        stamp = ""
        if source is not None and source.is_file():
            stat = source.stat()
            stamp = f" {stat.st_size} {stat.st_mtime_ns}"
        return (f"{self.loaded.source}{stamp} {blend_summary(self.loaded) or ''} {self.loaded.describe()}"
                f" x{self.outscale:g} {self.dtype}")

    # -- sizing --------------------------------------------------------------------------------------------

    def _auto_tile(self) -> int:
        if self.device.type != "cuda":
            return CPU_TILE
        free, _ = torch.cuda.mem_get_info(self.device)
        # Peak activation memory per input pixel: a handful of feature maps live at once, plus the output.
        feat = int(self.loaded.params.get("num_feat", 64))
        elem = torch.finfo(self.dtype).bits // 8
        per_pixel = elem * (feat * 8 + 3 * self.scale**2 * 4) * 4  # ×4 frames in a batch
        side = int(math.sqrt(free * 0.5 / per_pixel))
        return max(MIN_TILE, min(side // 8 * 8, 2048))

    def describe(self) -> str:
        what = blend_summary(self.loaded) or Path(self.loaded.source).name
        return (f"{self.loaded.arch} x{self.scale} ({what}) on {self.device}"
                f" {str(self.dtype).removeprefix('torch.')}{' (fp32 for >8-bit samples)' if self._auto_bf16 else ''},"
                f" tile {self.tile or 'off'}")


def video_replica(spec: dict[str, object]) -> tuple[Callable[[np.ndarray], np.ndarray], dict[str, object]]:
    """An Upscaler built from ``spec`` (in a worker process): the frame function and pipeline arguments its
    ``upscale_video`` would use."""
    up = Upscaler(**spec)  # type: ignore[arg-type]
    return up.upscale_array, {"batch_size": up.batch_size, "prefer_hardware": up.device.type == "cuda",
                              "planar": up if up.colour_on_device else None, "frame_submit": up.submit_array}


def video_size_estimate(src: Path, outscale: float) -> int:
    """A rough size of ``src`` upscaled: its size times the pixel ratio over 4 (at our default CRF an upscaled
    frame costs far fewer bits per pixel than the source's, whose detail it only spreads out)."""
    try:
        return int(src.stat().st_size * outscale**2 / 4)
    except OSError:
        return 0


_MEMORY_CHECK_FROM = 256 << 20  # below this an output always fits; skips reading the free memory per batch


def _available_memory(device: torch.device | None) -> int | None:
    """Bytes an allocation can still get: free GPU memory plus what torch's cache holds (``device``), or the
    host's available memory plus free swap; None when unknown."""
    if device is not None:
        free, _ = torch.cuda.mem_get_info(device)
        return int(free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device))
    try:
        with open("/proc/meminfo") as f:
            fields = {k: int(v.split()[0]) * 1024 for k, v in (line.split(":", 1) for line in f if ":" in line)}
        return fields["MemAvailable"] + fields.get("SwapFree", 0)
    except (OSError, KeyError, ValueError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _gib(n: int) -> str:
    return f"{n / 2**30:,.1f} GiB"


def _pick_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UpscalerError(f"--device {device}: no CUDA device is available (use --device cpu)")
    try:
        return torch.device(device)
    except RuntimeError as exc:
        raise UpscalerError(f"unknown device {device!r} (auto, cpu, cuda, cuda:N)") from exc


def _pick_dtype(precision: str, device: torch.device) -> torch.dtype:
    if precision == "auto":
        if device.type == "cuda":
            return torch.float16
        return torch.bfloat16 if device.type == "cpu" and cpu_bf16_is_fast() else torch.float32
    dtypes = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
    if precision not in dtypes:
        raise UpscalerError(f"unknown precision {precision!r} (auto, fp32, fp16, bf16)")
    return dtypes[precision]


def cpu_bf16_is_fast() -> bool:
    """Whether this CPU has AMX tiles for bf16 (Intel Sapphire Rapids and later), where oneDNN runs bf16
    convolutions about 4x faster than fp32 (the shipped x4 model, 2 cores: 3.7 -> 14.9 fps at 320x180) for an
    output 57 dB PSNR from fp32's (Set5 baby). Without AMX, bf16 gains little or runs slower, so fp32 stays."""
    probe = getattr(torch.cpu, "_is_amx_tile_supported", None)  # private, hence the guard
    try:
        return bool(probe()) if probe is not None else False
    except RuntimeError:
        return False


def _peak(dtype: np.dtype) -> float:
    if dtype == np.uint8:
        return 255.0
    if dtype == np.uint16:
        return 65535.0
    raise UpscalerError(f"unsupported pixel type {dtype} (8- or 16-bit integers)")

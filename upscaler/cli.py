"""The ``upscale`` command: a thin layer over :class:`upscaler.Upscaler`."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import warnings
from collections.abc import Callable, Iterator
from functools import wraps
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.markup import escape

from .errors import (
    Terminated,
    UpscalerError,
    UpscalerWarning,
    error_line,
    interrupt_exit_code,
    is_out_of_memory,
    out_of_space,
    printable,
)

err_console = Console(stderr=True)


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ANN001
    # Pipeline notices (a stream re-encoded, a pixel cropped) are for the user: one plain line each.
    click.echo(f"upscale: warning: {printable(str(message))}", err=True)


@contextlib.contextmanager
def _user_warnings() -> Iterator[None]:
    # Set per command, not at import: every notice shows (Python's default is once per call site, which hid a
    # batch's second file's), as one plain line, and a library user's warning settings stay untouched.
    with warnings.catch_warnings():
        warnings.simplefilter("always", UpscalerWarning)
        warnings.showwarning = _show_warning
        yield


def _fail(message: str, code: int = 1) -> None:
    # One line, no traceback: the message alone tells the user what to fix. Control characters (a newline in a
    # file name) are escaped here, the one place errors are printed.
    click.echo(error_line(message), err=True)
    sys.exit(code)


def user_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except UpscalerError as exc:
            full = "; out of disk space or over a file-size limit (nothing was left behind)" \
                if out_of_space(exc) else ""
            _fail(f"{exc}{full}")
        except KeyboardInterrupt as exc:
            _fail(_interrupted(exc), interrupt_exit_code(exc))
        except (MemoryError, RuntimeError) as exc:  # RuntimeError: torch's allocators (CPU and CUDA)
            if not is_out_of_memory(exc) or os.environ.get("UPSCALER_DEBUG"):
                raise
            _fail("out of memory (try a smaller --outscale, --tile or --batch-size); nothing was left behind")
        except OSError as exc:
            if os.environ.get("UPSCALER_DEBUG"):
                raise
            where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
            full = " (out of disk space or over a file-size limit)" if out_of_space(exc) else ""
            _fail(f"{where}{exc.strerror or exc}{full}")

    return wrapper


def model_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option("-m", "--model", default="default", show_default=True,
                     help="Shipped or known model name (see `upscale models`), or a .safetensors/.pth file."),
        click.option("--strength", type=click.FloatRange(0, 1), default=None,
                     help="Blend the model's weights with a second model's (network interpolation), once at "
                     "load: 1 = the model (GAN), 0 = its PSNR partner (see `upscale models`) or --blend. Default: the "
                     "named model's own (compact-x4, compact-x2: 0.8), else 1."),
        click.option("--blend", default=None, metavar="MODEL",
                     help="The model at --strength 0 (a name or file of the same architecture); needs --strength."),
        click.option("-s", "--scale", type=click.Choice(["2", "4"]), default=None,
                     help="Pick the shipped model of this scale (default x4)."),
        click.option("--outscale", type=click.FloatRange(min=0, min_open=True), default=None,
                     help="Final scale: run the model, then resize its output (e.g. 3 or 1.5)."),
        click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:N."),
        click.option("--precision", type=click.Choice(["auto", "fp32", "fp16", "bf16"]), default="auto",
                     show_default=True,
                     help="auto = fp16 on CUDA; bf16 on CPUs with AMX (>8-bit input in fp32), else fp32."),
        click.option("--tile", type=click.IntRange(min=0), default=None,
                     help="Tile side in input pixels; 0 = no tiling; default picks from the device."),
        click.option("--tile-overlap", type=click.IntRange(min=0), default=32, show_default=True,
                     help="Context pixels around each tile, blended across seams."),
        click.option("--batch-size", type=click.IntRange(min=1), default=None, help="Frames per model call."),
        click.option("--compile", "compile_", is_flag=True,
                     help="Run the network through torch.compile (slow first frames, then faster on CUDA)."),
        click.option("--colour-convert", type=click.Choice(["auto", "device", "swscale"]), default="auto",
                     show_default=True, help="Where video YUV<->RGB runs: on the model's device (auto on CUDA) "
                     "or in swscale on the CPU (auto on CPU)."),
        click.option("--overwrite", is_flag=True, help="Replace an existing output (never the input)."),
        click.option("-q", "--quiet", is_flag=True, help="No progress bar or summary."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


_STRICT_HELP = ("A damaged video (frames that fail to decode or decode with errors) is an error, with no output; "
                "by default the output is finished (undecodable frames left out) and one warning says how many "
                "and when.")


def encode_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option("--codec", default=None,
                     help="Video encoder: auto (default: h264_nvenc/hevc_nvenc when the model runs on an NVIDIA "
                     "GPU, else libx264; libvpx-vp9 for .webm), libx265, libsvtav1, ffv1, prores_ks, …"),
        click.option("--crf", type=int, default=None, help="Constant rate factor (quality; lower is better)."),
        click.option("--preset", default=None, help="Encoder preset, in ffmpeg's words."),
        click.option("--pix-fmt", default=None, help="Output pixel format (default follows the input)."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _make_upscaler(model: str, scale: str | None, outscale: float | None, device: str, precision: str,
                   tile: int | None, tile_overlap: int, batch_size: int | None, compile_: bool = False,
                   colour_convert: str = "auto", blend: str | None = None,
                   strength: float | None = None):  # noqa: ANN202
    from .engine import Upscaler

    return Upscaler(model, blend=blend, strength=strength, scale=int(scale) if scale else None,
                    device=device, precision=precision,  # type: ignore[arg-type]
                    tile=tile, tile_overlap=tile_overlap, outscale=outscale, batch_size=batch_size,
                    compile=compile_, colour_convert=colour_convert)  # type: ignore[arg-type]


def default_output(src: Path, outscale: float) -> Path:
    factor = f"{outscale:g}"
    return src.with_name(f"{src.stem}_x{factor}{src.suffix}")


def run() -> None:
    """Console-script entry: like ``main``, but usage errors, Ctrl-C and SIGTERM also end in one line."""
    signal.signal(signal.SIGTERM, _terminated)
    try:
        main(standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.Abort as exc:
        _fail(_interrupted(exc), interrupt_exit_code(exc))
    except click.ClickException as exc:
        _fail(exc.format_message(), exc.exit_code)


def _terminated(signum: int, frame: object) -> None:
    # Unwind like Ctrl-C, so temporary outputs are removed on the way out; the exit code says SIGTERM (143).
    raise Terminated


def _interrupted(exc: BaseException) -> str:
    what = "terminated" if interrupt_exit_code(exc) == 143 else "interrupted"
    # A segmented job adds where its finished segments wait for the rerun.
    return "; ".join([f"{what}; no output was left behind", *getattr(exc, "__notes__", ())])


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="upscaler")
@click.pass_context
def main(ctx: click.Context) -> None:
    """Upscale video and images 2x/4x with super-resolution networks."""
    ctx.with_resource(_user_warnings())


@main.command()
@click.argument("src", type=click.Path(path_type=Path))
@click.option("-o", "--output", "dst", type=click.Path(path_type=Path), default=None,
              help="Output file (default: IN_x4.EXT); the container follows its extension.")
@model_options
@encode_options
@click.option("--strict", is_flag=True, help=_STRICT_HELP)
@click.option("--segment-seconds", type=click.FloatRange(min=0), default=60, show_default=True,
              help="Run a long video as segments of about this length, cut at keyframes, kept in a hidden job "
              "folder beside the output: a rerun after a crash or Ctrl-C redoes only unfinished ones (0 = off).")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="Run the segments on this many Ray workers, each with its own copy of the model (needs "
              "pip install \"upscaler[cluster]\"; RAY_ADDRESS joins a running cluster).")
@user_errors
def video(src: Path, dst: Path | None, codec: str | None, crf: int | None, preset: str | None, pix_fmt: str | None,
          overwrite: bool, quiet: bool, strict: bool, segment_seconds: float, workers: int, **model_kw: Any) -> None:
    """Upscale a video, keeping audio, subtitles, timestamps and colour tags."""
    from .progress import frame_progress
    from .video import EncodeOptions

    if not src.exists():
        raise UpscalerError(f"{src}: no such file")
    if workers > 1:
        from .jobs.cluster import require_ray

        require_ray(workers)  # before the model loads
        _quiet_ray()
    up = _make_upscaler(**model_kw)
    dst = dst or default_output(src, up.outscale)
    options = EncodeOptions(codec=codec, crf=crf, preset=preset, pix_fmt=pix_fmt)
    if not quiet:
        err_console.print(f"{escape(str(src))} → {escape(str(dst))}  [dim]{up.describe()}[/dim]")
    with frame_progress(src.name, quiet, err_console) as bar:
        result = up.upscale_video(src, dst, options=options, overwrite=overwrite, progress=bar.advance,
                                  on_start=lambda info: bar.start(info.frames), strict=strict,
                                  segment_seconds=segment_seconds, on_resume=bar.resume, workers=workers,
                                  notice=None if quiet else lambda line: err_console.print(escape(line)))
    if not quiet:
        err_console.print(f"wrote {escape(str(dst))}: {result.frames} frames {result.width}x{result.height} "
                          f"in {result.elapsed:.1f} s ({result.fps:.2f} fps)")


@main.command()
@click.argument("src", type=click.Path(path_type=Path))
@click.option("-o", "--output", "dst", type=click.Path(path_type=Path), default=None,
              help="Output file (default: IN_x4.EXT); the format follows its extension.")
@click.option("--quality", type=click.IntRange(1, 100), default=None, help="JPEG/WebP quality.")
@model_options
@user_errors
def image(src: Path, dst: Path | None, quality: int | None, overwrite: bool, quiet: bool,
          **model_kw: Any) -> None:
    """Upscale one image (alpha, 16-bit and grayscale kept)."""
    if not src.exists():
        raise UpscalerError(f"{src}: no such file")
    up = _make_upscaler(**model_kw)
    dst = dst or default_output(src, up.outscale)
    result = up.upscale_image(src, dst, overwrite=overwrite, quality=quality)
    for note in result.notes:
        click.echo(f"upscale: note: {printable(note)}", err=True)
    if not quiet:
        err_console.print(f"wrote {escape(str(dst))}: {result.out_size[0]}x{result.out_size[1]}")


@main.command()
@click.argument("in_dir", type=click.Path(path_type=Path))
@click.argument("out_dir", type=click.Path(path_type=Path))
@click.option("--suffix", default="", help="Added to each output's stem, e.g. _x4 (default: same names).")
@model_options
@encode_options
@click.option("--strict", is_flag=True, help=_STRICT_HELP)
@user_errors
def batch(in_dir: Path, out_dir: Path, suffix: str, codec: str | None, crf: int | None, preset: str | None,
          pix_fmt: str | None, overwrite: bool, quiet: bool, strict: bool, **model_kw: Any) -> None:
    """Upscale every image and video under IN_DIR into OUT_DIR, mirroring the tree.

    Outputs that already exist are skipped, so a rerun resumes; a bad file is reported and the rest go on.
    """
    from .batch import BUSY, print_summary, run_batch
    from .progress import frame_progress
    from .video import EncodeOptions

    if not in_dir.is_dir():
        raise UpscalerError(f"{in_dir}: not a directory")
    up = _make_upscaler(**model_kw)
    options = EncodeOptions(codec=codec, crf=crf, preset=preset, pix_fmt=pix_fmt)

    def process_image(src: Path, dst: Path) -> object:
        return up.upscale_image(src, dst, overwrite=overwrite)

    def process_video(src: Path, dst: Path) -> None:
        with frame_progress(src.name, quiet, err_console) as bar:
            up.upscale_video(src, dst, options=options, overwrite=overwrite, progress=bar.advance,
                             on_start=lambda info: bar.start(info.frames), strict=strict)

    def on_file(index: int, total: int, path: Path) -> None:
        if not quiet:
            err_console.print(f"\\[{index}/{total}] {escape(str(path))}")

    report = run_batch(in_dir, out_dir, process_image=process_image, process_video=process_video,
                       output_name=lambda p: p.with_name(f"{p.stem}{suffix}{p.suffix}"),
                       overwrite=overwrite, on_file=on_file)
    if not quiet:
        print_summary(report, err_console)
    else:  # no table: name the files left to another run, so a quiet batch does not pass for complete
        for item in report.files:
            if item.status == "skipped" and item.note == BUSY:
                click.echo(printable(f"upscale: skipped: {item.src}: {item.note}"), err=True)
    if report.failed_count:
        if quiet:  # no table was printed: name each failure, one line each
            for item in report.files:
                if item.status == "failed":
                    click.echo(printable(f"upscale: failed: {item.src}: {item.note}"), err=True)
        _fail(f"{report.failed_count} file(s) failed" + ("" if quiet else " (see the table above)"))


@main.command()
def models() -> None:
    """List the shipped models and the known ones fetched on first use."""
    from rich.table import Table

    from .models import zoo

    table = Table(title="Models (use with --model NAME, or give any .safetensors/.pth file)")
    for column in ("name", "scale", "arch", "where", "description"):
        table.add_column(column, no_wrap=column == "name")  # a name is typed back in: never cut it

    def about(entry: zoo.ModelEntry) -> str:
        partner = f"\n[b]--strength[/b] partner: {entry.blend_partner}" if entry.blend_partner else ""
        if entry.default_strength is not None:
            partner += f", default strength {entry.default_strength:g}"
        return escape(entry.description) + partner

    for entry in zoo.SHIPPED:
        table.add_row(entry.name, f"x{entry.scale}", entry.arch, "shipped", about(entry))
    for entry in zoo.DOWNLOADABLE:
        cached = (zoo.cache_dir() / entry.url.rsplit("/", 1)[-1]).exists() if entry.url else False
        table.add_row(entry.name, f"x{entry.scale}", entry.arch, "cached" if cached else "download", about(entry))
    Console().print(table)
    Console().print("--strength S blends a model's weights with its partner's (network interpolation, once "
                    "at load): 1 = the model, 0 = the partner; --blend FILE names the partner for any model.")
    Console().print("Loadable architectures: RRDBNet (ESRGAN / Real-ESRGAN, incl. old ESRGAN keys), "
                    "SRVGGNetCompact, SRResNet / MSRResNet (SRGAN).")


def _quiet_ray() -> None:
    """Ray's start-up notices (token authentication...) go to stderr through the handler its import puts on
    the "ray" logger: keep them from standing beside the command's one line. Its errors still show."""
    import logging

    logging.getLogger("ray").setLevel(logging.ERROR)


def _parse_size(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[int, int] | None:
    if value is None:
        return None
    try:
        width, height = (int(v) for v in value.lower().split("x"))
    except ValueError:
        raise click.BadParameter("expected WxH, e.g. 320x180") from None
    return width, height


@main.command()
@click.option("-m", "--model", default="default", show_default=True, help="Model name or file.")
@click.option("-s", "--scale", type=click.Choice(["2", "4"]), default=None, help="Shipped model of this scale.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:N.")
@click.option("--precision", type=click.Choice(["auto", "fp32", "fp16", "bf16"]), default="auto", show_default=True)
@click.option("--clip", type=click.Path(path_type=Path), default=None,
              help="Video to run end to end (default: the bundled samples/bbb_320x180.mp4).")
@click.option("--size", callback=_parse_size, default=None, help="Input size WxH (the clip is resized to it).")
@click.option("--frames", type=int, default=None, help="Frames to run (the clip is cut or looped to it).")
@click.option("--batch-size", type=int, default=None, help="Frames per model call.")
@click.option("--tile", type=int, default=None, help="Tile side in input pixels; 0 = whole frame.")
@click.option("--tile-overlap", type=int, default=32, show_default=True)
@click.option("--threads", type=int, default=None, help="torch threads for the model (default: torch's).")
@click.option("--compile", "compile_", is_flag=True, help="Run the network through torch.compile.")
@click.option("--colour-convert", type=click.Choice(["auto", "device", "swscale"]), default="auto",
              show_default=True, help="Where YUV<->RGB runs: the model's device (auto on CUDA) or swscale.")
@click.option("--codec", default="auto", show_default=True,
              help="Video encoder of the end-to-end run (auto: NVENC on a GPU, else libx264).")
@click.option("--preset", default=None, help="Encoder preset.")
@click.option("--no-sequential", is_flag=True, help="Skip the sequential-loop baseline.")
@click.option("--min-time", type=float, default=3.0, show_default=True,
              help="Seconds to time the bare model for (at least 3 calls).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON on stdout.")
@click.option("--workers", type=click.IntRange(min=2), default=None,
              help="Instead: the same segmented job with 1 and with N Ray workers (needs upscaler[cluster]).")
@click.option("--segment-seconds", type=click.FloatRange(min=0, min_open=True), default=1.0, show_default=True,
              help="With --workers: segment length (the clip gets a keyframe this often; 4 segments by default).")
@user_errors
def bench(model: str, scale: str | None, device: str, precision: str, clip: Path | None,
          size: tuple[int, int] | None, frames: int | None, batch_size: int | None, tile: int | None,
          tile_overlap: int, threads: int | None, compile_: bool, colour_convert: str, codec: str,
          preset: str | None,
          no_sequential: bool, min_time: float, as_json: bool, workers: int | None, segment_seconds: float) -> None:
    """Measure the bare model, the end-to-end video pipeline and the sequential loop; per-stage times.

    With --workers N: how a segmented job scales from 1 to N workers, and what its join costs."""
    import json

    import torch

    from .bench import SAMPLE_CLIP, BenchConfig, render, render_workers, run_bench, run_workers_bench
    from .engine import Upscaler
    from .video import EncodeOptions

    clip = clip or SAMPLE_CLIP
    if not clip.exists():
        raise UpscalerError(f"{clip}: no such file")
    if workers is not None:
        from .jobs.cluster import require_ray

        require_ray(workers)  # before the model loads
        _quiet_ray()
    if threads is not None:
        torch.set_num_threads(threads)
    up = Upscaler(model, scale=int(scale) if scale else None, device=device, precision=precision,  # type: ignore[arg-type]
                  tile=tile, tile_overlap=tile_overlap, batch_size=batch_size, compile=compile_,
                  colour_convert=colour_convert)  # type: ignore[arg-type]
    config = BenchConfig(clip=clip, size=size, frames=frames, encode=EncodeOptions(codec=codec, preset=preset),
                         sequential=not no_sequential, bare_seconds=min_time)
    if workers is not None:
        report = run_workers_bench(up, config, workers, segment_seconds)
    else:
        report = run_bench(up, config)
    if as_json:
        click.echo(json.dumps(report, indent=2))
    else:
        Console().print((render_workers if workers is not None else render)(report))


def _add_train() -> None:
    from train.cli import train_command

    main.add_command(train_command)


_add_train()

"""`upscale bench` and the stage timing behind it, on tiny inputs (CPU, a few seconds)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from conftest import REPO
from test_video import make_clip

from upscaler import Upscaler
from upscaler.bench import BenchConfig, cpu_ceiling, prepare_clip, read_frames, run_bench, usable_cores
from upscaler.cli import main
from upscaler.device.stages import STAGES, StageTimer, stage
from upscaler.tiling import upscale_tiled

SAMPLE = REPO / "samples" / "bbb_320x180.mp4"


def test_bench_json_reports_every_figure() -> None:
    result = CliRunner().invoke(main, ["bench", "--json", "--frames", "4", "--size", "64x36", "--device", "cpu",
                                       "--min-time", "0.2", "--tile", "24", "--preset", "ultrafast"])
    assert result.exit_code == 0, result.output
    r = json.loads(result.stdout)
    assert r["input"] == [64, 36] and r["output"] == [256, 144]
    assert r["end_to_end"]["frames"] == r["sequential"]["frames"] == 4
    assert r["bare"]["fps"] > 0 and r["end_to_end"]["fps"] > 0 and r["sequential"]["fps"] > 0
    assert r["ratio"] == pytest.approx(r["end_to_end"]["fps"] / r["bare"]["fps"])
    assert r["bare"]["fps"] == pytest.approx((r["bare"]["fps_before"] + r["bare"]["fps_after"]) / 2)
    assert r["speedup"] == pytest.approx(r["end_to_end"]["fps"] / r["sequential"]["fps"])
    assert set(r["stages"]) == set(STAGES) and all(s > 0 for s in r["stages"].values())
    # Threads overlap, so only each thread's busy time is bounded by the wall time; in the one-thread
    # sequential loop the stages add up to at most its wall time.
    wall = r["end_to_end"]["seconds"]
    assert all(t["busy_s"] <= wall * 1.05 + 0.01 for t in r["threads"].values())
    assert r["bound_by"] in r["threads"]
    seq = r["sequential"]
    assert 0 < sum(seq["stages"].values()) <= seq["seconds"] * 1.05 + 0.01
    assert r["io_only"]["fps"] > r["end_to_end"]["fps"] and r["io_only"]["cpu_s_per_frame"] > 0
    model_cpu, io_cpu = r["bare"]["cpu_s_per_frame"], r["io_only"]["cpu_s_per_frame"]
    # Cores over the CPU seconds a frame needs, as a share of the bare fps (2 torch threads on 2 cores here).
    ceiling = min(1.0, usable_cores() / (model_cpu + io_cpu) / r["bare"]["fps"])
    assert r["cpu_ceiling"] == pytest.approx(ceiling) and 0 < r["cpu_ceiling"] <= 1
    assert r["memory"]["rss_peak_mb"] > 0 and r["memory"]["gpu_peak_mb"] is None
    assert r["psnr"]["frames"] == 4 and r["psnr"]["model_db"] > 10 and r["psnr"]["bicubic_db"] > 10


def test_bench_on_the_device_colour_path() -> None:
    result = CliRunner().invoke(main, ["bench", "--json", "--frames", "3", "--size", "64x36", "--device", "cpu",
                                       "--min-time", "0.2", "--preset", "ultrafast", "--no-sequential",
                                       "--colour-convert", "device"])
    assert result.exit_code == 0, result.output
    r = json.loads(result.stdout)
    assert r["colour_convert"] == "device" and r["end_to_end"]["frames"] == 3 and r["output"] == [256, 144]
    # Decoding no longer converts colour; the device does, inside to_tensor / from_tensor.
    assert r["stages"]["to_tensor"] > 0 and r["stages"]["from_tensor"] > 0
    assert r["io_only"]["fps"] > r["end_to_end"]["fps"]


def test_bench_reports_the_precision_deep_samples_run_in(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr("upscaler.engine.cpu_bf16_is_fast", lambda: True)  # the automatic CPU bf16
    up = Upscaler(scale=4, device="cpu", tile=0)
    ten = make_clip(tmp_path / "ten.mkv", pix_fmt="yuv420p10le", size=(32, 24), frames=2)
    config = BenchConfig(clip=ten, bare_seconds=0.1, sequential=False)
    assert run_bench(up, config)["precision"] == "float32"
    config.clip = make_clip(tmp_path / "eight.mkv", size=(32, 24), frames=2)
    assert run_bench(up, config)["precision"] == "bfloat16"


def test_cpu_ceiling_is_the_share_of_cores_the_model_keeps() -> None:
    # 2 cores, a bare model at 10 fps using 0.2 CPU s a frame (both cores): with 0.1 s of decode + encode a frame
    # the cores manage 2 / 0.3 = 6.7 fps at best, 0.67 of the bare speed.
    assert cpu_ceiling(2, 10.0, 0.2, 0.1) == pytest.approx(2 / 3)
    # A model on one of the two cores leaves the other to decode + encode: no ceiling below the bare speed.
    assert cpu_ceiling(2, 10.0, 0.1, 0.05) == 1.0
    assert cpu_ceiling(2, 0.0, 0.1, 0.05) is None


def test_bench_rejects_odd_size() -> None:
    result = CliRunner().invoke(main, ["bench", "--size", "63x36", "--frames", "2"])
    assert result.exit_code != 0 and "must be even" in result.stderr


def test_timing_does_not_change_the_output() -> None:
    frames = read_frames(SAMPLE, 2)[:, :48, :64]
    up = Upscaler(scale=4, tile=24, tile_overlap=8, device="cpu")  # a 3x2 grid of tiles, one frame per call on CPU
    plain = up.upscale_array(frames)
    up.timer = StageTimer()
    timed = up.upscale_array(frames)
    assert np.array_equal(plain, timed)
    assert up.timer.calls["model"] == 2 * 6 and up.timer.seconds["stitch"] > 0


def test_batched_tiles_match_one_by_one() -> None:
    up = Upscaler(scale=4, device="cpu", precision="fp32")
    x = torch.from_numpy(read_frames(SAMPLE, 2)[:, :50, :70]).permute(0, 3, 1, 2).float() / 255
    with torch.inference_mode():
        calls: list[int] = []

        def run(t: torch.Tensor) -> torch.Tensor:
            calls.append(len(t))
            return up.net(t)

        one = upscale_tiled(run, x, 4, 20, 8)
        n_single = len(calls)
        batched = upscale_tiled(run, x, 4, 20, 8, batch_tiles=True)
    assert len(calls) - n_single < n_single  # fewer, bigger calls
    torch.testing.assert_close(batched, one, atol=1e-5, rtol=0)


def test_stage_excludes_nested_time() -> None:
    timer = StageTimer()
    with stage(timer, "stitch", exclude="model"):
        with stage(timer, "model"):
            time.sleep(0.05)
    assert timer.seconds["model"] >= 0.05 and 0 <= timer.seconds["stitch"] < 0.02
    with stage(None, "model"):  # timing off: a no-op
        pass


def test_sequential_loop_writes_the_same_video(tmp_path: Path) -> None:
    clip = prepare_clip(SAMPLE, tmp_path / "in.mp4", (48, 32), 5)
    up = Upscaler(scale=2, device="cpu")
    a = up.upscale_video(clip, tmp_path / "a.mkv")
    b = up.upscale_video(clip, tmp_path / "b.mkv", sequential=True)
    assert a.frames == b.frames == 5
    with av.open(str(tmp_path / "a.mkv")) as ca, av.open(str(tmp_path / "b.mkv")) as cb:
        fa = [f.to_ndarray(format="rgb24") for f in ca.decode(video=0)]
        fb = [f.to_ndarray(format="rgb24") for f in cb.decode(video=0)]
    assert len(fa) == 5 and all(np.array_equal(x, y) for x, y in zip(fa, fb, strict=True))


def test_prepare_clip_loops_a_short_clip(tmp_path: Path) -> None:
    clip = prepare_clip(SAMPLE, tmp_path / "long.mp4", (32, 18), 30)  # the sample has 24 frames
    assert len(read_frames(clip, 100)) == 30


def test_overflowing_tile_is_redone_in_fp32() -> None:
    # A half-precision net whose output overflows on one tile (the white corner): that tile alone is redone
    # in fp32, and the frame matches an fp32 run instead of showing a black or white blotch.
    frames = read_frames(SAMPLE, 1)[:, :48, :64].copy()
    frames[:, :8, :8] = 255
    up = Upscaler(scale=4, tile=24, tile_overlap=8, device="cpu", precision="bf16")
    real = up.net
    overflowed: list[bool] = []

    def net(x: torch.Tensor) -> torch.Tensor:
        out = real(x)
        overflowed.append(bool(x[..., :4, :4].min() >= 1))
        return out.fill_(float("inf")) if overflowed[-1] else out

    up.net = net  # type: ignore[assignment]
    out = up.upscale_array(frames).astype(np.int16)
    ref = Upscaler(scale=4, tile=24, tile_overlap=8, device="cpu", precision="fp32").upscale_array(frames)
    ref = ref.astype(np.int16)
    assert up._fp32_net is not None and sum(overflowed) == 2  # found in the fast pass, then in the checked one
    assert np.abs(out - ref)[:, :80, :80].max() <= 1  # only the redone tile covers this area: fp32
    assert np.abs(out - ref).mean() < 2  # the rest is bf16, close to fp32


def test_keep_freed_memory_is_idempotent() -> None:
    from upscaler.device.cpu_memory import keep_freed_memory

    first = keep_freed_memory()
    assert keep_freed_memory() == first  # glibc Linux: True both times; elsewhere a quiet False


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_transfer_round_trip_and_tiled_frames() -> None:
    from upscaler.device.transfer import HostTransfer

    transfer = HostTransfer(torch.device("cuda"))
    for dtype in (np.uint8, np.uint16):
        frames = np.random.default_rng(0).integers(0, np.iinfo(dtype).max, (2, 20, 30, 3), dtype=dtype)
        on_gpu = transfer.upload(frames)
        assert on_gpu.is_cuda and np.array_equal(transfer.download(on_gpu), frames)
    # Downloads queued past the two pinned slots: each result is still its own tensor's.
    tensors = [torch.full((4, 5), i, dtype=torch.uint8, device="cuda") for i in range(5)]
    pending = [transfer.download_async(t) for t in tensors]
    assert [int(p.wait()[0, 0]) for p in pending] == [0, 1, 2, 3, 4]
    # A flag rides along with a download and is read from host memory afterwards.
    finite = torch.isfinite(torch.tensor([1.0, float("nan")], device="cuda")).all()
    flagged = transfer.download_async(tensors[0], finite)
    assert flagged.flag is None and int(flagged.wait()[0, 0]) == 0 and flagged.flag is False
    frames = read_frames(SAMPLE, 2)[:, :64, :96]
    gpu = Upscaler(scale=4, tile=32, tile_overlap=16, device="cuda", precision="fp32").upscale_array(frames)
    cpu = Upscaler(scale=4, tile=32, tile_overlap=16, device="cpu", precision="fp32").upscale_array(frames)
    assert np.abs(gpu.astype(np.int16) - cpu.astype(np.int16)).max() <= 1


def test_bench_workers_compares_the_same_job_on_1_and_n(one_thread: None) -> None:
    pytest.importorskip("ray")
    result = CliRunner().invoke(main, ["bench", "--json", "--workers", "2", "--frames", "24", "--size", "64x36",
                                       "--segment-seconds", "0.25", "--device", "cpu", "--preset", "ultrafast"])
    assert result.exit_code == 0, result.output
    assert result.stderr == ""  # nothing of Ray's start-up on the command's stderr
    r = json.loads(result.stdout)
    assert (r["frames"], r["segments"], r["input"], r["video_s"]) == (24, 4, [64, 36], 1.0)
    one, two = r["runs"]
    assert (one["workers"], two["workers"]) == (1, 2)
    for run in r["runs"]:
        assert run["frames"] == 24  # the same job: every frame, both times
        assert run["fps"] == pytest.approx(24 / run["seconds"])
        assert run["fps_per_worker"] == pytest.approx(run["fps"] / run["workers"])
        assert run["segment_fps"] >= run["fps_per_worker"] * 0.99  # a segment's own speed, none of the waits
        assert 0 < run["join_s"] < run["seconds"]
        assert run["join_s_per_hour"] == pytest.approx(run["join_s"] * 3600)  # the clip is 1 s long
    assert abs(one["overhead_s"]) < 0.5 * one["seconds"]  # in this process: nothing to start, no model to load
    assert two["overhead_s"] > 0  # Ray's start, and each worker loading the model
    assert r["scaling"] == pytest.approx(two["fps"] / one["fps"])
    assert any("Ray's start" in note for note in r["notes"])


def test_bench_workers_without_ray_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "ray", None)
    result = CliRunner().invoke(main, ["bench", "--workers", "2", "--frames", "4", "--device", "cpu"])
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code != 0 and len(lines) == 1 and "needs Ray" in lines[0], result.stderr

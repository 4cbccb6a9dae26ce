"""The two-stage training loop on real images: losses go down, resume is exact, Ctrl-C checkpoints, --videos
fine-tunes, configs round-trip, and SSIM matches the usual SR-paper definition. Tiny models, CPU only."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from conftest import REPO, shared_path

from train.builders import build_generator
from train.config import TrainConfig
from train.data import BicubicDegradation, HRFolderDataset
from train.distributed import DistContext
from train.loop import StepReport, Trainer, TrainingInterrupted, train
from train.losses import PerceptualLoss, clean_lr
from train.realbench.sources import make_lr
from upscaler import Upscaler, load_model, save_model
from upscaler.archs import SRVGGNetCompact
from upscaler.cli import main
from upscaler.metrics import rgb_to_y, ssim

RELU22 = {"relu2_2": 1.0}  # a shallow VGG layer keeps the GAN-stage tests fast


pytestmark = pytest.mark.usefixtures("one_thread")


def tiny(tmp: Path, **kw: object) -> TrainConfig:
    """A ×2 SRVGG with 16 features and 2 convs on Set14 patches; stage and extras from ``kw``."""
    base: dict[str, object] = dict(
        scale=2, num_feat=16, num_conv=2, hr_dirs=[shared_path("images", "bench", "Set14")], patch_size=48,
        batch_size=4, num_workers=0, out_dir=tmp, checkpoint_every=1000, d_num_feat=16,
        perceptual_layers=RELU22)
    return TrainConfig(**(base | kw))  # type: ignore[arg-type]


def held_out_batch(n: int = 8, patch: int = 48) -> tuple[torch.Tensor, torch.Tensor]:
    """Fixed patches of Set5, which the tests never train on."""
    ds = HRFolderDataset([shared_path("images", "bench", "Set5")], patch_size=patch, scale=2,
                         degradation=BicubicDegradation(2), seed=99, patches_per_image=2)
    lr, hr = zip(*(ds[i] for i in range(n)), strict=True)
    return torch.stack(lr), torch.stack(hr)


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """A briefly pre-trained tiny G (stage 1, 30 steps) plus its held-out L1 before and after."""
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("psnr")
    cfg = tiny(out, steps=30, lr=2e-3, batch_size=8, val_dir=shared_path("images", "bench", "Set5"), val_every=30)
    lr, hr = held_out_batch()
    torch.manual_seed(cfg.seed)
    with torch.no_grad():
        before = (build_generator(cfg)(lr) - hr).abs().mean().item()
    result = train(cfg, log=lambda _: None)
    assert result.weights is not None
    with torch.no_grad():
        after = (load_model(result.weights).module(lr) - hr).abs().mean().item()
    return {"weights": result.weights, "out": out, "before": before, "after": after}


def test_psnr_stage_lowers_the_held_out_pixel_loss(pretrained: dict[str, object]) -> None:
    assert pretrained["after"] < 0.8 * pretrained["before"], pretrained  # type: ignore[operator]


def test_run_folder_has_metrics_validation_grid_and_config(pretrained: dict[str, object]) -> None:
    out: Path = pretrained["out"]  # type: ignore[assignment]
    rows = (out / "metrics.csv").read_text().splitlines()
    assert rows[0] == "step,loss,pixel,lr,val_psnr_y,val_ssim,bicubic_psnr_y,bicubic_ssim,seconds,it_per_s"
    assert [r.split(",")[0] for r in rows[1:]] == ["30"]
    psnr, ssim_val, bic_psnr, bic_ssim = map(float, rows[1].split(",")[4:8])
    assert 20 < psnr < 40 and 20 < bic_psnr < 40 and 0.5 < ssim_val <= 1 and 0.5 < bic_ssim <= 1
    grid = cv2.imread(str(out / "val" / "step_0000030.png"))
    # Set5 baby (512²) and bird (288²): 128-px crops (64 LR px ×2), four panels side by side, two rows.
    assert grid.shape == (256, 512, 3)
    assert TrainConfig.from_toml(out / "config.toml") == tiny(
        out, steps=30, lr=2e-3, batch_size=8, val_dir=shared_path("images", "bench", "Set5"), val_every=30)
    meta = load_model(pretrained["weights"]).metadata  # type: ignore[arg-type]
    assert meta["stage"] == "psnr" and '"steps": 30' in meta["config"]


def content_loss(model: torch.nn.Module, lr: torch.Tensor, hr: torch.Tensor, perceptual: PerceptualLoss) -> float:
    """The perceptual + pixel part of the default GAN-stage objective (weights 1 and 1e-2)."""
    with torch.no_grad():
        sr = model(lr)
        return (perceptual(sr, hr).content + 1e-2 * (sr - hr).abs().mean()).item()


def test_gan_stage_lowers_the_content_part_of_the_generator_loss(tmp_path: Path,
                                                                 pretrained: dict[str, object]) -> None:
    lr, hr = held_out_batch(16)
    perceptual = PerceptualLoss(RELU22, "l1", feature_scale=1 / 12.75)
    start = load_model(pretrained["weights"]).module  # type: ignore[arg-type]
    before = content_loss(start, lr, hr, perceptual)
    seen: list[dict[str, float]] = []
    cfg = tiny(tmp_path, stage="gan", pretrained=pretrained["weights"], steps=30, lr=2e-3, lr_milestones=[1000],
               batch_size=8)
    result = train(cfg, log=lambda _: None, on_step=lambda r: seen.append(r.losses))
    assert result.weights is not None and result.weights.name == "srvgg-x2-gan.safetensors"
    after = content_loss(load_model(result.weights).module, lr, hr, perceptual)
    # A 2-conv G has little room in relu2_2 space beyond its PSNR optimum: ~8% in 30 steps.
    assert after < 0.95 * before, (before, after)
    assert set(seen[0]) == {"loss", "pixel", "perceptual", "adversarial", "d_loss", "d_real", "d_fake"}
    assert all(np.isfinite(list(s.values())).all() for s in seen)


@pytest.mark.parametrize(("discriminator", "gan"), [("vgg", "wgan"), ("patchgan", "lsgan"), ("unet", "hinge")])
def test_every_discriminator_and_gan_loss_trains(tmp_path: Path, discriminator: str, gan: str) -> None:
    seen: list[StepReport] = []
    cfg = tiny(tmp_path, stage="gan", steps=2, discriminator=discriminator, gan_loss=gan, patch_size=64,
               tv_weight=1e-3, grad_clip=1.0, perceptual_weight=0.0)
    train(cfg, log=lambda _: None, on_step=seen.append)
    assert [r.step for r in seen] == [1, 2]
    assert ("gp" in seen[0].losses) == (gan == "wgan") and "tv" in seen[0].losses
    assert all(np.isfinite(v) for r in seen for v in r.losses.values())


@pytest.mark.parametrize("arch", [{"arch": "rrdb", "num_block": 1, "num_grow_ch": 4},
                                  {"arch": "srresnet", "num_block": 1}, {"arch": "msrresnet", "num_block": 1}])
def test_every_generator_arch_trains_and_exports(tmp_path: Path, arch: dict[str, object]) -> None:
    result = train(tiny(tmp_path, steps=2, num_feat=8, **arch), log=lambda _: None)
    assert result.weights is not None
    loaded = load_model(result.weights)
    assert loaded.arch == arch["arch"] and loaded.scale == 2 and loaded.params["num_block"] == 1


def test_paired_folders(tmp_path: Path) -> None:
    hr_dir, lr_dir = tmp_path / "hr", tmp_path / "lr"
    hr_dir.mkdir()
    lr_dir.mkdir()
    for path in sorted(shared_path("images", "bench", "Set5").glob("*.png"))[:3]:
        img = cv2.imread(str(path))
        h, w = img.shape[:2]
        cv2.imwrite(str(hr_dir / path.name), img)
        cv2.imwrite(str(lr_dir / path.name), cv2.resize(img, (w // 2, h // 2), interpolation=cv2.INTER_AREA))
    seen: list[StepReport] = []
    train(tiny(tmp_path / "run", hr_dirs=[], lr_dir=lr_dir, hr_dir=hr_dir, steps=2), log=lambda _: None,
          on_step=seen.append)
    assert len(seen) == 2 and seen[0].hr.shape == (4, 3, 48, 48)


@pytest.mark.parametrize("consistency", [False, True], ids=["plain", "consistency"])
def test_interrupt_then_resume_reproduces_the_uninterrupted_run(tmp_path: Path, consistency: bool,
                                                                 pretrained: dict[str, object]) -> None:
    # With the consistency term the teacher must stay the starting weights after a resume, not the checkpoint's.
    extra = {"pretrained": pretrained["weights"], "consistency_weight": 1.0} if consistency else {}

    def run(out: Path, steps: int, resume: bool = False, stop_at: int | None = None,
            losses: list[dict[str, float]] | None = None) -> tuple[list, object]:
        losses = [] if losses is None else losses

        def hook(report: StepReport) -> None:
            losses.append(report.losses)
            if report.step == stop_at:
                raise KeyboardInterrupt

        cfg = tiny(out, stage="gan", steps=steps, resume=resume, log_every=1, gan_loss="wgan", discriminator="unet",
                   **extra)
        return losses, train(cfg, log=lambda _: None, on_step=hook)

    full, whole = run(tmp_path / "a", 6)
    first: list[dict[str, float]] = []
    with pytest.raises(TrainingInterrupted, match="checkpoint saved at step 3"):
        run(tmp_path / "b", 6, stop_at=3, losses=first)
    assert first == full[:3]  # same seed, same losses
    assert torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=True)["step"] == 3
    second, resumed = run(tmp_path / "b", 6, resume=True)
    assert len(second) == 3
    for a, b in zip(full[3:], second, strict=True):
        assert a.keys() == b.keys()
        for key in a:
            assert abs(a[key] - b[key]) <= 1e-6 * max(1.0, abs(a[key])), (key, a[key], b[key])
    for x, y in ((whole.generator, resumed.generator), (whole.ema, resumed.ema)):  # type: ignore[attr-defined]
        for (name, p), q in zip(x.state_dict().items(), y.state_dict().values(), strict=True):
            assert torch.allclose(p, q, atol=1e-6, rtol=0), name
    # metrics.csv: the rows logged before the interrupt are kept once, then the resumed ones follow.
    steps = [r.split(",")[0] for r in (tmp_path / "b" / "metrics.csv").read_text().splitlines()[1:]]
    assert steps == ["1", "2", "3", "4", "5", "6"]


def test_resume_with_new_learning_rates_uses_them_from_the_first_step(tmp_path: Path) -> None:
    # Fine-tuning a run in phases (e.g. lower lr after N steps) resumes its checkpoint with another config: the
    # optimiser state must not carry the old rates over.
    out = tmp_path / "run"
    first = tiny(out, stage="gan", steps=2, discriminator="patchgan", lr=1e-4)
    train(first, log=lambda _: None)
    rates: list[float] = []
    second = tiny(out, stage="gan", steps=4, discriminator="patchgan", lr=2e-5, d_lr=3e-5, resume=True,
                  lr_schedule="step", lr_milestones=[4])
    result = train(second, log=lambda _: None, on_step=lambda r: rates.append(r.lr))
    assert result.steps == 4 and rates == pytest.approx([2e-5, 1e-5])
    d_rates = [g["lr"] for g in torch.load(out / "checkpoint.pt", weights_only=True)["opt_d"]["param_groups"]]
    assert d_rates == pytest.approx([1.5e-5])


def test_grid_penalty_is_a_logged_generator_term(tmp_path: Path) -> None:
    reports: list[StepReport] = []
    cfg = tiny(tmp_path / "run", stage="gan", steps=2, discriminator="patchgan", grid_weight=100.0, log_every=1)
    train(cfg, log=lambda _: None, on_step=reports.append)
    assert all(0 < r.losses["grid"] < 1 for r in reports)
    header = (tmp_path / "run" / "metrics.csv").read_text().splitlines()[0].split(",")
    assert "grid" in header


def test_clean_lr_is_the_benchmarks_clean_lr() -> None:
    hr = cv2.imread(str(shared_path("images", "bench", "Set5", "baby.png")))[:256, :256, ::-1].copy()
    want = make_lr(hr[None], 4)[0]
    got = clean_lr(torch.from_numpy(hr).permute(2, 0, 1)[None].float() / 255, 4)
    assert np.array_equal((got[0].permute(1, 2, 0) * 255).round().byte().numpy(), want)


def test_consistency_makes_the_output_on_damaged_input_closer_to_the_output_on_clean_input(
        pretrained: dict[str, object]) -> None:
    # Damage = Gaussian noise on the clean LR. The artefact-gain numerator |G(noisy) - G(clean)| on held-out
    # patches must shrink when the consistency term trains alone, while G stays near the teacher on clean input.
    def noisy_of(x: torch.Tensor, seed: int) -> torch.Tensor:
        noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(seed)) * 8 / 255
        return (x + noise).clamp(0, 1)

    _, hr = held_out_batch(8)
    clean = clean_lr(hr, 2)
    noisy = noisy_of(clean, 1)
    start = load_model(pretrained["weights"]).module  # type: ignore[arg-type]
    with torch.no_grad():
        teacher_clean = start(clean)
        before = (start(noisy) - teacher_clean).abs().mean().item()
    cfg = tiny(Path("unused"), pretrained=pretrained["weights"], lr=3e-3, pixel_weight=0.0, consistency_weight=1.0,
               ema_decay=0.0, lr_schedule="step", lr_milestones=[1000])
    trainer = Trainer(cfg, DistContext(0, 1, 0, torch.device("cpu")), start.requires_grad_(True).train())
    train_set = HRFolderDataset([shared_path("images", "bench", "Set14")], patch_size=48, scale=2,
                                degradation=BicubicDegradation(2), seed=0)
    for step in range(150):
        batch = torch.stack([train_set[(step * 8 + k) % len(train_set)][1] for k in range(8)])
        terms = trainer.step(noisy_of(clean_lr(batch, 2), 100 + step), batch)
    assert set(terms) == {"loss", "consistency"}
    trained = trainer.generator.eval()
    with torch.no_grad():
        after = (trained(noisy) - teacher_clean).abs().mean().item()
        drift = (trained(clean) - teacher_clean).abs().mean().item()
    assert after < 0.8 * before, (before, after)  # measured: 0.0244 -> 0.0173
    assert drift < 0.5 * before, (drift, before)


def test_consistency_needs_starting_weights() -> None:
    with pytest.raises(ValueError, match="consistency_weight needs starting weights"):
        TrainConfig(consistency_weight=1.0)


@pytest.mark.parametrize(("sig", "code", "what"), [(signal.SIGINT, 130, "interrupted"),
                                                  (signal.SIGTERM, 143, "terminated")], ids=["ctrl-c", "sigterm"])
def test_ctrl_c_or_sigterm_saves_a_checkpoint_and_exits_with_one_line(tmp_path: Path, sig: int, code: int,
                                                                     what: str) -> None:
    # SIGTERM (a scheduler's stop, a reboot) is deferred to the step boundary like Ctrl-C, under plain python -m train.
    out = tmp_path / "run"
    env = os.environ | {"OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "train", "--hr", str(shared_path("images", "bench", "Set5")), "--scale", "2",
         "--num-feat", "8", "--num-conv", "1", "--patch-size", "32", "--batch-size", "2", "--steps", "100000",
         "--log-every", "1", "--num-workers", "0", "--device", "cpu", "--out", str(out)],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("step 3/"):
            break
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == code, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"upscale: error: {what}: checkpoint saved at step"), stderr
    step = torch.load(out / "checkpoint.pt", weights_only=True)["step"]
    assert 3 <= step < 100000 and f"step {step} " in lines[0]
    # ``--resume --out`` alone picks the run's saved config back up.
    result = CliRunner().invoke(main, ["train", "--resume", "--out", str(out), "--steps", str(step + 2)])
    assert result.exit_code == 0, result.output
    assert f"resumed from {out / 'checkpoint.pt'} at step {step}" in result.output
    assert load_model(out / "srvgg-x2.safetensors").params["num_feat"] == 8


def test_videos_fine_tune_from_the_cli(tmp_path: Path) -> None:
    clip = shared_path("clips", "realshort.mp4")
    start = tmp_path / "start.safetensors"
    torch.manual_seed(0)
    save_model(SRVGGNetCompact(num_feat=8, num_conv=2, upscale=2), start)
    out = tmp_path / "run"
    result = CliRunner().invoke(main, [
        "train", "--fine-tune", str(start), "--videos", str(clip), "--steps", "3", "--batch-size", "2",
        "--patch-size", "64", "--num-workers", "0", "--quiet", "--out", str(out)])
    assert result.exit_code == 0, result.output
    weights = out / "srvgg-x2.safetensors"  # arch and scale came from the fine-tuned file
    loaded = load_model(weights)
    assert (loaded.arch, loaded.scale, loaded.params["num_feat"], loaded.params["num_conv"]) == ("srvgg", 2, 8, 2)
    cfg = TrainConfig.from_toml(out / "config.toml")
    assert (cfg.degradation, cfg.video_codec_prob, cfg.videos) == ("realvideo", 0.0, clip)
    frame = np.full((24, 32, 3), 128, np.uint8)
    assert Upscaler(str(weights)).upscale_array(frame).shape == (48, 64, 3)


def test_config_round_trip_and_shipped_configs(tmp_path: Path) -> None:
    cfg = TrainConfig(stage="gan", arch="rrdb", num_block=6, hr_dirs=[Path("a"), Path("b")], betas=(0.5, 0.9),
                      perceptual_layers={"conv4_4": 0.5, "conv5_4": 1.0}, lr_milestones=[10, 20], val_dir=Path("v"))
    path = tmp_path / "c.toml"
    path.write_text(cfg.to_toml())
    assert TrainConfig.from_toml(path) == cfg
    assert (cfg.pixel_weight, cfg.perceptual_weight, cfg.adversarial_weight, cfg.lr) == (1e-2, 1.0, 5e-3, 1e-4)
    for shipped in sorted((REPO / "configs").glob("*.toml")):
        TrainConfig.from_toml(shipped)
    gan = TrainConfig.from_toml(REPO / "configs" / "srvgg-x4-gan.toml")
    assert gan.stage == "gan" and gan.pretrained == Path("weights/srvgg-x4-psnr.safetensors")


@pytest.mark.parametrize(("args", "message"), [
    (["--set", "stepz=3"], "unknown config keys: stepz"),
    (["--set", "steps=0"], "steps = 0: must be positive"),
    (["--set", "gan_loss=wasserstein"], "gan_loss = 'wasserstein': expected one of"),
    ([], "no training data"),
])
def test_config_errors_are_one_line(args: list[str], message: str) -> None:
    result = CliRunner().invoke(main, ["train", *args])
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr


def test_unknown_key_in_a_config_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('stage = "gan"\nadversarial_wieght = 1.0\n')
    with pytest.raises(ValueError, match="unknown config keys: adversarial_wieght"):
        TrainConfig.from_toml(path)


def _ssim_reference(a: np.ndarray, b: np.ndarray) -> float:
    """The SR-paper formula written out with OpenCV: Gaussian 11/1.5 filtering, valid region only."""
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    k = cv2.getGaussianKernel(11, 1.5)
    w = k @ k.T

    def f(x: np.ndarray) -> np.ndarray:
        return cv2.filter2D(x, -1, w)[5:-5, 5:-5]

    mu_a, mu_b = f(a), f(b)
    va, vb, cov = f(a * a) - mu_a**2, f(b * b) - mu_b**2, f(a * b) - mu_a * mu_b
    return float((((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (va + vb + c2))).mean())


def test_ssim_matches_the_reference_formula() -> None:
    hr = torch.from_numpy(cv2.cvtColor(cv2.imread(str(shared_path("images", "bench", "Set5", "bird.png"))),
                                       cv2.COLOR_BGR2RGB)).permute(2, 0, 1)[None].float() / 255
    noisy = (hr + 0.05 * torch.randn(hr.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    value = ssim(noisy, hr, crop_border=4)

    def y(x: torch.Tensor) -> np.ndarray:
        return (rgb_to_y(((x * 255).round() / 255).double()) * 255)[0, 0, 4:-4, 4:-4].numpy()

    assert value == pytest.approx(_ssim_reference(y(noisy), y(hr)), abs=1e-9)
    assert ssim(hr, hr) == 1.0 and 0.3 < value < 0.95

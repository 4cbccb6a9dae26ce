"""Stage-1 training on real images: the loss goes down and the exported file loads and upscales."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from click.testing import CliRunner
from conftest import shared_path

from train.config import TrainConfig
from train.data import BicubicDegradation, HRFolderDataset
from train.pretrain import build_generator, pretrain
from upscaler import Upscaler, load_model
from upscaler.cli import main


def test_thirty_steps_lower_the_loss(tmp_path: Path) -> None:
    hr_dir = shared_path("images", "bench", "Set14")
    cfg = TrainConfig(num_feat=16, num_conv=2, hr_dirs=[hr_dir], patch_size=64, batch_size=8, steps=30,
                      lr=2e-3, warmup_steps=1, out_dir=tmp_path / "run", checkpoint_every=1000)
    torch.manual_seed(0)
    held = HRFolderDataset([hr_dir], patch_size=64, scale=4, degradation=BicubicDegradation(4), seed=123)
    held_lr, held_hr = (torch.stack(t) for t in zip(*(held[i] for i in range(14)), strict=True))

    def held_loss(model: torch.nn.Module) -> float:
        with torch.no_grad():
            return (model(held_lr) - held_hr).abs().mean().item()

    torch.manual_seed(cfg.seed)
    before = held_loss(build_generator(cfg))
    weights = pretrain(cfg, log=lambda _: None)
    after = held_loss(load_model(weights).module)
    assert after < before * 0.9, (before, after)
    rows = (tmp_path / "run" / "metrics.csv").read_text().splitlines()
    assert rows[0].startswith("step,loss") and len(rows) == 2


def test_train_cli_writes_weights_the_upscaler_loads(tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = CliRunner().invoke(main, [
        "train", "--hr", str(shared_path("images", "bench", "Set5")), "--scale", "2", "--num-feat", "8",
        "--num-conv", "1", "--patch-size", "32", "--batch-size", "2", "--steps", "5", "--out", str(out)])
    assert result.exit_code == 0, result.output
    weights = out / "srvgg-x2.safetensors"
    loaded = load_model(weights)
    assert (loaded.arch, loaded.scale, loaded.params["num_feat"]) == ("srvgg", 2, 8)
    assert "config" in loaded.metadata
    frame = np.zeros((10, 12, 3), np.uint8)
    assert Upscaler(str(weights)).upscale_array(frame).shape == (20, 24, 3)


def test_fresh_srvgg_gets_gradient_at_its_first_layer() -> None:
    # With PyTorch's default init the 16-conv PReLU stack passes ~1e-10 gradients to its first layer and
    # training sits at nearest-neighbour quality; the trainer's He init must keep them alive.
    torch.manual_seed(0)
    model = build_generator(TrainConfig(num_feat=64, num_conv=16))
    x, y = torch.rand(2, 3, 16, 16), torch.rand(2, 3, 64, 64)
    (model(x) - y).abs().mean().backward()
    assert model.body[0].weight.grad.abs().mean() > 1e-5

"""Stage 1: PSNR-oriented training of the generator with a pixel loss (ESRGAN's pre-training stage)."""

from __future__ import annotations

import csv
import math
import random
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from upscaler.archs.srvgg import SRVGGNetCompact

from .checkpoint import export_weights, load_checkpoint, save_checkpoint
from .config import TrainConfig
from .data.paired import PairedPatches
from .losses.pixel import pixel_loss
from .validate import validate


def build_generator(cfg: TrainConfig) -> nn.Module:
    if cfg.arch == "srvgg":
        model = SRVGGNetCompact(num_feat=cfg.num_feat, num_conv=cfg.num_conv, upscale=cfg.scale)
        init_srvgg(model)
        return model
    raise ValueError(f"unknown arch {cfg.arch!r} for training (srvgg)")


def init_srvgg(model: SRVGGNetCompact) -> None:
    """He init for the PReLU stack, last conv scaled down.

    PyTorch's default conv init shrinks activations by ~0.6 per layer, so through 16 layers the residual
    branch starts near zero and the first layers get ~1e-10 gradients: training sits at nearest-neighbour
    quality for thousands of steps. He init keeps the signal alive; the 0.1 on the last conv starts the
    network close to its nearest-neighbour skip instead of adding noise to it.
    """
    convs = [m for m in model.body if isinstance(m, nn.Conv2d)]
    for conv in convs:
        nn.init.kaiming_normal_(conv.weight, a=0.25, nonlinearity="leaky_relu")
        nn.init.zeros_(conv.bias)
    convs[-1].weight.data.mul_(0.1)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up, then cosine decay to ``min_lr_ratio * lr``."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    t = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    floor = cfg.min_lr_ratio
    return cfg.lr * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, t))))


def pretrain(cfg: TrainConfig, log: callable = print) -> Path:
    """Train and return the path of the exported ``.safetensors``."""
    seed_everything(cfg.seed)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = build_generator(cfg).to(device)
    if cfg.fine_tune:
        from upscaler.model_loading import load_model

        model.load_state_dict(load_model(cfg.fine_tune).module.state_dict())
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=cfg.betas)
    criterion = pixel_loss(cfg.pixel_loss)
    data = PairedPatches(cfg.hr_dirs, cfg.patch_size, cfg.scale, seed=cfg.seed)
    cfg.out_dir.mkdir(parents=True, exist_ok=True)
    ckpt_path = cfg.out_dir / "checkpoint.pt"

    start = 0
    if cfg.resume and ckpt_path.exists():
        state = load_checkpoint(ckpt_path)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        start = int(state["step"])
        data.rng.bit_generator.state = state["data_rng"]
        torch.set_rng_state(state["torch_rng"])

    def checkpoint(step: int) -> None:
        save_checkpoint(ckpt_path, {
            "model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step,
            "data_rng": data.rng.bit_generator.state, "torch_rng": torch.get_rng_state(),
        })

    metrics_file = cfg.out_dir / "metrics.csv"
    new_file = not metrics_file.exists() or start == 0
    with open(metrics_file, "w" if new_file else "a", newline="") as f:
        writer = csv.writer(f)
        if new_file:
            writer.writerow(["step", "loss", "lr", "val_psnr_y", "val_bicubic_psnr_y", "seconds"])
        t0 = time.time()
        running = 0.0
        step = start
        try:
            for step in range(start, cfg.steps):
                for group in optimizer.param_groups:
                    group["lr"] = lr_at(step, cfg)
                lr_batch, hr_batch = data.batch(cfg.batch_size)
                loss = criterion(model(lr_batch.to(device)), hr_batch.to(device))
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                running += loss.item()
                done = step + 1
                if done % 50 == 0 or done == cfg.steps:
                    n = 50 if done % 50 == 0 else done % 50
                    val = ("", "")
                    if cfg.val_dir and (done % cfg.val_every == 0 or done == cfg.steps):
                        val = validate(model, cfg.val_dir, cfg.scale)
                    elapsed = time.time() - t0
                    writer.writerow([done, f"{running / n:.5f}", f"{lr_at(step, cfg):.3g}", *val, f"{elapsed:.0f}"])
                    f.flush()
                    rate = (done - start) / elapsed
                    eta = (cfg.steps - done) / rate if rate else 0
                    extra = f" val PSNR-Y {val[0]:.2f} dB (bicubic {val[1]:.2f})" if val[0] != "" else ""
                    log(f"step {done}/{cfg.steps} loss {running / n:.4f} {rate:.2f} it/s ETA {eta / 60:.1f} min{extra}")
                    running = 0.0
                if done % cfg.checkpoint_every == 0:
                    checkpoint(done)
        except KeyboardInterrupt:
            checkpoint(step)
            log(f"interrupted: checkpoint saved at step {step} in {ckpt_path}")
            raise
    checkpoint(cfg.steps)
    out = cfg.out_dir / f"{cfg.arch}-x{cfg.scale}.safetensors"
    export_weights(model.cpu().eval(), out, cfg.to_dict())
    log(f"wrote {out}")
    return out

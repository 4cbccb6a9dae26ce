"""The training loop of both ESRGAN stages: PSNR-oriented pre-training (pixel loss), then GAN training.

Each GAN step updates D on (real, detached fake), then G on the weighted sum of pixel, perceptual, TV and
adversarial terms with D frozen. Runs on one device or, under ``torchrun``, as DistributedDataParallel with
sharded data; rank 0 alone writes checkpoints, metrics, validation grids and the exported weights.
"""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from upscaler.engine import cpu_bf16_is_fast

from .builders import build_dataset, build_discriminator, initial_generator
from .checkpoint import CHECKPOINT_NAME, export_weights, load_checkpoint, rng_state, save_checkpoint, set_rng_state
from .config import TrainConfig
from .data import (
    infinite_batches,
    make_loader,
)
from .distributed import DistContext, any_rank, barrier, init_distributed, mean_over_ranks, shutdown, wrap
from .ema import EMA
from .losses import (
    CleanConsistencyLoss,
    PerceptualLoss,
    TVLoss,
    gan_loss,
    gradient_penalty,
    grid_loss,
    pixel_loss,
)
from .run_log import MetricsLog, RunProgress, format_eta
from .schedule import LRSchedule, load_scheduler_position
from .validate import ValResult, validate

Log = Callable[[str], None]

# --- one training step ---------------------------------------------------------------------------------------


class Trainer:
    """Networks, losses, optimisers and schedulers of a run, and one step of it; ``state_dict`` is what a
    checkpoint holds. ``generator``/``discriminator`` are the bare modules, ``*_ddp`` the (maybe) wrapped ones."""

    def __init__(self, cfg: TrainConfig, ctx: DistContext, generator: nn.Module) -> None:
        self.cfg = cfg
        device = ctx.device
        self.generator = generator.to(device).train()
        self.generator_ddp = wrap(self.generator, ctx)
        self.discriminator: nn.Module | None = None
        self.discriminator_ddp: nn.Module | None = None
        if cfg.adversarial_weight:
            self.discriminator = build_discriminator(cfg).to(device).train()
            self.discriminator_ddp = wrap(self.discriminator, ctx)
        # After wrapping: DDP has broadcast rank 0's weights, so every rank's average starts equal.
        self.ema = EMA(self.generator, cfg.ema_decay) if cfg.ema_decay else None
        self.pixel = pixel_loss(cfg.pixel_loss).to(device)
        self.perceptual = None
        if cfg.perceptual_weight:
            self.perceptual = PerceptualLoss(cfg.perceptual_layers, cfg.perceptual_criterion, cfg.style_weight,
                                             cfg.perceptual_feature_scale, cfg.vgg_weights).to(device)
        self.tv = TVLoss(cfg.tv_kind) if cfg.tv_weight else None  # type: ignore[arg-type]
        # The teacher is G as built, i.e. the starting weights: a resumed run loads its checkpoint after this.
        self.consistency = CleanConsistencyLoss(self.generator, cfg.scale) if cfg.consistency_weight else None
        self.gan = gan_loss(cfg.gan_loss) if self.discriminator is not None else None  # type: ignore[arg-type]

        schedule = LRSchedule.from_config(cfg)
        self.opt_g = torch.optim.Adam(self.generator.parameters(), lr=cfg.lr, betas=cfg.betas,
                                      weight_decay=cfg.weight_decay)
        self.sched_g = torch.optim.lr_scheduler.LambdaLR(self.opt_g, schedule)
        self.opt_d = self.sched_d = None
        if self.discriminator is not None:
            self.opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=cfg.d_lr, betas=cfg.betas,
                                          weight_decay=cfg.weight_decay)
            self.sched_d = torch.optim.lr_scheduler.LambdaLR(self.opt_d, schedule)

        cuda_amp = device.type == "cuda" and cfg.amp != "off"
        self.amp_dtype = torch.float16 if cfg.amp == "fp16" else torch.bfloat16
        # bf16 autocast on CPUs whose bf16 convolutions are fast (AMX): about half the time of an fp32 step. fp16
        # on a CPU has no fast kernels, and without AMX bf16 is emulated and slower than fp32.
        self.amp = cuda_amp or (device.type == "cpu" and cfg.amp == "bf16" and cpu_bf16_is_fast())
        if device.type == "cpu":
            # oneDNN's fast (AMX) convolutions want channels_last; without it bf16 gains little.
            for module in (self.generator, self.discriminator):
                if module is not None:
                    module.to(memory_format=torch.channels_last)
        # Loss scaling only for fp16 (bf16 has fp32's range); one scaler per optimiser so an overflow in D's
        # backward does not shrink G's scale.
        self.scaler_g = torch.amp.GradScaler(device.type, enabled=cuda_amp and cfg.amp == "fp16")
        self.scaler_d = torch.amp.GradScaler(device.type, enabled=cuda_amp and cfg.amp == "fp16")
        self.device = device

    @property
    def loss_names(self) -> list[str]:
        """The terms ``step`` reports, in CSV column order; "loss" is G's weighted total."""
        names = ["loss"]
        names += ["pixel"] if self.cfg.pixel_weight else []
        names += ["perceptual"] if self.perceptual is not None else []
        names += ["style"] if self.perceptual is not None and self.cfg.style_weight else []
        names += ["tv"] if self.tv is not None else []
        names += ["grid"] if self.cfg.grid_weight else []
        names += ["consistency"] if self.consistency is not None else []
        if self.gan is not None:
            names += ["adversarial", "d_loss", "d_real", "d_fake"]
            names += ["gp"] if self.gan.kind == "wgan" else []
        return names

    @property
    def export_model(self) -> nn.Module:
        """What is validated and shipped: the EMA weights when kept, else G itself."""
        return self.ema.module if self.ema is not None else self.generator

    def _autocast(self) -> AbstractContextManager[Any]:
        return torch.autocast(self.device.type, dtype=self.amp_dtype) if self.amp else nullcontext()

    def _update(self, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler, loss: torch.Tensor,
                module: nn.Module) -> None:
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        if self.cfg.grad_clip:
            scaler.unscale_(optimizer)  # clip the true gradients, not the loss-scaled ones
            torch.nn.utils.clip_grad_norm_(module.parameters(), self.cfg.grad_clip)
        scaler.step(optimizer)
        scaler.update()

    def step(self, lr: torch.Tensor, hr: torch.Tensor) -> dict[str, torch.Tensor]:
        """One update of D (if any) then G; returns the detached loss terms."""
        lr = lr.to(self.device, non_blocking=True)
        hr = hr.to(self.device, non_blocking=True)
        with self._autocast():
            fake = self.generator_ddp(lr)
        terms: dict[str, torch.Tensor] = {}
        if self.discriminator is not None:
            terms |= self._discriminator_step(hr, fake.detach())
        terms |= self._generator_step(hr, fake)
        if self.ema is not None:
            self.ema.update(self.generator)
        self.sched_g.step()
        if self.sched_d is not None:
            self.sched_d.step()
        return terms

    def _discriminator_step(self, hr: torch.Tensor, fake: torch.Tensor) -> dict[str, torch.Tensor]:
        assert self.discriminator is not None and self.discriminator_ddp is not None
        assert self.gan is not None and self.opt_d is not None
        self.discriminator.requires_grad_(True)
        with self._autocast():
            # Separate forwards, as SRGAN/ESRGAN: one batch of both would let BatchNorm mix their statistics.
            real_logits = self.discriminator_ddp(hr)
            fake_logits = self.discriminator_ddp(fake)
            loss = self.gan.d_loss(real_logits, fake_logits)
        terms = {"d_loss": loss.detach(), "d_real": real_logits.detach().float().mean(),
                 "d_fake": fake_logits.detach().float().mean()}
        if self.gan.kind == "wgan":
            # On the bare module (DDP does not support the double backward) and in fp32 for a stable gradient
            # norm; its gradients still reach DDP's all-reduce through the one backward below.
            gp = gradient_penalty(self.discriminator, hr.float(), fake.float(), self.cfg.gp_weight)
            loss = loss + gp
            terms["gp"] = gp.detach()
        self._update(self.opt_d, self.scaler_d, loss, self.discriminator)
        return terms

    def _generator_step(self, hr: torch.Tensor, fake: torch.Tensor) -> dict[str, torch.Tensor]:
        cfg = self.cfg
        terms: dict[str, torch.Tensor] = {}
        total = hr.new_zeros(())
        if self.discriminator is not None:
            # Frozen, and called bare: no gradient for D's weights and no DDP bookkeeping for a non-update.
            self.discriminator.requires_grad_(False)
        with self._autocast():
            if cfg.pixel_weight:
                terms["pixel"] = self.pixel(fake.float(), hr)
                total = total + cfg.pixel_weight * terms["pixel"]
            if self.perceptual is not None:
                content, style = self.perceptual(fake, hr)
                terms["perceptual"] = content
                total = total + cfg.perceptual_weight * content
                if cfg.style_weight:
                    terms["style"] = style
                    total = total + cfg.perceptual_weight * style
            if self.tv is not None:
                terms["tv"] = self.tv(fake.float())
                total = total + cfg.tv_weight * terms["tv"]
            if cfg.grid_weight:
                terms["grid"] = grid_loss(fake.float(), cfg.scale)
                total = total + cfg.grid_weight * terms["grid"]
            if self.consistency is not None:
                terms["consistency"] = self.consistency(fake, hr)
                total = total + cfg.consistency_weight * terms["consistency"]
            if self.discriminator is not None and self.gan is not None:
                real_logits = None
                if self.gan.relativistic:
                    with torch.no_grad():  # RaGAN's G side compares with D's real logits, detached
                        real_logits = self.discriminator(hr)
                terms["adversarial"] = self.gan.g_loss(real_logits, self.discriminator(fake))
                total = total + cfg.adversarial_weight * terms["adversarial"]
        self._update(self.opt_g, self.scaler_g, total, self.generator)
        if self.discriminator is not None:
            self.discriminator.requires_grad_(True)
        terms["loss"] = total
        return {k: v.detach().float() for k, v in terms.items()}

    def state_dict(self) -> dict[str, Any]:
        def sd(x: Any) -> Any:
            return x.state_dict() if x is not None else None

        return {
            "generator": self.generator.state_dict(), "discriminator": sd(self.discriminator), "ema": sd(self.ema),
            "opt_g": self.opt_g.state_dict(), "opt_d": sd(self.opt_d),
            "sched_g": self.sched_g.state_dict(), "sched_d": sd(self.sched_d),
            "scaler_g": self.scaler_g.state_dict(), "scaler_d": self.scaler_d.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for name in ("discriminator", "ema"):
            if (state[name] is None) != (getattr(self, name) is None):
                have = "has" if state[name] is not None else "has no"
                raise ValueError(f"the checkpoint {have} {name} state but this config "
                                 f"{'does not use' if state[name] is not None else 'uses'} one")
        self.generator.load_state_dict(state["generator"])
        self.opt_g.load_state_dict(state["opt_g"])
        load_scheduler_position(self.sched_g, state["sched_g"])
        self.scaler_g.load_state_dict(state["scaler_g"])
        if self.ema is not None:
            self.ema.load_state_dict(state["ema"])
        if self.discriminator is not None:
            assert self.opt_d is not None and self.sched_d is not None
            self.discriminator.load_state_dict(state["discriminator"])
            self.opt_d.load_state_dict(state["opt_d"])
            load_scheduler_position(self.sched_d, state["sched_d"])
            self.scaler_d.load_state_dict(state["scaler_d"])


# --- run plumbing: interrupts, metrics, progress -------------------------------------------------------------


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C (or a KeyboardInterrupt from a hook): a checkpoint was saved; the message says where."""


class _DeferredInterrupt:
    """The first Ctrl-C (or SIGTERM) lets the current step finish, so the checkpoint sits on a step boundary and
    ``--resume`` replays exactly; a second one interrupts at once. Only the main thread can own the handlers."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.requested = False
        self.terminated = False  # SIGTERM, not Ctrl-C: exit 143
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _DeferredInterrupt:
        if threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                self._previous[sig] = signal.getsignal(sig)
                signal.signal(sig, self._handle)
        return self

    def interrupt(self) -> KeyboardInterrupt:
        from upscaler.errors import Terminated

        return Terminated() if self.terminated else KeyboardInterrupt()

    def _handle(self, signum: int, frame: Any) -> None:
        self.terminated |= signum == signal.SIGTERM
        if self.requested:
            raise self.interrupt()
        self.requested = True

    def __exit__(self, *exc: object) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)


@dataclass
class StepReport:
    """Passed to ``on_step`` after every completed step (``step`` = steps done so far)."""

    step: int
    losses: dict[str, float]
    lr: float
    hr: torch.Tensor  # this rank's HR batch


@dataclass
class TrainResult:
    weights: Path | None  # the exported .safetensors (rank 0; None on other ranks)
    generator: nn.Module  # the trained G, bare, on its device
    ema: nn.Module | None  # its EMA copy when kept (what was exported)
    steps: int


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _configure_backends(cfg: TrainConfig, device: torch.device) -> None:
    if device.type != "cuda":
        return
    torch.backends.cudnn.benchmark = not cfg.deterministic  # fixed patch shapes: autotuned kernels pay off
    if cfg.deterministic:
        torch.backends.cudnn.deterministic = True
        torch.use_deterministic_algorithms(True, warn_only=True)


def _next_batch(batches: Iterator[tuple[torch.Tensor, torch.Tensor]], stop: _DeferredInterrupt
                ) -> tuple[torch.Tensor, torch.Tensor]:
    try:
        return next(batches)
    except RuntimeError:
        # Ctrl-C in a terminal also reaches the DataLoader workers, which exit; the loader then reports them dead.
        if stop.requested:
            raise stop.interrupt() from None
        raise


# --- the run -------------------------------------------------------------------------------------------------


def train(cfg: TrainConfig, log: Log = print, *, progress: bool = False,
          on_step: Callable[[StepReport], None] | None = None) -> TrainResult:
    """Run (or, with ``cfg.resume``, continue) a training run; return the exported weights and the networks.

    ``log`` receives one-line messages (rank 0 only); ``progress`` shows a rich progress line. A
    KeyboardInterrupt — Ctrl-C, or raised by ``on_step`` — saves a checkpoint and raises TrainingInterrupted.
    Configuration and data problems raise ValueError (or upscaler's ModelLoadError) with a one-line message.
    """
    cfg.require_data()
    if cfg.val_dir is not None and not cfg.val_dir.is_dir():
        raise ValueError(f"val_dir {cfg.val_dir}: no such folder")
    ctx = init_distributed(cfg.device)
    try:
        return _run(cfg, ctx, log if ctx.is_main else (lambda _: None), progress and ctx.is_main, on_step)
    finally:
        shutdown(ctx)


def _run(cfg: TrainConfig, ctx: DistContext, log: Log, progress: bool,
         on_step: Callable[[StepReport], None] | None) -> TrainResult:
    seed_everything(cfg.seed)  # the same on every rank: identical initial weights
    _configure_backends(cfg, ctx.device)
    cfg, generator = initial_generator(cfg, log)
    trainer = Trainer(cfg, ctx, generator)
    if trainer.amp:
        log(f"{'bf16' if trainer.amp_dtype == torch.bfloat16 else 'fp16'} autocast on {ctx.device.type}")
    dataset = build_dataset(cfg, ctx.world_size, log)
    workers = min(cfg.num_workers, os.cpu_count() or 1)  # more workers than cores only adds contention
    loader = make_loader(dataset, cfg.batch_size, workers, cfg.seed, distributed=ctx.distributed)
    # Each new DataLoader iterator draws a worker base seed, by default from the global torch RNG; a private
    # generator keeps that draw from shifting the RNG stream a resumed run restores (e.g. WGAN-GP's mixing).
    loader.generator = torch.Generator().manual_seed(cfg.seed)

    out_dir = cfg.out_dir
    ckpt_path = out_dir / CHECKPOINT_NAME
    start = 0
    if cfg.resume and ckpt_path.exists():
        state = load_checkpoint(ckpt_path)
        try:
            trainer.load_state_dict(state)
        except (RuntimeError, KeyError) as exc:
            raise ValueError(f"{ckpt_path}: does not match this config "
                             f"({str(exc).strip().splitlines()[0]})") from None
        except ValueError as exc:
            raise ValueError(f"{ckpt_path}: {exc}") from None
        set_rng_state(state["rng"])
        start = int(state["step"])
        log(f"resumed from {ckpt_path} at step {start}")
    elif cfg.resume:
        log(f"no checkpoint in {out_dir}; starting from step 0")

    metrics = None
    if ctx.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "config.toml").write_text(cfg.to_toml())
        val_columns = ["val_psnr_y", "val_ssim", "bicubic_psnr_y", "bicubic_ssim"] if cfg.val_dir else []
        metrics = MetricsLog(out_dir / "metrics.csv",
                             ["step", *trainer.loss_names, "lr", *val_columns, "seconds", "it_per_s"], start)

    def checkpoint(step: int) -> None:
        if ctx.is_main:
            save_checkpoint(ckpt_path, {"step": step, "stage": cfg.stage, "config": cfg.to_dict(),
                                        "rng": rng_state(), **trainer.state_dict()})

    names = trainer.loss_names
    sums = torch.zeros(len(names), device=ctx.device)
    count = 0
    done = start
    t_run = t_last = time.perf_counter()
    last_done = start
    batches = infinite_batches(loader, start)
    with _DeferredInterrupt() as stop, RunProgress(progress, cfg.steps, start) as bar:
        try:
            while done < cfg.steps:
                if any_rank(stop.requested, ctx):
                    raise stop.interrupt()
                lr_batch, hr_batch = _next_batch(batches, stop)
                terms = trainer.step(lr_batch, hr_batch)
                done += 1
                sums += torch.stack([terms[n] for n in names])
                count += 1
                current_lr = trainer.opt_g.param_groups[0]["lr"]
                validate_now = cfg.val_dir is not None and (done % cfg.val_every == 0 or done == cfg.steps)
                if done % cfg.log_every == 0 or done == cfg.steps or validate_now:
                    means = (mean_over_ranks(sums, ctx) / count).tolist()  # every rank takes part
                    now = time.perf_counter()
                    rate = (done - last_done) / max(now - t_last, 1e-9)
                    row: dict[str, Any] = {"step": done, **dict(zip(names, means, strict=True)), "lr": current_lr,
                                           "seconds": round(now - t_run, 1), "it_per_s": rate}
                    summary = " ".join(f"{n} {v:.4g}" for n, v in zip(names, means, strict=True))
                    eta = format_eta((cfg.steps - done) / rate)
                    log(f"step {done}/{cfg.steps} {summary} lr {current_lr:.3g} {rate:.2f} it/s ETA {eta}")
                    bar.update(done, f"loss {means[0]:.4g}  {rate:.2f} it/s  ETA {eta}")
                    if validate_now and ctx.is_main:
                        assert cfg.val_dir is not None
                        result = validate(trainer.export_model, cfg.val_dir, cfg.scale,
                                          grid_path=out_dir / "val" / f"step_{done:07d}.png")
                        row |= _val_columns(result)
                        log(f"step {done}: {result}")
                    if metrics is not None:
                        metrics.write(row)
                    sums.zero_()
                    count = 0
                    t_last, last_done = time.perf_counter(), done
                else:
                    bar.update(done)
                if done % cfg.checkpoint_every == 0 and done < cfg.steps:
                    checkpoint(done)
                if on_step is not None:
                    on_step(StepReport(done, {k: float(v) for k, v in terms.items()}, current_lr, hr_batch))
        except KeyboardInterrupt:
            checkpoint(done)
            where = f"checkpoint saved at step {done} in {ckpt_path}" if ctx.is_main else f"stopped at step {done}"
            what = "terminated" if stop.terminated else "interrupted"
            raise TrainingInterrupted(f"{what}: {where}; continue with --resume") from None

    checkpoint(done)
    weights = None
    if ctx.is_main:
        suffix = "-gan" if cfg.stage == "gan" else ""
        weights = out_dir / f"{cfg.arch}-x{cfg.scale}{suffix}.safetensors"
        export_weights(trainer.export_model, weights, cfg.to_dict(), stage=cfg.stage, steps=str(done))
        log(f"wrote {weights}")
    barrier(ctx)
    return TrainResult(weights, trainer.generator, trainer.ema.module if trainer.ema else None, done)


def _val_columns(result: ValResult) -> dict[str, float]:
    return {"val_psnr_y": result.psnr_y, "val_ssim": result.ssim,
            "bicubic_psnr_y": result.bicubic_psnr_y, "bicubic_ssim": result.bicubic_ssim}

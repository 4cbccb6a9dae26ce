"""Adversarial losses: one interface, a discriminator side and a generator side.

Discriminators output raw logits C(x) (no sigmoid), of any shape (N, ...): one per image, per patch or per
pixel; the losses average over every element. With r = C(real) and f = C(fake):

- ``loss.d_loss(r, f)`` is minimised by the discriminator; pass ``f`` computed from a *detached* fake.
- ``loss.g_loss(r, f)`` is minimised by the generator. Only relativistic kinds (``loss.relativistic``) use
  ``r``; pass it detached (the caller detaches; D is not updated by the G step), or ``None`` otherwise.

All losses are computed in float32, so fp16 logits from autocast are fine.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

GANKind = Literal["vanilla", "lsgan", "wgan", "hinge", "softplus", "ragan"]
GAN_KINDS: tuple[str, ...] = ("vanilla", "lsgan", "wgan", "hinge", "softplus", "ragan")


def _bce(logits: torch.Tensor, target: float) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))


class GANLoss:
    """Base class; use :func:`gan_loss` or a subclass."""

    kind: str = ""
    relativistic: bool = False

    def d_loss(self, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def g_loss(self, real_logits: torch.Tensor | None, fake_logits: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class VanillaGANLoss(GANLoss):
    """D: BCE(r, 1) + BCE(f, 0); G: BCE(f, 1), the non-saturating −log D(G(z))."""

    kind = "vanilla"

    def d_loss(self, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
        return _bce(real_logits.float(), 1.0) + _bce(fake_logits.float(), 0.0)

    def g_loss(self, real_logits: torch.Tensor | None, fake_logits: torch.Tensor) -> torch.Tensor:
        return _bce(fake_logits.float(), 1.0)


class LSGANLoss(GANLoss):
    """D: mean((r − 1)²) + mean(f²); G: mean((f − 1)²)."""

    kind = "lsgan"

    def d_loss(self, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
        return (real_logits.float() - 1).pow(2).mean() + fake_logits.float().pow(2).mean()

    def g_loss(self, real_logits: torch.Tensor | None, fake_logits: torch.Tensor) -> torch.Tensor:
        return (fake_logits.float() - 1).pow(2).mean()


class WGANLoss(GANLoss):
    """D: −mean(r) + mean(f) (add :func:`gradient_penalty`); G: −mean(f)."""

    kind = "wgan"

    def d_loss(self, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
        return -real_logits.float().mean() + fake_logits.float().mean()

    def g_loss(self, real_logits: torch.Tensor | None, fake_logits: torch.Tensor) -> torch.Tensor:
        return -fake_logits.float().mean()


class HingeGANLoss(GANLoss):
    """D: mean(relu(1 − r)) + mean(relu(1 + f)); G: −mean(f)."""

    kind = "hinge"

    def d_loss(self, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
        return F.relu(1 - real_logits.float()).mean() + F.relu(1 + fake_logits.float()).mean()

    def g_loss(self, real_logits: torch.Tensor | None, fake_logits: torch.Tensor) -> torch.Tensor:
        return -fake_logits.float().mean()


class SoftplusGANLoss(GANLoss):
    """D: mean(softplus(−r)) + mean(softplus(f)); G: mean(softplus(−f)) (StyleGAN's logistic loss)."""

    kind = "softplus"

    def d_loss(self, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
        return F.softplus(-real_logits.float()).mean() + F.softplus(fake_logits.float()).mean()

    def g_loss(self, real_logits: torch.Tensor | None, fake_logits: torch.Tensor) -> torch.Tensor:
        return F.softplus(-fake_logits.float()).mean()


class RaGANLoss(GANLoss):
    """Relativistic average GAN (ESRGAN): D_Ra(a, b) = σ(C(a) − mean₀ C(b)).

    The mean is over the batch axis only, so each logit of a patch/pixel discriminator is compared with the
    batch average at the *same* position. D: −E log D_Ra(r, f) − E log(1 − D_Ra(f, r)); G: the labels swap,
    so G gets gradients through both terms. Written as BCE-with-logits for stability. Note BasicSR halves
    each side (averages the two terms); here they are summed, as in the paper's formulas.
    """

    kind = "ragan"
    relativistic = True

    @staticmethod
    def _relative(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        r, f = real_logits.float(), fake_logits.float()
        if r.shape[1:] != f.shape[1:]:
            raise ValueError(f"real and fake logits differ in shape: {tuple(r.shape)} vs {tuple(f.shape)}")
        return r - f.mean(dim=0, keepdim=True), f - r.mean(dim=0, keepdim=True)

    def d_loss(self, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
        real_vs_fake, fake_vs_real = self._relative(real_logits, fake_logits)
        return _bce(real_vs_fake, 1.0) + _bce(fake_vs_real, 0.0)

    def g_loss(self, real_logits: torch.Tensor | None, fake_logits: torch.Tensor) -> torch.Tensor:
        if real_logits is None:
            raise ValueError("RaGAN's generator loss needs the (detached) real logits")
        real_vs_fake, fake_vs_real = self._relative(real_logits, fake_logits)
        return _bce(real_vs_fake, 0.0) + _bce(fake_vs_real, 1.0)


def gan_loss(kind: GANKind) -> GANLoss:
    """The adversarial loss of the given kind (see the module docstring for the calling convention)."""
    if kind == "vanilla":
        return VanillaGANLoss()
    if kind == "lsgan":
        return LSGANLoss()
    if kind == "wgan":
        return WGANLoss()
    if kind == "hinge":
        return HingeGANLoss()
    if kind == "softplus":
        return SoftplusGANLoss()
    if kind == "ragan":
        return RaGANLoss()
    raise ValueError(f"unknown GAN loss {kind!r} ({', '.join(GAN_KINDS)})")


def gradient_penalty(
    discriminator: torch.nn.Module, real: torch.Tensor, fake: torch.Tensor, weight: float = 10.0
) -> torch.Tensor:
    """WGAN-GP: weight · mean((‖∇ₓ D(x̂)‖₂ − 1)²), x̂ uniformly on the line between each real/fake pair.

    ``fake`` is detached here; the penalty's graph reaches D's parameters (call backward on it with the
    D loss). The gradient norm is per sample, over all non-batch dimensions.
    """
    if real.shape != fake.shape:
        raise ValueError(f"real and fake differ in shape: {tuple(real.shape)} vs {tuple(fake.shape)}")
    alpha = torch.rand((real.shape[0],) + (1,) * (real.dim() - 1), device=real.device, dtype=real.dtype)
    x_hat = (alpha * real.detach() + (1 - alpha) * fake.detach()).requires_grad_(True)
    out = discriminator(x_hat)
    (grad,) = torch.autograd.grad(out.float().sum(), x_hat, create_graph=True)
    norm = grad.float().flatten(1).norm(2, dim=1)
    return weight * (norm - 1).pow(2).mean()

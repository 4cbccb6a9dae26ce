"""Training configuration: one typed dataclass for both stages; bad keys or values fail at load time, not mid-run.

Fields left at ``None`` take a default that depends on ``stage`` (resolved in ``__post_init__``):

=================== ========== ==========
field               psnr       gan
=================== ========== ==========
pixel_weight        1          1e-2
perceptual_weight   0          1
adversarial_weight  0          5e-3
lr                  2e-4       1e-4
lr_schedule         cosine     step
=================== ========== ==========

and ``degradation`` depends on the data: bicubic for image folders, realvideo when ``videos`` is given (real
footage is blurred, noisy and compressed: train/data/clip_degradation.py, H.264 over runs of consecutive frames).
``video_codec_prob`` (a per-patch H.264 pass after bicubic or realesrgan) defaults to 0; realvideo has its own.
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

STAGES = ("psnr", "gan")
ARCHS = ("srvgg", "rrdb", "msrresnet", "srresnet")
DISCRIMINATORS = ("vgg", "patchgan", "unet")
GAN_LOSSES = ("vanilla", "lsgan", "wgan", "hinge", "softplus", "ragan")
DEGRADATIONS = ("bicubic", "realesrgan", "realvideo")
PIXEL_LOSSES = ("l1", "mse", "l2", "charbonnier")
SCHEDULES = ("step", "cosine")
AMP_MODES = ("bf16", "fp16", "off")
DEVICES = ("auto", "cpu", "cuda")
TV_KINDS = ("squared", "beta", "l1")

# ESRGAN's milestones (50k, 100k, 200k, 300k of 400k iterations) as fractions of ``steps``.
ESRGAN_MILESTONE_FRACTIONS = (0.125, 0.25, 0.5, 0.75)

# SRGAN divides VGG features by 12.75. With the shared Caffe-scale VGG19 this puts the default perceptual term
# where ESRGAN's is. Measured on 8 BSDS500 128-px patches (x4, bicubic LR): conv5_4 has mean |feature| ~30 and
# the L1 between bicubic (or an early PSNR model's) output and HR is 15-19, so 15-19 / 12.75 = 1.2-1.5 — the
# range of ESRGAN's logged perceptual loss (~1-2 with torchvision's VGG) at weight 1. The other default terms
# then sit where ESRGAN has them: pixel 1e-2 x L1 ~0.04 = 4e-4, adversarial 5e-3 x RaGAN ~1.39 = 7e-3.
DEFAULT_FEATURE_SCALE = 1 / 12.75


@dataclass
class TrainConfig:
    # --- Stage: "psnr" (pixel loss only, ESRGAN's pre-training) or "gan" (perceptual + adversarial) ---
    stage: str = "psnr"
    # --- Generator (built as upscaler.archs.by_name(arch).build(params)); None = the class default ---
    arch: str = "srvgg"
    scale: int = 4
    num_feat: int = 64
    num_conv: int = 16  # srvgg
    num_block: int | None = None  # rrdb (23), srresnet / msrresnet (16)
    num_grow_ch: int | None = None  # rrdb (32)
    pretrained: Path | None = None  # initial G weights (same arch), e.g. the PSNR model for the GAN stage
    fine_tune: Path | None = None  # start from these weights; arch, scale and params are read from the file
    # --- Data: HR folders (LR made on the fly), paired LR/HR folders, and/or the user's videos ---
    hr_dirs: list[Path] = field(default_factory=list)
    lr_dir: Path | None = None
    hr_dir: Path | None = None
    videos: Path | None = None  # a video file or a folder of them; frames sampled with sample_video_frames
    pairs_dirs: list[Path] = field(default_factory=list)  # pre-degraded patch stores (python -m train.make_pairs)
    video_frames_per_video: int = 50
    video_min_interval_s: float = 1.0
    degradation: str | None = None  # bicubic | realesrgan (per patch) | realvideo (per clip, H.264 included)
    video_codec_prob: float | None = None  # bicubic/realesrgan: chance an LR patch is re-encoded with H.264
    clip_frames: int = 6  # realvideo: frames per degraded clip (video runs are this long)
    hr_downscale: int = 1  # realvideo: antialiased ÷N of HR images and frames first (removes their own artefacts)
    patch_size: int = 128  # HR crop side; a multiple of scale
    patches_per_image: int = 1
    batch_size: int = 16  # per process
    num_workers: int = 4
    # --- Loss weights ---
    pixel_loss: str = "l1"
    pixel_weight: float | None = None
    perceptual_weight: float | None = None
    perceptual_layers: dict[str, float] = field(default_factory=lambda: {"conv5_4": 1.0})  # ESRGAN, pre-ReLU
    perceptual_criterion: str = "l1"
    perceptual_feature_scale: float = DEFAULT_FEATURE_SCALE
    style_weight: float = 0.0
    vgg_weights: Path | None = None  # default: $UPSCALER_VGG19 or shared/vgg19
    adversarial_weight: float | None = None
    gan_loss: str = "ragan"
    gp_weight: float = 10.0  # WGAN gradient penalty
    tv_weight: float = 0.0
    tv_kind: str = "squared"
    grid_weight: float = 0.0  # pixel-shuffle grid penalty (train/losses/grid.py), period = scale
    consistency_weight: float = 0.0  # L1 to the starting weights' output on the clean LR (losses/consistency.py)
    # --- Discriminator (GAN stage) ---
    discriminator: str = "unet"  # vgg (input = patch_size) | patchgan | unet (spectral norm, Real-ESRGAN)
    d_num_feat: int = 64
    d_layers: int = 3  # patchgan depth
    # --- Optimisation ---
    lr: float | None = None  # generator; Adam
    d_lr: float | None = None  # discriminator; None = lr
    betas: tuple[float, float] = (0.9, 0.99)
    weight_decay: float = 0.0
    steps: int = 5000
    lr_schedule: str | None = None  # step (x lr_gamma at lr_milestones) | cosine (to min_lr_ratio x lr)
    lr_milestones: list[int] = field(default_factory=list)  # empty = ESRGAN's 1/8, 1/4, 1/2, 3/4 of steps
    lr_gamma: float = 0.5
    min_lr_ratio: float = 0.05
    warmup_steps: int = 0  # linear warm-up before either schedule
    grad_clip: float = 0.0  # max grad norm for G and D; 0 = off
    ema_decay: float = 0.999  # EMA of G (exported and validated); 0 = export the raw G
    amp: str = "bf16"  # autocast (bf16 | fp16 with GradScaler | off); on a CPU bf16 only where it is fast (AMX)
    device: str = "auto"
    seed: int = 0
    deterministic: bool = False  # deterministic CUDA kernels (slower)
    # --- Output ---
    out_dir: Path = Path("runs/train")
    log_every: int = 50
    checkpoint_every: int = 500
    val_dir: Path | None = None
    val_every: int = 500
    resume: bool = False

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):
            setattr(self, f.name, _coerce(f.name, getattr(self, f.name), hints[f.name]))
        gan = self.stage == "gan"
        defaults = {
            "pixel_weight": 1e-2 if gan else 1.0,
            "perceptual_weight": 1.0 if gan else 0.0,
            "adversarial_weight": 5e-3 if gan else 0.0,
            "lr": 1e-4 if gan else 2e-4,
            "lr_schedule": "step" if gan else "cosine",
            "degradation": "realvideo" if self.videos else "bicubic",
            "video_codec_prob": 0.0,
        }
        for name, value in defaults.items():
            if getattr(self, name) is None:
                setattr(self, name, value)
        if self.d_lr is None:
            self.d_lr = self.lr
        self._check()

    def _check(self) -> None:
        choices = {"stage": STAGES, "arch": ARCHS, "discriminator": DISCRIMINATORS, "gan_loss": GAN_LOSSES,
                   "degradation": DEGRADATIONS, "pixel_loss": PIXEL_LOSSES, "lr_schedule": SCHEDULES,
                   "amp": AMP_MODES, "device": DEVICES, "perceptual_criterion": ("l1", "l2"), "tv_kind": TV_KINDS}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} = {getattr(self, name)!r}: expected one of {', '.join(allowed)}")
        positive = ("scale", "patch_size", "batch_size", "patches_per_image", "steps", "log_every",
                    "checkpoint_every", "val_every", "num_feat", "d_num_feat", "d_layers", "video_frames_per_video",
                    "hr_downscale",
                    "lr", "d_lr", "lr_gamma")
        for name in positive:
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} = {getattr(self, name)!r}: must be positive")
        non_negative = ("num_workers", "warmup_steps", "pixel_weight", "perceptual_weight", "adversarial_weight",
                        "tv_weight", "grid_weight", "consistency_weight", "style_weight", "gp_weight", "grad_clip",
                        "weight_decay", "min_lr_ratio", "perceptual_feature_scale", "video_min_interval_s")
        for name in non_negative:
            value = getattr(self, name)
            if not (value >= 0 and math.isfinite(value)):
                raise ValueError(f"{name} = {value!r}: must be a finite number >= 0")
        if not 0 <= self.ema_decay < 1:
            raise ValueError(f"ema_decay = {self.ema_decay}: must be in [0, 1)")
        if not 0 <= self.video_codec_prob <= 1:
            raise ValueError(f"video_codec_prob = {self.video_codec_prob}: must be in [0, 1]")
        if not all(0 <= b < 1 for b in self.betas):
            raise ValueError(f"betas = {list(self.betas)}: each must be in [0, 1)")
        if self.patch_size % self.scale:
            raise ValueError(f"patch_size {self.patch_size} is not a multiple of scale {self.scale}")
        if self.degradation == "realvideo":
            if self.patch_size % (2 * self.scale):
                raise ValueError(f"patch_size {self.patch_size}: realvideo needs a multiple of 2 x scale "
                                 f"({2 * self.scale}) so the LR clip has even sides for H.264")
            if self.clip_frames < 2:
                raise ValueError(f"clip_frames = {self.clip_frames}: must be at least 2")
        weights = (self.pixel_weight, self.perceptual_weight, self.adversarial_weight, self.tv_weight, self.grid_weight,
                   self.consistency_weight)
        if sum(weights) == 0:
            raise ValueError("every generator loss weight is 0: nothing to train")
        if self.perceptual_weight and not self.perceptual_layers:
            raise ValueError("perceptual_layers is empty but perceptual_weight is not 0")
        if (self.lr_dir is None) != (self.hr_dir is None):
            raise ValueError("paired data needs both lr_dir and hr_dir")
        if self.lr_dir is not None and (self.hr_dirs or self.videos):
            raise ValueError("paired folders (lr_dir/hr_dir) cannot be combined with hr_dirs or videos")
        if self.pairs_dirs and (self.lr_dir is not None or self.hr_dirs or self.videos):
            raise ValueError("pairs_dirs (a patch store) cannot be combined with other training data")
        if self.fine_tune is not None and self.pretrained is not None:
            raise ValueError("give fine_tune or pretrained, not both")
        if self.consistency_weight and self.pretrained is None and self.fine_tune is None:
            raise ValueError("consistency_weight needs starting weights (pretrained or fine_tune): they are its "
                             "teacher")
        if sorted(self.lr_milestones) != self.lr_milestones:
            raise ValueError(f"lr_milestones {self.lr_milestones} must be ascending")

    def require_data(self) -> None:
        """Raise unless some training data is configured (checked when a run starts, not on construction)."""
        if not (self.hr_dirs or self.lr_dir or self.videos or self.pairs_dirs):
            raise ValueError("no training data: give --hr DIR, --lr-dir/--hr-dir, --videos PATH or --pairs DIR "
                             "(or hr_dirs / lr_dir + hr_dir / videos / pairs_dirs in the config)")

    @property
    def milestones(self) -> list[int]:
        if self.lr_milestones:
            return list(self.lr_milestones)
        return [round(self.steps * f) for f in ESRGAN_MILESTONE_FRACTIONS]

    @classmethod
    def from_toml(cls, path: Path, **overrides: Any) -> TrainConfig:
        """Load a TOML file; ``overrides`` (non-None) replace its keys. Paths stay relative to the working dir."""
        try:
            with open(path, "rb") as f:
                data = tomllib.load(f)
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"{path}: invalid TOML ({exc})") from None
        return cls.from_dict(data, source=str(path), **overrides)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "config", **overrides: Any) -> TrainConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted((set(data) | set(overrides)) - names)
        if unknown:
            raise ValueError(f"{source}: unknown config keys: {', '.join(unknown)}")
        merged = {**data, **{k: v for k, v in overrides.items() if v is not None}}
        return cls(**merged)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready values (paths as strings, tuples as lists)."""
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}

    def to_toml(self) -> str:
        """The config as TOML that ``from_toml`` reads back to an equal config (None fields are left out)."""
        lines = [f"{key} = {_toml_value(value)}" for key, value in self.to_dict().items() if value is not None]
        return "\n".join(lines) + "\n"


def parse_override(text: str) -> tuple[str, Any]:
    """``KEY=VALUE`` from the command line; VALUE is read as TOML (numbers, lists, true) or else a string."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ValueError(f"--set {text!r}: expected KEY=VALUE")
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return key.strip(), value


def _plain(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)  # repr round-trips floats; inf/nan are valid TOML
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {_toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"cannot write {type(value).__name__} as TOML")


def _coerce(name: str, value: Any, hint: Any) -> Any:
    """Check ``value`` against the field's type hint, converting the lossless cases (str → Path, int → float)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _coerce(name, value, inner)
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{name} = {value!r}: expected a list")
        return [_coerce(name, v, args[0]) for v in value]
    if origin is tuple:
        if not isinstance(value, (list, tuple)) or len(value) != len(args):
            raise ValueError(f"{name} = {value!r}: expected a list of {len(args)} values")
        return tuple(_coerce(name, v, a) for v, a in zip(value, args, strict=True))
    if origin is dict:
        if not isinstance(value, dict):
            raise ValueError(f"{name} = {value!r}: expected a table of names to numbers")
        return {_coerce(name, k, args[0]): _coerce(name, v, args[1]) for k, v in value.items()}
    if hint is Path:
        if not isinstance(value, (str, Path)) or str(value) == "":
            raise ValueError(f"{name} = {value!r}: expected a path")
        return Path(value)
    if hint is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if hint is bool and isinstance(value, bool):
        return value
    if hint in (int, str) and isinstance(value, hint) and not isinstance(value, bool):
        return value
    raise ValueError(f"{name} = {value!r}: expected {getattr(hint, '__name__', hint)}")

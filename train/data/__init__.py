"""Training data: HR sources (image folders, video frames), degradations that make LR, and loaders."""

from .datasets import EpochSampler, HRFolderDataset, PairedFolderDataset, infinite_batches, make_loader
from .degradations import (
    BicubicDegradation,
    Chain,
    Degradation,
    DegradationRound,
    RealESRGANDegradation,
    VideoCodecDegradation,
)
from .kernels import KernelSampler
from .pair_store import PatchStoreDataset
from .video_frames import sample_frames_from_video, sample_video_frames

__all__ = [
    "BicubicDegradation",
    "Chain",
    "Degradation",
    "DegradationRound",
    "EpochSampler",
    "HRFolderDataset",
    "KernelSampler",
    "PairedFolderDataset",
    "PatchStoreDataset",
    "RealESRGANDegradation",
    "VideoCodecDegradation",
    "infinite_batches",
    "make_loader",
    "sample_frames_from_video",
    "sample_video_frames",
]

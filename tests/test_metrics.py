"""Metrics on real images: the periodic-grid score separates a pixel-shuffle checkerboard from photo texture."""

from __future__ import annotations

import torch
from conftest import shared_path

from upscaler.image.io import read_image
from upscaler.metrics import grid_score


def _image(folder: str, name: str) -> torch.Tensor:
    rgb = read_image(shared_path("images", "bench", folder, f"{name}.png")).rgb
    return torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255


def test_grid_score_finds_a_faint_pixel_shuffle_grid_in_texture() -> None:
    for folder, name in (("Set14", "baboon"), ("Set14", "bridge"), ("Set5", "bird")):
        photo = _image(folder, name)
        grid = torch.zeros_like(photo)
        grid[..., 1::4, 2::4] = 4 / 255  # one sub-pixel of every 4x4 cell, 4 grey levels brighter
        assert grid_score(photo, 4) < 5
        assert grid_score((photo + grid).clamp(0, 1), 4) > 20
        # The same grid has no period-3 harmonics: the score is specific to the period asked for.
        assert grid_score((photo + grid).clamp(0, 1), 3) < 5

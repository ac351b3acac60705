"""Per-task MNIST transforms as pixel gathers, so no transformed copy of MNIST is ever stored.

Both benchmark transforms move pixels without changing their values:
- a permutation sends output pixel ``i`` to input pixel ``perm[i]``;
- PIL's nearest-neighbour rotation (GEM's generator) sends each output
  pixel to one input pixel or to the black fill.
So each task is one int64 "pixel map" of length 784 that indexes the flat image with one zero
pixel appended at position 784 (the fill). Applying a task is ``padded[:, pixel_map]``: a few
microseconds per batch and 6 KB of state per task, even for 100 tasks.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

SIDE = 28
N_PIXELS = SIDE * SIDE
FILL_INDEX = N_PIXELS  # index of the appended zero pixel


def rotation_angles(n_tasks: int, seed: int, min_deg: float = 0.0, max_deg: float = 180.0) -> list[float]:
    """One angle per task, drawn uniformly inside task t's bin [min + t·Δ, min + (t+1)·Δ).

    GEM's generator drew these with an unseeded ``random``; here they come from a seeded
    generator so a benchmark is the same on every machine (and logged in results.json).
    """
    gen = torch.Generator().manual_seed(seed)
    width = (max_deg - min_deg) / n_tasks
    offsets = torch.rand(n_tasks, generator=gen, dtype=torch.float64)
    return [float(min_deg + (t + offsets[t]) * width) for t in range(n_tasks)]


def rotation_pixel_map(angle: float) -> torch.Tensor:
    """The gather that equals ``Image.rotate(angle)`` (nearest, black fill) on a 28x28 image.

    PIL rotates an image of pixel indices (1-based, 0 = fill) exactly as it rotates a digit,
    so the map reproduces PIL's rounding pixel for pixel.
    """
    index_image = Image.fromarray(np.arange(1, N_PIXELS + 1, dtype=np.int32).reshape(SIDE, SIDE))  # mode "I"
    rotated = np.array(index_image.rotate(angle), dtype=np.int64).reshape(-1)
    return torch.from_numpy(np.where(rotated == 0, FILL_INDEX, rotated - 1))


def permutation_pixel_maps(n_tasks: int, seed: int) -> list[torch.Tensor]:
    """GEM's permutations: one generator seeded once, ``randperm(784)`` drawn per task in order."""
    gen = torch.Generator().manual_seed(seed)
    return [torch.randperm(N_PIXELS, generator=gen) for _ in range(n_tasks)]


def pad_with_fill(flat_images: torch.Tensor) -> torch.Tensor:
    """Append the zero fill pixel: [N, 784] uint8 -> [N, 785]."""
    return torch.cat([flat_images, flat_images.new_zeros(len(flat_images), 1)], dim=1)


def apply_pixel_map(padded_images: torch.Tensor, pixel_map: torch.Tensor) -> torch.Tensor:
    """Transform padded uint8 images [N, 785] into float inputs [N, 784] in [0, 1]."""
    return padded_images[:, pixel_map].float().div_(255.0)

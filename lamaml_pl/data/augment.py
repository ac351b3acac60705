"""Batched image augmentation and normalisation for the CIFAR-100 / TinyImageNet streams.

The original applies torchvision's per-image PIL transforms in 3 loader workers
: RandomCrop(size, padding 4, zero fill) -> RandomHorizontalFlip ->
[CIFAR: ColorJitter(brightness 63/255)] -> ToTensor -> Normalize. The same random operations
are applied here to a whole uint8 batch at once with torch's global RNG (so runs are seeded and
resumable): the distribution is the original's; pixel values can differ from PIL's only by its
uint8 rounding of the brightness blend.

A training pass draws its augmentations from a generator of its own, seeded by the run's seed and
the pass (:func:`augmentation_generator`), as the original's loader workers draw from generators
of their own: the learner's draws from the global RNG are then the same however many batches the
loader prepares ahead, and a population member augments as its single run does.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

AUGMENTATION_STREAM = 0x5DEECE66D


def pass_seed(seed: int, epoch: int) -> int:
    """The seed of training pass ``epoch`` of a run with ``seed``: ``data.shuffle=seeded``'s sample
    order draws from it, the pass's augmentations from a stream of their own derived from it."""
    return seed * 1_000_003 + epoch


def augmentation_generator(seed: int, epoch: int) -> torch.Generator:
    """Where training pass ``epoch`` of a run with ``seed`` draws its augmentations from (apart
    from the seeded sample order's stream)."""
    return torch.Generator().manual_seed(pass_seed(seed, epoch) ^ AUGMENTATION_STREAM)


class ImageAugment:
    """uint8 ``[N, 3, H, W]`` -> normalised float32, optionally with the training augmentations.

    Args:
        mean, std: per-channel normalisation (after scaling to [0, 1]).
        crop_padding: zero padding of the random crop (0: no crop).
        flip: random horizontal flips with probability 0.5.
        brightness: ColorJitter brightness b; factors uniform in [max(0, 1-b), 1+b] (0: none).
    """

    def __init__(
        self,
        mean: Sequence[float],
        std: Sequence[float],
        crop_padding: int = 0,
        flip: bool = False,
        brightness: float = 0.0,
    ):
        self.mean = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
        self.crop_padding, self.flip, self.brightness = int(crop_padding), bool(flip), float(brightness)

    @property
    def draws(self) -> bool:
        """Whether training inputs are random (else they are the normalised images)."""
        return bool(self.crop_padding or self.flip or self.brightness)

    def __call__(self, images: torch.Tensor, train: bool, generator: torch.Generator | None = None) -> torch.Tensor:
        """``generator``: where the random operations draw from (default: torch's global RNG), on
        the CPU wherever the images are, so a GPU run draws the numbers of a CPU run."""
        x = images.float().div_(255)
        device = x.device
        if train:
            if self.crop_padding:
                x = random_crop(x, self.crop_padding, generator)
            if self.flip:
                flipped = (torch.rand(len(x), generator=generator) < 0.5).to(device)
                x = torch.where(flipped.view(-1, 1, 1, 1), x.flip(-1), x)
            if self.brightness:
                low = max(0.0, 1 - self.brightness)
                factor = torch.empty(len(x)).uniform_(low, 1 + self.brightness, generator=generator).to(device)
                x = (x * factor.view(-1, 1, 1, 1)).clamp_(0, 1)
        return (x - self.mean.to(device)) / self.std.to(device)


def random_crop(x: torch.Tensor, padding: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Each image cropped back to its size at a uniform offset of its zero-padded version."""
    n, _, h, w = x.shape
    padded = F.pad(x, (padding, padding, padding, padding))
    top = torch.randint(0, 2 * padding + 1, (n,), generator=generator).to(x.device)
    left = torch.randint(0, 2 * padding + 1, (n,), generator=generator).to(x.device)
    rows = (top.view(-1, 1) + torch.arange(h, device=x.device)).view(n, 1, h, 1)
    cols = (left.view(-1, 1) + torch.arange(w, device=x.device)).view(n, 1, 1, w)
    batch = torch.arange(n, device=x.device).view(n, 1, 1, 1)
    channels = torch.arange(x.shape[1], device=x.device).view(1, -1, 1, 1)
    return padded[batch, channels, rows, cols]

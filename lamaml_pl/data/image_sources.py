"""Where the images of the class-split streams come from.

Each source is read once into uint8 tensors ``[N, C, H, W]`` with integer class labels;
augmentation and normalisation happen per batch later (:mod:`lamaml_pl.data.augment`). A folder of
the user's own images is :mod:`lamaml_pl.data.image_folder`.

- CIFAR-100 / CIFAR-10: torchvision's python-pickle layouts, ``<root>/cifar-100-python/{train,test}``
  and ``<root>/cifar-10-batches-py/{data_batch_1..5,test_batch}``; downloaded there by torchvision
  when missing and ``download`` is on.
- MNIST: :func:`lamaml_pl.data.mnist_source.load_mnist` (``<root>/MNIST/raw``), as 1x28x28 images.
- Fashion-MNIST: the gzipped or plain IDX files in torchvision's layout
  (``<root>/FashionMNIST/raw``) or, where Debian's package ``dataset-fashion-mnist`` is installed,
  ``/usr/share/datasets/fashion-mnist``; downloaded into ``<root>`` when neither holds them.
- TinyImageNet-200: ``<root>/tiny-imagenet-200/`` with ``train/<wnid>/images/*.JPEG`` and the
  validation images (the benchmark's test set) either in the archive's own layout
  (``val/images/*.JPEG`` + ``val/val_annotations.txt``) or in the original code's restructured one
  (``val/<wnid>/images/*.JPEG``). ``python -m lamaml_pl.data.fetch_tinyimagenet --root <dir>``
  downloads and unpacks it. Decoding 110k JPEGs takes a while, so the decoded tensors are cached
  (``cache_dir``) and reused while the folder is unchanged.
"""

from __future__ import annotations

import logging
import os
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from lamaml_pl.data.cache import cached_tensors, file_listing
from lamaml_pl.data.download import download_into, one_line
from lamaml_pl.data.idx import read_idx
from lamaml_pl.data.mnist_source import RAW_FILES, load_mnist
from lamaml_pl.errors import ConfigError
from lamaml_pl.paths import project_path

log = logging.getLogger(__name__)

CIFAR_FOLDER = "cifar-100-python"
TINY_FOLDER = "tiny-imagenet-200"
TINY_SIZE = 64
FASHION_FOLDER = "FashionMNIST/raw"
DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")  # Debian's package dataset-fashion-mnist


@dataclass(frozen=True)
class ImageSplits:
    """uint8 images ``[N, C, H, W]`` and int64 labels of the train pool and the test set, and the
    classes' names where the source has them (a folder of images: its class folders)."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    n_classes: int
    source: str
    class_names: tuple[str, ...] = ()


# ---- CIFAR-100 and CIFAR-10 -------------------------------------------------------------------
@dataclass(frozen=True)
class CifarLayout:
    """torchvision's pickle layout of one CIFAR data set."""

    name: str
    folder: str
    train_files: tuple[str, ...]
    test_file: str
    label_key: str
    downloader: str  # the torchvision.datasets class


CIFAR = {
    "cifar100": CifarLayout("CIFAR-100", CIFAR_FOLDER, ("train",), "test", "fine_labels", "CIFAR100"),
    "cifar10": CifarLayout(
        "CIFAR-10",
        "cifar-10-batches-py",
        tuple(f"data_batch_{k}" for k in range(1, 6)),
        "test_batch",
        "labels",
        "CIFAR10",
    ),
}


def load_cifar(kind: str, root: str | os.PathLike, download: bool = True) -> ImageSplits:
    """``kind``: ``cifar100`` or ``cifar10``."""
    layout = CIFAR[kind]
    root = project_path(root)
    folder = root / layout.folder
    files = [folder / name for name in (*layout.train_files, layout.test_file)]
    source = f"{kind}:{folder.resolve()}"
    if not all(f.is_file() for f in files):
        if not download:
            raise ConfigError(
                f"data.root={str(root)!r} holds no {layout.name}: expected torchvision's layout "
                f"{', '.join(map(str, files))} (python pickles). Set data.download=true on a "
                f"machine with internet, or point data.root at the folder that holds {layout.folder}/"
            )
        _download_cifar(layout, root)
        source = f"download:{folder.resolve()}"
    parts = [_read_cifar_pickle(f, layout) for f in files]
    train_x = torch.cat([x for x, _ in parts[:-1]])
    train_y = torch.cat([y for _, y in parts[:-1]])
    test_x, test_y = parts[-1]
    return ImageSplits(train_x, train_y, test_x, test_y, int(train_y.max()) + 1, source)


def _download_cifar(layout: CifarLayout, root: Path) -> None:
    import torchvision.datasets

    try:
        download_into(root, lambda folder: getattr(torchvision.datasets, layout.downloader)(folder, download=True))
    except Exception as err:  # offline: say what to do instead
        raise ConfigError(
            f"data.root={str(root)!r} holds no {layout.name} and the download failed ({one_line(err)}). "
            f"Put torchvision's {layout.folder}/ folder there, or run once with internet."
        ) from err


def _read_cifar_pickle(path: Path, layout: CifarLayout) -> tuple[torch.Tensor, torch.Tensor]:
    try:
        with open(path, "rb") as handle:
            entry = pickle.load(handle, encoding="latin1")
        data = np.asarray(entry["data"], dtype=np.uint8)
        labels = np.asarray(entry[layout.label_key], dtype=np.int64)
        images = data.reshape(len(data), 3, 32, 32)
    except Exception as err:
        raise ConfigError(
            f"data.root: the {layout.name} file {path} could not be read as a python pickle with 'data' "
            f"(N x 3072 uint8) and {layout.label_key!r} ({one_line(err)}); delete it to download again"
        ) from err
    if len(labels) != len(images):
        raise ConfigError(f"data.root: {path} holds {len(images)} images but {len(labels)} labels")
    return torch.from_numpy(images.copy()), torch.from_numpy(labels)


# ---- MNIST and Fashion-MNIST ------------------------------------------------------------------
def load_mnist_images(root: str | os.PathLike, download: bool = True) -> ImageSplits:
    digits = load_mnist(root, download=download)
    return ImageSplits(
        digits.train_x.view(-1, 1, 28, 28),
        digits.train_y,
        digits.test_x.view(-1, 1, 28, 28),
        digits.test_y,
        10,
        digits.source,
    )


def load_fashion_mnist(
    root: str | os.PathLike, download: bool = True, use_package: bool = False, cache_dir: str | None = None
) -> ImageSplits:
    """From ``<root>/FashionMNIST/raw``, then (``use_package``: data.root left at its default)
    Debian's package, then a download into ``root``: a root the user gave is read or fails. The
    decompressed arrays are kept in ``cache_dir`` while the files are unchanged."""
    root = project_path(root)
    places = [root / FASHION_FOLDER, *([DEBIAN_FASHION] if use_package else [])]
    folder = next((p for p in places if all(_idx_path(p, name) for name in RAW_FILES)), None)
    source = f"fashion_mnist:{folder.resolve() if folder else ''}"
    if folder is None:
        if not download:
            raise ConfigError(
                f"data.root={str(root)!r}: no Fashion-MNIST in {' or '.join(map(str, places))} (looked for "
                f"{', '.join(RAW_FILES)}, plain or .gz). Install Debian's package dataset-fashion-mnist "
                "(read while data.root is left at its default), set data.download=true on a machine with "
                "internet, or point data.root at a folder holding FashionMNIST/raw"
            )
        _download_fashion_mnist(root, places)
        folder, source = places[0], f"download:{places[0].resolve()}"
    files = [_idx_path(folder, name) for name in RAW_FILES]
    arrays = cached_tensors(
        cache_dir,
        "fashion_mnist",
        file_listing(files),
        lambda: {name: read_idx(path, "Fashion-MNIST") for name, path in zip(RAW_FILES, files)},
    )
    train_x, train_y, test_x, test_y = (arrays[name] for name in RAW_FILES)
    return ImageSplits(train_x.unsqueeze(1), train_y.long(), test_x.unsqueeze(1), test_y.long(), 10, source)


def _idx_path(folder: Path, name: str) -> Path | None:
    for path in (folder / name, folder / f"{name}.gz"):
        if path.is_file():
            return path
    return None


def _download_fashion_mnist(root: Path, places: list[Path]) -> None:
    from torchvision.datasets import FashionMNIST

    try:
        download_into(root, lambda folder: FashionMNIST(folder, train=True, download=True))
    except Exception as err:
        raise ConfigError(
            f"data.root={str(root)!r}: no Fashion-MNIST in {' or '.join(map(str, places))} and the download failed "
            f"({one_line(err)}). Install Debian's package dataset-fashion-mnist (apt-get install "
            "dataset-fashion-mnist; read while data.root is left at its default) or put torchvision's "
            "FashionMNIST/raw files there"
        ) from err


# ---- TinyImageNet-200 --------------------------------------------------------------------------
def load_tinyimagenet(root: str | os.PathLike, cache_dir: str | os.PathLike | None = None) -> ImageSplits:
    folder = project_path(root) / TINY_FOLDER
    train_dir, val_dir = folder / "train", folder / "val"
    if not train_dir.is_dir() or not val_dir.is_dir():
        raise ConfigError(
            f"data.root={str(root)!r} holds no TinyImageNet: expected {folder}/train/<wnid>/images/*.JPEG and "
            f"{folder}/val (val/images + val/val_annotations.txt, or val/<wnid>/images). "
            "Fetch it with `python -m lamaml_pl.data.fetch_tinyimagenet --root <data.root>`"
        )
    wnids = sorted(p.name for p in train_dir.iterdir() if p.is_dir())
    train_files = [(f, k) for k, w in enumerate(wnids) for f in sorted((train_dir / w / "images").glob("*.JPEG"))]
    test_files = _tiny_val_files(val_dir, {w: k for k, w in enumerate(wnids)})
    if not train_files:
        raise ConfigError(f"data.root: no training images under {train_dir}/<wnid>/images/*.JPEG")
    train_x, test_x = decoded_images(folder, train_files, test_files, TINY_SIZE, 3, cache_dir, "tinyimagenet")
    train_y = torch.tensor([k for _, k in train_files], dtype=torch.long)
    test_y = torch.tensor([k for _, k in test_files], dtype=torch.long)
    return ImageSplits(train_x, train_y, test_x, test_y, len(wnids), f"tinyimagenet:{folder.resolve()}", tuple(wnids))


def _tiny_val_files(val_dir: Path, class_of: dict[str, int]) -> list[tuple[Path, int]]:
    """The labelled validation images (the benchmark's test set), in either layout."""
    annotations = val_dir / "val_annotations.txt"
    if annotations.is_file():  # the archive's layout
        files = []
        for line in annotations.read_text().splitlines():
            name, wnid = line.split("\t")[:2]
            if wnid not in class_of:
                raise ConfigError(f"data.root: {annotations} names class {wnid!r}, which has no train folder")
            files.append((val_dir / "images" / name, class_of[wnid]))
        return sorted(files, key=lambda f: (f[1], f[0].name))  # the restructured tree's (ImageFolder) order
    files = [(f, class_of[w]) for w in sorted(class_of) for f in sorted((val_dir / w / "images").glob("*.JPEG"))]
    if not files:
        raise ConfigError(
            f"data.root: {val_dir} has neither val_annotations.txt (archive layout) nor <wnid>/images/*.JPEG "
            "(restructured layout)"
        )
    return files


# ---- image files: decoding and its cache ----------------------------------------------------------
def decoded_images(
    folder: Path,
    train_files: list[tuple[Path, int]],
    test_files: list[tuple[Path, int]],
    size: int,
    channels: int,
    cache_dir: str | os.PathLike | None,
    name: str,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The train and test images as uint8 ``[N, channels, size, size]``, from ``cache_dir`` while
    the files and the settings are unchanged, else decoded and cached."""

    def decode() -> dict[str, torch.Tensor]:
        log.info("decoding %d images from %s", len(train_files) + len(test_files), folder)
        return {
            "train_x": decode_images(train_files, size, channels),
            "test_x": decode_images(test_files, size, channels),
        }

    files = [p for p, _ in train_files + test_files]
    labels = ",".join(str(k) for _, k in train_files + test_files)
    source = f"{folder.resolve()}\n{size}x{channels}\n{labels}\n{file_listing(files, folder)}"
    images = cached_tensors(cache_dir, name, source, decode)
    return images["train_x"], images["test_x"]


def decode_images(files: list[tuple[Path, int]], size: int, channels: int) -> torch.Tensor:
    """uint8 ``[N, channels, size, size]`` (1: greyscale, 3: RGB), resized where they differ."""
    from PIL import Image

    mode = "L" if channels == 1 else "RGB"
    out = np.empty((len(files), size, size, channels), dtype=np.uint8)
    for i, (path, _) in enumerate(files):
        try:
            with Image.open(path) as image:
                pixels = image.convert(mode)
                if pixels.size != (size, size):
                    pixels = pixels.resize((size, size), Image.BILINEAR)
                out[i] = np.asarray(pixels).reshape(size, size, channels)
        except OSError as err:
            raise ConfigError(
                f"data.root: the image {path} could not be decoded ({err}); replace or delete it"
            ) from err
    return torch.from_numpy(out).permute(0, 3, 1, 2).contiguous()

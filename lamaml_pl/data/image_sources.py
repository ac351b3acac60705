"""Where the CIFAR-100 and TinyImageNet-200 images come from.

Both are read once into uint8 tensors ``[N, 3, H, W]`` with integer class labels; augmentation
and normalisation happen per batch later (:mod:`lamaml_pl.data.augment`).

- CIFAR-100: torchvision's python-pickle layout, ``<root>/cifar-100-python/{train,test}``;
  downloaded there by torchvision when missing and ``download`` is on.
- TinyImageNet-200: ``<root>/tiny-imagenet-200/`` with ``train/<wnid>/images/*.JPEG`` and the
  validation images (the benchmark's test set) either in the archive's own layout
  (``val/images/*.JPEG`` + ``val/val_annotations.txt``) or in the original code's restructured one
  (``val/<wnid>/images/*.JPEG``). ``python -m lamaml_pl.data.fetch_tinyimagenet --root <dir>``
  downloads and unpacks it. Decoding 110k JPEGs takes a while, so the decoded tensors are cached
  (``cache_dir``) and reused while the folder is unchanged.
"""

from __future__ import annotations

import hashlib
import logging
import os
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from lamaml_pl.errors import ConfigError

log = logging.getLogger(__name__)

CIFAR_FOLDER = "cifar-100-python"
TINY_FOLDER = "tiny-imagenet-200"
TINY_SIZE = 64


@dataclass(frozen=True)
class ImageSplits:
    """uint8 images ``[N, 3, H, W]`` and int64 labels of the train pool and the test set."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    n_classes: int
    source: str


# ---- CIFAR-100 ---------------------------------------------------------------------------------
def load_cifar100(root: str | os.PathLike, download: bool = True) -> ImageSplits:
    root = Path(root).expanduser()
    folder = root / CIFAR_FOLDER
    source = f"cifar100:{folder.resolve()}"
    if not (folder / "train").is_file() or not (folder / "test").is_file():
        if download:
            _download_cifar100(root)
            source = f"download:{folder.resolve()}"
        else:
            raise ConfigError(
                f"data.root={str(root)!r} holds no CIFAR-100: expected torchvision's layout "
                f"{folder}/train and {folder}/test (python pickles). Set data.download=true on a "
                "machine with internet, or point data.root at the folder that holds cifar-100-python/"
            )
    train_x, train_y = _read_cifar_pickle(folder / "train")
    test_x, test_y = _read_cifar_pickle(folder / "test")
    return ImageSplits(train_x, train_y, test_x, test_y, int(train_y.max()) + 1, source)


def _download_cifar100(root: Path) -> None:
    from torchvision.datasets import CIFAR100

    try:
        CIFAR100(str(root), train=True, download=True)
    except Exception as err:  # offline: say what to do instead
        raise ConfigError(
            f"data.root={str(root)!r} holds no CIFAR-100 and the download failed ({type(err).__name__}: {err}). "
            f"Put torchvision's {CIFAR_FOLDER}/ folder (train, test, meta) there, or run once with internet."
        ) from err


def _read_cifar_pickle(path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    try:
        with open(path, "rb") as handle:
            entry = pickle.load(handle, encoding="latin1")
        data = np.asarray(entry["data"], dtype=np.uint8)
        labels = np.asarray(entry["fine_labels"], dtype=np.int64)
        images = data.reshape(len(data), 3, 32, 32)
    except Exception as err:
        raise ConfigError(
            f"data.root: the CIFAR-100 file {path} could not be read as a python pickle with 'data' "
            f"(N x 3072 uint8) and 'fine_labels' ({type(err).__name__}: {err}); delete it to download again"
        ) from err
    if len(labels) != len(images):
        raise ConfigError(f"data.root: {path} holds {len(images)} images but {len(labels)} labels")
    return torch.from_numpy(images.copy()), torch.from_numpy(labels)


# ---- TinyImageNet-200 --------------------------------------------------------------------------
def load_tinyimagenet(root: str | os.PathLike, cache_dir: str | os.PathLike | None = None) -> ImageSplits:
    folder = Path(root).expanduser() / TINY_FOLDER
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
    key = _tiny_cache_key(folder, train_files, test_files)
    cached = _read_cache(cache_dir, key)
    if cached is None:
        log.info("decoding %d TinyImageNet images from %s", len(train_files) + len(test_files), folder)
        train_x, test_x = _decode(train_files), _decode(test_files)
        _write_cache(cache_dir, key, train_x, test_x)
    else:
        train_x, test_x = cached
    train_y = torch.tensor([k for _, k in train_files], dtype=torch.long)
    test_y = torch.tensor([k for _, k in test_files], dtype=torch.long)
    return ImageSplits(train_x, train_y, test_x, test_y, len(wnids), f"tinyimagenet:{folder.resolve()}")


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


def _decode(files: list[tuple[Path, int]]) -> torch.Tensor:
    from PIL import Image

    out = np.empty((len(files), TINY_SIZE, TINY_SIZE, 3), dtype=np.uint8)
    for i, (path, _) in enumerate(files):
        try:
            with Image.open(path) as image:
                rgb = image.convert("RGB")
                if rgb.size != (TINY_SIZE, TINY_SIZE):  # the protocol resizes to 64x64
                    rgb = rgb.resize((TINY_SIZE, TINY_SIZE), Image.BILINEAR)
                out[i] = np.asarray(rgb)
        except OSError as err:
            raise ConfigError(
                f"data.root: the image {path} could not be decoded ({err}); replace or delete it"
            ) from err
    return torch.from_numpy(out).permute(0, 3, 1, 2).contiguous()


def _tiny_cache_key(folder: Path, train: list, test: list) -> str:
    listing = "\n".join(f"{p.relative_to(folder)}:{p.stat().st_size}:{k}" for p, k in train + test)
    return hashlib.sha1(f"{folder.resolve()}\n{listing}".encode()).hexdigest()[:16]


def _read_cache(cache_dir, key: str):
    if cache_dir is None:
        return None
    path = Path(cache_dir) / f"tinyimagenet-{key}.pt"
    if not path.is_file():
        return None
    try:
        state = torch.load(path, weights_only=True)
        return state["train_x"], state["test_x"]
    except Exception as err:  # a damaged cache is rebuilt, never trusted
        log.warning("ignoring the unreadable cache %s (%s)", path, err)
        return None


def _write_cache(cache_dir, key: str, train_x: torch.Tensor, test_x: torch.Tensor) -> None:
    if cache_dir is None:
        return
    path = Path(cache_dir) / f"tinyimagenet-{key}.pt"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".partial")
        torch.save({"train_x": train_x, "test_x": test_x}, partial)
        os.replace(partial, path)
    except OSError as err:  # a read-only place only costs the decoding next time
        log.warning("could not write the decoded-image cache %s (%s)", path, err)

"""Data sets written in their real on-disk formats, small and learnable: MNIST's IDX files,
CIFAR-100's and CIFAR-10's pickles, TinyImageNet's JPEG tree, Fashion-MNIST's gzipped IDX, a
folder of PNGs. The tests read them through the real loaders; the benchmarks write them at the
real sizes (only the shapes matter there)."""

from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np


def write_idx(path: Path, array: np.ndarray) -> None:
    """Write an array as an uncompressed IDX file (the MNIST on-disk format)."""
    assert array.dtype == np.uint8
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.tobytes())


def synthetic_digits(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Learnable 28x28 'digits': class k lights a 6x6 block at its own place, plus noise."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 10
    rng.shuffle(labels)
    images = rng.integers(0, 60, size=(n, 28, 28)).astype(np.uint8)
    for i, k in enumerate(labels):
        row, col = 4 + 6 * (k // 4), 4 + 6 * (k % 4)
        images[i, row : row + 6, col : col + 6] = 255
    return images, labels.astype(np.uint8)


def write_tiny_mnist(root: Path, n_train: int = 300, n_test: int = 100) -> Path:
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for split, n, seed in (("train", n_train, 1), ("t10k", n_test, 2)):
        images, labels = synthetic_digits(n, seed)
        write_idx(raw / f"{split}-images-idx3-ubyte", images)
        write_idx(raw / f"{split}-labels-idx1-ubyte", labels)
    return root


def class_images(labels: np.ndarray, size: int, seed: int) -> np.ndarray:
    """Learnable RGB images [N, size, size, 3]: each class has its own fixed pattern, plus noise."""
    patterns = np.random.default_rng(1234).integers(64, 192, size=(int(labels.max()) + 1, size // 8, size // 8, 3))
    patterns = patterns.repeat(8, axis=1).repeat(8, axis=2)
    noise = np.random.default_rng(seed).integers(-20, 21, size=(len(labels), size, size, 3))
    return np.clip(patterns[labels] + noise, 0, 255).astype(np.uint8)


def write_tiny_cifar100(root: Path, train_per_class: int = 10, test_per_class: int = 4) -> Path:
    """torchvision's cifar-100-python/{train,test,meta} pickles, with the real keys, 100 classes."""
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True, exist_ok=True)
    for split, per_class, seed in (("train", train_per_class, 1), ("test", test_per_class, 2)):
        labels = np.random.default_rng(seed).permutation(np.repeat(np.arange(100), per_class))
        images = class_images(labels, 32, seed).transpose(0, 3, 1, 2).reshape(len(labels), -1)  # rows of R, G, B
        entry = {
            "filenames": [f"img_{i}.png" for i in range(len(labels))],
            "batch_label": f"{split} batch",
            "fine_labels": labels.tolist(),
            "coarse_labels": (labels // 5).tolist(),
            "data": images,
        }
        with open(folder / split, "wb") as handle:
            pickle.dump(entry, handle)
    with open(folder / "meta", "wb") as handle:
        pickle.dump({"fine_label_names": [f"class{k}" for k in range(100)], "coarse_label_names": []}, handle)
    return root


def write_tiny_imagenet(
    root: Path, n_classes: int = 10, train_per_class: int = 10, val_per_class: int = 4, layout: str = "archive"
) -> Path:
    """A tiny-imagenet-200/ tree of 64x64 JPEGs: ``archive`` (val/images + val_annotations.txt,
    as unzipped) or ``restructured`` (val/<wnid>/images, the original code's layout)."""
    from PIL import Image

    folder = root / "tiny-imagenet-200"
    wnids = [f"n{k:08d}" for k in range(n_classes)]
    train_labels = np.repeat(np.arange(n_classes), train_per_class)
    val_labels = np.repeat(np.arange(n_classes), val_per_class)
    for i, (k, image) in enumerate(zip(train_labels, class_images(train_labels, 64, 1))):
        target = folder / "train" / wnids[k] / "images" / f"{wnids[k]}_{i}.JPEG"
        target.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(target, quality=95)
    annotations = []
    for i, (k, image) in enumerate(zip(val_labels, class_images(val_labels, 64, 2))):
        name = f"val_{i}.JPEG"
        target = folder / "val" / ("images" if layout == "archive" else f"{wnids[k]}/images") / name
        target.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(target, quality=95)
        annotations.append(f"{name}\t{wnids[k]}\t0\t0\t63\t63")
    if layout == "archive":
        (folder / "val" / "val_annotations.txt").write_text("\n".join(annotations) + "\n")
        (folder / "wnids.txt").write_text("\n".join(wnids) + "\n")
    return root


def write_tiny_cifar10(root: Path, train_per_class: int = 10, test_per_class: int = 4) -> Path:
    """torchvision's cifar-10-batches-py/{data_batch_1..5,test_batch} pickles, 10 classes."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    train = np.random.default_rng(1).permutation(np.repeat(np.arange(10), train_per_class))
    test = np.random.default_rng(2).permutation(np.repeat(np.arange(10), test_per_class))
    parts = [(f"data_batch_{k + 1}", part, 10 + k) for k, part in enumerate(np.array_split(train, 5))]
    for name, labels, seed in [*parts, ("test_batch", test, 20)]:
        images = class_images(labels, 32, seed).transpose(0, 3, 1, 2).reshape(len(labels), -1)
        entry = {"batch_label": name, "labels": labels.tolist(), "data": images, "filenames": []}
        with open(folder / name, "wb") as handle:
            pickle.dump(entry, handle)
    return root


def write_tiny_fashion_mnist(root: Path, n_train: int = 300, n_test: int = 100) -> Path:
    """Gzipped IDX files in torchvision's FashionMNIST/raw layout (as Debian's package has them)."""
    raw = root / "FashionMNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for split, n, seed in (("train", n_train, 3), ("t10k", n_test, 4)):
        images, labels = synthetic_digits(n, seed)
        for kind, array in (("images-idx3", images), ("labels-idx1", labels)):
            plain = raw / f"{split}-{kind}-ubyte"
            write_idx(plain, array)
            (raw / f"{plain.name}.gz").write_bytes(gzip.compress(plain.read_bytes()))
            plain.unlink()
    return root


def write_image_folder(
    root: Path, n_classes: int = 4, per_class: int = 6, size: int = 16, grey: bool = True, split: bool = False
) -> Path:
    """``<root>/<class>/<i>.png`` (or ``<root>/{train,test}/<class>/``) of learnable images."""
    from PIL import Image

    labels = np.repeat(np.arange(n_classes), per_class)
    images = class_images(labels, max(size, 8), 5)[:, :size, :size]
    for i, (k, image) in enumerate(zip(labels, images)):
        part = ("test" if i % per_class == 0 else "train") if split else ""
        target = root / part / f"class_{k}" / f"{i}.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image[..., 0] if grey else image).save(target)
    return root

"""Your own labelled images: a folder of class folders, read into the same uint8 tensors as the
benchmarks' sources (:class:`~lamaml_pl.data.image_sources.ImageSplits`).

Layouts: ``<root>/<class>/<image>`` (a ``test_fraction`` of every class is held out as the test
set, the same images for every run seed), or ``<root>/train/<class>/`` with ``<root>/test/<class>/``.
Classes are the folder names in sorted order. Images are greyscale (1 channel) when every one of
them is, else RGB; they keep their size when all share one square size, else ``image_size``
resizes them.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from lamaml_pl.data.image_sources import ImageSplits, decoded_images
from lamaml_pl.errors import ConfigError
from lamaml_pl.paths import project_path

EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm")
GREY_MODES = ("1", "L", "I", "I;16", "F")
TEST_SPLIT_SEED = 0  # the held-out test images do not depend on the run's seed


def load_image_folder(
    root: str | os.PathLike, image_size: int | None, test_fraction: float, cache_dir: str | os.PathLike | None
) -> ImageSplits:
    root = project_path(root)
    if not root.is_dir():
        raise ConfigError(
            f"data.root={str(root)!r} is not a folder: data=imagefolder reads <root>/<class>/<image> "
            "(or <root>/train/<class>/ and <root>/test/<class>/)"
        )
    if (root / "train").is_dir():
        if not (root / "test").is_dir():
            raise ConfigError(f"data.root: {root}/train exists but {root}/test does not: give both, or neither")
        classes, train_files = class_files(root / "train")
        test_classes, test_files = class_files(root / "test", classes)
        missing = sorted(set(classes) - set(test_classes))
        if missing:
            raise ConfigError(f"data.root: {root}/test has no folder for the classes {', '.join(missing)}")
    else:
        if not 0 < test_fraction < 1:
            raise ConfigError(f"data.test_fraction={test_fraction} is not allowed: use a fraction in (0, 1)")
        classes, files = class_files(root)
        train_files, test_files = hold_out(files, classes, test_fraction)
    size, channels = image_format(train_files + test_files, image_size)
    train_x, test_x = decoded_images(root, train_files, test_files, size, channels, cache_dir, "imagefolder")
    train_y = torch.tensor([k for _, k in train_files], dtype=torch.long)
    test_y = torch.tensor([k for _, k in test_files], dtype=torch.long)
    return ImageSplits(train_x, train_y, test_x, test_y, len(classes), f"imagefolder:{root.resolve()}", tuple(classes))


def class_files(folder: Path, known: list[str] | None = None) -> tuple[list[str], list[tuple[Path, int]]]:
    """The class names (sorted folder names) and every image file with its class index
    (``known``: the training classes; the test folders must use the same names)."""
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(classes) < 2:
        raise ConfigError(
            f"data.root: {folder} holds {len(classes)} class folder{'s' * (len(classes) != 1)} "
            f"({', '.join(classes) or 'none'}); a class-split stream needs at least 2 (<root>/<class>/<image>)"
        )
    index = {name: k for k, name in enumerate(known or classes)}
    files = []
    for name in classes:
        if name not in index:
            raise ConfigError(f"data.root: {folder / name} is a class that the training folder does not have")
        images = sorted(p for p in (folder / name).rglob("*") if p.suffix.lower() in EXTENSIONS and p.is_file())
        if not images:
            raise ConfigError(f"data.root: the class folder {folder / name} holds no images ({', '.join(EXTENSIONS)})")
        files += [(p, index[name]) for p in images]
    return classes, files


def hold_out(
    files: list[tuple[Path, int]], classes: list[str], fraction: float
) -> tuple[list[tuple[Path, int]], list[tuple[Path, int]]]:
    """Per class, ``round(fraction * size)`` images (at least one) in a fixed shuffled order go
    to the test set; every class keeps at least one training image."""
    generator = torch.Generator().manual_seed(TEST_SPLIT_SEED)
    train, test = [], []
    for k, name in enumerate(classes):
        members = [f for f in files if f[1] == k]
        if len(members) < 2:
            raise ConfigError(
                f"data.root: the class {name!r} has {len(members)} image; holding out a test set needs at least 2"
            )
        order = torch.randperm(len(members), generator=generator).tolist()
        n_test = min(max(1, round(fraction * len(members))), len(members) - 1)
        test += sorted(members[i] for i in order[:n_test])
        train += sorted(members[i] for i in order[n_test:])
    return train, test


def image_format(files: list[tuple[Path, int]], image_size: int | None) -> tuple[int, int]:
    """(size, channels) of the tensors: the images' own square size unless ``image_size`` is
    given; 1 channel when every image is greyscale."""
    from PIL import Image

    sizes, grey = {}, True
    for path, _ in files:
        try:
            with Image.open(path) as image:  # reads the header only
                sizes.setdefault(image.size, path)
                grey = grey and image.mode in GREY_MODES
        except OSError as err:
            raise ConfigError(f"data.root: the image {path} could not be read ({err}); replace or delete it") from err
    channels = 1 if grey else 3
    if image_size is not None:
        if image_size < 1:
            raise ConfigError(f"data.image_size={image_size} is not allowed: use a positive number of pixels")
        return int(image_size), channels
    width, height = next(iter(sizes))
    if len(sizes) > 1 or width != height:
        examples = ", ".join(f"{p.name} {w}x{h}" for (w, h), p in list(sizes.items())[:3])
        raise ConfigError(
            f"data.root: the images are not all of one square size ({examples}): set data.image_size=N "
            "to resize every image to N x N"
        )
    return width, channels

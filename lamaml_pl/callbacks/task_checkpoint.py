"""A checkpoint at the end of every task, written atomically, so a crashed run can resume exactly."""

from __future__ import annotations

import os
import random
import time
from pathlib import Path

import numpy as np
import torch
from pytorch_lightning.callbacks import Callback

from lamaml_pl import __version__

CHECKPOINT_DIR = "checkpoints"
LAST = "last.ckpt"
RUN_RECORD = "lamaml_pl"  # the checkpoint's record of its run: config, algorithm, code version, training time so far


class TaskCheckpoint(Callback):
    """Writes ``<run>/checkpoints/last.ckpt`` after each task's evaluation row is recorded.

    The file is written under a temporary name and renamed over the old one, so a crash while
    writing leaves the previous checkpoint intact. It holds the weights, learnable LRs, optimiser
    states, buffers and memories, the task cursor and the accuracy rows (the learner's
    ``on_save_checkpoint``) and the random states: the global ones (this callback's own state)
    and a population's members' generators (the learner's ``draws``).

    The checkpoint is taken after the task's evaluation, before its epoch ends. On resume
    Lightning first rebuilds that finished epoch's loader (a draw from the global stream), then
    ends the epoch: restoring the random states there, not at load time, continues the exact
    random stream of the uninterrupted run, also with ``data.shuffle=global``.
    """

    def __init__(self, config: str):
        self.config = config  # the run's composed config (YAML, interpolations kept): what a resume runs
        self.pending: dict | None = None  # random states of a loaded checkpoint, until its epoch ends
        self.pending_members: list | None = None
        self.earlier_wall_time = 0.0  # seconds the resumed run had trained before this process
        self.segment_start = time.perf_counter()

    def on_fit_start(self, trainer, pl_module) -> None:
        self.segment_start = time.perf_counter()

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        checkpoint["member_random_states"] = pl_module.draws.state()
        checkpoint[RUN_RECORD] = {
            "algo": pl_module.algo_name,
            "config": self.config,
            "version": __version__,
            "wall_time_s": self.earlier_wall_time + time.perf_counter() - self.segment_start,
        }

    def on_load_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        self.pending_members = checkpoint["member_random_states"]
        self.earlier_wall_time = checkpoint[RUN_RECORD]["wall_time_s"]
        cursor, data = checkpoint["continual"], trainer.datamodule
        done = f"task {cursor['current_task'] + 1}/{data.n_tasks}"
        if data.epochs_per_task > 1:
            done += f" (pass {cursor['task_epoch'] + 1}/{data.epochs_per_task})"
        print(f"resuming after {done}: {self.earlier_wall_time:.0f} s trained so far", flush=True)

    def on_validation_end(self, trainer, pl_module) -> None:
        if trainer.state.fn != "fit" or trainer.sanity_checking:
            return
        folder = Path(trainer.default_root_dir) / CHECKPOINT_DIR
        folder.mkdir(parents=True, exist_ok=True)
        partial = folder / f".{LAST}.partial"
        trainer.save_checkpoint(partial, weights_only=False)
        os.replace(partial, folder / LAST)

    def state_dict(self) -> dict:
        name, keys, pos, has_gauss, cached = np.random.get_state()
        return {
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
            "python": random.getstate(),
            # the key array as a tensor: checkpoints load weights-only
            "numpy": (name, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)),
        }

    def load_state_dict(self, state_dict: dict) -> None:
        self.pending = state_dict

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if self.pending_members is not None:
            pl_module.draws.set_state(self.pending_members)
            self.pending_members = None
        if self.pending is None:
            return
        rng, self.pending = self.pending, None
        torch.set_rng_state(rng["torch"])
        if rng["cuda"] is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])
        random.setstate(rng["python"])
        name, keys, pos, has_gauss, cached = rng["numpy"]
        np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))

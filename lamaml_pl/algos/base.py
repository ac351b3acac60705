"""ContinualLearner: what every algorithm shares — task bookkeeping and the accuracy matrix.

An algorithm subclasses it and implements ``observe(x, y, t)``, the update for one incoming
batch (the convention of GEM, MER, La-MAML and Mammoth); optimisation is manual.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import ClassVar

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import nn

from lamaml_pl.errors import ConfigError, DivergenceError
from lamaml_pl.metrics import INIT_TAG, AccuracyLog, TaskAccuracy
from lamaml_pl.stream import SCENARIOS, StreamInfo, scenario_of

MASK_VALUE = -1e11  # logits of other tasks at evaluation (the original writes -10e10)


class ContinualLearner(pl.LightningModule):
    """Base LightningModule of every algorithm.

    Hooks: ``on_task_start(t)`` runs before the first batch of task t, ``on_task_end(t)``
    after its last batch, before the task's evaluation row. ``task_epoch`` is the pass over the
    current task (0-based).
    ``name`` is the algorithm's name in results and logs (the ``algo`` config's ``name``).
    Validation fills one row of the accuracy log per pass over all tasks' test sets.

    What an algorithm supports is declared on its class (checked here, and read by the tests):
    ``scenarios`` (:func:`~lamaml_pl.stream.scenario_of`), ``joint_stream`` (all tasks' data at once, the IID
    oracle) and ``population_axes`` (the hyperparameters a population may vary besides the seed;
    empty: no population mode).
    """

    scenarios: ClassVar[tuple[str, ...]] = SCENARIOS
    joint_stream: ClassVar[bool] = False
    population_axes: ClassVar[tuple[str, ...]] = ()

    def __init__(self, name: str, net: nn.Module, stream: StreamInfo):
        super().__init__()
        if scenario_of(stream) not in self.scenarios:
            raise ConfigError(
                f"algo={name} does not run {scenario_of(stream)} streams: it supports {', '.join(self.scenarios)} "
                "(task_il: data=cifar100, data=tinyimagenet; domain_il: data=mnist_rot, mnist_perm, mnist_many)"
            )
        if stream.joint and not self.joint_stream:
            raise ConfigError(f"data.joint=true: algo={name} learns task by task; the joint (IID) stream is algo=iid's")
        self.algo_name = name
        self.automatic_optimization = False
        self.net = net
        self.stream = stream
        self.current_task = -1
        self.task_epoch = 0
        self.classes_per_task = stream.classes_per_task
        self.task_accuracy = TaskAccuracy(stream.n_tasks, stream.test_sizes or None)
        self.accuracy_log = AccuracyLog(stream.n_tasks)  # the reported matrix: the test sets
        # the held-out validation split (model selection), where the benchmark has one
        self.val_task_accuracy = TaskAccuracy(stream.n_tasks, stream.val_sizes) if stream.val_sizes else None
        self.val_accuracy_log = AccuracyLog(stream.n_tasks) if stream.val_sizes else None
        # divergence is recorded on the device and checked once per pass, not with a host sync per
        # batch (which would stall a GPU): batches counted this pass, first non-finite batch, its loss
        self.register_buffer("_batches", torch.zeros((), dtype=torch.long), persistent=False)
        self.register_buffer("_bad_batch", torch.full((), -1, dtype=torch.long), persistent=False)
        self.register_buffer("_bad_loss", torch.zeros((), dtype=torch.float64), persistent=False)

    # ---- what an algorithm provides -------------------------------------------------------
    @abstractmethod
    def observe(self, x: torch.Tensor, y: torch.Tensor, t: int | torch.Tensor) -> torch.Tensor:
        """Update on one incoming batch of task ``t`` (on a joint stream, ``t`` holds each
        sample's task); returns the loss to log (detached)."""

    def on_task_start(self, t: int) -> None:
        """Called before the first batch of task ``t``."""

    def on_task_end(self, t: int) -> None:
        """Called after the last batch of task ``t``, before its evaluation."""

    def algorithm_state(self) -> dict:
        """Python-side state a checkpoint must carry (tensors in buffers travel by themselves)."""
        return {}

    def load_algorithm_state(self, state: dict) -> None:
        """Restore what ``algorithm_state`` returned."""

    # ---- Lightning plumbing ----------------------------------------------------------------
    def forward(self, x: torch.Tensor, t: torch.Tensor | int | None = None) -> torch.Tensor:
        """Logits; on task-incremental streams those outside task ``t``'s classes are masked."""
        return self.mask_logits(self.net(x), t)

    def mask_logits(self, logits: torch.Tensor, t: torch.Tensor | int | None) -> torch.Tensor:
        """Every logit outside each sample's task set to -1e11, as the original."""
        if self.classes_per_task is None or t is None:
            return logits
        low = torch.as_tensor(t, device=logits.device).expand(len(logits)).view(-1, 1) * self.classes_per_task
        classes = torch.arange(logits.shape[1], device=logits.device)
        inside = (classes >= low) & (classes < low + self.classes_per_task)
        return logits.masked_fill(~inside, MASK_VALUE)

    def loss(self, logits: torch.Tensor, y: torch.Tensor, t: torch.Tensor | int) -> torch.Tensor:
        """Mean cross-entropy; on task-incremental streams each sample's over its own task's
        classes only (``CE(logits[c*t : c*(t+1)], y - c*t)``), else over all outputs."""
        if self.classes_per_task is None:
            return F.cross_entropy(logits, y)
        offsets = torch.as_tensor(t, device=y.device).expand_as(y) * self.classes_per_task
        columns = offsets.view(-1, 1) + torch.arange(self.classes_per_task, device=y.device)
        return F.cross_entropy(logits.gather(1, columns), y - offsets)

    def predict(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Predicted labels at evaluation (iCaRL overrides: nearest mean of exemplars)."""
        return self(x, t).argmax(dim=1)

    def on_train_epoch_start(self) -> None:
        epoch = self.trainer.current_epoch
        task = self.trainer.datamodule.task_of_epoch(epoch)
        self.task_epoch = epoch % self.stream.epochs_per_task
        if task != self.current_task:
            self.current_task = task
            self.on_task_start(task)

    def on_train_epoch_end(self) -> None:
        self.check_divergence()

    def on_validation_epoch_start(self) -> None:
        # A task's last pass ends in its evaluation: end the task first, as the original does
        # inside its last observe (iCaRL's exemplars must exist before the task is scored).
        fitting = self.trainer.state.fn == "fit" and not self.trainer.sanity_checking
        if fitting:
            self.check_divergence()  # before the row: a diverged task is not scored
        if fitting and self.task_epoch == self.stream.epochs_per_task - 1:
            self.on_task_end(self.current_task)

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        x, y, t = batch
        loss = self.observe(x, y, t if self.stream.joint else self.current_task)  # joint: each sample's task
        first_bad = ~torch.isfinite(loss) & (self._bad_batch < 0)
        self._bad_batch = torch.where(first_bad, self._batches, self._bad_batch)
        self._bad_loss = torch.where(first_bad, loss.detach().to(self._bad_loss.dtype), self._bad_loss)
        self._batches += 1
        # on the progress bar only on the CPU: showing it means reading it every batch, and on a
        # GPU that stalls the host until the batch is done (the loggers get it regardless).
        # Not logged at all when nothing reads it: Lightning's log costs ~1 ms a batch.
        on_bar = loss.device.type == "cpu" and self.trainer.progress_bar_callback is not None
        if on_bar or self.trainer.loggers:
            self.log("train/loss", loss, prog_bar=on_bar, on_step=True, on_epoch=False)
        return loss

    def check_divergence(self) -> None:
        """Raise DivergenceError if a loss of this pass was NaN or infinite (one host sync)."""
        bad_batch = int(self._bad_batch)
        self._batches.zero_()
        if bad_batch >= 0:
            raise DivergenceError(
                f"{self.algo_name} diverged: loss {self._bad_loss.item()} at task {self.current_task}, "
                f"batch {bad_batch} of pass {self.task_epoch}"
            )

    def validation_step(self, batch, batch_idx: int, dataloader_idx: int = 0) -> None:
        x, y, t = batch
        metric = self.task_accuracy if dataloader_idx == 0 else self.val_task_accuracy
        metric.update(self.predict(x, t), y, t)

    def on_validation_epoch_end(self) -> None:
        fitting = self.trainer.state.fn == "fit"
        tag = self.current_task if fitting else INIT_TAG
        row = self._finish_row(self.task_accuracy, self.accuracy_log, tag)
        seen = row[: tag + 1] if tag >= 0 else row
        metrics = {f"val/acc_task{j:03d}": acc.item() for j, acc in enumerate(row)}
        metrics["val/acc_seen_mean"] = seen.mean().item()
        metrics["task"] = float(tag)
        if self.val_task_accuracy is not None:
            held_out = self._finish_row(self.val_task_accuracy, self.val_accuracy_log, tag)
            metrics["valsplit/acc_seen_mean"] = (held_out[: tag + 1] if tag >= 0 else held_out).mean().item()
        self.log_dict(metrics, on_step=False, on_epoch=True, add_dataloader_idx=False)

    @staticmethod
    def _finish_row(metric: TaskAccuracy, log: AccuracyLog, tag: int) -> torch.Tensor:
        row = metric.finish()
        log.append(row, tag)
        return row

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["continual"] = {
            "current_task": self.current_task,
            "task_epoch": self.task_epoch,
            "rows": self.accuracy_log.rows,
            "tags": self.accuracy_log.tags,
            "val_rows": None if self.val_accuracy_log is None else self.val_accuracy_log.rows,
            "algorithm": self.algorithm_state(),
        }

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        state = checkpoint["continual"]
        self.current_task, self.task_epoch = state["current_task"], state["task_epoch"]
        self.accuracy_log.rows, self.accuracy_log.tags = list(state["rows"]), list(state["tags"])
        if self.val_accuracy_log is not None:
            self.val_accuracy_log.rows, self.val_accuracy_log.tags = list(state["val_rows"]), list(state["tags"])
        self.load_algorithm_state(state["algorithm"])

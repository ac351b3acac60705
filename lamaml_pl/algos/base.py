"""ContinualLearner: what every algorithm shares — task bookkeeping and the accuracy matrix.

An algorithm subclasses it and implements ``observe(x, y, t)``, the update for one incoming
batch (the convention of GEM, MER, La-MAML and Mammoth); optimisation is manual.

A learner whose class declares ``population_axes`` may hold a population: ``join_members``
stacks the members' weights along a leading member axis, and the same ``observe`` then steps
every member on its own ``(members, B, ...)`` batch, with each member's random draws from its
own generator (``self.draws``). A single run is that code without the member axis. The accuracy
rows and the divergence check are kept per member here.
"""

from __future__ import annotations

import math
from abc import abstractmethod
from typing import ClassVar

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, vmap

from lamaml_pl.algos.draws import GLOBAL_DRAWS
from lamaml_pl.algos.fast_mlp import one_hot
from lamaml_pl.errors import ConfigError, DivergenceError
from lamaml_pl.metrics import INIT_TAG, AccuracyLog, TaskAccuracy
from lamaml_pl.nets import MLP, stacked_mlp
from lamaml_pl.stream import SCENARIOS, StreamInfo

MASK_VALUE = -1e11  # logits of other tasks at evaluation (the original writes -10e10)
# the cross-entropy of a class-incremental stream: over the classes seen so far (the head grows
# with the tasks, as iCaRL's) or over every output of the head (DER++'s reference, Mammoth: the
# logits of classes not seen yet are pushed down from the first task on)
CLASS_IL_LOSSES = ("seen", "all")


class ContinualLearner(pl.LightningModule):
    """Base LightningModule of every algorithm.

    Hooks: ``on_task_start(t)`` runs before the first batch of task t, ``on_task_end(t)``
    after its last batch, before the task's evaluation row. ``task_epoch`` is the pass over the
    current task (0-based).
    ``name`` is the algorithm's name in results and logs (the ``algo`` config's ``name``).
    Validation fills one row of the accuracy log per pass over all tasks' test sets.

    What an algorithm supports is declared on its class (checked here, and read by the tests):
    ``scenarios`` (:data:`~lamaml_pl.stream.SCENARIOS`), ``joint_stream`` (all tasks' data at once, the IID
    oracle) and ``population_axes`` (the hyperparameters a population may vary besides the seed;
    empty: no population mode; :meth:`check_population` says which settings a population runs).

    ``class_il_loss`` (:data:`CLASS_IL_LOSSES`): which outputs a class-incremental stream's
    cross-entropy runs over; None for a learner that does not train class-incremental streams.
    A class-incremental run is also scored with each sample's task's classes only (its task-IL
    view: ``task_il_accuracy_logs``), as the frameworks of the field report beside the class-IL
    matrix.
    """

    scenarios: ClassVar[tuple[str, ...]] = SCENARIOS
    joint_stream: ClassVar[bool] = False
    population_axes: ClassVar[tuple[str, ...]] = ()

    def __init__(self, name: str, net: nn.Module, stream: StreamInfo, class_il_loss: str | None):
        super().__init__()
        if stream.scenario not in self.scenarios:
            raise ConfigError(
                f"algo={name} does not run {stream.scenario} streams: it supports {', '.join(self.scenarios)} "
                "(the MNIST rotations/permutations are domain_il; data.scenario=task_il|class_il on a "
                "class-split stream)"
            )
        if stream.joint and not self.joint_stream:
            raise ConfigError(f"data.joint=true: algo={name} learns task by task; the joint (IID) stream is algo=iid's")
        if class_il_loss not in (None, *CLASS_IL_LOSSES):
            raise ConfigError(
                f"algo.class_il_loss={class_il_loss!r} is unknown: use one of {', '.join(CLASS_IL_LOSSES)}"
            )
        self.algo_name = name
        self.class_il_loss = class_il_loss
        self.automatic_optimization = False
        self.net = net
        self.stream = stream
        self.current_task = -1
        self.task_epoch = 0
        self.classes_per_task = stream.classes_per_task
        self.class_incremental = stream.scenario == "class_il"
        self.n_members = 1
        self.draws = GLOBAL_DRAWS
        self.weights: nn.ParameterList | None = None  # the members' stacked weights (a population)
        self.weight_names = [name for name, _ in net.named_parameters()]  # of member_weights(), in order
        self.task_accuracy = TaskAccuracy(stream.n_tasks, stream.test_sizes or None)
        self.accuracy_logs = [AccuracyLog(stream.n_tasks)]  # per member: the reported matrix (test sets)
        # the held-out validation split (model selection), where the benchmark has one
        self.val_task_accuracy = TaskAccuracy(stream.n_tasks, stream.val_sizes) if stream.val_sizes else None
        self.val_accuracy_logs = [AccuracyLog(stream.n_tasks)] if stream.val_sizes else None
        # class-incremental streams: the test sets scored again among each task's classes only
        self.task_il_accuracy = self.task_il_accuracy_logs = None
        if self.class_incremental:
            self.task_il_accuracy = TaskAccuracy(stream.n_tasks, stream.test_sizes or None)
            self.task_il_accuracy_logs = [AccuracyLog(stream.n_tasks)]
        self.diverged: list[str | None] = [None]  # per member: why its training stopped
        # per member, the sum of this pass's training losses, on the device: one op a batch serves
        # the divergence check (a non-finite sum), read once per pass, and the logged loss
        # (report_loss), read once per window — no host sync per batch, which would stall a GPU
        self.register_buffer("_pass_loss", torch.zeros(1, dtype=torch.float64), persistent=False)
        self.register_buffer("_window_start", torch.zeros(1, dtype=torch.float64), persistent=False)
        self.train_loss: float | None = None  # the last window's mean loss
        self.incoming_batches = 0  # learned in this pass
        self.incoming_batch_hooks: list = []

    @property
    def accuracy_log(self) -> AccuracyLog:
        """A single run's accuracy log."""
        return self.accuracy_logs[0]

    @property
    def val_accuracy_log(self) -> AccuracyLog | None:
        """A single run's accuracy log on the validation split, where the benchmark has one."""
        return None if self.val_accuracy_logs is None else self.val_accuracy_logs[0]

    # ---- a population: the member axis ---------------------------------------------------
    def check_population(self) -> None:
        """Raise ConfigError unless this learner's settings run as a batched population
        (subclasses add their conditions; the joint IID stream never gets here)."""

    def join_members(self, learners: list[ContinualLearner], draws) -> None:
        """Make this learner (``learners[0]``) the population of ``learners``, each built from its
        own config: their weights stacked along a leading member axis, every member's draws from
        its own generator (``draws``: ``MemberDraws``). Subclasses stack the rest of their state
        in :meth:`stack_members`."""
        self.check_population()
        n = len(learners)
        self.n_members, self.draws = n, draws
        self.weights = nn.ParameterList(
            nn.Parameter(w) for w in stacked_mlp.stack_parameters([m.net for m in learners])
        )
        stream = self.stream
        self.task_accuracy = TaskAccuracy(stream.n_tasks, stream.test_sizes or None, members=n)
        self.accuracy_logs = [AccuracyLog(stream.n_tasks) for _ in learners]
        if stream.val_sizes:
            self.val_task_accuracy = TaskAccuracy(stream.n_tasks, stream.val_sizes, members=n)
            self.val_accuracy_logs = [AccuracyLog(stream.n_tasks) for _ in learners]
        if self.class_incremental:
            self.task_il_accuracy = TaskAccuracy(stream.n_tasks, stream.test_sizes or None, members=n)
            self.task_il_accuracy_logs = [AccuracyLog(stream.n_tasks) for _ in learners]
        self.diverged = [None] * n
        self._pass_loss = torch.zeros(n, dtype=torch.float64, device=self._pass_loss.device)
        self._window_start = torch.zeros_like(self._pass_loss)
        self.stack_members(learners)

    def stack_members(self, learners: list[ContinualLearner]) -> None:
        """Stack the members' own state (beyond the weights) along the member axis."""

    def stack_values(self, learners: list[ContinualLearner], *names: str) -> None:
        """Each hyperparameter ``name`` of the members as one float64 value per member, ``(N,)``:
        exact, rounded once to the weights' dtype where used, as a Python float would be."""
        for name in names:
            values = torch.tensor([float(getattr(m, name)) for m in learners], dtype=torch.float64)
            delattr(self, name)
            self.register_buffer(name, values, persistent=False)

    def member_weights(self) -> list[torch.Tensor]:
        """The weights being trained: the net's, or the members' stacked ones."""
        return list(self.net.parameters()) if self.weights is None else list(self.weights)

    @property
    def sample_axis(self) -> int:
        """The axis of a batch's samples: 1 behind a member axis."""
        return 0 if self.weights is None else 1

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
        """Logits (a population's: ``(members, B, classes)``); on task-incremental streams those
        outside task ``t``'s classes are masked."""
        return self.mask_logits(self.net_logits(x), t)

    def net_logits(self, x: torch.Tensor) -> torch.Tensor:
        """The outputs of the weights being trained, unmasked: the net's, or a population's
        ``(members, B, classes)``."""
        if self.weights is None:
            return self.net(x)
        return self.logits_at(dict(zip(self.weight_names, self.weights)), x)

    def logits_at(self, weights: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        """The net's outputs at ``weights`` (fast weights, say): a single run's through
        ``functional_call``; a population's (every weight with a member axis) ``(members, B,
        classes)``, each member on its own ``(members, B, ...)`` batch or all on one ``(B, ...)``
        batch (a test set). Autograd differentiates it, to any order."""
        if self.weights is None:
            return functional_call(self.net, weights, (x,))
        if isinstance(self.net, MLP):  # batched products (and the MNIST test sets' gathered pixels)
            return stacked_mlp.logits(list(weights.values()), x)
        shared = x.dim() == len(self.stream.input_shape) + 1
        per_member = vmap(lambda w, xs: functional_call(self.net, w, (xs,)), in_dims=(0, None if shared else 0))
        return per_member(weights, x)

    def graph_key(self) -> int | None:
        """What a CUDA-graphed update reads from the host besides its inputs' shapes: the
        class-incremental head's width (:class:`~lamaml_pl.algos.cuda_graph.GraphedStep`'s key)."""
        return self.seen_classes if self.class_incremental else None

    @property
    def seen_classes(self) -> int:
        """Class-incremental streams: the classes of the tasks seen so far (the first task's
        before training), the width of the one head every sample is scored on."""
        return (max(self.current_task, 0) + 1) * self.classes_per_task

    def mask_logits(self, logits: torch.Tensor, t: torch.Tensor | int | None) -> torch.Tensor:
        """Every logit outside each sample's task set to -1e11, as the original; class-incremental:
        every logit of a class not seen yet (the task id is not used)."""
        if self.class_incremental:
            unseen = torch.arange(logits.shape[-1], device=logits.device) >= self.seen_classes
            return logits.masked_fill(unseen, MASK_VALUE)
        if self.classes_per_task is None or t is None:
            return logits
        return self.within_tasks(logits, t)

    def within_tasks(self, logits: torch.Tensor, t: torch.Tensor | int) -> torch.Tensor:
        """Every logit outside each sample's task set to -1e11 (the task-incremental mask)."""
        low = torch.as_tensor(t, device=logits.device).expand(logits.shape[-2]).view(-1, 1) * self.classes_per_task
        classes = torch.arange(logits.shape[-1], device=logits.device)
        inside = (classes >= low) & (classes < low + self.classes_per_task)
        return logits.masked_fill(~inside, MASK_VALUE)

    def task_columns(self, tasks: torch.Tensor) -> torch.Tensor:
        """``[..., c]``: the classes of each sample's task (task-incremental streams)."""
        return tasks.unsqueeze(-1) * self.classes_per_task + torch.arange(self.classes_per_task, device=tasks.device)

    def loss_columns(self, y: torch.Tensor, t: torch.Tensor | int) -> tuple[torch.Tensor | None, torch.Tensor]:
        """The outputs each sample's cross-entropy runs over, as columns ``[..., B, k]`` (None:
        every output), and the labels' places among them: on task-incremental streams its own
        task's classes (``logits[c*t : c*(t+1)]``, label ``y - c*t``), on class-incremental ones the
        classes seen so far or every output (``class_il_loss``), else every output."""
        if self.class_incremental:
            if self.class_il_loss == "seen":
                return torch.arange(self.seen_classes, device=y.device).expand(*y.shape, -1), y
            return None, y
        if self.classes_per_task is not None:
            tasks = torch.as_tensor(t, device=y.device).expand_as(y)
            return self.task_columns(tasks), y - tasks * self.classes_per_task
        return None, y

    def loss(self, logits: torch.Tensor, y: torch.Tensor, t: torch.Tensor | int) -> torch.Tensor:
        """Mean cross-entropy of unmasked logits over each sample's :meth:`loss_columns`. A
        population's ``(members, B, classes)`` logits: each member's mean, ``(members,)``."""
        columns, y = self.loss_columns(y, t)
        if columns is not None:
            logits = logits.gather(-1, columns)
        if logits.dim() == 3:
            return F.cross_entropy(logits.transpose(1, 2), y, reduction="none").mean(dim=1)
        return F.cross_entropy(logits, y)

    def loss_and_logit_grad(
        self, logits: torch.Tensor, y: torch.Tensor, t: torch.Tensor | int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`loss` and its gradient with respect to ``logits``, written out (no autograd
        graph): over each sample's columns, softmax minus the one-hot label, over the batch size;
        zero for every other output."""
        columns, target = self.loss_columns(y, t)
        chosen = logits if columns is None else logits.gather(-1, columns)
        log_p = torch.log_softmax(chosen, dim=-1)
        loss = log_p.gather(-1, target.unsqueeze(-1)).mean(dim=(-2, -1)).neg_()
        grad = log_p.exp_().sub_(one_hot(target, chosen.shape[-1], chosen.dtype)).div_(target.shape[-1])
        if columns is not None:
            grad = torch.zeros_like(logits).scatter_(-1, columns, grad)
        return loss, grad

    def predict(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Predicted labels at evaluation (iCaRL overrides: nearest mean of exemplars)."""
        return self(x, t).argmax(dim=-1)

    def predict_within_task(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """A class-incremental run's task-IL view: each sample's label predicted among its own
        task's classes only (iCaRL overrides)."""
        return self.within_tasks(self.net_logits(x), t).argmax(dim=-1)

    def on_train_epoch_start(self) -> None:
        self._pass_loss.zero_()  # (a logging window lies within one pass)
        self._window_start.zero_()
        self.incoming_batches = 0
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

    def on_train_start(self) -> None:
        # callbacks that look at every incoming batch (a Lightning step learns a window of them)
        self.incoming_batch_hooks = [
            c.on_incoming_batch_end for c in self.trainer.callbacks if hasattr(c, "on_incoming_batch_end")
        ]

    def training_step(self, window: list, window_idx: int) -> None:
        """Learn a window of incoming batches (``trainer.batches_per_step``) one after another."""
        for x, y, t in window:
            self.learn_batch(x, y, t)

    def learn_batch(self, x: torch.Tensor, y: torch.Tensor, t: torch.Tensor | None) -> None:
        """``observe`` one incoming batch; its loss joins the pass's sums (one op), then the
        loss window and the callbacks' per-batch hooks."""
        loss = self.observe(x, y, t if self.stream.joint else self.current_task)  # joint: each sample's task
        self._pass_loss += loss
        self.incoming_batches += 1
        if self.incoming_batches % self.trainer.log_every_n_steps == 0:
            self.report_loss()
        for hook in self.incoming_batch_hooks:
            hook(self, x, y)

    def report_loss(self) -> None:
        """The mean training loss (over the members) of the last ``trainer.log_every_n_steps``
        incoming batches, to the loggers (``train/loss`` at the optimizer step) and the progress bar:
        read from the device once per window. Lightning's ``log`` costs about a millisecond a
        batch, and reading the loss every batch would stall a GPU."""
        trainer = self.trainer
        if not trainer.loggers and trainer.progress_bar_callback is None:
            return
        window = (self._pass_loss - self._window_start).mean() / trainer.log_every_n_steps
        self._window_start.copy_(self._pass_loss)
        self.train_loss = window.item()
        for logger in trainer.loggers:
            logger.log_metrics({"train/loss": self.train_loss}, step=self.global_step)

    def check_divergence(self) -> None:
        """Mark every member whose loss was NaN or infinite in this pass (its sum is; one host
        sync); its accuracy rows stop there while the others train on. Raise DivergenceError when
        no member is left (a single run: at the end of the pass where its loss became non-finite)."""
        for k, loss in enumerate(self._pass_loss.tolist()):
            if not math.isfinite(loss) and self.diverged[k] is None:
                self.diverged[k] = (
                    f"{self.algo_name} diverged: loss {loss} in task {self.current_task}, pass {self.task_epoch}"
                )
        if all(self.diverged):
            raise DivergenceError(self.diverged[0])

    def validation_step(self, batch, batch_idx: int, dataloader_idx: int = 0) -> None:
        x, y, t = batch
        split, members = self.trainer.datamodule.eval_split(dataloader_idx)
        scored = [(self.task_accuracy if split == 0 else self.val_task_accuracy, self.predict)]
        if split == 0 and self.class_incremental:
            scored.append((self.task_il_accuracy, self.predict_within_task))
        for metric, predict in scored:
            predictions = predict(x, t)
            if members is not None:  # this set is scored for some members only
                members = members.to(predictions.device)
                predictions = predictions[members]
            metric.update(predictions, y, t, members)

    def on_validation_epoch_end(self) -> None:
        fitting = self.trainer.state.fn == "fit"
        tag = self.current_task if fitting else INIT_TAG
        row = self._append_rows(self.task_accuracy, self.accuracy_logs, tag)
        seen = row[: tag + 1] if tag >= 0 else row
        # logged in percent, as results.json and every printed number
        metrics = {f"val/acc_task{j:03d}": 100 * acc.item() for j, acc in enumerate(row)}
        metrics["val/acc_seen_mean"] = 100 * seen.mean().item()
        metrics["task"] = float(tag)
        if self.val_task_accuracy is not None:
            held_out = self._append_rows(self.val_task_accuracy, self.val_accuracy_logs, tag)
            metrics["valsplit/acc_seen_mean"] = 100 * (held_out[: tag + 1] if tag >= 0 else held_out).mean().item()
        if self.task_il_accuracy is not None:
            within = self._append_rows(self.task_il_accuracy, self.task_il_accuracy_logs, tag)
            metrics["task_il/acc_seen_mean"] = 100 * (within[: tag + 1] if tag >= 0 else within).mean().item()
        self.log_dict(metrics, on_step=False, on_epoch=True, add_dataloader_idx=False)

    def _append_rows(self, metric: TaskAccuracy, logs: list[AccuracyLog], tag: int) -> torch.Tensor:
        """This pass's row of every member still training; returns the members' mean (logged)."""
        rows = metric.finish().reshape(self.n_members, -1)
        for log, row, diverged in zip(logs, rows, self.diverged):
            if diverged is None:
                log.append(row, tag)
        return rows.mean(dim=0)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["continual"] = {
            "current_task": self.current_task,
            "task_epoch": self.task_epoch,
            "diverged": self.diverged,
            "algorithm": self.algorithm_state(),
        }
        for prefix, logs in self._logs().items():
            checkpoint["continual"][f"{prefix}rows"] = None if logs is None else [log.rows for log in logs]
            checkpoint["continual"][f"{prefix}tags"] = None if logs is None else [log.tags for log in logs]

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        state = checkpoint["continual"]
        self.current_task, self.task_epoch = state["current_task"], state["task_epoch"]
        self.diverged = list(state["diverged"])
        for prefix, logs in self._logs().items():
            saved_rows, saved_tags = state.get(f"{prefix}rows"), state.get(f"{prefix}tags")
            if logs is None or saved_rows is None:
                continue
            for log, rows, tags in zip(logs, saved_rows, saved_tags, strict=True):
                log.rows, log.tags = list(rows), list(tags)
        self.load_algorithm_state(state["algorithm"])

    def _logs(self) -> dict[str, list[AccuracyLog] | None]:
        """Every accuracy log a checkpoint carries, by its keys' prefix."""
        return {"": self.accuracy_logs, "val_": self.val_accuracy_logs, "task_il_": self.task_il_accuracy_logs}

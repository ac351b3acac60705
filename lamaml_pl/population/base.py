"""PopulationLearner: N members of one algorithm trained as one batched LightningModule.

Each member is a single-run learner built from its own config (so its hyperparameters are
checked exactly as a single run's); the population stacks their nets' weights along a leading
member axis and steps all members with batched matrix products. Subclasses implement
``plan_epoch`` (every random draw of the epoch, from each member's :class:`MemberRNG`, in the
single run's order) and ``observe`` (the batched update of one incoming batch).

Evaluation fills one accuracy row per member per pass over the test sets, as
:class:`~lamaml_pl.algos.base.ContinualLearner` does. A member whose loss turns NaN or infinite
is marked diverged at the end of that task; its rows stop there (members never mix, so the
others train on unaffected).
"""

from __future__ import annotations

from abc import abstractmethod

import pytorch_lightning as pl
import torch
from torch import nn

from lamaml_pl.algos.base import ContinualLearner
from lamaml_pl.metrics import INIT_TAG, AccuracyLog, TaskAccuracy
from lamaml_pl.population import stacked_mlp
from lamaml_pl.population.member_rng import MemberRNG
from lamaml_pl.stream import StreamInfo


class PopulationLearner(pl.LightningModule):
    def __init__(self, learners: list[ContinualLearner], rngs: list[MemberRNG], stream: StreamInfo):
        super().__init__()
        self.automatic_optimization = False
        self.algo_name = learners[0].algo_name
        self.n_members = len(learners)
        self.rngs = rngs
        self.stream = stream
        self.weights = nn.ParameterList(
            [nn.Parameter(w, requires_grad=False) for w in stacked_mlp.stack_mlps([m.net for m in learners])]
        )
        self.current_task, self.task_epoch = -1, 0
        self.plan: list[tuple] = []
        self.accuracy_logs = [AccuracyLog(stream.n_tasks) for _ in learners]
        self.diverged_at: list[int | None] = [None] * self.n_members  # task in which the loss went non-finite
        self.task_accuracy = TaskAccuracy(stream.n_tasks, stream.test_sizes or None, members=self.n_members)
        self.register_buffer("finite", torch.ones(self.n_members, dtype=torch.bool), persistent=False)

    @staticmethod
    def member_values(learners: list[ContinualLearner], name: str) -> torch.Tensor:
        """One hyperparameter of every member, as a float64 vector (N,): exact, then rounded
        once to the weights' dtype where used, as a Python float would be."""
        return torch.tensor([float(getattr(m, name)) for m in learners], dtype=torch.float64)

    # ---- what an algorithm provides -------------------------------------------------------
    @abstractmethod
    def plan_epoch(self, batch_sizes: list[int]) -> list[tuple]:
        """Every member's random draws for this epoch's batches, stacked per batch: called
        after the epoch's data order was drawn, so each member's draws follow its single run's."""

    @abstractmethod
    def observe(self, x: torch.Tensor, y: torch.Tensor, t: int, draws: tuple) -> torch.Tensor:
        """Update every member on its incoming batch ``(N, B, ...)``; returns the losses (N,)."""

    # ---- Lightning plumbing ----------------------------------------------------------------
    def configure_optimizers(self):
        return []  # the batched steps update the stacked tensors themselves

    def on_train_epoch_start(self) -> None:
        data = self.trainer.datamodule
        epoch = self.trainer.current_epoch
        if data.ordered_epoch != epoch:
            raise RuntimeError(f"epoch {epoch}: the members' data order was not drawn before the epoch started")
        task = data.task_of_epoch(epoch)
        self.task_epoch = epoch % self.stream.epochs_per_task
        self.current_task = task
        # drawn under the dtype context the single run's observe runs in (trainer.precision=64-true
        # makes torch.rand draw float64 there), so the draws consume the generators identically
        with self.trainer.precision_plugin.forward_context():
            plan = self.plan_epoch(data.batch_sizes)
        self.plan = [tuple(d.to(self.device) for d in step) for step in plan]

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        x, y = batch
        losses = self.observe(x, y, self.current_task, self.plan[batch_idx])
        self.finite &= torch.isfinite(losses)
        return losses.mean()

    def validation_step(self, batch, batch_idx: int) -> None:
        x, y, t = batch
        predictions = stacked_mlp.logits(list(self.weights), x).argmax(dim=-1)
        self.task_accuracy.update(predictions, y, t)

    def on_validation_epoch_end(self) -> None:
        fitting = self.trainer.state.fn == "fit"
        tag = self.current_task if fitting else INIT_TAG
        rows = self.task_accuracy.finish()
        finite = self.finite.cpu().tolist()
        for k, (log, row) in enumerate(zip(self.accuracy_logs, rows)):
            if self.diverged_at[k] is None and not finite[k]:
                self.diverged_at[k] = self.current_task
            if self.diverged_at[k] is None:
                log.append(row, tag)
        seen = rows[:, : tag + 1] if tag >= 0 else rows
        self.log("val/acc_seen_mean", seen.mean().item(), on_step=False, on_epoch=True)

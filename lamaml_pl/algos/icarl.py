"""iCaRL as in the La-MAML repository (Rebuffi et al., CVPR 2017).

Training: masked cross-entropy of the incoming batch plus, once exemplars exist, for every
earlier task k a distillation term ``memory_strength * KL(p_old || p_new)`` over task k's outputs,
on one random exemplar of each of its classes (p_old from the logits stored when the exemplars
were chosen); one SGD step per glance, norm-clipped.
End of a task: ``m = n_memories // (classes holding exemplars + new classes)`` exemplars per class;
each new class chooses its m by herding; older classes keep their first m; every class's
distillation targets are recomputed at the current weights.
Prediction: nearest mean of exemplars — the class of the queried task whose exemplars' mean
logit vector is closest (L2) to the sample's; a task without exemplars yet predicts its first class.
Class-incremental streams (no task id): the same over every class seen so far; the distillation
covers all earlier classes' outputs and herding the seen classes' logits.

Quirk Q8 (kept, as published): herding features are the task's own logits, not a penultimate
layer; the nearest-mean rule uses unnormalised full logit vectors; only the first pass is
stored for herding, without its last batch (``store_last_batch`` False; True keeps it).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lamaml_pl.algos.base import ContinualLearner
from lamaml_pl.errors import require_positive
from lamaml_pl.stream import StreamInfo


class ICaRL(ContinualLearner):
    scenarios = ("task_il", "class_il")  # its exemplars and nearest-mean rule are per class

    def __init__(
        self,
        name: str,
        net: nn.Module,
        stream: StreamInfo,
        lr: float,
        n_memories: int,
        memory_strength: float,
        glances: int,
        grad_clip_norm: float,
        store_last_batch: bool,
    ):
        super().__init__(name, net, stream)
        require_positive("algo", lr=lr, n_memories=n_memories, glances=glances, grad_clip_norm=grad_clip_norm)
        self.save_hyperparameters(ignore=["name", "net", "stream"])
        self.lr, self.n_memories, self.reg = lr, int(n_memories), memory_strength
        self.glances, self.grad_clip_norm, self.store_last_batch = int(glances), grad_clip_norm, store_last_batch
        self.exemplars: dict[int, torch.Tensor] = {}  # class -> inputs, in herding order
        self.targets: dict[int, torch.Tensor] = {}  # class -> full logits stored for distillation
        self.store_x: list[torch.Tensor] = []  # the current task's first pass, for herding
        self.store_y: list[torch.Tensor] = []
        self.class_means: torch.Tensor | None = None  # [n_classes, n_outputs] during an evaluation pass

    def configure_optimizers(self):
        return torch.optim.SGD(self.net.parameters(), lr=self.lr)

    # ---- training ---------------------------------------------------------------------------
    def observe(self, x: torch.Tensor, y: torch.Tensor, t: int) -> torch.Tensor:
        if self.task_epoch == 0:
            self.store_x.append(x.detach())
            self.store_y.append(y.detach())
        opt = self.optimizers()
        for _ in range(self.glances):
            opt.zero_grad()
            loss = self.loss(self.net(x), y, t)
            if self.exemplars:
                loss = loss + self.reg * self.distillation(t)
            self.manual_backward(loss)
            nn.utils.clip_grad_norm_(self.net.parameters(), self.grad_clip_norm)
            opt.step()
        return loss.detach()

    def distillation(self, t: int) -> torch.Tensor:
        """Σ over earlier tasks of the mean per-example KL(p_old || p_new) on their outputs, one
        random exemplar per class (the original's KLDivLoss 'mean' x classes_per_task)."""
        c = self.classes_per_task
        classes = [k for k in sorted(self.exemplars) if k < t * c]
        if not classes:
            return torch.zeros((), device=self.device)
        picks = [int(torch.randint(len(self.exemplars[k]), ())) for k in classes]
        x = torch.stack([self.exemplars[k][i] for k, i in zip(classes, picks)])
        old = torch.stack([self.targets[k][i] for k, i in zip(classes, picks)])
        if self.class_incremental:  # the earlier tasks' head: every old class
            columns = torch.arange(t * c, device=x.device).expand(len(classes), -1)
        else:
            columns = self.task_columns(torch.tensor(classes, device=x.device) // c)
        log_new = F.log_softmax(self.net(x).gather(1, columns), dim=1)
        p_old = F.softmax(old.gather(1, columns), dim=1)
        return F.kl_div(log_new, p_old, reduction="sum") / c

    # ---- the end of a task: herding ----------------------------------------------------------
    @torch.no_grad()
    def on_task_end(self, t: int) -> None:
        if not self.store_last_batch:  # Q8: the original stops storing one batch early
            self.store_x, self.store_y = self.store_x[:-1], self.store_y[:-1]
        if not self.store_y:
            return
        stored_x, stored_y = torch.cat(self.store_x), torch.cat(self.store_y)
        c = self.classes_per_task
        per_class = self.n_memories // (len(self.exemplars) + c)
        for k in range(t * c, (t + 1) * c):
            members = stored_x[stored_y == k]
            if len(members):
                head = slice(0, self.seen_classes) if self.class_incremental else slice(t * c, (t + 1) * c)
                features = self.net(members)[:, head]
                self.exemplars[k] = members[herding(features, per_class)]
        for k in list(self.exemplars):
            self.exemplars[k] = self.exemplars[k][:per_class]
            self.targets[k] = self.net(self.exemplars[k])
        self.store_x, self.store_y = [], []

    # ---- evaluation: nearest mean of exemplars ---------------------------------------------
    def on_validation_epoch_start(self) -> None:
        super().on_validation_epoch_start()
        self.class_means = self.exemplar_means()  # once per evaluation pass, not per batch

    def on_validation_epoch_end(self) -> None:
        super().on_validation_epoch_end()
        self.class_means = None  # the weights change before the next pass

    @torch.no_grad()
    def exemplar_means(self) -> torch.Tensor | None:
        """Mean full logit vector of each class's exemplars; NaN rows for classes without any."""
        if not self.exemplars:
            return None
        rows = {k: self.net(x).mean(dim=0) for k, x in self.exemplars.items()}
        width = next(iter(rows.values())).shape[0]
        means = torch.full((self.stream.n_classes, width), float("nan"), device=self.device)
        for k, row in rows.items():
            means[k] = row
        return means

    def predict(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if self.class_incremental:  # no task id: every class seen so far is a candidate
            columns = torch.arange(self.seen_classes, device=x.device).expand(len(x), -1)
        else:
            columns = self.task_columns(t)  # [N, c] candidate classes
        means = self.class_means if self.class_means is not None else self.exemplar_means()
        if means is None:
            return columns[:, 0]
        distances = torch.linalg.vector_norm(self.net(x).unsqueeze(1) - means[columns], dim=2)
        distances = torch.nan_to_num(distances, nan=float("inf"))  # a class without exemplars never wins...
        nearest = distances.argmin(dim=1)  # ...and a task without any predicts its first class
        return columns.gather(1, nearest.view(-1, 1)).squeeze(1)

    # ---- checkpoints ---------------------------------------------------------------------------
    def algorithm_state(self) -> dict:
        return {"exemplars": self.exemplars, "targets": self.targets, "store_x": self.store_x, "store_y": self.store_y}

    def load_algorithm_state(self, state: dict) -> None:
        self.exemplars, self.targets = dict(state["exemplars"]), dict(state["targets"])
        self.store_x, self.store_y = list(state["store_x"]), list(state["store_y"])


def herding(features: torch.Tensor, m: int) -> torch.Tensor:
    """Indices of ``min(m, N)`` samples chosen greedily so that the running mean of the chosen
    features stays closest (L2) to the mean of all: at step e pick the unchosen i minimising
    ‖μ − (φ_i + Σ_chosen φ) / e‖."""
    mu = features.mean(dim=0)
    chosen: list[int] = []
    total = torch.zeros_like(mu)
    available = torch.ones(len(features), dtype=torch.bool, device=features.device)
    for e in range(1, min(m, len(features)) + 1):
        distances = torch.linalg.vector_norm(mu - (features + total) / e, dim=1)
        distances[~available] = float("inf")
        i = int(distances.argmin())
        chosen.append(i)
        available[i] = False
        total = total + features[i]
    return torch.tensor(chosen, dtype=torch.long, device=features.device)

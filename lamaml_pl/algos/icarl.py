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

A population (seeds, ``lr``, ``grad_clip_norm``) steps every member through the same ``observe``;
each member herds, distils and takes nearest means over exemplars of its own.

Quirk Q8 (kept, as published): herding features are the task's own logits, not a penultimate
layer; the nearest-mean rule uses unnormalised full logit vectors; only the first pass is
stored for herding, without its last batch (``store_last_batch`` False; True keeps it).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from lamaml_pl.algos.base import ContinualLearner
from lamaml_pl.algos.gradients import clip_norm_, sgd_
from lamaml_pl.errors import require_positive
from lamaml_pl.stream import StreamInfo


class ICaRL(ContinualLearner):
    """A population keeps every member's exemplars, distillation targets and class means of its
    own (one dict per member: a class may hold fewer exemplars in one member than another)."""

    scenarios = ("task_il", "class_il")  # its exemplars and nearest-mean rule are per class
    population_axes = ("lr", "grad_clip_norm")

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
        class_il_loss: str,
    ):
        super().__init__(name, net, stream, class_il_loss)
        require_positive("algo", lr=lr, n_memories=n_memories, glances=glances, grad_clip_norm=grad_clip_norm)
        self.save_hyperparameters(ignore=["name", "net", "stream"])
        self.lr, self.n_memories, self.reg = lr, int(n_memories), memory_strength
        self.glances, self.grad_clip_norm, self.store_last_batch = int(glances), grad_clip_norm, store_last_batch
        self.exemplars: list[dict[int, torch.Tensor]] = [{}]  # per member: class -> inputs, in herding order
        self.targets: list[dict[int, torch.Tensor]] = [{}]  # per member: class -> logits stored for distillation
        self.store_x: list[torch.Tensor] = []  # the current task's first pass, for herding
        self.store_y: list[torch.Tensor] = []
        self.class_means: torch.Tensor | None = None  # [(members,) n_classes, n_outputs] during an evaluation pass

    def stack_members(self, learners: list[ICaRL]) -> None:
        self.stack_values(learners, "lr", "grad_clip_norm")
        self.exemplars = [{} for _ in learners]
        self.targets = [{} for _ in learners]

    def configure_optimizers(self):
        return []  # the SGD step is written out in observe (one value of lr per member)

    def member_logits(self, member: int, x: torch.Tensor) -> torch.Tensor:
        """One member's outputs on its own ``(B, ...)`` samples (a single run: the net's)."""
        if self.weights is None:
            return self.net(x)
        return functional_call(self.net, {name: w[member] for name, w in zip(self.weight_names, self.weights)}, (x,))

    # ---- training ---------------------------------------------------------------------------
    def observe(self, x: torch.Tensor, y: torch.Tensor, t: int) -> torch.Tensor:
        if self.task_epoch == 0:
            self.store_x.append(x.detach())
            self.store_y.append(y.detach())
        weights = self.member_weights()
        for _ in range(self.glances):
            loss = self.loss(self.net_logits(x), y, t)
            if any(self.exemplars):
                loss = loss + self.reg * self.distillation(t)
            grads = list(torch.autograd.grad(loss.sum(), weights))
            clip_norm_(grads, self.grad_clip_norm)
            with torch.no_grad():
                sgd_(weights, grads, self.lr)
        return loss.detach()

    def distillation(self, t: int) -> torch.Tensor:
        """Σ over earlier tasks of the mean per-example KL(p_old || p_new) on their outputs, one
        random exemplar per class (the original's KLDivLoss 'mean' x classes_per_task); per
        member, each drawing from its own exemplars (a class a member holds none of adds 0)."""
        c = self.classes_per_task
        classes = sorted({k for held in self.exemplars for k in held if k < t * c})
        if not classes:
            return torch.zeros(self.n_members if self.weights is not None else (), device=self.device)
        highs = [[len(held[k]) for k in classes if k in held] for held in self.exemplars]
        holder, k0 = next((m, next(iter(held))) for m, held in enumerate(self.exemplars) if held)
        # what stands in for a class a member holds no exemplar of (its KL term is masked out)
        x_fill = torch.zeros_like(self.exemplars[holder][k0][0])
        old_fill = torch.zeros_like(self.targets[holder][k0][0])
        xs, olds, present = [], [], []
        for held, targets, drawn in zip(self.exemplars, self.targets, self.draws.integers_below(highs)):
            picks = dict(zip([k for k in classes if k in held], drawn))
            xs.append(torch.stack([held[k][picks[k]] if k in picks else x_fill for k in classes]))
            olds.append(torch.stack([targets[k][picks[k]] if k in picks else old_fill for k in classes]))
            present.append([k in picks for k in classes])
        x, old = (torch.stack(xs), torch.stack(olds)) if self.weights is not None else (xs[0], olds[0])
        if self.class_incremental:  # the earlier tasks' head: every old class
            columns = torch.arange(t * c, device=x.device).expand(len(classes), -1)
        else:
            columns = self.task_columns(torch.tensor(classes, device=x.device) // c)
        new = self.net_logits(x)
        log_new = F.log_softmax(new.gather(-1, columns.expand(*new.shape[:-1], -1)), dim=-1)
        p_old = F.softmax(old.gather(-1, columns.expand(*old.shape[:-1], -1)), dim=-1)
        kl = F.kl_div(log_new, p_old, reduction="none")
        if not all(all(member) for member in present):
            mask = torch.tensor(present, device=kl.device).view(*kl.shape[:-1], 1)
            kl = kl * mask
        return kl.sum(dim=(-2, -1)) / c

    # ---- the end of a task: herding ----------------------------------------------------------
    @torch.no_grad()
    def on_task_end(self, t: int) -> None:
        if not self.store_last_batch:  # Q8: the original stops storing one batch early
            self.store_x, self.store_y = self.store_x[:-1], self.store_y[:-1]
        if not self.store_y:
            return
        axis = self.sample_axis
        stored_x, stored_y = torch.cat(self.store_x, dim=axis), torch.cat(self.store_y, dim=axis)
        if self.weights is None:
            stored_x, stored_y = stored_x.unsqueeze(0), stored_y.unsqueeze(0)
        c = self.classes_per_task
        head = slice(0, self.seen_classes) if self.class_incremental else slice(t * c, (t + 1) * c)
        for member, (held, targets) in enumerate(zip(self.exemplars, self.targets)):
            per_class = self.n_memories // (len(held) + c)
            for k in range(t * c, (t + 1) * c):
                samples = stored_x[member][stored_y[member] == k]
                if len(samples):
                    features = self.member_logits(member, samples)[:, head]
                    held[k] = samples[herding(features, per_class)]
            for k in list(held):
                held[k] = held[k][:per_class]
                targets[k] = self.member_logits(member, held[k])
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
        """Mean full logit vector of each class's exemplars, ``[(members,) n_classes, outputs]``;
        NaN rows for classes without any."""
        if not any(self.exemplars):
            return None
        rows = [
            {k: self.member_logits(member, x).mean(dim=0) for k, x in held.items()}
            for member, held in enumerate(self.exemplars)
        ]
        width = next(row for member in rows for row in member.values()).shape[0]
        means = torch.full((len(rows), self.stream.n_classes, width), float("nan"), device=self.device)
        for member, member_rows in enumerate(rows):
            for k, row in member_rows.items():
                means[member, k] = row
        return means if self.weights is not None else means[0]

    def predict(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if self.class_incremental:  # no task id: every class seen so far is a candidate
            return self.nearest_mean(x, torch.arange(self.seen_classes, device=x.device).expand(len(x), -1))
        return self.nearest_mean(x, self.task_columns(t))

    def predict_within_task(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.nearest_mean(x, self.task_columns(t))

    def nearest_mean(self, x: torch.Tensor, columns: torch.Tensor) -> torch.Tensor:
        """Each sample's class among its ``[N, k]`` candidate ``columns`` whose exemplars' mean is nearest."""
        lead = (self.n_members,) if self.weights is not None else ()
        means = self.class_means if self.class_means is not None else self.exemplar_means()
        if means is None:
            return columns[:, 0].expand(*lead, -1)
        logits = self.net_logits(x)  # [(members,) N, outputs]
        candidates = means[..., columns, :] if lead else means[columns]  # [(members,) N, c, outputs]
        distances = torch.linalg.vector_norm(logits.unsqueeze(-2) - candidates, dim=-1)
        distances = torch.nan_to_num(distances, nan=float("inf"))  # a class without exemplars never wins...
        nearest = distances.argmin(dim=-1, keepdim=True)  # ...and a task without any predicts its first class
        return columns.expand(*lead, -1, -1).gather(-1, nearest).squeeze(-1)

    # ---- checkpoints ---------------------------------------------------------------------------
    def algorithm_state(self) -> dict:
        return {"exemplars": self.exemplars, "targets": self.targets, "store_x": self.store_x, "store_y": self.store_y}

    def load_algorithm_state(self, state: dict) -> None:
        self.exemplars = [dict(held) for held in state["exemplars"]]
        self.targets = [dict(held) for held in state["targets"]]
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

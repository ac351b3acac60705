"""Gradient alignment over the stream: do updates on the new task help or hurt the old ones?

MER (Riemer et al., ICLR 2019) calls the dot product of two examples' loss gradients
*transfer* when positive and *interference* when negative; the La-MAML paper plots this
alignment between old and new tasks, but its code was never published. Definition used here:

    alignment = cos( ∇θ CE(current incoming batch),  ∇θ CE(probe of earlier tasks) )

at the learner's current weights θ, over all parameters flattened, measured every
``every_n_batches`` incoming batches once a second task has begun. The probe is fixed and the
same for every algorithm: the first ``probe_per_task`` training samples of each earlier task
(from the data module, not from an algorithm's buffer), so methods can be compared on equal
terms. The cosine (not the raw dot product) keeps the scale of the loss out of the comparison.
"""

from __future__ import annotations

import csv
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from pytorch_lightning.callbacks import Callback
from torch import nn

from lamaml_pl.errors import require_positive

CSV_FILE = "gradient_alignment.csv"
PLOT_FILE = "gradient_alignment.png"


@torch.enable_grad()
def gradient_cosine(
    net: nn.Module, a: tuple[torch.Tensor, torch.Tensor], b: tuple[torch.Tensor, torch.Tensor]
) -> float:
    """Cosine similarity of the mean-CE gradients of two batches, all parameters flattened."""
    params = [p for p in net.parameters() if p.requires_grad]
    flat = []
    for x, y in (a, b):
        grads = torch.autograd.grad(F.cross_entropy(net(x), y), params)
        flat.append(torch.cat([g.reshape(-1) for g in grads]))
    return F.cosine_similarity(flat[0], flat[1], dim=0).item()


class GradientAlignment(Callback):
    """Logs ``align/cosine`` and writes gradient_alignment.csv / .png into the run folder."""

    def __init__(self, every_n_batches: int = 20, probe_per_task: int = 10):
        require_positive("callbacks.gradient_alignment", every_n_batches=every_n_batches, probe_per_task=probe_per_task)
        self.every_n_batches, self.probe_per_task = int(every_n_batches), int(probe_per_task)
        self.records: list[tuple[int, int, float]] = []  # (batch count, task, cosine)
        self.batches = 0
        self.probes: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}  # task -> probe of tasks < task

    def probe(self, datamodule, task: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """Built once per task: transforming earlier tasks' data at every measurement is waste.
        The samples are the model's inputs (augmented, where the stream augments, from a fixed
        generator of the probe's own: the run's random numbers are untouched)."""
        if task not in self.probes:
            parts = []
            for k in range(task):
                samples = datamodule.train_dataset(k).for_pass(device, torch.Generator().manual_seed(k))
                parts.append(samples.__getitems__(list(range(min(self.probe_per_task, len(samples))))))
            x, y = torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
            self.probes = {task: (x, y)}  # only the current task's probe is ever needed again
        return self.probes[task]

    def on_incoming_batch_end(self, pl_module, x: torch.Tensor, y: torch.Tensor) -> None:
        """Called by the learner after each incoming batch it learned (a Lightning step learns
        several: ``trainer.batches_per_step``)."""
        self.batches += 1
        task, data = pl_module.current_task, pl_module.trainer.datamodule
        if task < 1 or data.joint or self.batches % self.every_n_batches:
            return
        cosine = gradient_cosine(pl_module.net, (x, y), self.probe(data, task, x.device))
        self.records.append((self.batches, task, cosine))
        pl_module.log("align/cosine", cosine, on_step=True, on_epoch=False)

    def on_train_end(self, trainer, pl_module) -> None:
        if not self.records:
            return
        out_dir = Path(trainer.default_root_dir)
        with open(out_dir / CSV_FILE, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["batch", "task", "cosine"])
            writer.writerows(self.records)
        batches, tasks, cosines = zip(*self.records)
        fig, ax = plt.subplots(figsize=(9, 4))
        ax.plot(batches, cosines, marker=".", lw=1)
        ax.axhline(0.0, color="grey", lw=0.8)
        for t in sorted(set(tasks)):
            ax.axvline(min(b for b, k in zip(batches, tasks) if k == t), color="lightgrey", lw=0.6, ls="--")
        ax.set_xlabel("incoming batch")
        ax.set_ylabel("cos(∇ current batch, ∇ earlier tasks)")
        ax.set_title(f"{pl_module.algo_name}: gradient alignment (> 0 transfer, < 0 interference)")
        fig.tight_layout()
        fig.savefig(out_dir / PLOT_FILE, dpi=120)
        plt.close(fig)

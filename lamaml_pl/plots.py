"""The two figures of every run: the accuracy-matrix heatmap and each task's accuracy over the stream."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch
from matplotlib.ticker import MaxNLocator

from lamaml_pl.metrics import INIT_TAG, AccuracyLog

ANNOTATE_UP_TO = 20  # tasks; larger matrices are drawn without numbers


def plot_accuracy_matrix(R: torch.Tensor, path: Path, title: str) -> None:
    """Heatmap of R[i, j] (percent): rows = after training task i, columns = evaluated task j."""
    T = R.shape[1]
    fig, ax = plt.subplots(figsize=(min(2 + 0.45 * T, 16), min(1.6 + 0.4 * R.shape[0], 14)))
    # a mesh of cells, not imshow: Agg resamples an image to the figure's pixels in float64
    # (~100 MB for a 100-task matrix: the highest point before exit); NaN cells (not evaluated) stay blank
    rows, columns = torch.arange(R.shape[0] + 1) - 0.5, torch.arange(T + 1) - 0.5
    image = ax.pcolormesh(columns.numpy(), rows.numpy(), 100 * R.numpy(), vmin=0, vmax=100, cmap="viridis")
    ax.invert_yaxis()  # task 0 on top, as a matrix is read
    fig.colorbar(image, ax=ax, label="accuracy (%)")
    if T <= ANNOTATE_UP_TO:
        for i in range(R.shape[0]):
            for j in range(T):
                value = 100 * R[i, j].item()
                if value != value:  # not evaluated (data.eval_tasks=seen_and_next)
                    continue
                ax.text(
                    j, i, f"{value:.0f}", ha="center", va="center", fontsize=7, color="white" if value < 60 else "black"
                )
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("evaluated task j")
    ax.set_ylabel("after training task i")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_task_curves(log: AccuracyLog, path: Path, title: str) -> None:
    """Accuracy of every task at each evaluation of the run (the forgetting view of the original)."""
    rows = torch.tensor(log.rows) * 100
    labels = ["init" if tag == INIT_TAG else str(tag) for tag in log.tags]
    fig, ax = plt.subplots(figsize=(9, 5))
    colours = plt.cm.viridis(torch.linspace(0, 1, rows.shape[1]).numpy())
    for j in range(rows.shape[1]):
        ax.plot(
            range(len(rows)),
            rows[:, j].numpy(),
            color=colours[j],
            lw=1.2,
            label=f"task {j}" if rows.shape[1] <= 10 else None,
        )
    if not rows.isnan().any():  # the mean over all tasks needs every task evaluated
        ax.plot(range(len(rows)), rows.mean(1).numpy(), color="black", lw=2.2, ls="--", label="mean over all tasks")
    step = max(1, len(labels) // 20)
    ax.set_xticks(range(0, len(labels), step), labels[::step])
    ax.set_xlabel("evaluation after training task")
    ax.set_ylabel("test accuracy (%)")
    ax.set_ylim(0, 100)
    ax.set_title(title)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)

"""The two figures of every run: the accuracy-matrix heatmap and each task's accuracy over the stream."""

from __future__ import annotations

import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch
from matplotlib.ticker import MaxNLocator

from lamaml_pl.metrics import INIT_TAG, AccuracyLog

ANNOTATE_UP_TO = 20  # tasks; larger matrices are drawn without numbers
LABEL_TASKS_UP_TO = 10  # tasks; more curves get a colour bar instead of a legend entry each
CHARACTERS_PER_INCH = 11  # of a 9-point title
MIN_WIDTH = 6.5  # inches: a heatmap of few tasks still has room for its title


def set_title(ax, title: str) -> None:
    """A title of several lines (names, metrics, data source), each wrapped to the figure's width."""
    width = int(ax.figure.get_figwidth() * CHARACTERS_PER_INCH)
    ax.set_title("\n".join(textwrap.fill(line, width) for line in title.splitlines()), fontsize=9)


def scenario_words(info: dict | None) -> str:
    """``task-IL`` / ``class-IL`` for a class-split run's titles; nothing for a domain stream."""
    scenario = (info or {}).get("scenario")
    return {"task_il": " (task-IL)", "class_il": " (class-IL)"}.get(scenario, "")


def plot_accuracy_matrix(R: torch.Tensor, path: Path, title: str) -> None:
    """Heatmap of R[i, j] (percent): rows = after training task i, columns = evaluated task j."""
    T = R.shape[1]
    fig, ax = plt.subplots(figsize=(min(max(2 + 0.45 * T, MIN_WIDTH), 16), min(2 + 0.4 * R.shape[0], 14)))
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
    set_title(ax, title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def seen_task_mean(log: AccuracyLog) -> list[tuple[int, float]]:
    """(evaluation index, mean accuracy % over the tasks trained so far) for every evaluation after
    a task: the learning curve of a stream (the mean over every task would count unseen ones)."""
    rows = torch.tensor(log.rows, dtype=torch.float64) * 100
    return [(i, rows[i, : tag + 1].nanmean().item()) for i, tag in enumerate(log.tags) if tag != INIT_TAG]


def plot_task_curves(log: AccuracyLog, path: Path, title: str) -> None:
    """Accuracy of every task at each evaluation of the run (the forgetting view of the original),
    each curve drawn from the evaluation after its task was trained, and the mean over the tasks
    seen so far (the usual learning curve)."""
    rows = torch.tensor(log.rows) * 100
    labels = ["init" if tag == INIT_TAG else str(tag) for tag in log.tags]
    n_tasks = rows.shape[1]
    fig, ax = plt.subplots(figsize=(9, 5))
    colours = plt.cm.viridis(torch.linspace(0, 1, n_tasks).numpy())
    for j in range(n_tasks):
        trained = [i for i, tag in enumerate(log.tags) if tag >= j]  # from the row after task j on
        if not trained:
            continue
        ax.plot(
            trained,
            rows[trained, j].numpy(),
            color=colours[j],
            lw=1.2 if n_tasks <= LABEL_TASKS_UP_TO else 0.8,
            marker="o" if len(trained) == 1 else None,  # the last task's: one evaluation, a dot
            markersize=3,
            label=f"task {j}" if n_tasks <= LABEL_TASKS_UP_TO else None,
        )
    seen = seen_task_mean(log)
    if seen:
        ax.plot(*zip(*seen), color="black", lw=2.2, ls="--", label="mean over the tasks seen")
    if n_tasks > LABEL_TASKS_UP_TO:  # a colour bar says which curve is which task
        scale = plt.cm.ScalarMappable(cmap="viridis", norm=plt.Normalize(0, n_tasks - 1))
        bar = fig.colorbar(scale, ax=ax, label="task")
        bar.ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    step = max(1, len(labels) // 20)
    ax.set_xticks(range(0, len(labels), step), labels[::step])
    ax.set_xlabel("evaluation after training task")
    ax.set_ylabel("test accuracy (%)")
    ax.set_ylim(0, 100)
    set_title(ax, title)
    if ax.get_legend_handles_labels()[0]:  # (a run that diverged in its first task drew no curve)
        ax.legend(fontsize=7, ncol=2, loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)

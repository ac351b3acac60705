"""The run's figures: the seen-task learning curve against a hand computation, titles that carry
the metrics and the data source, and legible per-task curves for long streams."""

import math

import matplotlib.pyplot as plt
import pytest
import torch

from lamaml_pl.metrics import INIT_TAG, AccuracyLog
from lamaml_pl.plots import plot_task_curves, seen_task_mean
from lamaml_pl.report.write import SLUG_LENGTH, slug


def test_the_learning_curve_averages_the_tasks_seen_only():
    log = AccuracyLog(3)
    log.append([0.1, 0.2, 0.1], INIT_TAG)
    log.append([0.9, 0.1, 0.2], 0)
    log.append([0.7, 0.8, math.nan], 1)  # data.eval_tasks=seen_and_next leaves entries out
    log.append([0.6, 0.5, 0.9], 2)
    assert seen_task_mean(log) == [
        (1, pytest.approx(90.0)),
        (2, pytest.approx(75.0)),
        (3, pytest.approx((60 + 50 + 90) / 3)),
    ]


@pytest.mark.parametrize("n_tasks", [5, 100])
def test_long_streams_get_a_colour_bar_and_short_ones_a_legend(n_tasks, tmp_path, monkeypatch):
    log = AccuracyLog(n_tasks)
    log.append(torch.full((n_tasks,), 0.1), INIT_TAG)
    for t in range(n_tasks):
        log.append(torch.linspace(0.9, 0.2, n_tasks), t)
    figures = []
    monkeypatch.setattr(plt, "close", figures.append)  # keep the figure to look at it
    title = "lamaml on mnist_many, seed 0: RA 60.00  BTI -5.00\ndata: idx:/data/" + "x" * 150
    plot_task_curves(log, tmp_path / "curves.png", title)
    assert (tmp_path / "curves.png").stat().st_size > 0
    figure = figures[0]
    axes = figure.axes
    assert len(axes) == (2 if n_tasks > 10 else 1)  # the colour bar is an axes of its own
    legend = [t.get_text() for t in axes[0].get_legend().get_texts()]
    assert legend[-1] == "mean over the tasks seen"
    assert len(legend) == (n_tasks + 1 if n_tasks <= 10 else 1)
    shown = axes[0].get_title()
    assert "RA 60.00" in shown and "data: idx:/data/" in shown
    assert max(len(line) for line in shown.splitlines()) <= 90  # wrapped, not cut off


def test_report_file_names_stay_short_and_apart():
    long_a = "split_cifar10_lamaml (" + ", ".join(f"key{k}=value{k}" for k in range(30)) + ")"
    long_b = long_a.replace("value29", "value30")
    assert len(slug(long_a)) <= SLUG_LENGTH and slug(long_a) != slug(long_b)
    assert slug("mnist_rot_lamaml (alpha_init=0.1)") == "mnist_rot_lamaml_alpha_init=0.1"

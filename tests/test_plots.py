"""The run's figures: the seen-task learning curve against a hand computation, titles that carry
the metrics and the data source, and legible per-task curves for long streams."""

import math

import matplotlib.pyplot as plt
import pytest
import torch

from lamaml_pl.metrics import INIT_TAG, AccuracyLog
from lamaml_pl.plots import plot_accuracy_matrix, plot_task_curves, seen_task_mean
from lamaml_pl.report.aggregate import group_runs
from lamaml_pl.report.collect import Run
from lamaml_pl.report.write import SLUG_LENGTH, plot_methods, slug


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
    assert max(len(line) for line in shown.splitlines()) <= 9 * 11  # wrapped to the figure, not cut off
    last = [line for line in axes[0].get_lines() if len(line.get_xdata()) == 1]
    assert len(last) == 1 and last[0].get_marker() == "o"  # the last task's one evaluation: a dot
    if n_tasks > 10:
        assert all(tick == int(tick) for tick in axes[1].get_yticks())  # whole task numbers on the bar


def test_a_small_matrix_has_room_for_its_title(tmp_path, monkeypatch):
    figures = []
    monkeypatch.setattr(plt, "close", figures.append)
    title = "lamaml on split_mnist (task-IL), seed 0: RA 97.12  BTI -0.40\ndata: mnist:/data/" + "x" * 80
    plot_accuracy_matrix(torch.rand(2, 2), tmp_path / "matrix.png", title)
    figure = figures[0]
    assert figure.get_figwidth() >= 6.5
    assert max(len(line) for line in figure.axes[0].get_title().splitlines()) <= figure.get_figwidth() * 11


def test_the_methods_figure_puts_each_methods_ra_and_learning_curve_side_by_side(tmp_path, monkeypatch):
    def run(name, seed, ra, matrix):
        results = {"status": "completed", "algo": name, "data": "split_mnist", "seed": seed, "ra": ra}
        results["acc_matrix"] = matrix
        results["data_info"] = {"scenario": "class_il"}
        return Run(tmp_path / f"{name}{seed}", results, {"algo.name": name})

    er = [run("er", 0, 60.0, [[90, 0], [50, 70]]), run("er", 1, 64.0, [[80, 0], [60, 68]])]
    icarl = [run("icarl", 0, 55.0, [[70, 0], [40, 70]])]
    groups = group_runs([*er, *icarl])
    figures = []
    monkeypatch.setattr(plt, "close", figures.append)
    (path,) = plot_methods(groups, tmp_path)
    assert path.name == "methods_split_mnist_class-IL.png" and path.stat().st_size > 0
    bars, curves = figures[0].axes
    assert [bar.get_height() for bar in bars.patches] == pytest.approx([62.0, 55.0])
    lines = {line.get_label(): list(line.get_ydata()) for line in curves.get_lines()}
    # er's mean matrix [[85, 0], [55, 69]]: after task 1, 85; after task 2, (55 + 69) / 2
    assert lines == {"er": pytest.approx([85.0, 62.0]), "icarl": pytest.approx([70.0, 55.0])}


def test_report_file_names_stay_short_and_apart():
    long_a = "split_cifar10_lamaml (" + ", ".join(f"key{k}=value{k}" for k in range(30)) + ")"
    long_b = long_a.replace("value29", "value30")
    assert len(slug(long_a)) <= SLUG_LENGTH and slug(long_a) != slug(long_b)
    assert slug("mnist_rot_lamaml (alpha_init=0.1)") == "mnist_rot_lamaml_alpha_init=0.1"

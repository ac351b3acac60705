"""RA / BTI / LA / FWT against a hand-computed accuracy matrix, and the matrix from a row log."""

import pytest
import torch

from lamaml_pl.metrics import INIT_TAG, AccuracyLog, TaskAccuracy, cl_metrics

R = torch.tensor([[0.9, 0.1, 0.2], [0.7, 0.8, 0.3], [0.6, 0.5, 0.9]])
BASELINE = torch.tensor([0.1, 0.2, 0.1])


def test_metrics_of_hand_computed_matrix():
    m = cl_metrics(R, BASELINE)
    assert m["ra"] == pytest.approx(100 * (0.6 + 0.5 + 0.9) / 3)  # 66.667
    assert m["la"] == pytest.approx(100 * (0.9 + 0.8 + 0.9) / 3)  # 86.667
    # BTI averages over all T entries, the last one being 0 (Q13)
    assert m["bti"] == pytest.approx(100 * ((0.6 - 0.9) + (0.5 - 0.8) + 0.0) / 3)  # -20.0
    # FWT: entry 0 is 0 and still counted; entry j = R[j-1, j] - b[j]
    assert m["fwt"] == pytest.approx(100 * (0.0 + (0.1 - 0.2) + (0.3 - 0.1)) / 3)  # 3.333


def test_single_task_metrics():
    m = cl_metrics(torch.tensor([[0.75]]), torch.tensor([0.1]))
    assert (m["ra"], m["la"], m["bti"], m["fwt"]) == pytest.approx((75.0, 75.0, 0.0, 0.0))


def test_log_keeps_last_row_per_task_and_first_row_as_baseline():
    log = AccuracyLog(3)
    log.append(BASELINE, INIT_TAG)
    log.append([0.5, 0.0, 0.0], 0)  # an earlier evaluation during task 0: superseded
    for k in range(3):
        log.append(R[k], k)
    assert torch.allclose(log.matrix(), R.double())
    assert torch.allclose(log.baseline(), BASELINE.double())
    assert log.complete()
    assert log.metrics()["fwt"] == pytest.approx(100 * 0.1 / 3)


def test_a_log_stopped_early_averages_only_over_the_tasks_trained():
    log = AccuracyLog(4)
    log.append([0.1, 0.1, 0.1, 0.1], INIT_TAG)
    assert log.metrics() == {"ra": None, "bti": None, "la": None, "fwt": None}
    log.append([0.9, 0.2, 0.1, 0.3], 0)
    log.append([0.8, 0.7, 0.1, 0.3], 1)
    m = log.metrics()
    assert (m["ra"], m["bti"], m["la"], m["fwt"], m["tasks_trained"]) == (None, None, None, None, 2)
    assert m["ra_trained"] == pytest.approx(75.0)  # (80 + 70) / 2, not (80 + 70 + 10 + 30) / 4 = 47.5


def test_the_joint_oracles_single_row_after_every_task_gives_ra():
    log = AccuracyLog(3)
    log.append([0.1, 0.1, 0.1], INIT_TAG)
    log.append([0.9, 0.6, 0.3], 2)  # one joint pass over all three tasks, tagged with the last
    assert log.metrics() == pytest.approx({"ra": 60.0, "bti": None, "la": None, "fwt": None})


def test_log_rejects_rows_of_the_wrong_length():
    with pytest.raises(ValueError, match="3 entries"):
        AccuracyLog(3).append([0.1, 0.2], 0)


def test_task_accuracy_counts_per_task_and_honours_denominators():
    preds = torch.tensor([1, 2, 3, 4, 5, 6])
    target = torch.tensor([1, 0, 3, 4, 0, 0])
    tasks = torch.tensor([0, 0, 1, 1, 1, 2])
    metric = TaskAccuracy(3)
    metric.update(preds, target, tasks)
    assert metric.compute().tolist() == pytest.approx([0.5, 2 / 3, 0.0])
    q12 = TaskAccuracy(3, denominators=[4, 4, 4])  # one unscored sample per task still counts
    q12.update(preds, target, tasks)
    assert q12.compute().tolist() == pytest.approx([0.25, 0.5, 0.0])


def test_task_accuracy_of_every_member_and_the_tasks_a_pass_skipped():
    """Members score one shared batch each with their own predictions; a task the pass did not
    evaluate is NaN, and the counts start over after ``finish``."""
    tasks = torch.tensor([0, 0, 1, 1, 1])
    target = torch.tensor([3, 4, 5, 6, 7])
    preds = torch.tensor([[3, 0, 5, 6, 0], [3, 4, 0, 0, 0]])  # member 0: 1/2, 2/3; member 1: 2/2, 0/3
    metric = TaskAccuracy(3, members=2)
    metric.update(preds, target, tasks)
    rows = metric.finish()
    assert rows.shape == (2, 3) and torch.isnan(rows[:, 2]).all()
    assert torch.allclose(rows[:, :2], torch.tensor([[0.5, 2 / 3], [1.0, 0.0]], dtype=torch.float64))
    metric.update(preds[:, :2], target[:2], tasks[:2])
    assert metric.finish()[:, 0].tolist() == pytest.approx([0.5, 1.0])  # only this pass's counts

"""DER++: one step against a hand computation, and the logits it stores."""

import numpy as np
import pytest
import torch

from lamaml_pl.stream import StreamInfo
from tests.conftest import make_learner
from tests.helpers.learners import detach_from_trainer
from tests.helpers.reference import B0, STREAM, W0, X, Y, ce_grad, linear_net, t, weights


def test_one_step_is_sgd_on_batch_ce_plus_logit_mse_plus_replayed_ce():
    alpha, beta, lr = 0.7, 0.4, 0.2
    algo = make_learner(
        "derpp", linear_net(), STREAM, lr=lr, alpha=alpha, beta=beta, memories=1, replay_batch_size=1, glances=1
    ).double()
    detach_from_trainer(algo)
    stored_x, stored_y, stored_z = X[2:], Y[2:], np.array([[0.5, -1.0, 2.0]])
    algo.memory.add(t(stored_x), t(stored_y), 0, logits=t(stored_z))  # one slot: both draws return it

    algo.observe(t(X[:2]), t(Y[:2]), 1)

    gW, gb = ce_grad(W0, B0, X[:2], Y[:2])
    out = stored_x @ W0.T + B0
    d_out = 2 * (out - stored_z) / out.size  # mean squared error over every output
    gW, gb = gW + alpha * d_out.T @ stored_x, gb + alpha * d_out.sum(0)
    rW, rb = ce_grad(W0, B0, stored_x, stored_y)
    gW, gb = gW + beta * rW, gb + beta * rb
    assert np.allclose(weights(algo)[0], W0 - lr * gW) and np.allclose(weights(algo)[1], B0 - lr * gb)


def test_the_batch_enters_the_buffer_with_its_logits_before_the_update():
    algo = make_learner("derpp", linear_net(), STREAM, lr=0.5, memories=5, replay_batch_size=5, glances=3).double()
    detach_from_trainer(algo)
    algo.observe(t(X), t(Y), 0)
    assert len(algo.memory) == 3
    arrival = X @ W0.T + B0
    for x, z in zip(algo.memory.x[:3], algo.memory.logits[:3]):
        row = int(np.flatnonzero((x.numpy() == X).all(1))[0])
        assert torch.allclose(z, torch.from_numpy(arrival[row]))


CLASS_IL = StreamInfo(3, 3, (2,), 1, test_sizes=[1, 1, 1], classes_per_task=1, scenario="class_il")


@pytest.mark.parametrize("convention", ["seen", "all"])
def test_a_class_il_step_under_each_loss_convention(convention):
    """Task 1 of a class-incremental stream (classes 0 and 1 seen, class 2 not yet): ``seen``
    takes both cross-entropies over the first two outputs only, so the unseen class's row gets
    only the logit term's gradient; ``all`` (DER++'s reference) takes them over every output, so
    the unseen class's logit is pushed down as well. The logit term matches every output either way."""
    alpha, beta, lr = 0.7, 0.4, 0.2
    algo = make_learner(
        "derpp",
        linear_net(),
        CLASS_IL,
        lr=lr,
        alpha=alpha,
        beta=beta,
        memories=1,
        replay_batch_size=1,
        glances=1,
        class_il_loss=convention,
    ).double()
    detach_from_trainer(algo)
    algo.current_task = 1
    stored_x, stored_y, stored_z = X[2:], np.array([0]), np.array([[0.5, -1.0, 2.0]])
    algo.memory.add(t(stored_x), t(stored_y), 0, logits=t(stored_z))
    new_x, new_y = X[:2], np.array([1, 0])

    algo.observe(t(new_x), t(new_y), 1)

    heads = 2 if convention == "seen" else 3  # the rows the cross-entropies reach
    gW, gb = np.zeros_like(W0), np.zeros_like(B0)
    for x, y, weight in ((new_x, new_y, 1.0), (stored_x, stored_y, beta)):
        cW, cb = ce_grad(W0[:heads], B0[:heads], x, y)
        gW[:heads] += weight * cW
        gb[:heads] += weight * cb
    out = stored_x @ W0.T + B0
    d_out = 2 * (out - stored_z) / out.size
    gW, gb = gW + alpha * d_out.T @ stored_x, gb + alpha * d_out.sum(0)
    W, b = weights(algo)
    assert np.allclose(W, W0 - lr * gW, rtol=0, atol=1e-14) and np.allclose(b, B0 - lr * gb, rtol=0, atol=1e-14)
    assert algo.class_il_loss == convention
    if convention == "all":  # the unseen class's bias moved by more than the logit term alone moves it
        assert b[2] < B0[2] - lr * alpha * d_out.sum(0)[2]

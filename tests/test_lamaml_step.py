"""One ``observe`` of C-MAML, Sync, La-MAML and La-ER on a tiny linear net against a hand-computed update.

The reference below works in NumPy float64 with the closed-form softmax cross-entropy gradient
(no autograd): for logits z = W x + b, dCE/dW = (softmax(z) - onehot(y)) xᵀ.
"""

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lamaml_pl.algos.fast_mlp import FactoredGlance
from lamaml_pl.nets import MLP
from lamaml_pl.stream import StreamInfo
from tests.conftest import make_learner
from tests.helpers.learners import detach_from_trainer
from tests.helpers.reference import ce_grad, ce_loss

W0 = np.array([[0.3, -0.2], [0.1, 0.4], [-0.5, 0.2]])
B0 = np.array([0.05, -0.1, 0.0])
ALPHA_W = np.array([[0.2, -0.1], [0.3, 0.1], [0.25, 0.15]])  # one negative rate: relu masks it
ALPHA_B = np.array([0.1, 0.2, -0.05])
X = np.array([[1.0, 2.0], [-1.5, 0.5]])
Y = np.array([0, 2])
MEM_X, MEM_Y = np.array([[0.5, -1.0]]), np.array([1])
OPT_LR, OPT_WT = 0.5, 0.2


def clip(grads, max_norm):
    norm = np.sqrt(sum((g**2).sum() for g in grads))
    return [g * min(1.0, max_norm / (norm + 1e-6)) for g in grads]


def reference_update(order, learn_lr, sync_update, max_norm, inner_clamp=False):
    """First-order meta-gradients of one glance, then the variant's α and θ steps."""
    theta, alpha = [W0, B0], [ALPHA_W, ALPHA_B]
    rates = [np.maximum(a, 0) for a in alpha]
    meta_x, meta_y = np.concatenate([MEM_X, X[order]]), np.concatenate([MEM_Y, Y[order]])
    fast, inner_sum = list(theta), [np.zeros_like(p) for p in theta]
    d_theta, d_alpha = [np.zeros_like(p) for p in theta], [np.zeros_like(p) for p in theta]
    for i in order:
        g = ce_grad(*fast, X[i : i + 1], Y[i : i + 1])
        if inner_clamp:
            g = [np.clip(gi, -max_norm, max_norm) for gi in g]
        inner_sum = [s + gi for s, gi in zip(inner_sum, g)]
        fast = [f - r * gi for f, r, gi in zip(fast, rates, g)]
        m = ce_grad(*fast, meta_x, meta_y)
        d_theta = [d + mi / len(order) for d, mi in zip(d_theta, m)]
        d_alpha = [d - mi / len(order) * s * (a > 0) for d, mi, s, a in zip(d_alpha, m, inner_sum, alpha)]
    d_theta, d_alpha = clip(d_theta, max_norm), clip(d_alpha, max_norm)
    if learn_lr:
        alpha = [a - OPT_LR * d for a, d in zip(alpha, d_alpha)]
    if sync_update:
        theta = [p - OPT_WT * d for p, d in zip(theta, d_theta)]
    else:
        theta = [p - np.maximum(a, 0) * d for p, a, d in zip(theta, alpha, d_theta)]
    return theta, alpha


def tiny_learner(algo, **settings):
    """``algo`` on a 2 -> 3 linear model (the autograd glance: the hand-written one needs a
    hidden layer) at W0, B0 and rates ALPHA_W, ALPHA_B, one sample in its reservoir."""
    net = nn.Linear(2, 3).double()
    with torch.no_grad():
        net.weight.copy_(torch.from_numpy(W0))
        net.bias.copy_(torch.from_numpy(B0))
    stream = StreamInfo(2, 3, (2,), 1, test_sizes=[1, 1])
    learner = make_learner(algo, net, stream, alpha_init=0.1, glances=1, memories=5, replay_batch_size=5, **settings)
    learner = learner.double()
    with torch.no_grad():
        learner.alpha[0].copy_(torch.from_numpy(ALPHA_W))
        learner.alpha[1].copy_(torch.from_numpy(ALPHA_B))
    detach_from_trainer(learner)
    learner.memory.add(torch.from_numpy(MEM_X), torch.from_numpy(MEM_Y), 0)
    learner.current_task = 0
    return learner


def linear_learner(learn_lr, sync_update, max_norm, second_order=False, **options):
    algo = tiny_learner(
        "lamaml",
        learn_lr=learn_lr,
        sync_update=sync_update,
        opt_lr=OPT_LR,
        opt_wt=OPT_WT,
        grad_clip_norm=max_norm,
        second_order=second_order,
        **options,
    )
    assert not algo.fast_mlp
    return algo


def state(algo):
    return [p.detach().numpy() for p in algo.net.parameters()], [a.detach().numpy() for a in algo.alpha]


def matches(actual, expected):
    return all(np.allclose(a, e, atol=1e-10) for a, e in zip(actual[0] + actual[1], expected[0] + expected[1]))


@pytest.mark.parametrize(
    "learn_lr, sync_update, max_norm",
    [(False, True, 100.0), (True, True, 100.0), (True, False, 100.0), (True, False, 0.05)],
    ids=["cmaml", "sync", "lamaml", "lamaml-clipped"],
)
def test_one_observe_equals_hand_computed_update(learn_lr, sync_update, max_norm):
    torch.manual_seed(0)
    algo = linear_learner(learn_lr, sync_update, max_norm)
    algo.observe(torch.from_numpy(X), torch.from_numpy(Y), 0)
    # the batch is shuffled inside observe, so the inner-step order is one of the two
    candidates = [reference_update(order, learn_lr, sync_update, max_norm) for order in ([0, 1], [1, 0])]
    assert not matches(candidates[0], candidates[1])
    assert any(matches(state(algo), c) for c in candidates)
    if not learn_lr:  # C-MAML never changes its inner learning rates
        assert np.array_equal(state(algo)[1][0], ALPHA_W)
    assert algo.memory.age == 3  # the incoming batch entered the reservoir after the glance


def meta_objective(w_flat, second_order_alpha):
    """L(θ) for a single-sample batch, with the inner gradient a function of θ (second order)."""
    W, b = w_flat[:6].reshape(3, 2), w_flat[6:]
    rates = [np.maximum(a, 0) for a in second_order_alpha]
    g = ce_grad(W, b, X[:1], Y[:1])
    fast = [W - rates[0] * g[0], b - rates[1] * g[1]]
    return ce_loss(*fast, np.concatenate([MEM_X, X[:1]]), np.concatenate([MEM_Y, Y[:1]]))


def test_second_order_meta_gradient_matches_finite_differences():
    torch.manual_seed(0)
    algo = linear_learner(learn_lr=False, sync_update=True, max_norm=100.0, second_order=True)
    algo.observe(torch.from_numpy(X[:1]), torch.from_numpy(Y[:1]), 0)
    new_w, new_b = state(algo)[0]
    d_theta = np.concatenate([(W0 - new_w).ravel(), B0 - new_b]) / OPT_WT
    w_flat, eps = np.concatenate([W0.ravel(), B0]), 1e-6
    numeric = np.array(
        [
            (
                meta_objective(w_flat + eps * e, [ALPHA_W, ALPHA_B])
                - meta_objective(w_flat - eps * e, [ALPHA_W, ALPHA_B])
            )
            / (2 * eps)
            for e in np.eye(len(w_flat))
        ]
    )
    assert np.allclose(d_theta, numeric, atol=1e-7)
    first_order = linear_learner(learn_lr=False, sync_update=True, max_norm=100.0)
    first_order.observe(torch.from_numpy(X[:1]), torch.from_numpy(Y[:1]), 0)
    assert not np.allclose(state(first_order)[0][0], new_w, atol=1e-6)


def test_inner_clamp_option_clamps_inner_gradients():
    """Q1: the original discards its clamp; inner_clamp=True applies it (c = 0.05 bites here)."""
    torch.manual_seed(0)
    algo = linear_learner(True, False, 0.05, inner_clamp=True)
    algo.observe(torch.from_numpy(X), torch.from_numpy(Y), 0)
    clamped = [reference_update(order, True, False, 0.05, inner_clamp=True) for order in ([0, 1], [1, 0])]
    unclamped = [reference_update(order, True, False, 0.05) for order in ([0, 1], [1, 0])]
    assert any(matches(state(algo), c) for c in clamped)
    assert not any(matches(state(algo), c) for c in unclamped)


@pytest.mark.parametrize("snapshot, only_old_tasks", [("alias", False), ("copy", True)])
def test_old_task_memory_is_a_no_op_unless_the_buffer_is_copied(snapshot, only_old_tasks):
    """Q2: with the original's alias, 'old-task' replay still draws the current task's samples."""
    torch.manual_seed(0)
    algo = linear_learner(True, False, 100.0, memory_snapshot=snapshot, use_old_task_memory=True)
    algo.current_task = 1
    algo.on_task_start(1)  # the buffer now holds one task-0 sample
    algo.memory.add(torch.zeros(3, 2, dtype=torch.float64), torch.zeros(3, dtype=torch.long), 1)
    replayed_tasks = set()
    for _ in range(50):
        replay_x, _, _ = algo.replay_batch(torch.from_numpy(X), torch.from_numpy(Y), 1)
        replayed = replay_x[: len(replay_x) - len(X)]
        replayed_tasks |= {0 if torch.equal(r, torch.from_numpy(MEM_X[0])) else 1 for r in replayed}
    assert replayed_tasks == ({0} if only_old_tasks else {0, 1})


@pytest.mark.parametrize("inner_alpha_relu, sync_update", [(True, False), (False, True)])
def test_hand_written_glance_equals_autograd_on_the_mnist_mlp(inner_alpha_relu, sync_update):
    """784-100-100-10, four batches: the two paths end at the same weights and rates."""
    torch.manual_seed(0)
    net = MLP(784, [100, 100], 10, "kaiming_normal").double()
    x, y = torch.randn(40, 784, dtype=torch.float64), torch.randint(0, 10, (40,))
    learners = []
    for fast_mlp in (True, False):
        algo = make_learner(
            "lamaml",
            copy.deepcopy(net),
            StreamInfo(2, 10, (784,), 1),
            fast_mlp=fast_mlp,
            inner_alpha_relu=inner_alpha_relu,
            sync_update=sync_update,
            grad_clip_norm=0.5,
        ).double()
        assert algo.fast_mlp == fast_mlp
        detach_from_trainer(algo)
        algo.current_task = 0
        torch.manual_seed(1)
        for b in range(4):
            algo.observe(x[10 * b : 10 * b + 10], y[10 * b : 10 * b + 10], 0)
        learners.append(algo)
    for fast, slow in zip(
        [*learners[0].net.parameters(), *learners[0].alpha], [*learners[1].net.parameters(), *learners[1].alpha]
    ):
        assert torch.allclose(fast, slow, atol=1e-12)


def first_order_reference(weights, rates, x, y, replay_x, replay_y):
    """The glance by autograd, sample by sample: the inner gradients taken as constants."""
    theta = [w.clone().requires_grad_() for w in weights]
    r = [q.clone().requires_grad_() for q in rates]

    def loss(params, inputs, labels):
        h = inputs
        for k in range(0, len(params) - 2, 2):
            h = torch.relu(h @ params[k].T + params[k + 1])
        return F.cross_entropy(h @ params[-2].T + params[-1], labels)

    fast, losses = theta, []
    for i in range(len(y)):
        inner = torch.autograd.grad(loss(fast, x[i : i + 1], y[i : i + 1]), fast)  # constants: first order
        fast = [f - q * g for f, q, g in zip(fast, r, inner)]
        losses.append(loss(fast, replay_x, replay_y))
    meta_loss = torch.stack(losses).mean()
    grads = torch.autograd.grad(meta_loss, theta + r)
    return meta_loss.detach(), list(grads[: len(theta)]), list(grads[len(theta) :])


def random_mlp(sizes, members=None):
    lead = () if members is None else (members,)
    weights = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        weights += [
            0.1 * torch.randn(*lead, fan_out, fan_in, dtype=torch.float64),
            0.1 * torch.randn(*lead, fan_out, dtype=torch.float64),
        ]
    rates = [0.3 * torch.rand_like(w) * (torch.rand_like(w) > 0.2) for w in weights]  # some zero rates
    return weights, rates


def digits(n, members=None):
    """Sparse digit-like inputs whose pixels past 600 are blank (a digit's border)."""
    lead = () if members is None else (members,)
    x = torch.rand(*lead, n, 784, dtype=torch.float64) * (torch.rand(*lead, n, 784) > 0.7)
    x[..., 600:] = 0
    return x, torch.randint(0, 10, (*lead, n))


@pytest.mark.parametrize("hidden", [[100, 100], [50], [30, 20, 10]])
@pytest.mark.parametrize("replayed", [0, 10])
def test_hand_written_glance_equals_the_autograd_glance(hidden, replayed):
    """Meta-loss, ∇θ and ∇rate of one glance, float64; without ∇rate (C-MAML) the same ∇θ; one
    FactoredGlance reused across shapes (its buffers)."""
    torch.manual_seed(0)
    weights, rates = random_mlp([784, *hidden, 10])
    x, y = digits(10)
    replay_x = torch.cat([torch.rand(replayed, 784, dtype=torch.float64), x])  # replayed pixels not blank
    replay_y = torch.cat([torch.randint(0, 10, (replayed,)), y])
    loss, grad_theta, grad_rate = first_order_reference(weights, rates, x, y, replay_x, replay_y)
    glance = FactoredGlance()
    glance_loss, glance_theta, glance_rate = glance(weights, rates, replay_x, replay_y, len(y))
    assert torch.allclose(glance_loss, loss, rtol=0, atol=1e-12)
    for expected, actual in zip(grad_theta + grad_rate, glance_theta + glance_rate):
        assert actual.shape == expected.shape
        assert torch.allclose(actual, expected, rtol=0, atol=1e-12)
    assert max(g.abs().max() for g in grad_rate) > 1e-4  # the rates' gradients are not all zero
    shorter = glance(weights, rates, replay_x[:-3], replay_y[:-3], 7)  # other shapes in between
    expected = first_order_reference(weights, rates, x[:7], y[:7], replay_x[:-3], replay_y[:-3])
    assert all(
        torch.allclose(a, b, rtol=0, atol=1e-12) for a, b in zip(shorter[1] + shorter[2], expected[1] + expected[2])
    )
    without_rates = glance(weights, rates, replay_x, replay_y, len(y), rate_grads=False)
    assert without_rates[2] is None
    assert all(torch.equal(a, b) for a, b in zip(without_rates[1], glance_theta))


@pytest.mark.parametrize("hidden", [[100, 100], [30, 20]])
def test_members_glance_as_each_alone(hidden):
    """The glance with a member axis: each member's loss and gradients are its own glance's."""
    torch.manual_seed(0)
    weights, rates = random_mlp([784, *hidden, 10], members=3)
    x, y = digits(10, members=3)
    replay_x = torch.cat([torch.rand(3, 5, 784, dtype=torch.float64), x], dim=1)
    replay_y = torch.cat([torch.randint(0, 10, (3, 5)), y], dim=1)
    losses, grad_theta, grad_rate = FactoredGlance()(weights, rates, replay_x, replay_y, 10)
    assert losses.shape == (3,)
    alone = FactoredGlance()
    for k in range(3):
        loss, theta, rate = alone([w[k] for w in weights], [r[k] for r in rates], replay_x[k], replay_y[k], 10)
        assert torch.allclose(losses[k], loss, rtol=0, atol=1e-12)
        for expected, actual in zip(theta + rate, [g[k] for g in grad_theta + grad_rate]):
            assert torch.allclose(actual, expected, rtol=0, atol=1e-12)


def test_a_glance_without_its_loss_makes_the_same_update():
    """Only the last glance of a batch computes the (reported) meta-loss: skipping it changes nothing else."""
    torch.manual_seed(0)
    stream = StreamInfo(2, 10, (784,), 1)
    learners = [make_learner("lamaml", MLP(784, [20], 10, "kaiming_normal"), stream) for _ in range(2)]
    learners[1].load_state_dict(learners[0].state_dict())
    before = [p.clone() for p in learners[0].parameters()]
    x, y = torch.rand(4, 784) * (torch.rand(4, 784) > 0.7), torch.randint(0, 10, (4,))
    replay_x, replay_y = torch.cat([torch.rand(3, 784), x]), torch.cat([torch.randint(0, 10, (3,)), y])
    replay_t = torch.zeros_like(replay_y)
    assert torch.isfinite(learners[0].update(y, replay_x, replay_y, replay_t, with_loss=True))
    assert learners[1].update(y, replay_x, replay_y, replay_t, with_loss=False) is None
    for a, b in zip(learners[0].parameters(), learners[1].parameters()):
        assert torch.equal(a, b)
    assert not all(torch.equal(a, start) for a, start in zip(learners[0].parameters(), before))  # it did update


# ---- La-ER: La-MAML's chunked glance for α, an ER step for θ ----------------------------------
def reference_la_er_update(order, chunks, meta_loss, max_norm):
    """The inner loop over ``chunks`` chunks of the shuffled batch (clamped gradients, raw α),
    α's first-order meta-gradient (the last chunk's meta-loss, or the mean of all), α's step, then
    an ER step of θ on the replay batch with relu(new α)."""
    theta, alpha = [W0, B0], [ALPHA_W, ALPHA_B]
    x, y = X[order], Y[order]
    meta_x, meta_y = np.concatenate([MEM_X, x]), np.concatenate([MEM_Y, y])
    size = -(-len(y) // chunks)
    fast, inner_sum, per_chunk = list(theta), [np.zeros_like(p) for p in theta], []
    for start in range(0, len(y), size):
        g = [
            np.clip(gi, -max_norm, max_norm) for gi in ce_grad(*fast, x[start : start + size], y[start : start + size])
        ]
        inner_sum = [s + gi for s, gi in zip(inner_sum, g)]
        fast = [f - a * gi for f, a, gi in zip(fast, alpha, g)]
        m = ce_grad(*fast, meta_x, meta_y)
        per_chunk.append([-mi * s for mi, s in zip(m, inner_sum)])
    used = per_chunk[-1:] if meta_loss == "last" else per_chunk
    d_alpha = clip([sum(c[k] for c in used) / len(used) for k in range(2)], max_norm)
    alpha = [a - OPT_LR * d for a, d in zip(alpha, d_alpha)]
    d_theta = clip(list(ce_grad(*theta, meta_x, meta_y)), max_norm)
    theta = [p - np.maximum(a, 0) * d for p, a, d in zip(theta, alpha, d_theta)]
    return theta, alpha


@pytest.mark.parametrize(
    "chunks, meta_loss, max_norm",
    [(2, "last", 100.0), (2, "mean", 100.0), (1, "last", 100.0), (2, "mean", 0.05)],
    ids=["last", "mean", "one-chunk", "clipped"],
)
def test_la_er_observe_equals_hand_computed_update(chunks, meta_loss, max_norm):
    def la_er():
        return tiny_learner("la_er", opt_lr=OPT_LR, inner_chunks=chunks, grad_clip_norm=max_norm, meta_loss=meta_loss)

    torch.manual_seed(0)
    algo = la_er()
    algo.observe(torch.from_numpy(X), torch.from_numpy(Y), 0)
    # the batch is shuffled inside observe, so the inner-step order is one of the two
    candidates = [reference_la_er_update(order, chunks, meta_loss, max_norm) for order in ([0, 1], [1, 0])]
    assert not matches(state(la_er()), candidates[0])  # it moved
    if chunks > 1:
        assert not matches(candidates[0], candidates[1])
    assert any(matches(state(algo), c) for c in candidates)
    assert algo.memory.age == 3  # the incoming batch entered the reservoir after the glance

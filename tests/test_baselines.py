"""Online, EWC, GEM, A-GEM, ER and MER on a tiny linear net against numbers computed by hand."""

import numpy as np
import pytest
import torch

from lamaml_pl.algos.gradients import project_agem, project_gem
from lamaml_pl.errors import ConfigError
from tests.conftest import make_learner, requires_cuda
from tests.helpers.learners import detach_from_trainer
from tests.helpers.reference import B0, STREAM, W0, X, Y, ce_grad, linear_net, t, weights


def learner(name, **kwargs):
    algo = make_learner(name, linear_net(), STREAM, **kwargs).double()
    detach_from_trainer(algo)
    return algo


# ---- Online ------------------------------------------------------------------------------
def test_online_is_one_plain_sgd_step():
    algo = learner("online", lr=0.3)
    algo.observe(t(X[:2]), t(Y[:2]), 0)
    gW, gb = ce_grad(W0, B0, X[:2], Y[:2])
    assert np.allclose(weights(algo)[0], W0 - 0.3 * gW) and np.allclose(weights(algo)[1], B0 - 0.3 * gb)


# ---- GEM / A-GEM projections ---------------------------------------------------------------
def test_gem_projection_satisfies_every_constraint():
    rng = np.random.default_rng(0)
    for _ in range(20):
        past = torch.from_numpy(rng.normal(size=(4, 12)))
        g = torch.from_numpy(rng.normal(size=12))
        projected = project_gem(g, past, margin=0.0, eps=0.0)
        assert (past @ projected >= -1e-9).all()
        # the projection moves g as little as possible: no closer feasible point along g itself
        assert torch.linalg.vector_norm(projected - g) <= torch.linalg.vector_norm(g) + 1e-9


def test_gem_projection_with_one_constraint_is_the_closed_form():
    """One violated constraint: g~ = g - (g·m / m·m) m, which makes g~·m exactly 0."""
    g, m = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64), torch.tensor([[0.5, 1.0, 0.0]], dtype=torch.float64)
    expected = g - (g @ m[0]) / (m[0] @ m[0]) * m[0]
    assert torch.allclose(project_gem(g, m, margin=0.0, eps=0.0), expected, atol=1e-9)
    # the margin is a lower bound on the dual variable v (here v* = 1.2): v = 2 gives g + 2m
    assert torch.allclose(project_gem(g, m, margin=0.5, eps=0.0), expected, atol=1e-9)
    assert torch.allclose(project_gem(g, m, margin=2.0, eps=0.0), g + 2 * m[0], atol=1e-9)


@requires_cuda
def test_gem_projection_on_the_gpu_equals_the_cpu_one():
    """The products stay on the device (float64) and only the t x t program goes to quadprog."""
    rng = np.random.default_rng(1)
    past = torch.from_numpy(rng.normal(size=(6, 5000))).float()
    g = -past.mean(dim=0) + 0.1 * torch.from_numpy(rng.normal(size=5000)).float()
    on_cpu = project_gem(g, past, margin=0.5, eps=1e-3)
    on_gpu = project_gem(g.cuda(), past.cuda(), margin=0.5, eps=1e-3)
    assert on_gpu.device.type == "cuda" and on_gpu.dtype == torch.float32
    assert not torch.equal(on_cpu, g)  # the constraints were violated: a real projection
    assert torch.allclose(on_gpu.cpu(), on_cpu, rtol=1e-6, atol=1e-7)


def test_gem_keeps_the_gradient_when_no_constraint_is_violated():
    algo = learner("gem", lr=0.1)
    g = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    past = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 1.0]], dtype=torch.float64)
    assert torch.equal(algo.project(g, past), g)
    assert not torch.equal(algo.project(-g, past), -g)


def test_agem_projection_formula():
    g = torch.tensor([1.0, -2.0, 0.0], dtype=torch.float64)
    past = torch.tensor([[0.0, 2.0, 0.0], [0.0, 0.0, 2.0]], dtype=torch.float64)  # their mean r = (0, 1, 1)
    # g·r = -2, r·r = 2: g - (-2/2) r = (1, -1, 1)
    assert torch.allclose(project_agem(g, past), torch.tensor([1.0, -1.0, 1.0], dtype=torch.float64))
    assert torch.equal(project_agem(-g, past), -g)  # no conflict: unchanged


def test_agem_projects_in_float64_as_the_original():
    """La-MAML's copy computes the projection in numpy's float64: a learned memory's gradient of
    norm ~1e-24 (r . r is 0 in float32, g . r is not) still projects, and an ordinary one gives
    the float64 result rounded once to float32."""
    g = torch.tensor([1.0, -2.0, 0.0])
    tiny = torch.tensor([[0.0, 1e-24, 1e-24]])
    assert torch.dot(tiny[0], tiny[0]) == 0 and torch.dot(g, tiny[0]) < 0  # float32 would divide by 0
    projected = project_agem(g, tiny)
    assert projected.dtype == torch.float32
    assert torch.allclose(projected, torch.tensor([1.0, -1.0, 1.0]))
    past = torch.tensor([[0.0, 0.3, 0.7], [0.1, 0.2, -0.4]])
    g64, r64 = g.double(), past.double().mean(dim=0)
    assert torch.equal(project_agem(g, past), (g64 - (g64 @ r64 / (r64 @ r64)) * r64).float())


def gem_step_by_hand(memory_tasks, lr):
    """GEM on task 1 with task 0's memory row: projected SGD step (margin 0, eps 1e-3)."""
    g = np.concatenate([a.ravel() for a in ce_grad(W0, B0, X[2:], Y[2:])])
    m = np.concatenate([a.ravel() for a in ce_grad(W0, B0, *memory_tasks)])
    if g @ m < 0:
        g = project_gem(torch.from_numpy(g), torch.from_numpy(m[None]), 0.0, 1e-3).numpy()
    return W0 - lr * g[:6].reshape(3, 2), B0 - lr * g[6:]


def test_gem_observe_projects_against_the_earlier_task_memory():
    algo = learner("gem", lr=0.5, n_memories=2)
    algo.observed_tasks, algo.last_task = [0], 0
    algo.memory.add(t(X[:2]), t(Y[:2]), 0)
    algo.memory.mem_cnt = 0
    algo.observe(t(X[2:]), t(Y[2:]), 1)
    W, b = gem_step_by_hand((X[:2], Y[:2]), 0.5)
    assert np.allclose(weights(algo)[0], W) and np.allclose(weights(algo)[1], b)
    assert algo.observed_tasks == [0, 1]


@pytest.mark.parametrize("register_task0, projects_in_task1", [(False, False), (True, True)])
def test_agem_never_registers_task_zero_unless_fixed(register_task0, projects_in_task1):
    """Q4: the original's counter starts at 0, so during task 1 nothing constrains the step."""
    algo = learner("agem", lr=0.5, n_memories=3, register_task0=register_task0)
    algo.observe(t(X), t(Y), 0)  # task 0: fills memory row 0
    before = weights(algo)
    shifted = (Y + 1) % 3  # task 1: the same inputs with other labels
    algo.observe(t(X), t(shifted), 1)
    g = np.concatenate([a.ravel() for a in ce_grad(*before, X, shifted)])
    ref = np.concatenate([a.ravel() for a in ce_grad(*before, X, Y)])
    assert g @ ref < 0  # the two tasks conflict here
    if projects_in_task1:
        g = g - (g @ ref) / (ref @ ref) * ref
    assert np.allclose(weights(algo)[0], before[0] - 0.5 * g[:6].reshape(3, 2))
    assert algo.observed_tasks == ([0, 1] if register_task0 else [1])


# ---- EWC -----------------------------------------------------------------------------------
def test_ewc_penalty_and_gradient_equal_the_per_task_sum():
    algo = learner("ewc", lr=0.1, memory_strength=2.0, n_memories=2)
    anchors, fishers = [], []
    rng = np.random.default_rng(1)
    for task in range(3):  # three finished tasks, each consolidated at different weights
        with torch.no_grad():
            for p in algo.net.parameters():
                p.add_(torch.from_numpy(rng.normal(scale=0.3, size=p.shape)))
        algo.observe(t(X[task : task + 2]), t(Y[task : task + 2]), task)
        anchors.append(weights(algo))
        fishers.append([g**2 for g in ce_grad(*anchors[-1], X[task : task + 2], Y[task : task + 2])])
        algo.on_task_start(task + 1)
    theta = weights(algo)
    expected = sum(((F * (p - a) ** 2).sum()) for fs, ans in zip(fishers, anchors) for F, p, a in zip(fs, theta, ans))
    expected_grad = [sum(2 * fs[i] * (theta[i] - ans[i]) for fs, ans in zip(fishers, anchors)) for i in range(2)]
    penalty = algo.penalty()
    assert penalty.item() == pytest.approx(expected, rel=1e-9)
    grads = torch.autograd.grad(penalty, list(algo.net.parameters()))
    assert all(np.allclose(g.numpy(), e) for g, e in zip(grads, expected_grad))


def test_ewc_fisher_uses_the_first_examples_of_the_task_and_the_step_adds_the_penalty():
    algo = learner("ewc", lr=0.1, memory_strength=3.0, n_memories=2)
    for i in range(3):  # only the first two examples enter the store
        algo.observe(t(X[i : i + 1]), t(Y[i : i + 1]), 0)
    theta_star = weights(algo)
    algo.on_task_start(1)
    fisher = [g**2 for g in ce_grad(*theta_star, X[:2], Y[:2])]
    algo.observe(t(X[:1]), t(Y[:1]), 1)  # at θ*, the penalty gradient is 0: a plain SGD step
    gW, gb = ce_grad(*theta_star, X[:1], Y[:1])
    after = weights(algo)
    assert np.allclose(after[0], theta_star[0] - 0.1 * gW)
    algo.observe(t(X[:1]), t(Y[:1]), 1)  # now θ ≠ θ*: CE gradient + 3 · 2F(θ − θ*)
    gW, gb = ce_grad(*after, X[:1], Y[:1])
    expected = after[0] - 0.1 * (gW + 3.0 * 2 * fisher[0] * (after[0] - theta_star[0]))
    assert np.allclose(weights(algo)[0], expected)


# ---- ER ------------------------------------------------------------------------------------
def test_er_steps_on_replay_plus_batch_and_inserts_afterwards():
    algo = learner("er", lr=0.2, memories=5, replay_batch_size=3, glances=1, grad_clip_norm=100.0)
    algo.memory.add(t(X[2:]), t(Y[2:]), 0)  # one stored sample: replay is deterministic
    algo.observe(t(X[:2]), t(Y[:2]), 1)
    gW, gb = ce_grad(W0, B0, np.concatenate([X[2:], X[:2]]), np.concatenate([Y[2:], Y[:2]]))
    assert np.allclose(weights(algo)[0], W0 - 0.2 * gW) and np.allclose(weights(algo)[1], B0 - 0.2 * gb)
    assert algo.memory.age == 3


# ---- MER -----------------------------------------------------------------------------------
def sequential_sgd(W, b, xs, ys, lr):
    for x, y in zip(xs, ys):
        gW, gb = ce_grad(W, b, x[None], np.array([y]))
        W, b = W - lr * gW, b - lr * gb
    return W, b


def test_mer_with_unit_rates_is_sequential_sgd_over_replay_and_example():
    algo = learner("mer", lr=0.3, beta=1.0, gamma=1.0, memories=4, replay_batch_size=1, batches_per_example=2)
    algo.memory.add(t(X[2:]), t(Y[2:]), 0)
    algo.observe(t(X[:1]), t(Y[:1]), 1)
    # two batches of [current example, stored sample], one SGD step per sample, nothing undone
    order = [X[0], X[2], X[0], X[2]], [Y[0], Y[2], Y[0], Y[2]]
    W, b = sequential_sgd(W0, B0, *order, 0.3)
    assert np.allclose(weights(algo)[0], W) and np.allclose(weights(algo)[1], b)


def test_mer_reptile_interpolations():
    beta, gamma, lr = 0.25, 0.5, 0.3
    algo = learner("mer", lr=lr, beta=beta, gamma=gamma, memories=4, replay_batch_size=1, batches_per_example=2)
    algo.memory.add(t(X[2:]), t(Y[2:]), 0)
    algo.observe(t(X[:1]), t(Y[:1]), 1)
    W, b = W0, B0
    for _ in range(2):  # within-batch Reptile: W <- W + β (SGD(W) - W)
        W1, b1 = sequential_sgd(W, b, [X[0], X[2]], [Y[0], Y[2]], lr)
        W, b = W + beta * (W1 - W), b + beta * (b1 - b)
    W, b = W0 + gamma * (W - W0), B0 + gamma * (b - B0)  # across-batch Reptile
    assert np.allclose(weights(algo)[0], W) and np.allclose(weights(algo)[1], b)
    assert algo.memory.age == 2  # the example entered the reservoir after its update


@pytest.mark.parametrize("beta", [0.0, 1.5])
def test_mer_refuses_reptile_rates_outside_the_unit_interval(beta):
    with pytest.raises(ConfigError, match=f"algo.beta={beta}"):
        make_learner("mer", linear_net(), STREAM, beta=beta)


def test_task_ring_memory_writes_like_gems_ring_buffer():
    from lamaml_pl.algos.episodic import TaskRingMemory

    memory = TaskRingMemory(n_tasks=2, n_memories=3, sample_shape=(1,))
    for i in range(4):  # batch size 1: the ring wraps, row 0 keeps the last 3 samples
        memory.add(torch.tensor([[float(i)]]), torch.tensor([i]), 0)
    assert memory.y[0].tolist() == [3, 1, 2] and memory.mem_cnt == 1
    memory.add(torch.ones(5, 1), torch.full((5,), 7), 1)  # the shared position is not reset; cut at the row end
    assert memory.y[1].tolist() == [0, 7, 7] and memory.mem_cnt == 0
    restored = TaskRingMemory(2, 3, (1,))
    memory.mem_cnt = 2
    restored.load_state_dict(memory.state_dict())
    assert restored.mem_cnt == 2 and torch.equal(restored.y, memory.y)


def test_gradient_cosine_against_hand_computed_gradients():
    from lamaml_pl.callbacks.gradient_alignment import gradient_cosine

    net = linear_net()
    a, b = (X[:2], Y[:2]), (X[1:], (Y[1:] + 1) % 3)
    ga, gb = (np.concatenate([g.ravel() for g in ce_grad(W0, B0, *batch)]) for batch in (a, b))
    expected = ga @ gb / np.linalg.norm(ga) / np.linalg.norm(gb)
    assert gradient_cosine(net, (t(a[0]), t(a[1])), (t(b[0]), t(b[1]))) == pytest.approx(expected)
    assert gradient_cosine(net, (t(a[0]), t(a[1])), (t(a[0]), t(a[1]))) == pytest.approx(1.0)


# ---- ER-ACE --------------------------------------------------------------------------------
def masked_ce_grad(W, b, x, y, present):
    """ce_grad over the ``present`` classes only (the others' logits at -inf: no gradient)."""
    z = x @ W.T + b
    z = np.where(present, z, -np.inf)
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    p[np.arange(len(y)), y] -= 1
    p /= len(y)
    return p.T @ x, p.sum(0)


def test_er_ace_masks_the_incoming_batch_to_its_classes_and_replays_in_full():
    algo = learner("er_ace", lr=0.2, memories=5, replay_batch_size=3, glances=1, grad_clip_norm=100.0)
    algo.memory.add(t(X[2:]), t(Y[2:]), 0)  # one stored sample: replay is deterministic
    algo.observe(t(X[:2]), t(Y[:2]), 1)  # labels 0 and 2: class 1 is masked for this batch
    gW_new, gb_new = masked_ce_grad(W0, B0, X[:2], Y[:2], np.array([True, False, True]))
    gW_old, gb_old = ce_grad(W0, B0, X[2:], Y[2:])
    W, b = W0 - 0.2 * (gW_new + gW_old), B0 - 0.2 * (gb_new + gb_old)
    assert np.allclose(weights(algo)[0], W) and np.allclose(weights(algo)[1], b)
    assert algo.memory.age == 3
    # with an empty buffer: the masked term alone
    first = learner("er_ace", lr=0.2, memories=5, replay_batch_size=3, glances=1, grad_clip_norm=100.0)
    first.observe(t(X[:2]), t(Y[:2]), 0)
    assert np.allclose(weights(first)[0], W0 - 0.2 * gW_new) and np.allclose(weights(first)[1], B0 - 0.2 * gb_new)

"""The per-batch loop: windows of incoming batches per Lightning step, and ER's step written out
on an MLP, each against what it replaces."""

import json
import subprocess
import sys

import pytest
import torch
from torch.func import functional_call

from lamaml_pl.nets import MLP
from lamaml_pl.run import train
from lamaml_pl.stream import StreamInfo
from tests.conftest import ROOT, compose_config, make_learner
from tests.helpers.learners import detach_from_trainer

SCENARIOS = {  # (stream, class_il_loss)
    "domain_il": (StreamInfo(3, 6, (1, 3, 3), 1), "all"),
    "task_il": (StreamInfo(3, 6, (1, 3, 3), 1, classes_per_task=2), "all"),
    "class_il_seen": (StreamInfo(3, 6, (1, 3, 3), 1, classes_per_task=2, scenario="class_il"), "seen"),
    "class_il_all": (StreamInfo(3, 6, (1, 3, 3), 1, classes_per_task=2, scenario="class_il"), "all"),
}


def er_learner(scenario: str, fast_mlp: bool, seed: int = 0, **overrides):
    stream, class_il_loss = SCENARIOS[scenario]
    torch.manual_seed(seed)
    net = MLP(9, [7, 5], 6, "kaiming_normal").double()
    values = dict(memories=8, replay_batch_size=4, glances=2, lr=0.3, grad_clip_norm=0.5)
    learner = make_learner("er", net, stream, class_il_loss=class_il_loss, fast_mlp=fast_mlp, **{**values, **overrides})
    detach_from_trainer(learner)
    learner.task_epoch, learner.current_task = 0, 1
    return learner


@pytest.mark.parametrize("scenario", list(SCENARIOS))
@pytest.mark.parametrize("members", [None, 3])
def test_the_loss_gradient_at_the_logits_equals_autograds(scenario, members):
    learner = er_learner(scenario, fast_mlp=True)
    lead = () if members is None else (members,)
    logits = torch.randn(*lead, 5, 6, dtype=torch.float64, requires_grad=True)
    y = torch.tensor([2, 3, 2, 3, 3]).expand(*lead, 5)  # task 1's classes
    loss, grad = learner.loss_and_logit_grad(logits.detach(), y, 1)
    expected = learner.loss(logits, y, 1)
    (expected_grad,) = torch.autograd.grad(expected.sum(), logits)
    assert loss.shape == expected.shape
    torch.testing.assert_close(loss, expected.detach(), rtol=0, atol=1e-14)
    torch.testing.assert_close(grad, expected_grad, rtol=0, atol=1e-15)
    if scenario == "task_il":  # nothing flows to the other tasks' outputs
        assert grad[..., [0, 1, 4, 5]].abs().max() == 0


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_ers_step_written_out_equals_autograds_in_float64(scenario):
    """Fifteen incoming batches (the reservoir fills, then replaces; the clip bites), the same
    draws for both: every weight agrees to rounding."""
    runs = []
    for fast_mlp in (True, False):
        learner = er_learner(scenario, fast_mlp)
        assert learner.fast_mlp is fast_mlp
        torch.manual_seed(1)
        losses = [
            learner.observe(torch.randn(3, 1, 3, 3, dtype=torch.float64), torch.randint(2, 4, (3,)), 1)
            for _ in range(15)
        ]
        runs.append(([w.detach().clone() for w in learner.member_weights()], torch.stack(losses)))
    (fast, fast_losses), (reference, reference_losses) = runs
    assert not torch.equal(fast[0], er_learner(scenario, True).net[0].weight)  # it learned
    for a, b in zip(fast, reference):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)
    torch.testing.assert_close(fast_losses, reference_losses, rtol=0, atol=1e-12)


def test_a_populations_er_step_written_out_equals_each_members_autograd_step():
    """Members of other learning rates and clips step as their single learners (the autograd
    reference), each on its own batch."""
    lrs, clips = [0.3, 0.05, 1.0], [0.5, 10.0, 0.1]
    members = [er_learner("task_il", True, lr=lr, grad_clip_norm=clip) for lr, clip in zip(lrs, clips)]
    population = members[0]
    population.join_members(members, draws=population.draws)
    population.draws = SameDrawsForEveryMember(3)
    singles = [er_learner("task_il", False, lr=lr, grad_clip_norm=clip) for lr, clip in zip(lrs, clips)]
    torch.manual_seed(2)
    batches = [(torch.randn(3, 3, 1, 3, 3, dtype=torch.float64), torch.randint(2, 4, (3, 3))) for _ in range(12)]
    for x, y in batches:
        state = torch.get_rng_state()
        population.observe(x, y, 1)
        for k, single in enumerate(singles):
            torch.set_rng_state(state)
            single.observe(x[k], y[k], 1)
    for k, single in enumerate(singles):
        for stacked, own in zip(population.member_weights(), single.member_weights()):
            torch.testing.assert_close(stacked[k], own.detach(), rtol=0, atol=1e-12)


class SameDrawsForEveryMember:
    """Every member draws what a single learner draws from the global RNG (the test replays the
    RNG state for each single learner)."""

    def __init__(self, members: int):
        self.members = members

    def indices(self, high, k, device):
        return torch.randint(0, high, (k,)).expand(self.members, k)

    def uniforms(self, n, device):
        return torch.rand(n).expand(self.members, n)


def run_results(overrides, out_dir):
    return train(compose_config([*overrides, f"paths.output_dir={out_dir}"]))


MLP_NET = ["model=mlp", "model.n_inputs=null", "model.n_outputs=null"]


@pytest.mark.parametrize(("precision", "model"), [("64-true", MLP_NET), ("bf16-mixed", [])])
def test_windows_of_incoming_batches_give_the_numbers_of_one_batch_a_step(precision, model, tiny_cifar_root, tmp_path):
    """ER on a CIFAR-100-shaped stream with its augmentations, two passes of 5 batches a task: a
    Lightning step per batch, 2 (the last window of a pass shorter) and 50 batches a step — the same
    rows, the same logged losses. Under bf16 autocast too, on the conv net: Lightning's autocast
    keeps no cache of cast weights, which would hold every batch of a window (and the second
    glance) at the weights of the window's start."""
    base = [
        "algo=er",
        "data=cifar100",
        f"data.root={tiny_cifar_root}",
        "data.download=false",
        "data.n_tasks=2",
        "data.epochs_per_task=2",
        *model,  # the MLP: the hand-written step, on augmented images; the conv net: autograd
        "algo.glances=2",
        "algo.memories=20",
        "trainer.accelerator=cpu",
        f"trainer.precision={precision}",
        "trainer.enable_progress_bar=false",
        "trainer.log_every_n_steps=2",
        "logger=csv",
    ]
    rows, losses = {}, {}
    for per_step in (1, 2, 50):
        out = tmp_path / f"per_step_{per_step}"
        results = run_results([*base, f"trainer.batches_per_step={per_step}"], out)
        rows[per_step] = results["acc_matrix"]
        logged = [line.split(",") for line in next(out.rglob("metrics.csv")).read_text().splitlines()]
        column = logged[0].index("train/loss")
        losses[per_step] = [float(r[column]) for r in logged[1:] if r[column]]
    assert rows[1] == rows[2] == rows[50]
    assert len(losses[1]) == 8 and losses[1] == losses[2] == losses[50]  # 4 passes, a mean of 2 batches twice each


def test_batches_per_step_on_the_command_line(tiny_mnist_root, tmp_path):
    """Through train.py: the setting is recorded in the run's config and its rows match the default."""
    args = [
        "algo=er",
        "debug=tiny",
        f"data.root={tiny_mnist_root}",
        "data.download=false",
        "trainer.accelerator=cpu",
        "trainer.precision=64-true",
    ]
    rows = []
    for per_step, out in ((3, tmp_path / "three"), (1, tmp_path / "one")):
        done = subprocess.run(
            [sys.executable, "train.py", *args, f"trainer.batches_per_step={per_step}", f"hydra.run.dir={out}"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        assert f"batches_per_step: {per_step}" in (out / "config.yaml").read_text()
        rows.append(json.loads((out / "results.json").read_text())["acc_matrix"])
    assert rows[0] == rows[1]


def test_the_hand_written_mlp_step_uses_the_nets_own_forward():
    """The logits the written-out step computes are the net's (functional_call) at the same weights."""
    learner = er_learner("domain_il", True)
    x = torch.randn(4, 1, 3, 3, dtype=torch.float64)
    weights = dict(learner.net.named_parameters())
    captured = {}

    def keep(logits):
        captured["logits"] = logits.clone()
        return learner.loss_and_logit_grad(logits, torch.zeros(4, dtype=torch.long), 0)

    from lamaml_pl.algos.fast_mlp import mlp_loss_grads

    with torch.no_grad():
        mlp_loss_grads(learner.member_weights(), x, keep)
        torch.testing.assert_close(captured["logits"], functional_call(learner.net, weights, (x,)), rtol=0, atol=1e-14)

"""CUDA graphs change how an update is launched, not what it computes (GPU only): the La-MAML
MNIST glance bit for bit; the conv nets' glance, La-ER's, Meta-BGD's and MER's updates up to
cuDNN's summation order."""

from __future__ import annotations

import pytest
import torch

from lamaml_pl.run import build_members, train, train_population
from tests.conftest import compose_config, requires_cuda
from tests.helpers.learners import detach_from_trainer

GPU_RUN = [
    "data.n_tasks=3",
    "data.samples_per_task=100",
    "data.download=false",
    "trainer=gpu",
    "trainer.enable_progress_bar=false",
    "logger=none",
]
# Graphed and eager float64 updates of the conv nets after a few second-order batches: cuDNN sums
# in its own order under capture, and the clamps and second order amplify that to ~1e-10 (1.5e-10
# seen on an H200, one test run in four); a wrong update is off by more than 1e-3.
GRAPH_VS_EAGER = {"rtol": 1e-7, "atol": 1e-9}


@requires_cuda
@pytest.mark.parametrize("algo", ["lamaml", "sync", "cmaml"])
def test_single_run_graph_equals_eager_kernels(algo, tiny_mnist_root, tmp_path):
    runs = [
        train(
            compose_config(
                [
                    f"algo={algo}",
                    f"data.root={tiny_mnist_root}",
                    *GPU_RUN,
                    f"algo.cuda_graph={graph}",
                    f"paths.output_dir={tmp_path / str(graph)}",
                ]
            )
        )
        for graph in (True, False)
    ]
    assert runs[0]["eval_rows"] == runs[1]["eval_rows"]
    assert runs[0]["device"].startswith("cuda")


@requires_cuda
def test_population_graph_equals_eager_kernels(tiny_mnist_root, tmp_path):
    grid = ["population.seed=[0,1]", "population.alpha_init=[0.03,0.1]"]
    runs = [
        train_population(
            compose_config(
                [
                    f"data.root={tiny_mnist_root}",
                    *GPU_RUN,
                    *grid,
                    f"algo.cuda_graph={graph}",
                    f"paths.output_dir={tmp_path / str(graph)}",
                ]
            )
        )
        for graph in (True, False)
    ]
    for graphed, eager in zip(*runs):
        assert graphed["eval_rows"] == eager["eval_rows"]


@requires_cuda
@pytest.mark.parametrize(
    "algo, grid",
    [("lamaml", []), ("sync", []), ("lamaml", ["population.seed=[0,1]", "population.alpha_init=[0.05,0.1]"])],
    ids=["lamaml", "sync", "lamaml-population"],
)
def test_conv_glance_graph_equals_eager_kernels(algo, grid, tiny_cifar_root):
    """The CIFAR glance (second order, chunked, clamped, masked) and its meta step replayed as a
    CUDA graph make the eager kernels' update, batch after batch from the same state (float64:
    float32's rounding, with cuDNN free to pick other kernels under capture, is amplified past any
    useful tolerance by the clamps and the second order; both replay signatures: an empty and a
    filled reservoir)."""
    learners = []
    for graph in (True, False):
        cfg = compose_config(
            [f"algo={algo}", "data=cifar100", f"data.root={tiny_cifar_root}", "data.download=false", *grid]
        )
        cfg.algo.cuda_graph = graph
        learners.append(build_members(cfg).learner.cuda().double())
        learners[-1].current_task = 0
    graphed, eager = learners
    lead = (eager.n_members,) if eager.weights is not None else ()
    for batch in range(4):
        graphed.load_state_dict(eager.state_dict())  # in place: the graph's tensors stay its own
        before = [w.detach().clone() for w in [*eager.member_weights(), *eager.alpha]]
        x = torch.randn(*lead, 10, 3, 32, 32, device="cuda", dtype=torch.float64)
        y = torch.randint(0, 5, (*lead, 10), device="cuda")
        for learner in learners:
            torch.manual_seed(batch)
            learner.observe(x, y, 0)
        after = [[w.detach() for w in [*m.member_weights(), *m.alpha]] for m in learners]
        assert max((w - b).abs().max().item() for w, b in zip(after[1], before)) > 1e-3  # it learns
        for g, e in zip(*after):
            torch.testing.assert_close(g, e, **GRAPH_VS_EAGER)
    assert len(graphed.graphed_update.graphs) == 2 and not eager.graphed_update.graphs


@requires_cuda
@pytest.mark.parametrize("data", ["mnist_rot", "cifar100"])
def test_bf16_mixed_precision_replays_graphs(data, tiny_mnist_root, tiny_cifar_root):
    """Under autocast (trainer.precision=bf16-mixed: Lightning's autocast, no cache of cast weights)
    the update is captured and replayed, batch after batch from the eager bf16 learner's state:
    each replay lands within bf16's own rounding of the eager bf16 update (measured by the eager
    float32 update from the same state; a replay of stale casts would be off by a whole step)."""
    root = tiny_mnist_root if data == "mnist_rot" else tiny_cifar_root
    shape = (784,) if data == "mnist_rot" else (3, 32, 32)
    learners = []
    for graph in (True, False, False):
        cfg = compose_config([f"data={data}", f"data.root={root}", "data.download=false", "data.samples_per_task=40"])
        cfg.algo.cuda_graph = graph
        learners.append(build_members(cfg).learner.cuda())
        learners[-1].current_task = 0
    graphed, eager, full = learners
    for batch in range(4):
        for other in (graphed, full):
            other.load_state_dict(eager.state_dict())  # in place: the graph's tensors stay its own
        before = [w.detach().clone() for w in [*eager.member_weights(), *eager.alpha]]
        x = torch.rand(10, *shape, device="cuda")
        y = torch.randint(0, 5, (10,), device="cuda")
        for learner, bf16 in ((graphed, True), (eager, True), (full, False)):
            torch.manual_seed(batch)
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=bf16, cache_enabled=False):  # as Lightning's
                learner.observe(x, y, 0)
        g, e, f = ([w.detach() for w in [*m.member_weights(), *m.alpha]] for m in learners)
        assert max((w - b).abs().max().item() for w, b in zip(e, before)) > 1e-4  # it learns
        for mine, theirs, fp32 in zip(g, e, f):  # cuDNN may pick other kernels under capture
            assert (mine - theirs).abs().max() <= 4 * (theirs - fp32).abs().max() + 1e-6
    dtypes = [key[1] for key in graphed.graphed_update.graphs]
    assert dtypes and set(dtypes) == {torch.bfloat16} and not eager.graphed_update.graphs


def synced(graphed, eager) -> None:
    """Give the graphed learner the eager one's state, in place (the graph's tensors stay its
    own): module state, and Meta-BGD's posterior in its optimiser."""
    graphed.load_state_dict(eager.state_dict())
    if hasattr(eager.optimizers(), "sums"):
        for (_, _, mine), (_, _, theirs) in zip(graphed.optimizers()._params(), eager.optimizers()._params()):
            for name, value in theirs.items():
                mine[name].copy_(value)


MER_SMALL = ["algo.batches_per_example=2", "algo.replay_batch_size=3", "algo.memories=8"]


@requires_cuda
@pytest.mark.parametrize(
    "algo, overrides, tasks",
    [
        ("la_er", [], [0, 0, 1]),
        ("la_er", ["data.scenario=class_il"], [0, 0, 1]),  # the head widens: a graph per width
        ("meta_bgd", [], [0, 0, 1]),
        ("mer", MER_SMALL, [0, 0, 1]),
        ("la_er", ["population.seed=[0,1]", "population.alpha_init=[0.05,0.1]"], [0, 0, 1]),
        ("mer", [*MER_SMALL, "population.seed=[0,1]"], [0, 0, 1]),
        ("meta_bgd", ["population.seed=[0,1]", "population.alpha_init=[0.05,0.1]"], [0, 0, 1]),
        ("er", [], [0, 0, 1]),
        ("er", ["model=mlp", "model.n_inputs=null", "model.n_outputs=null", "data.scenario=class_il"], [0, 0, 1]),
        ("er_ace", [], [0, 0, 1]),
        ("er", ["model=mlp", "model.n_inputs=null", "model.n_outputs=null", "population.lr=[0.03,0.1]"], [0, 0, 1]),
    ],
    ids=[
        "la_er",
        "la_er-class_il",
        "meta_bgd",
        "mer",
        "la_er-population",
        "mer-population",
        "meta_bgd-population",
        "er",
        "er-mlp-class_il",
        "er_ace",
        "er-mlp-population",
    ],
)
def test_graphed_update_equals_eager_kernels(algo, overrides, tasks, tiny_cifar_root):
    """La-ER's glance and ER step, Meta-BGD's per-sample glance and BGD sums, MER's whole
    example (steps × batch single-sample steps and Reptile), ER's and ER-ACE's glance (on the conv
    net through autograd, on the MLP written out): replayed as a CUDA graph they make
    the eager kernels' update, batch after batch from the same state (float64, as above)."""
    learners = []
    for graph in (True, False):
        cfg = compose_config(
            [f"algo={algo}", "data=cifar100", f"data.root={tiny_cifar_root}", "data.download=false", *overrides]
        )
        cfg.algo.cuda_graph = graph
        learner = build_members(cfg).learner.cuda().double()
        detach_from_trainer(learner)
        learners.append(learner)
    graphed, eager = learners
    lead = (eager.n_members,) if eager.weights is not None else ()
    torch.manual_seed(0)
    filler = (
        torch.randn(*lead, 8, 3, 32, 32, device="cuda", dtype=torch.float64),
        torch.randint(0, 5, (*lead, 8), device="cuda"),
        0,
        torch.rand(*lead, 8, device="cuda"),
    )
    for batch, task in enumerate(tasks):
        synced(graphed, eager)
        if batch == 0 and algo == "mer":  # a full replay batch from the first example: MER's graphed shape
            for learner in learners:
                learner.memory.add(*filler)
        before = [w.detach().clone() for w in eager.parameters()]
        x = torch.randn(*lead, 10, 3, 32, 32, device="cuda", dtype=torch.float64)
        y = torch.randint(5 * task, 5 * task + 5, (*lead, 10), device="cuda")
        for learner in learners:
            learner.current_task = task
            torch.manual_seed(batch)
            learner.observe(x, y, task)
        after = [[w.detach() for w in m.parameters()] for m in learners]
        assert max((w - b).abs().max().item() for w, b in zip(after[1], before)) > 1e-3  # it learns
        for g, e in zip(*after):
            torch.testing.assert_close(g, e, **GRAPH_VS_EAGER)
    assert graphed.graphed_update.graphs and not eager.graphed_update.graphs
    if "data.scenario=class_il" in overrides:
        assert len({key for key, *_ in graphed.graphed_update.graphs}) == 2  # one per head width

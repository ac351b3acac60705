"""Golden updates: every method with an original implementation lands where that code lands.

The fixtures hold what the original code computed in float64 from one initial MLP on three tasks
of three batches: the weights after every update (``python benchmarks/golden_updates.py --mer
<MER checkout> --mammoth <Mammoth checkout>``):
- ``golden_mer.pt``: MER's repository (``model/online.py``, ``ewc.py``, ``gem.py``, ``meralg1.py``
  with the memories it replayed), the code behind the MNIST baseline rows of La-MAML's Table 1;
- ``golden_lamaml.pt``: La-MAML's repository (``model/gem.py``, ``agem.py``, ``eralg4.py``,
  ``lamaml.py``: a ridge on GEM's quadratic program, clipped gradients, two glances, A-GEM's
  unregistered task 0, ER's replayed memories, La-ER's and the La-MAML family's learned rates α;
  its MER copy's clipped per-sample steps; the family through both of its glances, hand-written
  and autograd), the code behind La-MAML's MNIST rows;
- ``golden_lamaml_cifar.pt``: the same repository's CIFAR-100 path, behind the CIFAR-100 /
  TinyImageNet rows, on a small copy of its conv net: every task's outputs masked, the family's
  chunked second-order glance (``model/lamaml_cifar.py``), GEM, A-GEM, ER, La-ER, MER, iCaRL
  (its exemplar draws replayed, its nearest-mean predictions after the last task), Meta-BGD
  (its weight samples replayed) and the IID oracle (``iid2.py``: every task's samples mixed);
- ``golden_mammoth_derpp.pt``: DER++'s reference (Mammoth's ``models/derpp.py``) on a
  class-incremental stream, with the replayed samples it drew.
The project's learner starts from the same weights, takes the same batches through its own
``observe`` and task hooks (replaying the samples the original drew), and must match every
update to 1e-10 relative.
"""

from pathlib import Path

import pytest
import torch

from lamaml_pl.nets import MLP, ConvNet
from lamaml_pl.stream import StreamInfo
from tests.conftest import make_learner
from tests.helpers.learners import detach_from_trainer

FIXTURES = {
    name: torch.load(Path(__file__).parent / "fixtures" / f"{name}.pt", weights_only=False)
    for name in ("golden_mer", "golden_lamaml", "golden_lamaml_cifar", "golden_mammoth_derpp")
}
FAMILY = ("lamaml", "cmaml", "sync")  # La-MAML's MNIST variant: its two glances must both land
CASES = [  # the MNIST variant of the family through both of its glances (its CIFAR one: autograd)
    (name, algo, {"fast_mlp": fast} if fast is not None else {})
    for name, fixture in FIXTURES.items()
    for algo in sorted(fixture["methods"])
    for fast in ((False, True) if algo in FAMILY and name == "golden_lamaml" else (None,))
]
TOLERANCE = 1e-10


class ReplayedDraws:
    """The replay indices the original drew, in order (a reservoir that is not full fills its
    slots in arrival order in both, so an index names the same sample)."""

    def __init__(self, steps: list[list[torch.Tensor]], orders: list[torch.Tensor] | None = None):
        self.pending = [index for step in steps for index in step]
        self.orders = list(orders or [])

    def order(self, n: int, device: torch.device) -> torch.Tensor:
        order = self.orders.pop(0)
        assert len(order) == n
        return order.to(device)

    def indices(self, high: int, k: int, device: torch.device) -> torch.Tensor:
        index = self.pending.pop(0)
        assert len(index) == k and (k == 0 or int(index.max()) < high)
        return index.to(device)

    def uniforms(self, n: int, device: torch.device) -> torch.Tensor:
        return torch.zeros(n, device=device)  # unused while the reservoir has room


class ReplayedIntegersAndNormals(ReplayedDraws):
    """iCaRL's exemplar picks and Meta-BGD's weight samples, as the original drew them."""

    def __init__(self, golden: dict):
        super().__init__(golden.get("draws", []), golden.get("orders"))
        self.integers = list(golden.get("integers", []))
        self.normals = golden["normals"].double() if "normals" in golden else None

    def integers_below(self, highs: list[list[int]]) -> list[list[int]]:
        (bounds,) = highs  # a single run
        picks = [self.integers.pop(0) for _ in bounds]
        assert all(0 <= pick < high for pick, high in zip(picks, bounds))
        return [picks]

    def normal_(self, tensors: list[torch.Tensor]) -> None:
        for tensor in tensors:
            n = tensor.numel()
            tensor.copy_(self.normals[:n].view_as(tensor))
            self.normals = self.normals[n:]


# what each original code does beyond the fixture's settings, as the project names it (docs/quirks.md)
QUIRKS = {
    "golden_mer": {
        "gem": {"glances": 1, "grad_clip_norm": None, "qp_eps": 0.0},  # GEM's own QP
        "mer": {"grad_clip_norm": None, "cuda_graph": False},  # MER's own: no clipping (Q18)
    },
    "golden_lamaml": {  # Q6, Q4, Q7
        "gem": {"qp_eps": 1e-3},
        "agem": {"register_task0": False},
        "la_er": {"meta_loss": "last"},
        # its MNIST variant: relu(α) in the inner step (Q3), unclamped inner gradients (Q1)
        **dict.fromkeys(FAMILY, {"inner_alpha_relu": True, "inner_clamp": False, "cuda_graph": False}),
        "mer": {"cuda_graph": False},
    },
    "golden_lamaml_cifar": {  # the presets' CIFAR-100 quirks: its chunked glance clamps and takes raw α
        "gem": {"qp_eps": 1e-3},
        "agem": {"register_task0": False},
        "la_er": {"meta_loss": "last"},
        "mer": {"cuda_graph": False},
        "meta_bgd": {"cuda_graph": False},
        **dict.fromkeys(FAMILY, {
            "inner_alpha_relu": False, "inner_clamp": True, "use_old_task_memory": False, "fast_mlp": False,
            "cuda_graph": False,
        }),
    },
}  # fmt: skip


def mixed_batches(stream: list, order: torch.Tensor) -> list:
    """The stream's samples in ``order`` (flattened task after task), in batches of its batch size,
    each sample with its own task: ``(x, tasks, y)``."""
    x, y = torch.cat([x for x, _, _ in stream]), torch.cat([y for _, _, y in stream])
    tasks = torch.cat([torch.full_like(y, t) for _, t, y in stream])
    return [(x[i], tasks[i], y[i]) for i in order.split(len(stream[0][2]))]


def inputs(x: torch.Tensor) -> torch.Tensor:
    """A fixture's inputs: float64, or uint8 pixels read as float64(float32(p / 255))."""
    return (x.double() / 255).float().double() if x.dtype == torch.uint8 else x


def project_learner(fixture_name: str, algo: str, overrides: dict):
    fixture = FIXTURES[fixture_name]
    sizes, golden = fixture["sizes"], fixture["methods"][algo]
    if "image" in sizes:  # the pc_cnn, small
        image = sizes["image"]
        hidden = [sizes["hidden"]] * 2
        net = ConvNet(image[-1], 3, sizes["channels"], hidden, sizes["n_outputs"], image[0], "kaiming_normal").double()
    else:
        net = MLP(sizes["n_inputs"], [sizes["hidden"]] * 2, sizes["n_outputs"], init="xavier_uniform").double()
    with torch.no_grad():  # (La-ER: its learned rates α follow the weights)
        for p, w in zip(net.parameters(), golden["initial"][: len(list(net.parameters()))], strict=True):
            p.copy_(w)
    n_tasks, settings = sizes["n_tasks"], golden["settings"]
    if algo == "derpp":  # Mammoth's DER++: one step per batch, the whole head in the loss
        stream = StreamInfo(
            n_tasks, sizes["n_outputs"], (sizes["n_inputs"],), 1, test_sizes=[1] * n_tasks,
            classes_per_task=sizes["classes_per_task"], scenario="class_il",
        )  # fmt: skip
        values = dict(lr=settings["lr"], alpha=settings["alpha"], beta=settings["beta"], glances=1)
        values.update(memories=settings["buffer_size"], replay_batch_size=settings["minibatch_size"])
        learner = make_learner(algo, net, stream, **values, class_il_loss="all")
        learner.draws = ReplayedDraws(golden["draws"])
    else:
        shape, classes = tuple(sizes.get("image", (sizes.get("n_inputs"),))), sizes.get("classes_per_task")
        stream = StreamInfo(
            n_tasks, sizes["n_outputs"], shape, 1, test_sizes=[1] * n_tasks, classes_per_task=classes,
            joint="joint_order" in golden,
        )  # fmt: skip
        learner = make_learner(algo, net, stream, **settings, **QUIRKS[fixture_name].get(algo, {}), **overrides)
        learner.draws = ReplayedIntegersAndNormals(golden)
    learner = learner.double()
    detach_from_trainer(learner)
    return learner


@pytest.mark.parametrize("fixture_name, algo, overrides", CASES)
def test_every_update_lands_on_the_original_codes_weights(fixture_name, algo, overrides):
    fixture = FIXTURES[fixture_name]
    golden = fixture["methods"][algo]
    learner = project_learner(fixture_name, algo, overrides)
    if algo in ("gem", "agem"):
        assert golden["projections"] > 0  # the fixture exercises the projection
    stream = [(inputs(x), t, y) for x, t, y in golden.get("stream", fixture["stream"])]  # La-MAML's ER: one task (Q9)
    if "joint_order" in golden:  # the IID oracle: every task's samples mixed, each batch in the fixture's order
        stream = mixed_batches(stream, golden["joint_order"])
    for k, ((x, t, y), expected) in enumerate(zip(stream, golden["after"], strict=True)):
        if not isinstance(t, torch.Tensor) and t != learner.current_task:  # the task hooks (a joint batch: none)
            if learner.current_task >= 0:
                learner.on_task_end(learner.current_task)
            learner.current_task = t
            learner.on_task_start(t)
        learner.observe(x, y, t)
        rates = learner.alpha if algo in ("la_er", "meta_bgd", *FAMILY) else []
        state = [p.detach() for p in [*learner.net.parameters(), *rates]]  # the weights, then the learned rates α
        if isinstance(expected, torch.Tensor):  # one flattened row
            expected = [w.view_as(p) for p, w in zip(state, expected.split([p.numel() for p in state]), strict=True)]
        for p, w in zip(state, expected, strict=True):
            relative = ((p - w).norm() / w.norm()).item()
            assert relative < TOLERANCE, f"{algo}, update {k} (task {t}): relative difference {relative:.3g}"
    if "predictions" in golden:  # iCaRL: the nearest mean of exemplars chosen after the last task
        learner.on_task_end(learner.current_task)
        for (x, t, _), expected in zip(stream, golden["predictions"], strict=True):
            assert torch.equal(learner.predict(x, torch.full((len(x),), t)), expected)

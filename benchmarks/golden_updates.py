"""Golden updates: the weights an original implementation reaches from a fixed state on fixed
inputs, saved as float64 fixtures that ``tests/test_golden_updates.py`` holds the project to.

    python benchmarks/golden_updates.py --mer ../MER --mammoth ../mammoth --out-dir tests/fixtures

``--mer``: a checkout of MER's repository (``mattriemer/MER``), whose ``model/online.py``,
``ewc.py``, ``gem.py`` and ``meralg1.py`` produced the MNIST baseline rows of La-MAML's Table 1
(fixture ``golden_mer.pt``). ``--lamaml``: a checkout of La-MAML's repository (``montrealrobotics/La-MAML``),
whose copies of GEM (a ridge on the QP, clipped gradients, several glances), A-GEM, ER and La-ER
(``eralg4``) produced the CIFAR-100 / TinyImageNet rows (fixture ``golden_lamaml.pt``; ER and La-ER
on one task: their MNIST path slices the logits wrongly after task 0, quirk Q9). ``--mammoth``: a checkout
of DER++'s reference framework (``aimagelab/mammoth``, ``models/derpp.py``; fixture ``golden_mammoth_derpp.pt``, a
class-incremental stream with the whole head in the loss). Each method is built on a small MLP in
float64 (its float32 buffers widened), then fed the same three tasks of three batches; a fixture
keeps the initial weights, the batches, the weights after every update and, where the original
draws replayed samples, the indices it drew (the project's learner replays the same ones). Only
numbers travel into tests/: the original's code stays in its checkout.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path
from types import SimpleNamespace
from unittest import mock

import numpy as np
import torch

N_INPUTS, HIDDEN, N_OUTPUTS, N_TASKS, BATCHES, BATCH = 8, 6, 4, 3, 3, 2
# each method's values (the original's flags): large enough steps and memory strengths that the
# regulariser and the projection change the weights visibly
MER_MODELS = {"mer": "meralg1"}  # the project's name -> the file in MER's model/
SETTINGS = {
    "online": {"lr": 0.1},
    "ewc": {"lr": 0.1, "n_memories": 3, "memory_strength": 10.0},
    "gem": {"lr": 0.1, "n_memories": 3, "memory_strength": 0.5},
    "mer": {"lr": 0.1, "beta": 0.5, "gamma": 0.8, "memories": 50, "replay_batch_size": 3, "batches_per_example": 2},
}


def batches(seed: int = 0) -> list[tuple[torch.Tensor, int, torch.Tensor]]:
    """``BATCHES`` batches of ``BATCH`` samples for each of ``N_TASKS`` tasks, in order; float64
    inputs whose values float32 holds exactly (MER casts its replayed inputs to float32)."""
    gen = torch.Generator().manual_seed(seed)
    stream = []
    for t in range(N_TASKS):
        shift = torch.randn(N_INPUTS, generator=gen, dtype=torch.float64)  # each task its own inputs
        for _ in range(BATCHES):
            x = (torch.randn(BATCH, N_INPUTS, generator=gen, dtype=torch.float64) + shift).float().double()
            stream.append((x, t, torch.randint(N_OUTPUTS, (BATCH,), generator=gen)))
    return stream


def import_from(checkout: Path, name: str):
    """Module ``name`` of a checkout (MER's and La-MAML's both call their package ``model``)."""
    for cached in [m for m in sys.modules if m == "model" or m.startswith("model.")]:
        del sys.modules[cached]
    sys.path[:] = [str(checkout)] + [p for p in sys.path if p != str(checkout)]
    return importlib.import_module(name)


def run_mer(original: Path, algo: str, stream: list) -> dict:
    module = import_from(original, f"model.{MER_MODELS.get(algo, algo)}")
    projections, drawn = [], []
    if algo == "gem":  # count the projections, so that the fixture is known to exercise the QP
        project = module.project2cone2
        module.project2cone2 = lambda *a, **k: (projections.append(1), project(*a, **k))[1]
    args = SimpleNamespace(
        n_layers=2, n_hiddens=HIDDEN, data_file="golden.pt", cuda=False, n_memories=0, memory_strength=0.0
    )
    for key, value in SETTINGS[algo].items():
        setattr(args, key, value)
    torch.manual_seed(0)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        model = module.Net(N_INPUTS, N_OUTPUTS, N_TASKS, args)
        if algo == "gem":  # its episodic memory is allocated as float32: widen it
            model.memory_data = model.memory_data.double()
        if algo == "mer":  # record the replayed memories; its float32 replay batches enter the net widened
            record_replay_draws(model, drawn, per_example=True)
        initial = [p.detach().clone() for p in model.net.parameters()]
        after = []
        for x, t, y in stream:
            model.observe(x, t, y)
            after.append([p.detach().clone() for p in model.net.parameters()])
    finally:
        torch.set_default_dtype(previous)
    result = {"settings": SETTINGS[algo], "initial": initial, "after": after, "projections": len(projections)}
    if algo == "mer":  # per example, its replay batches' memories in order (steps x replayed)
        result["draws"] = [[torch.tensor(example, dtype=torch.long)] for example in drawn]
    return result


def record_replay_draws(model, drawn: list, per_example: bool) -> None:
    """MER's and La-MAML's ER's ``getBatch`` reshuffle the memory's indices before each pick and
    take position j: record the picks, one list per example (MER: its batches' picks in order)
    or per batch (ER: one list per glance; the caller opens each batch's list)."""
    owner = sys.modules[model.getBatch.__func__.__module__]  # where getBatch looks up shuffle
    shuffle, get_batch, forward = owner.shuffle, model.getBatch, model.net.forward
    picks = []

    def recorded_shuffle(order):
        shuffle(order)
        picks.append(order[len(picks)])

    def recorded_get_batch(x, y, t):
        if per_example and len(drawn) < model.age:  # the example's first batch
            drawn.append([])
        picks.clear()
        batch = get_batch(x, y, t)
        if per_example:
            drawn[-1].extend(picks)
        else:
            drawn[-1].append(list(picks))
        return batch

    owner.shuffle = recorded_shuffle
    model.getBatch = recorded_get_batch
    model.net.forward = lambda x, *args, **kwargs: forward(x.double(), *args, **kwargs)


# La-MAML's copies: clipping small enough to act, two glances per batch, A-GEM's reservoir unused
LAMAML_SETTINGS = {
    "gem": {"lr": 0.1, "n_memories": 3, "memory_strength": 0.5, "glances": 2, "grad_clip_norm": 0.5},
    "agem": {"lr": 0.1, "n_memories": 3, "glances": 2, "grad_clip_norm": 0.5},
    "er": {"lr": 0.1, "memories": 50, "replay_batch_size": 3, "glances": 2, "grad_clip_norm": 0.5},
    "la_er": {
        "alpha_init": 0.1, "opt_lr": 0.3, "memories": 50, "replay_batch_size": 3, "glances": 2, "inner_chunks": 2,
        "grad_clip_norm": 0.5, "second_order": False,
    },
}  # fmt: skip
# the La-MAML family's MNIST variant (model/lamaml.py): its two switches, as the project's configs
FAMILY = {"lamaml": (True, False), "cmaml": (False, True), "sync": (True, True)}  # learn_lr, sync_update
for _name in FAMILY:
    LAMAML_SETTINGS[_name] = {
        "alpha_init": 0.1, "opt_lr": 0.3, "opt_wt": 0.1, "memories": 50, "replay_batch_size": 3, "glances": 2,
        "grad_clip_norm": 0.5, "second_order": False,
    }  # fmt: skip
LAMAML_MODELS = {"er": "eralg4", "la_er": "eralg4", **dict.fromkeys(FAMILY, "lamaml")}
REPLAYING = ("er", "la_er", *FAMILY)  # they draw memories (and the La-MAML family and La-ER shuffle batches)
LEARNED_RATES = ("la_er", *FAMILY)


def run_lamaml(original: Path, algo: str, stream: list) -> dict:
    """La-MAML's GEM, A-GEM, ER, La-ER or La-MAML family on its own MNIST MLP (``model.meta.learner``),
    in float64."""
    sys.modules.setdefault("ipdb", mock.MagicMock())  # imported by its net's modules, never called here
    module = import_from(original, f"model.{LAMAML_MODELS.get(algo, algo)}")
    projections, drawn = [], []
    if algo in ("gem", "agem"):
        project = module.project2cone2 if algo == "gem" else module.projectgrad
        setattr(module, project.__name__, lambda *a, **k: (projections.append(1), project(*a, **k))[1])
    args = SimpleNamespace(
        **{"memory_strength": 0.0, "memories": 10, "lr": 0.1, **LAMAML_SETTINGS[algo]}, learn_lr=algo == "la_er",
        n_layers=2, n_hiddens=HIDDEN, dataset="mnist_rotations", arch="linear", xav_init=False, cuda=False,
        use_old_task_memory=False,
    )  # fmt: skip
    if algo in FAMILY:
        args.learn_lr, args.sync_update = FAMILY[algo]
    args.cifar_batches = getattr(args, "inner_chunks", None)  # La-ER's inner chunks, by the original's name
    orders = []
    if algo in ("er", "la_er"):  # its MNIST path slices task t's logits at t * outputs (Q9): one task only
        stream = [(x, 0, y) for x, _, y in stream]
    torch.manual_seed(0)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        model = module.Net(N_INPUTS, N_OUTPUTS, N_TASKS, args)
        if algo in REPLAYING:  # record the replayed memories; its float32 replays enter the net widened
            record_replay_draws(model, drawn, per_example=False)
        else:
            model.memory_data = model.memory_data.double()  # allocated as float32: widen it

        def state() -> list[torch.Tensor]:  # the weights (La-ER: then its learned rates α)
            rates = list(model.net.alpha_lr) if algo in LEARNED_RATES else []
            return [p.detach().clone() for p in [*model.net.parameters(), *rates]]

        initial = state()
        after = []
        randperm = torch.randperm

        def recorded_randperm(*a, **k):  # La-ER's shuffle of the incoming batch, each glance
            orders.append(randperm(*a, **k))
            return orders[-1]

        with mock.patch("builtins.print"), mock.patch.object(torch, "randperm", recorded_randperm):
            for x, t, y in stream:  # (A-GEM prints its cosine similarity every 100 steps)
                drawn.append([])
                model.observe(x, y, t)
                after.append(state())
    finally:
        torch.set_default_dtype(previous)
    result = {"settings": LAMAML_SETTINGS[algo], "initial": initial, "after": after, "projections": len(projections)}
    if algo in REPLAYING:  # per batch, one draw of memories per glance (and the batch's order)
        result.update(stream=stream, draws=[[torch.tensor(g, dtype=torch.long) for g in batch] for batch in drawn])
        result["orders"] = orders
    return result


# DER++ on a class-incremental stream: 2 classes per task, the reference's whole-head loss
DERPP = {"lr": 0.1, "alpha": 0.7, "beta": 0.4, "buffer_size": 50, "minibatch_size": 4}
CLASSES_PER_TASK = 2


def class_incremental(stream: list) -> list:
    """The same batches with task t's labels among its own classes ``2t, 2t + 1``."""
    return [(x, t, y % CLASSES_PER_TASK + CLASSES_PER_TASK * t) for x, t, y in stream]


def run_mammoth(mammoth: Path, stream: list) -> dict:
    """Mammoth's DER++ on a float64 MLP, every replay draw recorded. Mammoth imports every data set
    and backbone it knows when its models load; the two packages only those need (CLIP models,
    fetched from a hub at import) are stubbed out."""
    sys.path.insert(0, str(mammoth))
    sys.argv = sys.argv[:1]
    stubs = ["open_clip", "timm", "timm.layers", "timm.models"]
    stubs += [f"timm.models.{n}" for n in ("_builder", "_manipulate", "vision_transformer")]
    sys.modules.update({name: mock.MagicMock() for name in stubs})
    derpp_module = importlib.import_module("models.derpp")
    buffer_class = importlib.import_module("utils.buffer").Buffer
    init_tensors = buffer_class.init_tensors

    def widened(self, *args, **kwargs):  # its float32 examples and logits, in float64
        init_tensors(self, *args, **kwargs)
        for name in self.attributes:
            if getattr(self, name, None) is not None and getattr(self, name).dtype == torch.float32:
                setattr(self, name, getattr(self, name).double())

    buffer_class.init_tensors = widened
    torch.manual_seed(0)
    sizes = [N_INPUTS, HIDDEN, HIDDEN, CLASSES_PER_TASK * N_TASKS]
    layers = []
    for i in range(3):
        layers.append(torch.nn.Linear(sizes[i], sizes[i + 1], dtype=torch.float64))
        if i < 2:
            layers.append(torch.nn.ReLU())
    net = torch.nn.Sequential(*layers)
    args = SimpleNamespace(
        **DERPP, optimizer="sgd", optim_wd=0.0, optim_mom=0.0, optim_nesterov=False, label_perc=1, nowand=True
    )
    dataset = SimpleNamespace(
        N_CLASSES=CLASSES_PER_TASK * N_TASKS, N_TASKS=N_TASKS, SETTING="class-il", N_CLASSES_PER_TASK=CLASSES_PER_TASK
    )
    model = derpp_module.Derpp(net, torch.nn.functional.cross_entropy, args, None, dataset=dataset)
    model.device = torch.device("cpu")
    initial = [p.detach().clone() for p in net.parameters()]
    after, drawn = [], []
    choice = np.random.choice

    def recorded_choice(*a, **k):
        drawn[-1].append(choice(*a, **k))
        return drawn[-1][-1]

    np.random.seed(0)
    with mock.patch.object(np.random, "choice", recorded_choice):
        for x, _, y in class_incremental(stream):
            drawn.append([])
            model.observe(x, y, x)
            after.append([p.detach().clone() for p in net.parameters()])
    draws = [[torch.as_tensor(d) for d in step] for step in drawn]
    return {"settings": DERPP, "initial": initial, "after": after, "draws": draws}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mer", type=Path, help="a checkout of mattriemer/MER")
    parser.add_argument("--lamaml", type=Path, help="a checkout of montrealrobotics/La-MAML")
    parser.add_argument("--mammoth", type=Path, help="a checkout of aimagelab/mammoth")
    parser.add_argument("--out-dir", type=Path, default=Path(__file__).resolve().parents[1] / "tests" / "fixtures")
    args = parser.parse_args()
    if args.mer is None and args.lamaml is None and args.mammoth is None:
        parser.error("give one or more of --mer, --lamaml, --mammoth")
    if args.lamaml is not None and not (args.lamaml / "model" / "agem.py").is_file():
        parser.error(f"--lamaml={args.lamaml}: not a checkout of La-MAML's repository (model/agem.py)")
    if args.mer is not None and not (args.mer / "model" / "gem.py").is_file():
        parser.error(f"--mer={args.mer}: not a checkout of MER's repository (model/gem.py)")
    if args.mammoth is not None and not (args.mammoth / "models" / "derpp.py").is_file():
        parser.error(f"--mammoth={args.mammoth}: not a checkout of Mammoth (models/derpp.py)")
    stream = batches()
    sizes = {"n_inputs": N_INPUTS, "hidden": HIDDEN, "n_outputs": N_OUTPUTS, "n_tasks": N_TASKS}
    args.out_dir.mkdir(parents=True, exist_ok=True)
    if args.mer is not None:
        methods = {algo: run_mer(args.mer.resolve(), algo, stream) for algo in SETTINGS}
        fixture = {"source": "mattriemer/MER model/{online,ewc,gem,meralg1}.py, float64", "sizes": sizes}
        torch.save({**fixture, "stream": stream, "methods": methods}, args.out_dir / "golden_mer.pt")
        for algo, result in methods.items():
            print(f"MER's {algo}: {len(result['after'])} updates, {result['projections']} projections")
    if args.lamaml is not None:
        methods = {algo: run_lamaml(args.lamaml.resolve(), algo, stream) for algo in LAMAML_SETTINGS}
        fixture = {"source": "montrealrobotics/La-MAML model/{gem,agem,eralg4}.py (ER, La-ER), float64"}
        fixture["sizes"] = sizes
        torch.save({**fixture, "stream": stream, "methods": methods}, args.out_dir / "golden_lamaml.pt")
        for algo, result in methods.items():
            print(f"La-MAML's {algo}: {len(result['after'])} updates, {result['projections']} projections")
    if args.mammoth is not None:
        result = run_mammoth(args.mammoth.resolve(), stream)
        sizes = {**sizes, "n_outputs": CLASSES_PER_TASK * N_TASKS, "classes_per_task": CLASSES_PER_TASK}
        fixture = {"source": "aimagelab/mammoth models/derpp.py, float64", "sizes": sizes}
        fixture.update(stream=class_incremental(stream), methods={"derpp": result})
        torch.save(fixture, args.out_dir / "golden_mammoth_derpp.pt")
        print(f"Mammoth's derpp: {len(result['after'])} updates, {sum(map(len, result['draws']))} replay draws")


if __name__ == "__main__":
    main()

"""Golden updates: the weights an original implementation reaches from a fixed state on fixed
inputs, saved as float64 fixtures that ``tests/test_golden_updates.py`` holds the project to.

    python benchmarks/golden_updates.py --mer ../MER --mammoth ../mammoth --out-dir tests/fixtures

``--mer``: a checkout of MER's repository (``mattriemer/MER``), whose ``model/online.py``,
``ewc.py``, ``gem.py`` and ``meralg1.py`` produced the MNIST baseline rows of La-MAML's Table 1
(fixture ``golden_mer.pt``). ``--lamaml``: a checkout of La-MAML's repository (``montrealrobotics/La-MAML``),
whose copies of GEM (a ridge on the QP, clipped gradients, several glances), A-GEM, ER, La-ER
(``eralg4``), MER (clipped) and the La-MAML family run on its MNIST path (fixture
``golden_lamaml.pt``; ER and La-ER on one task: that path slices the logits wrongly after task 0,
quirk Q9) and, with iCaRL, Meta-BGD and the IID oracle (``iid2``), on its CIFAR-100 path, which produced the CIFAR-100 /
TinyImageNet rows (``golden_lamaml_cifar.pt``: masked heads, on a small copy of its conv net). ``--mammoth``: a checkout
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
import random
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


def images(seed: int, batch: int) -> list:
    """``BATCHES`` batches of ``batch`` images ``IMAGE`` for each of ``N_TASKS`` tasks, as
    ``(pixels, t, y)``: uint8 pixels (each task brighter than the last), read as ``to_input``."""
    gen = torch.Generator().manual_seed(seed)
    stream = []
    for t in range(N_TASKS):
        for _ in range(BATCHES):
            pixels = torch.randint(64 * t, 64 * t + 128, (batch, *IMAGE), generator=gen, dtype=torch.uint8)
            stream.append((pixels, t, torch.randint(N_OUTPUTS, (batch,), generator=gen)))
    return stream


def to_input(pixels: torch.Tensor) -> torch.Tensor:
    """float64 inputs in [0, 1] whose values float32 holds exactly (the originals cast their
    replayed inputs to float32)."""
    return (pixels.double() / 255).float().double()


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
    "mer": {**SETTINGS["mer"], "grad_clip_norm": 0.5},  # MER with every per-sample gradient clipped (Q18)
}  # fmt: skip
# the La-MAML family's MNIST variant (model/lamaml.py): its two switches, as the project's configs
FAMILY = {"lamaml": (True, False), "cmaml": (False, True), "sync": (True, True)}  # learn_lr, sync_update
for _name in FAMILY:
    LAMAML_SETTINGS[_name] = {
        "alpha_init": 0.1, "opt_lr": 0.3, "opt_wt": 0.1, "memories": 50, "replay_batch_size": 3, "glances": 2,
        "grad_clip_norm": 0.5, "second_order": False,
    }  # fmt: skip
LAMAML_MODELS = {"er": "eralg4", "la_er": "eralg4", "mer": "meralg1", **dict.fromkeys(FAMILY, "lamaml")}

# Its CIFAR-100 path: every task's own outputs (a masked multi-head), the family's chunked,
# second-order glance (model/lamaml_cifar.py), iCaRL and Meta-BGD, on a small copy of its conv
# net ("pc_cnn": three 3x3 stride-2 convolutions, here of 2 channels instead of 160, then hidden
# layers of 6 instead of 320) and batches of 5 (inner chunks of 3 and 2 samples).
IMAGE, CONV_CHANNELS, CIFAR_BATCH = (3, 32, 32), 2, 5
CIFAR_SETTINGS = {
    **{name: LAMAML_SETTINGS[name] for name in ("gem", "agem", "er", "mer")},
    "la_er": {**LAMAML_SETTINGS["la_er"], "second_order": True},
    **{name: {**LAMAML_SETTINGS[name], "inner_chunks": 2, "second_order": True} for name in FAMILY},
    "icarl": {"lr": 0.1, "n_memories": 6, "memory_strength": 1.0, "glances": 2, "grad_clip_norm": 0.5},
    "meta_bgd": {
        "alpha_init": 0.1, "memories": 50, "replay_batch_size": 3, "glances": 2, "inner_chunks": 2, "std_init": 0.02,
        "mean_eta": 50.0, "mc_iters": 2, "grad_clip_norm": 0.5,
    },
    "iid": {"lr": 0.1},  # the multi-task oracle (iid2.py): every task's samples mixed in each batch
}  # fmt: skip
CIFAR_MODELS = {**LAMAML_MODELS, **dict.fromkeys(FAMILY, "lamaml_cifar"), "meta_bgd": "meta-bgd", "iid": "iid2"}
REPLAYING = ("er", "la_er", "mer", "meta_bgd", *FAMILY)  # they draw memories (most shuffle batches too)
LEARNED_RATES = ("la_er", "meta_bgd", *FAMILY)


def small_conv_net(modelfactory) -> None:
    """Make the original's model factory build the small pc_cnn for ``cifar100``."""

    def config(model_type, sizes, dataset="mnist", args=None):
        channels, hidden = CONV_CHANNELS, sizes[1]
        convs = [("conv2d", [channels, c, 3, 3, 2, 1], "") for c in (IMAGE[0], channels, channels)]
        layers = [layer for conv in convs for layer in (conv, ("relu", [True], ""))]
        layers += [("flatten", [], ""), ("rep", [], ""), ("linear", [hidden, 16 * channels], ""), ("relu", [True], "")]
        return layers + [("linear", [hidden, hidden], ""), ("relu", [True], ""), ("linear", [sizes[-1], hidden], "")]

    modelfactory.ModelFactory.get_model = staticmethod(config)


def joint_order(stream: list, seed: int = 0) -> torch.Tensor:
    """A fixed order of all the stream's samples (task after task, batch after batch, flattened):
    the IID oracle's mixed batches are consecutive slices of it."""
    total = sum(len(y) for _, _, y in stream)
    return torch.randperm(total, generator=torch.Generator().manual_seed(seed))


def mixed_batches(stream: list, order: torch.Tensor) -> list:
    """The stream's samples in ``order``, cut into batches of its batch size, each sample with its
    own task: ``(x, tasks, y)``."""
    x = torch.cat([x for x, _, _ in stream])
    y = torch.cat([y for _, _, y in stream])
    tasks = torch.cat([torch.full_like(y, t) for _, t, y in stream])
    size = len(stream[0][2])
    return [(x[i], tasks[i], y[i]) for i in order.split(size)]


def record_weight_samples(bgd, normals: list) -> None:
    """Meta-BGD's standard normals ε of every weight sample θ = μ + σε, in order. (Its BGD also
    draws after each step to leave the weights at μ, ε unused: the project draws nothing there.)"""
    randomize = bgd.randomize_weights

    def recorded_randomize(force_std=-1):
        randomize(force_std)
        if force_std < 0:
            normals.extend(group["eps"] for group in bgd.param_groups)

    bgd.randomize_weights = recorded_randomize


def run_lamaml(original: Path, algo: str, stream: list, multihead: bool = False) -> dict:
    """La-MAML's GEM, A-GEM, ER, La-ER, MER, La-MAML family (and, ``multihead``: iCaRL,
    Meta-BGD) on its own MNIST MLP (``model.meta.learner``) or, ``multihead``, through its
    CIFAR-100 code on the small conv net, in float64."""
    sys.modules.setdefault("ipdb", mock.MagicMock())  # imported by its net's modules, never called here
    settings = (CIFAR_SETTINGS if multihead else LAMAML_SETTINGS)[algo]
    module = import_from(original, f"model.{(CIFAR_MODELS if multihead else LAMAML_MODELS).get(algo, algo)}")
    if multihead:
        small_conv_net(sys.modules["model.meta.modelfactory"])
    projections, drawn, orders, integers, normals = [], [], [], [], []
    if algo in ("gem", "agem"):
        project = module.project2cone2 if algo == "gem" else module.projectgrad
        setattr(module, project.__name__, lambda *a, **k: (projections.append(1), project(*a, **k))[1])
    batch = len(stream[0][2])
    args = SimpleNamespace(
        **{"memory_strength": 0.0, "memories": 10, "lr": 0.1, **settings}, learn_lr=algo == "la_er",
        n_layers=2, n_hiddens=HIDDEN, dataset="cifar100" if multihead else "mnist_rotations",
        arch="pc_cnn" if multihead else "linear", xav_init=False, cuda=False, use_old_task_memory=False,
        samples_per_task=BATCHES * batch, validation=0.0, n_epochs=1,  # iCaRL's end of a task
        bgd_optimizer="bgd", optimizer_params=["{}"], train_mc_iters=settings.get("mc_iters"),  # Meta-BGD's
    )  # fmt: skip
    if algo in FAMILY:
        args.learn_lr, args.sync_update = FAMILY[algo]
    args.cifar_batches = getattr(args, "inner_chunks", None)  # inner chunks, by the original's name
    if algo in ("er", "la_er") and not multihead:  # its MNIST path slices task t's logits at t * outputs (Q9)
        stream = [(x, 0, y) for x, _, y in stream]
    order = joint_order(stream) if algo == "iid" else None
    if order is not None:
        stream = mixed_batches(stream, order)
    n_inputs = stream[0][0][0].numel()
    n_outputs = CLASSES_PER_TASK * N_TASKS if multihead else N_OUTPUTS
    randperm, normal, randint = torch.randperm, torch.normal, random.randint

    def recorded(draw, into):
        return lambda *a, **k: (into.append(draw(*a, **k)), into[-1])[1]

    torch.manual_seed(0)
    random.seed(0)  # its replay draws (recorded all the same)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    # its .cuda() calls (iCaRL's labels, BGD's accumulators) stay on the CPU
    with mock.patch.object(torch.Tensor, "cuda", lambda self, *a, **k: self):
        try:
            model = module.Net(n_inputs, n_outputs, N_TASKS, args)
            if algo in REPLAYING:  # record the replayed memories; its float32 replays enter the net widened
                record_replay_draws(model, drawn, per_example=algo == "mer")
                if algo == "mer":
                    model.netforward = model.net.forward  # its copy bound the unwidened forward
            elif algo in ("gem", "agem"):
                model.memory_data = model.memory_data.double()  # allocated as float32: widen it
            if algo == "meta_bgd":
                record_weight_samples(model.optimizer, normals)

            def state() -> list[torch.Tensor]:  # the weights (learned rates α: then α)
                rates = list(model.net.alpha_lr) if algo in LEARNED_RATES else []
                return [p.detach().clone() for p in [*model.net.parameters(), *rates]]

            initial = state()
            after = []  # each update's state, flattened into one row
            with (
                mock.patch("builtins.print"),  # (A-GEM prints its cosine similarity every 100 steps)
                mock.patch.object(torch, "randperm", recorded(randperm, orders)),  # batch shuffles
                # Meta-BGD's weight samples, rounded to float32 values (a small fixture, exact)
                mock.patch.object(torch, "normal", lambda *a, **k: normal(*a, **k).float().double()),
                mock.patch.object(random, "randint", recorded(randint, integers)),  # iCaRL's exemplar picks
            ):
                for x, t, y in stream:
                    if algo in REPLAYING and algo != "mer":
                        drawn.append([])
                    model.observe(x, y, t)
                    after.append(torch.cat([w.flatten() for w in state()]))
                predictions = [model.forward(x, t).argmax(1) for x, t, _ in stream] if algo == "icarl" else None
        finally:
            torch.set_default_dtype(previous)
    result = {"settings": settings, "initial": initial, "after": torch.stack(after), "projections": len(projections)}
    if not multihead and algo in ("er", "la_er"):
        result["stream"] = stream
    if order is not None:  # the oracle's batches: the fixture's stream in this order
        result["joint_order"] = order
    if algo == "mer":  # per example, its replay batches' memories in order
        result["draws"] = [[torch.tensor(example, dtype=torch.long)] for example in drawn]
    elif algo in REPLAYING:  # per batch, one draw of memories per glance (and the batch's order)
        result["draws"] = [[torch.tensor(g, dtype=torch.long) for g in step] for step in drawn]
    if orders:
        result["orders"] = orders
    if algo == "meta_bgd":  # its weight samples' standard normals, in order, as one row
        result["normals"] = torch.cat([n.flatten() for n in normals]).float()  # float32 values (see below)
    if algo == "icarl":  # its exemplar draws, and its nearest-mean predictions after the last task
        result.update(integers=integers, predictions=predictions)
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
        fixture = {"source": "montrealrobotics/La-MAML model/{gem,agem,eralg4,meralg1,lamaml}.py, float64"}
        fixture["sizes"] = sizes
        torch.save({**fixture, "stream": stream, "methods": methods}, args.out_dir / "golden_lamaml.pt")
        pixels = class_incremental(images(0, CIFAR_BATCH))
        inputs = [(to_input(x), t, y) for x, t, y in pixels]
        cifar = {algo: run_lamaml(args.lamaml.resolve(), algo, inputs, multihead=True) for algo in CIFAR_SETTINGS}
        fixture = {"source": "montrealrobotics/La-MAML, CIFAR-100 path (lamaml_cifar, icarl, meta-bgd, ...), float64"}
        fixture["sizes"] = {
            "image": IMAGE, "channels": CONV_CHANNELS, "hidden": HIDDEN, "n_tasks": N_TASKS,
            "n_outputs": CLASSES_PER_TASK * N_TASKS, "classes_per_task": CLASSES_PER_TASK,
        }  # fmt: skip
        fixture["inputs"] = "uint8 pixels p, inputs float64(float32(p / 255))"
        torch.save({**fixture, "stream": pixels, "methods": cifar}, args.out_dir / "golden_lamaml_cifar.pt")
        for name, results in (("MNIST", methods), ("CIFAR-100", cifar)):
            for algo, result in results.items():
                print(f"La-MAML's {algo} ({name}): {len(result['after'])} updates, {result['projections']} projections")
    if args.mammoth is not None:
        result = run_mammoth(args.mammoth.resolve(), stream)
        sizes = {**sizes, "n_outputs": CLASSES_PER_TASK * N_TASKS, "classes_per_task": CLASSES_PER_TASK}
        fixture = {"source": "aimagelab/mammoth models/derpp.py, float64", "sizes": sizes}
        fixture.update(stream=class_incremental(stream), methods={"derpp": result})
        torch.save(fixture, args.out_dir / "golden_mammoth_derpp.pt")
        print(f"Mammoth's derpp: {len(result['after'])} updates, {sum(map(len, result['draws']))} replay draws")


if __name__ == "__main__":
    main()

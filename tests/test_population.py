"""Populations: a member trains exactly as its config does alone.

The contract is checked end to end against real single runs (``lamaml_pl.run.train``) on real
MNIST: every member's parameters after every incoming batch (150-300 updates: 3 tasks of 100
samples, 5 glances per batch of 10, Online batch 1; the 200-slot reservoir overflows) and its
whole accuracy log.
In float64 (``trainer.precision=64-true``) they agree to 1e-12 and the accuracy logs are
identical: same data order, same replay draws, same arithmetic up to summation order. In
float32 the batched products round differently from the single run's (≈3e-8 per step); where
an α element sits at relu's kink that can flip its gradient mask, after which the member
follows a slightly different trajectory — the test holds float32 members to 2 points of RA.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from lamaml_pl.algos import ReservoirBuffer
from lamaml_pl.algos.draws import take
from lamaml_pl.errors import ConfigError, config_error_in
from lamaml_pl.outputs import MEMBERS_DIR
from lamaml_pl.outputs import POPULATION_MANIFEST as MANIFEST
from lamaml_pl.population.cli import population_lists
from lamaml_pl.population.grid import member_config, member_folder, member_settings, requested_axes
from lamaml_pl.report.collect import run_folders
from lamaml_pl.run import train, train_population
from tests.conftest import (
    ALGOS,
    ROOT,
    SHARED_DATA,
    algo_class,
    compose_config,
    requires_shared_mnist,
    tiny_run_overrides,
)

pytestmark = pytest.mark.slow  # populations against their members' single runs: the full tier (pytest -m slow)

SHORT_RUN = [
    f"data.root={SHARED_DATA}",
    "data.download=false",
    "data.n_tasks=3",
    "data.samples_per_task=100",
    "trainer.accelerator=cpu",
    "trainer.enable_progress_bar=false",
    "logger=none",
]


def record_steps(monkeypatch) -> tuple[list, list]:
    """Weights after every observe: of a single run, and of every member of a population (the
    same ``observe``, with a member axis)."""
    single, population = [], []
    classes = {algo_class(name) for name in ALGOS}
    for learner_class in [c for c in classes if "observe" in vars(c)]:  # (A-GEM's observe is GEM's)

        def observe(self, *args, _original=learner_class.observe):
            loss = _original(self, *args)
            steps = single if self.weights is None else population
            steps.append([w.detach().clone() for w in self.member_weights()])
            return loss

        monkeypatch.setattr(learner_class, "observe", observe)
    return single, population


MULTI_PASS = ["data.n_tasks=2", "data.samples_per_task=60", "data.epochs_per_task=3"]
MER_SHORT = ["algo.batches_per_example=2", "data.samples_per_task=50"]  # 150 examples, 2 Reptile batches each
GRIDS = [  # (algo, settings shared by the population and the single runs, the axes)
    ("lamaml", [], ["population.seed=[0,1]", "population.alpha_init=[0.03,0.1]"]),
    ("sync", [], ["population.opt_wt=[0.05,0.2]"]),
    ("cmaml", [], ["population.seed=[2]", "population.grad_clip_norm=[0.5,2.0]"]),
    ("er", [], ["population.lr=[0.01,0.05]", "population.seed=[0,3]"]),
    ("er_ace", [], ["population.lr=[0.01,0.05]", "population.seed=[0,3]"]),  # each member masks its own batch
    ("online", [], ["population.lr=[0.001,0.01]"]),
    ("lamaml", MULTI_PASS, ["population.alpha_init=[0.03,0.1]"]),  # several passes per task: the
    ("er", MULTI_PASS, ["population.lr=[0.01,0.05]"]),  # loop's draws between passes, Q11 re-insertion
    # one example at a time (batch 1), 2 Reptile batches each; the second grid clips per member
    ("mer", MER_SHORT, ["population.seed=[0,1]", "population.lr=[0.03,0.1]"]),
    (
        "mer",
        [*MER_SHORT, "algo.grad_clip_norm=0.5"],
        ["population.beta=[0.01,0.3]", "population.gamma=[1.0,0.5]"],
    ),
    # batch 1, 10 memories per task: the projections (a QP per member; A-GEM's from task 2 on, Q4)
    (
        "gem",
        ["algo.memory_strength=0.5", "data.samples_per_task=50"],
        ["population.seed=[0,1]", "population.lr=[0.01,0.1]"],
    ),
    (
        "agem",
        ["algo.grad_clip_norm=1.0", "data.samples_per_task=50"],
        ["population.seed=[0,1]", "population.grad_clip_norm=[0.5,2.0]"],
    ),
]
GRID_IDS = [
    *("lamaml", "sync", "cmaml", "er", "er_ace", "online", "lamaml-multipass", "er-multipass", "mer", "mer-clipped"),
    *("gem", "agem-clipped"),
]


def check_members_equal_their_single_runs(
    base: list[str], grid: list[str], tmp_path, monkeypatch, tolerance: float = 1e-12
) -> int:
    """Train the population of ``base + grid``, then each member alone (float64): the weights
    after every update agree to ``tolerance``, the accuracy logs (and validation matrices) are
    identical. Returns the number of updates compared."""
    single_steps, population_steps = record_steps(monkeypatch)
    members = train_population(compose_config(base + grid + [f"paths.output_dir={tmp_path / 'population'}"]))
    settings = member_settings(requested_axes(compose_config(base + grid)))
    assert len(members) == len(settings) >= 2
    for k, values in enumerate(settings):
        single_steps.clear()
        overrides = [f"{'seed' if key == 'seed' else 'algo.' + key}={value}" for key, value in values.items()]
        alone = train(compose_config(base + overrides + [f"paths.output_dir={tmp_path / str(k)}"]))
        assert len(single_steps) == len(population_steps)
        worst = max(
            (a - b[k]).abs().max().item()
            for step_a, step_b in zip(single_steps, population_steps)
            for a, b in zip(step_a, step_b)
        )
        assert worst < tolerance, f"member {values}: parameters differ by {worst:.2e}"
        assert members[k]["eval_rows"] == alone["eval_rows"], f"member {values}: accuracy log differs"
        assert members[k].get("validation") == alone.get("validation")
        assert members[k]["ra"] == alone["ra"] and members[k]["population"]["values"] == values
    return len(population_steps)


@requires_shared_mnist
@pytest.mark.parametrize("algo, shared, grid", GRIDS, ids=GRID_IDS)
def test_member_equals_its_single_run_in_float64(algo, shared, grid, tmp_path, monkeypatch):
    base = [f"algo={algo}", *SHORT_RUN, "trainer.precision=64-true", *shared]
    # 3 tasks of 100 samples (batch 10; Online: 1): the 200-slot reservoir overflows;
    # multi-pass: 2 tasks x 3 passes x 6 batches
    assert check_members_equal_their_single_runs(base, grid, tmp_path, monkeypatch) >= 30


NARROW_CONV = ["model.channels=32", "model.hidden_sizes=[64,64]"]  # the paper's net's layers, narrower
CONV_GRIDS = [  # the conv net, task masks, augmentation from each member's generator, a validation split
    ("er", ["algo.glances=2"], ["population.lr=[0.01,0.05]", "population.seed=[0,1]"], 1e-12),
    ("online", ["data.epochs_per_task=2"], ["population.lr=[0.01,0.05]"], 1e-12),
    # second order, chunked inner loop, clamped inner gradients, raw α (the paper's CIFAR presets);
    # the members' grouped convolutions sum in another order, which the second order amplifies
    ("lamaml", ["algo.glances=2", *NARROW_CONV], ["population.alpha_init=[0.05,0.1]", "population.seed=[0,1]"], 1e-10),
    # La-MAML's glance (first order, the last chunk's meta-loss) and ER's θ step; re-insertion every epoch
    ("la_er", ["algo.glances=2", "data.epochs_per_task=2", *NARROW_CONV], ["population.opt_lr=[0.05,0.1]"], 1e-10),
    # one example at a time through vmap's convolutions, each member's per-sample clip
    (
        "mer",
        ["algo.batches_per_example=1", "algo.replay_batch_size=2", "algo.grad_clip_norm=1.0", *NARROW_CONV],
        ["population.seed=[0,1]"],
        1e-10,
    ),
    # the CIFAR presets (clipped memory gradients, a QP per member); A-GEM protecting task 0 (Q4 off)
    ("gem", [*NARROW_CONV], ["population.seed=[0,1]", "population.lr=[0.01,0.03]"], 1e-10),
    ("agem", ["algo.register_task0=true", *NARROW_CONV], ["population.grad_clip_norm=[0.5,2.0]"], 1e-10),
    # the CIFAR presets: every member's weight samples from its own generator, its posterior's BGD step
    (
        "meta_bgd",
        ["algo.glances=2", *NARROW_CONV],
        ["population.seed=[0,1]", "population.alpha_init=[0.05,0.1]"],
        1e-10,
    ),
    # every member's herding, distillation draws and nearest means; class-IL: one widening head
    ("icarl", [*NARROW_CONV], ["population.seed=[0,1]", "population.lr=[0.01,0.05]"], 1e-10),
    ("icarl", ["data.scenario=class_il", *NARROW_CONV], ["population.grad_clip_norm=[0.5,5.0]"], 1e-10),
]


@pytest.mark.parametrize(
    "algo, shared, grid, tolerance",
    CONV_GRIDS,
    ids=["er", "online-multipass", "lamaml", "la_er", "mer", "gem", "agem", "meta_bgd", "icarl", "icarl-class_il"],
)
def test_conv_member_equals_its_single_run_in_float64(
    algo, shared, grid, tolerance, tiny_cifar_root, tmp_path, monkeypatch
):
    base = [
        f"algo={algo}",
        "data=cifar100",
        f"data.root={tiny_cifar_root}",
        "data.download=false",
        "data.n_tasks=2",
        "trainer.accelerator=cpu",
        "trainer.enable_progress_bar=false",
        "trainer.precision=64-true",
        "logger=none",
        *shared,
    ]
    assert check_members_equal_their_single_runs(base, grid, tmp_path, monkeypatch, tolerance) >= 8


@requires_shared_mnist
def test_float32_members_stay_within_two_points_of_their_single_runs(tmp_path):
    grid = ["population.seed=[0,1]", "population.alpha_init=[0.03,0.1]"]
    members = train_population(compose_config(SHORT_RUN + grid + [f"paths.output_dir={tmp_path / 'population'}"]))
    for member in members:
        values = member["population"]["values"]
        alone = train(
            compose_config(
                SHORT_RUN
                + [
                    f"paths.output_dir={tmp_path / str(member['population']['member'])}",
                    f"seed={values['seed']}",
                    f"algo.alpha_init={values['alpha_init']}",
                ]
            )
        )
        assert member["baseline_row"] == alone["baseline_row"]  # same initial weights
        assert abs(member["ra"] - alone["ra"]) < 2.0, (values, member["ra"], alone["ra"])


@requires_shared_mnist
def test_population_writes_one_ordinary_run_folder_per_member(tmp_path):
    out = tmp_path / "population"
    train_population(
        compose_config(
            [
                "algo=er",
                *SHORT_RUN,
                "data.n_tasks=2",
                "population.lr=[0.01,0.03]",
                "population.seed=[0,1]",
                f"paths.output_dir={out}",
            ]
        )
    )
    folders = sorted((out / MEMBERS_DIR).iterdir())
    assert [f.name for f in folders] == [
        "000_seed=0_lr=0.01",
        "001_seed=0_lr=0.03",
        "002_seed=1_lr=0.01",
        "003_seed=1_lr=0.03",
    ]
    results = json.loads((folders[3] / "results.json").read_text())
    assert results["seed"] == 1 and results["algo"] == "er" and len(results["acc_matrix"]) == 2
    assert (folders[3] / "config.yaml").read_text().count("lr: 0.03") == 1
    manifest = json.loads((out / MANIFEST).read_text())
    assert [m["values"] for m in manifest["members"]][1] == {"seed": 0, "lr": 0.03}
    # the report sees the members as runs, and not the population folder itself (Hydra's job record)
    (out / ".hydra").mkdir()
    (out / ".hydra" / "config.yaml").write_text("seed: 0\n")
    assert run_folders([out]) == folders


def test_population_from_the_command_line_and_its_report(tiny_mnist_root, tmp_path):
    """The issue's syntax (comma lists, no --multirun) through train.py, then the report."""
    overrides = [
        o
        for o in tiny_run_overrides("lamaml", "mnist_rot", tiny_mnist_root, tmp_path)
        if not o.startswith("paths.output_dir")
    ]
    run = subprocess.run(
        [
            sys.executable,
            "train.py",
            *overrides,
            "population.alpha_init=0.03,0.1",
            "population.seed=0,1",
            f"hydra.run.dir={tmp_path / 'pop'}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert "lamaml on mnist_rot: population of 4" in run.stdout
    assert len(list((tmp_path / "pop" / MEMBERS_DIR).glob("*/results.json"))) == 4
    report = subprocess.run(
        [sys.executable, "-m", "lamaml_pl.report", str(tmp_path / "pop"), "--out", str(tmp_path / "report")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert report.returncode == 0, report.stderr[-2000:]
    table = (tmp_path / "report" / "report.md").read_text()
    assert "lamaml (alpha_init=0.03) | 2 |" in table and "lamaml (alpha_init=0.1) | 2 |" in table


def test_grid_is_the_product_of_the_axes():
    cfg = compose_config(["population.seed=[0,1,2]", "population.alpha_init=[0.1,0.3]", "population.opt_lr=0.2"])
    settings = member_settings(requested_axes(cfg))
    assert len(settings) == 6
    assert settings[0] == {"seed": 0, "alpha_init": 0.1, "opt_lr": 0.2}
    assert settings[-1] == {"seed": 2, "alpha_init": 0.3, "opt_lr": 0.2}
    member = member_config(cfg, settings[-1])
    assert member.seed == 2 and member.data.seed == 2 and member.algo.alpha_init == 0.3
    assert all(v is None for v in member.population.values())
    assert member_folder(5, settings[-1]) == "005_seed=2_alpha_init=0.3_opt_lr=0.2"


def test_comma_separated_axes_become_lists():
    argv = ["train.py", "population.alpha_init=0.01,0.03", "population.seed=[0,1]", "algo=lamaml", "data.x=1,2"]
    assert population_lists(argv) == [
        "train.py",
        "population.alpha_init=[0.01,0.03]",
        "population.seed=[0,1]",
        "algo=lamaml",
        "data.x=1,2",
    ]


@pytest.mark.parametrize("exclusive", [False, True])
def test_members_reservoir_equals_one_buffer_per_member(exclusive):
    """Fed member k's uniforms, the stacked buffer holds what member k's own buffer holds when
    its ``torch.rand`` returns the same numbers (both from one seed), past capacity."""
    members, capacity, batch = 3, 6, 4
    stacked = ReservoirBuffer(capacity, (2,), exclusive=exclusive, members=members)
    alone = [ReservoirBuffer(capacity, (2,), exclusive=exclusive) for _ in range(members)]
    for step in range(8):
        x, y = torch.randn(members, batch, 2), torch.randint(0, 10, (members, batch))
        uniforms = []
        for k in range(members):
            torch.manual_seed(1000 * step + k)
            uniforms.append(torch.rand(batch))
        stacked.add(x, y, 0, torch.stack(uniforms))
        for k, buffer in enumerate(alone):
            torch.manual_seed(1000 * step + k)  # add() draws torch.rand(batch) first
            buffer.add(x[k], y[k], 0)
    assert stacked.age == alone[0].age == 32
    for k, buffer in enumerate(alone):
        assert torch.equal(stacked.y[k, :capacity], buffer.y[:capacity])
        assert torch.equal(stacked.x[k, :capacity], buffer.x[:capacity])
    x, y = (
        take(stacked.x, torch.tensor([[0, 5], [1, 1], [4, 2]])),
        take(stacked.y, torch.tensor([[0, 5], [1, 1], [4, 2]])),
    )
    assert torch.equal(y[2], stacked.y[2, [4, 2]]) and x.shape == (3, 2, 2)


BAD = [
    (["population.lr=[0.1]"], "population.lr cannot vary in a population of algo=lamaml: use seed, alpha_init"),
    (["algo=ewc", "population.alpha_init=[0.1,0.2]"], "algo=ewc (no batched population mode: its members train"),
    (["algo=gem", "population.grad_clip_norm=[null,5.0]"], "population.grad_clip_norm=[null, 5.0]: a population of"),
    (["algo=iid", "population.beta=[0.1,0.2]"], "algo=iid (no batched population mode"),
    (["population.seed=[]"], "population.seed=[] has no values"),
    (["population.seed=[0]", "algo.memory_snapshot=copy"], "algo.memory_snapshot='copy': a population supports alias"),
    (["population.alpha_init=[0.1,-1]"], "algo.alpha_init=-1 is not allowed"),
    (["population.seed=[0,1]", "data.shuffle=seeded"], "data.shuffle='seeded': a population replays"),
    (["population.seed=[0,1]", "callbacks=gradient_alignment"], "populations run without extra callbacks"),
]


@pytest.mark.parametrize("overrides, message", BAD, ids=[" ".join(o) for o, _ in BAD])
def test_bad_population_names_the_value(overrides, message, tiny_mnist_root, tmp_path):
    cfg = compose_config(
        [
            f"data.root={tiny_mnist_root}",
            "data.download=false",
            "data.samples_per_task=20",
            "trainer.accelerator=cpu",
            f"paths.output_dir={tmp_path}",
            *overrides,
        ]
    )
    with pytest.raises(Exception) as caught:
        train_population(cfg)
    error = config_error_in(caught.value)
    assert isinstance(error, ConfigError) and message in str(error)


def test_a_population_without_batched_mode_trains_its_members_one_by_one(tiny_mnist_root, tmp_path):
    """EWC has no member axis: a population trains its members one after another, each equal to
    its single run, with the manifest of a population; resume=auto reads completed members back."""
    base = [
        "algo=ewc",
        f"data.root={tiny_mnist_root}",
        "data.download=false",
        "data.n_tasks=2",
        "data.samples_per_task=30",
        "trainer.accelerator=cpu",
        "trainer.enable_progress_bar=false",
        "logger=none",
    ]
    population = base + ["population.seed=[0,1]", "population.lr=[0.01]", f"paths.output_dir={tmp_path / 'population'}"]
    members = train_population(compose_config(population))
    manifest = json.loads((tmp_path / "population" / MANIFEST).read_text())
    assert [m["values"] for m in manifest["members"]] == [{"seed": 0, "lr": 0.01}, {"seed": 1, "lr": 0.01}]
    for seed, member in enumerate(members):
        alone = train(
            compose_config(base + [f"seed={seed}", "algo.lr=0.01", f"paths.output_dir={tmp_path / str(seed)}"])
        )
        assert member["eval_rows"] == alone["eval_rows"] and member["seed"] == seed
        assert (tmp_path / "population" / manifest["members"][seed]["folder"] / "results.json").is_file()
    assert members[0]["eval_rows"] != members[1]["eval_rows"]
    (tmp_path / "population" / manifest["members"][1]["folder"] / "results.json").unlink()  # as if killed
    again = train_population(compose_config(population + ["resume=auto"]))
    assert [m["eval_rows"] for m in again] == [m["eval_rows"] for m in members]

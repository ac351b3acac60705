"""sweep=tune: the grid on a validation split the test sets never see, the rule that picks the
best setting, the test stages, resume, the report and every refused input — through train.py."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from lamaml_pl.errors import ConfigError
from lamaml_pl.tune import TIE, choose
from tests.conftest import ROOT, make_mnist_stream
from tests.helpers.commands import run_many


def row(ra, bti, **values):
    return {"values": values, "seeds": 1, "ra": ra, "bti": bti, "status": "completed" if ra is not None else "diverged"}


def test_the_rule_takes_the_best_validation_ra_and_breaks_ties_by_bti():
    rows = [row(70.0, -9.0, lr=1), row(72.0, -12.0, lr=2), row(None, None, lr=3), row(71.5, -1.0, lr=4)]
    assert choose(rows) == {"lr": 2}  # the higher RA wins over a better BTI
    rows.append(row(72.0 - TIE / 2, -5.0, lr=5))  # within the tie: the higher BTI
    assert choose(rows) == {"lr": 5}
    with pytest.raises(ConfigError, match="every setting of the grid diverged"):
        choose([row(None, None, lr=1)])


def test_the_mnist_validation_split_is_held_out_of_every_task(tiny_mnist_root):
    """data.validation holds out a seeded share of the training digits, none of which any task
    trains on; 0 leaves each task's draw exactly as the original loader's."""
    plain = make_mnist_stream("mnist_rot", tiny_mnist_root, n_tasks=3, samples_per_task=50)
    plain.setup()
    gen = torch.Generator().manual_seed(0)
    for drawn in plain.train_indices:  # the original: randperm(pool)[:samples_per_task] per task
        assert torch.equal(drawn, torch.randperm(300, generator=gen)[:50])
    assert plain.info.val_sizes == [] and plain.val_dataset(3) is None

    held = make_mnist_stream("mnist_rot", tiny_mnist_root, n_tasks=3, samples_per_task=50, validation=0.2)
    held.setup()
    assert held.info.val_sizes == [60, 60, 60] and held.seeded_evaluation
    remaining = set(range(300)) - set(torch.randperm(300, generator=torch.Generator().manual_seed(0))[:60].tolist())
    for drawn in held.train_indices:
        assert set(drawn.tolist()) <= remaining and len(drawn) == 50
    x, y, t = held.val_dataset(3)[0]
    assert len(y) == 60 and torch.equal(y, held.val_labels)
    scored = make_mnist_stream(
        "mnist_rot", tiny_mnist_root, n_tasks=3, samples_per_task=50, validation=0.2, reported_split="validation"
    )
    assert scored.info.test_sizes == [60, 60, 60] and scored.info.val_sizes == []
    with pytest.raises(ConfigError, match="data.samples_per_task=250 exceeds the 240 training digits"):
        make_mnist_stream("mnist_rot", tiny_mnist_root, samples_per_task=250, validation=0.2).setup()
    with pytest.raises(ConfigError, match="data.reported_split=validation but data=mnist_rot holds no validation"):
        make_mnist_stream("mnist_rot", tiny_mnist_root, samples_per_task=50, reported_split="validation").info  # noqa: B018


def tune_args(root, out, *extra):
    return [
        "sweep=tune",
        "algo=lamaml",
        "data=mnist_rot",
        "debug=tiny",
        "data.n_tasks=3",
        f"data.root={root}",
        "data.download=false",
        "trainer.accelerator=cpu",
        "trainer.precision=64-true",
        "tune.grid.alpha_init=0.05,0.15",
        "tune.grid.opt_lr=0.1,0.3",
        "tune.grid.grad_clip_norm=[2.0]",
        "tune.test_seeds=0,1",
        f"hydra.run.dir={out}",
        *extra,
    ]


def train(args, timeout=600):
    done = subprocess.run(
        [sys.executable, "train.py", *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


@pytest.mark.slow
def test_a_tuning_run_through_train_py(tiny_mnist_root, tmp_path):
    """The grid is scored on the validation split only, the rule's setting is chosen, its test
    seeds and the composed values' train on the test split; a member is its single run; resume
    keeps what finished; the report draws it."""
    out = tmp_path / "tune"
    printed = train(tune_args(tiny_mnist_root, out))
    assert "4 members as one batched population, scored on the validation split" in printed
    record = json.loads((out / "tune.json").read_text())
    scores = {json.dumps(r["values"]): r for r in record["scores"]}
    assert len(scores) == 4 and record["validation"] == 0.1
    best = max(scores.values(), key=lambda r: r["ra"])
    assert record["chosen"] == best["values"]
    assert record["published"] == {"alpha_init": 0.15, "opt_lr": 0.3, "grad_clip_norm": 2.0}

    manifest = json.loads((out / "validation" / "population.json").read_text())
    for member in manifest["members"]:
        results = json.loads((out / "validation" / member["folder"] / "results.json").read_text())
        assert results["data_info"]["reported_matrix"] == "validation"  # the test sets are never scored
        assert "validation" not in results and len(results["acc_matrix"][0]) == 3
        key = json.dumps({axis: member["values"][axis] for axis in record["grid"]})
        assert scores[key]["ra"] == results["ra"]
    # a grid member is its single run: the same command line without the population
    chosen = record["chosen"]
    alone = tmp_path / "alone"
    single = [a for a in tune_args(tiny_mnist_root, alone) if not a.startswith(("sweep=", "tune."))]
    single += ["data.validation=0.1", "data.reported_split=validation"]
    single += [f"algo.{axis}={value}" for axis, value in chosen.items()]
    train(single)
    member = next(m for m in manifest["members"] if all(m["values"][a] == v for a, v in chosen.items()))
    member_results = json.loads((out / "validation" / member["folder"] / "results.json").read_text())
    assert member_results["acc_matrix"] == json.loads((alone / "results.json").read_text())["acc_matrix"]

    test_stages = ["test", "published"] if chosen != record["published"] else ["test"]
    assert sorted(record["test"]) == sorted(test_stages)
    for stage in test_stages:
        test = json.loads((out / stage / "population.json").read_text())
        assert [m["values"]["seed"] for m in test["members"]] == [0, 1]
        assert record["test"][stage]["ra"] == [m["ra"] for m in test["members"]]
        results = json.loads((out / stage / test["members"][0]["folder"] / "results.json").read_text())
        assert results["data_info"]["reported_matrix"] == "test" and results["data_info"].get("val_per_task") is None
    text = (out / "tuning.md").read_text()
    assert "| alpha_init | opt_lr | grad_clip_norm | seeds | val RA | val BTI |" in text and "(chosen)" in text
    assert (out / "tuning.png").stat().st_size > 10_000

    # an interrupted test stage: resume=auto keeps the finished grid and trains the rest only
    (out / "test" / "population.json").unlink()
    again = train(tune_args(tiny_mnist_root, out, "resume=auto"))
    assert f"kept: {out / 'validation'} already finished" in again
    assert json.loads((out / "tune.json").read_text())["test"] == record["test"]
    report = subprocess.run(
        [sys.executable, "-m", "lamaml_pl.report", str(out)], cwd=ROOT, capture_output=True, text=True
    )
    assert report.returncode == 0 and (out / "report" / "tuning_lamaml_mnist_rot.png").is_file()


@pytest.mark.slow
def test_a_method_without_a_batched_population_tunes_one_run_after_another(tiny_mnist_root, tmp_path):
    out = tmp_path / "ewc"
    args = tune_args(tiny_mnist_root, out, "algo=ewc", "tune.stage=validation")
    args = [a for a in args if not a.startswith("tune.grid.")] + [
        "tune.grid.lr=0.01,0.03",
        "tune.grid.memory_strength=1",
    ]
    printed = train(args)
    assert "2 members one after another (algo=ewc has no batched population mode here)" in printed
    record = json.loads((out / "tune.json").read_text())
    assert [r["values"] for r in record["scores"]] == [
        {"lr": 0.01, "memory_strength": 1},
        {"lr": 0.03, "memory_strength": 1},
    ]
    assert "test" not in record and not (out / "test").exists()


def test_bad_tuning_input_is_one_clear_error(tiny_mnist_root, tmp_path):
    cases = [
        (
            ["tune.grid.glances=1,2"],
            "tune.grid.glances cannot vary in a population of algo=lamaml: use seed, alpha_init",
        ),
        (["tune.grid.alpha_init=[]"], "tune.grid.alpha_init=[] has no values"),
        (["tune.grid.alpha_init=null", "tune.grid.opt_lr=null", "tune.grid.grad_clip_norm=null"], "tune.grid is empty"),
        (["tune.validation=0"], "tune.validation=0 and data.validation=0.0: tuning scores the grid on held-out data"),
        (["tune.stage=test"], "holds no finished validation stage"),
        (["tune.stage=twice"], "tune.stage='twice' is unknown: use one of all, validation, test"),
        (["tune.test_seeds=[]"], "tune.test_seeds=[] has no values"),
        (["population.seed=0,1"], "sweep=tune builds its own populations from tune.grid"),
        (["data.validation=1.5"], "data.validation=1.5 is not allowed: use a fraction in [0, 1)"),  # in a stage
        (["data.root=/nonexistent/mnist"], "data.root='/nonexistent/mnist' holds no MNIST"),
    ]
    outcomes = run_many(
        [tune_args(tiny_mnist_root, tmp_path / str(k), *extra) for k, (extra, _) in enumerate(cases)], tmp_path
    )
    for k, ((extra, message), outcome) in enumerate(zip(cases, outcomes)):
        assert outcome["code"] == 2 and not outcome["traceback"], (extra, outcome)
        assert len(outcome["error_lines"]) == 1 and message in outcome["error_lines"][0], (extra, outcome)
        assert not (tmp_path / str(k)).exists(), extra  # refused before training: no folder left

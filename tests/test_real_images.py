"""Real images, real forgetting: every Table 2 method on Split Fashion-MNIST (Debian's package
``dataset-fashion-mnist``, which .ci/run installs), at the paper's conv-net settings (the
CIFAR-100 presets) on 200 training images per task and a narrower conv net, so that the whole
file takes about two minutes on a 2-core CPU. The full 2,000 test images of every task are scored.

Thresholds come from measured runs with margin (seed 0, this machine): chance is 50% on a task
of two classes; docs/results.md has the 5-seed table at larger size."""

import functools

import pytest

from lamaml_pl.data.image_sources import DEBIAN_FASHION
from lamaml_pl.run import train
from tests.conftest import compose_config

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (DEBIAN_FASHION / "t10k-images-idx3-ubyte.gz").is_file(),
        reason=f"Fashion-MNIST not installed at {DEBIAN_FASHION} (apt-get install dataset-fashion-mnist)",
    ),
]

TABLE2 = compose_config(["pass=single"])["pass"].table2_methods.split(",")
# 5 looks per batch for La-ER (its preset: 1; 10 batches per task are few), Meta-BGD's costly
# update once, and MER's one-example-at-a-time Reptile loop cut to one batch per example; every
# other setting is the presets'
SHRINK = {"la_er": ["algo.glances=5"]}
SHRINK["meta_bgd"] = ["algo.glances=1"]
SHRINK["mer"] = ["algo.batches_per_example=1", "algo.replay_batch_size=5"]
SHRINK["online"] = ["algo.lr=0.03"]  # ER's lr, no replay: the forgetting baseline

# measured (seed 0, 2026-12-01, one CPU thread): each task right after training it 69.4-99.8% for
# every method (task 2, shirt-like classes, is the hard pair: 69.4-92.7; every other 86.9-99.8);
# BTI task-IL: Online -7.3, ER 3.9, GEM -3.2, iCaRL 2.0, their mean 0.9 (A-GEM -0.9: not asserted);
# Online class-IL RA 19.9 / BTI -73.0 against task-IL 87.5 / -7.3; ER class-IL RA 53.9
LEARNED = 65.0  # chance: 50
FORGET_MARGIN = 5.0  # replay's mean BTI above Online's; each replay method above it at all
SCENARIO_MARGIN = 15.0


@functools.cache
def run(algo: str, scenario: str, out_dir: str) -> dict:
    """One seed-0 run; the IID oracle and Online keep their own settings (no CIFAR-100 preset)."""
    preset = [] if algo in ("iid", "online") else ["preset=${algo}/cifar100/${pass}"]
    overrides = [
        f"algo={algo}",
        "data=split_fashion_mnist",
        f"data.scenario={scenario}",
        "data.samples_per_task=200",
        "model.channels=16",
        "model.hidden_sizes=[32,32]",
        "trainer.accelerator=cpu",
        "trainer.enable_progress_bar=false",
        "logger=none",
        f"paths.output_dir={out_dir}/{algo}_{scenario}",
        *preset,
        *SHRINK.get(algo, []),
    ]
    return train(compose_config(overrides))


@pytest.fixture(scope="module")
def out_dir(tmp_path_factory) -> str:
    return str(tmp_path_factory.mktemp("fashion"))


@pytest.mark.parametrize("algo", TABLE2)
def test_every_table2_method_learns_every_task_of_real_images(algo, out_dir):
    results = run(algo, "task_il", out_dir)
    assert results["data_source"] == f"fashion_mnist:{DEBIAN_FASHION}"
    matrix = results["acc_matrix"]
    if algo == "iid":  # one joint pass: a single row over every task
        assert min(matrix[0]) > LEARNED
        return
    learned = [matrix[k][k] for k in range(5)]  # each task right after training it
    assert min(learned) > LEARNED, learned


def test_replay_forgets_less_than_online(out_dir):
    online = run("online", "task_il", out_dir)["bti"]
    replay = {algo: run(algo, "task_il", out_dir)["bti"] for algo in ("er", "gem", "icarl")}
    assert all(bti > online for bti in replay.values()), (online, replay)
    assert sum(replay.values()) / len(replay) > online + FORGET_MARGIN, (online, replay)


def test_class_il_forgets_more_than_task_il(out_dir):
    task_il, class_il = (run("online", scenario, out_dir) for scenario in ("task_il", "class_il"))
    assert class_il["bti"] < task_il["bti"] - SCENARIO_MARGIN
    assert class_il["ra"] < task_il["ra"] - SCENARIO_MARGIN
    er = run("er", "class_il", out_dir)  # replay holds class-IL far above fine-tuning
    assert er["ra"] > class_il["ra"] + SCENARIO_MARGIN

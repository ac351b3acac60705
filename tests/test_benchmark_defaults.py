"""Every benchmark's defaults train, through the command line: ``python train.py data=<benchmark>``
with a sample limit and the data's folder added (tiny files in the real on-disk format), the
default algorithm (La-MAML) with the preset the run names: the paper's benchmarks their own,
the others the conv-net (CIFAR-100) settings. And a preset the user names must exist.
"""

import json
import subprocess
import sys

import pytest

from lamaml_pl.paths import CONF_DIR
from tests.conftest import ROOT
from tests.helpers.commands import run_many
from tests.helpers.data_files import write_image_folder, write_tiny_cifar10, write_tiny_fashion_mnist

BENCHMARKS = sorted(path.stem for path in (CONF_DIR / "data").glob("*.yaml"))
PAPER = ("mnist_rot", "mnist_perm", "mnist_many", "cifar100", "tinyimagenet")


@pytest.fixture(scope="module")
def data_roots(tmp_path_factory, tiny_mnist_root, tiny_cifar_root, tiny_imagenet_root) -> dict:
    folder = tmp_path_factory.mktemp("roots")
    fashion = write_tiny_fashion_mnist(folder / "fashion")
    cifar10 = write_tiny_cifar10(folder / "cifar10")
    images = write_image_folder(folder / "images", n_classes=4, per_class=12)
    mnist = dict.fromkeys(("mnist_rot", "mnist_perm", "mnist_many", "split_mnist"), tiny_mnist_root)
    return {
        **mnist, "split_fashion_mnist": fashion, "split_cifar10": cifar10, "cifar100": tiny_cifar_root,
        "tinyimagenet": tiny_imagenet_root, "imagefolder": images,
    }  # fmt: skip


@pytest.mark.slow
def test_every_benchmark_trains_with_its_defaults(data_roots, tmp_path):
    assert set(BENCHMARKS) == set(data_roots)  # a new benchmark is added here with its tiny files
    runs = {name: tmp_path / name for name in BENCHMARKS}
    invocations = [
        [
            f"data={name}", f"data.root={data_roots[name]}", "data.download=false", "data.samples_per_task=10",
            "data.n_tasks=2", "trainer.enable_progress_bar=false", "logger=none", f"hydra.run.dir={runs[name]}",
            *(["data.benchmark_tasks=2"] if name == "tinyimagenet" else []),  # its tiny files hold 10 classes
        ]
        for name in BENCHMARKS
    ]  # fmt: skip
    for name, outcome in zip(BENCHMARKS, run_many(invocations, tmp_path), strict=True):
        assert outcome["code"] == 0 and not outcome["traceback"], (name, outcome)
        results = json.loads((runs[name] / "results.json").read_text())
        assert results["status"] == "completed", name
        preset = f"lamaml/{name if name in PAPER else 'conv'}/single"  # where it differs from conf/algo/lamaml.yaml
        assert results["preset"] == (preset if (CONF_DIR / "preset" / f"{preset}.yaml").is_file() else None), name
        assert all(0 <= a <= 100 for row in results["acc_matrix"] for a in row)
        # the data came from the folder given, even where Debian's Fashion-MNIST is installed
        assert str(data_roots[name]) in results["data_source"] or name.startswith("mnist"), results["data_source"]


def test_a_preset_is_recorded_and_one_that_does_not_exist_is_refused(tiny_mnist_root, tmp_path):
    common = [f"data.root={tiny_mnist_root}", "data.download=false", "data.n_tasks=2", "data.samples_per_task=10"]
    common += ["trainer.enable_progress_bar=false", "logger=none"]
    cases = [
        (["preset=lamaml/cifar10/single"], "preset lamaml/cifar10/single does not exist (the presets of algo=lamaml:"),
        (["algo=derpp", "preset=${algo}/cifar100/${pass}"], "preset derpp/cifar100/single does not exist (algo=derpp"),
        (["algo=ewc", "presets_from=cifar100"], "preset ewc/cifar100/single does not exist (the presets of algo=ewc:"),
        (["algo=er", "preset=${algo}/cifar100/${pass}"], None),
        (["algo=derpp"], None),  # no preset of its own: its conf/algo values, said so
        (["algo=er", "presets_from=none"], None),
    ]
    invocations = [[*args, *common, f"hydra.run.dir={tmp_path / str(k)}"] for k, (args, _) in enumerate(cases)]
    for (args, message), outcome in zip(cases, run_many(invocations, tmp_path), strict=True):
        if message is not None:
            assert outcome["code"] == 2 and len(outcome["error_lines"]) == 1, (args, outcome)
            assert message in outcome["error_lines"][0], outcome["error_lines"]
            continue
        assert outcome["code"] == 0, (args, outcome)
    recorded = [json.loads((tmp_path / str(k) / "results.json").read_text())["preset"] for k in (3, 4, 5)]
    assert recorded == ["er/cifar100/single", None, None]


def test_the_opening_line_names_the_preset(tiny_mnist_root, tmp_path):
    result = subprocess.run(
        [
            sys.executable, "train.py", "algo=gem", f"data.root={tiny_mnist_root}", "data.download=false",
            "data.n_tasks=2", "data.samples_per_task=10", "trainer.enable_progress_bar=false", "logger=none",
            f"hydra.run.dir={tmp_path}",
        ],
        cwd=ROOT, capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert "gem on mnist_rot, seed 0 (preset gem/mnist_rot/single)" in result.stdout.splitlines()[0:8]


def test_n_tasks_null_runs_all_of_the_benchmarks_tasks(tiny_mnist_root, tmp_path):
    args = ["algo=online", "data=mnist_perm", "data.n_tasks=null", "data.samples_per_task=5", "logger=none"]
    args += [f"data.root={tiny_mnist_root}", "data.download=false", "trainer.enable_progress_bar=false"]
    (outcome,) = run_many([[*args, f"hydra.run.dir={tmp_path / 'run'}"]], tmp_path)
    assert outcome["code"] == 0 and not outcome["traceback"], outcome
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert len(results["acc_matrix"]) == 20 and results["data_info"]["n_tasks"] == 20


def test_own_images_keep_every_class_and_record_their_names(tmp_path):
    images = write_image_folder(tmp_path / "images", n_classes=4, per_class=12)
    args = ["data=imagefolder", f"data.root={images}", "algo=er", "data.samples_per_task=10", "logger=none"]
    args += ["trainer.enable_progress_bar=false", "presets_from=none"]
    runs = [tmp_path / name for name in ("by3", "by3_first", "by2")]
    outcomes = run_many(
        [
            [*args, "data.increment=3", f"hydra.run.dir={runs[0]}"],  # 4 classes: one would be dropped
            [*args, "data.increment=3", "data.n_tasks=1", f"hydra.run.dir={runs[1]}"],  # asked for: one task
            [*args, "data.increment=2", f"hydra.run.dir={runs[2]}"],
        ],
        tmp_path,
    )
    assert outcomes[0]["code"] == 2 and outcomes[0]["error_lines"] == [
        f"error: data.increment=3 does not divide the 4 classes of imagefolder:{images.resolve()}: 1 would be "
        "left out. Use an increment of 1, 2, 4, or data.n_tasks=<k> to run the first k tasks of 3 classes"
    ]
    assert outcomes[1]["code"] == 0 and outcomes[2]["code"] == 0
    info = json.loads((runs[2] / "results.json").read_text())["data_info"]
    assert sorted(info["class_names"]) == [f"class_{k}" for k in range(4)]
    assert info["class_names"] == [f"class_{k}" for k in info["class_order"]]  # in task order

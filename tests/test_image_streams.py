"""Class-split streams beyond the paper's: Split MNIST / Fashion-MNIST / CIFAR-10 and a folder
of images, read from their real on-disk formats; the class-incremental scenario; bad input."""

import json
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from hydra.utils import instantiate

from lamaml_pl.data import image_sources
from lamaml_pl.errors import ConfigError, config_error_in
from lamaml_pl.run import build_learner, train
from tests.conftest import CLASS_IL_ALGOS, ROOT, algo_config, compose_config, tiny_table2_overrides
from tests.helpers.data_files import (
    write_image_folder,
    write_tiny_cifar10,
    write_tiny_fashion_mnist,
)


def datamodule(overrides):
    try:
        dm = instantiate(compose_config(overrides).data)
        dm.setup()
    except Exception as err:
        raise (config_error_in(err) or err) from None
    return dm


def learner_for(overrides):
    cfg = compose_config(overrides)
    try:
        return build_learner(cfg, instantiate(cfg.data).info)
    except Exception as err:
        raise (config_error_in(err) or err) from None


def test_split_cifar10_reads_the_batches_and_cuts_five_two_class_tasks(tmp_path):
    root = write_tiny_cifar10(tmp_path)
    dm = datamodule(["data=split_cifar10", f"data.root={root}", "data.download=false"])
    assert dm.info.n_tasks == 5 and dm.info.classes_per_task == 2 and dm.info.input_shape == (3, 32, 32)
    assert sum(len(y) for _, y in dm.train_sets) + sum(len(y) for _, y in dm.val_sets) == 100  # all 5 batches
    for task, (_, y) in enumerate(dm.test_sets):
        assert set(y.tolist()) == {2 * task, 2 * task + 1} and len(y) == 8


def test_split_mnist_and_fashion_mnist_are_greyscale_streams_with_a_sized_conv_net(tiny_mnist_root, tmp_path):
    fashion = write_tiny_fashion_mnist(tmp_path)
    for data, root in (("split_mnist", tiny_mnist_root), ("split_fashion_mnist", fashion)):
        dm = datamodule([f"data={data}", f"data.root={root}", "data.download=false"])
        assert dm.info.input_shape == (1, 28, 28) and dm.info.n_tasks == 5 and dm.info.n_classes == 10
        assert dm.source.endswith(str(root.resolve() / ("FashionMNIST/raw" if "fashion" in data else "")).rstrip("/"))
        net = learner_for([f"data={data}", f"data.root={root}", "data.download=false", "algo=er"]).net
        assert net[0].in_channels == 1 and net[-1].out_features == 10
        assert net(dm.eval_dataset(1)[0][0]).shape[-1] == 10


def test_fashion_mnist_missing_everywhere_names_the_places_looked_in(tmp_path, monkeypatch):
    monkeypatch.setattr(image_sources, "DEBIAN_FASHION", tmp_path / "no-package")
    given = ["data=split_fashion_mnist", f"data.root={tmp_path}", "data.download=false"]
    with pytest.raises(ConfigError, match=r"no Fashion-MNIST in \S*FashionMNIST/raw \(looked for"):
        datamodule(given)  # a root the user gave: read there or nowhere
    with pytest.raises(
        ConfigError, match="no Fashion-MNIST in .*FashionMNIST/raw or .*no-package.*dataset-fashion-mnist"
    ):
        datamodule([*given, "data.use_package=true"])  # as for the default root
    assert not (tmp_path / "FashionMNIST").exists()  # nothing created where no data are


def test_fashion_mnist_reads_debians_package_only_for_the_default_root(tmp_path):
    cfg = compose_config(["data=split_fashion_mnist"])
    assert cfg.data.use_package is True
    assert compose_config(["data=split_fashion_mnist", f"data.root={tmp_path}"]).data.use_package is False


def test_a_truncated_gzipped_idx_file_is_named(tmp_path, monkeypatch):
    monkeypatch.setattr(image_sources, "DEBIAN_FASHION", tmp_path / "no-package")
    labels = write_tiny_fashion_mnist(tmp_path) / "FashionMNIST" / "raw" / "t10k-labels-idx1-ubyte.gz"
    labels.write_bytes(labels.read_bytes()[:20])
    with pytest.raises(ConfigError, match=f"Fashion-MNIST file {labels} could not be read"):
        datamodule(["data=split_fashion_mnist", f"data.root={tmp_path}", "data.download=false"])


def test_samples_per_task_draws_a_seeded_subset(tmp_path):
    root = write_tiny_cifar10(tmp_path)
    base = ["data=split_cifar10", f"data.root={root}", "data.download=false", "data.samples_per_task=5"]
    a, b, c = datamodule(base), datamodule(base), datamodule([*base, "seed=1"])
    assert all(len(y) == 5 for _, y in a.train_sets)
    assert all(torch.equal(x1, x2) for (x1, _), (x2, _) in zip(a.train_sets, b.train_sets))
    assert not all(torch.equal(x1, x2) for (x1, _), (x2, _) in zip(a.train_sets, c.train_sets))
    with pytest.raises(ConfigError, match="data.samples_per_task=50 exceeds the 18 training images of task 0"):
        datamodule([*base[:-1], "data.samples_per_task=50"])


# ---- a folder of your own images -------------------------------------------------------------
def folder_overrides(root, *extra):
    return ["data=imagefolder", f"data.root={root}", *extra]


@pytest.mark.slow
def test_the_readmes_own_images_command_runs_through_train_py(tmp_path):
    """``data.root`` is a required (``???``) key of data=imagefolder: the command line's key check
    takes it as a setting like any other, and the run trains every task of the folder."""
    root = write_image_folder(tmp_path / "images", n_classes=4, per_class=10, size=16)
    out = tmp_path / "run"
    command = [sys.executable, "train.py", "data=imagefolder", f"data.root={root}", "data.increment=2", "algo=er"]
    quiet = ["logger=none", "trainer.enable_progress_bar=false", f"hydra.run.dir={out}"]
    result = subprocess.run([*command, *quiet], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    results = json.loads((out / "results.json").read_text())
    assert results["status"] == "completed" and len(results["acc_matrix"]) == 2
    missing = subprocess.run([*command[:2], "data=imagefolder"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert missing.returncode == 2
    assert "error: data.root is required: give it on the command line, data.root=<value>" in missing.stderr


def test_an_image_folder_becomes_tasks_of_its_classes_with_a_fixed_test_split(tmp_path):
    root = write_image_folder(tmp_path / "grey", n_classes=4, per_class=10, size=16)
    dm = datamodule(folder_overrides(root))
    assert dm.info.n_tasks == 2 and dm.info.input_shape == (1, 16, 16) and dm.info.n_classes == 4
    assert [len(y) for _, y in dm.test_sets] == [4, 4]  # 20% of 10 images per class
    other_seed = datamodule(folder_overrides(root, "seed=3"))

    def test_images(stream):  # per-image pixel sums: the same images, whatever the tasks they fall in
        return sorted(x.flatten(1).sum(1).tolist() for x, _ in stream.test_sets)

    assert sorted(sum(test_images(dm), [])) == sorted(sum(test_images(other_seed), []))
    # the normalisation is the training images' own
    x = dm.eval_dataset(2)[0][0]
    assert (
        x.shape == (4, 1, 16, 16)
        and abs(dm.augment.mean.item() - dm.train_sets[0][0].float().mean().item() / 255) < 0.1
    )
    net = learner_for([*folder_overrides(root), "algo=er"]).net
    assert net[0].in_channels == 1 and net[-1].out_features == 4 and net(x).shape == (4, 4)


def test_an_image_folder_with_train_and_test_folders_and_resized_rgb_images(tmp_path):
    root = write_image_folder(tmp_path / "rgb", n_classes=6, per_class=5, size=24, grey=False, split=True)
    dm = datamodule(folder_overrides(root, "data.image_size=8", "data.increment=3", "data.validation=0"))
    assert dm.info.input_shape == (3, 8, 8) and dm.info.n_tasks == 2
    assert [len(y) for _, y in dm.test_sets] == [3, 3] and [len(y) for _, y in dm.train_sets] == [12, 12]


@pytest.mark.parametrize(
    "make, extra, message",
    [
        (lambda p: write_image_folder(p, n_classes=1), [], r"holds 1 class folder \(class_0\).*at least 2"),
        (
            lambda p: write_image_folder(p, n_classes=4),
            ["data.n_tasks=3"],
            "data.n_tasks=3 x data.increment=2 needs 6 classes, but",
        ),
        (
            lambda p: write_image_folder(p, n_classes=3),
            ["data.increment=4"],
            "data.increment=4 is more than the 3 classes",
        ),
        (lambda p: p, [], "holds 0 class folders"),
    ],
)
def test_an_unusable_image_folder_is_one_clear_error(tmp_path, make, extra, message):
    with pytest.raises(ConfigError, match=message):
        datamodule(folder_overrides(make(tmp_path), *extra))


def test_unreadable_and_mixed_size_images_are_named(tmp_path):
    root = write_image_folder(tmp_path / "bad", n_classes=2, per_class=4)
    broken = root / "class_1" / "5.png"
    broken.write_bytes(b"not a png")
    with pytest.raises(ConfigError, match=f"the image {broken} could not be read"):
        datamodule(folder_overrides(root))
    from PIL import Image

    Image.new("L", (30, 12)).save(broken)
    with pytest.raises(ConfigError, match=r"not all of one square size .*30x12.*data.image_size=N"):
        datamodule(folder_overrides(root))


def test_an_image_folder_run_without_a_folder_asks_for_data_root(tmp_path):
    cfg = compose_config(["data=imagefolder", f"paths.output_dir={tmp_path}"])
    with pytest.raises(ConfigError, match="data.root is required: give it on the command line, data.root=<value>"):
        train(cfg)


def test_a_run_on_an_image_folder_writes_nothing_when_the_folder_is_wrong(tmp_path):
    out = tmp_path / "run"
    cfg = compose_config(folder_overrides(tmp_path / "missing", "algo=er", f"paths.output_dir={out}"))
    with pytest.raises(Exception) as raised:
        train(cfg)
    assert "is not a folder: data=imagefolder reads <root>/<class>/<image>" in str(config_error_in(raised.value))
    assert not (out / "checkpoints").exists() and not (out / "results.json").exists()


# ---- the class-incremental scenario -----------------------------------------------------------
def test_class_il_scores_one_head_over_the_classes_seen_so_far(tmp_path):
    root = write_tiny_cifar10(tmp_path)
    learner = learner_for(
        ["algo=er", "data=split_cifar10", f"data.root={root}", "data.download=false", "data.scenario=class_il"]
    )
    x = torch.randn(6, 3, 32, 32)
    y = torch.tensor([0, 1, 2, 3, 4, 5])
    learner.current_task = 2  # classes 0..5 seen
    with torch.no_grad():
        logits = learner.net(x)
        masked = learner(x, torch.zeros(6, dtype=torch.long))  # the task id is ignored
    assert torch.equal(masked[:, :6], logits[:, :6]) and (masked[:, 6:] == -1e11).all()
    assert learner.predict(x, torch.zeros(6, dtype=torch.long)).lt(6).all()
    tasks = torch.tensor([0, 0, 1, 1, 2, 2])
    # the task-IL view: each sample's label among its own task's two classes, whatever the others score
    within = logits.view(6, 5, 2)[torch.arange(6), tasks].argmax(dim=1) + 2 * tasks
    assert torch.equal(learner.predict_within_task(x, tasks), within)
    assert learner.class_il_loss == "all"  # ER's default, as DER++'s reference: every output
    assert torch.allclose(learner.loss(logits, y, tasks), F.cross_entropy(logits, y))
    learner.class_il_loss = "seen"  # one head over every seen class, whatever the task
    assert torch.allclose(learner.loss(logits, y, tasks), F.cross_entropy(logits[:, :6], y))
    learner.current_task = -1  # before training: the first task's classes
    assert learner.seen_classes == 2


def test_icarl_class_il_picks_the_nearest_mean_among_every_seen_class(tmp_path):
    root = write_tiny_cifar10(tmp_path)
    learner = learner_for(
        ["algo=icarl", "data=split_cifar10", f"data.root={root}", "data.download=false", "data.scenario=class_il"]
    )
    learner.current_task = 1
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        features = learner.net(x)
    learner.class_means = torch.full((10, 10), float("nan"))
    learner.class_means[:4] = features[[3, 2, 1, 0]]  # sample i is nearest to class 3 - i, across tasks
    assert learner.predict(x, torch.zeros(4, dtype=torch.long)).tolist() == [3, 2, 1, 0]
    # the task-IL view: the nearer of its own task's two class means (task 0: classes 0, 1; task 1: 2, 3)
    tasks = torch.tensor([0, 1, 0, 1])
    distances = torch.cdist(features, learner.class_means[:4]).view(4, 2, 2)[torch.arange(4), tasks]
    assert torch.equal(learner.predict_within_task(x, tasks), distances.argmin(dim=1) + 2 * tasks)
    assert learner.predict_within_task(x, torch.tensor([1, 1, 0, 0])).tolist() == [3, 2, 1, 0]  # its own class


def test_an_algorithm_without_class_il_refuses_it_by_name(tmp_path):
    root = write_tiny_cifar10(tmp_path)
    with pytest.raises(ConfigError, match="algo=lamaml does not run class_il streams: it supports domain_il, task_il"):
        learner_for(
            ["algo=lamaml", "data=split_cifar10", f"data.root={root}", "data.download=false", "data.scenario=class_il"]
        )
    with pytest.raises(ConfigError, match="data.scenario='domain' is unknown: use one of task_il, class_il"):
        datamodule(["data=split_cifar10", f"data.root={root}", "data.scenario=domain"])


def test_a_net_too_small_for_the_data_is_refused(tmp_path):
    root = write_tiny_cifar10(tmp_path)
    with pytest.raises(ConfigError, match="model.n_outputs=5 does not fit the data, which need 10"):
        learner_for(["data=split_cifar10", f"data.root={root}", "data.download=false", "model.n_outputs=5"])


@pytest.mark.parametrize("algo", CLASS_IL_ALGOS)
def test_every_class_il_algorithm_runs_on_tiny_split_cifar10(algo, tmp_path):
    root = write_tiny_cifar10(tmp_path / "data")
    overrides = ["data=split_cifar10", f"data.root={root}", "data.scenario=class_il", "data.n_tasks=2"]
    results = train(compose_config([*overrides, *tiny_table2_overrides(algo, tmp_path / "run")]))
    assert results["status"] == "completed" and results["data_info"]["scenario"] == "class_il"
    matrix = results["acc_matrix"]
    assert len(matrix) == (1 if algo == "iid" else 2) and all(0 <= a <= 100 for row in matrix for a in row)
    if algo != "iid":
        assert matrix[0][1] == 0  # after task 0 the classes of task 1 cannot be predicted yet
    # the same test sets scored among each task's classes: a sample right on one head is right
    # among its task's classes too, so every entry of a seen task is at least the class-IL one
    assert results["class_il_loss"] == algo_config(algo).class_il_loss
    within = results["task_il"]["acc_matrix"]
    assert len(within) == len(matrix)
    assert all(w >= a for i, (w_row, row) in enumerate(zip(within, matrix)) for w, a in zip(w_row[: i + 1], row))
    assert results["task_il"]["ra"] == pytest.approx(sum(within[-1]) / len(within[-1]), abs=1e-3)

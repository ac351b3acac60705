"""Task-incremental CIFAR-100 / TinyImageNet: on-disk formats, splits, class order, masking,
and a tiny end-to-end run of every algorithm of the paper's Table 2 on each."""

import json
import random

import pytest
import torch
from hydra.utils import instantiate

from lamaml_pl.data.class_split import class_order, validation_mask
from lamaml_pl.errors import ConfigError, config_error_in
from lamaml_pl.run import train
from tests.conftest import TASK_IL_ALGOS, compose_config, tiny_table2_overrides
from tests.helpers.data_files import write_tiny_imagenet


def cifar_overrides(root, *extra):
    return ["data=cifar100", f"data.root={root}", "data.download=false", *extra]


def tiny_overrides(root, cache, *extra):
    # the written tree has 10 classes: a 2-task benchmark of 5 classes each
    return [
        "data=tinyimagenet",
        f"data.root={root}",
        "data.benchmark_tasks=2",
        "data.n_tasks=2",
        f"data.cache_dir={cache}",
        *extra,
    ]


def datamodule(overrides):
    dm = instantiate(compose_config(overrides).data)
    dm.setup()
    return dm


def test_cifar_splits_sizes_disjointness_and_label_remapping(tiny_cifar_root):
    dm = datamodule(cifar_overrides(tiny_cifar_root))
    assert dm.info.n_tasks == 20 and dm.info.classes_per_task == 5 and dm.info.input_shape == (3, 32, 32)
    assert dm.order == class_order(100, "random", 0)
    expected_order = list(range(100))
    random.seed(0)
    random.shuffle(expected_order)  # the original: random.seed(seed); random.shuffle(order)
    assert dm.order == expected_order
    for task in range(20):
        (train_x, train_y), (val_x, val_y), (test_x, test_y) = (
            dm.train_sets[task],
            dm.val_sets[task],
            dm.test_sets[task],
        )
        assert (len(train_y), len(val_y), len(test_y)) == (45, 5, 20)  # 10 train / 4 test per class, 10% held out
        for y in (train_y, val_y, test_y):
            assert set(y.tolist()) == set(range(5 * task, 5 * task + 5))  # remapped into the task's range
        # disjoint: no held-out image is also a training image
        assert not (train_x.flatten(1).unsqueeze(1) == val_x.flatten(1).unsqueeze(0)).all(-1).any()
    # remapping: new label l of the test set holds the images of original class order[l]
    import pickle

    with open(tiny_cifar_root / "cifar-100-python" / "test", "rb") as handle:
        raw = pickle.load(handle, encoding="latin1")
    images = torch.as_tensor(raw["data"]).reshape(-1, 3, 32, 32)
    labels = torch.as_tensor(raw["fine_labels"])
    test_x, test_y = dm.test_sets[3]
    for new_label in range(15, 20):
        ours = test_x[test_y == new_label].float().sum()
        assert ours == images[labels == dm.order[new_label]].float().sum()


def test_class_order_follows_the_seed(tiny_cifar_root):
    first, second = (datamodule(cifar_overrides(tiny_cifar_root, f"seed={s}")) for s in (0, 1))
    assert first.order != second.order and sorted(first.order) == sorted(second.order) == list(range(100))
    assert datamodule(cifar_overrides(tiny_cifar_root, "data.class_order=fixed")).order == list(range(100))


def test_validation_mask_holds_out_the_first_fraction_of_each_class_in_shuffled_order():
    labels = torch.tensor([0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2])
    for shuffle in ("numpy", "python"):
        mask = validation_mask(labels, 0.2, seed=3, shuffle=shuffle)
        assert [int(mask[labels == c].sum()) for c in range(3)] == [1, 1, 2]  # floor(5*.2), floor(5*.2), floor(10*.2)
        assert torch.equal(mask, validation_mask(labels, 0.2, seed=3, shuffle=shuffle))
    import numpy as np

    order = np.random.RandomState(3).permutation(20)  # CIFAR: NumPy's permutation of the train set
    first_of_class_2 = [i for i in order if labels[i] == 2][:2]
    assert sorted(torch.nonzero(validation_mask(labels, 0.2, 3, "numpy") & (labels == 2)).flatten().tolist()) == sorted(
        first_of_class_2
    )


def test_tinyimagenet_both_layouts_give_the_same_stream(tmp_path):
    archive = write_tiny_imagenet(tmp_path / "archive", layout="archive")
    restructured = write_tiny_imagenet(tmp_path / "restructured", layout="restructured")
    a = datamodule(tiny_overrides(archive, tmp_path / "cache"))
    b = datamodule(tiny_overrides(restructured, tmp_path / "cache"))
    assert a.info.input_shape == (3, 64, 64) and a.info.test_sizes == [20, 20] and a.info.val_sizes == [5, 5]
    assert a.order == b.order
    for task in range(2):
        for sets in ("train_sets", "val_sets", "test_sets"):
            (xa, ya), (xb, yb) = getattr(a, sets)[task], getattr(b, sets)[task]
            assert torch.equal(ya, yb) and torch.equal(
                xa.float().sum((1, 2, 3)).sort().values, xb.float().sum((1, 2, 3)).sort().values
            )
    assert len(list((tmp_path / "cache").glob("tinyimagenet-*.pt"))) == 2  # one decoded cache per tree
    again = datamodule(tiny_overrides(archive, tmp_path / "cache"))  # read back from the cache
    assert torch.equal(again.train_sets[0][0], a.train_sets[0][0])


def test_missing_or_corrupt_cifar_is_reported(tmp_path):
    with pytest.raises(ConfigError, match="holds no CIFAR-100: expected torchvision's layout .*cifar-100-python/train"):
        datamodule(cifar_overrides(tmp_path))
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    for name in ("train", "test"):
        (folder / name).write_bytes(b"<html>not a pickle</html>")
    with pytest.raises(
        ConfigError, match=f"the CIFAR-100 file {folder / 'train'} could not be read as a python pickle"
    ):
        datamodule(cifar_overrides(tmp_path))


def test_missing_tinyimagenet_names_the_layout_and_the_fetch_command(tmp_path):
    with pytest.raises(ConfigError, match="holds no TinyImageNet.*python -m lamaml_pl.data.fetch_tinyimagenet"):
        datamodule(tiny_overrides(tmp_path, tmp_path / "cache"))


def test_fetching_tinyimagenet_offline_is_one_line_and_leaves_nothing(tmp_path, monkeypatch, capsys):
    from lamaml_pl.data import fetch_tinyimagenet

    monkeypatch.setattr(fetch_tinyimagenet, "URL", "http://127.0.0.1:9/tiny-imagenet-200.zip")  # nothing listens
    with pytest.raises(SystemExit) as exit_:
        fetch_tinyimagenet.main(["--root", str(tmp_path / "data")])  # as `python -m lamaml_pl.data.fetch_tinyimagenet`
    assert exit_.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: could not download TinyImageNet-200 from http://127.0.0.1:9")
    assert not (tmp_path / "data").exists()


def test_training_batches_are_augmented_and_evaluation_batches_only_normalised(tiny_cifar_root):
    dm = datamodule(cifar_overrides(tiny_cifar_root))
    x, _, _ = dm.eval_dataset(dm.n_tasks)[0]
    stored = dm.test_sets[0][0][: len(x)].float() / 255
    mean, std = (
        torch.tensor([0.5071, 0.4867, 0.4408]).view(1, 3, 1, 1),
        torch.tensor([0.2675, 0.2565, 0.2761]).view(1, 3, 1, 1),
    )
    assert torch.allclose(x, (stored - mean) / std, atol=1e-5)
    torch.manual_seed(0)
    first = dm.train_dataset(0).__getitems__(list(range(45)))[0]
    second = dm.train_dataset(0).__getitems__(list(range(45)))[0]
    assert first.shape == (45, 3, 32, 32) and not torch.equal(first, second)  # random crops / flips / brightness


@pytest.mark.parametrize("algo", ["lamaml", "er", "icarl", "gem"])
def test_masking_keeps_predictions_and_losses_inside_the_task(tiny_cifar_root, algo):
    cfg = compose_config(cifar_overrides(tiny_cifar_root, f"algo={algo}"))
    dm = instantiate(cfg.data)
    learner = instantiate(cfg.algo, net=instantiate(cfg.model), stream=dm.info)
    x, y, t = dm.eval_dataset(dm.n_tasks)[7]  # task 7's test batch
    with torch.no_grad():
        predictions = learner.predict(x, t)
        logits = learner.net(x)
    assert ((predictions >= 35) & (predictions < 40)).all()
    expected = torch.nn.functional.cross_entropy(logits[:, 35:40], y - 35)  # CE over the task's 5 logits
    assert torch.allclose(learner.loss(logits, y, 7), expected)
    mixed_t = torch.tensor([7] * len(y))
    assert torch.allclose(learner.loss(logits, y, mixed_t), expected)


def test_icarl_refuses_a_domain_incremental_stream(tiny_mnist_root):
    cfg = compose_config(
        [
            "algo=icarl",
            "data=mnist_rot",
            f"data.root={tiny_mnist_root}",
            "data.download=false",
            "data.samples_per_task=40",
        ]
    )
    with pytest.raises(Exception) as raised:
        instantiate(cfg.algo, net=instantiate(cfg.model), stream=instantiate(cfg.data).info)
    assert "algo=icarl does not run domain_il streams: it supports task_il" in str(config_error_in(raised.value))


@pytest.mark.slow
@pytest.mark.parametrize("algo", TASK_IL_ALGOS)
def test_every_table2_algorithm_runs_on_tiny_cifar100(algo, tiny_cifar_root, tmp_path):
    results = train(
        compose_config(cifar_overrides(tiny_cifar_root, "data.n_tasks=2", *tiny_table2_overrides(algo, tmp_path)))
    )
    check_task_incremental_results(tmp_path, results, algo)


@pytest.mark.slow
@pytest.mark.parametrize("algo", TASK_IL_ALGOS)
def test_every_table2_algorithm_runs_on_tiny_tinyimagenet(algo, tiny_imagenet_root, tmp_path):
    overrides = tiny_overrides(tiny_imagenet_root, tmp_path / "cache", *tiny_table2_overrides(algo, tmp_path))
    check_task_incremental_results(tmp_path, train(compose_config(overrides)), algo)


def check_task_incremental_results(out_dir, results, algo):
    saved = json.loads((out_dir / "results.json").read_text())
    assert saved["status"] == "completed" and saved["matrix_from"] == "test"
    rows = 1 if compose_config([f"algo={algo}"]).data.joint else 2
    assert len(saved["acc_matrix"]) == rows and len(saved["validation"]["acc_matrix"]) == rows
    assert all(0 <= a <= 100 for row in saved["acc_matrix"] for a in row)
    assert saved["data_info"]["class_order"] and results["ra"] == saved["ra"]

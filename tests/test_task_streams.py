"""Rotation and permutation streams: one transform per task, shared by train and test, seeded."""

import numpy as np
import pytest
import torch
from PIL import Image

from lamaml_pl.data.gathered_pixels import GatheredPixels, base_pixels, fold_index
from lamaml_pl.data.task_transforms import (
    FILL_INDEX,
    apply_pixel_map,
    pad_with_fill,
    permutation_pixel_maps,
    rotation_angles,
    rotation_pixel_map,
)
from tests.conftest import make_mnist_stream, requires_cuda
from tests.helpers.data_files import synthetic_digits


def make_dm(root, transform="rotation", **kw):
    data = "mnist_rot" if transform == "rotation" else "mnist_perm"
    return make_mnist_stream(data, root, **{"n_tasks": 4, "samples_per_task": 30, **kw})


@pytest.mark.parametrize("angle", [0.0, 4.3, 45.0, 90.0, 133.7, 180.0])
def test_rotation_map_equals_pil_rotate(angle):
    images, _ = synthetic_digits(20, seed=5)
    expected = np.stack([np.asarray(Image.fromarray(im, mode="L").rotate(angle)) for im in images])
    padded = pad_with_fill(torch.from_numpy(images).reshape(20, -1))
    ours = apply_pixel_map(padded, rotation_pixel_map(angle))
    assert torch.equal((ours * 255).round().to(torch.uint8), torch.from_numpy(expected).reshape(20, -1))
    # the evaluation's inputs, kept as base digits + pixel map, stand for the same inputs
    targets, sources = fold_index(rotation_pixel_map(angle))
    kept = GatheredPixels(base_pixels(torch.from_numpy(images).reshape(20, -1), torch.device("cpu")), targets, sources)
    assert torch.equal(kept.dense(), ours)


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=requires_cuda)])
@pytest.mark.parametrize(
    "pixel_map", [rotation_pixel_map(133.7), permutation_pixel_maps(1, seed=3)[0]], ids=["rotation", "permutation"]
)
def test_first_layer_on_the_base_digits_equals_it_on_the_task_inputs(pixel_map, device):
    """The evaluation multiplies the base digits (sparse on the CPU) by the weights folded through
    the pixel map; 133.7 degrees has blank fill pixels and base pixels that two input pixels read."""
    images, _ = synthetic_digits(30, seed=2)
    images[:, :3] = 0  # blank rows: the sparse digits then have empty stretches
    targets, sources = fold_index(pixel_map)
    assert torch.bincount(targets).max() <= 2 and (sources is None) == (pixel_map.max() < FILL_INDEX)
    flat = torch.from_numpy(images).reshape(30, -1)
    gen = torch.Generator().manual_seed(0)
    weight = torch.randn(3, 7, 784, generator=gen, dtype=torch.float64).to(device)
    bias = torch.randn(3, 7, generator=gen, dtype=torch.float64).to(device)
    kept = GatheredPixels(base_pixels(flat, torch.device(device)), targets, sources).to(device)
    assert kept.pixels.layout == (torch.sparse_csr if device == "cpu" else torch.strided)
    inputs = apply_pixel_map(pad_with_fill(flat), pixel_map).double().to(device)
    assert torch.equal(kept.dense().double(), inputs)  # the same values on every device
    single = kept.linear(weight[0], bias[0])  # one network: (N, out)
    assert single.shape == (30, 7) and torch.allclose(single, inputs @ weight[0].T + bias[0], rtol=0, atol=1e-12)
    stacked = kept.linear(weight, bias)  # a population: (members, N, out)
    assert torch.allclose(stacked, inputs @ weight.transpose(1, 2) + bias.unsqueeze(1), rtol=0, atol=1e-12)


def test_first_layer_on_the_base_digits_runs_under_half_precision():
    """bf16 weights (trainer.precision=bf16-true) and CPU autocast (bf16-mixed) evaluate too: MKL's
    sparse product has no half types, so it runs in float32 and returns the weights' dtype."""
    images, _ = synthetic_digits(30, seed=2)
    kept = GatheredPixels(
        base_pixels(torch.from_numpy(images).reshape(30, -1), torch.device("cpu")),
        *fold_index(rotation_pixel_map(45.0)),
    )
    gen = torch.Generator().manual_seed(0)
    weight, bias = torch.randn(7, 784, generator=gen), torch.randn(7, generator=gen)
    full = kept.linear(weight, bias)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.equal(kept.linear(weight, bias), full)
    half = kept.linear(weight.bfloat16(), bias.bfloat16())
    assert half.dtype == torch.bfloat16
    assert torch.allclose(
        half.float(), kept.dense() @ weight.bfloat16().float().T + bias.bfloat16().float(), rtol=1e-2, atol=0.1
    )


def test_rotation_angles_fall_one_per_bin_and_follow_the_seed():
    angles = rotation_angles(20, seed=0)
    for t, a in enumerate(angles):
        assert 9 * t <= a < 9 * (t + 1)
    assert angles == rotation_angles(20, seed=0)
    assert angles != rotation_angles(20, seed=1)


def test_permutations_are_bijections_distinct_and_seeded():
    maps = permutation_pixel_maps(5, seed=0)
    for m in maps:
        assert sorted(m.tolist()) == list(range(784)) and FILL_INDEX not in m
    assert len({tuple(m.tolist()) for m in maps}) == 5
    assert all(torch.equal(a, b) for a, b in zip(maps, permutation_pixel_maps(5, seed=0)))
    assert not torch.equal(maps[0], permutation_pixel_maps(1, seed=1)[0])


@pytest.mark.parametrize("transform", ["rotation", "permutation"])
def test_train_and_test_of_a_task_share_its_transform(tiny_mnist_root, transform):
    dm = make_dm(tiny_mnist_root, transform)
    dm.setup()
    base_train = dm.train_pixels[:, :784].float() / 255
    base_test = dm.test_digits.float() / 255
    x_test, y_test, t_test = dm.eval_dataset(dm.n_tasks)[1]  # first test batch of task 1
    for task in range(4):
        pixel_map = dm.pixel_maps[task]
        train = dm.train_dataset(task)
        idx = dm.train_indices[task]
        padded = torch.cat([base_train[idx], torch.zeros(len(idx), 1)], 1)
        assert torch.equal(train.x, padded[:, pixel_map])
        assert torch.equal(train.y, dm.train_labels[idx]) and set(train.t.tolist()) == {task}
    padded_test = torch.cat([base_test, torch.zeros(len(base_test), 1)], 1)
    assert torch.equal(x_test.dense(), padded_test[: len(y_test), dm.pixel_maps[1]])
    assert set(t_test.tolist()) == {1}
    assert not torch.equal(dm.pixel_maps[0], dm.pixel_maps[1])


def test_streams_are_deterministic_per_seed(tiny_mnist_root):
    a, b, c = make_dm(tiny_mnist_root, seed=0), make_dm(tiny_mnist_root, seed=0), make_dm(tiny_mnist_root, seed=1)
    for dm in (a, b, c):
        dm.setup()
    assert all(torch.equal(i, j) for i, j in zip(a.train_indices, b.train_indices))
    assert not torch.equal(a.train_indices[0], c.train_indices[0])
    # the tasks themselves (angles) do not depend on the run seed, only on task_seed
    assert a.angles == c.angles


def test_first_tasks_do_not_depend_on_how_many_are_run(tiny_mnist_root):
    five, twenty = make_dm(tiny_mnist_root, n_tasks=2), make_dm(tiny_mnist_root, n_tasks=4)
    five.setup(), twenty.setup()
    assert all(torch.equal(five.pixel_maps[t], twenty.pixel_maps[t]) for t in range(2))
    assert all(torch.equal(five.train_indices[t], twenty.train_indices[t]) for t in range(2))


def test_eval_drops_the_last_test_sample_but_keeps_its_denominator(tiny_mnist_root):
    dm = make_dm(tiny_mnist_root, eval_batch_size=40)
    info = dm.info
    batches = [dm.eval_dataset(dm.n_tasks)[k] for k in range(len(dm.eval_dataset(dm.n_tasks)))]
    per_task = [sum(len(y) for x, y, t in batches if t[0] == task) for task in range(4)]
    assert per_task == [99] * 4 and info.test_sizes == [100] * 4
    full = make_dm(tiny_mnist_root, eval_batch_size=40, drop_last_test_sample=False)
    full.setup()
    assert sum(len(full.eval_dataset(full.n_tasks)[k][1]) for k in range(len(full.eval_dataset(full.n_tasks)))) == 400


def test_joint_stream_serves_every_task_in_one_epoch(tiny_mnist_root):
    """The IID oracle: one epoch holds every task's training samples with their own task ids."""
    dm = make_dm(tiny_mnist_root, joint=True, epochs_per_task=3)
    dm.setup()
    assert dm.max_epochs == 3 and dm.task_of_epoch(2) == 3 and dm.info.joint
    dm.batches_per_step = 3
    windows = list(dm.train_dataloader())
    assert [len(w) for w in windows] == [3, 3, 3, 3]  # 12 batches of 10, three per Lightning step
    x, y, t = (torch.cat(parts) for parts in zip(*[batch for window in windows for batch in window]))
    assert torch.bincount(t).tolist() == [30, 30, 30, 30]
    fingerprint = torch.randn(x[0].numel(), dtype=x.dtype)  # a sample's key, to compare shuffled sets
    for task in range(4):
        served, stored = ((s.flatten(1) * fingerprint).sum(1) for s in (x[t == task], dm.train_dataset(task).x))
        assert torch.equal(served.sort().values, stored.sort().values)

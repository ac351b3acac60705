"""Numbers must not move: short seeded CPU runs on real MNIST, their every evaluation row pinned.

A speed-up that changes what the algorithms compute fails here. If a change is meant to move
the numbers (a bug fix, a new default), rerun these configurations, update the pins, and say
why in the commit. One CPU thread (``trainer.num_threads``' default): matrix products may sum in another order
with more threads.
Float32 La-MAML is chaotic at this scale (an α element at relu's kink turns a rounding difference
into another trajectory), so each of its two glances is pinned on its own: the hand-written
default, and the autograd reference (``algo.fast_mlp=false``).
"""

import pytest

from lamaml_pl.run import train
from tests.conftest import SHARED_DATA, compose_config, requires_shared_mnist

PINNED = {
    ("lamaml", "mnist_rot", ""): [
        [12.49, 12.13, 11.25],
        [45.3, 42.42, 38.63],
        [59.52, 59.26, 56.8],
        [74.01, 74.93, 73.21],
    ],
    ("lamaml", "mnist_rot", "algo.fast_mlp=false"): [
        [12.49, 12.13, 11.25],
        [45.3, 42.42, 38.63],
        [59.52, 59.26, 56.8],
        [74.01, 74.93, 73.21],
    ],
    ("cmaml", "mnist_rot", ""): [
        [12.49, 12.13, 11.25],
        [49.51, 47.17, 43.71],
        [58.58, 56.35, 53.7],
        [66.88, 66.99, 63.9],
    ],
    ("sync", "mnist_perm", ""): [[8.17, 9.63, 8.29], [43.77, 9.32, 6.28], [49.38, 45.16, 9.74], [55.78, 48.43, 32.06]],
    ("sync", "mnist_perm", "algo.fast_mlp=false"): [
        [8.17, 9.63, 8.29],
        [43.77, 9.32, 6.28],
        [49.38, 45.16, 9.74],
        [55.78, 48.43, 32.06],
    ],
    ("er", "mnist_rot", ""): [
        [12.49, 12.13, 11.25],
        [54.87, 49.21, 44.36],
        [69.2, 67.16, 61.17],
        [74.85, 75.25, 71.57],
    ],
    ("gem", "mnist_perm", ""): [[13.81, 7.67, 9.11], [40.46, 9.67, 9.0], [37.61, 40.54, 11.13], [36.26, 39.47, 46.95]],
}


@requires_shared_mnist
@pytest.mark.parametrize("algo, data, override", list(PINNED))
def test_evaluation_rows_are_pinned(algo, data, override, tmp_path):
    results = train(
        compose_config(
            [
                f"algo={algo}",
                f"data={data}",
                f"data.root={SHARED_DATA}",
                "data.download=false",
                "data.n_tasks=3",
                "data.samples_per_task=100",
                "trainer.accelerator=cpu",
                "trainer.enable_progress_bar=false",
                "logger=none",
                f"paths.output_dir={tmp_path}",
                *override.split(),
            ]
        )
    )
    assert results["num_threads"] == 1
    assert results["eval_rows"]["rows"] == PINNED[(algo, data, override)]

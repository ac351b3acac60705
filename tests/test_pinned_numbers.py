"""Numbers must not move: short seeded CPU runs on real MNIST, their every evaluation row pinned.

A speed-up that changes what the algorithms compute fails here. If a change is meant to move
the numbers (a bug fix, a new default), rerun these configurations, update the pins, and say
why in the commit. The runs are float64 (``trainer.precision=64-true``), one CPU thread: float32
La-MAML is chaotic at this scale (an α element at relu's kink turns a rounding difference into
another trajectory), so its float32 rows change with the CPU's kernels (AVX2 against AVX-512
summation order moved the autograd glance's third row by 0.7 points). In float64 the same rows
came out under ATEN_CPU_CAPABILITY=avx2, =avx512 and MKL_CBWR=COMPATIBLE alike. The hand-written
glance and the autograd reference (``algo.fast_mlp=false``) are pinned to the same rows.
"""

import pytest

from lamaml_pl.run import train
from tests.conftest import SHARED_DATA, compose_config, requires_shared_mnist

pytestmark = pytest.mark.slow  # pinned numbers of whole runs: the full tier (pytest -m slow)

LAMAML_ROT = [[12.49, 12.13, 11.25], [42.78, 40.98, 37.49], [63.1, 61.19, 56.72], [75.11, 74.42, 70.76]]
SYNC_PERM = [[8.17, 9.63, 8.29], [40.89, 9.35, 6.33], [49.64, 36.13, 10.76], [58.85, 47.85, 35.19]]
PINNED = {
    ("lamaml", "mnist_rot", ""): LAMAML_ROT,
    ("lamaml", "mnist_rot", "algo.fast_mlp=false"): LAMAML_ROT,
    ("cmaml", "mnist_rot", ""): [
        [12.49, 12.13, 11.25],
        [46.55, 44.04, 40.28],
        [58.3, 56.37, 50.76],
        [75.21, 75.22, 72.66],
    ],
    ("sync", "mnist_perm", ""): SYNC_PERM,
    ("sync", "mnist_perm", "algo.fast_mlp=false"): SYNC_PERM,
    ("er", "mnist_rot", ""): [
        [12.49, 12.13, 11.25],
        [54.09, 48.19, 43.46],
        [69.37, 68.55, 63.36],
        [73.06, 73.88, 70.22],
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
                "trainer.precision=64-true",
                "trainer.enable_progress_bar=false",
                "logger=none",
                f"paths.output_dir={tmp_path}",
                *override.split(),
            ]
        )
    )
    assert results["num_threads"] == 1
    assert results["eval_rows"]["rows"] == PINNED[(algo, data, override)]

"""CUDA graphs change how the La-MAML glance is launched, not what it computes (GPU only)."""

from __future__ import annotations

import pytest

from lamaml_pl.run import train, train_population
from tests.conftest import compose_config, requires_cuda

GPU_RUN = [
    "data.n_tasks=3",
    "data.samples_per_task=100",
    "data.download=false",
    "trainer=gpu",
    "trainer.enable_progress_bar=false",
    "logger=none",
]


@requires_cuda
@pytest.mark.parametrize("algo", ["lamaml", "sync", "cmaml"])
def test_single_run_graph_equals_eager_kernels(algo, tiny_mnist_root, tmp_path):
    runs = [
        train(
            compose_config(
                [
                    f"algo={algo}",
                    f"data.root={tiny_mnist_root}",
                    *GPU_RUN,
                    f"algo.cuda_graph={graph}",
                    f"paths.output_dir={tmp_path / str(graph)}",
                ]
            )
        )
        for graph in (True, False)
    ]
    assert runs[0]["eval_rows"] == runs[1]["eval_rows"]
    assert runs[0]["device"].startswith("cuda")


@requires_cuda
def test_population_graph_equals_eager_kernels(tiny_mnist_root, tmp_path):
    grid = ["population.seed=[0,1]", "population.alpha_init=[0.03,0.1]"]
    runs = [
        train_population(
            compose_config(
                [
                    f"data.root={tiny_mnist_root}",
                    *GPU_RUN,
                    *grid,
                    f"algo.cuda_graph={graph}",
                    f"paths.output_dir={tmp_path / str(graph)}",
                ]
            )
        )
        for graph in (True, False)
    ]
    for graphed, eager in zip(*runs):
        assert graphed["eval_rows"] == eager["eval_rows"]

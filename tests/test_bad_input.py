"""Table of impossible settings: each ends in one ConfigError that names the value."""

import pytest
from hydra.utils import instantiate

from lamaml_pl.errors import ConfigError, config_error_in
from tests.conftest import compose_config

CASES = [
    (["data.n_tasks=21"], "data.n_tasks=21 is larger than the mnist_rot benchmark, which has 20 tasks"),
    (["data=mnist_many", "data.n_tasks=101"], "data.n_tasks=101 is larger than the mnist_many benchmark"),
    (["data.n_tasks=0"], "data.n_tasks=0 is not allowed"),
    (["data.batch_size=0"], "data.batch_size=0 is not allowed"),
    (["data.batch_size=-3"], "data.batch_size=-3 is not allowed"),
    (["data.eval_batch_size=0"], "data.eval_batch_size=0 is not allowed"),
    (["data.epochs_per_task=0"], "data.epochs_per_task=0 is not allowed"),
    (["data.samples_per_task=0"], "data.samples_per_task=0 is not allowed"),
    (["data.samples_per_task=301"], "data.samples_per_task=301 exceeds the 300 training digits"),
    (["data.transform=flip"], "data.transform='flip' is unknown: use one of rotation, permutation"),
    (["data.shuffle=sorted"], "data.shuffle='sorted' is unknown: use one of global, seeded"),
    (["model.hidden_sizes=null"], "model.hidden_sizes=None is not allowed: use a list of positive integers"),
    (["model.hidden_sizes=[100,0]"], "model.hidden_sizes=[100, 0] is not allowed: use a list of positive integers"),
    (["data.task_seed=null"], "data.task_seed=None is not allowed: it must be >= 0"),
    (["model.init=orthogonal"], "model.init='orthogonal' is unknown: use one of kaiming_normal, xavier_uniform"),
    (["algo.memories=0"], "algo.memories=0 is not allowed"),
    (["algo.glances=0"], "algo.glances=0 is not allowed"),
    (["algo.alpha_init=-0.1"], "algo.alpha_init=-0.1 is not allowed"),
    (["algo.opt_lr=0"], "algo.opt_lr=0 is not allowed"),
    (["algo.replay_batch_size=0"], "algo.replay_batch_size=0 is not allowed"),
    (["algo.replay_batch_size=300"], "algo.replay_batch_size=300 is larger than algo.memories=200: use at most 200"),
    (["algo=er", "algo.memories=5"], "algo.replay_batch_size=10 is larger than algo.memories=5"),
    (["algo.grad_clip_norm=0"], "algo.grad_clip_norm=0 is not allowed"),
    (["algo.memory_snapshot=deep"], "algo.memory_snapshot='deep' is unknown: use one of alias, copy"),
    (["algo=mer", "algo.beta=2.0"], "algo.beta=2.0 is not allowed: Reptile rates must lie in (0, 1]"),
    (["algo=mer", "algo.batches_per_example=0"], "algo.batches_per_example=0 is not allowed"),
    (["algo=ewc", "algo.memory_strength=-1"], "algo.memory_strength=-1 is not allowed: it must be >= 0"),
    (["algo=gem", "algo.qp_eps=-0.1"], "algo.qp_eps=-0.1 is not allowed: it must be >= 0"),
    (["algo=derpp", "algo.alpha=-0.5"], "algo.alpha=-0.5 is not allowed: it must be >= 0"),
    (["algo=gem", "algo.n_memories=0"], "algo.n_memories=0 is not allowed"),
    (["algo=online", "algo.lr=0"], "algo.lr=0 is not allowed"),
    (["algo=er_ace", "algo.fast_mlp=true"], "algo.fast_mlp=true: er_ace's glance has no hand-written gradients"),
]


@pytest.mark.parametrize("overrides, message", CASES, ids=[" ".join(o) for o, _ in CASES])
def test_bad_input_names_the_value(overrides, message, tiny_mnist_root):
    cfg = compose_config(
        [f"data.root={tiny_mnist_root}", "data.download=false", "data.samples_per_task=20", *overrides]
    )
    with pytest.raises(Exception) as caught:
        datamodule = instantiate(cfg.data)
        instantiate(cfg.algo, net=instantiate(cfg.model), stream=datamodule.info)
    error = config_error_in(caught.value)
    assert isinstance(error, ConfigError), caught.value
    assert message in str(error)


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="this machine has a GPU")
def test_gpu_asked_for_without_one(tiny_mnist_root, tmp_path):
    from lamaml_pl.run import train

    cfg = compose_config(
        [f"data.root={tiny_mnist_root}", "data.download=false", "trainer=gpu", f"paths.output_dir={tmp_path}"]
    )
    with pytest.raises(ConfigError, match="trainer.accelerator='gpu' but this machine has no CUDA device"):
        train(cfg)


RUN_CASES = [
    (["seed=-1"], "seed=-1 is not allowed: use an integer >= 0"),
    (["trainer.accelerator=tpux"], "trainer.accelerator='tpux' is unknown: use one of auto, cpu, gpu, cuda, mps"),
    (["trainer.precision=8"], "trainer.precision=8 is unknown: use one of 32-true"),
    (["resume=0"], "resume=0 is not allowed: use auto, a run folder or a .ckpt file"),
    (["trainer.num_threads=0"], "trainer.num_threads=0 is not allowed: use an integer >= 1, or null"),
    (["trainer.num_threads=two"], "trainer.num_threads='two' is not allowed"),
    (["trainer.tf32=fast"], "trainer.tf32='fast' is not allowed: use true"),
    (["trainer.batches_per_step=0"], "trainer.batches_per_step=0 is not allowed: use an integer >= 1"),
    (["trainer.batches_per_step=all"], "trainer.batches_per_step='all' is not allowed: use an integer >= 1"),
    (["trainer.accelerator=cpu", "trainer.devices=3"], "trainer.devices=3: a run trains on one device"),
    (["trainer.accelerator=cpu", "trainer.devices=[0,1]"], "trainer.devices=[0, 1]: a run trains on one device"),
]


@pytest.mark.parametrize("overrides, message", RUN_CASES, ids=[" ".join(o) for o, _ in RUN_CASES])
def test_bad_run_settings_stop_before_anything_is_written(overrides, message, tiny_mnist_root, tmp_path):
    from lamaml_pl.run import train

    out = tmp_path / "run"
    cfg = compose_config([f"data.root={tiny_mnist_root}", "data.download=false", f"paths.output_dir={out}", *overrides])
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        train(cfg)
    assert not out.exists()

"""The real config tree: every algo x data composes and instantiates, presets apply, bad names fail."""

import subprocess
import sys

import pytest
import wandb
from hydra.utils import instantiate
from omegaconf import OmegaConf

from tests.conftest import ALGOS, CONF_DIR, DATASETS, DOMAIN_IL_ALGOS, ROOT, algo_class, compose_config

PAPER = {  # the paper's MNIST runs: (memories, glances, alpha_init, opt_lr, opt_wt, learn_lr, sync)
    ("cmaml", "mnist_rot"): (200, 5, 0.1, 0.1, 0.1, False, True),
    ("sync", "mnist_rot"): (200, 5, 0.15, 0.1, 0.3, True, True),
    ("lamaml", "mnist_rot"): (200, 5, 0.15, 0.3, 0.1, True, False),
    ("cmaml", "mnist_perm"): (200, 5, 0.03, 0.1, 0.1, False, True),
    ("sync", "mnist_perm"): (200, 5, 0.15, 0.1, 0.1, True, True),
    ("lamaml", "mnist_perm"): (200, 5, 0.15, 0.3, 0.1, True, False),
    ("cmaml", "mnist_many"): (500, 5, 0.03, 0.1, 0.15, False, True),
    ("sync", "mnist_many"): (500, 10, 0.03, 0.1, 0.03, True, True),
    ("lamaml", "mnist_many"): (500, 10, 0.1, 0.1, 0.1, True, False),
}


# MER's published MNIST runs, batch size 1, Xavier-uniform init
MER_RUNS = {
    ("online", "mnist_rot"): dict(lr=0.0003),
    ("online", "mnist_many"): dict(lr=0.003),
    ("ewc", "mnist_rot"): dict(lr=0.001, memory_strength=100.0, n_memories=10),
    ("ewc", "mnist_perm"): dict(lr=0.01, memory_strength=10.0, n_memories=10),
    ("ewc", "mnist_many"): dict(lr=0.003, memory_strength=1.0, n_memories=10),
    ("gem", "mnist_perm"): dict(lr=0.01, n_memories=10, memory_strength=0.0, grad_clip_norm=None),
    ("gem", "mnist_many"): dict(lr=0.003, n_memories=5, memory_strength=0.1),
    ("mer", "mnist_rot"): dict(lr=0.1, beta=0.01, gamma=1.0, memories=200, replay_batch_size=10, batches_per_example=5),
    ("mer", "mnist_perm"): dict(lr=0.03, beta=0.03, memories=200, replay_batch_size=10, batches_per_example=10),
    ("mer", "mnist_many"): dict(lr=0.03, beta=0.03, memories=500, replay_batch_size=5, batches_per_example=10),
}
MER_PROTOCOL = {algo for algo, _ in MER_RUNS} | {"agem"}  # A-GEM: GEM's MNIST settings


def instantiate_run(algo, data, root):
    cfg = compose_config(
        [f"algo={algo}", f"data={data}", f"data.root={root}", "data.download=false", "data.samples_per_task=10"]
    )
    datamodule = instantiate(cfg.data)
    learner = instantiate(cfg.algo, net=instantiate(cfg.model), stream=datamodule.info)
    assert learner.algo_name == algo
    assert datamodule.n_tasks == {"mnist_rot": 20, "mnist_perm": 20, "mnist_many": 100}[data]
    assert sum(p.numel() for p in learner.net.parameters()) == 89_610
    return cfg, learner


@pytest.mark.parametrize("algo, data", sorted(PAPER))
def test_lamaml_family_composes_with_the_papers_settings(algo, data, tiny_mnist_root):
    cfg, learner = instantiate_run(algo, data, tiny_mnist_root)
    a = cfg.algo
    assert (a.memories, a.glances, a.alpha_init, a.opt_lr, a.opt_wt, a.learn_lr, a.sync_update) == PAPER[algo, data]
    assert (a.replay_batch_size, a.grad_clip_norm, a.second_order, cfg.data.batch_size) == (10, 2.0, False, 10)
    assert cfg.model.init == "kaiming_normal" and learner.memory.capacity == a.memories


@pytest.mark.parametrize("data", DATASETS)
@pytest.mark.parametrize("algo", [a for a in DOMAIN_IL_ALGOS if (a, "mnist_rot") not in PAPER])
def test_every_baseline_composes_with_its_settings(algo, data, tiny_mnist_root):
    cfg, learner = instantiate_run(algo, data, tiny_mnist_root)
    for key, value in MER_RUNS.get((algo, data), {}).items():
        assert cfg.algo[key] == value, key
    mer_protocol = algo in MER_PROTOCOL  # the others (no published MNIST runs): La-MAML's footing
    assert cfg.data.joint == (algo == "iid")
    assert cfg.data.batch_size == (1 if mer_protocol else 10)
    assert cfg.model.init == ("xavier_uniform" if mer_protocol else "kaiming_normal")


def test_default_composition_is_lamaml_on_rotations():
    cfg = compose_config([])
    assert (cfg.algo.name, cfg.data.name, cfg.seed) == ("lamaml", "mnist_rot", 0)
    assert cfg.trainer.accelerator == "auto"


def test_a_paper_cell_is_its_algo_data_and_pass_and_overrides_still_win():
    cfg = compose_config(["algo=sync", "data=mnist_many"])
    assert (cfg.algo.name, cfg.data.name, cfg.algo.glances) == ("sync", "mnist_many", 10)
    cfg = compose_config(["algo=sync", "data=mnist_many", "algo.glances=3", "seed=4"])
    assert (cfg.algo.glances, cfg.seed, cfg.data.seed) == (3, 4, 4)
    cfg = compose_config(["algo=lamaml", "data=cifar100", "pass=multi"])
    assert (cfg.algo.inner_chunks, cfg.algo.second_order, cfg.data.epochs_per_task) == (5, True, 10)


def run_cli(*overrides):
    return subprocess.run(
        [sys.executable, "train.py", *overrides], cwd=ROOT, capture_output=True, text=True, timeout=300
    )


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["algo=lamamll"], "algo=lamamll is unknown (did you mean algo=lamaml?): use one of agem, cmaml, derpp"),
        (["data=mnist_rotation"], "data=mnist_rotation is unknown (did you mean data=mnist_rot?): use one of"),
        (["algo.alpha=0.1"], "algo.alpha is not a setting of algo=lamaml: did you mean algo.alpha_init?"),
        (["+algo.alpha=0.1"], "algo.alpha is not a setting of algo=lamaml: did you mean algo.alpha_init? (+ adds"),
        (["data.ntasks=3"], "data.ntasks is not a setting of data=mnist_rot: did you mean data.n_tasks?"),
        (["algo=er", "algo.alpha_init=0.1"], "algo.alpha_init is not a setting of algo=er: the keys there are"),
        (["trainer.num_thread=2"], "trainer.num_thread is not a setting: did you mean trainer.num_threads?"),
    ],
)
def test_a_misspelt_name_is_one_line_with_what_was_meant(overrides, message, tmp_path):
    result = run_cli(*overrides, f"hydra.run.dir={tmp_path / 'run'}")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {message}"), result.stderr
    assert not (tmp_path / "run").exists()


def test_a_key_that_hydra_fills_in_at_run_time_may_be_set(tmp_path):
    from lamaml_pl.command_line import check_keys
    from lamaml_pl.errors import ConfigError

    check_keys([f"paths.output_dir={tmp_path}", "data.n_tasks=2"])  # ${hydra:runtime.output_dir} by default
    with pytest.raises(ConfigError, match="did you mean paths.output_dir"):
        check_keys([f"paths.output_dr={tmp_path}"])


@pytest.mark.parametrize(
    "override, message",
    [
        ("data.n_tasks=25", "data.n_tasks=25 is larger than the mnist_rot benchmark, which has 20 tasks"),
        ("algo.memories=0", "algo.memories=0 is not allowed: it must be a positive number"),
        ("seed=-1", "seed=-1 is not allowed: use an integer >= 0"),
        ("trainer.devices=3", "trainer.devices=3: a run trains on one device"),
    ],
)
def test_impossible_values_end_with_one_clear_message(override, message, tiny_mnist_root, tmp_path):
    result = run_cli(
        override,
        f"data.root={tiny_mnist_root}",
        "data.download=false",
        "data.samples_per_task=10",
        f"hydra.run.dir={tmp_path / 'run'}",
    )
    assert result.returncode == 2
    assert f"error: {message}" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "run").exists()  # a refused run leaves no folder (nor a failed results.json)


@pytest.mark.parametrize(
    "logger, expected",
    [("csv", "AppendingCSVLogger"), ("tensorboard", "TensorBoardLogger"), ("wandb", "WandbLogger"), ("none", None)],
)
def test_logger_group(logger, expected, tmp_path, monkeypatch):
    from lamaml_pl.loggers import build_loggers

    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    loggers = build_loggers(compose_config([f"logger={logger}", f"paths.output_dir={tmp_path}"]))
    if expected is None:
        assert loggers is False
        return
    assert [type(lg).__name__ for lg in loggers] == [expected]
    if logger == "wandb":  # no API key: offline, to be synced later
        assert loggers[0]._offline is True
        loggers[0].experiment.finish()
        wandb.teardown()  # the next test's wandb session starts from its own environment


@pytest.mark.parametrize(
    "sweep, params",
    [
        ("paper_table", {"algo": "lamaml,cmaml,sync,online,ewc,gem,mer", "seed": "0,1,2,3,4"}),
        ("lr_robustness", {"algo.alpha_init": "0.001,0.003,0.01,0.03,0.1,0.3", "seed": "0,1,2"}),
    ],
)
def test_ready_made_sweeps(sweep, params):
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(config_name="train", overrides=[f"sweep={sweep}"], return_hydra_config=True)
    assert dict(cfg.hydra.sweeper.params) == params


def leaves(tree: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in tree.items():
        if key != "defaults":
            out.update(leaves(value, f"{prefix}{key}.") if isinstance(value, dict) else {f"{prefix}{key}": value})
    return out


def test_a_preset_holds_only_what_differs_from_the_algo_and_data_configs():
    """One place per value: a preset that restated a conf/algo/ value would keep a change there
    from reaching its benchmark."""
    restated = []
    for path in sorted((CONF_DIR / "preset").glob("*/*/*.yaml")):
        algo, benchmark, pass_ = path.parts[-3:-1] + (path.stem,)
        if benchmark == "conv":  # pointers at the CIFAR-100 presets
            continue
        plain = compose_config([f"algo={algo}", f"data={benchmark}", f"pass={pass_}", "presets_from=none"])
        for key, value in leaves(OmegaConf.to_container(OmegaConf.load(path))).items():
            if OmegaConf.select(plain, key) == value:
                restated.append(f"{path.relative_to(CONF_DIR)}: {key}={value}")
    assert not restated, "\n".join(restated)


def test_the_population_block_names_exactly_the_axes_the_algorithms_declare():
    """The axes are declared on each algorithm class; conf/train.yaml's population block is where a
    command line sets them, so it holds the seed and every declared axis, no other."""
    from lamaml_pl.population.grid import SEED_AXIS

    declared = {axis for algo in ALGOS for axis in algo_class(algo).population_axes}
    assert set(compose_config([]).population) == {SEED_AXIS, *declared}


@pytest.mark.parametrize("algo", ALGOS)
def test_every_algorithm_has_a_grid_it_can_tune(algo):
    """conf/tune/<algo>.yaml exists and each of its axes is one the algorithm's population may vary
    (a batched population's declared axes, else any of its settings), with two values or more."""
    from hydra.utils import get_class

    from lamaml_pl.population.grid import axes_of, batched, check_axes

    cfg = compose_config([f"algo={algo}"])
    grid = axes_of(cfg.tune.grid, "tune.grid")
    assert grid, f"conf/tune/{algo}.yaml is missing or empty"
    algo_type = get_class(cfg.algo._target_)
    check_axes(grid, algo_type, cfg.algo, one_by_one=not batched(algo_type, cfg), where="tune.grid")
    for axis, values in grid.items():
        assert values == sorted(values) and len(values) > 1, (axis, values)

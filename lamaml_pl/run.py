"""The one place that wires data, network, algorithm, trainer and loggers together.

A run trains one config, or a population: the product of the ``population.*`` axes, every member
built exactly as its single run would be (seed torch, build the data and the net and the learner,
its config checked as a single run's) and then joined into one learner with a member axis
(:meth:`~lamaml_pl.algos.base.ContinualLearner.join_members`). A member keeps the global RNG's
state at that point as its own generator, so its draws are its single run's. The end is the same
for both: one results.json per member (a population's under ``members/<index>_<values>/``, plus a
manifest), written when training ends, diverged or not. An algorithm without a batched population
mode (or on the joint IID stream) trains its population one member after another, into the
same folders and manifest.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytorch_lightning as pl
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, OmegaConf

from lamaml_pl.algos import ContinualLearner
from lamaml_pl.callbacks import TaskCheckpoint, TaskProgressBar, TaskSummary
from lamaml_pl.data.datamodule import TaskSequentialDataModule
from lamaml_pl.errors import ConfigError, DivergenceError
from lamaml_pl.loggers import build_loggers, publish_results
from lamaml_pl.outputs import (
    MEMBERS_DIR,
    POPULATION_MANIFEST,
    RESULTS_FILE,
    collect_results,
    format_population,
    format_summary,
    interrupted_line,
    write_atomically,
    write_outputs,
)
from lamaml_pl.population.datamodule import PopulationDataModule
from lamaml_pl.population.grid import (
    batched,
    check_axes,
    member_config,
    member_folder,
    member_settings,
    requested_axes,
)
from lamaml_pl.population.member_rng import MemberDraws, MemberRNG
from lamaml_pl.preemption import interrupt_behind, stop_on_sigusr1
from lamaml_pl.presets import job_preset
from lamaml_pl.quiet import quiet_third_party
from lamaml_pl.resume import AlreadyCompleted, prepare_resume
from lamaml_pl.run_lock import hold
from lamaml_pl.stream import StreamInfo

ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps")
PRECISIONS = ("32-true", "32", "64-true", "64", "16-mixed", "bf16-mixed", "16-true", "bf16-true")


def build_callbacks(cfg: DictConfig, population: bool) -> list[pl.Callback]:
    """Task checkpoints, the task progress bar (or, without it, a line per task) and the ``callbacks`` group
    (single runs: its callbacks read one net)."""
    callbacks: list[pl.Callback] = [TaskCheckpoint(OmegaConf.to_yaml(cfg))]
    callbacks.append(TaskProgressBar() if progress_bar(cfg.trainer) else TaskSummary())
    extra = cfg.get("callbacks") or {}
    if extra and population:
        raise ConfigError(f"callbacks={', '.join(extra)}: populations run without extra callbacks (use callbacks=none)")
    return callbacks + [instantiate(entry) for entry in extra.values()]


def describe_device(trainer: pl.Trainer) -> str:
    device = trainer.strategy.root_device
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return f"{device} ({os.cpu_count()} cores)"


def check_run_settings(cfg: DictConfig) -> None:
    """What a run needs of the top-level config and the trainer, before anything is built."""
    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing:  # a ??? in the YAML (data=imagefolder's data.root)
        raise ConfigError(f"{missing[0]} is required: give it on the command line, {missing[0]}=<value>")
    if not isinstance(cfg.seed, int) or cfg.seed < 0:
        raise ConfigError(f"seed={cfg.seed!r} is not allowed: use an integer >= 0")
    accelerator = cfg.trainer.accelerator
    if accelerator not in ACCELERATORS:
        raise ConfigError(f"trainer.accelerator={accelerator!r} is unknown: use one of {', '.join(ACCELERATORS)}")
    if str(cfg.trainer.precision) not in PRECISIONS:
        raise ConfigError(f"trainer.precision={cfg.trainer.precision!r} is unknown: use one of {', '.join(PRECISIONS)}")
    resume = cfg.get("resume")
    if resume is not None and (not isinstance(resume, str) or not resume):
        raise ConfigError(f"resume={resume!r} is not allowed: use auto, a run folder or a .ckpt file")
    if accelerator in ("gpu", "cuda") and not torch.cuda.is_available():
        raise ConfigError(
            f"trainer.accelerator={accelerator!r} but this machine has no CUDA device: "
            "use trainer=cpu or trainer.accelerator=auto"
        )
    threads = cfg.trainer.get("num_threads")
    if threads is not None and (not isinstance(threads, int) or isinstance(threads, bool) or threads < 1):
        raise ConfigError(
            f"trainer.num_threads={threads!r} is not allowed: use an integer >= 1, or null for torch's default "
            "(one thread per core)"
        )
    per_step = cfg.trainer.batches_per_step
    if not isinstance(per_step, int) or isinstance(per_step, bool) or per_step < 1:
        raise ConfigError(f"trainer.batches_per_step={per_step!r} is not allowed: use an integer >= 1")
    tf32 = cfg.trainer.get("tf32")
    if tf32 not in (None, True, False):
        raise ConfigError(
            f"trainer.tf32={tf32!r} is not allowed: use true (TF32 matmuls and convolutions), false (IEEE "
            "float32 for both) or null (torch's default: TF32 convolutions, IEEE matmuls)"
        )
    devices = cfg.trainer.get("devices", 1)
    if not (devices == 1 or (OmegaConf.is_list(devices) and len(devices) == 1)):
        raise ConfigError(
            f"trainer.devices={devices}: a run trains on one device (a task stream is sequential; data "
            "parallelism would split its batches). Use trainer.devices=1; spread a sweep's jobs over the GPUs "
            "(hydra/launcher=joblib: one GPU per job) or train a grid as one population"
        )


def set_threads(trainer: DictConfig) -> None:
    """torch's CPU threads for this process (each sweep job is its own process and sets its own):
    ``trainer.num_threads``, or torch's default (one per core) where it is null."""
    if trainer.get("num_threads") is not None:
        torch.set_num_threads(trainer.num_threads)


def set_float32_math(trainer: DictConfig) -> None:
    """How a GPU computes float32 matmuls and convolutions (``trainer.tf32``): TensorFloat-32 (10
    mantissa bits in the products, faster on Ampere and later) or IEEE; null keeps torch's default
    (TF32 convolutions, IEEE matmuls). The CPU computes IEEE float32 either way."""
    if trainer.get("tf32") is not None:
        mode = "tf32" if trainer.tf32 else "ieee"
        torch.backends.cuda.matmul.fp32_precision = mode
        torch.backends.cudnn.conv.fp32_precision = mode


def progress_bar(trainer: DictConfig) -> bool:
    """The bar on a terminal; where stderr is a file (a batch job's log), a line per task
    instead of a bar's carriage-return frames."""
    return bool(trainer.get("enable_progress_bar", True)) and sys.stderr.isatty()


def lightning_trainer(trainer: DictConfig) -> dict:
    """The ``trainer`` group, resolved, without its own keys, for ``pl.Trainer``."""
    settings = OmegaConf.to_container(trainer, resolve=True)
    for key in ("num_threads", "tf32", "batches_per_step"):  # set_threads, set_float32_math, the data's loader
        settings.pop(key, None)
    settings["enable_progress_bar"] = progress_bar(trainer)
    return settings


@dataclass
class Members:
    """What the run trains: every member's settings, config and data, and the learner."""

    settings: list[dict]
    configs: list[DictConfig]
    sources: list[TaskSequentialDataModule]
    learner: ContinualLearner
    datamodule: pl.LightningDataModule

    @property
    def population(self) -> bool:
        return bool(self.settings[0])


def build_learner(cfg: DictConfig, stream: StreamInfo) -> ContinualLearner:
    """The configured algorithm on the configured net, whose sizes left null in ``model`` are the
    data's (and those given must fit it: a net with spare outputs is allowed)."""
    net = instantiate(cfg.model, **net_sizes(cfg.model, stream))
    return instantiate(cfg.algo, net=net, stream=stream, _convert_="object")  # plain Python objects, not configs


def net_sizes(model: DictConfig, stream: StreamInfo) -> dict:
    shape = tuple(stream.input_shape)
    from_data = {"n_outputs": stream.n_classes, "n_inputs": math.prod(shape)}
    if len(shape) == 3:
        from_data.update(in_channels=shape[0], image_size=shape[-1])
    sizes = {}
    for key, value in from_data.items():
        if key not in model:
            continue
        if model[key] is None:
            sizes[key] = value
        elif model[key] < value if key == "n_outputs" else model[key] != value:  # spare outputs are harmless
            raise ConfigError(
                f"model.{key}={model[key]} does not fit the data, which need {value} "
                f"(inputs {'x'.join(map(str, shape))}, {stream.n_classes} classes): set it null to take the data's"
            )
    return sizes


def build_members(cfg: DictConfig) -> Members:
    """One learner for ``cfg``, or the population of its ``population.*`` axes."""
    axes = requested_axes(cfg)
    if not axes:
        pl.seed_everything(cfg.seed, workers=True)
        data = instantiate(cfg.data)
        learner = build_learner(cfg, data.info)
        return Members([{}], [cfg], [data], learner, data)
    check_axes(axes, get_class(cfg.algo._target_), cfg.algo)
    settings = member_settings(axes)
    configs, sources, learners, rngs = [], [], [], []
    by_seed: dict = {}  # the data depend only on the seed: one data module per seed
    for values in settings:
        member = member_config(cfg, values)
        pl.seed_everything(member.seed, workers=True, verbose=False)
        data = by_seed.get(member.seed) or instantiate(member.data)
        by_seed[member.seed] = data
        learners.append(build_learner(member, data.info))
        learners[-1].check_population()
        configs.append(member)
        sources.append(data)
        rngs.append(MemberRNG(torch.get_rng_state()))
    learner = learners[0]
    learner.join_members(learners, MemberDraws(rngs))
    return Members(settings, configs, sources, learner, PopulationDataModule(sources, rngs))


def train(cfg: DictConfig) -> dict:
    """Run one continual-learning stream; returns (and writes) the results."""
    return run(cfg)[0]


def train_population(cfg: DictConfig) -> list[dict]:
    """Run the population of ``cfg``'s ``population.*`` axes; returns every member's results."""
    return run(cfg)


def run(cfg: DictConfig) -> list[dict]:
    quiet_third_party()
    check_run_settings(cfg)
    preset = job_preset(cfg.algo.name)
    set_threads(cfg.trainer)
    set_float32_math(cfg.trainer)
    axes = requested_axes(cfg)
    if axes and not batched(get_class(cfg.algo._target_), cfg):
        return run_one_by_one(cfg, axes)
    out_dir = Path(cfg.paths.output_dir)
    cfg, checkpoint = prepare_resume(cfg, out_dir)  # a resumed run is the run in its folder
    with hold(out_dir):  # one writer per run folder
        return train_into(out_dir, cfg, checkpoint, preset)


def train_into(out_dir: Path, cfg: DictConfig, checkpoint: Path | None, preset: str | None = None) -> list[dict]:
    """Train ``cfg`` (from ``checkpoint`` when resuming) and write its outputs into ``out_dir``;
    ``preset``: the one its command applied (recorded)."""
    OmegaConf.save(cfg, out_dir / "config.yaml", resolve=True)
    print(opening_line(cfg, preset), flush=True)
    members = build_members(cfg)
    learner, datamodule = members.learner, members.datamodule
    for source in members.sources:  # (a population's loader takes its sources' window)
        source.batches_per_step = cfg.trainer.batches_per_step
    loggers = False if members.population else build_loggers(cfg)
    callbacks = build_callbacks(cfg, members.population)
    trainer = instantiate(
        lightning_trainer(cfg.trainer),
        max_epochs=datamodule.max_epochs,
        logger=loggers,
        callbacks=callbacks,
        default_root_dir=str(out_dir),
    )

    start = time.perf_counter()
    if checkpoint is None:  # the row before training (FWT's baseline); a resumed run has it already
        trainer.validate(learner, datamodule=datamodule, verbose=False)
    stopped = interrupted = None
    try:
        with stop_on_sigusr1(trainer):
            trainer.fit(learner, datamodule=datamodule, ckpt_path=checkpoint)
    except DivergenceError as err:  # no member left: keep the rows evaluated so far, then report it
        stopped = err
    except (KeyboardInterrupt, SystemExit) as err:  # Ctrl-C (Lightning exits 1), SIGTERM, SIGUSR1: rows so far, a hint
        interrupted = err
    except Exception as err:  # Lightning failing as it stops for an interrupt: the interrupt is what happened
        interrupted = interrupt_behind(err)
        if interrupted is None:
            raise
    wall_time = callbacks[0].earlier_wall_time + time.perf_counter() - start  # every segment of a resumed run

    device = describe_device(trainer)
    results = []
    for k, (member, data, log) in enumerate(zip(members.configs, members.sources, learner.accuracy_logs)):
        diverged = learner.diverged[k]
        member_results = collect_results(
            learner.algo_name,
            data.describe(),
            member.seed,
            log,
            wall_time,
            device,
            status="interrupted" if interrupted else "completed" if diverged is None else "diverged",
            val_log=None if learner.val_accuracy_logs is None else learner.val_accuracy_logs[k],
            task_il_log=None if learner.task_il_accuracy_logs is None else learner.task_il_accuracy_logs[k],
            class_il_loss=learner.class_il_loss,
        )
        if HydraConfig.initialized():  # the command's preset (a config composed through the API has no record)
            member_results["preset"] = preset
        if diverged is not None:
            member_results["error"] = diverged
        results.append(member_results)
    if members.population:
        write_population(out_dir, members, results, trainer)
    else:
        write_outputs(out_dir, results[0], learner.accuracy_log)
        publish_results(loggers, results[0], out_dir)
        print(format_summary(results[0], out_dir), flush=True)
    if interrupted:
        print(interrupted_line(out_dir), flush=True)
        # an exit of the job's own (submitit's requeue code on preemption) keeps its code; Ctrl-C and signals: 130
        own = type(interrupted) is SystemExit and interrupted.code not in (None, 0, 1)
        raise SystemExit(interrupted.code if own else 130)
    if stopped:
        raise stopped
    return results


def opening_line(cfg: DictConfig, preset: str | None) -> str:
    """What runs, said before it starts: the algorithm, the data, the seed, and the preset."""
    if not HydraConfig.initialized():
        values = "composed config"
    else:
        values = f"preset {preset}" if preset else f"no preset: conf/algo/{cfg.algo.name}.yaml's values"
    return f"{cfg.algo.name} on {cfg.data.name}, seed {cfg.seed} ({values})"


def run_one_by_one(cfg: DictConfig, axes: dict[str, list]) -> list[dict]:
    """The members of an algorithm without a batched population mode (or of the joint IID stream),
    trained one after another: each an ordinary single run in its member folder, then the
    population's manifest. With ``resume=auto`` a member that completed is read back, not trained
    again."""
    check_axes(axes, get_class(cfg.algo._target_), cfg.algo, one_by_one=True)
    out_dir = Path(cfg.paths.output_dir)
    settings, results, folders = member_settings(axes), [], []
    start = time.perf_counter()
    for k, values in enumerate(settings):
        member = member_config(cfg, values)
        folder = out_dir / MEMBERS_DIR / member_folder(k, values)
        member.paths.output_dir = str(folder)
        try:
            results.append(run(member)[0])
        except AlreadyCompleted as done:  # resume=auto: kept as it is
            results.append(done.results)
        except DivergenceError:  # its results.json says so; the other seeds still train
            results.append(json.loads((folder / RESULTS_FILE).read_text()))
        folders.append(folder)
    write_manifest(out_dir, cfg.algo.name, settings, folders, results, time.perf_counter() - start)
    return results


def write_population(out_dir: Path, members: Members, results: list[dict], trainer: pl.Trainer) -> None:
    """Every member's ordinary run folder (``members/<index>_<values>/``) and the manifest."""
    folders = []
    for k, (values, member, member_results) in enumerate(zip(members.settings, members.configs, results)):
        folder = out_dir / MEMBERS_DIR / member_folder(k, values)
        member_results["population"] = {
            "members": len(results),
            "member": k,
            "values": values,
            "wall_time_s": "of the whole population",
        }
        folder.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(member, folder / "config.yaml", resolve=True)
        log = members.learner.accuracy_logs[k]
        write_outputs(folder, member_results, log, plots=False)  # 0.2 s of matplotlib per member: see the report
        folders.append(folder)
    peak_gpu = torch.cuda.max_memory_allocated() if trainer.strategy.root_device.type == "cuda" else None
    write_manifest(
        out_dir, members.learner.algo_name, members.settings, folders, results, results[0]["wall_time_s"], peak_gpu
    )


def write_manifest(
    out_dir: Path,
    algo: str,
    settings: list[dict],
    folders: list[Path],
    results: list[dict],
    wall_time: float,
    peak_gpu: int | None = None,
) -> None:
    """The population's ``population.json``: every member's folder, values, status and metrics."""
    manifest = [
        {
            "folder": str(folder.relative_to(out_dir)),
            "values": values,
            "status": member_results["status"],
            **{key: member_results[key] for key in ("ra", "bti", "la", "fwt")},
        }
        for values, folder, member_results in zip(settings, folders, results)
    ]
    summary = {
        "algo": algo,
        "data": results[0]["data"],
        "members": manifest,
        "wall_time_s": wall_time,
        "device": results[0]["device"],
        "peak_rss_mb": max(r["peak_rss_mb"] for r in results),
    }
    if peak_gpu is not None:
        summary["peak_gpu_mb"] = round(peak_gpu / 2**20, 1)
    write_atomically(out_dir / POPULATION_MANIFEST, json.dumps(summary, indent=2) + "\n")
    print(format_population(summary, out_dir), flush=True)

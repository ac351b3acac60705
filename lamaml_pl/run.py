"""The one place that wires data, network, algorithm, trainer and loggers together."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from lamaml_pl.callbacks import TaskCheckpoint, TaskProgressBar
from lamaml_pl.callbacks.task_checkpoint import CHECKPOINT_DIR, LAST
from lamaml_pl.errors import ConfigError, DivergenceError
from lamaml_pl.loggers import build_loggers, publish_results
from lamaml_pl.outputs import collect_results, format_summary, write_outputs


def build_callbacks(cfg: DictConfig) -> list[pl.Callback]:
    """Task checkpoints, the task progress bar (unless disabled) and the ``callbacks`` group."""
    callbacks: list[pl.Callback] = [TaskCheckpoint()]
    if cfg.trainer.get("enable_progress_bar", True):
        callbacks.append(TaskProgressBar())
    return callbacks + [instantiate(entry) for entry in (cfg.get("callbacks") or {}).values()]


def describe_device(trainer: pl.Trainer) -> str:
    device = trainer.strategy.root_device
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return f"{device} ({os.cpu_count()} cores)"


def check_accelerator(accelerator: str) -> None:
    if accelerator in ("gpu", "cuda") and not torch.cuda.is_available():
        raise ConfigError(
            f"trainer.accelerator={accelerator!r} but this machine has no CUDA device: "
            "use trainer=cpu or trainer.accelerator=auto"
        )


def resume_checkpoint(resume: str | None, out_dir: Path) -> Path | None:
    """``resume``: null (fresh run), ``auto`` (this output folder's checkpoint if there is one),
    a run folder, or a .ckpt file."""
    if resume is None:
        return None
    if resume == "auto":
        found = out_dir / CHECKPOINT_DIR / LAST
        return found if found.is_file() else None
    path = Path(resume)
    if path.is_dir():
        path = path / CHECKPOINT_DIR / LAST
    if not path.is_file():
        raise ConfigError(f"resume={resume!r}: no checkpoint at {path} (use a run folder, a .ckpt file or auto)")
    return path


def train(cfg: DictConfig) -> dict:
    """Run one continual-learning stream; returns (and writes) the results."""
    check_accelerator(cfg.trainer.accelerator)
    out_dir = Path(cfg.paths.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(cfg, out_dir / "config.yaml", resolve=True)
    pl.seed_everything(cfg.seed, workers=True)

    datamodule = instantiate(cfg.data)
    net = instantiate(cfg.model)
    algo = instantiate(cfg.algo, net=net, stream=datamodule.info)
    loggers = build_loggers(cfg)
    trainer = instantiate(
        cfg.trainer,
        max_epochs=datamodule.max_epochs,
        logger=loggers,
        callbacks=build_callbacks(cfg),
        default_root_dir=str(out_dir),
    )

    checkpoint = resume_checkpoint(cfg.get("resume"), out_dir)
    start = time.perf_counter()
    if checkpoint is None:  # the row before training (FWT's baseline); a resumed run has it already
        trainer.validate(algo, datamodule=datamodule, verbose=False)
    diverged = None
    try:
        trainer.fit(algo, datamodule=datamodule, ckpt_path=checkpoint)
    except DivergenceError as err:  # keep the rows evaluated so far, then report the divergence
        diverged = err
    wall_time = time.perf_counter() - start

    results = collect_results(
        algo.algo_name,
        datamodule.describe(),
        cfg.seed,
        algo.accuracy_log,
        wall_time,
        describe_device(trainer),
        status="diverged" if diverged else "completed",
        val_log=algo.val_accuracy_log,
    )
    if diverged:
        results["error"] = str(diverged)
    write_outputs(out_dir, results, algo.accuracy_log)
    publish_results(loggers, results, out_dir)
    print(format_summary(results, out_dir), flush=True)
    if diverged:
        raise diverged
    return results

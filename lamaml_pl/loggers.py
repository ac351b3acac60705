"""Experiment loggers: built from the ``logger`` config group, and given the final results.

Every logger receives the whole composed config as hyperparameters. Weights & Biases also gets
the final accuracy matrix as a table, the run's plots and the four metrics in its summary; it
runs offline when no WANDB_API_KEY is set (sync later with ``wandb sync``), and the jobs of one
Hydra sweep share a wandb group named after the sweep folder.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytorch_lightning as pl
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.loggers import CSVLogger, WandbLogger
from pytorch_lightning.loggers.csv_logs import ExperimentWriter

from lamaml_pl.outputs import CURVES_FILE, HEATMAP_FILE


class AppendingWriter(ExperimentWriter):
    """Lightning's CSV writer, continuing a metrics.csv that is there (a resumed run) instead of deleting it."""

    def _check_log_dir_exists(self) -> None:
        if self._fs.isfile(self.metrics_file_path):
            with self._fs.open(self.metrics_file_path, "r", newline="") as file:
                self.metrics_keys = sorted(next(csv.reader(file), []))


class AppendingCSVLogger(CSVLogger):
    """``logger=csv``: ``csv/metrics.csv`` in the run folder, appended to by every segment of a resumed run."""

    @property
    def experiment(self) -> AppendingWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = AppendingWriter(log_dir=self.log_dir)
        return self._experiment


def sweep_group() -> str | None:
    """The wandb group of a multirun job (the sweep folder's name); None for single runs."""
    if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
        return Path(HydraConfig.get().sweep.dir).name
    return None


def build_loggers(cfg: DictConfig) -> list[pl.loggers.Logger] | bool:
    """Every entry of the ``logger`` group with a ``_target_`` (logger=none -> no logger)."""
    logger_cfg = cfg.get("logger")
    if not logger_cfg:
        return False
    loggers = []
    for entry in logger_cfg.values():
        if not entry or "_target_" not in entry:
            continue
        extra = {}
        if entry._target_.endswith("WandbLogger") and entry.get("group") is None:
            extra["group"] = sweep_group()
        loggers.append(instantiate(entry, **extra))
    for logger in loggers:
        logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
    return loggers


def publish_results(loggers: list[pl.loggers.Logger] | bool, results: dict, out_dir: Path) -> None:
    """Hand the finished run to the loggers that can show more than scalars."""
    for logger in loggers or []:
        if not isinstance(logger, WandbLogger):
            continue
        matrix = results["acc_matrix"]
        logger.log_table(
            key="accuracy_matrix",
            columns=["after_task"] + [f"task_{j}" for j in range(len(matrix[0]))],
            data=[[i] + row for i, row in enumerate(matrix)],
        )
        logger.log_image(key="plots", images=[str(out_dir / HEATMAP_FILE), str(out_dir / CURVES_FILE)])
        logger.experiment.summary.update({k: results[k] for k in ("ra", "bti", "la", "fwt")})
        logger.experiment.finish()  # the next job of an in-process sweep starts a new wandb run

"""Continuing a run from its last task checkpoint, with the run's own config and nothing else.

A resumed run is the run it continues: its config is the one its checkpoint recorded, an
override that would change it is refused (naming the key), a run that completed is not trained
again, and a file that is not a checkpoint of this algorithm and code version is refused before
anything is written.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from lamaml_pl import __version__
from lamaml_pl.callbacks.task_checkpoint import CHECKPOINT_DIR, LAST, RUN_RECORD
from lamaml_pl.errors import ConfigError
from lamaml_pl.outputs import POPULATION_MANIFEST, RESULTS_FILE

# keys a resumed run may set anew: where it writes and what it prints or logs, not what it computes
OUTPUT_KEYS = ("resume", "paths", "logger", "callbacks", "trainer.enable_progress_bar")


class ResumeError(ConfigError):
    """A resume that would continue another run, or one already finished; the run folder is left as it is."""


class AlreadyCompleted(ResumeError):
    """The run being resumed has its results; a sweep skips such a job."""

    def __init__(self, folder: Path, results: dict):
        super().__init__(
            f"resume: the run in {folder} already completed (RA {results.get('ra', 'per member')}); "
            "start a new run instead (no resume=, or another hydra.run.dir)"
        )
        self.results = results


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
        raise ResumeError(f"resume={resume!r}: no checkpoint at {path} (use a run folder, a .ckpt file or auto)")
    return path


def prepare_resume(cfg: DictConfig, out_dir: Path) -> tuple[DictConfig, Path | None]:
    """The config to run and the checkpoint to continue from (None: a fresh run, ``cfg`` itself).
    A resumed run's config is the one its checkpoint recorded, with this command's output keys."""
    if cfg.get("resume") == "auto":
        check_not_completed(out_dir)
    checkpoint = resume_checkpoint(cfg.get("resume"), out_dir)
    if checkpoint is None:
        return cfg, None
    check_not_completed(checkpoint.parent.parent if checkpoint.parent.name == CHECKPOINT_DIR else checkpoint.parent)
    record = checkpoint_record(checkpoint, cfg.resume)
    if record["version"] != __version__:
        raise ResumeError(
            f"resume={cfg.resume!r}: {checkpoint} was written by lamaml_pl {record['version']}, this is "
            f"{__version__}: resume it with the version that wrote it, or start a new run"
        )
    saved = OmegaConf.create(record["config"])
    check_unchanged(cfg, saved, checkpoint)
    for key in OUTPUT_KEYS:  # where this command writes, prints and logs
        OmegaConf.update(saved, key, OmegaConf.select(cfg, key), merge=False, force_add=True)
    return saved, checkpoint


def check_not_completed(folder: Path) -> None:
    """A run's results.json, or a population's manifest, saying every member completed."""
    for name in (RESULTS_FILE, POPULATION_MANIFEST):
        try:
            results = json.loads((folder / name).read_text())
        except (OSError, ValueError):
            continue  # absent or unreadable: the checkpoint decides
        statuses = [m.get("status") for m in results.get("members", [results])]
        if statuses and all(status == "completed" for status in statuses):
            raise AlreadyCompleted(folder, results)


def checkpoint_record(checkpoint: Path, resume: str) -> dict:
    """What the run that wrote ``checkpoint`` recorded of itself (algorithm, version, time so far)."""
    try:
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    except Exception as err:
        raise ResumeError(
            f"resume={resume!r}: {checkpoint} is not a checkpoint of this project ({type(err).__name__}: "
            f"{' '.join(str(err).split())[:200]})"
        ) from err
    if not isinstance(state, dict) or RUN_RECORD not in state:
        raise ResumeError(f"resume={resume!r}: {checkpoint} is not a task checkpoint of lamaml_pl")
    return state[RUN_RECORD]


def check_unchanged(cfg: DictConfig, saved: DictConfig, checkpoint: Path) -> None:
    """Refuse a setting that differs from the run's: the keys given on the command line (all keys
    when the config did not come from a command line)."""
    overrides = HydraConfig.get().overrides.task if HydraConfig.initialized() else None
    keys = {o.split("=", 1)[0].lstrip("+~") for o in overrides} if overrides is not None else set(cfg.keys())
    # single values first: seed=7 is named as itself, not as the data.seed that follows it
    for key in sorted(keys, key=lambda k: (OmegaConf.is_config(OmegaConf.select(cfg, k)), k)):
        if key.startswith("hydra") or any(key == k or key.startswith(f"{k}.") for k in OUTPUT_KEYS):
            continue
        ours, theirs = plain(OmegaConf.select(cfg, key)), plain(OmegaConf.select(saved, key))
        if ours == theirs:
            continue
        if key.split(".")[0] == "algo" and cfg.algo.name != saved.algo.name:
            raise ResumeError(
                f"resume: {checkpoint} was written by algo={saved.algo.name}; this run is algo={cfg.algo.name}. "
                "A resumed run keeps its algorithm: drop the override, or start a new run"
            )
        changed = key if not isinstance(ours, dict) else f"{key}.{first_difference(ours, theirs)}"
        raise ResumeError(
            f"resume: {changed}={plain(OmegaConf.select(cfg, changed))!r} differs from the run being "
            f"resumed ({changed}={plain(OmegaConf.select(saved, changed))!r}, recorded in {checkpoint}). A resumed "
            "run keeps its config: drop the override, or start a new run"
        )


def plain(node):
    return OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node


def first_difference(ours: dict, theirs) -> str:
    if not isinstance(theirs, dict):
        return next(iter(ours))
    for key in sorted(set(ours) | set(theirs)):
        if ours.get(key) != theirs.get(key):
            below = ours.get(key)
            return f"{key}.{first_difference(below, theirs.get(key))}" if isinstance(below, dict) else key
    return next(iter(ours))

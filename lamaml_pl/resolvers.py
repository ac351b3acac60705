"""OmegaConf resolvers used by the config tree (registered when lamaml_pl.run is imported)."""

from __future__ import annotations

import os

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import OmegaConf

from lamaml_pl.paths import CONF_DIR, PROJECT_ROOT, project_path


def devices_for_job(accelerator: str, n_gpus: int, job_num: int | None) -> int | list[int]:
    """One GPU per sweep job, round robin, when a sweep sees several GPUs; else 1 device.

    With the joblib launcher, job k of a sweep on a machine with n GPUs trains on GPU k mod n.
    """
    if accelerator in ("auto", "gpu", "cuda") and n_gpus > 1 and job_num is not None:
        return [job_num % n_gpus]
    return 1


def _job_devices(accelerator: str) -> int | list[int]:
    import torch  # here, not at import: --help and the command-line checks need no torch

    multirun = HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN
    job_num = HydraConfig.get().job.num if multirun else None
    return devices_for_job(accelerator, torch.cuda.device_count(), job_num)


def group_choices() -> str:
    """``--help``'s list of the groups a user picks from, and their options (the presets, which
    apply themselves, and Hydra's own groups left out)."""
    lines = []
    for group in sorted(p for p in CONF_DIR.iterdir() if p.is_dir() and p.name not in ("preset", "hydra", "paths")):
        lines.append(f"{group.name}: {', '.join(sorted(p.stem for p in group.glob('*.yaml')))}")
    return "\n".join(lines)


OmegaConf.register_new_resolver("group_choices", group_choices, replace=True)


def same_folder(path: str, other: str) -> bool:
    """Whether two configured paths (relative ones from the project root) name one folder."""
    return project_path(path) == project_path(other)


OmegaConf.register_new_resolver("same_folder", same_folder, replace=True)
OmegaConf.register_new_resolver("project_root", lambda: str(PROJECT_ROOT), replace=True)
OmegaConf.register_new_resolver("no_wandb_key", lambda: not os.environ.get("WANDB_API_KEY"), replace=True)
OmegaConf.register_new_resolver("job_devices", _job_devices, replace=True)

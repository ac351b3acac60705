"""A run that ran out of GPU memory or of a writable folder, said as one line with what to change."""

from __future__ import annotations

import errno
import math

import torch
from omegaconf import DictConfig

from lamaml_pl.errors import ConfigError
from lamaml_pl.population.grid import requested_axes

WRITE_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOTDIR}


def resource_error(err: BaseException, cfg: DictConfig) -> ConfigError | None:
    """The one-line error for ``err`` when it is a resource the user can change, else None."""
    if isinstance(err, torch.cuda.OutOfMemoryError):
        members = math.prod(len(values) for values in requested_axes(cfg).values())
        first = str(err).split(".")[0]
        return ConfigError(
            f"out of GPU memory ({first}) training {members} member{'s' * (members != 1)} with "
            f"data.batch_size={cfg.data.batch_size}, data.eval_batch_size={cfg.data.eval_batch_size}: lower "
            "data.eval_batch_size (evaluation), the population's size (population.*: split it into several runs) "
            "or data.batch_size"
        )
    if isinstance(err, OSError) and err.errno in WRITE_ERRORS:
        return ConfigError(
            f"cannot write {err.filename or 'the output folder'}: {err.strerror}. Free space or write elsewhere "
            "(hydra.run.dir=<folder>, hydra.sweep.dir=<folder> for -m)"
        )
    return None

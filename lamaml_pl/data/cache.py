"""Decoded data sets kept as torch files and reused while their source is unchanged: decoding
JPEGs, gzipped IDX files or a CSV of digits costs more than reading the tensors back."""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable
from pathlib import Path

import torch

from lamaml_pl.paths import project_path

log = logging.getLogger(__name__)


def file_listing(files: list[Path], root: Path | None = None) -> str:
    """What identifies a source's files for :func:`cached_tensors`: their paths, sizes and times."""
    lines = []
    for path in files:
        stat = path.stat()
        lines.append(f"{path.relative_to(root) if root else path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}")
    return "\n".join(lines)


def cached_tensors(
    cache_dir: str | os.PathLike | None, name: str, source: str, build: Callable[[], dict[str, torch.Tensor]]
) -> dict[str, torch.Tensor]:
    """``build()``'s tensors, read from ``<cache_dir>/<name>-<hash of source>.pt`` where an earlier
    run built them from the same ``source`` (a description of the files and settings), else built
    and written there (``cache_dir`` None: built every time). A damaged file is rebuilt, never
    trusted; a place that cannot be written only costs the decoding next time."""
    key = hashlib.sha1(source.encode()).hexdigest()[:16]
    path = None if cache_dir is None else project_path(cache_dir) / f"{name}-{key}.pt"
    if path is not None and path.is_file():
        try:
            return torch.load(path, weights_only=True)
        except Exception as err:
            # (torch's own message for a damaged file is advice about weights_only, not what happened)
            log.warning("the cache %s is damaged (%s): building it again", path, type(err).__name__)
    tensors = build()
    if path is not None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_suffix(".partial")
            torch.save(tensors, partial)
            os.replace(partial, path)
        except OSError as err:
            log.warning("could not write the cache %s (%s)", path, err)
    return tensors

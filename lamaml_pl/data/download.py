"""Downloads that leave nothing behind when they fail: fetched into a temporary folder, then moved."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path


def download_into(root: Path, fetch: Callable[[str], object]) -> None:
    """``fetch(folder)`` (a torchvision data set with ``download=True``) into a scratch folder; on
    success its files move into ``root`` (created then; a file of the same name is replaced, others
    are kept), on failure nothing is created at ``root`` and the error propagates."""
    with tempfile.TemporaryDirectory(prefix="lamaml_pl-download-") as scratch:
        fetch(scratch)
        for entry in sorted(Path(scratch).rglob("*")):
            if entry.is_file():
                target = root / entry.relative_to(scratch)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.move(str(entry), str(target))


def one_line(err: BaseException) -> str:
    """An exception as one line (torchvision's download errors span several, one per mirror)."""
    return f"{type(err).__name__}: {' '.join(str(err).split())}"

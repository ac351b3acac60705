"""Where relative paths point: the project's root (the folder of train.py), wherever a command starts."""

from __future__ import annotations

import os
from pathlib import Path

_CHECKOUT = Path(__file__).resolve().parents[1]
# an installed package has no train.py beside it: then relative paths are the working directory's
PROJECT_ROOT = _CHECKOUT if (_CHECKOUT / "train.py").is_file() else Path.cwd()
CONF_DIR = _CHECKOUT / "conf"


def project_path(path: str | os.PathLike) -> Path:
    """``path`` with ``~`` expanded; a relative one taken from the project root."""
    path = Path(path).expanduser()
    return path if path.is_absolute() else PROJECT_ROOT / path

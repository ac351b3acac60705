"""One writer per run folder: a run holds ``<folder>/.lock`` (its pid and host) while it trains."""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator
from pathlib import Path

from lamaml_pl.errors import ConfigError

LOCK_FILE = ".lock"


class FolderHeld(ConfigError):
    """Another live process trains into this folder."""


@contextlib.contextmanager
def hold(folder: Path) -> Iterator[None]:
    """Hold ``folder`` for this process; refuse it while a live process on this host holds it, take
    over a lock whose process is gone (a crash, kill -9)."""
    lock = folder / LOCK_FILE
    folder.mkdir(parents=True, exist_ok=True)
    mine = f"{os.getpid()} {socket.gethostname()}\n"
    while True:
        try:
            with open(lock, "x") as handle:
                handle.write(mine)
            break
        except FileExistsError:
            holder = lock.read_text().split() if lock.is_file() else []
            if holder and holder_alive(holder):
                raise FolderHeld(
                    f"{folder} is in use by process {holder[0]} on {holder[1]}: wait for it to end, or write "
                    "elsewhere (hydra.run.dir=...); if that process is gone, delete "
                    f"{lock}"
                ) from None
            lock.unlink(missing_ok=True)  # stale: its process is gone
    try:
        yield
    finally:
        if lock.is_file() and lock.read_text() == mine:
            lock.unlink()


def holder_alive(holder: list[str]) -> bool:
    pid, host = int(holder[0]), holder[1] if len(holder) > 1 else ""
    if host != socket.gethostname():
        return True  # another machine's process (a shared file system): assume it lives
    if pid == os.getpid():
        return False  # an earlier run of this same process that raised (a population member, a test)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True

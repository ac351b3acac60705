"""Signals that stop a run. SIGUSR1 stops it as SIGTERM does: SLURM sends it ahead of a time limit
or a preemption (``#SBATCH --signal=USR1@120``); the run ends at the next batch with results.json
``interrupted`` and its last task checkpoint, and ``resume=auto`` continues it (Lightning handles
SIGTERM itself). An exit raised by a signal's handler (Ctrl-C, submitit's requeue on SIGUSR2) can
land anywhere in Lightning, which may fail in turn while tearing down: ``interrupt_behind`` finds
the interrupt behind such an error."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

import pytorch_lightning as pl


@contextlib.contextmanager
def stop_on_sigusr1(trainer: pl.Trainer) -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():  # signals reach the main thread only
        yield
        return

    def stop(signum, frame) -> None:
        trainer._signal_connector.received_sigterm = True  # Lightning's own flag: it stops after this batch

    previous = signal.signal(signal.SIGUSR1, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGUSR1, previous)


def interrupt_behind(error: BaseException) -> KeyboardInterrupt | SystemExit | None:
    """The interrupt ``error`` was raised while handling, if any. Lightning 2.6's teardown raises
    "Please call `iter(combined_loader)` first" when the exit lands as a task's loader starts."""
    cause = error.__context__
    while cause is not None and not isinstance(cause, (KeyboardInterrupt, SystemExit)):
        cause = cause.__context__
    return cause

"""One line per finished task: what a log shows when the progress bar is off (batch jobs, sweeps)."""

from __future__ import annotations

import math
import time

from pytorch_lightning.callbacks import Callback


class TaskSummary(Callback):
    """Prints ``task t/T done: <seen-task mean>% on the t tasks seen, <acc>% on task t (<s> s)``
    after each task's evaluation; a population's line is its members' mean."""

    def __init__(self) -> None:
        self.start = time.perf_counter()

    def on_fit_start(self, trainer, pl_module) -> None:
        self.start = time.perf_counter()

    def on_validation_end(self, trainer, pl_module) -> None:
        if trainer.state.fn != "fit" or trainer.sanity_checking:
            return
        logs = pl_module.accuracy_logs
        task = logs[0].tags[-1]
        seen = [mean(log.rows[-1][: task + 1]) for log in logs]
        latest = [log.rows[-1][task] for log in logs]
        members = "" if len(logs) == 1 else f" (mean of {len(logs)} members)"
        print(
            f"task {task + 1}/{trainer.datamodule.n_tasks} done: {100 * mean(seen):.1f}% on the {task + 1} tasks "
            f"seen, {100 * mean(latest):.1f}% on task {task + 1}{members}  ({time.perf_counter() - self.start:.0f} s)",
            flush=True,
        )


def mean(values) -> float:
    known = [float(v) for v in values if not math.isnan(float(v))]
    return sum(known) / len(known) if known else math.nan

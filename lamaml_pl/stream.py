"""What an algorithm knows about its task stream before training: its own module, so that
algorithms and nets need nothing from the data package."""

from __future__ import annotations

from dataclasses import KW_ONLY, dataclass, field

# domain_il: every task shares all outputs (MNIST rotations/permutations); task_il: each task owns
# its classes and the task id is known at test time (masked heads); class_il: each task brings new
# classes, scored on one head over every class seen so far, no task id at test time.
SCENARIOS = ("domain_il", "task_il", "class_il")


@dataclass(frozen=True)
class StreamInfo:
    """What an algorithm needs to know about the stream before training starts."""

    n_tasks: int
    n_classes: int
    input_shape: tuple[int, ...]
    epochs_per_task: int
    _: KW_ONLY  # the optional fields by name only (a positional list of sizes would land in ``joint``)
    joint: bool = False  # all tasks' data in every epoch (IID oracle)
    # per-task denominators of test accuracy (the test-set sizes; docs/quirks.md, Q12)
    test_sizes: list[int] = field(default_factory=list)
    # class-split streams: task k owns classes [k*c, (k+1)*c)
    classes_per_task: int | None = None
    scenario: str | None = None  # one of SCENARIOS; None: task_il on a class split, else domain_il
    # sizes of the held-out validation sets, when the stream has them (evaluated beside the test sets)
    val_sizes: list[int] = field(default_factory=list)

    def __post_init__(self):
        if self.scenario is None:
            object.__setattr__(self, "scenario", "domain_il" if self.classes_per_task is None else "task_il")

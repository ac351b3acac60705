"""Learners outside Lightning's loop: the tests' single updates and the step benchmarks."""

from __future__ import annotations


def detach_from_trainer(algo) -> None:
    """Let ``observe`` run without a Trainer: plain optimizers (reachable as ``.optimizer`` too,
    as through Lightning's wrapper) and plain backward."""
    optimizers = algo.configure_optimizers()
    if hasattr(optimizers, "param_groups"):  # one optimizer
        optimizers.optimizer = optimizers
    algo.optimizers = lambda: optimizers
    algo.manual_backward = lambda loss: loss.backward()

"""``population.<axis>=a,b,c`` (and ``tune.grid.<axis>``, ``tune.search_seeds``, ``tune.test_seeds``)
on the command line means the list ``[a,b,c]``; ``tune.grid.<axis>=...`` may name an axis the
algorithm's grid file lacks.

Hydra reads a comma-separated value as a sweep (and refuses it without ``--multirun``); a
population axis is a list of values trained together in one process, never a sweep.
"""

from __future__ import annotations

GRID = "tune.grid."
PREFIXES = ("population.", GRID, "tune.search_seeds", "tune.test_seeds")


def population_lists(argv: list[str]) -> list[str]:
    """``argv`` with every ``population.<axis>=a,b`` (or tuning list) rewritten to ``...=[a,b]``."""
    rewritten = []
    for arg in argv:
        key, sep, value = arg.partition("=")
        if key.lstrip("+~").startswith(PREFIXES) and sep and "," in value and not value.startswith("["):
            arg = f"{key}=[{value}]"
        if key.startswith(GRID) and sep:  # the grid is the user's: an axis of its own is added, not refused
            arg = f"++{arg}"
        rewritten.append(arg)
    return rewritten

"""``population.<axis>=a,b,c`` on the command line means the list ``[a,b,c]``.

Hydra reads a comma-separated value as a sweep (and refuses it without ``--multirun``); a
population axis is a list of values trained together in one process, never a sweep.
"""

from __future__ import annotations

PREFIX = "population."


def population_lists(argv: list[str]) -> list[str]:
    """``argv`` with every ``population.<axis>=a,b`` rewritten to ``population.<axis>=[a,b]``."""
    rewritten = []
    for arg in argv:
        key, sep, value = arg.partition("=")
        if key.lstrip("+~").startswith(PREFIX) and sep and "," in value and not value.startswith("["):
            arg = f"{key}=[{value}]"
        rewritten.append(arg)
    return rewritten

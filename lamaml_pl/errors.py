"""The one exception type for bad user input, so entry points can print it cleanly."""

from collections.abc import Sequence


class ConfigError(ValueError):
    """A configuration value is impossible; the message names the value and what is allowed."""


class DivergenceError(RuntimeError):
    """The training loss became NaN or infinite; the message names the algorithm, task and batch."""


def require_replay_fits(replay_batch_size: int, memories: int) -> None:
    """A replay batch larger than the whole buffer is a typo, not a setting."""
    require_positive("algo", memories=memories)
    if replay_batch_size > memories:
        raise ConfigError(
            f"algo.replay_batch_size={replay_batch_size} is larger than algo.memories={memories}: "
            f"use at most {memories} replayed samples per update, or a larger buffer"
        )


def require_positive(group: str, **values) -> None:
    """Raise ConfigError unless every value is a number > 0; ``group`` prefixes the key names
    (``require_positive("algo", lr=lr)`` names ``algo.lr``)."""
    for key, value in values.items():
        if not is_number(value) or value <= 0:
            raise ConfigError(f"{group}.{key}={value!r} is not allowed: it must be a positive number")


def require_non_negative(group: str, **values) -> None:
    """Raise ConfigError unless every value is a number >= 0 (names as :func:`require_positive`)."""
    for key, value in values.items():
        if not is_number(value) or value < 0:
            raise ConfigError(f"{group}.{key}={value!r} is not allowed: it must be >= 0")


def require_sizes(group: str, **values) -> None:
    """Raise ConfigError unless every value is a list of positive integers (layer widths)."""
    for key, value in values.items():
        listed = isinstance(value, Sequence) and not isinstance(value, str)
        if not listed or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value):
            raise ConfigError(
                f"{group}.{key}={value!r} is not allowed: use a list of positive integers, e.g. [100,100]"
            )


def is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def config_error_in(err: BaseException) -> ConfigError | None:
    """The ConfigError behind ``err``, also when Hydra's instantiate wrapped it."""
    while err is not None:
        if isinstance(err, ConfigError):
            return err
        err = err.__cause__
    return None

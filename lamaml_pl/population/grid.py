"""The ``population`` config: axes of values -> one config per member (their Cartesian product).

``population.seed=[0,1,2] population.alpha_init=[0.03,0.1]`` gives 6 members; each member's
config is the composed config with ``seed`` and ``algo.<axis>`` set to its values — exactly what
``python train.py seed=... algo.alpha_init=...`` would run alone.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from omegaconf import DictConfig, ListConfig, OmegaConf

from lamaml_pl.errors import ConfigError

SEED_AXIS = "seed"


def requested_axes(cfg: DictConfig) -> dict[str, list]:
    """The axes given (non-null entries of ``cfg.population``), each as a list of values."""
    return axes_of(cfg.get("population") or {}, "population")


def axes_of(block, where: str) -> dict[str, list]:
    """The non-null entries of a block of axes (``population``, ``tune.grid``), each as a list of
    values; an empty list or a value given twice is refused, named as ``<where>.<axis>``."""
    axes = {}
    for key, values in block.items():
        if values is None:
            continue
        values = (
            list(values) if isinstance(values, (ListConfig, Sequence)) and not isinstance(values, str) else [values]
        )
        if not values:
            raise ConfigError(f"{where}.{key}=[] has no values: give one or more, e.g. {where}.{key}=[1,2]")
        repeated = sorted({repr(v) for v in values if values.count(v) > 1})
        if repeated:  # two members of one setting: one seed counted twice
            raise ConfigError(
                f"{where}.{key}={','.join(map(str, values))} gives {', '.join(repeated)} more than once: "
                "each value once"
            )
        axes[key] = values
    return axes


def batched(algo_class: type, cfg: DictConfig) -> bool:
    """Whether a population of ``cfg`` trains as one learner with a member axis: the class
    declares a population mode and the stream is task-sequential (the joint IID stream has none)."""
    return bool(algo_class.population_axes) and not cfg.data.get("joint", False)


def check_axes(
    axes: dict[str, list], algo_class: type, algo: DictConfig, one_by_one: bool = False, where: str = "population"
) -> None:
    """Every axis is the seed or one of the class's declared ``population_axes``; a population
    trained one member after another (no batched mode: each member a single run) may vary the
    seed and any of the algorithm's settings."""
    settings = [key for key in algo if key not in ("_target_", "name")]
    allowed = (SEED_AXIS, *settings) if one_by_one else (SEED_AXIS, *algo_class.population_axes)
    for key in axes:
        if key not in allowed:
            why = " (no batched population mode: its members train one after another)" if one_by_one else ""
            raise ConfigError(
                f"{where}.{key} cannot vary in a population of algo={algo.name}{why}: use {', '.join(allowed)}"
            )


def member_settings(axes: dict[str, list]) -> list[dict]:
    """One ``{axis: value}`` per member, the last axis varying fastest."""
    return [dict(zip(axes, values)) for values in itertools.product(*axes.values())]


def member_config(cfg: DictConfig, settings: dict) -> DictConfig:
    """The single-run config of one member (no ``population`` entries left)."""
    member = OmegaConf.to_container(cfg, resolve=False)
    member["population"] = dict.fromkeys(cfg.population)
    for key, value in settings.items():
        if key == SEED_AXIS:
            member["seed"] = value
        else:
            member["algo"][key] = value
    return OmegaConf.create(member)


def member_folder(index: int, settings: dict) -> str:
    return f"{index:03d}_" + "_".join(f"{key}={value}" for key, value in settings.items())

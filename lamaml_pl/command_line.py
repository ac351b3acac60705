"""The command line's keys, checked before Hydra composes: a misspelt key is one line with the
keys it may have meant, instead of Hydra's "not in struct ... use +" (whose ``+`` then reaches
the algorithm's constructor as an unknown argument)."""

from __future__ import annotations

import difflib
import os
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import InterpolationResolutionError, MissingMandatoryValue

from lamaml_pl.errors import ConfigError
from lamaml_pl.paths import CONF_DIR

OPEN_GROUPS = ("callbacks", "hydra", "logger")  # where + adds entries of the user's own


def check_keys(args: list[str]) -> None:
    """Raise ConfigError for a ``key=value`` whose key the composed config does not have."""
    try:
        overrides = OverridesParser.create().parse_overrides([a for a in args if not a.startswith("-")])
    except Exception:
        return  # Hydra reports a malformed override itself
    groups = {path.name for path in CONF_DIR.iterdir() if path.is_dir()}
    chosen = [o for o in overrides if o.key_or_group in groups and not o.is_delete() and o.package is None]
    if any(o.is_sweep_override() for o in chosen):
        return  # a sweep over groups (algo=er,lamaml): each job's keys differ; Hydra checks every job
    for o in chosen:
        options = sorted(p.stem for p in (CONF_DIR / o.key_or_group).glob("*.yaml"))
        if options and o.key_or_group not in ("hydra", "preset") and o.value() not in options:
            close = difflib.get_close_matches(str(o.value()), options, n=1, cutoff=0.6)
            hint = f" (did you mean {o.key_or_group}={close[0]}?)" if close else ""
            raise ConfigError(f"{o.key_or_group}={o.value()} is unknown{hint}: use one of {', '.join(options)}")
    for o in overrides:
        if o.key_or_group in ("hydra.run.dir", "hydra.sweep.dir"):
            check_writable(o.key_or_group, str(o.value()))
    # group choices (hydra/launcher=joblib too) and keys a user may add (++tune.grid.<axis>) are not looked up
    keys = [
        o
        for o in overrides
        if not (o.key_or_group in groups or "/" in o.key_or_group or o.key_or_group.split(".")[0] in OPEN_GROUPS)
        and not (o.is_delete() or o.is_force_add())
    ]
    if not keys:
        return  # nothing to look up: no composition (a third of a second)
    choices = [f"{o.key_or_group}={o.value()}" for o in chosen]
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            cfg = compose(config_name="train", overrides=choices)
    except Exception:
        return  # an unknown group option: Hydra lists the choices itself
    for o in keys:
        key = o.key_or_group
        try:
            default = OmegaConf.select(cfg, key, default=_ABSENT, throw_on_missing=True)
        except InterpolationResolutionError:
            continue  # a key that Hydra fills in at run time (paths.output_dir): there, of no fixed kind
        except MissingMandatoryValue:
            continue  # a required key (``???``: data=imagefolder's data.root): any value of the user's
        if default is _ABSENT:
            raise ConfigError(unknown_key_message(cfg, key, o.is_add()))
        for value in o.sweep_iterator() if o.is_sweep_override() else [o.value()]:
            check_type(key, value, plain(default))


_ABSENT = object()


def check_writable(key: str, folder: str) -> None:
    """``hydra.run.dir`` / ``hydra.sweep.dir`` given on the command line: a folder this process can
    create or write into (Hydra creates it before the run, so a wrong one is caught first here)."""
    path = Path(folder).expanduser()
    existing = next((p for p in (path, *path.parents) if p.exists()), None)
    if existing is not None and not existing.is_dir():
        raise ConfigError(f"{key}={folder}: {existing} is a file, not a folder: give a folder path")
    if existing is not None and not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"{key}={folder}: {existing} is not writable: give a folder you can write to")


def plain(node):
    return OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node


def check_type(key: str, value, default) -> None:
    """A value of the default's kind: true/false for a switch, an integer for a count, a number
    for a rate, a list for a list. A null, or a key whose default is null or text, is left to the
    code that reads it (which says what it allows)."""
    if value is None or default is None or isinstance(default, str | dict):
        return
    if isinstance(default, bool):
        ok, kind = isinstance(value, bool), "true or false"
    elif isinstance(default, int):
        ok, kind = isinstance(value, int) and not isinstance(value, bool), "an integer"
    elif isinstance(default, float):
        ok, kind = isinstance(value, int | float) and not isinstance(value, bool), "a number"
    else:  # a list
        ok, kind = isinstance(value, list), f"a list like {default}"
    if not ok:
        raise ConfigError(f"{key}={value!r} is not allowed: use {kind}")


def unknown_key_message(cfg: DictConfig, key: str, added: bool) -> str:
    parent, _, leaf = key.rpartition(".")
    node = OmegaConf.select(cfg, parent) if parent else cfg
    where = f" of {parent}={node.name}" if parent and isinstance(node, DictConfig) and "name" in node else ""
    siblings = (
        [f"{parent}.{k}" if parent else str(k) for k in node if not str(k).startswith("_")]
        if (isinstance(node, DictConfig))
        else []
    )
    close = difflib.get_close_matches(key, siblings or all_keys(cfg), n=1, cutoff=0.75)
    hint = f": did you mean {close[0]}?" if close else f": the keys there are {', '.join(siblings)}"
    if not siblings and not close:
        hint = ""
    plus = " (+ adds keys only to callbacks, logger and hydra)" if added else ""
    return f"{key} is not a setting{where}{hint}{plus}"


def all_keys(cfg: DictConfig, prefix: str = "") -> list[str]:
    keys = []
    for k, v in cfg.items_ex(resolve=False):
        name = f"{prefix}{k}"
        keys.append(name)
        if isinstance(v, DictConfig):
            keys += all_keys(v, f"{name}.")
    return keys

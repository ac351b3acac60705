"""Which preset a run applies (``conf/preset/<algo>/<benchmark>/<pass>.yaml``, the root's optional
``preset`` entry), and a preset the user named that does not exist.

A benchmark without a preset for an algorithm (DER++ anywhere, EWC on CIFAR-100) runs with the
algorithm's ``conf/algo/`` values: that is the optional entry's purpose. But ``preset=...`` or
``presets_from=...`` given on the command line names a file the user expects to be applied, so a
missing one is an error that lists the algorithm's presets.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf

from lamaml_pl.errors import ConfigError
from lamaml_pl.paths import CONF_DIR

PRESET_DIR = CONF_DIR / "preset"
NAMING = ("preset", "presets_from")  # the command-line keys that name a preset


def applied_preset(choices: Mapping, overrides: Iterable[str], algo: str) -> str | None:
    """The preset this run applies (``<algo>/<benchmark>/<pass>``), or None where there is none;
    ConfigError where the command line named one that does not exist."""
    choice = choices.get("preset")
    if choice and (PRESET_DIR / f"{choice}.yaml").is_file():
        return str(choice)
    named = [o for o in overrides if o.split("=", 1)[0].lstrip("+~") in NAMING]
    if named and choices.get("presets_from") != "none":
        raise ConfigError(f"{' '.join(named)}: preset {choice} does not exist ({preset_listing(algo)})")
    return None


def preset_listing(algo: str) -> str:
    """The presets of ``algo``, for an error message."""
    presets = sorted(str(p.relative_to(PRESET_DIR).with_suffix("")) for p in (PRESET_DIR / algo).glob("*/*.yaml"))
    if not presets:
        return (
            f"algo={algo} has no presets: it runs with conf/algo/{algo}.yaml; drop the preset or use presets_from=none"
        )
    return f"the presets of algo={algo}: {', '.join(presets)}"


def job_preset(algo: str) -> str | None:
    """:func:`applied_preset` of the Hydra job this process runs (None outside ``train.py``: a
    config composed through the API records no choices)."""
    if not HydraConfig.initialized():
        return None
    hydra = HydraConfig.get()
    overrides = OmegaConf.to_container(hydra.overrides.task, resolve=False)  # as typed: preset='${algo}/...'
    return applied_preset(hydra.runtime.choices, overrides, algo)

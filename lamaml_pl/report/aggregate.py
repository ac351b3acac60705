"""Group runs that differ only in their seed and summarise each group (mean ± sample std)."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

from lamaml_pl.report.collect import Run
from lamaml_pl.report.paper import follows_protocol, published

METRICS = ("ra", "bti", "la", "wall_time_s")


@dataclass
class Group:
    algo: str
    data: str
    varying: dict  # the settings that tell this group from others of the same algo and data
    runs: list[Run] = field(default_factory=list)
    duplicates: list[Run] = field(default_factory=list)  # runs of a seed this group holds already

    @property
    def completed(self) -> list[Run]:
        return [r for r in self.runs if not r.failed]

    @property
    def label(self) -> str:
        extra = ", ".join(f"{k.split('.', 1)[-1]}={v}" for k, v in sorted(self.varying.items()))
        return f"{self.algo} ({extra})" if extra else self.algo

    def stat(self, key: str) -> tuple[float | None, float | None]:
        """Mean and sample standard deviation (ddof = 1; None with fewer than 2 runs) of a
        results.json entry; ``task_il.ra``: of an entry of one of its blocks."""
        return mean_std([member_value(r.results, key) for r in self.completed])

    @property
    def paper(self) -> tuple[float | None, ...] | None:
        """The published (RA, RA std, BTI, BTI std) of this method and benchmark (and pass),
        where the runs follow the paper's protocol (:func:`follows_protocol`); else None: a
        difference would mean nothing."""
        run = self.runs[0]
        if not follows_protocol(run.results, run.settings.get("data.benchmark_tasks")):
            return None
        return published(self.algo, self.data, run.settings.get("data.epochs_per_task"))


def mean_std(values: list) -> tuple[float | None, float | None]:
    """Mean and sample standard deviation (ddof = 1; None with fewer than 2) of the values that are
    not None (a run or seed that did not complete)."""
    known = [v for v in values if v is not None]
    if not known:
        return None, None
    return statistics.fmean(known), statistics.stdev(known) if len(known) > 1 else None


def group_runs(runs: list[Run]) -> list[Group]:
    by_pair: dict[tuple[str, str], list[Run]] = {}
    for run in runs:
        by_pair.setdefault((run.results["algo"], run.results["data"]), []).append(run)
    groups = []
    for (algo, data), pair_runs in sorted(by_pair.items()):
        # the settings that tell runs apart, read from the runs that completed (a failed typo run's
        # stray keys would otherwise label every group)
        labelled = [r for r in pair_runs if not r.failed] or pair_runs
        keys = set().union(*(r.settings for r in labelled))
        varying_keys = sorted(k for k in keys if len({repr(r.settings.get(k)) for r in labelled}) > 1)
        by_setting: dict[tuple, Group] = {}
        for run in pair_runs:
            varying = {k: run.settings.get(k) for k in varying_keys}
            key = tuple(repr(varying[k]) for k in varying_keys)
            by_setting.setdefault(key, Group(algo, data, varying)).runs.append(run)
        groups += [by_setting[k] for k in sorted(by_setting)]
    for group in groups:
        keep_one_run_per_seed(group)
    return groups


def keep_one_run_per_seed(group: Group) -> None:
    """Runs of the same settings and seed are one seed (a rerun, or a seed given twice): the
    newest completed one stays (the newest of all where none completed), the others move to
    ``duplicates``."""
    by_seed: dict = {}
    for run in group.runs:
        by_seed.setdefault(run.results.get("seed"), []).append(run)
    for seed, runs in by_seed.items():
        if seed is not None and len(runs) > 1:  # (a job that died before its seed: a run of its own)
            newest = max(runs, key=lambda r: (not r.failed, written_at(r)))
            group.duplicates += [r for r in runs if r is not newest]
    group.runs = [r for r in group.runs if all(r is not d for d in group.duplicates)]


def written_at(run: Run) -> float:
    results = run.folder / "results.json"
    return (results if results.is_file() else run.folder).stat().st_mtime


def member_value(results: dict, key: str):
    """:func:`lookup`, with a population member's wall time its share of the population's."""
    value = lookup(results, key)
    population = results.get("population")
    if key == "wall_time_s" and value is not None and population:
        return value / population["members"]
    return value


def lookup(results: dict, key: str):
    """``results[a][b]`` for the key ``a.b``; None where any part is missing."""
    for part in key.split("."):
        if not isinstance(results, dict):
            return None
        results = results.get(part)
    return results

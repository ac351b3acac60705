"""``python train.py sweep=tune algo=<a> data=<d>``: a method tuned as the field tunes, in one command.

Stage 1 (``validation/``) trains the algorithm's grid (``tune.grid``, conf/tune/<algo>.yaml) for
the search seeds as one population, scored on the held-out validation split only. Stage 2 takes the
best setting (:data:`RULE`) and trains it for the test seeds (``test/``), scored on the test split —
and, where the choice differs from the composed values (the published ones where a preset applies),
those values for the same seeds (``published/``), so that both rows come from the same command.
Every stage is an ordinary population folder: resumable with ``resume=auto``, read by
``python -m lamaml_pl.report``; ``tune.json`` records the grid, the rule, the scores and the choice.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from hydra.utils import get_class
from omegaconf import DictConfig, OmegaConf

from lamaml_pl.errors import ConfigError
from lamaml_pl.outputs import POPULATION_MANIFEST, RESULTS_FILE, TUNE_MANIFEST, write_atomically
from lamaml_pl.population.grid import SEED_AXIS, axes_of, batched, check_axes, member_settings, requested_axes
from lamaml_pl.report.paper import follows_protocol
from lamaml_pl.run import run

STAGES = ("all", "validation", "test")
SEARCH_DIR, TEST_DIR, PUBLISHED_DIR = "validation", "test", "published"
RULE = "highest validation RA (mean over the search seeds); within 0.01 points, the higher validation BTI"
TIE = 0.01  # RA points: closer than this is a tie (RA is printed to two decimals)


def tune(cfg: DictConfig) -> dict:
    """Run the stages ``tune.stage`` asks for into ``paths.output_dir``; returns the tune record."""
    grid, one_by_one = check_tuning(cfg)
    out_dir = Path(cfg.paths.output_dir)
    validation = cfg.data.validation or cfg.tune.validation  # the benchmark's split, else one held out
    search_cfg = stage_config(
        cfg, out_dir / SEARCH_DIR, {SEED_AXIS: list(cfg.tune.search_seeds), **grid}, validation=validation
    )
    settings = member_settings(requested_axes(search_cfg))
    print(opening_line(cfg, grid, len(settings), validation, one_by_one), flush=True)
    start = time.perf_counter()
    if cfg.tune.stage == "test":
        search = finished_stage(out_dir / SEARCH_DIR)
        if search is None:
            raise ConfigError(
                f"tune.stage=test: {out_dir / SEARCH_DIR} holds no finished validation stage (every member "
                "completed or diverged): run it first (tune.stage=all or validation, resume=auto continues one)"
            )
    else:
        search = run_stage(search_cfg)
    published = {axis: OmegaConf.select(cfg.algo, axis) for axis in grid}
    record = {
        "algo": cfg.algo.name,
        "data": cfg.data.name,
        "epochs_per_task": cfg.data.epochs_per_task,
        "rule": RULE,
        "validation": validation,
        "search_seeds": list(cfg.tune.search_seeds),
        "grid": grid,
        "published": published,
        "scores": scores(grid, search),
        "one_by_one": one_by_one,
        "stages": {SEARCH_DIR: time.perf_counter() - start},
    }
    record["chosen"] = choose(record["scores"])
    print(chosen_line(record, out_dir), flush=True)
    if cfg.tune.stage != "validation":
        record["test_seeds"] = list(cfg.tune.test_seeds)
        record["test"] = {}
        finals = {TEST_DIR: record["chosen"]}
        if cfg.tune.compare_published and record["chosen"] != published:
            finals[PUBLISHED_DIR] = published
        for folder, values in finals.items():
            start = time.perf_counter()
            final_cfg = stage_config(cfg, out_dir / folder, {SEED_AXIS: list(cfg.tune.test_seeds)}, values)
            members = run_stage(final_cfg)
            record["test"][folder] = summary(members)
            record["paper_protocol"] = follows_protocol(members[0][1], cfg.data.benchmark_tasks)
            record["stages"][folder] = time.perf_counter() - start
    write_atomically(out_dir / TUNE_MANIFEST, json.dumps(record, indent=2) + "\n")
    from lamaml_pl.report.tuning import write_tuning_report  # matplotlib: only once the stages are done

    print(write_tuning_report(out_dir, record), flush=True)
    return record


def check_tuning(cfg: DictConfig) -> tuple[dict[str, list], bool]:
    """The grid's axes and whether its members train one after another (no batched population),
    after every tuning setting is checked: one clear error per bad value."""
    if cfg.tune.stage not in STAGES:
        raise ConfigError(f"tune.stage={cfg.tune.stage!r} is unknown: use one of {', '.join(STAGES)}")
    if requested_axes(cfg):
        raise ConfigError("sweep=tune builds its own populations from tune.grid: drop the population.* overrides")
    for key in ("search_seeds", "test_seeds"):
        seeds = axes_of({key: cfg.tune[key]}, "tune").get(key)
        if not seeds or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds):
            raise ConfigError(f"tune.{key}={cfg.tune[key]} is not allowed: give integers >= 0, e.g. [0,1,2]")
    grid = axes_of(cfg.tune.grid or {}, "tune.grid")
    if not grid:
        raise ConfigError(
            f"tune.grid is empty for algo={cfg.algo.name}: write conf/tune/{cfg.algo.name}.yaml or give the axes, "
            "e.g. tune.grid.lr=[0.01,0.03,0.1]"
        )
    if SEED_AXIS in grid:
        raise ConfigError("tune.grid.seed: the seeds are tune.search_seeds (the grid) and tune.test_seeds (the choice)")
    one_by_one = not batched(get_class(cfg.algo._target_), cfg)
    check_axes(grid, get_class(cfg.algo._target_), cfg.algo, one_by_one=one_by_one, where="tune.grid")
    if "validation" not in cfg.data:
        raise ConfigError(
            f"data={cfg.data.name} has no validation split (no data.validation): tuning scores the grid on held-out "
            "data, never on the test sets"
        )
    if not cfg.data.validation and not cfg.tune.validation:
        raise ConfigError(
            f"tune.validation={cfg.tune.validation} and data.validation={cfg.data.validation}: tuning scores the grid "
            "on held-out data; give a fraction in (0, 1), e.g. tune.validation=0.1"
        )
    return grid, one_by_one


def stage_config(
    cfg: DictConfig, folder: Path, axes: dict[str, list], values: dict | None = None, validation: float | None = None
) -> DictConfig:
    """A stage's population config: ``cfg`` with the stage's axes (and fixed ``values``; the grid:
    its ``validation`` split), into ``folder``. The test stages train on the benchmark's own data,
    as the runs they are compared with."""
    stage = OmegaConf.to_container(cfg, resolve=False)
    stage["tune"]["run"] = False  # a member's config is its single run's
    stage["population"] = {**dict.fromkeys(cfg.population), **axes}
    stage["algo"].update(values or {})
    stage["paths"]["output_dir"] = str(folder)
    if validation is not None:  # the grid is scored on the validation sets; its test sets are never evaluated
        stage["data"].update(validation=validation, reported_split="validation")
    return OmegaConf.create(stage)


def run_stage(stage_cfg: DictConfig) -> list[tuple[dict, dict]]:
    """Train a stage's population; with ``resume=auto`` a finished stage is read back, not trained."""
    folder = Path(stage_cfg.paths.output_dir)
    done = finished_stage(folder) if stage_cfg.get("resume") == "auto" else None
    if done is not None:
        print(f"kept: {folder} already finished", flush=True)
        return done
    run(stage_cfg)
    return finished_stage(folder)


def finished_stage(folder: Path) -> list[tuple[dict, dict]] | None:
    """Every member's values and results of a stage whose members all completed or diverged; else None."""
    try:
        manifest = json.loads((folder / POPULATION_MANIFEST).read_text())
        members = [
            (m["values"], json.loads((folder / m["folder"] / RESULTS_FILE).read_text())) for m in manifest["members"]
        ]
    except (OSError, ValueError, KeyError):
        return None
    return members if all(r.get("status") in ("completed", "diverged") for _, r in members) else None


def scores(grid: dict[str, list], search: list[tuple[dict, dict]]) -> list[dict]:
    """Per setting of the grid: its values and the mean validation RA / BTI over its search seeds
    (None where a seed did not complete: an unstable setting is not chosen)."""
    by_setting: dict[str, list[dict]] = {}
    for member_values, member in search:
        values = {axis: member_values[axis] for axis in grid}
        by_setting.setdefault(json.dumps(values), []).append(member)
    rows = []
    for key, members in by_setting.items():
        done = all(m.get("status") == "completed" and m.get("ra") is not None for m in members)
        row = {"values": json.loads(key), "seeds": len(members), "status": "completed" if done else "diverged"}
        for metric in ("ra", "bti"):  # the members' reported matrix is the validation split's
            row[metric] = sum(m[metric] for m in members) / len(members) if done else None
        rows.append(row)
    return rows


def choose(rows: list[dict]) -> dict:
    """The :data:`RULE`'s setting among the completed rows."""
    ranked = [r for r in rows if r["ra"] is not None]
    if not ranked:
        raise ConfigError("tuning: every setting of the grid diverged on the validation stage; try a smaller grid")
    best = max(r["ra"] for r in ranked)
    return max((r for r in ranked if r["ra"] >= best - TIE), key=lambda r: r["bti"])["values"]


def summary(members: list[tuple[dict, dict]]) -> dict:
    """A test stage: test RA / BTI per seed (None where a seed diverged)."""
    return {key: [r.get(key) for _, r in members] for key in ("seed", "ra", "bti")}


def opening_line(cfg: DictConfig, grid: dict, n_members: int, validation: float, one_by_one: bool) -> str:
    axes = " x ".join(f"{axis} {len(values)}" for axis, values in grid.items())
    how = (
        f"one after another (algo={cfg.algo.name} has no batched population mode here)"
        if one_by_one
        else "as one batched population"
    )
    return (
        f"tuning {cfg.algo.name} on {cfg.data.name}: {axes} x {len(cfg.tune.search_seeds)} search seed(s) = "
        f"{n_members} members {how}, scored on the validation split ({validation:g} of the training data held "
        f"out); then the best values' test seeds {list(cfg.tune.test_seeds)}. Rule: {RULE}"
    )


def chosen_line(record: dict, out_dir: Path) -> str:
    chosen = ", ".join(f"{axis}={value}" for axis, value in record["chosen"].items())
    published = ", ".join(f"{axis}={value}" for axis, value in record["published"].items())
    row = next(r for r in record["scores"] if r["values"] == record["chosen"])
    return (
        f"chosen: {chosen} (validation RA {row['ra']:.2f}, BTI {row['bti']:.2f}); composed values: {published} "
        f"({out_dir / TUNE_MANIFEST})"
    )

"""Entry point: ``python train.py algo=lamaml data=mnist_rot`` (see README.md)."""

import contextlib
import shutil
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from lamaml_pl.command_line import check_keys
from lamaml_pl.errors import ConfigError, DivergenceError, config_error_in
from lamaml_pl.paths import PROJECT_ROOT
from lamaml_pl.population.cli import population_lists


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    # torch and Lightning load here, after Hydra has composed: --help and a wrong key answer at once
    from lamaml_pl.outputs import write_failure
    from lamaml_pl.resource_errors import resource_error
    from lamaml_pl.resume import AlreadyCompleted, ResumeError
    from lamaml_pl.run import run
    from lamaml_pl.run_lock import FolderHeld
    from lamaml_pl.tune import tune

    multirun = HydraConfig.get().mode == RunMode.MULTIRUN
    try:
        if cfg.tune.run:  # sweep=tune: its stages are populations in this run's folder, no single score
            tune(cfg)
            return None
        results = run(cfg)  # one per member of a population
        return results[0]["ra"] if len(results) == 1 else None  # a population has no single score
    except AlreadyCompleted as done:
        if multirun:  # re-running a sweep with resume=auto: its finished jobs are kept, not retrained
            print(f"skipped: {cfg.paths.output_dir} already completed (RA {done.results.get('ra')})", flush=True)
            return done.results.get("ra")
        print(f"error: {done}", file=sys.stderr)
        sys.exit(2)
    except Exception as err:
        # the job's results.json records the failure (a diverged run has already written its
        # partial results; a refused resume or a folder in use is left as it was); in a sweep Hydra
        # runs the other jobs on and reports the failure at the end. A single run refused for a
        # value before it trained leaves no folder behind: the error line is all there is to keep.
        clean = err if isinstance(err, DivergenceError) else config_error_in(err) or resource_error(err, cfg)
        out_dir = Path(cfg.paths.output_dir)
        if isinstance(clean, ConfigError) and not multirun and untrained(out_dir):
            shutil.rmtree(out_dir, ignore_errors=True)
            if out_dir.parent.parent == PROJECT_ROOT / "outputs":
                with contextlib.suppress(OSError):  # outputs/<date>/ when this was its only run
                    out_dir.parent.rmdir()
        elif not isinstance(err, (DivergenceError, ResumeError, FolderHeld)):
            with contextlib.suppress(OSError):  # a folder that cannot be written cannot take the record either
                write_failure(out_dir, err)
        if clean is None or multirun:
            raise
        print(f"error: {clean}", file=sys.stderr)
        sys.exit(3 if isinstance(err, DivergenceError) else 2)


def untrained(out_dir: Path) -> bool:
    """A run folder holding only what a run writes before it trains (Hydra's record, the config),
    or folders of such runs (the stages of sweep=tune)."""
    return out_dir.is_dir() and all(p.name in (".hydra", "config.yaml") or untrained(p) for p in out_dir.iterdir())


def cli(args: list[str]) -> None:
    """``python train.py <args>``: the keys checked, then Hydra composes and runs. A resume leaves
    Hydra's record (.hydra/) of the run it continues as it is: a refused one touches nothing."""
    args = population_lists(args)
    resuming = any(a.startswith("resume=") and a != "resume=null" for a in args)
    if resuming and not any(a.startswith("hydra.output_subdir=") for a in args):
        args.append("hydra.output_subdir=null")
    sys.argv = [sys.argv[0], *args]
    try:
        check_keys(sys.argv[1:])
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    main()


if __name__ == "__main__":
    cli(sys.argv[1:])

"""Entry point: ``python train.py algo=lamaml data=mnist_rot`` (see README.md)."""

import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from lamaml_pl.errors import DivergenceError, config_error_in
from lamaml_pl.outputs import write_failure
from lamaml_pl.population.cli import population_lists
from lamaml_pl.run import run


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    try:
        results = run(cfg)  # one per member of a population
        return results[0]["ra"] if len(results) == 1 else None  # a population has no single score
    except Exception as err:
        # the job's results.json records the failure (a diverged run has already written its
        # partial results); in a sweep Hydra runs the other jobs on and reports the failure at the end
        if not isinstance(err, DivergenceError):
            write_failure(Path(cfg.paths.output_dir), err)
        clean = err if isinstance(err, DivergenceError) else config_error_in(err)
        if clean is None or HydraConfig.get().mode == RunMode.MULTIRUN:
            raise
        print(f"error: {clean}", file=sys.stderr)
        sys.exit(3 if isinstance(err, DivergenceError) else 2)


if __name__ == "__main__":
    sys.argv = population_lists(sys.argv)
    main()

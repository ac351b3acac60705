"""Entry point: ``python train.py algo=lamaml data=mnist_rot`` (see README.md)."""
import sys

import hydra
from omegaconf import DictConfig

from lamaml_pl.errors import ConfigError
from lamaml_pl.run import train


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float:
    try:
        return train(cfg)["ra"]
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()

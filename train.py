"""Entry point: ``python train.py algo=lamaml data=mnist_rot`` (see README.md)."""
import sys

import hydra
from omegaconf import DictConfig

from lamaml_pl.errors import config_error_in
from lamaml_pl.run import train


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float:
    try:
        return train(cfg)["ra"]
    except Exception as err:
        bad_input = config_error_in(err)
        if bad_input is None:
            raise
        print(f"error: {bad_input}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()

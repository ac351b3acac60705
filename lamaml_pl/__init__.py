"""lamaml_pl: La-MAML and the continual-learning baselines of its paper, on Lightning + Hydra."""

from lamaml_pl import resolvers  # noqa: F401  (registers the resolvers that conf/ uses)

__version__ = "0.1.0"

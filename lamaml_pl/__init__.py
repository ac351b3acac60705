"""lamaml_pl: La-MAML and the continual-learning baselines of its paper, on Lightning + Hydra."""
__version__ = "0.1.0"

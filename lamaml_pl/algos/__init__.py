"""Continual-learning algorithms, each a LightningModule with a single ``observe``."""
from lamaml_pl.algos.base import ContinualLearner
from lamaml_pl.algos.lamaml import LaMAML
from lamaml_pl.algos.replay import ReservoirBuffer

__all__ = ["ContinualLearner", "LaMAML", "ReservoirBuffer"]

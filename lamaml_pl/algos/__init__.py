"""Continual-learning algorithms, each a LightningModule with a single ``observe``."""

from lamaml_pl.algos.base import ContinualLearner
from lamaml_pl.algos.derpp import DERPP
from lamaml_pl.algos.er import ER
from lamaml_pl.algos.er_ace import ERACE
from lamaml_pl.algos.ewc import EWC
from lamaml_pl.algos.gem import AGEM, GEM
from lamaml_pl.algos.icarl import ICaRL
from lamaml_pl.algos.la_er import LaER
from lamaml_pl.algos.lamaml import LaMAML
from lamaml_pl.algos.mer import MER
from lamaml_pl.algos.meta_bgd import MetaBGD
from lamaml_pl.algos.online import Online
from lamaml_pl.algos.replay import ReservoirBuffer

__all__ = [
    "AGEM",
    "ContinualLearner",
    "DERPP",
    "ER",
    "ERACE",
    "EWC",
    "GEM",
    "ICaRL",
    "LaER",
    "LaMAML",
    "MER",
    "MetaBGD",
    "Online",
    "ReservoirBuffer",
]

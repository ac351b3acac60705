"""CPU threads for training and for evaluation, set separately.

The MNIST updates are chains of tiny tensor ops (a sample or a 20-sample batch through a
784-100-100-10 MLP): a second thread only adds synchronisation (one La-MAML glance: 2.5 ms with
1 thread, 3.8 ms with 2 on the 2-core development machine), while evaluation multiplies 10,000
images at once and gains from every core. ``train_threads`` applies while training; evaluation
runs with the process's default count (each task's evaluation ends its last epoch; the next
epoch sets the training count again).
"""
from __future__ import annotations

import torch
from pytorch_lightning.callbacks import Callback


class TrainThreads(Callback):
    def __init__(self, train_threads: int):
        self.train_threads = int(train_threads)
        self.default_threads = torch.get_num_threads()

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        torch.set_num_threads(self.train_threads)

    def on_validation_start(self, trainer, pl_module) -> None:
        torch.set_num_threads(self.default_threads)

    def on_fit_end(self, trainer, pl_module) -> None:
        torch.set_num_threads(self.default_threads)

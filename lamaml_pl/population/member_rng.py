"""Each member's random numbers: the draws its config would take from torch's global RNG alone.

A single run (``lamaml_pl.run.train``) seeds torch, builds the data and the net, and then takes
every random number from the global CPU generator: Lightning's loaders draw int64 seeds, the
train sampler shuffles with a seed drawn from it, and the learner draws its glance orders,
replay indices and reservoir slots. A member gets a private generator started at the state the
single run has after building its net, and :class:`MemberRNG` replays the loop's draws in the
same order — so the member sees the same data order and the same replay draws as the run alone.

The loop's draws (measured on Lightning 2.x, ``num_workers=0``; the population equivalence test
fails if a Lightning update changes them): the evaluation before training and every evaluation
after a task draw one seed per loader (its iterator's base seed); the first training epoch two
(iterator base seed, sampler seed), every later epoch three (one more iterator), the last being
the sampler's seed for ``randperm``.

During training, :class:`MemberDraws` gives the learner every member's draws at once, each from
its member's generator, in the order the learner asks for them: the order its single run draws
them from the global RNG.
"""

from __future__ import annotations

import torch

from lamaml_pl.algos.draws import GLOBAL_DRAWS


def draw_seed(generator: torch.Generator) -> int:
    """One int64 draw, as a DataLoader iterator or RandomSampler takes from the global RNG."""
    return int(torch.empty((), dtype=torch.int64).random_(generator=generator).item())


class MemberRNG:
    """A member's generator, with the loop's draws around its data orders."""

    def __init__(self, state: torch.Tensor):
        self.generator = torch.Generator()
        self.generator.set_state(state)

    def epoch_order(self, epoch: int, n_samples: int, evaluated_before: int) -> torch.Tensor:
        """The sample order of training epoch ``epoch``; ``evaluated_before``: how many evaluation
        loaders ran between the previous epoch (or the start of training) and this one (the test
        sets, and the validation sets where the benchmark has them)."""
        skipped = evaluated_before + (1 if epoch == 0 else 2)
        for _ in range(skipped):
            draw_seed(self.generator)
        sampler = torch.Generator().manual_seed(draw_seed(self.generator))
        return torch.randperm(n_samples, generator=sampler)

    def randperm(self, n: int) -> torch.Tensor:
        return torch.randperm(n, generator=self.generator)

    def randint(self, high: int, size: int) -> torch.Tensor:
        return torch.randint(0, high, (size,), generator=self.generator)

    def rand(self, size: int) -> torch.Tensor:
        return torch.rand(size, generator=self.generator)


class MemberDraws:
    """A population's draws (the learner's ``draws``): one row per member, each from its own
    :class:`MemberRNG`, drawn on the CPU (as the single run on the CPU) and copied to the
    batch's device without making the host wait."""

    def __init__(self, rngs: list[MemberRNG]):
        self.rngs = rngs

    def _stacked(self, draws: list[torch.Tensor], device: torch.device) -> torch.Tensor:
        stacked = torch.stack(draws)
        return stacked if device.type == "cpu" else stacked.pin_memory().to(device, non_blocking=True)

    def order(self, n: int, device: torch.device) -> torch.Tensor:
        return self._stacked([rng.randperm(n) for rng in self.rngs], device)

    def indices(self, high: int, k: int, device: torch.device) -> torch.Tensor:
        return self._stacked([rng.randint(high, k) for rng in self.rngs], device)

    def uniforms(self, n: int, device: torch.device) -> torch.Tensor:
        return self._stacked([rng.rand(n) for rng in self.rngs], device)

    def integers_below(self, highs: list[list[int]]) -> list[list[int]]:
        """Each member's integers uniform in ``[0, high)``, one per bound of its own list."""
        return [
            [int(torch.randint(high, (), generator=rng.generator)) for high in member]
            for rng, member in zip(self.rngs, highs, strict=True)
        ]

    def normal_(self, tensors: list[torch.Tensor]) -> None:
        """Fill ``tensors`` (the member axis first) with standard normals: on the CPU each member's
        from its own generator, in its single run's order; on a GPU all members' at once from the
        device's generator (millions of draws per member made on the host would cost more than
        the step they feed; the single run there draws from the device's generator too)."""
        if tensors[0].device.type != "cpu":
            GLOBAL_DRAWS.normal_(tensors)
            return
        for member, rng in enumerate(self.rngs):
            for tensor in tensors:
                tensor[member].normal_(generator=rng.generator)

    def state(self) -> list[torch.Tensor]:
        return [rng.generator.get_state() for rng in self.rngs]

    def set_state(self, states: list[torch.Tensor]) -> None:
        for rng, state in zip(self.rngs, states):
            rng.generator.set_state(state)

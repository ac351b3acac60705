"""Reservoir replay buffer as preallocated tensors on the module's device."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from lamaml_pl.algos.draws import GLOBAL_DRAWS, take
from lamaml_pl.errors import require_positive


def reservoir_slots(age: int, uniforms: torch.Tensor, capacity: int, exclusive: bool) -> torch.Tensor:
    """Where each of n offered samples goes, for buffers that have seen ``age`` samples each:
    ``uniforms`` (..., n) are the insertion's uniform draws (a leading axis: one buffer each).

    The original's rule: the ``age``-th offered sample (1-based) is appended while the buffer is
    not full; afterwards an integer p is drawn uniformly from ``{0, ..., age}`` — inclusive, quirk
    Q10 of docs/quirks.md — and the sample overwrites slot p if p < capacity (``exclusive``:
    ``{0, ..., age-1}``, the textbook reservoir). When two samples of one batch pick the same slot
    the later one wins, as in the sequential original; rejected and losing samples go to slot
    ``capacity``, a scratch row past the end. Vectorised, with no host-device sync.
    """
    n = uniforms.shape[-1]
    device = uniforms.device
    if age + n <= capacity:  # appended, every one (the age is a host int: no sync to know it)
        return torch.arange(age, age + n, device=device).expand(uniforms.shape)
    ages = torch.arange(age + 1, age + n + 1, device=device)
    drawn = (uniforms * (ages if exclusive else ages + 1)).long()
    slots = drawn if age >= capacity else torch.where(ages <= capacity, ages - 1, drawn)
    slots = slots.clamp_(max=capacity)
    order = torch.arange(n, device=device).expand_as(slots)
    last_writer = torch.full((*slots.shape[:-1], capacity + 1), -1, device=device, dtype=torch.long)
    last_writer.scatter_reduce_(-1, slots, order, reduce="amax")
    return torch.where(last_writer.gather(-1, slots) == order, slots, capacity)


def replayed_then_incoming(
    replayed: Sequence[torch.Tensor], incoming: Sequence[torch.Tensor], axis: int
) -> tuple[torch.Tensor, ...]:
    """Each of the replayed tensors (x, y, task ids) followed by its incoming one along ``axis``."""
    return tuple(torch.cat(pair, dim=axis) for pair in zip(replayed, incoming))


class ReservoirBuffer(nn.Module):
    """Reservoir sampling over a stream of ``(x, y, task)`` samples, kept in fixed-size tensors
    (:func:`reservoir_slots`). ``extras``: further per-sample tensors stored beside them, by name
    and shape (DER++ keeps each sample's logits). ``members``: one buffer per population member in
    the same tensors (a leading member axis); every member sees as many samples, so the age, and
    with it every size, is one host-side int.
    """

    def __init__(
        self,
        capacity: int,
        sample_shape: Sequence[int],
        exclusive: bool = False,
        extras: dict | None = None,
        members: int | None = None,
    ):
        super().__init__()
        require_positive("algo", memories=capacity)
        self.capacity = int(capacity)
        self.exclusive = exclusive
        self.age = 0  # samples offered so far; a host-side int, so sizes never need a sync
        lead = () if members is None else (members,)
        self.register_buffer("x", torch.zeros(*lead, self.capacity + 1, *sample_shape))  # last row: scratch
        self.register_buffer("y", torch.zeros(*lead, self.capacity + 1, dtype=torch.long))
        self.register_buffer("t", torch.zeros(*lead, self.capacity + 1, dtype=torch.long))
        self.extras = list(extras or {})
        for name, shape in (extras or {}).items():
            self.register_buffer(name, torch.zeros(*lead, self.capacity + 1, *shape))

    def __len__(self) -> int:
        return min(self.age, self.capacity)

    def add(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        t: torch.Tensor | int,
        uniforms: torch.Tensor | None = None,
        **extras: torch.Tensor,
    ) -> None:
        """Offer a batch of samples, in order (with a value of each of ``extras`` per sample).
        ``uniforms``: the insertion's uniform draws, one per sample (of each member); by default
        ``torch.rand`` draws them, as the original."""
        n = y.shape[-1]
        if uniforms is None:
            uniforms = torch.rand(n, device=self.y.device)
        slots = reservoir_slots(self.age, uniforms, self.capacity, self.exclusive)
        if slots.dim() > 1:  # members: each its own slots
            slots = (torch.arange(len(slots), device=slots.device).unsqueeze(1).expand_as(slots), slots)
        else:
            slots = (slots,)
        self.x.index_put_(slots, x.detach().to(self.x.dtype))
        self.y.index_put_(slots, y)
        tasks = t.to(self.t.device) if isinstance(t, torch.Tensor) else torch.full((n,), int(t), device=self.t.device)
        self.t.index_put_(slots, tasks.expand(y.shape))  # (a fill, not a host-to-device copy of t)
        for name in self.extras:
            stored = getattr(self, name)
            stored.index_put_(slots, extras[name].detach().to(stored.dtype))
        self.age += n

    def sample(self, k: int, draws=GLOBAL_DRAWS, batches: int | None = None) -> tuple[torch.Tensor, ...]:
        """``min(k, len)`` entries drawn uniformly with replacement (empty when the buffer is),
        with ``draws`` (the learner's; by default torch's global RNG): x, y, t, then each of
        ``extras`` (with members: each member's own entries). ``batches``: that many such draws
        at once, stacked on a new axis before the samples' (the same numbers as one call each on
        the CPU)."""
        k = min(k, len(self))
        idx = draws.indices(max(len(self), 1), k * (batches or 1), self.y.device)
        drawn = tuple(take(getattr(self, name), idx) for name in ("x", "y", "t", *self.extras))
        if batches is None:
            return drawn
        return tuple(d.unflatten(idx.dim() - 1, (batches, k)) for d in drawn)

    def before(self, x: torch.Tensor, y: torch.Tensor, t: int, k: int, draws, axis: int) -> tuple[torch.Tensor, ...]:
        """A replay batch: ``k`` entries drawn (:meth:`sample`), then the incoming batch of task
        ``t`` (``axis``: the samples' axis), as x, y and task ids."""
        return replayed_then_incoming(self.sample(k, draws)[:3], (x, y, torch.full_like(y, t)), axis)

    def get_extra_state(self) -> dict:
        return {"age": self.age}

    def set_extra_state(self, state: dict) -> None:
        self.age = int(state["age"])

"""Reservoir buffer: capacity, inclusion probabilities, and equality with the sequential original."""

import pytest
import torch

from lamaml_pl.algos import ReservoirBuffer
from lamaml_pl.errors import ConfigError


def sequential_reference(capacity, batches, uniforms, exclusive):
    """The original one-sample-at-a-time loop, fed the same uniform numbers."""
    slots, age, u = [], 0, iter(uniforms)
    for batch in batches:
        for sample in batch:
            age += 1
            draw = int(next(u) * (age if exclusive else age + 1))
            if len(slots) < capacity:
                slots.append(sample)
            elif draw < capacity:
                slots[draw] = sample
    return slots


@pytest.mark.parametrize("exclusive", [False, True])
def test_batch_insert_equals_sequential_original(exclusive):
    capacity, n_batches, batch = 7, 12, 5
    torch.manual_seed(3)
    buffer = ReservoirBuffer(capacity, (1,), exclusive=exclusive)
    batches = [list(range(b * batch, (b + 1) * batch)) for b in range(n_batches)]
    torch.manual_seed(11)
    uniforms = torch.cat([torch.rand(batch) for _ in range(n_batches)]).tolist()
    torch.manual_seed(11)
    for ids in batches:
        ids = torch.tensor(ids)
        buffer.add(ids.float().unsqueeze(1), ids, 0)
    expected = sequential_reference(capacity, batches, uniforms, exclusive)
    assert buffer.y[:capacity].tolist() == expected
    assert buffer.x[:capacity, 0].long().tolist() == expected


def test_capacity_and_size():
    buffer = ReservoirBuffer(5, (3,))
    assert len(buffer) == 0
    buffer.add(torch.ones(3, 3), torch.arange(3), 2)
    assert len(buffer) == 3 and buffer.t[:3].tolist() == [2, 2, 2]
    buffer.add(torch.ones(10, 3), torch.arange(10), 4)
    assert len(buffer) == 5 and buffer.age == 13
    x, y, t = buffer.sample(10)
    assert x.shape == (5, 3) and y.shape == (5,)


def test_sample_from_empty_buffer_is_empty():
    x, y, t = ReservoirBuffer(4, (2,)).sample(3)
    assert x.shape == (0, 2) and len(y) == 0


@pytest.mark.parametrize("exclusive", [False, True])
def test_every_offered_sample_is_kept_with_probability_about_capacity_over_n(exclusive):
    capacity, n, trials = 10, 100, 3000
    torch.manual_seed(0)
    kept = torch.zeros(n)
    for _ in range(trials):
        buffer = ReservoirBuffer(capacity, (1,), exclusive=exclusive)
        for start in range(0, n, 10):
            ids = torch.arange(start, start + 10)
            buffer.add(ids.float().unsqueeze(1), ids, 0)
        kept[buffer.y[:capacity]] += 1
    freq = kept / trials
    # textbook: capacity/n for every sample; inclusive draw (Q10): capacity/(n+1), (capacity+1)/(n+1) early
    expected = torch.full((n,), capacity / (n if exclusive else n + 1))
    if not exclusive:
        expected[:capacity] = (capacity + 1) / (n + 1)
    assert freq.sum().item() == pytest.approx(capacity)
    assert torch.allclose(freq, expected, atol=0.025)  # ~4.5 binomial std at p = 0.1, 3000 trials
    assert freq[:50].mean().item() == pytest.approx(freq[50:].mean().item(), abs=0.01)


@pytest.mark.parametrize("capacity", [0, -3])
def test_non_positive_capacity_is_refused(capacity):
    with pytest.raises(ConfigError, match=f"algo.memories={capacity}"):
        ReservoirBuffer(capacity, (1,))


def test_state_dict_round_trip_keeps_contents_and_age():
    buffer = ReservoirBuffer(4, (2,))
    buffer.add(torch.randn(6, 2), torch.arange(6), 3)
    restored = ReservoirBuffer(4, (2,))
    restored.load_state_dict(buffer.state_dict())
    assert restored.age == 6 and len(restored) == 4
    assert torch.equal(restored.x, buffer.x) and torch.equal(restored.y, buffer.y)

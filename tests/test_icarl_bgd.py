"""iCaRL's herding, nearest-mean prediction and distillation, and one BGD step, against numbers
computed by hand."""

import math

import torch
from torch import nn

from lamaml_pl.algos.bgd import BGD
from lamaml_pl.algos.icarl import ICaRL, herding
from lamaml_pl.population.member_rng import MemberDraws, MemberRNG
from lamaml_pl.stream import StreamInfo
from tests.conftest import make_learner


def test_herding_picks_the_samples_whose_running_mean_tracks_the_class_mean():
    # mean (1.5, 1.75). Step 1: distances 2.305, 1.820, 1.953, 3.363 -> sample 1.
    # Step 2 (with sample 1, sum (2, 0)): running means (1, 0), (1, 1.5), (3, 2) -> sample 2.
    # Step 3 (sum (2, 3)): running means (0.667, 1), (2, 2.333) -> distances 1.121, 0.768 -> sample 3.
    features = torch.tensor([[0.0, 0.0], [2.0, 0.0], [0.0, 3.0], [4.0, 4.0]])
    assert herding(features, 3).tolist() == [1, 2, 3]
    assert herding(features, 10).tolist() == [1, 2, 3, 0]  # fewer samples than the budget: all of them


def identity_icarl() -> ICaRL:
    """4 classes in 2 tasks; the net is the identity, so logits = inputs."""
    net = nn.Linear(4, 4)
    with torch.no_grad():
        net.weight.copy_(torch.eye(4))
        net.bias.zero_()
    stream = StreamInfo(n_tasks=2, n_classes=4, input_shape=(4,), epochs_per_task=1, classes_per_task=2)
    return make_learner("icarl", net, stream, n_memories=4)


def test_nearest_mean_of_exemplars():
    learner = identity_icarl()
    learner.exemplars = [{2: torch.tensor([[0.0, 0, 1, 0], [0, 0, 3, 0]]), 3: torch.tensor([[0.0, 0, 0, 2]])}]
    x = torch.tensor([[0.0, 0, 1.5, 0.5], [0, 0, 0, 3], [5, 1, 0, 0]])
    # task 1: class means (0,0,2,0) and (0,0,0,2); distances 0.707 / 2.121 and 3.606 / 1.0
    # task 0 has no exemplars yet: its first class
    assert learner.predict(x, torch.tensor([1, 1, 0])).tolist() == [2, 3, 0]
    learner.exemplars = [{0: torch.tensor([[1.0, 0, 0, 0]])}]  # class 1 without exemplars never wins
    assert learner.predict(torch.tensor([[0.0, 9, 0, 0]]), torch.tensor([0])).tolist() == [0]


def test_distillation_is_the_mean_per_example_kl_over_each_old_task_outputs():
    learner = identity_icarl()
    learner.exemplars = [{0: torch.tensor([[1.0, 0, 0, 0]]), 1: torch.tensor([[0.0, 1, 0, 0]])}]
    learner.targets = [{0: torch.tensor([[3.0, 0, 0, 0]]), 1: torch.tensor([[0.0, 3, 0, 0]])}]
    p_old = [math.exp(3) / (math.exp(3) + 1), 1 / (math.exp(3) + 1)]
    log_new = [1 - math.log(math.e + 1), -math.log(math.e + 1)]
    kl = sum(p * (math.log(p) - q) for p, q in zip(p_old, log_new))  # 0.1699, the same for both exemplars
    assert abs(learner.distillation(1).item() - kl) < 1e-6


def test_a_population_member_without_exemplars_of_a_class_distils_the_others_only():
    """Members hold exemplars of their own: member 1 has none of class 1 (its single run would
    have no such class), so its distillation is class 0's term alone."""
    population, other = identity_icarl(), identity_icarl()
    population.join_members([population, other], MemberDraws([MemberRNG(torch.get_rng_state()) for _ in range(2)]))
    population.exemplars = [
        {0: torch.tensor([[1.0, 0, 0, 0]]), 1: torch.tensor([[0.0, 1, 0, 0]])},
        {0: torch.tensor([[1.0, 0, 0, 0]])},
    ]
    population.targets = [
        {0: torch.tensor([[3.0, 0, 0, 0]]), 1: torch.tensor([[0.0, 3, 0, 0]])},
        {0: torch.tensor([[3.0, 0, 0, 0]])},
    ]
    with torch.no_grad():
        population.weights[1][1].copy_(torch.tensor([1.0, 0, 0, 0]))  # member 1's bias: logits x + (1, 0, 0, 0)
    p_old = [math.exp(3) / (math.exp(3) + 1), 1 / (math.exp(3) + 1)]

    def kl(logits):  # KL(p_old || softmax(logits)) over task 0's two outputs
        log_z = math.log(sum(math.exp(v) for v in logits))
        return sum(p * (math.log(p) - (v - log_z)) for p, v in zip(p_old, logits))

    # the sum over the picked exemplars / 2 classes per task: member 0's two terms are equal (class
    # 1's is class 0's mirrored); member 1's class 0 exemplar scores (2, 0), and its class 1 adds
    # nothing (unmasked, a stand-in input would add KL(½,½ || (1, 0)))
    expected = torch.tensor([(kl([1, 0]) + kl([1, 0])) / 2, kl([2, 0]) / 2])
    assert torch.allclose(population.distillation(1), expected, atol=1e-6)


def test_one_bgd_step():
    p = nn.Parameter(torch.tensor([1.0, -2.0]))
    bgd = BGD([p], std_init=0.5, mean_eta=2.0, mc_iters=2)
    torch.manual_seed(0)
    bgd.randomize_weights()
    state = bgd.state[p]
    assert torch.allclose(p.detach(), state["mean"] + 0.5 * state["eps"])
    for eps, grad in (([1.0, -1.0], [0.2, 0.4]), ([-1.0, 0.5], [0.6, -0.2])):
        state["eps"].copy_(torch.tensor(eps))
        bgd.aggregate_grads([torch.tensor(grad)], batch_size=10)
    bgd.step()
    # E[g] = (10*(0.2, 0.4) + 10*(0.6, -0.2)) / 2 = (4, 1);  E[g eps] = ((2, -4) + (-6, -1)) / 2 = (-2, -2.5)
    # mean: (1, -2) - 2 * 0.25 * (4, 1) = (-1, -2.5)
    # std: 0.5 sqrt(1 + h^2) - 0.5 h with h = 0.5 E[g eps] / 2 = (-0.5, -0.625)
    expected_std = [0.5 * math.sqrt(1 + h * h) - 0.5 * h for h in (-0.5, -0.625)]
    assert torch.allclose(state["mean"], torch.tensor([-1.0, -2.5]))
    assert torch.allclose(state["std"], torch.tensor(expected_std))
    assert torch.allclose(p.detach(), torch.tensor([-1.0, -2.5]))  # the weights are left at the mean
    assert state["sum_grad"].abs().sum() == 0 and state["sum_grad_eps"].abs().sum() == 0

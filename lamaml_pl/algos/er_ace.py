"""ER-ACE: experience replay with an asymmetric cross-entropy (Caccia et al., "New Insights on
Reducing Abrupt Representation Change in Online Continual Learning", ICLR 2022).

Each glance is one SGD step on

    CE_present(net(B)) + CE(net(R))

where R is ``replay_batch_size`` samples drawn from the reservoir (no term while it is empty) and
CE_present is the cross-entropy of the incoming batch B over the classes present in B only: the
other outputs are masked, so the new classes' gradient does not push down the old classes' logits
(the abrupt change of the old classes' representation that plain ER suffers when a new task
starts). The replayed samples' loss is the usual one (``class_il_loss`` on class-incremental
streams). Everything else is ER's (it overrides ER's ``glance_loss`` only): its values, the
clip, the reservoir, populations.
"""

from __future__ import annotations

import torch

from lamaml_pl.algos.er import ER


class ERACE(ER):
    hand_written_glance = False  # two cross-entropies on two forward passes: autograd

    def glance_loss(self, incoming: tuple[torch.Tensor, ...], replay: tuple[torch.Tensor, ...]) -> torch.Tensor:
        (x, y, tasks), (replay_x, replay_y, replay_t) = incoming, replay
        loss = self.loss(present_classes_only(self.net_logits(x), y), y, tasks)
        if replay_y.shape[-1]:  # (none while the reservoir is empty)
            loss = loss + self.loss(self.net_logits(replay_x), replay_y, replay_t)
        return loss


def present_classes_only(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``logits`` ``[(members,) B, C]`` with every class absent from the batch's labels ``y``
    (each member's own) set to the dtype's lowest value: a softmax over the present classes."""
    present = torch.zeros(*y.shape[:-1], logits.shape[-1], dtype=torch.bool, device=y.device)
    present.scatter_(-1, y, True)
    return logits.masked_fill(~present.unsqueeze(-2), torch.finfo(logits.dtype).min)

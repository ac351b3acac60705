"""Flattened-gradient helpers and the two projections of the GEM family."""

from __future__ import annotations

import numpy as np
import quadprog
import torch


def per_member(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A ``(members,)`` vector in ``like``'s dtype, shaped to broadcast against ``like``."""
    return values.to(like.dtype).view(-1, *[1] * (like.dim() - 1))


def clip_factor(norms: torch.Tensor, max_norm: float | torch.Tensor) -> torch.Tensor:
    """``clip_grad_norm_``'s scale of a gradient of norm ``norms``: min(1, max_norm / (norm + 1e-6))."""
    return (max_norm / (norms + 1e-6)).clamp(max=1.0)


def clip_norm_(grads: list[torch.Tensor], max_norm: float | torch.Tensor) -> None:
    """``nn.utils.clip_grad_norm_`` on gradient tensors rather than parameters (same operations:
    scale by min(1, max_norm / (total norm + 1e-6))); no host sync, so it can run in a CUDA graph.
    The total norm is ``get_total_norm``'s ops without its grouping by device and dtype (one model's
    gradients are one group), which costs more than the norm at these sizes. With a member axis
    (``max_norm`` one value per member), each member's tensors are clipped by their own norm."""
    if isinstance(max_norm, torch.Tensor):
        norms = torch.stack([g.flatten(1).norm(dim=1) for g in grads], dim=1).norm(dim=1)
        scale = clip_factor(norms, max_norm.to(norms.dtype))
        torch._foreach_mul_(grads, [per_member(scale, g) for g in grads])
        return
    total = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
    torch._foreach_mul_(grads, clip_factor(total, max_norm))


def sgd_(params: list[torch.Tensor], grads: list[torch.Tensor], lr: float | torch.Tensor) -> None:
    """``params -= lr * grads``; with a member axis, ``lr`` one value per member."""
    if isinstance(lr, torch.Tensor):
        torch._foreach_sub_(params, [g * per_member(lr, g) for g in grads])
    else:
        torch._foreach_add_(params, grads, alpha=-lr)


def project_gem(g: torch.Tensor, memories: torch.Tensor, margin: float, eps: float = 1e-3) -> torch.Tensor:
    """GEM's projection: the closest g~ to g with g~ . m_k >= 0 for every past-task gradient m_k.

    Solves the dual ``min ½ vᵀ(MMᵀ + εI)v + (Mg)ᵀv  s.t.  v >= margin`` with quadprog in float64
    and returns g~ = Mᵀv + g. ``margin`` is GEM's ``memory_strength``; ``eps`` the ridge that
    the La-MAML copy adds to the diagonal (Q6). The products stay on g's device (in float64, as
    the original's numpy); only the t x t program travels to the host, not the t x n_params
    gradients (57 MB per step for the CIFAR-100 net at task 10).
    """
    M = memories.detach().to(torch.float64)
    gv = g.detach().to(torch.float64)
    t = M.shape[0]
    P = M @ M.T
    P = 0.5 * (P + P.T) + eps * torch.eye(t, dtype=torch.float64, device=M.device)
    q = -(M @ gv)
    v = quadprog.solve_qp(P.cpu().numpy(), q.cpu().numpy(), np.eye(t), np.full(t, margin, dtype=np.float64))[0]
    return (gv + M.T @ torch.from_numpy(v).to(M.device)).to(g.dtype)


def project_agem(g: torch.Tensor, memories: torch.Tensor) -> torch.Tensor:
    """A-GEM as La-MAML's copy projects (Q5): the reference r is the mean of the past tasks'
    memory gradients ``[tasks, n_params]``; if g . r < 0, g - (g . r / r . r) r. In float64, as
    the original's numpy (a float32 r . r underflows to 0 once the memories are learned to a
    near-zero loss, while g . r does not); returned in g's dtype."""
    r = memories.detach().to(torch.float64).mean(dim=0)
    g64 = g.detach().to(torch.float64)
    dot = torch.dot(g64, r)
    if dot >= 0:
        return g
    return (g64 - (dot / torch.dot(r, r)) * r).to(g.dtype)

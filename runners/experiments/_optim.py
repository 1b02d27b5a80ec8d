"""Plain Adam shared by the experiments that need an optimiser."""

from __future__ import annotations

import torch


class Adam:
    """Plain Adam (Kingma & Ba 2015).

    Written out because the first use of ``torch.optim`` imports ``torch._dynamo``,
    which costs over a second in a fresh process.
    """

    def __init__(self, params: list[torch.Tensor], lr: float) -> None:
        self.params = params
        self.lr = lr
        self.t = 0
        self.m = [torch.zeros_like(q) for q in params]
        self.v = [torch.zeros_like(q) for q in params]

    @torch.no_grad()
    def step(self) -> None:
        b1, b2, eps = 0.9, 0.999, 1e-8
        self.t += 1
        for q, m, v in zip(self.params, self.m, self.v, strict=True):
            if q.grad is None:
                continue
            m.mul_(b1).add_(q.grad, alpha=1 - b1)
            v.mul_(b2).addcmul_(q.grad, q.grad, value=1 - b2)
            denom = (v / (1 - b2**self.t)).sqrt_().add_(eps)
            q.addcdiv_(m, denom, value=-self.lr / (1 - b1**self.t))
            q.grad = None

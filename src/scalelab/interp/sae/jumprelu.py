"""JumpReLU SAE (Rajamanoharan et al. 2024, Gemma Scope): f_i = z_i · H(z_i − θ_i) with learned θ.

The step H has zero gradient almost everywhere, so θ (kept as log θ to stay positive) learns through a
straight-through estimator: in the backward pass H's derivative is a rectangle kernel of width
`jump_bandwidth` around the threshold. The sparsity penalty is λ·L0 itself (through the same estimator),
not an L1 proxy, so activations are not shrunk.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from scalelab.interp.sae.base import SAE, SAEConfig


def _rectangle(x: torch.Tensor) -> torch.Tensor:
    return ((x > -0.5) & (x < 0.5)).to(x)


class _Step(torch.autograd.Function):
    """H(z − θ) with a straight-through gradient for θ only (z gets none through the step)."""

    @staticmethod
    def forward(ctx, z: torch.Tensor, theta: torch.Tensor, bandwidth: float) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(z, theta)
        ctx.bandwidth = bandwidth
        return (z > theta).to(z)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        z, theta = ctx.saved_tensors
        bw = ctx.bandwidth
        d_theta = -(1.0 / bw) * _rectangle((z - theta) / bw) * grad
        return torch.zeros_like(z), d_theta.sum(0), None


class _JumpReLU(torch.autograd.Function):
    """z·H(z − θ): exact gradient for z where it fires; straight-through gradient for θ."""

    @staticmethod
    def forward(ctx, z: torch.Tensor, theta: torch.Tensor, bandwidth: float) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(z, theta)
        ctx.bandwidth = bandwidth
        return z * (z > theta)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        z, theta = ctx.saved_tensors
        bw = ctx.bandwidth
        d_z = (z > theta).to(z) * grad
        d_theta = -(theta / bw) * _rectangle((z - theta) / bw) * grad
        return d_z, d_theta.sum(0), None


class JumpReLUSAE(SAE):
    arch = "jumprelu"

    def __init__(self, cfg: SAEConfig) -> None:
        super().__init__(cfg)
        self.log_threshold = nn.Parameter(torch.full((cfg.d_sae,), math.log(cfg.jump_init_threshold)))

    def per_latent_parameters(self) -> list[nn.Parameter]:
        return [*super().per_latent_parameters(), self.log_threshold]

    def activation(self, pre: torch.Tensor) -> torch.Tensor:
        pre = pre.relu()
        return _JumpReLU.apply(pre, self.log_threshold.exp(), self.cfg.jump_bandwidth)

    def loss_terms(self, x: torch.Tensor, pre: torch.Tensor, f: torch.Tensor,
                   recon: torch.Tensor) -> dict[str, torch.Tensor]:
        l0 = _Step.apply(pre.relu(), self.log_threshold.exp(), self.cfg.jump_bandwidth).sum(-1).mean()
        return {"l0_penalty": self.cfg.l0_coeff * l0}

    def inference_state(self) -> tuple[str, dict[str, torch.Tensor], dict]:
        _, state, extra = super().inference_state()
        state["threshold"] = self.log_threshold.exp().detach().float().clone()
        return "jumprelu", state, extra

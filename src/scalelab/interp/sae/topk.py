"""TopK SAE with the AuxK auxiliary loss (Gao et al. 2024, "Scaling and evaluating sparse autoencoders").

σ keeps each token's k largest pre-activations (ReLU'd) and zeroes the rest, so L0 is set, not tuned.
AuxK: the residual e = x − x̂ is modelled by the top `aux_k` *dead* latents alone, and ‖e − ê‖²/‖e‖²
(scaled by `aux_coeff`) is added to the loss, which gives dead latents a gradient and revives them.
"""

from __future__ import annotations

import torch

from scalelab.interp.sae.base import SAE
from scalelab.interp.sae.sparse_topk import topk_decode, topk_encode
from scalelab.model.precision import active_autocast_dtype


def topk_relu(pre: torch.Tensor, k: int) -> torch.Tensor:
    vals, idx = pre.topk(min(k, pre.shape[-1]), dim=-1, sorted=False)
    return torch.zeros_like(pre).scatter_(-1, idx, vals.relu())


class TopKSAE(SAE):
    arch = "topk"
    _workspace: torch.Tensor | None = None  # pre-activation buffer reused by every training step
    grad_latents: torch.Tensor | None = None  # set by training_step_loss: latents with a gradient this step

    def activation(self, pre: torch.Tensor) -> torch.Tensor:
        return topk_relu(pre, self.cfg.k)

    def training_step_loss(self, x_raw: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The base class's loss, computed on the k active latents only (`sparse_topk`)."""
        x = x_raw * self.norm_scale
        k = min(self.cfg.k, self.cfg.d_sae)
        # Latents that will count as dead after this batch unless they fire in it (see base.dead_mask).
        candidates = self.steps_since_fired + x.shape[0] >= self.cfg.dead_tokens
        aux_k = (self.cfg.aux_k or self.cfg.d_in // 2) if self.cfg.aux_coeff > 0 else 0
        shape = (x.shape[0], self.cfg.d_sae)
        dev = x.device.type
        pre_dtype = active_autocast_dtype(dev) or x.dtype  # see sparse_topk
        if self._workspace is None or self._workspace.shape != shape or self._workspace.dtype != pre_dtype:
            self._workspace = x.new_empty(shape, dtype=pre_dtype)
        vals, idx, a_vals, a_idx = topk_encode(x, self.W_enc, self.b_enc, self.b_dec, k, aux_k, candidates,
                                               self._workspace)
        recon = topk_decode(vals, idx, self.W_dec, tangent=True) + self.b_dec
        parts = {"mse": (recon - x).pow(2).sum(-1).mean()}
        with torch.no_grad():
            self.steps_since_fired += x.shape[0]
            self.steps_since_fired[idx[vals > 0]] = 0
            # The latents this step's gradient touches (positive main or AuxK values), for lazy optimiser steps.
            self.grad_latents = torch.zeros(self.cfg.d_sae, dtype=torch.bool, device=x.device)
            self.grad_latents[idx[vals > 0]] = True
            self.grad_latents[a_idx[a_vals > 0]] = True
        if a_idx.shape[1]:
            resid = (x - recon).detach()
            err = (topk_decode(a_vals, a_idx, self.W_dec, tangent=True) - resid).pow(2).sum(-1).mean()
            parts["auxk"] = self.cfg.aux_coeff * err / resid.pow(2).sum(-1).mean().clamp_min(1e-8)
        total = sum(parts.values())
        parts["l0"] = (vals > 0).float().sum(-1).mean()
        return total, parts  # type: ignore[return-value]

    def remove_parallel_grad(self) -> None:
        """Nothing to do after `training_step_loss`: its decoder gradient arrives without the parallel part
        (`topk_decode(tangent=True)`); the dense path (`SAE.training_step_loss`) is not used for training."""

    def loss_terms(self, x: torch.Tensor, pre: torch.Tensor, f: torch.Tensor,
                   recon: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"auxk": auxk_loss(self, x, pre, recon)}


def auxk_loss(sae: SAE, x: torch.Tensor, pre: torch.Tensor, recon: torch.Tensor) -> torch.Tensor:
    dead = sae.dead_mask
    n_dead = int(dead.sum())
    if n_dead == 0:
        return pre.new_zeros(())
    k_aux = min(sae.cfg.aux_k or sae.cfg.d_in // 2, n_dead)
    # Only dead latents compete: the others are pushed to -inf before the top-k.
    masked = pre.masked_fill(~dead, float("-inf"))
    vals, idx = masked.topk(k_aux, dim=-1, sorted=False)
    f_aux = torch.zeros_like(pre).scatter_(-1, idx, vals.relu())
    resid = (x - recon).detach()
    resid_hat = f_aux @ sae.W_dec
    denom = resid.pow(2).sum(-1).mean().clamp_min(1e-8)
    return sae.cfg.aux_coeff * (resid_hat - resid).pow(2).sum(-1).mean() / denom

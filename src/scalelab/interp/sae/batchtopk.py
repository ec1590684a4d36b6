"""BatchTopK SAE (Bussmann et al. 2024): the top k·B pre-activations across a batch of B tokens survive.

Sparsity is fixed on average but varies per token, which reconstructs better than per-token TopK at the
same mean L0. A batch-dependent σ cannot be used one token at a time, so training tracks an exponential
average of the smallest activation that survived; at inference a latent fires when its pre-activation
exceeds that threshold, i.e. the SAE becomes a JumpReLU with one shared threshold — which is also how
it is exported in SAELens's layout. AuxK revives dead latents as in TopK.
"""

from __future__ import annotations

import torch

from scalelab.interp.sae.base import SAE, SAEConfig
from scalelab.interp.sae.topk import auxk_loss


class BatchTopKSAE(SAE):
    arch = "batchtopk"

    def __init__(self, cfg: SAEConfig) -> None:
        super().__init__(cfg)
        self.register_buffer("threshold", torch.zeros(()))
        self.register_buffer("threshold_seen", torch.zeros((), dtype=torch.bool))

    def activation(self, pre: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return pre * (pre > self.threshold)
        flat = pre.relu().flatten()
        n_keep = min(self.cfg.k * pre.shape[0], flat.numel())
        vals, idx = flat.topk(n_keep, sorted=False)
        with torch.no_grad():
            alive = vals[vals > 0]
            if len(alive):
                low = alive.min()
                if bool(self.threshold_seen):
                    self.threshold.mul_(0.99).add_(0.01 * low)
                else:
                    self.threshold.copy_(low)
                    self.threshold_seen.fill_(True)
        return torch.zeros_like(flat).scatter_(0, idx, vals).view_as(pre)

    def loss_terms(self, x: torch.Tensor, pre: torch.Tensor, f: torch.Tensor,
                   recon: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"auxk": auxk_loss(self, x, pre, recon)}

    def inference_state(self) -> tuple[str, dict[str, torch.Tensor], dict]:
        _, state, extra = super().inference_state()
        # The threshold compares pre-activations, which folding leaves unchanged.
        state["threshold"] = self.threshold.expand(self.cfg.d_sae).clone().float()
        return "jumprelu", state, extra
